"""Issue 7, point 5: management (allowlisted) addresses are never dropped, rejected or blocked.

The rules are the default ``rules.yaml`` plus rules written to match every
packet with every action (a signature per action and protocol, rate rules
with threshold 1 keyed by source that drop, reject and block), and an
allowlist of CIDRs for both families. Packets from and to allowlisted
addresses, IPv4 and IPv6, through the real :class:`Engine`, table-driven
over every action and rule kind: the verdict is accept every time and the
blocklist never holds them. The same rules against an address outside the
allowlist do drop and block it (so the table cannot pass by matching
nothing), the block expires on a frozen clock, the blocklist is capped with
refusals counted, and IPv6 sources are blocked, expired and allowlisted the
same way. ``inline-ips block add`` refusing allowlisted addresses is
``tests/firewall/test_commands.py::test_block_add_refuses_allowlisted_and_bad_input``
(against the real ipset, in a namespace); it is called here too, before any
kernel is touched, since it refuses first.

The kernel layer is ``tests/firewall/test_allowlist.py``: the block-set DROP
of the iptables chain exempts the allowlist (its own ``hash:net`` ipsets,
filled at install and swapped on reload), so an allowlisted address that got
into the block set another way (an ``ipset add`` by hand, a set kept from
before the allowlist changed) still passes, from and to it, IPv4 and IPv6,
with real traffic through a namespace router.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.clock import FrozenClock
from inline_ips.engine import Engine
from inline_ips.firewall.commands import BlockRefusedError, block_add
from inline_ips.firewall.iptables import FirewallConfig
from inline_ips.options import EngineOptions
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import RuleSet
from inline_ips.rules.yaml_loader import load_rules_text
from inline_ips.verdict import Action

ROOT = Path(__file__).resolve().parent.parent
ALLOW4, ALLOW6 = "198.18.0.0/24", "2001:db8:aa::/48"
MGMT4, MGMT6 = "198.18.0.7", "2001:db8:aa::7"  # management hosts, inside the allowlist
OTHER4, OTHER6 = "203.0.113.9", "2001:db8:bb::9"  # ordinary hosts, outside it
PEER4, PEER6 = "192.168.1.10", "fd00::10"
ACTIONS = ("drop", "reject", "block")
PROTOS = ("tcp", "udp", "icmp", "icmpv6", "ip")


def _for(action: str) -> str:
    return "    block_for: 1m\n" if action == "block" else ""


def _everything_rules() -> str:
    """Signatures matching any packet with every action, and rate rules firing on the first packet."""
    out = [f"allowlist:\n  - {ALLOW4}\n  - {ALLOW6}\n", "signatures:\n"]
    sid = 9_100_000
    for action in ACTIONS:
        for proto in PROTOS:
            sid += 1
            out.append(
                f"  - sid: {sid}\n    msg: 'match everything: {action} {proto}'\n"
                f"    action: {action}\n{_for(action)}    proto: {proto}\n"
            )
        sid += 1  # and one with a payload content every test packet carries
        out.append(
            f"  - sid: {sid}\n    msg: 'match content: {action}'\n    action: {action}\n"
            f"{_for(action)}    payload:\n      - content: 'mgmt'\n"
        )
    out.append("rate:\n")
    for action in ACTIONS:
        for key in ("src", "src+dst"):
            sid += 1
            out.append(
                f"  - sid: {sid}\n    msg: 'rate {action} {key}'\n    action: {action}\n"
                f"{_for(action)}    key: {key}\n    measure: packets\n    window: 1s\n    threshold: 1\n"
            )
    return "".join(out)


def ruleset() -> RuleSet:
    default = load_rule_files([ROOT / "rules.yaml"]).ruleset
    return default.merged(load_rules_text(_everything_rules(), "lockout.yaml"))


def packets(src: str, dst: str) -> list[tuple[str, ScapyPacket]]:
    """One packet of each kind a management session uses, from ``src`` to ``dst``."""
    v6 = ":" in src
    ip: ScapyPacket = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    echo: ScapyPacket = ICMPv6EchoRequest() if v6 else ICMP()
    return [
        ("ssh syn", ip / TCP(sport=50000, dport=22, flags="S")),
        ("ssh data", ip / TCP(sport=50001, dport=22, flags="PA") / Raw(b"mgmt session")),
        ("http", ip / TCP(sport=50002, dport=80, flags="PA") / Raw(b"GET /mgmt HTTP/1.1\r\nHost: r\r\n\r\n")),
        ("snmp", ip / UDP(sport=50003, dport=161) / Raw(b"mgmt")),
        ("dns", ip / UDP(sport=50004, dport=53) / Raw(b"mgmt")),
        ("ping", ip / echo / Raw(b"mgmt")),
    ]


def _engine(clock: FrozenClock, **opts: int) -> Engine:
    return Engine(ruleset(), EngineOptions(**opts))  # type: ignore[arg-type]


def _addr(text: str) -> tuple[int, int]:
    a = ipaddress.ip_address(text)
    return a.version, int(a)


DIRECTIONS = [
    ("v4 from mgmt", MGMT4, PEER4),
    ("v4 to mgmt", PEER4, MGMT4),
    ("v6 from mgmt", MGMT6, PEER6),
    ("v6 to mgmt", PEER6, MGMT6),
]


@pytest.mark.parametrize(("case", "src", "dst"), DIRECTIONS, ids=[d[0] for d in DIRECTIONS])
def test_allowlisted_hosts_are_always_accepted_and_never_blocked(case: str, src: str, dst: str) -> None:
    clock = FrozenClock()
    eng = _engine(clock)
    for _round in range(3):  # again and again: rate rules past threshold, flows marked dropped
        for kind, p in packets(src, dst):
            res = eng.process(bytes(p), clock.now())
            assert res.verdict.action is Action.ACCEPT, (case, kind, res.verdict)
            assert res.blocked is None, (case, kind)
            clock.advance(0.01)
    assert len(eng.blocklist) == 0
    assert eng.stats["allowlist_overrides"] > 0  # the rules did match: the allowlist overrode them


@pytest.mark.parametrize("src", [OTHER4, OTHER6])
def test_the_same_rules_drop_and_block_a_host_outside_the_allowlist(src: str) -> None:
    # The control: without this, the test above would pass with rules that match nothing.
    clock = FrozenClock()
    eng = _engine(clock)
    dst = PEER6 if ":" in src else PEER4
    verdicts = [eng.process(bytes(p), clock.now()).verdict for _, p in packets(src, dst)]
    assert verdicts[0].action is Action.BLOCK
    # Blocked from then on: the (emulated) kernel blocklist drops before any rule runs.
    assert {(v.action, v.reason.value) for v in verdicts[1:]} == {(Action.DROP, "blocklist")}
    version, addr = _addr(src)
    assert eng.blocklist.is_blocked(version, addr, clock.now())


@pytest.mark.parametrize("rule_kind", ["signature", "rate"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("src", [MGMT4, MGMT6, OTHER4, OTHER6])
def test_each_action_and_rule_kind(rule_kind: str, action: str, src: str) -> None:
    """One rule at a time (default rules beside it): allowlisted accepted, others get the action."""
    sid = 9_200_001
    if rule_kind == "signature":
        rule = f"signatures:\n  - sid: {sid}\n    msg: x\n    action: {action}\n{_for(action)}"
    else:
        rule = (
            f"rate:\n  - sid: {sid}\n    msg: x\n    action: {action}\n{_for(action)}"
            "    key: src\n    measure: packets\n    window: 1s\n    threshold: 1\n"
        )
    text = f"allowlist:\n  - {ALLOW4}\n  - {ALLOW6}\n{rule}"
    rules = load_rule_files([ROOT / "rules.yaml"]).ruleset.merged(load_rules_text(text, "one.yaml"))
    eng = Engine(rules)
    dst = PEER6 if ":" in src else PEER4
    allowed = src in (MGMT4, MGMT6)
    p = IPv6(src=src, dst=dst) / UDP(dport=161) if ":" in src else IP(src=src, dst=dst) / UDP(dport=161)
    res = eng.process(bytes(p), 100.0)
    want = Action.ACCEPT if allowed else Action[action.upper()]
    assert res.verdict.action is want
    assert (len(eng.blocklist) == 1) is (not allowed and action == "block")


@pytest.mark.parametrize("src", [OTHER4, OTHER6])
def test_blocks_expire_on_the_engines_clock(src: str) -> None:
    clock = FrozenClock(1000.0)
    eng = _engine(clock)
    dst = PEER6 if ":" in src else PEER4
    _, first = packets(src, dst)[0]
    assert eng.process(bytes(first), clock.now()).verdict.action is Action.BLOCK
    version, addr = _addr(src)
    assert eng.blocklist.entries(clock.now()) == [(version, addr, 60.0)]  # block_for: 1m
    clock.advance(59.999)
    _, later = packets(src, dst)[3]
    res = eng.process(bytes(later), clock.now())
    assert res.verdict.action is Action.DROP  # still blocked: dropped before the rules
    assert eng.stats["blocklist_drops"] == 1
    clock.advance(0.002)
    assert not eng.blocklist.is_blocked(version, addr, clock.now())
    assert eng.blocklist.stats["expired"] == 1


def test_the_blocklist_is_capped_and_counts_refusals_for_both_families() -> None:
    clock = FrozenClock()
    eng = _engine(clock, blocklist_max=4)
    offenders = [f"203.0.113.{i}" for i in range(1, 6)] + [f"2001:db8:bb::{i:x}" for i in range(1, 6)]
    for src in offenders:
        dst = PEER6 if ":" in src else PEER4
        eng.process(bytes(packets(src, dst)[3][1]), clock.now())
        clock.advance(0.001)
    assert len(eng.blocklist) == 4
    assert eng.blocklist.stats["refused_full"] == len(offenders) - 4
    assert eng.stats["blocklist_full"] == len(offenders) - 4
    # Management hosts still pass when the blocklist is full.
    for src, dst in ((MGMT4, PEER4), (MGMT6, PEER6)):
        for _, p in packets(src, dst):
            assert eng.process(bytes(p), clock.now()).verdict.action is Action.ACCEPT


@pytest.mark.parametrize("address", [MGMT4, MGMT6, "198.18.0.255", "2001:db8:aa:ffff::1"])
def test_block_add_refuses_allowlisted_addresses(address: str) -> None:
    # Refused before any kernel call: no firewall is installed in this process's namespace.
    with pytest.raises(BlockRefusedError, match="allowlist"):
        block_add(FirewallConfig(), address, 60, allowlist=ruleset().allowlist)
