"""Seed corpora for the fuzz targets, generated at run time from real traffic and real rules.

Does: write one directory of seed files per target (named by content hash,
so re-running adds nothing twice): IP datagrams from the third-party corpus
captures (``../shared/corpus/pcaps`` and the suricata-verify cases, read with
:mod:`inline_ips.source.pcap`) and from :mod:`inline_ips.lab.synth`'s sample
traffic; the same packets in short framed runs for the engine; the TCP
payloads of each captured connection in order (HTTP and DNS) and a real TLS
1.2 and 1.3 handshake made with Python's ``ssl`` module against a certificate
``openssl`` makes on the spot, for the stream parsers; ``rules.yaml`` and
pieces of it; rule lines and ``pcre`` values from the ET Open and Snort 3
community files. Parts whose source is absent (no corpus beside the project,
no ``openssl``) are left out and said so in the returned notes.

Does not: copy the third-party corpus into the project: seeds go to a
directory the caller names (``fuzz/work/`` by default, git-ignored) and are
regenerated each run; libFuzzer's own corpus, what it learns, lives beside
them.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from fuzz.common import frame
from inline_ips.decode import decode_py
from inline_ips.lab import synth
from inline_ips.packet import PROTO_TCP
from inline_ips.source.pcap import PcapError, read_ip_packets

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DEFAULT_RULES = ROOT / "rules.yaml"
TARGETS = ("decode", "engine", "streams", "yaml_rules", "suricata_rules", "pcre")

MAX_PACKETS_PER_CAPTURE = 300  # distinct datagrams kept from one capture (scans repeat themselves)
MAX_RULE_SEEDS = 1500
MAX_PCRE_SEEDS = 1500
ENGINE_RUN = 8  # packets per engine seed
_PCRE_VALUE = re.compile(r'[;(]\s*pcre\s*:\s*("(?:[^"\\]|\\.)*")\s*;')


def captures(corpus: Path = CORPUS) -> list[Path]:
    """Every pcap/pcapng of the corpus (attack captures and suricata-verify cases)."""
    if not corpus.is_dir():
        return []
    return sorted(p for p in corpus.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())


def rule_files(corpus: Path = CORPUS) -> list[Path]:
    rulesets = corpus / "rulesets"
    if not rulesets.is_dir():
        return []
    return sorted(rulesets.rglob("*.rules"))


def _capture_packets(path: Path) -> list[tuple[float, bytes]]:
    try:
        return list(read_ip_packets(path))
    except (PcapError, OSError):
        return []


def _distinct(packets: Iterable[bytes], limit: int) -> list[bytes]:
    seen: set[bytes] = set()
    out: list[bytes] = []
    for raw in packets:
        if raw not in seen:
            seen.add(raw)
            out.append(raw)
            if len(out) >= limit:
                break
    return out


def _synthetic() -> list[tuple[float, bytes]]:
    return (
        synth.browsing(pages=4)
        + synth.dns_lookups(count=12)
        + synth.tls_sessions(count=2)
        + synth.dns_amplification(count=4)
        + synth.http_attacks()
        + synth.port_scan(range(20, 30))
        + synth.ping_sweep(4)
        + synth.syn_flood(4)
    )


def packet_runs(corpus: Path = CORPUS) -> Iterator[list[tuple[float, bytes]]]:
    """Each capture's packets (and the synthetic traffic), in capture order."""
    yield _synthetic()
    for path in captures(corpus):
        yield _capture_packets(path)


def tcp_connections(packets: list[tuple[float, bytes]]) -> list[list[tuple[bool, bytes]]]:
    """The TCP payloads of each connection in capture order, as ``(to_server, bytes)``.

    The side that sent the first packet seen (usually the SYN) is the client.
    Retransmissions (a sequence number already seen in that direction) are left
    out; that is all the reassembly a seed needs.
    """
    conns: dict[tuple[object, ...], list[tuple[bool, bytes]]] = {}
    clients: dict[tuple[object, ...], tuple[object, int]] = {}
    seen: set[tuple[tuple[object, ...], bool, int]] = set()
    for ts, raw in packets:
        pkt = decode_py(raw, ts)
        if pkt.proto != PROTO_TCP or pkt.error is not None:
            continue
        a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        key = (min(a, b), max(a, b))
        client = clients.setdefault(key, a)
        to_server = a == client
        if not pkt.payload or (key, to_server, pkt.tcp_seq) in seen:
            continue
        seen.add((key, to_server, pkt.tcp_seq))
        conns.setdefault(key, []).append((to_server, pkt.payload))
    return [c for c in conns.values() if c]


def _tls_handshake(version: ssl.TLSVersion, workdir: Path) -> list[tuple[bool, bytes]]:
    """A real handshake between two ``ssl`` objects in memory, as the bytes each side sent."""
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
                "-subj", "/CN=fuzz.example/O=inline-ips fuzz seed",
                "-addext", "subjectAltName=DNS:fuzz.example,DNS:*.fuzz.example,IP:192.0.2.1",
            ],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.maximum_version = version
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.maximum_version = version
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="fuzz.example")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    out: list[tuple[bool, bytes]] = []
    for _ in range(6):
        for side, sock, mine, peer in ((True, client, c_out, s_in), (False, server, s_out, c_in)):
            with contextlib.suppress(ssl.SSLWantReadError):
                sock.do_handshake()
            data = mine.read()
            if data:
                out.append((side, data))
                peer.write(data)
    return out


def _tls_seeds(notes: list[str]) -> list[list[tuple[bool, bytes]]]:
    if shutil.which("openssl") is None:
        notes.append("streams: no openssl, so no TLS handshake seeds beyond synth's ClientHellos")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        return [_tls_handshake(v, Path(tmp)) for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)]


def _stream_seed(which: int, conn: list[tuple[bool, bytes]]) -> bytes:
    return bytes([which]) + frame((int(to_server), data) for to_server, data in conn)


def _dns_tcp(packets: list[tuple[float, bytes]]) -> list[list[tuple[bool, bytes]]]:
    """DNS messages of the UDP captures re-framed as DNS over TCP (length prefix), a few per seed."""
    msgs: list[tuple[bool, bytes]] = []
    for ts, raw in packets:
        pkt = decode_py(raw, ts)
        if pkt.error is None and 53 in (pkt.sport, pkt.dport) and pkt.payload and pkt.proto != PROTO_TCP:
            msgs.append((pkt.dport == 53, len(pkt.payload).to_bytes(2, "big") + pkt.payload))
    return [msgs[i : i + 4] for i in range(0, min(len(msgs), 200), 4)]


def rule_lines(files: Iterable[Path], limit: int, seed: int = 7) -> list[str]:
    """Up to ``limit`` rule lines (enabled or commented out) spread over ``files``, chosen reproducibly."""
    lines: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        lines += [ln.lstrip("# ") for ln in text.splitlines() if "(" in ln and re.match(r"#?\s*\w+\s", ln)]
    rng = random.Random(seed)
    rng.shuffle(lines)
    return lines[:limit]


def pcre_values(lines: Iterable[str], limit: int) -> list[str]:
    """The distinct ``pcre:`` values (quotes included, as the keyword's parser takes them)."""
    found: list[str] = []
    seen: set[str] = set()
    for line in lines:
        for m in _PCRE_VALUE.finditer(line):
            if m[1] not in seen:
                seen.add(m[1])
                found.append(m[1])
                if len(found) >= limit:
                    return found
    return found


def _yaml_seeds(rules: Path) -> list[bytes]:
    text = rules.read_text(encoding="utf-8")
    seeds = [text.encode()]
    # Each top-level section alone is a smaller, faster seed libFuzzer can combine.
    parts = re.split(r"(?m)^(?=\S)", text)
    seeds += [p.encode() for p in parts if p.strip() and not p.startswith("#")]
    return seeds


def generate(
    out: Path, corpus: Path = CORPUS, rules: Path = DEFAULT_RULES, limit: int | None = None
) -> dict[str, int]:
    """Write the seeds of every target under ``out/<target>/``; return how many each got.

    ``limit`` keeps at most that many per target (a reproducible sample): libFuzzer runs
    every seed once before fuzzing, which is most of a run of a few seconds.
    """
    notes: list[str] = []
    seeds: dict[str, list[bytes]] = {t: [] for t in TARGETS}
    if not corpus.is_dir():
        notes.append(f"no corpus at {corpus}: seeds from synthetic traffic and rules.yaml only")
    all_tcp: list[list[tuple[bool, bytes]]] = []
    for run in packet_runs(corpus):
        raws = _distinct((raw for _, raw in run), MAX_PACKETS_PER_CAPTURE)
        seeds["decode"] += raws
        for i in range(0, min(len(run), 40 * ENGINE_RUN), ENGINE_RUN):
            chunk = run[i : i + ENGINE_RUN]
            prev = chunk[0][0]
            items = []
            for ts, raw in chunk:
                items.append((min(255, max(0, int((ts - prev) * 200))), raw))  # tag = time step, 5 ms units
                prev = ts
            seeds["engine"].append(frame(items))
        all_tcp += tcp_connections(run)
        seeds["streams"] += [_stream_seed(2, c) for c in _dns_tcp(run)]
    for conn in all_tcp[:400]:
        seeds["streams"].append(_stream_seed(0, conn))
        seeds["streams"].append(_stream_seed(1, conn))  # the synthetic ClientHellos are TCP payloads too
    seeds["streams"] += [_stream_seed(1, c) for c in _tls_seeds(notes)]
    seeds["yaml_rules"] += _yaml_seeds(rules)
    files = rule_files(corpus)
    lines = rule_lines(files, 200_000) if files else []
    seeds["suricata_rules"] += [ln.encode() for ln in lines[:MAX_RULE_SEEDS]]
    seeds["pcre"] += [v.encode() for v in pcre_values(lines, MAX_PCRE_SEEDS)]
    if not files:
        notes.append("no rule files in the corpus: rule and pcre seeds are the default rules' only")
        default_lines = [
            'alert http any any -> any any (msg:"seed"; content:"GET"; http.method;'
            ' pcre:"/^\\/a+b/Ui"; sid:1;)'
        ]
        seeds["suricata_rules"] += [ln.encode() for ln in default_lines]
        seeds["pcre"] += [b'"/^\\/a+b/Ui"', b'"/(?:x|y){2,5}z$/s"']
    counts: dict[str, int] = {}
    for target, found in seeds.items():
        chosen = (
            random.Random(target).sample(found, limit) if limit is not None and len(found) > limit else found
        )
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for item in chosen:
            (d / hashlib.sha1(item).hexdigest()).write_bytes(item)
        counts[target] = len({hashlib.sha1(i).digest() for i in chosen})
    for note in notes:
        print(f"seeds: {note}")
    return counts


def main() -> None:
    import argparse  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("out", type=Path, nargs="?", default=ROOT / "fuzz" / "work" / "seeds")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args()
    for target, n in generate(args.out, args.corpus).items():
        print(f"{target}: {n} seeds in {args.out / target}")


if __name__ == "__main__":
    main()
