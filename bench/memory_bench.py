"""Resident memory under a spoofed-source flood: the RSS curve, the caps, the evictions.

What it does: builds, in process and with ``struct`` (no Scapy per packet), a
flood of ``--packets`` packets (1,000,000 by default), each from its own
source address and so each its own flow, and feeds it through the real
:class:`~inline_ips.engine.Engine` with the default ``rules.yaml`` (and, as a
second curve, the default rules plus every loadable Emerging Threats Open
rule from the corpus, when it is beside the project). The packets take turns
over kinds chosen to fill every bounded structure:

* IPv4 and IPv6 TCP SYNs to HOME_NET web and SSH ports (flows, the SYN
  rate rules' ``dst`` and ``src+dst`` keys, the port-scan rules' keys);
* IPv4 TCP segments with 1,200 bytes of payload, picked up mid-stream
  (a stream window per flow);
* HTTP request heads cut off before their end, and POSTs whose body has just
  begun (held HTTP heads and bodies: the app-layer memcap);
* TLS ClientHello records whose handshake message is longer than the
  segment (a handshake message being collected);
* IPv4 and IPv6 UDP to port 53 and to high ports (rate keys, DNS parsing);
* IPv4 and IPv6 first fragments that never complete (fragment reassembly).

Time advances 10 µs per packet (100,000 packets a second), so over a
million packets nothing is old enough to expire by timeout: every cap is
reached by volume and every table evicts. Each configuration runs in its own
child process (so one curve's freed memory does not flatter the next) and
samples ``VmRSS`` from ``/proc/self/status`` every ``--every`` packets. At
the end it reads each table's size, cap and evictions (the same
:func:`~inline_ips.telemetry.table_stats` that telemetry exports) and the
app memcap's peak. The collector is set up as ``inline-ips run`` sets it
(:mod:`inline_ips.gcpolicy`), so the figures are a worker's.

The documented bound is worked out, not fitted: the RSS of the engine with
its rules loaded before any packet, plus for each table its cap times the
worst-case size of one entry (a flow with both stream windows full and its
per-flow caches, a rate key with its distinct set at the rule's threshold, a
threshold entry, a fragment datagram at 64 KiB, a blocklist entry), plus
twice the app memcap (held bytes and an inspection copy). Entry sizes are
measured here with ``sys.getsizeof`` over each object graph. The run fails
(exit 1) if any sample exceeds the bound.

Does not: measure speed (see engine_bench), the kernel's memory (conntrack,
ipset), or output (EVE, sinks). RSS includes the interpreter and the rule
set, which is why the bound starts from the loaded engine's RSS.

Run: ``.venv/bin/python -m bench.memory_bench --markdown bench/RESULTS.md``
(``make bench-memory``; about 3 minutes with ET Open on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.results_file import command_line, cpu_model, positive_int, replace_section
from inline_ips import gcpolicy
from inline_ips.decode.ipv4 import header_checksum
from inline_ips.detect.rate import MAX_FLAGS_CACHED, RateEngine
from inline_ips.detect.signature import FLAGS_MEMO_MAX, SignatureEngine
from inline_ips.engine import Engine
from inline_ips.options import EngineOptions
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import Measure, RuleSet
from inline_ips.telemetry import table_stats

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "rules.yaml"
CORPUS_RULESETS = ROOT.parent / "shared" / "corpus" / "rulesets"
HEADING = "## Memory under a spoofed-source flood"
MiB = 1 << 20

# -- packets -----------------------------------------------------------------------------

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_FRAG6 = struct.Struct("!BBHI")

SRC4_BASE = (100 << 24) | (64 << 16)  # 100.64.0.0/10: room for 4M spoofed sources
SRC6_BASE = 0x2001_0DB8_0000_0000_0000_0000_0000_0000
DST4 = ((192 << 24) | (168 << 16) | (1 << 8), 256)  # 192.168.1.0/24 (HOME_NET)
DST6 = 0xFD00_0000_0000_0000_0000_0000_0000_0000
SYN, ACK, PSH = 0x02, 0x10, 0x08


def _ip4(src: int, dst: int, proto: int, body: bytes, ident: int, frag: int = 0) -> bytes:
    total = 20 + len(body)
    fields = (0x45, 0, total, ident & 0xFFFF, frag, 64, proto, 0, src.to_bytes(4), dst.to_bytes(4))
    hdr = bytearray(_IP4.pack(*fields))
    struct.pack_into("!H", hdr, 10, header_checksum(hdr))
    return bytes(hdr) + body


def _ip6(src: int, dst: int, nh: int, body: bytes) -> bytes:
    return _IP6.pack(6 << 28, len(body), nh, 64, src.to_bytes(16), dst.to_bytes(16)) + body


def _tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"") -> bytes:
    # Checksums are left zero: the engine's default (checksum_checks "none") is what inline runs.
    return _TCP.pack(sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return _UDP.pack(sport, dport, 8 + len(payload), 0) + payload


_BODY = bytes(range(256)) * 5  # 1,280 bytes that no default rule matches
_DNS_QUERY = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01"
_HTTP_HEAD = b"GET /index.html?page=2 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: flood/1.0\r\n"
_HTTP_POST = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + _BODY[:1000]
# A ClientHello record announcing a 16,000-byte handshake message, of which this segment holds 1,000 bytes.
_TLS_START = b"\x16\x03\x01" + (16004).to_bytes(2) + b"\x01" + (16000).to_bytes(3) + b"\x03\x03" + _BODY[:994]

KINDS: tuple[str, ...] = (
    "syn4",
    "syn6",
    "tcp_payload4",
    "http_head4",
    "http_post4",
    "tls_hello4",
    "udp_dns4",
    "udp4",
    "udp6",
    "frag4",
    "frag6",
)


def packet(i: int) -> tuple[str, bytes]:
    """The i-th packet of the flood: its kind and its bytes (source i, so flow i)."""
    kind = KINDS[i % len(KINDS)]
    src4 = SRC4_BASE + i
    src6 = SRC6_BASE + i
    dst4 = DST4[0] + (i % DST4[1])
    dst6 = DST6 + (i % 256)
    sport = 1024 + (i % 60000)
    seq = (i * 2654435761) & 0xFFFFFFFF
    if kind == "syn4":
        return kind, _ip4(src4, dst4, 6, _tcp(sport, (80, 443, 22)[i % 3], seq, SYN), i)
    if kind == "syn6":
        return kind, _ip6(src6, dst6, 6, _tcp(sport, (80, 443, 22)[i % 3], seq, SYN))
    if kind == "tcp_payload4":
        return kind, _ip4(src4, dst4, 6, _tcp(sport, 5000 + i % 1000, seq, ACK | PSH, _BODY[:1200]), i)
    if kind == "http_head4":
        return kind, _ip4(src4, dst4, 6, _tcp(sport, 80, seq, ACK | PSH, _HTTP_HEAD), i)
    if kind == "http_post4":
        return kind, _ip4(src4, dst4, 6, _tcp(sport, 80, seq, ACK | PSH, _HTTP_POST), i)
    if kind == "tls_hello4":
        return kind, _ip4(src4, dst4, 6, _tcp(sport, 443, seq, ACK | PSH, _TLS_START), i)
    if kind == "udp_dns4":
        return kind, _ip4(src4, dst4, 17, _udp(sport, 53, _DNS_QUERY), i)
    if kind == "udp4":
        return kind, _ip4(src4, dst4, 17, _udp(sport, 10000 + i % 50000, _BODY[:64]), i)
    if kind == "udp6":
        return kind, _ip6(src6, dst6, 17, _udp(sport, 10000 + i % 50000, _BODY[:64]))
    if kind == "frag4":
        # A first fragment (MF set, offset 0) of a UDP datagram whose rest never comes.
        body = _udp(sport, 53, _BODY[:1472])[:1480]
        return kind, _ip4(src4, dst4, 17, body, i, frag=0x2000)
    # frag6: the same over IPv6, a fragment header with M set and offset 0.
    body = _FRAG6.pack(17, 0, 1, i & 0xFFFFFFFF) + _udp(sport, 53, _BODY[:1440])[:1440]
    return kind, _ip6(src6, dst6, 44, body)


# -- measuring ---------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


_SHARED = (Engine, RateEngine, SignatureEngine, RuleSet, type, type(sys))


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and what it refers to, leaving out objects whose ids are in ``seen``.

    Pass as ``seen`` what is shared by every entry (the compiled rules: see
    :func:`shared_ids`), so an entry is charged only for what is its own.
    """
    seen = set() if seen is None else seen
    todo = [obj]
    total = 0
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, _SHARED) or o is None or isinstance(o, bool):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            todo.extend(o.keys())
            todo.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            todo.extend(o)
        elif not isinstance(o, str | bytes | bytearray | int | float | memoryview):
            slots = [s for c in type(o).__mro__ for s in getattr(c, "__slots__", ())]
            todo.extend(getattr(o, s) for s in slots if hasattr(o, s))
            d = getattr(o, "__dict__", None)
            if d is not None:
                todo.append(d)
    return total


def shared_ids(eng: Engine) -> set[int]:
    """Ids of everything reachable from the engine's compiled rules (shared by all entries)."""
    seen: set[int] = set()
    for root in (eng._r, *eng._r.rates.trackers, eng._r.rules, eng.options):
        deep_size(root, seen)
        seen.add(id(root))
    return seen


_DICT_ENTRY = 100  # an (Ordered)dict slot, its index and its share of the table's slack, roughly


def entry_sizes(rules: RuleSet, opts: EngineOptions) -> dict[str, Any]:
    """Worst-case bytes of one entry of each table, measured on entries made by real packets."""
    eng = Engine(rules, opts)
    t = 0.0
    for i in range(len(KINDS) * 4):
        eng.process(packet(i)[1], t)
        t += 1e-5
    window = opts.flows.stream_window
    shared = shared_ids(eng)
    flow_worst = 0
    for flow in list(eng.flows._flows.values()):
        # Both stream windows full, whatever this packet left: the worst a flow's tails can hold.
        flow.tail = [b"x" * window, b"y" * window]
        own = deep_size(flow, set(shared)) + deep_size(flow.key) + _DICT_ENTRY
        flow_worst = max(flow_worst, own)
    # The per-direction caches keyed by TCP flags, at their worst: each keeps a bounded number.
    flow_worst += 2 * (MAX_FLAGS_CACHED + FLAGS_MEMO_MAX) * _DICT_ENTRY
    per_rule: list[int] = []
    for tr in eng.rates.trackers:
        base = sys.getsizeof((SRC6_BASE, SRC6_BASE)) + 2 * sys.getsizeof(SRC6_BASE) + 64 + _DICT_ENTRY
        if tr.rule.measure in (Measure.DST_PORTS, Measure.DST_HOSTS):
            # The distinct set stops growing at the threshold.
            base += sys.getsizeof(set(range(1 << 40, (1 << 40) + tr.rule.threshold)))
            base += tr.rule.threshold * sys.getsizeof(SRC6_BASE)
        per_rule.append(base)
    threshold_entry = 56 + sys.getsizeof((1, 2, "detection_filter", 6, SRC6_BASE, SRC6_BASE)) + _DICT_ENTRY
    datagram = 65535 + opts_fragments() * (sys.getsizeof((1, 2, b"")) + 40) + 512 + _DICT_ENTRY
    blocked = sys.getsizeof((6, SRC6_BASE)) + sys.getsizeof(SRC6_BASE) + 24 + _DICT_ENTRY
    return {
        "flow": flow_worst,
        "rate_key_by_rule": per_rule,
        "threshold": threshold_entry,
        "fragment_datagram": datagram,
        "blocklist": blocked,
    }


def opts_fragments() -> int:
    from inline_ips.decode.defrag import Defragmenter  # noqa: PLC0415 - only its default

    return Defragmenter().max_fragments_per_datagram


def bound(base_rss: int, sizes: dict[str, Any], opts: EngineOptions) -> dict[str, int]:
    """The documented bound, term by term (bytes)."""
    return {
        "engine with rules loaded (RSS before traffic)": base_rss,
        "flows": opts.flows.max_flows * sizes["flow"],
        "rate keys": sum(opts.rate_max_keys * s for s in sizes["rate_key_by_rule"]),
        "threshold entries": opts.threshold_max_entries * sizes["threshold"],
        "fragment reassembly": opts.defrag_max_datagrams * sizes["fragment_datagram"],
        "blocklist": opts.blocklist_max * sizes["blocklist"],
        "app-layer memcap (held + inspection copy)": 2 * opts.app_memcap,
    }


def run_one(name: str, rule_files: list[str], packets: int, every: int) -> dict[str, Any]:
    """One configuration in this process: the flood, the samples, the tables."""
    t0 = time.perf_counter()
    report = load_rule_files(rule_files)
    rules = report.ruleset
    opts = EngineOptions()
    sizes = entry_sizes(rules, opts)
    eng = Engine(rules, opts)
    # As a worker runs (inline_ips/gcpolicy.py): no automatic full collection, the rules frozen.
    gcpolicy.configure()
    gcpolicy.settle()
    base = rss_bytes()
    samples: list[tuple[int, int]] = [(0, base)]
    kinds: dict[str, int] = dict.fromkeys(KINDS, 0)
    actions: dict[str, int] = {}
    ts = 1_000_000.0
    started = time.perf_counter()
    for i in range(packets):
        kind, raw = packet(i)
        kinds[kind] += 1
        res = eng.process(raw, ts)
        a = res.verdict.action.name.lower()
        actions[a] = actions.get(a, 0) + 1
        ts += 1e-5
        if (i + 1) % every == 0 or i + 1 == packets:
            samples.append((i + 1, rss_bytes()))
    elapsed = time.perf_counter() - started
    tables = table_stats(eng)
    terms = bound(base, sizes, opts)
    return {
        "name": name,
        "rules": len(rules.signatures) + len(rules.rates),
        "rate_rules": len(rules.rates),
        "load_seconds": started - t0,
        "flood_seconds": elapsed,
        "packets": packets,
        "kinds": kinds,
        "actions": actions,
        "samples": samples,
        "tables": tables,
        "memcap_peak": eng.app_memcap.peak,
        "flows_expired": eng.flows.stats["expired"],
        "defrag": dict(eng.defrag.stats),
        "engine_errors": eng.stats["engine_errors"],
        "sizes": sizes,
        "bound_terms": terms,
        "bound": sum(terms.values()),
        "peak": max(r for _, r in samples),
    }


# -- the report --------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / MiB:,.0f}"


def svg_plot(runs: list[dict[str, Any]]) -> str:
    """A hand-built SVG of the RSS curves (packets -> MiB), with each run's bound dashed."""
    w, h, left, bottom, top, right = 640, 320, 60, 40, 20, 20
    xmax = max(r["packets"] for r in runs)
    ymax = max(max(r["bound"], r["peak"]) for r in runs) / MiB * 1.05
    colours = ("#1f77b4", "#d62728", "#2ca02c")

    def x(v: float) -> float:
        return float(left + (w - left - right) * v / xmax)

    def y(v: float) -> float:
        return float(h - bottom - (h - top - bottom) * v / ymax)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">packets (millions)</text>',
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">RSS (MiB)</text>',
    ]
    step = max(1, int(ymax / 5 / 100) * 100) if ymax > 500 else 50
    for v in range(0, int(ymax) + 1, step):
        out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{w - right}" y2="{y(v):.1f}" stroke="#eee"/>')
    for k in range(0, 11, 2):
        v = xmax * k / 10
        out.append(f'<text x="{x(v):.1f}" y="{h - bottom + 14}" text-anchor="middle">{v / 1e6:.1f}</text>')
    for n, r in enumerate(runs):
        c = colours[n % len(colours)]
        pts = " ".join(f"{x(p):.1f},{y(rss / MiB):.1f}" for p, rss in r["samples"])
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        by = y(r["bound"] / MiB)
        out.append(
            f'<line x1="{left}" y1="{by:.1f}" x2="{w - right}" y2="{by:.1f}" '
            f'stroke="{c}" stroke-dasharray="5,4"/>'
        )
        out.append(f'<text x="{left + 6}" y="{by - 4:.1f}" fill="{c}">bound, {r["name"]}</text>')
        ty = top + 14 + 14 * n
        out.append(f'<text x="{w - right - 4}" y="{ty}" text-anchor="end" fill="{c}">RSS, {r["name"]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def section(runs: list[dict[str, Any]], argv: list[str], svg_name: str | None) -> str:
    first = runs[0]
    lines = [
        HEADING,
        "",
        "Produced by `bench/memory_bench.py` (`make bench-memory`): a flood of "
        f"{first['packets']:,} packets, each from its own spoofed source address and so its own flow "
        f"({', '.join(KINDS)}, in turn), 100,000 packets/s of packet time, through the real engine; "
        "each configuration in its own process. RSS is `VmRSS` of that process.",
        "",
        f"- Command: `{command_line('bench.memory_bench', argv)}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Python: CPython {sys.version.split()[0]}; CPU: {cpu_model()}",
        "",
    ]
    if svg_name:
        lines += [f"![RSS during the flood]({svg_name})", ""]
    samples = {r["name"]: dict(r["samples"]) for r in runs}
    points = sorted({p for r in runs for p, _ in r["samples"]})
    show = [p for p in points if p % max(1, first["packets"] // 10) == 0 or p == points[-1]]
    lines.append("| packets | " + " | ".join(f"RSS MiB, {r['name']}" for r in runs) + " |")
    lines.append("| ---: | " + " | ".join("---:" for _ in runs) + " |")
    for p in show:
        cells = [_mb(samples[r["name"]][p]) if p in samples[r["name"]] else "" for r in runs]
        lines.append(f"| {p:,} | " + " | ".join(cells) + " |")
    lines.append("| **bound** | " + " | ".join(f"**{_mb(r['bound'])}**" for r in runs) + " |")
    lines.append("| peak ÷ bound | " + " | ".join(f"{r['peak'] / r['bound']:.2f}" for r in runs) + " |")
    lines.append("")
    lines.append("Tables at the end of the flood (size now / cap; evicted, or refused, because full):")
    lines.append("")
    lines.append("| table | " + " | ".join(f"{r['name']}: size / cap | evicted" for r in runs) + " |")
    lines.append("| --- | " + " | ".join("---: | ---:" for _ in runs) + " |")
    for t in first["tables"]:
        cells = []
        for r in runs:
            n, c, ev = r["tables"][t]
            unit = " B" if t == "app_bytes" else ""
            cells.append(f"{n:,}{unit} / {c:,}{unit} | {ev:,}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "The bound, term by term (cap times the worst-case entry, measured with `sys.getsizeof` "
        "over the entry's objects):"
    )
    lines.append("")
    lines.append("| term | " + " | ".join(f"MiB, {r['name']}" for r in runs) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in runs) + " |")
    for term in first["bound_terms"]:
        lines.append(f"| {term} | " + " | ".join(_mb(r["bound_terms"][term]) for r in runs) + " |")
    lines.append("")
    for r in runs:
        s = r["sizes"]
        lines.append(
            f"- {r['name']} ({r['rules']:,} rules, {r['rate_rules']} rate rules): flood judged in "
            f"{r['flood_seconds']:.0f} s ({r['flood_seconds'] / r['packets'] * 1e6:.1f} µs/packet); "
            f"worst flow {s['flow']:,} B, fragment datagram {s['fragment_datagram']:,} B; app memcap peak "
            f"{_mb(r['memcap_peak'])} MiB; flows expired {r['flows_expired']:,}; fragments evicted "
            f"{r['defrag']['evicted']:,}; verdicts {r['actions']}; engine errors {r['engine_errors']}."
        )
    lines.append("")
    lines.append(
        "No spoofed source sends twice, so no rate rule reaches a per-source threshold and nothing is "
        "blocked: the blocklist's cap (and its refusals) are proved by `tests/test_never_lock_out.py` and "
        "`tests/test_blocklist.py`, not by this flood."
    )
    return "\n".join(lines) + "\n"


def child(name: str, files: list[str], packets: int, every: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.memory_bench", "--one", name, "--packets", str(packets),
           "--every", str(every), "--", *files]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def et_dir() -> Path | None:
    found = sorted(CORPUS_RULESETS.glob("et-open-suricata5-*")) if CORPUS_RULESETS.is_dir() else []
    return found[0] if found else None


def configurations(with_et: bool) -> Iterator[tuple[str, list[str]]]:
    yield "default rules", [str(DEFAULT_RULES)]
    et = et_dir() if with_et else None
    if with_et and et is None:
        print("ET Open not found under ../shared/corpus/rulesets/: second curve skipped", file=sys.stderr)
    if et is not None:
        yield "default + ET Open", [str(DEFAULT_RULES), *sorted(str(p) for p in et.glob("*.rules"))]


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = child) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=positive_int, default=1_000_000)
    ap.add_argument("--every", type=positive_int, default=20_000, help="packets between RSS samples")
    ap.add_argument("--no-et", action="store_true", help="leave out the ET Open curve")
    ap.add_argument("--markdown", type=Path, help="write the section into this results file")
    ap.add_argument("--svg", type=Path, help="also write the RSS plot here (linked from the section)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(args_list)
    if args.one:
        print(json.dumps(run_one(args.one, args.files, args.packets, args.every)))
        return 0
    runs = [run(name, files, args.packets, args.every) for name, files in configurations(not args.no_et)]
    svg_name = None
    if args.svg:
        args.svg.write_text(svg_plot(runs), encoding="utf-8")
        if args.markdown:
            svg_name = os.path.relpath(args.svg, args.markdown.parent)
    text = section(runs, args_list, svg_name)
    if args.markdown:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(old, text, HEADING), encoding="utf-8")
    print(text)
    over = [r["name"] for r in runs if r["peak"] > r["bound"]]
    if over:
        print(f"RSS above the documented bound: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
