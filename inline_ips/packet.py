"""The decoded view of one packet: addresses, ports, flags and payload slices.

A :class:`Packet` is filled by :mod:`inline_ips.decode` straight from the IP
datagram's bytes (no Scapy) and read by the flow and detect stages. It holds
numbers and byte slices only; formatting for humans (``addr_str``) happens at
the edges, in output. Application-layer fields (HTTP, DNS, TLS) are attached
later by the engine, because HTTP needs the flow's stream to be complete.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inline_ips.decode.dns import DnsMessage
    from inline_ips.decode.http import HttpRequest

# IP protocol numbers the engine knows by name.
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

PROTO_NAMES = {PROTO_ICMP: "ICMP", PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMPV6: "IPv6-ICMP"}

# TCP flag bits.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# Fragment state of a packet.
FRAG_NONE = 0  # an ordinary datagram
FRAG_PIECE = 1  # one fragment; L4 fields are absent unless it is the first
FRAG_REASSEMBLED = 2  # the datagram rebuilt from its fragments


class Packet:
    """One decoded IP datagram.

    Integer fields default to 0 (``icmp_type``/``icmp_code`` to -1) when the
    layer is absent or truncated. ``error`` names the first decode anomaly
    (for example ``"tcp_truncated"``; see ``decode.DECODE_ERRORS``); decoding stops there and keeps
    what it already has.
    """

    __slots__ = (
        "dns",
        "dport",
        "dst",
        "error",
        "flow_label",
        "frag",
        "frag_offset",
        "http",
        "icmp_code",
        "icmp_id",
        "icmp_seq",
        "icmp_type",
        "ip_id",
        "ip_len",
        "ip_version",
        "l4_offset",
        "more_frags",
        "payload",
        "payload_offset",
        "proto",
        "raw",
        "sport",
        "src",
        "tcp_ack",
        "tcp_flags",
        "tcp_mss",
        "tcp_seq",
        "tcp_urp",
        "tcp_win",
        "tls_sni",
        "tos",
        "ts",
        "ttl",
        "udp_len",
    )

    def __init__(self, raw: bytes, ts: float) -> None:
        self.raw = raw
        self.ts = ts
        self.ip_version = 0
        self.src = 0
        self.dst = 0
        self.proto = -1
        self.ttl = 0
        self.tos = 0
        self.ip_id = 0
        self.ip_len = len(raw)
        self.flow_label = 0
        self.l4_offset = 0
        self.frag = FRAG_NONE
        self.frag_offset = 0  # in bytes
        self.more_frags = False
        self.sport = 0
        self.dport = 0
        self.tcp_flags = 0
        self.tcp_seq = 0
        self.tcp_ack = 0
        self.tcp_win = 0
        self.tcp_urp = 0
        self.tcp_mss = 0
        self.icmp_type = -1
        self.icmp_code = -1
        self.icmp_id = 0
        self.icmp_seq = 0
        self.udp_len = 0
        self.payload_offset = 0
        self.payload: bytes = b""
        self.error: str | None = None
        self.http: HttpRequest | None = None
        self.dns: DnsMessage | None = None
        self.tls_sni: str | None = None

    @property
    def src_str(self) -> str:
        return addr_str(self.ip_version, self.src)

    @property
    def dst_str(self) -> str:
        return addr_str(self.ip_version, self.dst)

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def __repr__(self) -> str:
        return (
            f"Packet(v{self.ip_version} {self.proto_name} {self.src_str}:{self.sport} -> "
            f"{self.dst_str}:{self.dport} flags={self.tcp_flags:#x} len={len(self.raw)} "
            f"payload={len(self.payload)} error={self.error})"
        )


def addr_str(version: int, addr: int) -> str:
    """Format an address held as an integer, as Suricata prints it."""
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))
    return socket.inet_ntop(socket.AF_INET, (addr & 0xFFFFFFFF).to_bytes(4, "big"))
