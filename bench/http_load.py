"""Many short HTTP connections: one new TCP connection per GET, as fast as the server answers.

What it measures: ``--workers`` threads each loop for ``--seconds``:
open a TCP connection to one of the ``--host`` addresses, port ``--port``,
from one of the ``--sources`` addresses (both taken round robin over all
connections of all workers), send one ``GET --path HTTP/1.0`` request, read
the answer to its end (the server closes), check the status line says 200,
close. It prints one JSON line: completed connections, failures by reason
(``connect``, ``timeout``, ``reset``, ``status``), the measured seconds,
connections per second, and p50/p99 of the time per connection in
milliseconds.

Why several addresses: the default rules block a source opening more than
500 connections a second to one host, and drop SYNs beyond 2000 a second to
one host (SYN floods). Spread over many clients and a few server addresses,
the same rate is what a busy site sees, and no rule fires.

What it does not do: keep-alive, HTTPS, pipelining, or pace itself: it is a
closed loop, so it measures how fast the lab's server and the path to it
complete connections, not a fixed offered load. Threads share one
interpreter, but each spends its time in system calls, where the lock is released.

Run: ``python -m bench.http_load --host 10.77.3.80 --seconds 5`` (in the client's namespace);
``--host A,B --sources C,D,E`` to spread the connections.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bench.udp_latency import percentile

DEFAULT_WORKERS = 4
TIMEOUT = 3.0  # more than one SYN retransmission (1 s), so a dropped SYN shows as slow, not failed


@dataclass
class Tally:
    """What one worker did; merged at the end."""

    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    times_ns: list[int] = field(default_factory=list)


def one_get(host: str, port: int, request: bytes, source: str | None, timeout: float) -> str:
    """One connection, one GET: "" on success, else the failure's reason."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            if source:
                s.bind((source, 0))
            try:
                s.connect((host, port))
            except TimeoutError:
                return "timeout"
            except OSError:
                return "connect"
            s.sendall(request)
            chunks: list[bytes] = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except OSError:
        return "connect"
    head = b"".join(chunks)[:32]
    return "" if head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")) else "status"


def worker(
    pairs: Sequence[tuple[str, str | None, bytes]],
    turn: Iterator[int],
    port: int,
    deadline: float,
    timeout: float,
    tally: Tally,
) -> None:
    clock = time.monotonic_ns
    end_ns = int(deadline * 1e9)
    n = len(pairs)
    while True:
        t0 = clock()
        if t0 >= end_ns:
            return
        # next() on an itertools.count is atomic under the GIL: one shared rotation for all workers.
        host, source, request = pairs[next(turn) % n]
        why = one_get(host, port, request, source, timeout)
        if why:
            tally.failures[why] += 1
        else:
            tally.ok += 1
            tally.times_ns.append(clock() - t0)


def rotation(hosts: Sequence[str], sources: Sequence[str]) -> list[tuple[str, str | None]]:
    """The (host, source) pairs connections take in turn: every source, each with every host.

    With n sources and m hosts the list has n * m pairs, each once, ordered so
    that consecutive connections change source *and* host: each source, each
    host and each pair gets an equal share of the connections.
    """
    if not hosts:
        raise ValueError("at least one host")
    srcs: Sequence[str | None] = list(sources) or [None]
    n, m = len(srcs), len(hosts)
    return [(hosts[(s + k) % m], srcs[s]) for k in range(m) for s in range(n)]


def run(
    hosts: Sequence[str],
    port: int,
    path: str,
    seconds: float,
    workers: int,
    sources: Sequence[str] = (),
    timeout: float = TIMEOUT,
) -> dict[str, object]:
    """Run the closed loop and return the summary printed by :func:`main`."""
    if workers < 1 or seconds <= 0:
        raise ValueError("workers and seconds must be positive")
    pairs = [
        (h, s, f"GET {path} HTTP/1.0\r\nHost: {h}\r\nUser-Agent: inline-ips-bench\r\n\r\n".encode())
        for h, s in rotation(hosts, sources)
    ]
    turn = itertools.count()
    tallies = [Tally() for _ in range(workers)]
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(target=worker, args=(pairs, turn, port, deadline, timeout, t), daemon=True)
        for t in tallies
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - start
    ok = sum(t.ok for t in tallies)
    failures: Counter[str] = Counter()
    times: list[int] = []
    for t in tallies:
        failures.update(t.failures)
        times += t.times_ns
    return {
        "connections": ok,
        "failures": sum(failures.values()),
        "failure_reasons": dict(failures),
        "seconds": elapsed,
        "per_second": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(times, 50) / 1e6 if times else None,
        "p99_ms": percentile(times, 99) / 1e6 if times else None,
        "workers": workers,
        "hosts": list(hosts),
        "sources": list(sources),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__.split("\n")[0])
    ap.add_argument("--host", required=True, help="the HTTP server's address(es), comma-separated")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="threads (default 4)")
    ap.add_argument(
        "--sources", default="", help="comma-separated local addresses, one per worker in turn (default: any)"
    )
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help=f"per connection (default {TIMEOUT:g} s)")
    args = ap.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    hosts = [h for h in args.host.split(",") if h]
    print(json.dumps(run(hosts, args.port, args.path, args.seconds, args.workers, sources, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
