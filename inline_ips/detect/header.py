"""Rule header and flow checks shared by signature and rate rules.

:class:`HeaderCheck` is a rule header compiled for the per-packet path: the
cheap, selective tests come first (protocol, TCP flags, ICMP type), and
address or port sets that are ``any`` are not consulted at all. ``<>`` rules
are tried both ways. ``flow_selects`` tests ``flow:`` options against the
packet's flow. Neither looks at payloads.
"""

from __future__ import annotations

from inline_ips.flow import Flow
from inline_ips.packet import PROTO_TCP, PROTO_UDP, Packet
from inline_ips.rules.addresses import AddressSet, PortSet
from inline_ips.rules.model import AppProto, FlowMatch, Header


class HeaderCheck:
    __slots__ = (
        "bidirectional",
        "dport",
        "dst",
        "fmask",
        "fmode",
        "fvalue",
        "icmp_code",
        "icmp_type",
        "needs_l4",
        "proto",
        "sport",
        "src",
    )

    def __init__(self, h: Header) -> None:
        self.proto = -1 if h.proto is None else h.proto
        self.needs_l4 = h.app is AppProto.DNS  # dns over UDP or TCP only
        f = h.flags
        # fmode: 0 none, 1 exact (flags & mask == value), 2 any-of, 3 all-of
        self.fmode = 0 if f is None else {"exact": 1, "any": 2, "plus": 3}[f.mode]
        self.fmask = f.mask if f is not None else 0
        self.fvalue = f.value if f is not None else 0
        self.icmp_type = -1 if h.icmp_type is None else h.icmp_type
        self.icmp_code = -1 if h.icmp_code is None else h.icmp_code
        self.src: AddressSet | None = None if h.src.is_any else h.src
        self.dst: AddressSet | None = None if h.dst.is_any else h.dst
        self.sport: PortSet | None = None if h.sport.is_any else h.sport
        self.dport: PortSet | None = None if h.dport.is_any else h.dport
        self.bidirectional = h.bidirectional

    def selects(self, pkt: Packet) -> bool:
        if self.proto >= 0 and pkt.proto != self.proto:
            return False
        if self.needs_l4 and pkt.proto not in (PROTO_UDP, PROTO_TCP):
            return False
        fmode = self.fmode
        if fmode:
            flags = pkt.tcp_flags
            if fmode == 1:
                if flags & self.fmask != self.fvalue:
                    return False
            elif fmode == 2:
                if not flags & self.fvalue:
                    return False
            elif flags & self.fvalue != self.fvalue:
                return False
        if self.icmp_type >= 0 and pkt.icmp_type != self.icmp_type:
            return False
        if self.icmp_code >= 0 and pkt.icmp_code != self.icmp_code:
            return False
        if self._forward(pkt):
            return True
        return self.bidirectional and self._reverse(pkt)

    def fits_tuple(self, pkt: Packet) -> bool:
        """Addresses and ports only (either way for ``<>`` rules); flags and ICMP fields ignored."""
        return self._forward(pkt) or (self.bidirectional and self._reverse(pkt))

    def _forward(self, pkt: Packet) -> bool:
        sp, dp, s, d = self.sport, self.dport, self.src, self.dst
        return (
            (sp is None or sp.contains(pkt.sport))
            and (dp is None or dp.contains(pkt.dport))
            and (s is None or s.contains(pkt.ip_version, pkt.src))
            and (d is None or d.contains(pkt.ip_version, pkt.dst))
        )

    def _reverse(self, pkt: Packet) -> bool:
        sp, dp, s, d = self.sport, self.dport, self.src, self.dst
        return (
            (sp is None or sp.contains(pkt.dport))
            and (dp is None or dp.contains(pkt.sport))
            and (s is None or s.contains(pkt.ip_version, pkt.dst))
            and (d is None or d.contains(pkt.ip_version, pkt.src))
        )


def flow_selects(fm: FlowMatch, flow: Flow | None, to_server: bool) -> bool:
    """The rule's ``flow:`` options: direction and established state."""
    if fm.to_server is not None and fm.to_server != to_server:
        return False
    return fm.established is None or (flow is not None and flow.established) == fm.established
