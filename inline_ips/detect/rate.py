"""Rate rules: count what a rule selects, per key, in a tumbling window.

Like fail2ban's failmanager, this module only counts and reports that a key
crossed its threshold; what to do about it (drop, block) is the verdict's job.
A key's window starts at its first counted packet and lasts ``window``
seconds; within it the count (or the number of distinct destination ports or
hosts) is compared with the threshold. A rule reports ``fired`` once per key
and window (one alert), and ``over`` for every later packet of that key in
the same window, so a drop keeps applying while the flood lasts. The number
of keys tracked per rule is capped (least recently used evicted, counted),
and distinct sets stop growing at the threshold, so memory stays bounded
whatever the traffic. Time is the packet's timestamp.

:meth:`RateTracker.update` is the specification; when the optional compiled
``inline_ips.detect._fastrate`` (``_fastrate.c``) is built, :meth:`RateEngine.evaluate`
has it do the commonest case (a packet counted 1, keyed by source or by source and
destination, into a window that is still open) and hand everything else to
``update`` untouched. ``INLINE_IPS_PURE_RATE=1`` turns the compiled part off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from inline_ips.compiled import load_twin
from inline_ips.detect.header import HeaderCheck
from inline_ips.flow import Flow
from inline_ips.packet import ACK, PROTO_TCP, RST, SYN, Packet
from inline_ips.rules.model import Measure, RateKey, RateRule

DEFAULT_MAX_KEYS = 100_000
# TCP flag combinations whose candidate rules a flow direction remembers. A real flow
# sees a handful; a flood cycling through all 256 values must not make every one of
# 65,536 flows hold 256 entries, so past this the answer is worked out per packet.
MAX_FLAGS_CACHED = 16


class _Window:
    __slots__ = ("count", "distinct", "fired", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.distinct: set[int] | None = None
        self.fired = False


def _one(pkt: Packet, flow: Flow, to_server: bool) -> int:
    return 1  # a packet; for the distinct measures, a candidate for the set


def _ip_bytes(pkt: Packet, flow: Flow, to_server: bool) -> int:
    return len(pkt.raw)


def _syn(pkt: Packet, flow: Flow, to_server: bool) -> int:
    return 1 if pkt.proto == PROTO_TCP and pkt.tcp_flags & (SYN | ACK) == SYN else 0


def _dns_response_bytes(pkt: Packet, flow: Flow, to_server: bool) -> int:
    dns = pkt.dns
    return dns.size if dns is not None and dns.is_response else 0


def _empty_connection(pkt: Packet, flow: Flow, to_server: bool) -> int:
    empty = (
        pkt.tcp_flags & RST
        and to_server
        and flow.established
        and flow.synack
        and flow.payload[0] == 0
        and flow.payload[1] == 0
    )
    return 1 if empty else 0


# What one packet adds to a window, by measure; chosen once per rule, not per packet.
_AMOUNT: dict[Measure, Callable[[Packet, Flow, bool], int]] = {
    Measure.PACKETS: _one,
    Measure.BYTES: _ip_bytes,
    Measure.SYNS: _syn,
    Measure.DST_PORTS: _one,
    Measure.DST_HOSTS: _one,
    Measure.DNS_RESPONSE_BYTES: _dns_response_bytes,
    Measure.EMPTY_CONNECTIONS: _empty_connection,
}
# The key a packet is counted under, by rule key.
_KEY_OF: dict[RateKey, Callable[[Packet, Flow], object]] = {
    RateKey.SRC: lambda pkt, flow: pkt.src,
    RateKey.DST: lambda pkt, flow: pkt.dst,
    RateKey.SRC_DST: lambda pkt, flow: (pkt.src, pkt.dst),
    RateKey.FLOW: lambda pkt, flow: flow.flow_id,
}


def fast_kind(measure: Measure, key_src: bool, key_src_dst: bool) -> int:
    """The kind code _fastrate.c reads (0: a rule it does not do): which key, what is counted."""
    base = {Measure.PACKETS: 1, Measure.DST_PORTS: 3, Measure.DST_HOSTS: 5}.get(measure, 0)
    if not base or not (key_src or key_src_dst):
        return 0
    return base + (1 if key_src_dst else 0)


_fastrate, FAST_RATE_REASON = load_twin(
    "inline_ips.detect._fastrate", "INLINE_IPS_PURE_RATE", lambda m: m.setup(_Window, Packet)
)
FAST_RATE = _fastrate is not None
"""True when rate rules that it can do are counted by the compiled ``_fastrate.update``."""
_fast_update: Callable[..., int] = _fastrate.update if _fastrate is not None else (lambda *a: 0)


class RateTracker:
    """The per-key windows of one rate rule."""

    def __init__(self, rule: RateRule, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.rule = rule
        self.header = HeaderCheck(rule.header)
        self.flow = rule.flow
        # flow: to_server/to_client is settled once per flow direction (see evaluate); the
        # established state is tested per packet, here without a call to flow_selects.
        self.established = rule.flow.established
        # Packets a measure can never count are skipped before any other test.
        self.need_flags = {Measure.SYNS: SYN, Measure.EMPTY_CONNECTIONS: RST}.get(rule.measure, 0)
        # The rule's measure, key and limits as plain attributes, worked out once: update()
        # runs for every packet a rule admits, and on Python 3.11 each ``Measure.X`` or
        # ``RateKey.X`` read there goes through EnumType.__getattr__ (about 0.1 us).
        m = rule.measure
        self.distinct = m in (Measure.DST_PORTS, Measure.DST_HOSTS)
        self.distinct_ports = m is Measure.DST_PORTS
        self.amount = _AMOUNT[m]
        self.unit = self.amount is _one  # 1 a packet (distinct: set growth), without the call
        self.key_src = rule.key is RateKey.SRC
        self.key_src_dst = rule.key is RateKey.SRC_DST
        self.key_of = _KEY_OF[rule.key]
        self.window = rule.window
        self.threshold = rule.threshold
        # Tested per packet (flags alone are settled by the per-flow, per-flags cache).
        self.per_packet = self.header.per_packet and not self.header.flags_only
        self.max_keys = max_keys
        # Least recently used first. An OrderedDict, not a dict: evicting a dict's first key
        # scans past the holes earlier deletions left at its front (44 us a packet at 100,000
        # keys under a spoofed flood, measured), where popitem(last=False) is O(1).
        self.keys: OrderedDict[object, _Window] = OrderedDict()
        self.evicted = 0
        # What _fastrate.update needs, or None when it cannot do this rule (or is not built).
        kind = fast_kind(m, self.key_src, self.key_src_dst)
        self.fast: tuple[Any, ...] | None = None
        if _fastrate is not None and kind:
            self.fast = (
                self.keys,
                self.keys.move_to_end,
                kind,
                float(self.window),
                self.threshold,
                RateTracker.update,
            )

    def update(self, pkt: Packet, flow: Flow, to_server: bool) -> int:
        """Count the packet; return 0 (under), 1 (crossed now: alert) or 2 (still over)."""
        # The commonest measure and keys inline: this runs for every packet a rule admits.
        if self.unit:
            amount = 1
        else:
            amount = self.amount(pkt, flow, to_server)
            if amount == 0:
                return 0
        if self.key_src_dst:
            key: object = (pkt.src, pkt.dst)
        elif self.key_src:
            key = pkt.src
        else:
            key = self.key_of(pkt, flow)
        keys = self.keys
        now = pkt.ts
        w = keys.get(key)
        if w is None or now - w.start >= self.window or now < w.start:
            if w is None:
                if len(keys) >= self.max_keys:
                    keys.popitem(last=False)  # the least recently used key
                    self.evicted += 1
                w = keys[key] = _Window(now)
            else:
                w = keys[key] = _Window(now)
                keys.move_to_end(key)
        else:
            # Still counting: move to the end so an active flooder is not the one evicted
            # when many other (spoofed) keys arrive.
            keys.move_to_end(key)
        threshold = self.threshold
        if self.distinct:
            value = pkt.dport if self.distinct_ports else pkt.dst
            if w.distinct is None:
                w.distinct = set()
            # Stop growing at the threshold: the set only has to prove the count.
            if len(w.distinct) < threshold:
                w.distinct.add(value)
            total = len(w.distinct)
        else:
            w.count += amount
            total = w.count
        if total < threshold:
            return 0
        if w.fired:
            return 2
        w.fired = True
        return 1


class RateEngine:
    """All rate rules; reports for each packet the rules over their threshold."""

    def __init__(self, rules: Sequence[RateRule], max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.trackers = [RateTracker(r, max_keys) for r in rules]
        self.max_keys = max_keys * len(self.trackers)  # the cap of all rules' keys together
        by_proto: dict[int | None, list[RateTracker]] = {}
        for t in self.trackers:
            by_proto.setdefault(t.rule.header.proto, []).append(t)
        self._any = tuple(by_proto.pop(None, []))
        self._by_proto = {p: tuple(ts) for p, ts in by_proto.items() if p is not None}

    def _admitted(self, pkt: Packet, to_server: bool) -> tuple[RateTracker, ...]:
        """The rules whose protocol, addresses, ports and flow direction admit this packet's tuple."""
        group = (*self._by_proto.get(pkt.proto, ()), *self._any)
        return tuple(
            t
            for t in group
            if t.header.selects_flow(pkt) and (t.flow.to_server is None or t.flow.to_server == to_server)
        )

    @staticmethod
    def _with_flags(admitted: tuple[RateTracker, ...], flags: int) -> tuple[RateTracker, ...]:
        return tuple(
            t
            for t in admitted
            if not (t.need_flags and not flags & t.need_flags)
            and (not t.header.flags_only or t.header.selects_packet_flags(flags))
        )

    def evaluate(self, pkt: Packet, flow: Flow, to_server: bool) -> Sequence[tuple[RateRule, int]]:
        # Protocol, addresses and ports are the flow's, and a flow sees few TCP flag
        # combinations: which rules admit the packet is worked out once per direction, then
        # once per flags value (and again after a reload: the cache names its engine).
        cache = flow.rate_cache
        if cache is None or cache[0] is not self:
            cache = flow.rate_cache = (self, [None, None])
        d = 0 if to_server else 1
        entry = cache[1][d]
        if entry is None:
            entry = cache[1][d] = (self._admitted(pkt, to_server), {})
        admitted, by_flags = entry
        f = pkt.tcp_flags
        cands = by_flags.get(f)
        if cands is None:
            cands = self._with_flags(admitted, f)
            if len(by_flags) < MAX_FLAGS_CACHED:
                by_flags[f] = cands
        out: list[tuple[RateRule, int]] | None = None  # almost every packet: none over
        for t in cands:
            if t.per_packet and not t.header.selects_packet(pkt):
                continue
            est = t.established
            if est is not None and flow.pkt_established != est:
                continue
            fast = t.fast
            state = (
                t.update(pkt, flow, to_server)
                if fast is None
                else _fast_update(fast, t, pkt, flow, to_server)
            )
            if state:
                if out is None:
                    out = []
                out.append((t.rule, state))
        return () if out is None else out

    @property
    def tracked_keys(self) -> int:
        return sum(len(t.keys) for t in self.trackers)

    @property
    def evicted(self) -> int:
        return sum(t.evicted for t in self.trackers)
