"""Overload, in the lab: a flood far above what one worker judges, and what the router does meanwhile.

The attacker floods the server with 64-byte UDP (``hping3 --flood``, one
flow, flow bypass off so it stays in the queue) for a few seconds, well
above the one-worker ceiling. Meanwhile the client, whose address is in the
allowlist (the operator's management host), pings the server and fetches
pages, and the attacker, not allowlisted, fetches pages too. Checked:

- management traffic keeps flowing: every HTTP request succeeds, ping loses
  at most 2% (the flood fills the links too, with or without an IPS);
- nothing is black-holed: the non-allowlisted requests succeed as well, and
  the kernel dropped nothing for a full queue (``queue_dropped`` 0);
- fail-open engaged and was counted: the iptables rule queued more than the
  queue took (``id_sequence``), and ``inline_ips_unjudged_packets_total``
  from the exporter says how many passed unjudged;
- the IPS recovers by itself: the queue drains, an SQL injection sent after
  the flood is dropped, and no more packets pass unjudged once it is over.

The figures it measured are printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.lab import attacks, services
from inline_ips.lab.demo import queue_backlog, queue_stats, running_ips, settle
from inline_ips.lab.topology import Lab, down, exec_in, popen_in, up, wait_for
from tests.corpus import DEFAULT_RULES
from tests.netns import require_root_netns

pytestmark = pytest.mark.slow

FLOOD_SECONDS = 6


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    lab = Lab(f"pv{os.getpid() % 100000}ov")
    up(lab)
    try:
        with services.running_services(lab):
            yield lab
    finally:
        down(lab)


def nfqueue_rule_packets(lab: Lab) -> int:
    text = exec_in(lab, "router", ["iptables-legacy", "-w", "5", "-L", "INLINE_IPS", "-v", "-x", "-n"]).stdout
    return sum(int(line.split()[0]) for line in text.splitlines() if "NFQUEUE" in line)


def metric(lab: Lab, name: str) -> float:
    page = exec_in(lab, "router", ["curl", "-sS", "-m", "5", "http://127.0.0.1:9108/metrics"]).stdout
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", page, re.M)]
    assert values, f"{name} not in the scrape"
    return sum(values)


def test_flood_above_the_ceiling_fails_open_and_recovers(lab: Lab, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    text = DEFAULT_RULES.read_text()
    assert "\nallowlist:\n" in text
    rules.write_text(text.replace("\nallowlist:\n", f"\nallowlist:\n  - {lab.client_ip}/32\n", 1))
    eve = tmp_path / "eve.json"
    with running_ips(lab, rules, eve, "--bypass-after", "0", log=tmp_path / "ips.log"):
        before = services.server_counters(lab)
        rule_before = nfqueue_rule_packets(lab)
        seq_before = queue_stats(lab)[0]["id_sequence"]
        judged_before = metric(lab, "inline_ips_packets_total")
        flood = popen_in(
            lab,
            "attacker",
            [
                "timeout",
                "-s",
                "INT",
                str(FLOOD_SECONDS),
                "hping3",
                "--flood",
                "--udp",
                "-p",
                "9",
                "-d",
                "36",
                lab.server_ip,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        time.sleep(0.5)  # the queue is full by now
        mgmt: list[attacks.Result] = []
        other: list[int] = []

        def management() -> None:
            mgmt.append(attacks.http_gets(lab, 20, per_second=5))

        def outsider() -> None:
            for _ in range(8):
                r = exec_in(
                    lab,
                    "attacker",
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
                other.append(int(r.stdout == "200"))
                time.sleep(0.3)

        threads = [threading.Thread(target=management), threading.Thread(target=outsider)]
        for t in threads:
            t.start()
        ping = exec_in(
            lab, "client", ["ping", "-q", "-n", "-i", "0.01", "-c", "300", "-W", "1", lab.server_ip]
        )
        for t in threads:
            t.join(timeout=60)
        hping = flood.communicate(timeout=FLOOD_SECONDS + 30)[0]
        flood_seconds = time.monotonic() - started
        ended = time.monotonic()
        # Recovery: the queue drains by itself ...
        assert wait_for(lambda: queue_backlog(lab) == 0, timeout=30)
        drained = time.monotonic() - ended
        rule_packets = nfqueue_rule_packets(lab) - rule_before
        taken = queue_stats(lab)[0]["id_sequence"] - seq_before
        unjudged = metric(lab, "inline_ips_unjudged_packets_total")
        judged = metric(lab, "inline_ips_packets_total") - judged_before
        # ... and an attack after the flood is judged and dropped again, no restart.
        sqli_before = services.server_counters(lab)["http_sqli"]
        attacks.sqli(lab)
        settle(lab)
        sqli_after = services.server_counters(lab)["http_sqli"]
        time.sleep(1.0)
        unjudged_later = metric(lab, "inline_ips_unjudged_packets_total")
        stats = queue_stats(lab)[0]
    delivered = services.server_counters(lab)["from_attacker"] - before["from_attacker"]
    sent_m = re.search(r"(\d+) packets transmitted", hping)
    sent = int(sent_m.group(1)) if sent_m else rule_packets
    loss_m = re.search(r"(\d+(?:\.\d+)?)% packet loss", ping.stdout)
    assert loss_m, ping.stdout
    ping_loss = float(loss_m.group(1))
    rtt = re.search(r"= [\d.]+/([\d.]+)/([\d.]+)/", ping.stdout)
    print(
        f"\noverload: offered {sent} packets in {flood_seconds:.1f} s ({sent / flood_seconds:,.0f} pkt/s), "
        f"delivered {delivered}; iptables queued {rule_packets}, the queue took {taken}, judged "
        f"{judged:.0f} ({judged / max(rule_packets, 1):.1%}), unjudged (fail-open) {unjudged:.0f}; "
        f"management: HTTP {sum(r.succeeded for r in mgmt)}/{sum(r.sent for r in mgmt)}, ping loss "
        f"{ping_loss}% (rtt avg/max {rtt.group(1) if rtt else '?'}/{rtt.group(2) if rtt else '?'} ms); "
        f"outsider HTTP {sum(other)}/{len(other)}; queue drained {drained:.2f} s after the flood"
    )
    # Management and benign traffic went on.
    assert sum(r.succeeded for r in mgmt) == sum(r.sent for r in mgmt) == 20
    assert ping_loss <= 2.0, ping.stdout
    assert sum(other) == len(other) == 8
    # Nothing black-holed: a full queue passed packets instead of dropping them.
    assert stats["queue_dropped"] == 0 and stats["user_dropped"] == 0
    assert delivered >= 0.98 * sent, (delivered, sent)
    # Fail-open engaged, and the exporter counted it.
    assert rule_packets - taken > 0.1 * rule_packets, (
        "the flood did not overflow the queue: this shows nothing"
    )
    assert unjudged >= 0.9 * (rule_packets - taken)
    # Recovered: judging again, and nothing more passes unjudged.
    assert sqli_after == sqli_before
    assert unjudged_later == unjudged
