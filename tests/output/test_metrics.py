"""The exporter over real HTTP on loopback: names, labels, values, liveness, kernel sources that fail."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inline_ips.output.metrics import (
    Exporter,
    IpsCollector,
    MetricsHub,
    ProcessInfo,
    is_loopback,
    parse_listen,
)
from inline_ips.telemetry import LATENCY_BUCKETS, OTHER_RULE, Snapshot, empty_snapshot
from inline_ips.verdict import Action

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _snapshot(queue: int, scale: int = 1) -> Snapshot:
    base = empty_snapshot(queue)
    packets = [0] * len(Action)
    packets[Action.ACCEPT] = 90 * scale
    packets[Action.DROP] = 7 * scale
    packets[Action.BLOCK] = 3 * scale
    latency = [0] * (len(LATENCY_BUCKETS) + 1)
    latency[0] = 60 * scale
    latency[2] = 39 * scale
    latency[-1] = 1 * scale
    return replace(
        base,
        wall_time=1.0,
        packets=tuple(packets),
        bytes=tuple(p * 100 for p in packets),
        drops={"rule": 6 * scale, "flow_drop": 1 * scale, "rate": 3 * scale},
        alerts={(1, 2100001): 6 * scale, OTHER_RULE: 2},
        rule_names={(1, 2100001): 'SQL injection: "UNION" SELECT', OTHER_RULE: "other"},
        latency_counts=tuple(latency),
        latency_sum=0.5 * scale,
        decode_errors={"tcp_truncated": 2},
        engine={"engine_errors": 1, "reloads_ok": 2, "reloads_failed": 1, "alerts_discarded": 0},
        flows_active=12,
        flows_created=40,
        flows_bypassed=5,
        blocks=1,
        rules_loaded={"signature": 20, "rate": 9},
        rules_skipped={"unsupported": 4},
        last_reload_ok=False,
        last_reload_success_time=1700000000.0,
        sinks={"file": {"events": 9, "dropped": 0}, "webhook": {"events": 9, "dropped": 3}},
    )


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


Start = Callable[..., tuple[MetricsHub, Callable[[], Samples], "FakeClock"]]


@pytest.fixture
def served() -> Iterator[Start]:
    exporters: list[Exporter] = []

    def start(**readers: object) -> tuple[MetricsHub, Callable[[], Samples], FakeClock]:
        clock = FakeClock()
        hub = MetricsHub([0, 1], clock=clock)
        collector = IpsCollector(hub, ProcessInfo("9.9", True, 1700000000.0), **readers)  # type: ignore[arg-type]
        exp = Exporter(collector, "127.0.0.1", 0)
        exporters.append(exp)
        return hub, lambda: _scrape(exp.port), clock

    yield start
    for e in exporters:
        e.close()


def test_every_worker_series_exists_from_the_first_scrape(served: Start) -> None:
    _hub, scrape, _ = served(read_queues=dict)
    s = scrape()
    for q in ("0", "1"):
        for verdict in ("accept", "rewrite", "drop", "reject", "block"):
            assert _get(s, "inline_ips_packets_total", queue=q, verdict=verdict) == 0
        for reason in ("rule", "rate", "flow_drop", "blocklist", "decode_error"):
            assert _get(s, "inline_ips_drops_total", queue=q, reason=reason) == 0
        assert _get(s, "inline_ips_worker_up", queue=q) == 0  # never started
        assert _get(s, "inline_ips_verdict_latency_seconds_count", queue=q) == 0
        assert _get(s, "inline_ips_decode_errors_total", queue=q, reason="ipv4_truncated") == 0
    assert _get(s, "inline_ips_info", version="9.9", fail_open="true") == 1
    assert _get(s, "inline_ips_start_time_seconds") == 1700000000.0


def test_values_labels_and_histogram(served: Start) -> None:
    hub, scrape, _ = served(read_queues=dict)
    hub.worker_started(0)
    hub.update(_snapshot(0))
    hub.update(_snapshot(1, scale=2))
    s = scrape()
    assert _get(s, "inline_ips_packets_total", queue="0", verdict="accept") == 90
    assert _get(s, "inline_ips_packets_total", queue="1", verdict="drop") == 14
    assert _get(s, "inline_ips_bytes_total", queue="0", verdict="block") == 300
    assert _get(s, "inline_ips_drops_total", queue="1", reason="rule") == 12
    sig = 'SQL injection: "UNION" SELECT'
    assert _get(s, "inline_ips_alerts_total", queue="0", gid="1", sid="2100001", signature=sig) == 6
    assert _get(s, "inline_ips_alerts_total", queue="0", gid="0", sid="other", signature="other") == 2
    assert _get(s, "inline_ips_decode_errors_total", queue="0", reason="tcp_truncated") == 2
    assert _get(s, "inline_ips_engine_errors_total", queue="0") == 1
    assert _get(s, "inline_ips_flows_active", queue="0") == 12
    assert _get(s, "inline_ips_flows_bypassed_total", queue="0") == 5
    assert _get(s, "inline_ips_blocks_total", queue="0") == 1
    assert _get(s, "inline_ips_rules_loaded", queue="0", kind="rate") == 9
    assert _get(s, "inline_ips_rules_skipped", queue="0", kind="unsupported") == 4
    assert _get(s, "inline_ips_rules_skipped", queue="0", kind="invalid") == 0
    assert _get(s, "inline_ips_reloads_total", queue="0", outcome="failed") == 1
    assert _get(s, "inline_ips_config_last_reload_successful", queue="0") == 0
    assert _get(s, "inline_ips_eve_dropped_events_total", queue="0", sink="webhook") == 3
    # Cumulative buckets, as Prometheus wants them.
    assert _get(s, "inline_ips_verdict_latency_seconds_bucket", queue="0", le="1e-05") == 60
    assert _get(s, "inline_ips_verdict_latency_seconds_bucket", queue="0", le="2.5e-05") == 60
    assert _get(s, "inline_ips_verdict_latency_seconds_bucket", queue="0", le="5e-05") == 99
    assert _get(s, "inline_ips_verdict_latency_seconds_bucket", queue="0", le="0.1") == 99
    assert _get(s, "inline_ips_verdict_latency_seconds_bucket", queue="0", le="+Inf") == 100
    assert _get(s, "inline_ips_verdict_latency_seconds_count", queue="0") == 100
    assert _get(s, "inline_ips_verdict_latency_seconds_sum", queue="0") == 0.5
    # Worker 0 reported; worker 1's snapshot came but its start was never seen.
    assert _get(s, "inline_ips_worker_up", queue="0") == 1
    assert _get(s, "inline_ips_worker_up", queue="1") == 0


def test_a_silent_or_stopped_worker_is_down_and_restarts_count(served: Start) -> None:
    hub, scrape, clock = served(read_queues=dict)
    hub.worker_started(0)
    hub.update(_snapshot(0))
    clock.now += 4.9
    assert _get(scrape(), "inline_ips_worker_up", queue="0") == 1
    clock.now += 0.2  # 5.1 s without a report
    assert _get(scrape(), "inline_ips_worker_up", queue="0") == 0
    hub.worker_stopped(0)
    hub.worker_started(0)
    hub.worker_started(0)
    s = scrape()
    assert _get(s, "inline_ips_worker_up", queue="0") == 1
    assert _get(s, "inline_ips_worker_restarts_total", queue="0") == 2
    # The dead worker's last counts stay until the new one reports (then its series resets).
    assert _get(s, "inline_ips_packets_total", queue="0", verdict="accept") == 90


def test_kernel_sources(served: Start) -> None:
    queues = {0: {"queue_total": 3, "queue_dropped": 4, "user_dropped": 5, "id_sequence": 600}, 7: {}}
    _hub, scrape, _ = served(
        read_queues=lambda: queues,
        read_firewall=lambda: {
            ("ipv4", "queued"): (700, 1),
            ("ipv4", "blocked"): (8, 1),
            ("ipv6", "queued"): (9, 1),
        },
        read_blocklist=lambda: {"ipv4": (2, 65536)},
    )
    s = scrape()
    assert _get(s, "inline_ips_queue_length", queue="0") == 3
    assert _get(s, "inline_ips_queue_kernel_drops_total", queue="0") == 4
    assert _get(s, "inline_ips_queue_user_drops_total", queue="0") == 5
    assert _get(s, "inline_ips_queue_packets_total", queue="0") == 600
    assert ("inline_ips_queue_length", frozenset({("queue", "1")})) not in s  # queue 1 not bound
    assert ("inline_ips_queue_length", frozenset({("queue", "7")})) not in s  # not ours
    assert _get(s, "inline_ips_firewall_queued_packets_total", family="ipv4") == 700
    assert _get(s, "inline_ips_firewall_queued_packets_total", family="ipv6") == 9
    assert _get(s, "inline_ips_firewall_blocked_packets_total", family="ipv4") == 8
    assert _get(s, "inline_ips_blocklist_hosts", family="ipv4") == 2
    assert _get(s, "inline_ips_blocklist_capacity", family="ipv4") == 65536
    assert _get(s, "inline_ips_exporter_errors_total", source="iptables") == 0


def test_an_unreadable_kernel_source_is_left_out_and_counted(served: Start) -> None:
    def refuse() -> dict[tuple[str, str], tuple[int, int]]:
        raise PermissionError("iptables: permission denied (you must be root)")

    _hub, scrape, _ = served(read_queues=dict, read_firewall=refuse)
    scrape()
    s = scrape()
    assert _get(s, "inline_ips_exporter_errors_total", source="iptables") == 2
    assert not any(name.startswith("inline_ips_firewall_") for name, _ in s)
    assert _get(s, "inline_ips_packets_total", queue="0", verdict="accept") == 0  # the rest is served


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9108", ("::1", 9108)),
        ("9200", ("127.0.0.1", 9200)),
        ("localhost:9108", ("localhost", 9108)),
    ],
)
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1:", "is not a number"),
        ("127.0.0.1:70000", "out of range"),
        ("::1:9108", "[ADDR]:PORT"),
        ("[::1]9108", "[IPv6]:PORT"),
        (":9108", "HOST:PORT"),
        ("x", "is not a number"),
    ],
)
def test_parse_listen_errors_name_the_value(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="metrics address") as e:
        parse_listen(text)
    assert says in str(e.value)
    assert repr(text) in str(e.value)


def test_a_port_in_use_is_a_clear_error() -> None:
    hub = MetricsHub([0])
    first = Exporter(IpsCollector(hub, ProcessInfo("1", True, 0.0), read_queues=dict), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            Exporter(IpsCollector(hub, ProcessInfo("1", True, 0.0)), "127.0.0.1", first.port)
    finally:
        first.close()


def test_unjudged_packets_are_the_rule_count_minus_the_queue_ids(served: Start) -> None:
    """Fail-open and no-listener packets: matched by the NFQUEUE rule, never given a queue id."""
    state: dict[str, int] = {"queued": 709, "ids": 600}

    def firewall() -> dict[tuple[str, str], tuple[int, int]]:
        return {("ipv4", "queued"): (state["queued"] - 9, 1), ("ipv6", "queued"): (9, 1)}

    def queues() -> dict[int, dict[str, int]]:
        return {0: {"queue_total": 0, "queue_dropped": 0, "user_dropped": 0, "id_sequence": state["ids"]}}

    _hub, scrape, _ = served(read_queues=queues, read_firewall=firewall)
    assert _get(scrape(), "inline_ips_unjudged_packets_total") == 109
    state.update(queued=800, ids=50)  # the worker restarted: a new queue instance counts from 0
    assert _get(scrape(), "inline_ips_unjudged_packets_total") == 800 - 600 - 50
    state.update(queued=0, ids=60)  # iptables -Z: the counter never goes backwards
    assert _get(scrape(), "inline_ips_unjudged_packets_total") == 150


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.9", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_exporter_binds_at_once_and_serves_from_start() -> None:
    """inline-ips run binds before the firewall and starts the thread after the privilege drop."""
    hub = MetricsHub([0])
    threads = threading.active_count()
    collector = IpsCollector(hub, ProcessInfo("1", True, 0.0), read_queues=dict)
    exp = Exporter(collector, "127.0.0.1", 0, start=False)
    try:
        assert threading.active_count() == threads  # bound, but no thread yet
        with pytest.raises(OSError, match="cannot serve metrics"):
            Exporter(IpsCollector(hub, ProcessInfo("1", True, 0.0)), "127.0.0.1", exp.port)
        exp.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=10) as r:
            assert b"inline_ips_info" in r.read()
    finally:
        exp.close()
