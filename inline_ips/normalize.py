"""Traffic normalisation: byte changes that take evasion tricks away, as a rewrite.

Two normalisations, both off unless ``normalize:`` in rules.yaml asks for them
(Snort's normalizer has the same two):

- ``tcp_mss_max``: a SYN or SYN-ACK announcing a larger MSS has it lowered, so
  segments fit a tunnel or VPN path that would otherwise fragment or drop them;
- ``ttl_min`` / ``ttl_set``: a packet arriving with a TTL (hop limit) below
  ``ttl_min`` leaves with ``ttl_set``, so an attacker cannot craft packets the
  IPS inspects but that die before the victim.

The result is a list of (offset, new bytes) replacements for the verdict;
``respond/rewrite`` applies them and fixes checksums. Pure: nothing here
touches the packet bytes or the outside world.
"""

from __future__ import annotations

from dataclasses import dataclass

from inline_ips.packet import PROTO_TCP, SYN, Packet

_MSS = 2


@dataclass(frozen=True, slots=True)
class Normalize:
    tcp_mss_max: int = 0  # 0: leave MSS alone
    ttl_min: int = 0  # 0: leave TTL alone
    ttl_set: int = 64

    @property
    def active(self) -> bool:
        return self.tcp_mss_max > 0 or self.ttl_min > 0


def replacements(n: Normalize, pkt: Packet) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    if n.ttl_min and pkt.ttl < n.ttl_min and pkt.ip_version in (4, 6):
        out.append((8 if pkt.ip_version == 4 else 7, bytes((n.ttl_set,))))
    if n.tcp_mss_max and pkt.proto == PROTO_TCP and pkt.tcp_flags & SYN and pkt.tcp_mss > n.tcp_mss_max:
        off = _mss_offset(pkt)
        if off >= 0:
            out.append((off, n.tcp_mss_max.to_bytes(2, "big")))
    return out


def _mss_offset(pkt: Packet) -> int:
    """Offset of the MSS option's value in the datagram, or -1."""
    raw = pkt.raw
    l4 = pkt.l4_offset
    stop = min(pkt.payload_offset, len(raw))
    opt = l4 + 20
    while opt < stop:
        kind = raw[opt]
        if kind == 0:
            return -1
        if kind == 1:
            opt += 1
            continue
        if opt + 1 >= stop or raw[opt + 1] < 2:
            return -1
        if kind == _MSS and raw[opt + 1] == 4 and opt + 4 <= stop:
            return opt + 2
        opt += raw[opt + 1]
    return -1
