"""Signature matching on decoded packets: header, flow, stream window, HTTP/DNS/TLS buffers, rewrite."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Packet as ScapyPacket

from inline_ips.decode import decode
from inline_ips.detect.signature import FLAGS_MEMO_MAX, SignatureEngine
from inline_ips.engine import Engine, Result
from inline_ips.flow import FlowOptions, FlowTable
from inline_ips.options import EngineOptions
from inline_ips.rules.yaml_loader import load_rules_text, load_rules_yaml
from inline_ips.verdict import Action
from tests.corpus import DEFAULT_RULES

CLIENT = "10.0.0.1"
SERVER = "192.0.2.1"


def entry(fields: str, sid: int = 1) -> str:
    """One entry of the signatures list, from 'key: value' lines."""
    lines = [f"  - sid: {sid}", f"    msg: rule {sid}", *(f"    {ln}" for ln in fields.strip().splitlines())]
    return "\n".join(lines) + "\n"


def one_rule(fields: str, sid: int = 1) -> str:
    return "signatures:\n" + entry(fields, sid)


def sids_alone(rules_text: str, pkt: ScapyPacket) -> list[int]:
    """Match one packet, the first of its flow (so no stream), through SignatureEngine."""
    eng = SignatureEngine(load_rules_text(rules_text, "test.yaml").signatures)
    p = decode(bytes(pkt), 1.0)
    assert p.error is None
    flow, to_server = FlowTable().lookup(p)
    return [m.rule.sid for m in eng.packet(p, flow, to_server, None, 0)]


def engine(rules_text: str, options: EngineOptions | None = None) -> Engine:
    return Engine(load_rules_text(rules_text, "test.yaml"), options)


def alerted(res: Result) -> list[int]:
    return [a.sid for a in res.alerts]


class Conn:
    """One TCP connection fed through an Engine, with sequence numbers kept."""

    def __init__(self, eng: Engine, sport: int = 40000, dport: int = 80, ts: float = 1000.0) -> None:
        self.eng = eng
        self.sport = sport
        self.dport = dport
        self.cseq = 1000
        self.sseq = 5000
        self.ts = ts

    def _tick(self) -> float:
        self.ts += 0.001
        return self.ts

    def client(self, flags: str = "PA", data: bytes = b"", seq: int | None = None) -> Result:
        s = self.cseq if seq is None else seq
        raw = bytes(
            IP(src=CLIENT, dst=SERVER)
            / TCP(sport=self.sport, dport=self.dport, flags=flags, seq=s, ack=self.sseq)
            / data
        )
        if seq is None:
            self.cseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self.eng.process(raw, self._tick())

    def server(self, flags: str = "PA", data: bytes = b"") -> Result:
        raw = bytes(
            IP(src=SERVER, dst=CLIENT)
            / TCP(sport=self.dport, dport=self.sport, flags=flags, seq=self.sseq, ack=self.cseq)
            / data
        )
        self.sseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self.eng.process(raw, self._tick())

    def handshake(self) -> list[Result]:
        return [self.client("S"), self.server("SA"), self.client("A")]


# ---- header: protocol, addresses, ports, direction, flags, ICMP ---------------------

TCP_PKT = IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=80, flags="PA") / b"hello"
REVERSE_PKT = IP(src=SERVER, dst=CLIENT) / TCP(sport=80, dport=40000, flags="PA") / b"hello"
UDP_PKT = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53) / b"hello"
V6_PKT = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=80, flags="PA") / b"hello"
ECHO = IP(src=CLIENT, dst=SERVER) / ICMP(type=8, code=0) / b"ping"
UNREACH = IP(src=SERVER, dst=CLIENT) / ICMP(type=3, code=3) / (b"x" * 28)
ECHO6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest()


@pytest.mark.parametrize(
    ("fields", "pkt", "expected"),
    [
        ("proto: tcp", TCP_PKT, True),
        ("proto: tcp", UDP_PKT, False),
        ("proto: udp", UDP_PKT, True),
        ("proto: ip", UDP_PKT, True),
        ("proto: ip", ECHO, True),
        ("proto: tcp\ndst_port: 80", TCP_PKT, True),
        ("proto: tcp\ndst_port: 81", TCP_PKT, False),
        ("proto: tcp\ndst_port: '!80'", TCP_PKT, False),
        ("proto: tcp\nsrc_port: '1024:'", TCP_PKT, True),
        ("proto: tcp\nsrc_port: ':1023'", TCP_PKT, False),
        ("proto: tcp\nsrc: 10.0.0.0/24\ndst: 192.0.2.0/24", TCP_PKT, True),
        ("proto: tcp\nsrc: 10.0.1.0/24", TCP_PKT, False),
        ("proto: tcp\ndst: $HOME_NET", TCP_PKT, False),
        ("proto: tcp\nsrc: $HOME_NET\ndst: $EXTERNAL_NET", TCP_PKT, True),
        ("proto: tcp\nsrc: 10.0.0.0/8", V6_PKT, False),
        ("proto: tcp\nsrc: 2001:db8::/64", V6_PKT, True),
        ("proto: tcp\nsrc: '!10.0.0.0/8'", V6_PKT, True),
        # direction: <> tries both ways
        ("proto: tcp\nsrc: 10.0.0.1\ndst_port: 80", REVERSE_PKT, False),
        ("proto: tcp\nsrc: 10.0.0.1\ndst_port: 80\nbidirectional: true", REVERSE_PKT, True),
        ("proto: tcp\nsrc: 10.0.0.1\ndst_port: 80\nbidirectional: true", TCP_PKT, True),
        ("proto: tcp\nsrc: 10.0.0.1\ndst_port: 81\nbidirectional: true", REVERSE_PKT, False),
        # flags
        ("proto: tcp\nflags: PA", TCP_PKT, True),
        ("proto: tcp\nflags: A", TCP_PKT, False),
        ("proto: tcp\nflags: +A", TCP_PKT, True),
        ("proto: tcp\nflags: '*SF'", TCP_PKT, False),
        ("proto: tcp\nflags: '!R'", TCP_PKT, True),
        # ICMP type and code
        ("proto: icmp\nicmp_type: 8", ECHO, True),
        ("proto: icmp\nicmp_type: 0", ECHO, False),
        ("proto: icmp\nicmp_type: 8\nicmp_code: 0", ECHO, True),
        ("proto: icmp\nicmp_type: 3\nicmp_code: 3", UNREACH, True),
        ("proto: icmp\nicmp_type: 3\nicmp_code: 1", UNREACH, False),
        ("proto: icmp\nicmp_code: 3", UNREACH, True),
        ("proto: icmp", ECHO6, False),
        ("proto: icmpv6\nicmp_type: 128", ECHO6, True),
        ("proto: icmpv6\nicmp_type: 129", ECHO6, False),
        # content on a packet without a flow
        ("proto: udp\npayload: hell", UDP_PKT, True),
        ("proto: udp\npayload: help", UDP_PKT, False),
        ("proto: icmp\npayload: ping", ECHO, True),
    ],
)
def test_header(fields: str, pkt: ScapyPacket, expected: bool) -> None:
    assert sids_alone(one_rule(fields), pkt) == ([1] if expected else [])


def test_rules_report_in_suricata_order() -> None:
    """Action (pass, drop, reject, alert), then priority, then sid: detect-engine-sigorder.c."""
    text = one_rule("proto: tcp\npayload: hello", 30) + entry("proto: tcp", 10)
    text += entry("proto: ip\npayload: ell", 20)
    text += entry("proto: ip\npayload: ell\npriority: 1", 40)
    text += entry("proto: ip\npayload: ell\naction: drop", 50)
    assert sids_alone(text, TCP_PKT) == [50, 40, 10, 20, 30]


# ---- flow: direction and established ----------------------------------------------

FLOW_RULES = (
    one_rule("proto: tcp\nflow: to_server,established\npayload: hello", 1)
    + entry("proto: tcp\nflow: to_client\npayload: hello", 2)
    + entry("proto: tcp\nflow: to_server\nflags: S", 3)
    + entry("proto: tcp\nflow: not_established\nflags: S", 4)
    + entry("proto: tcp\nflow: from_server,established\nflags: SA", 5)
)


def test_flow_options_through_a_handshake() -> None:
    eng = engine(FLOW_RULES)
    conn = Conn(eng)
    syn, synack, ack = conn.handshake()
    assert alerted(syn) == [3, 4]
    assert syn.to_server is True
    assert alerted(synack) == []  # not established yet when the SYN-ACK passes
    assert synack.to_server is False
    assert alerted(ack) == []
    req = conn.client(data=b"hello server")
    assert alerted(req) == [1]
    assert req.to_server is True
    resp = conn.server(data=b"hello client")
    assert alerted(resp) == [2]
    assert resp.to_server is False
    assert req.flow_id == syn.flow_id == resp.flow_id != 0


def test_established_needs_a_handshake_without_midstream() -> None:
    text = one_rule("proto: tcp\nflow: established\npayload: hello", 1)
    text += entry("proto: tcp\nflow: not_established\npayload: hello", 2)
    opts = EngineOptions(flows=FlowOptions(midstream=False))
    res = Conn(engine(text, opts)).client(data=b"hello")
    assert alerted(res) == [2]
    conn = Conn(engine(text))
    # A midstream pickup is established from its second packet on, as in Suricata.
    assert alerted(conn.client(data=b"hello")) == [2]
    assert alerted(conn.client(data=b"hello")) == [1]


# ---- the TCP stream window ----------------------------------------------------------

SPLIT_RULES = one_rule("proto: tcp\npayload: EVILSTRING", 1) + entry(
    "proto: tcp\npayload:\n  - content: EVIL\n    depth: 4", 2
)


def test_content_split_across_segments() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    assert alerted(conn.client(data=b"xxEVIL")) == []
    assert alerted(conn.client(data=b"STRINGyy")) == [1]
    # The match lies wholly in earlier bytes now: not reported again.
    assert alerted(conn.client(data=b"zz")) == []
    assert alerted(conn.client(data=b"more")) == []


def test_retransmission_does_not_alert_twice() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    first = conn.cseq
    conn.client(data=b"xxEVIL")
    second = conn.cseq
    assert alerted(conn.client(data=b"STRINGyy")) == [1]
    # Both segments again (a retransmission): neither alerts.
    assert alerted(conn.client(data=b"xxEVIL", seq=first)) == []
    assert alerted(conn.client(data=b"STRINGyy", seq=second)) == []
    # The window was not disturbed: the next in-order segment is still inspected with it.
    assert alerted(conn.client(data=b"EVILSTRING")) == [1, 2]


def test_new_occurrence_in_a_later_segment_alerts_again() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    assert alerted(conn.client(data=b"an EVILSTRING")) == [1]
    assert alerted(conn.client(data=b" and another EVILSTRING")) == [1]


def test_gap_restarts_the_window() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    conn.client(data=b"xxEVIL")
    conn.cseq += 100  # a hundred bytes never seen
    assert alerted(conn.client(data=b"STRINGyy")) == []


def test_offset_and_depth_rules_see_the_packet_alone() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    # "EVIL" within the first 4 bytes of the stream window, but not of this packet.
    assert alerted(conn.client(data=b"xxEV")) == []
    assert alerted(conn.client(data=b"ILxx")) == []
    # At the start of a later packet it matches, though the window has earlier bytes.
    assert alerted(conn.client(data=b"EVIL")) == [2]


def test_stream_window_is_client_and_server_apart() -> None:
    conn = Conn(engine(SPLIT_RULES))
    conn.handshake()
    conn.client(data=b"xxEVIL")
    assert alerted(conn.server(data=b"STRING")) == []


# ---- application buffers ------------------------------------------------------------

REQUEST = (
    b"POST /a/./b/../Search%20Page?q=union+select HTTP/1.1\r\n"
    b"Host: Shop.Example\r\n"
    b"User-Agent: sqlmap/1.7\r\n"
    b"X-Custom: hello\r\n"
    b"Content-Length: 11\r\n"
    b"\r\n"
    b"user=admin'"
)


@pytest.mark.parametrize(
    ("buffer", "content", "expected"),
    [
        # Suricata's http.uri: percent-decoded, dot segments resolved, '+' left alone (libhtp)
        ("http.uri", "/a/Search Page?q=union+select", True),
        ("http.uri", "union select", False),
        ("http.uri", "/b/", False),  # resolved away by normalisation
        ("http.uri", "%20", False),
        ("http.uri.raw", "/a/./b/../Search%20Page", True),
        ("http.uri.raw", "Search Page", False),
        ("http.method", "POST", True),
        ("http.method", "GET", False),
        ("http.host", "shop.example", True),
        ("http.host", "Shop.Example", False),  # the host buffer is lower-cased
        ("http.user_agent", "sqlmap", True),
        ("http.user_agent", "curl", False),
        ("http.header", "X-Custom: hello", True),
        ("http.header", "x-custom: hello", False),
        ("http.request_body", "admin'", True),
        ("http.request_body", "POST", False),
    ],
)
def test_http_buffers(buffer: str, content: str, expected: bool) -> None:
    text = one_rule(f'proto: http\n{buffer}:\n  - content: "{content}"')
    conn = Conn(engine(text))
    conn.handshake()
    res = conn.client(data=REQUEST)
    assert res.app_proto == "http"
    assert alerted(res) == ([1] if expected else [])


@pytest.mark.parametrize(
    ("uri", "sid"),
    [
        ("/vulnerabilities/sqli/?id=%27+or+%271%27%3D%271&Submit=Submit", 2100003),
        ("/item?id=1%27%20OR%20%271%27=%271", 2100003),
        ("/item?id=1;+waitfor+delay+'0:0:5'", 2100004),
        ("/item?id=1+AND+SLEEP(5)", 2100004),
        ("/item?id=-1+UNION+ALL+SELECT+1,2", 2100001),
    ],
)
def test_default_sqli_rules_see_plus_as_a_blank(uri: str, sid: int) -> None:
    """Suricata's http.uri keeps a query's '+' (libhtp): the default rules must still read it as a blank."""
    eng = Engine(load_rules_yaml(DEFAULT_RULES))
    conn = Conn(eng)
    conn.handshake()
    res = conn.client(data=f"GET {uri} HTTP/1.1\r\nHost: shop.example\r\n\r\n".encode())
    assert sid in alerted(res)


def test_http_request_split_over_segments() -> None:
    text = one_rule("proto: http\nhttp.uri: /etc/passwd")
    conn = Conn(engine(text))
    conn.handshake()
    assert alerted(conn.client(data=b"GET /x/../etc/%70asswd HTTP/1.1\r\n")) == []
    assert alerted(conn.client(data=b"Host: a\r\n\r\n")) == [1]


def test_http_rule_needs_a_request() -> None:
    text = one_rule("proto: http\nhttp.method: GET")
    conn = Conn(engine(text))
    conn.handshake()
    assert alerted(conn.client(data=b"\x16\x03\x01GET not http")) == []


def _dns_query(name: str) -> ScapyPacket:
    return IP(src=CLIENT, dst=SERVER) / UDP(sport=5353, dport=53) / DNS(id=7, rd=1, qd=DNSQR(qname=name))


def _dns_response(name: str) -> ScapyPacket:
    return (
        IP(src=SERVER, dst=CLIENT)
        / UDP(sport=53, dport=5353)
        / DNS(id=7, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata="192.0.2.7"))
    )


@pytest.mark.parametrize(
    ("pkt", "content", "expected"),
    [
        (_dns_query("www.evil.example"), "evil.example", True),
        (_dns_query("www.EVIL.example"), "evil.example", False),
        (_dns_query("www.good.example"), "evil.example", False),
        (_dns_response("www.evil.example"), "evil.example", False),  # dns.query is the question of a query
    ],
)
def test_dns_query(pkt: ScapyPacket, content: str, expected: bool) -> None:
    res = engine(one_rule(f"proto: dns\ndns.query: {content}")).process(bytes(pkt), 1.0)
    assert res.app_proto == "dns"
    assert alerted(res) == ([1] if expected else [])


def test_dns_query_nocase() -> None:
    text = one_rule("proto: dns\ndns.query:\n  - content: evil.example\n    nocase: true")
    assert alerted(engine(text).process(bytes(_dns_query("www.EVIL.example")), 1.0)) == [1]


def client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    incoming = ssl.MemoryBIO()
    sock = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        sock.do_handshake()  # stops after writing the ClientHello, waiting for the server
    return outgoing.read()


@pytest.mark.parametrize(
    ("server_name", "content", "expected"),
    [
        ("evil.example", "evil.example", True),
        ("Evil.Example", "evil.example", False),  # Suricata's tls.sni keeps the case sent
        ("Evil.Example", "Evil.Example", True),
        ("good.example", "evil.example", False),
    ],
)
def test_tls_sni(server_name: str, content: str, expected: bool) -> None:
    text = one_rule(f"proto: tls\ntls.sni: {content}")
    conn = Conn(engine(text), dport=443)
    conn.handshake()
    res = conn.client(data=client_hello(server_name))
    assert res.app_proto == "tls"
    assert alerted(res) == ([1] if expected else [])


# ---- rewrite --------------------------------------------------------------------------

REWRITE = one_rule("action: rewrite\nproto: tcp\npayload:\n  - content: abc\n    replace: xyz")


@pytest.mark.parametrize(
    ("pkt", "payload_offset"),
    [
        (IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=80, flags="PA") / b"00abc00abc", 40),
        (
            IP(src=CLIENT, dst=SERVER)
            / TCP(sport=40000, dport=80, flags="PA", options=[("MSS", 1460)])
            / b"00abc00abc",
            44,
        ),
        (
            IPv6(src="2001:db8::1", dst="2001:db8::2")
            / TCP(sport=40000, dport=80, flags="PA")
            / b"00abc00abc",
            60,
        ),
    ],
    ids=["ipv4", "ipv4_tcp_options", "ipv6"],
)
def test_rewrite_offsets(pkt: ScapyPacket, payload_offset: int) -> None:
    raw = bytes(pkt)
    res = engine(REWRITE).process(raw, 1.0)
    assert res.verdict.action is Action.REWRITE
    assert res.verdict.rule_id == 1
    assert res.verdict.replacements == ((payload_offset + 2, b"xyz"),)
    off = res.verdict.replacements[0][0]
    assert raw[off : off + 3] == b"abc"
    assert alerted(res) == [1]


def test_rewrite_in_stream_uses_offsets_of_this_packet() -> None:
    conn = Conn(engine(REWRITE))
    conn.handshake()
    first = conn.client(data=b"..abc")
    assert first.verdict.replacements == ((40 + 2, b"xyz"),)
    second = conn.client(data=b"abc")
    assert second.verdict.action is Action.REWRITE
    assert second.verdict.replacements == ((40, b"xyz"),)
    # A match that began in an earlier packet has nothing to rewrite in this one.
    conn.client(data=b"..ab")
    third = conn.client(data=b"c..")
    assert third.verdict.action is Action.ACCEPT
    assert alerted(third) == []


def test_two_rewrite_rules_keep_both_replacements() -> None:
    text = REWRITE + entry("action: rewrite\nproto: tcp\npayload:\n  - content: def\n    replace: DEF", 2)
    res = engine(text).process(bytes(IP() / TCP(flags="PA") / b"abc-def"), 1.0)
    assert res.verdict.action is Action.REWRITE
    assert res.verdict.replacements == ((40, b"xyz"), (44, b"DEF"))
    assert alerted(res) == [1, 2]


# -- the per-flow memo of which fast-pattern rules' tuples admit the flow ------------------------


def test_rules_for_other_ports_that_the_payload_hits_are_ruled_out_once_per_flow_and_boundedly() -> None:
    # 40 rules for other ports whose literal every datagram carries, and one for this port.
    others = "".join(
        entry(f"proto: udp\ndst_port: {1000 + i}\npayload: zz{i:02d}", 100 + i) for i in range(40)
    )
    mine = entry("proto: udp\ndst_port: 5201\npayload: zz07", 7)
    eng = engine("signatures:\n" + others + mine)
    payload = b"".join(b"zz%02d" % i for i in range(40))
    for n in range(3):  # the memo fills on the first datagram; later ones are judged the same
        res = eng.process(bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=5201) / payload), 1.0 + n)
        assert alerted(res) == [7]
    (flow,) = eng.flows._flows.values()
    assert flow.sig_cache is not None
    entry_ = flow.sig_cache[1][0]
    assert entry_ is not None
    memo = entry_[2]
    assert 0 < len(memo) <= 32  # bounded whatever the payload hits
    assert memo.get(next(i for i, r in enumerate(eng._r.signatures.rules) if r.sid == 7)) in (True, None)
    # A datagram to one of the other ports is that rule's, in its own flow.
    res = eng.process(bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=1003) / payload), 5.0)
    assert alerted(res) == [103]


# -- one payload prefilter per IP protocol --------------------------------------------------------

PER_PROTO_RULES = (
    one_rule("proto: tcp\npayload: tcpword", 1)
    + entry("proto: udp\npayload: udpword", 2)
    + entry("proto: ip\npayload: anyword", 3)
)


@pytest.mark.parametrize(
    ("pkt", "expected"),
    [
        (IP(src=CLIENT, dst=SERVER) / UDP(sport=5000, dport=53) / b"tcpword udpword anyword", [2, 3]),
        (
            IP(src=CLIENT, dst=SERVER) / TCP(sport=5000, dport=80, flags="PA") / b"tcpword udpword anyword",
            [1, 3],
        ),
        (IP(src=CLIENT, dst=SERVER) / ICMP() / b"tcpword udpword anyword", [3]),
        (IP(src=CLIENT, dst=SERVER, proto=47) / b"tcpword udpword anyword", [3]),  # GRE: no rule names it
    ],
)
def test_each_protocol_scans_its_own_and_the_any_protocol_literals(
    pkt: ScapyPacket, expected: list[int]
) -> None:
    assert sorted(sids_alone(PER_PROTO_RULES, pkt)) == expected
    eng = SignatureEngine(load_rules_text(PER_PROTO_RULES, "test.yaml").signatures)
    # The UDP scanner holds the UDP and the any-protocol literal, not the TCP one.
    assert len(eng._payload_scanners[17].groups) == 2  # type: ignore[union-attr]
    assert eng.pattern_count == 3


def test_the_per_flow_flags_cache_is_capped() -> None:
    """One flow cycling through every TCP flags value: the cache stops at FLAGS_MEMO_MAX; matching goes on."""
    eng = SignatureEngine(load_rules_text(one_rule('proto: tcp\nflags: "+SF"'), "test.yaml").signatures)
    flow = None
    table = FlowTable()
    matched = []
    for flags in range(256):
        raw = bytearray(bytes(IP(src="10.0.0.1", dst="192.0.2.1") / TCP(sport=1, dport=80, flags=0)))
        raw[20 + 13] = flags
        p = decode(bytes(raw), 1.0 + flags)
        flow, to_server = table.lookup(p)
        if eng.packet(p, flow, to_server, None, 0):
            matched.append(flags)
    assert flow is not None and flow.sig_cache is not None
    entry = flow.sig_cache[1][0]
    assert entry is not None
    assert len(entry[1]) == FLAGS_MEMO_MAX
    # Values past the cap are still judged: every value with both SYN and FIN set matched.
    assert matched == [f for f in range(256) if f & 0x03 == 0x03]
