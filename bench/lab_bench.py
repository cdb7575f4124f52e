"""inline-ips inline in the namespace lab, side by side with kernel forwarding and the NFQUEUE ceiling.

What it measures, in one run on one lab (client, attacker, router, server
namespaces; :mod:`inline_ips.lab.topology`), for each configuration of the
router:

* **kernel forwarding**: no iptables rules, no process;
* **ceiling**: ``python -m bench.accept_all``, the same iptables chain as
  inline-ips and a NetfilterQueue loop that accepts every packet with the
  plainest callback (what any Python verdict engine can reach at most);
* **inline-ips, default rules**: ``inline-ips run --rules rules.yaml`` as
  shipped (flow bypass on, metrics on, fail-open);
* the same with ``--bypass-after 0``: every packet judged in Python;
* default rules plus every loadable rule of Emerging Threats Open
  (``--et DIR``; skipped with a reason when absent or with ``--no-et``);
* ``--workers 2 --bypass-after 0``: two queues, two processes;

under each load:

* **64-byte UDP flood**: ``--senders`` (2) iperf3 clients ``-u -b 0 -l 36``
  (64-byte IP datagrams), each from its own client address to its own
  iperf3 server port. The kernel spreads ``--queue-balance`` by addresses
  and protocol only, not ports, so for the 2-worker configuration the
  senders' addresses are chosen, by probing the running IPS, so that their
  flows land on different queues. The datagrams are counted and dropped by
  a raw-table rule as they enter the server: a receiving process would
  compete with the senders for their CPU and overflow its socket, and what
  is measured is what the router delivers;
* **TCP bulk**: one iperf3 TCP stream client -> server;
* **many short HTTP connections**: ``python -m bench.http_load`` in the
  client, a new connection per GET of the server's index.html, 4 workers
  rotating over 16 client and 4 server addresses, so that no default rate
  rule (500 SYNs/s from one source to one host, 2000 SYNs/s to one host)
  takes the load for a SYN flood;
* for the 1- and 2-worker rows with every packet judged, also **64-byte UDP
  paced** at 1.5 times what one worker judged of the flood (at most 0.8 of
  what kernel forwarding delivered): the unpaced flood's senders take every
  cycle a second worker could use on a small machine;
* for the same two rows, **TCP bulk, 2 streams** from two client addresses
  that land on different queues: the senders need little CPU for MTU-sized
  segments, so one worker is the limit, and this is the load that shows
  what a second worker adds (the issue's target 5);

and the **one-way latency** of paced UDP datagrams (``python -m
bench.udp_latency``) at half the ceiling's UDP rate, against kernel
forwarding's, with the router's CPU probed for stalls meanwhile (``python -m
bench.cpu_stalls``: how often, and how long, that CPU could not run a task
that was ready). Each load runs a margin (1 s) longer on both sides than the
``--seconds`` counted in its middle, so start-up and wind-down stay out.

Rounds (``--rounds``, 3): all of that, N times in turn, the paced and latency
rates kept from the first; the tables give medians over the rounds, and each
target the round with the median deciding figure (:meth:`Report.targets`).

The figures, from kernel counters wherever there is one:

* delivered: UDP datagrams counted by the server's sink rule, IP packets and
  bytes that reached the server (its namespace's ``/proc/net/snmp`` and
  ``netstat``) for TCP and HTTP, completed connections/s (the load
  generator's count) for HTTP; UDP loss is what left the client's link
  (``/proc/net/dev``) and never reached the server;
* judged: packets handed to the router's process (``id_sequence`` deltas of
  ``/proc/net/netfilter/nfnetlink_queue``, over all queues, minus its
  socket-buffer drops; the same count as the IPS's own
  ``inline_ips_packets_total``); unjudged: packets our NFQUEUE rule queued
  (its iptables counter) that were neither handed over nor dropped: the
  queue's fail-open flag let them through when it was full;
* the ratios ``÷ ceiling`` and ``÷ kernel`` compare *inspected* delivery,
  the delivered figure times the share of forwarded packets that did not
  pass unjudged: fail-open keeps traffic flowing under overload, and that
  must not count as the IPS keeping up;
* router CPU: utime + stime of the router's process tree (``/proc/PID/stat``,
  children found through their ppid), per second and per million judged
  packets; resident memory: VmRSS summed over the tree after the load
  (pages shared by forked workers count once per process).

CPU placement: on a machine with 2 or more CPUs the load generators and
the services (client and server processes) are pinned to the first CPUs and
the router's process to the last one (two for two workers, or all CPUs when
there are not enough), so the configurations under test get the same core
however hard the senders push (``--no-pin`` leaves it to the scheduler).
Kernel forwarding has no process: its softirq work runs on the senders'
CPU, and so does the queueing half of every NFQUEUE configuration; the
verdict half runs in the router process's system calls and is in its CPU.
When the ceiling has CPU to spare and loses nothing, the senders were the
limit; the targets then compare CPU per packet instead (see
:meth:`Report.targets`).

What it does not measure: real NICs, IPv6, attack traffic, TLS, packet
sizes other than 64 bytes for UDP, the EVE outputs beyond the file, more
than two workers, or anything that needs a quiet machine: the senders,
receivers and router share the host's cores with whatever else runs, so
compare rows of one run, and look at the rounds' spread before believing a
small difference.

Run: ``.venv/bin/python -m bench.lab_bench --markdown bench/RESULTS.md`` (root;
``--quick`` for a smoke run). ``--markdown`` replaces only the section
"Inline in the lab" of the file; ``--json FILE`` writes every figure.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bench import results_file
from bench.udp_latency import DEFAULT_PORT as LATENCY_PORT
from inline_ips.lab import services
from inline_ips.lab.demo import ips_argv, ips_ready, queue_stats, queues_of
from inline_ips.lab.services import HTTP_PORT, IPERF_PORT
from inline_ips.lab.topology import Lab, exec_in, popen_in, running_lab, stop, wait_for
from inline_ips.source.nfqueue import PROC_QUEUES, parse_queue_stats

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "rules.yaml"
CORPUS_RULESETS = ROOT.parent / "shared" / "corpus" / "rulesets"
SECTION = "## Inline in the lab"

DEFAULT_SECONDS = 10
QUICK_SECONDS = 2
# This 2-vCPU VM's speed drifts by 10-30% over minutes, which one pass of the
# configurations mistakes for differences between them: three passes, medians.
DEFAULT_ROUNDS = 3
DEFAULT_SENDERS = 2
HTTP_WORKERS = 4
HTTP_SOURCES = 16  # client addresses the HTTP load rotates over
HTTP_HOSTS = 4  # server addresses it rotates over (see bench/http_load.py: the SYN-flood rules)
FLOOD_SINK = "lab_bench_flood"  # comment of the server's raw-table rule that counts and drops the flood
MARGIN = 1.0  # seconds a load runs before and after its counted interval
QUICK_MARGIN = 0.5  # with --quick (a whole number of seconds in all: iperf3 -t takes an integer)
_SPLIT = "----8<----"
# One exec per namespace per snapshot, so the counters are read close together in time.
_ROUTER_READ = f"cat {PROC_QUEUES} 2>/dev/null; echo '{_SPLIT}'; iptables-legacy -w 5 -L -v -x -n"
_SERVER_READ = (
    f"cat /proc/net/snmp /proc/net/netstat; echo '{_SPLIT}'; "
    "iptables-legacy -w 5 -t raw -L PREROUTING -v -x -n; "
    f"iptables-legacy -w 5 -L {services.COUNT_CHAIN} -v -x -n"
)
UDP_PAYLOAD = 36  # + 8 UDP + 20 IP = 64-byte IP datagrams
UDP_IP_BYTES = 64
READY_TIMEOUT = 30.0
ET_READY_TIMEOUT = 240.0  # loading ~24,000 rules and compiling them takes tens of seconds on a busy box
MIN_JUDGED_FOR_CPU = 10_000  # below this, CPU per packet is start-up noise
CANDIDATE_SOURCES = 24  # extra client addresses to choose flood sources from
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# Configuration keys, in the order they run (kernel's latency runs after the ceiling's rate is known).
KERNEL = "kernel"
CEILING = "ceiling"
IPS = "ips"
IPS_JUDGED = "ips_judged"
IPS_ET = "ips_et"
IPS_W2 = "ips_w2"
NAMES = {
    KERNEL: "kernel forwarding",
    CEILING: "ceiling: accept-all NetfilterQueue",
    IPS: "inline-ips, default rules",
    IPS_JUDGED: "inline-ips, default rules, every packet judged",
    IPS_ET: "inline-ips, default rules + ET Open",
    IPS_W2: "inline-ips, 2 workers, every packet judged",
}
ALL_CONFIGS = (KERNEL, CEILING, IPS, IPS_JUDGED, IPS_ET, IPS_W2)

UDP, TCP, HTTP = "udp", "tcp", "http"
LOADS = (UDP, TCP, HTTP)
# 64-byte UDP at a fixed rate one worker cannot judge in full: for the 1- and 2-worker rows only.
PACED = "udp_paced"
PACED_FACTOR = 1.5  # the paced rate: this times what one worker judged of the flood ...
PACED_CAP = 0.8  # ... but at most this share of what kernel forwarding delivered
# TCP bulk, one iperf3 stream from each of two client addresses that land on different
# queues: for the 1- and 2-worker rows only. One worker is the limit here (the senders
# need little CPU for MTU-sized segments), so it shows what a second worker adds.
TCP2 = "tcp_2streams"
LOAD_TITLES = {
    UDP: "64-byte UDP flood (iperf3 -u -b 0 -l 36)",
    TCP: "TCP bulk transfer (iperf3, one stream)",
    TCP2: "TCP bulk transfer, 2 streams from 2 client addresses (one per queue), every packet judged",
    HTTP: "Many short HTTP connections (a new connection per GET)",
}


def default_et_dir() -> Path | None:
    found = sorted(CORPUS_RULESETS.glob("et-open-suricata5-*")) if CORPUS_RULESETS.is_dir() else []
    return found[0] if found else None


# -- parsing (pure; tested without a lab) -----------------------------------------------------


@dataclass(frozen=True)
class IperfUdp:
    sent: int  # datagrams the client sent
    received: int  # datagrams the iperf3 server read (after its socket's overruns)
    seconds: float


@dataclass(frozen=True)
class IperfTcp:
    bits_per_second: float  # the receiver's goodput
    received_bytes: int
    retransmits: int
    seconds: float


def _iperf_end(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"iperf3 printed no JSON: {text[:200]!r}") from e
    if not isinstance(doc, dict):
        raise ValueError("iperf3 JSON is not an object")
    if doc.get("error"):
        raise ValueError(f"iperf3: {doc['error']}")
    end = doc.get("end")
    if not isinstance(end, dict):
        raise ValueError("iperf3 JSON has no 'end' section")
    return end


def parse_iperf_udp(text: str) -> IperfUdp:
    """The client's ``iperf3 -u -J`` output: datagrams sent and read by the server.

    iperf3 3.x reports in ``end.sum_received`` the sender's datagram count as
    ``packets`` and the server's count of missing ones as ``lost_packets``;
    what the server read is the bytes it got divided by the datagram size,
    which also holds for versions that report ``packets`` differently.
    """
    end = _iperf_end(text)
    sent = end.get("sum_sent") or end["sum"]
    recv = end.get("sum_received") or end["sum"]
    packets = int(sent["packets"])
    size = int(sent["bytes"]) / packets if packets else UDP_PAYLOAD
    received = round(int(recv["bytes"]) / size) if size else 0
    return IperfUdp(sent=packets, received=received, seconds=float(sent["seconds"]))


def parse_iperf_tcp(text: str) -> IperfTcp:
    """The client's ``iperf3 -J`` TCP output: the receiver's goodput and the sender's retransmits."""
    end = _iperf_end(text)
    recv = end["sum_received"]
    sent = end.get("sum_sent", {})
    return IperfTcp(
        bits_per_second=float(recv["bits_per_second"]),
        received_bytes=int(recv["bytes"]),
        retransmits=int(sent.get("retransmits", 0)),
        seconds=float(recv["seconds"]),
    )


def parse_snmp(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` and ``/proc/net/netstat`` (header line, value line) to {"Udp.InDatagrams": n}."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, values in itertools.pairwise(lines):
        hp, _, hnames = head.partition(":")
        vp, _, vnums = values.partition(":")
        if hp != vp or not hnames.strip():
            continue
        names, nums = hnames.split(), vnums.split()
        if len(names) != len(nums) or not all(n.lstrip("-").isdigit() for n in nums):
            continue
        for n, v in zip(names, nums, strict=True):
            out[f"{hp}.{n}"] = int(v)
    return out


@dataclass(frozen=True)
class ChainCounters:
    """Packets/bytes through our iptables rules in the router (zero when not installed)."""

    forwarded: int = 0  # the FORWARD -> INLINE_IPS jump: every forwarded packet
    forwarded_bytes: int = 0
    queued: int = 0  # the NFQUEUE rule: sent to the queue (judged, dropped full, or passed unjudged)
    queued_bytes: int = 0
    bypassed: int = 0  # the connmark RETURN rule: flows the IPS handed to the kernel
    blocked: int = 0  # the blocklist DROP rule


def parse_iptables_listing(text: str, chain: str = "INLINE_IPS") -> ChainCounters:
    """``iptables -L -v -x -n`` (all chains of the filter table) to our rules' counters."""
    current = ""
    fwd = fwd_b = queued = queued_b = bypassed = blocked = 0
    for line in text.splitlines():
        if line.startswith("Chain "):
            current = line.split()[1]
            continue
        cols = line.split()
        if len(cols) < 3 or not (cols[0].isdigit() and cols[1].isdigit()):
            continue
        pkts, nbytes, target = int(cols[0]), int(cols[1]), cols[2]
        if current == "FORWARD" and target == chain:
            fwd += pkts
            fwd_b += nbytes
        elif current == chain:
            if target == "NFQUEUE":
                queued += pkts
                queued_b += nbytes
            elif target == "RETURN":
                bypassed += pkts
            elif target == "DROP":
                blocked += pkts
    return ChainCounters(fwd, fwd_b, queued, queued_b, bypassed, blocked)


def parse_net_dev(text: str) -> dict[str, tuple[int, int]]:
    """``/proc/net/dev`` to {interface: (tx_bytes, tx_packets)}."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        cols = rest.split()
        if not sep or len(cols) < 10 or not all(c.isdigit() for c in cols[8:10]):
            continue
        out[name.strip()] = (int(cols[8]), int(cols[9]))
    return out


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime in clock ticks) from one ``/proc/PID/stat`` line.

    The command name (field 2) is in parentheses and may hold spaces or
    parentheses itself, so fields are counted from the last ``)``.
    """
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(rest[1]), int(rest[11]) + int(rest[12])


def replace_section(text: str, section: str, heading: str = SECTION) -> str:
    """``text`` with this benchmark's section replaced (or appended); the rest is kept byte for byte."""
    return results_file.replace_section(text, section, heading)


# -- processes --------------------------------------------------------------------------------


def process_tree(root: int, proc: Path = Path("/proc")) -> dict[int, int]:
    """{pid: utime + stime ticks} of ``root`` and all its descendants (empty when it is gone)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid, t = parse_proc_stat((d / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
        parent[int(d.name)] = ppid
        ticks[int(d.name)] = t
    if root not in ticks:
        return {}
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, pp in parent.items():
            if pp in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: ticks[pid] for pid in tree}


def tree_cpu_seconds(root: int) -> float:
    return sum(process_tree(root).values()) / _CLK_TCK


def tree_rss_bytes(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _pin_pid(pid: int, cpus: set[int] | None) -> None:
    """Every thread of pid onto cpus (threads created later inherit it from their creator)."""
    if not cpus:
        return
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def _taskset(cpus: set[int] | None, argv: list[str]) -> list[str]:
    if not cpus:
        return argv
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus)), *argv]


@dataclass(frozen=True)
class Placement:
    """Which CPUs the load generators and the router's process may use (None: any)."""

    load: set[int] | None
    router_one: set[int] | None
    router_two: set[int] | None

    @classmethod
    def choose(cls, pin: bool) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None, None)
        reserved = 2 if len(cpus) >= 4 else 1
        load = set(cpus[:-reserved])
        two = set(cpus[-2:]) if reserved == 2 else set(cpus)
        return cls(load, {cpus[-1]}, two)

    def router(self, workers: int) -> set[int] | None:
        return self.router_two if workers > 1 else self.router_one

    def describe(self) -> str:
        if self.load is None:
            return "none (the scheduler places every process)"
        two = _cpus(self.router_two)
        if self.router_two and self.load & self.router_two:
            two += ", shared with the load generators: there are not enough CPUs to keep them apart"
        return (
            f"load generators and services (client and server namespaces) on CPU {_cpus(self.load)}; "
            f"the router's process on CPU {_cpus(self.router_one)}; 2 workers on CPU {two}"
        )


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class RouterProcess:
    """The configuration's process in the router namespace (IPS or ceiling); always cleaned up."""

    def __init__(self, lab: Lab, argv: list[str], cpus: set[int] | None, log: Path, ready_timeout: float):
        self.lab = lab
        self.log = log
        self._out = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.proc = popen_in(
            lab,
            "router",
            _taskset(cpus, argv),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=_env(),
        )
        ok = wait_for(
            lambda: self.proc.poll() is not None or ips_ready(lab, queues_of(argv)),
            timeout=ready_timeout,
            interval=0.2,
        )
        if not ok or self.proc.poll() is not None:
            self.stop()
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(
                f"{argv[2:4]} did not get ready in the router within {ready_timeout:.0f} s "
                f"(exit {self.proc.returncode}); log {log}:\n{tail}"
            )

    @property
    def pid(self) -> int:
        # "ip netns exec" and taskset exec their command: the pid is the router process's own.
        return self.proc.pid

    def stop(self) -> None:
        try:
            stop(self.proc, timeout=20, kill_timeout=10)
        except KeyboardInterrupt:
            # Interrupted while waiting for a clean exit: do not leave it running.
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            # Whatever happened, no rule of ours stays in the router for the next configuration.
            exec_in(self.lab, "router", [sys.executable, "-m", "inline_ips", "cleanup"], cwd=ROOT, env=_env())
            self._out.close()


# -- one lab, its counters and its loads ------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    at: float
    queues: dict[int, dict[str, int]]
    chain: ChainCounters
    server: dict[str, int]
    cpu: float | None  # router process tree CPU seconds


@dataclass
class Measurement:
    """One configuration under one load."""

    config: str
    load: str
    seconds: float
    delivered_pps: float = 0.0  # at the server's UDP (UDP) or IP (TCP, HTTP) layer
    bits_per_second: float | None = None  # IP bits/s delivered to the server (UDP, TCP)
    sent: int | None = None  # UDP datagrams sent
    loss_percent: float | None = None  # UDP: sent but never reached the server
    blocked: list[str] = field(default_factory=list)  # hosts the IPS blocked during this load
    retransmits: int | None = None
    connections_per_second: float | None = None
    failures: int | None = None
    judged: int = 0
    queue_full: int = 0
    unjudged: int = 0
    queued: int = 0
    forwarded: int = 0
    bypassed: int = 0
    per_queue: dict[int, int] = field(default_factory=dict)
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    error: str = ""
    note: str = ""
    offered_pps: float | None = None  # PACED: the rate the senders were asked for
    round_no: int = 1  # which round of --rounds measured it (0: a median of rounds)

    @property
    def figure(self) -> float:
        """The load's headline: datagrams/s (UDP), bits/s (TCP), completed connections/s (HTTP)."""
        if self.load in (TCP, TCP2):
            return self.bits_per_second or 0.0
        if self.load == HTTP:
            return self.connections_per_second or 0.0
        return self.delivered_pps

    @property
    def unjudged_share(self) -> float:
        """Share of forwarded packets that passed our queue unjudged (fail-open)."""
        return min(self.unjudged / self.forwarded, 1.0) if self.forwarded else 0.0

    @property
    def inspected(self) -> float:
        return self.figure * (1 - self.unjudged_share)

    @property
    def cpu_per_mpkt(self) -> float | None:
        if self.cpu_seconds is None or self.judged < MIN_JUDGED_FOR_CPU:
            return None
        return self.cpu_seconds / self.judged * 1e6

    @property
    def cpu_percent(self) -> float | None:
        return None if self.cpu_seconds is None else 100 * self.cpu_seconds / self.seconds


@dataclass
class Latency:
    config: str
    rate: float
    achieved_rate: float = 0.0
    sent: int = 0
    received: int = 0
    p50_us: float | None = None
    p99_us: float | None = None
    max_us: float | None = None
    app_p99_us: float | None = None
    unjudged_share: float = 0.0
    # bench/cpu_stalls.py on the router's CPU meanwhile: wake-ups late by 1 ms or more.
    stalls: int | None = None
    stall_max_ms: float | None = None
    stalled_ms: float | None = None
    error: str = ""
    round_no: int = 1

    @property
    def loss_percent(self) -> float | None:
        return 100 * (self.sent - self.received) / self.sent if self.sent else None


class Bench:
    """The lab, its extra addresses and iperf3 servers, and the loads; measures one thing at a time."""

    def __init__(
        self,
        lab: Lab,
        seconds: int,
        senders: int,
        placement: Placement,
        say: Callable[[str], None],
        margin: float = MARGIN,
    ):
        self.lab = lab
        self.seconds = seconds
        self.senders = senders
        self.margin = margin
        # Whole seconds each load runs (iperf3 -t takes an integer).
        self.total = round(seconds + 2 * margin)
        self.placement = placement
        self.say = say
        base = lab.client_ip.rsplit(".", 1)
        # The client's own address first, then extras on its link (the router reaches them by ARP).
        self.sources = [lab.client_ip] + [
            f"{base[0]}.{int(base[1]) + i}" for i in range(1, CANDIDATE_SOURCES)
        ]
        sbase = lab.server_ip.rsplit(".", 1)
        self.hosts = [lab.server_ip] + [f"{sbase[0]}.{int(sbase[1]) + i}" for i in range(1, HTTP_HOSTS)]
        self.router_pid: int | None = None
        self.blocked: list[str] = []  # what the IPS blocked during the last load (then unblocked)
        self._extra: list[subprocess.Popen[str]] = []

    # set-up

    def prepare(self, svc: services.Services) -> None:
        for addr in self.sources[1:]:
            exec_in(
                self.lab,
                "client",
                ["ip", "addr", "add", f"{addr}/24", "dev", self.lab.leaf_iface("client")],
                check=True,
            )
        for addr in self.hosts[1:]:
            exec_in(
                self.lab,
                "server",
                ["ip", "addr", "add", f"{addr}/24", "dev", self.lab.leaf_iface("server")],
                check=True,
            )
        for p in svc.procs.values():
            _pin_pid(p.pid, self.placement.load)
        # The flood's 64-byte datagrams are counted and dropped as they enter the server: a
        # receiving process would compete with the senders for their CPU and overflow its
        # socket, and it is the router's delivery that is measured. iperf3's own small
        # datagrams (its UDP handshake) still reach its server.
        last = IPERF_PORT + self.senders - 1
        sink = ["-p", "udp", "--dport", f"{IPERF_PORT}:{last}", "-m", "length", "--length", str(UDP_IP_BYTES)]
        sink += ["-m", "comment", "--comment", FLOOD_SINK, "-j", "DROP"]
        exec_in(
            self.lab,
            "server",
            ["iptables-legacy", "-w", "5", "-t", "raw", "-A", "PREROUTING", *sink],
            check=True,
        )
        for i in range(1, self.senders):
            port = IPERF_PORT + i
            self._extra.append(
                popen_in(
                    self.lab,
                    "server",
                    _taskset(self.placement.load, ["iperf3", "-s", "-p", str(port)]),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        ports = [IPERF_PORT + i for i in range(1, self.senders)]
        if ports and not wait_for(lambda: all(self._listening(p) for p in ports), timeout=15):
            raise RuntimeError(f"extra iperf3 servers not listening on {ports}")

    def _listening(self, port: int) -> bool:
        out = exec_in(self.lab, "server", ["ss", "-Hltn", f"sport = :{port}"]).stdout
        return bool(out.strip())

    def close(self) -> None:
        for p in self._extra:
            if p.poll() is None:
                p.terminate()
        for p in self._extra:
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)

    # counters

    def snapshot(self) -> Snapshot:
        """Every counter the figures come from, read as close together in time as the lab allows.

        Before and after a load the reads come in the same order, so each
        counter's delta spans the same interval, give or take the jitter of
        one ``ip netns exec``; ``at`` is the middle of the reads.
        """
        t0 = time.monotonic()
        cpu = tree_cpu_seconds(self.router_pid) if self.router_pid else None
        router = exec_in(self.lab, "router", ["sh", "-c", _ROUTER_READ])
        server = exec_in(self.lab, "server", ["sh", "-c", _SERVER_READ])
        client = exec_in(self.lab, "client", ["cat", "/proc/net/dev"])
        t1 = time.monotonic()
        queues_text, _, ipt_text = router.stdout.partition(_SPLIT)
        snmp_text, _, raw_text = server.stdout.partition(_SPLIT)
        counters = parse_snmp(snmp_text)
        rules = services.parse_counter_table(raw_text)
        counters["sink"] = rules.get(FLOOD_SINK, 0)
        dev = parse_net_dev(client.stdout).get(self.lab.leaf_iface("client"), (0, 0))
        counters["client_tx"] = dev[1]
        return Snapshot(
            at=(t0 + t1) / 2,
            queues=parse_queue_stats(queues_text),
            chain=parse_iptables_listing(ipt_text),
            server=counters,
            cpu=cpu,
        )

    def unblock(self) -> list[str]:
        """Empty the IPS's kernel blocklist; returns who was in it.

        The loads stand for legitimate traffic: a host the IPS blocked during
        one load would make the next one fail for a reason that is not its own.
        """
        out = exec_in(self.lab, "router", ["ipset", "list", "inline_ips_block4"]).stdout.splitlines()
        if "Members:" not in out:
            return []
        members = [line.split()[0] for line in out[out.index("Members:") + 1 :] if line.strip()]
        if members:
            exec_in(self.lab, "router", ["ipset", "flush", "inline_ips_block4"])
        return members

    def drain(self) -> None:
        """Wait (a little) until nothing waits in the router's queues."""
        wait_for(
            lambda: sum(q["queue_total"] for q in queue_stats(self.lab).values()) == 0,
            timeout=10,
            interval=0.1,
        )

    def fill(self, m: Measurement, before: Snapshot, after: Snapshot) -> None:
        """The router-side figures of m from two snapshots; ``m.seconds`` becomes the interval."""
        m.seconds = max(after.at - before.at, 1e-3)
        ids = dropped = full = 0
        for q, now in after.queues.items():
            then = before.queues.get(q)
            if then is None or now["id_sequence"] < then["id_sequence"]:
                continue  # the queue was bound afresh in between: no delta to take
            d = now["id_sequence"] - then["id_sequence"]
            m.per_queue[q] = d
            ids += d
            dropped += now["user_dropped"] - then["user_dropped"]
            full += now["queue_dropped"] - then["queue_dropped"]
        m.judged = max(ids - dropped, 0)
        m.queue_full = full
        m.queued = after.chain.queued - before.chain.queued
        m.forwarded = after.chain.forwarded - before.chain.forwarded
        m.bypassed = after.chain.bypassed - before.chain.bypassed
        m.unjudged = max(m.queued - ids - full, 0)
        if before.cpu is not None and after.cpu is not None:
            m.cpu_seconds = after.cpu - before.cpu
        if self.router_pid:
            m.rss_bytes = tree_rss_bytes(self.router_pid)

    # loads

    def _start(self, role: str, argv: list[str]) -> subprocess.Popen[str]:
        return popen_in(
            self.lab,
            role,
            _taskset(self.placement.load, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=_env(),
        )

    def _windowed(
        self, m: Measurement, argvs: list[list[str]]
    ) -> tuple[list[subprocess.CompletedProcess[str]], Snapshot, Snapshot]:
        """Run the load's processes (in the client) for margin + seconds + margin; count the middle.

        Counting starts once every process has had the margin to get going
        (iperf3's control connection, slow start, Python start-up) and stops
        while they are all still sending, so start-up skew between senders and
        their wind-down do not dilute the rates.
        """
        procs = [self._start("client", a) for a in argvs]
        time.sleep(self.margin)
        before = self.snapshot()
        time.sleep(max(before.at + self.seconds - time.monotonic(), 0))
        after = self.snapshot()
        done: list[subprocess.CompletedProcess[str]] = []
        for p, a in zip(procs, argvs, strict=True):
            try:
                out, err = p.communicate(timeout=self.total + 60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            done.append(subprocess.CompletedProcess(a, p.returncode, out, err))
        self.drain()
        self.fill(m, before, after)
        return done, before, after

    def _iperf_windowed(
        self, m: Measurement, argvs: list[list[str]]
    ) -> tuple[list[subprocess.CompletedProcess[str]], Snapshot, Snapshot]:
        """:meth:`_windowed` for iperf3 clients; once more after a second when a server was busy."""
        for attempt in range(2):
            res = self._windowed(m, argvs)
            failed = [c for c in res[0] if '"error"' in c.stdout or c.returncode != 0]
            if not failed or attempt == 1:
                return res
            self.say(f"  iperf3 failed ({failed[0].stdout[-120:].strip()!r}); once more")
            m.per_queue.clear()
            time.sleep(1.0)  # typically: the server was still tearing down the previous test
        return res

    def udp(self, config: str, sources: Sequence[str], rate: float | None = None) -> Measurement:
        """The 64-byte UDP flood; with ``rate`` (datagrams/s, all senders together) paced at that rate."""
        m = Measurement(config, UDP if rate is None else PACED, float(self.seconds), offered_pps=rate)
        total = str(self.total)
        # iperf3 -b counts UDP payload bits per second, per sender.
        bitrate = "0" if rate is None else f"{rate / len(sources) * UDP_PAYLOAD * 8:.0f}"
        argvs = [
            [
                *("iperf3", "-c", self.lab.server_ip, "-p", str(IPERF_PORT + i), "-B", src),
                *("-u", "-b", bitrate, "-l", str(UDP_PAYLOAD), "-t", total, "-J"),
            ]
            for i, src in enumerate(sources)
        ]
        runs, before, after = self._iperf_windowed(m, argvs)
        for cp in runs:
            try:
                parse_iperf_udp(cp.stdout)
            except (ValueError, KeyError, TypeError) as e:
                m.error = str(e)[:200]
        arrived = _delta(before.server, after.server, "sink")
        # The client's link counts what its senders put on the wire in the same interval.
        sent = _delta(before.server, after.server, "client_tx")
        m.sent = sent
        m.delivered_pps = arrived / m.seconds
        m.bits_per_second = m.delivered_pps * UDP_IP_BYTES * 8
        m.loss_percent = 100 * max(sent - arrived, 0) / sent if sent else None
        if len(sources) > 1:
            m.note = "sources " + ", ".join(sources)
        return m

    def tcp(self, config: str, sources: Sequence[str] = ()) -> Measurement:
        """One TCP bulk stream; with ``sources``, one stream from each (load TCP2)."""
        m = Measurement(config, TCP2 if sources else TCP, float(self.seconds))
        tail = ["-t", str(self.total), "-J"]
        argvs = [
            ["iperf3", "-c", self.lab.server_ip, "-p", str(IPERF_PORT + i), "-B", src, *tail]
            for i, src in enumerate(sources or [self.lab.client_ip])
        ]
        runs, before, after = self._iperf_windowed(m, argvs)
        try:
            m.retransmits = sum(parse_iperf_tcp(run.stdout).retransmits for run in runs)
        except (ValueError, KeyError, TypeError) as e:
            m.error = str(e)[:200]
        if sources:
            m.note = "sources " + ", ".join(sources)
        m.delivered_pps = _delta(before.server, after.server, "Ip.InReceives") / m.seconds
        m.bits_per_second = 8 * _delta(before.server, after.server, "IpExt.InOctets") / m.seconds
        return m

    def http(self, config: str) -> Measurement:
        m = Measurement(config, HTTP, float(self.seconds))
        argv = [sys.executable, "-m", "bench.http_load", "--host", ",".join(self.hosts)]
        argv += ["--port", str(HTTP_PORT), "--seconds", str(self.total)]
        argv += ["--workers", str(HTTP_WORKERS), "--sources", ",".join(self.sources[:HTTP_SOURCES])]
        (run,), before, after = self._windowed(m, [argv])
        try:
            r = json.loads(run.stdout.strip().splitlines()[-1])
            m.failures = int(r["failures"])
            # Completed connections over the load generator's own run: a closed loop runs at a
            # steady rate, so this is also the rate of the counted interval.
            m.connections_per_second = float(r["per_second"])
            if r.get("failure_reasons"):
                m.note = "failures: " + ", ".join(f"{k} {v}" for k, v in sorted(r["failure_reasons"].items()))
        except (ValueError, KeyError, IndexError, TypeError):
            m.error = (run.stderr or run.stdout)[-200:]
        m.delivered_pps = _delta(before.server, after.server, "Ip.InReceives") / m.seconds
        return m

    def measure(self, config: str, load: str, sources: Sequence[str], rate: float = 0.0) -> Measurement:
        if load == UDP:
            m = self.udp(config, sources)
        elif load == PACED:
            m = self.udp(config, sources, rate)
        elif load == TCP2:
            m = self.tcp(config, sources)
        else:
            m = self.tcp(config) if load == TCP else self.http(config)
        blocked = self.unblock()
        if blocked:
            m.blocked = blocked
        time.sleep(0.5)  # let the iperf3 servers finish with the previous test
        return m

    def latency(self, config: str, rate: float) -> Latency:
        lat = Latency(config, rate)
        py = [sys.executable, "-m", "bench.udp_latency"]
        recv_argv = [*py, "recv", "--port", str(LATENCY_PORT), "--seconds", str(self.seconds + 20)]
        recv = popen_in(
            self.lab,
            "server",
            _taskset(self.placement.load, recv_argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=_env(),
        )
        try:
            assert recv.stdout is not None
            first = recv.stdout.readline()
            if '"ready"' not in first:
                lat.error = f"receiver did not start: {first!r}"
                return lat
            send_argv = [*py, "send", "--dst", self.lab.server_ip, "--src", self.lab.client_ip]
            send_argv += [
                "--port",
                str(LATENCY_PORT),
                "--rate",
                f"{rate:.0f}",
                "--seconds",
                str(self.seconds),
            ]
            before = self.snapshot()
            stalls = self._stall_probe()
            cp = exec_in(
                self.lab,
                "client",
                _taskset(self.placement.load, send_argv),
                cwd=ROOT,
                env=_env(),
                timeout=self.seconds + 60,
            )
            if stalls is not None:
                self._stall_report(stalls, lat)
            try:
                out, _ = recv.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                # END lost and datagrams still trickling in: SIGTERM makes it report what it has.
                recv.terminate()
                out, _ = recv.communicate(timeout=10)
            self.drain()
            after = self.snapshot()
            probe = Measurement(config, "latency", float(self.seconds))
            self.fill(probe, before, after)
            lat.unjudged_share = probe.unjudged_share
            s = json.loads(cp.stdout.strip().splitlines()[-1])
            r = json.loads(out.strip().splitlines()[-1])
            lat.achieved_rate = float(s["achieved_rate"])
            lat.sent = int(s["sent"])
            lat.received = int(r["received"])
            lat.p50_us, lat.p99_us, lat.max_us = (_num(r.get(k)) for k in ("p50_us", "p99_us", "max_us"))
            lat.app_p99_us = _num(r.get("app_p99_us"))
        except (ValueError, KeyError, IndexError, TypeError, subprocess.TimeoutExpired) as e:
            lat.error = f"{type(e).__name__}: {e}"[:200]
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait(timeout=5)
        return lat

    def _stall_probe(self) -> subprocess.Popen[str] | None:
        """bench/cpu_stalls.py on the router's CPU (root namespace: a CPU is not namespaced), running."""
        cpus = self.placement.router_one
        if not cpus:
            return None  # unpinned: no one CPU the router runs on
        argv = [sys.executable, "-m", "bench.cpu_stalls", "--seconds", str(self.seconds + 60)]
        proc = subprocess.Popen(
            _taskset(cpus, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=_env(),
        )
        assert proc.stdout is not None
        if '"ready"' not in proc.stdout.readline():
            proc.kill()
            proc.wait(timeout=5)
            return None
        return proc

    @staticmethod
    def _stall_report(proc: subprocess.Popen[str], lat: Latency) -> None:
        proc.terminate()  # SIGTERM: it reports what it saw so far
        try:
            out, _ = proc.communicate(timeout=10)
            r = json.loads(out.strip().splitlines()[-1])
            lat.stalls = int(r["stalls"])
            lat.stall_max_ms, lat.stalled_ms = _num(r.get("stall_max_ms")), _num(r.get("stalled_ms"))
        except (subprocess.TimeoutExpired, ValueError, KeyError, IndexError):
            proc.kill()
            proc.wait(timeout=5)

    def spread_sources(self, queues: int, proto: str = UDP) -> list[str]:
        """Client addresses whose UDP (or TCP) flows to the server land on different queues (cycled).

        The kernel's ``--queue-balance`` hashes source and destination
        address and protocol, with a seed drawn at boot, so which address
        lands where is found by sending a few datagrams (or connection
        attempts, to a port nothing listens on) from each and watching the
        queues' counters.
        """
        chosen: dict[int, str] = {}
        snippet = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind((sys.argv[1],0))\n"
            "[s.sendto(b'probe',(sys.argv[2],9)) for _ in range(20)]\n"
            if proto == UDP
            else "import socket,sys\n"
            "for _ in range(5):\n"
            " s=socket.socket();s.settimeout(0.5);s.bind((sys.argv[1],0))\n"
            " try: s.connect((sys.argv[2],9))\n"
            " except OSError: pass\n"
            " s.close()\n"
        )
        for src in self.sources:
            before = queue_stats(self.lab)
            exec_in(self.lab, "client", [sys.executable, "-c", snippet, src, self.lab.server_ip])
            time.sleep(0.05)
            after = queue_stats(self.lab)
            deltas = {q: v["id_sequence"] - before.get(q, {}).get("id_sequence", 0) for q, v in after.items()}
            if deltas and max(deltas.values()) > 0:
                q = max(deltas, key=lambda k: deltas[k])
                chosen.setdefault(q, src)
            if len(chosen) >= queues:
                break
        picked = [chosen[q] for q in sorted(chosen)]
        if len(picked) < queues:
            self.say(f"  only {len(picked)} of {queues} queues reached from {len(self.sources)} addresses")
        if not picked:
            return self.sources[: self.senders]
        return [picked[i % len(picked)] for i in range(self.senders)]


def _delta(before: dict[str, int], after: dict[str, int], *keys: str) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in keys)


def _num(v: object) -> float | None:
    if isinstance(v, int | float) and not math.isnan(v):
        return float(v)
    return None


# -- the run ----------------------------------------------------------------------------------


@dataclass
class ConfigInfo:
    key: str
    ran: bool = False
    skipped: str = ""
    start_seconds: float | None = None
    eve: dict[str, int] = field(default_factory=dict)
    top_alerts: list[tuple[str, int]] = field(default_factory=list)
    blocked_hosts: int = 0
    error: str = ""


@dataclass
class Report:
    command: str
    date: str
    cpu: str
    ncpu: int
    kernel: str
    python: str
    seconds: int
    senders: int
    margin: float
    placement: str
    et: str
    configs: dict[str, ConfigInfo] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    latency_rate: float = 0.0
    latency_rate_given: bool = False  # --latency-rate, not half the ceiling's
    paced_rate: float = 0.0  # PACED: datagrams/s asked of the 1- and 2-worker rows
    rounds: int = 1  # every configuration under every load this many times in turn (--rounds)

    def get(self, config: str, load: str) -> Measurement | None:
        return next((m for m in self.results if m.config == config and m.load == load), None)

    def lat(self, config: str) -> Latency | None:
        return next((x for x in self.latencies if x.config == config), None)

    def ratio(self, config: str, load: str, base: str) -> float | None:
        m, b = self.get(config, load), self.get(base, load)
        if m is None or b is None or b.inspected <= 0 or m.error:
            return None
        return m.inspected / b.inspected

    def judged_ratio(self, config: str, base: str, load: str = UDP) -> float | None:
        """Packets judged per second by config's process ÷ by base's (UDP flood, or the paced UDP)."""
        m, b = self.get(config, load), self.get(base, load)
        if m is None or b is None or not b.judged or m.error or b.error:
            return None
        return m.judged / b.judged

    def choose_paced_rate(self) -> float:
        """PACED_FACTOR times what one worker judged of the flood, capped below kernel forwarding."""
        one, kernel = self.get(IPS_JUDGED, UDP), self.get(KERNEL, UDP)
        if one is None or not one.judged:
            return 0.0
        rate = PACED_FACTOR * one.judged / one.seconds
        if kernel is not None and kernel.delivered_pps:
            rate = min(rate, PACED_CAP * kernel.delivered_pps)
        return rate

    def added(self, config: str) -> tuple[float | None, float | None]:
        x, k = self.lat(config), self.lat(KERNEL)
        if (
            x is None
            or k is None
            or x.p50_us is None
            or k.p50_us is None
            or x.p99_us is None
            or k.p99_us is None
        ):
            return None, None
        return x.p50_us - k.p50_us, x.p99_us - k.p99_us

    def ceiling_sender_limited(self) -> str:
        """Why the ceiling's UDP rate is the senders' and not its own ("" when it is its own).

        With no loss and CPU to spare, the ceiling judged all that came: it was
        never saturated, so its packets/s understate what it can do.
        """
        m = self.get(CEILING, UDP)
        if m is None or m.cpu_percent is None or m.loss_percent is None:
            return ""
        if m.loss_percent < 1.0 and m.cpu_percent < 90:
            return f"loss {m.loss_percent:.1f}%, router CPU {m.cpu_percent:.0f}%"
        return ""

    def per_core_ratio(self, config: str) -> float | None:
        """UDP flood: the ceiling's CPU per judged packet ÷ config's (packets per core, relative)."""
        m, c = self.get(config, UDP), self.get(CEILING, UDP)
        if m is None or c is None or m.cpu_per_mpkt is None or c.cpu_per_mpkt is None or not m.cpu_per_mpkt:
            return None
        return c.cpu_per_mpkt / m.cpu_per_mpkt

    def in_round(self, n: int) -> Report:
        """This report with round ``n``'s measurements only."""
        return replace(
            self,
            results=[m for m in self.results if m.round_no == n],
            latencies=[x for x in self.latencies if x.round_no == n],
            rounds=1,
        )

    def median(self) -> Report:
        """One measurement per configuration and load: each figure the median of its rounds."""
        if self.rounds <= 1:
            return self
        results: dict[tuple[str, str], list[Measurement]] = {}
        for m in self.results:
            results.setdefault((m.config, m.load), []).append(m)
        lats: dict[str, list[Latency]] = {}
        for x in self.latencies:
            lats.setdefault(x.config, []).append(x)
        return replace(
            self,
            results=[_median_of(ms) for ms in results.values()],
            latencies=[_median_of(xs) for xs in lats.values()],
            rounds=1,
        )

    def targets(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, measured, basis, met) for the issue's five targets.

        Over several rounds, each target's row is the round whose deciding
        figure is the median (the lower of the middle two for an even count):
        every number in the row comes from that one round, and the basis lists
        every round's deciding figure.
        """
        if self.rounds <= 1:
            return [t[:4] for t in self._round_targets()]
        per = [self.in_round(n)._round_targets() for n in range(1, self.rounds + 1)]
        out: list[tuple[str, str, str, bool | None]] = []
        for i in range(len(per[0])):
            rows = [(n, p[i]) for n, p in enumerate(per, start=1)]
            have = sorted(((n, t) for n, t in rows if t[4] is not None), key=lambda nt: nt[1][4] or 0.0)
            spread = ", ".join(t[5] for _, t in rows)
            if not have:
                t = rows[0][1]
                out.append((t[0], t[1], f"{t[2]}; no round measured it ({spread})", None))
                continue
            n, t = have[(len(have) - 1) // 2]
            how = (
                f"{t[2]}; round {n} of {self.rounds}, the median of the rounds' deciding figures "
                f"(by round: {spread})"
            )
            out.append((t[0], t[1], how, t[3]))
        return out

    def _round_targets(self) -> list[tuple[str, str, str, bool | None, float | None, str]]:
        """(target, measured, basis, met, deciding figure, that figure as text) for this round."""
        out: list[tuple[str, str, str, bool | None, float | None, str]] = []

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        def met(v: float | None, ok: Callable[[float], bool]) -> bool | None:
            return None if v is None else ok(v)

        limited = self.ceiling_sender_limited()
        caveat = (
            f"; the ceiling was sender-limited ({limited}), so the packets/s ratio is an upper bound "
            "and the per-core ratio decides"
            if limited
            else ""
        )
        for key, target, floor in (
            (IPS_JUDGED, "1. default rules: at least 85% of the ceiling's packets/s", 0.85),
            (IPS_ET, "2. whole loadable ET Open set: at least 60% of the ceiling", 0.60),
        ):
            r = self.ratio(key, UDP, CEILING)
            core = self.per_core_ratio(key)
            m = self.get(key, UDP)
            how = "UDP flood, inspected packets/s ÷ ceiling's; per core (ceiling's CPU s/Mpkt ÷ this one's): "
            how += fmt(core)
            if key == IPS_JUDGED:
                how += f"; with flow bypass: {fmt(self.ratio(IPS, UDP, CEILING))}"
            if key == IPS_ET and m is not None and m.delivered_pps:
                share = 100 * m.judged / (m.delivered_pps * m.seconds)
                how += f"; flow bypass on, {share:.0f}% of delivered judged"
            decide = core if limited else r
            out.append(
                (
                    target,
                    fmt(r),
                    how + caveat,
                    None if decide is None else decide >= floor,
                    decide,
                    fmt(decide) + (" per core" if limited and decide is not None else ""),
                )
            )
        r3 = self.ratio(IPS, TCP, KERNEL)
        out.append(
            (
                "3. TCP bulk with bypass: at least 80% of kernel forwarding",
                fmt(r3),
                "TCP bulk, inspected bits/s delivered, default rules with flow bypass ÷ kernel forwarding",
                met(r3, lambda v: v >= 0.80),
                r3,
                fmt(r3),
            )
        )
        _, p99 = self.added(IPS_JUDGED)
        _, p99c = self.added(IPS)
        _, p99_ceiling = self.added(CEILING)
        lat = self.lat(IPS_JUDGED)
        held = f"{lat.achieved_rate:,.0f} datagrams/s held" if lat else "-"
        out.append(
            (
                "4. added latency p99 under 1 ms at half the ceiling's rate",
                "-" if p99 is None else f"{p99:,.0f} µs",
                f"every packet judged, p99 minus kernel forwarding's p99, {held} "
                f"(with flow bypass: {'-' if p99c is None else f'{p99c:,.0f} µs'}; the accept-all ceiling "
                f"itself adds {'-' if p99_ceiling is None else f'{p99_ceiling:,.0f} µs'})"
                + _stall_text(lat, self.lat(KERNEL))
                + (
                    "; NOT at half the ceiling's rate: --latency-rate set it"
                    if self.latency_rate_given
                    else ""
                ),
                None if p99 is None else p99 < 1000,
                p99,
                "-" if p99 is None else f"{p99:,.0f} µs",
            )
        )
        r5 = self.ratio(IPS_W2, TCP2, IPS_JUDGED)
        one = self.get(IPS_JUDGED, TCP2)
        busy = f", one worker's CPU {one.cpu_percent:.0f}%" if one and one.cpu_percent is not None else ""
        out.append(
            (
                "5. 2 workers deliver more than 1 worker",
                fmt(r5),
                f"TCP bulk, 2 streams from 2 client addresses (one per queue), inspected bits/s "
                f"delivered, 2 workers ÷ 1 worker (both every packet judged{busy}); 64-byte UDP paced "
                f"at {self.paced_rate:,.0f}/s, packets/s judged: "
                f"{fmt(self.judged_ratio(IPS_W2, IPS_JUDGED, PACED))}; under the unpaced UDP flood: "
                f"{fmt(self.judged_ratio(IPS_W2, IPS_JUDGED))} (the UDP senders and the second worker "
                "share a CPU)",
                met(r5, lambda v: v > 1.0),
                r5,
                fmt(r5),
            )
        )
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, with the derived figures, for ``--json``."""
        doc = asdict(self)
        views = {n: self.in_round(n) for n in range(1, self.rounds + 1)} if self.rounds > 1 else {1: self}
        for row, m in zip(doc["results"], self.results, strict=True):
            view = views.get(m.round_no, self)
            row.update(
                figure=m.figure,
                inspected=m.inspected,
                unjudged_share=m.unjudged_share,
                cpu_percent=m.cpu_percent,
                cpu_per_mpkt=m.cpu_per_mpkt,
                ratio_ceiling=view.ratio(m.config, m.load, CEILING),
                ratio_kernel=view.ratio(m.config, m.load, KERNEL),
            )
        for row, x in zip(doc["latencies"], self.latencies, strict=True):
            view = views.get(x.round_no, self)
            row.update(zip(("added_p50_us", "added_p99_us"), view.added(x.config), strict=True))
        doc["targets"] = [{"target": t, "measured": v, "how": h, "met": ok} for t, v, h, ok in self.targets()]
        return doc

    # rendering

    def _rows(self, load: str) -> tuple[list[str], list[list[str]]]:
        if load == UDP:
            head = ["configuration", "delivered pkt/s", "Mbit/s", "loss %", "judged pkt/s", "unjudged %"]
        elif load in (TCP, TCP2):
            head = [
                "configuration",
                "Mbit/s to server",
                "pkt/s to server",
                "retransmits",
                "judged pkt/s",
                "unjudged %",
            ]
        else:
            head = [
                "configuration",
                "connections/s",
                "failures",
                "pkt/s to server",
                "judged pkt/s",
                "unjudged %",
            ]
        head += ["÷ 1 worker"] if load == TCP2 else ["÷ ceiling", "÷ kernel"]
        head += ["router CPU %", "CPU s/Mpkt", "RSS MB"]
        rows: list[list[str]] = []
        for key in ALL_CONFIGS:
            m = self.get(key, load)
            if m is None:
                continue
            judged = "-" if key == KERNEL else f"{m.judged / m.seconds:,.0f}"
            unj = "-" if key == KERNEL else f"{100 * m.unjudged_share:.1f}"
            if load == UDP:
                cells = [
                    f"{m.delivered_pps:,.0f}",
                    f"{(m.bits_per_second or 0) / 1e6:,.1f}",
                    _f(m.loss_percent, 1),
                ]
            elif load in (TCP, TCP2):
                cells = [
                    f"{(m.bits_per_second or 0) / 1e6:,.0f}",
                    f"{m.delivered_pps:,.0f}",
                    "-" if m.retransmits is None else f"{m.retransmits:,}",
                ]
            else:
                cells = [
                    _f(m.connections_per_second, 0),
                    "-" if m.failures is None else f"{m.failures:,}",
                    f"{m.delivered_pps:,.0f}",
                ]
            name = NAMES[key] + (" (error)" if m.error else "")
            rows.append(
                [
                    name,
                    *cells,
                    judged,
                    unj,
                    *(
                        [_f(self.ratio(key, load, IPS_JUDGED), 3)]
                        if load == TCP2
                        else [_f(self.ratio(key, load, CEILING), 3), _f(self.ratio(key, load, KERNEL), 3)]
                    ),
                    _f(m.cpu_percent, 0),
                    _f(m.cpu_per_mpkt, 1),
                    "-" if m.rss_bytes is None else f"{m.rss_bytes / 2**20:,.0f}",
                ]
            )
        return head, rows

    def _paced_rows(self) -> tuple[list[str], list[list[str]]]:
        head = [
            "configuration",
            "sent pkt/s",
            "delivered pkt/s",
            "loss %",
            "judged pkt/s",
            "unjudged %",
            "judged ÷ 1 worker",
            "router CPU %",
            "CPU s/Mpkt",
        ]
        rows = []
        for key in ALL_CONFIGS:
            m = self.get(key, PACED)
            if m is None:
                continue
            rows.append(
                [
                    NAMES[key] + (" (error)" if m.error else ""),
                    "-" if m.sent is None else f"{m.sent / m.seconds:,.0f}",
                    f"{m.delivered_pps:,.0f}",
                    _f(m.loss_percent, 1),
                    f"{m.judged / m.seconds:,.0f}",
                    f"{100 * m.unjudged_share:.1f}",
                    _f(self.judged_ratio(key, IPS_JUDGED, PACED), 3),
                    _f(m.cpu_percent, 0),
                    _f(m.cpu_per_mpkt, 1),
                ]
            )
        return head, rows

    def _latency_rows(self) -> tuple[list[str], list[list[str]]]:
        head = [
            "configuration",
            "rate held /s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "added p50 µs",
            "added p99 µs",
            "loss %",
            "unjudged %",
            "router CPU stalls ≥1 ms",
            "longest stall ms",
            "stalled ms",
        ]
        rows = []
        for key in ALL_CONFIGS:
            x = self.lat(key)
            if x is None:
                continue
            a50, a99 = self.added(key)
            rows.append(
                [
                    NAMES[key] + (f" (error: {x.error})" if x.error else ""),
                    f"{x.achieved_rate:,.0f}",
                    _f(x.p50_us, 0),
                    _f(x.p99_us, 0),
                    _f(x.max_us, 0),
                    "-" if key == KERNEL else _f(a50, 0),
                    "-" if key == KERNEL else _f(a99, 0),
                    _f(x.loss_percent, 2),
                    "-" if key == KERNEL else f"{100 * x.unjudged_share:.1f}",
                    "-" if x.stalls is None else f"{x.stalls:,}",
                    _f(x.stall_max_ms, 1),
                    _f(x.stalled_ms, 0),
                ]
            )
        return head, rows

    def markdown(self) -> str:
        out = [
            SECTION,
            "",
            "Produced by `bench/lab_bench.py` (see `bench/README.md`): the lab's client sends to its server "
            "through the router namespace, which forwards in the kernel, runs the accept-all NetfilterQueue "
            "ceiling, or runs inline-ips; every configuration under every load, in one run. Sender, router "
            "and receiver share this machine's CPUs, so only ratios between rows of this run mean anything.",
            "",
            f"- Command: `{self.command}`",
            f"- Date: {self.date}",
            f"- CPU: {self.cpu} ({self.ncpu} logical CPUs); kernel {self.kernel}; Python {self.python}",
            f"- CPU placement: {self.placement}",
            f"- Each measurement {self.seconds} s; UDP flood from {self.senders} iperf3 senders on distinct "
            f"client addresses; HTTP: {HTTP_WORKERS} workers rotating over {HTTP_SOURCES} client and "
            f"{HTTP_HOSTS} server addresses; every load runs {self.margin:g} s before and after "
            "its counted interval",
            f"- ET Open: {self.et}",
        ]
        if self.rounds > 1:
            out.append(
                f"- Rounds: {self.rounds}, each every configuration under every load in turn. The tables "
                "give each figure's median over the rounds (derived columns are worked out from those "
                "medians); each target's row is one round's, the round with the median deciding figure, "
                "and lists every round's"
            )
        view = self.median()
        for load in LOADS:
            out += ["", f"### {LOAD_TITLES[load]}", ""]
            out += _md_table(*view._rows(load))
        if any(m.load == PACED for m in view.results):
            out += [
                "",
                f"### 64-byte UDP paced at {self.paced_rate:,.0f} datagrams/s ({PACED_FACTOR:g} times what "
                "one worker judged of the flood): one worker and two",
                "",
            ]
            out += _md_table(*view._paced_rows())
        if any(m.load == TCP2 for m in view.results):
            out += ["", f"### {LOAD_TITLES[TCP2]}: one worker and two", ""]
            out += _md_table(*view._rows(TCP2))
        out += [
            "",
            f"### Latency at {self.latency_rate:,.0f} datagrams/s asked ("
            + ("set by --latency-rate" if self.latency_rate_given else "half the ceiling's UDP rate")
            + ")",
            "",
        ]
        out += _md_table(*view._latency_rows())
        out += ["", "### Targets", ""]
        out += _md_table(
            ["target", "measured", "how", "met"],
            [
                [t, v, how, "-" if ok is None else ("met" if ok else "not met")]
                for t, v, how, ok in self.targets()
            ],
            numeric=False,
        )
        out += ["", "### Notes", ""]
        out += view._notes(self.starved())
        return "\n".join(out) + "\n"

    def starved(self) -> list[str]:
        """Measurements where the router's process fell behind without using its CPU.

        Packets lost or passed unjudged while the process used well under a
        core mean something else ran on its CPU (or it waited on a lock): the
        figure is the machine's, not the configuration's.
        """
        out = []
        for m in self.results:
            if m.config == KERNEL or m.cpu_percent is None or m.cpu_percent >= 85:
                continue
            lost = m.loss_percent or 0.0
            if lost > 1.0 or m.unjudged_share > 0.01:
                where = f" (round {m.round_no})" if self.rounds > 1 else ""
                out.append(
                    f"{NAMES[m.config]}, {m.load}{where}: {lost:.1f}% lost and {100 * m.unjudged_share:.1f}% "
                    f"unjudged while the router's process used {m.cpu_percent:.0f}% of a CPU"
                )
        return out

    def _notes(self, warnings: Sequence[str]) -> list[str]:
        notes = [
            f"- **Warning**: {w}: another process probably took its CPU; measure again on a quiet machine."
            for w in warnings
        ]
        notes += [
            "- `delivered`: UDP datagrams counted (and dropped) by a raw-table rule as they enter the "
            "server, IP packets and bytes (TCP, HTTP) that reached the server's stack (its namespace's "
            "`/proc/net/snmp`); UDP `loss %`: what left the client's link and never arrived; HTTP: "
            "connections the load generator completed. `judged`: handed to the router's process "
            "(`nfnetlink_queue` `id_sequence`). `unjudged %`: forwarded packets that our NFQUEUE rule "
            "queued but that the full queue let through unjudged (fail-open).",
            "- `÷ ceiling`, `÷ kernel`: the headline figure (pkt/s, Mbit/s, connections/s) times the share "
            "of forwarded packets that were not passed unjudged, divided by that of the ceiling or of "
            "kernel forwarding in the same load.",
            "- `router CPU %`: CPU time of the router's process tree per second of load (100 = one core); "
            "`CPU s/Mpkt`: that CPU time per million judged packets (blank below "
            f"{MIN_JUDGED_FOR_CPU:,} judged); `RSS MB`: VmRSS summed over the process tree after the load.",
            "- Latency: one-way, kernel receive timestamp at the server minus the sender's clock just before "
            "`send`, first 0.2 s left out; added = the configuration's percentile minus kernel forwarding's.",
            "- Router CPU stalls: meanwhile `bench/cpu_stalls.py` (SCHED_FIFO, pinned to the router's CPU) "
            "wakes every millisecond; a wake-up late by 1 ms or more is a stall, a time the CPU could not "
            "run a task that was ready (the hypervisor, or the kernel, had it). Every packet queued to a "
            "process on that CPU waits through it, whatever the process; kernel forwarding's row runs the "
            "same probe on the same idle CPU, for reference.",
        ]
        for m in self.results:
            if m.bypassed and m.forwarded and m.load in (UDP, TCP):
                notes.append(
                    f"- {NAMES[m.config]}, {m.load}: flow bypass: the kernel carried "
                    f"{100 * m.bypassed / m.forwarded:.1f}% of the forwarded packets without queueing them"
                )
            if m.blocked:
                notes.append(
                    f"- {NAMES[m.config]}, {m.load}: the IPS blocked {', '.join(m.blocked)} "
                    "(unblocked before the next load)"
                )
            if m.error:
                notes.append(f"- {NAMES[m.config]}, {m.load}: error: {m.error}")
            if len(m.per_queue) > 1:
                split = ", ".join(f"queue {q}: {n:,}" for q, n in sorted(m.per_queue.items()))
                notes.append(
                    f"- {NAMES[m.config]}, {m.load}: judged per queue {split}"
                    + (f" ({m.note})" if m.note else "")
                )
            elif m.note and m.load == HTTP:
                notes.append(f"- {NAMES[m.config]}, HTTP {m.note}")
        for key, info in self.configs.items():
            if info.skipped:
                notes.append(f"- {NAMES[key]}: {info.skipped}")
            if info.error:
                notes.append(f"- {NAMES[key]}: {info.error}")
            if info.start_seconds is not None and key != KERNEL:
                extra = ""
                if info.eve:
                    extra = "; EVE events " + ", ".join(f"{k} {v:,}" for k, v in sorted(info.eve.items()))
                if info.top_alerts:
                    extra += "; top alerts: " + "; ".join(f"{s} ({n:,})" for s, n in info.top_alerts)
                if info.blocked_hosts:
                    extra += f"; {info.blocked_hosts} host(s) in the kernel blocklist at the end"
                notes.append(f"- {NAMES[key]}: ready {info.start_seconds:.1f} s after start{extra}.")
        return notes


_Row = TypeVar("_Row", Measurement, Latency)


def _median_of(rows: Sequence[_Row]) -> _Row:
    """One row from several rounds' rows of the same configuration (and load): the median of
    each number (of the rounds that have one; whole numbers stay whole), the distinct texts
    joined, lists merged, and per-queue counts by queue."""
    first = rows[0]
    if len(rows) == 1:
        return first
    changes: dict[str, Any] = {"round_no": 0}
    for f in fields(first):
        if f.name in ("config", "load", "round_no"):
            continue
        values = [getattr(r, f.name) for r in rows]
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if nums:
            med = statistics.median(nums)
            changes[f.name] = round(med) if all(isinstance(v, int) for v in nums) else float(med)
        elif all(isinstance(v, str) for v in values):
            changes[f.name] = "; ".join(v for v in dict.fromkeys(values) if v)
        elif all(isinstance(v, list) for v in values):
            changes[f.name] = list(dict.fromkeys(x for v in values for x in v))
        elif all(isinstance(v, dict) for v in values):
            keys = dict.fromkeys(k for v in values for k in v)
            changes[f.name] = {k: round(statistics.median(v.get(k, 0) for v in values)) for k in keys}
    return replace(first, **changes)


def _f(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _md_table(head: list[str], rows: list[list[str]], numeric: bool = True) -> list[str]:
    """A Markdown table; ``numeric``: every column but the first right-aligned."""
    out = ["| " + " | ".join(head) + " |", "| --- |" + (" ---: |" if numeric else " --- |") * (len(head) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _eve_summary(path: Path) -> tuple[dict[str, int], list[tuple[str, int]]]:
    kinds: Counter[str] = Counter()
    sigs: Counter[str] = Counter()
    if not path.exists():
        return {}, []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kinds[str(ev.get("event_type"))] += 1
            if ev.get("event_type") == "alert":
                sigs[str(ev.get("alert", {}).get("signature"))] += 1
    return dict(kinds), sigs.most_common(3)


def _blocked_hosts(lab: Lab) -> int:
    out = exec_in(lab, "router", ["ipset", "list", "inline_ips_block4"]).stdout
    lines = out.splitlines()
    if "Members:" not in lines:
        return 0
    return sum(1 for line in lines[lines.index("Members:") + 1 :] if line.strip())


def router_argv(
    key: str, lab: Lab, rules: Path, et_files: Sequence[Path], busy_poll_us: int | None = None
) -> list[str]:
    if key == CEILING:
        return [sys.executable, "-m", "bench.accept_all"]
    eve = lab.workdir / f"eve-{key}.json"
    extra: list[str] = [] if busy_poll_us is None else ["--busy-poll-us", str(busy_poll_us)]
    if key == IPS_JUDGED:
        extra += ["--bypass-after", "0"]
    elif key == IPS_ET:
        for f in et_files:
            extra += ["--rules", str(f)]
    elif key == IPS_W2:
        extra += ["--workers", "2", "--bypass-after", "0"]
    return ips_argv(rules, eve, *extra)


@contextmanager
def _router(bench: Bench, key: str, argv: list[str] | None, workers: int, info: ConfigInfo) -> Iterator[None]:
    if argv is None:
        bench.router_pid = None
        info.start_seconds = 0.0
        yield
        return
    t0 = time.monotonic()
    timeout = ET_READY_TIMEOUT if key == IPS_ET else READY_TIMEOUT
    rp = RouterProcess(
        bench.lab, argv, bench.placement.router(workers), bench.lab.workdir / f"router-{key}.log", timeout
    )
    info.start_seconds = time.monotonic() - t0
    bench.router_pid = rp.pid
    try:
        time.sleep(1.0)  # let start-up work (first metrics, stats thread) finish before counting CPU
        yield
        info.blocked_hosts = _blocked_hosts(bench.lab)
    finally:
        bench.router_pid = None
        rp.stop()


def run(args: argparse.Namespace, argv: Sequence[str], out: TextIO = sys.stderr) -> Report:
    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=out, flush=True)

    seconds = args.seconds
    et_dir = None if args.no_et else (args.et or default_et_dir())
    et_files = sorted(et_dir.glob("*.rules")) if et_dir is not None else []
    configs = [c for c in ALL_CONFIGS if c in args.configs]
    placement = Placement.choose(not args.no_pin)
    report = Report(
        latency_rate=args.latency_rate or 0.0,
        latency_rate_given=bool(args.latency_rate),
        command=results_file.command_line("bench.lab_bench", argv),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=results_file.cpu_model(),
        ncpu=os.cpu_count() or 1,
        kernel=platform.release(),
        python=platform.python_version(),
        seconds=seconds,
        senders=args.senders,
        margin=QUICK_MARGIN if args.quick else MARGIN,
        placement=placement.describe(),
        et="-",
        rounds=args.rounds,
    )
    if et_dir is None:
        report.et = (
            "skipped (" + ("--no-et" if args.no_et else f"not found under {CORPUS_RULESETS}; --et DIR") + ")"
        )
    elif not et_files:
        report.et = f"skipped (no .rules files in {et_dir})"
    else:
        report.et = f"{et_dir} ({len(et_files)} .rules files)"
    lab = Lab(args.prefix)
    say(f"lab {args.prefix}: building; {seconds} s per measurement; CPU placement: {placement.describe()}")
    with running_lab(lab), services.running_services(lab, iperf=True) as svc:
        margin = QUICK_MARGIN if args.quick else MARGIN
        bench = Bench(lab, seconds, args.senders, placement, say, margin)
        try:
            bench.prepare(svc)
            default_sources = bench.sources[: args.senders]
            for rnd in range(1, args.rounds + 1):
                if args.rounds > 1:
                    say(f"round {rnd} of {args.rounds}")
                _one_round(report, bench, rnd, configs, args, et_files, default_sources, say)
            if report.latency_rate <= 0:
                say("no ceiling rate (and no --latency-rate): latency left out")
        finally:
            bench.close()
    return report


def _one_round(
    report: Report,
    bench: Bench,
    rnd: int,
    configs: Sequence[str],
    args: argparse.Namespace,
    et_files: Sequence[Path],
    default_sources: Sequence[str],
    say: Callable[[str], None],
) -> None:
    """Every configuration under every load once, appended to ``report`` as round ``rnd``.

    The paced and latency rates are chosen in the first round and kept, so the rounds
    measure the same thing.
    """
    lab = bench.lab
    for key in configs:
        info = report.configs.setdefault(key, ConfigInfo(key))
        if key == IPS_ET and not et_files:
            info.skipped = report.et
            say(f"{NAMES[key]}: {report.et}")
            continue
        argv_r = None if key == KERNEL else router_argv(key, lab, args.rules, et_files, args.busy_poll_us)
        workers = 2 if key == IPS_W2 else 1
        say(f"{NAMES[key]}: starting")
        try:
            with _router(bench, key, argv_r, workers, info):
                info.ran = True
                sources = bench.spread_sources(2) if key == IPS_W2 else default_sources
                for load in LOADS:
                    m = bench.measure(key, load, sources)
                    m.round_no = rnd
                    report.results.append(m)
                    say(f"  {load}: {_summary(m)}")
                if key == IPS_JUDGED and not report.paced_rate:
                    report.paced_rate = report.choose_paced_rate()
                if key in (IPS_JUDGED, IPS_W2) and report.paced_rate > 0:
                    m = bench.measure(key, PACED, sources, report.paced_rate)
                    m.round_no = rnd
                    report.results.append(m)
                    say(f"  {PACED} at {report.paced_rate:,.0f}/s: {_summary(m)}")
                if key in (IPS_JUDGED, IPS_W2):
                    # Two client addresses either way; for two workers, ones that land on both queues.
                    pair = bench.spread_sources(2, TCP)[:2] if key == IPS_W2 else bench.sources[:2]
                    m = bench.measure(key, TCP2, pair)
                    m.round_no = rnd
                    report.results.append(m)
                    say(f"  {TCP2}: {_summary(m)}")
                if key == CEILING and not report.latency_rate:
                    report.latency_rate = _latency_rate(report)
                if (key != KERNEL or report.latency_rate_given) and report.latency_rate > 0:
                    x = bench.latency(key, report.latency_rate)
                    x.round_no = rnd
                    report.latencies.append(x)
                    say(f"  latency at {report.latency_rate:,.0f}/s: {_lat_summary(x)}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            # One configuration failing (it did not start, a tool hung) leaves the others' figures.
            info.error = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            say(f"  failed: {e}")
        if key != KERNEL:
            info.eve, info.top_alerts = _eve_summary(lab.workdir / f"eve-{key}.json")
        if key == CEILING and KERNEL in configs and report.latency_rate > 0 and not report.latency_rate_given:
            # Kernel forwarding's latency needs the ceiling's rate, and nothing of the
            # ceiling in the router any more: its process has stopped and its rules are gone.
            k = bench.latency(KERNEL, report.latency_rate)
            k.round_no = rnd
            report.latencies.append(k)
            say(f"  latency, {NAMES[KERNEL]}, at {report.latency_rate:,.0f}/s: {_lat_summary(k)}")


def _latency_rate(report: Report) -> float:
    m = report.get(CEILING, UDP)
    if m is None or m.judged <= 0:
        return 0.0
    return m.judged / m.seconds / 2


def _summary(m: Measurement) -> str:
    unit = "bit/s" if m.load in (TCP, TCP2) else "conn/s" if m.load == HTTP else "pkt/s"
    parts = [f"{m.figure:,.0f} {unit}"]
    if m.load in (UDP, PACED) and m.loss_percent is not None:
        parts.append(f"loss {m.loss_percent:.1f}%")
    parts.append(f"judged {m.judged / m.seconds:,.0f}/s, unjudged {100 * m.unjudged_share:.1f}%")
    if m.cpu_percent is not None:
        parts.append(f"router CPU {m.cpu_percent:.0f}%")
    if m.error:
        parts.append(f"ERROR {m.error}")
    return ", ".join(parts)


def _lat_summary(x: Latency) -> str:
    if x.error:
        return f"ERROR {x.error}"
    held = f"{x.achieved_rate:,.0f}/s held"
    out = f"{held}, p50 {_f(x.p50_us, 0)} µs, p99 {_f(x.p99_us, 0)} µs, max {_f(x.max_us, 0)} µs"
    if x.stalls is not None:
        out += f", router CPU stalls {x.stalls} (longest {_f(x.stall_max_ms, 1)} ms)"
    return out


def _stall_text(judged: Latency | None, kernel: Latency | None) -> str:
    """What the router's CPU stalls were during the judged latency run (and kernel forwarding's)."""
    if judged is None or judged.stalls is None:
        return ""
    out = (
        f"; the router's CPU stalled {_times(judged.stalls)} for 1 ms or more meanwhile "
        f"(longest {_f(judged.stall_max_ms, 1)} ms, {_f(judged.stalled_ms, 0)} ms in all)"
    )
    if kernel is not None and kernel.stalls is not None:
        out += f", and {_times(kernel.stalls)} during kernel forwarding's run, with nothing on it"
    return out


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n:,} times"


def _config_list(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in ALL_CONFIGS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown configuration(s) {bad}; choose from {', '.join(ALL_CONFIGS)}"
        )
    return keys


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.lab_bench", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SECONDS} s per measurement, no ET Open (smoke test)"
    )
    ap.add_argument(
        "--seconds",
        type=results_file.positive_int,
        help=f"seconds per measurement (default {DEFAULT_SECONDS})",
    )
    ap.add_argument(
        "--et", type=Path, metavar="DIR", help="directory of ET Open .rules files (default: the corpus)"
    )
    ap.add_argument("--no-et", action="store_true", help="leave out the ET Open configuration")
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="the default rules (rules.yaml)")
    ap.add_argument(
        "--senders",
        type=results_file.positive_int,
        default=DEFAULT_SENDERS,
        help="iperf3 UDP senders (default 2)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin load generators and router to CPUs")
    ap.add_argument(
        "--configs",
        type=_config_list,
        default=list(ALL_CONFIGS),
        metavar="LIST",
        help=f"comma-separated subset of {','.join(ALL_CONFIGS)} (default: all)",
    )
    ap.add_argument(
        "--latency-rate",
        type=float,
        metavar="N",
        help="datagrams/s for the latency runs (default: half the ceiling's UDP packets/s)",
    )
    ap.add_argument(
        "--busy-poll-us",
        type=int,
        metavar="US",
        help="pass --busy-poll-us US to every inline-ips configuration (default: inline-ips's own default)",
    )
    ap.add_argument(
        "--rounds",
        type=results_file.positive_int,
        help=f"measure every configuration under every load this many times in turn, and report "
        f"medians (default {DEFAULT_ROUNDS}; 1 with --quick)",
    )
    ap.add_argument("--prefix", default="lbench", help="lab namespace prefix (default lbench)")
    ap.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help=f"write the results as the section '{SECTION[3:]}' of FILE (other sections are kept)",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON to FILE")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else DEFAULT_SECONDS
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.quick:
        args.no_et = True
    if args.senders + 1 > CANDIDATE_SOURCES:
        ap.error(f"--senders must be below {CANDIDATE_SOURCES}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("lab_bench: needs root (network namespaces, iptables, NFQUEUE)", file=sys.stderr)
        return 2
    try:
        report = run(args, argv)
    except KeyboardInterrupt:
        print("lab_bench: interrupted; the lab has been torn down, nothing was written", file=sys.stderr)
        return 130
    text = report.markdown()
    print(text, end="")
    if args.markdown is not None:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(old, text), encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
