"""The verdict engine: decode -> defrag -> flow -> app layer -> detect -> verdict.

One :class:`Engine` object serves live NFQUEUE and offline replay alike: it
takes the bytes of an IP datagram and a timestamp and returns a
:class:`Result` (the verdict, the alerts, and what output needs to describe
them). It holds all mutable state (flows, fragments, rate windows, the
blocklist), each bounded, and reads time only from the timestamp it is
given. Any exception inside a stage is caught, counted by stage, and the
packet is accepted: an IPS bug must not black-hole traffic (fail open). It
does not send, drop or log anything itself; ``source``, ``respond`` and
``output`` do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from inline_ips.blocklist import Blocklist
from inline_ips.decode import decode
from inline_ips.decode.defrag import Defragmenter
from inline_ips.decode.dns import parse_dns
from inline_ips.decode.http import looks_like_request, parse_request
from inline_ips.decode.tls import client_hello_sni, is_client_hello
from inline_ips.detect.bypass import BypassPolicy
from inline_ips.detect.rate import RateEngine
from inline_ips.detect.signature import SignatureEngine
from inline_ips.flow import Flow, FlowTable
from inline_ips.normalize import Normalize
from inline_ips.normalize import replacements as normalize_replacements
from inline_ips.options import EngineOptions
from inline_ips.packet import FRAG_PIECE, FRAG_REASSEMBLED, PROTO_TCP, PROTO_UDP, Packet
from inline_ips.rules.addresses import AddressSet
from inline_ips.rules.model import RateRule, RuleSet, SignatureRule
from inline_ips.verdict import ACCEPT, Action, Alert, Reason, Verdict, strongest

DNS_PORT = 53


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
    )


class Engine:
    def __init__(self, rules: RuleSet, options: EngineOptions | None = None) -> None:
        self.options = opts = options or EngineOptions()
        self.flows = FlowTable(opts.flows)
        self.defrag = Defragmenter(max_datagrams=opts.defrag_max_datagrams, timeout=opts.defrag_timeout)
        self.blocklist = Blocklist(opts.blocklist_max)
        self.reload(rules)
        self.stats: Counter[str] = Counter()
        self.decode_errors: Counter[str] = Counter()
        self.engine_errors: Counter[str] = Counter()

    def reload(self, rules: RuleSet) -> None:
        """Switch to a new rule set; flows, fragments and the blocklist are kept.

        Everything is compiled before anything is switched, so a packet sees
        either the old rules or the new ones, never a mix, and a compile error
        leaves the old rules in force. Rate windows start afresh. Flows already
        bypassed stay bypassed: the kernel, not the engine, holds that mark.
        """
        opts = self.options
        signatures = SignatureEngine(rules.signatures)
        rates = RateEngine(rules.rates, opts.rate_max_keys)
        bypass = BypassPolicy(rules.signatures, rules.rates, opts.bypass)
        all_rules: list[SignatureRule | RateRule] = [*rules.signatures, *rules.rates]
        alerts = {r.sid: _alert(r) for r in all_rules}
        # One assignment: a packet on another thread holds either bundle whole.
        self._r = _Compiled(rules, signatures, rates, bypass, rules.allowlist, alerts, rules.normalize)

    @property
    def rules(self) -> RuleSet:
        return self._r.rules

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
        try:
            return self._process(raw, ts)
        except Exception as e:
            self.engine_errors[type(e).__name__] += 1
            self.stats["engine_errors"] += 1
            return Result(ACCEPT, Packet(raw, ts))

    def _process(self, raw: bytes, ts: float) -> Result:
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
        allowed = _allowlisted(r.allowlist, pkt)
        if not allowed and self._src_blocked(pkt):
            self.stats["blocklist_drops"] += 1
            return Result(Verdict(Action.DROP, Reason.BLOCKLIST), pkt)

        flow, to_server = self.flows.lookup(pkt)
        result = Result(ACCEPT, pkt, flow_id=flow.flow_id, to_server=to_server)
        if flow.dropped and not allowed:
            result.verdict = Verdict(Action.DROP, Reason.FLOW_DROP)
            return result
        if flow.bypassed:
            # Inline, the kernel no longer queues this flow; what still arrives was in flight.
            self.stats["bypassed_packets"] += 1
            result.bypass = True
            return result

        stream = pkt.payload
        prefix = 0
        if pkt.proto == PROTO_TCP and pkt.payload:
            stream, prefix = flow.stream(to_server, pkt, self.options.flows.stream_window)
            self._app_tcp(pkt, flow, to_server)
        elif pkt.proto == PROTO_UDP and DNS_PORT in (pkt.sport, pkt.dport) and pkt.payload:
            pkt.dns = parse_dns(pkt.payload)
            if pkt.dns is not None:
                flow.app = "dns"
        result.app_proto = flow.app or None

        verdict = ACCEPT
        alerts = result.alerts
        for sm in r.signatures.match(pkt, flow, to_server, stream, prefix):
            rule = sm.rule
            act = rule.action
            if act.action is Action.REWRITE:
                if not sm.replacements:
                    continue  # nothing in this packet to rewrite (the match began earlier)
                v = Verdict(Action.REWRITE, Reason.RULE, rule.sid, replacements=tuple(sm.replacements))
            else:
                v = Verdict(act.action, Reason.RULE, rule.sid, act.block_seconds)
            alerts.append(r.alerts[rule.sid])
            verdict = _merge(verdict, v)
        rule_dropped = verdict.action >= Action.DROP
        for rrule, state in r.rates.evaluate(pkt, flow, to_server):
            if state == 1:
                alerts.append(r.alerts[rrule.sid])
            act = rrule.action
            if act.action is not Action.ACCEPT:
                verdict = _merge(verdict, Verdict(act.action, Reason.RATE, rrule.sid, act.block_seconds))

        if alerts:
            flow.alerted = True
        if r.normalize.active and verdict.action <= Action.REWRITE:
            fixes = normalize_replacements(r.normalize, pkt)
            if fixes:
                verdict = _merge(
                    verdict, Verdict(Action.REWRITE, Reason.NORMALIZE, replacements=tuple(fixes))
                )
        if verdict.action is Action.ACCEPT:
            if not flow.alerted and self._clean(r.bypass, flow, pkt, allowed):
                flow.bypassed = result.bypass = True
                r.bypass.stats["bypassed"] += 1
            return result
        if allowed and verdict.action >= Action.DROP:
            # Management and allowlisted hosts are never dropped, rejected or blocked.
            self.stats["allowlist_overrides"] += 1
            result.verdict = ACCEPT
            return result
        if verdict.action is Action.BLOCK:
            self._block(pkt, verdict, result)
        if rule_dropped and self.options.drop_flow_on_match:
            flow.dropped = True
        result.verdict = verdict
        return result

    # -- stages ----------------------------------------------------------------

    def _app_tcp(self, pkt: Packet, flow: Flow, to_server: bool) -> None:
        """Attach HTTP/TLS fields once a request or ClientHello is complete in the stream."""
        payload = pkt.payload
        if not to_server or flow.app not in ("", "http", "tls"):
            return
        if flow.app != "tls" and (flow.http_buf or looks_like_request(payload)):
            buf = flow.http_buf + payload
            req = parse_request(buf)
            if req is not None:
                pkt.http = req
                flow.app = "http"
                flow.http_buf = b""
            elif len(buf) <= self.options.flows.http_buffer:
                flow.http_buf = buf
            else:
                flow.http_buf = b""  # an oversized header block is not kept (counted)
                self.stats["http_header_too_long"] += 1
            return
        if flow.app == "" and is_client_hello(payload):
            flow.app = "tls"
            pkt.tls_sni = client_hello_sni(payload)

    def _clean(self, bypass: BypassPolicy, flow: Flow, pkt: Packet, allowed: bool) -> bool:
        if allowed and self.options.bypass.allowlisted:
            return True
        return bypass.due(flow) and bypass.clean(flow, pkt)

    def _src_blocked(self, pkt: Packet) -> bool:
        return len(self.blocklist) > 0 and self.blocklist.is_blocked(pkt.ip_version, pkt.src, pkt.ts)

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
    normalize: Normalize


def _allowlisted(a: AddressSet | None, pkt: Packet) -> bool:
    if a is None:
        return False
    return a.contains(pkt.ip_version, pkt.src) or a.contains(pkt.ip_version, pkt.dst)


def _merge(a: Verdict, b: Verdict) -> Verdict:
    """Strongest action wins; a rewrite keeps every replacement of every rewriting rule."""
    if a.action is Action.REWRITE and b.action is Action.REWRITE:
        return Verdict(Action.REWRITE, a.reason, a.rule_id, replacements=a.replacements + b.replacements)
    return strongest(a, b)
