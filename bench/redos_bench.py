"""Worst-case regex cost: every regex of a loaded rule set against payloads built to make it work.

What it measures, with the default rules plus every loadable ET Open rule
(``--et DIR``, the corpus's by default):

1. Per regex: every distinct compiled regex of the loaded signatures (ET's
   ``pcre`` translated to RE2 by ``inline_ips.rules.pcre``, ``regex:`` of
   ``rules.yaml``) is searched (``compiled.search``, as
   ``inline_ips.detect.content`` runs it) over pathological subjects of
   1,500 bytes and 64 KiB: runs of one byte (``a``, blank, NUL, 0xff, ``%``,
   ``/``), runs of each of the regex's own most frequent literal characters,
   its literal text repeated and the same cut one byte short (a near miss),
   each alternative's literal repeated. Reported: how many regexes, the worst
   single search and its subject, and the worst growth of the cost per byte
   from 1,500 bytes to 64 KiB (1.0 is linear; a backtracking engine would
   show thousands).
2. Per packet, through the real engine (``Engine.process`` with the whole
   set loaded): for the rules of the ``--top`` costliest regexes, a "bait"
   made of the rule's own content strings followed by its regex's worst
   subject (so the prefilter and the contents pass and the regex, with its
   retries, really runs) is sent as an HTTP POST on an established
   connection (bait in the URI, User-Agent, Cookie and body; both
   directions of HOME_NET), as a bare TCP segment and as a UDP datagram, at
   1,500 bytes and as one 64 KiB datagram. Reported: the worst packet, its
   time and what it carried.

Timing is ``time.perf_counter_ns`` of one call (the worst case is what is
sought, so no best-of). What it does not measure: NFQUEUE, the kernel, the
other sections' traffic mixes; a worst case found by these heuristics, not a
proof that none is worse (the bound that holds by construction is in
``tests/test_redos_bench.py``: RE2 only, at most ``MAX_STEPS`` keyword
evaluations per buffer, capped buffers).

Run: ``.venv/bin/python -m bench.redos_bench --markdown bench/RESULTS.md``
(``make bench-redos``); it replaces only its own section of the file.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from bench import results_file
from inline_ips.engine import Engine
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import Content, Regex, RuleSet, SignatureRule

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "rules.yaml"
CORPUS_RULESETS = ROOT.parent / "shared" / "corpus" / "rulesets"
SECTION = "## ReDoS: worst-case regex cost (ET Open)"
SIZES = (1500, 65535 - 40)  # a full-MTU packet's payload and the largest IP datagram's
GENERIC_BYTES = b"a \x00\xff%/"
# Each figure is the best of this many runs: the worst case sought is the input's, not the
# scheduler's (the machine is shared), and RE2 builds its DFA states on first use.
REPEAT = 3
_META = set(b"\\^$.|?*+()[]{}")


def default_et_dir() -> Path | None:
    found = sorted(CORPUS_RULESETS.glob("et-open-suricata5-*")) if CORPUS_RULESETS.is_dir() else []
    return found[0] if found else None


def load(et_dir: Path | None, limit_files: int | None = None) -> RuleSet:
    paths: list[Path] = [DEFAULT_RULES]
    if et_dir is not None:
        paths += sorted(et_dir.glob("*.rules"))[:limit_files]
    return load_rule_files(paths).ruleset


@dataclass(slots=True)
class RegexUse:
    """One distinct compiled regex and the rules that use it."""

    source: str
    compiled: Any
    rules: list[SignatureRule] = field(default_factory=list)


def regexes(ruleset: RuleSet) -> list[RegexUse]:
    """Every distinct compiled regex of the rule set's signatures (by RE2 pattern and options)."""
    found: dict[int, RegexUse] = {}  # by compiled object: the pcre compiler caches one per value
    for rule in ruleset.signatures:
        for bm in rule.buffers:
            for m in bm.matches:
                if isinstance(m, Regex):
                    use = found.setdefault(id(m.compiled), RegexUse(m.source, m.compiled))
                    if not use.rules or use.rules[-1] is not rule:
                        use.rules.append(rule)
    return list(found.values())


def _literal(source: str) -> bytes:
    """The regex's literal characters in order (escapes and metacharacters dropped)."""
    out = bytearray()
    skip = False
    for ch in source.encode("latin-1", "replace"):
        if skip:
            skip = False
            continue
        if ch == 0x5C:  # a backslash: the escape's letter is not literal text
            skip = True
            continue
        if ch not in _META:
            out.append(ch)
    return bytes(out)


def subjects(source: str, size: int) -> Iterator[tuple[str, bytes]]:
    """``(description, subject)`` pairs of ``size`` bytes built to make ``source`` work hard."""
    for b in GENERIC_BYTES:
        yield f"{size} x {bytes([b])!r}", bytes([b]) * size
    lit = _literal(source)
    for b, _ in Counter(lit).most_common(4):
        if b not in GENERIC_BYTES:
            yield f"{size} x {bytes([b])!r} (from the regex)", bytes([b]) * size
    if lit:
        yield f"literal {lit[:24]!r} repeated", (lit * (size // len(lit) + 1))[:size]
        if len(lit) > 1:
            near = lit[:-1]
            yield f"near miss {near[:24]!r} repeated", (near * (size // len(near) + 1))[:size]
    if "|" in source:
        for alt in source.split("|")[:8]:
            a = _literal(alt)
            if a:
                yield f"alternative {a[:24]!r} repeated", (a * (size // len(a) + 1))[:size]


@dataclass(slots=True)
class RegexCost:
    use: RegexUse
    worst_ns: dict[int, int]  # size -> worst search time
    worst_subject: dict[int, str]
    worst_bytes: dict[int, bytes]

    @property
    def growth(self) -> float:
        """Cost per byte at the largest size over cost per byte at the smallest (1.0: linear)."""
        small, big = SIZES
        a = max(self.worst_ns[small], 1) / small
        return (self.worst_ns[big] / big) / a


def _timed(search: Any, subject: bytes) -> int:
    t0 = time.perf_counter_ns()
    search(subject)
    return time.perf_counter_ns() - t0


def time_regex(use: RegexUse) -> RegexCost:
    worst: dict[int, int] = {}
    what: dict[int, str] = {}
    data: dict[int, bytes] = {}
    search = use.compiled.search
    for size in SIZES:
        worst[size] = -1
        for desc, subject in subjects(use.source, size):
            dt = min(_timed(search, subject) for _ in range(REPEAT))
            if dt > worst[size]:
                worst[size], what[size], data[size] = dt, desc, subject
    return RegexCost(use, worst, what, data)


# -- through the engine ----------------------------------------------------------------


def _ip4(src: str, dst: str) -> tuple[bytes, bytes]:
    return bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split("."))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    s, d = _ip4(src, dst)
    total = 20 + len(l4)
    hdr = (
        bytes([0x45, 0])
        + total.to_bytes(2, "big")
        + b"\x00\x01\x40\x00\x40"
        + bytes([proto])
        + b"\x00\x00"
        + s
        + d
    )
    return hdr[:10] + _csum(hdr).to_bytes(2, "big") + hdr[12:] + l4


def tcp(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    seg = (
        sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + seq.to_bytes(4, "big") + ack.to_bytes(4, "big")
        + bytes([0x50, flags]) + b"\xff\xff\x00\x00\x00\x00" + payload
    )  # fmt: skip
    return ipv4(src, dst, 6, seg)  # checksums are not checked by default (as inline)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    dg = (
        sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
        + (8 + len(payload)).to_bytes(2, "big")
        + b"\x00\x00"
    )
    return ipv4(src, dst, 17, dg + payload)


def bait_for(rule: SignatureRule, filler: bytes) -> bytes:
    """The rule's content strings (so the prefilter and contents pass), then the regex's worst subject."""
    parts = [m.pattern for bm in rule.buffers for m in bm.matches if isinstance(m, Content) and not m.negated]
    return b" ".join(parts) + b" " + filler


def http_post(bait: bytes, size: int) -> bytes:
    """An HTTP request of about ``size`` payload bytes with the bait in the URI, headers and body."""
    head_part = bait[: min(len(bait), 2000, size // 4)]
    head = (
        b"POST /" + head_part.replace(b" ", b"%20").replace(b"\r", b"").replace(b"\n", b"") + b" HTTP/1.1\r\n"
        b"Host: www.example.com\r\nUser-Agent: " + head_part.replace(b"\r", b"").replace(b"\n", b"")
        + b"\r\nCookie: " + head_part.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    )  # fmt: skip
    room = max(size - len(head) - 40, 0)
    body = (bait * (room // max(len(bait), 1) + 1))[:room]
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@dataclass(slots=True)
class PacketCost:
    ns: int
    what: str
    size: int


class EngineProbe:
    """Send each probe on fresh flows of one long-lived engine and keep the worst packet."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.port = 20000
        self.ts = 1_700_000_000.0
        self.worst = PacketCost(0, "", 0)
        self.packets = 0

    def _send(self, raw: bytes) -> int:
        self.ts += 0.0001
        t0 = time.perf_counter_ns()
        self.engine.process(raw, self.ts)
        return time.perf_counter_ns() - t0

    def _keep(self, times: list[int], what: str, size: int) -> None:
        self.packets += 1
        dt = min(times)
        if dt > self.worst.ns:
            self.worst = PacketCost(dt, what, size)

    def http(self, client: str, server: str, payload: bytes, what: str) -> None:
        """The payload as the first request of a fresh connection (handshake untimed), best of REPEAT."""
        times = []
        for _ in range(REPEAT):
            self.port = self.port % 60000 + 1
            cp = self.port
            self._send(tcp(client, server, cp, 80, 1000, 0, 0x02))
            self._send(tcp(server, client, 80, cp, 5000, 1001, 0x12))
            self._send(tcp(client, server, cp, 80, 1001, 5001, 0x10))
            times.append(self._send(data := tcp(client, server, cp, 80, 1001, 5001, 0x18, payload)))
        self._keep(times, what, len(data))

    def bare(self, client: str, server: str, payload: bytes, what: str) -> None:
        """The payload as a TCP segment without handshake and as a UDP datagram to port 53."""
        for kind in ("bare TCP", "UDP"):
            times = []
            for _ in range(REPEAT):
                self.port = self.port % 60000 + 1
                if kind == "UDP":
                    raw = udp(client, server, self.port, 53, payload)
                else:
                    raw = tcp(client, server, self.port, 8080, 1, 1, 0x18, payload)
                times.append(self._send(raw))
            self._keep(times, f"{what} ({kind})", len(raw))


def probe(engine: Engine, costs: Sequence[RegexCost], top: int) -> EngineProbe:
    p = EngineProbe(engine)
    outside, inside = "198.51.100.7", "10.1.2.3"
    for cost in costs[:top]:
        for size in SIZES:
            filler = cost.worst_bytes[size]
            for rule in cost.use.rules[:3]:
                bait = bait_for(rule, filler)
                what = f"sid {rule.sid}: {cost.use.source[:60]!r} with {cost.worst_subject[size]}"
                for client, server in ((outside, inside), (inside, outside)):
                    p.http(client, server, http_post(bait, size), f"{what}, HTTP POST")
                p.bare(outside, inside, bait[:size], what)
    return p


@dataclass(slots=True)
class Report:
    rules: int
    regexes: int
    rules_with_regex: int
    worst: RegexCost
    worst_growth: RegexCost
    worst_small: int
    not_re2: int
    probe: EngineProbe
    seconds: float
    command: str

    def markdown(self) -> str:
        small, big = SIZES
        w = self.worst
        g = self.worst_growth
        p = self.probe.worst
        max_small = self.worst_small
        return "\n".join(
            [
                SECTION,
                "",
                f"{datetime.date.today().isoformat()}, {results_file.cpu_model()},"
                f" Python {platform.python_version()};"
                f" `{self.command}` ({self.seconds:.0f} s).",
                "",
                f"- Rules loaded: {self.rules:,} signatures, {self.rules_with_regex:,} with a regex;"
                f" **{self.regexes:,} distinct regexes**, {self.regexes - self.not_re2:,} of them RE2"
                f" ({self.not_re2} with another engine).",
                f"- Worst single search over a {big:,}-byte subject: **{w.worst_ns[big] / 1e6:.2f} ms**"
                f" (`{w.use.source[:80]}` on {w.worst_subject[big]});"
                f" over {small:,} bytes the worst is {max_small / 1e3:.1f} µs.",
                f"- Worst growth of the cost per byte from {small:,} B to {big:,} B: {g.growth:.2f}x"
                f" (`{g.use.source[:80]}`); 1.0 is linear.",
                "- Worst packet through `Engine.process` with the whole set loaded,"
                f" of {self.probe.packets:,}"
                f" probe packets: **{p.ns / 1e6:.2f} ms** for a {p.size:,}-byte datagram ({p.what}).",
                "",
            ]
        )


def run(et_dir: Path | None, top: int, limit_files: int | None = None) -> Report:
    started = time.perf_counter()
    ruleset = load(et_dir, limit_files)
    uses = regexes(ruleset)
    costs = sorted((time_regex(u) for u in uses), key=lambda c: -c.worst_ns[SIZES[1]])
    engine = Engine(ruleset)
    p = probe(engine, costs, top)
    with_regex = {r.sid for u in uses for r in u.rules}
    return Report(
        rules=len(ruleset.signatures),
        regexes=len(uses),
        rules_with_regex=len(with_regex),
        worst=costs[0],
        worst_growth=max(costs, key=lambda c: c.growth),
        worst_small=max(c.worst_ns[SIZES[0]] for c in costs),
        not_re2=sum(not isinstance(u.compiled, re2._Regexp) for u in uses),
        probe=p,
        seconds=time.perf_counter() - started,
        command="",
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--et", type=Path, default=default_et_dir(), help="ET Open rules directory")
    ap.add_argument("--top", type=results_file.positive_int, default=60, help="costliest regexes probed")
    ap.add_argument("--limit-files", type=results_file.positive_int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", type=Path, default=None, help="replace this section of a results file")
    args = ap.parse_args(argv)
    if args.et is None:
        print(
            "no ET Open rules found (../shared/corpus/rulesets); only the default rules' regexes",
            file=sys.stderr,
        )
    report = run(args.et, args.top, args.limit_files)
    report.command = results_file.command_line("bench.redos_bench", sys.argv[1:] if argv is None else argv)
    text = report.markdown()
    print(text)
    if args.markdown is not None:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(results_file.replace_section(old, text, SECTION), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
