"""Tests for inline_ips.output.eve: event shapes, Suricata's schema, and the line writer."""

from __future__ import annotations

import calendar
import errno
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inline_ips.decode.dns import DnsMessage
from inline_ips.decode.http import HttpRequest
from inline_ips.output.eve import (
    STATS_COUNTERS,
    EveOutputError,
    EveWriter,
    alert_event,
    dns_rrtype_name,
    drop_event,
    eve_timestamp,
    stats_event,
)
from inline_ips.packet import (
    ACK,
    FIN,
    FRAG_PIECE,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    PSH,
    RST,
    SYN,
    URG,
    Packet,
)
from inline_ips.verdict import Action, Alert, Reason, Verdict

SCHEMA_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "eve-schema" / "schema.json"
TS = 1700000000.123456  # 2023-11-14T22:13:20.123456Z


@pytest.fixture(scope="module")
def validate() -> Callable[[dict[str, object]], None]:
    """Validate one event against Suricata's EVE schema (after a JSON round trip)."""
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"Suricata EVE schema not found at {SCHEMA_PATH} (corpus absent)")
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    # The schema does not declare its draft; it uses "$defs", which 2019-09 introduced
    # and 2020-12 kept, so the newest validator reads it as its authors meant.
    assert "$schema" not in schema
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    def check(event: dict[str, object]) -> None:
        wire = json.loads(json.dumps(event, separators=(",", ":")))
        errors = sorted(validator.iter_errors(wire), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)

    return check


# -- packets built by hand (the decoder is tested elsewhere) -----------------------------------


def v4(a: str) -> int:
    return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")


def tcp4(flags: int = SYN, sport: int = 51000, dport: int = 80, ts: float = TS) -> Packet:
    # A real IPv4+TCP header, so the reserved bits can be read back from the raw bytes.
    raw = bytearray(40)
    raw[0], raw[9] = 0x45, PROTO_TCP
    raw[20 + 12] = (5 << 4) | 0b0101  # data offset 5, reserved bits 0101
    raw[20 + 13] = flags
    pkt = Packet(bytes(raw), ts)
    pkt.ip_version, pkt.proto = 4, PROTO_TCP
    pkt.src, pkt.dst = v4("192.0.2.10"), v4("198.51.100.20")
    pkt.ttl, pkt.tos, pkt.ip_id, pkt.ip_len, pkt.l4_offset = 64, 0x10, 4242, 40, 20
    pkt.sport, pkt.dport, pkt.tcp_flags = sport, dport, flags
    pkt.tcp_seq, pkt.tcp_ack, pkt.tcp_win, pkt.tcp_urp = 1000, 2000, 65535, 7
    return pkt


def tcp6(flags: int = SYN | ACK) -> Packet:
    pkt = Packet(bytes(60), TS)
    pkt.ip_version, pkt.proto = 6, PROTO_TCP
    pkt.src, pkt.dst = 0x20010DB8 << 96 | 1, 0x20010DB8 << 96 | 2
    pkt.ttl, pkt.tos, pkt.flow_label, pkt.ip_len, pkt.l4_offset = 57, 0xB8, 0xABCDE, 60, 40
    pkt.sport, pkt.dport, pkt.tcp_flags = 443, 50123, flags
    pkt.tcp_seq, pkt.tcp_ack, pkt.tcp_win = 1, 2, 3
    return pkt


def udp4(sport: int = 53124, dport: int = 53) -> Packet:
    pkt = Packet(bytes(60), TS)
    pkt.ip_version, pkt.proto = 4, PROTO_UDP
    pkt.src, pkt.dst = v4("10.0.0.5"), v4("10.0.0.53")
    pkt.ttl, pkt.ip_len, pkt.ip_id = 63, 60, 99
    pkt.sport, pkt.dport, pkt.udp_len = sport, dport, 40
    return pkt


def icmp4(itype: int = 8, code: int = 0) -> Packet:
    pkt = Packet(bytes(28), TS)
    pkt.ip_version, pkt.proto = 4, PROTO_ICMP
    pkt.src, pkt.dst = v4("10.0.0.128"), v4("10.0.0.1")
    pkt.ttl, pkt.ip_len, pkt.ip_id = 64, 28, 7
    pkt.icmp_type, pkt.icmp_code, pkt.icmp_id, pkt.icmp_seq = itype, code, 0x1234, 9
    return pkt


def icmp6() -> Packet:
    pkt = Packet(bytes(48), TS)
    pkt.ip_version, pkt.proto = 6, PROTO_ICMPV6
    pkt.src, pkt.dst = 0xFE80 << 112 | 1, 0xFF02 << 112 | 1
    pkt.ttl, pkt.ip_len = 255, 48
    pkt.icmp_type, pkt.icmp_code, pkt.icmp_id, pkt.icmp_seq = 128, 0, 1, 2
    return pkt


def fragment(offset: int) -> Packet:
    pkt = udp4()
    pkt.frag, pkt.frag_offset, pkt.more_frags = FRAG_PIECE, offset, True
    if offset:
        pkt.sport = pkt.dport = pkt.udp_len = 0
    return pkt


def with_http(
    pkt: Packet, host: bytes = b"dvwa.example", ua: bytes = b"curl/8.5", version: bytes = b"HTTP/1.1"
) -> Packet:
    pkt.http = HttpRequest(
        method=b"GET",
        uri_raw=b"/dvwa/vulnerabilities/sqli/?id=%27+or+%270%27%3D%270",
        uri=b"/dvwa/vulnerabilities/sqli/?id=' or '0'='0",
        version=version,
        host=host,
        user_agent=ua,
        headers=b"",
        header_list=(),
        body=b"",
        content_length=0,
        header_len=0,
    )
    return pkt


def with_dns(
    pkt: Packet, *, response: bool = False, qtype: int = 1, qdcount: int = 1, rcode: int = 0
) -> Packet:
    pkt.dns = DnsMessage(
        id=0x1A2B,
        is_response=response,
        opcode=0,
        rcode=rcode,
        qname="www.example.org" if qdcount else "",
        qtype=qtype if qdcount else 0,
        qdcount=qdcount,
        ancount=1 if response else 0,
        nscount=0,
        arcount=0,
        size=40,
    )
    return pkt


def with_sni(pkt: Packet, sni: str) -> Packet:
    pkt.tls_sni = sni
    return pkt


ALERT = Alert(
    sid=2100498,
    gid=1,
    rev=7,
    msg="GPL ATTACK_RESPONSE id check returned root",
    category="Potentially Bad Traffic",
    severity=2,
    action=Action.ACCEPT,
    metadata={"created_at": ["2010_09_23"], "updated_at": ["2019_07_26"], "empty": []},
)


# -- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (TS, "2023-11-14T22:13:20.123456+0000"),
        (0.0, "1970-01-01T00:00:00.000000+0000"),
        (calendar.timegm((2026, 11, 22, 5, 54, 1)) + 0.123456, "2026-11-22T05:54:01.123456+0000"),
        # Rounding to microseconds carries into the seconds instead of printing .1000000.
        (1.9999996, "1970-01-01T00:00:02.000000+0000"),
        (1.0000004, "1970-01-01T00:00:01.000000+0000"),
        (1700000000.5, "2023-11-14T22:13:20.500000+0000"),
    ],
)
def test_timestamp_format(ts: float, text: str) -> None:
    assert eve_timestamp(ts) == text
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d+", text)


def test_timestamp_ignores_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX form: needs no zoneinfo files
    time.tzset()
    try:
        assert eve_timestamp(TS) == "2023-11-14T22:13:20.123456+0000"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("rrtype", "name"),
    [(1, "A"), (28, "AAAA"), (255, "ANY"), (46, "RRSIG"), (48, "DNSKEY"), (65, "HTTPS"), (4242, "4242")],
)
def test_rrtype_names(rrtype: int, name: str) -> None:
    assert dns_rrtype_name(rrtype) == name


# -- alert events ---------------------------------------------------------------------------

ALERT_CASES: list[tuple[str, Callable[[], Packet], bool, bool, str | None, dict[str, Any]]] = [
    # id, packet factory, to_server, blocked, app_proto, expected fields (a subset, compared exactly)
    (
        "tcp-allowed",
        tcp4,
        True,
        False,
        None,
        {
            "timestamp": "2023-11-14T22:13:20.123456+0000",
            "flow_id": 1234567890123,
            "event_type": "alert",
            "src_ip": "192.0.2.10",
            "src_port": 51000,
            "dest_ip": "198.51.100.20",
            "dest_port": 80,
            "proto": "TCP",
            "ip_v": 4,
            "pkt_src": "wire/pcap",
            "direction": "to_server",
            "alert": {
                "action": "allowed",
                "gid": 1,
                "signature_id": 2100498,
                "rev": 7,
                "signature": "GPL ATTACK_RESPONSE id check returned root",
                "category": "Potentially Bad Traffic",
                "severity": 2,
                "metadata": {"created_at": ["2010_09_23"], "updated_at": ["2019_07_26"]},
            },
        },
    ),
    ("tcp-blocked", lambda: tcp4(ACK | PSH), False, True, None, {"direction": "to_client"}),
    (
        "ipv6-tcp",
        tcp6,
        False,
        True,
        None,
        {"src_ip": "2001:db8::1", "dest_ip": "2001:db8::2", "src_port": 443, "ip_v": 6, "proto": "TCP"},
    ),
    (
        "icmp",
        lambda: icmp4(8, 0),
        True,
        False,
        None,
        {"proto": "ICMP", "icmp_type": 8, "icmp_code": 0, "src_ip": "10.0.0.128"},
    ),
    (
        "icmpv6",
        icmp6,
        True,
        False,
        None,
        {"proto": "IPv6-ICMP", "icmp_type": 128, "icmp_code": 0, "ip_v": 6, "dest_ip": "ff02::1"},
    ),
    (
        "dns-query",
        lambda: with_dns(udp4()),
        True,
        False,
        "dns",
        {
            "proto": "UDP",
            "app_proto": "dns",
            "dest_port": 53,
            "dns": {
                "version": 3,
                "type": "request",
                "id": 0x1A2B,
                "opcode": 0,
                "rcode": "NOERROR",
                "queries": [{"rrname": "www.example.org", "rrtype": "A"}],
            },
        },
    ),
    (
        "dns-response-any",
        lambda: with_dns(udp4(53, 53124), response=True, qtype=255, rcode=3),
        False,
        True,
        "dns",
        {
            "dns": {
                "version": 3,
                "type": "response",
                "id": 0x1A2B,
                "qr": True,
                "opcode": 0,
                "rcode": "NXDOMAIN",
                "queries": [{"rrname": "www.example.org", "rrtype": "ANY"}],
            },
        },
    ),
    (
        "dns-response-no-question",
        lambda: with_dns(udp4(53, 53124), response=True, qdcount=0, rcode=2),
        False,
        False,
        "dns",
        {
            "dns": {
                "version": 3,
                "type": "response",
                "id": 0x1A2B,
                "qr": True,
                "opcode": 0,
                "rcode": "SERVFAIL",
            }
        },
    ),
    (
        "http",
        lambda: with_http(tcp4(ACK | PSH)),
        True,
        True,
        "http",
        {
            "app_proto": "http",
            "http": {
                "hostname": "dvwa.example",
                "url": "/dvwa/vulnerabilities/sqli/?id=%27+or+%270%27%3D%270",
                "http_user_agent": "curl/8.5",
                "http_method": "GET",
                "protocol": "HTTP/1.1",
            },
        },
    ),
    (
        "http-0.9-no-host-bad-utf8",
        lambda: with_http(tcp4(ACK | PSH), host=b"", ua=b"\xff\xfebot", version=b""),
        True,
        False,
        "http",
        {
            "http": {
                "url": "/dvwa/vulnerabilities/sqli/?id=%27+or+%270%27%3D%270",
                "http_user_agent": "\ufffd\ufffdbot",
                "http_method": "GET",
            },
        },
    ),
    (
        "tls",
        lambda: with_sni(tcp4(ACK | PSH, dport=443), "evil.example.com"),
        True,
        True,
        "tls",
        {"app_proto": "tls", "tls": {"sni": "evil.example.com"}, "dest_port": 443},
    ),
    (
        "first-fragment-keeps-ports",
        lambda: fragment(0),
        True,
        False,
        None,
        {"src_port": 53124, "dest_port": 53},
    ),
]


@pytest.mark.parametrize(
    ("make", "flags", "expected"),
    [(case[1], case[2:5], case[5]) for case in ALERT_CASES],
    ids=[case[0] for case in ALERT_CASES],
)
def test_alert_event(
    validate: Callable[[dict[str, object]], None],
    make: Callable[[], Packet],
    flags: tuple[bool, bool, str | None],
    expected: dict[str, Any],
) -> None:
    to_server, blocked, app_proto = flags
    ev = alert_event(make(), 1234567890123, to_server, ALERT, blocked, app_proto)
    validate(ev)
    for key, value in expected.items():
        assert ev[key] == value, key
    rule = ev["alert"]
    assert isinstance(rule, dict)
    assert rule["action"] == ("blocked" if blocked else "allowed")
    assert ev["direction"] == ("to_server" if to_server else "to_client")
    if app_proto is None:
        assert "app_proto" not in ev


def test_alert_without_app_records_or_metadata(validate: Callable[[dict[str, object]], None]) -> None:
    alert = Alert(sid=1, gid=1, rev=1, msg="m", category="", severity=3, action=Action.DROP)
    ev = alert_event(tcp4(), 7, True, alert, True)
    validate(ev)
    assert not {"http", "dns", "tls", "app_proto", "icmp_type"} & set(ev)
    assert ev["alert"] == {
        "action": "blocked",
        "gid": 1,
        "signature_id": 1,
        "rev": 1,
        "signature": "m",
        "category": "",
        "severity": 3,
    }


@pytest.mark.parametrize(
    ("target", "source_end", "target_end"),
    [
        ("dest_ip", ("src_str", "sport"), ("dst_str", "dport")),
        ("src_ip", ("dst_str", "dport"), ("src_str", "sport")),
    ],
)
def test_alert_with_target_names_source_and_target(
    validate: Callable[[dict[str, object]], None],
    target: str,
    source_end: tuple[str, str],
    target_end: tuple[str, str],
) -> None:
    """Suricata's ``target`` keyword: the alert says which end is attacked."""
    pkt = tcp4()
    alert = Alert(sid=1, gid=1, rev=1, msg="m", category="", severity=3, action=Action.ACCEPT, target=target)
    ev = alert_event(pkt, 7, True, alert, False)
    validate(ev)
    rule = ev["alert"]
    assert isinstance(rule, dict)
    assert rule["source"] == {"ip": getattr(pkt, source_end[0]), "port": getattr(pkt, source_end[1])}
    assert rule["target"] == {"ip": getattr(pkt, target_end[0]), "port": getattr(pkt, target_end[1])}


def test_alert_on_later_fragment_has_no_ports(validate: Callable[[dict[str, object]], None]) -> None:
    ev = alert_event(fragment(1480), 1, True, ALERT, False)
    validate(ev)
    assert "src_port" not in ev
    assert "dest_port" not in ev
    assert ev["proto"] == "UDP"


def test_alert_json_line_is_compact(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    with EveWriter(path) as w:
        w.write(alert_event(tcp4(), 1, True, ALERT, False))
    line = path.read_text()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert ", " not in line
    assert line.startswith('{"timestamp":"2023-11-14T22:13:20.123456+0000","flow_id":1,"event_type":"alert"')


# -- drop events ----------------------------------------------------------------------------

DROP_CASES: list[tuple[str, Callable[[], Packet], Verdict, dict[str, object], dict[str, object]]] = [
    # id, packet, verdict, expected drop object, expected verdict object
    (
        "tcp",
        lambda: tcp4(SYN | FIN | URG),
        Verdict(Action.DROP, Reason.RULE, rule_id=2100498),
        {
            "len": 40,
            "tos": 0x10,
            "ttl": 64,
            "ipid": 4242,
            "tcpseq": 1000,
            "tcpack": 2000,
            "tcpwin": 65535,
            "syn": True,
            "ack": False,
            "psh": False,
            "rst": False,
            "urg": True,
            "fin": True,
            "tcpres": 0b0101,
            "tcpurgp": 7,
            "reason": "rule",
        },
        {"action": "drop"},
    ),
    (
        "tcp-reject",
        lambda: tcp4(ACK | PSH | RST),
        Verdict(Action.REJECT, Reason.FLOW_DROP),
        {
            "len": 40,
            "tos": 0x10,
            "ttl": 64,
            "ipid": 4242,
            "tcpseq": 1000,
            "tcpack": 2000,
            "tcpwin": 65535,
            "syn": False,
            "ack": True,
            "psh": True,
            "rst": True,
            "urg": False,
            "fin": False,
            "tcpres": 0b0101,
            "tcpurgp": 7,
            "reason": "flow_drop",
        },
        {"action": "drop", "reject_target": "both", "reject": ["tcp-reset"]},
    ),
    (
        "ipv6-tcp",
        tcp6,
        Verdict(Action.BLOCK, Reason.BLOCKLIST, block_seconds=600),
        {
            "len": 20,
            "tc": 0xB8,
            "hoplimit": 57,
            "flowlbl": 0xABCDE,
            "tcpseq": 1,
            "tcpack": 2,
            "tcpwin": 3,
            "syn": True,
            "ack": True,
            "psh": False,
            "rst": False,
            "urg": False,
            "fin": False,
            "tcpres": 0,
            "tcpurgp": 0,
            "reason": "blocklist",
        },
        {"action": "drop"},
    ),
    (
        "udp",
        udp4,
        Verdict(Action.DROP, Reason.RATE),
        {"len": 60, "tos": 0, "ttl": 63, "ipid": 99, "udplen": 40, "reason": "rate"},
        {"action": "drop"},
    ),
    (
        "udp-reject",
        udp4,
        Verdict(Action.REJECT, Reason.RULE),
        {"len": 60, "tos": 0, "ttl": 63, "ipid": 99, "udplen": 40, "reason": "rule"},
        {"action": "drop", "reject_target": "both", "reject": ["icmp-prohib"]},
    ),
    (
        "icmp",
        icmp4,
        Verdict(Action.DROP, Reason.DECODE_ERROR),
        {
            "len": 28,
            "tos": 0,
            "ttl": 64,
            "ipid": 7,
            "icmp_id": 0x1234,
            "icmp_seq": 9,
            "reason": "decode_error",
        },
        {"action": "drop"},
    ),
    (
        "icmpv6",
        icmp6,
        Verdict(Action.DROP, Reason.RULE),
        {"len": 8, "tc": 0, "hoplimit": 255, "flowlbl": 0, "icmp_id": 1, "icmp_seq": 2, "reason": "rule"},
        {"action": "drop"},
    ),
    (
        "later-fragment",
        lambda: fragment(1480),
        Verdict(Action.DROP, Reason.RULE),
        {"len": 60, "tos": 0, "ttl": 63, "ipid": 99, "reason": "rule"},
        {"action": "drop"},
    ),
]


@pytest.mark.parametrize(
    ("make", "verdict", "drop", "verdict_record"),
    [case[1:] for case in DROP_CASES],
    ids=[case[0] for case in DROP_CASES],
)
def test_drop_event(
    validate: Callable[[dict[str, object]], None],
    make: Callable[[], Packet],
    verdict: Verdict,
    drop: dict[str, object],
    verdict_record: dict[str, object],
) -> None:
    pkt = make()
    ev = drop_event(pkt, 99, verdict)
    validate(ev)
    assert ev["event_type"] == "drop"
    assert ev["flow_id"] == 99
    assert ev["timestamp"] == "2023-11-14T22:13:20.123456+0000"
    assert ev["src_ip"] == pkt.src_str
    assert ev["drop"] == drop
    assert ev["verdict"] == verdict_record
    assert "alert" not in ev


@pytest.mark.parametrize("action", [Action.ACCEPT, Action.REWRITE])
def test_drop_event_refuses_passing_verdicts(action: Action) -> None:
    with pytest.raises(ValueError, match=action.name):
        drop_event(tcp4(), 1, Verdict(action))


# -- stats events ---------------------------------------------------------------------------


def test_stats_event_shape(validate: Callable[[dict[str, object]], None]) -> None:
    ev = stats_event(
        TS,
        {
            "uptime": 3600,
            "decoder.pkts": 1000,
            "decoder.bytes": 64000,
            "decoder.ipv4": 990,
            "detect.alert": 12,
            "ips.accepted": 980,
            "ips.blocked": 20,
            "ips.drop_reason.rules": 15,
            "ips.drop_reason.flow_drop": 5,
            "defrag.ipv4.fragments": 4,
            # Not in the schema, or not an integer: left out.
            "decoder.frobnicated": 3,
            "engine.rules_loaded": 2000,
            "detect.alert_bool": True,
            "flow.active": "many",
            "flow.total": True,
        },
    )
    validate(ev)
    assert ev == {
        "timestamp": "2023-11-14T22:13:20.123456+0000",
        "event_type": "stats",
        "stats": {
            "uptime": 3600,
            "decoder": {"pkts": 1000, "bytes": 64000, "ipv4": 990},
            "detect": {"alert": 12},
            "ips": {"accepted": 980, "blocked": 20, "drop_reason": {"rules": 15, "flow_drop": 5}},
            "defrag": {"ipv4": {"fragments": 4}},
        },
    }


def test_every_known_stats_counter_is_in_the_schema(validate: Callable[[dict[str, object]], None]) -> None:
    ev = stats_event(TS, dict.fromkeys(STATS_COUNTERS, 1))
    validate(ev)
    flat: list[str] = []

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat.append(prefix)

    walk("", ev["stats"])
    assert sorted(flat) == sorted(STATS_COUNTERS)


def test_empty_stats_event(validate: Callable[[dict[str, object]], None]) -> None:
    ev = stats_event(0.0, {})
    validate(ev)
    assert ev["stats"] == {}


# -- the writer -----------------------------------------------------------------------------


def test_writer_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text('{"old":1}\n')
    events: list[dict[str, object]] = [{"a": 1, "b": [1, 2]}, {"event_type": "x", "s": "é\n"}]
    with EveWriter(str(path)) as w:
        for ev in events:
            w.write(ev)
        w.flush()
        assert path.read_text().count("\n") == 3  # flushed before close
    assert w.closed
    lines = path.read_text().splitlines()
    assert lines[0] == '{"old":1}'
    assert [json.loads(line) for line in lines[1:]] == events
    assert lines[1] == '{"a":1,"b":[1,2]}'


def test_writer_unwritable_path_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    target = blocker / "eve.json"
    with pytest.raises(EveOutputError) as info:
        EveWriter(target)
    assert str(target) in str(info.value)
    assert "Not a directory" in str(info.value)
    assert info.value.errno == errno.ENOTDIR
    assert isinstance(info.value, OSError)


def test_writer_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(EveOutputError, match=re.escape(str(tmp_path))) as info:
        EveWriter(tmp_path)
    assert info.value.errno == errno.EISDIR


def test_writer_missing_parent_is_not_created(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "eve.json"
    with pytest.raises(EveOutputError, match=re.escape(str(target))) as info:
        EveWriter(target)
    assert info.value.errno == errno.ENOENT
    assert not (tmp_path / "no").exists()


def test_writer_reopen_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    rotated = tmp_path / "eve.json.1"
    w = EveWriter(path)
    w.write({"n": 1})
    w.flush()
    path.rename(rotated)
    w.write({"n": 2})  # still goes to the renamed file, as with any open descriptor
    w.reopen()
    w.write({"n": 3})
    w.close()
    assert [json.loads(x)["n"] for x in rotated.read_text().splitlines()] == [1, 2]
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [3]


def test_writer_request_reopen_acts_on_next_write(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    with EveWriter(path) as w:
        w.write({"n": 1})
        w.flush()
        path.rename(tmp_path / "old.json")
        w.request_reopen()  # what a SIGHUP handler would do
        assert not path.exists()
        w.write({"n": 2})
    assert path.read_text() == '{"n":2}\n'
    assert (tmp_path / "old.json").read_text() == '{"n":1}\n'


def test_writer_failed_reopen_keeps_old_file(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    w = EveWriter(logdir / "eve.json")
    w.write({"n": 1})
    logdir.rename(tmp_path / "moved")
    (tmp_path / "log").write_text("")  # the directory is now a file: reopening must fail
    with pytest.raises(EveOutputError, match="cannot open EVE log"):
        w.reopen()
    w.write({"n": 2})
    w.close()
    assert (tmp_path / "moved" / "eve.json").read_text() == '{"n":1}\n{"n":2}\n'


def test_writer_closed(tmp_path: Path) -> None:
    w = EveWriter(tmp_path / "eve.json")
    w.close()
    w.close()  # closing twice is harmless
    w.flush()
    with pytest.raises(EveOutputError, match="is closed"):
        w.write({"n": 1})


def test_writer_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    with EveWriter("-") as w:
        w.write({"event_type": "stats"})
        w.reopen()  # nothing to reopen, only flushes
        w.write({"n": 2})
    assert not sys.stdout.closed
    assert capsys.readouterr().out == '{"event_type":"stats"}\n{"n":2}\n'
