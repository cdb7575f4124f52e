"""TCP header decoding straight from bytes.

Does: ports, sequence and acknowledgement numbers, data offset (validated),
the eight flag bits, window, urgent pointer, the payload slice and its
absolute offset, and the MSS option (kind 2). The option walk is bounded by
the header length and stops at the first malformed option
(``tcp_bad_option``), keeping everything decoded before it.

Does not: verify the checksum, track streams or sequence space, interpret
options other than MSS (window scale, SACK, timestamps are only skipped), or
read the NS bit.
"""

from __future__ import annotations

import struct
from typing import Final

from inline_ips.packet import Packet

TRUNCATED: Final = "tcp_truncated"
BAD_OFFSET: Final = "tcp_bad_offset"
BAD_OPTION: Final = "tcp_bad_option"

ERRORS: Final[tuple[str, ...]] = (TRUNCATED, BAD_OFFSET, BAD_OPTION)

MIN_HEADER_LEN: Final = 20

OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2

# sport, dport, seq, ack, data offset, flags, window, checksum, urgent pointer
_HDR: Final = struct.Struct("!HHIIBBHHH")
_PORTS: Final = struct.Struct("!HH")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
# NOP, NOP, timestamp(len 10): what Linux puts on nearly every segment.
_NOP_NOP_TS: Final = 0x0101080A


def decode_tcp(pkt: Packet, raw: bytes, off: int) -> None:
    """Fill ``pkt``'s TCP fields from the header at ``raw[off:]``."""
    n = len(raw)
    if n - off < MIN_HEADER_LEN:
        if n - off >= 4:
            pkt.sport, pkt.dport = _PORTS.unpack_from(raw, off)
        if pkt.error is None:
            pkt.error = TRUNCATED
        return
    sport, dport, seq, ack, doff, flags, win, _csum, urp = _HDR.unpack_from(raw, off)
    pkt.sport = sport
    pkt.dport = dport
    pkt.tcp_seq = seq
    pkt.tcp_ack = ack
    pkt.tcp_flags = flags
    pkt.tcp_win = win
    pkt.tcp_urp = urp
    hlen = (doff >> 4) << 2
    if hlen < MIN_HEADER_LEN or off + hlen > n:
        if pkt.error is None:
            pkt.error = BAD_OFFSET
        return
    start = off + hlen
    pkt.payload_offset = start
    pkt.payload = raw[start:]
    if hlen == MIN_HEADER_LEN or (hlen == 32 and _U32.unpack_from(raw, off + 20)[0] == _NOP_NOP_TS):
        return
    _options(pkt, raw, off + MIN_HEADER_LEN, start)


def _options(pkt: Packet, raw: bytes, i: int, end: int) -> None:
    # Every iteration advances i by at least one byte, so the walk ends.
    while i < end:
        kind = raw[i]
        if kind <= OPT_NOP:  # one test for the two single-byte kinds
            if kind == OPT_EOL:
                return
            i += 1
            continue
        if i + 1 == end:
            break
        length = raw[i + 1]
        if length < 2 or i + length > end:
            break
        if kind == OPT_MSS:
            if length != 4:
                break
            pkt.tcp_mss = _U16.unpack_from(raw, i + 2)[0]
        i += length
    else:
        return
    if pkt.error is None:
        pkt.error = BAD_OPTION
