"""Run the fuzz targets one after another for a bounded time each, and report what they did.

Does: generate the seed corpora (:mod:`fuzz.seeds`), then run each target as
its own process (``python -m fuzz.fuzz_<name>``) under libFuzzer with a time
budget (``-max_total_time``), a per-input hang bound (``-timeout``), a memory
bound (``-rss_limit_mb``; ``-malloc_limit_mb`` is passed too, but libFuzzer
can only enforce it with a sanitizer runtime, which atheris's Python build
does not have, so RSS is the bound that holds), a maximum input size and
``-print_final_stats``. Each target keeps a corpus of what it learnt in
``WORK/corpus/<name>`` (grown run after run; delete it to start over) and
writes any crashing, hanging or memory-hungry input to
``WORK/artifacts/<name>/`` (``crash-*``, ``timeout-*``, ``oom-*``). Prints one
line per target (executions, coverage, corpus, peak RSS, findings) and exits
1 when any target failed. ``make fuzz`` runs it with 600 seconds per target;
the test suite runs each for a few seconds (``tests/fuzz/test_run.py``).

Does not: run targets in parallel (the machine is small; libFuzzer's
``-jobs``/``-fork`` are left alone), minimise findings (``python -m
fuzz.fuzz_<name> -minimize_crash=1 FILE`` does), or keep seeds (regenerated
each run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "fuzz" / "work"
TARGETS = ("decode", "engine", "streams", "yaml_rules", "suricata_rules", "pcre")
# Inputs larger than a target's real inputs only slow it down: an IP datagram (a few
# fragments' worth for the engine's framed runs), a connection's worth of segments, a
# rules file of a few hundred lines, one pcre value.
MAX_LEN = {
    "decode": 8192,
    "engine": 16384,
    "streams": 32768,
    "yaml_rules": 16384,
    "suricata_rules": 8192,
    "pcre": 2048,
}
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
_DONE = re.compile(r"^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_LAST = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)


TIMEOUT = 10  # seconds one input may take
RSS_LIMIT_MB = 2048
MALLOC_LIMIT_MB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: int = TIMEOUT
    rss_limit_mb: int = RSS_LIMIT_MB
    malloc_limit_mb: int = MALLOC_LIMIT_MB


@dataclass(slots=True)
class TargetResult:
    target: str
    returncode: int
    seconds: float
    executions: int = 0
    coverage: int = 0  # libFuzzer's "cov": instrumented edges (Python bytecode branches) reached
    features: int = 0  # "ft"
    corpus: int = 0
    peak_rss_mb: int = 0
    artifacts: list[Path] = field(default_factory=list)
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.artifacts

    def line(self) -> str:
        found = ", ".join(p.name for p in self.artifacts) or "none"
        return (
            f"{self.target:15} {'ok' if self.ok else 'FAILED':6} {self.executions:>10,} execs "
            f"{self.seconds:7.1f} s  cov {self.coverage:>5} ft {self.features:>6} corpus {self.corpus:>5} "
            f"rss {self.peak_rss_mb:>4} MB  findings: {found}"
        )


def parse_output(text: str) -> tuple[int, int, int, int, int]:
    """(executions, cov, ft, corpus units, peak RSS MB) from libFuzzer's output."""
    stats = {k: int(v) for k, v in _STAT.findall(text)}
    execs = stats.get("number_of_executed_units", 0)
    cov = ft = corp = 0
    done = _DONE.findall(text) or _LAST.findall(text)
    if done:
        n, c, f, u = (int(x) for x in done[-1])
        execs = execs or n
        cov, ft, corp = c, f, u
    return execs, cov, ft, corp, stats.get("peak_rss_mb", 0)


def module_for(target: str) -> str:
    """``decode`` -> ``fuzz.fuzz_decode``; a dotted name is taken as the module itself."""
    return target if "." in target else f"fuzz.fuzz_{target}"


def run_target(
    target: str,
    seconds: int,
    work: Path,
    seeds: Path | None,
    limits: Limits = Limits(),
    max_len: int | None = None,
    extra: Sequence[str] = (),
    lead: Sequence[str] = (),
) -> TargetResult:
    """Fuzz one target for ``seconds``; its corpus, artifacts and log go under ``work``.

    ``extra`` flags follow the defaults (libFuzzer takes the last of a repeated flag);
    ``lead`` arguments go right after the module name, for the target itself.
    """
    name = target.rsplit(".", 1)[-1]
    corpus = work / "corpus" / name
    artifacts = work / "artifacts" / name
    logs = work / "logs"
    for d in (corpus, artifacts, logs):
        d.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in artifacts.iterdir()}
    cmd = [
        sys.executable,
        "-m",
        module_for(target),
        *lead,
        f"-max_total_time={seconds}",
        f"-timeout={limits.timeout}",
        f"-rss_limit_mb={limits.rss_limit_mb}",
        f"-malloc_limit_mb={limits.malloc_limit_mb}",
        f"-max_len={max_len or MAX_LEN.get(target, 4096)}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        *extra,
        str(corpus),
    ]
    if seeds is not None and seeds.is_dir():
        cmd.append(str(seeds))  # read at start, never written: libFuzzer adds new units to the first dir
    log = logs / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        # The wall clock bound is generous: seed loading plus the budget plus a hang's timeout.
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=seconds * 3 + 120,
                check=False,
            )
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = -1
    elapsed = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    execs, cov, ft, corp, rss = parse_output(text)
    found = sorted(
        p for p in artifacts.iterdir() if p.name not in before and p.name.startswith(ARTIFACT_PREFIXES)
    )
    return TargetResult(name, rc, elapsed, execs, cov, ft, corp, rss, found, log)


def main(argv: Sequence[str] | None = None) -> int:
    from fuzz import seeds as seeds_mod  # noqa: PLC0415 - imports scapy; only needed here

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "600")), help="per target"
    )
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--corpus", type=Path, default=seeds_mod.CORPUS, help="the third-party corpus")
    ap.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds one input may take")
    ap.add_argument("--rss-limit-mb", type=int, default=RSS_LIMIT_MB)
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}")
    seed_dir = args.work / "seeds"
    counts = seeds_mod.generate(seed_dir, args.corpus)
    print("seeds: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    limits = Limits(timeout=args.timeout, rss_limit_mb=args.rss_limit_mb)
    results = []
    for target in targets:
        res = run_target(target, args.seconds, args.work, seed_dir / target, limits)
        results.append(res)
        print(res.line(), flush=True)
        if not res.ok:
            print(f"  log: {res.log}", flush=True)
    failed = [r.target for r in results if not r.ok]
    total = sum(r.executions for r in results)
    print(
        f"{len(results)} targets, {total:,} executions, "
        + ("failed: " + ", ".join(failed) if failed else "no findings")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
