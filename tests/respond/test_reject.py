"""Tests for inline_ips.respond.reject: RST and ICMP unreachable fields, and the rate limit.

Sending through real raw sockets is covered by the NFQUEUE integration test
(tests/source/test_nfqueue.py), where the replies reach real sockets.
"""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.packet import Packet

from inline_ips.respond.reject import ICMP_MAX, ICMPV6_MAX, Rejecter, build_rejects
from inline_ips.respond.rewrite import checksum_ok

A4, B4 = "192.0.2.10", "198.51.100.20"
A6, B6 = "2001:db8::a", "2001:db8:1::b"
V4: dict[str, Any] = {"src": A4, "dst": B4}
V6: dict[str, Any] = {"src": A6, "dst": B6}


def parse(raw: bytes) -> Packet:
    assert checksum_ok(raw)
    return IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)


@pytest.mark.parametrize(("ip", "a", "b"), [(IP(**V4), A4, B4), (IPv6(**V6), A6, B6)], ids=["v4", "v6"])
def test_tcp_with_ack(ip: Packet, a: str, b: str) -> None:
    raw = bytes(ip / TCP(sport=40000, dport=80, flags="PA", seq=1000, ack=5000) / b"0123456789")
    to_sender, to_receiver = (parse(r) for r in build_rejects(raw))
    assert (to_sender.src, to_sender.dst) == (b, a)
    s = to_sender[TCP]
    assert (s.sport, s.dport, str(s.flags), s.seq, s.ack) == (80, 40000, "R", 5000, 0)
    assert (to_receiver.src, to_receiver.dst) == (a, b)
    r = to_receiver[TCP]
    # The receiver never got the dropped segment: its next expected sequence number is the segment's own.
    assert (r.sport, r.dport, str(r.flags), r.seq) == (40000, 80, "R", 1000)
    assert not bytes(s.payload) and not bytes(r.payload)


@pytest.mark.parametrize(
    ("flags", "seq", "payload", "ack"),
    [
        ("S", 1000, b"", 1001),  # SYN counts one
        ("S", 0xFFFFFFFF, b"", 0),  # and the sequence space wraps
        ("S", 7, b"data", 12),  # SYN with data
        ("F", 50, b"ab", 53),  # FIN counts one too
        ("", 50, b"abc", 53),
    ],
)
def test_tcp_without_ack(flags: str, seq: int, payload: bytes, ack: int) -> None:
    raw = bytes(IP(**V4) / TCP(sport=1234, dport=23, flags=flags, seq=seq, ack=777) / payload)
    to_sender, to_receiver = (parse(r) for r in build_rejects(raw))
    s = to_sender[TCP]
    assert (to_sender.src, to_sender.dst, s.sport, s.dport) == (B4, A4, 23, 1234)
    assert (str(s.flags), s.seq, s.ack) == ("RA", 0, ack)
    assert (str(to_receiver[TCP].flags), to_receiver[TCP].seq) == ("R", seq)
    assert to_sender.ttl == 64


def test_no_reset_for_a_reset() -> None:
    assert build_rejects(bytes(IP(**V4) / TCP(flags="R"))) == []
    assert build_rejects(bytes(IP(**V4) / TCP(flags="RA"))) == []


def test_udp_v4_port_unreachable_quotes_the_datagram() -> None:
    raw = bytes(IP(**V4) / UDP(sport=5353, dport=53) / b"query")
    (reply,) = build_rejects(raw)
    p = parse(reply)
    assert (p.src, p.dst, p.proto) == (B4, A4, 1)
    assert (p[ICMP].type, p[ICMP].code) == (3, 3)
    assert reply[28:] == raw  # the whole (short) datagram, header first
    (reply,) = build_rejects(raw, icmp_src="192.0.2.1")
    assert IP(reply).src == "192.0.2.1"


def test_udp_v4_quote_is_cut_at_576() -> None:
    raw = bytes(IP(**V4) / UDP(dport=9) / (b"x" * 1400))
    (reply,) = build_rejects(raw)
    assert len(reply) == ICMP_MAX
    assert reply[28:] == raw[: ICMP_MAX - 28]


def test_udp_v6_port_unreachable() -> None:
    raw = bytes(IPv6(**V6) / UDP(sport=5353, dport=53) / b"query")
    (reply,) = build_rejects(raw)
    p = parse(reply)
    assert (p.src, p.dst, p.nh) == (B6, A6, 58)
    u = p[ICMPv6DestUnreach]
    assert (u.type, u.code) == (1, 4)
    assert reply[48:] == raw
    long = bytes(IPv6(**V6) / UDP(dport=9) / (b"x" * 1400))
    (reply,) = build_rejects(long)
    assert len(reply) == ICMPV6_MAX
    assert reply[48:] == long[: ICMPV6_MAX - 48]


@pytest.mark.parametrize(
    "pkt",
    [
        IP(**V4, proto=47) / b"\x00\x00\x08\x00gre",  # another protocol
        IP(**V4) / ICMP(type=8) / b"ping",  # an echo request
        IPv6(**V6) / ICMPv6EchoRequest(),
        IP(**V4, flags="MF") / UDP() / b"first fragment",
    ],
    ids=["gre", "echo", "echo6", "first-fragment"],
)
def test_other_protocols_get_port_unreachable(pkt: Packet) -> None:
    raw = bytes(pkt)
    (reply,) = build_rejects(raw)
    p = parse(reply)
    if p.version == 4:
        assert (p[ICMP].type, p[ICMP].code) == (3, 3)
    else:
        assert (p[ICMPv6DestUnreach].type, p[ICMPv6DestUnreach].code) == (1, 4)


@pytest.mark.parametrize(
    "pkt",
    [
        IP(**V4) / ICMP(type=3, code=3) / b"an error",
        IP(**V4) / ICMP(type=11) / b"time exceeded",
        IP(**V4) / ICMP(type=200),  # unknown types are not answered
        IPv6(**V6) / ICMPv6DestUnreach() / b"an error",
        IP(src=A4, dst="224.0.0.251") / UDP(dport=5353) / b"mdns",
        IP(src=A4, dst="255.255.255.255") / UDP(dport=67) / b"dhcp",
        IP(src="0.0.0.0", dst=B4) / UDP(dport=67) / b"dhcp",
        IP(src=A4, dst="239.1.1.1") / TCP(),
        IPv6(src=A6, dst="ff02::fb") / UDP(dport=5353) / b"mdns",
        IPv6(src="::", dst=B6) / UDP() / b"x",
        IP(**V4, frag=2) / b"a later fragment",
        IPv6(**V6) / IPv6ExtHdrFragment(offset=3, nh=17) / b"a later fragment",
    ],
    ids=[
        "icmp-error",
        "icmp-time-exceeded",
        "icmp-unknown",
        "icmpv6-error",
        "multicast",
        "broadcast",
        "unspecified-source",
        "tcp-to-multicast",
        "v6-multicast",
        "v6-unspecified-source",
        "v4-later-fragment",
        "v6-later-fragment",
    ],
)
def test_no_reply(pkt: Packet) -> None:
    assert build_rejects(bytes(pkt)) == []


def test_garbage_gets_no_reply() -> None:
    assert build_rejects(b"") == []
    assert build_rejects(b"\x45\x00\x00") == []
    assert build_rejects(bytes(IP(**V4) / TCP())[:30]) == []  # TCP header cut short


# -- the rate limit ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


TCP_PKT = bytes(IP(**V4) / TCP(flags="S"))  # two replies
UDP_PKT = bytes(IP(**V4) / UDP() / b"x")  # one reply


def make(rate: float = 1.0, burst: int = 3) -> tuple[Rejecter, Clock, list[bytes]]:
    clock = Clock()
    sent: list[bytes] = []
    return Rejecter(rate, burst, clock=clock, transmit=sent.append), clock, sent


def test_token_bucket_refuses_beyond_the_burst() -> None:
    rej, clock, sent = make(rate=1.0, burst=3)
    assert rej.send(TCP_PKT) == 2  # 1 token left
    assert rej.send(TCP_PKT) == 0  # needs 2: refused whole, nothing half-sent
    assert rej.send(UDP_PKT) == 1  # 0 left
    assert rej.send(UDP_PKT) == 0
    assert len(sent) == 3
    assert rej.stats == {"requests": 4, "sent": 3, "refused": 2, "unanswerable": 0, "send_errors": 0}
    clock.t += 2.0  # two tokens back
    assert rej.send(TCP_PKT) == 2
    assert rej.send(UDP_PKT) == 0
    clock.t += 1000.0  # refills only up to the burst
    assert [rej.send(UDP_PKT) for _ in range(5)] == [1, 1, 1, 0, 0]
    clock.t -= 50.0  # a clock stepping back neither adds nor breaks anything
    assert rej.send(UDP_PKT) == 0


def test_sustained_rate() -> None:
    rej, clock, sent = make(rate=10.0, burst=5)
    for _ in range(100):  # 100 UDP rejects per second for 10 s
        rej.send(UDP_PKT)
        clock.t += 0.01
    # The burst, then 10 per second.
    assert 5 + 10 - 1 <= len(sent) <= 5 + 10 + 1
    assert rej.stats["refused"] == 100 - len(sent)


def test_unanswerable_costs_nothing() -> None:
    rej, _, _ = make(burst=1)
    assert rej.send(bytes(IP(**V4) / TCP(flags="R"))) == 0
    assert rej.stats["unanswerable"] == 1
    assert rej.send(UDP_PKT) == 1


def test_send_errors_are_counted() -> None:
    def refuse(data: bytes) -> None:
        raise PermissionError("no CAP_NET_RAW")

    rej = Rejecter(transmit=refuse)
    assert rej.send(TCP_PKT) == 0
    assert rej.stats["send_errors"] == 2


def test_arguments_checked() -> None:
    with pytest.raises(ValueError):
        Rejecter(burst=0)
    with pytest.raises(ValueError):
        Rejecter(rate_per_second=-1)
