"""A real Prometheus scrapes a real inline-ips while real attacks cross the lab router.

The lab (client, attacker, router, server) runs ``inline-ips run`` with two
workers in the router, its exporter on the router's loopback, and the
Debian ``prometheus`` server beside it (also on the router's loopback,
scraping every second, with the project's recording and alerting rules).
The EVE webhook points at a receiver that accepts connections and never
answers, with a tiny sink queue, so the sink is stuck and full the whole
time. Then the attacker attacks and the client browses, and the test asks
Prometheus, at instants before and after, whether the counters moved as the
traffic did:

- every packet that left one end and did not reach the other was counted by
  the IPS as a drop (engine drops plus the kernel blocklist's drops), counted
  independently with iptables rules in the attacker and server namespaces
  and at the router's ingress;
- every packet the kernel queued was judged (nothing passed unjudged,
  although the webhook never answered), and the webhook's drops were counted;
- alerts, blocks, workers, rules and the EVE stats event agree;
- every query of the Grafana dashboard returns data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.lab import attacks, services
from inline_ips.lab.demo import running_ips, settle, unblock_attacker
from inline_ips.lab.topology import Lab, down, exec_in, popen_in, stop, up, wait_for
from tests.corpus import DEFAULT_RULES, ROOT
from tests.netns import require_root_netns

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")
PROM = "127.0.0.1:9090"  # on the router's loopback: its own namespace, not the host's
EXPORTER = "127.0.0.1:9108"
HANG_PORT = 9977
RULES_FILE = ROOT / "deploy" / "prometheus" / "inline-ips.rules.yml"
SQLI_SID = 2100001  # rules.yaml: SQL injection (UNION SELECT) in the URI
PORT_SCAN_SID = 2200030  # rules.yaml: SYN to many ports of one host


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    if PROMETHEUS is None:
        pytest.skip("the Debian prometheus package is not installed (scripts/setup.sh installs it)")
    lab = Lab(f"t{os.getpid() % 100000}pm")
    up(lab)
    try:
        with services.running_services(lab):
            yield lab
    finally:
        down(lab)


# -- counting packets at the ends, independently of the IPS ----------------------------


def _count_rules(lab: Lab) -> dict[str, tuple[str, list[str]]]:
    """name -> (namespace role, iptables raw-table rule spec). Raw: before anything can drop."""
    a, c, s = lab.attacker_ip, lab.client_ip, lab.server_ip
    return {
        # What the router received from each end, towards the other (before the IPS).
        "router_in_a2s": ("router", ["PREROUTING", "-s", a, "-d", s]),
        "router_in_c2s": ("router", ["PREROUTING", "-s", c, "-d", s]),
        "router_in_s2a": ("router", ["PREROUTING", "-s", s, "-d", a]),
        "router_in_s2c": ("router", ["PREROUTING", "-s", s, "-d", c]),
        # What arrived at the far end.
        "server_in_from_a": ("server", ["PREROUTING", "-s", a]),
        "server_in_from_c": ("server", ["PREROUTING", "-s", c]),
        "attacker_in_from_s": ("attacker", ["PREROUTING", "-s", s]),
        "client_in_from_s": ("client", ["PREROUTING", "-s", s]),
    }


def install_end_counters(lab: Lab) -> None:
    for name, (role, spec) in _count_rules(lab).items():
        cp = exec_in(
            lab,
            role,
            ["iptables-legacy", "-w", "5", "-t", "raw", "-I", *spec, "-m", "comment", "--comment", name],
        )
        assert cp.returncode == 0, cp.stderr


def end_counters(lab: Lab) -> dict[str, int]:
    out: dict[str, int] = {}
    for role in ("router", "server", "attacker", "client"):
        text = exec_in(lab, role, ["iptables-legacy", "-w", "5", "-t", "raw", "-L", "-v", "-x", "-n"]).stdout
        for line in text.splitlines():
            if "/*" in line:
                name = line.split("/*")[1].split("*/")[0].strip()
                out[name] = int(line.split()[0])
    return out


def lost(before: dict[str, int], after: dict[str, int], end: str) -> int:
    """Packets between ``end`` (attacker or client) and the server that the router did not deliver."""
    d = {k: after[k] - before.get(k, 0) for k in after}
    e = end[0]
    return (d[f"router_in_{e}2s"] - d[f"server_in_from_{e}"]) + (
        d[f"router_in_s2{e}"] - d[f"{end}_in_from_s"]
    )


# -- Prometheus -------------------------------------------------------------------------


def prometheus_config(tmp: Path) -> Path:
    cfg = tmp / "prometheus.yml"
    rule_files = f"rule_files: [{json.dumps(str(RULES_FILE))}]\n" if RULES_FILE.exists() else ""
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + rule_files
        + f"scrape_configs:\n  - job_name: inline-ips\n    static_configs:\n      - targets: ['{EXPORTER}']\n"
    )
    return cfg


def query(lab: Lab, expr: str, at: float | None = None) -> list[dict[str, object]]:
    argv = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        f"http://{PROM}/api/v1/query",
        "--data-urlencode",
        f"query={expr}",
    ]
    if at is not None:
        argv += ["--data-urlencode", f"time={at:.3f}"]
    cp = exec_in(lab, "router", argv)
    assert cp.returncode == 0, f"{expr}: {cp.stderr}"
    answer = json.loads(cp.stdout)
    assert answer["status"] == "success", f"{expr}: {answer}"
    result = answer["data"]["result"]
    assert isinstance(result, list)
    return result


def value(lab: Lab, expr: str, at: float | None = None) -> float:
    result = query(lab, expr, at)
    assert len(result) == 1, f"{expr}: expected one series, got {result}"
    sample = result[0]["value"]
    assert isinstance(sample, list)
    return float(sample[1])


def scraped_after(lab: Lab, moment: float) -> bool:
    """Prometheus holds a scrape taken after ``moment`` (wall clock)."""
    result = query(lab, "timestamp(inline_ips_start_time_seconds)")
    return bool(result) and float(result[0]["value"][1]) > moment  # type: ignore[index]


@pytest.fixture
def prometheus(lab: Lab, tmp_path: Path) -> Iterator[None]:
    assert PROMETHEUS is not None
    data = tmp_path / "tsdb"
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed below
    proc = popen_in(
        lab,
        "router",
        [
            PROMETHEUS,
            f"--config.file={prometheus_config(tmp_path)}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={PROM}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        up_ = wait_for(
            lambda: exec_in(lab, "router", ["curl", "-sf", f"http://{PROM}/-/ready"]).returncode == 0,
            timeout=30,
            interval=0.2,
        )
        assert up_, f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
        yield
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def hanging_webhook(lab: Lab) -> Iterator[str]:
    """A receiver in the router that accepts connections and never answers."""
    code = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {HANG_PORT})); s.listen(64); held = []\n"
        "while True:\n    held.append(s.accept()[0])\n"
    )
    proc = popen_in(lab, "router", [sys.executable, "-c", code])
    try:
        assert wait_for(
            lambda: bool(exec_in(lab, "router", ["ss", "-Hltn", f"sport = :{HANG_PORT}"]).stdout.strip()),
            timeout=10,
        )
        yield f"http://127.0.0.1:{HANG_PORT}/hook"
    finally:
        proc.kill()
        proc.wait()


def test_prometheus_sees_what_the_traffic_did(
    lab: Lab, tmp_path: Path, prometheus: None, hanging_webhook: str
) -> None:
    eve = tmp_path / "eve.json"
    extra = ["--workers", "2", "--metrics", EXPORTER, "--stats-interval", "1"]
    extra += ["--webhook", hanging_webhook, "--sink-queue", "4"]
    with running_ips(lab, DEFAULT_RULES, eve, *extra, log=tmp_path / "ips.log"):
        start = time.time()
        assert wait_for(lambda: scraped_after(lab, start), timeout=20, interval=0.3), "no scrape of the IPS"
        install_end_counters(lab)
        before_ends = end_counters(lab)
        t0 = time.time()
        time.sleep(2.5)  # a report and a scrape after t0, so the "before" instant is exact

        benign = attacks.http_gets(lab, 20, per_second=40)
        sqli = attacks.sqli(lab)
        scan = attacks.port_scan(lab, skip_discovery=True)
        flood = attacks.syn_flood(lab, 800, interval_us=1000)  # the attacker is still blocked: kernel drops
        settle(lab)
        blocked_hosts = value(lab, 'sum(inline_ips_blocklist_hosts{family="ipv4"})')
        top = exec_in(
            lab,
            "router",
            [sys.executable, "-m", "inline_ips", "top", "--once", "--interval", "0.5"],
            cwd=ROOT,
        )
        assert top.returncode == 0, top.stderr
        assert "workers 2/2" in top.stdout and lab.attacker_ip in top.stdout, top.stdout
        print(top.stdout)
        unblock_attacker(lab)
        after_ends = end_counters(lab)
        t1 = time.time()
        time.sleep(3.5)  # the workers' last reports (1 s) and a scrape (1 s) after t1

        def delta(expr: str) -> float:
            # A series born during the attacks (a rule's first alert) was 0 before it existed.
            expr = f"({expr}) or vector(0)"
            return value(lab, expr, time.time()) - value(lab, expr, t0)

        # 1. What did not reach the far end is what the IPS says it dropped.
        lost_attacker = lost(before_ends, after_ends, "attacker")
        lost_client = lost(before_ends, after_ends, "client")
        engine_drops = delta("sum(inline_ips_drops_total)")
        kernel_drops = delta("sum(inline_ips_firewall_blocked_packets_total)")
        assert lost_attacker > 100, (lost_attacker, scan, flood)
        assert lost_client == 0, "the benign client lost packets"
        assert engine_drops + kernel_drops == lost_attacker, (engine_drops, kernel_drops, lost_attacker)
        assert kernel_drops > 0, "the blocked attacker's flood should have been dropped in the kernel"
        assert delta('sum(inline_ips_drops_total{reason="rule"})') >= 1  # the SQL injection
        assert delta('sum(inline_ips_packets_total{verdict="block"})') >= 1  # the scan that got it blocked

        print(
            f"lost between attacker and server {lost_attacker}, client {lost_client}; IPS drops: engine "
            f"{engine_drops:.0f} + kernel blocklist {kernel_drops:.0f}"
        )

        # 2. Every packet queued was judged; nothing passed unjudged (fail-open), webhook or not.
        judged = value(lab, "sum(inline_ips_packets_total)")
        queued_kernel = value(lab, "sum(inline_ips_queue_packets_total)")
        queued_iptables = value(lab, "sum(inline_ips_firewall_queued_packets_total)")
        assert judged == queued_kernel == queued_iptables, (judged, queued_kernel, queued_iptables)
        assert judged > benign.sent
        print(
            f"judged {judged:.0f} = kernel-queued {queued_kernel:.0f} = iptables-queued {queued_iptables:.0f}"
        )
        assert value(lab, 'sum(inline_ips_eve_dropped_events_total{sink="webhook"})') > 0
        assert value(lab, 'sum(inline_ips_eve_events_total{sink="webhook"})') >= 1

        # 3. Alerts, blocks, workers, rules.
        assert delta(f'sum(inline_ips_alerts_total{{sid="{SQLI_SID}"}})') == len(attacks.SQLI_PATHS)
        assert delta(f'sum(inline_ips_alerts_total{{sid="{PORT_SCAN_SID}"}})') >= 1
        assert blocked_hosts >= 1
        assert value(lab, "sum(inline_ips_worker_up)") == 2
        assert value(lab, "count(inline_ips_worker_up)") == 2
        assert value(lab, 'max(inline_ips_rules_loaded{kind="signature"})') > 0
        assert value(lab, "sum(inline_ips_verdict_latency_seconds_count)") == judged
        assert benign.succeeded == benign.sent
        assert sqli.succeeded == 0, "the SQL injection got an answer"

        # 4. Every dashboard query returns data.
        from inline_ips.lab.dashboard import dashboard_queries

        empty = [
            (title, expr) for title, expr in dashboard_queries(rate_interval="1m") if not query(lab, expr)
        ]
        assert not empty, f"dashboard queries without data: {empty}"
        print(f"{len(dashboard_queries())} dashboard queries, all with data")
        assert t1 > t0

    # 5. The EVE stats events: one a second, the last with the final counts.
    events = [json.loads(line) for line in eve.read_text().splitlines()]
    stats = [e["stats"] for e in events if e["event_type"] == "stats"]
    assert len(stats) >= 5
    last = stats[-1]
    assert last["decoder"]["pkts"] == judged
    assert last["detect"]["alert"] == sum(1 for e in events if e["event_type"] == "alert")
