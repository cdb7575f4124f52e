"""TCP checksum verification over IPv4 and IPv6, for Suricata's ``checksum-checks``.

Does: verify a decoded TCP segment's checksum with its pseudo-header, using
one big-integer reduction instead of a Python loop over 16-bit words (the
ones'-complement sum of the words is congruent to the whole byte string, read
as one number, modulo 0xFFFF). Suricata's stream engine ignores a segment
whose checksum does not verify (when checks are on), so a forged segment with
a bad checksum, which the receiving host would also drop, cannot feed
reassembly or the application parsers.

Only a complete segment is judged: one whose datagram is all there (its IP
length equals the bytes held), that is not a fragment (the checksum covers the
whole datagram; the reassembled one is judged instead), and whose TCP header
decoded. A bad TCP option does not exempt a segment. Anything else verifies
as True, since a checksum over missing bytes says nothing. The IPv6
pseudo-header uses the header's destination, as Suricata does, even when a
routing header names another final destination.

Does not: verify IPv4 header, UDP or ICMP checksums (Suricata does not on its
normal path either), or decide what to do about a bad one (the engine does).
Inline, checksums are not checked by default: the kernel hands NFQUEUE
segments whose checksum the NIC has yet to fill in.
"""

from __future__ import annotations

from inline_ips.packet import FRAG_PIECE, PROTO_TCP, Packet


def tcp_checksum_ok(pkt: Packet) -> bool:
    """True when ``pkt`` is not a complete TCP segment, or its checksum verifies."""
    raw = pkt.raw
    if (
        pkt.proto != PROTO_TCP
        or pkt.payload_offset == 0
        or pkt.frag == FRAG_PIECE
        or pkt.ip_len != len(raw)
        or pkt.ip_version not in (4, 6)
    ):
        return True
    seg = raw[pkt.l4_offset :]
    n = len(seg)
    if pkt.ip_version == 4:
        pseudo = raw[12:20] + bytes((0, PROTO_TCP)) + n.to_bytes(2, "big")
    else:
        pseudo = raw[8:40] + n.to_bytes(4, "big") + bytes((0, 0, 0, PROTO_TCP))
    data = pseudo + seg
    if n & 1:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF == 0
