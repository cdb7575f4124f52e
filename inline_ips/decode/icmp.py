"""ICMP (IPv4) and ICMPv6 header decoding straight from bytes.

Does: type and code (set as soon as two bytes are there), identifier and
sequence number for echo request/reply, and the payload after the 8-byte
header with its absolute offset.

Does not: verify checksums, decode the IP header quoted inside error messages
(destination unreachable, time exceeded, ...), or parse ND/MLD/router
advertisement options.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Final

from inline_ips.packet import Packet

TRUNCATED: Final = "icmp_truncated"
V6_TRUNCATED: Final = "icmpv6_truncated"

ERRORS: Final[tuple[str, ...]] = (TRUNCATED, V6_TRUNCATED)

HEADER_LEN: Final = 8

ECHO_REPLY: Final = 0
ECHO_REQUEST: Final = 8
V6_ECHO_REQUEST: Final = 128
V6_ECHO_REPLY: Final = 129

# type, code, checksum, identifier, sequence
_HDR: Final = Struct("!BBHHH")
_ECHO: Final = frozenset({ECHO_REQUEST, ECHO_REPLY})
_V6_ECHO: Final = frozenset({V6_ECHO_REQUEST, V6_ECHO_REPLY})


def _make_decoder(echo_types: frozenset[int], truncated: str) -> Callable[[Packet, bytes, int], None]:
    """ICMPv4 and ICMPv6 share the header layout; each gets its own closure (no extra call per packet)."""

    def decode(pkt: Packet, raw: bytes, off: int) -> None:
        avail = len(raw) - off
        if avail < HEADER_LEN:
            if avail >= 2:
                pkt.icmp_type = raw[off]
                pkt.icmp_code = raw[off + 1]
            if pkt.error is None:
                pkt.error = truncated
            return
        itype, code, _csum, ident, seq = _HDR.unpack_from(raw, off)
        pkt.icmp_type = itype
        pkt.icmp_code = code
        if itype in echo_types:
            pkt.icmp_id = ident
            pkt.icmp_seq = seq
        start = off + HEADER_LEN
        pkt.payload_offset = start
        pkt.payload = raw[start:]

    return decode


decode_icmp = _make_decoder(_ECHO, TRUNCATED)
"""Fill ``pkt``'s ICMP fields from the ICMPv4 header at ``raw[off:]``."""

decode_icmpv6 = _make_decoder(_V6_ECHO, V6_TRUNCATED)
"""Fill ``pkt``'s ICMP fields from the ICMPv6 header at ``raw[off:]``."""
