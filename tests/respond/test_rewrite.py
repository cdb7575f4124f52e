"""Tests for inline_ips.respond.rewrite: byte replacements with checksums kept right.

The reference is Scapy: after a rewrite the bytes must equal Scapy's own
serialisation of the same datagram with the bytes replaced and every
checksum recomputed from scratch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.packet import Packet, Raw

from inline_ips.respond.rewrite import apply_replacements, checksum_ok, clamp_mss, set_ttl

V4: dict[str, Any] = {"src": "192.0.2.1", "dst": "198.51.100.7"}
V6: dict[str, Any] = {"src": "2001:db8::1", "dst": "2001:db8:0:1::77"}
Reps = list[tuple[int, bytes]]


def reference(raw: bytes, reps: Reps) -> bytes:
    """Scapy's serialisation of ``raw`` with ``reps`` applied and every checksum recomputed."""
    buf = bytearray(raw)
    for off, new in reps:
        buf[off : off + len(new)] = new
    pkt: Packet = (IP if raw[0] >> 4 == 4 else IPv6)(bytes(buf))
    layer: Packet | None = pkt
    while layer is not None and not isinstance(layer, Raw) and layer.name != "NoPayload":
        for field in ("chksum", "cksum"):
            if field in layer.fields:
                delattr(layer, field)
        layer = layer.payload
    return bytes(pkt)


def at(marker: bytes, new: bytes, skip: int = 0) -> Callable[[bytes], Reps]:
    """A replacement of ``new`` where ``marker`` starts in the datagram, ``skip`` bytes in."""

    def where(raw: bytes) -> Reps:
        return [(raw.index(marker) + skip, new)]

    return where


def fixed(off: int, new: bytes) -> Callable[[bytes], Reps]:
    return lambda raw: [(off, new)]


CASES: list[tuple[str, Packet, Callable[[bytes], Reps]]] = [
    ("v4 tcp even", IP(**V4) / TCP(sport=1, dport=80) / b"GET /hello HTTP/1.0", at(b"hello", b"HELLO")),
    ("v4 tcp odd offset+length", IP(**V4) / TCP() / b"xhello!", at(b"hello", b"ELL", 1)),
    ("v4 tcp last byte", IP(**V4) / TCP() / b"abcdefg", at(b"g", b"G")),
    ("v4 udp", IP(**V4) / UDP(sport=53, dport=5353) / b"say hello", at(b"hello", b"HELLO")),
    ("v4 udp odd length", IP(**V4) / UDP() / b"hello world!!", at(b"o w", b"0_W")),
    ("v4 icmp echo", IP(**V4) / ICMP(id=7) / b"ping hello", at(b"hello", b"jello")),
    (
        "v4 options tcp",
        IP(options=[IPOption_Router_Alert()], **V4) / TCP() / b"hello",
        at(b"hello", b"HELLO"),
    ),
    ("v4 tcp port", IP(**V4) / TCP(sport=1234, dport=80) / b"x", fixed(22, b"\x1f\x90")),
    ("v4 src address", IP(**V4) / TCP() / b"x", fixed(12, bytes([10, 1, 2, 3]))),
    ("v4 dst half address odd", IP(**V4) / UDP() / b"x", fixed(17, b"\x99\x98\x97")),
    ("v4 tos ttl id", IP(**V4) / UDP() / b"x", fixed(4, b"\xab\xcd")),
    ("v4 icmp src address", IP(**V4) / ICMP() / b"x", fixed(12, bytes([10, 0, 0, 1]))),
    ("v6 tcp", IPv6(**V6) / TCP() / b"hello there", at(b"hello", b"HELLO")),
    ("v6 udp odd", IPv6(**V6) / UDP() / b"hello there", at(b"there", b"THE")),
    ("v6 icmpv6 echo", IPv6(**V6) / ICMPv6EchoRequest(data=b"hello"), at(b"hello", b"HELLO")),
    (
        "v6 ext headers udp",
        IPv6(**V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP() / b"hello",
        at(b"hello", b"HELLO"),
    ),
    ("v6 dst address", IPv6(**V6) / TCP() / b"x", fixed(38, b"\x12\x34")),
    ("v6 hop limit", IPv6(**V6) / UDP() / b"x", fixed(7, b"\x05")),
]


@pytest.mark.parametrize(("name", "pkt", "where"), CASES, ids=[c[0] for c in CASES])
def test_apply_replacements_matches_scapy(name: str, pkt: Packet, where: Callable[[bytes], Reps]) -> None:
    raw = bytes(pkt)
    assert checksum_ok(raw)
    reps = where(raw)
    out = apply_replacements(raw, reps)
    assert out != raw
    assert out == reference(raw, reps)
    assert checksum_ok(out)


def test_several_replacements_overlapping() -> None:
    raw = bytes(IP(**V4) / UDP() / b"hello hello hello")
    i = raw.index(b"hello")
    reps = [(i, b"HELLO"), (i + 6, b"HELLO"), (i + 3, b"--x--")]
    out = apply_replacements(raw, reps)
    assert out.endswith(b"HEL--x--LLO hello")
    assert out == reference(raw, reps)


def test_random_payload_rewrites() -> None:
    rng = random.Random(20240611)
    builders: list[Callable[[bytes], Packet]] = [
        lambda p: IP(**V4) / TCP(sport=rng.randrange(1, 65536), seq=rng.randrange(1 << 32)) / p,
        lambda p: IP(**V4) / UDP(sport=rng.randrange(1, 65536)) / p,
        lambda p: IP(**V4) / ICMP(id=rng.randrange(65536)) / p,
        lambda p: IPv6(**V6) / TCP(sport=rng.randrange(1, 65536)) / p,
        lambda p: IPv6(**V6) / UDP(sport=rng.randrange(1, 65536)) / p,
        lambda p: IPv6(**V6) / ICMPv6EchoRequest(data=p),
    ]
    for i in range(600):
        payload = rng.randbytes(rng.randrange(1, 1400))
        raw = bytes(builders[i % len(builders)](payload))
        start = len(raw) - len(payload)
        reps: Reps = []
        for _ in range(rng.randrange(1, 4)):
            off = rng.randrange(start, len(raw))
            reps.append((off, rng.randbytes(rng.randrange(0, len(raw) - off + 1))))
        out = apply_replacements(raw, reps)
        assert out == reference(raw, reps), (i, reps)
        assert checksum_ok(out)


def test_nothing_to_change_returns_the_same_object() -> None:
    raw = bytes(IP(**V4) / UDP() / b"hello")
    assert apply_replacements(raw, []) is raw
    assert apply_replacements(raw, [(raw.index(b"hello"), b"hello")]) == raw


def test_udp_without_checksum_stays_without() -> None:
    raw = bytes(IP(**V4) / UDP(chksum=0) / b"hello")
    out = apply_replacements(raw, [(raw.index(b"hello"), b"HELLO")])
    assert out[26:28] == b"\x00\x00" and out.endswith(b"HELLO")
    assert checksum_ok(out)


def test_udp_computed_zero_is_sent_as_ffff() -> None:
    raw = bytes(IP(**V4) / UDP(sport=1, dport=2) / b"ab")
    ck = int.from_bytes(raw[26:28], "big")
    old = int.from_bytes(b"ab", "big")
    new = ((ck + old) % 0xFFFF).to_bytes(2, "big")  # the word that brings the checksum to zero
    out = apply_replacements(raw, [(28, new)])
    assert out[26:28] == b"\xff\xff"
    assert checksum_ok(out)
    assert out == reference(raw, [(28, new)])


def test_a_wrong_checksum_stays_exactly_as_wrong() -> None:
    good = bytes(IP(**V4) / TCP() / b"hello")
    bad = good[:36] + ((int.from_bytes(good[36:38], "big") + 1) % 0x10000).to_bytes(2, "big") + good[38:]
    assert not checksum_ok(bad)
    i = good.index(b"hello")
    fixed_good = apply_replacements(good, [(i, b"HELLO")])
    fixed_bad = apply_replacements(bad, [(i, b"HELLO")])
    assert not checksum_ok(fixed_bad)
    assert int.from_bytes(fixed_bad[36:38], "big") - int.from_bytes(fixed_good[36:38], "big") in (1, -0xFFFE)


def _fragments(whole: bytes, cut: int) -> tuple[bytes, bytes]:
    """Split an IPv4 datagram (20-byte header) at ``cut`` bytes of payload (a multiple of 8)."""
    ip = IP(whole)
    first = IP(src=ip.src, dst=ip.dst, proto=ip.proto, id=99, flags="MF") / Raw(whole[20 : 20 + cut])
    second = IP(src=ip.src, dst=ip.dst, proto=ip.proto, id=99, frag=cut // 8) / Raw(whole[20 + cut :])
    return bytes(first), bytes(second)


def test_first_fragment_checksum_covers_the_whole_datagram() -> None:
    whole = bytes(IP(**V4) / UDP(sport=5, dport=6) / (b"hello" + b"x" * 40))
    first, second = _fragments(whole, 16)
    out = apply_replacements(first, [(first.index(b"hello"), b"HELLO")])
    assert checksum_ok(out)  # the IPv4 header
    rebuilt = bytes(IP(src=V4["src"], dst=V4["dst"], proto=17) / Raw(out[20:] + second[20:]))
    assert checksum_ok(rebuilt) and b"HELLO" in rebuilt


def test_non_first_fragment() -> None:
    whole = bytes(IP(**V4) / UDP() / (b"x" * 16 + b"hello" + b"y" * 11))
    _, second = _fragments(whole, 16)
    assert checksum_ok(set_ttl(second, 9))  # header changes are fine
    with pytest.raises(ValueError, match="fragment"):
        apply_replacements(second, [(second.index(b"hello"), b"HELLO")])
    with pytest.raises(ValueError, match="fragment"):
        apply_replacements(second, [(12, b"\x0a")])  # the address is in the first fragment's checksum
    v6 = bytes(IPv6(**V6) / IPv6ExtHdrFragment(offset=2, nh=17) / b"later bytes of hello")
    with pytest.raises(ValueError, match="fragment"):
        apply_replacements(v6, [(v6.index(b"hello"), b"HELLO")])


@pytest.mark.parametrize(
    ("raw", "reps", "match"),
    [
        (bytes(IP(**V4) / UDP() / b"x")[:-1], [(20, b"\0")], "truncated"),
        (bytes(IP(**V4) / UDP() / b"x"), [(28, b"xy")], "outside"),
        (bytes(IP(**V4) / UDP() / b"x"), [(-1, b"x")], "outside"),
        (bytes(IP(**V4) / UDP() / b"x"), [(2, b"\0\x30")], "structural"),  # total length
        (bytes(IP(**V4) / UDP() / b"x"), [(9, b"\x06")], "structural"),  # protocol
        (bytes(IP(**V4) / UDP() / b"x"), [(10, b"\0\0")], "structural"),  # header checksum
        (bytes(IP(**V4) / UDP() / b"x"), [(0, b"\x46")], "structural"),  # IHL
        (bytes(IP(**V4) / UDP() / b"x"), [(25, b"\0\0")], "L4 checksum"),
        (bytes(IP(**V4) / TCP() / b"x"), [(36, b"\0")], "L4 checksum"),
        (bytes(IPv6(**V6) / UDP() / b"x"), [(6, b"\x06")], "structural"),  # next header
        (bytes(IPv6(**V6) / UDP() / b"x"), [(4, b"\0\x10")], "structural"),  # payload length
        (bytes(IPv6(**V6) / UDP() / b"x"), [(0, b"\x40")], "version"),
        (bytes(IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP() / b"x"), [(41, b"\1")], "structural"),
        (b"\x15" + bytes(40), [(30, b"x")], "version"),
        (b"\x45\x00", [(0, b"x")], "shorter"),
    ],
)
def test_refused_replacements(raw: bytes, reps: Reps, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        apply_replacements(raw, reps)


def test_checksum_ok_detects_each_checksum() -> None:
    for pkt, offsets in (
        (IP(**V4) / TCP() / b"data", (10, 36)),
        (IP(**V4) / UDP() / b"data", (10, 26)),
        (IP(**V4) / ICMP() / b"data", (10, 22)),
        (IPv6(**V6) / UDP() / b"data", (46,)),
        (IPv6(**V6) / ICMPv6EchoRequest(data=b"d"), (42,)),
    ):
        raw = bytes(pkt)
        assert checksum_ok(raw)
        for off in offsets:
            broken = raw[:off] + bytes([raw[off] ^ 0x40]) + raw[off + 1 :]
            assert not checksum_ok(broken), (pkt.summary(), off)
    assert not checksum_ok(b"\x45")
    assert not checksum_ok(bytes(IP(**V4) / UDP() / b"x")[:-1])


# -- MSS clamping and TTL ----------------------------------------------------------

SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
NOP_FIRST = [("NOP", None), ("NOP", None), ("Timestamp", (1, 0)), ("MSS", 9000)]


@pytest.mark.parametrize(
    ("ip", "flags", "options", "mss", "expect"),
    [
        (IP(**V4), "S", SYN_OPTS, 1400, 1400),
        (IP(**V4), "SA", SYN_OPTS, 1400, 1400),
        (IPv6(**V6), "S", SYN_OPTS, 1220, 1220),
        (IP(**V4), "S", NOP_FIRST, 1452, 1452),
        (IP(**V4), "S", SYN_OPTS, 1500, None),  # already smaller
        (IP(**V4), "S", SYN_OPTS, 1460, None),  # equal
        (IP(**V4), "A", SYN_OPTS, 1400, None),  # not a SYN
        (IP(**V4), "S", [("WScale", 7)], 1400, None),  # no MSS option
    ],
)
def test_clamp_mss(
    ip: Packet, flags: str, options: list[tuple[str, object]], mss: int, expect: int | None
) -> None:
    raw = bytes(ip / TCP(sport=40000, dport=443, flags=flags, options=options))
    out = clamp_mss(raw, mss)
    if expect is None:
        assert out is raw
        return
    want = [(k, expect if k == "MSS" else v) for k, v in options]
    assert out == bytes(ip / TCP(sport=40000, dport=443, flags=flags, options=want))
    assert checksum_ok(out)


def test_clamp_mss_leaves_others_alone() -> None:
    udp = bytes(IP(**V4) / UDP() / b"\x02\x04\xff\xff")
    assert clamp_mss(udp, 1000) is udp
    broken = bytes(IP(**V4) / TCP(flags="S", options=[("MSS", 1460)]))
    broken = broken[:41] + b"\x00" + broken[42:]  # option length 0: malformed, not followed
    assert clamp_mss(broken, 1000) is broken
    with pytest.raises(ValueError):
        clamp_mss(udp, 0)


@pytest.mark.parametrize("pkt", [IP(**V4) / TCP() / b"x", IPv6(**V6) / UDP() / b"x"], ids=["v4", "v6"])
def test_set_ttl(pkt: Packet) -> None:
    raw = bytes(pkt)
    out = set_ttl(raw, 3)
    want = pkt.copy()
    if IP in want:
        want[IP].ttl = 3
    else:
        want[IPv6].hlim = 3
    assert out == bytes(want)
    assert checksum_ok(out)
    with pytest.raises(ValueError):
        set_ttl(raw, 256)
