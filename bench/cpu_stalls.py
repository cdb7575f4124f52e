"""How long one CPU was unavailable to a task that was ready to run: a wake-up lateness probe.

What it measures: a process (pin it with ``taskset -c N``) sleeps until a
deadline every ``--period-us`` microseconds (1,000 by default) and records how
late each wake-up came. At a real-time priority (SCHED_FIFO, which it asks
for and falls back from when refused) no ordinary task can keep it off the
CPU, so a wake-up late by milliseconds means the CPU itself was not there:
the hypervisor ran something else on that virtual CPU, or the kernel ran a
stretch that cannot be preempted (interrupts, softirqs, a kernel thread). A
packet queued to a process on that CPU waits the same time, whatever the
process does, so the bench runs this beside its latency probe to tell a
tail the router's CPU imposed from one inline-ips added (like ``cyclictest``,
in Python; its own wake-up costs some 10 µs of Python at each period).

It prints ``{"ready": true}`` once running, then, after ``--seconds`` or at
SIGTERM, one JSON line: wake-ups, policy, lateness p50/p99/max in
microseconds, and the stalls (wake-ups late by at least ``--stall-us``,
1,000 by default) with their count, longest and total milliseconds.
A wake-up late by more than a period starts the schedule afresh from then,
so one long stall counts once, not as many missed periods.

What it does not do: tell *which* of those causes stalled the CPU (a
``perf record -e sched:sched_switch -C N`` trace does), or measure anything
but lateness: the CPU time it uses itself is a few per cent of one core.

Run: ``taskset -c 1 python -m bench.cpu_stalls --seconds 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from bench.udp_latency import low_timer_slack, percentile

DEFAULT_PERIOD_US = 1000
DEFAULT_STALL_US = 1000
DEFAULT_PRIORITY = 50


def summarize(late_ns: Sequence[int], stall_ns: int) -> dict[str, float]:
    """Lateness percentiles (µs) and the stalls: wake-ups late by ``stall_ns`` or more."""
    stalls = [x for x in late_ns if x >= stall_ns]
    return {
        "wakeups": len(late_ns),
        "late_p50_us": percentile(late_ns, 50) / 1000 if late_ns else float("nan"),
        "late_p99_us": percentile(late_ns, 99) / 1000 if late_ns else float("nan"),
        "late_max_us": max(late_ns) / 1000 if late_ns else float("nan"),
        "stalls": len(stalls),
        "stall_max_ms": max(stalls) / 1e6 if stalls else 0.0,
        "stalled_ms": sum(stalls) / 1e6,
    }


def real_time(priority: int) -> str:
    """SCHED_FIFO at ``priority`` if the kernel allows it; returns the policy in force."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return "other"
    return f"fifo:{priority}"


class _StopError(Exception):
    """SIGTERM: stop probing and report."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _StopError


def probe(seconds: float, period_us: int = DEFAULT_PERIOD_US) -> list[int]:
    """Wake every ``period_us`` for ``seconds`` (or until SIGTERM); return each wake-up's lateness in ns."""
    if seconds <= 0 or period_us <= 0:
        raise ValueError("seconds and period must be positive")
    low_timer_slack()
    mono = time.monotonic_ns
    period = period_us * 1000
    late: list[int] = []
    stop = mono() + int(seconds * 1e9)
    due = mono() + period
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while due < stop:
            wait = due - mono()
            if wait > 0:
                time.sleep(wait / 1e9)
            now = mono()
            late.append(max(now - due, 0))
            # Late by more than a period: start again from now instead of waking at once for
            # every period missed (one stall, counted once).
            due = due + period if now - due < period else now + period
    except _StopError:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return late


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cpu_stalls", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--seconds", type=float, default=10.0, help="how long to probe (default 10; SIGTERM ends it)"
    )
    ap.add_argument("--period-us", type=int, default=DEFAULT_PERIOD_US, help="wake-up period (default 1000)")
    ap.add_argument(
        "--stall-us",
        type=int,
        default=DEFAULT_STALL_US,
        help="lateness that counts as a stall (default 1000)",
    )
    ap.add_argument(
        "--priority", type=int, default=DEFAULT_PRIORITY, help="SCHED_FIFO priority, 0 for none (default 50)"
    )
    args = ap.parse_args(argv)
    policy = real_time(args.priority) if args.priority > 0 else "other"
    print(json.dumps({"ready": True, "policy": policy}), flush=True)
    late = probe(args.seconds, args.period_us)
    out: dict[str, object] = {"policy": policy, "cpus": sorted(os.sched_getaffinity(0))}
    out.update(summarize(late, args.stall_us * 1000))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
