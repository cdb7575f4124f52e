"""Suricata's ``threshold`` and ``detection_filter``: how many of a rule's matches alert.

Counts a rule's matches per tracked key (``by_src``, ``by_dst``, ``by_both``
(the address pair, either way round), ``by_rule``, ``by_flow``) in a window
that starts at the key's first match and is fixed, not sliding: a match more
than ``seconds`` after that start restarts it. For each match the answer is
Suricata's (detect-engine-threshold.c):

- ``NO_ALERT``: neither the alert nor the rule's action (threshold below its
  count, detection_filter up to its count);
- ``ALERT``: alert and act;
- ``SILENT``: act without an alert (limit past its count, both past its count).

``limit`` alerts for the first ``count`` matches of a window; ``threshold``
alerts on every ``count``-th; ``both`` alerts once, at the ``count``-th;
``detection_filter`` alerts on every match after the first ``count``, and with
``unique_on`` counts distinct source or destination ports instead: a port
already seen in the window does not count again, but once more than
``count`` distinct ports were seen every match of the window alerts, as every
match past the count does without ``unique_on`` (so an entry keeps at most
``count`` + 1 ports). Entries are capped (least recently used evicted,
counted) so a spoofed flood cannot grow them without bound; ``by_flow``
entries live in the flow. This module does not decide what the action is.

Time is the packet's timestamp, compared in whole microseconds as Suricata
7/8 do (``SCTIME_CMP_LTE``): a match at exactly ``start + seconds`` is still in
the window, one microsecond later is not, and a match stamped before the
window's start (out-of-order packets) counts in it. Suricata 6 used whole
seconds and ``<``; this follows 7.x and 8.x (detect-engine-threshold.c
``ThresholdHandlePacket`` / ``ThresholdSetup`` + ``ThresholdCheckUpdate``),
which agree on every type used here. Where they differ from this module:
Suricata keys entries by rule revision too, and when its table is full a new
key gets no entry (no alert); here the least recently used entry is evicted.
"""

from __future__ import annotations

from collections import OrderedDict

from inline_ips.flow import Flow
from inline_ips.packet import Packet
from inline_ips.rules.model import Threshold

NO_ALERT = 0
ALERT = 1
SILENT = 2

DEFAULT_MAX_ENTRIES = 100_000
_US = 1_000_000


class _Entry:
    __slots__ = ("count", "new", "ports", "start")

    def __init__(self) -> None:
        self.start = 0  # microseconds
        self.count = 0
        self.new = True
        self.ports: set[int] | None = None


def _backoff(entry: _Entry, t: Threshold) -> int:
    """Suricata 8's backoff: alert at the count-th match, then each time the count is multiplied.

    No time window; the other matches still act (SILENT), as for limit. ``start``
    holds the next match number that alerts.
    """
    if entry.new:
        entry.new = False
        entry.start = t.count
    entry.count += 1
    if entry.count < entry.start:
        return SILENT
    entry.start *= t.multiplier
    return ALERT


class Thresholds:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        # At least one entry: with none, no count could ever reach a threshold.
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[tuple[object, ...], _Entry] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, t: Threshold, sid: int, gid: int, pkt: Packet, flow: Flow | None) -> int:
        """Count one match of rule (gid, sid) and say whether it alerts (module docstring)."""
        entry = self._entry(t, sid, gid, pkt, flow)
        if entry is None:
            return NO_ALERT
        now = round(pkt.ts * _US)
        if t.kind == "backoff":
            return _backoff(entry, t)
        if entry.new or now > entry.start + round(t.seconds * _US):
            entry.new = False
            entry.start = now
            entry.count = 0
            entry.ports = None
        if t.unique_on:
            port = pkt.sport if t.unique_on == "src_port" else pkt.dport
            if entry.ports is None:
                entry.ports = set()
            ports = entry.ports
            if len(ports) <= t.count:
                # Past the count the answer no longer changes: keep at most count + 1 ports.
                ports.add(port)
            return ALERT if len(ports) > t.count else NO_ALERT
        entry.count += 1
        c = entry.count
        kind = t.kind
        if kind == "limit":
            return ALERT if c <= t.count else SILENT
        if kind == "threshold":
            if c >= t.count:
                entry.count = 0  # counting starts again, within the same window
                return ALERT
            return NO_ALERT
        if kind == "both":
            if c == t.count:
                return ALERT
            return SILENT if c > t.count else NO_ALERT
        return ALERT if c > t.count else NO_ALERT  # detection_filter

    def _entry(self, t: Threshold, sid: int, gid: int, pkt: Packet, flow: Flow | None) -> _Entry | None:
        if t.track == "by_flow":
            if flow is None:
                return None  # Suricata: a packet without a flow never alerts for by_flow
            table = flow.thresholds
            if table is None:
                table = flow.thresholds = {}
            fkey = (gid, sid, t.kind)
            got = table.get(fkey)
            if not isinstance(got, _Entry):
                got = _Entry()
                table[fkey] = got
            return got
        key: tuple[object, ...]
        if t.track == "by_src":
            key = (gid, sid, t.kind, pkt.ip_version, pkt.src)
        elif t.track == "by_dst":
            key = (gid, sid, t.kind, pkt.ip_version, pkt.dst)
        elif t.track == "by_both":
            lo, hi = (pkt.src, pkt.dst) if pkt.src <= pkt.dst else (pkt.dst, pkt.src)
            key = (gid, sid, t.kind, pkt.ip_version, lo, hi)
        else:  # by_rule
            key = (gid, sid, t.kind)
        entries = self._entries
        e = entries.get(key)
        if e is None:
            if len(entries) >= self.max_entries:
                entries.popitem(last=False)
                self.evicted += 1
            e = entries[key] = _Entry()
        else:
            entries.move_to_end(key)
        return e
