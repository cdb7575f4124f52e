"""The bounded CI fuzz run: every target for a few seconds, and proof that failures are caught.

Each target of :mod:`fuzz.run` runs for ``SECONDS`` in its own process, from
seeds generated at run time (real captures and rule files when the corpus is
there): it must exit 0, leave no crash, timeout or out-of-memory artifact,
and have executed at least ``MIN_EXECUTIONS`` inputs (libFuzzer's own
count). The planted targets (``tests/fuzz/planted.py``) show that a crash, a
hang past ``-timeout`` and memory growth past ``-rss_limit_mb`` each make a
run fail with its artifact, so the checks above can fail. No timing is
asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import run, seeds

pytest.importorskip("atheris", reason="atheris (dev extra) is not installed")

SECONDS = 4
SEEDS_PER_TARGET = 150  # libFuzzer runs each seed once first; keep that part short
# Far below what each target does in SECONDS on a 2-core CI machine (the slowest, pcre,
# compiles a regex per input at ~180/s), far above what a target stuck at startup does.
MIN_EXECUTIONS = {
    "decode": 5000,
    "engine": 500,
    "streams": 500,
    "yaml_rules": 100,
    "suricata_rules": 100,
    "pcre": 100,
}


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    counts = seeds.generate(out, limit=SEEDS_PER_TARGET)
    assert all(n > 0 for n in counts.values()), counts
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target", run.TARGETS)
def test_target_runs_clean(target: str, seed_dir: Path, tmp_path: Path) -> None:
    res = run.run_target(target, SECONDS, tmp_path, seed_dir / target)
    log = res.log.read_text(encoding="utf-8", errors="replace")[-3000:] if res.log else ""
    assert res.returncode == 0, log
    assert res.artifacts == [], log
    assert res.executions >= MIN_EXECUTIONS[target], log
    assert res.coverage > 0, log


def test_min_executions_cover_every_target() -> None:
    assert set(MIN_EXECUTIONS) == set(run.TARGETS) == set(seeds.TARGETS)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "trigger", "artifact", "extra"),
    [
        ("crash", b"!", "crash-", ()),
        ("hang", b"#", "timeout-", ()),
        ("memory", b"x", "oom-", ("-rss_limit_mb=300",)),
    ],
)
def test_a_failing_target_fails_the_run(
    kind: str, trigger: bytes, artifact: str, extra: tuple[str, ...], tmp_path: Path
) -> None:
    planted_seeds = tmp_path / "seeds"
    planted_seeds.mkdir()
    (planted_seeds / "one").write_bytes(trigger + b"seed")
    limits = run.Limits(timeout=2, rss_limit_mb=300)
    res = run.run_target("tests.fuzz.planted", 20, tmp_path, planted_seeds, limits, extra=extra, lead=(kind,))
    assert not res.ok
    assert res.returncode != 0
    assert [p.name[: len(artifact)] for p in res.artifacts] == [artifact], res.log
