"""The verdict engine: decode -> defrag -> flow -> app layer -> detect -> verdict.

One :class:`Engine` object serves live NFQUEUE and offline replay alike: it
takes the bytes of an IP datagram and a timestamp and returns a
:class:`Result` (the verdict, the alerts, and what output needs to describe
them). It holds all mutable state (flows, fragments, rate windows,
thresholds, the blocklist), each bounded, and reads time only from the
timestamp it is given. Any exception inside a stage is caught, counted by
stage, and the packet is accepted: an IPS bug must not black-hole traffic
(fail open). It does not send, drop or log anything itself; ``source``,
``respond`` and ``output`` do.

Signature matches are finished the way Suricata finishes them
(detect-engine-alert.c): in rule order, each match's threshold or
detection_filter says whether it alerts, acts silently or does nothing; a
``pass`` ends the packet's inspection and drops the alerts after it; a drop
or pass applies to the whole flow for IP-only, application and stream
matches and to the packet alone for packet rules; at most
``max_alerts_per_packet`` alerts are kept. In IDS mode (``ips`` False) the
same alerts are raised but every packet is accepted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from inline_ips.blocklist import Blocklist
from inline_ips.decode import decode
from inline_ips.decode.checksum import tcp_checksum_ok
from inline_ips.decode.defrag import Defragmenter
from inline_ips.decode.dns import DnsMessage, parse_dns
from inline_ips.decode.dns_stream import DnsTcpConnection
from inline_ips.decode.http import looks_like_request
from inline_ips.decode.http_stream import HttpConnection, HttpTx
from inline_ips.decode.memcap import Memcap
from inline_ips.decode.tls import tls_buffer
from inline_ips.decode.tls_stream import TlsConnection
from inline_ips.detect.bypass import BypassPolicy
from inline_ips.detect.rate import RateEngine
from inline_ips.detect.signature import Hit, Inspection, SignatureEngine, Source
from inline_ips.detect.threshold import NO_ALERT, SILENT, Thresholds
from inline_ips.flow import STREAM_GAP, STREAM_RETRANSMIT, Flow, FlowTable
from inline_ips.normalize import Normalize
from inline_ips.normalize import replacements as normalize_replacements
from inline_ips.options import EngineOptions
from inline_ips.packet import FIN, FRAG_PIECE, FRAG_REASSEMBLED, PROTO_TCP, PROTO_UDP, Packet
from inline_ips.rules.addresses import AddressSet
from inline_ips.rules.model import (
    FLOW_ACTION_KINDS,
    KIND_STREAM,
    Buffer,
    RateRule,
    RuleSet,
    SignatureRule,
)
from inline_ips.verdict import (
    ACCEPT,
    ACCEPT_ACTION,
    DROP_ACTION,
    REWRITE_ACTION,
    Action,
    Alert,
    Reason,
    Verdict,
    strongest,
)

DNS_PORT = 53

# Buffers that need the whole body: a rule waits for them rather than judging half a body.
_REQUEST_BODY = frozenset({Buffer.HTTP_REQUEST_BODY, Buffer.FILE_DATA})
_RESPONSE_BODY = frozenset({Buffer.HTTP_RESPONSE_BODY, Buffer.FILE_DATA})
_READY_EVENTS = frozenset({"request_headers", "request_done", "response_headers", "response_done"})
# tls.random, tls.random_time, tls.random_bytes: slices of the hello's 32 random bytes.
_TLS_RANDOM = {
    Buffer.TLS_RANDOM: (0, 32),
    Buffer.TLS_RANDOM_TIME: (0, 4),
    Buffer.TLS_RANDOM_BYTES: (4, 32),
}
# An application parser gave up on this flow (not HTTP or TLS after all).
_NO_APP = object()


@dataclass(slots=True)
class Result:
    verdict: Verdict
    packet: Packet
    alerts: list[Alert] = field(default_factory=list)
    flow_id: int = 0
    to_server: bool = True
    app_proto: str | None = None
    # The offender that was newly blocked by this packet: (ip version, address, seconds).
    blocked: tuple[int, int, int] | None = None
    # The flow was judged clean with this packet: mark it so the kernel stops queueing it.
    bypass: bool = False


def _alert(rule: SignatureRule | RateRule) -> Alert:
    return Alert(
        sid=rule.sid,
        gid=rule.gid,
        rev=rule.rev,
        msg=rule.msg,
        category=rule.classtype,
        severity=rule.priority,
        action=rule.action.action,
        metadata=getattr(rule, "metadata", {}),
        target=getattr(rule, "target", ""),
    )


class Engine:
    def __init__(self, rules: RuleSet, options: EngineOptions | None = None) -> None:
        self.options = opts = options or EngineOptions()
        self.flows = FlowTable(opts.flows)
        self._lookup_flow = self.flows.fast_lookup()
        self.defrag = Defragmenter(max_datagrams=opts.defrag_max_datagrams, timeout=opts.defrag_timeout)
        self.blocklist = Blocklist(opts.blocklist_max)
        # Shared by every flow's HTTP/TLS/DNS parser: what they hold together is bounded.
        self.app_memcap = Memcap(opts.app_memcap)
        self._checksums = opts.checksum_checks != "none"
        # Without bypass by volume only an allowlisted flow can be bypassed: no call for the rest.
        self._volume_bypass = opts.bypass.by_volume
        self._checked = 0  # packets whose TCP checksum was verified (auto mode decides at 1000)
        self._bad_checksums = 0
        self.reload(rules)
        self.stats: Counter[str] = Counter()
        self.decode_errors: Counter[str] = Counter()
        self.engine_errors: Counter[str] = Counter()
        # For fuzzing only: let an internal error propagate instead of failing open, so the
        # fuzzer sees the bug (read only once something has raised: free on the packet path).
        self.raise_errors = False

    def reload(self, rules: RuleSet) -> None:
        """Switch to a new rule set; flows, fragments and the blocklist are kept.

        Everything is compiled before anything is switched, so a packet sees
        either the old rules or the new ones, never a mix, and a compile error
        leaves the old rules in force. Rate windows and thresholds start
        afresh. Flows already bypassed stay bypassed: the kernel, not the
        engine, holds that mark.
        """
        opts = self.options
        signatures = SignatureEngine(rules.signatures)
        rates = RateEngine(rules.rates, opts.rate_max_keys)
        bypass = BypassPolicy(rules.signatures, rules.rates, opts.bypass)
        all_rules: list[SignatureRule | RateRule] = [*rules.signatures, *rules.rates]
        alerts = {r.sid: _alert(r) for r in all_rules}
        # Counts of the old rules mean nothing for the new ones (Suricata resets them too).
        thresholds = Thresholds(opts.threshold_max_entries)
        # One assignment: a packet on another thread holds either bundle whole, its
        # threshold counts included.
        self._r = _Compiled(
            rules,
            signatures,
            rates,
            bypass,
            rules.allowlist,
            alerts,
            rules.normalize if rules.normalize.active else None,  # None: one test a packet, no call
            thresholds,
        )

    @property
    def rules(self) -> RuleSet:
        return self._r.rules

    @property
    def thresholds(self) -> Thresholds:
        """The threshold and detection_filter counts of the rules in force."""
        return self._r.thresholds

    @property
    def signatures(self) -> SignatureEngine:
        return self._r.signatures

    @property
    def rates(self) -> RateEngine:
        return self._r.rates

    @property
    def bypass(self) -> BypassPolicy:
        return self._r.bypass

    @property
    def allowlist(self) -> AddressSet | None:
        return self._r.allowlist

    # -- the per-packet path -------------------------------------------------

    def process(self, raw: bytes, ts: float) -> Result:
        """Judge one IP datagram. Never raises; on an internal error the packet is accepted."""
        self.stats["packets"] += 1
        # One function, not a guard calling the stages: a call costs about 0.1 us a packet,
        # and a try costs nothing until something raises.
        try:
            r = self._r  # the rules for this packet, whatever a reload does meanwhile
            pkt = decode(raw, ts)
            if pkt.error is not None:
                self.decode_errors[pkt.error] += 1
                if (
                    pkt.ip_version == 0
                    or pkt.proto < 0  # the IP header itself is cut short: no addresses or protocol
                    or (pkt.proto in (PROTO_TCP, PROTO_UDP) and pkt.payload_offset == 0)
                ):
                    # Not enough of the packet to judge it by its flow.
                    if self.options.drop_invalid:
                        return Result(Verdict(Action.DROP, Reason.DECODE_ERROR), pkt)
                    return Result(ACCEPT, pkt)
            if pkt.frag == FRAG_PIECE:
                whole = self.defrag.feed(pkt)
                if whole is None:
                    # Hold judgement until the datagram is complete; the last piece carries the verdict.
                    if self._src_blocked(pkt):
                        return Result(Verdict(Action.DROP, Reason.BLOCKLIST), pkt)
                    return Result(ACCEPT, pkt)
                pkt = decode(whole, ts)
                pkt.frag = FRAG_REASSEMBLED
                self.stats["reassembled"] += 1
            allowlist = r.allowlist
            allowed = False
            if self.blocklist.expiry:  # only when the engine emulates the kernel's blocklist (replay)
                allowed = _allowlisted(allowlist, pkt)
                if not allowed and self._src_blocked(pkt):
                    self.stats["blocklist_drops"] += 1
                    return Result(Verdict(Action.DROP, Reason.BLOCKLIST), pkt)

            # Only TCP checksums are verified (and only they can disable checking in auto mode).
            csum_ok = self._checksum(pkt) if self._checksums and pkt.proto == PROTO_TCP else True
            flow, to_server = self._lookup_flow(pkt, csum_ok)
            if allowlist is not None:
                # Either address allowlisted: the same for every packet of the flow, both ways.
                cached = flow.allow_cache
                if cached is None or cached[0] is not r:
                    cached = flow.allow_cache = (r, _allowlisted(allowlist, pkt))
                allowed = cached[1]
            result = Result(ACCEPT, pkt, [], flow.flow_id, to_server)
            if flow.dropped and not allowed:
                # Suricata: a flow-wide drop skips detection for the rest of the flow.
                if self.options.ips:
                    result.verdict = Verdict(Action.DROP, Reason.FLOW_DROP)
                return result
            if flow.passed:
                return result
            if flow.bypassed:
                # Inline, the kernel no longer queues this flow; what still arrives was in flight.
                self.stats["bypassed_packets"] += 1
                result.bypass = True
                return result

            stream: bytes | None = None
            prefix = 0
            units: list[Inspection] = []
            if pkt.proto == PROTO_TCP and flow.session and csum_ok:
                if pkt.payload:
                    stream, prefix, status = flow.stream(to_server, pkt, self.options.flows.stream_window)
                    if status != STREAM_RETRANSMIT:
                        self._app_tcp(pkt, flow, to_server, status == STREAM_GAP, stream, prefix, units)
                else:
                    stream = b""
                if pkt.tcp_flags & FIN and isinstance(flow.app_state, HttpConnection):
                    # The end of a side's stream completes what the close delimits (a body without length).
                    events = flow.app_state.close(to_server)
                    self._http_units(pkt, flow.app_state, events, stream, prefix, to_server, units)
            elif pkt.proto == PROTO_UDP and DNS_PORT in (pkt.sport, pkt.dport) and pkt.payload:
                dns = parse_dns(pkt.payload)
                if dns is not None:
                    pkt.dns = dns
                    flow.app = "dns"
                    units.append(self._dns_unit(pkt, dns, to_server))
            result.app_proto = flow.app or None

            sig = r.signatures
            hits = sig.packet(pkt, flow, to_server, stream, prefix)  # a new list: ours to extend
            if sig.has_iponly:
                bit = 1 if to_server else 2
                if not flow.iponly & bit:
                    flow.iponly |= bit
                    hits.extend(sig.iponly(pkt, flow, to_server))
            for unit in units:
                hits.extend(sig.tx(pkt, flow, unit))
            verdict = ACCEPT
            rule_dropped = passed = False
            if hits:
                verdict, rule_dropped, passed = self._finish(hits, r, pkt, flow, result)
            alerts = result.alerts
            if not passed:
                for rrule, state in r.rates.evaluate(pkt, flow, to_server):
                    if state == 1:
                        alerts.append(r.alerts[rrule.sid])
                    act = rrule.action
                    if act.action is not ACCEPT_ACTION:
                        verdict = _merge(
                            verdict, Verdict(act.action, Reason.RATE, rrule.sid, act.block_seconds)
                        )

            if alerts:
                flow.alerted = True
            if r.normalize is not None and verdict.action <= REWRITE_ACTION:
                fixes = normalize_replacements(r.normalize, pkt)
                if fixes:
                    verdict = _merge(
                        verdict, Verdict(Action.REWRITE, Reason.NORMALIZE, replacements=tuple(fixes))
                    )
            if verdict.action is ACCEPT_ACTION:
                if (
                    not flow.alerted
                    and (allowed or self._volume_bypass)
                    and self._clean(r.bypass, flow, pkt, allowed)
                ):
                    flow.bypassed = result.bypass = True
                    r.bypass.stats["bypassed"] += 1
                    self.stats["flows_bypassed"] += 1  # survives reloads, unlike the policy's own count
                return result
            if allowed and verdict.action >= DROP_ACTION:
                # Management and allowlisted hosts are never dropped, rejected or blocked.
                self.stats["allowlist_overrides"] += 1
                flow.dropped = False
                result.verdict = ACCEPT
                return result
            if not self.options.ips:
                # IDS: the alerts stand, the packet goes on.
                return result
            if verdict.action is Action.BLOCK:
                self._block(pkt, verdict, result)
            if rule_dropped and self.options.drop_flow_on_match:
                flow.dropped = True
            result.verdict = verdict
            return result
        except Exception as e:
            if self.raise_errors:
                raise
            self.engine_errors[type(e).__name__] += 1
            self.stats["engine_errors"] += 1
            return Result(ACCEPT, Packet(raw, ts))

    def _finish(
        self, hits: list[Hit], r: _Compiled, pkt: Packet, flow: Flow, result: Result
    ) -> tuple[Verdict, bool, bool]:
        """Thresholds, pass, actions and alerts of the signature matches, in rule order.

        Returns the verdict, whether a rules.yaml drop asks to drop the rest of
        the flow, and whether a pass ended the inspection.
        """
        verdict = ACCEPT
        if not hits:
            return verdict, False, False
        if len(hits) > 1:
            hits.sort(key=lambda h: (h.order, h.tx))
        alerts = result.alerts
        yaml_drop = False
        limit = self.options.max_alerts_per_packet
        for hit in hits:
            rule = hit.rule
            th = rule.threshold or rule.detection_filter
            res = 1 if th is None else r.thresholds.check(th, rule.sid, rule.gid, pkt, flow)
            if res == NO_ALERT:
                continue
            act = rule.action
            flow_wide = rule.kind in FLOW_ACTION_KINDS or (rule.kind == KIND_STREAM and hit.stream)
            if act.passes:
                if flow_wide:
                    flow.passed = True
                return ACCEPT, False, True
            if act.action is Action.REWRITE:
                if not hit.replacements:
                    continue  # nothing in this packet to rewrite (the match began earlier)
                v = Verdict(Action.REWRITE, Reason.RULE, rule.sid, replacements=tuple(hit.replacements))
                verdict = _merge(verdict, v)
            elif act.action is not Action.ACCEPT:
                verdict = _merge(verdict, Verdict(act.action, Reason.RULE, rule.sid, act.block_seconds))
                if not rule.kind:
                    yaml_drop = True  # rules.yaml keeps its own option (drop_flow_on_match)
                elif flow_wide and act.action >= Action.DROP:
                    flow.dropped = True
            if res == SILENT or rule.noalert:
                continue
            if len(alerts) < limit:
                alerts.append(r.alerts[rule.sid])
                self._describe(hit, pkt)
            else:
                self.stats["alerts_discarded"] += 1
        return verdict, yaml_drop, False

    @staticmethod
    def _describe(hit: Hit, pkt: Packet) -> None:
        """Attach the transaction an alert is about, for the EVE record."""
        rec = hit.record
        if isinstance(rec, HttpTx) and rec.request is not None and pkt.http is None:
            pkt.http = rec.request

    def _checksum(self, pkt: Packet) -> bool:
        """Verify a TCP packet's checksum; ``auto`` stops checking when most fail (offloaded captures)."""
        ok = tcp_checksum_ok(pkt)
        if self.options.checksum_checks == "auto":
            self._checked += 1
            if not ok:
                self._bad_checksums += 1
            if self._checked == 1000 and self._bad_checksums * 10 > self._checked:
                # Suricata's pcap-file auto mode: more than 1 in 10 bad, it is the capture, not the traffic.
                self._checksums = False
                self.stats["checksum_checks_disabled"] += 1
        if not ok:
            self.stats["tcp_bad_checksum"] += 1
        return ok

    # -- stages ----------------------------------------------------------------

    def _app_tcp(
        self,
        pkt: Packet,
        flow: Flow,
        to_server: bool,
        gap: bool,
        stream: bytes,
        prefix: int,
        units: list[Inspection],
    ) -> None:
        """Feed the in-order payload to the flow's HTTP or TLS parser; queue what it completed."""
        payload = pkt.payload
        state = flow.app_state
        if state is None:
            state = self._detect_app(flow, to_server, payload)
            gap = False  # a parser that starts here has lost nothing
        if isinstance(state, HttpConnection):
            events = state.gap(to_server) if gap else []
            events += state.feed(to_server, payload)
            self._http_units(pkt, state, events, stream, prefix, to_server, units)
        elif isinstance(state, DnsTcpConnection):
            if gap:
                state.gap(to_server)
            for msg in state.feed(to_server, payload):
                pkt.dns = msg
                units.append(self._dns_unit(pkt, msg, to_server))
        elif isinstance(state, TlsConnection):
            if gap:
                state.gap(to_server)
            if state.feed(to_server, payload):
                if to_server and state.client_hello is not None and state.client_hello.sni:
                    pkt.tls_sni = state.client_hello.sni.decode("latin-1", "replace").lower()
                units.append(
                    Inspection(pkt, stream, prefix, to_server, "tls", _tls_source(state, to_server), 0, state)
                )

    def _detect_app(self, flow: Flow, to_server: bool, payload: bytes) -> object:
        """Tell the application protocol from the first payload, not the port (DNS: port 53 too)."""
        state: object
        if (to_server and looks_like_request(payload)) or (not to_server and payload.startswith(b"HTTP/")):
            state = HttpConnection(memcap=self.app_memcap)
            flow.app = "http"
        elif len(payload) >= 3 and (
            (payload[0] == 0x16 and payload[1] == 3) or (payload[0] & 0x80 and payload[2] == 1)
        ):
            state = TlsConnection(memcap=self.app_memcap)
            flow.app = "tls"
        elif DNS_PORT in (flow.cport, flow.sport):
            state = DnsTcpConnection(memcap=self.app_memcap)
            flow.app = "dns"
        else:
            state = _NO_APP
        flow.app_state = state
        return state

    @staticmethod
    def _http_units(
        pkt: Packet,
        conn: HttpConnection,
        events: list[tuple[HttpTx, str]],
        stream: bytes,
        prefix: int,
        to_server: bool,
        units: list[Inspection],
    ) -> None:
        seen: dict[int, HttpTx] = {}
        for tx, event in events:
            if _ready(tx, event):
                seen.setdefault(tx.index, tx)
            if event == "request_headers" and tx.request is not None:
                pkt.http = tx.request
        for tx in seen.values():
            units.append(
                Inspection(pkt, stream, prefix, to_server, "http", _http_source(tx, to_server), tx.index, tx)
            )
        if len(conn.transactions) >= conn.limits.max_transactions:
            conn.discard_done()

    @staticmethod
    def _dns_unit(pkt: Packet, dns: DnsMessage, to_server: bool) -> Inspection:
        def source(b: Buffer) -> bytes | None:
            if b is Buffer.DNS_QUERY and not dns.is_response and dns.qdcount:
                return dns.qname.encode("latin-1", "replace")
            return None

        return Inspection(pkt, None, 0, to_server, "dns", source, -1, dns)

    def _clean(self, bypass: BypassPolicy, flow: Flow, pkt: Packet, allowed: bool) -> bool:
        if allowed and self.options.bypass.allowlisted:
            return True
        return bypass.due(flow) and bypass.clean(flow, pkt)

    def _src_blocked(self, pkt: Packet) -> bool:
        return bool(self.blocklist.expiry) and self.blocklist.is_blocked(pkt.ip_version, pkt.src, pkt.ts)

    def _block(self, pkt: Packet, verdict: Verdict, result: Result) -> None:
        if not self.options.emulate_blocklist:
            # Inline: the kernel set is the blocklist; adding again only refreshes its timeout.
            result.blocked = (pkt.ip_version, pkt.src, verdict.block_seconds)
            return
        if self.blocklist.add(pkt.ip_version, pkt.src, pkt.ts, verdict.block_seconds):
            result.blocked = (pkt.ip_version, pkt.src, verdict.block_seconds)
        else:
            self.stats["blocklist_full"] += 1


@dataclass(frozen=True, slots=True)
class _Compiled:
    """Everything derived from one rule set, swapped as a whole on reload."""

    rules: RuleSet
    signatures: SignatureEngine
    rates: RateEngine
    bypass: BypassPolicy
    allowlist: AddressSet | None
    alerts: dict[int, Alert]
    normalize: Normalize | None  # None when it changes nothing
    thresholds: Thresholds


def _ready(tx: HttpTx, event: str) -> bool:
    """Did this event make more of the transaction inspectable (headers, or a whole body)?"""
    if event in _READY_EVENTS:
        return True
    if event == "request_body":
        return tx.request_body_truncated  # the body limit is reached: it will not grow further
    return event == "response_body" and tx.response_body_truncated


def _http_source(tx: HttpTx, to_server: bool) -> Source:
    """The buffers of one transaction's request or response; bodies only once complete."""

    def source(b: Buffer) -> bytes | None:
        if to_server:
            if b in _REQUEST_BODY and not (tx.request_done or tx.request_body_truncated):
                return None
        elif b in _RESPONSE_BODY and not (tx.response_done or tx.response_body_truncated):
            return None
        return tx.buffer(b.value, to_server)

    return source


def _tls_source(conn: TlsConnection, to_server: bool) -> Source:
    def source(b: Buffer) -> bytes | list[bytes] | None:
        if b in _TLS_RANDOM:
            hello = conn.client_hello if to_server else conn.server_hello
            if hello is None or len(hello.random) != 32:
                return None
            start, end = _TLS_RANDOM[b]
            return hello.random[start:end]
        return tls_buffer(conn, b.value, to_server=to_server)

    return source


def _allowlisted(a: AddressSet | None, pkt: Packet) -> bool:
    if a is None:
        return False
    return a.contains(pkt.ip_version, pkt.src) or a.contains(pkt.ip_version, pkt.dst)


def _merge(a: Verdict, b: Verdict) -> Verdict:
    """Strongest action wins; a rewrite keeps every replacement of every rewriting rule."""
    if a.action is Action.REWRITE and b.action is Action.REWRITE:
        return Verdict(Action.REWRITE, a.reason, a.rule_id, replacements=a.replacements + b.replacements)
    return strongest(a, b)
