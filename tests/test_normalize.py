"""Normalisation: MSS clamping and TTL raising, through the engine, checksums intact."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from inline_ips.decode import decode
from inline_ips.engine import Engine
from inline_ips.normalize import Normalize, replacements
from inline_ips.respond.rewrite import apply_replacements, checksum_ok
from inline_ips.rules.yaml_loader import RulesError, load_rules_text
from inline_ips.verdict import Action, Reason

SYN_1460 = bytes(
    IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / TCP(flags="S", options=[("NOP", None), ("MSS", 1460)])
)


@pytest.mark.parametrize(
    ("norm", "raw", "expected"),
    [
        (Normalize(tcp_mss_max=1400), SYN_1460, [(43, b"\x05\x78")]),  # IP 20 + TCP 20 + NOP 1 + kind, len 2
        (Normalize(tcp_mss_max=1460), SYN_1460, []),  # not larger: left alone
        (Normalize(tcp_mss_max=1400), bytes(IP() / TCP(flags="A", options=[("MSS", 1460)])), []),  # not a SYN
        (Normalize(tcp_mss_max=1400), bytes(IP() / TCP(flags="S")), []),  # no MSS option: nothing to lower
        (Normalize(ttl_min=5, ttl_set=64), bytes(IP(ttl=2) / TCP()), [(8, b"\x40")]),
        (Normalize(ttl_min=5, ttl_set=64), bytes(IP(ttl=5) / TCP()), []),
        (Normalize(ttl_min=5, ttl_set=64), bytes(IPv6(hlim=1) / TCP()), [(7, b"\x40")]),
        (Normalize(), bytes(IP(ttl=1) / TCP(flags="S", options=[("MSS", 9000)])), []),
    ],
)
def test_replacements(norm: Normalize, raw: bytes, expected: list[tuple[int, bytes]]) -> None:
    assert replacements(norm, decode(raw, 0.0)) == expected


def test_engine_rewrites_and_checksums_stay_valid() -> None:
    rules = load_rules_text("normalize: {tcp_mss_max: 1200, ttl_min: 3, ttl_set: 64}\n", "n.yaml")
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2", ttl=2) / TCP(flags="S", options=[("MSS", 1460)]))
    v = Engine(rules).process(raw, 1.0).verdict
    assert (v.action, v.reason) == (Action.REWRITE, Reason.NORMALIZE)
    out = apply_replacements(raw, v.replacements)
    pkt = IP(out)
    assert pkt.ttl == 64
    assert dict(pkt[TCP].options)["MSS"] == 1200
    assert checksum_ok(out)


def test_a_drop_is_not_turned_into_a_rewrite() -> None:
    rules = load_rules_text(
        "normalize: {ttl_min: 3}\nsignatures:\n  - {sid: 1, msg: m, proto: tcp, flags: S, action: drop}\n",
        "n.yaml",
    )
    assert Engine(rules).process(bytes(IP(ttl=1) / TCP(flags="S")), 1.0).verdict.action is Action.DROP


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "normalize: {tcp_mss_max: 100}\n",
            "n.yaml:1: normalize: 'tcp_mss_max' must be an integer from 536 to 65535",
        ),
        ("normalize: {ttl_set: 64}\n", "n.yaml:1: normalize: 'ttl_set' needs 'ttl_min'"),
        (
            "normalize: {ttl_min: 9, ttl_set: 4}\n",
            "n.yaml:1: normalize: 'ttl_set' must not be below 'ttl_min'",
        ),
        ("normalize:\n  mss: 1400\n", "n.yaml:2: normalize: unknown key 'mss'"),
    ],
)
def test_bad_normalize_settings_are_named(text: str, error: str) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "n.yaml")
    assert exc.value.errors[0].startswith(error)
