"""Rule header and flow checks shared by signature and rate rules.

:class:`HeaderCheck` is a rule header compiled for the per-packet path: the
cheap, selective tests come first (protocol, IP version, TCP flags, ICMP
type, numeric packet fields such as ``dsize`` and ``ttl``), and address or
port sets that are ``any`` are not consulted at all. ``<>`` rules are tried
both ways. The header splits into what is the same for every packet of a
flow direction (:meth:`HeaderCheck.selects_flow`, which callers may cache
per flow) and what is not (:meth:`HeaderCheck.selects_packet`).
``flow_selects`` tests ``flow:`` options against the packet's flow. Neither
looks at payloads.
"""

from __future__ import annotations

from inline_ips.flow import Flow
from inline_ips.packet import FRAG_REASSEMBLED, PROTO_TCP, PROTO_UDP, Packet
from inline_ips.rules.addresses import AddressSet, PortSet
from inline_ips.rules.model import AppProto, FlagsMatch, FlowMatch, Header
from inline_ips.rules.numeric import UintMatch


def packet_field(pkt: Packet, name: str) -> int:
    """The value a numeric header keyword tests (``dsize`` is the payload length)."""
    if name == "dsize":
        return len(pkt.payload)
    value: int = getattr(pkt, name)
    return value


class HeaderCheck:
    __slots__ = (
        "alt_proto",
        "bidirectional",
        "conditions",
        "dport",
        "dst",
        "flags",
        "icmp_code",
        "icmp_type",
        "ip_version",
        "needs_l4",
        "proto",
        "sameip",
        "sport",
        "src",
    )

    def __init__(self, h: Header) -> None:
        self.proto = -1 if h.proto is None else h.proto
        self.alt_proto = -1 if h.alt_proto is None else h.alt_proto
        self.ip_version = h.ip_version
        self.needs_l4 = h.app is AppProto.DNS  # dns over UDP or TCP only
        self.flags: FlagsMatch | None = h.flags
        self.icmp_type = -1 if h.icmp_type is None else h.icmp_type
        self.icmp_code = -1 if h.icmp_code is None else h.icmp_code
        self.conditions: tuple[tuple[str, UintMatch], ...] = tuple((c.field, c.match) for c in h.conditions)
        self.sameip = h.sameip
        self.src: AddressSet | None = None if h.src.is_any else h.src
        self.dst: AddressSet | None = None if h.dst.is_any else h.dst
        self.sport: PortSet | None = None if h.sport.is_any else h.sport
        self.dport: PortSet | None = None if h.dport.is_any else h.dport
        self.bidirectional = h.bidirectional

    def selects(self, pkt: Packet) -> bool:
        return self.selects_flow(pkt) and self.selects_packet(pkt)

    @property
    def per_packet(self) -> bool:
        """Whether :meth:`selects_packet` tests anything (flags, ICMP fields, numeric fields)."""
        return self.flags is not None or self.icmp_type >= 0 or self.icmp_code >= 0 or bool(self.conditions)

    @property
    def flags_only(self) -> bool:
        """Whether the TCP flags are all :meth:`selects_packet` tests (so a flags value decides it)."""
        return self.flags is not None and self.icmp_type < 0 and self.icmp_code < 0 and not self.conditions

    def selects_packet_flags(self, tcp_flags: int) -> bool:
        """:meth:`selects_packet` of a :attr:`flags_only` header, from the flags value alone."""
        flags = self.flags
        return flags is None or flags.matches(tcp_flags)

    def selects_flow(self, pkt: Packet) -> bool:
        """The tests every packet of one flow direction answers alike: protocol, version, addresses, ports."""
        if self.proto >= 0 and pkt.proto not in (self.proto, self.alt_proto):
            return False
        if self.ip_version and pkt.ip_version != self.ip_version:
            return False
        if self.needs_l4 and pkt.proto not in (PROTO_UDP, PROTO_TCP):
            return False
        if self.sameip is not None and (pkt.src == pkt.dst) != self.sameip:
            return False
        if self._forward(pkt):
            return True
        return self.bidirectional and self._reverse(pkt)

    def selects_packet(self, pkt: Packet) -> bool:
        """The tests that change from packet to packet within a flow."""
        flags = self.flags
        if flags is not None and (pkt.proto != PROTO_TCP or not flags.matches(pkt.tcp_flags)):
            return False
        if self.icmp_type >= 0 and pkt.icmp_type != self.icmp_type:
            return False
        if self.icmp_code >= 0 and pkt.icmp_code != self.icmp_code:
            return False
        return all(_condition_holds(pkt, name, match) for name, match in self.conditions)

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


def _condition_holds(pkt: Packet, name: str, match: UintMatch) -> bool:
    if name in ("icmp_type", "icmp_code", "icmp_id", "icmp_seq") and pkt.icmp_type < 0:
        return False  # not ICMP: Suricata's itype/icode never match then
    if name in ("tcp_win", "tcp_seq", "tcp_ack") and pkt.proto != PROTO_TCP:
        return False
    return match.matches(packet_field(pkt, name))


def flow_selects(fm: FlowMatch, flow: Flow | None, to_server: bool) -> bool:
    """The rule's ``flow:`` options: direction, established state, reassembled fragment."""
    if fm.to_server is not None and fm.to_server != to_server:
        return False
    return fm.established is None or (flow is not None and flow.pkt_established) == fm.established


def frag_selects(fm: FlowMatch, pkt: Packet) -> bool:
    return fm.frag is None or (pkt.frag == FRAG_REASSEMBLED) == fm.frag
