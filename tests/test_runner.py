"""The run loop's verdict handler, without a queue: side effects never change a verdict."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP

from inline_ips.rules.loader import load_rule_files
from inline_ips.runner import RunOptions, Worker
from inline_ips.telemetry import Snapshot
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


def test_the_worker_counts_what_it_judged_and_reports_reloads(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    reports: list[Snapshot] = []
    worker.publish = reports.append
    drop = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=9, flags="S"))
    accept = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=10, flags="S"))
    for i in range(3):
        worker.handle(drop, 1.0 + i)
    worker.handle(accept, 5.0)
    (tmp_path / "rules.yaml").write_text("signatures:\n  - sid: 1\n    msg: x\n    treshold: 1\n")
    worker._do_reload()
    worker._report()
    snap = reports[-1]
    assert snap.packets[Action.DROP] == 3 and snap.packets[Action.ACCEPT] == 1
    assert snap.bytes[Action.DROP] == 3 * len(drop)
    assert snap.drops == {"rule": 1, "flow_drop": 2}  # the first packet's rule dropped the flow
    assert snap.alerts == {(1, 1): 1}
    assert sum(snap.latency_counts) == 4
    assert snap.engine["reloads_failed"] == 1 and not snap.last_reload_ok
    assert snap.sinks["file"] == {"events": 4, "dropped": 0}  # one alert, three drop events


def test_reload_reopens_the_eve_log_for_logrotate(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert worker.eve is not None
    drop = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=9, flags="S"))
    worker.handle(drop, 1.0)
    worker.eve.flush()
    (tmp_path / "eve.json").rename(tmp_path / "eve.json.1")  # what logrotate does before its SIGHUP
    worker._do_reload()
    worker.handle(drop, 2.0)
    worker.eve.flush()
    assert len((tmp_path / "eve.json.1").read_text().splitlines()) == 2  # alert + drop
    assert [json.loads(line)["event_type"] for line in (tmp_path / "eve.json").read_text().splitlines()] == [
        "drop"
    ]
    assert (tmp_path / "eve.json").stat().st_mode & 0o007 == 0  # not for other users
