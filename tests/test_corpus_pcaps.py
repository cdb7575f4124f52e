"""Every attack capture in the shared corpus raises the alert that names its attack.

Replays through the real CLI entry point with the default rules.yaml, so this
is exactly what ``inline-ips replay`` does for a user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inline_ips.cli import main
from tests.corpus import CORPUS, DEFAULT_RULES, corpus_pcaps, expected_attack, require_corpus

PCAPS = corpus_pcaps()


def test_corpus_has_captures() -> None:
    require_corpus()
    assert len(PCAPS) >= 20, f"expected the 20 attack captures in {CORPUS}/pcaps"


@pytest.mark.corpus
@pytest.mark.parametrize("pcap", PCAPS, ids=[p.name for p in PCAPS])
def test_capture_raises_named_alert(pcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    attack = expected_attack(pcap)
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    names = [a["signature"] for a in summary["alerts"]]
    assert any(n.startswith(attack + ":") for n in names), f"{pcap.name}: no '{attack}' alert, got {names}"
    assert summary["engine_errors"] == 0
    assert summary["packets"] > 0
