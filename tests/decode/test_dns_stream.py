"""DNS over TCP framing: messages split anywhere and batched, garbage and gaps stop a direction."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR

from inline_ips.decode.dns_stream import DnsTcpConnection


def framed(name: str, ident: int = 1) -> bytes:
    msg = bytes(DNS(id=ident, rd=1, qd=DNSQR(qname=name)))
    return len(msg).to_bytes(2, "big") + msg


STREAM = framed("a.example", 1) + framed("b.example", 2) + framed("c.example", 3)


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_anywhere_gives_the_same_messages(cut: int) -> None:
    conn = DnsTcpConnection()
    got = conn.feed(True, STREAM[:cut]) + conn.feed(True, STREAM[cut:])
    assert [(m.id, m.qname) for m in got] == [(1, "a.example"), (2, "b.example"), (3, "c.example")]


def test_byte_by_byte_and_directions_apart() -> None:
    conn = DnsTcpConnection()
    names = [m.qname for b in STREAM for m in conn.feed(True, bytes([b]))]
    assert names == ["a.example", "b.example", "c.example"]
    assert [m.qname for m in conn.feed(False, framed("reply.example"))] == ["reply.example"]
    assert conn.messages == 4


def test_garbage_stops_that_direction_only() -> None:
    conn = DnsTcpConnection()
    assert conn.feed(True, b"\x00\x05hello" + framed("a.example")) == []
    assert conn.feed(True, framed("b.example")) == []
    assert conn.failed is False
    assert [m.qname for m in conn.feed(False, framed("c.example"))] == ["c.example"]


def test_a_gap_stops_the_direction() -> None:
    conn = DnsTcpConnection()
    conn.feed(True, b"\x01\x00" + b"x" * 100)  # a 256-byte message in progress
    conn.gap(True)
    assert conn.feed(True, framed("a.example")) == []
    conn.gap(False)
    assert conn.failed is True


def test_an_oversized_message_is_not_held() -> None:
    conn = DnsTcpConnection()
    assert conn.feed(False, b"\xff\xff" + b"x" * 1000) == []
    assert conn.oversized == 1
    assert conn.feed(False, b"x" * 70000) == []  # nothing kept for that direction
    assert [m.qname for m in conn.feed(True, framed("a.example"))] == ["a.example"]
