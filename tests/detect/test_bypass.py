"""Flow bypass: which flows leave the queue, and which rules hold them back."""

from __future__ import annotations

import random

from scapy.layers.inet import IP, TCP

from inline_ips.detect.bypass import BypassOptions
from inline_ips.engine import Engine, Result
from inline_ips.lab import synth
from inline_ips.options import EngineOptions
from inline_ips.rules.yaml_loader import load_rules_text

DEFAULTS = """
allowlist: [192.0.2.250]
signatures:
  - {sid: 1, msg: http rule, proto: http, http.uri: [{content: "union"}]}
  - {sid: 2, msg: tls rule, proto: tls, tls.sni: [{content: "evil"}]}
  - {sid: 3, msg: probe rule, proto: tcp, flags: "0"}
rate:
  - {sid: 4, msg: syn rate, proto: tcp, key: dst, measure: syns, window: 1s, threshold: 1000}
  - {sid: 5, msg: scan, proto: tcp, key: src+dst, measure: distinct_dst_ports, window: 10s, threshold: 25}
"""


def _engine(extra: str = "", after: int = 20) -> Engine:
    rules = load_rules_text(DEFAULTS + extra, "bypass.yaml")
    return Engine(rules, EngineOptions(bypass=BypassOptions(after_packets=after, after_bytes=0)))


def _conn(
    first_payload: bytes, dport: int = 5201, src: str = "10.0.0.1", n: int = 40
) -> list[tuple[float, bytes]]:
    """A handshake, the client's first payload, then server data and client ACKs."""
    conn = synth.TcpConversation(random.Random(1), src, 40000, "10.0.0.2", dport)
    pkts = conn.handshake(1000.0, 0.001)
    pkts.append(conn.client_data(1000.01, first_payload))
    t = 1000.02
    for _ in range(n):
        t += 0.001
        pkts.append(conn.server_data(t, b"\x00\x01" * 700))
        pkts.append(conn.client_ack(t + 0.0001))
    return pkts


def _run(engine: Engine, pkts: list[tuple[float, bytes]]) -> list[Result]:
    return [engine.process(raw, ts) for ts, raw in pkts]


def _first_bypass(results: list[Result]) -> int | None:
    return next((i for i, r in enumerate(results) if r.bypass), None)


def test_unknown_protocol_flow_is_bypassed_after_n_packets() -> None:
    results = _run(_engine(), _conn(b"\x16\x00binary-protocol"))
    assert _first_bypass(results) == 19  # the 20th packet of the flow
    assert all(r.bypass for r in results[19:])


def test_http_flow_is_held_by_http_rules() -> None:
    results = _run(_engine(), _conn(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", dport=80))
    assert _first_bypass(results) is None


def test_tls_flow_is_bypassed_after_the_client_hello() -> None:
    results = _run(_engine(), _conn(synth.client_hello("www.example.test"), dport=443))
    assert _first_bypass(results) == 19


def test_payload_rule_that_fits_the_flow_holds_it() -> None:
    extra = "  - {sid: 6, msg: payload, proto: tcp, dst_port: 5201, payload: [{content: xyz}]}\n"
    rules = DEFAULTS.replace("rate:", extra + "rate:")
    engine = Engine(load_rules_text(rules, "b.yaml"), EngineOptions(bypass=BypassOptions(after_packets=20)))
    assert _first_bypass(_run(engine, _conn(b"\x00data"))) is None
    # ... but not a flow on another port.
    engine = Engine(load_rules_text(rules, "b.yaml"), EngineOptions(bypass=BypassOptions(after_packets=20)))
    assert _first_bypass(_run(engine, _conn(b"\x00data", dport=5202))) == 19


def test_rate_rule_counting_every_packet_holds_matching_flows() -> None:
    extra = "  - {sid: 7, msg: pps, proto: tcp, key: src, measure: packets, window: 1s, threshold: 100000}\n"
    assert _first_bypass(_run(_engine(extra), _conn(b"\x00x"))) is None


def test_flow_with_an_alert_is_never_bypassed() -> None:
    pkts = _conn(b"\x00x")
    # A NULL-flag probe inside the flow raises an alert (and is dropped).
    probe = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=5201, flags=0)
    pkts.insert(5, (1000.015, bytes(probe)))
    results = _run(_engine(), pkts)
    assert results[5].alerts
    assert _first_bypass(results) is None


def test_allowlisted_flow_is_bypassed_at_once() -> None:
    results = _run(_engine(), _conn(b"\x00x", src="192.0.2.250"))
    assert results[0].bypass


def test_bypassed_flow_is_no_longer_inspected() -> None:
    """The trade-off operators choose with bypass: later packets are the kernel's alone."""
    engine = _engine()
    pkts = _conn(b"\x00x")
    results = _run(engine, pkts)
    assert results[-1].bypass
    assert engine.stats["bypassed_packets"] == len(pkts) - 20


def test_bypass_disabled() -> None:
    engine = Engine(load_rules_text(DEFAULTS, "b.yaml"), EngineOptions(bypass=BypassOptions(0, 0, False)))
    assert _first_bypass(_run(engine, _conn(b"\x00x", src="192.0.2.250"))) is None


def test_rate_rules_that_only_count_syn_packets_do_not_hold_a_flow() -> None:
    """SYN-ACK reflection counts packets with SYN+ACK: an established flow sends no more."""
    extra = (
        '  - {sid: 8, msg: reflection, proto: tcp, flags: "SA,CE", key: dst, measure: packets,'
        " window: 1s, threshold: 9}\n"
    )
    assert _first_bypass(_run(_engine(extra), _conn(b"\x00x"))) == 19


def test_dns_rate_rules_do_not_hold_a_flow_known_to_carry_something_else() -> None:
    extra = (
        "  - {sid: 9, msg: amp, proto: dns, key: dst, measure: dns_response_bytes, window: 1s,"
        " threshold: 9}\n"
    )
    assert _first_bypass(_run(_engine(extra), _conn(b"\x00x"))) == 19


def test_the_default_rules_let_a_bulk_non_http_flow_go() -> None:
    from inline_ips.rules.loader import load_rule_files
    from tests.corpus import DEFAULT_RULES

    engine = Engine(load_rule_files([DEFAULT_RULES]).ruleset)
    results = _run(engine, _conn(b"iperf3-cookie-0123456789abcdefghijklmn", n=80))
    assert _first_bypass(results) == 63  # after_packets defaults to 64
