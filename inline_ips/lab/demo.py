"""``inline-ips lab up|down|demo``: the IPS inline in a network-namespace lab.

``demo`` builds the lab (client, attacker, router, server), starts the
server's HTTP/DNS/iperf services, runs ``inline-ips run`` on the router, and
then, while the client browses and resolves names the whole time, sends the
attacker's real attacks one after another (hping3 SYN floods, an nmap SYN
scan, a ping sweep, an ICMP flood, SQL injection and path traversal with
curl, a DNS amplification burst from a fake resolver). For each it prints
what was sent, what reached the server, what the IPS said and whether the
attacker landed in the kernel blocklist; between attacks the attacker is
unblocked so the next one is judged afresh. Everything is torn down at the
end, also on Ctrl-C or SIGTERM. All traffic stays inside the lab.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from inline_ips.lab import attacks, services
from inline_ips.lab.topology import Lab, down, exec_in, popen_in, running_lab, stop, up, wait_for
from inline_ips.source.nfqueue import PROC_QUEUES, parse_queue_stats

ROOT = Path(__file__).resolve().parents[2]
IPS_READY_SECONDS = 20.0


@dataclass
class BenignTally:
    http_sent: int = 0
    http_ok: int = 0
    dns_sent: int = 0
    dns_ok: int = 0
    errors: list[str] = field(default_factory=list)


def ips_argv(rules: Path, eve: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "inline_ips", "run", "--rules", str(rules), "--eve", str(eve), *extra]


def queues_of(argv: Sequence[str]) -> int:
    """How many queues an ``inline-ips run`` command line binds (``--workers N``, else 1)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            return int(args[i + 1])
        if arg.startswith("--workers="):
            return int(arg.split("=", 1)[1])
    return 1


def ips_ready(lab: Lab, queues: int = 1) -> bool:
    """The IPS has installed its chain and bound all its ``queues`` in the router.

    Every queue, not the first: with ``--workers N`` the kernel spreads flows over
    them, and a flow hashed to a queue not yet bound passes unjudged (--queue-bypass).
    """
    chain = exec_in(lab, "router", ["iptables-legacy", "-w", "5", "-S", "INLINE_IPS"])
    return chain.returncode == 0 and len(queue_stats(lab)) >= queues


@contextmanager
def running_ips(
    lab: Lab, rules: Path, eve: Path, *extra: str, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run ``inline-ips run`` in the router; stop it with SIGTERM and check it cleaned up."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = popen_in(
        lab, "router", ips_argv(rules, eve, *extra), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
    )
    try:
        queues = queues_of(extra)
        if not wait_for(
            lambda: ips_ready(lab, queues) or proc.poll() is not None, timeout=IPS_READY_SECONDS
        ) or (proc.poll() is not None):
            raise RuntimeError(f"inline-ips did not start in the router (exit {proc.poll()}; log: {log})")
        yield proc
    finally:
        stop(proc)
        # Whatever happened, leave no rule behind in the router.
        exec_in(lab, "router", [sys.executable, "-m", "inline_ips", "cleanup"], cwd=ROOT)
        if log:
            out.close()  # type: ignore[union-attr]


def queue_stats(lab: Lab) -> dict[int, dict[str, int]]:
    """The router's /proc/net/netfilter/nfnetlink_queue, per queue."""
    return parse_queue_stats(exec_in(lab, "router", ["cat", str(PROC_QUEUES)]).stdout)


def queue_backlog(lab: Lab) -> int:
    """Packets waiting in the router's queues."""
    return sum(q["queue_total"] for q in queue_stats(lab).values())


def settle(lab: Lab) -> None:
    """Wait until the IPS has judged everything queued and its EVE log is flushed."""
    wait_for(lambda: queue_backlog(lab) == 0, timeout=30, interval=0.1)
    time.sleep(0.8)  # the last packets land, the EVE flush timer (0.5 s) runs


def attacker_blocked(lab: Lab) -> bool:
    return exec_in(lab, "router", ["ipset", "test", "inline_ips_block4", lab.attacker_ip]).returncode == 0


def unblock_attacker(lab: Lab) -> None:
    exec_in(lab, "router", [sys.executable, "-m", "inline_ips", "block", "del", lab.attacker_ip], cwd=ROOT)


class EveTail:
    """New alert events since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0

    def alerts(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            f.seek(self.pos)
            data = f.read()
        # Only whole lines: the writer may be half-way through one.
        end = data.rfind("\n") + 1
        self.pos += len(data[:end].encode())
        out = []
        for line in data[:end].splitlines():
            ev = json.loads(line)
            if ev.get("event_type") == "alert":
                out.append(f"{ev['alert']['signature']}")
        return out


def _benign_loop(lab: Lab, stop: threading.Event, tally: BenignTally) -> None:
    while not stop.is_set():
        h = attacks.http_gets(lab, 5, per_second=20)
        tally.http_sent += h.sent
        tally.http_ok += h.succeeded
        d = attacks.dns_queries(lab, 3)
        tally.dns_sent += d.sent
        tally.dns_ok += d.succeeded
        stop.wait(0.2)


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[Lab], attacks.Result]
    counter: str  # which server counter shows the attack arriving


# Floods run at 10,000 packets/s: far above every threshold, and within what
# the Python engine judges on one core. Faster than that, the queue fills and
# fail-open lets the excess through unjudged (by design: see the README).
FLOOD_INTERVAL_US = 100

STEPS = (
    Step(
        "SYN flood (hping3, 20,000 SYNs)",
        lambda lab: attacks.syn_flood(lab, 20000, interval_us=FLOOD_INTERVAL_US),
        "tcp_syn_80",
    ),
    Step(
        "SYN flood, spoofed sources",
        lambda lab: attacks.syn_flood(lab, 20000, spoofed=True, interval_us=FLOOD_INTERVAL_US),
        "tcp_syn_80",
    ),
    Step(
        "port scan (nmap -sS, 1000 ports)",
        lambda lab: attacks.port_scan(lab, skip_discovery=True),
        "tcp_syn_other",
    ),
    Step("ping sweep (nmap -sn /24)", lambda lab: attacks.ping_sweep(lab, echo_only=True), "icmp_echo"),
    Step(
        "ICMP flood (hping3, 10,000)",
        lambda lab: attacks.icmp_flood(lab, 10000, interval_us=FLOOD_INTERVAL_US),
        "icmp_echo",
    ),
    Step("SQL injection (curl)", attacks.sqli, "http_sqli"),
    Step("path traversal (curl)", attacks.path_traversal, "http_traversal"),
    Step(
        "DNS amplification (400 x 3 KB)", lambda lab: attacks.dns_amplification(lab, 400), "udp_from_53_bytes"
    ),
)


def demo(prefix: str = "iips", rules: Path = ROOT / "rules.yaml", out: TextIO = sys.stdout) -> int:
    lab = Lab(prefix)

    def p(*parts: object) -> None:
        print(*parts, file=out, flush=True)

    p(
        f"inline-ips lab demo: client {lab.client_ip}, attacker {lab.attacker_ip}, server {lab.server_ip}; "
        "the IPS runs inline on the router"
    )
    with running_lab(lab), services.running_services(lab):
        eve = lab.workdir / "eve.json"
        with running_ips(lab, rules, eve, log=lab.workdir / "ips.log") as ips:
            tail = EveTail(eve)
            tally = BenignTally()
            stop = threading.Event()
            benign = threading.Thread(target=_benign_loop, args=(lab, stop, tally), daemon=True)
            benign.start()
            p("the client browses (HTTP) and resolves names (DNS) throughout;")
            p("after each attack the attacker is unblocked and the rules reloaded: each is judged afresh\n")
            p(f"{'attack':<34} {'sent':>7} {'reached server':>15} {'blocked by kernel':>18}  IPS alerts")
            for step in STEPS:
                before = services.server_counters(lab)
                res = step.run(lab)
                settle(lab)
                after = services.server_counters(lab)
                reached = after.get(step.counter, 0) - before.get(step.counter, 0)
                unit = " B" if step.counter.endswith("_bytes") else ""
                blocked = "yes" if attacker_blocked(lab) else "no"
                alerts = sorted(set(tail.alerts())) or ["none"]
                p(f"{step.title:<34} {res.sent:>7} {reached:>13}{unit:2} {blocked:>18}  {alerts[0]}")
                for a in alerts[1:]:
                    p(f"{'':>80}  {a}")
                # Judge the next attack on its own: unblock the attacker, and reload
                # (SIGHUP), which starts every rate window afresh.
                settle(lab)
                unblock_attacker(lab)
                ips.send_signal(signal.SIGHUP)
                settle(lab)
                tail.alerts()
            stop.set()
            benign.join(timeout=30)
            bulk = attacks.bulk_download(lab)
            p(
                f"\nbenign while under attack: HTTP {tally.http_ok}/{tally.http_sent} answered, "
                f"DNS {tally.dns_ok}/{tally.dns_sent} answered; "
                f"then a {bulk.nbytes / 2**20:.0f} MiB download took {bulk.seconds:.2f} s"
            )
    p("lab torn down")
    return 0


def lab_up(prefix: str = "iips") -> None:
    up(Lab(prefix))


def lab_down(prefix: str = "iips") -> None:
    down(Lab(prefix))
