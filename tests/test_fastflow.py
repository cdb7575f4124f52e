"""inline_ips/_fastflow.c against FlowTable.lookup, its specification: same flows, slot by slot.

Two tables see the same packets, one through ``lookup`` (Python) and one through
``fast_lookup()`` (the compiled common case, which hands everything else to
``lookup``). After every packet both must have returned the same direction, and
hold the same flows in the same LRU order with every slot equal. The traffic is
built to walk every branch (handshakes, data, FIN, RST, a SYN-ACK seen first, UDP
and ICMP both ways, a host talking to itself, idle gaps past the timeouts, TCP
packets whose checksum failed) and, when the corpus is there, its real captures.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from inline_ips import flow as flow_mod
from inline_ips.decode import decode
from inline_ips.flow import Flow, FlowOptions, FlowTable, Lookup
from inline_ips.packet import Packet
from inline_ips.source.pcap import PcapReader
from tests.corpus import corpus_pcaps, require_corpus

pytestmark = pytest.mark.skipif(
    not flow_mod.FAST_FLOW, reason=f"no compiled flow path: {flow_mod.FAST_FLOW_REASON}"
)

C, S, C6, S6 = "10.0.0.1", "192.0.2.1", "2001:db8::1", "2001:db8::2"


def _slots(f: Flow) -> tuple[tuple[str, object], ...]:
    return tuple(
        (name, list(v) if isinstance(v, list) else v) for name in Flow.__slots__ for v in [getattr(f, name)]
    )


def _state(table: FlowTable) -> list[tuple[object, ...]]:
    """Every flow, in LRU order, with all its slots."""
    return [(key, _slots(f)) for key, f in table._flows.items()]


class _Pair:
    """A Python table and a compiled one, fed the same packets; counts the compiled hits."""

    def __init__(self, opts: FlowOptions | None = None) -> None:
        self.py = FlowTable(opts)
        self.fast = FlowTable(opts)
        self.slow_calls = 0
        fast = self.fast

        def slow(pkt: Packet, tcp_state: bool) -> tuple[Flow, bool]:
            self.slow_calls += 1
            return fast.lookup(pkt, tcp_state)

        assert flow_mod._fastflow is not None
        self.lookup: Lookup = partial(
            flow_mod._fastflow.lookup, (fast._flows, fast._flows.move_to_end, float(fast._min_timeout), slow)
        )
        self.packets = 0

    def feed(self, pkt: Packet, tcp_state: bool = True) -> None:
        self.packets += 1
        a, a_to = self.py.lookup(pkt, tcp_state)
        b, b_to = self.lookup(pkt, tcp_state)
        assert a_to is b_to, (self.packets, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        assert _slots(a) == _slots(b), f"packet {self.packets}"
        assert self.py.stats == self.fast.stats
        assert next(reversed(self.py._flows)) == next(reversed(self.fast._flows))  # both moved it last
        if not self.packets % 256:
            self.check()

    def check(self) -> None:
        """The whole tables: every flow, every slot, the LRU order."""
        assert _state(self.py) == _state(self.fast), f"after packet {self.packets}"

    @property
    def fast_hits(self) -> int:
        return self.packets - self.slow_calls


def _tcp_session(
    src: str, dst: str, sport: int, dport: int, ts: float, six: bool = False
) -> Iterator[tuple[float, bytes]]:
    def seg(a: str, b: str, ap: int, bp: int, flags: str, data: bytes = b"", seq: int = 0) -> bytes:
        ip = IPv6(src=a, dst=b) if six else IP(src=a, dst=b)
        return bytes(ip / TCP(sport=ap, dport=bp, flags=flags, seq=seq) / data)

    def up(flags: str, data: bytes = b"", seq: int = 0) -> bytes:
        return seg(src, dst, sport, dport, flags, data, seq)

    def down(flags: str, data: bytes = b"", seq: int = 0) -> bytes:
        return seg(dst, src, dport, sport, flags, data, seq)

    steps = [
        up("S"),
        down("SA"),
        up("A"),  # completes the handshake: the slow way
        up("PA", b"GET / HTTP/1.1\r\n\r\n", 1),
        down("A"),
        down("PA", b"HTTP/1.1 200 OK\r\n\r\n", 1),
        up("A", seq=20),
        up("A", seq=20),
        up("FA", seq=20),
        down("FA", seq=20),
        up("A", seq=21),  # after both FINs: closed
        up("A", seq=21),
    ]
    for i, raw in enumerate(steps):
        yield ts + 0.001 * i, raw


def _synthetic() -> Iterator[tuple[float, bytes, bool]]:
    """(ts, raw, tcp_state) covering every branch of the compiled path and its fallbacks."""
    ts = 100.0
    for raw_ts, raw in _tcp_session(C, S, 40000, 80, ts):
        yield raw_ts, raw, True
    for raw_ts, raw in _tcp_session(C6, S6, 40001, 443, ts + 1, six=True):
        yield raw_ts, raw, True
    # A SYN-ACK seen first (midstream pickup turns the flow round), then data both ways.
    yield ts + 2, bytes(IP(src=S, dst=C) / TCP(sport=22, dport=50000, flags="SA")), True
    yield ts + 2.1, bytes(IP(src=C, dst=S) / TCP(sport=50000, dport=22, flags="A")), True
    yield ts + 2.2, bytes(IP(src=S, dst=C) / TCP(sport=22, dport=50000, flags="PA") / b"SSH-2.0"), True
    # Midstream: an ACK first; then a packet whose checksum failed (tcp_state false); then an RST.
    mid = IP(src=C, dst=S) / TCP(sport=50001, dport=25, flags="A")
    yield ts + 3, bytes(mid), True
    yield ts + 3.1, bytes(mid / b"x"), True
    yield ts + 3.2, bytes(mid / b"y"), False
    yield ts + 3.3, bytes(IP(src=S, dst=C) / TCP(sport=25, dport=50001, flags="A")), False
    yield ts + 3.4, bytes(IP(src=S, dst=C) / TCP(sport=25, dport=50001, flags="R")), True
    yield ts + 3.5, bytes(mid), True
    # UDP and ICMP both ways; a host talking to itself on one port (never to the server).
    for i in range(3):
        yield ts + 4 + i / 10, bytes(IP(src=C, dst=S) / UDP(sport=5353, dport=53) / b"q"), True
        yield ts + 4.05 + i / 10, bytes(IP(src=S, dst=C) / UDP(sport=53, dport=5353) / b"answer"), True
        yield ts + 4.06 + i / 10, bytes(IP(src=C, dst=S) / ICMP(type=8, id=1, seq=i)), True
        yield ts + 4.07 + i / 10, bytes(IP(src=S, dst=C) / ICMP(type=0, id=1, seq=i)), True
        yield ts + 4.08 + i / 10, bytes(IP(src=C, dst=C) / UDP(sport=7, dport=7)), True
        yield ts + 4.09 + i / 10, bytes(IP(src=C, dst=C) / TCP(sport=9, dport=8, flags="A")), True
    # Idle past the shortest timeout (10 s) and past the UDP one (60 s): the slow way, which expires.
    yield ts + 15, bytes(IP(src=C, dst=S) / UDP(sport=5353, dport=53)), True
    yield ts + 90, bytes(IP(src=C, dst=S) / UDP(sport=5353, dport=53)), True
    yield ts + 90.5, bytes(IP(src=S, dst=C) / UDP(sport=53, dport=5353)), True


def _run(pair: _Pair, packets: Iterable[tuple[float, bytes, bool]]) -> None:
    for ts, raw, tcp_state in packets:
        p = decode(raw, ts)
        if p.ip_version == 0 or p.proto < 0:
            continue  # the engine never looks such a packet's flow up
        pair.feed(p, tcp_state)
    pair.check()


def test_every_branch_agrees_with_the_python_table() -> None:
    pair = _Pair()
    _run(pair, _synthetic())
    # The compiled path did the established data, the UDP and ICMP replies and repeats...
    assert pair.fast_hits >= 30, (pair.fast_hits, pair.packets)
    # ...and handed on what it must: new flows, handshakes, FIN, RST, idle gaps.
    assert pair.slow_calls >= 20, (pair.slow_calls, pair.packets)


def test_a_full_table_evicts_the_same_flows() -> None:
    # 8 flows, room for 5: eviction order depends on the LRU order both keep.
    pair = _Pair(FlowOptions(max_flows=5))
    rng = random.Random(7)
    packets = []
    for i in range(400):
        port = 1000 + rng.randrange(8)
        up = rng.random() < 0.5
        p = (
            IP(src=C, dst=S) / UDP(sport=port, dport=53)
            if up
            else IP(src=S, dst=C) / UDP(sport=53, dport=port)
        )
        packets.append((100.0 + i / 100, bytes(p / b"d"), True))
    _run(pair, packets)
    assert pair.fast.stats["evicted"] > 50 and pair.fast_hits > 50


def test_timestamps_that_are_not_floats_go_the_python_way() -> None:
    pair = _Pair()
    raw = bytes(IP(src=C, dst=S) / UDP(sport=1, dport=2))
    for ts in (100, 101, 102):  # ints: the compiled path reads floats only
        pair.feed(decode(raw, ts))
    assert pair.fast_hits == 0


@pytest.mark.parametrize("path", corpus_pcaps()[:12] or [None], ids=lambda p: p.name if p else "no-corpus")
def test_corpus_captures_agree(path: Path | None) -> None:
    require_corpus()
    if path is None:
        pytest.skip("no captures in the corpus")
    pair = _Pair()
    _run(pair, ((ts, raw, True) for ts, raw in PcapReader(path)))
    if pair.packets == 0:
        pytest.skip(f"{path.name}: no IP packets")


def test_the_engine_uses_the_compiled_lookup() -> None:
    from inline_ips.engine import Engine
    from inline_ips.rules.model import RuleSet

    engine = Engine(RuleSet())
    assert engine._lookup_flow.func is flow_mod._fastflow.lookup  # type: ignore[attr-defined,union-attr]
