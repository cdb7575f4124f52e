"""Incremental TLS handshake parser for one TCP connection.

Does: take each direction's in-order stream bytes in whatever pieces TCP
delivers them, split them into TLS records (or one SSLv2-compatible
ClientHello at the start of the client side), join the handshake records'
payloads into one handshake stream per direction, cut that into messages
however they straddle records and segments (several messages in one record,
one message over many records), and decode the ClientHello, ServerHello and
Certificate messages with :mod:`inline_ips.decode.tls`. A side stops being
parsed at its first ChangeCipherSpec or application-data record (from there
on it is encrypted), at a TCP gap, or at a record header that is not TLS.
The connection is ``failed`` (not TLS after all) when a side's first bytes
are not a plausible TLS record, or its first handshake message is not the
hello that side must start with.

Bounds: bytes are never buffered by the record; only the 5-byte record and
4-byte handshake headers, the body of a message being decoded (at most
``max_message`` bytes, 64 KiB by default) and an SSLv2 hello (at most 32 KiB)
are held. A message to be decoded that is longer is skipped without
buffering and counted in ``oversized``; messages that are not decoded
(ServerKeyExchange, Finished, ...) are skipped the same way, uncounted. Each
hello and each side's first Certificate message is decoded once (a
renegotiation's later ones are not). ``anomalies`` keeps the first
:data:`MAX_ANOMALIES` reasons a side stopped or a message was dropped.

With a shared :class:`~inline_ips.decode.memcap.Memcap` (the engine's), a
connection settles what it holds after each feed; while the budget is spent
a side stops being parsed (anomaly ``memcap``), and :meth:`TlsConnection.release`
gives the share back when the flow leaves the table.

Does not: decrypt (TLS 1.3 certificates are never seen), resynchronise after
a gap, parse DTLS or QUIC, or look at alerts and heartbeats beyond skipping
them. It never raises on any input.
"""

from __future__ import annotations

from typing import Final

from inline_ips.decode.memcap import Memcap
from inline_ips.decode.tls import (
    HANDSHAKE_CERTIFICATE,
    HANDSHAKE_CLIENT_HELLO,
    HANDSHAKE_SERVER_HELLO,
    CertificateInfo,
    ClientHello,
    ServerHello,
    parse_certificate_message,
    parse_client_hello,
    parse_server_hello,
    parse_sslv2_client_hello,
)

MAX_MESSAGE: Final = 64 * 1024
MAX_ANOMALIES: Final = 16
# RFC 5246 6.2.3: a TLSCiphertext fragment is at most 2^14 + 2048 bytes.
MAX_RECORD: Final = (1 << 14) + 2048

CONTENT_CHANGE_CIPHER_SPEC: Final = 20
CONTENT_ALERT: Final = 21
CONTENT_HANDSHAKE: Final = 22
CONTENT_APPLICATION_DATA: Final = 23
CONTENT_HEARTBEAT: Final = 24

_NEW, _SSLV2, _RECORDS, _DONE = range(4)
_HEADER = -1  # msg_left while a handshake header is being read


class _Side:
    """One direction's parse state."""

    __slots__ = (
        "body",
        "collect",
        "hdr",
        "hs_hdr",
        "messages",
        "mode",
        "msg_left",
        "msg_type",
        "rec_left",
        "rec_type",
        "records",
        "v2",
    )

    def __init__(self) -> None:
        self.mode = _NEW
        self.hdr = bytearray()  # partial record header
        self.rec_left = 0  # bytes of the current record's body still to come
        self.rec_type = -1  # -1: between records
        self.records = 0
        self.hs_hdr = bytearray()  # partial handshake header
        self.msg_left = _HEADER
        self.msg_type = 0
        self.collect = False
        self.body = bytearray()
        self.messages = 0
        self.v2 = bytearray()  # an SSLv2 hello being collected


class TlsConnection:
    """TLS handshake state of one TCP connection, fed with each direction's stream bytes."""

    def __init__(self, max_message: int = MAX_MESSAGE, memcap: Memcap | None = None) -> None:
        self.max_message = max_message
        self._memcap = memcap  # shared with every flow's parsers (decode/memcap.py)
        self._charged = 0
        self.memcap_refused = 0
        self.client_hello: ClientHello | None = None
        self.server_hello: ServerHello | None = None
        self.certificate: CertificateInfo | None = None  # the server's
        self.client_certificate: CertificateInfo | None = None
        self.failed = False
        self.oversized = 0
        self.sslv2_server = False  # the server answered in SSLv2 (not parsed)
        self._anomalies: list[str] = []
        self._client = _Side()
        self._server = _Side()

    @property
    def anomalies(self) -> tuple[str, ...]:
        return tuple(self._anomalies)

    def done(self, to_server: bool) -> bool:
        """True once that direction is no longer parsed (encrypted, gap, failure)."""
        return self.failed or (self._client if to_server else self._server).mode == _DONE

    def gap(self, to_server: bool) -> None:
        """Bytes of that direction were lost: stop parsing it (no resynchronisation)."""
        side = self._client if to_server else self._server
        if side.mode != _DONE:
            self._stop(side, "gap")

    def feed(self, to_server: bool, data: bytes) -> list[str]:
        """Parse the next in-order bytes of one direction; return the events they completed.

        Events, in order: ``client_hello``, ``server_hello``, ``certificate``
        (either side's Certificate message), ``encrypted`` (the side went
        encrypted and is no longer parsed).
        """
        side = self._client if to_server else self._server
        if self.failed or side.mode == _DONE or not data:
            return []
        mc = self._memcap
        if mc is not None:
            if mc.full:
                # Nothing more may be held: the bytes are lost to the parser, as in a gap.
                mc.refuse()
                self.memcap_refused += 1
                self._stop(side, "memcap")
                self._charged = mc.settle(self.held, self._charged)
                return []
            try:
                return self._feed(side, to_server, data)
            finally:
                self._charged = mc.settle(self.held, self._charged)
        return self._feed(side, to_server, data)

    @property
    def held(self) -> int:
        """Bytes held in both directions' buffers (headers, a message being collected, an SSLv2 hello)."""
        c, s = self._client, self._server
        mine = len(c.hdr) + len(c.hs_hdr) + len(c.body) + len(c.v2)
        return mine + len(s.hdr) + len(s.hs_hdr) + len(s.body) + len(s.v2)

    def release(self) -> None:
        """The flow is gone: give this connection's share back to the shared budget."""
        if self._memcap is not None:
            self._charged = self._memcap.settle(0, self._charged)

    def _feed(self, side: _Side, to_server: bool, data: bytes) -> list[str]:
        events: list[str] = []
        view = memoryview(data)
        n = len(view)
        pos = 0
        while pos < n and side.mode != _DONE and not self.failed:
            if side.mode == _NEW:
                if view[pos] & 0x80:
                    if not to_server:
                        # An SSLv2 server: nothing here is worth decoding.
                        self.sslv2_server = True
                        self._stop(side, "sslv2_server")
                        break
                    side.mode = _SSLV2
                else:
                    side.mode = _RECORDS
            if side.mode == _SSLV2:
                pos = self._sslv2(side, view, pos, events)
            elif side.rec_type < 0:
                pos = self._record_header(side, to_server, view, pos, events)
            else:
                take = min(side.rec_left, n - pos)
                if side.rec_type == CONTENT_HANDSHAKE:
                    self._handshake(side, to_server, view[pos : pos + take], events)
                pos += take
                side.rec_left -= take
                if side.rec_left == 0:
                    side.rec_type = -1
        return events

    # -- record layer ---------------------------------------------------------------------------------

    def _record_header(
        self, side: _Side, to_server: bool, view: memoryview, pos: int, events: list[str]
    ) -> int:
        need = 5 - len(side.hdr)
        side.hdr += view[pos : pos + need]
        pos += min(need, len(view) - pos)
        if len(side.hdr) < 5:
            return pos
        content, major, minor = side.hdr[0], side.hdr[1], side.hdr[2]
        length = (side.hdr[3] << 8) | side.hdr[4]
        side.hdr.clear()
        plausible = (
            CONTENT_CHANGE_CIPHER_SPEC <= content <= CONTENT_HEARTBEAT
            and major == 3
            and minor <= 4
            and length <= MAX_RECORD
        )
        first = side.records == 0
        side.records += 1
        if first and not (plausible and content in (CONTENT_HANDSHAKE, CONTENT_ALERT)):
            self._fail("not_tls")
            return pos
        if not plausible:
            self._stop(side, "bad_record")
            return pos
        if content in (CONTENT_CHANGE_CIPHER_SPEC, CONTENT_APPLICATION_DATA):
            events.append("encrypted")
            side.mode = _DONE
            self._drop(side)
            return pos
        if length:
            side.rec_type = content
            side.rec_left = length
        return pos

    def _sslv2(self, side: _Side, view: memoryview, pos: int, events: list[str]) -> int:
        if len(side.v2) < 2:
            need = 2 - len(side.v2)
            side.v2 += view[pos : pos + need]
            pos += min(need, len(view) - pos)
            if len(side.v2) < 2:
                return pos
        total = 2 + (((side.v2[0] & 0x7F) << 8) | side.v2[1])
        need = total - len(side.v2)
        side.v2 += view[pos : pos + need]
        pos += min(need, len(view) - pos)
        if len(side.v2) < total:
            return pos
        hello = parse_sslv2_client_hello(bytes(side.v2))
        side.v2 = bytearray()
        if hello is None:
            self._fail("not_tls")
            return pos
        self.client_hello = hello
        events.append("client_hello")
        side.mode = _RECORDS
        side.records = 1  # the SSLv2 hello was the first record
        side.messages = 1
        return pos

    # -- handshake layer ------------------------------------------------------------------------------

    def _handshake(self, side: _Side, to_server: bool, chunk: memoryview, events: list[str]) -> None:
        i = 0
        n = len(chunk)
        while i < n and not self.failed:
            if side.msg_left == _HEADER:
                need = 4 - len(side.hs_hdr)
                side.hs_hdr += chunk[i : i + need]
                i += min(need, n - i)
                if len(side.hs_hdr) < 4:
                    return
                if not self._start_message(side, to_server):
                    return
                if side.msg_left == 0:
                    self._end_message(side, to_server, events)
                continue
            take = min(side.msg_left, n - i)
            if side.collect:
                side.body += chunk[i : i + take]
            i += take
            side.msg_left -= take
            if side.msg_left == 0:
                self._end_message(side, to_server, events)

    def _start_message(self, side: _Side, to_server: bool) -> bool:
        msg_type = side.hs_hdr[0]
        length = int.from_bytes(side.hs_hdr[1:4], "big")
        side.hs_hdr.clear()
        hello = HANDSHAKE_CLIENT_HELLO if to_server else HANDSHAKE_SERVER_HELLO
        if side.messages == 0 and msg_type != hello:
            self._fail("not_tls")
            return False
        side.messages += 1
        side.msg_type = msg_type
        side.msg_left = length
        if msg_type == hello:
            wanted = (self.client_hello if to_server else self.server_hello) is None
        elif msg_type == HANDSHAKE_CERTIFICATE:
            wanted = (self.client_certificate if to_server else self.certificate) is None
        else:
            wanted = False
        if wanted and length > self.max_message:
            self.oversized += 1
            self._note("handshake_message_too_long")
            wanted = False
        side.collect = wanted
        return True

    def _end_message(self, side: _Side, to_server: bool, events: list[str]) -> None:
        side.msg_left = _HEADER
        if not side.collect:
            return
        side.collect = False
        body = bytes(side.body)
        side.body = bytearray()
        if side.msg_type == HANDSHAKE_CERTIFICATE:
            cert = parse_certificate_message(body)
            if cert is None:
                self._note("bad_certificate_message")
                return
            if to_server:
                self.client_certificate = cert
            else:
                self.certificate = cert
            events.append("certificate")
        elif to_server:
            self.client_hello = parse_client_hello(body)
            if self.client_hello is None:
                self._fail("not_tls")
                return
            events.append("client_hello")
        else:
            self.server_hello = parse_server_hello(body)
            if self.server_hello is None:
                self._fail("not_tls")
                return
            events.append("server_hello")

    # -- bookkeeping ----------------------------------------------------------------------------------

    def _note(self, reason: str) -> None:
        if len(self._anomalies) < MAX_ANOMALIES:
            self._anomalies.append(reason)

    @staticmethod
    def _drop(side: _Side) -> None:
        side.hdr = bytearray()
        side.hs_hdr = bytearray()
        side.body = bytearray()
        side.v2 = bytearray()

    def _stop(self, side: _Side, reason: str) -> None:
        side.mode = _DONE
        self._drop(side)
        self._note(reason)

    def _fail(self, reason: str) -> None:
        self.failed = True
        self._note(reason)
        for side in (self._client, self._server):
            side.mode = _DONE
            self._drop(side)
