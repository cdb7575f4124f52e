"""Which IP-only rules fit a packet's addresses, found with two lookups instead of one test per rule.

Reputation lists (Emerging Threats' tor, ciarmy, compromised, drop rules)
are thousands of rules whose only test is a long address list, and Suricata
judges them once per flow direction with a radix tree. Here every distinct
address set the rules use is cut into elementary intervals per address
family; each interval knows which sets cover it. A packet's source and
destination are each found by one binary search, and only the rules whose
(source set, destination set) pair both cover the packet are returned
(``<>`` rules are indexed both ways round). The caller still checks each
candidate's protocol and ports. This module keeps no per-packet state.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from inline_ips.rules.addresses import AddressSet, IntervalSet


class _Family:
    """Elementary intervals of one address family and the set ids covering each."""

    def __init__(self, sets: Sequence[tuple[int, IntervalSet]]) -> None:
        bounds: set[int] = set()
        for _, ivs in sets:
            for lo, hi in zip(ivs.starts, ivs.ends, strict=True):
                bounds.add(lo)
                bounds.add(hi + 1)
        self.starts: list[int] = sorted(bounds)
        cover: list[list[int]] = [[] for _ in self.starts]
        for sid, ivs in sets:
            for lo, hi in zip(ivs.starts, ivs.ends, strict=True):
                first = bisect_right(self.starts, lo) - 1
                last = bisect_right(self.starts, hi) - 1
                for k in range(first, last + 1):
                    cover[k].append(sid)
        # Neighbouring intervals are mostly covered by the same sets: share one frozenset each.
        shared: dict[frozenset[int], frozenset[int]] = {}
        self.cover: list[frozenset[int]] = [shared.setdefault(f, f) for f in map(frozenset, cover)]

    def lookup(self, addr: int) -> frozenset[int]:
        k = bisect_right(self.starts, addr) - 1
        return self.cover[k] if k >= 0 else frozenset()


class IpOnlyIndex:
    def __init__(self, entries: Iterable[tuple[int, AddressSet, AddressSet, bool]]) -> None:
        """``entries``: (rule index, source set, destination set, bidirectional)."""
        ids: dict[AddressSet, int] = {}

        def set_id(a: AddressSet) -> int:
            got = ids.get(a)
            if got is None:
                got = ids[a] = len(ids)
            return got

        pairs: dict[tuple[int, int], list[int]] = {}
        count = 0
        for idx, src, dst, both in entries:
            s, d = set_id(src), set_id(dst)
            pairs.setdefault((s, d), []).append(idx)
            if both and s != d:
                pairs.setdefault((d, s), []).append(idx)
            count += 1
        self.rules = count
        self._pairs = {k: tuple(v) for k, v in pairs.items()}
        by_id = list(ids)
        self._v4 = _Family([(i, a.v4) for i, a in enumerate(by_id)])
        self._v6 = _Family([(i, a.v6) for i, a in enumerate(by_id)])
        self._src_ids = {s for s, _ in self._pairs}
        self._dst_ids = {d for _, d in self._pairs}

    def candidates(self, version: int, src: int, dst: int) -> list[int]:
        """Indexes of the rules whose address sets hold ``src`` and ``dst`` (in rule order)."""
        fam = self._v6 if version == 6 else self._v4
        srcs = fam.lookup(src) & self._src_ids
        if not srcs:
            return []
        dsts = fam.lookup(dst) & self._dst_ids
        if not dsts:
            return []
        pairs = self._pairs
        out: list[int] = []
        for s in srcs:
            for d in dsts:
                got = pairs.get((s, d))
                if got is not None:
                    out.extend(got)
        if len(out) > 1:
            out = sorted(set(out))
        return out
