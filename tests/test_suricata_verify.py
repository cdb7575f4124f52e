"""Conformance: every suricata-verify case in the corpus gives Suricata's alert counts.

Each case (``../shared/corpus/suricata-verify/<case>/``) is a capture, a
``test.rules`` file, ``expected.json`` (``{sid: alerts}``) and ``meta.json``
with the Suricata settings and variables it ran with. The capture is replayed
with those settings on top of Suricata's defaults for reading a pcap
(checksum-checks auto, stream.midstream false, IDS mode); every listed sid
must alert exactly as often as in Suricata. A rule the engine skips as
unsupported fails the case, so a count of 0 cannot pass by accident. Cases
added to the corpus folder are picked up without changing this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inline_ips.cli import replay_options
from inline_ips.engine import Engine
from inline_ips.replay import replay
from inline_ips.rules.loader import load_rule_files
from tests.corpus import CORPUS, require_corpus

CASES = CORPUS / "suricata-verify"

# Suricata's settings when it reads a capture, before a case's own settings.
SURICATA_PCAP_DEFAULTS = {
    "checksum-checks": "auto",
    "stream.midstream": "false",
    "stream.inline": "false",
    "simulate-ips": "false",
}


def case_dirs() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(p for p in CASES.iterdir() if (p / "expected.json").is_file())


def _setting(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def case_settings(meta: dict[str, Any]) -> list[str]:
    settings = dict(SURICATA_PCAP_DEFAULTS)
    settings.update({k: _setting(v) for k, v in meta.get("settings", {}).items()})
    return [f"{k}={v}" for k, v in settings.items()]


def case_vars(meta: dict[str, Any]) -> dict[str, str]:
    groups = meta.get("vars", {})
    return {k: str(v) for kind in ("address-groups", "port-groups") for k, v in groups.get(kind, {}).items()}


def run_case(case: Path) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """(expected counts, actual counts, rules not loaded as unsupported)."""
    meta = json.loads((case / "meta.json").read_text())
    expected = {int(k): int(v) for k, v in json.loads((case / "expected.json").read_text()).items()}
    report = load_rule_files([case / "test.rules"], case_vars(meta))
    unsupported = [msg for fr in report.rule_files for msg in fr.messages if ": unsupported: " in msg]
    engine = Engine(report.ruleset, replay_options(case_settings(meta), bypass_after=0))
    summary = replay(case / meta.get("pcap_file", "input.pcap"), engine)
    assert summary.engine_errors == 0, engine.engine_errors
    actual = {sid: summary.alerts.get(sid, 0) for sid in expected}
    return expected, actual, unsupported


@pytest.mark.corpus
@pytest.mark.parametrize("case", case_dirs() or [None], ids=lambda p: p.name if p else "corpus-absent")
def test_case_alert_counts(case: Path | None) -> None:
    require_corpus(CASES)
    assert case is not None
    expected, actual, unsupported = run_case(case)
    assert not unsupported, f"{case.name}: rules the engine cannot run: {unsupported}"
    assert actual == expected, f"{case.name}: alerts by sid {actual}, Suricata gives {expected}"


@pytest.mark.corpus
def test_the_corpus_has_cases() -> None:
    require_corpus(CASES)
    assert len(case_dirs()) >= 10


@pytest.mark.corpus
def test_replay_command_line_with_suricata_settings() -> None:
    """The same through ``inline-ips replay --set``, as an operator would run a case."""
    require_corpus(CASES)
    case = CASES / "bug-1401-02"
    if not case.is_dir():
        pytest.skip(f"{case} is not in this corpus")
    meta = json.loads((case / "meta.json").read_text())
    args = [sys.executable, "-m", "inline_ips", "replay", str(case / "input.pcap"), "--json"]
    args += ["--rules", str(case / "test.rules"), "--bypass-after", "0"]
    for item in case_settings(meta):
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)[0]
    assert {a["sid"]: a["count"] for a in summary["alerts"]} == {2: 1}
    # Without the case's stream.midstream=true the SYN-ACK is not to_client: no alert.
    args[args.index("stream.midstream=true")] = "stream.midstream=false"
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["alerts"] == []
