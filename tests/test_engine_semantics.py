"""Suricata's detection semantics through the engine, with rules in Suricata's own language.

How often each kind of rule is judged (IP-only once per flow direction,
packet rules per packet, stream rules on the stream, transaction rules once
per transaction and direction), what thresholds, noalert, pass and drop do
to alerts and verdicts, flowbits ordering within a packet, when a TCP flow is
established, midstream pickups, checksum checks, IDS mode and the per-packet
alert cap. Each case is a short, hand-built flow whose expected result follows
from Suricata's documentation and source (cited per test).
"""

from __future__ import annotations

import ssl
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from inline_ips.engine import Engine, Result
from inline_ips.flow import FlowOptions
from inline_ips.options import EngineOptions
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import RuleSet
from inline_ips.rules.suricata.loader import load_rules_text
from inline_ips.rules.yaml_loader import DEFAULT_VARS
from inline_ips.verdict import Action, Reason
from tests.decode.test_tls_stream import handshake as tls_handshake
from tests.decode.test_x509 import OPENSSL, Cert, make_cert

CLIENT = "10.0.0.1"
SERVER = "10.0.0.2"


def engine(rules: str, options: EngineOptions | None = None) -> Engine:
    sigs, report = load_rules_text(rules, "test.rules", DEFAULT_VARS)
    assert not report.skipped, report.messages
    return Engine(RuleSet(signatures=tuple(sigs)), options)


def sids(res: Result) -> list[int]:
    return [a.sid for a in res.alerts]


class Conn:
    """A TCP connection through an engine, sequence numbers kept."""

    def __init__(self, eng: Engine, sport: int = 40000, dport: int = 80) -> None:
        self.eng = eng
        self.sport = sport
        self.dport = dport
        self.cseq = 1000
        self.sseq = 5000
        self.ts = 100.0

    def _send(self, raw: bytes) -> Result:
        self.ts += 0.01
        return self.eng.process(raw, self.ts)

    def client(self, data: bytes = b"", flags: str = "PA", chksum: int | None = None) -> Result:
        tcp = TCP(sport=self.sport, dport=self.dport, flags=flags, seq=self.cseq, ack=self.sseq)
        if chksum is not None:
            tcp.chksum = chksum
        raw = bytes(IP(src=CLIENT, dst=SERVER) / tcp / data)
        self.cseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self._send(raw)

    def server(self, data: bytes = b"", flags: str = "PA") -> Result:
        tcp = TCP(sport=self.dport, dport=self.sport, flags=flags, seq=self.sseq, ack=self.cseq)
        raw = bytes(IP(src=SERVER, dst=CLIENT) / tcp / data)
        self.sseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self._send(raw)

    def handshake(self) -> list[Result]:
        return [self.client(flags="S"), self.server(flags="SA"), self.client(flags="A")]


# ---- IP-only rules: once per flow direction (detect.c DetectRunInspectIPOnly) --------------


def test_ip_only_rule_alerts_once_per_flow_direction() -> None:
    eng = engine(
        'alert ip any any -> 10.0.0.2 any (msg:"to server"; sid:1;)\n'
        'alert ip any any <> 10.0.0.2 any (msg:"both ways"; sid:2;)\n'
        'alert tcp any any -> any 80 (msg:"ports are fine"; sid:3;)\n'
    )
    conn = Conn(eng)
    results = [
        *conn.handshake(),
        conn.client(b"GET / HTTP/1.0\r\n\r\n"),
        conn.server(b"HTTP/1.0 200 OK\r\n\r\n"),
    ]
    counts = {sid: sum(sids(r).count(sid) for r in results) for sid in (1, 2, 3)}
    assert counts == {1: 1, 2: 2, 3: 1}
    assert sids(results[0]) == [1, 2, 3]  # all on the flow's first packet ...
    assert sids(results[1]) == [2]  # ... and the first of the other direction
    # A second connection is a new flow: judged again.
    again = Conn(eng, sport=40001).client(flags="S")
    assert sids(again) == [1, 2, 3]


def test_negated_address_makes_a_rule_judged_on_every_packet() -> None:
    """Suricata 7's 'like IP-only' rules (SignatureIsIPOnly returns 2)."""
    eng = engine('alert ip any any -> !10.0.0.9 any (msg:"not nine"; sid:1;)\n')
    conn = Conn(eng)
    results = [*conn.handshake(), conn.client(b"x")]
    assert [sids(r) for r in results] == [[1], [1], [1], [1]]


def test_flow_keyword_makes_a_packet_rule() -> None:
    eng = engine('alert ip any any -> any any (msg:"m"; flow:to_server; sid:1;)\n')
    conn = Conn(eng)
    results = [*conn.handshake(), conn.client(b"x")]
    assert [sids(r) for r in results] == [[1], [], [1], [1]]


# ---- pass and drop: packet or flow scope (FlowApplySignatureActions) ----------------------


def test_packet_rule_pass_covers_only_its_packet() -> None:
    eng = engine(
        'pass tcp any any -> any 80 (msg:"p"; flags:S; sid:1;)\n'
        'alert ip any any -> any any (msg:"a"; flow:to_server; sid:2;)\n'
    )
    conn = Conn(eng)
    assert sids(conn.client(flags="S")) == []  # the pass ends inspection of this packet
    conn.server(flags="SA")
    assert sids(conn.client(flags="A")) == [2]


def test_ip_only_pass_covers_the_whole_flow() -> None:
    eng = engine(
        'pass ip 10.0.0.1 any -> any any (msg:"trusted"; sid:1;)\n'
        'alert tcp any any -> any any (msg:"evil"; content:"evil"; sid:2;)\n'
    )
    conn = Conn(eng)
    conn.handshake()
    assert sids(conn.client(b"evil")) == []
    assert sids(conn.server(b"evil")) == []  # the reply direction too
    stranger = eng.process(
        bytes(IP(src="10.0.0.3", dst=SERVER) / TCP(sport=1, dport=80, flags="S") / b"evil"), 1.0
    )
    assert sids(stranger) == [2]  # a flow from elsewhere is judged as usual


def test_packet_rule_drop_drops_the_packet_only() -> None:
    eng = engine('drop tcp any any -> any 80 (msg:"d"; flags:S; sid:1;)\n')
    conn = Conn(eng)
    syn = conn.client(flags="S")
    assert (syn.verdict.action, syn.verdict.reason, syn.verdict.rule_id) == (Action.DROP, Reason.RULE, 1)
    assert conn.client(b"data").verdict.action is Action.ACCEPT


def test_stream_rule_drop_drops_the_rest_of_the_flow() -> None:
    eng = engine('drop tcp any any -> any 80 (msg:"d"; content:"evil"; sid:1;)\n')
    conn = Conn(eng)
    conn.handshake()
    hit = conn.client(b"an evil request")
    assert hit.verdict.action is Action.DROP
    assert sids(hit) == [1]
    after = conn.server(b"innocent")
    assert (after.verdict.action, after.verdict.reason) == (Action.DROP, Reason.FLOW_DROP)
    assert sids(after) == []


def test_noalert_drop_acts_without_an_alert() -> None:
    eng = engine('drop tcp any any -> any 80 (msg:"d"; content:"evil"; noalert; sid:1;)\n')
    conn = Conn(eng)
    conn.handshake()
    res = conn.client(b"evil")
    assert res.verdict.action is Action.DROP
    assert res.alerts == []


def test_ids_mode_alerts_but_never_drops() -> None:
    eng = engine('drop tcp any any -> any 80 (msg:"d"; content:"evil"; sid:1;)\n', EngineOptions(ips=False))
    conn = Conn(eng)
    conn.handshake()
    res = conn.client(b"evil")
    assert (sids(res), res.verdict.action) == ([1], Action.ACCEPT)
    # The flow is still marked: no more inspection, as in Suricata (detect.c DetectFlow).
    later = conn.client(b"evil again")
    assert (sids(later), later.verdict.action) == ([], Action.ACCEPT)


# ---- thresholds: alert, silent action, nothing (detect-engine-threshold.c) ----------------


def test_limit_past_its_count_still_drops_silently() -> None:
    eng = engine(
        'drop udp any any -> any 9 (msg:"d"; content:"x"; '
        "threshold:type limit, track by_src, count 1, seconds 60; sid:1;)\n"
    )

    def send(sport: int, ts: float) -> Result:
        return eng.process(bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=sport, dport=9) / b"x"), ts)

    first, second = send(1000, 1.0), send(1001, 2.0)
    assert (sids(first), first.verdict.action) == ([1], Action.DROP)
    assert (sids(second), second.verdict.action) == ([], Action.DROP)
    third = send(1002, 62.0)  # a new window
    assert sids(third) == [1]


def test_detection_filter_neither_alerts_nor_acts_up_to_its_count() -> None:
    eng = engine(
        'drop udp any any -> any 9 (msg:"d"; content:"x"; '
        "detection_filter:track by_dst, count 2, seconds 60; sid:1;)\n"
    )
    got = []
    for i in range(4):
        res = eng.process(bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=1000 + i, dport=9) / b"x"), 1.0 + i)
        got.append((sids(res), res.verdict.action))
    assert got == [([], Action.ACCEPT), ([], Action.ACCEPT), ([1], Action.DROP), ([1], Action.DROP)]


# ---- flowbits: setters first, visible within the same packet ----------------------------------


def test_flowbit_set_and_checked_in_the_same_packet() -> None:
    # sid 2 comes first in the file and has the lower sid, but a setter is ordered first.
    eng = engine(
        'alert tcp any any -> any 80 (msg:"check"; content:"secret"; flowbits:isset,in; sid:1;)\n'
        'alert tcp any any -> any 80 (msg:"s"; content:"login"; flowbits:set,in; flowbits:noalert; sid:2;)\n'
    )
    conn = Conn(eng)
    conn.handshake()
    assert sids(conn.client(b"login and secret")) == [1]
    fresh = Conn(eng, sport=40001)
    fresh.handshake()
    assert sids(fresh.client(b"secret")) == []  # not set on this flow


def test_flowbit_or_and_isnotset() -> None:
    eng = engine(
        'alert tcp any any -> any 80 (msg:"s"; content:"a"; flowbits:set,x; flowbits:noalert; sid:1;)\n'
        'alert tcp any any -> any 80 (msg:"or"; content:"b"; flowbits:isset,x|y; sid:2;)\n'
        'alert tcp any any -> any 80 (msg:"not"; content:"c"; flowbits:isnotset,x; sid:3;)\n'
    )
    conn = Conn(eng)
    conn.handshake()
    assert sids(conn.client(b"c")) == [3]
    assert sids(conn.client(b"a")) == []
    assert sids(conn.client(b"b")) == [2]
    assert sids(conn.client(b"c")) == []


# ---- transactions: once per transaction and direction ----------------------------------------

REQUEST = b"GET /admin/login.php HTTP/1.1\r\nHost: example.com\r\n\r\n"


def test_http_rule_alerts_once_per_request() -> None:
    eng = engine('alert http any any -> any any (msg:"admin"; http.uri; content:"/admin/"; sid:1;)\n')
    conn = Conn(eng)
    conn.handshake()
    assert sids(conn.client(REQUEST)) == [1]
    conn.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert sids(conn.client(REQUEST)) == [1]  # a second request: a new transaction
    # A retransmission of the same bytes is not a new request.
    conn.cseq -= len(REQUEST)
    assert sids(conn.client(REQUEST)) == []


def test_a_body_rule_waits_for_the_whole_body() -> None:
    """A negated content on file.data is judged on the complete body, not on its first segment."""
    eng = engine(
        'alert http any any -> any any (msg:"m"; flow:to_client; file.data; content:!"SAFE"; sid:1;)\n'
    )
    conn = Conn(eng)
    conn.handshake()
    conn.client(REQUEST)
    first = conn.server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    assert sids(first) == []
    assert sids(conn.server(b" SAFE")) == []
    conn.client(REQUEST)
    conn.server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    assert sids(conn.server(b" evil")) == [1]


def test_a_body_delimited_by_the_close_is_judged_at_the_fin() -> None:
    rule = 'alert http any any -> any any (msg:"b"; flow:to_client; file.data; content:"tail"; sid:1;)\n'
    eng = engine(rule)
    conn = Conn(eng)
    conn.handshake()
    conn.client(REQUEST)
    assert sids(conn.server(b"HTTP/1.0 200 OK\r\n\r\nhead and tail")) == []  # the body may go on
    assert sids(conn.server(flags="FA")) == [1]


def test_header_buffer_of_either_direction_alerts_per_direction() -> None:
    """Without flow:, http.header is inspected on the request and on the response (R1 section 3)."""
    eng = engine('alert http any any -> any any (msg:"h"; http.header; content:"X-Tag|3a| 1"; sid:1;)\n')
    conn = Conn(eng)
    conn.handshake()
    assert sids(conn.client(b"GET / HTTP/1.1\r\nX-Tag: 1\r\n\r\n")) == [1]
    assert sids(conn.server(b"HTTP/1.1 200 OK\r\nX-Tag: 1\r\nContent-Length: 0\r\n\r\n")) == [1]


def test_dns_query_rule_sees_queries_only() -> None:
    eng = engine('alert dns any any -> any any (msg:"q"; dns.query; content:"evil"; sid:1;)\n')
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    q = (
        IP(src=CLIENT, dst=SERVER)
        / UDP(sport=5353, dport=53)
        / DNS(id=7, rd=1, qd=DNSQR(qname="evil.example"))
    )
    a = (
        IP(src=SERVER, dst=CLIENT)
        / UDP(sport=53, dport=5353)
        / DNS(id=7, qr=1, qd=DNSQR(qname="evil.example"), an=DNSRR(rrname="evil.example", rdata="192.0.2.1"))
    )
    assert sids(eng.process(bytes(q), 1.0)) == [1]
    assert sids(eng.process(bytes(a), 1.1)) == []
    # Every query is a transaction of its own, also on the same flow (same ports).
    assert sids(eng.process(bytes(q), 1.2)) == [1]


def test_dns_over_tcp_queries_split_and_batched() -> None:
    from scapy.layers.dns import DNS, DNSQR

    eng = engine('alert dns any any -> any any (msg:"q"; dns.query; content:"evil"; sid:1;)\n')
    conn = Conn(eng, dport=53)
    conn.handshake()

    def framed(name: str) -> bytes:
        msg = bytes(DNS(id=1, rd=1, qd=DNSQR(qname=name)))
        return len(msg).to_bytes(2, "big") + msg

    one = framed("evil.example")
    assert sids(conn.client(one[:7])) == []  # half a message
    assert sids(conn.client(one[7:])) == [1]

    two = framed("good.example") + framed("more.evil.example")
    assert sids(conn.client(two)) == [1]


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    if OPENSSL is None:
        pytest.skip("openssl CLI not installed")
    directory = tmp_path_factory.mktemp("certs")
    return {
        "server": make_cert(directory, "/C=US/O=Stream Test/CN=server.example", serial=0x8F01, name="server"),
        "client": make_cert(directory, "/CN=client.example", serial=7, name="client"),
    }


def test_tls_rules_on_a_real_handshake(tls_certs: dict[str, Cert]) -> None:
    eng = engine(
        'alert tls any any -> any any (msg:"sni"; tls.sni; content:"www.example.test"; sid:1;)\n'
        'alert tls any any -> any any (msg:"subject"; tls.subject:"CN=server.example"; sid:2;)\n'
        'alert tls any any -> any any (msg:"issuer"; tls.cert_issuer; content:"O=Stream Test"; sid:3;)\n'
        'alert tls any any -> any any (msg:"client random"; flow:to_server; tls.random; bsize:32; sid:4;)\n'
        'alert tls any any -> any any (msg:"ja3"; ja3.hash; bsize:32; sid:5;)\n'
        'alert tls any any -> any any (msg:"not this subject"; tls.subject:"CN=other"; sid:6;)\n'
    )
    capture = tls_handshake(tls_certs, ssl.TLSVersion.TLSv1_2)
    conn = Conn(eng, dport=443)
    conn.handshake()
    counts: Counter[int] = Counter()
    for to_server, data in capture.segments:
        counts.update(sids(conn.client(data) if to_server else conn.server(data)))
    # Each alerts once: one TLS session is one transaction.
    assert counts == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}


# ---- TCP state as Suricata tags packets ---------------------------------------------------------


def test_the_ack_completing_the_handshake_is_not_yet_established() -> None:
    eng = engine('alert tcp any any -> any 80 (msg:"est"; flow:established,to_server; sid:1;)\n')
    conn = Conn(eng)
    syn, _, ack = conn.handshake()
    assert (sids(syn), sids(ack)) == ([], [])
    assert sids(conn.client(b"data")) == [1]
    # An ACK with data completing the handshake is (Suricata 7.0.7 and later).
    conn2 = Conn(eng, sport=40001)
    conn2.client(flags="S")
    conn2.server(flags="SA")
    assert sids(conn2.client(b"early data", flags="PA")) == [1]


def test_without_midstream_a_flow_without_syn_has_no_session() -> None:
    rules = (
        'alert tcp any any -> any any (msg:"est"; flow:established; sid:1;)\n'
        'alert http any any -> any any (msg:"uri"; http.uri; content:"/admin"; sid:2;)\n'
        'alert tcp any any -> any any (msg:"content"; content:"admin"; sid:3;)\n'
    )
    off = Conn(engine(rules, EngineOptions(flows=FlowOptions(midstream=False))))
    results = [off.client(REQUEST), off.server(b"HTTP/1.1 200 OK\r\n\r\n"), off.client(REQUEST)]
    # No session: never established, no HTTP parsing, but payload rules still see each packet.
    assert [sids(r) for r in results] == [[3], [], [3]]
    on = Conn(engine(rules))
    results = [on.client(REQUEST), on.server(b"HTTP/1.1 200 OK\r\n\r\n"), on.client(REQUEST)]
    assert [sorted(sids(r)) for r in results] == [[2, 3], [1], [1, 2, 3]]


def test_bad_tcp_checksum_keeps_a_segment_out_of_the_stream() -> None:
    rules = (
        'alert http any any -> any any (msg:"uri"; http.uri; content:"/admin"; sid:1;)\n'
        'alert tcp any any -> any any (msg:"content"; content:"admin"; sid:2;)\n'
    )
    conn = Conn(engine(rules, EngineOptions(checksum_checks="all")))
    conn.handshake()
    res = conn.client(REQUEST, chksum=0xBEEF)
    # Judged as a lone packet: the payload rule matches, the HTTP parser never saw it.
    assert sids(res) == [2]
    assert conn.eng.stats["tcp_bad_checksum"] == 1
    good = Conn(engine(rules, EngineOptions(checksum_checks="all")))
    good.handshake()
    assert sorted(sids(good.client(REQUEST))) == [1, 2]


def test_checksum_auto_mode_gives_up_on_an_offloaded_capture() -> None:
    eng = engine(
        'alert tcp any any -> any any (msg:"c"; content:"x"; sid:1;)\n', EngineOptions(checksum_checks="auto")
    )
    for i in range(1000):
        raw = bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=1000 + i, dport=80, flags="S", chksum=0x1234))
        eng.process(raw, 1.0 + i * 0.001)
    assert eng.stats["checksum_checks_disabled"] == 1
    assert eng.stats["tcp_bad_checksum"] == 1000


# ---- the per-packet alert cap (packet-alert-max) ------------------------------------------------


def test_at_most_fifteen_alerts_per_packet_keeping_the_first_in_rule_order() -> None:
    rules = "".join(f'alert icmp any any -> any any (msg:"r{i}"; itype:8; sid:{i};)\n' for i in range(1, 21))
    eng = engine(rules)
    res = eng.process(bytes(IP(src=CLIENT, dst=SERVER) / ICMP(type=8)), 1.0)
    assert sids(res) == list(range(1, 16))
    assert eng.stats["alerts_discarded"] == 5


# ---- the IPS policy turns ET's alerts into drops ------------------------------------------------


def test_policy_turns_alert_rules_into_drops(tmp_path: Path) -> None:
    (tmp_path / "et.rules").write_text(
        'alert tcp any any -> any 80 (msg:"ET EXPLOIT"; content:"evil"; classtype:attempted-admin; sid:10;)\n'
        'alert tcp any any -> any 80 (msg:"ET INFO y"; content:"info"; classtype:misc-activity; sid:11;)\n'
    )
    (tmp_path / "rules.yaml").write_text(
        "include: [et.rules]\npolicy:\n  drop: ['classtype:attempted-admin']\n"
    )
    rs = load_rule_files([tmp_path / "rules.yaml"]).ruleset
    eng = Engine(rs)
    conn = Conn(eng)
    conn.handshake()
    res = conn.client(b"info evil")
    assert (res.verdict.action, res.verdict.rule_id) == (Action.DROP, 10)
    assert sorted(sids(res)) == [10, 11]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_payload_rule_on_a_packet_without_payload_never_matches(proto: str) -> None:
    """Suricata does not run payload keywords on an empty payload, even a negated content."""
    eng = engine(f'alert {proto} any any -> any any (msg:"n"; content:!"x"; sid:1;)\n')
    empty = IP(src=CLIENT, dst=SERVER) / (TCP(flags="S") if proto == "tcp" else UDP())
    assert sids(eng.process(bytes(empty), 1.0)) == []
    full = IP(src=CLIENT, dst=SERVER) / (TCP(flags="S") if proto == "tcp" else UDP()) / b"abc"
    assert sids(eng.process(bytes(full), 2.0)) == [1]
