"""The victim's services in the lab's server namespace, and what reached them.

What it does: starts and stops, inside ``<prefix>-server``,

* an HTTP server on port 80 (Python's ``http.server``, IPv4 and IPv6)
  serving a small ``index.html`` and a 20 MB ``bulk.bin`` for a bulk
  transfer, logging every request line to ``http.log``;
* a tiny authoritative DNS server on UDP and TCP port 53 answering A (and
  AAAA) queries for ``*.lab.test`` with the server's address, REFUSED for
  other names, logging every query to ``dns.log`` (stdlib only: it has to
  start fast and answer quickly under load);
* an ``iperf3`` server on port 5201;

and keeps per-class packet counters at the server with ``iptables-legacy``
rules (no target, so they only count) in an ``IIPS_COUNT`` chain jumped to
from INPUT inside the server namespace. :func:`server_counters` adds what the
logs saw (requests with SQL injection or path traversal, DNS queries), so a
test can tell whether an attack was stopped before it reached the server.

The HTTP and DNS servers run as ``python -m inline_ips.lab.services http|dns``
subprocesses of the caller, in the server namespace. Files live in
``Lab.workdir`` (removed by :func:`inline_ips.lab.topology.down`).

What it does not do: create the namespaces (:mod:`~inline_ips.lab.topology`),
send traffic (:mod:`~inline_ips.lab.attacks`), count IPv6 packets (the
attacks are IPv4) or emulate a vulnerable application: a traversal request
gets index.html or a 404, never /etc/passwd.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote_plus

from inline_ips.lab.topology import (
    ATTACKER_IP,
    CLIENT_IP,
    SERVER_IP,
    SERVER_IP6,
    Lab,
    exec_in,
    popen_in,
    wait_for,
)

HTTP_PORT = 80
DNS_PORT = 53
IPERF_PORT = 5201
DNS_ZONE = "lab.test"
BULK_FILE = "bulk.bin"
BULK_BYTES = 20 * 1024 * 1024
INDEX_HTML = (
    b"<!doctype html>\n<html><head><title>lab server</title></head>\n"
    b"<body><h1>inline-ips lab</h1><p>The victim's web site.</p></body></html>\n"
)
COUNT_CHAIN = "IIPS_COUNT"

# (name, iptables match): every packet delivered to the server is tested
# against each rule in turn; a rule without a target only counts.
_COUNTER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tcp_syn_80", ("-p", "tcp", "--syn", "--dport", "80")),
    ("tcp_syn_other", ("-p", "tcp", "--syn", "!", "--dport", "80")),
    ("icmp_echo", ("-p", "icmp", "--icmp-type", "echo-request")),
    ("udp_to_53", ("-p", "udp", "--dport", "53")),
    # Datagrams are reassembled before INPUT, so a fragmented 3 KB answer counts once.
    ("udp_from_53", ("-p", "udp", "--sport", "53")),
    ("from_attacker", ("-s", ATTACKER_IP)),
    ("from_client", ("-s", CLIENT_IP)),
    ("total", ()),
)
_COMMENT_RE = re.compile(r"/\* (\S+) \*/")
_REQUEST_RE = re.compile(r'"([A-Z]+) (\S+) HTTP/\d\.\d" (\d{3})')
_SQLI_RE = re.compile(r"union(\s|/\*.*?\*/)+(all\s+)?select|'\s*or\s*'|\bsleep\s*\(", re.IGNORECASE)
_TRAVERSAL_RE = re.compile(r"\.\.[/\\]|/etc/(passwd|shadow)", re.IGNORECASE)
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


# ---- DNS (runs in the server namespace) -------------------------------------


def _read_qname(msg: bytes, pos: int) -> tuple[str, int]:
    """Uncompressed name at pos (queries never need compression); ValueError if malformed."""
    labels: list[str] = []
    while True:
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[pos]
        pos += 1
        if n == 0:
            return ".".join(labels).lower(), pos
        if n > 63 or pos + n > len(msg):
            raise ValueError("bad label")
        labels.append(msg[pos : pos + n].decode("ascii", "replace"))
        pos += n


def dns_answer(
    query: bytes, zone: str = DNS_ZONE, a: str = SERVER_IP, aaaa: str = SERVER_IP6
) -> tuple[bytes, str, int] | None:
    """Answer one DNS query: (response, qname, qtype), or None for what is not a query.

    Names in ``zone`` (and the zone itself) get ``a``/``aaaa``; other names
    get REFUSED, as an authoritative-only server would answer.
    """
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!3H", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None  # a response (reflected traffic), or not one question
    try:
        qname, end = _read_qname(query, 12)
    except ValueError:
        return None
    if end + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[end : end + 4])
    opcode = (flags >> 11) & 0xF
    rflags = 0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100)  # QR, AA, RD copied
    answers: list[bytes] = []
    if opcode != 0:
        rcode = 4  # NOTIMP
    elif qname != zone and not qname.endswith("." + zone):
        rcode = 5  # REFUSED
    else:
        rcode = 0
        if qclass in (1, 255):
            if qtype in (1, 255):
                answers.append(_rr(1, socket.inet_pton(socket.AF_INET, a)))
            if qtype in (28, 255):
                answers.append(_rr(28, socket.inet_pton(socket.AF_INET6, aaaa)))
    header = struct.pack("!6H", qid, rflags | rcode, 1, len(answers), 0, 0)
    return header + query[12 : end + 4] + b"".join(answers), qname, qtype


def _rr(rtype: int, rdata: bytes) -> bytes:
    # 0xC00C points at the question's name, right after the 12-byte header.
    return b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata


class _Log:
    """Line-buffered, thread-safe append-only log (truncating it resets the counts)."""

    def __init__(self, path: Path) -> None:
        self._f: TextIO = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._f.write(line.rstrip("\n") + "\n")


def _dual_stack(kind: int, port: int) -> socket.socket:
    """One socket for IPv4 and IPv6 on all addresses of the namespace."""
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def _peer(addr: Any) -> str:
    host = str(addr[0])
    return host.removeprefix("::ffff:")


def serve_dns(log_path: Path, port: int = DNS_PORT) -> None:
    """Answer DNS over UDP and TCP forever (until killed)."""
    log = _Log(log_path)
    udp = _dual_stack(socket.SOCK_DGRAM, port)
    tcp = _dual_stack(socket.SOCK_STREAM, port)
    tcp.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is udp:
                data, addr = udp.recvfrom(4096)
                ans = dns_answer(data)
                if ans is not None:
                    udp.sendto(ans[0], addr)
                    log.write(f"udp {_peer(addr)} {ans[1]} {ans[2]}")
            else:
                conn, addr = tcp.accept()
                # A thread per connection: a slow or silent TCP client must not stall UDP.
                threading.Thread(target=_dns_tcp, args=(conn, addr, log), daemon=True).start()


def _dns_tcp(conn: socket.socket, addr: Any, log: _Log) -> None:
    with conn:
        conn.settimeout(5)
        try:
            while True:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                msg = _recv_exact(conn, struct.unpack("!H", head)[0])
                if msg is None:
                    return
                ans = dns_answer(msg)
                if ans is None:
                    return
                conn.sendall(struct.pack("!H", len(ans[0])) + ans[0])
                log.write(f"tcp {_peer(addr)} {ans[1]} {ans[2]}")
        except OSError:
            return


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# ---- HTTP (runs in the server namespace) ------------------------------------


class _LabHTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    # socketserver's default backlog of 5 would turn a modest burst of
    # benign connections into SYN retries; a small real server has more.
    request_queue_size = 128

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


# Control characters as \xNN, so a hostile request line stays one log line.
_CONTROL = str.maketrans({c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))})


class _Handler(SimpleHTTPRequestHandler):
    log: _Log

    def log_message(self, format: str, *args: Any) -> None:
        msg = (format % args).translate(_CONTROL)
        self.log.write(f"{_peer(self.client_address)} {msg}")


def serve_http(root: Path, log_path: Path, port: int = HTTP_PORT) -> None:
    """Serve ``root`` over HTTP/1.0 on all addresses, forever."""
    handler = type("Handler", (_Handler,), {"log": _Log(log_path)})
    server = _LabHTTPServer(("::", port), functools.partial(handler, directory=str(root)))
    server.serve_forever()


# ---- control from the host side ----------------------------------------------


@dataclass
class Services:
    """Running services of one lab (see :func:`start_services`)."""

    lab: Lab
    workdir: Path
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def www(self) -> Path:
        return self.workdir / "www"

    @property
    def bulk_bytes(self) -> int:
        return (self.www / BULK_FILE).stat().st_size


def http_log(lab: Lab) -> Path:
    return lab.workdir / "http.log"


def dns_log(lab: Lab) -> Path:
    return lab.workdir / "dns.log"


def _module_env() -> dict[str, str]:
    # The subprocesses must import the same inline_ips as the caller.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _make_webroot(www: Path, bulk_bytes: int) -> None:
    www.mkdir()
    (www / "index.html").write_bytes(INDEX_HTML)
    # Incompressible-looking but cheap: one random MiB repeated.
    block = os.urandom(1024 * 1024)
    with open(www / BULK_FILE, "wb") as f:
        left = bulk_bytes
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def _listening(lab: Lab) -> set[str]:
    """'tcp/80', 'udp/53', ... for the sockets listening in the server namespace."""
    out: set[str] = set()
    for proto, flag in (("tcp", "-ltnH"), ("udp", "-lunH")):
        cp = exec_in(lab, "server", ["ss", flag], timeout=10)
        for line in cp.stdout.splitlines():
            cols = line.split()
            if len(cols) >= 4:
                out.add(f"{proto}/{cols[3].rsplit(':', 1)[-1]}")
    return out


def start_services(
    lab: Lab, *, http: bool = True, dns: bool = True, iperf: bool = True, bulk_bytes: int = BULK_BYTES
) -> Services:
    """Start the server's services and counters; returns once all are listening.

    Raises RuntimeError (after stopping what did start) if one does not come up.
    """
    workdir = lab.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o700)  # fails if someone recreated it meanwhile: good
    svc = Services(lab, workdir)
    try:
        _make_webroot(svc.www, bulk_bytes)
        http_log(lab).touch()
        dns_log(lab).touch()
        install_counters(lab)
        py = [sys.executable, "-m", "inline_ips.lab.services"]
        wanted: list[str] = []
        if http:
            svc.procs["http"] = _spawn(
                lab, "http", [*py, "http", "--root", str(svc.www), "--log", str(http_log(lab))]
            )
            wanted.append(f"tcp/{HTTP_PORT}")
        if dns:
            svc.procs["dns"] = _spawn(lab, "dns", [*py, "dns", "--log", str(dns_log(lab))])
            wanted += [f"udp/{DNS_PORT}", f"tcp/{DNS_PORT}"]
        if iperf:
            svc.procs["iperf3"] = _spawn(lab, "iperf3", ["iperf3", "-s", "-p", str(IPERF_PORT)])
            wanted.append(f"tcp/{IPERF_PORT}")

        def ready() -> bool:
            for name, p in svc.procs.items():
                if p.poll() is not None:
                    err = (workdir / f"{name}.err").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"lab service {name} exited with {p.returncode}: {err}")
            return set(wanted) <= _listening(lab)

        if not wait_for(ready, timeout=15):
            raise RuntimeError(f"lab services not listening after 15 s: wanted {sorted(wanted)}")
    except BaseException:
        stop_services(svc)
        raise
    return svc


def _spawn(lab: Lab, name: str, argv: list[str]) -> subprocess.Popen[str]:
    with open(lab.workdir / f"{name}.err", "w", encoding="utf-8") as err:
        return popen_in(
            lab,
            "server",
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_module_env(),
        )


def stop_services(svc: Services) -> None:
    """Stop the services (logs and counters stay readable until the lab goes down)."""
    for p in svc.procs.values():
        if p.poll() is None:
            p.terminate()
    for p in svc.procs.values():
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    svc.procs.clear()


@contextmanager
def running_services(lab: Lab, **kw: Any) -> Iterator[Services]:
    """Start the services for the ``with`` block; always stop them."""
    svc = start_services(lab, **kw)
    try:
        yield svc
    finally:
        stop_services(svc)


def _iptables(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # -w: the legacy lock file (/run/xtables.lock) is shared by all namespaces,
    # so wait for it rather than fail when another test holds it.
    return exec_in(lab, "server", ["iptables-legacy", "-w", "5", *args], check=check, timeout=30)


def install_counters(lab: Lab) -> None:
    """(Re)create the counting chain in the server namespace, all counters at zero."""
    _iptables(lab, "-D", "INPUT", "-j", COUNT_CHAIN, check=False)
    _iptables(lab, "-F", COUNT_CHAIN, check=False)
    _iptables(lab, "-X", COUNT_CHAIN, check=False)
    _iptables(lab, "-N", COUNT_CHAIN)
    for name, match in _COUNTER_RULES:
        _iptables(lab, "-A", COUNT_CHAIN, *match, "-m", "comment", "--comment", name)
    _iptables(lab, "-I", "INPUT", "1", "-j", COUNT_CHAIN)


def reset_counters(lab: Lab) -> None:
    """Zero the packet counters and empty the service logs."""
    _iptables(lab, "-Z", COUNT_CHAIN)
    for log in (http_log(lab), dns_log(lab)):
        if log.exists():
            # The services opened their logs in append mode, so they go on
            # writing at the new end.
            log.write_text("")


def parse_counter_table(text: str) -> dict[str, int]:
    """``iptables -L CHAIN -v -x -n`` output to {name: packets, name_bytes: bytes}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _COMMENT_RE.search(line)
        cols = line.split()
        if m and len(cols) >= 2 and cols[0].isdigit() and cols[1].isdigit():
            out[m.group(1)] = int(cols[0])
            out[f"{m.group(1)}_bytes"] = int(cols[1])
    return out


def parse_http_log(text: str) -> dict[str, int]:
    """Requests, and those carrying SQL injection or path traversal, in an http.log."""
    requests = sqli = traversal = 0
    for line in text.splitlines():
        m = _REQUEST_RE.search(line)
        if not m:
            continue
        requests += 1
        target = unquote_plus(m.group(2))
        sqli += bool(_SQLI_RE.search(target))
        traversal += bool(_TRAVERSAL_RE.search(target))
    return {"http_requests": requests, "http_sqli": sqli, "http_traversal": traversal}


def server_counters(lab: Lab) -> dict[str, int]:
    """What reached the server since the counters were installed or reset.

    Packets (and ``*_bytes``) per class: ``tcp_syn_80``, ``tcp_syn_other``,
    ``icmp_echo``, ``udp_to_53``, ``udp_from_53``, ``from_attacker``,
    ``from_client``, ``total``; from the logs: ``http_requests``,
    ``http_sqli``, ``http_traversal``, ``dns_queries``.
    """
    cp = _iptables(lab, "-L", COUNT_CHAIN, "-v", "-x", "-n", check=False)
    if cp.returncode != 0:
        install_counters(lab)
        cp = _iptables(lab, "-L", COUNT_CHAIN, "-v", "-x", "-n")
    out = parse_counter_table(cp.stdout)
    text = http_log(lab).read_text(errors="replace") if http_log(lab).exists() else ""
    out.update(parse_http_log(text))
    dns = dns_log(lab).read_text(errors="replace") if dns_log(lab).exists() else ""
    out["dns_queries"] = sum(1 for line in dns.splitlines() if line.strip())
    return out


def counters_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """after - before for every key of ``after``."""
    return {k: v - before.get(k, 0) for k, v in after.items()}


# ---- entry point for the subprocesses ----------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inline_ips.lab.services", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("http", help="serve a directory over HTTP, logging request lines")
    h.add_argument("--root", type=Path, required=True)
    h.add_argument("--log", type=Path, required=True)
    h.add_argument("--port", type=int, default=HTTP_PORT)
    d = sub.add_parser("dns", help=f"answer A/AAAA for *.{DNS_ZONE} on UDP and TCP")
    d.add_argument("--log", type=Path, required=True)
    d.add_argument("--port", type=int, default=DNS_PORT)
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.cmd == "http":
            serve_http(args.root, args.log, args.port)
        else:
            serve_dns(args.log, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
