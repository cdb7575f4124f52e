"""Build benign and attack traffic as timestamped IP packets, with Scapy.

Used by the demo and the tests to make captures that exist on any machine:
ordinary browsing, DNS look-ups, TLS handshakes and a bulk download, and the
attacks the default rules stop. Everything is deterministic for a given
seed. This module only builds packets (and writes pcaps); it sends nothing.
Scapy is fine here: this is not the per-packet path.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.packet import Packet as ScapyPacket

Timed = tuple[float, bytes]

CLIENT = "192.168.1.10"
ATTACKER = "203.0.113.66"
SERVER = "192.168.1.80"
RESOLVER = "192.168.1.53"
OUTSIDE_SITES = ["198.51.100.10", "198.51.100.20", "198.51.100.30", "198.51.100.40", "198.51.100.50"]
T0 = 1_763_800_000.0


class TcpConversation:
    """One TCP connection's sequence numbers, so the segments it builds are consistent."""

    def __init__(self, rng: random.Random, c: str, cport: int, s: str, sport: int) -> None:
        self.c, self.cport, self.s, self.sport = c, cport, s, sport
        self.cseq = rng.randrange(2**32)
        self.sseq = rng.randrange(2**32)

    def handshake(self, t: float, rtt: float) -> list[Timed]:
        out = [
            (t, self._c(flags="S", seq=self.cseq, ack=0)),
            (t + rtt / 2, self._s(flags="SA", seq=self.sseq, ack=self.cseq + 1)),
            (t + rtt, self._c(flags="A", seq=self.cseq + 1, ack=self.sseq + 1)),
        ]
        self.cseq += 1
        self.sseq += 1
        return out

    def client_data(self, t: float, data: bytes) -> Timed:
        pkt = self._c(flags="PA", seq=self.cseq, ack=self.sseq, payload=data)
        self.cseq += len(data)
        return (t, pkt)

    def server_data(self, t: float, data: bytes) -> Timed:
        pkt = self._s(flags="PA" if len(data) < 1448 else "A", seq=self.sseq, ack=self.cseq, payload=data)
        self.sseq += len(data)
        return (t, pkt)

    def client_ack(self, t: float) -> Timed:
        return (t, self._c(flags="A", seq=self.cseq, ack=self.sseq))

    def close(self, t: float, rtt: float) -> list[Timed]:
        out = [
            (t, self._c(flags="FA", seq=self.cseq, ack=self.sseq)),
            (t + rtt / 2, self._s(flags="FA", seq=self.sseq, ack=self.cseq + 1)),
            (t + rtt, self._c(flags="A", seq=self.cseq + 1, ack=self.sseq + 1)),
        ]
        return out

    def _c(self, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
        return self._segment(True, flags, seq, ack, payload)

    def _s(self, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
        return self._segment(False, flags, seq, ack, payload)

    def _segment(self, from_client: bool, flags: str, seq: int, ack: int, payload: bytes) -> bytes:
        src, sport, dst, dport = (
            (self.c, self.cport, self.s, self.sport)
            if from_client
            else (self.s, self.sport, self.c, self.cport)
        )
        window = 64240 if from_client else 65160  # what Linux clients and servers announce
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32, ack=ack % 2**32, window=window)
        return _b(IP(src=src, dst=dst) / tcp / payload)


def _b(p: ScapyPacket) -> bytes:
    return bytes(p)


def _http_exchange(rng: random.Random, t: float, site: str, path: str, size: int, cport: int) -> list[Timed]:
    conn = TcpConversation(rng, CLIENT, cport, site, 80)
    rtt = 0.02
    out = conn.handshake(t, rtt)
    req = (
        f"GET {path} HTTP/1.1\r\nHost: www.example-{site.rsplit('.', maxsplit=1)[-1]}.test\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.5\r\n"
        "Cookie: session=4f1c2a9e; theme=dark; consent=yes\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    t += rtt
    out.append(conn.client_data(t, req))
    body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % size
    body += bytes(rng.getrandbits(8) for _ in range(min(size, 4096))) * (size // 4096 + 1)
    body = body[: size + 80]
    for i in range(0, len(body), 1448):
        t += 0.0005
        out.append(conn.server_data(t, body[i : i + 1448]))
        if (i // 1448) % 2:
            out.append(conn.client_ack(t + 0.0001))
    out += conn.close(t + 0.01, rtt)
    return out


def browsing(seed: int = 1, pages: int = 30) -> list[Timed]:
    """A person browsing: pages and their resources over a few sites, with pauses."""
    rng = random.Random(seed)
    out: list[Timed] = []
    t = T0
    paths = [
        "/",
        "/index.html",
        "/news/2026/11/election-results?page=2&sort=date",
        "/search?q=weather+london+tomorrow",
        "/static/app.js",
        "/img/logo.png",
        "/api/v1/items?id=42&fields=name,price",
        "/blog/how-to-select-a-union-rep",
    ]
    for i in range(pages):
        site = OUTSIDE_SITES[i % len(OUTSIDE_SITES)]
        out += _http_exchange(rng, t, site, rng.choice(paths), rng.randrange(2000, 60000), 40000 + i)
        t += rng.uniform(0.3, 2.0)
    return sorted(out)


def dns_lookups(seed: int = 2, count: int = 60) -> list[Timed]:
    """Ordinary DNS: A/AAAA/MX/TXT queries and their answers from the local resolver."""
    rng = random.Random(seed)
    names = [
        "www.example.test",
        "mail.example.test",
        "cdn.example.net",
        "api.github.test",
        "updates.debian.test",
        "time.example.org",
    ]
    qtypes = ["A", "AAAA", "MX", "TXT"]
    out: list[Timed] = []
    t = T0
    for i in range(count):
        name = rng.choice(names)
        qt = rng.choice(qtypes)
        qid = rng.randrange(65536)
        sport = 50000 + i
        q = (
            IP(src=CLIENT, dst=RESOLVER)
            / UDP(sport=sport, dport=53)
            / DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qt))
        )
        a = (
            IP(src=RESOLVER, dst=CLIENT)
            / UDP(sport=53, dport=sport)
            / DNS(
                id=qid,
                qr=1,
                ra=1,
                rd=1,
                qd=DNSQR(qname=name, qtype=qt),
                an=DNSRR(rrname=name, type="A", ttl=300, rdata="198.51.100.7"),
            )
        )
        out.append((t, _b(q)))
        out.append((t + 0.003, _b(a)))
        t += rng.uniform(0.05, 0.5)
    return out


def client_hello(server_name: str) -> bytes:
    """A real TLS ClientHello from Python's ssl module, for the given SNI."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sock = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        sock.do_handshake()  # stops after writing the ClientHello, waiting for the server
    return outgoing.read()


def tls_sessions(seed: int = 3, count: int = 15) -> list[Timed]:
    """HTTPS: handshake, ClientHello with SNI, then opaque records both ways."""
    rng = random.Random(seed)
    out: list[Timed] = []
    t = T0
    for i in range(count):
        site = OUTSIDE_SITES[i % len(OUTSIDE_SITES)]
        conn = TcpConversation(rng, CLIENT, 45000 + i, site, 443)
        out += conn.handshake(t, 0.02)
        out.append(conn.client_data(t + 0.03, client_hello(f"www.site{i}.example")))
        for k in range(20):
            rec = b"\x17\x03\x03" + (1400).to_bytes(2, "big") + bytes(rng.getrandbits(8) for _ in range(1400))
            out.append(conn.server_data(t + 0.05 + k * 0.001, rec[:1448]))
        out += conn.close(t + 0.2, 0.02)
        t += rng.uniform(0.2, 1.0)
    return sorted(out)


def bulk_download(seed: int = 4, megabytes: int = 20, mbit_per_s: float = 200.0) -> list[Timed]:
    """One large HTTP download at a steady rate (a software update, say)."""
    rng = random.Random(seed)
    conn = TcpConversation(rng, CLIENT, 39000, OUTSIDE_SITES[0], 80)
    t = T0
    out = conn.handshake(t, 0.02)
    t += 0.02
    out.append(
        conn.client_data(
            t,
            b"GET /debian/pool/main/l/linux/linux-image.deb HTTP/1.1\r\n"
            b"Host: deb.example.test\r\nUser-Agent: Debian APT-HTTP/1.3\r\n\r\n",
        )
    )
    chunk = bytes(rng.getrandbits(8) for _ in range(1448))
    per_pkt = 1448 * 8 / (mbit_per_s * 1e6)
    for i in range(megabytes * 1024 * 1024 // 1448):
        t += per_pkt
        out.append(conn.server_data(t, chunk))
        if i % 2:
            out.append(conn.client_ack(t + 0.00005))
    out += conn.close(t + 0.01, 0.02)
    return out


def benign_mix(seed: int = 7) -> list[Timed]:
    return sorted(
        browsing(seed) + dns_lookups(seed + 1) + tls_sessions(seed + 2) + bulk_download(seed + 3, 5)
    )


# ---- attacks ---------------------------------------------------------------


def _random_ipv4(rng: random.Random) -> str:
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def syn_flood(count: int = 6000, rate: float = 20000.0, seed: int = 10) -> list[Timed]:
    """Spoofed-source SYN flood on the server's web port (hping3 --flood --rand-source)."""
    rng = random.Random(seed)
    return [
        (
            T0 + i / rate,
            _b(
                IP(
                    src=_random_ipv4(rng),
                    dst=SERVER,
                )
                / TCP(
                    sport=rng.randrange(1024, 65536),
                    dport=80,
                    flags="S",
                    seq=rng.randrange(2**32),
                    window=512,
                )
            ),
        )
        for i in range(count)
    ]


def port_scan(ports: Iterable[int] = range(1, 1025), rate: float = 1000.0) -> list[Timed]:
    """nmap -sS: one SYN per port from one source."""
    return [
        (T0 + i / rate, _b(IP(src=ATTACKER, dst=SERVER) / TCP(sport=55555, dport=p, flags="S", window=1024)))
        for i, p in enumerate(ports)
    ]


def ping_sweep(hosts: int = 254, rate: float = 200.0) -> list[Timed]:
    return [
        (T0 + i / rate, _b(IP(src=ATTACKER, dst=f"192.168.1.{i + 1}") / ICMP(type=8, id=77, seq=i)))
        for i in range(hosts)
    ]


def icmp_flood(count: int = 5000, rate: float = 10000.0) -> list[Timed]:
    return [
        (T0 + i / rate, _b(IP(src=ATTACKER, dst=SERVER) / ICMP(type=8, id=9, seq=i % 65536) / (b"x" * 56)))
        for i in range(count)
    ]


def dns_amplification(count: int = 300, rate: float = 200.0, seed: int = 11) -> list[Timed]:
    """Large DNSSEC answers from many open resolvers to a victim that never asked, fragmented."""
    rng = random.Random(seed)
    out: list[Timed] = []
    for i in range(count):
        resolver = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        ans = (
            IP(src=resolver, dst=SERVER, id=rng.randrange(65536))
            / UDP(sport=53, dport=rng.randrange(1024, 65536))
            / DNS(
                id=rng.randrange(65536),
                qr=1,
                qd=DNSQR(qname="example.org", qtype=255),
                an=[DNSRR(rrname="example.org", type="TXT", ttl=300, rdata="v" * 250) for _ in range(12)],
            )
        )
        for frag in fragment(ans, fragsize=1480):  # type: ignore[no-untyped-call]
            out.append((T0 + i / rate, _b(frag)))
    return out


def http_attacks() -> list[Timed]:
    """SQL injection and path traversal requests (curl), each on its own connection."""
    rng = random.Random(12)
    out: list[Timed] = []
    paths = [
        "/products.php?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
        "/login.php?user=admin%27%20or%20%271%27%3D%271&pass=x",
        "/download.php?file=../../../../etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fshadow",
    ]
    for i, path in enumerate(paths):
        conn = TcpConversation(rng, ATTACKER, 41000 + i, SERVER, 80)
        t = T0 + i
        out += conn.handshake(t, 0.01)
        out.append(
            conn.client_data(
                t + 0.02,
                f"GET {path} HTTP/1.1\r\nHost: victim.test\r\n"
                f"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n".encode(),
            )
        )
    return out


ATTACKS: dict[str, Callable[[], list[Timed]]] = {
    "SYN flood": syn_flood,
    "port scan": port_scan,
    "ping sweep": ping_sweep,
    "ICMP flood": icmp_flood,
    "DNS amplification": dns_amplification,
    "SQL injection / path traversal": http_attacks,
}

BENIGN: dict[str, Callable[[], list[Timed]]] = {
    "web browsing": browsing,
    "DNS look-ups": dns_lookups,
    "TLS sessions": tls_sessions,
    "bulk download": bulk_download,
}


def write_pcap(path: str | Path, packets: list[Timed]) -> Path:
    """Write timestamped IP packets as a classic pcap with link type 101 (raw IP)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for ts, raw in packets:
            sec = int(ts)
            usec = round((ts - sec) * 1e6)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            f.write(struct.pack("<IIII", sec, usec, len(raw), len(raw)))
            f.write(raw)
    return Path(path)
