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

Fast path: :func:`decode_py` is the pure-Python decoder and the reference
(specification) for the compiled twin in ``_fastdecode.c``. At import this
module loads the extension ``inline_ips.decode._fastdecode`` if it was built
(``setup.py build_ext``; the build is optional), lets it check
:class:`~inline_ips.packet.Packet`'s slot layout (it refuses a layout it does
not know), and decodes a set of sample packets and their truncations with
both decoders, comparing every slot. If all of that succeeds, :func:`decode` is
the compiled one and :data:`FAST_DECODE` is True; otherwise :func:`decode` is
:func:`decode_py`, :data:`FAST_DECODE` is False, and
:data:`FAST_DECODE_REASON` says why. Setting the environment variable
``INLINE_IPS_PURE_DECODE=1`` (any value but empty or ``0``) before the import
forces the pure-Python decoder without loading the extension. An extension
that is present but refused (layout, self-check) also gives a RuntimeWarning.

The compiled decoder returns the same :class:`~inline_ips.packet.Packet` (same
class, every slot equal, same types, the same error string objects) for every
input. It does not call ``Packet.__init__``: it fills the slots directly,
taking the defaults from a ``Packet(b"", 0.0)`` made at import. It does not
replace :func:`decode_l4` or the per-protocol functions, which stay pure
Python. The one behavioural difference: when memory runs out it raises
MemoryError where :func:`decode_py` would return ``internal_error``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Final

from inline_ips.decode import icmp, ipv4, ipv6, tcp, udp
from inline_ips.decode.icmp import decode_icmp, decode_icmpv6
from inline_ips.decode.ipv4 import decode_ipv4
from inline_ips.decode.ipv6 import decode_ipv6
from inline_ips.decode.tcp import decode_tcp
from inline_ips.decode.udp import decode_udp
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet

__all__ = [
    "DECODE_ERRORS",
    "FAST_DECODE",
    "FAST_DECODE_REASON",
    "decode",
    "decode_l4",
    "decode_py",
    "load_fast_decoder",
]

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


def decode_py(raw: bytes, ts: float) -> Packet:
    """Decode the IP datagram ``raw`` seen at time ``ts``; never raises (pure Python)."""
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


Decoder = Callable[[bytes, float], Packet]

# Sample datagrams for the compiled decoder's self-check at import (made with
# Scapy): IPv4 TCP SYN with MSS/SACK/WScale; UDP; ICMP echo; a first fragment
# with an IP option; a non-first fragment; IPv6 hop-by-hop + fragment header
# (offset 0, M=1) + TCP with NOP NOP timestamp; IPv6 routing header + ICMPv6
# echo; IPv6 AH. Each is also checked with padding and cut at header edges.
_SELF_CHECK_HEX: Final = (
    "45100034004d00003f06e8bb0a000001c0a8c8029c400050deadbeef00000000800220007d3f0000020405b404020303"
    "07000000",
    "4500002200010000401166c80a0000010a00000214e90035000e825d717171717171",
    "4500002000010000400166da0a0000010a000002080006f21234000970696e67",
    "4700003400052000401127990a0000010a0000020707040909090900000100020018b8856666666666666666666666666666"
    "6666",
    "4500001c00050003401166c70a0000010a0000026767676767676767",
    "628abcde0035004020010db8000000000000000000000001fe8000000000000000000000ffff00012c000104000000000600"
    "000187654321000101bb000000000000000080102000bfcc00000101080a00000001000000027878787878",
    "6000000000222b4020010db800000000000000000000000120010db80000000000000000000000023a0200010000000020010d"
    "b80000000000000000000000098000b3fd000500067036",
    "600000000020334020010db800000000000000000000000120010db8000000000000000000000002060100000000000000000000"
    "0000000000000000000000000000000000000000",
)


def _self_check_inputs() -> list[bytes]:
    samples = [bytes.fromhex(h) for h in _SELF_CHECK_HEX]
    inputs = [b"", b"\x50" * 20]
    for sample in samples:
        inputs += [sample, sample + b"\x00" * 6]  # as sent, and with Ethernet padding
        inputs += [sample[:n] for n in (1, 19, 20, 21, 24, 28, 39, 40, 41, 44, 48, 50, 60, len(sample) - 1)]
    return inputs


def _differing_slot(a: Packet, b: Packet) -> str | None:
    """The first slot in which ``a`` and ``b`` differ (value or type), or None."""
    for name in Packet.__slots__:
        x, y = getattr(a, name), getattr(b, name)
        if type(x) is not type(y) or x != y:
            return name
    return None


def load_fast_decoder() -> tuple[Decoder | None, str]:
    """Load, set up and self-check the compiled decoder: ``(decode, "compiled")``, or ``(None, why not)``."""
    try:
        from inline_ips.decode import _fastdecode  # noqa: PLC0415 (optional extension)
    except ImportError as exc:
        return None, f"extension not available ({exc})"
    try:
        _fastdecode.setup(Packet, Packet(b"", 0.0), DECODE_ERRORS)
    except (TypeError, ValueError) as exc:
        return _refused(f"extension refused the Packet class ({exc})")
    fast = _fastdecode.decode
    for raw in _self_check_inputs():
        diff = _differing_slot(fast(raw, 1.5), decode_py(raw, 1.5))
        if diff is not None:
            return _refused(f"self-check failed: field {diff!r} differs for {raw.hex()}")
    return fast, "compiled"


def _refused(why: str) -> tuple[None, str]:
    warnings.warn(f"inline_ips.decode: using the pure-Python decoder: {why}", RuntimeWarning, stacklevel=3)
    return None, why


_fast: Decoder | None
if os.environ.get("INLINE_IPS_PURE_DECODE", "") not in ("", "0"):
    _fast, FAST_DECODE_REASON = None, "INLINE_IPS_PURE_DECODE is set"
else:
    _fast, FAST_DECODE_REASON = load_fast_decoder()

FAST_DECODE: Final[bool] = _fast is not None
"""True when :func:`decode` is the compiled decoder, False when it is :func:`decode_py`."""

decode: Final[Decoder] = _fast if _fast is not None else decode_py
"""Decode the IP datagram ``raw`` seen at time ``ts``; never raises (compiled when available)."""
