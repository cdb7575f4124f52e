"""Bidirectional flows: key, direction, TCP state, stream windows, bounded table.

A flow is keyed by its 5-tuple in a canonical order so both directions find
the same entry; the first packet's sender is the client (a flow first seen as
a SYN-ACK is turned around). The table has a hard cap on entries: when it is
full the least recently used flow is evicted, and idle flows expire by
per-protocol timeouts, so a spoofed-source flood costs bounded memory. Each
direction keeps a bounded stream window (the tail of in-order TCP payload) so
content split across segments is still found. Time is the packet's
timestamp; nothing here reads a clock. This module does not inspect payloads.

:meth:`FlowTable.lookup` is the specification; :meth:`FlowTable.fast_lookup`
gives the engine the same function with its commonest case (a packet of a
known, current flow that changes no TCP state) done by the optional compiled
``inline_ips._fastflow`` (``_fastflow.c``), which hands every other packet to
``lookup`` untouched. ``INLINE_IPS_PURE_FLOW=1`` turns the compiled part off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from inline_ips.compiled import load_twin
from inline_ips.packet import ACK, FIN, PROTO_TCP, RST, SYN, Packet

FlowKey = tuple[int, int, int, int, int, int]  # (version, proto, addr_a, port_a, addr_b, port_b)

STREAM_IN_ORDER = 0
STREAM_RETRANSMIT = 1
STREAM_GAP = 2


@dataclass(frozen=True, slots=True)
class FlowOptions:
    max_flows: int = 65536
    # Idle timeouts, seconds (Suricata's defaults for established flows are similar).
    tcp_new_timeout: float = 60.0
    tcp_established_timeout: float = 600.0
    tcp_closed_timeout: float = 10.0
    other_timeout: float = 60.0
    stream_window: int = 2048  # bytes of earlier in-order payload kept per direction
    # A TCP flow first seen without its SYN still gets a session (stream
    # reassembly, application parsing, established from its second packet on),
    # as with Suricata's stream.midstream: true. Off, it is judged packet by packet.
    midstream: bool = True


class Flow:
    __slots__ = (
        "alerted",
        "allow_cache",
        "app",
        "app_state",
        "bits",
        "bypass_checked",
        "bypassed",
        "bytes",
        "client",
        "closed",
        "cport",
        "dropped",
        "established",
        "fin",
        "first_ts",
        "flow_id",
        "iponly",
        "key",
        "last_ts",
        "next_seq",
        "passed",
        "payload",
        "pkt_established",
        "pkts",
        "proto",
        "rate_cache",
        "server",
        "session",
        "sig_cache",
        "sport",
        "syn",
        "synack",
        "tail",
        "thresholds",
        "tx_alerted",
        "version",
    )

    def __init__(self, key: FlowKey, flow_id: int, pkt: Packet, client_is_src: bool) -> None:
        self.key = key
        self.flow_id = flow_id
        self.version = pkt.ip_version
        self.proto = pkt.proto
        if client_is_src:
            self.client, self.cport, self.server, self.sport = pkt.src, pkt.sport, pkt.dst, pkt.dport
        else:
            self.client, self.cport, self.server, self.sport = pkt.dst, pkt.dport, pkt.src, pkt.sport
        self.first_ts = pkt.ts
        self.last_ts = pkt.ts
        self.pkts = [0, 0]  # [to_server, to_client]
        self.bytes = [0, 0]
        self.payload = [0, 0]  # TCP/UDP payload bytes per direction
        self.syn = False
        self.synack = False
        self.established = False  # the flow's state after the latest packet
        # What ``flow:established`` sees for the current packet: Suricata tags a
        # packet with the state the flow had before it, so the bare ACK that
        # completes the handshake is not yet established (an ACK with data is).
        self.pkt_established = False
        self.session = False  # TCP: a stream session exists (SYN seen, or a midstream pickup)
        self.fin = 0  # FIN seen: bit 0 to_server, bit 1 to_client
        self.closed = False
        self.next_seq: list[int | None] = [None, None]
        self.tail = [b"", b""]
        self.dropped = False
        self.alerted = False  # some rule alerted on this flow: keep watching it
        self.bypassed = False  # judged clean: the kernel stops queueing it
        self.bypass_checked: str | None = None  # the app protocol when rules last held it back
        self.app = ""  # detected application protocol ("http", "dns", "tls") or ""
        self.app_state: object | None = None  # the application parser (HttpConnection, TlsConnection)
        self.bits: set[str] | None = None  # flowbits
        self.iponly = 0  # IP-only rules judged: bit 0 the to_server direction, bit 1 to_client
        self.passed = False  # a pass rule covered the whole flow: no more inspection
        self.thresholds: dict[tuple[object, ...], object] | None = None  # by_flow threshold entries
        # detect/rate.py: (its RateEngine, [to_server, to_client] rate rules the 5-tuple admits)
        self.rate_cache: (
            tuple[object, list[tuple[tuple[Any, ...], dict[int, tuple[Any, ...]]] | None]] | None
        ) = None
        # detect/signature.py: the same for the signatures without a fast pattern, by TCP flags,
        # and whether the tuple admits the flow for some rules with one (rule index -> bool)
        self.sig_cache: (
            tuple[
                object,
                list[tuple[tuple[int, ...], dict[int, tuple[int, ...]], dict[int, bool]] | None],
            ]
            | None
        ) = None
        self.tx_alerted: set[tuple[int, int, int]] | None = None  # (tx, direction, sid) already alerted
        # engine.py: (the rules it was worked out for, is either address allowlisted?)
        self.allow_cache: tuple[object, bool] | None = None

    def is_to_server(self, pkt: Packet) -> bool:
        return (
            pkt.src == self.client
            and pkt.sport == self.cport
            and (pkt.dst != self.client or pkt.dport != self.cport or pkt.src != pkt.dst)
        )

    def timeout(self, opts: FlowOptions) -> float:
        if self.proto != PROTO_TCP:
            return opts.other_timeout
        if self.closed:
            return opts.tcp_closed_timeout
        return opts.tcp_established_timeout if self.established else opts.tcp_new_timeout

    def stream(self, to_server: bool, pkt: Packet, window: int) -> tuple[bytes, int, int]:
        """Return (inspection buffer, bytes of it from earlier packets, status) and advance the window.

        The buffer is the kept tail followed by this packet's payload when the
        packet is the next in order; a retransmission is inspected alone and
        does not change the window; a gap restarts the window. ``status`` is
        STREAM_IN_ORDER, STREAM_RETRANSMIT or STREAM_GAP (bytes were missed
        before this payload), so application parsers see each byte once.
        """
        payload = pkt.payload
        d = 0 if to_server else 1
        seq = pkt.tcp_seq
        expected = self.next_seq[d]
        if pkt.tcp_flags & SYN:
            seq = (seq + 1) & 0xFFFFFFFF  # SYN takes a sequence number
        status = STREAM_IN_ORDER
        if expected is not None and seq != expected:
            if ((seq - expected) & 0xFFFFFFFF) > 0x7FFFFFFF:  # before expected: a retransmission
                return payload, 0, STREAM_RETRANSMIT
            self.tail[d] = b""  # a gap: what we kept no longer lines up
            status = STREAM_GAP
        prefix = self.tail[d]
        buf = prefix + payload if prefix else payload
        self.tail[d] = buf[-window:] if len(buf) > window else buf
        self.next_seq[d] = (seq + len(payload)) & 0xFFFFFFFF
        return buf, len(prefix), status


def flow_key(pkt: Packet) -> FlowKey:
    src, sport, dst, dport = pkt.src, pkt.sport, pkt.dst, pkt.dport
    # (src, sport) > (dst, dport) without building the two tuples: this runs for every packet.
    if src > dst or (src == dst and sport > dport):
        return (pkt.ip_version, pkt.proto, dst, dport, src, sport)
    return (pkt.ip_version, pkt.proto, src, sport, dst, dport)


Lookup = Callable[[Packet, bool], tuple["Flow", bool]]


class FlowTable:
    """All live flows, bounded by ``max_flows`` with LRU eviction and idle expiry."""

    def __init__(self, opts: FlowOptions | None = None) -> None:
        self.opts = opts or FlowOptions()
        self._flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._next_id = 1
        o = self.opts
        # No flow can have timed out within this many seconds of its last packet, so a
        # flow seen that recently (every packet of a busy one) skips working out its timeout.
        self._min_timeout = min(
            o.tcp_new_timeout, o.tcp_established_timeout, o.tcp_closed_timeout, o.other_timeout
        )
        self.stats = {"created": 0, "evicted": 0, "expired": 0}

    def __len__(self) -> int:
        return len(self._flows)

    def fast_lookup(self) -> Lookup:
        """:meth:`lookup`, with the commonest case compiled when ``inline_ips._fastflow`` is built.

        The caller keeps the function (the table does not: no reference cycle).
        """
        if _fastflow is None:
            return self.lookup
        state = (self._flows, self._flows.move_to_end, float(self._min_timeout), self.lookup)
        return partial(_fastflow.lookup, state)

    def lookup(self, pkt: Packet, tcp_state: bool = True) -> tuple[Flow, bool]:
        """Find or create the packet's flow; return it and whether the packet goes to the server.

        ``tcp_state`` False (a TCP checksum that does not verify) counts the
        packet but leaves the TCP session alone, as Suricata's stream engine does.
        """
        # flow_key() and Flow.is_to_server() spelled out: two calls less for every packet.
        src, sport, dst, dport = pkt.src, pkt.sport, pkt.dst, pkt.dport
        if src > dst or (src == dst and sport > dport):
            key = (pkt.ip_version, pkt.proto, dst, dport, src, sport)
        else:
            key = (pkt.ip_version, pkt.proto, src, sport, dst, dport)
        flows = self._flows
        flow = flows.get(key)
        now = pkt.ts
        if (
            flow is not None
            and now - flow.last_ts > self._min_timeout
            and now - flow.last_ts > flow.timeout(self.opts)
        ):
            del flows[key]
            self.stats["expired"] += 1
            _gone(flow)
            flow = None
        if flow is None:
            self._expire(now)
            if len(flows) >= self.opts.max_flows:
                _gone(flows.popitem(last=False)[1])
                self.stats["evicted"] += 1
            # A SYN-ACK seen first comes from the server (we missed the SYN); only a
            # midstream pickup turns the flow around, as in Suricata.
            client_is_src = not (
                self.opts.midstream and pkt.proto == PROTO_TCP and pkt.tcp_flags & (SYN | ACK) == (SYN | ACK)
            )
            flow = Flow(key, self._new_id(), pkt, client_is_src)
            flows[key] = flow
            self.stats["created"] += 1
        else:
            flows.move_to_end(key)
        client = flow.client
        to_server = (
            src == client and sport == flow.cport and (dst != client or dport != flow.cport or src != dst)
        )
        self._update(flow, pkt, to_server, tcp_state)
        return flow, to_server

    def _new_id(self) -> int:
        # Suricata's flow_id is an opaque positive integer; mix a counter so ids look unrelated.
        fid = (self._next_id * 0x9E3779B97F4A7C15) & 0x7FFFFFFFFFFFFFFF
        self._next_id += 1
        return fid or 1

    def _update(self, flow: Flow, pkt: Packet, to_server: bool, tcp_state: bool = True) -> None:
        d = 0 if to_server else 1
        flow.last_ts = pkt.ts
        flow.pkts[d] += 1
        flow.bytes[d] += len(pkt.raw)
        flow.payload[d] += len(pkt.payload)
        if pkt.proto != PROTO_TCP:
            # Suricata: other protocols are "established" once both sides spoke,
            # from the first reply on.
            if flow.pkts[1] and flow.pkts[0]:
                flow.established = True
            flow.pkt_established = flow.established
            return
        flow.pkt_established = flow.established and not flow.closed
        if not tcp_state:
            return
        flags = pkt.tcp_flags
        if flow.pkts[0] + flow.pkts[1] == 1 and (
            flags & (SYN | ACK) == SYN or (self.opts.midstream and not flags & RST)
        ):
            flow.session = True
            if not flags & SYN:
                flow.established = True  # picked up mid-stream: established from the next packet on
        if flags & RST:
            flow.closed = True
            return
        if flags & SYN:
            if flags & ACK:
                if not to_server:
                    flow.synack = True
            elif to_server:
                flow.syn = True
        elif flags & ACK and to_server and flow.synack and flow.session and not flow.established:
            flow.established = True
            if pkt.payload:
                flow.pkt_established = True  # an ACK with data completing the handshake counts
        if flags & FIN:
            flow.fin |= 1 if to_server else 2
            if flow.fin == 3:
                flow.closed = True

    def _expire(self, now: float, budget: int = 8) -> None:
        """Drop a few idle flows from the least recently used end; amortised O(1)."""
        flows = self._flows
        opts = self.opts
        while budget and flows:
            key, flow = next(iter(flows.items()))
            if now - flow.last_ts <= flow.timeout(opts):
                return
            del flows[key]
            self.stats["expired"] += 1
            _gone(flow)
            budget -= 1


_fastflow, FAST_FLOW_REASON = load_twin(
    "inline_ips._fastflow",
    "INLINE_IPS_PURE_FLOW",
    lambda m: m.setup(Flow, Packet, PROTO_TCP, SYN, ACK, FIN, RST),
)
FAST_FLOW = _fastflow is not None
"""True when :meth:`FlowTable.fast_lookup` uses the compiled common case."""


def _gone(flow: Flow) -> None:
    """A flow left the table: its application parser gives back its share of the app memcap."""
    release = getattr(flow.app_state, "release", None)
    if release is not None:
        release()
