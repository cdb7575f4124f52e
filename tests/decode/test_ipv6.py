"""IPv6 decoding, extension-header walking and fragments, checked against Scapy."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.inet6 import (
    fragment6 as scapy_fragment6,
)
from scapy.layers.ipsec import AH
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import DECODE_ERRORS, decode
from inline_ips.decode.ipv6 import MAX_EXT_HEADERS, find_fragment_header
from inline_ips.packet import FRAG_NONE, FRAG_PIECE, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet


def fragment6(pkt: ScapyPacket, mtu: int) -> list[ScapyPacket]:
    """Scapy's ``fragment6()``, typed."""
    return list(scapy_fragment6(pkt, mtu))  # type: ignore[no-untyped-call]


SRC, DST = "2001:db8::1", "2001:db8:ffff::abcd"


def _ip6(**kw: Any) -> IPv6:
    return IPv6(src=SRC, dst=DST, **kw)


def assert_ipv6_fields(pkt: Packet, raw: bytes) -> None:
    ip = IPv6(raw)
    assert pkt.ip_version == 6
    assert pkt.src == int(ipaddress.IPv6Address(ip.src))
    assert pkt.dst == int(ipaddress.IPv6Address(ip.dst))
    assert pkt.ttl == ip.hlim
    assert pkt.tos == ip.tc
    assert pkt.flow_label == ip.fl
    assert pkt.ip_len == 40 + ip.plen


def _l4_offset(scapy_pkt: ScapyPacket, layer: type[ScapyPacket]) -> int:
    # From the built packet: Scapy does not dissect past AH when re-parsing.
    return len(bytes(scapy_pkt)) - len(bytes(scapy_pkt[layer]))


CHAIN_CASES: list[tuple[str, ScapyPacket, int, type[ScapyPacket]]] = [
    ("plain_tcp", _ip6(tc=0xB8, fl=0x12345, hlim=3) / TCP(sport=1, dport=443) / Raw(b"d"), PROTO_TCP, TCP),
    ("plain_udp", _ip6() / UDP(sport=53, dport=53) / Raw(b"q" * 20), PROTO_UDP, UDP),
    ("hbh", _ip6() / IPv6ExtHdrHopByHop() / TCP(sport=2, dport=3), PROTO_TCP, TCP),
    (
        "hbh_rt_dst",
        _ip6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::5", "2001:db8::6"])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=4, dport=5)
        / Raw(b"chain"),
        PROTO_UDP,
        UDP,
    ),
    ("ah", _ip6() / AH(nh=6, payloadlen=4, icv=b"\x00" * 12) / TCP(sport=6, dport=7), PROTO_TCP, TCP),
    (
        "dst_ah_dst",
        _ip6()
        / IPv6ExtHdrDestOpt()
        / AH(nh=60, payloadlen=4, icv=b"\x11" * 12)
        / IPv6ExtHdrDestOpt(nh=58)
        / ICMPv6EchoRequest(id=1, seq=2),
        PROTO_ICMPV6,
        ICMPv6EchoRequest,
    ),
    (
        "atomic_fragment",
        _ip6() / IPv6ExtHdrFragment(offset=0, m=0, id=77) / TCP(sport=8, dport=9) / Raw(b"atomic"),
        PROTO_TCP,
        TCP,
    ),
]


@pytest.mark.parametrize(
    ("name", "scapy_pkt", "proto", "layer"), CHAIN_CASES, ids=[c[0] for c in CHAIN_CASES]
)
def test_extension_chain(name: str, scapy_pkt: ScapyPacket, proto: int, layer: type[ScapyPacket]) -> None:
    raw = bytes(scapy_pkt)
    pkt = decode(raw, 2.0)
    assert pkt.error is None, name
    assert pkt.frag == FRAG_NONE
    assert_ipv6_fields(pkt, raw)
    assert pkt.proto == proto
    assert pkt.l4_offset == _l4_offset(scapy_pkt, layer)
    l4 = scapy_pkt[layer]
    if proto == PROTO_TCP:
        assert (pkt.sport, pkt.dport) == (l4.sport, l4.dport)
        assert pkt.payload == bytes(l4.payload)
    elif proto == PROTO_UDP:
        assert (pkt.sport, pkt.dport, pkt.udp_len) == (l4.sport, l4.dport, len(bytes(l4)))
        assert pkt.payload == bytes(l4.payload)
    else:
        assert (pkt.icmp_type, pkt.icmp_id, pkt.icmp_seq) == (128, 1, 2)


@pytest.mark.parametrize(("name", "scapy_pkt", "_p", "_l"), CHAIN_CASES, ids=[c[0] for c in CHAIN_CASES])
def test_truncation_at_every_length(name: str, scapy_pkt: ScapyPacket, _p: int, _l: object) -> None:
    raw = bytes(scapy_pkt)
    for n in range(len(raw)):
        pkt = decode(raw[:n], 0.0)
        assert isinstance(pkt, Packet)
        assert pkt.error in DECODE_ERRORS, (name, n)
        assert pkt.error != "internal_error"


def test_mobility_header_then_no_next() -> None:
    mh = bytes([59, 1, 0, 0]) + b"\x00" * 12  # payload proto 59, 16 bytes
    raw = bytes(_ip6(nh=135) / Raw(mh))
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert pkt.proto == 59
    assert pkt.l4_offset == 56
    assert pkt.payload == b""


@pytest.mark.parametrize("nh", [50, 59])
def test_walk_stops_at_esp_and_no_next(nh: int) -> None:
    raw = bytes(_ip6() / IPv6ExtHdrDestOpt(nh=nh) / Raw(b"\x00\x00\x01\x00opaque--"))
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert pkt.proto == nh
    assert pkt.l4_offset == 48
    assert pkt.sport == 0
    assert pkt.payload == b""


def test_too_many_extension_headers() -> None:
    chain: ScapyPacket = _ip6()
    for _ in range(MAX_EXT_HEADERS + 1):
        chain = chain / IPv6ExtHdrDestOpt()
    raw = bytes(chain / TCP(sport=1, dport=2))
    pkt = decode(raw, 0.0)
    assert pkt.error == "ipv6_too_many_ext_headers"
    assert pkt.sport == 0


def test_exactly_max_extension_headers_is_fine() -> None:
    chain: ScapyPacket = _ip6()
    for _ in range(MAX_EXT_HEADERS):
        chain = chain / IPv6ExtHdrDestOpt()
    pkt = decode(bytes(chain / TCP(sport=1, dport=2)), 0.0)
    assert pkt.error is None
    assert (pkt.proto, pkt.sport, pkt.dport) == (PROTO_TCP, 1, 2)


def test_extension_header_past_end() -> None:
    # A destination-options header claiming 8 * (1 + 5) bytes where 16 are present.
    raw = bytes(_ip6(nh=60) / Raw(bytes([6, 5]) + b"\x00" * 14))
    pkt = decode(raw, 0.0)
    assert pkt.error == "ipv6_ext_truncated"
    assert pkt.proto == 60


def test_padding_is_trimmed_and_truncation_flagged() -> None:
    raw = bytes(_ip6() / UDP(sport=1, dport=2) / Raw(b"abc"))
    padded = decode(raw + b"\x00" * 10, 0.0)
    assert padded.error is None
    assert padded.raw == raw
    assert padded.payload == b"abc"
    cut = decode(raw[:-2], 0.0)
    assert cut.error == "ipv6_truncated"
    assert (cut.sport, cut.dport) == (1, 2)


def test_jumbogram_is_flagged() -> None:
    raw = bytes(_ip6(plen=0) / UDP(sport=1, dport=2) / Raw(b"abc"))
    pkt = decode(raw, 0.0)
    assert pkt.error == "ipv6_jumbogram"
    assert (pkt.sport, pkt.dport) == (1, 2)


def test_fragments() -> None:
    orig = (
        _ip6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrFragment(id=0xDEADBEEF)
        / TCP(sport=7, dport=8)
        / Raw(b"z" * 3000)
    )
    frags = fragment6(orig, 1280)
    assert len(frags) == 3
    for i, f in enumerate(frags):
        raw = bytes(f)
        fh = f[IPv6ExtHdrFragment]
        pkt = decode(raw, 0.0)
        assert pkt.error is None
        assert_ipv6_fields(pkt, raw)
        assert pkt.frag == FRAG_PIECE
        assert pkt.frag_offset == fh.offset * 8
        assert pkt.more_frags == bool(fh.m)
        assert pkt.ip_id == 0xDEADBEEF
        assert pkt.proto == PROTO_TCP
        assert pkt.l4_offset == 56
        assert find_fragment_header(raw) == (40, 48)
        if i == 0:
            assert (pkt.sport, pkt.dport) == (7, 8)
        else:
            assert (pkt.sport, pkt.dport, pkt.payload) == (0, 0, b"")


def test_find_fragment_header_absent() -> None:
    assert find_fragment_header(bytes(_ip6() / IPv6ExtHdrDestOpt() / TCP())) is None
    assert find_fragment_header(b"\x60" + b"\x00" * 10) is None
