"""Ordinary traffic raises nothing with the default rules.

The captures are built here (lab/synth.py, with Scapy) and replayed through
the CLI: web browsing, DNS look-ups, TLS sessions and a 20 MB bulk download.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from inline_ips.cli import main
from inline_ips.lab import synth
from tests.corpus import DEFAULT_RULES

Timed = list[tuple[float, bytes]]
CASES: dict[str, Callable[[], Timed]] = {
    "browsing": lambda: synth.browsing(pages=40),
    "dns": lambda: synth.dns_lookups(count=200),
    "tls": lambda: synth.tls_sessions(count=20),
    "bulk-download": lambda: synth.bulk_download(megabytes=20),
    "all-at-once": synth.benign_mix,
}


@pytest.mark.parametrize("name", list(CASES))
def test_benign_capture_raises_no_alert(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packets = CASES[name]()
    pcap = synth.write_pcap(tmp_path / f"{name}.pcap", packets)
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    assert summary["packets"] == len(packets)
    assert summary["alerts"] == []
    assert summary["verdicts"] == {"accept": len(packets)}
    assert summary["decode_errors"] == {}


@pytest.mark.parametrize("attack", list(synth.ATTACKS))
def test_synthetic_attack_is_stopped(attack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same attacks the demo shows: each raises its named alert and gets drops."""
    pcap = synth.write_pcap(tmp_path / "attack.pcap", synth.ATTACKS[attack]())
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    names = [a["signature"] for a in summary["alerts"]]
    for part in attack.split(" / "):
        assert any(n.startswith(part + ":") for n in names), f"{attack}: got {names}"
    assert summary["verdicts"].get("drop", 0) + summary["verdicts"].get("block", 0) > 0
