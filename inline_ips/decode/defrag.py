"""Bounded IPv4/IPv6 fragment reassembly.

Does: collect decoded ``FRAG_PIECE`` packets per datagram, keyed by
``(version, src, dst, proto, id)`` (proto is 0 for IPv6: like Linux, the
target host, IPv6 reassembly ignores the next-header value), and return the
rebuilt datagram's bytes once every byte from offset 0 to the end of the last
fragment is there. IPv4 gets the first fragment's header (options included)
with MF and offset cleared, DF kept, total length and checksum recomputed.
IPv6 gets the first fragment's unfragmentable part with the fragment header
removed, the preceding Next Header rewritten and the payload length fixed.

Overlaps: the data that arrived first wins; later bytes for an already-filled
range are dropped and counted (``overlaps``, or ``duplicates`` when the
fragment repeats exactly what is held). Note that current Linux discards the
whole datagram on a (non-duplicate) overlap instead; the counter lets the
engine treat overlaps as the evasion signal they usually are.

Bounds: at most ``max_datagrams`` datagrams in progress (the oldest is
evicted), ``timeout`` seconds from the first fragment (expired lazily on each
call, amortised O(1)), ``max_datagram_bytes`` per datagram and
``max_fragments_per_datagram`` fragments per datagram. A datagram that breaks
a bound is discarded and remembered as dead until it expires or is evicted,
so its remaining fragments cannot rebuild a partial one. Time comes only from
``Packet.ts``.

Does not: decode the result (the engine calls ``decode`` on it and marks it
``FRAG_REASSEMBLED``), verify checksums, or emit alerts itself.
"""

from __future__ import annotations

import struct
from bisect import insort
from collections import OrderedDict
from typing import Final

from inline_ips.decode.ipv4 import (
    FLAG_DF,
    FLAG_MF,
    MAX_DATAGRAM_LEN,
    MIN_HEADER_LEN,
    OFFSET_MASK,
    header_checksum,
)
from inline_ips.decode.ipv6 import FRAGMENT, HEADER_LEN, MAX_PAYLOAD_LEN, find_fragment_header
from inline_ips.packet import FRAG_PIECE, Packet

STAT_KEYS: Final[tuple[str, ...]] = (
    "fragments",  # pieces fed
    "reassembled",  # datagrams completed
    "evicted",  # in-progress datagrams dropped because max_datagrams was reached
    "expired",  # in-progress datagrams dropped after timeout
    "too_big",  # datagrams discarded for exceeding max_datagram_bytes
    "too_many_fragments",  # datagrams discarded for exceeding max_fragments_per_datagram
    "overlaps",  # fragments overlapping data already held (not exact duplicates)
    "duplicates",  # fragments repeating exactly data already held
    "inconsistent",  # fragments disagreeing about where the datagram ends
    "malformed",  # pieces whose headers do not allow reassembly (truncated, ...)
    "dead",  # pieces dropped because their datagram was already discarded
)

_U16: Final = struct.Struct("!H")


class _Datagram:
    """One datagram being reassembled."""

    __slots__ = (
        "count",
        "dead",
        "first_ts",
        "header",
        "next_header",
        "nh_field",
        "pieces",
        "received",
        "total",
    )

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        # (start, end, data), sorted by start and never overlapping.
        self.pieces: list[tuple[int, int, bytes]] = []
        self.received = 0  # bytes held, == sum of piece lengths
        self.total = -1  # end of the last fragment, once it has arrived
        self.header = b""  # IPv4 header / IPv6 unfragmentable part of the first fragment
        self.nh_field = 0  # IPv6: offset in header of the byte that said 44
        self.next_header = 0  # IPv6: Next Header from the first fragment's fragment header
        self.count = 0
        self.dead = False


class Defragmenter:
    """Reassemble fragmented IP datagrams within fixed memory and time bounds."""

    def __init__(
        self,
        max_datagrams: int = 4096,
        max_datagram_bytes: int = 65535,
        timeout: float = 30.0,
        max_fragments_per_datagram: int = 256,
    ) -> None:
        self.max_datagrams = max(1, max_datagrams)
        self.max_datagram_bytes = max_datagram_bytes
        self.timeout = timeout
        self.max_fragments_per_datagram = max_fragments_per_datagram
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        # Insertion order is first-seen order, so the oldest is always first.
        self._pending: OrderedDict[tuple[int, int, int, int, int], _Datagram] = OrderedDict()

    def __len__(self) -> int:
        """Datagrams currently held (in progress or dead)."""
        return len(self._pending)

    def expire(self, now: float) -> None:
        """Drop datagrams first seen more than ``timeout`` seconds before ``now``."""
        pending = self._pending
        limit = now - self.timeout
        while pending:
            key = next(iter(pending))
            entry = pending[key]
            if entry.first_ts >= limit:
                return
            del pending[key]
            if not entry.dead:
                self.stats["expired"] += 1

    def feed(self, pkt: Packet) -> bytes | None:
        """Add one fragment; return the whole datagram's bytes when it completes."""
        if pkt.frag != FRAG_PIECE:
            return None
        stats = self.stats
        stats["fragments"] += 1
        self.expire(pkt.ts)
        raw = pkt.raw
        n = len(raw)
        nh_field = next_header = 0
        if pkt.ip_version == 4:
            # Re-derive lengths from the bytes: a truncated piece must not count.
            hlen = (raw[0] & 0x0F) << 2 if n >= MIN_HEADER_LEN else 0
            if hlen < MIN_HEADER_LEN or hlen > n or _U16.unpack_from(raw, 2)[0] != n:
                stats["malformed"] += 1
                return None
            fo = _U16.unpack_from(raw, 6)[0]
            offset = (fo & OFFSET_MASK) << 3
            more = bool(fo & FLAG_MF)
            key = (4, pkt.src, pkt.dst, pkt.proto, pkt.ip_id)
            limit = min(self.max_datagram_bytes, MAX_DATAGRAM_LEN)
        elif pkt.ip_version == 6:
            loc = None
            if n >= HEADER_LEN and HEADER_LEN + _U16.unpack_from(raw, 4)[0] == n:
                loc = find_fragment_header(raw)
            if loc is None:
                stats["malformed"] += 1
                return None
            nh_field, hlen = loc
            next_header, fo, ident = FRAGMENT.unpack_from(raw, hlen)
            hlen += 8
            offset = fo & 0xFFF8
            more = bool(fo & 1)
            key = (6, pkt.src, pkt.dst, 0, ident)
            # Payload length is 16 bits whatever max_datagram_bytes says.
            limit = min(self.max_datagram_bytes, HEADER_LEN + MAX_PAYLOAD_LEN)
        else:
            stats["malformed"] += 1
            return None

        data = raw[hlen:]
        if more and len(data) & 7:
            # Non-last fragments carry multiples of 8 bytes; trim like Linux.
            data = data[: len(data) & ~7]
        start = offset
        end = offset + len(data)

        pending = self._pending
        entry = pending.get(key)
        if entry is None:
            if len(pending) >= self.max_datagrams:
                _, old = pending.popitem(last=False)
                if not old.dead:
                    stats["evicted"] += 1
            entry = pending[key] = _Datagram(pkt.ts)
        if entry.dead:
            stats["dead"] += 1
            return None
        entry.count += 1
        if entry.count > self.max_fragments_per_datagram:
            stats["too_many_fragments"] += 1
            self._kill(entry)
            return None
        if (hlen - 8 if pkt.ip_version == 6 else hlen) + end > limit:
            stats["too_big"] += 1
            self._kill(entry)
            return None

        if offset == 0 and not entry.header:
            if pkt.ip_version == 6:
                entry.header = raw[: hlen - 8]
                entry.nh_field = nh_field
                entry.next_header = next_header
            else:
                entry.header = raw[:hlen]
        if not more:
            if entry.total < 0:
                if entry.pieces and entry.pieces[-1][1] > end:
                    stats["inconsistent"] += 1
                    self._kill(entry)
                    return None
                entry.total = end
            elif entry.total != end:
                stats["inconsistent"] += 1
                return None
        elif entry.total >= 0 and end > entry.total:
            stats["inconsistent"] += 1
            end = entry.total
            data = data[: max(0, end - start)]
        if end > start:
            self._insert(entry, start, end, data)

        if entry.received == entry.total and entry.header:
            del pending[key]
            stats["reassembled"] += 1
            return self._build(entry, pkt.ip_version)
        return None

    def _kill(self, entry: _Datagram) -> None:
        entry.dead = True
        entry.pieces = []
        entry.header = b""

    def _insert(self, entry: _Datagram, start: int, end: int, data: bytes) -> None:
        """Insert the parts of ``data`` not already held (first arrival wins)."""
        pos = start
        overlapped = same = False
        fresh: list[tuple[int, int, bytes]] = []
        for ps, pe, pdata in entry.pieces:
            if pe <= pos:
                continue
            if ps >= end:
                break
            if ps > pos:
                fresh.append((pos, ps, data[pos - start : ps - start]))
            # Compare the overlapped range so exact repeats can be told apart.
            lo = max(ps, pos)
            hi = min(pe, end)
            same = (not overlapped or same) and pdata[lo - ps : hi - ps] == data[lo - start : hi - start]
            overlapped = True
            pos = pe
            if pos >= end:
                break
        if pos < end:
            fresh.append((pos, end, data[pos - start :]))
        if overlapped:
            self.stats["duplicates" if same and not fresh else "overlaps"] += 1
        for piece in fresh:
            insort(entry.pieces, piece)
            entry.received += piece[1] - piece[0]

    def _build(self, entry: _Datagram, version: int) -> bytes:
        body = b"".join([p[2] for p in entry.pieces])
        header = bytearray(entry.header)
        if version == 4:
            hlen = len(header)
            _U16.pack_into(header, 2, hlen + len(body))
            _U16.pack_into(header, 6, _U16.unpack_from(header, 6)[0] & FLAG_DF)
            _U16.pack_into(header, 10, 0)
            _U16.pack_into(header, 10, header_checksum(header))
        else:
            header[entry.nh_field] = entry.next_header
            _U16.pack_into(header, 4, len(header) - HEADER_LEN + len(body))
        return bytes(header) + body
