"""bench/cpu_stalls.py: the stall summary, and a real probe that sees a stall it was given."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu_stalls import summarize

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000  # ns


@pytest.mark.parametrize(
    ("late_ns", "stall_ns", "stalls", "longest_ms", "stalled_ms"),
    [
        ([], MS, 0, 0.0, 0.0),
        ([0, 10_000, 999_999], MS, 0, 0.0, 0.0),  # just under a millisecond is not a stall
        ([0, MS, 3 * MS, 500_000], MS, 2, 3.0, 4.0),
        ([0, MS, 3 * MS, 500_000], 2 * MS, 1, 3.0, 3.0),  # the threshold is the caller's
    ],
)
def test_stalls_are_the_wakeups_late_by_the_threshold_or_more(
    late_ns: list[int], stall_ns: int, stalls: int, longest_ms: float, stalled_ms: float
) -> None:
    s = summarize(late_ns, stall_ns)
    assert (s["wakeups"], s["stalls"], s["stall_max_ms"], s["stalled_ms"]) == (
        len(late_ns),
        stalls,
        longest_ms,
        stalled_ms,
    )
    if late_ns:
        assert s["late_max_us"] == max(late_ns) / 1000
    else:
        assert math.isnan(s["late_p99_us"])


def test_a_stopped_probe_reports_one_stall_as_long_as_the_stop() -> None:
    # SIGSTOP keeps the probe off every CPU for 150 ms, as a descheduled vCPU would. It wakes
    # late by about that once; it must not then count every period it missed as a stall of
    # its own (150 wake-ups late by 150, 149, ... ms), which a catch-up schedule would do.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "bench.cpu_stalls", "--seconds", "2", "--priority", "0"]
    proc = subprocess.Popen(
        [*argv, "--stall-us", "50000"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": True, "policy": "other"}
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.15)
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = json.loads(out.strip().splitlines()[-1])
    assert r["stalls"] == 1, r
    assert 140 <= r["stall_max_ms"] < 1000, r
    assert r["wakeups"] > 300, r  # it kept waking every millisecond around the stop


def test_sigterm_ends_it_early_with_a_report() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "bench.cpu_stalls", "--seconds", "60", "--priority", "0"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.3)
        started = time.monotonic()
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - started < 5
    r = json.loads(out.strip().splitlines()[-1])
    assert r["wakeups"] > 50 and r["policy"] == "other"
