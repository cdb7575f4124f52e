"""IPv4 decoding checked field by field against Scapy's own parse."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
)
from scapy.layers.inet import (
    fragment as scapy_fragment,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import DECODE_ERRORS, decode
from inline_ips.packet import FRAG_NONE, FRAG_PIECE, PROTO_ICMP, PROTO_TCP, PROTO_UDP, Packet


def fragment(pkt: ScapyPacket, fragsize: int) -> list[ScapyPacket]:
    """Scapy's IPv4 ``fragment()``, typed."""
    return list(scapy_fragment(pkt, fragsize=fragsize))  # type: ignore[no-untyped-call]


SRC, DST = "192.0.2.1", "198.51.100.7"


def _ip(**kw: Any) -> IP:
    return IP(src=SRC, dst=DST, **kw)


def assert_ipv4_fields(pkt: Packet, raw: bytes) -> None:
    ip = IP(raw)
    assert pkt.ip_version == 4
    assert pkt.src == int(ipaddress.IPv4Address(ip.src))
    assert pkt.dst == int(ipaddress.IPv4Address(ip.dst))
    assert pkt.proto == ip.proto
    assert pkt.ttl == ip.ttl
    assert pkt.tos == ip.tos
    assert pkt.ip_id == ip.id
    assert pkt.ip_len == ip.len
    assert pkt.l4_offset == ip.ihl * 4
    assert pkt.frag_offset == ip.frag * 8
    assert pkt.more_frags == bool(ip.flags.MF)


CASES: list[tuple[str, ScapyPacket]] = [
    ("tcp_syn", _ip(ttl=64, id=4321) / TCP(sport=40000, dport=80, flags="S", seq=1000)),
    ("tcp_data_df", _ip(flags="DF", tos=0x10) / TCP(sport=1, dport=2, flags="PA") / Raw(b"hello")),
    ("udp", _ip(ttl=1) / UDP(sport=53, dport=5353) / Raw(b"\x00" * 30)),
    ("icmp", _ip() / ICMP(type=8, id=7, seq=9) / Raw(b"ping")),
    ("options_nop_rr", _ip(options=[IPOption_NOP(), IPOption_RR()]) / TCP(sport=5, dport=6) / Raw(b"opt")),
    ("options_router_alert", _ip(options=[IPOption_Router_Alert()]) / UDP(sport=7, dport=8) / Raw(b"ra")),
    ("max_ihl", _ip(options=[IPOption_RR(routers=["10.9.9.9"] * 9)]) / TCP(sport=9, dport=10)),
    ("other_proto", _ip(proto=47) / Raw(b"\x00\x00\x08\x00gre")),
]


@pytest.mark.parametrize(("name", "scapy_pkt"), CASES, ids=[c[0] for c in CASES])
def test_fields_match_scapy(name: str, scapy_pkt: ScapyPacket) -> None:
    raw = bytes(scapy_pkt)
    pkt = decode(raw, 1.5)
    assert pkt.error is None, name
    assert pkt.ts == 1.5
    assert pkt.raw == raw
    assert pkt.frag == FRAG_NONE
    assert_ipv4_fields(pkt, raw)
    ip = IP(raw)
    assert (
        pkt.payload == bytes(ip.payload.payload) if pkt.proto in (PROTO_TCP, PROTO_UDP, PROTO_ICMP) else True
    )
    assert raw[pkt.payload_offset :] == pkt.payload


def test_options_are_skipped_by_ihl() -> None:
    raw = bytes(
        _ip(options=[IPOption_RR(routers=["10.9.9.9"] * 9)])
        / TCP(sport=1234, dport=443)
        / Raw(b"after-options")
    )
    pkt = decode(raw, 0.0)
    assert pkt.l4_offset == 60
    assert (pkt.sport, pkt.dport) == (1234, 443)
    assert pkt.payload == b"after-options"


@pytest.mark.parametrize("pad", [1, 6, 20, 200])
def test_ethernet_padding_is_trimmed(pad: int) -> None:
    raw = bytes(_ip() / TCP(sport=1, dport=2, flags="A"))
    pkt = decode(raw + b"\xaa" * pad, 0.0)
    assert pkt.error is None
    assert pkt.raw == raw
    assert pkt.payload == b""
    assert pkt.ip_len == len(raw)


def test_padding_after_udp_payload_is_not_payload() -> None:
    raw = bytes(_ip() / UDP(sport=1, dport=2) / Raw(b"abc"))
    pkt = decode(raw + b"\x00" * 15, 0.0)
    assert pkt.error is None
    assert pkt.payload == b"abc"


@pytest.mark.parametrize(("name", "scapy_pkt"), CASES, ids=[c[0] for c in CASES])
def test_truncation_at_every_length(name: str, scapy_pkt: ScapyPacket) -> None:
    raw = bytes(scapy_pkt)
    for n in range(len(raw)):
        pkt = decode(raw[:n], 0.0)
        assert isinstance(pkt, Packet)
        assert pkt.error in DECODE_ERRORS, (name, n)
        assert pkt.error != "internal_error"
    assert decode(raw, 0.0).error is None


def test_total_length_beyond_buffer_still_decodes_l4() -> None:
    raw = bytes(_ip() / TCP(sport=1111, dport=2222) / Raw(b"x" * 100))
    pkt = decode(raw[:50], 0.0)
    assert pkt.error == "ipv4_truncated"
    assert (pkt.sport, pkt.dport) == (1111, 2222)
    assert pkt.payload == b"x" * 10


@pytest.mark.parametrize("ihl", [0, 1, 2, 3, 4])
def test_bad_ihl(ihl: int) -> None:
    raw = bytes(_ip(ihl=ihl) / TCP())
    pkt = decode(raw, 0.0)
    assert pkt.error == "ipv4_bad_ihl"
    assert pkt.ip_version == 4
    assert pkt.payload == b""


def test_ihl_beyond_buffer() -> None:
    raw = bytes(_ip(ihl=15, len=60) / TCP())  # claims 60 header bytes, has 40
    pkt = decode(raw, 0.0)
    assert pkt.error == "ipv4_truncated"
    assert pkt.sport == 0


@pytest.mark.parametrize("total", [0, 10, 19])
def test_total_length_smaller_than_header(total: int) -> None:
    pkt = decode(bytes(_ip(len=total) / TCP()), 0.0)
    assert pkt.error == "ipv4_bad_total_length"


def test_fragments() -> None:
    orig = _ip(id=999) / UDP(sport=4000, dport=53) / Raw(bytes(range(256)) * 8)
    frags = fragment(orig, fragsize=512)
    assert len(frags) > 2
    for i, f in enumerate(frags):
        raw = bytes(f)
        pkt = decode(raw, 0.0)
        assert pkt.error is None
        assert pkt.frag == FRAG_PIECE
        assert_ipv4_fields(pkt, raw)
        if i == 0:
            # The first piece carries the UDP header; its length covers the whole datagram.
            assert (pkt.sport, pkt.dport, pkt.udp_len) == (4000, 53, 8 + 2048)
        else:
            assert (pkt.sport, pkt.dport, pkt.payload) == (0, 0, b"")
    assert decode(bytes(frags[-1]), 0.0).more_frags is False


def test_df_alone_is_not_a_fragment() -> None:
    pkt = decode(bytes(_ip(flags="DF") / TCP()), 0.0)
    assert pkt.frag == FRAG_NONE


def test_ping_of_death_fragment() -> None:
    raw = bytes(_ip(frag=8189, proto=PROTO_ICMP) / Raw(b"x" * 100))
    pkt = decode(raw, 0.0)
    assert pkt.frag == FRAG_PIECE
    assert pkt.error == "ipv4_frag_too_big"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty"),
        (b"\x45", "ipv4_truncated"),
        (b"\x00" * 40, "ip_version_unknown"),
        (b"\x55" + b"\x00" * 39, "ip_version_unknown"),
        (b"\xf0" * 60, "ip_version_unknown"),
    ],
)
def test_short_and_unknown(raw: bytes, error: str) -> None:
    assert decode(raw, 0.0).error == error


def test_non_bytes_input_is_copied() -> None:
    raw = bytes(_ip() / UDP(sport=1, dport=2) / Raw(b"abc"))
    pkt = decode(bytearray(raw), 0.0)  # type: ignore[arg-type]
    assert type(pkt.raw) is bytes
    assert type(pkt.payload) is bytes
    assert pkt.payload == b"abc"


def test_decode_errors_are_unique_snake_case() -> None:
    assert len(set(DECODE_ERRORS)) == len(DECODE_ERRORS)
    for err in DECODE_ERRORS:
        assert err.isidentifier()
        assert err == err.lower()
