"""``inline-ips run``: the engine in the data path of a Linux router.

Validates the rules and opens the EVE log first (so a mistake fails before
any firewall change), installs the iptables chains and ipsets, then judges
packets from NFQUEUE until SIGTERM or SIGINT, and always removes its rules on
the way out. SIGHUP reloads the rule files atomically (a broken file is
reported and the old rules stay in force; the new ones are compiled off the
verdict path and swapped in between two packets) and reopens the EVE log for
logrotate. With ``workers > 1`` the kernel spreads flows over that many
queues (``--queue-balance``) and one process serves each; the parent
supervises them and restarts one that dies (traffic passes meanwhile:
``--queue-bypass`` and fail-open). What the engine decides is carried out
here: blocks go to the kernel ipset, rejects are sent, events are logged.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from inline_ips.engine import Engine, Result
from inline_ips.firewall.iptables import FirewallConfig, install, remove
from inline_ips.options import EngineOptions
from inline_ips.output.eve import EveWriter, alert_event, drop_event
from inline_ips.respond.block import KernelBlocklist
from inline_ips.respond.reject import Rejecter
from inline_ips.rules.loader import LoadReport, load_rule_files
from inline_ips.rules.yaml_loader import RulesError
from inline_ips.source.nfqueue import Decision, NfqueueSource
from inline_ips.verdict import Action

log = logging.getLogger("inline_ips")

EVE_FLUSH_SECONDS = 0.5
RESTART_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    rules: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    engine: EngineOptions = field(default_factory=EngineOptions)
    queue_maxlen: int = 4096
    fail_open: bool = True
    eve: str | None = None
    reject_rate: float = 100.0


class Worker:
    """One queue and one engine: judges each packet and carries out the verdict's side effects."""

    def __init__(self, queue_num: int, opts: RunOptions, report: LoadReport) -> None:
        self.queue_num = queue_num
        self.opts = opts
        self.engine = Engine(report.ruleset, opts.engine)
        fw = opts.firewall
        self.kernel_blocks = KernelBlocklist(fw.block_set4, fw.block_set6, fw.block_max)
        self.rejecter = Rejecter(rate_per_second=opts.reject_rate)
        self.eve = EveWriter(opts.eve) if opts.eve else None
        # The verdict path writes events; a timer flushes them, so the log is
        # current within EVE_FLUSH_SECONDS even when traffic stops.
        self._eve_lock = threading.Lock()
        self._reload = threading.Event()
        self.stop = threading.Event()

    # Called from signal handlers: only set a flag; the housekeeping thread reloads.
    def request_reload(self) -> None:
        self._reload.set()

    def handle(self, raw: bytes, ts: float) -> Decision:
        res = self.engine.process(raw, ts)
        v = res.verdict
        action = v.action
        if res.alerts or action >= Action.DROP:
            try:
                self._side_effects(res, raw)
            except Exception as e:  # a full disk must not turn a drop into an accept
                self._side_effect_failed(e)
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
            self.kernel_blocks.add(version, addr, seconds)
        if v.action is Action.REJECT:
            self.rejecter.send(raw)
        eve = self.eve
        if eve is not None:
            blocked = v.action.blocks
            with self._eve_lock:
                for a in res.alerts:
                    eve.write(alert_event(res.packet, res.flow_id, res.to_server, a, blocked, res.app_proto))
                if blocked:
                    eve.write(drop_event(res.packet, res.flow_id, v))

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
            log.error("reload failed, the previous rules stay in force:\n%s", e)
            return
        except Exception:  # a compile error deeper down (hyperscan, RE2) must not stop the worker
            self.engine.stats["reloads_failed"] += 1
            log.exception("reload failed, the previous rules stay in force")
            return
        self.engine.stats["reloads_ok"] += 1
        rs = report.ruleset
        log.info(
            "queue %d: reloaded %d signature and %d rate rules in %.0f ms",
            self.queue_num,
            len(rs.signatures),
            len(rs.rates),
            (time.monotonic() - started) * 1000,
        )

    def _housekeeping(self) -> None:
        """Off the verdict path: reloads on request, and flushes the EVE log twice a second."""
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

    def run(self) -> None:
        source = NfqueueSource(
            self.queue_num,
            self.handle,
            maxlen=self.opts.queue_maxlen,
            fail_open=self.opts.fail_open,
            bypass_mark=self.opts.firewall.bypass_mark,
        )
        log.info(
            "queue %d: judging packets (fail-%s)", self.queue_num, "open" if self.opts.fail_open else "closed"
        )
        flusher = threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True)
        flusher.start()
        try:
            source.run(self.stop)
        finally:
            self.stop.set()
            flusher.join(timeout=2)
            if self.eve is not None:
                with self._eve_lock:
                    self.eve.close()
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


def _child(queue_num: int, opts: RunOptions, report: LoadReport) -> None:
    worker = Worker(queue_num, opts, report)
    _install_signals(worker.stop.set, worker.request_reload)
    worker.run()


def run(opts: RunOptions) -> int:
    """Run until told to stop; return the process exit code."""
    try:
        report = load_rule_files(opts.rules, opts.variables)
    except RulesError as e:
        for line in e.errors:
            log.error("%s", line)
        return 1
    log_rule_files(report)
    if opts.eve:
        EveWriter(opts.eve).close()  # fail now, before touching the firewall, if it cannot be written
    fw = opts.firewall
    install(fw)
    log.info(
        "firewall installed: chain %s, queue %d%s, fail-%s",
        fw.chain,
        fw.queue_num,
        f"..{fw.queue_num + fw.queues - 1}" if fw.queues > 1 else "",
        "open" if opts.fail_open else "closed",
    )
    try:
        if fw.queues == 1:
            worker = Worker(fw.queue_num, opts, report)
            _install_signals(worker.stop.set, worker.request_reload)
            worker.run()
        else:
            _supervise(opts, report)
    finally:
        remove(fw)
        log.info("firewall rules removed")
    return 0


def _supervise(opts: RunOptions, report: LoadReport) -> None:
    ctx = multiprocessing.get_context("fork")
    fw = opts.firewall
    stop = threading.Event()
    procs: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(q: int) -> None:
        p = ctx.Process(target=_child, args=(q, opts, report), name=f"inline-ips-q{q}", daemon=True)
        p.start()
        procs[q] = p

    def hup() -> None:
        for p in procs.values():
            if p.pid is not None:
                os.kill(p.pid, signal.SIGHUP)

    _install_signals(stop.set, hup)
    for q in range(fw.queue_num, fw.queue_num + fw.queues):
        start(q)
    while not stop.wait(0.5):
        for q, p in list(procs.items()):
            if not p.is_alive():
                log.error(
                    "worker for queue %d exited with %s; restarting (traffic passes meanwhile)", q, p.exitcode
                )
                time.sleep(RESTART_BACKOFF_SECONDS)
                start(q)
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
