"""Address and port sets in Suricata's syntax, compiled to sorted intervals.

Accepts ``any``, single values, CIDR blocks, ranges (``1024:``, ``:1023``,
``80:90``), lists (``[a,b]``, nested), negation (``!x``, ``![a,b]``) and
variables (``$HOME_NET``), resolved from a mapping given at parse time.
Parsing happens once, at load; matching is a binary search over merged
intervals so a list of thousands of networks costs O(log n) per packet.
This module does not know about rules or directions.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_VAR_DEPTH = 16


class SetSyntaxError(ValueError):
    """An address or port expression that cannot be parsed; the message says why."""


def _merge(intervals: list[tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sort and merge closed intervals into parallel (starts, ends) tuples."""
    if not intervals:
        return (), ()
    intervals.sort()
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in intervals:
        if ends and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return tuple(starts), tuple(ends)


def _in(starts: tuple[int, ...], ends: tuple[int, ...], value: int) -> bool:
    i = bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


@dataclass(frozen=True, slots=True)
class IntervalSet:
    """Included minus excluded intervals; ``everything`` means no include list was given."""

    everything: bool
    inc_starts: tuple[int, ...] = ()
    inc_ends: tuple[int, ...] = ()
    exc_starts: tuple[int, ...] = ()
    exc_ends: tuple[int, ...] = ()

    def contains(self, value: int) -> bool:
        if self.exc_starts and _in(self.exc_starts, self.exc_ends, value):
            return False
        return self.everything or _in(self.inc_starts, self.inc_ends, value)

    @property
    def is_any(self) -> bool:
        return self.everything and not self.exc_starts


@dataclass(frozen=True, slots=True)
class AddressSet:
    """IPv4 and IPv6 intervals kept apart, so an integer address is looked up in its own family."""

    text: str
    v4: IntervalSet
    v6: IntervalSet

    def contains(self, version: int, addr: int) -> bool:
        return (self.v6 if version == 6 else self.v4).contains(addr)

    @property
    def is_any(self) -> bool:
        return self.v4.is_any and self.v6.is_any


@dataclass(frozen=True, slots=True)
class PortSet:
    text: str
    ports: IntervalSet

    def contains(self, port: int) -> bool:
        return self.ports.contains(port)

    @property
    def is_any(self) -> bool:
        return self.ports.is_any


ANY_ADDRESS = AddressSet("any", IntervalSet(True), IntervalSet(True))
ANY_PORT = PortSet("any", IntervalSet(True))


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


# Parses one leaf (no list, negation or variable) into (family or 0 for ports, lo, hi).
_LeafFn = Callable[[str], tuple[int, int, int]]

# An element is (negated, kind, lo, hi) where kind is 4/6 for addresses or 0 for ports,
# or (negated, "any", 0, 0).
_Elem = tuple[bool, int | str, int, int]


def _expand(
    text: str,
    variables: Mapping[str, str],
    leaf: _LeafFn,
    negated: bool = False,
    depth: int = 0,
) -> list[_Elem]:
    if depth > MAX_VAR_DEPTH:
        raise SetSyntaxError("variables nest too deep (a variable refers to itself?)")
    s = text.strip()
    if not s:
        raise SetSyntaxError("empty value")
    if s.startswith("!"):
        return _expand(s[1:], variables, leaf, not negated, depth + 1)
    if s.startswith("["):
        if not s.endswith("]"):
            raise SetSyntaxError(f"list {s!r} is not closed with ']'")
        out: list[_Elem] = []
        for item in _split_list(s[1:-1]):
            out.extend(_expand(item, variables, leaf, negated, depth + 1))
        return out
    if s.startswith("$"):
        name = s[1:]
        if name not in variables:
            raise SetSyntaxError(f"undefined variable ${name}")
        return _expand(str(variables[name]), variables, leaf, negated, depth + 1)
    if s.lower() == "any":
        return [(negated, "any", 0, 0)]
    kind, lo, hi = leaf(s)
    return [(negated, kind, lo, hi)]


def _address_leaf(s: str) -> tuple[int, int, int]:
    try:
        net = ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise SetSyntaxError(f"{s!r} is not an IP address or network") from None
    return net.version, int(net.network_address), int(net.broadcast_address)


def _port_leaf(s: str) -> tuple[int, int, int]:
    try:
        if ":" in s:
            a, b = s.split(":", 1)
            lo = int(a) if a.strip() else 0
            hi = int(b) if b.strip() else 65535
        else:
            lo = hi = int(s)
    except ValueError:
        raise SetSyntaxError(f"{s!r} is not a port, a range or 'any'") from None
    if not (0 <= lo <= hi <= 65535):
        raise SetSyntaxError(f"port range {s!r} is outside 0-65535 or reversed")
    return 0, lo, hi


def _build(elems: list[_Elem], kind: int, maxval: int) -> IntervalSet:
    inc: list[tuple[int, int]] = []
    exc: list[tuple[int, int]] = []
    everything = False
    saw_include = False
    for neg, k, lo, hi in elems:
        if k == "any":
            if neg:
                exc.append((0, maxval))
            else:
                everything = True
                saw_include = True
            continue
        if k != kind:
            if not neg:
                saw_include = True  # an include of the other family only
            continue
        (exc if neg else inc).append((lo, hi))
        if not neg:
            saw_include = True
    # A list of only negations ("!10.0.0.0/8") means everything except those.
    if not saw_include:
        everything = True
    inc_s, inc_e = _merge(inc)
    exc_s, exc_e = _merge(exc)
    return IntervalSet(everything, inc_s, inc_e, exc_s, exc_e)


def parse_addresses(text: str, variables: Mapping[str, str] | None = None) -> AddressSet:
    elems = _expand(str(text), variables or {}, _address_leaf)
    return AddressSet(str(text), _build(elems, 4, 2**32 - 1), _build(elems, 6, 2**128 - 1))


def parse_ports(text: str | int, variables: Mapping[str, str] | None = None) -> PortSet:
    elems = _expand(str(text), variables or {}, _port_leaf)
    return PortSet(str(text), _build(elems, 0, 65535))
