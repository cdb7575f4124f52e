"""DNS over TCP: cut one connection's in-order bytes into length-prefixed messages.

Does: keep each direction's bytes until a whole message (2-byte length
prefix, RFC 1035 4.2.2) has arrived, then decode it with
:func:`~inline_ips.decode.dns.parse_dns`; several messages in one segment and
one message over many segments both work. Bounded: at most one message of
up to ``MAX_MESSAGE`` bytes is held per direction (queries are far smaller;
a longer message, such as a zone transfer's, ends parsing of its direction
rather than holding 64 KiB per flow for an attacker). With a shared
:class:`~inline_ips.decode.memcap.Memcap` (the engine's), what it holds is
settled after each feed; while the budget is spent a direction stops being
parsed, and :meth:`DnsTcpConnection.release` gives the share back when the
flow leaves the table. Bytes that do not
decode as DNS, or a gap (lost bytes), stop the parsing of that direction,
since the framing is lost.

Does not: reassemble TCP (the caller feeds in-order payload), or decode
beyond what ``parse_dns`` reads (header and first question). It never raises.
"""

from __future__ import annotations

from inline_ips.decode.dns import DnsMessage, parse_dns
from inline_ips.decode.memcap import Memcap

MAX_MESSAGE = 16384


class DnsTcpConnection:
    def __init__(self, memcap: Memcap | None = None) -> None:
        self._buf = [bytearray(), bytearray()]  # to_server, to_client
        self._failed = [False, False]
        self.messages = 0
        self.oversized = 0
        self.memcap_refused = 0
        self._memcap = memcap  # shared with every flow's parsers (decode/memcap.py)
        self._charged = 0

    @property
    def held(self) -> int:
        return len(self._buf[0]) + len(self._buf[1])

    def release(self) -> None:
        """The flow is gone: give this connection's share back to the shared budget."""
        if self._memcap is not None:
            self._charged = self._memcap.settle(0, self._charged)

    @property
    def failed(self) -> bool:
        return self._failed[0] and self._failed[1]

    def gap(self, to_server: bool) -> None:
        d = 0 if to_server else 1
        self._failed[d] = True
        self._buf[d] = bytearray()

    def feed(self, to_server: bool, data: bytes) -> list[DnsMessage]:
        d = 0 if to_server else 1
        if self._failed[d] or not data:
            return []
        mc = self._memcap
        if mc is None:
            return self._feed(d, to_server, data)
        if mc.full:
            mc.refuse()  # nothing more may be held: the framing of this direction is lost
            self.memcap_refused += 1
            self.gap(to_server)
            out: list[DnsMessage] = []
        else:
            out = self._feed(d, to_server, data)
        self._charged = mc.settle(self.held, self._charged)
        return out

    def _feed(self, d: int, to_server: bool, data: bytes) -> list[DnsMessage]:
        buf = self._buf[d]
        buf += data
        out: list[DnsMessage] = []
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if size > MAX_MESSAGE:
                self.oversized += 1
                self.gap(to_server)
                break
            if len(buf) < 2 + size:
                break
            msg = parse_dns(bytes(buf[2 : 2 + size]))
            del buf[: 2 + size]
            if msg is None:
                self.gap(to_server)  # not DNS: the framing cannot be trusted any more
                break
            self.messages += 1
            out.append(msg)
        return out
