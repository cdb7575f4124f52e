"""The app-layer memcap: what all flows' HTTP/TLS/DNS parsers hold together stays bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inline_ips.decode.dns_stream import DnsTcpConnection
from inline_ips.decode.http_stream import HttpConnection
from inline_ips.decode.memcap import Memcap
from inline_ips.decode.tls_stream import TlsConnection

Parser = HttpConnection | TlsConnection | DnsTcpConnection

# (make a parser on the budget, bytes that leave it holding something, what it holds after them)
HTTP_HEAD = b"GET /a HTTP/1.1\r\nHost: example.com\r\n"  # a head that never ends
HTTP_BODY = b"POST /u HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"b" * 1000  # a body just begun
TLS_HELLO = b"\x16\x03\x01\x10\x04\x01\x00\x10\x00\x03\x03" + b"r" * 994  # 1,000 of a 4,096-byte hello
DNS_PART = b"\x01\x00" + b"\xab\xcd\x01\x00\x00\x01"  # 6 of a 256-byte message
CASES: list[tuple[str, Callable[[Memcap], Parser], bytes, int]] = [
    ("http head", lambda m: HttpConnection(memcap=m), HTTP_HEAD, len(HTTP_HEAD)),
    ("http body", lambda m: HttpConnection(memcap=m), HTTP_BODY, 1000),
    ("tls hello", lambda m: TlsConnection(memcap=m), TLS_HELLO, 2 + 994),  # version + random
    ("dns/tcp", lambda m: DnsTcpConnection(memcap=m), DNS_PART, len(DNS_PART)),
]


def held(p: Parser) -> int:
    return p.held


@pytest.mark.parametrize(("name", "make", "data", "each"), CASES, ids=[c[0] for c in CASES])
def test_many_flows_stop_at_the_budget_and_count_refusals(
    name: str, make: Callable[[Memcap], Parser], data: bytes, each: int
) -> None:
    m = Memcap(cap=10 * each)
    parsers = [make(m) for _ in range(100)]
    for p in parsers:
        p.feed(True, data)
        assert m.used == sum(held(q) for q in parsers)  # the ledger is exact
    assert [held(p) for p in parsers[:10]] == [each] * 10
    assert m.used == m.peak == 10 * each  # the rest were refused: nothing held
    assert m.refused == 90
    for p in parsers:
        p.release()
    assert m.used == 0


def test_one_feed_can_overshoot_by_at_most_its_own_bytes() -> None:
    m = Memcap(cap=100)
    a, b = HttpConnection(memcap=m), HttpConnection(memcap=m)
    a.feed(True, HTTP_BODY[:-900])  # 100 body bytes: the budget is spent exactly
    assert m.used == 100 and m.full
    b.feed(True, HTTP_HEAD)  # refused: a gap for b, nothing held
    assert (b.held, b.stats["memcap"], m.used) == (0, 1, 100)
    a.release()
    b.feed(True, HTTP_HEAD)  # room again: b resynchronises at this request
    assert b.held == len(HTTP_HEAD) == m.used


def test_finished_transactions_give_their_bodies_back() -> None:
    m = Memcap()
    c = HttpConnection(memcap=m)
    req = b"POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
    c.feed(True, req)
    c.feed(False, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert m.used == c.held == 13
    c.discard_done()
    assert m.used == c.held == 0


def test_without_a_memcap_nothing_is_counted() -> None:
    c = HttpConnection()
    c.feed(True, HTTP_HEAD)
    assert c.held == len(HTTP_HEAD)
    c.release()  # no budget: a no-op


def test_a_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 0"):
        Memcap(-1)
