"""The engine end to end: allowlist, blocklist, flow drop, verdict strength, fail-open, defrag."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP, fragment

from inline_ips.engine import Engine, Result
from inline_ips.options import EngineOptions
from inline_ips.packet import Packet
from inline_ips.rules.yaml_loader import load_rules_text
from inline_ips.verdict import Action, Reason, Verdict

ALLOWED = "10.9.9.9"
ATTACKER = "203.0.113.5"
SERVER = "192.0.2.1"

RULES = """\
allowlist: [10.9.9.9]
signatures:
  - sid: 1
    msg: drop attack
    action: drop
    proto: tcp
    payload: attack
  - sid: 2
    msg: block evil
    action: block
    block_for: 30s
    proto: tcp
    payload: evil
  - sid: 3
    msg: alert attack
    payload: attack
  - sid: 4
    msg: reject
    action: reject
    proto: tcp
    payload: rejectme
rate:
  - sid: 10
    msg: udp flood
    action: block
    block_for: 30s
    proto: udp
    key: src
    window: 10s
    threshold: 3
"""


def make(options: EngineOptions | None = None, rules: str = RULES) -> Engine:
    return Engine(load_rules_text(rules, "test.yaml"), options)


def ip_int(addr: str) -> int:
    return int(ipaddress.ip_address(addr))


def tcp(
    src: str, data: bytes = b"", dst: str = SERVER, sport: int = 40000, dport: int = 80, flags: str = "PA"
) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=1000) / data)


def udp(src: str, dst: str = SERVER, dport: int = 9999) -> bytes:
    return bytes(IP(src=src, dst=dst) / UDP(sport=5000, dport=dport) / b"x")


def sids(res: Result) -> list[int]:
    return [a.sid for a in res.alerts]


# ---- allowlist ------------------------------------------------------------------------


def test_allowlisted_source_is_never_dropped_but_still_alerts() -> None:
    eng = make()
    res = eng.process(tcp(ALLOWED, b"attack evil rejectme"), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    # Alerts come in Suricata's rule order: drop (and block), reject, then alert rules.
    assert sids(res) == [1, 2, 4, 3]
    assert res.blocked is None
    assert len(eng.blocklist) == 0
    assert eng.stats["allowlist_overrides"] == 1
    # The flow was not marked dropped either.
    assert eng.process(tcp(ALLOWED, b"more"), 1.1).verdict == Verdict(Action.ACCEPT)


def test_allowlisted_source_is_never_blocked_by_a_rate_rule() -> None:
    eng = make()
    results = [eng.process(udp(ALLOWED, dport=1000 + i), 1.0 + i / 100) for i in range(6)]
    assert [r.verdict.action for r in results] == [Action.ACCEPT] * 6
    assert [sids(r) for r in results] == [[], [], [10], [], [], []]
    assert len(eng.blocklist) == 0
    assert eng.stats["allowlist_overrides"] == 4


def test_allowlisted_destination_is_never_dropped() -> None:
    eng = make()
    res = eng.process(tcp(ATTACKER, b"attack", dst=ALLOWED), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    assert sids(res) == [1, 3]


def test_allowlist_rewrite_still_applies() -> None:
    rules = (
        "allowlist: 10.9.9.9\nsignatures:\n  - sid: 1\n    msg: rw\n    action: rewrite\n"
        "    payload:\n      - content: abc\n        replace: xyz\n"
    )
    res = make(rules=rules).process(tcp(ALLOWED, b"abc"), 1.0)
    assert res.verdict.action is Action.REWRITE
    assert res.verdict.replacements == ((40, b"xyz"),)


# ---- blocklist --------------------------------------------------------------------------


def test_block_rule_blocks_the_source_until_block_for_runs_out() -> None:
    eng = make()
    res = eng.process(tcp(ATTACKER, b"evil"), 100.0)
    assert res.verdict == Verdict(Action.BLOCK, Reason.RULE, 2, 30)
    assert res.blocked == (4, ip_int(ATTACKER), 30)
    assert eng.blocklist.entries(100.0) == [(4, ip_int(ATTACKER), 30.0)]
    # Anything later from that source is dropped before any rule runs, whatever it is.
    later = eng.process(udp(ATTACKER, dst="198.51.100.7"), 110.0)
    assert later.verdict == Verdict(Action.DROP, Reason.BLOCKLIST)
    assert later.alerts == []
    assert eng.stats["blocklist_drops"] == 1
    # Other sources, and traffic *to* the blocked address, go on.
    assert eng.process(udp("203.0.113.6"), 110.0).verdict.action is Action.ACCEPT
    assert eng.process(udp(SERVER, dst=ATTACKER), 110.0).verdict.action is Action.ACCEPT
    assert eng.process(udp(ATTACKER), 129.9).verdict.reason is Reason.BLOCKLIST
    # block_for has passed.
    assert eng.process(udp(ATTACKER, dport=1), 130.0).verdict == Verdict(Action.ACCEPT)
    assert len(eng.blocklist) == 0


def test_rate_block_puts_source_in_blocklist() -> None:
    eng = make()
    got = [eng.process(udp(ATTACKER, dport=1000 + i), 50.0 + i / 10) for i in range(4)]
    assert [r.verdict for r in got[:2]] == [Verdict(Action.ACCEPT)] * 2
    assert got[2].verdict == Verdict(Action.BLOCK, Reason.RATE, 10, 30)
    assert sids(got[2]) == [10]
    assert got[2].blocked == (4, ip_int(ATTACKER), 30)
    assert got[3].verdict == Verdict(Action.DROP, Reason.BLOCKLIST)


def test_full_blocklist_is_counted() -> None:
    eng = make(EngineOptions(blocklist_max=1))
    assert eng.process(tcp(ATTACKER, b"evil"), 1.0).blocked is not None
    res = eng.process(tcp("203.0.113.6", b"evil"), 1.0)
    assert res.verdict.action is Action.BLOCK  # still dropped, just not remembered
    assert res.blocked is None
    assert eng.stats["blocklist_full"] == 1


# ---- flow drop ------------------------------------------------------------------------


def test_flow_is_dropped_after_a_drop_rule_matched() -> None:
    eng = make()
    res = eng.process(tcp(ATTACKER, b"attack"), 1.0)
    assert res.verdict == Verdict(Action.DROP, Reason.RULE, 1)
    assert sids(res) == [1, 3]
    nxt = eng.process(tcp(ATTACKER, b"innocent"), 1.1)
    assert nxt.verdict == Verdict(Action.DROP, Reason.FLOW_DROP)
    assert nxt.flow_id == res.flow_id
    reply = eng.process(tcp(SERVER, b"reply", dst=ATTACKER, sport=80, dport=40000), 1.2)
    assert reply.verdict == Verdict(Action.DROP, Reason.FLOW_DROP)
    # Another connection from the same source is judged on its own.
    other = eng.process(tcp(ATTACKER, b"innocent", sport=40001), 1.3)
    assert other.verdict == Verdict(Action.ACCEPT)
    assert len(eng.blocklist) == 0


def test_flow_drop_can_be_turned_off() -> None:
    eng = make(EngineOptions(drop_flow_on_match=False))
    assert eng.process(tcp(ATTACKER, b"attack"), 1.0).verdict.action is Action.DROP
    assert eng.process(tcp(ATTACKER, b"innocent"), 1.1).verdict == Verdict(Action.ACCEPT)


# ---- verdict strength -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected", "alerts"),
    [
        (b"hello", Verdict(Action.ACCEPT), []),
        (b"attack", Verdict(Action.DROP, Reason.RULE, 1), [1, 3]),
        (b"rejectme attack", Verdict(Action.REJECT, Reason.RULE, 4), [1, 4, 3]),
        (b"rejectme", Verdict(Action.REJECT, Reason.RULE, 4), [4]),
        (b"attack evil rejectme", Verdict(Action.BLOCK, Reason.RULE, 2, 30), [1, 2, 4, 3]),
    ],
)
def test_strongest_action_wins(payload: bytes, expected: Verdict, alerts: list[int]) -> None:
    res = make().process(tcp(ATTACKER, payload), 1.0)
    assert res.verdict == expected
    assert sids(res) == alerts


def test_alert_only_rule_accepts() -> None:
    res = make().process(udp(ATTACKER), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    res = make().process(bytes(IP(src=ATTACKER, dst=SERVER) / UDP(sport=1, dport=2) / b"attack"), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    assert sids(res) == [3]
    assert res.alerts[0].action is Action.ACCEPT
    assert res.alerts[0].msg == "alert attack"


# ---- malformed packets and internal errors --------------------------------------------

FULL = tcp(ATTACKER, b"attack")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02\x03garbage", "ip_version_unknown"),
        (FULL[:10], "ipv4_truncated"),
        (FULL[:30], "ipv4_truncated"),
        (bytes([0x41]) + FULL[1:], "ipv4_bad_ihl"),
        (bytes.fromhex("6000000000"), "ipv6_truncated"),
    ],
    ids=["empty", "garbage", "ip_header_cut", "tcp_header_cut", "bad_ihl", "ipv6_cut"],
)
def test_malformed_packets(raw: bytes, error: str) -> None:
    eng = make()
    res = eng.process(raw, 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    assert res.packet.error == error
    assert dict(eng.decode_errors) == {error: 1}
    assert eng.stats["engine_errors"] == 0
    assert len(eng.flows) == 0

    strict = make(EngineOptions(drop_invalid=True))
    res = strict.process(raw, 1.0)
    assert res.verdict == Verdict(Action.DROP, Reason.DECODE_ERROR)
    assert dict(strict.decode_errors) == {error: 1}


def test_exception_in_a_stage_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = make()

    def boom(*_args: object) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(eng.signatures, "packet", boom)
    res = eng.process(tcp(ATTACKER, b"attack"), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    assert res.alerts == []
    assert isinstance(res.packet, Packet)
    assert eng.stats["engine_errors"] == 1
    assert dict(eng.engine_errors) == {"RuntimeError": 1}
    monkeypatch.undo()
    # The next packet runs normally.
    assert eng.process(tcp(ATTACKER, b"attack", sport=40002), 1.1).verdict.action is Action.DROP
    assert eng.stats["packets"] == 2


def test_raise_errors_lets_a_stage_exception_through_for_the_fuzzer(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = make()
    eng.raise_errors = True

    def boom(*_args: object) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(eng.signatures, "packet", boom)
    with pytest.raises(RuntimeError, match="bug"):
        eng.process(tcp(ATTACKER, b"attack"), 1.0)
    assert eng.stats["engine_errors"] == 0


def test_exception_in_rate_stage_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = make()

    def boom(*_args: object) -> list[object]:
        raise KeyError("bug")

    monkeypatch.setattr(eng.rates, "evaluate", boom)
    res = eng.process(tcp(ATTACKER, b"evil"), 1.0)
    assert res.verdict == Verdict(Action.ACCEPT)
    assert len(eng.blocklist) == 0
    assert dict(eng.engine_errors) == {"KeyError": 1}


# ---- fragments ----------------------------------------------------------------------------

DNS_RESPONSE = DNS(
    id=1,
    qr=1,
    qd=DNSQR(qname="x.example", qtype="TXT"),
    an=DNSRR(rrname="x.example", type="TXT", rdata=["a" * 250] * 12),
)


def amp_rules(threshold: int) -> str:
    return (
        "rate:\n  - sid: 20\n    msg: dns amp\n    action: drop\n    proto: dns\n    src_port: 53\n"
        f"    key: dst\n    measure: dns_response_bytes\n    window: 1s\n    threshold: {threshold}\n"
    )


@pytest.mark.parametrize(("extra", "fires"), [(0, True), (1, False)])
def test_fragmented_dns_response_counts_full_size(extra: int, fires: bool) -> None:
    size = len(bytes(DNS_RESPONSE))
    assert size > 3000
    eng = make(rules=amp_rules(size + extra))
    dgram = IP(src="198.51.100.53", dst="10.0.0.1", id=4242) / UDP(sport=53, dport=5353) / DNS_RESPONSE
    pieces = list(fragment(dgram, fragsize=1000))  # type: ignore[no-untyped-call]
    assert len(pieces) == 4
    results = [eng.process(bytes(p), 1.0 + i / 1000) for i, p in enumerate(pieces)]
    for r in results[:-1]:
        assert r.verdict == Verdict(Action.ACCEPT)
        assert r.alerts == []
    last = results[-1]
    assert eng.stats["reassembled"] == 1
    assert last.app_proto == "dns"
    if fires:
        assert sids(last) == [20]
        assert last.verdict == Verdict(Action.DROP, Reason.RATE, 20)
    else:
        assert sids(last) == []
        assert last.verdict == Verdict(Action.ACCEPT)
