"""UDP header decoding straight from bytes.

Does: ports, the UDP length field (``udp_len``) and the payload slice with its
absolute offset. The payload is bounded by the UDP length when that is
shorter than the datagram (trailing bytes are ignored, as the kernel does).
A UDP length beyond the datagram is ``udp_bad_length`` -- except in a first
fragment, where it legitimately covers data still to come.

Does not: verify the checksum, or handle UDP-Lite / jumbogram (length 0)
semantics.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from inline_ips.packet import FRAG_PIECE, Packet

TRUNCATED: Final = "udp_truncated"
BAD_LENGTH: Final = "udp_bad_length"

ERRORS: Final[tuple[str, ...]] = (TRUNCATED, BAD_LENGTH)

HEADER_LEN: Final = 8

# sport, dport, length, checksum
_HDR: Final = Struct("!HHHH")
_PORTS: Final = Struct("!HH")


def decode_udp(pkt: Packet, raw: bytes, off: int) -> None:
    """Fill ``pkt``'s UDP fields from the header at ``raw[off:]``."""
    avail = len(raw) - off
    if avail < HEADER_LEN:
        if avail >= 4:
            pkt.sport, pkt.dport = _PORTS.unpack_from(raw, off)
        if pkt.error is None:
            pkt.error = TRUNCATED
        return
    sport, dport, length, _csum = _HDR.unpack_from(raw, off)
    pkt.sport = sport
    pkt.dport = dport
    pkt.udp_len = length
    if length < HEADER_LEN:
        if pkt.error is None:
            pkt.error = BAD_LENGTH
        return
    start = off + HEADER_LEN
    pkt.payload_offset = start
    if length < avail:
        pkt.payload = raw[start : off + length]
        return
    pkt.payload = raw[start:]
    if length > avail and pkt.error is None and pkt.frag != FRAG_PIECE:
        pkt.error = BAD_LENGTH
