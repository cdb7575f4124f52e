"""Decode one IP datagram's bytes into a :class:`~inline_ips.packet.Packet`.

Does: dispatch on the IP version nibble to :mod:`.ipv4` / :mod:`.ipv6`, then
on the upper-layer protocol to :mod:`.tcp`, :mod:`.udp` or :mod:`.icmp`, using
``struct`` and int operations only (this is the per-packet hot path; Scapy is
far too slow here). :func:`decode` never raises: problems are reported in
``Packet.error`` as one of :data:`DECODE_ERRORS`, and whatever was decoded
before the problem is kept. For a protocol other than TCP/UDP/ICMP/ICMPv6 the
payload is everything after the IP (and extension) headers; ESP, IPv6 "no next
header" and non-first fragments get no L4 fields and no payload.

Does not: handle link-layer headers (NFQUEUE delivers bare IP datagrams),
verify checksums, reassemble fragments (:mod:`.defrag` does, and the engine
decodes the result again), or parse application protocols.
"""

from __future__ import annotations

from typing import Final

from inline_ips.decode import icmp, ipv4, ipv6, tcp, udp
from inline_ips.decode.icmp import decode_icmp, decode_icmpv6
from inline_ips.decode.ipv4 import decode_ipv4
from inline_ips.decode.ipv6 import decode_ipv6
from inline_ips.decode.tcp import decode_tcp
from inline_ips.decode.udp import decode_udp
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet

__all__ = ["DECODE_ERRORS", "decode", "decode_l4"]

EMPTY: Final = "empty"
VERSION_UNKNOWN: Final = "ip_version_unknown"
# Set only if a decoder has a bug; the fuzz tests assert it never appears.
INTERNAL_ERROR: Final = "internal_error"

DECODE_ERRORS: Final[tuple[str, ...]] = (
    EMPTY,
    VERSION_UNKNOWN,
    *ipv4.ERRORS,
    *ipv6.ERRORS,
    *tcp.ERRORS,
    *udp.ERRORS,
    *icmp.ERRORS,
    INTERNAL_ERROR,
)


def decode(raw: bytes, ts: float) -> Packet:
    """Decode the IP datagram ``raw`` seen at time ``ts``; never raises."""
    if raw.__class__ is not bytes:
        # Payload slices must be immutable bytes, whatever the source hands us.
        raw = bytes(raw)
    pkt = Packet(raw, ts)
    try:
        if not raw:
            pkt.error = EMPTY
            return pkt
        version = raw[0] >> 4
        if version == 4:
            pkt.ip_version = 4
            if not decode_ipv4(pkt, raw):
                return pkt
        elif version == 6:
            pkt.ip_version = 6
            if not decode_ipv6(pkt, raw):
                return pkt
        else:
            pkt.error = VERSION_UNKNOWN
            return pkt
        # decode_l4 inlined: one call less on every packet.
        proto = pkt.proto
        raw = pkt.raw
        if proto == PROTO_TCP:
            decode_tcp(pkt, raw, pkt.l4_offset)
        elif proto == PROTO_UDP:
            decode_udp(pkt, raw, pkt.l4_offset)
        elif proto == PROTO_ICMP:
            decode_icmp(pkt, raw, pkt.l4_offset)
        elif proto == PROTO_ICMPV6:
            decode_icmpv6(pkt, raw, pkt.l4_offset)
        else:
            off = pkt.l4_offset
            pkt.payload_offset = off
            pkt.payload = raw[off:]
    except Exception:  # an inline engine must not die on one odd packet
        pkt.error = INTERNAL_ERROR
    return pkt


def decode_l4(pkt: Packet) -> None:
    """(Re)decode the L4 header of ``pkt`` from ``pkt.raw`` at ``pkt.l4_offset``.

    Dispatches on ``pkt.proto``; overwrites the L4 fields it decodes and keeps
    an earlier ``pkt.error``. Never raises.
    """
    raw = pkt.raw
    off = pkt.l4_offset
    proto = pkt.proto
    try:
        if proto == PROTO_TCP:
            decode_tcp(pkt, raw, off)
        elif proto == PROTO_UDP:
            decode_udp(pkt, raw, off)
        elif proto == PROTO_ICMP:
            decode_icmp(pkt, raw, off)
        elif proto == PROTO_ICMPV6:
            decode_icmpv6(pkt, raw, off)
        elif 0 <= off <= len(raw):
            pkt.payload_offset = off
            pkt.payload = raw[off:]
    except Exception:
        pkt.error = INTERNAL_ERROR
