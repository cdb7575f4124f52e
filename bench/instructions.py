"""Instructions per judged packet, counted by callgrind: the one figure that repeats between runs.

Wall time on a small shared VM moves by 10-40% between processes, which
hides a 5% change. ``valgrind --tool=callgrind`` counts the instructions a
process executes instead, and for the same interpreter, inputs and
``PYTHONHASHSEED`` the count repeats to within about 0.1% whatever else the
machine is doing. This benchmark counts, per packet, what a live worker
spends on the verdict path:
``inline_ips.runner.Worker.handle(raw, ts)`` (decode, flow, detect, verdict,
telemetry; no EVE file, no metrics server) on workloads like the lab's:

* ``udp64``: the lab's UDP flood, 64-byte datagrams from two client
  addresses to one server port each, 50,000 a second in all;
* ``tcp``: one established TCP stream, 1400-byte segments to the server and
  an ACK back for every second one (the lab's TCP bulk load, judged in full);
* ``mix``: engine_bench's benign mix (HTTP, TLS, DNS, ICMP, UDP sessions).

Flow bypass is off (``--bypass-after 0``), so every packet is judged, as in
the lab rows the targets are about. Each workload runs with the default
``rules.yaml`` and, with ``--et DIR``, also with every loadable rule of
Emerging Threats Open added.

How: the parent builds the packets (with Scapy, outside any count) and
starts one child per row under callgrind with collection off. The child
loads the rules, builds a Worker, judges a warm-up half of the packets (so
flows exist and the interpreter has specialised its bytecode), then judges
the measured half inside one ``eval()``. ``--toggle-collect=builtin_eval``
counts only inside eval() calls, and ``--dump-after=builtin_eval`` writes each
call's count to a file of its own: imports call eval() too (``namedtuple``
does, about 9 million instructions' worth here), so only the last file, the
measured loop's, is read. Instructions per packet = that count ÷ measured
packets. The child also reports the verdicts it gave, so a row that was
measuring drops instead of accepts says so.

Does not: measure time, the kernel, NFQUEUE, or output; it needs valgrind
and an interpreter whose ``builtin_eval`` symbol callgrind can see (a
pyenv or python.org build; some distribution builds strip it, and then the
count is 0 and the run says so).

Run: ``.venv/bin/python -m bench.instructions --markdown bench/RESULTS.md``
(``make bench-instructions``; a few minutes, most of it valgrind starting
Python; with ``--et`` add about five minutes per ET row for the rule load).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP

from bench.engine_bench import build_mix, default_et_dir
from bench.results_file import command_line, cpu_model, positive_int, replace_section
from inline_ips.detect.bypass import BypassOptions
from inline_ips.options import EngineOptions
from inline_ips.rules.loader import load_rule_files
from inline_ips.runner import RunOptions, Worker

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "rules.yaml"
HEADING = "## Instructions per packet (callgrind)"
DEFAULT_PACKETS = 4000  # measured; as many again warm up
T0 = 1_763_800_000.0
CLIENTS = ("10.0.1.2", "10.0.1.3")
SERVER = "10.0.2.2"
SEED = 1
# Counting starts and stops at this builtin: the child runs only the measured loop inside eval().
TOGGLE = "builtin_eval"
# A list of the decisions, as the NFQUEUE loop also takes each one (a few instructions a packet).
MEASURED_LOOP = "decisions = [handle(raw, ts) for ts, raw in packets]"

Timed = tuple[float, bytes]


def udp64(count: int) -> list[Timed]:
    # 20 + 8 + 36 = 64 bytes of IP datagram, as iperf3 -u -l 36 sends in the lab.
    pkts = [
        bytes(IP(src=c, dst=SERVER) / UDP(sport=40000 + i, dport=5201 + i) / (b"x" * 36))
        for i, c in enumerate(CLIENTS)
    ]
    return [(T0 + n / 50_000, pkts[n % 2]) for n in range(count)]


def tcp_stream(count: int) -> list[Timed]:
    client, server, cport, sport = CLIENTS[0], SERVER, 40001, 5201
    isn_c, isn_s = 1_000, 9_000
    out: list[Timed] = []
    t = T0

    def add(p: object) -> None:
        nonlocal t
        out.append((t, bytes(p)))  # type: ignore[call-overload]
        t += 1e-5

    add(IP(src=client, dst=server) / TCP(sport=cport, dport=sport, flags="S", seq=isn_c))
    add(IP(src=server, dst=client) / TCP(sport=sport, dport=cport, flags="SA", seq=isn_s, ack=isn_c + 1))
    add(IP(src=client, dst=server) / TCP(sport=cport, dport=sport, flags="A", seq=isn_c + 1, ack=isn_s + 1))
    seq = isn_c + 1
    # 1400 random bytes, like compressed or encrypted data (a byte ramp would hit ET Open's
    # short binary literals, |01 02 03| and the like, in every segment).
    payload = random.Random(SEED).randbytes(1400)
    n = 0
    while len(out) < count:
        add(
            IP(src=client, dst=server)
            / TCP(sport=cport, dport=sport, flags="A", seq=seq, ack=isn_s + 1)
            / payload
        )
        seq += len(payload)
        n += 1
        if n % 2 == 0:
            add(IP(src=server, dst=client) / TCP(sport=sport, dport=cport, flags="A", seq=isn_s + 1, ack=seq))
    return out[:count]


def mix(count: int) -> list[Timed]:
    return build_mix(count).packets


WORKLOADS: dict[str, tuple[str, Callable[[int], list[Timed]]]] = {
    "udp64": ("64-byte UDP, 2 flows (the lab's flood)", udp64),
    "tcp": ("one TCP stream, 1400-byte segments and ACKs", tcp_stream),
    "mix": ("engine_bench's benign mix", mix),
}


# -- the child: runs under callgrind ------------------------------------------


def child(packets_file: Path, rules: Sequence[str]) -> dict[str, object]:
    """Judge the warm-up half, then the measured half inside eval(); the verdicts given, by action."""
    with packets_file.open("rb") as f:
        warm, measured = pickle.load(f)  # the parent wrote it a moment ago
    report = load_rule_files(list(rules))
    opts = RunOptions(
        rules=tuple(rules),
        engine=EngineOptions(bypass=BypassOptions(after_packets=0, after_bytes=0), emulate_blocklist=False),
        metrics=None,
    )
    worker = Worker(0, opts, report)
    handle = worker.handle
    for ts, raw in warm:
        handle(raw, ts)
    scope = {"packets": measured, "handle": handle}
    eval(compile(MEASURED_LOOP, "<measured>", "exec"), scope)
    actions = Counter(d.action.name.lower() for d in scope["decisions"])
    return {"actions": dict(actions), "signatures": len(report.ruleset.signatures)}


# -- the parent ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    rules: str
    packets: int
    instructions: int
    actions: dict[str, int]
    signatures: int
    seconds: float

    @property
    def per_packet(self) -> float:
        return self.instructions / self.packets


def callgrind_total(out_file: Path) -> int:
    """The ``totals:`` (or ``summary:``) line of a callgrind output file: instructions collected."""
    total = None
    for line in out_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
    if total is None:
        raise ValueError(f"{out_file}: no totals: line (not a callgrind output file?)")
    return total


def callgrind_argv(out_file: Path) -> list[str]:
    """valgrind's arguments: count inside eval() only, one output file per eval() call."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt install valgrind; scripts/setup.sh installs it)")
    return [
        valgrind,
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE}",
        f"--dump-after={TOGGLE}",
        f"--callgrind-out-file={out_file}",
    ]


def last_eval_total(out_file: Path) -> int:
    """The count of the last eval() call: the highest-numbered part ``out_file.N`` callgrind wrote."""
    parts = [p for p in out_file.parent.glob(out_file.name + ".*") if p.suffix[1:].isdigit()]
    if not parts:
        raise RuntimeError(
            f"callgrind wrote no per-eval file: {sys.executable} has no {TOGGLE} symbol it can see "
            "(a stripped interpreter); use a pyenv or python.org build"
        )
    return callgrind_total(max(parts, key=lambda p: int(p.suffix[1:])))


def write_packets(workload: str, packets: int, work: Path) -> Path:
    """Build a workload's warm-up and measured halves once, for every rule set's child to read."""
    stream = WORKLOADS[workload][1](2 * packets)
    pkl = work / f"{workload}.pkl"
    with pkl.open("wb") as f:
        pickle.dump((stream[:packets], stream[packets:]), f)
    return pkl


def count(workload: str, rules_name: str, rules: Sequence[str], packets: int, pkl: Path) -> Row:
    slug = f"{workload}.{rules_name.replace(' ', '')}"
    out = pkl.parent / f"callgrind.{slug}.out"
    result = pkl.parent / f"{slug}.json"
    argv = [
        *callgrind_argv(out),
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        str(pkl),
        "--child-out",
        str(result),
        *(f"--rules={r}" for r in rules),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    started = time.monotonic()
    cp = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if cp.returncode != 0:
        raise RuntimeError(
            f"callgrind child for {workload}/{rules_name} exited {cp.returncode}:\n{cp.stderr[-3000:]}"
        )
    total = last_eval_total(out)
    info = json.loads(result.read_text(encoding="utf-8"))
    return Row(
        workload, rules_name, packets, total, info["actions"], info["signatures"], time.monotonic() - started
    )


def markdown(rows: Sequence[Row], argv: Sequence[str]) -> str:
    lines = [
        HEADING,
        "",
        "Produced by `bench/instructions.py` (see its docstring): instructions that",
        "`Worker.handle` executes per judged packet, counted by callgrind; flow bypass off.",
        "The counts repeat to within about 0.1% between runs on one machine and interpreter.",
        "",
        f"- Command: `{command_line('bench.instructions', argv)}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Python: {sys.implementation.name} {'.'.join(map(str, sys.version_info[:3]))}; CPU: {cpu_model()}",
        "",
        "| workload | rules | signatures | measured packets | instructions/packet | verdicts |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r.actions.items()))
        lines.append(
            f"| {WORKLOADS[r.workload][0]} | {r.rules} | {r.signatures:,} | {r.packets:,} "
            f"| {r.per_packet:,.0f} | {verdicts} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    p.add_argument("--packets", type=positive_int, default=DEFAULT_PACKETS, help="measured packets per row")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="only these (repeatable)")
    p.add_argument(
        "--et", type=Path, metavar="DIR", help="ET Open's .rules files (default: the corpus' copy)"
    )
    p.add_argument("--no-et", action="store_true", help="the default rules only")
    p.add_argument("--markdown", type=Path, help="replace this benchmark's section of this file")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--rules", action="append", help=argparse.SUPPRESS)
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child is not None:
        info = child(args.child, args.rules or [str(DEFAULT_RULES)])
        args.child_out.write_text(json.dumps(info), encoding="utf-8")
        return 0
    rule_sets: list[tuple[str, list[str]]] = [("default", [str(DEFAULT_RULES)])]
    et_dir = None if args.no_et else (args.et or default_et_dir())
    if et_dir is not None:
        files = sorted(str(p) for p in et_dir.glob("*.rules"))
        if not files:
            print(f"bench.instructions: no .rules files in {et_dir}", file=sys.stderr)
            return 1
        rule_sets.append(("default + ET Open", [str(DEFAULT_RULES), *files]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="inline-ips-instr-") as tmp:
        for workload in args.workload or list(WORKLOADS):
            pkl = write_packets(workload, args.packets, Path(tmp))
            for name, rules in rule_sets:
                row = count(workload, name, rules, args.packets, pkl)
                rows.append(row)
                print(
                    f"{workload:6} {name:18} {row.per_packet:>9,.0f} instructions/packet  "
                    f"{row.actions}  ({row.seconds:.0f} s)",
                    flush=True,
                )
    if args.json:
        print(json.dumps([{**asdict(r), "per_packet": r.per_packet} for r in rows]))
    if args.markdown is not None:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(old, markdown(rows, argv), HEADING), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
