"""EVE ``stats`` events at an interval, as Suricata writes them (default every 8 seconds).

Does: :func:`stats_counters` sums the workers' snapshots (and the kernel's
queue counters) into Suricata's dotted counter names; :class:`StatsLogger`
is a thread that appends one ``stats`` event with them to the EVE log every
``interval`` seconds, and a last one when it stops. It writes through its own
:class:`~inline_ips.output.eve.EveWriter` (whole lines, appended), so it can
share the file with the workers' alert writers, in this process or others.

The mapping: ``decoder.pkts``/``decoder.bytes`` are the packets and bytes
judged, ``decoder.invalid`` the malformed ones; ``detect.alert`` the alerts,
``detect.alert_queue_overflow`` those beyond the per-packet limit;
``ips.accepted`` (accept and rewrite), ``ips.blocked`` (drop, reject, block),
``ips.rejected``, ``ips.replaced`` (rewrite); ``ips.drop_reason.rules``
counts drops by signature, rate rule and blocklist (Suricata has no
blocklist: the block came from a rule), ``flow_drop`` and ``decode_error``
as Suricata does; ``flow.active``/``flow.total``; ``capture.kernel_packets``
and ``capture.kernel_drops`` from the NFQUEUE counters.

Does not: collect the counters itself (workers snapshot them) or decide where
the log lives (the runner passes the path).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from inline_ips.output.eve import EveWriter, stats_event
from inline_ips.telemetry import Snapshot
from inline_ips.verdict import Action, Reason

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 8.0  # Suricata's stats.interval

_RULE_REASONS = (Reason.RULE, Reason.RATE, Reason.BLOCKLIST)


def stats_counters(
    snaps: Sequence[Snapshot], queue_stats: dict[int, dict[str, int]], uptime: float
) -> dict[str, int]:
    """Suricata's dotted stats names for the sum of ``snaps``."""

    def total(pick: Callable[[Snapshot], int]) -> int:
        return sum(pick(s) for s in snaps)

    def packets(*actions: Action) -> int:
        return total(lambda s: sum(s.packets[a] for a in actions))

    def drops(*reasons: Reason) -> int:
        return total(lambda s: sum(s.drops.get(r, 0) for r in reasons))

    queues = [queue_stats[s.queue] for s in snaps if s.queue in queue_stats]
    return {
        "uptime": int(uptime),
        "decoder.pkts": total(lambda s: sum(s.packets)),
        "decoder.bytes": total(lambda s: sum(s.bytes)),
        "decoder.invalid": total(lambda s: sum(s.decode_errors.values())),
        "detect.alert": total(lambda s: s.alerts_total),
        "detect.alert_queue_overflow": total(lambda s: s.engine.get("alerts_discarded", 0)),
        "ips.accepted": packets(Action.ACCEPT, Action.REWRITE),
        "ips.blocked": packets(Action.DROP, Action.REJECT, Action.BLOCK),
        "ips.rejected": packets(Action.REJECT),
        "ips.replaced": packets(Action.REWRITE),
        "ips.drop_reason.rules": drops(*_RULE_REASONS),
        "ips.drop_reason.flow_drop": drops(Reason.FLOW_DROP),
        "ips.drop_reason.decode_error": drops(Reason.DECODE_ERROR),
        "flow.active": total(lambda s: s.flows_active),
        "flow.total": total(lambda s: s.flows_created),
        "capture.kernel_packets": sum(q["id_sequence"] for q in queues),
        "capture.kernel_drops": sum(q["queue_dropped"] + q["user_dropped"] for q in queues),
    }


class StatsLogger:
    """Appends a ``stats`` event to the EVE log every ``interval`` seconds, in its own thread."""

    def __init__(
        self,
        path: str,
        interval: float,
        snapshots: Callable[[], Sequence[Snapshot]],
        queue_stats: Callable[[], dict[int, dict[str, int]]],
        start_time: float,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"stats interval must be positive, got {interval}")
        self.interval = interval
        self._snapshots = snapshots
        self._queue_stats = queue_stats
        self._start = start_time
        self._writer = EveWriter(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="eve-stats", daemon=True)
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def request_reopen(self) -> None:
        """For logrotate (SIGHUP): the next event goes to a freshly opened file."""
        self._writer.request_reopen()

    def write_once(self) -> None:
        try:
            queues = self._queue_stats()
        except OSError:
            queues = {}
        now = time.time()
        event = stats_event(now, stats_counters(self._snapshots(), queues, now - self._start))
        self._writer.write(event)
        self._writer.flush()
        self.written += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write_once()
            except OSError as e:
                log.error("cannot write the EVE stats event: %s", e)

    def close(self) -> None:
        """Stop the thread and write a last event, so the log ends with the final counts."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        try:
            self.write_once()
        except OSError as e:
            log.error("cannot write the last EVE stats event: %s", e)
        finally:
            try:
                self._writer.close()
            except OSError as e:
                log.error("%s", e)


__all__ = ["DEFAULT_INTERVAL", "StatsLogger", "stats_counters"]
