"""``inline-ips run``: the engine in the data path of a Linux router.

Validates the rules and opens the EVE log first (so a mistake fails before
any firewall change), installs the iptables chains and ipsets, then judges
packets from NFQUEUE until SIGTERM or SIGINT, and always removes its rules on
the way out. SIGHUP reloads the rule files atomically (a broken file is
reported and the old rules stay in force; the new ones are compiled off the
verdict path and swapped in between two packets) and reopens the EVE log for
logrotate; after a good reload the worker of the first queue (the only one
that writes it) swaps the new allowlist into the kernel's allowlist ipsets,
and a broken file leaves them as they were. With ``workers > 1`` the kernel
spreads flows over that many queues (``--queue-balance``) and one process
serves each; the parent supervises them and restarts one that dies (traffic
passes meanwhile: ``--queue-bypass`` and fail-open). What the engine decides
is carried out here: blocks go to the kernel ipset, rejects are sent, events
are logged.

Privileges: files are created under umask ``027``. Started as root with
``--user NAME``, it drops to that user once the rules are installed, the
metrics port is bound and the EVE file exists (created as the user), keeping
only CAP_NET_ADMIN and CAP_NET_RAW (:mod:`inline_ips.privilege`), before any
thread or worker starts, so every thread and process runs unprivileged;
started unprivileged with those two capabilities (systemd ``User=`` and
``AmbientCapabilities=``) it runs the same. Signals that arrive during
set-up are held and acted on once the handlers exist.

Every worker reports a :class:`~inline_ips.telemetry.Snapshot` of its
counters once a second (directly, or over a pipe to the parent); the process
that owns the :class:`~inline_ips.output.metrics.MetricsHub` serves them to
Prometheus (:data:`~inline_ips.output.metrics.DEFAULT_LISTEN` unless told
otherwise) and writes the EVE ``stats`` event every ``stats_interval``
seconds. The exporter binds before the firewall is touched, so a port in use
fails the start instead of leaving a half-set-up router.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from inline_ips import __version__, gcpolicy
from inline_ips.engine import Engine, Result
from inline_ips.firewall.iptables import (
    FirewallConfig,
    FirewallError,
    counters,
    hold_xtables_lock,
    install,
    remove,
    update_allowlist,
)
from inline_ips.options import EngineOptions, PrivilegeOptions
from inline_ips.output.eve import EveWriter, alert_event, drop_event
from inline_ips.output.eve_stats import DEFAULT_INTERVAL, StatsLogger
from inline_ips.output.metrics import (
    DEFAULT_LISTEN,
    Exporter,
    IpsCollector,
    MetricsHub,
    ProcessInfo,
    kernel_blocklist_reader,
    parse_listen,
)
from inline_ips.output.sinks import AsyncSink, SinkOptions, build_sinks
from inline_ips.privilege import (
    PrivilegeError,
    User,
    cap_names,
    check_capabilities,
    drop_to,
    files_as,
    lookup_user,
)
from inline_ips.respond.block import KernelBlocklist
from inline_ips.respond.reject import Rejecter
from inline_ips.rules.loader import LoadReport, load_rule_files
from inline_ips.rules.yaml_loader import RulesError
from inline_ips.source.nfqueue import ACCEPT, BYPASS, PROC_QUEUES, Decision, NfqueueSource, parse_queue_stats
from inline_ips.telemetry import Snapshot, Telemetry
from inline_ips.verdict import ACCEPT_ACTION, DROP_ACTION, Action

log = logging.getLogger("inline_ips")

EVE_FLUSH_SECONDS = 0.5
METRICS_SECONDS = 1.0  # how often a worker reports its counters
RESTART_BACKOFF_SECONDS = 1.0
SINK_CLOSE_SECONDS = 2.0

Publish = Callable[[Snapshot], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    rules: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    engine: EngineOptions = field(default_factory=EngineOptions)
    queue_maxlen: int = 4096
    busy_poll_us: int = 0  # see NfqueueSource: spin this long after a packet before sleeping
    fail_open: bool = True
    eve: str | None = None
    reject_rate: float = 100.0
    metrics: str | None = DEFAULT_LISTEN  # HOST:PORT of the Prometheus endpoint; None: no exporter
    stats_interval: float = DEFAULT_INTERVAL  # seconds between EVE stats events; 0: none
    sinks: SinkOptions = field(default_factory=SinkOptions)  # syslog and webhook outputs
    privilege: PrivilegeOptions = field(default_factory=PrivilegeOptions)  # --user, umask


class Worker:
    """One queue and one engine: judges each packet and carries out the verdict's side effects."""

    def __init__(
        self,
        queue_num: int,
        opts: RunOptions,
        report: LoadReport,
        publish: Publish | None = None,
        owns_allowlist: bool = False,
    ) -> None:
        self.queue_num = queue_num
        self.opts = opts
        # One process writes the kernel allowlist on reload: the worker of the first queue.
        self.owns_allowlist = owns_allowlist
        self.engine = Engine(report.ruleset, opts.engine)
        self.telemetry = Telemetry(queue_num, report)
        self.publish = publish
        self._file_events = 0
        fw = opts.firewall
        self.kernel_blocks = KernelBlocklist(fw.block_set4, fw.block_set6, fw.block_max)
        self.rejecter = Rejecter(rate_per_second=opts.reject_rate)
        self.eve = EveWriter(opts.eve) if opts.eve else None
        # Built here, in the process that judges: a sink's thread would not survive a fork.
        self.sinks: list[AsyncSink] = build_sinks(opts.sinks)
        # The verdict path writes events; a timer flushes them, so the log is
        # current within EVE_FLUSH_SECONDS even when traffic stops.
        self._eve_lock = threading.Lock()
        self._reload = threading.Event()
        self.stop = threading.Event()

    # Called from signal handlers: only set a flag; the housekeeping thread reloads.
    def request_reload(self) -> None:
        self._reload.set()

    def handle(self, raw: bytes, ts: float) -> Decision:
        started = time.perf_counter()
        res = self.engine.process(raw, ts)
        v = res.verdict
        action = v.action
        tel = self.telemetry
        if res.alerts or action >= DROP_ACTION:
            if res.alerts:
                tel.count_alerts(res.alerts)
            try:
                self._side_effects(res, raw)
            except Exception as e:  # a full disk must not turn a drop into an accept
                self._side_effect_failed(e)
        tel.count(action, len(raw), v.reason, time.perf_counter() - started)
        if action is ACCEPT_ACTION:
            return BYPASS if res.bypass else ACCEPT  # shared: most packets allocate no decision
        return Decision(action, v.replacements, res.bypass)

    def _side_effect_failed(self, e: Exception) -> None:
        stats = self.engine.stats
        stats["side_effect_errors"] += 1
        # Once, then every 10,000th: a failing disk would otherwise flood the journal.
        if stats["side_effect_errors"] % 10_000 == 1:
            log.error(
                "queue %d: could not log or carry out a verdict's side effect (verdict kept): %s",
                self.queue_num,
                e,
            )

    def _side_effects(self, res: Result, raw: bytes) -> None:
        v = res.verdict
        if res.blocked is not None:
            version, addr, seconds = res.blocked
            if self.kernel_blocks.add(version, addr, seconds):
                self.telemetry.blocks += 1
        if v.action is Action.REJECT:
            self.rejecter.send(raw)
        eve = self.eve
        sinks = self.sinks
        if eve is None and not sinks:
            return
        blocked = v.action.blocks
        events = [
            alert_event(res.packet, res.flow_id, res.to_server, a, blocked, res.app_proto) for a in res.alerts
        ]
        if blocked:
            events.append(drop_event(res.packet, res.flow_id, v))
        for sink in sinks:
            for ev in events:
                sink.submit(ev)  # never blocks: a bounded queue, drained by the sink's thread
        if eve is not None:
            with self._eve_lock:
                for ev in events:
                    eve.write(ev)
                    self._file_events += 1

    def _do_reload(self) -> None:
        """Reopen the EVE log and load the rules again; the engine swaps them in one step."""
        if self.eve is not None:
            try:
                with self._eve_lock:
                    self.eve.reopen()
            except OSError as e:
                log.error("cannot reopen the EVE log, still writing to the old one: %s", e)
        started = time.monotonic()
        try:
            report = load_rule_files(self.opts.rules, self.opts.variables)
            self.engine.reload(report.ruleset)
        except RulesError as e:
            self.engine.stats["reloads_failed"] += 1
            self.telemetry.reload_failed()
            log.error("reload failed, the previous rules stay in force:\n%s", e)
            return
        except Exception:  # a compile error deeper down (hyperscan, RE2) must not stop the worker
            self.engine.stats["reloads_failed"] += 1
            self.telemetry.reload_failed()
            log.exception("reload failed, the previous rules stay in force")
            return
        finally:
            # The loader's own cycles (and a failed load's) are freed now, and the new rules frozen.
            freed, took = gcpolicy.settle()
        self.engine.stats["reloads_ok"] += 1
        self.telemetry.rules_changed(report, time.time())
        if self.owns_allowlist:
            self._update_kernel_allowlist(report)
        rs = report.ruleset
        log.info(
            "queue %d: reloaded %d signature and %d rate rules in %.0f ms (%d objects collected in %.0f ms)",
            self.queue_num,
            len(rs.signatures),
            len(rs.rates),
            (time.monotonic() - started) * 1000,
            freed,
            took * 1000,
        )

    def _update_kernel_allowlist(self, report: LoadReport) -> None:
        """After a good reload: the kernel's allowlist follows the rules' (an atomic ipset swap)."""
        try:
            n4, n6 = update_allowlist(self.opts.firewall, report.ruleset.allowlist)
        except FirewallError as e:
            log.error("reload: the kernel allowlist keeps its previous contents: %s", e)
            return
        log.info("reload: kernel allowlist now %d IPv4 and %d IPv6 networks", n4, n6)

    def sink_counters(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if self.eve is not None:
            out["file"] = {"events": self._file_events, "dropped": self.engine.stats["side_effect_errors"]}
        for sink in self.sinks:
            c = sink.counters()
            out[sink.name] = {"events": c["queued"], "dropped": c["dropped_full"] + c["dropped_error"]}
        return out

    def snapshot(self) -> Snapshot:
        return self.telemetry.snapshot(self.engine, self.sink_counters())

    def _report(self) -> None:
        if self.publish is None:
            return
        try:
            self.publish(self.snapshot())
        except Exception as e:  # the parent went away, or a pipe broke: keep judging packets
            log.warning("queue %d: cannot report counters: %s", self.queue_num, e)

    def _housekeeping(self, bound: threading.Event) -> None:
        """Off the verdict path: says when the queue is bound, then reloads on request, flushes the EVE
        log twice a second and reports counters."""
        # "judging packets" means the queue is bound: until then the kernel's --queue-bypass passes
        # packets unjudged, and whoever waits for this line (an operator, the tests) must know.
        while not bound.wait(0.05):
            if self.stop.is_set():
                return
        log.info(
            "queue %d: judging packets (fail-%s)", self.queue_num, "open" if self.opts.fail_open else "closed"
        )
        next_report = time.monotonic()
        while not self.stop.is_set():
            if self._reload.wait(EVE_FLUSH_SECONDS):
                self._reload.clear()
                self._do_reload()
            if self.eve is not None:
                try:
                    with self._eve_lock:
                        self.eve.flush()
                except OSError as e:
                    self._side_effect_failed(e)
            if time.monotonic() >= next_report:
                # From now, not from the missed time: after a long reload, one report, not a burst.
                next_report = time.monotonic() + METRICS_SECONDS
                self._report()

    def run(self) -> None:
        source = NfqueueSource(
            self.queue_num,
            self.handle,
            maxlen=self.opts.queue_maxlen,
            spin_us=self.opts.busy_poll_us,
            fail_open=self.opts.fail_open,
            bypass_mark=self.opts.firewall.bypass_mark,
        )
        # No full collection on the verdict thread from now on (see gcpolicy); the rules and
        # whatever set-up built are collected once and frozen out of the young collections.
        gcpolicy.configure()
        gcpolicy.settle()
        flusher = threading.Thread(
            target=self._housekeeping, args=(source.ready,), name="housekeeping", daemon=True
        )
        flusher.start()
        for sink in self.sinks:
            sink.start()
        try:
            source.run(self.stop)
        finally:
            self.stop.set()
            flusher.join(timeout=2)
            if self.eve is not None:
                with self._eve_lock:
                    self.eve.close()
            for sink in self.sinks:
                sink.close(SINK_CLOSE_SECONDS)  # what is still queued after that is counted as dropped
            self._report()  # the final counts, so the exporter and the stats event see every packet
            log.info(
                "queue %d: stopped after %d packets (%s)",
                self.queue_num,
                self.engine.stats["packets"],
                ", ".join(f"{k} {v}" for k, v in sorted(source.stats.items())),
            )


def _install_signals(on_stop: Callable[[], None], on_hup: Callable[[], None]) -> None:
    def stop(_sig: int, _frame: FrameType | None) -> None:
        on_stop()

    def hup(_sig: int, _frame: FrameType | None) -> None:
        on_hup()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)


def log_rule_files(report: LoadReport) -> None:
    """One line per .rules file: how much loaded, and the most common reasons for the rest."""
    for fr in report.rule_files:
        if fr.error:
            log.error("%s", fr.error)
            continue
        reasons = ", ".join(f"{n} {r}" for r, n in fr.skipped.most_common(3))
        log.info(
            "%s: %d of %d rules loaded%s",
            fr.file,
            fr.loaded,
            fr.rules,
            f" (skipped: {reasons})" if reasons else "",
        )


class _EarlySignals:
    """SIGTERM, SIGINT and SIGHUP remembered while setting up, acted on once the handlers exist.

    Without this, a SIGHUP during set-up (logrotate, a reload sent too early)
    kills the process with the default action, leaving its rules in place; a
    forked worker would run the supervisor's handler it inherited.
    """

    def __init__(self) -> None:
        self.stop = False
        self.hup = False
        _install_signals(self._on_stop, self._on_hup)

    def _on_stop(self) -> None:
        self.stop = True

    def _on_hup(self) -> None:
        self.hup = True

    def hand_over(self, on_stop: Callable[[], None], on_hup: Callable[[], None]) -> None:
        """Install the real handlers and deliver what arrived before them."""
        _install_signals(on_stop, on_hup)
        if self.hup:
            on_hup()
        if self.stop:
            on_stop()


def _child(
    queue_num: int, opts: RunOptions, report: LoadReport, conn: Connection, restarted: bool = False
) -> None:
    early = _EarlySignals()  # first: the handlers inherited from the supervisor would signal siblings
    owns = queue_num == opts.firewall.queue_num
    worker = Worker(queue_num, opts, report, publish=conn.send, owns_allowlist=owns)
    early.hand_over(worker.stop.set, worker.request_reload)
    if restarted:
        # The rules loaded at start-up may be out of date (the siblings may have reloaded since):
        # bind at once with them, and reload the files as SIGHUP would, off the verdict path.
        # A failed load keeps the start-up rules, counted and logged as any failed reload.
        log.info("queue %d: restarted; reloading the rule files as they are now", queue_num)
        worker.request_reload()
    worker.run()


class _Observability:
    """What the process that owns the hub runs beside the workers: the exporter and the stats logger."""

    def __init__(
        self, opts: RunOptions, hub: MetricsHub, read_queues: Callable[[], dict[int, dict[str, int]]]
    ) -> None:
        fw = opts.firewall
        self.exporter: Exporter | None = None
        self.stats: StatsLogger | None = None
        start = time.time()
        if opts.metrics:
            host, port = parse_listen(opts.metrics)
            collector = IpsCollector(
                hub,
                ProcessInfo(__version__, opts.fail_open, start),
                read_queues=read_queues,
                read_firewall=lambda: counters(fw),
                read_blocklist=kernel_blocklist_reader(fw.block_set4, fw.block_set6, fw.block_max),
            )
            # Bound now, served from start(): the serving thread must start after the privilege drop.
            self.exporter = Exporter(collector, host, port, start=False)
            log.info(
                "metrics on http://%s:%d/metrics",
                host if ":" not in host else f"[{host}]",
                self.exporter.port,
            )
        if opts.eve and opts.stats_interval > 0:
            self.stats = StatsLogger(opts.eve, opts.stats_interval, hub.snapshots, read_queues, start)

    def start(self) -> None:
        if self.exporter is not None:
            self.exporter.start()
        if self.stats is not None:
            self.stats.start()

    def request_reopen(self) -> None:
        if self.stats is not None:
            self.stats.request_reopen()

    def close(self) -> None:
        if self.stats is not None:
            self.stats.close()
        if self.exporter is not None:
            self.exporter.close()


class QueueStatsFile:
    """``/proc/net/netfilter/nfnetlink_queue``, opened once and re-read through that descriptor.

    The file is ``0440 root``: a process that drops to a user (``--user``)
    keeps reading the queue counters through the descriptor opened before
    the drop. A process started unprivileged (systemd ``User=``) cannot open
    it at all; the queue metrics are then left out (counted in
    ``inline_ips_exporter_errors_total{source="nfqueue"}``), and
    ``inline_ips_unjudged_packets_total`` with them.
    """

    def __init__(self, path: Path = PROC_QUEUES) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        """Open now (after the NFQUEUE rule exists, so the module is loaded); an error is logged."""
        if self._fd is not None:
            return
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            pass  # nfnetlink_queue not loaded yet: read() tries the path
        except OSError as e:
            log.warning(
                "cannot read %s (%s): the queue length, kernel drops and unjudged packets are not "
                "exported; start as root with --user to keep them",
                self.path,
                e.strerror or e,
            )

    def read(self) -> dict[int, dict[str, int]]:
        if self._fd is None:
            try:
                return parse_queue_stats(self.path.read_text())
            except FileNotFoundError:
                return {}  # nfnetlink_queue not loaded: no queue is bound
        chunks = []
        offset = 0
        while True:
            # From offset 0 each time: a seq_file produces the current counters on every read.
            data = os.pread(self._fd, 65536, offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return parse_queue_stats(b"".join(chunks).decode("ascii", "replace"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _target_user(opts: RunOptions) -> User | None:
    """The account of ``--user`` (checked before anything changes), or None; PrivilegeError if unusable."""
    name = opts.privilege.user
    if name is None:
        check_capabilities()  # an unprivileged start: say what is missing before iptables fails
        return None
    if os.geteuid() != 0:
        raise PrivilegeError(f"--user {name} needs to start as root (running as uid {os.geteuid()})")
    return lookup_user(name)


def _drop_privileges(user: User, opts: RunOptions, report: LoadReport) -> None:
    """Become ``user`` with CAP_NET_ADMIN and CAP_NET_RAW; warn about what it cannot read any more."""
    hold_xtables_lock()  # root's 0600 lock file: open it while we still can, for the removal at exit
    # Imported late by multiprocessing: load it while the installation is surely readable.
    importlib.import_module("multiprocessing.popen_fork")
    creds = drop_to(user)
    log.info(
        "running as %s (uid %d, gid %d) with %s; bounding set %s",
        user.name,
        user.uid,
        user.gid,
        cap_names(creds.effective),
        cap_names(creds.bounding),
    )
    for path in report.files:
        if not os.access(path, os.R_OK):
            log.warning("%s is not readable by %s: a reload (SIGHUP) will fail until it is", path, user.name)


def run(opts: RunOptions) -> int:
    """Run until told to stop; return the process exit code."""
    early = _EarlySignals()
    os.umask(opts.privilege.umask)
    try:
        user = _target_user(opts)
    except PrivilegeError as e:
        log.error("%s", e)
        return 1
    try:
        report = load_rule_files(opts.rules, opts.variables)
    except RulesError as e:
        for line in e.errors:
            log.error("%s", line)
        return 1
    log_rule_files(report)
    if opts.eve:
        # Fail now, before touching the firewall, if it cannot be written; with --user, created
        # and opened as that user, who writes and reopens it later (and owns it).
        with files_as(user):
            EveWriter(opts.eve).close()
    fw = opts.firewall
    queues = range(fw.queue_num, fw.queue_num + fw.queues)
    hub = MetricsHub(queues)
    queue_file = QueueStatsFile()
    with files_as(user):  # the stats logger opens the EVE file now
        extras = _Observability(opts, hub, queue_file.read)  # binds the metrics port: a clash fails here
    try:
        if early.stop:
            return 0  # told to stop while loading: nothing to undo yet
        install(fw, report.ruleset.allowlist)  # the kernel allowlist is in force before the rules
        log.info(
            "firewall installed: chain %s, queue %d%s, fail-%s",
            fw.chain,
            fw.queue_num,
            f"..{fw.queue_num + fw.queues - 1}" if fw.queues > 1 else "",
            "open" if opts.fail_open else "closed",
        )
        try:
            queue_file.open()
            if user is not None:
                _drop_privileges(user, opts, report)
            extras.start()
            if fw.queues == 1:
                worker = Worker(fw.queue_num, opts, report, publish=hub.update, owns_allowlist=True)

                def hup() -> None:
                    worker.request_reload()
                    extras.request_reopen()

                early.hand_over(worker.stop.set, hup)
                hub.worker_started(fw.queue_num)
                try:
                    worker.run()
                finally:
                    hub.worker_stopped(fw.queue_num)
            else:
                _supervise(opts, report, hub, extras.request_reopen, early)
        finally:
            remove(fw)
            log.info("firewall rules removed")
    finally:
        extras.close()
        queue_file.close()
    return 0


def _receive(queue: int, conn: Connection, hub: MetricsHub) -> None:
    """The parent's end of one worker's report pipe: snapshots go to the hub until the worker exits."""
    try:
        while True:
            hub.update(conn.recv())
    except (EOFError, OSError):
        pass
    finally:
        hub.worker_stopped(queue)
        conn.close()


def _supervise(
    opts: RunOptions,
    report: LoadReport,
    hub: MetricsHub,
    on_hup: Callable[[], None],
    early: _EarlySignals,
) -> None:
    ctx = multiprocessing.get_context("fork")
    fw = opts.firewall
    stop = threading.Event()
    procs: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(q: int, restarted: bool = False) -> None:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=_child, args=(q, opts, report, send, restarted), name=f"inline-ips-q{q}", daemon=True
        )
        p.start()
        send.close()  # the child holds the only writer: its exit ends the receiver with EOF
        hub.worker_started(q)
        threading.Thread(target=_receive, args=(q, recv, hub), name=f"reports-q{q}", daemon=True).start()
        procs[q] = p

    def hup() -> None:
        on_hup()
        for p in procs.values():
            if p.pid is not None:
                os.kill(p.pid, signal.SIGHUP)

    for q in range(fw.queue_num, fw.queue_num + fw.queues):
        start(q)
    early.hand_over(stop.set, hup)
    while not stop.wait(0.5):
        for q, p in list(procs.items()):
            if not p.is_alive():
                log.error(
                    "worker for queue %d exited with %s; restarting (traffic passes meanwhile)", q, p.exitcode
                )
                time.sleep(RESTART_BACKOFF_SECONDS)
                start(q, restarted=True)
    for p in procs.values():
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs.values():
        p.join(timeout=5)
        if p.is_alive():
            p.kill()


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s inline-ips[%(process)d] %(levelname)s %(message)s",
    )


__all__: Sequence[str] = ("RunOptions", "Worker", "configure_logging", "run")
