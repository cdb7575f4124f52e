"""Change bytes of an IP datagram in place and keep its checksums right.

Does: :func:`apply_replacements` writes equal-length byte strings at offsets
into an IPv4 or IPv6 datagram (what a ``rewrite`` verdict carries) and updates
the IPv4 header checksum and the TCP, UDP, ICMP or ICMPv6 checksum
incrementally (RFC 1624), including the pseudo-header when an address changes.
:func:`clamp_mss` lowers the MSS option of a SYN or SYN-ACK, :func:`set_ttl`
sets the IPv4 TTL or IPv6 hop limit; both go through :func:`apply_replacements`.
:func:`checksum_ok` verifies a datagram's checksums (for tests and tools).

Why incremental: it costs the same for a 40-byte and a 9000-byte datagram
(only the changed bytes are summed), it works on a first fragment (whose L4
checksum covers bytes in later fragments), and a checksum that was wrong
before stays exactly as wrong after: a rewrite never turns a segment the
receiver would have discarded into one it accepts.

The trick that makes it cheap in pure Python: the ones'-complement sum of the
16-bit words of a byte string is ``int.from_bytes(s, "big") % 0xFFFF``
(because 2**16 = 1 mod 0xFFFF), so a change's contribution is one big-int
conversion and one modulo, done in C.

Does not: change lengths (no insertion or removal), rewrite structural
fields (IPv4 version/IHL, total length, fragment field, protocol and
checksums; IPv6 payload length, next header and extension headers; the L4
checksum itself) -- those raise :class:`ValueError` -- or fix the L4 checksum
of a non-first fragment (its checksum is in another datagram: ValueError).
A datagram shorter than its IP length (an NFQUEUE copy cut at the copy range)
is refused with ValueError, since the checksum could not be right.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["apply_replacements", "checksum_ok", "clamp_mss", "set_ttl"]

_TCP, _UDP, _ICMP, _ICMPV6 = 6, 17, 1, 58
# Offset of the checksum field inside each L4 header.
_CK_POS = {_TCP: 16, _UDP: 6, _ICMP: 2, _ICMPV6: 2}
# IPv6 extension headers walked to find the upper layer.
_HOP, _ROUTING, _FRAGMENT, _AH, _DSTOPTS = 0, 43, 44, 51, 60
_V6_EXT = frozenset({_HOP, _ROUTING, _FRAGMENT, _AH, _DSTOPTS})
# IPv4 header bytes a replacement may not touch: version/IHL, total length,
# flags/fragment offset, protocol and header checksum.
_V4_FIXED = ((0, 1), (2, 4), (6, 8), (9, 12))
# IPv6: payload length and next header (extension headers are added per datagram).
_V6_FIXED = ((4, 7),)
_SYN = 0x02
_TCPOPT_EOL, _TCPOPT_NOP, _TCPOPT_MSS = 0, 1, 2


# What _layout returns: (version, end, l4, proto, ck, pseudo, whole, fixed ranges, address range).
_Lay = tuple[int, int, int, int, int, bool, bool, tuple[tuple[int, int], ...], tuple[int, int]]


def _layout(raw: bytes) -> _Lay:
    """Where things are in one datagram: computed once per call, returned as a tuple (cheap).

    ``end`` is the IP length, ``l4`` the upper-layer header's offset, ``ck`` the
    absolute offset of the L4 checksum field: -1 when there is none (other
    protocols; IPv4 UDP sent without checksum), -2 when there is one but it is
    not in this datagram (non-first fragment, cut header). ``pseudo`` says the
    addresses are part of the L4 checksum, ``whole`` that this is not a fragment.
    """
    n = len(raw)
    if n < 20:
        raise ValueError("datagram shorter than an IP header")
    b0 = raw[0]
    version = b0 >> 4
    first = True  # the datagram carries the start of the L4 header
    whole = True  # not a fragment at all
    routed = False  # a routing header makes the pseudo-header's address the final one
    fixed: tuple[tuple[int, int], ...]
    if version == 4:
        l4 = (b0 & 15) * 4
        end = raw[2] << 8 | raw[3]
        if l4 < 20 or end < l4:
            raise ValueError("bad IPv4 header or total length")
        frag = raw[6] << 8 | raw[7]
        first = frag & 0x1FFF == 0
        whole = frag & 0x3FFF == 0
        proto = raw[9]
        addr = (12, 20)
        fixed = _V4_FIXED
    elif version == 6:
        if n < 40:
            raise ValueError("datagram shorter than an IPv6 header")
        end = 40 + (raw[4] << 8 | raw[5])
        if end == 40:
            raise ValueError("IPv6 jumbograms and empty payloads are not supported")
        proto = raw[6]
        l4 = 40
        while proto in _V6_EXT:
            if l4 + 8 > end or l4 + 8 > n:
                raise ValueError("truncated IPv6 extension header")
            nxt = raw[l4]
            if proto == _FRAGMENT:
                whole = False
                if (raw[l4 + 2] << 8 | raw[l4 + 3]) >> 3:
                    first = False
                l4 += 8
            elif proto == _AH:
                l4 += (raw[l4 + 1] + 2) * 4
            else:
                if proto == _ROUTING and raw[l4 + 3]:
                    routed = True
                l4 += (raw[l4 + 1] + 1) * 8
            proto = nxt
        if l4 > end:
            raise ValueError("truncated IPv6 extension header")
        addr = (8, 40)
        fixed = ((4, 7), (40, l4)) if l4 > 40 else _V6_FIXED
    else:
        raise ValueError(f"not an IP datagram (version {version})")
    if n < end:
        raise ValueError(f"datagram truncated: {n} of {end} bytes present")
    pos = _CK_POS.get(proto)
    if pos is None or (proto == _ICMPV6 and version == 4) or (proto == _ICMP and version == 6):
        ck = -1
    elif not first or l4 + pos + 2 > end:
        ck = -2
    elif proto == _UDP and version == 4 and raw[l4 + 6] == 0 and raw[l4 + 7] == 0:
        ck = -1
    else:
        ck = l4 + pos
    pseudo = ck != -1 and proto != _ICMP
    if routed and pseudo:
        # The pseudo-header holds the routing header's final address, not the
        # one in the IPv6 header: refuse address changes rather than guess.
        fixed = (*fixed, addr)
    return version, end, l4, proto, ck, pseudo, whole, fixed, addr


def _delta(old: bytes | bytearray, new: bytes, off: int, start: int, stop: int) -> int:
    """Ones'-complement (old - new) over [start, stop) of a change at ``off``, word-aligned."""
    i, j = start - off, stop - off
    d = int.from_bytes(old[i:j], "big") - int.from_bytes(new[i:j], "big")
    # Every checksummed region starts at an even offset of the datagram, so a
    # range ending at an odd offset ends on a word's high byte.
    return d << 8 if stop & 1 else d


def apply_replacements(raw: bytes, replacements: Sequence[tuple[int, bytes]]) -> bytes:
    """Return ``raw`` with each ``(offset, new bytes)`` written in order and checksums updated.

    Raises ValueError for offsets outside the datagram, structural fields, and
    changes whose L4 checksum is not in this datagram. Returns ``raw`` itself
    when nothing changes.
    """
    if not replacements:
        return raw
    version, end, l4, proto, ck, pseudo, _, fixed, addr = _layout(raw)
    hdr_stop = l4 if version == 4 else 0  # the IPv4 header checksum covers [0, IHL)
    a0, a1 = addr if pseudo else (0, 0)
    buf = bytearray(raw)
    ip_d = 0
    l4_d = 0
    for off, new in replacements:
        stop = off + len(new)
        if off < 0 or stop > end:
            raise ValueError(f"replacement at {off}+{len(new)} outside the {end}-byte datagram")
        old = buf[off:stop]
        if old == new:
            continue
        if off >= l4:  # the common case: L4 header or payload only, inlined
            if ck != -1:
                if ck == -2:
                    raise ValueError("the L4 checksum is not in this datagram (fragment); cannot fix it")
                if off < ck + 2 and stop > ck:
                    raise ValueError(f"replacement at {off}+{len(new)} overwrites the L4 checksum")
                d = int.from_bytes(old, "big") - int.from_bytes(new, "big")
                l4_d += d << 8 if stop & 1 else d
            buf[off:stop] = new
            continue
        # The change reaches into the IP (or extension) headers.
        for f0, f1 in fixed:
            if off < f1 and stop > f0:
                raise ValueError(f"replacement at {off}+{len(new)} changes a structural IP header field")
        if off == 0 and new[0] >> 4 != version:
            raise ValueError("replacement changes the IP version")
        if off < hdr_stop:
            ip_d += _delta(old, new, off, off, min(stop, hdr_stop))
        if off < a1 and stop > a0:
            if ck == -2:
                raise ValueError("the L4 checksum is not in this datagram (fragment); cannot fix it")
            l4_d += _delta(old, new, off, max(off, a0), min(stop, a1))
        if stop > l4 and ck != -1:  # ...and on into the L4 header
            if ck == -2:
                raise ValueError("the L4 checksum is not in this datagram (fragment); cannot fix it")
            if off < ck + 2 and stop > ck:
                raise ValueError(f"replacement at {off}+{len(new)} overwrites the L4 checksum")
            l4_d += _delta(old, new, off, max(off, l4), stop)
        buf[off:stop] = new
    if ip_d:
        ip_d %= 0xFFFF
        if ip_d:
            c = ((buf[10] << 8 | buf[11]) + ip_d) % 0xFFFF
            buf[10] = c >> 8
            buf[11] = c & 0xFF
    if l4_d:
        l4_d %= 0xFFFF
        if l4_d:
            c = ((buf[ck] << 8 | buf[ck + 1]) + l4_d) % 0xFFFF
            if c == 0 and proto == _UDP:
                c = 0xFFFF  # a computed zero is sent as all ones; zero means "no checksum"
            buf[ck] = c >> 8
            buf[ck + 1] = c & 0xFF
    return bytes(buf)


def checksum_ok(raw: bytes) -> bool:
    """True when the IPv4 header checksum and the L4 checksum (if present and whole) verify.

    Fragments have only their IPv4 header checksum checked. Malformed datagrams are not ok.
    """
    try:
        version, end, l4, proto, ck, pseudo, whole, _, (a0, a1) = _layout(raw)
    except ValueError:
        return False
    if version == 4 and int.from_bytes(raw[:l4], "big") % 0xFFFF:
        return False
    if ck < 0 or not whole:
        return True  # no checksum, or it covers bytes in other fragments
    seg = raw[l4:end]
    total = int.from_bytes(seg, "big") << (8 if len(seg) & 1 else 0)
    if pseudo:
        total += int.from_bytes(raw[a0:a1], "big") + len(seg) + proto
    return total % 0xFFFF == 0


def clamp_mss(raw: bytes, mss: int) -> bytes:
    """Lower the MSS option of a TCP SYN or SYN-ACK to ``mss`` when it is larger.

    Any other datagram, or a SYN whose MSS is already small enough or absent,
    comes back unchanged (the same object). A SYN without an MSS option is not
    given one: that would change its length.
    """
    if not 0 < mss < 0x10000:
        raise ValueError(f"MSS {mss} out of range")
    _, end, l4, proto, ck, _, _, _, _ = _layout(raw)
    if proto != _TCP or ck < 0 or l4 + 20 > end or not raw[l4 + 13] & _SYN:
        return raw
    opt = l4 + 20
    stop = min(l4 + (raw[l4 + 12] >> 4) * 4, end)
    while opt < stop:
        kind = raw[opt]
        if kind == _TCPOPT_EOL:
            break
        if kind == _TCPOPT_NOP:
            opt += 1
            continue
        if opt + 1 >= stop or raw[opt + 1] < 2:
            break  # malformed options: leave them alone
        if kind == _TCPOPT_MSS and raw[opt + 1] == 4 and opt + 4 <= stop:
            if int.from_bytes(raw[opt + 2 : opt + 4], "big") > mss:
                return apply_replacements(raw, ((opt + 2, mss.to_bytes(2, "big")),))
            return raw
        opt += raw[opt + 1]
    return raw


def set_ttl(raw: bytes, ttl: int) -> bytes:
    """Set the IPv4 TTL or IPv6 hop limit (the IPv4 header checksum follows)."""
    if not 0 <= ttl <= 255:
        raise ValueError(f"TTL {ttl} out of range")
    return apply_replacements(raw, ((8 if raw[0] >> 4 == 4 else 7, bytes((ttl,))),))
