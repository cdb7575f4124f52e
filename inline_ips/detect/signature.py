"""Signature matching: which rules match this packet, given its flow.

For each packet: scan each buffer it carries once with the prefilter, add
the rules that have no literal to index, then fully check only those
candidates: header (protocol, addresses, ports, flags, ICMP), flow
(direction, established), application protocol, and each buffer's ordered
content/regex matches. The payload buffer of a TCP packet is the flow's
stream window (earlier in-order bytes + this payload), so a pattern split
across segments is found; a match that lies wholly in earlier bytes is not
reported again. Rules positioned with offset/depth see the packet payload
alone. This module reports matches; it does not choose a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inline_ips.detect.content import inspect
from inline_ips.detect.header import HeaderCheck, flow_selects
from inline_ips.detect.prefilter import Prefilter
from inline_ips.flow import Flow
from inline_ips.packet import PROTO_TCP, Packet
from inline_ips.rules.model import AppProto, Buffer, Content, SignatureRule


@dataclass(slots=True)
class SignatureMatch:
    rule: SignatureRule
    replacements: list[tuple[int, bytes]]  # offsets into the IP datagram


def _stream_ok(rule: SignatureRule) -> bool:
    for bm in rule.buffers:
        if bm.buffer is Buffer.PAYLOAD:
            for m in bm.matches:
                if isinstance(m, Content) and (m.offset is not None or m.depth is not None):
                    return False
    return True


def _needs_app(rule: SignatureRule) -> str:
    """The application record without which this rule cannot match ("" if none)."""
    for bm in rule.buffers:
        if bm.buffer.is_http:
            return "http"
        if bm.buffer is Buffer.DNS_QUERY:
            return "dns"
        if bm.buffer is Buffer.TLS_SNI:
            return "tls"
    return ""


class _Compiled:
    __slots__ = ("app", "buffers", "flow", "header", "nocase", "rule", "stream_ok")

    def __init__(self, rule: SignatureRule) -> None:
        self.rule = rule
        self.header = HeaderCheck(rule.header)
        self.flow = rule.flow
        self.app = rule.header.app
        self.buffers = rule.buffers
        # Per buffer: does any content need the lower-cased copy? Most do not.
        self.nocase = tuple(
            any(isinstance(m, Content) and m.nocase for m in bm.matches) for bm in rule.buffers
        )
        self.stream_ok = _stream_ok(rule)


class _Buffers:
    """The buffers of one packet, each produced (and lower-cased) at most once."""

    __slots__ = ("_cache", "_lowered", "pkt", "prefix", "stream")

    def __init__(self, pkt: Packet, stream: bytes, prefix: int) -> None:
        self.pkt = pkt
        self.stream = stream
        self.prefix = prefix
        self._cache: dict[Buffer | str, bytes | None] = {}
        self._lowered: dict[Buffer | str, bytes] = {}

    @staticmethod
    def _key(buf: Buffer, use_stream: bool) -> Buffer | str:
        return buf if (buf is not Buffer.PAYLOAD or use_stream) else "packet"

    def get(self, buf: Buffer, use_stream: bool) -> bytes | None:
        key = self._key(buf, use_stream)
        if key in self._cache:
            return self._cache[key]
        data = self._raw(buf, use_stream)
        self._cache[key] = data
        return data

    def lowered(self, buf: Buffer, use_stream: bool, data: bytes) -> bytes:
        """``data.lower()``, computed at most once per buffer and only when a nocase content needs it."""
        key = self._key(buf, use_stream)
        low = self._lowered.get(key)
        if low is None:
            low = self._lowered[key] = data.lower()
        return low

    def _raw(self, buf: Buffer, use_stream: bool) -> bytes | None:
        pkt = self.pkt
        if buf is Buffer.PAYLOAD:
            return self.stream if use_stream else pkt.payload
        http = pkt.http
        if buf.is_http:
            if http is None:
                return None
            return {
                Buffer.HTTP_URI: http.uri,
                Buffer.HTTP_URI_RAW: http.uri_raw,
                Buffer.HTTP_METHOD: http.method,
                Buffer.HTTP_HOST: http.host,
                Buffer.HTTP_USER_AGENT: http.user_agent,
                Buffer.HTTP_HEADER: http.headers,
                Buffer.HTTP_REQUEST_BODY: http.body,
            }[buf]
        if buf is Buffer.DNS_QUERY:
            dns = pkt.dns
            return None if dns is None or dns.is_response else dns.qname.encode("latin-1", "replace")
        if buf is Buffer.TLS_SNI:
            return None if pkt.tls_sni is None else pkt.tls_sni.encode("latin-1", "replace")
        return None


class SignatureEngine:
    def __init__(self, rules: Sequence[SignatureRule]) -> None:
        self.rules = tuple(rules)
        self._compiled = [_Compiled(r) for r in self.rules]
        self.prefilter = Prefilter(self.rules)
        # Rules with no literal to index are always candidates, but only for
        # packets that can satisfy them: their protocol, and the application
        # record their buffers need (an HTTP rule waits for an HTTP request).
        plain: dict[int | None, list[int]] = {}
        self._unfiltered_app: dict[str, tuple[int, ...]] = {"http": (), "dns": (), "tls": ()}
        app_lists: dict[str, list[int]] = {"http": [], "dns": [], "tls": []}
        for idx in self.prefilter.unfiltered:
            need = _needs_app(self.rules[idx])
            if need:
                app_lists[need].append(idx)
            else:
                plain.setdefault(self.rules[idx].header.proto, []).append(idx)
        self._unfiltered_app = {k: tuple(v) for k, v in app_lists.items()}
        any_proto = plain.pop(None, [])
        self._unfiltered_any = tuple(any_proto)
        # Per protocol: its own unfiltered rules plus those for any protocol, in rule order.
        self._unfiltered = {p: tuple(sorted(v + any_proto)) for p, v in plain.items() if p is not None}
        self._scan_buffers = [b for b in Buffer if self.prefilter.has(b)]

    def match(
        self, pkt: Packet, flow: Flow | None, to_server: bool, stream: bytes, prefix: int
    ) -> list[SignatureMatch]:
        bufs = _Buffers(pkt, stream, prefix)
        unfiltered = self._unfiltered.get(pkt.proto, self._unfiltered_any)
        order: Iterable[int] = unfiltered
        app = pkt.http is not None or pkt.dns is not None or pkt.tls_sni is not None
        if stream or app:
            candidates: set[int] = set(unfiltered)
            if app:
                ua = self._unfiltered_app
                if pkt.http is not None:
                    candidates.update(ua["http"])
                if pkt.dns is not None:
                    candidates.update(ua["dns"])
                if pkt.tls_sni is not None:
                    candidates.update(ua["tls"])
            pf = self.prefilter
            # The stream window contains the packet payload, so one scan of it also
            # finds the candidates of rules that look at the packet alone.
            for b in self._scan_buffers:
                got = bufs.get(b, True)
                if got is not None:
                    pf.scan(b, got, candidates)
            order = sorted(candidates)  # rule order keeps alerts reproducible
        out: list[SignatureMatch] = []
        for idx in order:
            c = self._compiled[idx]
            m = self._check(c, pkt, flow, to_server, bufs)
            if m is not None:
                out.append(m)
        return out

    def _check(
        self, c: _Compiled, pkt: Packet, flow: Flow | None, to_server: bool, bufs: _Buffers
    ) -> SignatureMatch | None:
        if not c.header.selects(pkt):
            return None
        if not c.flow.is_any and not flow_selects(c.flow, flow, to_server):
            return None
        app = c.app
        if app is AppProto.HTTP and (pkt.http is None and (flow is None or flow.app != "http")):
            return None
        if app is AppProto.DNS and pkt.dns is None:
            return None
        if app is AppProto.TLS and (pkt.tls_sni is None and (flow is None or flow.app != "tls")):
            return None
        use_stream = c.stream_ok and pkt.proto == PROTO_TCP
        replacements: list[tuple[int, bytes]] = []
        for bm, nocase in zip(c.buffers, c.nocase, strict=True):
            data = bufs.get(bm.buffer, use_stream)
            if data is None:
                return None
            lowered = bufs.lowered(bm.buffer, use_stream, data) if nocase else data
            res = inspect(data, lowered, bm.matches)
            if res is None:
                return None
            if bm.buffer is Buffer.PAYLOAD:
                prefix = bufs.prefix if use_stream else 0
                if prefix and inspect(data[:prefix], lowered[:prefix], bm.matches) is not None:
                    # A match was already there before this packet: report only a new
                    # one that lies wholly in this packet's payload.
                    res = inspect(data[prefix:], lowered[prefix:], bm.matches)
                    if res is None:
                        return None
                    res = [(prefix + pos, new) for pos, new in res]
                base = pkt.payload_offset - prefix
                replacements.extend((base + pos, new) for pos, new in res if pos >= prefix)
        return SignatureMatch(c.rule, replacements)
