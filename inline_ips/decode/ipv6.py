"""IPv6 header and extension-header-chain decoding straight from bytes.

Does: the fixed 40-byte header (traffic class into ``tos``, flow label,
payload length, hop limit into ``ttl``, addresses as 128-bit ints); trims
Ethernet padding beyond the payload length; walks at most
:data:`MAX_EXT_HEADERS` extension headers (hop-by-hop, routing, destination
options, fragment, AH, mobility, HIP, shim6) to find the upper-layer protocol
and its offset; marks fragments (``FRAG_PIECE``, offset, M flag, 32-bit id).
Atomic fragments (offset 0, M=0; RFC 6946) are walked through and treated as
ordinary datagrams.

Does not: interpret option contents (no jumbograms: payload length 0 with data
following is reported as ``ipv6_jumbogram``), validate header order (e.g.
hop-by-hop first), look inside ESP, reassemble fragments or decode L4.
"""

from __future__ import annotations

import struct
from typing import Final

from inline_ips.packet import FRAG_PIECE, Packet

TRUNCATED: Final = "ipv6_truncated"
JUMBOGRAM: Final = "ipv6_jumbogram"
EXT_TRUNCATED: Final = "ipv6_ext_truncated"
TOO_MANY_EXT: Final = "ipv6_too_many_ext_headers"

ERRORS: Final[tuple[str, ...]] = (TRUNCATED, JUMBOGRAM, EXT_TRUNCATED, TOO_MANY_EXT)

HEADER_LEN: Final = 40
MAX_PAYLOAD_LEN: Final = 65535
# Real traffic carries a handful at most; the cap bounds work per packet.
MAX_EXT_HEADERS: Final = 8

NH_HOPOPTS: Final = 0
NH_ROUTING: Final = 43
NH_FRAGMENT: Final = 44
NH_ESP: Final = 50
NH_AH: Final = 51
NH_NONE: Final = 59
NH_DSTOPTS: Final = 60
NH_MOBILITY: Final = 135

# Headers whose layout is (next header, length, ...) and can be skipped over.
EXT_HEADERS: Final = frozenset(
    {NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_AH, NH_DSTOPTS, NH_MOBILITY, 139, 140}
)
# Where the walk ends without an upper-layer header to decode.
_NO_L4: Final = frozenset({NH_ESP, NH_NONE})

# version/traffic class/flow label, payload length, next header, hop limit
_FIXED: Final = struct.Struct("!IHBB")
# next header, reserved, offset/flags, identification
FRAGMENT: Final = struct.Struct("!BxHI")


def decode_ipv6(pkt: Packet, raw: bytes) -> bool:
    """Fill ``pkt``'s IPv6 fields from ``raw``; return True if L4 should be decoded.

    A payload length beyond the buffer sets ``ipv6_truncated`` and the walk
    continues on what is there.
    """
    n = len(raw)
    if n < HEADER_LEN:
        pkt.error = TRUNCATED
        return False
    word, plen, nh, hlim = _FIXED.unpack_from(raw)
    pkt.tos = (word >> 20) & 0xFF
    pkt.flow_label = word & 0xFFFFF
    pkt.ttl = hlim
    pkt.src = int.from_bytes(raw[8:24], "big")
    pkt.dst = int.from_bytes(raw[24:40], "big")
    end = HEADER_LEN + plen
    pkt.ip_len = end
    if end < n:
        if plen == 0:
            pkt.error = JUMBOGRAM
            end = n
        else:
            # Ethernet padding is not part of the datagram.
            raw = pkt.raw = raw[:end]
    elif end > n:
        pkt.error = TRUNCATED
        end = n

    off = HEADER_LEN
    count = 0
    while nh in EXT_HEADERS:
        if count == MAX_EXT_HEADERS:
            pkt.proto = nh
            pkt.l4_offset = off
            if pkt.error is None:
                pkt.error = TOO_MANY_EXT
            return False
        count += 1
        if nh == NH_FRAGMENT:
            if off + 8 > end:
                break
            nxt, fo, ident = FRAGMENT.unpack_from(raw, off)
            off += 8
            nh = nxt
            offset = fo & 0xFFF8
            if offset or fo & 1:
                pkt.frag = FRAG_PIECE
                pkt.frag_offset = offset
                pkt.more_frags = bool(fo & 1)
                pkt.ip_id = ident
                if offset:
                    # The rest is the middle of some header: nothing to walk.
                    pkt.proto = nh
                    pkt.l4_offset = off
                    return False
            continue
        if off + 2 > end:
            break
        hlen = (raw[off + 1] + 2) << 2 if nh == NH_AH else (raw[off + 1] + 1) << 3
        if off + hlen > end:
            break
        nh = raw[off]
        off += hlen
    else:
        pkt.proto = nh
        pkt.l4_offset = off
        return nh not in _NO_L4
    # An extension header runs past the end of the datagram.
    pkt.proto = nh
    pkt.l4_offset = off
    if pkt.error is None:
        pkt.error = EXT_TRUNCATED
    return False


def find_fragment_header(raw: bytes) -> tuple[int, int] | None:
    """Locate the fragment header in a complete IPv6 datagram.

    Returns ``(next_header_field_offset, fragment_header_offset)`` where the
    first is the offset of the byte that holds 44 (the value to rewrite when
    the fragment header is removed), or None if there is no well-formed
    fragment header within :data:`MAX_EXT_HEADERS` headers.
    """
    n = len(raw)
    if n < HEADER_LEN:
        return None
    nh_field = 6
    nh = raw[6]
    off = HEADER_LEN
    for _ in range(MAX_EXT_HEADERS):
        if nh == NH_FRAGMENT:
            return (nh_field, off) if off + 8 <= n else None
        if nh not in EXT_HEADERS or off + 2 > n:
            return None
        hlen = (raw[off + 1] + 2) << 2 if nh == NH_AH else (raw[off + 1] + 1) << 3
        nh_field = off
        nh = raw[off]
        off += hlen
    return None
