"""Incremental, bounded HTTP/1.x parser for one TCP connection, both directions.

Does: take the in-order bytes of each direction as they arrive
(:meth:`HttpConnection.feed`) and turn them into transactions
(:class:`HttpTx`: one request and its response) the way libhtp does for
Suricata: request and response heads parsed by :mod:`.http`; bodies framed
by Content-Length, chunked transfer coding (incremental, chunk extensions
ignored, trailers added to the headers) or, for responses, the end of the
connection; bodies de-chunked and gzip/deflate-decompressed into
``request_body`` / ``response_body`` (``http.request_body``,
``http.response_body``, ``file.data``); responses paired with requests in
order (pipelining), a response that arrives before its request kept until
the request shows up; HEAD, 1xx, 204 and 304 responses without a body,
interim 1xx responses (100 Continue) skipped; CONNECT answered with 2xx, or a
101 Switching Protocols, turning the connection into a tunnel that is no
longer parsed; bare LF line ends; resynchronisation after lost bytes
(:meth:`HttpConnection.gap`) at the next segment that starts a message.

Bounded: every buffer has a limit from :class:`HttpLimits` (header block,
chunk-size line, bodies, decompressed output and ratio, live transactions,
client bytes held while a CONNECT waits for its answer). Past a limit the
data is counted, flagged and dropped, never kept. With a shared
:class:`~inline_ips.decode.memcap.Memcap` (the engine's), what every
connection holds together is bounded too: a connection settles its share
after each feed, and while the budget is spent its new bytes are treated as
a gap (``stats["memcap"]``); :meth:`HttpConnection.release` gives the share
back when the flow leaves the table. Work per :meth:`feed` is
linear in the new bytes: a header block split over many segments is searched
only where the new bytes are (plus two bytes of overlap), never re-parsed.

Does not: parse HTTP/2 (an ``h2c`` upgrade is a tunnel here), reassemble TCP
(the caller feeds in-order bytes and reports holes with ``gap``), time out
idle transactions, or decode multipart bodies. It never raises: an internal
error (a bug) marks the connection ``failed`` and sets ``internal_error``,
which the fuzz tests assert never happens; it never uses Scapy.

Limits default to Suricata's ``suricata.yaml`` libhtp defaults where Suricata
has one: ``request-body-limit`` and ``response-body-limit`` 100 KiB,
``compression-bomb-limit`` 1 MiB with libhtp's 2048 ratio,
``response-body-decompress-layer-limit`` 2. Suricata's header field limit is
18000 bytes per line and it keeps up to 512 transactions; this parser bounds
the whole header block at 16 KiB and keeps 16 live transactions, evicting
the oldest finished one first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from inline_ips.decode.http import (
    HEADERLESS_RESPONSE,
    ContentDecoder,
    HttpRequest,
    HttpResponse,
    chunk_size,
    content_codings,
    content_length,
    field,
    header_fields,
    http_buffer,
    is_chunked,
    parse_request,
    parse_response,
)
from inline_ips.decode.memcap import Memcap

__all__ = ["EVENTS", "HttpConnection", "HttpLimits", "HttpTx"]

EVENTS: Final = (
    "request_headers",
    "request_body",
    "request_done",
    "response_headers",
    "response_body",
    "response_done",
)

Event = tuple["HttpTx", str]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds for one connection (defaults: see the module docstring)."""

    max_header_bytes: int = 16384
    request_body_limit: int = 102400
    response_body_limit: int = 102400
    max_transactions: int = 16
    max_decompressed: int = 1 << 20
    max_compression_ratio: int = 2048
    max_decompress_layers: int = 2
    max_chunk_line: int = 1024
    max_connect_hold: int = 16384


class HttpTx:
    """One request/response pair; ``index`` counts from 0 on the connection.

    ``request`` or ``response`` is None until its head is parsed, and stays
    None for a head that was too long or lost. ``request_flags`` and
    ``response_flags`` name anomalies: ``header_too_long``, ``gap``,
    ``incomplete`` (the side closed mid-body), ``truncated`` (body limit
    reached), ``compression_bomb``, ``decompress_error``, ``invalid_chunk``,
    ``invalid_length``, and ``orphan`` for a response whose request head had
    not been parsed when it arrived. ``*_body`` is the decoded body kept so
    far (at most the body limit), ``*_body_seen`` the count of body bytes
    after de-chunking and before decompression. ``tunnel`` is set on the
    transaction whose CONNECT or 101 ended HTTP parsing;
    ``interim_responses`` counts 1xx responses that were skipped.
    """

    __slots__ = (
        "_req_cache",
        "_req_dec",
        "_resp_cache",
        "_resp_dec",
        "index",
        "interim_responses",
        "request",
        "request_done",
        "request_flags",
        "response",
        "response_done",
        "response_flags",
        "tunnel",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.request: HttpRequest | None = None
        self.response: HttpResponse | None = None
        self.request_done = False
        self.response_done = False
        self.request_flags: set[str] = set()
        self.response_flags: set[str] = set()
        self.tunnel = False
        self.interim_responses = 0
        self._req_dec: ContentDecoder | None = None
        self._resp_dec: ContentDecoder | None = None
        self._req_cache: bytes | None = None
        self._resp_cache: bytes | None = None

    def __repr__(self) -> str:
        req = self.request
        resp = self.response
        return (
            f"HttpTx({self.index}, {req.method if req else None!r} {req.uri_raw if req else b''!r}"
            f" -> {resp.status if resp else None!r}, done={self.request_done}/{self.response_done})"
        )

    @property
    def request_body(self) -> bytes:
        if self._req_cache is None:
            self._req_cache = bytes(self._req_dec.body) if self._req_dec is not None else b""
        return self._req_cache

    @property
    def response_body(self) -> bytes:
        if self._resp_cache is None:
            self._resp_cache = bytes(self._resp_dec.body) if self._resp_dec is not None else b""
        return self._resp_cache

    @property
    def request_body_seen(self) -> int:
        return self._req_dec.raw_seen if self._req_dec is not None else 0

    @property
    def response_body_seen(self) -> int:
        return self._resp_dec.raw_seen if self._resp_dec is not None else 0

    @property
    def request_body_truncated(self) -> bool:
        dec = self._req_dec
        return dec is not None and (dec.truncated or dec.bomb or dec.error)

    @property
    def response_body_truncated(self) -> bool:
        dec = self._resp_dec
        return dec is not None and (dec.truncated or dec.bomb or dec.error)

    def buffer(self, name: str, to_server: bool) -> bytes | None:
        """The Suricata buffer ``name`` of the request (``to_server``) or the response side."""
        if to_server:
            if self.request is None:
                return None
            return http_buffer(self.request, name, self.request_body)
        if self.response is None:
            return None
        return http_buffer(self.response, name, self.response_body)


# Parser states of one direction.
_HEAD: Final = 0  # waiting for / reading a message head
_BODY_LEN: Final = 1  # Content-Length body
_CHUNK_SIZE: Final = 2
_CHUNK_DATA: Final = 3
_CHUNK_END: Final = 4  # the line end after a chunk's data
_TRAILER: Final = 5
_BODY_CLOSE: Final = 6  # response body until the server closes
_TUNNEL: Final = 7
_RESYNC: Final = 8  # bytes were lost or garbled: wait for a segment that starts a message
_CONNECT_WAIT: Final = 9  # client: a CONNECT waits for its response
_CLOSED: Final = 10

_METHOD_CHARS: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_MAX_METHOD: Final = 16


class _Half:
    """Parsing state of one direction."""

    __slots__ = (
        "body_evented",
        "head",
        "line",
        "line_done",
        "remaining",
        "start_ok",
        "state",
        "to_server",
        "tx",
    )

    def __init__(self, to_server: bool) -> None:
        self.to_server = to_server
        self.state = _HEAD
        self.head = bytearray()  # the head (or trailer) block read so far
        self.line = bytearray()  # a chunk-size line read so far
        self.remaining = 0  # body or chunk bytes still expected
        self.tx: HttpTx | None = None  # the message in progress
        self.start_ok = False  # the head's first bytes look like a message start
        self.line_done = False  # the head's first line is complete
        self.body_evented: HttpTx | None = None  # body event already given in this feed


def _start_verdict(to_server: bool, prefix: bytes) -> bool | None:
    """Do the first bytes of a head look like a request line (client) / status line (server)?

    None while too few bytes have arrived to tell.
    """
    if to_server:
        i = 0
        n = len(prefix)
        while i < n and i < _MAX_METHOD and prefix[i] in _METHOD_CHARS:
            i += 1
        if n == 0:
            return None
        if i == 0 or not 0x41 <= prefix[0] <= 0x5A:
            return False
        if i < n:
            return prefix[i] == 0x20
        return None
    want = b"HTTP/"
    got = prefix[:5].upper()
    if got != want[: len(got)]:
        return False
    return True if len(got) == 5 else None


class HttpConnection:
    """The HTTP/1.x state of one TCP connection (see the module docstring)."""

    def __init__(self, limits: HttpLimits = HttpLimits(), memcap: Memcap | None = None) -> None:
        self.limits = limits
        # The budget shared with every other flow's parsers (decode/memcap.py), and this
        # connection's share of it: held heads and lines plus the bodies of live transactions.
        self._memcap = memcap
        self._charged = 0
        self._bodies = 0  # body bytes held by the live transactions' decoders
        self._txs: dict[int, HttpTx] = {}
        self._next_req = 0
        self._next_resp = 0
        self._client = _Half(True)
        self._server = _Half(False)
        self._held = bytearray()  # client bytes sent while a CONNECT waits for its answer
        self._is_http = False
        self._failed = False
        self._tunnel = False
        self.internal_error = False
        self.stats: dict[str, int] = {
            "header_too_long": 0,
            "garbage": 0,
            "gaps": 0,
            "evicted": 0,
            "connect_hold_dropped": 0,
            "orphan_responses": 0,
            "memcap": 0,  # feeds turned into gaps because the shared budget was spent
        }

    # -- public ------------------------------------------------------------

    @property
    def transactions(self) -> Sequence[HttpTx]:
        """Live transactions in index order (at most ``max_transactions``)."""
        return sorted(self._txs.values(), key=lambda tx: tx.index)

    @property
    def is_http(self) -> bool:
        """A request or response head has been parsed."""
        return self._is_http

    @property
    def failed(self) -> bool:
        """The stream is not HTTP (or an internal error happened): nothing more is parsed."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Bytes held in parser buffers (partial heads, chunk lines, held CONNECT data)."""
        return (
            len(self._client.head)
            + len(self._client.line)
            + len(self._server.head)
            + len(self._server.line)
            + len(self._held)
        )

    @property
    def tunnel(self) -> bool:
        """A CONNECT or 101 turned the connection into a tunnel: nothing more is parsed."""
        return self._tunnel

    def feed(self, to_server: bool, data: bytes) -> list[Event]:
        """Parse the next in-order bytes of one direction; return what progressed, in order."""
        out: list[Event] = []
        if not data or self._failed or self._tunnel:
            return out
        mc = self._memcap
        if mc is not None and mc.full:
            # Nothing more may be held: these bytes are lost to the parser, as in a TCP gap.
            mc.refuse()
            self.stats["memcap"] += 1
            return self.gap(to_server)
        half = self._client if to_server else self._server
        try:
            half.body_evented = None
            if to_server and half.state == _CONNECT_WAIT:
                self._hold(data)
            else:
                self._parse(half, bytes(data), out)
        except Exception:  # a decoder bug must not take the IPS down
            self._internal_error()
        if mc is not None:
            self._charged = mc.settle(self.buffered + self._bodies, self._charged)
        return out

    @property
    def held(self) -> int:
        """Bytes this connection holds: :attr:`buffered` plus the live transactions' bodies."""
        return self.buffered + self._bodies

    def release(self) -> None:
        """The flow is gone: give this connection's share back to the shared budget."""
        if self._memcap is not None:
            self._charged = self._memcap.settle(0, self._charged)

    def gap(self, to_server: bool, length: int | None = None) -> list[Event]:
        """``length`` bytes (unknown if None) were lost in this direction: resynchronise.

        Inside a body of known length the parser just skips ``length``
        bytes (the transaction is flagged ``gap``); anywhere else the message
        in progress ends (flagged) and parsing resumes at the next segment
        that starts a request or response.
        """
        out: list[Event] = []
        if self._failed or self._tunnel:
            return out
        try:
            self.stats["gaps"] += 1
            half = self._client if to_server else self._server
            self._gap(half, length, out)
        except Exception:  # see feed
            self._internal_error()
        if self._memcap is not None:
            self._charged = self._memcap.settle(self.buffered + self._bodies, self._charged)
        return out

    def close(self, to_server: bool) -> list[Event]:
        """That side sent FIN: finish what the end of its stream completes."""
        out: list[Event] = []
        if self._failed:
            return out
        try:
            half = self._client if to_server else self._server
            self._close(half, out)
        except Exception:  # see feed
            self._internal_error()
        return out

    def discard_done(self) -> None:
        """Forget transactions whose request and response are both complete."""
        for idx in [i for i, tx in self._txs.items() if tx.request_done and tx.response_done]:
            self._bodies -= _body_bytes(self._txs.pop(idx))
        if self._memcap is not None:
            self._charged = self._memcap.settle(self.buffered + self._bodies, self._charged)

    # -- the state machine ---------------------------------------------------

    def _internal_error(self) -> None:
        self.internal_error = True
        self._failed = True

    def _parse(self, half: _Half, data: bytes, out: list[Event]) -> None:
        n = len(data)
        pos = 0
        if half.state == _RESYNC:
            if not self._resumes(half, data):
                return
            half.state = _HEAD
        while pos < n and not self._failed and not self._tunnel:
            st = half.state
            if st == _HEAD:
                pos = self._read_head(half, data, pos, out)
            elif st in (_BODY_LEN, _CHUNK_DATA):
                k = min(half.remaining, n - pos)
                self._body(half, data[pos : pos + k], out)
                pos += k
                half.remaining -= k
                if half.remaining == 0:
                    if st == _BODY_LEN:
                        self._finish(half, out)
                    else:
                        half.state = _CHUNK_END
            elif st == _CHUNK_SIZE:
                pos = self._read_chunk_size(half, data, pos, out)
            elif st == _CHUNK_END:
                eol = data.find(b"\n", pos)
                if eol < 0:
                    return
                pos = eol + 1
                half.state = _CHUNK_SIZE
            elif st == _TRAILER:
                pos = self._read_trailer(half, data, pos, out)
            elif st == _BODY_CLOSE:
                self._body(half, data[pos:], out)
                return
            elif st == _CONNECT_WAIT:
                self._hold(data[pos:])
                return
            else:  # _TUNNEL, _RESYNC (garbage found mid-segment), _CLOSED
                return

    def _resumes(self, half: _Half, data: bytes) -> bool:
        i = 0
        while i < len(data) and i < 8 and data[i] in (0x0D, 0x0A):
            i += 1
        return _start_verdict(half.to_server, data[i : i + _MAX_METHOD + 1]) is True

    def _read_head(self, half: _Half, data: bytes, pos: int, out: list[Event]) -> int:
        n = len(data)
        head = half.head
        if not head:
            # Empty lines before a message are ignored, as libhtp does.
            while pos < n and data[pos] in (0x0D, 0x0A):
                pos += 1
            if pos >= n:
                return n
        if not half.start_ok:
            prefix = bytes(head[: _MAX_METHOD + 1]) + data[pos : pos + _MAX_METHOD + 1]
            verdict = _start_verdict(half.to_server, prefix)
            if verdict is False:
                return self._not_a_message(half, data, pos, out)
            half.start_ok = verdict is True
        room = self.limits.max_header_bytes - len(head)
        lim = min(n, pos + max(room, 0))
        if half.to_server and not half.line_done:
            end = self._http09_end(half, data, pos, lim)
            if end >= 0:
                self._take_head(half, data, pos, end, out)
                return end
        end = _block_end_in(head, data, pos, lim)
        if end >= 0:
            self._take_head(half, data, pos, end, out)
            return end
        head += data[pos:lim]
        if len(head) >= self.limits.max_header_bytes:
            self._head_too_long(half, out)
        return lim

    @staticmethod
    def _http09_end(half: _Half, data: bytes, pos: int, lim: int) -> int:
        """End of an HTTP/0.9 request line (a request without version), or -1."""
        eol = data.find(b"\n", pos, lim)
        if eol < 0:
            return -1
        half.line_done = True
        line = bytes(half.head) + data[pos : eol + 1]
        req = parse_request(line, max_header_bytes=len(line) + 1, max_body_bytes=0)
        if req is None or req.version:
            return -1
        return eol + 1

    def _take_head(self, half: _Half, data: bytes, pos: int, end: int, out: list[Event]) -> None:
        block = bytes(half.head) + data[pos:end] if half.head else data[pos:end]
        half.head.clear()
        half.start_ok = False
        half.line_done = False
        if half.to_server:
            self._request_head(half, block, out)
        else:
            self._response_head(half, block, out)

    def _not_a_message(self, half: _Half, data: bytes, pos: int, out: list[Event]) -> int:
        n = len(data)
        if not self._is_http:
            self._failed = True
            return n
        if not half.to_server:
            # libhtp takes a response that does not start with HTTP as an
            # HTTP/0.9 body running to the end of the connection.
            tx = self._response_tx()
            tx.response = HEADERLESS_RESPONSE
            self._is_http = True
            out.append((tx, "response_headers"))
            self._setup_response_body(tx, HEADERLESS_RESPONSE)
            half.tx = tx
            half.state = _BODY_CLOSE
            body = bytes(half.head) + data[pos:]
            half.head.clear()
            half.start_ok = False
            half.line_done = False
            self._body(half, body, out)
            return n
        self.stats["garbage"] += 1
        half.head.clear()
        half.start_ok = False
        half.line_done = False
        half.state = _RESYNC
        return n

    def _head_too_long(self, half: _Half, out: list[Event]) -> None:
        self.stats["header_too_long"] += 1
        half.head.clear()
        half.start_ok = False
        half.line_done = False
        if half.to_server:
            tx = self._tx(self._next_req)
            self._next_req += 1
            tx.request_flags.add("header_too_long")
            tx.request_done = True
            out.append((tx, "request_done"))
        else:
            tx = self._response_tx()
            tx.response_flags.add("header_too_long")
            tx.response_done = True
            out.append((tx, "response_done"))
        half.state = _RESYNC

    # -- heads ---------------------------------------------------------------

    def _request_head(self, half: _Half, block: bytes, out: list[Event]) -> None:
        req = parse_request(block, max_header_bytes=len(block) + 1, max_body_bytes=0)
        if req is None:
            if not self._is_http:
                self._failed = True
            else:
                self.stats["garbage"] += 1
                half.state = _RESYNC
            return
        self._is_http = True
        tx = self._tx(self._next_req)
        self._next_req += 1
        tx.request = req
        tx._req_cache = None
        half.tx = tx
        out.append((tx, "request_headers"))
        fields = req.fields
        if tx._req_dec is not None:  # a decoder replaced takes its bytes with it
            self._bodies -= len(tx._req_dec.body)
        tx._req_dec = ContentDecoder(
            content_codings(fields, self.limits.max_decompress_layers),
            limit=self.limits.request_body_limit,
            max_output=self.limits.max_decompressed,
            max_ratio=self.limits.max_compression_ratio,
        )
        if not req.version:
            self._finish(half, out)
        elif is_chunked(fields):
            half.state = _CHUNK_SIZE
            half.line.clear()
        else:
            length = content_length(fields)
            if length < 0 and field(fields, b"content-length") is not None:
                tx.request_flags.add("invalid_length")
            if length > 0:
                half.state = _BODY_LEN
                half.remaining = length
            else:
                self._finish(half, out)

    def _response_tx(self) -> HttpTx:
        idx = self._next_resp
        self._next_resp += 1
        tx = self._tx(idx)
        if tx.request is None and not tx.request_done:
            tx.response_flags.add("orphan")
            self.stats["orphan_responses"] += 1
        return tx

    def _response_head(self, half: _Half, block: bytes, out: list[Event]) -> None:
        resp = parse_response(block, max_header_bytes=len(block) + 1, max_body_bytes=0)
        if resp is None:
            self.stats["garbage"] += 1
            half.state = _RESYNC
            return
        code = resp.status_code
        if 100 <= code <= 199 and code != 101:
            # An interim response (100 Continue...): the final one follows.
            tx = self._tx(self._next_resp)
            tx.interim_responses += 1
            self._is_http = True
            return
        self._is_http = True
        tx = self._response_tx()
        tx.response = resp
        tx._resp_cache = None
        half.tx = tx
        out.append((tx, "response_headers"))
        method = tx.request.method if tx.request is not None else b"GET"
        if code == 101 or (method == b"CONNECT" and 200 <= code <= 299):
            tx.tunnel = True
            self._finish(half, out)
            self._start_tunnel()
            return
        fields = resp.fields
        self._setup_response_body(tx, resp)
        if method == b"HEAD" or code in (204, 304) or 100 <= code <= 199:
            self._finish(half, out)
        elif is_chunked(fields):
            half.state = _CHUNK_SIZE
            half.line.clear()
        else:
            length = content_length(fields)
            if length > 0:
                half.state = _BODY_LEN
                half.remaining = length
            elif length == 0:
                self._finish(half, out)
            else:
                if field(fields, b"content-length") is not None:
                    tx.response_flags.add("invalid_length")
                half.state = _BODY_CLOSE
        if method == b"CONNECT" and self._client.state == _CONNECT_WAIT:
            # The proxy refused the tunnel: what the client sent meanwhile is HTTP again.
            self._client.state = _HEAD
            held = bytes(self._held)
            self._held.clear()
            if held:
                self._client.body_evented = None
                self._parse(self._client, held, out)

    def _setup_response_body(self, tx: HttpTx, resp: HttpResponse) -> None:
        if tx._resp_dec is not None:  # an interim response's decoder, say: its bytes go with it
            self._bodies -= len(tx._resp_dec.body)
        tx._resp_dec = ContentDecoder(
            content_codings(resp.fields, self.limits.max_decompress_layers),
            limit=self.limits.response_body_limit,
            max_output=self.limits.max_decompressed,
            max_ratio=self.limits.max_compression_ratio,
        )

    def _start_tunnel(self) -> None:
        self._tunnel = True
        self._client.state = _TUNNEL
        self._server.state = _TUNNEL
        self._held.clear()

    def _hold(self, data: bytes) -> None:
        room = self.limits.max_connect_hold - len(self._held)
        if len(data) > room:
            self.stats["connect_hold_dropped"] += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._held += data

    # -- bodies --------------------------------------------------------------

    def _body(self, half: _Half, chunk: bytes, out: list[Event]) -> None:
        tx = half.tx
        if tx is None or not chunk:
            return
        dec = tx._req_dec if half.to_server else tx._resp_dec
        if dec is None:
            return
        added = dec.feed(chunk)
        if added:
            self._bodies += added
            if half.to_server:
                tx._req_cache = None
            else:
                tx._resp_cache = None
            if half.body_evented is not tx:
                half.body_evented = tx
                out.append((tx, "request_body" if half.to_server else "response_body"))

    def _read_chunk_size(self, half: _Half, data: bytes, pos: int, out: list[Event]) -> int:
        n = len(data)
        room = self.limits.max_chunk_line - len(half.line)
        lim = min(n, pos + max(room, 0))
        eol = data.find(b"\n", pos, lim)
        if eol < 0:
            half.line += data[pos:lim]
            if len(half.line) >= self.limits.max_chunk_line:
                self._bad_chunk(half, out)
            return lim
        line = bytes(half.line) + data[pos:eol] if half.line else data[pos:eol]
        half.line.clear()
        size = chunk_size(line)
        if size is None:
            return eol + 1  # an empty line where a size belongs: libhtp skips it
        if size < 0:
            self._bad_chunk(half, out)
            return eol + 1
        if size == 0:
            half.state = _TRAILER
            half.head.clear()
        else:
            half.state = _CHUNK_DATA
            half.remaining = size
        return eol + 1

    def _bad_chunk(self, half: _Half, out: list[Event]) -> None:
        half.line.clear()
        tx = half.tx
        if tx is not None:
            (tx.request_flags if half.to_server else tx.response_flags).add("invalid_chunk")
        if half.to_server:
            self._finish(half, out)
            half.state = _RESYNC
        else:
            # libhtp gives up on the framing and treats the rest as body.
            half.state = _BODY_CLOSE

    def _read_trailer(self, half: _Half, data: bytes, pos: int, out: list[Event]) -> int:
        head = half.head
        n = len(data)
        if not head:
            # No trailer: the last chunk is followed by the empty line at once.
            if data[pos] == 0x0A:
                self._finish(half, out)
                return pos + 1
            if data[pos] == 0x0D and pos + 1 < n and data[pos + 1] == 0x0A:
                self._finish(half, out)
                return pos + 2
        elif len(head) == 1 and head[0] == 0x0D and data[pos] == 0x0A:
            head.clear()
            self._finish(half, out)
            return pos + 1
        room = self.limits.max_header_bytes - len(head)
        lim = min(n, pos + max(room, 0))
        end = _block_end_in(head, data, pos, lim)
        if end < 0:
            head += data[pos:lim]
            if len(head) >= self.limits.max_header_bytes:
                head.clear()
                tx = half.tx
                if tx is not None:
                    (tx.request_flags if half.to_server else tx.response_flags).add("header_too_long")
                self.stats["header_too_long"] += 1
                self._finish(half, out)
                half.state = _RESYNC
            return lim
        block = bytes(head) + data[pos:end] if head else data[pos:end]
        head.clear()
        self._add_trailer(half, block)
        self._finish(half, out)
        return end

    def _add_trailer(self, half: _Half, block: bytes) -> None:
        tx = half.tx
        if tx is None:
            return
        lines = block.rstrip(b"\r\n")
        if half.to_server and tx.request is not None:
            req = tx.request
            tx.request = dataclasses.replace(
                req, header_raw=req.header_raw + block, fields=header_fields(lines, req.fields)
            )
        elif not half.to_server and tx.response is not None:
            resp = tx.response
            tx.response = dataclasses.replace(
                resp, header_raw=resp.header_raw + block, fields=header_fields(lines, resp.fields)
            )

    def _finish(self, half: _Half, out: list[Event]) -> None:
        tx = half.tx
        half.tx = None
        half.state = _HEAD
        half.head.clear()
        half.start_ok = False
        half.line_done = False
        if tx is None:
            return
        dec = tx._req_dec if half.to_server else tx._resp_dec
        if dec is not None and (dec.truncated or dec.bomb or dec.error):
            flags = tx.request_flags if half.to_server else tx.response_flags
            if dec.truncated:
                flags.add("truncated")
            if dec.bomb:
                flags.add("compression_bomb")
            if dec.error:
                flags.add("decompress_error")
        if half.to_server:
            tx.request_done = True
            out.append((tx, "request_done"))
            if tx.request is not None and tx.request.method == b"CONNECT":
                resp = tx.response
                if resp is None:
                    half.state = _CONNECT_WAIT
                elif 200 <= resp.status_code <= 299:
                    self._start_tunnel()
        else:
            tx.response_done = True
            out.append((tx, "response_done"))

    # -- gaps, close, transactions ---------------------------------------------

    def _gap(self, half: _Half, length: int | None, out: list[Event]) -> None:
        st = half.state
        tx = half.tx
        flags = None if tx is None else (tx.request_flags if half.to_server else tx.response_flags)
        if st in (_TUNNEL, _CLOSED):
            return
        if st in (_BODY_LEN, _CHUNK_DATA) and length is not None and length <= half.remaining:
            if flags is not None:
                flags.add("gap")
            half.remaining -= length
            if half.remaining == 0:
                if st == _BODY_LEN:
                    self._finish(half, out)
                else:
                    half.state = _CHUNK_END
            return
        if st == _BODY_CLOSE:
            if flags is not None:
                flags.add("gap")
            return
        if st == _CONNECT_WAIT:
            self._held.clear()
            return
        if flags is not None:
            flags.add("gap")
            self._finish(half, out)
        half.head.clear()
        half.line.clear()
        half.start_ok = False
        half.line_done = False
        half.state = _RESYNC

    def _close(self, half: _Half, out: list[Event]) -> None:
        st = half.state
        if st == _HEAD and half.head and not self._tunnel:
            # libhtp completes a head the peer ended without its empty line.
            block = bytes(half.head)
            half.head.clear()
            if block.find(b"\n") >= 0 and half.start_ok:
                block += b"\n" if block.endswith(b"\n") else b"\r\n\r\n"
                if half.to_server:
                    self._request_head(half, block, out)
                else:
                    self._response_head(half, block, out)
                st = half.state
        if half.tx is not None and st not in (_HEAD, _TUNNEL, _CLOSED, _RESYNC, _CONNECT_WAIT):
            tx = half.tx
            if st != _BODY_CLOSE:
                (tx.request_flags if half.to_server else tx.response_flags).add("incomplete")
            self._finish(half, out)
        half.state = _CLOSED
        half.head.clear()
        half.line.clear()
        if half.to_server:
            self._held.clear()

    def _tx(self, idx: int) -> HttpTx:
        tx = self._txs.get(idx)
        if tx is None:
            tx = HttpTx(idx)
            self._txs[idx] = tx
            if len(self._txs) > max(self.limits.max_transactions, 1):
                self._evict(idx)
        return tx

    def _evict(self, keep: int) -> None:
        # The oldest finished transaction goes first, else the oldest one no
        # parser is working on. O(max_transactions), which is small.
        busy = (self._client.tx, self._server.tx)
        items = self._txs.items()
        victim = min((i for i, t in items if t.request_done and t.response_done and i != keep), default=None)
        if victim is None:
            victim = min((i for i, t in items if i != keep and t not in busy), default=None)
        if victim is None:
            victim = min(i for i in self._txs if i != keep)
        self._bodies -= _body_bytes(self._txs.pop(victim))
        self.stats["evicted"] += 1


def _body_bytes(tx: HttpTx) -> int:
    """Body bytes a transaction's decoders hold (what leaves with it)."""
    req, resp = tx._req_dec, tx._resp_dec
    return (len(req.body) if req is not None else 0) + (len(resp.body) if resp is not None else 0)


def _block_end_in(head: bytearray, data: bytes, pos: int, lim: int) -> int:
    """Index in ``data`` just past the empty line ending a head, or -1.

    ``head`` holds the bytes of the block read before ``data[pos:]``; only
    its last two bytes are looked at, so the search costs the new bytes only.
    The terminator is ``\\n\\r\\n`` or ``\\n\\n``, whichever comes first.
    """
    if head:
        tail = bytes(head[-2:])
        if tail.endswith(b"\n"):
            if data.startswith(b"\n", pos, lim):
                return pos + 1
            if data.startswith(b"\r\n", pos, lim):
                return pos + 2
        elif tail == b"\n\r" and data.startswith(b"\n", pos, lim):
            return pos + 1
    crlf = data.find(b"\n\r\n", pos, lim)
    lf = data.find(b"\n\n", pos, crlf + 2 if crlf >= 0 else lim)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1
