"""100,000+ random and mutated packets through the whole engine.

``Engine.process`` never lets an exception out (fail open), so "no exception
escapes" is checked where it can fail: the engine's own count of internal
errors must stay at zero, and every packet must come back with a verdict.
Seeds are real packets of every kind the default rules look at; mutations
flip bits, truncate, splice and rewrite header fields (IHL, lengths, TCP
offset, fragment bits), which is where decoders break. Deterministic seed.
"""

from __future__ import annotations

import random

from inline_ips.engine import Engine
from inline_ips.lab import synth
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.yaml_loader import load_rules_text
from inline_ips.verdict import Action
from tests.corpus import DEFAULT_RULES

TOTAL = 100_000

EXTRA_RULES = """
normalize: {tcp_mss_max: 1200, ttl_min: 5, ttl_set: 64}
signatures:
  - sid: 9000001
    msg: fuzz payload
    proto: tcp
    payload: [{content: "GET", offset: 0, depth: 3}, {content: "HTTP", distance: 1, within: 200}]
  - {sid: 9000002, msg: fuzz dns, proto: dns, dns.query: [{content: "example", nocase: true}]}
  - {sid: 9000003, msg: fuzz tls, proto: tls, tls.sni: [{regex: '^www\\.'}]}
  - sid: 9000004
    msg: fuzz header
    proto: http
    http.header: [{content: "Cookie"}]
    http.host: [{content: "example"}]
  - sid: 9000005
    msg: fuzz rewrite
    proto: tcp
    action: rewrite
    payload: [{content: "keep-alive", replace: "close-okay"}]
  - {sid: 9000006, msg: fuzz udp, proto: udp, payload: [{regex: '(a|b)*c'}]}
"""


def _seeds() -> list[bytes]:
    packets = (
        synth.browsing(pages=3)
        + synth.dns_lookups(count=10)
        + synth.tls_sessions(count=2)
        + synth.dns_amplification(count=3)
        + synth.http_attacks()
        + synth.port_scan(range(1, 20))
        + synth.ping_sweep(5)
        + synth.syn_flood(5)
    )
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop

    v6 = [
        bytes(
            IPv6(src="2001:db8::1", dst="2001:db8::2")
            / TCP(sport=1234, dport=80, flags="PA")
            / b"GET / HTTP/1.1\r\n\r\n"
        ),
        bytes(
            IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrHopByHop()
            / UDP(sport=53, dport=5353)
            / (b"x" * 40)
        ),
        bytes(
            IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(m=1, id=7) / UDP() / (b"y" * 64)
        ),
        bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=1, seq=2)),
    ]
    return [raw for _, raw in packets] + v6


def _mutate(rng: random.Random, pkt: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(pkt)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and b:  # bit flips
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # truncate
            del b[rng.randrange(len(b)) :]
        elif op == 2:  # insert random bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and len(b) > 20:  # IPv4 header fields: IHL, total length, frag bits/offset
            field = rng.choice([0, 2, 3, 6, 7])
            b[field] = rng.randrange(256)
        elif op == 4 and len(b) > 33:  # TCP data offset / UDP length
            b[32 if b[9] == 6 else 24] = rng.randrange(256)
        elif op == 5:  # splice with another packet
            other = rng.choice(seeds)
            cut = rng.randrange(len(b) + 1)
            b = b[:cut] + other[rng.randrange(len(other) + 1) :]
        elif op == 6 and len(b) > 40:  # payload garbage
            start = rng.randrange(20, len(b))
            b[start:] = rng.randbytes(len(b) - start)
    return bytes(b)


def test_fuzz_engine_never_fails() -> None:
    rules = load_rule_files([DEFAULT_RULES]).ruleset.merged(load_rules_text(EXTRA_RULES, "fuzz.yaml"))
    engine = Engine(rules)
    rng = random.Random(20261122)
    seeds = _seeds()
    ts = 1_763_800_000.0
    verdicts = 0
    for i in range(TOTAL):
        r = rng.random()
        if r < 0.15:
            raw = rng.randbytes(rng.randrange(0, 1600))
        elif r < 0.25:
            raw = rng.choice(seeds)  # valid packets keep flows and rate windows busy
        else:
            raw = _mutate(rng, rng.choice(seeds), seeds)
        ts += rng.random() * 0.001
        res = engine.process(raw, ts)
        assert isinstance(res.verdict.action, Action)
        verdicts += 1
        if i % 20_000 == 0:
            assert engine.stats["engine_errors"] == 0, dict(engine.engine_errors)
    assert verdicts == TOTAL
    assert engine.stats["packets"] == TOTAL
    assert engine.stats["engine_errors"] == 0, dict(engine.engine_errors)
    # The mix must really reach the decoders' error paths and the detectors.
    assert sum(engine.decode_errors.values()) > 10_000
    assert engine.flows.stats["created"] > 1_000
