"""Decide when a flow may leave the queue: no rule can still see what it will carry.

Suricata-style flow bypass: once a flow is judged clean, the verdict marks its
connection and the kernel stops queueing it, so bulk transfers run at kernel
speed. A flow is judged clean when an endpoint is allowlisted, or when it has
carried ``after_packets`` packets or ``after_bytes`` bytes without an alert,
and no loaded rule could still match its later packets:

- a signature rule that inspects the payload, and whose addresses and ports fit
  the flow (either way round);
- an HTTP, DNS or TLS rule while the flow may still carry that protocol
  (a flow already seen to be TLS needs no HTTP rule, and one past its
  ClientHello needs no TLS rule);
- a header-only rule without TCP flags or other packet tests that fits the
  flow; a Suricata IP-only rule only until both directions had their first
  packet judged;
- a rate rule that counts every packet or byte (``packets``, ``bytes``,
  ``dns_response_bytes``) and fits the flow, unless it only counts packets
  with SYN set (an established flow sends no more) or is a DNS rule and the
  flow is known to carry something else. Rules that count SYNs, distinct
  ports or hosts, or empty connections learn nothing more from an established
  flow that already carried data.

Header-only rules with TCP flags (probe detectors: NULL, Xmas, SYN+FIN) do not
hold a flow back: they describe stray packets, not established streams. The
decision is made once per flow; this module keeps no per-packet state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inline_ips.detect.header import HeaderCheck
from inline_ips.flow import Flow
from inline_ips.packet import SYN, Packet
from inline_ips.rules.model import KIND_IPONLY, AppProto, Buffer, Measure, RateRule, SignatureRule


@dataclass(frozen=True, slots=True)
class BypassOptions:
    after_packets: int = 64  # both directions together; 0 disables bypass by volume
    after_bytes: int = 262_144
    allowlisted: bool = True  # bypass flows with an allowlisted endpoint at once

    @property
    def by_volume(self) -> bool:
        """Can a flow be bypassed for what it carried (not only for an allowlisted endpoint)?"""
        return self.after_packets > 0 or self.after_bytes > 0


_COUNTING = (Measure.PACKETS, Measure.BYTES, Measure.DNS_RESPONSE_BYTES)


class BypassPolicy:
    def __init__(
        self, signatures: Sequence[SignatureRule], rates: Sequence[RateRule], opts: BypassOptions
    ) -> None:
        self.opts = opts
        self.by_volume = opts.by_volume  # read by due() for every packet: worked out once
        # (check, what it needs): "payload", "http", "dns", "tls" or "any" (header-only).
        self._sigs: list[tuple[HeaderCheck, str]] = []
        for r in signatures:
            need = _signature_need(r)
            if need:
                self._sigs.append((HeaderCheck(r.header), need))
        self._rates = [
            (HeaderCheck(r.header), r.header.app is AppProto.DNS)
            for r in rates
            if r.measure in _COUNTING and not _syn_only(r)
        ]
        self.stats = {"bypassed": 0, "held_by_rules": 0}

    def due(self, flow: Flow) -> bool:
        """Has the flow carried enough to be considered (and is it not already decided)?"""
        if not self.by_volume:
            return False
        o = self.opts
        pkts = flow.pkts[0] + flow.pkts[1]
        size = flow.bytes[0] + flow.bytes[1]
        return (o.after_packets > 0 and pkts >= o.after_packets) or (
            o.after_bytes > 0 and size >= o.after_bytes
        )

    def clean(self, flow: Flow, pkt: Packet) -> bool:
        """True when no rule could match any later packet of this flow.

        The answer only changes when the flow's application protocol does, so a
        flow held back is not examined again until then.
        """
        # The client's first payload decides the protocol; after it, "" means none we parse.
        app = flow.app or ("?" if flow.payload[0] else "")
        if flow.bypass_checked == app:
            return False
        flow.bypass_checked = app
        fwd, rev = _views(flow, pkt)
        for check, need in self._sigs:
            if need == "iponly" and flow.iponly == 3:
                continue  # both directions already had their first packet judged
            if need == "http" and app not in ("", "http"):
                continue
            if need == "dns" and app not in ("", "dns"):
                continue
            if need == "tls" and app != "":
                continue
            if _fits(check, fwd, rev):
                self.stats["held_by_rules"] += 1
                return False
        for check, dns in self._rates:
            if dns and app not in ("", "dns"):
                continue
            if _fits(check, fwd, rev):
                self.stats["held_by_rules"] += 1
                return False
        return True


def _syn_only(rule: RateRule) -> bool:
    """Does the rule's flags test only pass packets with SYN set?"""
    f = rule.header.flags
    if f is None:
        return False
    if f.mode == "exact":
        return bool(f.mask & SYN and f.value & SYN)
    return f.mode == "plus" and bool(f.value & SYN)


def _signature_need(rule: SignatureRule) -> str:
    h = rule.header
    if rule.kind == KIND_IPONLY:
        return "iponly"  # judged on the first packet of each direction only
    bufs = {bm.buffer for bm in rule.buffers}
    if Buffer.PAYLOAD in bufs:
        return "payload"
    apps = {b.app for b in bufs if b.app}
    if "http" in apps or h.app is AppProto.HTTP:
        return "http"
    if "dns" in apps or h.app is AppProto.DNS:
        return "dns"
    if "tls" in apps or h.app is AppProto.TLS:
        return "tls"
    if h.flags is not None or h.icmp_type is not None or h.icmp_code is not None or h.conditions:
        return ""  # a probe detector for stray packets
    return "any"


def _views(flow: Flow, pkt: Packet) -> tuple[Packet, Packet]:
    """Two flag-less packets standing for the flow's directions (client->server, server->client)."""
    fwd = Packet(b"", pkt.ts)
    rev = Packet(b"", pkt.ts)
    for p, (s, sp, d, dp) in (
        (fwd, (flow.client, flow.cport, flow.server, flow.sport)),
        (rev, (flow.server, flow.sport, flow.client, flow.cport)),
    ):
        p.ip_version = flow.version
        p.proto = flow.proto
        p.src, p.sport, p.dst, p.dport = s, sp, d, dp
    return fwd, rev


def _fits(check: HeaderCheck, fwd: Packet, rev: Packet) -> bool:
    """Does the rule's protocol, address and port part fit either direction of the flow?"""
    if check.proto >= 0 and fwd.proto != check.proto:
        return False
    return check.fits_tuple(fwd) or check.fits_tuple(rev)
