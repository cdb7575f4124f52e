"""inline-ips inline for real: the IPS on a namespace router between real hosts.

One lab (client, attacker, router, server) for the module; each test starts
its own ``inline-ips run`` in the router with the rules it needs, sends real
traffic (hping3, nmap, curl, dig, iperf3) and reads what reached the server
and what the kernel's queue saw. The lab is always torn down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.lab import attacks, services
from inline_ips.lab.demo import (
    attacker_blocked,
    queue_backlog,
    queue_stats,
    running_ips,
    settle,
    unblock_attacker,
)
from inline_ips.lab.topology import Lab, down, exec_in, popen_in, up, wait_for
from tests.corpus import DEFAULT_RULES, ROOT
from tests.netns import require_root_netns

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    lab = Lab(f"t{os.getpid() % 100000}in")
    up(lab)
    try:
        with services.running_services(lab, iperf=True):
            yield lab
    finally:
        down(lab)


def queued(lab: Lab) -> int:
    """Packets the kernel has handed to queue 0 so far."""
    return queue_stats(lab).get(0, {}).get("id_sequence", 0)


def queue_dropped(lab: Lab) -> int:
    """Packets the kernel dropped because a queue was full."""
    return sum(q["queue_dropped"] for q in queue_stats(lab).values())


def kernel_block_drops(lab: Lab) -> int:
    """Packets the kernel dropped for the block ipset (the counter of our set-match rule)."""
    text = exec_in(lab, "router", ["iptables-legacy", "-w", "5", "-L", "INLINE_IPS", "-v", "-x", "-n"]).stdout
    return sum(int(line.split()[0]) for line in text.splitlines() if "match-set inline_ips_block4" in line)


def ours_left(lab: Lab) -> list[str]:
    """Anything of inline-ips still in the router's firewall."""
    out = []
    for cmd in (["iptables-legacy-save"], ["ip6tables-legacy-save"], ["ipset", "list", "-n"]):
        text = exec_in(lab, "router", cmd).stdout
        out += [line for line in text.splitlines() if "INLINE_IPS" in line or "inline_ips" in line]
    return out


ATTACKS = [
    # (name, run, server counter, most that may reach the server, attacker ends up blocked)
    ("syn flood", lambda lab: attacks.syn_flood(lab, 6000, interval_us=100), "tcp_syn_80", 600, True),
    ("port scan", lambda lab: attacks.port_scan(lab, skip_discovery=True), "tcp_syn_other", 60, True),
    ("icmp flood", lambda lab: attacks.icmp_flood(lab, 4000, interval_us=100), "icmp_echo", 600, True),
    ("sql injection", attacks.sqli, "http_sqli", 0, False),
    ("path traversal", attacks.path_traversal, "http_traversal", 0, False),
    (
        "dns amplification",
        lambda lab: attacks.dns_amplification(lab, 300),
        "udp_from_53_bytes",
        150_000,
        False,
    ),
]


@pytest.mark.parametrize(("name", "run", "counter", "most", "blocks"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_stopped_before_the_server(
    lab: Lab, tmp_path: Path, name: str, run: object, counter: str, most: int, blocks: bool
) -> None:
    """Without the IPS every one of these reaches the server in full (tests/lab/test_attacks.py)."""
    with running_ips(lab, DEFAULT_RULES, tmp_path / "eve.json", log=tmp_path / "ips.log"):
        before = services.server_counters(lab)
        res = run(lab)  # type: ignore[operator]
        settle(lab)
        reached = services.server_counters(lab).get(counter, 0) - before.get(counter, 0)
        assert res.sent > 0
        assert reached <= most, f"{name}: {reached} reached the server (sent {res.sent})"
        assert attacker_blocked(lab) is blocks
        if blocks:
            # Later attacker packets die in the kernel: neither the queue nor the server sees
            # them. (The queue still sees the server's SYN-ACK retransmissions to the
            # attacker's half-open connections, a handful: the server is not blocked.)
            dropped = kernel_block_drops(lab)
            at_server = services.server_counters(lab)["from_attacker"]
            attacks.syn_flood(lab, 300, interval_us=1000)
            time.sleep(0.3)
            # (plus the attacker kernel's RSTs to the server's SYN-ACK retransmissions)
            assert kernel_block_drops(lab) - dropped >= 300
            assert services.server_counters(lab)["from_attacker"] == at_server
    unblock_attacker(lab)


def test_benign_client_is_unaffected_during_attacks(lab: Lab, tmp_path: Path) -> None:
    results: list[attacks.Result] = []
    stop = threading.Event()

    def benign() -> None:
        while not stop.is_set():
            results.append(attacks.http_gets(lab, 5, per_second=20))
            results.append(attacks.dns_queries(lab, 3))

    with running_ips(lab, DEFAULT_RULES, tmp_path / "eve.json", log=tmp_path / "ips.log"):
        t = threading.Thread(target=benign)
        t.start()
        try:
            attacks.syn_flood(lab, 6000, interval_us=100)
            attacks.syn_flood(lab, 6000, spoofed=True, interval_us=100)
            attacks.port_scan(lab, skip_discovery=True)
            attacks.sqli(lab)
        finally:
            stop.set()
            t.join(timeout=60)
        settle(lab)
    unblock_attacker(lab)
    sent = sum(r.sent for r in results)
    ok = sum(r.succeeded for r in results)
    assert sent >= 40
    assert ok == sent, [(r.name, r.sent, r.succeeded) for r in results if r.succeeded != r.sent]


def test_kill_9_keeps_traffic_flowing_and_cleanup_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    proc = popen_in(
        lab,
        "router",
        [sys.executable, "-m", "inline_ips", "run", "--rules", str(DEFAULT_RULES)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(
            lambda: queue_backlog(lab) == 0 and queued(lab) >= 0 and bool(ours_left(lab)), timeout=20
        )
        assert wait_for(lambda: attacks.http_gets(lab, 1).succeeded == 1, timeout=10)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert ours_left(lab), "the rules are still there after kill -9 (nobody removed them)"
        # ... and traffic still flows: --queue-bypass passes packets nobody listens for.
        r = attacks.http_gets(lab, 10)
        d = attacks.dns_queries(lab, 5)
        assert (r.succeeded, d.succeeded) == (10, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
    cleanup = exec_in(lab, "router", [sys.executable, "-m", "inline_ips", "cleanup"], cwd=ROOT)
    assert cleanup.returncode == 0, cleanup.stderr
    assert ours_left(lab) == []


def test_flooded_queue_fails_open(lab: Lab, tmp_path: Path) -> None:
    """A full queue fails open: the excess passes, the kernel drops nothing.

    Whether a flood outruns the engine depends on how fast the engine is, so
    the test does not leave that to chance: the engine is stopped (SIGSTOP, as
    a stalled worker would be) while the flood starts, so its 64-packet queue is
    certainly full, and it is continued half a second in, so the rest of the
    flood meets a running engine.
    """
    with running_ips(
        lab, DEFAULT_RULES, tmp_path / "eve.json", "--queue-maxlen", "64", "--bypass-after", "0"
    ) as ips:
        before = services.server_counters(lab)
        judged_before = queued(lab)
        os.kill(ips.pid, signal.SIGSTOP)
        resume = threading.Timer(0.5, os.kill, (ips.pid, signal.SIGCONT))
        try:
            resume.start()
            # UDP to one port from the client: no rule counts it, so nothing is dropped by a verdict.
            flood = ["hping3", "--udp", "-p", "9", "-c", "30000", "-i", "u1", "-q", lab.server_ip]
            exec_in(lab, "client", ["timeout", "30", *flood])
        finally:
            resume.cancel()
            os.kill(ips.pid, signal.SIGCONT)
        settle(lab)
        got = services.server_counters(lab)["from_client"] - before["from_client"]
        judged = queued(lab) - judged_before
        assert queue_dropped(lab) == 0
        assert got >= 29_000
        assert judged < got, "every packet was judged: the queue never filled"
        assert ips.poll() is None, "the engine did not survive the flood"


REJECT_REWRITE_RULES = """
signatures:
  - {sid: 1, msg: "reject test", proto: http, action: reject, http.uri: [{content: "/reject-me"}]}
  - sid: 2
    msg: "rewrite test"
    proto: tcp
    action: rewrite
    dst_port: 80
    payload: [{content: "secret-word", replace: "XXXXXX-XXXX"}]
"""


def test_reject_sends_a_reset_the_client_sees(lab: Lab, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(REJECT_REWRITE_RULES)
    with running_ips(lab, rules, tmp_path / "eve.json", log=tmp_path / "ips.log"):
        r = exec_in(lab, "client", ["curl", "-sS", "-m", "5", f"http://{lab.server_ip}/reject-me"])
        assert r.returncode == 56, r  # curl: "Recv failure: Connection reset by peer"
        assert "reset" in r.stderr.lower()
        ok = exec_in(
            lab,
            "client",
            [
                "curl",
                "-sS",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                f"http://{lab.server_ip}/index.html",
            ],
        )
        assert ok.stdout == "200"


def test_rewrite_changes_the_bytes_the_server_receives(lab: Lab, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(REJECT_REWRITE_RULES)
    with running_ips(lab, rules, tmp_path / "eve.json", log=tmp_path / "ips.log"):
        exec_in(
            lab,
            "client",
            ["curl", "-sS", "-m", "5", "-o", "/dev/null", f"http://{lab.server_ip}/?q=secret-word"],
        )
        time.sleep(0.3)
    log = services.http_log(lab).read_text()
    assert "/?q=XXXXXX-XXXX" in log
    assert "secret-word" not in log


def test_bypassed_flow_stops_reaching_the_queue(lab: Lab, tmp_path: Path) -> None:
    def queued_during_iperf(*extra: str) -> tuple[int, int]:
        with running_ips(lab, DEFAULT_RULES, tmp_path / "eve.json", *extra):
            before = queued(lab)
            res = attacks.iperf(lab, seconds=2)
            settle(lab)
            return queued(lab) - before, res.returncode

    with_bypass, rc1 = queued_during_iperf("--bypass-after", "64")
    without, rc2 = queued_during_iperf("--bypass-after", "0")
    assert rc1 == rc2 == 0
    assert without > 10_000  # an iperf3 run is many packets
    assert with_bypass < 1_000  # only the first few packets of each flow, then the kernel carries it


def test_reload_with_a_broken_file_keeps_the_old_rules(lab: Lab, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(DEFAULT_RULES.read_text())
    log = tmp_path / "ips.log"
    with running_ips(lab, rules, tmp_path / "eve.json", log=log) as ips:
        rules.write_text("signatures:\n  - sid: 1\n    msg: broken\n    treshold: 3\n")
        ips.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in log.read_text(), timeout=10), log.read_text()
        before = services.server_counters(lab)
        attacks.sqli(lab)
        settle(lab)
        assert services.server_counters(lab)["http_sqli"] == before["http_sqli"]
    assert "rules.yaml:4: rule 1: unknown key 'treshold'" in log.read_text()
