"""TCP decoding: header fields and options against Scapy, malformed options and offsets."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from inline_ips.decode import DECODE_ERRORS, decode, decode_l4
from inline_ips.packet import ACK, FIN, PROTO_TCP, PSH, RST, SYN, URG, Packet


def _ip() -> IP:
    return IP(src="10.1.2.3", dst="10.3.2.1")


def assert_tcp_fields(pkt: Packet, raw: bytes) -> None:
    tcp = IP(raw)[TCP]
    assert pkt.proto == PROTO_TCP
    assert (pkt.sport, pkt.dport) == (tcp.sport, tcp.dport)
    assert (pkt.tcp_seq, pkt.tcp_ack) == (tcp.seq, tcp.ack)
    assert pkt.tcp_flags == int(tcp.flags)
    assert pkt.tcp_win == tcp.window
    assert pkt.tcp_urp == tcp.urgptr
    mss = dict((o[0], o[1]) for o in tcp.options).get("MSS", 0)
    assert pkt.tcp_mss == mss
    assert pkt.payload == bytes(tcp.payload)
    assert pkt.payload_offset == pkt.l4_offset + tcp.dataofs * 4
    assert raw[pkt.payload_offset :] == pkt.payload


OPTION_SETS: list[list[tuple[str, Any]]] = [
    [],
    [("MSS", 1460)],
    [("MSS", 536), ("SAckOK", b""), ("Timestamp", (123, 0)), ("NOP", None), ("WScale", 7)],
    [("NOP", None), ("NOP", None), ("Timestamp", (5, 6))],
    [("NOP", None), ("NOP", None), ("SAck", (1000, 2000, 3000, 4000))],
    [("WScale", 14), ("MSS", 9000), ("EOL", None)],
    [("NOP", None)] * 40,
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=range(len(OPTION_SETS)))
@pytest.mark.parametrize(
    "flags", ["S", "SA", "A", "PA", "FA", "R", "RA", "U", "SEC", "FSRPAUEC", ""], ids=lambda f: f or "none"
)
def test_fields_match_scapy(flags: str, options: list[tuple[str, Any]]) -> None:
    raw = bytes(
        _ip()
        / TCP(
            sport=40001,
            dport=443,
            seq=0xFFFFFFF0,
            ack=0x01020304,
            flags=flags,
            window=29200,
            urgptr=3,
            options=options,
        )
        / Raw(b"GET / HTTP/1.1\r\n\r\n")
    )
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert_tcp_fields(pkt, raw)


def test_flag_constants() -> None:
    pkt = decode(bytes(_ip() / TCP(flags="FSRPAU")), 0.0)
    assert pkt.tcp_flags == FIN | SYN | RST | PSH | ACK | URG


def test_ipv6_tcp() -> None:
    raw = bytes(
        IPv6(src="::1", dst="::2") / TCP(sport=1, dport=2, flags="S", options=[("MSS", 1220)]) / Raw(b"p")
    )
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert (pkt.sport, pkt.dport, pkt.tcp_mss, pkt.tcp_flags) == (1, 2, 1220, SYN)
    assert pkt.payload_offset == 40 + 24
    assert pkt.payload == b"p"


def _with_raw_options(opts: bytes, payload: bytes = b"DATA") -> bytes:
    # dataofs is set explicitly so the option bytes are taken verbatim.
    assert len(opts) % 4 == 0
    return bytes(_ip() / TCP(sport=1, dport=2, flags="S", dataofs=5 + len(opts) // 4) / Raw(opts + payload))


@pytest.mark.parametrize(
    ("name", "opts", "mss", "error"),
    [
        ("mss_ok", b"\x02\x04\x05\xb4", 1460, None),
        ("eol_then_junk", b"\x00\xff\xff\xff", 0, None),
        ("nops_then_mss", b"\x01\x01\x01\x01\x02\x04\x01\x00", 256, None),
        ("len_zero", b"\x02\x00\x05\xb4", 0, "tcp_bad_option"),
        ("len_one", b"\x03\x01\x07\x01", 0, "tcp_bad_option"),
        ("len_past_end", b"\x01\x01\x08\x20\x00\x00\x00\x00", 0, "tcp_bad_option"),
        ("kind_without_len", b"\x01\x01\x01\x03", 0, "tcp_bad_option"),
        ("mss_bad_len", b"\x02\x03\x05\x01", 0, "tcp_bad_option"),
        ("mss_then_bad", b"\x02\x04\x05\xb4\x03\x00\x00\x00", 1460, "tcp_bad_option"),
        ("mss_len_past_end", b"\x01\x01\x02\x04", 0, "tcp_bad_option"),
        ("unknown_kind_ok", b"\xfe\x04\xab\xcd", 0, None),
        ("all_ff", b"\xff" * 40, 0, "tcp_bad_option"),
    ],
)
def test_malformed_options(name: str, opts: bytes, mss: int, error: str | None) -> None:
    raw = _with_raw_options(opts)
    pkt = decode(raw, 0.0)
    assert pkt.tcp_mss == mss, name
    assert pkt.error == error, name
    # A bad option does not hide the payload: the data offset is still sound.
    assert pkt.payload == b"DATA"
    assert (pkt.sport, pkt.dport) == (1, 2)


@pytest.mark.parametrize("dataofs", [0, 1, 2, 3, 4])
def test_data_offset_too_small(dataofs: int) -> None:
    pkt = decode(bytes(_ip() / TCP(sport=5, dport=6, dataofs=dataofs) / Raw(b"x" * 40)), 0.0)
    assert pkt.error == "tcp_bad_offset"
    assert (pkt.sport, pkt.dport) == (5, 6)
    assert pkt.payload == b""


@pytest.mark.parametrize("dataofs", [6, 10, 15])
def test_data_offset_past_end(dataofs: int) -> None:
    pkt = decode(bytes(_ip() / TCP(sport=5, dport=6, dataofs=dataofs)), 0.0)
    assert pkt.error == "tcp_bad_offset"
    assert pkt.payload == b""


@pytest.mark.parametrize("n", range(20))
def test_truncated_header(n: int) -> None:
    full = bytes(_ip() / TCP(sport=80, dport=443))
    l4 = full[20 : 20 + n]
    raw = bytes(_ip() / Raw(l4))
    raw = raw[:9] + bytes([PROTO_TCP]) + raw[10:]  # keep total length right, claim TCP
    pkt = decode(raw, 0.0)
    assert pkt.error == "tcp_truncated"
    assert (pkt.sport, pkt.dport) == ((80, 443) if n >= 4 else (0, 0))


def test_truncated_anywhere_in_options() -> None:
    raw = bytes(_ip() / TCP(flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 2)]) / Raw(b"x"))
    for n in range(len(raw)):
        pkt = decode(raw[:n], 0.0)
        assert pkt.error in DECODE_ERRORS
        assert pkt.error != "internal_error"


def test_decode_l4_redecodes_from_offsets() -> None:
    raw = bytes(_ip() / TCP(sport=7, dport=8, flags="S", options=[("MSS", 1400)]) / Raw(b"again"))
    pkt = Packet(raw, 0.0)
    pkt.proto = PROTO_TCP
    pkt.l4_offset = 20
    decode_l4(pkt)
    assert pkt.error is None
    assert_tcp_fields(pkt, raw)


@pytest.mark.parametrize("offset", [-100, -1, 19, 21, 60, 10_000])
def test_decode_l4_never_raises_on_bad_offsets(offset: int) -> None:
    for proto in (1, 6, 17, 58, 47):
        pkt = Packet(bytes(_ip() / TCP()), 0.0)
        pkt.proto = proto
        pkt.l4_offset = offset
        decode_l4(pkt)
        assert pkt.error is None or pkt.error in DECODE_ERRORS
