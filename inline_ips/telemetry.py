"""What one worker counts per packet, and the snapshot it reports once a second.

Does: :class:`Telemetry` keeps the verdict path's own counts in plain lists
and dicts (packets and bytes by action, non-accepts by reason, alerts by
rule, a verdict-latency histogram), cheap enough to update on every packet
(a few list increments and one ``bisect``); :meth:`Telemetry.snapshot` turns
them, together with the engine's and the sinks' counters, into a frozen,
picklable :class:`Snapshot`. The Prometheus exporter, the EVE ``stats`` event
and ``inline-ips top`` all read snapshots, never the live counters, so a
worker in another process reports the same way as one in this process.

Alerts by rule are a bounded label set: the first :data:`MAX_RULE_SERIES`
rules that fire get their own count, every later one is counted under
:data:`OTHER_RULE`. A series that exists keeps counting (a counter must not
move between labels), which a "top N at the moment" scheme would break.

The engine's bounded tables (flows, fragments being reassembled, rate keys,
threshold entries, blocklist, the app-layer byte budget) are reported as
``tables``: for each, its size now, its cap, and how many entries it evicted
(or, for the blocklist and the app memcap, refused) because it was full —
read at snapshot time, so the per-packet path only bumps each table's own
counter where the eviction happens. The label set is the fixed list
:data:`TABLES`, never an address.

Does not: serve or format metrics (``output/metrics``), write events, or read
anything from the kernel (queue and firewall counters are read at scrape time
by the exporter).
"""

from __future__ import annotations

import os
import resource
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from inline_ips.verdict import DROP_ACTION, Action, Alert, Reason

if TYPE_CHECKING:
    from inline_ips.engine import Engine
    from inline_ips.rules.loader import LoadReport

# Seconds; the upper bounds of the verdict latency histogram (Prometheus ``le``).
LATENCY_BUCKETS: Final = (
    1e-05, 2.5e-05, 5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip
MAX_RULE_SERIES: Final = 200
OTHER_RULE: Final = (0, 0)  # (gid, sid) of the "every other rule" series
ACTION_NAMES: Final = tuple(a.name.lower() for a in Action)  # index = Action value
DROP_REASONS: Final = tuple(r.value for r in Reason if r not in (Reason.NONE, Reason.NORMALIZE))

RuleKey = tuple[int, int]  # (gid, sid)
# The engine's bounded tables, in report order (the Prometheus ``table`` label).
TABLES: Final = ("flows", "fragments", "rate_keys", "thresholds", "blocklist", "app_bytes")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One worker's counters at one moment; plain data, so it can cross a pipe."""

    queue: int
    wall_time: float
    packets: tuple[int, ...]  # by Action value
    bytes: tuple[int, ...]  # by Action value
    drops: Mapping[str, int]  # Reason value -> packets not let through
    alerts: Mapping[RuleKey, int]
    rule_names: Mapping[RuleKey, str]
    latency_counts: tuple[int, ...]  # per bucket, not cumulative; the last is +Inf
    latency_sum: float
    decode_errors: Mapping[str, int] = field(default_factory=dict)
    engine: Mapping[str, int] = field(default_factory=dict)  # Engine.stats
    flows_active: int = 0
    flows_created: int = 0
    flows_evicted: int = 0
    flows_bypassed: int = 0
    blocks: int = 0
    rules_loaded: Mapping[str, int] = field(default_factory=dict)  # "signature" | "rate"
    rules_skipped: Mapping[str, int] = field(default_factory=dict)  # "invalid" | "unsupported"
    last_reload_ok: bool = True
    last_reload_success_time: float = 0.0
    sinks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # sink -> events, dropped
    cpu_seconds: float = 0.0
    resident_bytes: int = 0
    # TABLES name -> (entries now, cap, evicted or refused because full); app_bytes in bytes.
    tables: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def alerts_total(self) -> int:
        return sum(self.alerts.values())


def empty_snapshot(queue: int) -> Snapshot:
    n = len(ACTION_NAMES)
    return Snapshot(
        queue=queue,
        wall_time=0.0,
        packets=(0,) * n,
        bytes=(0,) * n,
        drops={},
        alerts={},
        rule_names={},
        latency_counts=(0,) * (len(LATENCY_BUCKETS) + 1),
        latency_sum=0.0,
    )


def skipped_by_kind(report: LoadReport) -> dict[str, int]:
    """Rules of .rules files that did not load, by "invalid" / "unsupported"."""
    out: Counter[str] = Counter()
    for fr in report.rule_files:
        for reason, n in fr.skipped.items():
            out[fr.kinds.get(reason, "invalid")] += n
    return dict(out)


def table_stats(engine: Engine) -> dict[str, tuple[int, int, int]]:
    """(entries, cap, evicted-or-refused) of each bounded table of ``engine``; O(rate rules)."""
    flows = engine.flows
    defrag = engine.defrag
    rates = engine.rates
    blocks = engine.blocklist
    memcap = engine.app_memcap
    return {
        "flows": (len(flows), flows.opts.max_flows, flows.stats["evicted"]),
        "fragments": (len(defrag), defrag.max_datagrams, defrag.stats["evicted"]),
        "rate_keys": (rates.tracked_keys, rates.max_keys, rates.evicted),
        "thresholds": (len(engine.thresholds), engine.thresholds.max_entries, engine.thresholds.evicted),
        "blocklist": (len(blocks), blocks.max_entries, blocks.stats["refused_full"]),
        "app_bytes": (memcap.used, memcap.cap, memcap.refused),
    }


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class Telemetry:
    """The counters one worker's verdict path updates; read through :meth:`snapshot`.

    Only the verdict thread writes; another thread may take a snapshot at
    any time (each copy is one C-level operation under the GIL, so it sees
    every counter whole, though not all at exactly the same packet).
    """

    __slots__ = (
        "_other",
        "alerts",
        "blocks",
        "bytes",
        "drops",
        "last_reload_ok",
        "last_reload_success_time",
        "latency_counts",
        "latency_sum",
        "packets",
        "queue",
        "rule_names",
        "rules_loaded",
        "rules_skipped",
    )

    def __init__(self, queue: int, report: LoadReport | None = None, now: Callable[[], float] = time.time):
        self.queue = queue
        self.packets = [0] * len(ACTION_NAMES)
        self.bytes = [0] * len(ACTION_NAMES)
        self.drops: Counter[str] = Counter()
        self.alerts: dict[RuleKey, int] = {}
        self.rule_names: dict[RuleKey, str] = {OTHER_RULE: "other"}
        self._other = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.blocks = 0
        self.rules_loaded: dict[str, int] = {}
        self.rules_skipped: dict[str, int] = {}
        self.last_reload_ok = True
        self.last_reload_success_time = now()
        if report is not None:
            self.rules_changed(report, self.last_reload_success_time)

    def rules_changed(self, report: LoadReport, when: float) -> None:
        rs = report.ruleset
        self.rules_loaded = {"signature": len(rs.signatures), "rate": len(rs.rates)}
        self.rules_skipped = skipped_by_kind(report)
        self.last_reload_ok = True
        self.last_reload_success_time = when

    def reload_failed(self) -> None:
        self.last_reload_ok = False

    def count(self, action: Action, size: int, reason: Reason, seconds: float) -> None:
        """One judged packet: its verdict, its size, why it was stopped, how long judging took."""
        self.packets[action] += 1
        self.bytes[action] += size
        if action >= DROP_ACTION:
            self.drops[reason] += 1
        self.latency_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def count_alerts(self, alerts: Iterable[Alert]) -> None:
        counts = self.alerts
        for a in alerts:
            key = (a.gid, a.sid)
            n = counts.get(key)
            if n is not None:
                counts[key] = n + 1
            elif len(counts) < MAX_RULE_SERIES:
                counts[key] = 1
                self.rule_names[key] = a.msg
            else:
                self._other += 1

    def snapshot(
        self, engine: Engine, sinks: Mapping[str, Mapping[str, int]] | None = None, now: float | None = None
    ) -> Snapshot:
        alerts = dict(self.alerts)
        if self._other:
            alerts[OTHER_RULE] = self._other
        flows = engine.flows
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return Snapshot(
            queue=self.queue,
            wall_time=time.time() if now is None else now,
            packets=tuple(self.packets),
            bytes=tuple(self.bytes),
            drops=dict(self.drops),
            alerts=alerts,
            rule_names=dict(self.rule_names),
            latency_counts=tuple(self.latency_counts),
            latency_sum=self.latency_sum,
            decode_errors=dict(engine.decode_errors),
            engine=dict(engine.stats),
            flows_active=len(flows),
            flows_created=flows.stats["created"],
            flows_evicted=flows.stats["evicted"],
            flows_bypassed=engine.stats["flows_bypassed"],
            blocks=self.blocks,
            rules_loaded=dict(self.rules_loaded),
            rules_skipped=dict(self.rules_skipped),
            last_reload_ok=self.last_reload_ok,
            last_reload_success_time=self.last_reload_success_time,
            sinks={k: dict(v) for k, v in (sinks or {}).items()},
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            resident_bytes=_resident_bytes(),
            tables=table_stats(engine),
        )


__all__ = [
    "ACTION_NAMES",
    "DROP_REASONS",
    "LATENCY_BUCKETS",
    "MAX_RULE_SERIES",
    "OTHER_RULE",
    "TABLES",
    "Snapshot",
    "Telemetry",
    "empty_snapshot",
    "skipped_by_kind",
    "table_stats",
]
