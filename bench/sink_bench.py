"""What an EVE sink costs the verdict path, and what a hanging webhook costs it.

What it measures: the wall-clock time (``time.perf_counter_ns``, best of N
repetitions) of the verdict path for a stream of attack traffic in which
every fourth packet raises an alert: per packet, ``Engine.process(raw, ts)``
and, for a packet with alerts or a drop, the EVE events the runner builds
(``alert_event`` per alert, ``drop_event`` when blocked) handed to the sink
with ``submit``, exactly as ``inline_ips.runner.Worker`` does for its EVE
file. The configurations, timed over the same packets in the same process:

* engine only: no events built (for reference);
* (a) no sink: the events are built and discarded;
* (b) a webhook whose receiver hangs: a TCP listener on 127.0.0.1 that never
  accepts, so every POST waits for its timeout (5 s), then is retried, then
  backed off; the sink's queue (``--queue``, 10,000 like ``--sink-queue``)
  fills and further events are dropped and counted;
* (c) a webhook whose receiver answers at once (204, in a child process, so
  its work does not share this process' interpreter lock; the sink's own
  thread, which serialises and posts the events, does);
* (d) syslog to a unix datagram socket read by a child process.

The traffic: ``--connections`` TCP connections (5,000) from distinct
outside addresses to ten servers in HOME_NET, each a three-way handshake and
one HTTP GET whose URI carries ``UNION SELECT``, which the default rules
drop (sid 2100001): four packets and one alert plus one drop event per
connection. Only ``alert`` events go to the sinks (their default). Every
repetition gets a fresh engine per configuration, built outside the timed
loop; the sinks live across repetitions (a hanging receiver stays hung).
Within a repetition the configurations take turns every ``SLICE`` packets
(each keeping its own engine), as in ``engine_bench``, so a burst of load
from other processes hits them all alike. After each turn of a working
sink, ``flush`` waits (untimed) until it has sent its queue, so its
thread's work lands in its own row and not in the next configuration's;
the flush time is reported. The cyclic garbage collector is off during the
timed loops (it collects between repetitions): left on, each full collection
lands in whichever configuration happens to trigger it, and four identical
configurations differed by up to 50% in a trial run. What a full queue adds
to the collector's work is reported instead, as the number of objects it
tracks for the events in the hanging webhook's queue.

What it does not measure: NFQUEUE and the kernel, the EVE file, the latency
of the events to their receivers, TLS, a remote receiver, several worker
processes. Absolute figures depend on the machine; compare rows of one run.

Run: ``.venv/bin/python -m bench.sink_bench --markdown bench/RESULTS.md``
"""

from __future__ import annotations

import argparse
import datetime
import gc
import multiprocessing
import os
import platform
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import results_file
from inline_ips.engine import Engine
from inline_ips.lab.synth import TcpConversation
from inline_ips.output.eve import alert_event, drop_event
from inline_ips.output.sinks import DEFAULT_QUEUE_SIZE, AsyncSink, SyslogSink, WebhookSink
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import RuleSet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "rules.yaml"
DEFAULT_CONNECTIONS = 5_000
DEFAULT_REPEAT = 5
DEFAULT_SEED = 1
SECTION = "## EVE sinks: a hanging webhook"
SQLI_SID = 2100001
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
# New connections per second: far below the SYN-rate rules' thresholds.
CONNECTIONS_PER_SECOND = 200
SERVERS = tuple(f"192.168.1.{80 + i}" for i in range(10))
FLUSH_SECONDS = 60.0
# Configurations take turns every SLICE packets (tens of milliseconds each).
SLICE = 500

NAME_ENGINE = "engine only (no events built)"
NAME_NONE = "(a) no sink: events built, not sent"
NAME_HANGING = "(b) webhook, receiver hangs"
NAME_WEBHOOK = "(c) webhook, receiver answers at once"
NAME_SYSLOG = "(d) syslog, unix datagram socket"

Timed = tuple[float, bytes]


# -- traffic --------------------------------------------------------------------------------------


def build_packets(connections: int, seed: int) -> list[Timed]:
    """Handshake plus one SQL-injection GET per connection, each from its own outside address."""
    rng = random.Random(seed)
    out: list[Timed] = []
    used: set[str] = set()
    for i in range(connections):
        while True:
            octets = (
                rng.choice((198, 203)),
                rng.randrange(1, 255),
                rng.randrange(256),
                rng.randrange(1, 255),
            )
            client = ".".join(map(str, octets))
            if client not in used:
                used.add(client)
                break
        conv = TcpConversation(rng, client, rng.randrange(32768, 61000), SERVERS[i % len(SERVERS)], 80)
        t = T0 + i / CONNECTIONS_PER_SECOND
        out += conv.handshake(t, 0.002)
        uri = (
            f"/products.php?id={rng.randrange(1, 999)}%20UNION%20SELECT%20username,password%20FROM%20users--"
        )
        request = f"GET {uri} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: sqlmap/1.8\r\nAccept: */*\r\n\r\n"
        out.append(conv.client_data(t + 0.003, request.encode()))
    return out


# -- receivers (child processes, so their work does not take this interpreter's lock) -------------


class _Answer204(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve_http(server: ThreadingHTTPServer) -> None:
    server.serve_forever()


def _drain_datagrams(sock: socket.socket) -> None:
    while True:
        sock.recv(65536)


@dataclass
class Receivers:
    hanging_url: str
    fast_url: str
    syslog_path: str
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()


def start_receivers() -> Receivers:
    ctx = multiprocessing.get_context("fork")
    # Listens and never accepts: connections complete in the kernel's backlog and
    # every request waits for an answer that never comes.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(128)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer204)
    server.daemon_threads = True
    http_child = ctx.Process(target=_serve_http, args=(server,), daemon=True)
    http_child.start()
    server.socket.close()  # the child serves; this process keeps no copy
    tmp = tempfile.mkdtemp(prefix="iips-bench-", dir="/tmp")
    path = os.path.join(tmp, "log")
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(path)
    syslog_child = ctx.Process(target=_drain_datagrams, args=(dgram,), daemon=True)
    syslog_child.start()
    dgram.close()
    r = Receivers(
        hanging_url=f"http://127.0.0.1:{hanging.getsockname()[1]}/hook",
        fast_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
        syslog_path=path,
    )

    def stop() -> None:
        for child in (http_child, syslog_child):
            child.terminate()
            child.join(5)
        hanging.close()
        Path(path).unlink(missing_ok=True)
        os.rmdir(tmp)

    r._closers.append(stop)
    return r


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    build_events: bool
    sink: AsyncSink | None = None
    flush: bool = False  # wait for the sink to send its queue after every turn
    runs: list[int] = field(default_factory=list)
    flush_ms: list[float] = field(default_factory=list)


def verdict_loop(engine: Engine, packets: Sequence[Timed], build_events: bool, sink: AsyncSink | None) -> int:
    """The runner's verdict path for every packet; returns the nanoseconds it took."""
    submit = sink.submit if sink is not None else None
    started = time.perf_counter_ns()
    for ts, raw in packets:
        res = engine.process(raw, ts)
        v = res.verdict
        if build_events and (res.alerts or v.action.blocks):
            blocked = v.action.blocks
            for a in res.alerts:
                ev = alert_event(res.packet, res.flow_id, res.to_server, a, blocked, res.app_proto)
                if submit is not None:
                    submit(ev)
            if blocked:
                ev = drop_event(res.packet, res.flow_id, v)
                if submit is not None:
                    submit(ev)
    return time.perf_counter_ns() - started


def check_alerts(ruleset: RuleSet, packets: Sequence[Timed]) -> tuple[int, int, int]:
    """(alerts, alerts by the SQL-injection rule, packets not accepted) of one untimed pass."""
    engine = Engine(ruleset)
    alerts = sqli = blocked = 0
    for ts, raw in packets:
        res = engine.process(raw, ts)
        alerts += len(res.alerts)
        sqli += sum(a.sid == SQLI_SID for a in res.alerts)
        blocked += res.verdict.action.blocks
    return alerts, sqli, blocked


def time_repetition(configs: Sequence[Config], packets: Sequence[Timed], ruleset: RuleSet) -> None:
    """One repetition: every configuration over all packets with a fresh engine, in turns of SLICE."""
    engines = [Engine(ruleset) for _ in configs]
    slices = [packets[i : i + SLICE] for i in range(0, len(packets), SLICE)]
    spent = [0] * len(configs)
    flushed = [0.0] * len(configs)
    gc.collect()
    gc.disable()
    try:
        for chunk in slices:
            for k, c in enumerate(configs):
                spent[k] += verdict_loop(engines[k], chunk, c.build_events, c.sink)
                if c.flush and c.sink is not None:
                    started = time.perf_counter()
                    if not c.sink.flush(FLUSH_SECONDS):
                        raise RuntimeError(f"{c.name}: the sink did not send its queue in {FLUSH_SECONDS} s")
                    flushed[k] += time.perf_counter() - started
    finally:
        gc.enable()
    for k, c in enumerate(configs):
        c.runs.append(spent[k])
        if c.flush:
            c.flush_ms.append(flushed[k] * 1000)


def submit_cost(sink_factory: Callable[[], AsyncSink], event: dict[str, object], n: int = 100_000) -> float:
    """Nanoseconds per ``submit`` of one event into a sink whose thread is never started."""
    sink = sink_factory()
    started = time.perf_counter_ns()
    for _ in range(n):
        sink.submit(event)
    return (time.perf_counter_ns() - started) / n


# -- report ---------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    best_ns: int
    packets: int
    runs: list[int]
    counters: dict[str, int] | None
    flush_ms: float | None

    @property
    def us_per_packet(self) -> float:
        return self.best_ns / self.packets / 1000

    @property
    def spread(self) -> float:
        return max(self.runs) / min(self.runs) - 1

    @property
    def us_with_flush(self) -> float:
        """Per packet, counting the wait for the sink to catch up too (its work a busy router cannot hide)."""
        return self.us_per_packet + (self.flush_ms or 0.0) * 1000 / self.packets


@dataclass
class Report:
    command: str
    date: str
    python: str
    cpu: str
    cpus: int
    repeat: int
    connections: int
    packets: int
    queue: int
    alerts: int
    sqli_alerts: int
    blocked: int
    rows: list[Row]
    submit_ns: dict[str, float]
    gc_events: int
    gc_objects: int

    def gc_line(self) -> str:
        # CPython does not track dicts that hold only strings and numbers, so most of an event is free.
        return (
            f"the {self.gc_events:,} events left in the hanging webhook's queue at the end were "
            f"{self.gc_objects:,} objects for the garbage collector to track"
        )

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def ratio(self, name: str, base: str = NAME_NONE) -> float:
        return self.row(name).best_ns / self.row(base).best_ns

    def _table(self) -> tuple[list[str], list[list[str]]]:
        headers = ["configuration", "µs/packet", "÷ (a) no sink", "spread", "flush ms", "with flush",
                   "queued", "sent", "dropped (full)", "dropped (error)", "errors"]  # fmt: skip
        rows = []
        for r in self.rows:
            c = r.counters
            cells = [c[k] for k in ("queued", "sent", "dropped_full", "dropped_error", "errors")] if c else []
            rows.append(
                [r.name, f"{r.us_per_packet:.2f}", f"{self.ratio(r.name):.3f}", f"{r.spread:.0%}"]
                + ([f"{r.flush_ms:.0f}", f"{r.us_with_flush:.2f}"] if r.flush_ms is not None else ["-", "-"])
                + ([f"{v:,}" for v in cells] if cells else ["-"] * 5)
            )
        return headers, rows

    def text(self) -> str:
        headers, rows = self._table()
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines = [
            "  ".join(
                h.ljust(w) if i == 0 else h.rjust(w)
                for i, (h, w) in enumerate(zip(headers, widths, strict=True))
            )
        ]
        lines += [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines += [
            "",
            f"{self.packets} packets per repetition ({self.connections} connections), "
            f"{self.alerts} alerts ({self.sqli_alerts} by sid {SQLI_SID}), {self.blocked} packets blocked; "
            f"best of {self.repeat}; sink queue {self.queue:,}.",
            f"hanging webhook ÷ no sink: {self.ratio(NAME_HANGING):.3f}",
            "submit() alone: " + ", ".join(f"{k} {v:.0f} ns" for k, v in self.submit_ns.items()),
            self.gc_line(),
        ]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        headers, rows = self._table()
        align = ["---"] + ["---:"] * (len(headers) - 1)
        table = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
        table += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(
            [
                SECTION,
                "",
                "Produced by `bench/sink_bench.py` (see `bench/README.md`): the verdict path "
                "(`Engine.process` plus building the EVE events and `submit`ting the alerts to a sink) "
                "on attack traffic where every fourth packet is an SQL-injection request the default "
                "rules drop. Only the ratios between rows of this run are meaningful.",
                "",
                f"- Command: `{self.command}`",
                f"- Date: {self.date}",
                f"- Python: {self.python}",
                f"- CPU: {self.cpu} ({self.cpus} logical CPUs; the verdict loop uses one, the receivers "
                "run in child processes)",
                f"- Timing: `time.perf_counter_ns`, best of {self.repeat} repetitions of {self.packets} "
                f"packets ({self.connections} connections, {self.alerts} alerts, {self.blocked} packets "
                f"blocked); a fresh engine per configuration and repetition; turns of {SLICE} packets; "
                "garbage collector off while timing",
                f"- Sink queue: {self.queue:,} events; the webhooks batch up to 50 events or 1 s "
                "and time out after 5 s (the defaults)",
                "",
                *table,
                "",
                f"**A hanging webhook costs the verdict path {self.ratio(NAME_HANGING):.3f} times the time "
                "without a sink** ((b) ÷ (a)): its thread sits in a socket wait, and each alert costs one "
                "`submit`, an append to the queue or, once the queue is full, a counted drop. The working "
                "sinks (c) and (d) cost more than the hanging one: their threads serialise and send the "
                "events in this process, under the same interpreter lock as the verdict loop.",
                "",
                "- `submit()` alone, into a sink whose thread is not running: "
                + ", ".join(f"{k} {v:.0f} ns" for k, v in self.submit_ns.items())
                + ".",
                f"- Memory: {self.gc_line()}.",
                "- `flush ms`: in the fastest repetition, the time spent after the working sinks' turns "
                "waiting until they had sent their queues (not in `µs/packet`). `with flush`: µs/packet "
                "counting that wait too; under sustained load the sink's thread does that work while "
                "packets wait, so a working sink's real cost lies between the two figures.",
                "- The counters are the sinks' over the whole run (all repetitions); the hanging webhook's "
                "`dropped (error)` includes what `close()` gave up at the end.",
                "- `spread`: how much slower the slowest repetition was than the fastest.",
                "",
            ]
        )


def replace_section(text: str, section: str, heading: str = SECTION) -> str:
    """``text`` with this benchmark's section replaced (or appended); the rest is kept byte for byte."""
    return results_file.replace_section(text, section, heading)


# -- running --------------------------------------------------------------------------------------


def run(args: argparse.Namespace, argv: Sequence[str]) -> Report:
    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    say(f"building {args.connections} connections with Scapy (seed {args.seed}) ...")
    packets = build_packets(args.connections, args.seed)
    ruleset = load_rule_files([str(args.rules)], {}).ruleset
    alerts, sqli, blocked = check_alerts(ruleset, packets)
    if sqli != args.connections:
        say(f"warning: {sqli} of {args.connections} requests raised sid {SQLI_SID}")
    receivers = start_receivers()
    try:
        hanging = WebhookSink(receivers.hanging_url, queue_size=args.queue)
        webhook = WebhookSink(receivers.fast_url, queue_size=args.queue)
        syslog = SyslogSink(receivers.syslog_path, queue_size=args.queue)
        configs = [
            Config(NAME_ENGINE, build_events=False),
            Config(NAME_NONE, build_events=True),
            Config(NAME_HANGING, build_events=True, sink=hanging),
            Config(NAME_WEBHOOK, build_events=True, sink=webhook, flush=True),
            Config(NAME_SYSLOG, build_events=True, sink=syslog, flush=True),
        ]
        for c in configs:
            if c.sink is not None:
                c.sink.start()
        event = _first_alert_event(ruleset, packets)
        submit_ns = {
            "accepted": submit_cost(lambda: WebhookSink(receivers.hanging_url, queue_size=10**7), event),
            "queue full": submit_cost(lambda: WebhookSink(receivers.hanging_url, queue_size=1), event),
            "event type filtered out": submit_cost(
                lambda: WebhookSink(receivers.hanging_url, event_types={"drop"}), event
            ),
        }
        for rep in range(args.repeat):
            say(
                f"repetition {rep + 1} of {args.repeat}: {len(configs)} configurations x "
                f"{len(packets)} packets, in turns of {SLICE}"
            )
            time_repetition(configs, packets, ruleset)
        if not hanging.counters()["dropped_full"]:
            say("warning: the hanging webhook's queue never filled (raise --connections or lower --queue)")
        gc.collect()
        gc_objects = len(gc.get_objects())
        gc_events = hanging.pending
        hanging.close(0.5)
        gc.collect()
        gc_objects -= len(gc.get_objects())
        rows = [
            Row(
                c.name,
                min(c.runs),
                len(packets),
                c.runs,
                c.sink.counters() if c.sink is not None else None,
                c.flush_ms[c.runs.index(min(c.runs))] if c.flush_ms else None,
            )
            for c in configs
        ]
        for c in configs:
            if c.sink is not None:
                c.sink.close(5.0)
    finally:
        receivers.close()
    return Report(
        command=results_file.command_line("bench.sink_bench", argv),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        cpu=results_file.cpu_model(),
        cpus=os.cpu_count() or 1,
        repeat=args.repeat,
        connections=args.connections,
        packets=len(packets),
        queue=args.queue,
        alerts=alerts,
        sqli_alerts=sqli,
        blocked=blocked,
        rows=rows,
        submit_ns=submit_ns,
        gc_events=gc_events,
        gc_objects=gc_objects,
    )


def _first_alert_event(ruleset: RuleSet, packets: Sequence[Timed]) -> dict[str, object]:
    engine = Engine(ruleset)
    for ts, raw in packets:
        res = engine.process(raw, ts)
        if res.alerts:
            return alert_event(res.packet, res.flow_id, res.to_server, res.alerts[0], True, res.app_proto)
    raise SystemExit("no packet raised an alert: the rules do not match the benchmark's traffic")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.sink_bench",
        description="Microseconds per packet on the verdict path: no EVE sink, a hanging webhook, "
        "working sinks.",
    )
    p.add_argument(
        "--connections",
        type=results_file.positive_int,
        default=DEFAULT_CONNECTIONS,
        help=f"attack connections, four packets and one alert each (default {DEFAULT_CONNECTIONS})",
    )
    p.add_argument(
        "--repeat",
        type=results_file.positive_int,
        default=DEFAULT_REPEAT,
        help=f"timed repetitions; the best counts (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--queue",
        type=results_file.positive_int,
        default=DEFAULT_QUEUE_SIZE,
        help=f"events each sink may hold (default {DEFAULT_QUEUE_SIZE}, as --sink-queue)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the traffic")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="the rules (default rules.yaml)")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help=f"write the results as the section '{SECTION[3:]}' of FILE (other sections are kept)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p.parse_args(argv)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report = run(args, argv)
    print(report.text(), end="")
    if args.markdown is not None:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(old, report.markdown()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
