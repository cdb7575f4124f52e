"""The worker's own counters: verdicts, reasons, bounded per-rule alerts, the latency histogram."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from inline_ips.engine import Engine
from inline_ips.lab import synth
from inline_ips.rules.loader import load_rule_files
from inline_ips.telemetry import (
    ACTION_NAMES,
    LATENCY_BUCKETS,
    MAX_RULE_SERIES,
    OTHER_RULE,
    Telemetry,
    skipped_by_kind,
)
from inline_ips.verdict import Action, Alert, Reason
from tests.corpus import DEFAULT_RULES


def _alert(sid: int, msg: str = "") -> Alert:
    return Alert(
        sid=sid, gid=1, rev=1, msg=msg or f"rule {sid}", category="", severity=3, action=Action.ACCEPT
    )


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, 0),
        (1e-05, 0),  # le is inclusive, as in Prometheus
        (1.1e-05, 1),
        (0.001, 6),
        (0.0011, 7),
        (0.1, len(LATENCY_BUCKETS) - 1),
        (5.0, len(LATENCY_BUCKETS)),  # +Inf
    ],
)
def test_latency_lands_in_the_right_bucket(seconds: float, bucket: int) -> None:
    t = Telemetry(0)
    t.count(Action.ACCEPT, 60, Reason.NONE, seconds)
    assert t.latency_counts[bucket] == 1
    assert sum(t.latency_counts) == 1
    assert t.latency_sum == seconds


def test_verdicts_bytes_and_reasons() -> None:
    t = Telemetry(3)
    t.count(Action.ACCEPT, 100, Reason.NONE, 1e-5)
    t.count(Action.REWRITE, 60, Reason.NORMALIZE, 1e-5)
    t.count(Action.DROP, 40, Reason.RULE, 1e-5)
    t.count(Action.BLOCK, 40, Reason.RATE, 1e-5)
    t.count(Action.DROP, 52, Reason.FLOW_DROP, 1e-5)
    assert dict(zip(ACTION_NAMES, t.packets, strict=True)) == {
        "accept": 1,
        "rewrite": 1,
        "drop": 2,
        "reject": 0,
        "block": 1,
    }
    assert t.bytes[Action.DROP] == 92
    # A rewrite lets the packet through: it is not a drop, whatever its reason.
    assert dict(t.drops) == {"rule": 1, "rate": 1, "flow_drop": 1}


def test_alert_series_are_bounded_and_keep_counting() -> None:
    t = Telemetry(0)
    t.count_alerts(_alert(sid) for sid in range(MAX_RULE_SERIES + 50))
    t.count_alerts([_alert(0), _alert(MAX_RULE_SERIES + 10)])  # an early rule again; a late one again
    snap = t.snapshot(Engine(load_rule_files([DEFAULT_RULES]).ruleset))
    assert len(snap.alerts) == MAX_RULE_SERIES + 1  # plus "other"
    assert snap.alerts[(1, 0)] == 2
    assert snap.alerts[OTHER_RULE] == 51
    assert snap.alerts_total == MAX_RULE_SERIES + 52
    assert snap.rule_names[(1, 5)] == "rule 5"


def test_snapshot_of_a_real_engine_crosses_a_pipe() -> None:
    report = load_rule_files([DEFAULT_RULES])
    engine = Engine(report.ruleset)
    t = Telemetry(1, report)
    packets = [*synth.browsing(pages=3), *synth.port_scan(range(1, 60))]
    for ts, raw in packets:
        res = engine.process(raw, ts)
        t.count(res.verdict.action, len(raw), res.verdict.reason, 1e-5)
        t.count_alerts(res.alerts)
    snap = t.snapshot(engine, {"file": {"events": 3, "dropped": 1}})
    again = pickle.loads(pickle.dumps(snap))
    assert again == snap
    assert sum(snap.packets) == len(packets) == snap.engine["packets"]
    assert snap.packets[Action.BLOCK] >= 1 and snap.drops["rate"] >= 1  # the scan got blocked
    assert snap.alerts[(1, 2200030)] >= 1
    assert snap.flows_active > 0 and snap.flows_created >= snap.flows_active
    assert snap.rules_loaded == {
        "signature": len(report.ruleset.signatures),
        "rate": len(report.ruleset.rates),
    }
    assert snap.sinks == {"file": {"events": 3, "dropped": 1}}
    assert snap.resident_bytes > 10_000_000  # a Python process with the engine loaded
    assert snap.cpu_seconds > 0


def test_reload_outcome_is_reported() -> None:
    report = load_rule_files([DEFAULT_RULES])
    t = Telemetry(0, report, now=lambda: 100.0)
    assert (t.last_reload_ok, t.last_reload_success_time) == (True, 100.0)
    t.reload_failed()
    assert not t.last_reload_ok
    t.rules_changed(report, 200.0)
    assert (t.last_reload_ok, t.last_reload_success_time) == (True, 200.0)


def test_skipped_rules_by_kind(tmp_path: Path) -> None:
    f = tmp_path / "x.rules"
    f.write_text(
        'alert tcp any any -> any any (msg:"ok"; content:"a"; sid:1;)\n'
        'alert tcp any any -> any any (msg:"bad"; content:"a"; nosuchkeyword; sid:2;)\n'
        'alert tcp any any -> any any (msg:"xbits"; xbits:set,a,track ip_src; sid:3;)\n'
    )
    kinds = skipped_by_kind(load_rule_files([f]))
    assert sum(kinds.values()) == 2
    assert set(kinds) <= {"invalid", "unsupported"}
