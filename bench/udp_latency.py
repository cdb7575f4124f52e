"""One-way delay of paced UDP datagrams between two lab namespaces.

What it measures: a ``send`` process paces datagrams at ``--rate`` per second
for ``--seconds``, each carrying its sequence number and the sender's clocks
(``time.time_ns()`` and ``time.monotonic_ns()``, read just before
``send``); a ``recv`` process records, per datagram, the kernel's receive
timestamp (``SO_TIMESTAMPNS``, taken when the datagram enters the
receiver's network stack) minus the sender's wall clock, and prints one JSON
line with the count, the loss and p50/p99/max of those delays in
microseconds. Network namespaces share the host's clocks, so the two
processes' readings are directly comparable. The kernel timestamp keeps the
receiving process's own scheduling delay out of the figure (what is left:
the sender's stack, the router, the receiver's stack up to its socket);
``app_*`` gives the delay measured at ``recvmsg`` return
(``monotonic_ns``) too, for comparison.

Pacing: datagram *i* is due at start + *i* / rate; the sender sends every
datagram that is due, then sleeps until the next one is (with a 1 ns timer
slack), so at tens of thousands per second it sends short bursts of a few
datagrams. It never sends more than ``MAX_BURST`` (8) at once: when more are
due it has fallen behind (a stall, or a rate faster than Python sends), and
it starts the schedule afresh from "now" instead of catching up with a
burst that would queue at the router and count as the router's latency; the
``achieved_rate`` it reports says what rate it really held. The first
``--warmup`` seconds of datagrams are left out of the percentiles (ARP, the
IPS's first packet of the flow).

What it does not do: measure round trips, correct for clock changes made
while it runs (``CLOCK_REALTIME`` stepped by NTP would show as a jump; slewing
is harmless over seconds), or reorder-aware loss (loss is sent minus received).

Run: ``python -m bench.udp_latency recv --port 9000 --seconds 12`` in one
namespace, then ``python -m bench.udp_latency send --dst ADDR --port 9000
--rate 30000 --seconds 10`` in another.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from types import FrameType

# seq, sent wall clock ns, sent monotonic ns; padded to PAYLOAD_BYTES.
HEADER = struct.Struct("!QQQ")
END = b"END!"  # then !Q: how many datagrams were sent
PAYLOAD_BYTES = 36  # 20 (IP) + 8 (UDP) + 36 = a 64-byte IP datagram, like the flood
MAX_BURST = 8  # more due at once means the sender fell behind: start afresh, do not flood
DEFAULT_PORT = 9000
IDLE_SECONDS = 2.0  # after the first datagram: this long without one means the sender has finished
_PR_SET_TIMERSLACK = 29
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, interpolating linearly between ranks.

    The same definition as numpy's default: rank (n - 1) * q / 100 into the
    sorted values. ``values`` need not be sorted; empty gives NaN.
    """
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    s = sorted(values)
    rank = (len(s) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)


def summarize(delays_ns: Sequence[int]) -> dict[str, float]:
    """p50, p99, max and mean of delays in nanoseconds, as microseconds (NaN when empty)."""
    if not delays_ns:
        return {"p50_us": math.nan, "p99_us": math.nan, "max_us": math.nan, "mean_us": math.nan}
    s = sorted(delays_ns)
    return {
        "p50_us": percentile(s, 50) / 1000,
        "p99_us": percentile(s, 99) / 1000,
        "max_us": s[-1] / 1000,
        "mean_us": sum(s) / len(s) / 1000,
    }


def low_timer_slack() -> None:
    """Ask for 1 ns of timer slack (default 50 µs), so short sleeps end when asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def send(dst: str, port: int, rate: float, seconds: float, src: str | None = None) -> dict[str, float]:
    """Pace datagrams to dst:port; returns what was sent and the rate held."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    low_timer_slack()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src:
        sock.bind((src, 0))
    sock.connect((dst, port))
    pad = b"\0" * (PAYLOAD_BYTES - HEADER.size)
    pack = HEADER.pack
    wall = time.time_ns
    mono = time.monotonic_ns
    interval_ns = 1e9 / rate
    sent = restarts = bursts = 0
    start = base = mono()
    stop = start + int(seconds * 1e9)
    base_seq = 0
    while True:
        now = mono()
        if now >= stop:
            break
        due = base_seq + int((now - base) / interval_ns) + 1
        n = due - sent
        if n > MAX_BURST:
            # A stall (preemption): restart the schedule rather than flood to catch up.
            restarts += 1
            base, base_seq, n = now, sent, 1
        if n > 0:
            bursts += 1
            for _ in range(n):
                # Not contextlib.suppress: a context manager per datagram costs pacing accuracy.
                try:  # noqa: SIM105
                    sock.send(pack(sent, wall(), mono()) + pad)
                except OSError:
                    pass  # ENOBUFS/ECONNREFUSED: a lost datagram, counted as loss by the receiver
                sent += 1
        next_due = base + (sent - base_seq) * interval_ns
        wait = next_due - mono()
        if wait > 0:
            time.sleep(wait / 1e9)
    elapsed = (mono() - start) / 1e9
    for _ in range(5):
        # The receiver stops at the first END it sees; several, in case one is lost.
        try:
            sock.send(END + struct.pack("!Q", sent))
        except OSError:
            break  # ECONNREFUSED: the receiver got one and closed its socket
        time.sleep(0.02)
    sock.close()
    return {
        "sent": sent,
        "seconds": elapsed,
        "rate": rate,
        "achieved_rate": sent / elapsed if elapsed > 0 else 0.0,
        "mean_burst": sent / bursts if bursts else 0.0,
        "schedule_restarts": restarts,
    }


class _StopError(Exception):
    """SIGTERM: stop receiving and report what arrived."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _StopError


def receive(
    port: int, seconds: float, warmup: float, bind: str = "0.0.0.0", idle: float = IDLE_SECONDS
) -> dict[str, float]:
    """Collect datagrams until END arrives, ``idle`` seconds pass without one, ``seconds`` pass or SIGTERM.

    Returns the delay summary; ``sent`` is -1 (and the loss unknown) when END never came.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.bind((bind, port))
    sock.settimeout(0.5)
    print(json.dumps({"ready": True}), flush=True)
    kernel: list[int] = []
    app: list[int] = []
    received = 0
    no_kernel_stamp = 0
    sent_total = -1
    first_wall: int | None = None
    warm_ns = int(warmup * 1e9)
    deadline = time.monotonic() + seconds
    last = 0.0
    unpack = HEADER.unpack_from
    mono = time.monotonic_ns
    cmsg_space = socket.CMSG_SPACE(_TIMESPEC.size)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while time.monotonic() < deadline:
            try:
                data, anc, _, _ = sock.recvmsg(256, cmsg_space)
            except TimeoutError:
                if last and time.monotonic() - last > idle:
                    break  # the sender is done and its END was lost
                continue
            t_app = mono()
            last = t_app / 1e9
            if data.startswith(END):
                sent_total = struct.unpack_from("!Q", data, len(END))[0]
                break
            if len(data) < HEADER.size:
                continue
            received += 1
            _, t_wall, t_mono = unpack(data)
            if first_wall is None:
                first_wall = t_wall
            if t_wall - first_wall < warm_ns:
                continue
            stamp = next(
                (c for lvl, typ, c in anc if lvl == socket.SOL_SOCKET and typ == _SO_TIMESTAMPNS),
                None,
            )
            if stamp is not None and len(stamp) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(stamp)
                kernel.append(sec * 1_000_000_000 + nsec - t_wall)
            else:
                no_kernel_stamp += 1
            app.append(t_app - t_mono)
    except _StopError:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sock.close()
    out: dict[str, float] = {"received": received, "sent": sent_total, "measured": len(kernel)}
    out["lost"] = max(sent_total - received, 0) if sent_total >= 0 else math.nan
    out["loss_percent"] = 100 * out["lost"] / sent_total if sent_total > 0 else math.nan
    out.update(summarize(kernel))
    out.update({f"app_{k}": v for k, v in summarize(app).items()})
    out["no_kernel_timestamp"] = no_kernel_stamp
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.udp_latency", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send", help="pace datagrams carrying their send time")
    s.add_argument("--dst", required=True)
    s.add_argument("--src", help="source address to bind (default: the route's)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--rate", type=float, required=True, help="datagrams per second")
    s.add_argument("--seconds", type=float, default=5.0)
    r = sub.add_parser("recv", help="print the one-way delays of what arrives, as JSON")
    r.add_argument("--port", type=int, default=DEFAULT_PORT)
    r.add_argument("--bind", default="0.0.0.0")
    r.add_argument("--seconds", type=float, default=20.0, help="give up after this long (default 20)")
    r.add_argument("--warmup", type=float, default=0.2, help="seconds of datagrams left out (default 0.2)")
    args = ap.parse_args(argv)
    if args.mode == "send":
        result = send(args.dst, args.port, args.rate, args.seconds, args.src)
    else:
        result = receive(args.port, args.seconds, args.warmup, args.bind)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
