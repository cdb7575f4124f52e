"""The run loop's verdict handler, without a queue: side effects never change a verdict."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP

from inline_ips.rules.loader import load_rule_files
from inline_ips.runner import RunOptions, Worker
from inline_ips.verdict import Action

RULES = """
signatures:
  - {sid: 1, msg: "drop test", proto: tcp, dst_port: 9, action: drop}
"""


def _worker(tmp_path: Path) -> Worker:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    opts = RunOptions(rules=(str(rules),), eve=str(tmp_path / "eve.json"))
    return Worker(0, opts, load_rule_files(opts.rules))


def test_a_failing_eve_log_does_not_turn_a_drop_into_an_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = _worker(tmp_path)
    assert worker.eve is not None

    def disk_full(_event: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(worker.eve, "write", disk_full)
    pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=9, flags="S"))
    decisions = [worker.handle(pkt, 1.0 + i) for i in range(3)]
    assert [d.action for d in decisions] == [Action.DROP] * 3
    assert worker.engine.stats["side_effect_errors"] == 3
    assert (
        sum("No space left on device" in r.message for r in caplog.records) == 1
    )  # logged once, not per packet


def test_reload_swaps_rules_and_keeps_old_ones_on_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = _worker(tmp_path)
    pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=10, flags="S"))
    assert worker.handle(pkt, 1.0).action is Action.ACCEPT
    (tmp_path / "rules.yaml").write_text(RULES.replace("dst_port: 9", "dst_port: 10"))
    worker._do_reload()
    assert worker.handle(pkt, 2.0).action is Action.DROP
    (tmp_path / "rules.yaml").write_text("signatures:\n  - sid: 1\n    msg: x\n    treshold: 1\n")
    worker._do_reload()
    assert worker.handle(pkt, 3.0).action is Action.DROP  # the previous rules stay in force
    assert worker.engine.stats["reloads_failed"] == 1
    assert "rules.yaml:4: rule 1: unknown key 'treshold'" in caplog.text
