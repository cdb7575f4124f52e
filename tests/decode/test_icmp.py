"""ICMP and ICMPv6 decoding: type, code, echo id/seq and payload against Scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import decode
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6


def _ip() -> IP:
    return IP(src="10.0.0.1", dst="10.0.0.2")


def _ip6() -> IPv6:
    return IPv6(src="fe80::1", dst="fe80::2")


@pytest.mark.parametrize(
    ("scapy_pkt", "expected", "payload"),
    [
        (_ip() / ICMP(type=8, id=0x1234, seq=7) / Raw(b"abcdefgh"), (8, 0, 0x1234, 7), b"abcdefgh"),
        (_ip() / ICMP(type=0, id=65535, seq=65535), (0, 0, 65535, 65535), b""),
        # Non-echo messages: id/seq stay 0, the quoted datagram is the payload.
        (
            _ip() / ICMP(type=3, code=3) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=1, dport=2),
            (3, 3, 0, 0),
            None,
        ),
        (_ip() / ICMP(type=11, code=0, unused=0xABCD), (11, 0, 0, 0), b""),
    ],
)
def test_icmp(scapy_pkt: ScapyPacket, expected: tuple[int, int, int, int], payload: bytes | None) -> None:
    itype, code, ident, seq = expected
    raw = bytes(scapy_pkt)
    pkt = decode(raw, 0.0)
    icmp = IP(raw)[ICMP]
    assert pkt.error is None
    assert pkt.proto == PROTO_ICMP
    assert (pkt.icmp_type, pkt.icmp_code) == (icmp.type, icmp.code) == (itype, code)
    assert (pkt.icmp_id, pkt.icmp_seq) == (ident, seq)
    assert pkt.payload == (bytes(icmp.payload) if payload is None else payload)
    assert pkt.payload_offset == 28


@pytest.mark.parametrize(
    ("scapy_pkt", "itype", "code", "ident", "seq"),
    [
        (_ip6() / ICMPv6EchoRequest(id=42, seq=1, data=b"ping6"), 128, 0, 42, 1),
        (_ip6() / ICMPv6EchoReply(id=43, seq=2, data=b"pong6"), 129, 0, 43, 2),
        (_ip6() / ICMPv6DestUnreach(code=4) / IPv6() / UDP(), 1, 4, 0, 0),
        (_ip6() / ICMPv6ND_NS(tgt="fe80::2"), 135, 0, 0, 0),
    ],
)
def test_icmpv6(scapy_pkt: ScapyPacket, itype: int, code: int, ident: int, seq: int) -> None:
    raw = bytes(scapy_pkt)
    pkt = decode(raw, 0.0)
    assert pkt.error is None
    assert pkt.proto == PROTO_ICMPV6
    assert (pkt.icmp_type, pkt.icmp_code, pkt.icmp_id, pkt.icmp_seq) == (itype, code, ident, seq)
    assert pkt.payload == raw[48:]
    if itype in (128, 129):
        assert pkt.payload == bytes(scapy_pkt.data)


def test_icmp_absent_defaults() -> None:
    pkt = decode(bytes(_ip() / UDP()), 0.0)
    assert (pkt.icmp_type, pkt.icmp_code) == (-1, -1)


@pytest.mark.parametrize("n", range(8))
@pytest.mark.parametrize("version", [4, 6])
def test_truncated(version: int, n: int) -> None:
    if version == 4:
        full = bytes(_ip() / ICMP(type=8, code=0, id=1, seq=2))
        hdr = 20
    else:
        full = bytes(_ip6() / ICMPv6EchoRequest(id=1, seq=2))
        hdr = 40
    raw = bytearray(full[: hdr + n])
    if version == 4:
        raw[2:4] = len(raw).to_bytes(2, "big")
    else:
        raw[4:6] = n.to_bytes(2, "big")
    pkt = decode(bytes(raw), 0.0)
    assert pkt.error == ("icmp_truncated" if version == 4 else "icmpv6_truncated")
    if n >= 2:
        assert pkt.icmp_type == (8 if version == 4 else 128)
        assert pkt.icmp_code == 0
    else:
        assert pkt.icmp_type == -1
    assert (pkt.icmp_id, pkt.icmp_seq) == (0, 0)
