"""The Prometheus configuration, alert rules and Grafana dashboard in deploy/.

promtool checks the scrape config and the rules and runs the rules' unit
tests (deploy/prometheus/tests/); a mutated copy of the rules shows that
those tests can fail. Every alert must have a firing and a non-firing case
there. The dashboard JSON is checked for structure, for using only the
exporter's metric names (the metrics contract, copied into SPEC_METRICS
below) and for honouring the queue variable. Finally a real
Prometheus, loaded with the deploy config and rules, scrapes a fake exporter
on 127.0.0.1 that serves every series of the spec: each dashboard query must
parse and return data, each rule must evaluate without error and each
recording rule must produce a series. Skipped without promtool/prometheus
(Debian package `prometheus`, installed by scripts/setup.sh).
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from inline_ips.lab.dashboard import DASHBOARD, dashboard_queries, substitute
from inline_ips.lab.topology import stop
from inline_ips.output.metrics import IpsCollector, MetricsHub, ProcessInfo
from inline_ips.telemetry import TABLES, empty_snapshot

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy/prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "inline-ips.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests/inline-ips.rules.test.yml"
GRAFANA_DIR = ROOT / "deploy/grafana"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)

# The exporter's metrics (the contract in the metrics spec), histogram series and Prometheus' own `up`.
SPEC_METRICS = frozenset(
    {
        "inline_ips_packets_total",
        "inline_ips_bytes_total",
        "inline_ips_drops_total",
        "inline_ips_alerts_total",
        "inline_ips_decode_errors_total",
        "inline_ips_engine_errors_total",
        "inline_ips_flows_bypassed_total",
        "inline_ips_flows_evicted_total",
        "inline_ips_blocks_total",
        "inline_ips_reloads_total",
        "inline_ips_eve_events_total",
        "inline_ips_eve_dropped_events_total",
        "inline_ips_verdict_latency_seconds_bucket",
        "inline_ips_verdict_latency_seconds_sum",
        "inline_ips_verdict_latency_seconds_count",
        "inline_ips_flows_active",
        "inline_ips_rules_loaded",
        "inline_ips_rules_skipped",
        "inline_ips_config_last_reload_successful",
        "inline_ips_config_last_reload_success_timestamp_seconds",
        "inline_ips_worker_up",
        "inline_ips_worker_restarts_total",
        "inline_ips_queue_length",
        "inline_ips_queue_kernel_drops_total",
        "inline_ips_queue_user_drops_total",
        "inline_ips_queue_packets_total",
        "inline_ips_firewall_queued_packets_total",
        "inline_ips_firewall_bypassed_packets_total",
        "inline_ips_firewall_blocked_packets_total",
        "inline_ips_blocklist_hosts",
        "inline_ips_blocklist_capacity",
        "inline_ips_info",
        "inline_ips_start_time_seconds",
        "inline_ips_unjudged_packets_total",
        "inline_ips_alerts_discarded_total",
        "inline_ips_flows_created_total",
        "inline_ips_table_entries",
        "inline_ips_table_capacity",
        "inline_ips_table_overflows_total",
        "inline_ips_app_memcap_used_bytes",
        "inline_ips_app_memcap_bytes",
        "inline_ips_app_memcap_refused_total",
        "inline_ips_worker_cpu_seconds_total",
        "inline_ips_worker_resident_memory_bytes",
        "inline_ips_exporter_errors_total",
        "up",
    }
)
# Metrics without a queue label: per address family, per process, or Prometheus'.
UNQUEUED_METRICS = frozenset(
    {
        "inline_ips_firewall_queued_packets_total",
        "inline_ips_firewall_bypassed_packets_total",
        "inline_ips_firewall_blocked_packets_total",
        "inline_ips_blocklist_hosts",
        "inline_ips_blocklist_capacity",
        "inline_ips_info",
        "inline_ips_start_time_seconds",
        "inline_ips_unjudged_packets_total",
        "inline_ips_exporter_errors_total",
        "up",
    }
)


def test_spec_metrics_are_what_the_exporter_serves() -> None:
    """The copy above is the real collector's names: a new metric must reach the dashboard's checks."""
    hub = MetricsHub([0])
    # An alert and a sink: their families have no series (so no names) until there is one.
    snap = replace(
        empty_snapshot(0),
        alerts={(1, 1): 1},
        rule_names={(1, 1): "x"},
        sinks={"file": {"events": 1, "dropped": 0}},
    )
    hub.update(snap)
    collector = IpsCollector(
        hub,
        ProcessInfo("1", True, 0.0),
        read_queues=lambda: {0: {"queue_total": 0, "queue_dropped": 0, "user_dropped": 0, "id_sequence": 0}},
        read_firewall=lambda: {("ipv4", kind): (0, 1) for kind in ("queued", "bypassed", "blocked")},
        read_blocklist=lambda: {"ipv4": (0, 65536)},
    )
    served = {sample.name for family in collector.collect() for sample in family.samples}
    assert served == SPEC_METRICS - {"up"}


# ---- promtool -------------------------------------------------------------------


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)}:\n{result.stdout}{result.stderr}"


@needs_promtool
def test_promtool_check_config() -> None:
    assert_ok(promtool("check", "config", CONFIG))


@needs_promtool
def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", RULES))


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    assert_ok(promtool("test", "rules", RULE_TESTS))


def copy_rules(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    """The rules with `old` replaced by `new`, and their unit tests, laid out as in deploy/."""
    text = RULES.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    rules = tmp_path / RULES.name
    rules.write_text(text.replace(old, new), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    tests = tmp_path / "tests" / RULE_TESTS.name
    shutil.copy(RULE_TESTS, tests)
    return rules, tests


@needs_promtool
def test_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    _, tests = copy_rules(
        tmp_path, "expr: inline_ips:alerts:rate1m > 10", "expr: inline_ips:alerts:rate1m > 20"
    )
    result = promtool("test", "rules", tests)
    assert result.returncode != 0
    assert "InlineIpsAlertBurst" in result.stdout + result.stderr


@needs_promtool
def test_unit_tests_catch_a_lost_aggregation(tmp_path: Path) -> None:
    _, tests = copy_rules(tmp_path, "expr: inline_ips_worker_up == 0", "expr: max(inline_ips_worker_up) == 0")
    result = promtool("test", "rules", tests)
    assert result.returncode != 0
    assert "InlineIpsWorkerDown" in result.stdout + result.stderr


@needs_promtool
def test_check_rules_catches_bad_promql(tmp_path: Path) -> None:
    rules, _ = copy_rules(tmp_path, "expr: inline_ips_worker_up == 0", "expr: inline_ips_worker_up ==")
    result = promtool("check", "rules", rules)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


# ---- the rules and their unit tests, as YAML --------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_of(kind: str) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if kind in rule]


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    alerts = [rule["alert"] for rule in rules_of("alert")]
    assert len(alerts) == len(set(alerts)), "duplicate alert names"
    cases = [case for test in load_yaml(RULE_TESTS)["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert sorted(set(alerts) - firing) == [], "alerts without a unit test where they fire"
    assert sorted(set(alerts) - silent) == [], "alerts without a unit test where they stay silent"
    assert sorted((firing | silent) - set(alerts)) == [], "unit tests of alerts that do not exist"


def test_every_firing_case_states_labels_and_annotations() -> None:
    for test in load_yaml(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                where = f"{test['name']}: {case['alertname']} at {case['eval_time']}"
                assert {"severity", "job", "instance"} <= set(alert["exp_labels"]), where
                assert {"summary", "description"} <= set(alert["exp_annotations"]), where


def test_every_alert_has_for_severity_and_annotations_with_the_value() -> None:
    for rule in rules_of("alert"):
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        # An up/down alert's value is always 0; every other one says how much.
        assert ("$value" in text) != rule["expr"].endswith("== 0"), rule["alert"]


def test_rules_use_only_spec_metrics_and_recorded_series() -> None:
    recorded = {rule["record"] for rule in rules_of("record")}
    for rule in rules_of("expr"):
        unknown = metric_names(rule["expr"]) - SPEC_METRICS - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"


# ---- PromQL, read just enough to find the metric names and their matchers ------------

_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(\s*\{[^}]*\})?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: str  # the text inside the braces, '' when there are none


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression (not functions, keywords, labels or numbers)."""
    strings: list[str] = []

    def mask(match: re.Match[str]) -> str:
        strings.append(match[0])
        return f'"{len(strings) - 1}"'

    text = _RANGE.sub("", _LABEL_LIST.sub("", _STRING.sub(mask, expr)))
    found = []
    for match in _NAME.finditer(text):
        name, braces = match[1], match[2] or ""
        if name.lower() in _KEYWORDS or (not braces and text[match.end() :].lstrip().startswith("(")):
            continue
        matchers = re.sub(r'"(\d+)"', lambda m: strings[int(m[1])], braces.strip()[1:-1])
        found.append(Selector(name, matchers))
    return found


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr)}


def test_selectors_reader() -> None:
    expr = (
        'clamp_min(sum by (job, le) (rate(inline_ips_packets_total{queue=~"$queue", x="a}b"}[5m]))'
        " - on (job) 8 * 1e-05 * time(), 0) > bool 2 or up or histogram_quantile(0.99, other_metric)"
    )
    assert selectors(expr) == [
        Selector("inline_ips_packets_total", 'queue=~"$queue", x="a}b"'),
        Selector("up", ""),
        Selector("other_metric", ""),
    ]


# ---- the dashboard ---------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def targets() -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_dashboard_identity_and_variables() -> None:
    board = dashboard()
    assert (board["uid"], board["title"]) == ("inline-ips", "inline-ips")
    assert board["schemaVersion"] >= 39
    assert "DS_PROMETHEUS" not in DASHBOARD.read_text(encoding="utf-8")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    queue = variables["queue"]
    assert queue["query"] == "label_values(inline_ips_packets_total, queue)"
    assert (queue["multi"], queue["includeAll"], queue["allValue"]) == (True, True, ".*")


def test_dashboard_panels() -> None:
    panels = list(all_panels(dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        if panel["type"] == "row":
            assert "targets" not in panel, panel["title"]
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no target"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    titles = {panel["title"] for panel in panels}
    assert "Per queue and decoder details" in titles  # a collapsed row, whose panels are nested
    assert "Decode errors/s by reason" in titles


def test_dashboard_uses_only_spec_metrics() -> None:
    for title, target in targets():
        unknown = metric_names(target["expr"]) - SPEC_METRICS
        assert not unknown, f"{title}: {sorted(unknown)} in {target['expr']}"


# They compare judged packets with the firewall's counter of packets queued, which counts all queues.
ALL_QUEUE_PANELS = frozenset({"Unjudged packets/s", "Queued vs judged (fail-open)"})


def test_dashboard_selects_queues_and_uses_grafana_windows() -> None:
    for title, target in targets():
        expr = target["expr"]
        if title in ALL_QUEUE_PANELS:
            assert "$queue" not in expr, f"{title}: {expr}"
            continue
        for selector in selectors(expr):
            if selector.metric not in UNQUEUED_METRICS:
                assert 'queue=~"$queue"' in selector.matchers, f"{title}: {selector} in {expr}"
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in {"$__rate_interval", "$__range"}, f"{title}: [{window}] in {expr}"


def test_dashboard_queries_substitute_every_variable() -> None:
    queries = dashboard_queries()
    assert len(queries) == len(targets())
    assert "Decode errors/s by reason" in {title for title, _ in queries}  # inside a collapsed row
    for title, expr in queries:
        assert "$" not in expr, f"{title}: {expr}"
    exprs = [expr for _, expr in queries]
    assert any('queue=~".*"' in e for e in exprs)
    assert any("[30s]" in e for e in exprs)
    assert any("[2m]" in e for _, e in dashboard_queries(rate_interval="2m"))
    assert any("[6h]" in e for _, e in dashboard_queries(time_range="6h"))


def test_substitute_refuses_unknown_variables(tmp_path: Path) -> None:
    values = {"queue": ".*", "__interval": "15s"}
    assert substitute('rate(x{queue=~"${queue}"}[$__interval])', values) == 'rate(x{queue=~".*"}[15s])'
    assert substitute('x{queue=~"${queue:regex}"}', values) == 'x{queue=~".*"}'
    with pytest.raises(ValueError, match=r"\$instance"):
        substitute('x{instance="$instance"}', values)
    board = {
        "panels": [
            {"type": "row", "title": "r", "panels": [{"title": "p", "targets": [{"expr": "x[$__range_ms]"}]}]}
        ]
    }
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board), encoding="utf-8")
    with pytest.raises(ValueError, match="__range_ms"):
        dashboard_queries(path)


# ---- Grafana provisioning ---------------------------------------------------------------


def test_grafana_provisioning() -> None:
    (datasource,) = load_yaml(GRAFANA_DIR / "provisioning/datasources/inline-ips.yml")["datasources"]
    assert (datasource["type"], datasource["uid"], datasource["url"]) == (
        "prometheus",
        "prometheus",
        "http://127.0.0.1:9090",
    )
    # $__rate_interval is only right when Grafana knows the scrape interval.
    assert datasource["jsonData"]["timeInterval"] == load_yaml(CONFIG)["global"]["scrape_interval"]
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning/dashboards/inline-ips.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


# ---- a real Prometheus scraping a fake exporter ---------------------------------------------

QUEUES = ("0", "1")
FAMILIES = ("ipv4", "ipv6")
BUCKETS: tuple[str, ...] = (
    "1e-05",
    "2.5e-05",
    "5e-05",
    "0.0001",
    "0.00025",
    "0.0005",
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.1",
    "+Inf",
)
Labels = dict[str, str]


def fake_series() -> list[tuple[str, Labels, float, float]]:
    """(name, labels, value at start, increase per second) for every series the spec promises."""
    series: list[tuple[str, Labels, float, float]] = []
    for q in QUEUES:

        def add(name: str, rate: float = 0.0, start: float = 0.0, q: str = q, **labels: str) -> None:
            series.append((name, {"queue": q, **labels}, start, rate))

        for verdict in ("accept", "rewrite", "drop", "reject", "block"):
            add("inline_ips_packets_total", 100.0, verdict=verdict)
            add("inline_ips_bytes_total", 60000.0, verdict=verdict)
        for reason in ("rule", "rate", "flow_drop", "blocklist", "decode_error"):
            add("inline_ips_drops_total", 5.0, reason=reason)
        add("inline_ips_alerts_total", 3.0, gid="1", sid="1000001", signature="SYN flood")
        add("inline_ips_alerts_total", 1.0, gid="0", sid="other", signature="other")
        for reason in ("ipv4_truncated", "tcp_truncated"):
            add("inline_ips_decode_errors_total", 0.5, reason=reason)
        for name in ("engine_errors", "flows_bypassed", "flows_evicted", "blocks", "worker_restarts"):
            add(f"inline_ips_{name}_total", 0.1)
        for outcome in ("ok", "failed"):
            add("inline_ips_reloads_total", 0.01, outcome=outcome)
        for sink in ("file", "syslog", "webhook"):
            add("inline_ips_eve_events_total", 4.0, sink=sink)
            add("inline_ips_eve_dropped_events_total", 0.1, sink=sink)
        for i, le in enumerate(BUCKETS):
            add("inline_ips_verdict_latency_seconds_bucket", 500.0 * min(1.0, (i + 1) / 8), le=le)
        add("inline_ips_verdict_latency_seconds_sum", 0.1)
        add("inline_ips_verdict_latency_seconds_count", 500.0)
        add("inline_ips_flows_active", start=1234)
        for kind in ("signature", "rate"):
            add("inline_ips_rules_loaded", start=40, kind=kind)
        for kind in ("invalid", "unsupported"):
            add("inline_ips_rules_skipped", start=2, kind=kind)
        add("inline_ips_config_last_reload_successful", start=1)
        add("inline_ips_config_last_reload_success_timestamp_seconds", start=time.time() - 60)
        add("inline_ips_worker_up", start=1)
        add("inline_ips_queue_length", start=3)
        add("inline_ips_queue_kernel_drops_total", 0.2)
        add("inline_ips_queue_user_drops_total", 0.1)
        add("inline_ips_queue_packets_total", 500.0)
        for name in ("alerts_discarded", "flows_created", "app_memcap_refused"):
            add(f"inline_ips_{name}_total", 0.1)
        for table in TABLES:
            if table != "app_bytes":  # the app memcap has series of its own
                add("inline_ips_table_entries", start=100, table=table)
                add("inline_ips_table_capacity", start=1000, table=table)
                add("inline_ips_table_overflows_total", 0.1, table=table)
        add("inline_ips_app_memcap_used_bytes", start=1 << 20)
        add("inline_ips_app_memcap_bytes", start=1 << 28)
        add("inline_ips_worker_cpu_seconds_total", 0.4)
        add("inline_ips_worker_resident_memory_bytes", start=80 << 20)
    for family in FAMILIES:
        series.append(("inline_ips_firewall_queued_packets_total", {"family": family}, 0, 500.0))
        series.append(("inline_ips_firewall_bypassed_packets_total", {"family": family}, 0, 50.0))
        series.append(("inline_ips_firewall_blocked_packets_total", {"family": family}, 0, 20.0))
        series.append(("inline_ips_blocklist_hosts", {"family": family}, 12, 0))
        series.append(("inline_ips_blocklist_capacity", {"family": family}, 65536, 0))
    series.append(("inline_ips_info", {"version": "0.0.0-test", "fail_open": "true"}, 1, 0))
    series.append(("inline_ips_start_time_seconds", {}, time.time() - 3600, 0))
    series.append(("inline_ips_unjudged_packets_total", {}, 0, 2.0))
    for source in ("nfqueue", "iptables", "ipset"):
        series.append(("inline_ips_exporter_errors_total", {"source": source}, 0, 0))
    return series


class FakeExporter(http.server.ThreadingHTTPServer):
    """Serves the spec's series on /metrics, counters growing with time."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MetricsHandler)
        self.series = fake_series()
        self.started = time.monotonic()

    def exposition(self) -> str:
        elapsed = time.monotonic() - self.started
        lines = []
        for name, labels, start, rate in self.series:
            text = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {start + rate * elapsed}")
        return "\n".join(lines) + "\n"


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    server: FakeExporter

    def do_GET(self) -> None:
        body = self.server.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """One API call; Prometheus answers errors (bad PromQL) with JSON too."""
        data = urllib.parse.urlencode(params).encode() if params else None
        try:
            with urllib.request.urlopen(f"{self.url}{path}", data=data, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as e:
            answer = json.load(e)
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=expr)

    def wait_for(self, what: str, expr: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.query(expr).get("data", {}).get("result"):
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: no {what} after {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"prometheus did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """The deploy config and rules, at a 1s scrape and evaluation interval, scraping a FakeExporter."""
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = FakeExporter()
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    config = load_yaml(CONFIG)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter.server_address[1]}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        server = Prometheus(url, log)
        # rate() over the queries' 30s windows needs two scrapes; three leave a margin.
        server.wait_for("three scrapes", 'count_over_time(up{job="inline-ips"}[1m]) >= 3')
        server.wait_for("recorded rates", "inline_ips:packets:rate1m")
        yield server
    finally:
        stop(process, timeout=10)
        exporter.shutdown()
        exporter.server_close()


@pytest.mark.slow  # Prometheus applies its scrape targets only after 5s
def test_the_fake_exporter_is_scraped(prometheus: Prometheus) -> None:
    result = prometheus.query('up{job="inline-ips"}')["data"]["result"]
    assert [sample["value"][1] for sample in result] == ["1"]
    names = set(prometheus.api("/api/v1/label/__name__/values")["data"])
    assert names >= SPEC_METRICS


@pytest.mark.slow  # Prometheus applies its scrape targets only after 5s
def test_every_dashboard_query_parses_and_returns_data(prometheus: Prometheus) -> None:
    failures = []
    for title, expr in dashboard_queries():
        answer = prometheus.query(expr)
        if answer["status"] != "success":
            failures.append(f"{title}: {expr}\n  {answer.get('errorType')}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            failures.append(f"{title}: {expr}\n  no data")
    assert not failures, "\n".join(failures)


@pytest.mark.slow  # Prometheus applies its scrape targets only after 5s
def test_queue_variable_finds_the_queues(prometheus: Prometheus) -> None:
    # What Grafana asks for label_values(inline_ips_packets_total, queue).
    answer = prometheus.api(
        "/api/v1/label/queue/values?" + urllib.parse.urlencode({"match[]": "inline_ips_packets_total"})
    )
    assert answer["data"] == list(QUEUES)


@pytest.mark.slow  # Prometheus applies its scrape targets only after 5s
def test_every_rule_evaluates_and_records(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 10
    while True:
        rules = [
            rule for group in prometheus.api("/api/v1/rules")["data"]["groups"] for rule in group["rules"]
        ]
        if all(rule["health"] != "unknown" for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert len(rules) == len(rules_of("expr"))
    bad = [
        f"{rule['name']}: {rule['health']} {rule.get('lastError', '')}"
        for rule in rules
        if rule["health"] != "ok"
    ]
    assert not bad, "\n".join(bad)
    for rule in rules_of("record"):
        prometheus.wait_for(f"series of {rule['record']}", rule["record"], timeout=10)
