"""Reject replies: TCP resets and ICMP port-unreachable messages for dropped packets.

Does: :func:`build_rejects` turns the IP datagram of a packet that was
rejected into the datagrams that tell both ends, the way Suricata's
``reject`` does:

* TCP: a RST to the sender, spoofed from the receiver (RFC 793 reset
  generation: ``seq`` = the packet's ACK number when ACK is set, otherwise
  ``seq`` 0 with RST|ACK acknowledging ``seq + len`` where SYN and FIN count
  one each), and a RST to the receiver, spoofed from the sender, with
  ``seq`` = the packet's own sequence number. The receiver never got the
  dropped segment, so that is its RCV.NXT; Linux (RFC 5961) resets only on an
  exact match and answers any other in-window RST with a challenge ACK, which
  is why ``seq + payload length`` would not do (Suricata uses the packet's
  sequence number too).
* UDP and every other protocol: ICMP destination unreachable / port
  unreachable (ICMPv6 type 1 code 4 for IPv6) to the sender, quoting the
  offending datagram (up to 576 bytes in all for ICMP, RFC 1812; up to the
  1280-byte minimum MTU for ICMPv6, RFC 4443). It comes from the original
  destination unless ``icmp_src`` names the router's own address.

Nothing is built (an empty list) where RFC 1122 / RFC 4443 forbid a reply
or there is no connection to reset: in answer to a RST, to an ICMP error, to
a non-first fragment, to multicast or broadcast destinations, or to
unspecified / multicast sources. Packets are built with Scapy: this runs only
for rejected packets, never on the per-packet path.

:class:`Rejecter` sends them through raw sockets (IPv4 ``IPPROTO_RAW`` with
``IP_HDRINCL``, IPv6 ``IPPROTO_RAW``, which also takes the whole header) in
the caller's network namespace, behind a token bucket: an attacker who
triggers reject rules must not turn the router into a packet amplifier, so
sends beyond ``rate_per_second`` (with ``burst`` in hand) are refused and
counted. Replies leave through the OUTPUT chain, so they are not queued back
to the engine by a FORWARD rule. It is not thread-safe: one per worker.

Does not: decide whether to reject (rules do), drop the original packet
(the verdict does), or retry failed sends.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import decode
from inline_ips.packet import (
    ACK,
    FIN,
    FRAG_PIECE,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    RST,
    SYN,
    Packet,
    addr_str,
)

__all__ = ["Rejecter", "build_rejects"]

REPLY_TTL = 64
ICMP_MAX = 576  # RFC 1812 4.3.2.3: an ICMPv4 error datagram is at most 576 bytes
ICMPV6_MAX = 1280  # RFC 4443 2.4(c): as much as fits the IPv6 minimum MTU
_ICMP_UNREACH, _ICMP_PORT_UNREACH = 3, 3
_ICMPV6_PORT_UNREACH = 4
# ICMPv4 error types (RFC 1122 3.2.2: never answer an error with an error).
_ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
_ICMP_INFO_MAX = 18  # unknown types above this are not answered either (as Linux)
_ICMPV6_INFO_MIN = 128  # ICMPv6 types below 128 are errors


def _v4_unusable(addr: int) -> bool:
    """0.0.0.0/8, multicast, reserved and limited broadcast (224.0.0.0 and up)."""
    return addr >> 24 == 0 or addr >> 28 >= 0xE


def _v6_unusable(addr: int) -> bool:
    """The unspecified address and multicast (ff00::/8)."""
    return addr == 0 or addr >> 120 == 0xFF


def _no_reply(pkt: Packet) -> bool:
    if pkt.ip_version == 4:
        if _v4_unusable(pkt.src) or _v4_unusable(pkt.dst):
            return True
        if pkt.proto == PROTO_ICMP and (pkt.icmp_type in _ICMP_ERRORS or pkt.icmp_type > _ICMP_INFO_MAX):
            return True
    elif pkt.ip_version == 6:
        if _v6_unusable(pkt.src) or _v6_unusable(pkt.dst):
            return True
        if pkt.proto == PROTO_ICMPV6 and 0 <= pkt.icmp_type < _ICMPV6_INFO_MIN:
            return True
    else:
        return True
    # No reply to a non-first fragment (RFC 1122 3.2.2, RFC 4443 2.4(e)); it also has no L4 header.
    return pkt.frag == FRAG_PIECE and pkt.frag_offset > 0


def _ip(version: int, src: str, dst: str) -> ScapyPacket:
    if version == 4:
        return IP(src=src, dst=dst, ttl=REPLY_TTL, id=0)  # id 0: the kernel picks one on send
    return IPv6(src=src, dst=dst, hlim=REPLY_TTL)


def build_rejects(raw: bytes, icmp_src: str | None = None) -> list[bytes]:
    """The datagrams that reject ``raw``: two RSTs for TCP, one ICMP unreachable otherwise.

    ``icmp_src`` is the source address for ICMP replies (for example the
    router's address toward the sender); by default the original destination.
    Returns an empty list when no reply is allowed or possible.
    """
    pkt = decode(raw, 0.0)
    if pkt.proto < 0 or _no_reply(pkt):
        return []
    version = pkt.ip_version
    src, dst = addr_str(version, pkt.src), addr_str(version, pkt.dst)
    if pkt.proto == PROTO_TCP:
        if pkt.payload_offset == 0 or pkt.tcp_flags & RST:
            return []  # cut-short header, or a RST: never answer a reset
        flags = pkt.tcp_flags
        if flags & ACK:
            to_sender = TCP(sport=pkt.dport, dport=pkt.sport, flags="R", seq=pkt.tcp_ack, ack=0, window=0)
        else:
            seg_len = len(pkt.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            ack = (pkt.tcp_seq + seg_len) & 0xFFFFFFFF
            to_sender = TCP(sport=pkt.dport, dport=pkt.sport, flags="RA", seq=0, ack=ack, window=0)
        to_receiver = TCP(sport=pkt.sport, dport=pkt.dport, flags="R", seq=pkt.tcp_seq, ack=0, window=0)
        return [bytes(_ip(version, dst, src) / to_sender), bytes(_ip(version, src, dst) / to_receiver)]
    end = min(len(raw), pkt.ip_len) if pkt.ip_len else len(raw)
    reply_src = icmp_src or dst
    if version == 4:
        quote = raw[: min(end, ICMP_MAX - 28)]
        reply = _ip(4, reply_src, src) / ICMP(type=_ICMP_UNREACH, code=_ICMP_PORT_UNREACH) / Raw(quote)
    else:
        quote = raw[: min(end, ICMPV6_MAX - 48)]
        reply = _ip(6, reply_src, src) / ICMPv6DestUnreach(code=_ICMPV6_PORT_UNREACH) / Raw(quote)
    return [bytes(reply)]


class Rejecter:
    """Sends reject replies through raw sockets, rate-limited by a token bucket.

    Each datagram sent costs one token; tokens come back at ``rate_per_second``
    up to ``burst``. A reject that does not have tokens for all its datagrams
    sends none of them (half a reset pair is of little use) and is counted in
    ``stats["refused"]``. ``clock`` (monotonic seconds) and ``transmit`` (takes
    one datagram) are injectable for tests; by default the system clock and
    raw sockets, opened on first use, are used.
    """

    def __init__(
        self,
        rate_per_second: float = 100.0,
        burst: int = 200,
        *,
        icmp_src: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        transmit: Callable[[bytes], None] | None = None,
    ) -> None:
        if rate_per_second < 0 or burst < 1:
            raise ValueError("reject rate must be >= 0 and burst >= 1")
        self.rate = float(rate_per_second)
        self.burst = burst
        self.icmp_src = icmp_src
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._transmit = transmit or self._send_raw
        self._socks: dict[int, socket.socket] = {}
        self.stats: dict[str, int] = {
            "requests": 0,  # send() calls
            "sent": 0,  # datagrams handed to the kernel
            "refused": 0,  # requests refused by the rate limit
            "unanswerable": 0,  # requests for which no reply is allowed
            "send_errors": 0,  # datagrams the kernel would not take
        }

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:  # a clock that steps back gives nothing and takes nothing
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        return self._tokens

    def send(self, raw: bytes) -> int:
        """Reject the datagram ``raw``; returns how many reply datagrams were sent."""
        self.stats["requests"] += 1
        # Check for a token before building: building with Scapy is the expensive part,
        # and a flood of rejected packets must not cost more than the rate allows.
        if self._refill() < 1:
            self.stats["refused"] += 1
            return 0
        replies = build_rejects(raw, self.icmp_src)
        if not replies:
            self.stats["unanswerable"] += 1
            return 0
        if self._tokens < len(replies):
            self.stats["refused"] += 1
            return 0
        self._tokens -= len(replies)
        sent = 0
        for data in replies:
            try:
                self._transmit(data)
            except OSError:
                self.stats["send_errors"] += 1
                continue
            sent += 1
        self.stats["sent"] += sent
        return sent

    def _send_raw(self, data: bytes) -> None:
        version = data[0] >> 4
        sock = self._socks.get(version)
        if version == 4:
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                self._socks[4] = sock
            sock.sendto(data, (socket.inet_ntop(socket.AF_INET, data[16:20]), 0))
        else:
            if sock is None:
                # IPv6 has no IP_HDRINCL; IPPROTO_RAW implies it: the header is ours.
                sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._socks[6] = sock
            sock.sendto(data, (socket.inet_ntop(socket.AF_INET6, data[24:40]), 0))

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()

    def __enter__(self) -> Rejecter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
