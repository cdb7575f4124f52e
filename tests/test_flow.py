"""Flows: canonical keys, direction, TCP state, timeouts, the table cap and the stream window."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet as ScapyPacket

from inline_ips.decode import decode
from inline_ips.decode.http_stream import HttpConnection
from inline_ips.decode.memcap import Memcap
from inline_ips.flow import (
    STREAM_GAP,
    STREAM_IN_ORDER,
    STREAM_RETRANSMIT,
    Flow,
    FlowOptions,
    FlowTable,
    flow_key,
)
from inline_ips.packet import Packet

C, S = "10.0.0.1", "192.0.2.1"


def pkt(p: ScapyPacket, ts: float = 100.0) -> Packet:
    out = decode(bytes(p), ts)
    assert out.error is None
    return out


def tcp(flags: str, to_server: bool = True, data: bytes = b"", seq: int = 0, ts: float = 100.0) -> Packet:
    if to_server:
        p = IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags=flags, seq=seq)
    else:
        p = IP(src=S, dst=C) / TCP(sport=80, dport=40000, flags=flags, seq=seq)
    return pkt(p / data, ts)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (IP(src=C, dst=S) / TCP(sport=40000, dport=80), IP(src=S, dst=C) / TCP(sport=80, dport=40000)),
        (IP(src=S, dst=C) / UDP(sport=53, dport=5353), IP(src=C, dst=S) / UDP(sport=5353, dport=53)),
        (IP(src=C, dst=C) / TCP(sport=1, dport=2), IP(src=C, dst=C) / TCP(sport=2, dport=1)),
        (
            IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=2),
            IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(sport=2, dport=1),
        ),
        (IP(src=C, dst=S) / ICMP(), IP(src=S, dst=C) / ICMP(type=0)),
    ],
)
def test_key_is_the_same_both_ways(a: ScapyPacket, b: ScapyPacket) -> None:
    assert flow_key(pkt(a)) == flow_key(pkt(b))


# FlowTable.lookup spells out flow_key() and Flow.is_to_server() for speed: it must agree
# with them on every packet, both ways, including a host talking to itself.
_ENDPOINTS = [
    (IP(src=C, dst=S) / TCP(sport=40000, dport=80), IP(src=S, dst=C) / TCP(sport=80, dport=40000)),
    (IP(src=S, dst=C) / UDP(sport=53, dport=5353), IP(src=C, dst=S) / UDP(sport=5353, dport=53)),
    (IP(src=C, dst=C) / TCP(sport=1, dport=2), IP(src=C, dst=C) / TCP(sport=2, dport=1)),
    (IP(src=C, dst=C) / UDP(sport=7, dport=7), IP(src=C, dst=C) / UDP(sport=7, dport=7)),
    (
        IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=1, dport=2),
        IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=2, dport=1),
    ),
]


@pytest.mark.parametrize(("first", "reply"), _ENDPOINTS)
def test_lookup_agrees_with_flow_key_and_is_to_server(first: ScapyPacket, reply: ScapyPacket) -> None:
    table = FlowTable()
    for p in (first, reply, first):
        packet = pkt(p)
        flow, to_server = table.lookup(packet)
        assert flow.key == flow_key(packet)
        assert to_server == flow.is_to_server(packet)
    assert len(table) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (IP(src=C, dst=S) / TCP(sport=40000, dport=80), IP(src=C, dst=S) / TCP(sport=40001, dport=80)),
        (IP(src=C, dst=S) / TCP(sport=40000, dport=80), IP(src=C, dst=S) / UDP(sport=40000, dport=80)),
        (IP(src=C, dst=S) / TCP(sport=1, dport=2), IP(src=C, dst=S) / TCP(sport=2, dport=1)),
        (
            IP(src="0.0.0.1", dst="0.0.0.2") / TCP(sport=1, dport=2),
            IPv6(src="::1", dst="::2") / TCP(sport=1, dport=2),
        ),
    ],
)
def test_key_differs(a: ScapyPacket, b: ScapyPacket) -> None:
    assert flow_key(pkt(a)) != flow_key(pkt(b))


def test_key_layout() -> None:
    p = tcp("S", to_server=False)
    assert flow_key(p) == (4, 6, 0x0A000001, 40000, 0xC0000201, 80)


def test_client_is_the_first_sender() -> None:
    table = FlowTable()
    flow, to_server = table.lookup(tcp("S"))
    assert to_server is True
    assert (flow.client, flow.cport, flow.server, flow.sport) == (0x0A000001, 40000, 0xC0000201, 80)
    same, back = table.lookup(tcp("SA", to_server=False))
    assert same is flow
    assert back is False
    assert table.lookup(tcp("A"))[1] is True
    assert flow.pkts == [2, 1]


def test_syn_ack_first_turns_the_flow_around() -> None:
    table = FlowTable()
    flow, to_server = table.lookup(tcp("SA", to_server=False))
    assert to_server is False
    assert (flow.client, flow.cport) == (0x0A000001, 40000)
    assert flow.synack is True
    _, to_server = table.lookup(tcp("A"))
    assert to_server is True
    assert flow.established is True


def test_udp_first_sender_is_client_and_established_once_both_spoke() -> None:
    table = FlowTable()
    q = pkt(IP(src=C, dst=S) / UDP(sport=5353, dport=53) / b"q")
    a = pkt(IP(src=S, dst=C) / UDP(sport=53, dport=5353) / b"a")
    flow, to_server = table.lookup(q)
    assert (to_server, flow.established) == (True, False)
    flow, to_server = table.lookup(a)
    assert (to_server, flow.established) == (False, True)
    assert flow.payload == [1, 1]


def test_established_after_handshake() -> None:
    table = FlowTable(FlowOptions(midstream=False))
    flow, _ = table.lookup(tcp("S"))
    assert (flow.syn, flow.synack, flow.established) == (True, False, False)
    table.lookup(tcp("SA", to_server=False))
    assert (flow.syn, flow.synack, flow.established) == (True, True, False)
    table.lookup(tcp("A"))
    assert flow.established is True
    assert flow.closed is False


def test_ack_from_server_does_not_establish() -> None:
    table = FlowTable(FlowOptions(midstream=False))
    flow, _ = table.lookup(tcp("S"))
    table.lookup(tcp("SA", to_server=False))
    table.lookup(tcp("A", to_server=False))
    assert flow.established is False


@pytest.mark.parametrize(("midstream", "expected"), [(True, True), (False, False)])
def test_midstream_pickup(midstream: bool, expected: bool) -> None:
    table = FlowTable(FlowOptions(midstream=midstream))
    flow, _ = table.lookup(tcp("PA", data=b"hello"))
    assert flow.established is expected
    table.lookup(tcp("A", to_server=False))
    assert flow.established is expected


def test_closed_on_rst() -> None:
    table = FlowTable()
    flow, _ = table.lookup(tcp("S"))
    table.lookup(tcp("SA", to_server=False))
    table.lookup(tcp("A"))
    table.lookup(tcp("R", to_server=False))
    assert flow.closed is True
    assert flow.timeout(table.opts) == table.opts.tcp_closed_timeout


def test_closed_on_fin_both_ways() -> None:
    table = FlowTable()
    flow, _ = table.lookup(tcp("S"))
    table.lookup(tcp("SA", to_server=False))
    table.lookup(tcp("A"))
    table.lookup(tcp("FA"))
    assert (flow.fin, flow.closed) == (1, False)
    table.lookup(tcp("FA"))  # a second FIN the same way does not close it
    assert (flow.fin, flow.closed) == (1, False)
    table.lookup(tcp("FA", to_server=False))
    assert (flow.fin, flow.closed) == (3, True)


@pytest.mark.parametrize(
    ("packets", "idle", "expired"),
    [
        ([tcp("S")], 60.0, False),  # exactly the timeout: still alive
        ([tcp("S")], 60.5, True),  # tcp_new_timeout
        ([tcp("S"), tcp("SA", False), tcp("A")], 599.0, False),  # tcp_established_timeout
        ([tcp("S"), tcp("SA", False), tcp("A")], 601.0, True),
        ([tcp("S"), tcp("SA", False), tcp("A"), tcp("R")], 10.5, True),  # tcp_closed_timeout
        ([tcp("S"), tcp("SA", False), tcp("A"), tcp("R")], 9.5, False),
        ([pkt(IP(src=C, dst=S) / UDP(sport=1, dport=2))], 61.0, True),  # other_timeout
        ([pkt(IP(src=C, dst=S) / UDP(sport=1, dport=2))], 59.0, False),
    ],
)
def test_idle_timeout(packets: list[Packet], idle: float, expired: bool) -> None:
    table = FlowTable()
    for p in packets:
        flow, _ = table.lookup(p)
    later = decode(packets[-1].raw, 100.0 + idle)
    again, _ = table.lookup(later)
    assert (again is not flow) is expired
    assert table.stats["expired"] == (1 if expired else 0)
    assert table.stats["created"] == (2 if expired else 1)
    if expired:
        assert again.flow_id != flow.flow_id


def test_idle_flows_are_expired_when_others_arrive() -> None:
    table = FlowTable()
    table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=1, dport=2), 100.0))
    table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=1, dport=3), 130.0))
    assert len(table) == 2
    table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=1, dport=4), 170.0))
    assert len(table) == 2  # the first, idle for 70 s, went
    assert table.stats["expired"] == 1


def test_max_flows_evicts_least_recently_used() -> None:
    table = FlowTable(FlowOptions(max_flows=3))

    def udp(dport: int, ts: float) -> Packet:
        return pkt(IP(src=C, dst=S) / UDP(sport=1, dport=dport), ts)

    first, _ = table.lookup(udp(1, 100.0))
    second, _ = table.lookup(udp(2, 100.1))
    table.lookup(udp(3, 100.2))
    assert table.lookup(udp(1, 100.3))[0] is first  # used again: now the most recent
    table.lookup(udp(4, 100.4))
    assert len(table) == 3
    assert table.stats["evicted"] == 1
    assert table.lookup(udp(1, 100.5))[0] is first
    again, _ = table.lookup(udp(2, 100.6))
    assert again is not second
    assert table.stats["evicted"] == 2
    assert table.stats["created"] == 5
    assert len(table) == 3


def test_flow_ids_are_distinct_and_positive() -> None:
    table = FlowTable()
    ids = {table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=1, dport=d)))[0].flow_id for d in range(1, 200)}
    assert len(ids) == 199
    assert min(ids) > 0


# ---- the stream window --------------------------------------------------------------


def new_flow() -> Flow:
    table = FlowTable()
    flow, _ = table.lookup(tcp("S", seq=999))
    return flow


def seg(seq: int, data: bytes, to_server: bool = True) -> Packet:
    return tcp("PA", to_server=to_server, data=data, seq=seq)


def test_stream_in_order_append() -> None:
    flow = new_flow()
    assert flow.stream(True, tcp("S", seq=999), 100) == (
        b"",
        0,
        STREAM_IN_ORDER,
    )  # the SYN takes one sequence number
    assert flow.stream(True, seg(1000, b"abc"), 100) == (b"abc", 0, STREAM_IN_ORDER)
    assert flow.stream(True, seg(1003, b"def"), 100) == (b"abcdef", 3, STREAM_IN_ORDER)
    assert flow.stream(True, seg(1006, b"g"), 100) == (b"abcdefg", 6, STREAM_IN_ORDER)
    assert flow.next_seq[0] == 1007


def test_stream_directions_are_apart() -> None:
    flow = new_flow()
    flow.stream(True, seg(1000, b"abc"), 100)
    assert flow.stream(False, seg(5000, b"xyz", to_server=False), 100) == (b"xyz", 0, STREAM_IN_ORDER)
    assert flow.stream(True, seg(1003, b"d"), 100) == (b"abcd", 3, STREAM_IN_ORDER)
    assert flow.stream(False, seg(5003, b"!", to_server=False), 100) == (b"xyz!", 3, STREAM_IN_ORDER)


def test_stream_retransmission_is_alone_and_ignored() -> None:
    flow = new_flow()
    flow.stream(True, seg(1000, b"abc"), 100)
    flow.stream(True, seg(1003, b"def"), 100)
    assert flow.stream(True, seg(1003, b"DEF"), 100) == (b"DEF", 0, STREAM_RETRANSMIT)
    assert flow.stream(True, seg(1000, b"abcdef"), 100) == (b"abcdef", 0, STREAM_RETRANSMIT)
    assert flow.tail[0] == b"abcdef"
    assert flow.next_seq[0] == 1006
    assert flow.stream(True, seg(1006, b"g"), 100) == (b"abcdefg", 6, STREAM_IN_ORDER)


def test_stream_gap_resets() -> None:
    flow = new_flow()
    flow.stream(True, seg(1000, b"abc"), 100)
    assert flow.stream(True, seg(1010, b"xyz"), 100) == (b"xyz", 0, STREAM_GAP)
    assert flow.stream(True, seg(1013, b"!"), 100) == (b"xyz!", 3, STREAM_IN_ORDER)


def test_stream_window_is_bounded() -> None:
    flow = new_flow()
    seq = 1000
    for i in range(10):
        chunk = bytes([0x61 + i]) * 7
        buf, prefix, status = flow.stream(True, seg(seq, chunk), 16)
        assert status == STREAM_IN_ORDER
        seq += len(chunk)
        assert len(flow.tail[0]) <= 16
        assert buf.endswith(chunk)
        assert prefix == min(i * 7, 16)
    assert flow.tail[0] == (b"h" * 7 + b"i" * 7 + b"j" * 7)[-16:]


def test_stream_sequence_wraps() -> None:
    table = FlowTable()
    flow, _ = table.lookup(seg(0xFFFFFFFE, b"abcd"))
    assert flow.stream(True, seg(0xFFFFFFFE, b"abcd"), 100) == (b"abcd", 0, STREAM_IN_ORDER)
    assert flow.next_seq[0] == 2
    assert flow.stream(True, seg(2, b"ef"), 100) == (b"abcdef", 4, STREAM_IN_ORDER)
    assert flow.stream(True, seg(0xFFFFFFFF, b"bcd"), 100) == (
        b"bcd",
        0,
        STREAM_RETRANSMIT,
    )  # before the wrap: old data


@pytest.mark.parametrize("version", [4, 6])
def test_a_spoofed_flood_of_ten_times_the_cap_stays_at_the_cap(version: int) -> None:
    cap = 50
    table = FlowTable(FlowOptions(max_flows=cap))
    memcap = Memcap(1 << 20)
    for i in range(10 * cap):
        src = f"10.{i // 250}.0.{i % 250 + 1}" if version == 4 else f"2001:db8::{i + 1:x}"
        ip = IP(src=src, dst=S) if version == 4 else IPv6(src=src, dst="2001:db8:ffff::1")
        flow, _ = table.lookup(pkt(ip / TCP(sport=1000, dport=80, flags="S"), 100.0 + i * 1e-3))
        conn = HttpConnection(memcap=memcap)
        conn.feed(True, b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends: held bytes
        flow.app_state = conn
        assert len(table) <= cap
    assert len(table) == cap
    assert table.stats["evicted"] == 9 * cap  # every flow beyond the cap evicted one, counted
    assert table.stats["expired"] == 0
    # An evicted flow's parser gave its bytes back: only the live flows' parsers are charged.
    live = [f.app_state for f in table._flows.values()]
    assert memcap.used == sum(c.held for c in live if isinstance(c, HttpConnection)) > 0


def test_expired_flows_release_their_parsers_bytes() -> None:
    table = FlowTable(FlowOptions(other_timeout=1.0))
    memcap = Memcap(1 << 20)
    flow, _ = table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=1, dport=53), 100.0))
    conn = HttpConnection(memcap=memcap)
    conn.feed(True, b"GET / HTTP/1.1\r\n")
    flow.app_state = conn
    assert memcap.used == conn.held > 0
    table.lookup(pkt(IP(src=C, dst=S) / UDP(sport=2, dport=53), 200.0))  # expires the first
    assert table.stats["expired"] == 1
    assert memcap.used == 0
