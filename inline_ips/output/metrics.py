"""The Prometheus exporter: worker snapshots and kernel counters as metrics on an HTTP endpoint.

Does: :class:`MetricsHub` keeps the latest :class:`~inline_ips.telemetry.Snapshot`
of every worker (reported once a second, from this process or over a pipe
from a worker process) and whether each worker is alive. :class:`IpsCollector`
turns the hub into metric families at scrape time and adds what only the
kernel knows, read at that moment: the NFQUEUE counters of
``/proc/net/netfilter/nfnetlink_queue``, the packet counters of our iptables
rules (queued, bypassed, dropped by the blocklist) and the size of the
kernel blocklist. :func:`serve` publishes it with prometheus-client's HTTP
server, on loopback unless told otherwise. Every name follows Prometheus
conventions: the ``inline_ips_`` prefix, ``_total`` counters, seconds and
bytes. Per-worker series carry a ``queue`` label, so a worker that restarts
resets only its own series (which ``rate()`` handles) and the sum across
queues stays right. The ``reason`` label of ``inline_ips_drops_total`` is the
verdict's :class:`~inline_ips.verdict.Reason`, the same string as the EVE
``drop.reason``.

A kernel source that cannot be read (no permission, chain not installed
yet) leaves its series out of that scrape and counts
``inline_ips_exporter_errors_total{source}``; the scrape itself never fails.

Does not: count packets (workers do, in :mod:`inline_ips.telemetry`), touch
the verdict path, or change anything in the kernel.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from inline_ips.decode import DECODE_ERRORS
from inline_ips.options import DEFAULT_METRICS_LISTEN
from inline_ips.source.nfqueue import read_queue_stats
from inline_ips.telemetry import (
    ACTION_NAMES,
    DROP_REASONS,
    LATENCY_BUCKETS,
    OTHER_RULE,
    TABLES,
    Snapshot,
    empty_snapshot,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger(__name__)

DEFAULT_LISTEN: Final = DEFAULT_METRICS_LISTEN
STALE_SECONDS: Final = 5.0  # a worker silent this long counts as down
SIGNATURE_LABEL_MAX: Final = 120  # characters of a rule's msg kept in the signature label

QueueStatsReader = Callable[[], dict[int, dict[str, int]]]
FirewallReader = Callable[[], dict[tuple[str, str], tuple[int, int]]]
BlocklistReader = Callable[[], dict[str, tuple[int, int]]]  # family -> (entries, maxelem)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or a bare ``PORT`` (on 127.0.0.1) -> (host, port).

    Raises ValueError naming the value when it is none of these.
    """
    value = text.strip()
    host = "127.0.0.1"
    port_text = value
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise ValueError(f"metrics address {text!r}: expected [IPv6]:PORT")
        host, port_text = value[1:end], value[end + 2 :]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if not host or ":" in host:
            raise ValueError(f"metrics address {text!r}: expected HOST:PORT (IPv6 as [ADDR]:PORT)")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"metrics address {text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"metrics address {text!r}: port {port} out of range 1-65535")
    return host, port


def _counter(name: str, text: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, labels=labels)


def _gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


class MetricsHub:
    """The latest snapshot of every worker and whether it is alive; safe to use from any thread."""

    def __init__(
        self,
        queues: Sequence[int],
        stale_after: float = STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queues = tuple(queues)
        self._stale_after = stale_after
        self._clock = clock
        self._lock = threading.Lock()
        self._snaps: dict[int, Snapshot] = {q: empty_snapshot(q) for q in self.queues}
        self._seen: dict[int, float] = {}
        self._alive: dict[int, bool] = dict.fromkeys(self.queues, False)
        self._starts: Counter[int] = Counter()

    def worker_started(self, queue: int) -> None:
        with self._lock:
            self._starts[queue] += 1
            self._alive[queue] = True
            self._seen[queue] = self._clock()

    def worker_stopped(self, queue: int) -> None:
        with self._lock:
            self._alive[queue] = False

    def update(self, snap: Snapshot) -> None:
        with self._lock:
            self._snaps[snap.queue] = snap
            self._seen[snap.queue] = self._clock()

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return [self._snaps[q] for q in sorted(self._snaps)]

    def up(self, queue: int) -> bool:
        with self._lock:
            seen = self._seen.get(queue)
            return (
                self._alive.get(queue, False)
                and seen is not None
                and self._clock() - seen <= self._stale_after
            )

    def restarts(self, queue: int) -> int:
        with self._lock:
            return max(self._starts[queue] - 1, 0)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    version: str
    fail_open: bool
    start_time: float


def _q(snap: Snapshot) -> str:
    return str(snap.queue)


class IpsCollector(Collector):
    """Builds every inline-ips metric family at scrape time (see the module docstring)."""

    def __init__(
        self,
        hub: MetricsHub,
        info: ProcessInfo,
        *,
        read_queues: QueueStatsReader = read_queue_stats,
        read_firewall: FirewallReader | None = None,
        read_blocklist: BlocklistReader | None = None,
    ) -> None:
        self.hub = hub
        self.info = info
        self._read_queues = read_queues
        self._read_firewall = read_firewall
        self._read_blocklist = read_blocklist
        self._errors: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._kernel_lock = threading.Lock()  # two scrapes at once must not share a netlink socket
        # For inline_ips_unjudged_packets_total: last id_sequence per queue, ids of earlier bindings.
        self._ids: dict[int, int] = {}
        self._ids_retired = 0
        self._unjudged_total = 0
        self._unjudged_lock = threading.Lock()

    def _kernel(self, source: str, read: Callable[[], object]) -> object | None:
        try:
            with self._kernel_lock:
                return read()
        except Exception as e:  # a scrape must answer even when the kernel side is not readable
            self._errors[source] += 1
            if source not in self._logged:
                self._logged.add(source)
                log.warning("metrics: cannot read %s (left out of the scrape): %s", source, e)
            return None

    def collect(self) -> Iterator[Metric]:
        snaps = self.hub.snapshots()
        yield from self._process()
        yield from self._workers(snaps)
        yield from self._traffic(snaps)
        yield from self._detection(snaps)
        yield from self._flows(snaps)
        yield from self._tables(snaps)
        yield from self._rules(snaps)
        yield from self._sinks(snaps)
        yield self._latency(snaps)
        # The iptables counters first, then the queue's: a packet counted by the rule after
        # the first read cannot make the unjudged estimate too high (see _unjudged).
        rules = self._kernel("iptables", self._read_firewall) if self._read_firewall is not None else None
        stats = self._kernel("nfqueue", self._read_queues)
        yield from self._queues(stats)
        yield from self._firewall(rules)
        yield from self._unjudged(rules, stats)
        yield from self._blocklist()
        errors = _counter(
            "inline_ips_exporter_errors", "Kernel counters the exporter could not read, by source.", "source"
        )
        for source in ("nfqueue", "iptables", "ipset"):
            errors.add_metric([source], self._errors[source])
        yield errors

    def _process(self) -> Iterator[Metric]:
        info = _gauge(
            "inline_ips_info",
            "Always 1: the running version and its fail-open setting.",
            "version",
            "fail_open",
        )
        info.add_metric([self.info.version, "true" if self.info.fail_open else "false"], 1)
        yield info
        yield GaugeMetricFamily(
            "inline_ips_start_time_seconds", "Unix time the IPS started.", value=self.info.start_time
        )

    def _workers(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        up = _gauge("inline_ips_worker_up", "1 while the worker is alive and reported within 5 s.", "queue")
        restarts = _counter(
            "inline_ips_worker_restarts", "Times the supervisor restarted this queue's worker.", "queue"
        )
        cpu = _counter(
            "inline_ips_worker_cpu_seconds", "CPU time (user + system) of the worker process.", "queue"
        )
        rss = _gauge(
            "inline_ips_worker_resident_memory_bytes", "Resident memory of the worker process.", "queue"
        )
        for s in snaps:
            up.add_metric([_q(s)], 1 if self.hub.up(s.queue) else 0)
            restarts.add_metric([_q(s)], self.hub.restarts(s.queue))
            cpu.add_metric([_q(s)], s.cpu_seconds)
            rss.add_metric([_q(s)], s.resident_bytes)
        yield from (up, restarts, cpu, rss)

    def _traffic(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        packets = _counter("inline_ips_packets", "Packets judged, by verdict.", "queue", "verdict")
        nbytes = _counter("inline_ips_bytes", "Bytes (IP datagrams) judged, by verdict.", "queue", "verdict")
        drops = _counter(
            "inline_ips_drops", "Packets not let through, by reason (the EVE drop.reason).", "queue", "reason"
        )
        for s in snaps:
            for i, verdict in enumerate(ACTION_NAMES):
                packets.add_metric([_q(s), verdict], s.packets[i])
                nbytes.add_metric([_q(s), verdict], s.bytes[i])
            for reason in DROP_REASONS:
                drops.add_metric([_q(s), reason], s.drops.get(reason, 0))
        yield from (packets, nbytes, drops)

    def _detection(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        alerts = CounterMetricFamily(
            "inline_ips_alerts",
            'Alerts by rule (the first 200 rules to fire per worker; the rest under sid="other").',
            labels=["queue", "gid", "sid", "signature"],
        )
        decode = _counter(
            "inline_ips_decode_errors", "Malformed packets, by what the decoder found.", "queue", "reason"
        )
        engine = _counter(
            "inline_ips_engine_errors", "Internal errors; the packet was accepted (fail-open).", "queue"
        )
        discarded = _counter(
            "inline_ips_alerts_discarded",
            "Alerts beyond the per-packet limit (Suricata's alert_queue_overflow).",
            "queue",
        )
        blocks = _counter("inline_ips_blocks", "Hosts put into the kernel blocklist.", "queue")
        for s in snaps:
            for (gid, sid), n in sorted(s.alerts.items()):
                if (gid, sid) == OTHER_RULE:
                    alerts.add_metric([_q(s), "0", "other", "other"], n)
                else:
                    name = s.rule_names.get((gid, sid), "")[:SIGNATURE_LABEL_MAX]
                    alerts.add_metric([_q(s), str(gid), str(sid), name], n)
            # Every reason from the first scrape, so a healthy router's panel shows 0, not "no data".
            for reason in sorted({*DECODE_ERRORS, *s.decode_errors}):
                decode.add_metric([_q(s), reason], s.decode_errors.get(reason, 0))
            engine.add_metric([_q(s)], s.engine.get("engine_errors", 0))
            discarded.add_metric([_q(s)], s.engine.get("alerts_discarded", 0))
            blocks.add_metric([_q(s)], s.blocks)
        yield from (alerts, decode, engine, discarded, blocks)

    def _flows(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        active = _gauge("inline_ips_flows_active", "Flows in the flow table.", "queue")
        created = _counter("inline_ips_flows_created", "Flows seen.", "queue")
        bypassed = _counter(
            "inline_ips_flows_bypassed", "Flows handed to the kernel (connmark bypass).", "queue"
        )
        evicted = _counter(
            "inline_ips_flows_evicted", "Flows evicted because the flow table was full.", "queue"
        )
        for s in snaps:
            active.add_metric([_q(s)], s.flows_active)
            created.add_metric([_q(s)], s.flows_created)
            bypassed.add_metric([_q(s)], s.flows_bypassed)
            evicted.add_metric([_q(s)], s.flows_evicted)
        yield from (active, created, bypassed, evicted)

    def _tables(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        # The label is one of the fixed TABLES names: never an address, so cardinality stays fixed.
        entries = _gauge("inline_ips_table_entries", "Entries in each bounded table.", "queue", "table")
        cap = _gauge("inline_ips_table_capacity", "Size limit of each bounded table.", "queue", "table")
        overflows = _counter(
            "inline_ips_table_overflows",
            "Entries evicted (blocklist: refused) because the table was full.",
            "queue",
            "table",
        )
        used = _gauge(
            "inline_ips_app_memcap_used_bytes", "Bytes the HTTP/TLS/DNS parsers of all flows hold.", "queue"
        )
        limit = _gauge("inline_ips_app_memcap_bytes", "Budget of the HTTP/TLS/DNS parsers' bytes.", "queue")
        refused = _counter(
            "inline_ips_app_memcap_refused",
            "Parser feeds treated as lost bytes because the app memcap was spent.",
            "queue",
        )
        for s in snaps:
            for name in TABLES:
                n, c, over = s.tables.get(name, (0, 0, 0))
                if name == "app_bytes":
                    used.add_metric([_q(s)], n)
                    limit.add_metric([_q(s)], c)
                    refused.add_metric([_q(s)], over)
                else:
                    entries.add_metric([_q(s), name], n)
                    cap.add_metric([_q(s), name], c)
                    overflows.add_metric([_q(s), name], over)
        yield from (entries, cap, overflows, used, limit, refused)

    def _rules(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        loaded = _gauge("inline_ips_rules_loaded", "Rules in force, by kind.", "queue", "kind")
        skipped = _gauge(
            "inline_ips_rules_skipped", "Rules of .rules files that did not load.", "queue", "kind"
        )
        reloads = _counter("inline_ips_reloads", "Rule reloads, by outcome.", "queue", "outcome")
        last_ok = _gauge(
            "inline_ips_config_last_reload_successful", "1 if the last reload succeeded.", "queue"
        )
        last_time = _gauge(
            "inline_ips_config_last_reload_success_timestamp_seconds",
            "Unix time the rules in force were loaded.",
            "queue",
        )
        for s in snaps:
            for kind in ("signature", "rate"):
                loaded.add_metric([_q(s), kind], s.rules_loaded.get(kind, 0))
            for kind in ("invalid", "unsupported"):
                skipped.add_metric([_q(s), kind], s.rules_skipped.get(kind, 0))
            reloads.add_metric([_q(s), "ok"], s.engine.get("reloads_ok", 0))
            reloads.add_metric([_q(s), "failed"], s.engine.get("reloads_failed", 0))
            last_ok.add_metric([_q(s)], 1 if s.last_reload_ok else 0)
            last_time.add_metric([_q(s)], s.last_reload_success_time)
        yield from (loaded, skipped, reloads, last_ok, last_time)

    def _sinks(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        events = _counter("inline_ips_eve_events", "EVE events handed to each output.", "queue", "sink")
        dropped = _counter(
            "inline_ips_eve_dropped_events",
            "EVE events an output had to drop (its queue was full, or it failed).",
            "queue",
            "sink",
        )
        for s in snaps:
            for sink, c in sorted(s.sinks.items()):
                events.add_metric([_q(s), sink], c.get("events", 0))
                dropped.add_metric([_q(s), sink], c.get("dropped", 0))
        yield from (events, dropped)

    def _latency(self, snaps: Sequence[Snapshot]) -> Metric:
        hist = HistogramMetricFamily(
            "inline_ips_verdict_latency_seconds",
            "Time from a packet's arrival in the worker to its verdict.",
            labels=["queue"],
        )
        for s in snaps:
            buckets: list[tuple[str, float]] = []
            total = 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), s.latency_counts, strict=True):
                total += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
            hist.add_metric([_q(s)], buckets, s.latency_sum)
        return hist

    def _queues(self, stats: object) -> Iterator[Metric]:
        if not isinstance(stats, dict):
            return
        length = _gauge("inline_ips_queue_length", "Packets waiting in the NFQUEUE.", "queue")
        kdrops = _counter(
            "inline_ips_queue_kernel_drops",
            "Packets the kernel dropped because the queue was full (fail-closed only).",
            "queue",
        )
        udrops = _counter(
            "inline_ips_queue_user_drops",
            "Packets the kernel dropped because our socket buffer was full (fail-closed only).",
            "queue",
        )
        queued = _counter(
            "inline_ips_queue_packets",
            "Packets the kernel queued (resets when the queue is rebound).",
            "queue",
        )
        for q in self.hub.queues:
            st = stats.get(q)
            if st is None:
                continue  # not bound at the moment (worker restarting)
            length.add_metric([str(q)], st["queue_total"])
            kdrops.add_metric([str(q)], st["queue_dropped"])
            udrops.add_metric([str(q)], st["user_dropped"])
            queued.add_metric([str(q)], st["id_sequence"])
        yield from (length, kdrops, udrops, queued)

    def _firewall(self, rules: object) -> Iterator[Metric]:
        if not isinstance(rules, dict):
            return
        helps = {
            "queued": "Packets the iptables rules sent to NFQUEUE "
            "(also those passed unjudged: fail-open, no listener).",
            "bypassed": "Packets of bypassed flows that skipped the queue.",
            "blocked": "Packets the kernel dropped because their source is in the blocklist.",
        }
        for kind, text in helps.items():
            fam = CounterMetricFamily(f"inline_ips_firewall_{kind}_packets", text, labels=["family"])
            for (family, k), (packets, _bytes) in sorted(rules.items()):
                if k == kind:
                    fam.add_metric([family], packets)
            yield fam

    def _unjudged(self, rules: object, stats: object) -> Iterator[Metric]:
        """Packets our NFQUEUE rule matched that the kernel never queued: fail-open or no listener.

        The kernel counts neither (a full queue with the fail-open flag, or
        ``--queue-bypass`` with nobody bound, passes the packet without a
        queue id and without a counter), so it is the rule's packet counter
        minus the ids the queues handed out (``id_sequence``, which restarts
        when a worker rebinds its queue: the value before is kept). Kept
        monotonic, so a counter reset (``iptables -Z``) does not make it go
        backwards. Under a flood this is the fail-open count.
        """
        if not isinstance(rules, dict) or not isinstance(stats, dict):
            return
        with self._unjudged_lock:  # two scrapes at once
            queued = sum(packets for (_family, kind), (packets, _b) in rules.items() if kind == "queued")
            for q in self.hub.queues:
                st = stats.get(q)
                if st is None:
                    continue  # not bound now: its last id_sequence stays in _ids
                seq = st["id_sequence"]
                if seq < self._ids.get(q, 0):
                    self._ids_retired += self._ids[q]  # rebound: a fresh instance counts from 0
                self._ids[q] = seq
            ids = self._ids_retired + sum(self._ids.values())
            self._unjudged_total = total = max(self._unjudged_total, queued - ids)
        fam = _counter(
            "inline_ips_unjudged_packets",
            "Packets the iptables rule sent to NFQUEUE that passed unjudged: queue full (fail-open) "
            "or no worker bound (--queue-bypass).",
        )
        fam.add_metric([], total)
        yield fam

    def _blocklist(self) -> Iterator[Metric]:
        if self._read_blocklist is None:
            return
        sets = self._kernel("ipset", self._read_blocklist)
        if not isinstance(sets, dict):
            return
        hosts = _gauge("inline_ips_blocklist_hosts", "Addresses in the kernel blocklist.", "family")
        cap = _gauge("inline_ips_blocklist_capacity", "Size limit of the kernel blocklist.", "family")
        for family, (entries, maxelem) in sorted(sets.items()):
            hosts.add_metric([family], entries)
            cap.add_metric([family], maxelem)
        yield from (hosts, cap)


def kernel_blocklist_reader(set4: str, set6: str, max_entries: int) -> BlocklistReader:
    """Reads the entries and capacity of the two blocklist ipsets, with one netlink socket kept open."""
    from inline_ips.respond.block import KernelBlocklist  # noqa: PLC0415 - pyroute2 only when exporting

    blocks = KernelBlocklist(set4, set6, max_entries)

    def read() -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for name, family in ((set4, "ipv4"), (set6, "ipv6")):
            h = blocks.info()[name]
            if h.get("exists"):
                out[family] = (int(h["entries"]), int(h["maxelem"]))
        return out

    return read


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged (one line per scrape would flood the journal)."""


class Exporter:
    """The HTTP endpoint serving one collector; :meth:`close` stops it.

    The port is bound at construction, serving starts with :meth:`start`
    (at once unless ``start=False``): ``inline-ips run`` binds before it
    touches the firewall, so a port in use fails the start cleanly, and
    starts the serving thread only after dropping privileges, because
    capabilities are per thread (:mod:`inline_ips.privilege`).
    """

    def __init__(self, collector: Collector, host: str, port: int, *, start: bool = True) -> None:
        registry = CollectorRegistry()
        registry.register(collector)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            server = make_server(host, port, make_wsgi_app(registry), Server, handler_class=_QuietHandler)
        except OSError as e:
            raise OSError(e.errno, f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from e
        self._server: WSGIServer = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        self.host = host
        self.port = server.server_port
        if not is_loopback(host):
            log.warning(
                "metrics: serving on %s, not loopback: whoever reaches it sees rule names and traffic",
                host,
            )
        if start:
            self.start()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=2)
        self._server.server_close()


def is_loopback(host: str) -> bool:
    """Whether a listen address is on loopback only (``0.0.0.0`` and ``::`` are not)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def sum_counts(snaps: Iterable[Snapshot], pick: Callable[[Snapshot], Mapping[str, int]]) -> Counter[str]:
    """The sum over workers of one mapping of counters."""
    out: Counter[str] = Counter()
    for s in snaps:
        out.update(pick(s))
    return out


__all__ = [
    "DEFAULT_LISTEN",
    "Exporter",
    "IpsCollector",
    "MetricsHub",
    "ProcessInfo",
    "kernel_blocklist_reader",
    "parse_listen",
    "sum_counts",
]
