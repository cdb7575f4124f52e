"""IpOnlyIndex against brute force: every rule whose source and destination sets hold the packet.

Random address sets come from ``parse_addresses`` (CIDRs, ``a-b`` ranges, negations, nested
lists, ``any``, IPv4 and IPv6) over a small pool of addresses so that sets overlap, touch and
hit the ends of the address space; lookups probe every interval boundary and its neighbours.
"""

from __future__ import annotations

import ipaddress
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inline_ips.detect.iponly import IpOnlyIndex
from inline_ips.rules.addresses import V4_MAX, V6_MAX, AddressSet, parse_addresses

Entry = tuple[int, AddressSet, AddressSet, bool]

V4_POINTS = [0, 1, 0x0A000000, 0x0A0000FF, 0x0A000100, 0xC0A80001, V4_MAX - 1, V4_MAX]
V6_POINTS = [
    0,
    1,
    0x20010DB8 << 96,
    (0x20010DB8 << 96) + 0xFF,
    (0x20010DB8 << 96) + 0x100,
    V6_MAX - 1,
    V6_MAX,
]


def brute(entries: list[Entry], version: int, src: int, dst: int) -> list[int]:
    out = {
        idx
        for idx, s, d, both in entries
        if (s.contains(version, src) and d.contains(version, dst))
        or (both and s.contains(version, dst) and d.contains(version, src))
    }
    return sorted(out)


def _v4(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def _v6(n: int) -> str:
    return str(ipaddress.IPv6Address(n))


@st.composite
def v4_addr(draw: st.DrawFn) -> int:
    base = draw(st.sampled_from(V4_POINTS))
    return min(max(base + draw(st.integers(-3, 3)), 0), V4_MAX)


@st.composite
def v6_addr(draw: st.DrawFn) -> int:
    base = draw(st.sampled_from(V6_POINTS))
    return min(max(base + draw(st.integers(-3, 3)), 0), V6_MAX)


@st.composite
def leaf(draw: st.DrawFn) -> str:
    six = draw(st.booleans())
    a = draw(v6_addr() if six else v4_addr())
    fmt = _v6 if six else _v4
    kind = draw(st.sampled_from(["single", "cidr", "range", "any"]))
    if kind == "single":
        return fmt(a)
    if kind == "cidr":
        bits = 128 if six else 32
        prefix = draw(st.integers(bits - 10, bits) | st.integers(0, bits))
        return f"{fmt(a)}/{prefix}"
    if kind == "range":
        b = draw(v6_addr() if six else v4_addr())
        lo, hi = sorted((a, b))
        return f"{fmt(lo)}-{fmt(hi)}"
    return "any"


def expr(depth: int = 2) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        item = st.tuples(st.booleans(), inner).map(lambda t: ("!" if t[0] else "") + t[1])
        return st.one_of(
            inner.map(lambda s: "!" + s),
            st.lists(item, min_size=1, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        )

    return st.recursive(leaf(), extend, max_leaves=6)


address_set = expr().map(parse_addresses)


def probes(entries: list[Entry], version: int) -> list[int]:
    """Every boundary of every set of the family, and its neighbours."""
    maxval = V6_MAX if version == 6 else V4_MAX
    points = set(V6_POINTS if version == 6 else V4_POINTS)
    for _, s, d, _ in entries:
        for a in (s, d):
            ivs = a.v6 if version == 6 else a.v4
            for lo, hi in zip(ivs.starts, ivs.ends, strict=True):
                points.update((lo - 1, lo, hi, hi + 1))
    return sorted(p for p in points if 0 <= p <= maxval)


@given(
    entries=st.lists(st.tuples(address_set, address_set, st.booleans()), max_size=8),
    data=st.data(),
)
@settings(max_examples=300, deadline=None)
def test_matches_brute_force(entries: list[tuple[AddressSet, AddressSet, bool]], data: st.DataObject) -> None:
    es: list[Entry] = [(i, s, d, both) for i, (s, d, both) in enumerate(entries)]
    index = IpOnlyIndex(es)
    assert index.rules == len(es)
    for version in (4, 6):
        pts = probes(es, version)
        pairs = data.draw(
            st.lists(st.tuples(st.sampled_from(pts), st.sampled_from(pts)), min_size=1, max_size=25)
        )
        for src, dst in pairs:
            assert index.candidates(version, src, dst) == brute(es, version, src, dst), (version, src, dst)


def _e(idx: int, src: str, dst: str, both: bool = False) -> Entry:
    return (idx, parse_addresses(src), parse_addresses(dst), both)


IP4 = int(ipaddress.IPv4Address("10.0.0.127"))
EDGE_ENTRIES = [
    _e(0, "0.0.0.0", "255.255.255.255"),
    _e(1, "10.0.0.0/25", "any"),
    _e(2, "10.0.0.128/25", "any"),  # adjacent to rule 1's interval
    _e(3, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    _e(4, "![10.0.0.0/8]", "10.0.0.0/8", both=True),
    _e(5, "any", "any"),
    _e(6, "[1.1.1.1-1.1.1.3,!1.1.1.2]", "2001:db8::/32"),  # no IPv6 source: never
    _e(7, "!any", "any"),  # empty
    _e(8, "192.0.2.1", "192.0.2.1", both=True),  # same set both ways
]

EDGES: list[tuple[str, int, int, int, list[int]]] = [
    ("first_and_last_v4", 4, 0, V4_MAX, [0, 5]),
    ("last_and_first_v4", 4, V4_MAX, 0, [5]),
    ("first_and_last_v6", 6, 0, V6_MAX, [3, 5]),
    ("just_inside_v6", 6, 1, V6_MAX, [5]),
    ("adjacent_left_edge", 4, IP4, 1, [1, 4, 5]),
    ("adjacent_right_edge", 4, IP4 + 1, 1, [2, 4, 5]),
    ("adjacent_past_both", 4, IP4 + 129, 1, [4, 5]),  # 10.0.1.0: in 10/8 only
    ("bidirectional_forward", 4, 0x08080808, 0x0A000001, [4, 5]),
    ("bidirectional_reverse", 4, 0x0A000001, 0x08080808, [1, 4, 5]),
    ("bidirectional_same_set", 4, 0xC0000201, 0xC0000201, [5, 8]),
    ("v4_list_with_hole", 4, 0x01010102, 0x01010101, [5]),
    ("v4_list_no_v6", 6, 0x01010101, 0x20010DB8 << 96, [5]),
]


@pytest.mark.parametrize(
    ("version", "src", "dst", "expected"), [c[1:] for c in EDGES], ids=[c[0] for c in EDGES]
)
def test_edges(version: int, src: int, dst: int, expected: list[int]) -> None:
    index = IpOnlyIndex(EDGE_ENTRIES)
    assert index.candidates(version, src, dst) == expected
    assert index.candidates(version, src, dst) == brute(EDGE_ENTRIES, version, src, dst)


def test_empty_index() -> None:
    index = IpOnlyIndex([])
    assert index.rules == 0
    assert index.candidates(4, 0, V4_MAX) == []
    assert index.candidates(6, 0, V6_MAX) == []


def test_rule_order_and_duplicates() -> None:
    # Two rules sharing the same pair, out of order, and one bidirectional rule found both ways.
    entries = [_e(5, "10.0.0.1", "any"), _e(2, "10.0.0.1", "any"), _e(3, "any", "10.0.0.1", both=True)]
    index = IpOnlyIndex(entries)
    assert index.candidates(4, 0x0A000001, 0x0A000001) == [2, 3, 5]


HOME_NET = "[10.0.0.0/8,192.168.0.0/16,172.16.0.0/12]"


def realistic(rules: int = 1200, addresses: int = 15_000, seed: int = 7) -> list[Entry]:
    """Reputation rules: ~12 public single addresses each, $HOME_NET or any on the other side."""
    rng = random.Random(seed)
    home = parse_addresses(HOME_NET)
    anywhere = parse_addresses("any")
    entries: list[Entry] = []
    per = addresses // rules
    extra = addresses - per * rules
    for i in range(rules):
        count = per + (1 if i < extra else 0)
        addrs = [_v4(rng.randrange(0x01000000, 0x09FFFFFF)) for _ in range(count)]
        ips = parse_addresses("[" + ",".join(addrs) + "]")
        other = home if i % 2 else anywhere
        if i % 3:
            entries.append((i, ips, other, False))  # drop/compromised style: bad -> us
        else:
            entries.append((i, other, ips, False))  # us -> bad
    return entries


def test_realistic_index_speed() -> None:
    entries = realistic()
    t0 = time.perf_counter()
    index = IpOnlyIndex(entries)
    build = time.perf_counter() - t0
    rng = random.Random(1)
    bad = [int(ipaddress.IPv4Address(a)) for a in _sample_addresses(entries, rng, 500)]
    queries = [(rng.choice(bad), 0x0A000005) for _ in range(2500)]
    queries += [(rng.randrange(V4_MAX), rng.randrange(V4_MAX)) for _ in range(2500)]
    t0 = time.perf_counter()
    hits = sum(len(index.candidates(4, s, d)) for s, d in queries)
    lookup = (time.perf_counter() - t0) / len(queries)
    for s, d in queries[:200:7] + queries[2500:2700:7]:
        assert index.candidates(4, s, d) == brute(entries, 4, s, d)
    assert hits >= 2500  # every listed source sent to the home network hits its rule
    print(f"\niponly: 1200 rules / 15000 addresses: build {build * 1e3:.0f} ms, lookup {lookup * 1e6:.1f} us")
    assert build < 10.0
    assert lookup < 200e-6


def _sample_addresses(entries: list[Entry], rng: random.Random, k: int) -> list[str]:
    """Addresses listed as the source of a rule."""
    out = [_v4(lo) for _, s, _, _ in entries if s.text not in ("any", HOME_NET) for lo in s.v4.starts]
    return rng.sample(out, k)
