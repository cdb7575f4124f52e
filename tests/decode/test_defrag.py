"""Fragment reassembly: orders, duplicates, overlaps, IPv6 and every bound."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.inet6 import (
    fragment6 as scapy_fragment6,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import decode
from inline_ips.decode.defrag import STAT_KEYS, Defragmenter
from inline_ips.packet import FRAG_NONE, FRAG_PIECE, Packet


def fragment(pkt: ScapyPacket, fragsize: int) -> list[ScapyPacket]:
    """Scapy's IPv4 ``fragment()``, typed."""
    return list(scapy_fragment(pkt, fragsize=fragsize))  # type: ignore[no-untyped-call]


def fragment6(pkt: ScapyPacket, mtu: int) -> list[ScapyPacket]:
    """Scapy's ``fragment6()``, typed."""
    return list(scapy_fragment6(pkt, mtu))  # type: ignore[no-untyped-call]


PAYLOAD = bytes(range(256)) * 12  # 3072 bytes, position-dependent content


def _v4(ident: int = 0x4242, payload: bytes = PAYLOAD) -> ScapyPacket:
    return IP(src="10.0.0.1", dst="10.0.0.2", id=ident) / UDP(sport=1234, dport=5678) / Raw(payload)


def _pieces(frags: Iterable[ScapyPacket], ts: float = 0.0) -> list[Packet]:
    out = [decode(bytes(f), ts) for f in frags]
    assert all(p.frag == FRAG_PIECE for p in out)
    return out


def _feed_all(d: Defragmenter, pieces: Iterable[Packet]) -> list[bytes]:
    return [r for r in (d.feed(p) for p in pieces) if r is not None]


def assert_same_l4(reassembled: bytes, original: bytes) -> None:
    got, want = decode(reassembled, 0.0), decode(original, 0.0)
    assert got.error is None
    assert got.frag == FRAG_NONE
    for field in (
        "ip_version",
        "src",
        "dst",
        "proto",
        "sport",
        "dport",
        "udp_len",
        "tcp_seq",
        "tcp_flags",
        "payload",
        "l4_offset",
        "ip_len",
    ):
        assert getattr(got, field) == getattr(want, field), field


ORDERS: dict[str, Callable[[int], list[int]]] = {
    "in_order": lambda n: list(range(n)),
    "reversed": lambda n: list(range(n))[::-1],
    "last_first": lambda n: [n - 1, *range(n - 1)],
    "shuffled": lambda n: random.Random(7).sample(range(n), n),
}


@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
def test_ipv4_orders(order: str) -> None:
    orig = _v4()
    frags = fragment(orig, fragsize=512)
    pieces = _pieces(frags)
    d = Defragmenter()
    results = [d.feed(pieces[i]) for i in ORDERS[order](len(pieces))]
    assert all(r is None for r in results[:-1])
    out = results[-1]
    assert out is not None
    # The original had no flags, so the rebuilt datagram is byte-identical.
    assert out == bytes(orig)
    assert IP(out).chksum == IP(bytes(orig)).chksum
    assert_same_l4(out, bytes(orig))
    assert d.stats["reassembled"] == 1
    assert len(d) == 0


def test_ipv4_with_options_and_df_kept() -> None:
    from scapy.layers.inet import IPOption_RR

    orig = (
        IP(src="1.1.1.1", dst="2.2.2.2", id=9, options=[IPOption_RR(routers=["3.3.3.3"])])
        / TCP(sport=80, dport=81, flags="PA", seq=77)
        / Raw(PAYLOAD)
    )
    frags = fragment(orig, fragsize=800)
    d = Defragmenter()
    out = _feed_all(d, _pieces(frags))
    assert len(out) == 1
    assert_same_l4(out[0], bytes(orig))
    ip = IP(out[0])
    assert ip.ihl == 7
    del ip.chksum
    assert IP(bytes(ip)).chksum == IP(out[0]).chksum


def test_duplicates_are_counted_and_harmless() -> None:
    pieces = _pieces(fragment(_v4(), fragsize=512))
    d = Defragmenter()
    seq = [pieces[0], pieces[0], pieces[1], pieces[1], *pieces[2:]]
    out = _feed_all(d, seq)
    assert out == [bytes(_v4())]
    assert d.stats["duplicates"] == 2
    assert d.stats["overlaps"] == 0


def _frag(offset: int, data: bytes, more: bool, ident: int = 5, proto: int = 17) -> Packet:
    raw = bytes(
        IP(src="10.9.9.1", dst="10.9.9.2", id=ident, proto=proto, frag=offset // 8, flags="MF" if more else 0)
        / Raw(data)
    )
    return decode(raw, 0.0)


@pytest.mark.parametrize(
    ("pieces", "expected", "overlaps"),
    [
        # B overlaps the tail of A: A arrived first and wins.
        ([(0, b"A" * 16, True), (8, b"B" * 16, False)], b"A" * 16 + b"B" * 8, 1),
        # Same fragments, B first: B wins where they overlap.
        ([(8, b"B" * 16, False), (0, b"A" * 16, True)], b"A" * 8 + b"B" * 16, 1),
        # C covers the gap between A and B and overlaps both.
        (
            [(0, b"A" * 8, True), (16, b"B" * 8, False), (0, b"C" * 24, True)],
            b"A" * 8 + b"C" * 8 + b"B" * 8,
            1,
        ),
        # A rewrite of the same range with different bytes is an overlap, not a duplicate.
        ([(0, b"A" * 8, True), (0, b"X" * 8, True), (8, b"B" * 8, False)], b"A" * 8 + b"B" * 8, 1),
    ],
)
def test_overlaps_first_wins(pieces: list[tuple[int, bytes, bool]], expected: bytes, overlaps: int) -> None:
    d = Defragmenter()
    out = _feed_all(d, [_frag(o, data, m) for o, data, m in pieces])
    assert len(out) == 1
    assert out[0][20:] == expected
    assert IP(out[0]).len == 20 + len(expected)
    assert d.stats["overlaps"] == overlaps


def test_interleaved_datagrams() -> None:
    a, b = _v4(ident=1), _v4(ident=2, payload=b"other" * 500)
    fa, fb = _pieces(fragment(a, fragsize=600)), _pieces(fragment(b, fragsize=600))
    d = Defragmenter()
    mixed = [p for pair in zip(fa, fb, strict=False) for p in pair] + fa[len(fb) :] + fb[len(fa) :]
    out = _feed_all(d, mixed)
    assert sorted(out) == sorted([bytes(a), bytes(b)])


def test_different_protocol_is_a_different_datagram() -> None:
    d = Defragmenter()
    assert d.feed(_frag(0, b"A" * 8, True, proto=17)) is None
    assert d.feed(_frag(8, b"B" * 8, False, proto=6)) is None
    assert len(d) == 2


def _v6(payload: bytes = PAYLOAD) -> tuple[ScapyPacket, ScapyPacket]:
    """The fragmentable packet and the same datagram without a fragment header."""
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    l4 = TCP(sport=443, dport=50000, flags="PA", seq=1) / Raw(payload)
    with_fh = base / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(id=0xCAFE) / IPv6ExtHdrDestOpt() / l4
    plain = base / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / l4
    return with_fh, plain


@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
def test_ipv6(order: str) -> None:
    with_fh, plain = _v6()
    pieces = _pieces(fragment6(with_fh, 1280))
    d = Defragmenter()
    results = [d.feed(pieces[i]) for i in ORDERS[order](len(pieces))]
    out = results[-1]
    assert out is not None
    assert all(r is None for r in results[:-1])
    assert out == bytes(plain)
    assert_same_l4(out, bytes(plain))


def test_ipv6_without_other_ext_headers() -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    l4 = UDP(sport=53, dport=53) / Raw(PAYLOAD)
    d = Defragmenter()
    out = _feed_all(d, _pieces(fragment6(base / IPv6ExtHdrFragment(id=3) / l4, 1280)))
    assert out == [bytes(base / l4)]


def test_ipv4_and_ipv6_same_id_do_not_mix() -> None:
    d = Defragmenter()
    v4 = _pieces(fragment(_v4(ident=3), fragsize=1000))
    v6 = _pieces(fragment6(IPv6() / IPv6ExtHdrFragment(id=3) / UDP() / Raw(PAYLOAD), 1280))
    out = _feed_all(
        d, [p for pair in zip(v4, v6, strict=False) for p in pair] + v4[len(v6) :] + v6[len(v4) :]
    )
    assert len(out) == 2
    assert {decode(o, 0.0).ip_version for o in out} == {4, 6}


def test_timeout_expires_incomplete() -> None:
    frags = fragment(_v4(), fragsize=512)
    d = Defragmenter(timeout=30.0)
    assert d.feed(decode(bytes(frags[0]), 100.0)) is None
    # Within the timeout nothing happens ...
    assert d.feed(decode(bytes(frags[1]), 129.0)) is None
    assert d.stats["expired"] == 0
    # ... past it, the datagram is gone and the rest cannot complete it.
    assert _feed_all(d, _pieces(frags[2:], ts=131.0)) == []
    assert d.stats["expired"] == 1
    assert d.stats["reassembled"] == 0


def test_expire_is_explicit_too() -> None:
    d = Defragmenter(timeout=1.0)
    d.feed(_frag(0, b"A" * 8, True))
    assert len(d) == 1
    d.expire(0.5)
    assert len(d) == 1
    d.expire(2.0)
    assert len(d) == 0
    assert d.stats["expired"] == 1


def test_max_datagrams_evicts_oldest() -> None:
    d = Defragmenter(max_datagrams=2)
    frags = {i: fragment(_v4(ident=i), fragsize=1000) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        assert d.feed(decode(bytes(frags[i][0]), float(i))) is None
    assert d.stats["evicted"] == 1
    assert len(d) == 2
    # Datagram 1 was evicted; its remaining pieces start a new, incomplete one.
    assert _feed_all(d, _pieces(frags[1][1:])) == []
    assert d.stats["evicted"] == 2
    # Datagram 3 is still complete-able (2 was evicted by 1's restart).
    assert _feed_all(d, _pieces(frags[3][1:])) == [bytes(_v4(ident=3))]


def test_too_big_is_discarded() -> None:
    d = Defragmenter(max_datagram_bytes=2000)
    pieces = _pieces(fragment(_v4(), fragsize=512))
    assert _feed_all(d, pieces) == []
    assert d.stats["too_big"] == 1
    assert d.stats["reassembled"] == 0
    # Later pieces of the discarded datagram are dropped, not collected again.
    assert d.stats["dead"] > 0
    assert len(d) == 1


def test_beyond_64k_is_too_big() -> None:
    d = Defragmenter()
    assert d.feed(_frag(65528, b"x" * 100, False)) is None
    assert d.stats["too_big"] == 1


def test_too_many_fragments() -> None:
    d = Defragmenter(max_fragments_per_datagram=3)
    pieces = _pieces(fragment(_v4(), fragsize=512))
    assert len(pieces) > 3
    assert _feed_all(d, pieces) == []
    assert d.stats["too_many_fragments"] == 1


def test_inconsistent_end() -> None:
    d = Defragmenter()
    assert d.feed(_frag(0, b"A" * 16, True)) is None
    assert d.feed(_frag(16, b"B" * 8, False)) is not None
    d = Defragmenter()
    assert d.feed(_frag(16, b"B" * 8, False)) is None
    assert d.feed(_frag(8, b"C" * 8, False)) is None  # claims a different end: ignored
    assert d.stats["inconsistent"] == 1
    assert d.feed(_frag(0, b"A" * 16, True)) is not None


def test_piece_beyond_end_is_trimmed() -> None:
    d = Defragmenter()
    assert d.feed(_frag(8, b"B" * 8, False)) is None
    out = d.feed(_frag(0, b"A" * 24, True))
    assert out is not None
    assert out[20:] == b"A" * 8 + b"B" * 8
    assert d.stats["inconsistent"] == 1


def test_non_fragments_and_malformed_pieces_are_ignored() -> None:
    d = Defragmenter()
    assert d.feed(decode(bytes(_v4()), 0.0)) is None
    truncated = decode(bytes(fragment(_v4(), fragsize=512)[0])[:-10], 0.0)
    assert truncated.frag == FRAG_PIECE
    assert d.feed(truncated) is None
    assert d.stats["malformed"] == 1
    assert d.stats["fragments"] == 1
    assert len(d) == 0


def test_stats_keys() -> None:
    assert set(Defragmenter().stats) == set(STAT_KEYS)
    for key in ("reassembled", "evicted", "expired", "too_big", "overlaps", "too_many_fragments"):
        assert key in STAT_KEYS


@pytest.mark.parametrize("version", [4, 6])
def test_a_flood_of_first_fragments_stays_at_the_cap(version: int) -> None:
    # First fragments from spoofed sources that never complete: ten times the cap.
    cap = 16
    d = Defragmenter(max_datagrams=cap)
    for i in range(10 * cap):
        if version == 4:
            frags = fragment(IP(src=f"10.3.0.{i + 1}", dst="192.0.2.1", id=i) / UDP() / Raw(PAYLOAD), 64)
        else:
            base = IPv6(src=f"2001:db8::{i + 1:x}", dst="2001:db8::ffff") / IPv6ExtHdrFragment(id=i)
            frags = fragment6(base / UDP() / Raw(PAYLOAD * 2), 1280)
        (first,) = _pieces(frags[:1], ts=float(i) * 1e-3)
        assert d.feed(first) is None
        assert len(d) <= cap
    assert len(d) == cap
    assert d.stats["evicted"] == 9 * cap
    assert d.stats["expired"] == d.stats["reassembled"] == 0
