"""Smoke test of bench/engine_bench.py: it runs end to end on a small mix.

No timing is asserted (CI machines are noisy); only that every configuration
is reported with positive figures, that the Markdown and JSON outputs are
written, and that the benign mix raises no alert with the default rules. The
large rule set is 200 synthetic signatures here instead of 10,000, whose YAML
alone takes seconds to parse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import engine_bench

SIGNATURES = 200
NAMES = (
    engine_bench.NAME_DEFAULT,
    engine_bench.name_with(engine_bench.FEW_SIGNATURES),
    engine_bench.name_with(SIGNATURES),
    engine_bench.NAME_DECODE,
    engine_bench.NAME_SCAPY,
)
ARGS = ["--packets", "500", "--repeat", "1", "--signatures", str(SIGNATURES), "--quiet", "--no-et"]


def test_table_names_every_configuration_with_positive_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    md = tmp_path / "RESULTS.md"
    assert engine_bench.main([*ARGS, "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in NAMES:
        row = next((line for line in lines if line.startswith(name + "  ")), None)
        assert row is not None, f"no table row for {name!r} in:\n{out}"
        us, pps = re.split(r"\s{2,}", row[len(name) :].strip())[:2]
        assert float(us) > 0
        assert float(pps.replace(",", "")) > 0
    text = md.read_text(encoding="utf-8")
    assert "--packets 500" in text
    for name in NAMES:
        assert f"| {name} |" in text


def test_json_output_and_no_alert_on_the_benign_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine_bench.main([*ARGS, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mix"]["packets"] == 500
    assert [r["name"] for r in doc["results"]] == list(NAMES)
    for r in doc["results"]:
        assert r["us_per_packet"] > 0
        assert r["packets_per_second"] > 0
    assert doc["checks"][engine_bench.NAME_DEFAULT]["alerts"] == 0


@pytest.mark.corpus
def test_et_open_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """With the corpus beside the project, the whole loadable ET Open set gets a row of its own."""
    et = engine_bench.default_et_dir()
    if et is None:
        pytest.skip("ET Open is not in ../shared/corpus/rulesets")
    args = [a for a in ARGS if a != "--no-et"]
    assert engine_bench.main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["results"]] == [*NAMES[:3], engine_bench.NAME_ET, *NAMES[3:]]
    rules = {r["name"]: r for r in doc["rules"]}
    assert rules[engine_bench.NAME_ET]["signatures"] > 20_000


def test_engine_bench_keeps_the_other_benchmarks_sections() -> None:
    from bench.results_file import keep_other_sections, replace_section

    others = "## EVE sinks: x\n\nsinks\n\n## Inline in the lab\n\nlab\n"
    old = "# Engine\n\nintro\n\n## Per-packet cost\n\nold\n\n" + others
    new = "# Engine\n\nnew intro\n\n## Per-packet cost\n\nnew\n"
    out = keep_other_sections(new, old)
    assert out == new + "\n" + others
    assert keep_other_sections(new, "") == new
    # Replacing one section keeps every other byte.
    again = replace_section(out, "## EVE sinks: x\n\nsinks 2\n", "## EVE sinks: x")
    assert again == out.replace("sinks\n", "sinks 2\n")
    assert replace_section(new, "## Added\n\nz\n", "## Added") == new + "\n## Added\n\nz\n"
