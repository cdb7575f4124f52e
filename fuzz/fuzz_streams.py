"""Fuzz target: the connection-level parsers (HTTP/1.x, TLS handshakes, DNS over TCP).

Does: read the input's first byte as which parser (0 HTTP, 1 TLS, 2 DNS,
modulo 3) and the rest as records (:func:`fuzz.common.records`) of one
connection: the tag's low bit is the direction (1: to the server), bits 1-2
the operation (0 feed the bytes, 1 a gap, 2 close that side: HTTP only,
3 treated as feed). After each record the parser's bounds must hold (HTTP:
held bytes, live transactions; TLS: the anomaly list; DNS: nothing held past
one message), and at the end every rule buffer is built from every
transaction (HTTP) or the connection (TLS), which exercises the URI
normalisation, header tables, body decoding and certificate formatting.
``internal_error`` (an exception a parser caught) is a failure.

Does not: reassemble TCP (each record is the next in-order bytes of its
direction, as the engine feeds them), or share a memcap between connections.
"""

from __future__ import annotations

from fuzz.common import fuzz, instrumented, records

with instrumented(__name__ == "__main__"):
    from inline_ips.decode.dns_stream import MAX_MESSAGE as DNS_MAX_MESSAGE
    from inline_ips.decode.dns_stream import DnsTcpConnection
    from inline_ips.decode.http import HTTP_BUFFERS
    from inline_ips.decode.http_stream import HttpConnection, HttpLimits
    from inline_ips.decode.tls import TLS_BUFFERS, tls_buffer
    from inline_ips.decode.tls_stream import MAX_ANOMALIES, TlsConnection

HTTP, TLS, DNS = 0, 1, 2
FEED, GAP, CLOSE = 0, 1, 2
LIMITS = HttpLimits()
# What an HTTP connection may hold: a head per side (plus the bytes of the segment being
# searched), a chunk-size line per side, and client data held while a CONNECT is answered.
HTTP_HELD_BOUND = (
    2 * (LIMITS.max_header_bytes + 0x10000) + 2 * LIMITS.max_chunk_line + LIMITS.max_connect_hold
)


class BoundBrokenError(AssertionError):
    """A parser held more than its documented bound, or caught an internal error."""


def _http(data: bytes) -> None:
    conn = HttpConnection(LIMITS)
    for tag, chunk in records(data):
        to_server = bool(tag & 1)
        op = (tag >> 1) & 3
        if op == GAP:
            conn.gap(to_server, len(chunk) or None)
        elif op == CLOSE:
            conn.close(to_server)
        else:
            conn.feed(to_server, chunk)
        if conn.internal_error:
            raise BoundBrokenError("HttpConnection caught an internal error")
        if conn.buffered > HTTP_HELD_BOUND:
            raise BoundBrokenError(f"HttpConnection buffers {conn.buffered} bytes, bound {HTTP_HELD_BOUND}")
        if len(conn.transactions) > LIMITS.max_transactions:
            raise BoundBrokenError(
                f"{len(conn.transactions)} live transactions, bound {LIMITS.max_transactions}"
            )
        if tag & 0x80:  # the engine discards finished transactions after inspecting them
            conn.discard_done()
    for tx in conn.transactions:
        for name in sorted(HTTP_BUFFERS):
            for side in (True, False):
                got = tx.buffer(name, side)
                if got is not None and not isinstance(got, bytes):
                    raise BoundBrokenError(f"{name}: {type(got).__name__}, not bytes")
    if conn.internal_error:
        raise BoundBrokenError("HttpConnection caught an internal error building buffers")


def _tls(data: bytes) -> None:
    conn = TlsConnection()
    for tag, chunk in records(data):
        to_server = bool(tag & 1)
        if (tag >> 1) & 3 == GAP:
            conn.gap(to_server)
        else:
            conn.feed(to_server, chunk)
        if len(conn.anomalies) > 2 * MAX_ANOMALIES:
            raise BoundBrokenError(f"{len(conn.anomalies)} anomalies kept, bound {MAX_ANOMALIES} per side")
    for name in sorted(TLS_BUFFERS):
        for side in (True, False):
            tls_buffer(conn, name, to_server=side)


def _dns(data: bytes) -> None:
    conn = DnsTcpConnection()
    for tag, chunk in records(data):
        to_server = bool(tag & 1)
        if (tag >> 1) & 3 == GAP:
            conn.gap(to_server)
        else:
            conn.feed(to_server, chunk)
        held = max(len(b) for b in conn._buf)
        if held > DNS_MAX_MESSAGE + 1:  # what is left is less than one length prefix + message
            raise BoundBrokenError(
                f"DnsTcpConnection holds {held} bytes, bound one {DNS_MAX_MESSAGE}-byte message"
            )


def test_one_input(data: bytes) -> None:
    if not data:
        return
    which = data[0] % 3
    body = data[1:]
    if which == HTTP:
        _http(body)
    elif which == TLS:
        _tls(body)
    else:
        _dns(body)


if __name__ == "__main__":
    fuzz(test_one_input)
