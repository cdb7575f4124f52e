"""IPv4 header decoding straight from bytes.

Does: the fixed 20-byte header (version/IHL, TOS, total length, id, flags and
fragment offset, TTL, protocol, addresses as ints), skipping options by IHL;
trims Ethernet padding beyond the total length; marks fragments
(``FRAG_PIECE``, offset in bytes, MF flag) and says whether the L4 header may
be decoded (only for non-fragments and first fragments).

Does not: verify the header checksum (the kernel has done so before NFQUEUE
hands us the packet), interpret options, reassemble fragments (see
:mod:`inline_ips.decode.defrag`) or decode L4 itself (the caller dispatches).
"""

from __future__ import annotations

import struct
from typing import Final

from inline_ips.packet import FRAG_PIECE, Packet

TRUNCATED: Final = "ipv4_truncated"
BAD_IHL: Final = "ipv4_bad_ihl"
BAD_TOTAL_LENGTH: Final = "ipv4_bad_total_length"
FRAG_TOO_BIG: Final = "ipv4_frag_too_big"

ERRORS: Final[tuple[str, ...]] = (TRUNCATED, BAD_IHL, BAD_TOTAL_LENGTH, FRAG_TOO_BIG)

MIN_HEADER_LEN: Final = 20
MAX_DATAGRAM_LEN: Final = 65535

FLAG_DF: Final = 0x4000
FLAG_MF: Final = 0x2000
OFFSET_MASK: Final = 0x1FFF

# version/IHL, TOS, total length, id, flags/offset, TTL, proto, checksum, src, dst
HEADER: Final = struct.Struct("!BBHHHBBHII")


def decode_ipv4(pkt: Packet, raw: bytes) -> bool:
    """Fill ``pkt``'s IPv4 fields from ``raw``; return True if L4 should be decoded.

    ``pkt.raw`` is replaced by a copy trimmed to the total length when the
    buffer is longer. A total length beyond the buffer sets ``ipv4_truncated``
    but still returns True, so what is there of the L4 header is decoded.
    """
    n = len(raw)
    if n < MIN_HEADER_LEN:
        pkt.error = TRUNCATED
        return False
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = HEADER.unpack_from(raw)
    pkt.tos = tos
    pkt.ip_len = total
    pkt.ip_id = ident
    pkt.ttl = ttl
    pkt.proto = proto
    pkt.src = src
    pkt.dst = dst
    hlen = (vihl & 0x0F) << 2
    if hlen < MIN_HEADER_LEN:
        pkt.error = BAD_IHL
        return False
    if total < hlen:
        pkt.error = BAD_TOTAL_LENGTH
        return False
    if hlen > n:
        pkt.error = TRUNCATED
        return False
    pkt.l4_offset = hlen
    if total < n:
        # Ethernet pads short frames to 60 bytes; the pad is not part of the
        # datagram and must not reach payload matching.
        pkt.raw = raw[:total]
    elif total > n:
        pkt.error = TRUNCATED
    if frag & 0x3FFF:  # MF set or a non-zero offset; DF alone is not a fragment
        offset = (frag & OFFSET_MASK) << 3
        pkt.frag = FRAG_PIECE
        pkt.frag_offset = offset
        pkt.more_frags = bool(frag & FLAG_MF)
        if offset:
            # "Ping of death": the reassembled datagram could not be represented.
            if offset + total - hlen > MAX_DATAGRAM_LEN and pkt.error is None:
                pkt.error = FRAG_TOO_BIG
            return False
    return True


def header_checksum(header: bytes | bytearray) -> int:
    """The Internet checksum of an IPv4 header whose checksum field is zero."""
    total: int = sum(struct.unpack_from(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
