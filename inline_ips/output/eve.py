"""Suricata-compatible EVE JSON events, and a line writer for them.

The ``*_event`` functions turn what the engine decided about one packet into
the dicts Suricata would log for it (``alert``, ``drop`` and ``stats`` event
types), so the tools operators already point at eve.json (Filebeat's
Suricata module, EveBox, Logstash pipelines) read them unchanged. Every field
they emit is one that Suricata's EVE JSON schema allows; the tests validate
the output against that schema. :class:`EveWriter` appends events to a file
(or stdout) as one compact JSON object per line and can reopen the file after
logrotate moved it.

Choices that differ from a stock Suricata:

* Timestamps are always UTC (``+0000``), whatever the host's time zone, so
  the same pcap gives the same log everywhere. Suricata uses local time.
* ``dns`` records use Suricata 8's version 3 layout (``queries`` array),
  which is the only one the schema allows inside alerts.

It does not build ``flow``, ``anomaly``, ``http`` or ``dns`` event types, the
``flow`` and ``verdict`` objects of alerts, payload/packet dumps,
``community_id`` or rule ``references``; it does not rotate files itself,
create directories, or talk to syslog, sockets or redis. The formatting
functions do no I/O.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from inline_ips.packet import FRAG_PIECE, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from inline_ips.verdict import Action

if TYPE_CHECKING:
    from inline_ips.decode.dns import DnsMessage
    from inline_ips.decode.http import HttpRequest
    from inline_ips.packet import Packet
    from inline_ips.verdict import Alert, Verdict

__all__ = [
    "EveOutputError",
    "EveWriter",
    "alert_event",
    "dns_rrtype_name",
    "drop_event",
    "eve_timestamp",
    "stats_event",
]

PKT_SRC_WIRE = "wire/pcap"

# DNS RR type names as Suricata logs them (rust/src/dns/log.rs); others are the number.
_RRTYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAPPTR", 24: "SIG",
    25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS",
    44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 55: "HIP", 59: "CDS", 60: "CDNSKEY",
    64: "SVCB", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA",
}  # fmt: skip

_RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip

# The stats counters the schema knows, as dotted paths under ``stats``. The
# schema closes every stats object (additionalProperties false), so a counter
# outside this set would make the whole event invalid: stats_event drops it.
_IPS_DROP_REASONS = (
    "applayer_error", "applayer_memcap", "decode_error", "defrag_error", "defrag_memcap",
    "exception_policy_flow_drop", "flow_drop", "flow_memcap", "nfq_error", "rules",
    "stream_error", "stream_memcap", "stream_midstream", "stream_reassembly", "stream_urgent",
    "threshold_detection_filter", "tunnel_packet_drop",
)  # fmt: skip
STATS_COUNTERS: frozenset[str] = frozenset(
    [
        "uptime",
        *(
            f"decoder.{k}"
            for k in (
                "pkts", "bytes", "invalid", "ipv4", "ipv6", "ethernet", "null", "raw", "sll",
                "sll2", "vlan", "vlan_qinq", "vlan_qinqinq", "tcp", "udp", "icmpv4", "icmpv6",
                "unknown_ethertype", "avg_pkt_size", "max_pkt_size", "too_many_layers",
            )
        ),
        *(f"detect.{k}" for k in ("alert", "alert_queue_overflow", "alerts_suppressed")),
        *(f"ips.{k}" for k in ("accepted", "blocked", "rejected", "replaced")),
        *(f"ips.drop_reason.{k}" for k in _IPS_DROP_REASONS),
        *(f"flow.{k}" for k in ("total", "active", "tcp", "udp", "icmpv4", "icmpv6", "memuse", "memcap")),
        *(f"defrag.{v}.{k}" for v in ("ipv4", "ipv6") for k in ("fragments", "reassembled", "timeouts")),
        *(f"defrag.{k}" for k in ("max_frags_reached", "max_trackers_reached", "memuse")),
        *(f"tcp.{k}" for k in ("sessions", "active_sessions", "syn", "synack", "rst", "midstream_pickups")),
        *(f"capture.{k}" for k in ("kernel_packets", "kernel_drops", "errors")),
    ]
)  # fmt: skip


class EveOutputError(OSError):
    """The EVE log cannot be opened or written; the message names the path and the cause."""


def eve_timestamp(ts: float) -> str:
    """Format epoch seconds as Suricata does, in UTC: ``2026-11-22T05:54:01.123456+0000``."""
    # Round to whole microseconds once, in integers, so .9999996 carries into the seconds
    # instead of printing a seventh digit or a wrong second.
    usec_total = round(ts * 1_000_000)
    sec, usec = divmod(usec_total, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(sec))}.{usec:06d}+0000"


def dns_rrtype_name(rrtype: int) -> str:
    """The name Suricata logs for a DNS RR type, or the number as text."""
    return _RRTYPE_NAMES.get(rrtype) or str(rrtype)


def _has_l4(pkt: Packet) -> bool:
    # A non-first fragment carries no transport header: its ports are not ports.
    return not (pkt.frag == FRAG_PIECE and pkt.frag_offset > 0)


def _header(pkt: Packet, flow_id: int, event_type: str) -> dict[str, object]:
    ev: dict[str, object] = {
        "timestamp": eve_timestamp(pkt.ts),
        "flow_id": flow_id,
        "event_type": event_type,
        "src_ip": pkt.src_str,
    }
    ports = pkt.proto in (PROTO_TCP, PROTO_UDP) and _has_l4(pkt)
    if ports:
        ev["src_port"] = pkt.sport
    ev["dest_ip"] = pkt.dst_str
    if ports:
        ev["dest_port"] = pkt.dport
    ev["proto"] = pkt.proto_name
    if pkt.proto in (PROTO_ICMP, PROTO_ICMPV6) and pkt.icmp_type >= 0:
        ev["icmp_type"] = pkt.icmp_type
        ev["icmp_code"] = max(pkt.icmp_code, 0)
    ev["ip_v"] = pkt.ip_version
    ev["pkt_src"] = PKT_SRC_WIRE
    return ev


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _http_record(http: HttpRequest) -> dict[str, object]:
    # Suricata leaves out headers the request did not have; the decoder gives b"" for those.
    rec: dict[str, object] = {}
    if http.host:
        rec["hostname"] = _text(http.host)
    rec["url"] = _text(http.uri_raw)
    if http.user_agent:
        rec["http_user_agent"] = _text(http.user_agent)
    rec["http_method"] = _text(http.method)
    if http.version:  # HTTP/0.9 requests have none
        rec["protocol"] = _text(http.version)
    return rec


def _dns_record(dns: DnsMessage) -> dict[str, object]:
    # Suricata 8 (EVE DNS v3) logs the same layout in alerts and dns events; the schema
    # requires "version" and keeps the v2 "query" array for dns events only.
    rec: dict[str, object] = {
        "version": 3,
        "type": "response" if dns.is_response else "request",
        "id": dns.id,
    }
    if dns.is_response:
        rec["qr"] = True
    rec["opcode"] = dns.opcode
    rec["rcode"] = _RCODE_NAMES.get(dns.rcode) or str(dns.rcode)
    if dns.qdcount:
        rec["queries"] = [{"rrname": dns.qname, "rrtype": dns_rrtype_name(dns.qtype)}]
    return rec


def alert_event(
    pkt: Packet,
    flow_id: int,
    to_server: bool,
    alert: Alert,
    blocked: bool,
    app_proto: str | None = None,
) -> dict[str, object]:
    """The EVE ``alert`` event for one rule firing on ``pkt``.

    ``blocked`` is the packet's final fate (``alert.action`` "blocked" or
    "allowed"), which may be stronger than what this rule asked for. A rule
    with ``target`` names the attacked end and the attacker (``alert.target``
    and ``alert.source``), as Suricata logs them. The
    ``http``, ``dns`` and ``tls`` records are added when the packet carries
    them.
    """
    ev = _header(pkt, flow_id, "alert")
    ev["direction"] = "to_server" if to_server else "to_client"
    if app_proto:
        ev["app_proto"] = app_proto
    rule: dict[str, object] = {
        "action": "blocked" if blocked else "allowed",
        "gid": alert.gid,
        "signature_id": alert.sid,
        "rev": alert.rev,
        "signature": alert.msg,
        "category": alert.category,
        "severity": alert.severity,
    }
    # The schema wants each metadata key to hold at least one value.
    metadata = {k: list(v) for k, v in alert.metadata.items() if v}
    if metadata:
        rule["metadata"] = metadata
    if alert.target:
        # Suricata's target keyword: which end is attacked (target) and which attacks (source).
        src = {"ip": pkt.src_str, **({"port": pkt.sport} if _has_l4(pkt) else {})}
        dst = {"ip": pkt.dst_str, **({"port": pkt.dport} if _has_l4(pkt) else {})}
        rule["source"], rule["target"] = (dst, src) if alert.target == "src_ip" else (src, dst)
    ev["alert"] = rule
    if pkt.http is not None:
        ev["http"] = _http_record(pkt.http)
    if pkt.dns is not None:
        ev["dns"] = _dns_record(pkt.dns)
    if pkt.tls_sni is not None:
        ev["tls"] = {"sni": pkt.tls_sni}
    return ev


def drop_event(pkt: Packet, flow_id: int, verdict: Verdict) -> dict[str, object]:
    """The EVE ``drop`` event for a packet the engine did not let through.

    The ``drop`` object follows Suricata's drop logger: IPv4 gives ``len``
    (total length), ``tos``, ``ttl``, ``ipid``; IPv6 gives ``len`` (payload
    length), ``tc``, ``hoplimit``, ``flowlbl``; then the TCP, UDP or ICMP
    header fields, and ``reason``. The top-level ``verdict`` says what was done
    (``reject`` lists the reply sent for REJECT). Raises ValueError for a
    verdict that lets the packet through: that is not a drop.
    """
    if not verdict.action.blocks:
        raise ValueError(f"drop_event for a verdict that does not drop: {verdict.action.name}")
    ev = _header(pkt, flow_id, "drop")
    drop: dict[str, object] = {}
    if pkt.ip_version == 6:
        drop["len"] = max(pkt.ip_len - 40, 0)
        drop["tc"] = pkt.tos
        drop["hoplimit"] = pkt.ttl
        drop["flowlbl"] = pkt.flow_label
    else:
        drop["len"] = pkt.ip_len
        drop["tos"] = pkt.tos
        drop["ttl"] = pkt.ttl
        drop["ipid"] = pkt.ip_id
    if _has_l4(pkt):
        if pkt.proto == PROTO_TCP:
            flags = pkt.tcp_flags
            drop["tcpseq"] = pkt.tcp_seq
            drop["tcpack"] = pkt.tcp_ack
            drop["tcpwin"] = pkt.tcp_win
            drop["syn"] = bool(flags & 0x02)
            drop["ack"] = bool(flags & 0x10)
            drop["psh"] = bool(flags & 0x08)
            drop["rst"] = bool(flags & 0x04)
            drop["urg"] = bool(flags & 0x20)
            drop["fin"] = bool(flags & 0x01)
            drop["tcpres"] = _tcp_reserved(pkt)
            drop["tcpurgp"] = pkt.tcp_urp
        elif pkt.proto == PROTO_UDP:
            drop["udplen"] = pkt.udp_len
        elif pkt.proto in (PROTO_ICMP, PROTO_ICMPV6):
            drop["icmp_id"] = pkt.icmp_id
            drop["icmp_seq"] = pkt.icmp_seq
    drop["reason"] = verdict.reason.value
    ev["drop"] = drop
    ev["verdict"] = _verdict_record(pkt, verdict)
    return ev


def _tcp_reserved(pkt: Packet) -> int:
    # The Packet keeps the flags byte only; the reserved bits (Suricata's "x2") sit in
    # the low nibble of the data-offset byte, 12 bytes into the TCP header.
    at = pkt.l4_offset + 12
    return pkt.raw[at] & 0x0F if pkt.l4_offset and at < len(pkt.raw) else 0


def _verdict_record(pkt: Packet, verdict: Verdict) -> dict[str, object]:
    rec: dict[str, object] = {"action": "drop"}
    if verdict.action == Action.REJECT:
        rec["reject_target"] = "both"
        rec["reject"] = ["tcp-reset" if pkt.proto == PROTO_TCP else "icmp-prohib"]
    return rec


def stats_event(ts: float, counters: Mapping[str, object]) -> dict[str, object]:
    """An EVE ``stats`` event from dotted counter names.

    ``counters`` maps names such as ``"uptime"``, ``"decoder.pkts"``,
    ``"detect.alert"``, ``"ips.blocked"`` or ``"ips.drop_reason.rules"`` to
    integers. Names outside :data:`STATS_COUNTERS` and values that are not
    integers are left out, because the schema rejects any unknown key.
    """
    stats: dict[str, Any] = {}
    for name in sorted(counters):
        value = counters[name]
        if name not in STATS_COUNTERS or not isinstance(value, int) or isinstance(value, bool):
            continue
        *parents, leaf = name.split(".")
        node = stats
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return {"timestamp": eve_timestamp(ts), "event_type": "stats", "stats": stats}


class EveWriter:
    """Append EVE events to a file, one compact JSON object per line.

    ``path`` "-" writes to stdout (which ``close`` leaves open). Writes are
    buffered: call :meth:`flush` when the log must be current (for example
    once per batch of packets). The file is opened with ``O_APPEND`` and the
    buffer is only ever written out in whole lines, one ``write(2)`` per
    flush, so several writers (worker processes, the stats logger) can share
    one file without tearing each other's lines. A new file is created
    ``0640``: alerts name hosts and URLs, which other local users need not
    read. Not thread-safe. For logrotate, call :meth:`reopen`, or
    :meth:`request_reopen` from a SIGHUP handler, which only sets a flag that
    the next :meth:`write` acts on.
    """

    BUFFER_SIZE = 64 * 1024
    FILE_MODE = 0o640

    def __init__(self, path: str | Path) -> None:
        self.path = path if path == "-" else Path(path)
        self._reopen_requested = False
        self._buf: list[bytes] = []
        self._size = 0
        self._fd: int | None = self._open()

    def _open(self) -> int:
        if self.path == "-":
            return -1  # stdout, through sys.stdout (so redirections of it are honoured)
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.FILE_MODE)
        except OSError as e:
            raise self._fail("open", e) from e

    def _fail(self, doing: str, e: OSError) -> EveOutputError:
        message = f"cannot {doing} EVE log {self.path}: {e.strerror or e}"
        # With an errno, OSError's str() is "[Errno n] message" and callers can test .errno.
        return EveOutputError(e.errno, message) if e.errno is not None else EveOutputError(message)

    def write(self, event: Mapping[str, object]) -> None:
        """Append one event as a JSON line."""
        if self._reopen_requested:
            self.reopen()
        if self._fd is None:
            raise EveOutputError(f"EVE log {self.path} is closed")
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        self._buf.append(line)
        self._size += len(line)
        if self._size >= self.BUFFER_SIZE:
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the operating system."""
        if self._fd is None or not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        if self._fd < 0:
            sys.stdout.write(data.decode())
            sys.stdout.flush()
            return
        view = memoryview(data)
        try:
            while view:
                # A regular file takes it in one piece; a short write (disk nearly full) is continued.
                view = view[os.write(self._fd, view) :]
        except OSError as e:
            raise self._fail("write", e) from e

    def request_reopen(self) -> None:
        """Ask for :meth:`reopen` at the next write; safe to call from a signal handler."""
        self._reopen_requested = True

    def reopen(self) -> None:
        """Flush, close and reopen the path, so writes go to a fresh file after logrotate moved the old one.

        The new file is opened before the old one is closed: if that fails,
        the error is raised and the writer keeps appending to the old file.
        """
        self._reopen_requested = False
        self.flush()
        if self.path == "-":
            return
        new = self._open()
        old, self._fd = self._fd, new
        if old is not None and old >= 0:
            try:
                os.close(old)
            except OSError as e:
                raise self._fail("close old", e) from e

    def close(self) -> None:
        """Flush and close the file (stdout is only flushed)."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            fd, self._fd = self._fd, None
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as e:
                    raise self._fail("close", e) from e

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> EveWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
