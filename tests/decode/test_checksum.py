"""TCP checksum verification on decoded packets built with Scapy (which fills correct checksums).

Correct segments verify, any corrupted byte the checksum covers (addresses, ports, sequence
numbers, the checksum itself, payload) fails, and anything that is not a complete TCP segment
(truncated, a fragment, not TCP) verifies as True without raising.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import decode
from inline_ips.decode.checksum import tcp_checksum_ok
from inline_ips.packet import FRAG_PIECE


def v4(payload: bytes = b"", **tcp: Any) -> ScapyPacket:
    return (
        IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=40000, dport=80, flags="PA", **tcp) / Raw(payload)
    )


def v6(payload: bytes = b"", *ext: ScapyPacket, **tcp: Any) -> ScapyPacket:
    base: ScapyPacket = IPv6(src="2001:db8::1", dst="2001:db8:ffff::2")
    for e in ext:
        base = base / e
    return base / TCP(sport=40000, dport=443, flags="PA", **tcp) / Raw(payload)


def ok(raw: bytes) -> bool:
    return tcp_checksum_ok(decode(raw, 0.0))


def flip(raw: bytes, at: int, mask: int = 0x01) -> bytes:
    b = bytearray(raw)
    b[at] ^= mask
    return bytes(b)


# (name, packet): all built with correct checksums.
GOOD: list[tuple[str, ScapyPacket]] = [
    ("v4_syn_no_payload", IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S")),
    ("v4_one_byte", v4(b"x")),
    ("v4_two_bytes", v4(b"xy")),
    ("v4_odd", v4(b"GET / HTTP/1.0\r\n\r\n!")),
    ("v4_even", v4(b"GET / HTTP/1.0\r\n\r\n")),
    ("v4_large_odd", v4(bytes(range(256)) * 5 + b"z")),
    ("v4_options", v4(b"abc", options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")])),
    ("v4_ip_options", IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00") / TCP() / Raw(b"q")),
    ("v4_zero_addresses", IP(src="0.0.0.0", dst="255.255.255.255") / TCP(sport=0, dport=0) / Raw(b"\xff")),
    ("v6_no_payload", v6()),
    ("v6_odd", v6(b"hello")),
    ("v6_even", v6(b"hell")),
    ("v6_hop_by_hop", v6(b"abc", IPv6ExtHdrHopByHop())),
    ("v6_dest_opts", v6(b"abcd", IPv6ExtHdrDestOpt())),
    ("v6_two_ext", v6(b"abcde", IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt())),
    # an atomic fragment (offset 0, no more fragments) is a whole datagram
    ("v6_atomic_fragment", v6(b"xyz", IPv6ExtHdrFragment(m=0, offset=0, id=7))),
]


@pytest.mark.parametrize("p", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
def test_correct_checksum(p: ScapyPacket) -> None:
    raw = bytes(p)
    pkt = decode(raw, 0.0)
    assert pkt.payload_offset > 0 and pkt.frag != FRAG_PIECE
    assert tcp_checksum_ok(pkt)


def _tcp_offset(raw: bytes) -> int:
    return decode(raw, 0.0).l4_offset


@pytest.mark.parametrize("p", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
def test_corrupted_checksum_field(p: ScapyPacket) -> None:
    raw = bytes(p)
    at = _tcp_offset(raw) + 16
    assert not ok(flip(raw, at))
    assert not ok(flip(raw, at + 1, 0x80))


@pytest.mark.parametrize("p", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
def test_corrupted_covered_bytes(p: ScapyPacket) -> None:
    raw = bytes(p)
    l4 = _tcp_offset(raw)
    addresses = range(12, 20) if raw[0] >> 4 == 4 else range(8, 40)
    header = [l4 + i for i in (0, 1, 2, 3, 4, 7, 8, 11, 14, 15, 18, 19)]  # ports, seq, ack, window, urg
    payload = list(range(decode(raw, 0.0).payload_offset, len(raw)))
    for at in [*addresses, *header, *payload[:3], *payload[-3:]]:
        assert not ok(flip(raw, at)), at


def test_uncovered_bytes_do_not_matter() -> None:
    raw = bytes(v4(b"data"))
    # TTL and IP ID are not in the pseudo-header (the IP header checksum is not checked here).
    assert ok(flip(raw, 8)) and ok(flip(raw, 4))


@given(payload=st.binary(max_size=300), v6_packet=st.booleans(), data=st.data())
@settings(max_examples=200, deadline=None)
def test_random_payloads(payload: bytes, v6_packet: bool, data: st.DataObject) -> None:
    raw = bytes(v6(payload) if v6_packet else v4(payload))
    assert ok(raw)
    pkt = decode(raw, 0.0)
    at = data.draw(
        st.sampled_from([pkt.l4_offset + 16, pkt.l4_offset + 17, *range(pkt.payload_offset, len(raw))])
    )
    mask = data.draw(st.integers(1, 255))
    assert not ok(flip(raw, at, mask))


def test_bad_option_is_still_verified() -> None:
    # A malformed option does not make the segment incomplete: the checksum still counts.
    raw = bytearray(bytes(v4(b"zz", options=[("NOP", None), ("NOP", None), ("NOP", None), (200, b"")])))
    raw[_tcp_offset(bytes(raw)) + 23] = 0x01  # option kind 200 with length 1: invalid
    pkt = decode(bytes(raw), 0.0)
    assert pkt.error == "tcp_bad_option"
    assert not tcp_checksum_ok(pkt)  # the edit broke the checksum
    fixed = IP(bytes(raw))
    del fixed[TCP].chksum  # Scapy recomputes it over the edited header
    pkt = decode(bytes(fixed), 0.0)
    assert pkt.error == "tcp_bad_option"
    assert tcp_checksum_ok(pkt)


def test_ethernet_padding_is_ignored() -> None:
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="A"))
    assert len(raw) == 40
    assert ok(raw + b"\x00" * 6)
    assert ok(bytes(v6(b"a")) + b"\xff" * 4)


# (name, raw bytes): not complete TCP segments -> True, never an exception
def _incomplete() -> list[tuple[str, bytes]]:
    four = bytes(v4(b"payload!"))
    six = bytes(v6(b"payload!", IPv6ExtHdrHopByHop()))
    bad = flip(four, 40 - 4)  # a wrong checksum: only a complete segment would reveal it
    cases = [
        ("v4_truncated_payload", bad[:-1]),
        ("v4_truncated_in_tcp_header", bad[:30]),
        ("v4_ip_header_only", four[:20]),
        ("v4_truncated_ip_header", four[:12]),
        ("v6_truncated_payload", flip(six, len(six) - 1)[:-2]),
        ("v6_truncated_ext_header", six[:44]),
        ("v6_fixed_header_only", six[:40]),
        ("empty", b""),
        ("garbage", b"\x45\xff\x00"),
    ]
    frags = IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=0) / TCP(sport=1, dport=2) / Raw(b"A" * 24)
    cases.append(("v4_first_fragment", flip(bytes(frags), 20 + 16)))
    frag6 = v6(b"B" * 24, IPv6ExtHdrFragment(m=1, offset=0, id=9))
    cases.append(("v6_first_fragment", flip(bytes(frag6), 48 + 16)))
    udp = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"u"))
    cases.append(("udp_bad_checksum", flip(udp, 26)))
    # a jumbogram (payload length 0 with data after the header) is not judged
    jumbo = bytearray(bytes(v6(b"j")))
    jumbo[4:6] = b"\x00\x00"
    cases.append(("v6_jumbogram", bytes(jumbo)))
    return cases


INCOMPLETE = _incomplete()


@pytest.mark.parametrize("raw", [c[1] for c in INCOMPLETE], ids=[c[0] for c in INCOMPLETE])
def test_incomplete_is_true(raw: bytes) -> None:
    assert ok(raw)


def test_first_fragment_is_a_piece() -> None:
    frags = IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP(sport=1, dport=2) / Raw(b"A" * 24)
    pkt = decode(bytes(frags), 0.0)
    assert pkt.frag == FRAG_PIECE and pkt.payload_offset > 0
