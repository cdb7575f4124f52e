"""EVE stats events: Suricata's counter names for the workers' sums, written at an interval."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from inline_ips.output.eve_stats import StatsLogger, stats_counters
from inline_ips.telemetry import Snapshot, empty_snapshot
from inline_ips.verdict import Action
from tests.corpus import SCHEMA


def _snap(queue: int, accept: int, drop: int, rewrite: int = 0) -> Snapshot:
    packets = [0] * len(Action)
    packets[Action.ACCEPT], packets[Action.DROP], packets[Action.REWRITE] = accept, drop, rewrite
    return replace(
        empty_snapshot(queue),
        packets=tuple(packets),
        bytes=tuple(60 * p for p in packets),
        drops={"rule": drop - 1, "flow_drop": 1} if drop else {},
        alerts={(1, 5): drop},
        decode_errors={"ipv4_truncated": 1},
        flows_active=2,
        flows_created=3,
        engine={"alerts_discarded": 1},
    )


def test_counters_are_summed_over_workers_under_suricata_names() -> None:
    snaps = [_snap(0, 10, 4, rewrite=2), _snap(1, 5, 2)]
    queues = {
        0: {"id_sequence": 21, "queue_dropped": 1, "user_dropped": 2},
        1: {"id_sequence": 7, "queue_dropped": 0, "user_dropped": 0},
    }
    c = stats_counters(snaps, queues, uptime=12.7)
    assert c == {
        "uptime": 12,
        "decoder.pkts": 23,
        "decoder.bytes": 23 * 60,
        "decoder.invalid": 2,
        "detect.alert": 6,
        "detect.alert_queue_overflow": 2,
        "ips.accepted": 17,
        "ips.blocked": 6,
        "ips.rejected": 0,
        "ips.replaced": 2,
        "ips.drop_reason.rules": 4,
        "ips.drop_reason.flow_drop": 2,
        "ips.drop_reason.decode_error": 0,
        "flow.active": 4,
        "flow.total": 6,
        "capture.kernel_packets": 28,
        "capture.kernel_drops": 3,
    }


def test_logger_writes_at_its_interval_and_a_last_event_on_close(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    snaps = [_snap(0, 1, 0)]
    logger = StatsLogger(str(path), 0.05, lambda: snaps, dict, start_time=time.time())
    logger.start()
    deadline = time.monotonic() + 10
    while logger.written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    snaps = [_snap(0, 50, 0)]  # the last event must carry the final counts
    logger.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) >= 4
    assert {e["event_type"] for e in events} == {"stats"}
    assert events[-1]["stats"]["decoder"]["pkts"] == 50
    assert events[0]["stats"]["ips"]["accepted"] == 1


def test_stats_event_validates_against_suricatas_schema(tmp_path: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"Suricata EVE schema not found at {SCHEMA} (corpus absent)")
    from jsonschema import Draft202012Validator

    path = tmp_path / "eve.json"
    logger = StatsLogger(
        str(path),
        60,
        lambda: [_snap(0, 9, 3)],
        lambda: {0: {"id_sequence": 12, "queue_dropped": 0, "user_dropped": 0}},
        0.0,
    )
    logger.close()
    event = json.loads(path.read_text())
    errors = list(Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(event))
    assert not errors, [e.message for e in errors]
    assert event["stats"]["ips"]["drop_reason"]["rules"] == 2


def test_bad_interval() -> None:
    with pytest.raises(ValueError, match="stats interval"):
        StatsLogger("/dev/null", 0, list, dict, 0.0)
