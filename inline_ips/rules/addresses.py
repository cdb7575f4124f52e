"""Address and port sets in Suricata's syntax, compiled to sorted intervals.

Accepts ``any``, single values, CIDR blocks, address ranges
(``10.0.0.1-10.0.0.9``, ``2001:db8::1-2001:db8::ff``), port ranges (``1024:``,
``:1023``, ``80:90``), lists (``[a,b]``, nested), negation (``!x``, ``![a,b]``) and
variables (``$HOME_NET``), resolved from a mapping given at parse time.

Every expression is evaluated as a set (per address family): a list is the
union of its positive members minus the union of its negated ones (a list of
only negations is everything minus them), and ``!`` is the complement. So
``![10.0.0.0/8,!10.1.0.0/16]`` is everything outside 10/8 plus 10.1/16, and
``!$HOME_NET`` stays right when HOME_NET itself has exclusions. A list of
only IPv4 networks holds no IPv6 address, and its complement holds all of
them. Matching is a binary search over merged intervals, O(log n) per
packet. This module does not know about rules or directions.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_VAR_DEPTH = 16
V4_MAX = 2**32 - 1
V6_MAX = 2**128 - 1
PORT_MAX = 65535

Intervals = tuple[tuple[int, int], ...]  # sorted, merged, closed


class SetSyntaxError(ValueError):
    """An address or port expression that cannot be parsed; the message says why."""


def _merge(intervals: list[tuple[int, int]]) -> Intervals:
    intervals.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in intervals:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(s: Intervals, maxval: int) -> Intervals:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= maxval:
        out.append((nxt, maxval))
    return tuple(out)


def _difference(a: Intervals, b: Intervals, maxval: int) -> Intervals:
    # a minus b = a intersect complement(b)
    return _intersect(a, _complement(b, maxval))


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class IntervalSet:
    """A set of integers as parallel tuples of interval starts and ends."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    maxval: int

    @classmethod
    def of(cls, intervals: Intervals, maxval: int) -> IntervalSet:
        return cls(tuple(lo for lo, _ in intervals), tuple(hi for _, hi in intervals), maxval)

    def contains(self, value: int) -> bool:
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    @property
    def is_any(self) -> bool:
        return self.starts == (0,) and self.ends == (self.maxval,)

    @property
    def is_empty(self) -> bool:
        return not self.starts


@dataclass(frozen=True, slots=True)
class AddressSet:
    """IPv4 and IPv6 kept apart, so an integer address is looked up in its own family."""

    text: str
    v4: IntervalSet
    v6: IntervalSet

    def contains(self, version: int, addr: int) -> bool:
        return (self.v6 if version == 6 else self.v4).contains(addr)

    @property
    def is_any(self) -> bool:
        return self.v4.is_any and self.v6.is_any

    @property
    def is_empty(self) -> bool:
        return self.v4.is_empty and self.v6.is_empty


@dataclass(frozen=True, slots=True)
class PortSet:
    text: str
    ports: IntervalSet

    def contains(self, port: int) -> bool:
        return self.ports.contains(port)

    @property
    def is_any(self) -> bool:
        return self.ports.is_any

    @property
    def is_empty(self) -> bool:
        return self.ports.is_empty


_ALL4 = ((0, V4_MAX),)
_ALL6 = ((0, V6_MAX),)
ANY_ADDRESS = AddressSet("any", IntervalSet.of(_ALL4, V4_MAX), IntervalSet.of(_ALL6, V6_MAX))
ANY_PORT = PortSet("any", IntervalSet.of(((0, PORT_MAX),), PORT_MAX))


def _split_list(body: str) -> list[str]:
    """Split a comma list at top level, keeping nested [...] together."""
    items: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in body:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise SetSyntaxError("unbalanced ']'")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise SetSyntaxError("unbalanced '['")
    items.append("".join(cur).strip())
    if any(not it for it in items):
        raise SetSyntaxError("empty element in list")
    return items


# A value is one Intervals per family: (v4, v6) for addresses, (ports,) for ports.
_Value = tuple[Intervals, ...]
# Parses one leaf (no list, negation or variable) into its value.
_LeafFn = Callable[[str], _Value]


class _Evaluator:
    def __init__(self, variables: Mapping[str, str], leaf: _LeafFn, maxvals: tuple[int, ...]) -> None:
        self.variables = variables
        self.leaf = leaf
        self.maxvals = maxvals

    def everything(self) -> _Value:
        return tuple(((0, m),) for m in self.maxvals)

    def complement(self, v: _Value) -> _Value:
        return tuple(_complement(s, m) for s, m in zip(v, self.maxvals, strict=True))

    def eval(self, text: str, depth: int = 0) -> _Value:
        if depth > MAX_VAR_DEPTH:
            raise SetSyntaxError("variables nest too deep (a variable refers to itself?)")
        s = text.strip()
        if not s:
            raise SetSyntaxError("empty value")
        if s.startswith("!"):
            return self.complement(self.eval(s[1:], depth + 1))
        if s.startswith("["):
            if not s.endswith("]"):
                raise SetSyntaxError(f"list {s!r} is not closed with ']'")
            return self._list(_split_list(s[1:-1]), depth)
        if s.startswith("$"):
            name = s[1:]
            if name not in self.variables:
                raise SetSyntaxError(f"undefined variable ${name}")
            return self.eval(str(self.variables[name]), depth + 1)
        if s.lower() == "any":
            return self.everything()
        return self.leaf(s)

    def _list(self, items: list[str], depth: int) -> _Value:
        """Union of the positive members minus the union of the negated ones."""
        n = len(self.maxvals)
        pos: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        neg: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        any_positive = False
        for item in items:
            negated = item.lstrip().startswith("!")
            value = self.eval(item.lstrip()[1:] if negated else item, depth + 1)
            target = neg if negated else pos
            any_positive |= not negated
            for fam in range(n):
                target[fam].extend(value[fam])
        out: list[Intervals] = []
        for fam, maxval in enumerate(self.maxvals):
            base = _merge(pos[fam]) if any_positive else ((0, maxval),)
            out.append(_difference(base, _merge(neg[fam]), maxval))
        return tuple(out)


def _address_leaf(s: str) -> _Value:
    if "-" in s:
        return _address_range(s)
    try:
        net = ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise SetSyntaxError(f"{s!r} is not an IP address or network") from None
    span = ((int(net.network_address), int(net.broadcast_address)),)
    return (span, ()) if net.version == 4 else ((), span)


def _address_range(s: str) -> _Value:
    """``1.2.3.4-1.2.3.9`` or ``2001:db8::1-2001:db8::ff``: both ends included."""
    a, _, b = s.partition("-")
    try:
        lo = ipaddress.ip_address(a.strip())
        hi = ipaddress.ip_address(b.strip())
    except ValueError:
        raise SetSyntaxError(f"{s!r} is not an address range (first-last)") from None
    if lo.version != hi.version:
        raise SetSyntaxError(f"address range {s!r} mixes IPv4 and IPv6")
    if int(hi) < int(lo):
        raise SetSyntaxError(f"address range {s!r} is reversed")
    span = ((int(lo), int(hi)),)
    return (span, ()) if lo.version == 4 else ((), span)


def _port_leaf(s: str) -> _Value:
    try:
        if ":" in s:
            a, b = s.split(":", 1)
            lo = int(a) if a.strip() else 0
            hi = int(b) if b.strip() else PORT_MAX
        else:
            lo = hi = int(s)
    except ValueError:
        raise SetSyntaxError(f"{s!r} is not a port, a range or 'any'") from None
    if not (0 <= lo <= hi <= PORT_MAX):
        raise SetSyntaxError(f"port range {s!r} is outside 0-65535 or reversed")
    return (((lo, hi),),)


def parse_addresses(text: str, variables: Mapping[str, str] | None = None) -> AddressSet:
    v4, v6 = _Evaluator(variables or {}, _address_leaf, (V4_MAX, V6_MAX)).eval(str(text))
    return AddressSet(str(text), IntervalSet.of(v4, V4_MAX), IntervalSet.of(v6, V6_MAX))


def parse_ports(text: str | int, variables: Mapping[str, str] | None = None) -> PortSet:
    (ports,) = _Evaluator(variables or {}, _port_leaf, (PORT_MAX,)).eval(str(text))
    return PortSet(str(text), IntervalSet.of(ports, PORT_MAX))
