"""Reproducible fuzzing of decode() and the Defragmenter: nothing may raise.

At least 100,000 inputs: random bytes (often with a plausible version nibble
so the IP decoders are reached) and mutations (bit flips, truncations, byte
insertions/deletions, overwritten length fields) of valid IPv4/IPv6
TCP/UDP/ICMP packets and fragments. Every fragment piece goes through a small
Defragmenter so eviction, expiry and the size bounds are exercised too.
"""

from __future__ import annotations

import random
import time

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.inet6 import (
    fragment6 as scapy_fragment6,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import DECODE_ERRORS, decode
from inline_ips.decode.defrag import Defragmenter
from inline_ips.packet import FRAG_PIECE, Packet


def fragment(pkt: ScapyPacket, fragsize: int) -> list[ScapyPacket]:
    """Scapy's IPv4 ``fragment()``, typed."""
    return list(scapy_fragment(pkt, fragsize=fragsize))  # type: ignore[no-untyped-call]


def fragment6(pkt: ScapyPacket, mtu: int) -> list[ScapyPacket]:
    """Scapy's ``fragment6()``, typed."""
    return list(scapy_fragment6(pkt, mtu))  # type: ignore[no-untyped-call]


SEED = 0x1B5
N_RANDOM = 30_000
N_MUTATED = 75_000


def _seeds() -> list[bytes]:
    v4 = IP(src="10.0.0.1", dst="10.0.0.2", id=77)
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    whole = [
        v4 / TCP(sport=40000, dport=80, flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
        v4
        / TCP(
            sport=40000, dport=80, flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
        )
        / Raw(b"GET / HTTP/1.1\r\n\r\n"),
        v4 / UDP(sport=5353, dport=53) / DNS(rd=1, qd=DNSQR(qname="www.example.com")),
        v4 / ICMP(type=8, id=1, seq=2) / Raw(b"ping"),
        IP(src="1.2.3.4", dst="5.6.7.8", options=[IPOption_RR(routers=["9.9.9.9"] * 3)]) / TCP() / Raw(b"o"),
        v6 / TCP(sport=1, dport=443, flags="A") / Raw(b"x" * 64),
        v6
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=53, dport=53)
        / Raw(b"q" * 20),
        v6 / ICMPv6EchoRequest(id=5, seq=6, data=b"ping6"),
    ]
    seeds = [bytes(p) for p in whole]
    seeds += [bytes(f) for f in fragment(v4 / UDP(sport=1, dport=2) / Raw(b"f" * 1200), fragsize=400)]
    seeds += [
        bytes(f)
        for f in fragment6(v6 / IPv6ExtHdrFragment(id=9) / TCP(sport=3, dport=4) / Raw(b"g" * 2000), 1280)
    ]
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncation
            del buf[rng.randint(0, len(buf)) :]
        elif op == 2:  # byte insertion
            i = rng.randint(0, len(buf))
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and buf:  # byte deletion
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 8)]
        elif op == 4 and buf:  # overwrite where length/offset fields live
            i = rng.choice((0, 2, 3, 4, 5, 6, 7, 9, 20, 24, 32, 33, 40, 41, 44, 46, 52, 60)) % len(buf)
            buf[i] = rng.randrange(256)
        else:  # append garbage (looks like padding or extra data)
            buf += rng.randbytes(rng.randint(1, 64))
    return bytes(buf)


def _check(pkt: object, defrag: Defragmenter) -> int:
    assert isinstance(pkt, Packet)
    assert pkt.error is None or pkt.error in DECODE_ERRORS
    assert pkt.error != "internal_error", pkt
    if pkt.payload:
        assert pkt.raw[pkt.payload_offset : pkt.payload_offset + len(pkt.payload)] == pkt.payload
    if pkt.frag != FRAG_PIECE:
        return 0
    whole = defrag.feed(pkt)
    if whole is None:
        return 0
    again = decode(whole, pkt.ts)
    assert isinstance(again, Packet)
    assert again.error != "internal_error", again
    return 1


def test_fuzz_decode_and_defrag() -> None:
    rng = random.Random(SEED)
    seeds = _seeds()
    defrag = Defragmenter(
        max_datagrams=64, max_datagram_bytes=8000, timeout=2.0, max_fragments_per_datagram=8
    )
    started = time.perf_counter()
    count = reassembled = 0
    ts = 0.0

    for _ in range(N_RANDOM):
        raw = rng.randbytes(rng.randint(0, 1600))
        if raw and rng.random() < 0.7:
            # Mostly reach the IP decoders rather than stop at the version nibble.
            raw = bytes([rng.choice((0x40, 0x60)) | (raw[0] & 0x0F)]) + raw[1:]
        ts += 0.001
        reassembled += _check(decode(raw, ts), defrag)
        count += 1

    for _ in range(N_MUTATED):
        seed = rng.choice(seeds)
        raw = _mutate(rng, seed)
        ts += 0.001
        reassembled += _check(decode(raw, ts), defrag)
        count += 1

    # Unmutated fragments, shuffled and repeated, must still reassemble.
    frag_seeds = [s for s in seeds if decode(s, 0.0).frag == FRAG_PIECE]
    for _ in range(200):
        batch = frag_seeds[:]
        rng.shuffle(batch)
        ts += 0.01
        for raw in batch:
            reassembled += _check(decode(raw, ts), defrag)
            count += 1

    elapsed = time.perf_counter() - started
    assert count >= 100_000
    assert reassembled >= 200
    assert len(defrag) <= 64
    assert elapsed < 30.0
