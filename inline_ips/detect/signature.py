"""Signature matching: which rules match this packet or transaction, given its flow.

Three kinds of rule are judged in Suricata's order, each a pure function of
the packet, the flow state and the application records it carries:

1. IP-only rules (addresses, ports and protocol only) on the first packet of
   each flow direction, found through :class:`~inline_ips.detect.iponly.IpOnlyIndex`;
2. packet rules (header keywords, payload content): one Hyperscan scan of the
   payload — for TCP the stream window, earlier in-order bytes plus this
   payload, so a pattern split across segments is found — yields the
   candidates, to which the rules without a literal are added;
3. transaction rules (``http.*``, ``dns.query``, ``tls.*`` buffers) on each
   application record this packet completed, once per transaction and
   direction; a buffer that is not complete yet (a body still arriving)
   makes the rule wait rather than fail, so a negated content is never judged
   on half a body.

Candidates are fully checked in rule order (``order``: action, then flowbit
setters before readers, then priority, then sid, as Suricata sorts them):
header, flow, application protocol, flowbit conditions, then each buffer's
ordered matches; a rule that matches sets its flowbits at once, so a later
rule of the same packet sees them. A stream match that lies wholly in
earlier bytes is not reported again. This module reports matches; thresholds,
pass and the verdict are the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from inline_ips.detect import transforms
from inline_ips.detect.content import inspect
from inline_ips.detect.header import HeaderCheck, flow_selects, frag_selects
from inline_ips.detect.iponly import IpOnlyIndex
from inline_ips.detect.prefilter import BufferKey, Prefilter, Scanner, fast_pattern
from inline_ips.flow import Flow
from inline_ips.packet import Packet
from inline_ips.rules.model import (
    EITHER_SIDE,
    KIND_IPONLY,
    STREAM_NONE,
    TO_CLIENT_SIDE,
    TO_SERVER_SIDE,
    AppProto,
    Buffer,
    Content,
    Flowbit,
    Match,
    SignatureRule,
    Transform,
)
from inline_ips.verdict import Action

# Suricata's default action-order: pass, drop, reject, alert.
_ACTION_CLASS = {Action.DROP: 1, Action.BLOCK: 1, Action.REJECT: 2}

# A buffer getter for transaction rules: the bytes of one buffer (several for
# multi-buffers such as tls.certs), or None when the record does not have it (yet).
Source = Callable[[Buffer], bytes | Sequence[bytes] | None]


@dataclass(slots=True)
class Hit:
    """One rule matching one packet (``tx`` -1) or one transaction of it."""

    rule: SignatureRule
    order: int
    replacements: list[tuple[int, bytes]] = field(default_factory=list)
    tx: int = -1
    stream: bool = False  # the payload matched in the reassembled stream
    record: object = None  # the application record (for output)


# Per flow, (transaction, direction, sid) already alerted: pruned past this many entries.
_MAX_TX_ALERTED = 4096
# Per flow direction, how many fast-pattern rules' "does the tuple admit this flow" answers
# are remembered (a bound on the memory an attacker's payloads can make a flow hold).
_TUPLE_MEMO_MAX = 32
FLAGS_MEMO_MAX = 16  # TCP flags values remembered per flow direction (a flow sees a handful)
_TX_ALERTED_KEEP = 32
# The member as a global: on Python 3.11 reading Buffer.PAYLOAD goes through EnumType.__getattr__.
_PAYLOAD = Buffer.PAYLOAD


def rule_order_key(rule: SignatureRule) -> tuple[int, int, int, int]:
    """Suricata's signature order (detect-engine-sigorder.c)."""
    act = 0 if rule.action.passes else _ACTION_CLASS.get(rule.action.action, 3)
    sets = any(not fb.reads for fb in rule.flowbits)
    reads = any(fb.reads for fb in rule.flowbits)
    fb = 0 if sets and not reads else 1 if sets else 2 if reads else 3
    return (act, fb, rule.priority, rule.sid)


def _stream_ok(rule: SignatureRule) -> bool:
    """May the payload list see the stream window? Not with offset/depth (packet positions) or no_stream."""
    if rule.flow.stream == STREAM_NONE:
        return False
    for bm in rule.buffers:
        if bm.buffer is Buffer.PAYLOAD:
            for m in bm.matches:
                if isinstance(m, Content) and (m.offset is not None or m.depth is not None):
                    return False
    return True


def _side(rule: SignatureRule) -> int:
    sides = {bm.buffer.side for bm in rule.buffers if bm.buffer is not Buffer.PAYLOAD}
    if TO_CLIENT_SIDE in sides:
        return TO_CLIENT_SIDE
    if TO_SERVER_SIDE in sides:
        return TO_SERVER_SIDE
    if rule.flow.to_server is not None:
        return TO_SERVER_SIDE if rule.flow.to_server else TO_CLIENT_SIDE
    return EITHER_SIDE


def _app_of(rule: SignatureRule) -> str:
    for bm in rule.buffers:
        if bm.buffer.app:
            return bm.buffer.app
    return "" if rule.header.app is AppProto.NONE else rule.header.app.value


class _Rule:
    __slots__ = (
        "app",
        "bufs",
        "flow",
        "flow_any",
        "frag",
        "header",
        "idx",
        "order",
        "reads",
        "rule",
        "side",
        "stream_ok",
        "writes",
    )

    def __init__(self, rule: SignatureRule, idx: int) -> None:
        self.rule = rule
        self.idx = idx
        self.order = 0
        self.header = HeaderCheck(rule.header)
        self.flow = rule.flow
        self.flow_any = rule.flow.is_any
        self.frag = rule.flow.frag is not None
        self.app = _app_of(rule)
        self.side = _side(rule)
        self.stream_ok = _stream_ok(rule)
        # Per buffer: (key, buffer, transforms, matches, any nocase content).
        self.bufs: tuple[tuple[BufferKey, Buffer, tuple[Transform, ...], tuple[Match, ...], bool], ...] = (
            tuple(
                (
                    bm.key,
                    bm.buffer,
                    bm.transforms,
                    bm.matches,
                    any(isinstance(m, Content) and m.nocase for m in bm.matches),
                )
                for bm in rule.buffers
            )
        )
        self.reads: tuple[Flowbit, ...] = tuple(fb for fb in rule.flowbits if fb.reads)
        self.writes: tuple[Flowbit, ...] = tuple(fb for fb in rule.flowbits if not fb.reads)


class Inspection:
    """The buffers one set of rules is judged against, each produced (and lowered) at most once.

    The packet payload, or for TCP with a session the stream window (earlier
    in-order bytes + this payload, ``prefix`` of them earlier); for
    transaction rules also one application record of one direction, through
    ``source``.
    """

    __slots__ = (
        "_cache",
        "_lowered",
        "app",
        "has_stream",
        "pkt",
        "prefix",
        "record",
        "source",
        "stream",
        "to_server",
        "tx",
    )

    def __init__(
        self,
        pkt: Packet,
        stream: bytes | None,
        prefix: int,
        to_server: bool,
        app: str = "",
        source: Source | None = None,
        tx: int = -1,
        record: object = None,
    ) -> None:
        self.pkt = pkt
        # None: no stream (not TCP, or a TCP flow without a session): payload rules see the packet.
        self.has_stream = stream is not None
        self.stream = stream if stream is not None else pkt.payload
        self.prefix = prefix
        self.to_server = to_server
        self.app = app
        self.source = source
        self.tx = tx
        self.record = record
        self._cache: dict[object, tuple[bytes, ...] | None] = {}
        self._lowered: dict[object, tuple[bytes, ...]] = {}

    def get(self, key: BufferKey, use_stream: bool) -> tuple[bytes, ...] | None:
        ck: object = key if (key[0] is not _PAYLOAD or use_stream) else "packet"
        if ck in self._cache:
            return self._cache[ck]
        data = self._raw(key, use_stream)
        self._cache[ck] = data
        return data

    def lowered(self, key: BufferKey, use_stream: bool, data: tuple[bytes, ...]) -> tuple[bytes, ...]:
        ck: object = key if (key[0] is not _PAYLOAD or use_stream) else "packet"
        low = self._lowered.get(ck)
        if low is None:
            low = self._lowered[ck] = tuple(d.lower() for d in data)
        return low

    def _raw(self, key: BufferKey, use_stream: bool) -> tuple[bytes, ...] | None:
        buf, tfs = key
        if buf is _PAYLOAD:
            data = self.stream if use_stream else self.pkt.payload
            # Suricata does not run payload keywords on a packet without payload.
            return (data,) if data else None
        if self.source is None:
            return None
        got = self.source(buf)
        if got is None:
            return None
        items: tuple[bytes, ...] = (got,) if isinstance(got, bytes) else tuple(got)
        if not items:
            return None
        if tfs:
            items = tuple(transforms.apply(tfs, d) for d in items)
        return items


class SignatureEngine:
    def __init__(self, rules: Sequence[SignatureRule]) -> None:
        self.rules = tuple(rules)
        self._compiled = [_Rule(r, i) for i, r in enumerate(self.rules)]
        for order, c in enumerate(sorted(self._compiled, key=lambda c: rule_order_key(c.rule))):
            c.order = order
        iponly: list[_Rule] = []
        packet: list[_Rule] = []
        tx: list[_Rule] = []
        for c in self._compiled:
            if c.rule.kind == KIND_IPONLY:
                iponly.append(c)
            elif any(b[1] is not Buffer.PAYLOAD for b in c.bufs):
                tx.append(c)
            else:
                packet.append(c)
        self.iponly_count = len(iponly)
        self.has_iponly = bool(iponly)
        self._iponly = IpOnlyIndex(
            (c.idx, c.rule.header.src, c.rule.header.dst, c.rule.header.bidirectional) for c in iponly
        )
        # Packet rules with a fast pattern: one prefilter over the payload per IP protocol
        # they name, each holding also the rules for any protocol (a UDP datagram does not
        # scan the TCP rules' literals: a match calls back into Python, and common literals
        # such as |00 00 00| in rules of other protocols would make one per packet). The
        # rest are always candidates for their protocol and, when they name a few
        # destination (or else source) ports, only for those (Suricata's port groups).
        unfiltered_rules: list[int] = []
        by_proto_fp: dict[int, list[_Rule]] = {}
        any_proto_fp: list[_Rule] = []
        literals: set[tuple[bytes, bool]] = set()
        for c in packet:
            fp = fast_pattern(c.rule)
            if fp is None:
                unfiltered_rules.append(c.idx)
                continue
            literals.add((fp.pattern, fp.nocase))
            for proto in _protocols(c.rule):
                (any_proto_fp if proto == -1 else by_proto_fp.setdefault(proto, [])).append(c)
        self._packet_literals = len(literals)

        def payload_scanner(members: list[_Rule]) -> Scanner | None:
            if not members:
                return None
            return Prefilter([c.rule for c in members], [c.idx for c in members]).scanner(Buffer.PAYLOAD)

        self._payload_scanners = {p: payload_scanner(m + any_proto_fp) for p, m in by_proto_fp.items()}
        self._payload_scanner_other = payload_scanner(any_proto_fp)  # protocols no rule names
        general: dict[int, list[int]] = {}  # protocol (-1: any) -> rules for every port
        by_port: dict[tuple[int, int], list[int]] = {}  # (protocol, dst port) -> rules
        by_sport: dict[tuple[int, int], list[int]] = {}  # (protocol, src port) -> rules
        for idx in unfiltered_rules:
            h = self.rules[idx].header
            protos = _protocols(self.rules[idx])
            dports = sports = None
            if not h.bidirectional:
                dports = _few_ports(h.dport.ports.starts, h.dport.ports.ends)
                if dports is None and h.dport.is_any:
                    sports = _few_ports(h.sport.ports.starts, h.sport.ports.ends)
            for proto in protos:
                if proto == -1 or (dports is None and sports is None):
                    general.setdefault(proto, []).append(idx)
                elif dports is not None:
                    for port in dports:
                        by_port.setdefault((proto, port), []).append(idx)
                else:
                    for port in sports or ():
                        by_sport.setdefault((proto, port), []).append(idx)
        any_proto = general.pop(-1, [])
        self._unfiltered_any = tuple(any_proto)
        self._unfiltered = {p: tuple(v + any_proto) for p, v in general.items()}
        self._unfiltered_port = {
            k: tuple(v + list(self._unfiltered.get(k[0], self._unfiltered_any))) for k, v in by_port.items()
        }
        self._unfiltered_sport = {k: tuple(v) for k, v in by_sport.items()}
        self._port_protos = frozenset(p for p, _ in by_port)
        self._sport_protos = frozenset(p for p, _ in by_sport)
        # Transaction rules: per application protocol, a prefilter over its buffers.
        self._tx: dict[str, tuple[Prefilter, tuple[int, ...], tuple[BufferKey, ...]]] = {}
        for app in ("http", "dns", "tls"):
            members = [c for c in tx if c.app == app]
            if not members:
                continue
            pf = Prefilter([c.rule for c in members], [c.idx for c in members])
            self._tx[app] = (pf, tuple(pf.unfiltered), pf.keys)

    @property
    def pattern_count(self) -> int:
        """Distinct literals in every prefilter (payload and application buffers)."""
        return self._packet_literals + sum(pf.pattern_count for pf, _, _ in self._tx.values())

    # -- the three kinds -------------------------------------------------------------

    def iponly(self, pkt: Packet, flow: Flow, to_server: bool) -> list[Hit]:
        """IP-only rules; the caller runs this once per flow direction."""
        out: list[Hit] = []
        comp = self._compiled
        for idx in self._iponly.candidates(pkt.ip_version, pkt.src, pkt.dst):
            c = comp[idx]
            if c.header.selects(pkt):
                _write_bits(c, flow)
                out.append(Hit(c.rule, c.order))
        return out

    def _unfiltered_for(self, pkt: Packet) -> tuple[int, ...]:
        """Rules without a fast pattern whose protocol, addresses and ports admit this packet's tuple."""
        proto = pkt.proto
        candidates: Iterable[int] = self._unfiltered.get(proto, self._unfiltered_any)
        if proto in self._port_protos:
            candidates = self._unfiltered_port.get((proto, pkt.dport), candidates)
        if proto in self._sport_protos:
            extra = self._unfiltered_sport.get((proto, pkt.sport))
            if extra:
                candidates = (*candidates, *extra)
        comp = self._compiled
        return tuple(i for i in candidates if comp[i].header.selects_flow(pkt))

    def _with_flags(self, admitted: tuple[int, ...], flags: int) -> tuple[int, ...]:
        comp = self._compiled
        return tuple(
            i for i in admitted if not comp[i].header.flags_only or comp[i].header.selects_packet_flags(flags)
        )

    def packet(
        self, pkt: Packet, flow: Flow, to_server: bool, stream: bytes | None, prefix: int
    ) -> list[Hit]:
        """Packet rules on the payload, or on the stream window (``prefix`` bytes of it earlier)."""
        # The tuple is the same for every packet of a flow direction, and a flow sees few
        # TCP flag combinations: which rules without a fast pattern admit the packet is worked
        # out once per direction, then once per flags value (the cache names this engine: a
        # reload resets it).
        cache = flow.sig_cache
        if cache is None or cache[0] is not self:
            cache = flow.sig_cache = (self, [None, None])
        d = 0 if to_server else 1
        entry = cache[1][d]
        if entry is None:
            entry = cache[1][d] = (self._unfiltered_for(pkt), {}, {})
        admitted, by_flags, memo = entry
        cached = by_flags.get(pkt.tcp_flags)
        if cached is None:
            cached = self._with_flags(admitted, pkt.tcp_flags)
            if len(by_flags) < FLAGS_MEMO_MAX:  # crafted flag combinations must not grow it to 256
                by_flags[pkt.tcp_flags] = cached
        candidates: Iterable[int] = cached
        data = stream if stream is not None else pkt.payload
        scanner = self._payload_scanners.get(pkt.proto, self._payload_scanner_other)
        if data and scanner is not None:
            # The stream window contains the packet payload, so one scan of it also
            # finds the candidates of rules that look at the packet alone.
            hits = scanner.matches(data)
            if hits:
                # Common literals (|00 00 00|) make rules for other ports and hosts candidates
                # again and again: whether a rule's tuple admits the flow is asked once per
                # direction (up to _TUPLE_MEMO_MAX rules), and the rules it rules out go no further.
                comp = self._compiled
                found = set(candidates)
                for i in hits:
                    ok = memo.get(i)
                    if ok is None:
                        ok = comp[i].header.selects_flow(pkt)
                        if len(memo) < _TUPLE_MEMO_MAX:
                            memo[i] = ok
                    if ok:
                        found.add(i)
                candidates = found
        if not candidates:
            return []  # the common case for a flow no rule can see: no Inspection built
        insp = Inspection(pkt, stream, prefix, to_server)
        return self._evaluate(candidates, pkt, flow, to_server, insp, "")

    def tx(self, pkt: Packet, flow: Flow, insp: Inspection) -> list[Hit]:
        """Transaction rules of ``insp.app`` on the record ``insp`` carries, in its direction."""
        entry = self._tx.get(insp.app)
        if entry is None:
            return []
        pf, unfiltered, keys = entry
        found = set(unfiltered)
        side = TO_SERVER_SIDE if insp.to_server else TO_CLIENT_SIDE
        for key in keys:
            b = key[0]
            if b is not _PAYLOAD and b.side not in (EITHER_SIDE, side):
                continue
            data = insp.get(key, True)
            if data is not None:
                for d in data:
                    pf.scan(key, d, found)
        return self._evaluate(found, pkt, flow, insp.to_server, insp, insp.app)

    # -- checking ----------------------------------------------------------------------

    def _evaluate(
        self, candidates: Iterable[int], pkt: Packet, flow: Flow, to_server: bool, insp: Inspection, app: str
    ) -> list[Hit]:
        comp = self._compiled
        ordered = sorted((comp[i] for i in candidates), key=lambda c: c.order)
        out: list[Hit] = []
        side = TO_SERVER_SIDE if to_server else TO_CLIENT_SIDE
        # A record with a transaction number (HTTP, TLS) alerts once per rule; one
        # without (a DNS message) is its own transaction and is judged once anyway.
        once = bool(app) and insp.tx >= 0
        done = flow.tx_alerted if once else None
        for c in ordered:
            if app and c.side not in (EITHER_SIDE, side):
                continue
            if done is not None and (insp.tx, side, c.rule.sid) in done:
                continue
            hit = self._check(c, pkt, flow, to_server, insp)
            if hit is None:
                continue
            _write_bits(c, flow)
            if once:
                if done is None:
                    done = flow.tx_alerted = set()
                elif len(done) >= _MAX_TX_ALERTED:
                    # Transactions this far behind are finished: forget them (bounded memory).
                    oldest = insp.tx - _TX_ALERTED_KEEP
                    done.difference_update([k for k in done if k[0] < oldest])
                # Keyed by sid, not rule index: a reload renumbers rules, a flow keeps its record.
                done.add((insp.tx, side, c.rule.sid))
            if app:
                hit.tx = insp.tx
                hit.record = insp.record
            out.append(hit)
        return out

    def _check(self, c: _Rule, pkt: Packet, flow: Flow, to_server: bool, insp: Inspection) -> Hit | None:
        if not c.header.selects(pkt):
            return None
        if not c.flow_any:
            if not flow_selects(c.flow, flow, to_server):
                return None
            if c.frag and not frag_selects(c.flow, pkt):
                return None
        if c.app and not insp.app and flow.app != c.app:
            return None
        if c.reads and not _bits_hold(c.reads, flow):
            return None
        # A TCP packet with a session is inspected in its stream; one without
        # (picked up without a handshake, with midstream off) packet by packet.
        use_stream = c.stream_ok and insp.has_stream
        replacements: list[tuple[int, bytes]] = []
        for key, buf, _tfs, matches, nocase in c.bufs:
            data = insp.get(key, use_stream)
            if data is None:
                return None
            lowered = insp.lowered(key, use_stream, data) if nocase else data
            res = None
            for d, low in zip(data, lowered, strict=True):
                res = inspect(d, low, matches)
                if res is not None:
                    if buf is _PAYLOAD:
                        res = self._new_in_stream(d, low, matches, res, insp.prefix if use_stream else 0)
                        if res is None:
                            continue
                        prefix = insp.prefix if use_stream else 0
                        base = pkt.payload_offset - prefix
                        replacements.extend((base + pos, new) for pos, new in res if pos >= prefix)
                    break
            if res is None:
                return None
        return Hit(c.rule, c.order, replacements, stream=use_stream)

    @staticmethod
    def _new_in_stream(
        data: bytes, lowered: bytes, matches: tuple[Match, ...], res: list[tuple[int, bytes]], prefix: int
    ) -> list[tuple[int, bytes]] | None:
        """A match already complete in earlier stream bytes is not reported again."""
        if not prefix or inspect(data[:prefix], lowered[:prefix], matches) is None:
            return res
        again = inspect(data[prefix:], lowered[prefix:], matches)
        if again is None:
            return None
        return [(prefix + pos, new) for pos, new in again]


def _protocols(rule: SignatureRule) -> list[int]:
    """The IP protocols a rule can match (-1: any), counting ``ip_proto:N`` on an ``ip`` rule."""
    h = rule.header
    if h.proto is None:
        for cond in h.conditions:
            if cond.field == "proto" and cond.match.mode == "eq":
                return [cond.match.a]
        return [-1]
    return [h.proto] if h.alt_proto is None else [h.proto, h.alt_proto]


def _few_ports(starts: tuple[int, ...], ends: tuple[int, ...], limit: int = 64) -> list[int] | None:
    """The ports of a small port set, or None when it is large (``any``, ranges)."""
    total = sum(e - s + 1 for s, e in zip(starts, ends, strict=True))
    if total > limit:
        return None
    return [p for s, e in zip(starts, ends, strict=True) for p in range(s, e + 1)]


def _bits_hold(reads: tuple[Flowbit, ...], flow: Flow) -> bool:
    bits = flow.bits or ()
    for fb in reads:
        if fb.cmd == "isset":
            ok = any(n in bits for n in fb.names) if fb.any_of else all(n in bits for n in fb.names)
        else:  # isnotset
            ok = any(n not in bits for n in fb.names) if fb.any_of else all(n not in bits for n in fb.names)
        if not ok:
            return False
    return True


def _write_bits(c: _Rule, flow: Flow) -> None:
    if not c.writes:
        return
    bits = flow.bits
    if bits is None:
        bits = flow.bits = set()
    for fb in c.writes:
        for name in fb.names:
            if fb.cmd == "set":
                bits.add(name)
            elif fb.cmd == "unset" or name in bits:
                bits.discard(name)
            else:
                bits.add(name)
