"""UDP decoding: fields against Scapy and the UDP length versus the buffer."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import decode
from inline_ips.packet import FRAG_PIECE, PROTO_UDP


def fragment(pkt: ScapyPacket, fragsize: int) -> list[ScapyPacket]:
    """Scapy's IPv4 ``fragment()``, typed."""
    return list(scapy_fragment(pkt, fragsize=fragsize))  # type: ignore[no-untyped-call]


def _ip() -> IP:
    return IP(src="172.16.0.1", dst="172.16.0.2")


CASES: list[tuple[str, ScapyPacket]] = [
    ("dns_v4", _ip() / UDP(sport=33333, dport=53) / DNS(rd=1, qd=DNSQR(qname="example.org"))),
    ("empty_v4", _ip() / UDP(sport=1, dport=2)),
    ("big_v4", _ip() / UDP(sport=4789, dport=4789) / Raw(b"v" * 1400)),
    ("dns_v6", IPv6(src="::1", dst="::2") / UDP(sport=5353, dport=5353) / DNS(qd=DNSQR(qname="a.local"))),
]


@pytest.mark.parametrize(("name", "scapy_pkt"), CASES, ids=[c[0] for c in CASES])
def test_fields_match_scapy(name: str, scapy_pkt: ScapyPacket) -> None:
    raw = bytes(scapy_pkt)
    pkt = decode(raw, 0.0)
    udp = (IPv6(raw) if raw[0] >> 4 == 6 else IP(raw))[UDP]
    assert pkt.error is None
    assert pkt.proto == PROTO_UDP
    assert (pkt.sport, pkt.dport, pkt.udp_len) == (udp.sport, udp.dport, udp.len)
    assert pkt.payload == bytes(udp.payload)
    assert pkt.payload_offset == pkt.l4_offset + 8


def test_udp_length_smaller_than_buffer_bounds_payload() -> None:
    raw = bytes(_ip() / UDP(sport=1, dport=2, len=8 + 3) / Raw(b"abcdef"))
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert pkt.udp_len == 11
    assert pkt.payload == b"abc"


def test_udp_length_larger_than_buffer() -> None:
    raw = bytes(_ip() / UDP(sport=1, dport=2, len=100) / Raw(b"abcdef"))
    pkt = decode(raw, 0.0)
    assert pkt.error == "udp_bad_length"
    assert pkt.udp_len == 100
    assert pkt.payload == b"abcdef"


@pytest.mark.parametrize("length", [0, 1, 7])
def test_udp_length_below_header(length: int) -> None:
    pkt = decode(bytes(_ip() / UDP(sport=1, dport=2, len=length) / Raw(b"abc")), 0.0)
    assert pkt.error == "udp_bad_length"
    assert (pkt.sport, pkt.dport) == (1, 2)
    assert pkt.payload == b""


@pytest.mark.parametrize("n", range(8))
def test_truncated_header(n: int) -> None:
    l4 = bytes(UDP(sport=1000, dport=2000, len=8))[:n]
    pkt = decode(bytes(_ip() / Raw(l4))[:9] + bytes([PROTO_UDP]) + bytes(_ip() / Raw(l4))[10:], 0.0)
    assert pkt.error == "udp_truncated"
    assert (pkt.sport, pkt.dport) == ((1000, 2000) if n >= 4 else (0, 0))


def test_first_fragment_length_is_not_an_error() -> None:
    first = fragment(_ip() / UDP(sport=9, dport=10) / Raw(b"q" * 3000), fragsize=1000)[0]
    pkt = decode(bytes(first), 0.0)
    assert pkt.frag == FRAG_PIECE
    assert pkt.error is None
    assert pkt.udp_len == 3008
    assert len(pkt.payload) == 1000 - 8
