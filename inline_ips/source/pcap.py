"""Read IP datagrams from pcap and pcapng capture files, without Scapy.

:class:`PcapReader` walks a capture file record by record and yields
``(timestamp, ip_bytes)`` for every frame that carries IPv4 or IPv6, with the
link layer stripped. It understands:

* classic pcap, either byte order, microsecond and nanosecond magic;
* pcapng: section header blocks of either byte order (a file may hold several
  sections), interface description blocks with their own link type and the
  ``if_tsresol`` / ``if_tsoffset`` options, enhanced, simple and obsolete packet
  blocks; every other block type is skipped;
* link types Ethernet (1, with stacked 802.1Q / 802.1ad VLAN tags), Linux SLL
  (113) and SLL2 (276), raw IP (101, 12, 14, 228, 229), BSD loopback (0) and
  OpenBSD loopback (108).

Frames that are not IP (ARP, LLDP, ...) are skipped and counted. Trailing
bytes after the IP datagram (Ethernet padding, a captured FCS) are cut using
the IP header's length field, so replayed datagrams have the same bytes an
NFQUEUE verdict would see; that peek at the IP length is the only thing read
beyond the link layer. A last record cut short by the end of the file ends the
iteration cleanly and is counted in ``truncated``; a file that is not a
capture, or whose structure is corrupt, raises :class:`PcapError`.

It does not write captures, does not filter (no BPF), does not decode IP or
anything above it, does not reassemble fragments and does not sort records by
time: records come out in file order.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeAlias

__all__ = ["PcapError", "PcapReader", "read_ip_packets"]

# Classic pcap magic numbers, as read with a little-endian unpack.
_PCAP_US_LE = 0xA1B2C3D4
_PCAP_US_BE = 0xD4C3B2A1
_PCAP_NS_LE = 0xA1B23C4D
_PCAP_NS_BE = 0x4D3CB2A1
# pcapng: the section header block type is a byte palindrome, so it reads the
# same in both orders; the byte-order magic that follows tells the order.
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_BLOCK_IDB = 1
_BLOCK_PB = 2  # obsolete packet block
_BLOCK_SPB = 3
_BLOCK_EPB = 6

_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

# A record claiming more than this is corrupt, not big: refuse it rather than
# try to allocate gigabytes.
_MAX_RECORD = 256 * 1024 * 1024

_READ_BUFFER = 1 << 20

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12  # DLT_RAW on some BSDs
LINKTYPE_RAW_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_IP = (_ETH_IPV4, _ETH_IPV6)
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad, pre-standard QinQ

# Address family values in a loopback header: AF_INET is 2 everywhere, AF_INET6
# differs between Linux (10), NetBSD/OpenBSD (24), FreeBSD (28) and macOS (30).
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})

_Stripper: TypeAlias = Callable[[bytes], bytes | None]


class PcapError(Exception):
    """The file is not a capture this module can read, or its structure is corrupt."""


def _trim_ip(data: bytes, off: int) -> bytes | None:
    """The IP datagram starting at ``off``, without trailing link-layer bytes; None if not IP."""
    n = len(data) - off
    if n < 1:
        return None
    version = data[off] >> 4
    if version == 4:
        if n >= 4:
            total = (data[off + 2] << 8) | data[off + 3]
            # A zero total length comes from TSO captures on the sending host:
            # keep everything rather than cut the datagram to nothing.
            if 20 <= total < n:
                return data[off : off + total]
        return data[off:] if off else data
    if version == 6:
        if n >= 6:
            plen = (data[off + 4] << 8) | data[off + 5]
            # A zero payload length means a jumbogram: keep everything.
            if plen and 40 + plen < n:
                return data[off : off + 40 + plen]
        return data[off:] if off else data
    return None


def _after_ethertype(data: bytes, off: int) -> bytes | None:
    """Follow VLAN tags from the ethertype at ``off``; the IP datagram after it, or None."""
    n = len(data)
    while off + 2 <= n:
        ethertype = (data[off] << 8) | data[off + 1]
        if ethertype in _ETH_IP:
            return _trim_ip(data, off + 2)
        if ethertype not in _ETH_VLAN:
            return None
        off += 4  # skip the tag control info and land on the next ethertype
    return None


def _strip_ethernet(data: bytes) -> bytes | None:
    return _after_ethertype(data, 12)


def _strip_sll(data: bytes) -> bytes | None:
    return _after_ethertype(data, 14)


def _strip_sll2(data: bytes) -> bytes | None:
    if len(data) < 20:
        return None
    ethertype = (data[0] << 8) | data[1]
    if ethertype in _ETH_IP:
        return _trim_ip(data, 20)
    if ethertype in _ETH_VLAN:
        return _after_ethertype(data, 22)
    return None


def _strip_raw(data: bytes) -> bytes | None:
    return _trim_ip(data, 0)


def _strip_null(data: bytes) -> bytes | None:
    if len(data) < 4:
        return None
    # The family is in the capturing host's byte order, which the file does not
    # record; a valid value fits in 16 bits, so whichever reading does is right.
    family = int.from_bytes(data[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(data[:4], "big")
    if family == _AF_INET or family in _AF_INET6:
        return _trim_ip(data, 4)
    return None


def _strip_loop(data: bytes) -> bytes | None:
    if len(data) < 4:
        return None
    family = int.from_bytes(data[:4], "big")  # always network order for LINKTYPE_LOOP
    if family == _AF_INET or family in _AF_INET6:
        return _trim_ip(data, 4)
    return None


_STRIPPERS: dict[int, _Stripper] = {
    LINKTYPE_NULL: _strip_null,
    LINKTYPE_ETHERNET: _strip_ethernet,
    LINKTYPE_RAW_12: _strip_raw,
    LINKTYPE_RAW_14: _strip_raw,
    LINKTYPE_RAW: _strip_raw,
    LINKTYPE_LOOP: _strip_loop,
    LINKTYPE_LINUX_SLL: _strip_sll,
    LINKTYPE_IPV4: _strip_raw,
    LINKTYPE_IPV6: _strip_raw,
    LINKTYPE_LINUX_SLL2: _strip_sll2,
}


class _Interface:
    """What a pcapng packet block needs from its interface description block."""

    __slots__ = ("linktype", "offset", "strip", "units")

    def __init__(self, linktype: int, units: int, offset: int) -> None:
        self.linktype = linktype
        self.strip = _STRIPPERS.get(linktype)
        self.units = units  # timestamp units per second
        self.offset = offset  # if_tsoffset, in seconds


class PcapReader:
    """Iterate over the IP datagrams of one pcap or pcapng file.

    Iterating opens the file, yields ``(timestamp, ip_bytes)`` and closes it
    again; the counters are updated as it goes, so a progress bar can read
    ``bytes_read`` / ``file_size`` between packets. Iterating again starts
    over and resets the counters. Nothing is opened before iteration starts,
    so :class:`PcapError` and ``OSError`` come from the first ``next()``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.file_size = 0
        self.bytes_read = 0
        self.frames = 0  # packet records read completely
        self.ip_packets = 0  # frames yielded
        self.non_ip_skipped = 0  # frames without IP, or too short for their link header
        self.truncated = 0  # records cut short by the end of the file (0 or 1)
        self.format = ""  # "pcap" or "pcapng", once the header is read

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        self.bytes_read = 0
        self.frames = self.ip_packets = self.non_ip_skipped = self.truncated = 0
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            self.file_size = os.fstat(f.fileno()).st_size
            head = f.read(4)
            self.bytes_read = len(head)
            if len(head) < 4:
                raise self._error(f"not a pcap or pcapng file ({len(head)} bytes long)")
            (magic,) = struct.unpack("<I", head)
            if magic == _PCAPNG_SHB:
                self.format = "pcapng"
                yield from self._read_pcapng(f)
            elif magic in (_PCAP_US_LE, _PCAP_US_BE, _PCAP_NS_LE, _PCAP_NS_BE):
                self.format = "pcap"
                yield from self._read_pcap(f, magic)
            else:
                raise self._error(f"not a pcap or pcapng file (magic 0x{int.from_bytes(head, 'big'):08x})")

    def _error(self, what: str) -> PcapError:
        return PcapError(f"{self.path.name}: {what}")

    def _unsupported_link(self, linktype: int) -> PcapError:
        return self._error(f"unsupported link type {linktype}")

    # -- classic pcap ---------------------------------------------------------

    def _read_pcap(self, f: BinaryIO, magic: int) -> Iterator[tuple[float, bytes]]:
        big = magic in (_PCAP_US_BE, _PCAP_NS_BE)
        order = ">" if big else "<"
        rest = f.read(20)
        self.bytes_read += len(rest)
        if len(rest) < 20:
            raise self._error("truncated file header")
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", rest)
        # The upper bits of the link type field carry FCS information.
        linktype = network & 0xFFFF
        strip = _STRIPPERS.get(linktype)
        if strip is None:
            raise self._unsupported_link(linktype)
        units = 1_000_000_000 if magic in (_PCAP_NS_LE, _PCAP_NS_BE) else 1_000_000

        unpack = struct.Struct(order + "IIII").unpack
        read = f.read
        while True:
            hdr = read(16)
            if len(hdr) < 16:
                if hdr:
                    self.bytes_read += len(hdr)
                    self.truncated += 1
                return
            sec, frac, incl, _orig = unpack(hdr)
            if incl > _MAX_RECORD:
                raise self._error(f"record length {incl} is impossible at byte {self.bytes_read}")
            data = read(incl)
            self.bytes_read += 16 + len(data)
            if len(data) < incl:
                self.truncated += 1
                return
            self.frames += 1
            ip = strip(data)
            if ip is None:
                self.non_ip_skipped += 1
                continue
            self.ip_packets += 1
            # Integer arithmetic first, one rounding at the end: the float is the
            # nearest to the recorded time, whatever the resolution.
            yield (sec * units + frac) / units, ip

    # -- pcapng ---------------------------------------------------------------

    def _read_pcapng(self, f: BinaryIO) -> Iterator[tuple[float, bytes]]:
        read = f.read
        interfaces: list[_Interface] = []
        order = "<"
        u32 = struct.Struct("<I").unpack
        epb = struct.Struct("<IIIII").unpack
        pb = struct.Struct("<HHIIII").unpack
        last_ts = 0.0
        first = True  # __iter__ has already read the first block's type
        while True:
            if first:
                first = False
                block_start = 0
                btype = _PCAPNG_SHB
                length_raw = read(4)
                self.bytes_read += len(length_raw)
                if len(length_raw) < 4:
                    self.truncated += 1
                    return
            else:
                block_start = self.bytes_read
                head = read(8)
                self.bytes_read += len(head)
                if len(head) < 8:
                    if head:
                        self.truncated += 1
                    return
                (btype,) = u32(head[:4])
                length_raw = head[4:]

            if btype == _PCAPNG_SHB:
                # A new section may switch byte order; its interfaces start afresh.
                bom = read(4)
                self.bytes_read += len(bom)
                if len(bom) < 4:
                    self.truncated += 1
                    return
                if struct.unpack("<I", bom)[0] == _PCAPNG_BOM:
                    order = "<"
                elif struct.unpack(">I", bom)[0] == _PCAPNG_BOM:
                    order = ">"
                else:
                    raise self._error(f"bad byte-order magic in section header at byte {block_start}")
                u32 = struct.Struct(order + "I").unpack
                epb = struct.Struct(order + "IIIII").unpack
                pb = struct.Struct(order + "HHIIII").unpack
                interfaces = []
                consumed_head = 12
            else:
                consumed_head = 8
            (length,) = u32(length_raw)
            body_len = length - consumed_head - 4  # the trailing copy of the length

            if length < consumed_head + 4 or length % 4:
                raise self._error(f"bad block length {length} at byte {block_start}")
            if length > _MAX_RECORD:
                raise self._error(f"block length {length} is impossible at byte {block_start}")
            body = read(body_len + 4)
            self.bytes_read += len(body)
            if len(body) < body_len + 4:
                self.truncated += 1
                return
            if u32(body[body_len:])[0] != length:
                raise self._error(f"block length mismatch at byte {block_start}")
            if btype == _BLOCK_EPB:
                if body_len < 20:
                    raise self._error(f"truncated block at byte {block_start}")
                if_id, ts_hi, ts_lo, caplen, _origlen = epb(body[:20])
                if caplen > body_len - 20:
                    raise self._error(f"truncated block at byte {block_start}")
                data = body[20 : 20 + caplen]
            elif btype == _BLOCK_SPB:
                if body_len < 4:
                    raise self._error(f"truncated block at byte {block_start}")
                (origlen,) = u32(body[:4])
                data = body[4 : 4 + min(origlen, body_len - 4)]
                if_id = 0
                ts_hi = -1  # a simple packet block has no timestamp
                ts_lo = 0
            elif btype == _BLOCK_PB:
                if body_len < 20:
                    raise self._error(f"truncated block at byte {block_start}")
                if_id, _drops, ts_hi, ts_lo, caplen, _origlen = pb(body[:20])
                if caplen > body_len - 20:
                    raise self._error(f"truncated block at byte {block_start}")
                data = body[20 : 20 + caplen]
            elif btype == _BLOCK_IDB:
                interfaces.append(self._parse_idb(body[:body_len], order, block_start))
                continue
            else:
                continue  # name resolution, statistics, custom blocks, ...

            self.frames += 1
            if if_id >= len(interfaces):
                raise self._error(f"packet for undeclared interface {if_id} at byte {block_start}")
            iface = interfaces[if_id]
            if iface.strip is None:
                raise self._unsupported_link(iface.linktype)
            ip = iface.strip(data)
            if ip is None:
                self.non_ip_skipped += 1
                continue
            self.ip_packets += 1
            if ts_hi >= 0:
                last_ts = ((ts_hi << 32) | ts_lo) / iface.units + iface.offset
            # else: keep the previous packet's time, so time never runs backwards.
            yield last_ts, ip

    def _parse_idb(self, body: bytes, order: str, block_start: int) -> _Interface:
        if len(body) < 8:
            raise self._error(f"truncated block at byte {block_start}")
        linktype, _reserved, _snaplen = struct.unpack(order + "HHI", body[:8])
        units = 1_000_000  # the default resolution is microseconds
        offset = 0
        opt = struct.Struct(order + "HH").unpack
        pos = 8
        while pos + 4 <= len(body):
            code, olen = opt(body[pos : pos + 4])
            value = body[pos + 4 : pos + 4 + olen]
            if code == _OPT_ENDOFOPT:
                break
            if code == _OPT_IF_TSRESOL and olen >= 1:
                exp = value[0] & 0x7F
                units = 2**exp if value[0] & 0x80 else 10**exp
            elif code == _OPT_IF_TSOFFSET and olen >= 8:
                (offset,) = struct.unpack(order + "q", value[:8])
            pos += 4 + ((olen + 3) & ~3)
        return _Interface(linktype, units, offset)


def read_ip_packets(path: str | Path) -> Iterator[tuple[float, bytes]]:
    """Yield ``(timestamp, ip_datagram)`` for each IP frame of a pcap or pcapng file."""
    return iter(PcapReader(path))
