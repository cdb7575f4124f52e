"""Per-packet cost of the engine, side by side with Scapy dissection, in one run.

What it measures: the wall-clock time (``time.perf_counter_ns``, best of N
repetitions) of a plain Python loop handing every packet of one fixed packet
mix to one callable, divided by the number of packets. The configurations,
all timed over the very same packets in the same process, are:

* ``Engine(rules).process(raw, ts)`` with the default ``rules.yaml``;
* the same with 10 and with 10,000 synthetic content signatures added (the
  prefilter claim: 10,000 literals cost little more than 10);
* the same with every loadable rule of Emerging Threats Open added, when the
  corpus is beside the project (``--et DIR``; ``--no-et`` leaves it out);
* ``inline_ips.decode.decode(raw, ts)`` alone;
* ``scapy.layers.inet.IP(raw)``, the dissection most tutorials do per packet
  (the baseline the README compares against).

Each engine repetition gets a fresh :class:`~inline_ips.engine.Engine`
(empty flow table, rate windows and blocklist), built outside the timed loop;
building it (rule compilation, Hyperscan databases) is reported separately,
with the time to parse the rule YAML. Within a repetition the configurations
take turns every ``SLICE`` packets (each keeping its own state), so a burst of
load from other processes hits them all alike and the ratios stay fair on a
shared machine. An extra untimed pass per engine
configuration counts alerts and what the application parsers recognised, to
check that the benign mix raises no alert with the default rules and really
exercises the HTTP/TLS/DNS paths.

The packet mix (IPv4 only) is built once with Scapy from a seeded
``random.Random`` and turned into bytes before any timing: TCP handshakes and
HTTP/1.1 GETs answered with 1400-byte segments (keep-alive, some text, some
binary bodies), TLS ClientHellos with SNI followed by encrypted-looking
1400-byte records, DNS queries and answers, ICMP echo, and 64-byte UDP
datagrams of VoIP/game-like streams; sessions start at random times over
``packets / 500`` seconds, so the default rate rules see ordinary rates.

What it does not measure: NFQUEUE and the kernel (receiving the packet,
issuing the verdict), output (EVE logging, metrics), reading a pcap, IPv6,
fragments, attacks or matching rules (alerts are rare by design), more than
one core, or memory. Garbage collection stays enabled (it runs in real use),
but what exists before a repetition starts (the packets, every rule set and
engine) is frozen out of it with ``gc.freeze``, so one configuration's 10,000
rules do not slow the collections of another. Absolute figures depend
on the machine and its load; only ratios between figures of one run mean
anything.

Run: ``.venv/bin/python -m bench.engine_bench --markdown bench/RESULTS.md``
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import random
import string
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hyperscan
import scapy
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP

from bench import results_file
from inline_ips.decode import FAST_DECODE, FAST_DECODE_REASON, decode
from inline_ips.engine import Engine
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import RuleSet
from inline_ips.rules.yaml_loader import load_rules_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "rules.yaml"

DEFAULT_PACKETS = 20_000
DEFAULT_REPEAT = 3
DEFAULT_SEED = 1
DEFAULT_SIGNATURES = 10_000
FEW_SIGNATURES = 10
FIRST_SYNTHETIC_SID = 9_000_001

# Average packet rate of the mix: a busy small office behind one router.
PACKETS_PER_SECOND = 500
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SEGMENT = 1400  # TCP payload bytes of every full data segment
# Configurations take turns every SLICE packets (tens of milliseconds each).
SLICE = 500

# Share of the packets each kind of traffic gets.
SHARES: dict[str, float] = {"http": 0.42, "tls": 0.36, "dns": 0.03, "icmp": 0.02, "udp64": 0.17}
KIND_LABELS: dict[str, str] = {
    "http": "HTTP/1.1 over TCP (handshake, GETs, 1400-byte response segments, FIN)",
    "tls": "TLS over TCP (handshake, ClientHello with SNI, 1400-byte encrypted records)",
    "dns": "DNS over UDP (query and answer)",
    "icmp": "ICMP echo request and reply",
    "udp64": "UDP streams of 64-byte datagrams (VoIP/game-like)",
}

NAME_DEFAULT = "engine, default rules"
NAME_ET = "engine, default + ET Open (loadable rules)"
# Emerging Threats Open in the third-party corpus beside the project, when it is there.
CORPUS_RULESETS = ROOT.parent / "shared" / "corpus" / "rulesets"


def default_et_dir() -> Path | None:
    found = sorted(CORPUS_RULESETS.glob("et-open-suricata5-*")) if CORPUS_RULESETS.is_dir() else []
    return found[0] if found else None


NAME_DECODE = "decode only"
NAME_SCAPY = "Scapy dissection"


def name_with(count: int) -> str:
    return f"engine, default + {count:,} content signatures"


# -- the packet mix ------------------------------------------------------------

Timed = tuple[float, bytes]

WEB_SITES: tuple[tuple[str, str], ...] = tuple(
    (f"{net}.{host}", name)
    for (net, host), name in zip(
        [("198.51.100", h) for h in range(10, 250, 20)] + [("203.0.113", h) for h in range(15, 255, 20)],
        [
            "www.example.com",
            "news.example.org",
            "cdn.example.net",
            "static.example.com",
            "api.example.org",
            "shop.example.net",
            "mail.example.com",
            "docs.example.org",
            "img.example.net",
            "video.example.com",
            "maps.example.org",
            "wiki.example.net",
            "www.example.test",
            "updates.example.test",
            "forum.example.org",
            "blog.example.com",
            "weather.example.net",
            "bank.example.com",
            "search.example.org",
            "music.example.net",
            "travel.example.com",
            "jobs.example.org",
            "games.example.net",
            "photos.example.com",
        ],
        strict=True,
    )
)
RESOLVER = "192.168.1.1"
UDP_PEERS = ("198.51.100.200", "203.0.113.201", "198.51.100.201")
UDP_PORTS = (3478, 5004, 27015)
HTTP_PATHS = (
    "/",
    "/index.html",
    "/news/2026/01/markets-close-higher?page=2&sort=date",
    "/search?q=weather+london+tomorrow&hl=en",
    "/static/js/app.4f1c2a9e.js",
    "/static/css/site.css",
    "/img/logo.png",
    "/img/photos/2025/12/IMG_2041.jpg",
    "/api/v1/items?id=42&fields=name,price",
    "/blog/how-to-select-a-union-rep",
    "/downloads/release-notes.txt",
    "/favicon.ico",
    "/products/garden/hoses?colour=green&size=25m",
    "/account/login?next=%2Faccount%2Forders",
)
USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Debian APT-HTTP/1.3 (2.6.1)",
)
CONTENT_TYPES = (
    ("text/html; charset=utf-8", True),
    ("application/javascript", True),
    ("text/css", True),
    ("image/jpeg", False),
    ("image/png", False),
    ("application/octet-stream", False),
)
# Response sizes in full segments: many small objects, a few large ones.
RESPONSE_SEGMENTS = (1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 14, 20, 30, 45, 60)
TLS_RESPONSE_RECORDS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 40)
WORDS = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "are",
    "be",
    "or",
    "an",
    "it",
    "was",
    "which",
    "page",
    "news",
    "market",
    "garden",
    "price",
    "search",
    "weather",
    "london",
    "tomorrow",
    "account",
    "order",
    "item",
    "product",
    "div",
    "class",
    "span",
    "href",
    "src",
    "script",
    "style",
    "header",
    "footer",
    "section",
    "article",
    "main",
    "nav",
    "button",
)


class _Mix:
    """Collects timestamped packets, each tagged with its kind and its session (one flow)."""

    def __init__(self, rng: random.Random, clients: int) -> None:
        self.rng = rng
        self.clients = [f"192.168.1.{10 + i}" for i in range(clients)]
        self.rows: list[tuple[float, int, bytes, str, int]] = []
        self.count: Counter[str] = Counter()
        self.sessions = 0
        self._used_ports: set[tuple[str, int]] = set()
        words = [rng.choice(WORDS) for _ in range(12_000)]
        self.text = " ".join(words).encode()

    def new_session(self) -> int:
        self.sessions += 1
        return self.sessions

    def add(self, ts: float, pkt: Any, kind: str, session: int) -> None:
        self.rows.append((ts, len(self.rows), bytes(pkt), kind, session))
        self.count[kind] += 1

    def ephemeral(self, client: str) -> int:
        while True:
            port = self.rng.randrange(32768, 61000)
            if (client, port) not in self._used_ports:
                self._used_ports.add((client, port))
                return port

    def body(self, n: int, text: bool) -> bytes:
        if not text:
            return self.rng.randbytes(n)
        start = self.rng.randrange(len(self.text) - n) if n < len(self.text) else 0
        return (self.text * (n // len(self.text) + 1))[start : start + n]


class _TcpConn:
    """One TCP connection as seen by a router next to the client; keeps sequence numbers consistent."""

    def __init__(self, mix: _Mix, kind: str, client: str, server: str, sport: int, *, rtt: float) -> None:
        rng = mix.rng
        self.mix = mix
        self.kind = kind
        self.client, self.server = client, server
        self.cport, self.sport = mix.ephemeral(client), sport
        self.rtt = rtt
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        self.cid = rng.getrandbits(16)
        self.sid = rng.getrandbits(16)
        self.sttl = rng.choice((49, 52, 54, 56, 57, 59, 116, 118, 242))
        self.tsval = rng.getrandbits(31)
        self.session = mix.new_session()

    def _send(self, t: float, to_server: bool, flags: str, payload: bytes = b"") -> None:
        syn_opts: list[tuple[str, Any]] = [
            ("MSS", 1460),
            ("SAckOK", b""),
            ("Timestamp", (self.tsval, 0)),
            ("NOP", None),
            ("WScale", 7),
        ]
        opts = syn_opts if "S" in flags else []
        if to_server:
            ip = IP(src=self.client, dst=self.server, ttl=64, id=self.cid, flags="DF")
            tcp = TCP(
                sport=self.cport,
                dport=self.sport,
                flags=flags,
                seq=self.cseq,
                ack=self.sseq if "A" in flags else 0,
                window=64240 if "S" in flags else 502,
                options=opts,
            )
            self.cid = (self.cid + 1) & 0xFFFF
            self.cseq = (self.cseq + len(payload) + (1 if "S" in flags or "F" in flags else 0)) & 0xFFFFFFFF
        else:
            ip = IP(src=self.server, dst=self.client, ttl=self.sttl, id=self.sid, flags="DF")
            tcp = TCP(
                sport=self.sport,
                dport=self.cport,
                flags=flags,
                seq=self.sseq,
                ack=self.cseq,
                window=65160 if "S" in flags else 509,
                options=opts,
            )
            self.sid = (self.sid + 1) & 0xFFFF
            self.sseq = (self.sseq + len(payload) + (1 if "S" in flags or "F" in flags else 0)) & 0xFFFFFFFF
        self.mix.add(t, ip / tcp / payload if payload else ip / tcp, self.kind, self.session)

    def handshake(self, t: float) -> float:
        self._send(t, True, "S")
        self._send(t + self.rtt, False, "SA")
        self._send(t + self.rtt + 0.0001, True, "A")
        return t + self.rtt + 0.0002

    def client_data(self, t: float, data: bytes) -> None:
        self._send(t, True, "PA", data)

    def server_stream(self, t: float, data: bytes) -> float:
        """Send ``data`` in full segments, the client ACKing every second one; return the end time."""
        rng = self.mix.rng
        chunks = [data[i : i + SEGMENT] for i in range(0, len(data), SEGMENT)]
        for i, chunk in enumerate(chunks):
            t += rng.uniform(0.0001, 0.0008)
            last = i == len(chunks) - 1
            self._send(t, False, "PA" if last else "A", chunk)
            if i % 2 == 1 or last:
                self._send(t + 0.00015, True, "A")
        return t + 0.0002

    def close(self, t: float) -> None:
        self._send(t, True, "FA")
        self._send(t + self.rtt, False, "FA")
        self._send(t + self.rtt + 0.0001, True, "A")


def _http_session(mix: _Mix, t: float) -> None:
    rng = mix.rng
    server, host = rng.choice(WEB_SITES)
    conn = _TcpConn(mix, "http", rng.choice(mix.clients), server, 80, rtt=rng.uniform(0.008, 0.08))
    agent = rng.choice(USER_AGENTS)
    t = conn.handshake(t)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        path = rng.choice(HTTP_PATHS)
        req = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            "Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
            f"Referer: http://{host}/\r\nCookie: session={rng.getrandbits(64):016x}; theme=dark\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        conn.client_data(t, req)
        ctype, text = rng.choice(CONTENT_TYPES)
        segments = rng.choice(RESPONSE_SEGMENTS)
        head = (
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: nginx\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {{}}\r\nCache-Control: max-age=3600\r\n"
            f'ETag: "{rng.getrandbits(48):012x}"\r\nConnection: keep-alive\r\n\r\n'
        )
        size = segments * SEGMENT - len(head) - 8
        size -= rng.randrange(0, SEGMENT // 2) if segments > 1 else 0
        size = max(size, 64)
        data = head.format(size).encode() + mix.body(size, text)
        t = conn.server_stream(t + conn.rtt + rng.uniform(0.001, 0.03), data)
        t += rng.uniform(0.05, 1.0)  # the browser parses, then asks for the next object
    conn.close(t)


def _tls_record(rng: random.Random, ctype: int, total: int) -> bytes:
    """A record of ``total`` bytes (header included) whose body looks encrypted."""
    return struct.pack("!BHH", ctype, 0x0303, total - 5) + rng.randbytes(total - 5)


def client_hello(rng: random.Random, server_name: str) -> bytes:
    """A TLS 1.3 ClientHello record shaped like a browser's (SNI, ALPN, key share, padding to 512)."""

    def ext(etype: int, body: bytes) -> bytes:
        return struct.pack("!HH", etype, len(body)) + body

    name = server_name.encode()
    suites = (
        0x1301,
        0x1302,
        0x1303,
        0xC02B,
        0xC02F,
        0xC02C,
        0xC030,
        0xCCA9,
        0xCCA8,
        0xC013,
        0xC014,
        0x009C,
        0x009D,
        0x002F,
        0x0035,
    )
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    alpn = b"\x02h2\x08http/1.1"
    share = struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)
    exts = (
        ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
        + ext(23, b"")
        + ext(65281, b"\x00")
        + ext(10, struct.pack("!H4H", 8, 0x001D, 0x0017, 0x0018, 0x0019))
        + ext(11, b"\x01\x00")
        + ext(35, b"")
        + ext(16, struct.pack("!H", len(alpn)) + alpn)
        + ext(13, struct.pack(f"!H{len(sigalgs)}H", 2 * len(sigalgs), *sigalgs))
        + ext(43, b"\x04\x03\x04\x03\x03")
        + ext(45, b"\x01\x01")
        + ext(51, struct.pack("!H", len(share)) + share)
    )
    hello = (
        b"\x03\x03"
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + struct.pack(f"!H{len(suites)}H", 2 * len(suites), *suites)
        + b"\x01\x00"
    )
    pad = 512 - (4 + len(hello) + 2 + len(exts)) - 4
    if pad > 0:
        exts += ext(21, bytes(pad))
    hello += struct.pack("!H", len(exts)) + exts
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return struct.pack("!BHH", 22, 0x0301, len(handshake)) + handshake


def _tls_session(mix: _Mix, t: float) -> None:
    rng = mix.rng
    server, host = rng.choice(WEB_SITES)
    conn = _TcpConn(mix, "tls", rng.choice(mix.clients), server, 443, rtt=rng.uniform(0.008, 0.08))
    t = conn.handshake(t)
    conn.client_data(t, client_hello(rng, host))
    # ServerHello, certificate and the rest of the server's flight: opaque to a middlebox.
    flight = _tls_record(rng, 22, SEGMENT) + b"".join(_tls_record(rng, 23, SEGMENT) for _ in range(2))
    t = conn.server_stream(t + conn.rtt, flight)
    conn.client_data(t + 0.002, b"\x14\x03\x03\x00\x01\x01" + _tls_record(rng, 23, 58))
    t += 0.003
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        conn.client_data(t, _tls_record(rng, 23, rng.randrange(120, 700)))
        records = rng.choice(TLS_RESPONSE_RECORDS)
        data = b"".join(_tls_record(rng, 23, SEGMENT) for _ in range(records))
        t = conn.server_stream(t + conn.rtt + rng.uniform(0.001, 0.03), data)
        t += rng.uniform(0.05, 1.5)
    conn.close(t)


DNS_NAMES = (
    *(h for _, h in WEB_SITES),
    "time.example.org",
    "push.example.net",
    "telemetry.example.com",
    "ocsp.example.org",
    "connectivity-check.example.test",
    "fonts.example.net",
)


def _dns_session(mix: _Mix, t: float) -> None:
    rng = mix.rng
    client = rng.choice(mix.clients)
    port = mix.ephemeral(client)
    qid = rng.getrandbits(16)
    name = rng.choice(DNS_NAMES)
    qtype = rng.choices(("A", "AAAA", "HTTPS"), weights=(6, 3, 1))[0]
    session = mix.new_session()
    query = (
        IP(src=client, dst=RESOLVER, id=rng.getrandbits(16))
        / UDP(sport=port, dport=53)
        / DNS(id=qid, rd=1, qd=[DNSQR(qname=name, qtype=qtype)])
    )
    answers: list[Any] = []
    target = name
    if rng.random() < 0.3:
        target = "edge-" + name.replace(".", "-") + ".cdn.example.net"
        answers.append(DNSRR(rrname=name, type="CNAME", ttl=300, rdata=target))
    if qtype == "A":
        for _ in range(rng.randint(1, 4)):
            addr = f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"
            answers.append(DNSRR(rrname=target, type="A", ttl=rng.choice((60, 300, 3600)), rdata=addr))
    elif qtype == "AAAA":
        for _ in range(rng.randint(1, 2)):
            addr = f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
            answers.append(DNSRR(rrname=target, type="AAAA", ttl=300, rdata=addr))
    answer = (
        IP(src=RESOLVER, dst=client, id=rng.getrandbits(16))
        / UDP(sport=53, dport=port)
        / DNS(id=qid, qr=1, rd=1, ra=1, qd=[DNSQR(qname=name, qtype=qtype)], an=answers)
    )
    mix.add(t, query, "dns", session)
    mix.add(t + rng.uniform(0.001, 0.03), answer, "dns", session)


def _icmp_session(mix: _Mix, t: float) -> None:
    rng = mix.rng
    client = rng.choice(mix.clients)
    server = rng.choice(WEB_SITES)[0]
    ident = rng.getrandbits(16)
    rtt = rng.uniform(0.008, 0.08)
    session = mix.new_session()
    for seq in range(1, rng.randint(1, 4) + 1):
        # Linux ping: a struct timeval, then bytes 0x10.. up to 56 bytes of data.
        data = struct.pack("!QQ", int(t), int(t * 1e6) % 1_000_000) + bytes(range(0x10, 0x38))
        req = IP(src=client, dst=server, id=rng.getrandbits(16)) / ICMP(type=8, id=ident, seq=seq) / data
        rep = IP(src=server, dst=client, ttl=56, id=rng.getrandbits(16)) / ICMP(type=0, id=ident, seq=seq)
        rep = rep / data
        mix.add(t, req, "icmp", session)
        mix.add(t + rtt, rep, "icmp", session)
        t += 1.0


def _udp64_session(mix: _Mix, t: float) -> None:
    rng = mix.rng
    client = rng.choice(mix.clients)
    peer = rng.choice(UDP_PEERS)
    port = mix.ephemeral(client)
    sport = rng.choice(UDP_PORTS)
    session = mix.new_session()
    for _ in range(rng.randint(10, 80)):
        # 20 + 8 + 36: every datagram is 64 bytes on the wire (IP header included), both ways.
        out = IP(src=client, dst=peer, id=rng.getrandbits(16)) / UDP(sport=port, dport=sport)
        out = out / rng.randbytes(36)
        back = IP(src=peer, dst=client, ttl=52, id=rng.getrandbits(16)) / UDP(sport=sport, dport=port)
        back = back / rng.randbytes(36)
        mix.add(t, out, "udp64", session)
        mix.add(t + rng.uniform(0.002, 0.01), back, "udp64", session)
        t += rng.uniform(0.018, 0.022)


BUILDERS: dict[str, Callable[[_Mix, float], None]] = {
    "http": _http_session,
    "tls": _tls_session,
    "dns": _dns_session,
    "icmp": _icmp_session,
    "udp64": _udp64_session,
}


@dataclass(slots=True)
class KindStats:
    kind: str
    packets: int = 0
    flows: int = 0
    ip_bytes: int = 0


@dataclass(slots=True)
class PacketMix:
    packets: list[Timed]
    kinds: list[KindStats]
    seconds: float
    clients: int

    @property
    def flows(self) -> int:
        return sum(k.flows for k in self.kinds)

    @property
    def ip_bytes(self) -> int:
        return sum(k.ip_bytes for k in self.kinds)


def build_mix(packets: int, seed: int = DEFAULT_SEED) -> PacketMix:
    """The benign packet mix: exactly ``packets`` IPv4 datagrams in time order, the same for a seed."""
    rng = random.Random(seed)
    clients = max(4, min(200, packets // 400))
    mix = _Mix(rng, clients)
    span = packets / PACKETS_PER_SECOND
    for kind, share in SHARES.items():
        budget = max(2, round(packets * share))
        while mix.count[kind] < budget:
            BUILDERS[kind](mix, T0 + rng.uniform(0.0, span))
    rows = sorted(mix.rows)[:packets]
    stats = {k: KindStats(k) for k in SHARES}
    sessions: dict[str, set[int]] = {k: set() for k in SHARES}
    for _ts, _n, raw, kind, session in rows:
        s = stats[kind]
        s.packets += 1
        s.ip_bytes += len(raw)
        sessions[kind].add(session)
    for kind, ids in sessions.items():
        stats[kind].flows = len(ids)
    out = [(ts, raw) for ts, _n, raw, _k, _s in rows]
    seconds = out[-1][0] - out[0][0] if out else 0.0
    return PacketMix(out, list(stats.values()), seconds, clients)


# -- rule sets -------------------------------------------------------------------


def synthetic_rules_yaml(count: int, seed: int = DEFAULT_SEED) -> str:
    """``count`` alert signatures as rules.yaml text: one random 8-16 byte alphanumeric content each.

    Even-numbered rules look at the payload (any protocol), odd-numbered ones
    at the HTTP URI (proto http); about a third are nocase. The first ``n``
    rules are the same for every ``count >= n`` with the same seed.
    """
    rng = random.Random(f"synthetic-rules-{seed}")
    alphabet = string.ascii_letters + string.digits
    seen: set[str] = set()
    lines = ["signatures:"]
    for i in range(count):
        content = ""
        while not content or content.lower() in seen:
            content = "".join(rng.choices(alphabet, k=rng.randint(8, 16)))
        seen.add(content.lower())
        nocase = rng.random() < 1 / 3
        lines += [
            f"  - sid: {FIRST_SYNTHETIC_SID + i}",
            f'    msg: "synthetic content rule {i + 1}"',
            "    action: alert",
        ]
        if i % 2 == 0:
            lines.append("    payload:")
        else:
            lines += ["    proto: http", "    http.uri:"]
        lines.append(f'      - content: "{content}"')
        if nocase:
            lines.append("        nocase: true")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class RulesInfo:
    name: str
    signatures: int
    rates: int
    literals: int = 0
    load_ms: float = 0.0
    build_ms: float = 0.0


def load_ruleset(rules_path: Path, extra: int, seed: int) -> tuple[RuleSet, float]:
    """The default rules plus ``extra`` synthetic signatures, and the seconds spent parsing the YAML."""
    text = rules_path.read_text(encoding="utf-8")
    start = time.perf_counter()
    ruleset = load_rules_text(text, str(rules_path), base_dir=rules_path.parent)
    if extra:
        ruleset = ruleset.merged(load_rules_text(synthetic_rules_yaml(extra, seed), "synthetic.yaml"))
    return ruleset, time.perf_counter() - start


def load_et(rules_path: Path, et_dir: Path) -> tuple[RuleSet, float]:
    """The default rules plus every loadable rule of the ET Open files in ``et_dir``, and the load time."""
    start = time.perf_counter()
    report = load_rule_files([rules_path, *sorted(et_dir.glob("*.rules"))])
    return report.ruleset, time.perf_counter() - start


# -- measuring -------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    name: str
    best_ns: int
    packets: int
    runs_ns: list[int] = field(default_factory=list)
    alerts: int | None = None

    @property
    def us_per_packet(self) -> float:
        return self.best_ns / 1000 / max(1, self.packets)

    @property
    def spread(self) -> float:
        """How much slower the slowest repetition was than the fastest (0.05: 5%)."""
        return max(self.runs_ns) / self.best_ns - 1 if self.runs_ns and self.best_ns else 0.0

    @property
    def packets_per_second(self) -> float:
        return self.packets * 1e9 / max(1, self.best_ns)


@dataclass(slots=True)
class EngineCheck:
    """What an untimed pass of one engine configuration saw."""

    alerts: int = 0
    alerts_by_sid: dict[int, int] = field(default_factory=dict)
    not_accepted: int = 0
    http_requests: int = 0
    tls_hellos: int = 0
    dns_messages: int = 0
    engine_errors: int = 0
    decode_errors: int = 0
    flows: int = 0


@dataclass(slots=True)
class _Config:
    """One timed configuration: ``make`` returns the per-packet callable for one repetition."""

    name: str
    make: Callable[[], Callable[[bytes, float], object]]
    runs: list[int] = field(default_factory=list)


class _EngineFactory:
    """Builds a fresh engine per repetition, remembering the fastest build and the literal count."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.build_s = float("inf")
        self.literals = 0

    def __call__(self) -> Callable[[bytes, float], object]:
        start = time.perf_counter()
        eng = Engine(self.ruleset)
        self.build_s = min(self.build_s, time.perf_counter() - start)
        self.literals = eng.signatures.pattern_count
        return eng.process


def _plain(fn: Callable[[bytes, float], object]) -> Callable[[], Callable[[bytes, float], object]]:
    return lambda: fn


def _time_slice(fn: Callable[[bytes, float], object], packets: Sequence[Timed]) -> int:
    start = time.perf_counter_ns()
    for ts, raw in packets:
        fn(raw, ts)
    return time.perf_counter_ns() - start


def time_repetition(configs: Sequence[_Config], packets: Sequence[Timed], slice_len: int = SLICE) -> None:
    """One repetition of every configuration over all packets; appends each one's total to its runs.

    The configurations take turns slice by slice (each keeps its own engine
    and state across slices, so every one still sees the whole packet
    sequence), starting each slice with the next configuration: a change in
    the machine's load hits them all alike.
    """
    fns = [c.make() for c in configs]  # fresh engines, built before timing
    gc.collect()
    gc.freeze()  # what exists now (packets, rule sets, engines) is left out of collections
    try:
        totals = [0] * len(configs)
        n = len(configs)
        for k, start in enumerate(range(0, len(packets), slice_len)):
            chunk = packets[start : start + slice_len]
            for j in range(n):
                i = (k + j) % n
                totals[i] += _time_slice(fns[i], chunk)
    finally:
        gc.unfreeze()
    del fns
    for c, total in zip(configs, totals, strict=True):
        c.runs.append(total)


def _scapy_dissect(raw: bytes, ts: float) -> object:
    return IP(raw)


def check_engine(ruleset: RuleSet, packets: Sequence[Timed]) -> EngineCheck:
    eng = Engine(ruleset)
    out = EngineCheck()
    sids: Counter[int] = Counter()
    for ts, raw in packets:
        res = eng.process(raw, ts)
        sids.update(a.sid for a in res.alerts)
        if res.verdict.action:
            out.not_accepted += 1
        pkt = res.packet
        out.http_requests += pkt.http is not None
        out.tls_hellos += pkt.tls_sni is not None
        out.dns_messages += pkt.dns is not None
    out.alerts = sum(sids.values())
    out.alerts_by_sid = dict(sorted(sids.items()))
    out.engine_errors = eng.stats["engine_errors"]
    out.decode_errors = sum(eng.decode_errors.values())
    out.flows = eng.flows.stats["created"]
    return out


@dataclass(slots=True)
class ProfileLine:
    function: str
    calls: int
    tottime_ms: float
    cumtime_ms: float
    share: float


def profile_engine(ruleset: RuleSet, packets: Sequence[Timed], top: int = 10) -> list[ProfileLine]:
    """cProfile of one pass of a fresh engine; the ``top`` functions by own time (tottime)."""
    eng = Engine(ruleset)
    proc = eng.process
    prof = cProfile.Profile()
    prof.enable()
    for ts, raw in packets:
        proc(raw, ts)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    lines: list[ProfileLine] = []
    for (filename, lineno, func), (_cc, ncalls, tt, ct, _callers) in sorted(
        entries.items(), key=lambda kv: kv[1][2], reverse=True
    )[:top]:
        try:
            where = str(Path(filename).resolve().relative_to(ROOT))
        except ValueError:
            where = Path(filename).name if filename != "~" else ""
        label = f"{where}:{lineno}({func})" if where else func
        lines.append(ProfileLine(label, ncalls, tt * 1000, ct * 1000, tt / total))
    return lines


# -- reporting -------------------------------------------------------------------


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.3f}" if b else "-"


def _table_rows(rows: Sequence[Row]) -> list[list[str]]:
    by_name = {r.name: r for r in rows}
    scapy_us = by_name[NAME_SCAPY].us_per_packet if NAME_SCAPY in by_name else None
    default_us = by_name[NAME_DEFAULT].us_per_packet if NAME_DEFAULT in by_name else None
    out = []
    for r in rows:
        out.append(
            [
                r.name,
                f"{r.us_per_packet:.2f}",
                f"{r.packets_per_second:,.0f}",
                _ratio(r.us_per_packet, scapy_us),
                _ratio(r.us_per_packet, default_us),
                f"{r.spread:.0%}",
                "-" if r.alerts is None else str(r.alerts),
            ]
        )
    return out


HEADERS = [
    "configuration",
    "µs/packet",
    "packets/s",
    "time ÷ Scapy",
    "time ÷ default rules",
    "spread",
    "alerts",
]
RULE_HEADERS = [
    "configuration",
    "signatures",
    "rate rules",
    "Hyperscan literals",
    "rules load ms",
    "engine build ms",
]
MIX_HEADERS = ["traffic", "packets", "flows", "IP bytes", "mean IP bytes/packet"]
PROFILE_HEADERS = ["function", "calls", "tottime ms", "cumtime ms", "share of profiled time"]


def _rule_rows(infos: Sequence[RulesInfo]) -> list[list[str]]:
    return [
        [i.name, str(i.signatures), str(i.rates), str(i.literals), f"{i.load_ms:.1f}", f"{i.build_ms:.1f}"]
        for i in infos
    ]


def _mix_rows(mix: PacketMix) -> list[list[str]]:
    rows = [
        [
            KIND_LABELS[k.kind],
            str(k.packets),
            str(k.flows),
            f"{k.ip_bytes:,}",
            f"{k.ip_bytes / max(1, k.packets):.0f}",
        ]
        for k in mix.kinds
    ]
    n = len(mix.packets)
    rows.append(["total", str(n), str(mix.flows), f"{mix.ip_bytes:,}", f"{mix.ip_bytes / max(1, n):.0f}"])
    return rows


def _profile_rows(lines: Sequence[ProfileLine]) -> list[list[str]]:
    return [
        [p.function, str(p.calls), f"{p.tottime_ms:.1f}", f"{p.cumtime_ms:.1f}", f"{p.share:.1%}"]
        for p in lines
    ]


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(slots=True)
class Report:
    command: str
    date: str
    python: str
    cpu: str
    cpus: int
    scapy_version: str
    hyperscan_version: str
    scapy_layers: str
    decoder: str
    repeat: int
    seed: int
    mix: PacketMix
    rows: list[Row]
    rules: list[RulesInfo]
    checks: dict[str, EngineCheck]
    profile: list[ProfileLine] = field(default_factory=list)

    def text(self) -> str:
        mix = self.mix
        parts = [
            f"{len(mix.packets)} packets, {mix.flows} flows, {mix.clients} clients, "
            f"{mix.seconds:.1f} s of traffic; best of {self.repeat}",
            "",
            _text_table(HEADERS, _table_rows(self.rows)),
            "",
            _text_table(RULE_HEADERS, _rule_rows(self.rules)),
        ]
        if self.profile:
            parts += [
                "",
                f"cProfile, {NAME_DEFAULT}: top {len(self.profile)} functions by tottime",
                _text_table(PROFILE_HEADERS, _profile_rows(self.profile)),
            ]
        return "\n".join(parts) + "\n"

    def markdown(self) -> str:
        mix = self.mix
        default = self.checks.get(NAME_DEFAULT)
        lines = [
            "# Engine benchmark results",
            "",
            "Produced by `bench/engine_bench.py` (see `bench/README.md`). Absolute figures depend on",
            "the machine and on what else it was running; only the ratios between rows of this one",
            "run are meaningful.",
            "",
            f"- Command: `{self.command}`",
            f"- Date: {self.date}",
            f"- Python: {self.python}",
            f"- CPU: {self.cpu} ({self.cpus} logical CPUs; the benchmark uses one)",
            f"- Scapy {self.scapy_version}, Hyperscan (python-hyperscan) {self.hyperscan_version}",
            f"- Scapy layers loaded (what `IP(raw)` dissects): {self.scapy_layers}; "
            "HTTP and TLS payloads stay `Raw`",
            f"- Decoder: {self.decoder}",
            f"- Timing: `time.perf_counter_ns`, best of {self.repeat} repetitions over all packets; a fresh "
            f"engine for every repetition; the configurations take turns every {SLICE} packets",
            "",
            "## Per-packet cost",
            "",
            _md_table(HEADERS, _table_rows(self.rows)),
            "",
            "`time ÷ X` is this row's time per packet divided by row X's (below 1: faster than X).",
            "`spread`: how much slower the slowest repetition was than the fastest (a noise gauge).",
            "`alerts` comes from an extra, untimed pass with a fresh engine.",
            "",
            "## Rule sets",
            "",
            _md_table(RULE_HEADERS, _rule_rows(self.rules)),
            "",
            "Rules load: parsing and validating the rule text into a rule set (once). Engine build:",
            "`Engine(ruleset)`, which compiles the Hyperscan databases (fastest of the repetitions).",
            "",
            "## Packet mix",
            "",
            f"{len(mix.packets)} IPv4 packets over {mix.seconds:.1f} s from {mix.clients} clients "
            f"(seed {self.seed}), built once with Scapy before any timing.",
            "",
            _md_table(MIX_HEADERS, _mix_rows(mix)),
        ]
        if default is not None:
            lines += [
                "",
                f"With the default rules the engine parsed {default.http_requests} HTTP requests, "
                f"{default.tls_hellos} TLS ClientHellos with SNI and {default.dns_messages} DNS messages; "
                f"{default.alerts} alerts, {default.not_accepted} packets not accepted, "
                f"{default.engine_errors} engine errors, {default.decode_errors} decode errors.",
            ]
        if self.profile:
            lines += [
                "",
                f"## Where the time goes ({NAME_DEFAULT})",
                "",
                "cProfile of one pass (its overhead inflates many small calls); top functions by own time:",
                "",
                _md_table(PROFILE_HEADERS, _profile_rows(self.profile)),
            ]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        mix = self.mix
        return {
            "command": self.command,
            "date": self.date,
            "python": self.python,
            "cpu": self.cpu,
            "cpus": self.cpus,
            "scapy": self.scapy_version,
            "hyperscan": self.hyperscan_version,
            "scapy_layers": self.scapy_layers,
            "decoder": self.decoder,
            "repeat": self.repeat,
            "seed": self.seed,
            "mix": {
                "packets": len(mix.packets),
                "flows": mix.flows,
                "clients": mix.clients,
                "seconds": mix.seconds,
                "kinds": [asdict(k) for k in mix.kinds],
            },
            "results": [
                {**asdict(r), "us_per_packet": r.us_per_packet, "packets_per_second": r.packets_per_second}
                for r in self.rows
            ],
            "rules": [asdict(i) for i in self.rules],
            "checks": {k: asdict(v) for k, v in self.checks.items()},
            "profile": [asdict(p) for p in self.profile],
        }


def run(args: argparse.Namespace, argv: Sequence[str]) -> Report:
    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    say(f"building {args.packets} packets with Scapy (seed {args.seed}) ...")
    mix = build_mix(args.packets, args.seed)
    packets = mix.packets
    configs: list[_Config] = []
    factories: dict[str, _EngineFactory] = {}
    loads: dict[str, tuple[int, int, float]] = {}
    checks: dict[str, EngineCheck] = {}

    def synthetic(extra: int) -> Callable[[], tuple[RuleSet, float]]:
        return lambda: load_ruleset(args.rules, extra, args.seed)

    sets: list[tuple[str, Callable[[], tuple[RuleSet, float]]]] = [
        (name, synthetic(extra))
        for name, extra in (
            (NAME_DEFAULT, 0),
            (name_with(FEW_SIGNATURES), FEW_SIGNATURES),
            (name_with(args.signatures), args.signatures),
        )
    ]
    et_dir = None if args.no_et else (args.et or default_et_dir())
    if et_dir is not None:
        sets.append((NAME_ET, lambda: load_et(args.rules, et_dir)))
    else:
        say("ET Open not found (--et DIR): its row is left out")
    for name, load in sets:
        say(f"{name}: loading rules, checking alerts ...")
        ruleset, load_s = load()
        loads[name] = (len(ruleset.signatures), len(ruleset.rates), load_s)
        checks[name] = check_engine(ruleset, packets)
        factories[name] = _EngineFactory(ruleset)
        configs.append(_Config(name, factories[name]))
    configs.append(_Config(NAME_DECODE, _plain(decode)))
    configs.append(_Config(NAME_SCAPY, _plain(_scapy_dissect)))
    for rep in range(args.repeat):
        say(
            f"repetition {rep + 1} of {args.repeat}: timing {len(configs)} configurations "
            f"x {len(packets)} packets, in turns of {SLICE} packets ..."
        )
        time_repetition(configs, packets)
    rows = [
        Row(c.name, min(c.runs), len(packets), c.runs, checks[c.name].alerts if c.name in checks else None)
        for c in configs
    ]
    infos = [
        RulesInfo(name, sigs, rates, factories[name].literals, load_s * 1000, factories[name].build_s * 1000)
        for name, (sigs, rates, load_s) in loads.items()
    ]
    profile: list[ProfileLine] = []
    if args.profile:
        say(f"{NAME_DEFAULT}: profiling ...")
        profile = profile_engine(factories[NAME_DEFAULT].ruleset, packets, args.profile)
    default_alerts = checks[NAME_DEFAULT].alerts
    if default_alerts:
        say(
            f"warning: the default rules raised {default_alerts} alerts on the benign mix: "
            f"{checks[NAME_DEFAULT].alerts_by_sid}"
        )
    return Report(
        command=results_file.command_line("bench.engine_bench", argv),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        cpu=results_file.cpu_model(),
        cpus=os.cpu_count() or 1,
        scapy_version=str(scapy.__version__),
        hyperscan_version=str(getattr(hyperscan, "__version__", "unknown")),
        decoder=(
            "compiled (`inline_ips.decode._fastdecode`)"
            if FAST_DECODE
            else f"pure Python ({FAST_DECODE_REASON})"
        ),
        scapy_layers=", ".join(
            sorted(m[len("scapy.layers.") :] for m in sys.modules if m.startswith("scapy.layers."))
        ),
        repeat=args.repeat,
        seed=args.seed,
        mix=mix,
        rows=rows,
        rules=infos,
        checks=checks,
        profile=profile,
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.engine_bench",
        description="Microseconds per packet: the engine with several rule sets, decode alone, and Scapy.",
    )
    p.add_argument(
        "--packets",
        type=results_file.positive_int,
        default=DEFAULT_PACKETS,
        help=f"packets in the mix (default {DEFAULT_PACKETS})",
    )
    p.add_argument(
        "--repeat",
        type=results_file.positive_int,
        default=DEFAULT_REPEAT,
        help=f"timed repetitions per configuration; the best counts (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--signatures",
        type=results_file.positive_int,
        default=DEFAULT_SIGNATURES,
        help=f"synthetic signatures in the large rule set (default {DEFAULT_SIGNATURES})",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the packet mix and the rules")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="the default rules (rules.yaml)")
    p.add_argument(
        "--et",
        type=Path,
        metavar="DIR",
        help="an Emerging Threats Open directory of .rules files (default: the corpus' copy)",
    )
    p.add_argument("--no-et", action="store_true", help="leave the ET Open configuration out")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the results as Markdown")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=10,
        default=0,
        metavar="N",
        help="also cProfile the default-rules engine and show the top N functions (default 10)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report = run(args, argv)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text(), end="")
    if args.markdown is not None:
        # The other benchmarks' sections (sinks, the lab) stay as they are.
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(results_file.keep_other_sections(report.markdown(), old), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
