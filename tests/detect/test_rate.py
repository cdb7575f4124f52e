"""Rate rules with frozen time: every measure under every key, windows, caps, bounded sets."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP

from inline_ips.clock import FrozenClock
from inline_ips.decode import decode
from inline_ips.decode.dns import parse_dns
from inline_ips.detect.rate import MAX_FLAGS_CACHED, RateEngine, RateTracker
from inline_ips.flow import FlowTable
from inline_ips.packet import PROTO_UDP
from inline_ips.rules.model import Measure, RateKey, RateRule
from inline_ips.rules.yaml_loader import load_rules_text

WINDOW = 10.0


def rate_rule(measure: Measure, key: RateKey, threshold: int, proto: str, extra: str = "") -> RateRule:
    text = (
        "rate:\n  - sid: 9\n    msg: r\n"
        f"    proto: {proto}\n    key: {key.value}\n    measure: {measure.value}\n"
        f"    window: {WINDOW}\n    threshold: {threshold}\n{extra}"
    )
    return load_rules_text(text, "test.yaml").rates[0]


class Feeder:
    """Decode, look up the flow, attach DNS like the engine does, and evaluate rate rules."""

    def __init__(self, rules: list[RateRule], max_keys: int = 100_000) -> None:
        self.clock = FrozenClock(1_700_000_000.0)
        self.flows = FlowTable()
        self.rates = RateEngine(rules, max_keys)

    def feed(self, raw: bytes) -> list[int]:
        pkt = decode(raw, self.clock.now())
        assert pkt.error is None
        if pkt.proto == PROTO_UDP and 53 in (pkt.sport, pkt.dport):
            pkt.dns = parse_dns(pkt.payload)
        flow, to_server = self.flows.lookup(pkt)
        self.clock.advance(0.001)
        return [state for _, state in self.rates.evaluate(pkt, flow, to_server)]


def _ends(i: int, key: RateKey) -> tuple[str, str, int, int]:
    """Addresses and ports for unit i that keep ``key`` fixed and vary everything else."""
    src = (
        "10.0.0.1"
        if key in (RateKey.SRC, RateKey.SRC_DST, RateKey.FLOW)
        else f"10.1.{i // 250}.{i % 250 + 1}"
    )
    dst = (
        "192.0.2.1"
        if key in (RateKey.DST, RateKey.SRC_DST, RateKey.FLOW)
        else f"198.51.{i // 250}.{i % 250 + 1}"
    )
    sport = 40000 if key is RateKey.FLOW else 40000 + i
    dport = 1000 if key is RateKey.FLOW else 1000 + i
    return src, dst, sport, dport


def udp_unit(i: int, key: RateKey) -> list[bytes]:
    src, dst, sport, dport = _ends(i, key)
    return [bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"payload")]


def syn_unit(i: int, key: RateKey) -> list[bytes]:
    src, dst, sport, dport = _ends(i, key)
    return [bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=i))]


DNS_ANSWER = DNS(
    id=1,
    qr=1,
    qd=DNSQR(qname="big.example", qtype="TXT"),
    an=DNSRR(rrname="big.example", type="TXT", rdata="a" * 200),
)


def dns_unit(i: int, key: RateKey) -> list[bytes]:
    src, dst, _, dport = _ends(i, key)
    return [bytes(IP(src=src, dst=dst) / UDP(sport=53, dport=dport) / DNS_ANSWER)]


def empty_conn_unit(i: int, key: RateKey) -> list[bytes]:
    c, s, cp, sp = _ends(i, key)
    return [
        bytes(IP(src=c, dst=s) / TCP(sport=cp, dport=sp, flags="S", seq=100)),
        bytes(IP(src=s, dst=c) / TCP(sport=sp, dport=cp, flags="SA", seq=900, ack=101)),
        bytes(IP(src=c, dst=s) / TCP(sport=cp, dport=sp, flags="A", seq=101, ack=901)),
        bytes(IP(src=c, dst=s) / TCP(sport=cp, dport=sp, flags="R", seq=101)),
    ]


UDP_LEN = len(udp_unit(0, RateKey.SRC)[0])
DNS_LEN = len(bytes(DNS_ANSWER))

# measure -> (proto, packets of one counted unit, amount per unit, can the key keep growing it?)
MEASURES: dict[Measure, tuple[str, Callable[[int, RateKey], list[bytes]], int]] = {
    Measure.PACKETS: ("udp", udp_unit, 1),
    Measure.BYTES: ("udp", udp_unit, UDP_LEN),
    Measure.SYNS: ("tcp", syn_unit, 1),
    Measure.DST_PORTS: ("udp", udp_unit, 1),
    Measure.DST_HOSTS: ("udp", udp_unit, 1),
    Measure.DNS_RESPONSE_BYTES: ("dns", dns_unit, DNS_LEN),
    Measure.EMPTY_CONNECTIONS: ("tcp", empty_conn_unit, 1),
}


def units_to_fire(measure: Measure, key: RateKey) -> int:
    """How many units it takes; a distinct measure whose value the key pins cannot pass 1."""
    if measure is Measure.DST_PORTS and key is RateKey.FLOW:
        return 1
    if measure is Measure.DST_HOSTS and key is not RateKey.SRC:
        return 1
    if measure is Measure.EMPTY_CONNECTIONS and key is RateKey.FLOW:
        return 1  # one 5-tuple, one connection
    return 3


@pytest.mark.parametrize("key", list(RateKey), ids=lambda k: k.value)
@pytest.mark.parametrize("measure", list(Measure), ids=lambda m: m.value)
def test_measure_and_key(measure: Measure, key: RateKey) -> None:
    proto, unit, amount = MEASURES[measure]
    n = units_to_fire(measure, key)
    f = Feeder([rate_rule(measure, key, n * amount, proto)])
    i = 0

    def next_unit() -> list[int]:
        nonlocal i
        pkts = unit(i, key)
        i += 1
        for raw in pkts[:-1]:
            assert f.feed(raw) == []
        return f.feed(pkts[-1])

    start = f.clock.now()
    for _ in range(n - 1):
        assert next_unit() == []
    assert next_unit() == [1]  # crossed now: one alert
    assert next_unit() == [2]  # still over, same window
    assert next_unit() == [2]
    # A new window: counting starts again from zero.
    f.clock.set(start + WINDOW + 1)
    for _ in range(n - 1):
        assert next_unit() == []
    assert next_unit() == [1]
    assert next_unit() == [2]
    tracker = f.rates.trackers[0]
    assert tracker.evicted == 0


def test_window_boundary_is_exact() -> None:
    rule = rate_rule(Measure.PACKETS, RateKey.SRC, 2, "udp")
    t = RateTracker(rule)
    flows = FlowTable()
    clock = FrozenClock(100.0)

    def at(ts: float) -> int:
        pkt = decode(udp_unit(0, RateKey.SRC)[0], ts)
        flow, to_server = flows.lookup(pkt)
        return t.update(pkt, flow, to_server)

    assert at(clock.now()) == 0
    assert at(clock.now() + WINDOW - 0.001) == 1  # still the first window
    assert at(clock.now() + WINDOW) == 0  # window starts at 100, so 110 opens a new one
    assert at(clock.now() + WINDOW + 0.5) == 1
    assert at(clock.now() + 5) == 0  # time went backwards: a new window rather than a stale one


def test_syn_ack_and_plain_ack_are_not_syns() -> None:
    f = Feeder([rate_rule(Measure.SYNS, RateKey.DST, 2, "tcp")])
    ip = IP(src="10.0.0.1", dst="192.0.2.1")
    assert f.feed(bytes(ip / TCP(sport=1, dport=2, flags="SA"))) == []
    assert f.feed(bytes(ip / TCP(sport=1, dport=3, flags="A"))) == []
    assert f.feed(bytes(ip / TCP(sport=1, dport=4, flags="SA"))) == []
    assert f.feed(bytes(ip / TCP(sport=1, dport=5, flags="SEC"))) == []  # SYN with ECN bits counts
    assert f.feed(bytes(ip / TCP(sport=1, dport=6, flags="S"))) == [1]


@pytest.mark.parametrize(
    ("name", "packets"),
    [
        (
            "payload_sent",
            [
                ("c", "S", b""),
                ("s", "SA", b""),
                ("c", "A", b""),
                ("c", "PA", b"hi"),
                ("c", "R", b""),
            ],
        ),
        (
            "server_reset",
            [("c", "S", b""), ("s", "SA", b""), ("c", "A", b""), ("s", "R", b"")],
        ),
        ("no_handshake", [("c", "R", b"")]),
        ("refused", [("c", "S", b""), ("s", "RA", b"")]),
    ],
)
def test_not_an_empty_connection(name: str, packets: list[tuple[str, str, bytes]]) -> None:
    f = Feeder([rate_rule(Measure.EMPTY_CONNECTIONS, RateKey.SRC_DST, 1, "tcp")])
    for who, flags, data in packets:
        if who == "c":
            raw = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / TCP(sport=40000, dport=80, flags=flags) / data)
        else:
            raw = bytes(IP(src="192.0.2.1", dst="10.0.0.1") / TCP(sport=80, dport=40000, flags=flags) / data)
        assert f.feed(raw) == [], name


def test_dns_queries_do_not_count_as_response_bytes() -> None:
    f = Feeder([rate_rule(Measure.DNS_RESPONSE_BYTES, RateKey.DST, 1, "dns")])
    query = (
        IP(src="10.0.0.1", dst="192.0.2.1")
        / UDP(sport=5353, dport=53)
        / DNS(rd=1, qd=DNSQR(qname="a.example"))
    )
    assert f.feed(bytes(query)) == []
    assert f.feed(bytes(IP(src="192.0.2.1", dst="10.0.0.1") / UDP(sport=53, dport=5353) / b"not dns")) == []


def test_max_keys_evicts_the_oldest_and_counts() -> None:
    rule = rate_rule(Measure.PACKETS, RateKey.SRC, 2, "udp")
    f = Feeder([rule], max_keys=3)
    for i in range(5):
        assert f.feed(udp_unit(i, RateKey.DST)[0]) == []  # five different sources
    tracker = f.rates.trackers[0]
    assert len(tracker.keys) == 3
    assert tracker.evicted == 2
    assert f.rates.evicted == 2
    assert f.rates.tracked_keys == 3
    # Sources 3 and 4 are still tracked: their second packet crosses the threshold ...
    assert f.feed(udp_unit(4, RateKey.DST)[0]) == [1]
    # ... source 0 was evicted, so it starts over (and evicts another key).
    assert f.feed(udp_unit(0, RateKey.DST)[0]) == []
    assert tracker.evicted == 3
    assert len(tracker.keys) == 3


def test_distinct_sets_stop_growing_at_the_threshold() -> None:
    f = Feeder([rate_rule(Measure.DST_PORTS, RateKey.SRC, 4, "udp")])
    states = [f.feed(udp_unit(i, RateKey.SRC)[0]) for i in range(50)]
    assert states == [[], [], [], [1], *([[2]] * 46)]
    (window,) = f.rates.trackers[0].keys.values()
    assert window.distinct is not None
    assert len(window.distinct) == 4


def test_repeated_port_is_counted_once() -> None:
    f = Feeder([rate_rule(Measure.DST_PORTS, RateKey.SRC, 2, "udp")])
    same = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=1, dport=80))
    assert [f.feed(same) for _ in range(5)] == [[]] * 5
    assert f.feed(bytes(IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=1, dport=81))) == [1]


def test_header_and_flow_select_what_is_counted() -> None:
    rule = rate_rule(Measure.PACKETS, RateKey.DST, 2, "udp", "    dst_port: 53\n    flow: to_server\n")
    f = Feeder([rule])
    q = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=5000, dport=53))
    other = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=5000, dport=54))
    answer = bytes(IP(src="192.0.2.1", dst="10.0.0.1") / UDP(sport=53, dport=5000))
    tcp53 = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / TCP(sport=5000, dport=53))
    assert f.feed(q) == []
    assert f.feed(other) == []
    assert f.feed(answer) == []
    assert f.feed(tcp53) == []
    assert f.feed(q) == [1]


@pytest.mark.parametrize(
    ("flow", "want"),
    [
        # Query, answer, query, answer, query; each direction is its own src+dst key, and UDP
        # is established from the first reply on.
        ("established", [[], [], [], [1], [1]]),  # all but the first query
        ("not_established", [[], [], [], [], []]),  # the first query only
        ("to_server", [[], [], [1], [], [2]]),
        ("to_client", [[], [], [], [1], []]),
    ],
)
def test_flow_state_selects_what_is_counted(flow: str, want: list[list[int]]) -> None:
    f = Feeder([rate_rule(Measure.PACKETS, RateKey.SRC_DST, 2, "udp", f"    flow: {flow}\n")])
    q = bytes(IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=5000, dport=5353))
    a = bytes(IP(src="192.0.2.1", dst="10.0.0.1") / UDP(sport=5353, dport=5000))
    assert [f.feed(raw) for raw in (q, a, q, a, q)] == want


def test_rules_are_independent() -> None:
    a = rate_rule(Measure.PACKETS, RateKey.SRC, 2, "udp")
    text = "rate:\n  - sid: 10\n    msg: b\n    key: src\n    window: 10\n    threshold: 3\n"
    b = load_rules_text(text, "test.yaml").rates[0]
    eng = RateEngine([a, b])
    flows = FlowTable()
    got = []
    for k in range(4):
        pkt = decode(udp_unit(0, RateKey.SRC)[0], 100.0 + k)
        flow, to_server = flows.lookup(pkt)
        got.append([(r.sid, s) for r, s in eng.evaluate(pkt, flow, to_server)])
    assert got == [[], [(9, 1)], [(9, 2), (10, 1)], [(9, 2), (10, 2)]]


def test_an_active_key_is_not_the_one_evicted() -> None:
    # A flooding source keeps sending while many other sources come and go:
    # the least recently used key goes, not the flooder whose window began first.
    rule = rate_rule(Measure.PACKETS, RateKey.SRC, 5, "udp")
    f = Feeder([rule], max_keys=3)
    flooder = udp_unit(0, RateKey.DST)[0]
    states = []
    for i in range(1, 5):
        states.append(f.feed(flooder))
        f.feed(udp_unit(i, RateKey.DST)[0])
    states.append(f.feed(flooder))
    assert states == [[], [], [], [], [1]]
    assert f.rates.trackers[0].evicted == 2


@pytest.mark.parametrize(
    ("measure", "key"),
    [
        (Measure.PACKETS, RateKey.SRC),
        (Measure.PACKETS, RateKey.SRC_DST),
        (Measure.DST_PORTS, RateKey.SRC),
        (Measure.PACKETS, RateKey.FLOW),
    ],
)
def test_a_flood_of_ten_times_max_keys_stays_at_the_cap(measure: Measure, key: RateKey) -> None:
    cap = 20
    f = Feeder([rate_rule(measure, key, 1000, "udp")], max_keys=cap)
    tracker = f.rates.trackers[0]
    for i in range(10 * cap):
        f.feed(bytes(IP(src=f"10.2.{i // 250}.{i % 250 + 1}", dst="192.0.2.1") / UDP(sport=i + 1, dport=80)))
        assert len(tracker.keys) <= cap
    assert len(tracker.keys) == cap
    assert tracker.evicted == f.rates.evicted == 9 * cap


def test_the_per_flow_flags_cache_is_capped() -> None:
    rule = rate_rule(Measure.PACKETS, RateKey.SRC, 1000, "tcp")
    f = Feeder([rule])
    for flags in range(256):  # one flow cycling through every TCP flags value
        raw = bytearray(bytes(IP(src="10.0.0.1", dst="192.0.2.1") / TCP(sport=1, dport=80, flags=0)))
        raw[20 + 13] = flags
        f.feed(bytes(raw))
    (flow,) = f.flows._flows.values()
    assert flow.rate_cache is not None
    entry = flow.rate_cache[1][0]
    assert entry is not None
    assert len(entry[1]) == MAX_FLAGS_CACHED
    # Uncached flags values are still counted: all 256 packets of the source.
    assert f.rates.trackers[0].keys[int(ipaddress.IPv4Address("10.0.0.1"))].count == 256
