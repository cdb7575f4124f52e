"""rules.yaml loading: the frozen model it builds, and every error named by file, line and rule."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from inline_ips.packet import ACK, CWR, ECE, PROTO_ICMP, PROTO_TCP, PROTO_UDP, SYN
from inline_ips.rules.loader import load_rule_files
from inline_ips.rules.model import (
    AppProto,
    Buffer,
    Content,
    FlagsMatch,
    FlowMatch,
    Measure,
    Origin,
    RateKey,
    Regex,
    RuleAction,
    RuleSet,
)
from inline_ips.rules.yaml_loader import DEFAULT_BLOCK_SECONDS, RulesError, load_rules_text, load_rules_yaml
from inline_ips.verdict import Action

ROOT = Path(__file__).resolve().parents[2]

VALID = textwrap.dedent(
    """\
    vars:
      HOME_NET: "[10.0.0.0/8]"
      WEB_PORTS: [80, 8080]
    allowlist: [127.0.0.0/8, "::1"]
    signatures:
      - sid: 1001
        rev: 2
        msg: "web attack"
        classtype: web-application-attack
        priority: 1
        action: drop
        proto: http
        dst: $HOME_NET
        dst_port: $WEB_PORTS
        flow: to_server,established
        metadata:
          created_at: "2024_01_01"
          tag: [a, b]
        http.uri:
          - content: "/Admin"
            nocase: true
          - regex: 'id=\\d+'
            relative: true
      - sid: 1002
        msg: rewrite it
        action: rewrite
        proto: tcp
        flags: "S,CE"
        payload:
          - content: "|41 42|C"
            offset: 2
            depth: 10
            replace: "xyz"
          - content: "!"
            distance: 1
            within: 4
            negate: true
      - sid: 1003
        msg: icmp probe
        action: block
        proto: icmp
        icmp_type: 13
        icmp_code: 0
    rate:
      - sid: 2001
        msg: syn flood
        action: block
        block_for: 5m
        proto: tcp
        key: src+dst
        measure: syns
        window: 500ms
        threshold: 100
      - sid: 2002
        msg: dns amp
        proto: dns
        src_port: 53
        flow: to_server
        key: dst
        measure: dns_response_bytes
        window: 10s
        threshold: 64000
    """
)


def _load_valid() -> RuleSet:
    return load_rules_text(VALID, "test.yaml")


def test_valid_signature_fields() -> None:
    rs = _load_valid()
    assert [s.sid for s in rs.signatures] == [1001, 1002, 1003]
    web = rs.signatures[0]
    assert web.msg == "web attack"
    assert (web.rev, web.gid, web.priority, web.classtype) == (2, 1, 1, "web-application-attack")
    assert web.action == RuleAction(Action.DROP, 0)
    assert VALID.splitlines()[5] == "  - sid: 1001"
    assert web.origin == Origin("test.yaml", 6)
    assert str(web.origin) == "test.yaml:6"
    assert web.header.proto == PROTO_TCP
    assert web.header.app is AppProto.HTTP
    assert web.header.src.is_any and web.header.sport.is_any
    assert web.header.dst.text == "$HOME_NET"
    assert web.header.dst.contains(4, 0x0A010203) is True
    assert web.header.dst.contains(4, 0x0B010203) is False
    assert web.header.dport.contains(8080) is True
    assert web.header.dport.contains(443) is False
    assert web.flow == FlowMatch(to_server=True, established=True)
    assert web.metadata == {"created_at": ["2024_01_01"], "tag": ["a", "b"]}
    assert len(web.buffers) == 1
    assert web.buffers[0].buffer is Buffer.HTTP_URI
    content, regex = web.buffers[0].matches
    assert content == Content(pattern=b"/admin", nocase=True)
    assert isinstance(regex, Regex)
    assert (regex.source, regex.negated, regex.relative) == ("id=\\d+", False, True)
    assert regex.compiled.search(b"?id=42") is not None
    assert regex.compiled.search(b"?id=x") is None
    assert web.rewrites is False

    rewrite = rs.signatures[1]
    assert rewrite.action == RuleAction(Action.REWRITE, 0)
    assert rewrite.header.flags == FlagsMatch(SYN, 0xFF & ~(CWR | ECE), "exact")
    assert rewrite.header.app is AppProto.NONE
    assert rewrite.flow == FlowMatch()
    assert rewrite.buffers[0].buffer is Buffer.PAYLOAD
    assert rewrite.buffers[0].matches == (
        Content(pattern=b"ABC", offset=2, depth=10, replace=b"xyz"),
        Content(pattern=b"!", negated=True, distance=1, within=4),
    )
    assert rewrite.rewrites is True
    assert (rewrite.priority, rewrite.classtype, rewrite.rev) == (3, "", 1)

    icmp = rs.signatures[2]
    assert icmp.action == RuleAction(Action.BLOCK, DEFAULT_BLOCK_SECONDS)
    assert (icmp.header.proto, icmp.header.icmp_type, icmp.header.icmp_code) == (PROTO_ICMP, 13, 0)
    assert icmp.buffers == ()


def test_valid_rate_and_file_fields() -> None:
    rs = _load_valid()
    syn, dns = rs.rates
    assert syn.sid == 2001
    assert syn.action == RuleAction(Action.BLOCK, 300)
    assert (syn.key, syn.measure, syn.window, syn.threshold) == (RateKey.SRC_DST, Measure.SYNS, 0.5, 100)
    assert syn.header.proto == PROTO_TCP
    assert syn.origin == Origin("test.yaml", VALID.splitlines().index("  - sid: 2001") + 1)
    assert syn.priority == 2
    assert dns.header.proto is None
    assert dns.header.app is AppProto.DNS
    assert dns.header.sport.contains(53) is True
    assert dns.header.sport.contains(54) is False
    assert dns.flow == FlowMatch(to_server=True)
    assert (dns.key, dns.measure, dns.window, dns.threshold) == (
        RateKey.DST,
        Measure.DNS_RESPONSE_BYTES,
        10.0,
        64000,
    )
    assert dns.action == RuleAction(Action.ACCEPT, 0)
    assert rs.allowlist is not None
    assert rs.allowlist.contains(4, 0x7F000001) is True
    assert rs.allowlist.contains(6, 1) is True
    assert rs.allowlist.contains(4, 0x08080808) is False
    assert rs.variables["HOME_NET"] == "[10.0.0.0/8]"
    assert rs.variables["WEB_PORTS"] == "[80,8080]"
    assert rs.variables["EXTERNAL_NET"] == "!$HOME_NET"  # defaults are kept
    assert rs.sources == ("test.yaml",)
    assert rs.includes == ()


def test_model_is_frozen() -> None:
    rs = _load_valid()
    rule = rs.signatures[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.sid = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.header.proto = PROTO_UDP  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rs.rates[0].threshold = 1  # type: ignore[misc]
    assert isinstance(rs.signatures, tuple)
    assert isinstance(rule.buffers[0].matches, tuple)


def test_empty_file_is_an_empty_ruleset() -> None:
    rs = load_rules_text("", "test.yaml")
    assert (rs.signatures, rs.rates, rs.allowlist) == ((), (), None)


def _sig(*lines: str, sid: int | None = 1001) -> str:
    """A signatures section with one rule; the rule's '- sid' is on line 2."""
    head = f"  - sid: {sid}\n" if sid is not None else "  - msg: no sid here\n"
    return "signatures:\n" + head + "".join(f"    {ln}\n" for ln in lines)


def _rate(*lines: str) -> str:
    return "rate:\n  - sid: 3001\n" + "".join(f"    {ln}\n" for ln in lines)


BROKEN: list[tuple[str, str, list[str]]] = [
    (
        "unknown_top_key",
        "vars: {}\nsignature:\n  - sid: 1\n",
        ["test.yaml:2: unknown top-level key 'signature' (did you mean 'signatures'?)"],
    ),
    (
        "unknown_rule_key",
        _rate("msg: m", "window: 1s", "treshold: 5", "threshold: 5"),
        ["test.yaml:5: rule 3001: unknown key 'treshold' (did you mean 'threshold'?)"],
    ),
    (
        "missing_sid",
        _sig("proto: tcp", sid=None),
        ["test.yaml:2: rule ?: 'sid' must be a positive integer, got None"],
    ),
    (
        "bad_sid",
        _sig("msg: m", sid=0),
        ["test.yaml:2: rule 0: 'sid' must be a positive integer, got 0"],
    ),
    (
        "duplicate_sid",
        "signatures:\n  - sid: 7\n    msg: a\n  - sid: 7\n    msg: b\n",
        ["test.yaml:4: rule 7: duplicate sid (also at line 2)"],
    ),
    (
        "duplicate_sid_across_sections",
        "signatures:\n  - sid: 7\n    msg: a\n"
        "rate:\n  - sid: 7\n    msg: b\n    window: 1\n    threshold: 1\n",
        ["test.yaml:5: rule 7: duplicate sid (also at line 2)"],
    ),
    ("missing_msg", _sig("proto: tcp"), ["test.yaml:2: rule 1001: missing required key 'msg'"]),
    ("empty_msg", _sig("msg: ''"), ["test.yaml:3: rule 1001: 'msg' must be a non-empty string, got ''"]),
    (
        "unknown_action",
        _sig("msg: m", "action: dorp"),
        ["test.yaml:4: rule 1001: unknown action 'dorp'; use one of alert, rewrite, drop, reject, block"],
    ),
    (
        "action_not_a_string",
        _sig("msg: m", "action: [drop]"),
        ["test.yaml:4: rule 1001: unknown action ['drop']; use one of alert, rewrite, drop, reject, block"],
    ),
    (
        "block_for_on_drop",
        _sig("msg: m", "action: drop", "block_for: 10m"),
        ["test.yaml:5: rule 1001: 'block_for' only applies to action: block"],
    ),
    (
        "bad_block_for",
        _sig("msg: m", "action: block", "block_for: soon"),
        ["test.yaml:5: rule 1001: 'soon' is not a duration (examples: 10s, 500ms, 5m, 1h)"],
    ),
    (
        "http_uri_without_http",
        _sig("msg: m", "proto: tcp", "http.uri: /admin"),
        ["test.yaml:5: rule 1001: 'http.uri' needs proto: http"],
    ),
    (
        "dns_query_without_dns",
        _sig("msg: m", "proto: udp", "dns.query: evil"),
        ["test.yaml:5: rule 1001: 'dns.query' needs proto: dns"],
    ),
    (
        "tls_sni_without_tls",
        _sig("msg: m", "proto: http", "tls.sni: evil"),
        ["test.yaml:5: rule 1001: 'tls.sni' needs proto: tls"],
    ),
    (
        "content_replace_length",
        _sig("msg: m", "action: rewrite", "payload:", "  - content: abc", "    replace: ab"),
        ["test.yaml:5: rule 1001: payload: replace must be as long as the content (3 bytes), got 2"],
    ),
    (
        "replace_without_rewrite",
        _sig("msg: m", "payload:", "  - content: abc", "    replace: abd"),
        ["test.yaml:2: rule 1001: a content with 'replace' needs action: rewrite"],
    ),
    (
        "rewrite_without_replace",
        _sig("msg: m", "action: rewrite", "payload: abc"),
        ["test.yaml:4: rule 1001: action: rewrite needs a payload content with 'replace'"],
    ),
    (
        "depth_shorter_than_content",
        _sig("msg: m", "payload:", "  - content: abcdef", "    depth: 3"),
        ["test.yaml:4: rule 1001: payload: depth 3 is shorter than the content (6 bytes)"],
    ),
    (
        "offset_with_distance",
        _sig("msg: m", "payload:", "  - content: abc", "    offset: 1", "    distance: 2"),
        ["test.yaml:4: rule 1001: payload: offset/depth cannot be mixed with distance/within on one content"],
    ),
    (
        "unknown_content_option",
        _sig("msg: m", "payload:", "  - content: abc", "    nocse: true"),
        ["test.yaml:4: rule 1001: payload: unknown content option 'nocse' (did you mean 'nocase'?)"],
    ),
    (
        "bad_content_hex",
        _sig("msg: m", "payload: '|4|'"),
        ["test.yaml:4: rule 1001: payload: content '|4|': odd number of hex digits in |4|"],
    ),
    (
        "rate_missing_window_and_threshold",
        _rate("msg: m", "proto: tcp"),
        [
            "test.yaml:2: rule 3001: missing required key 'window'",
            "test.yaml:2: rule 3001: missing required key 'threshold'",
        ],
    ),
    (
        "rate_zero_window",
        _rate("msg: m", "window: 0s", "threshold: 3"),
        ["test.yaml:4: rule 3001: duration '0s' must be positive"],
    ),
    (
        "rate_zero_threshold",
        _rate("msg: m", "window: 1s", "threshold: 0"),
        [
            "test.yaml:5: rule 3001: 'threshold' must be an integer from 1 to 9223372036854775808, got 0",
            "test.yaml:2: rule 3001: missing required key 'threshold'",
        ],
    ),
    (
        "rate_block_with_key_dst",
        _rate("msg: m", "action: block", "key: dst", "window: 1s", "threshold: 3"),
        [
            "test.yaml:4: rule 3001: action: block needs key src or src+dst (with key dst the sources "
            "are often spoofed, and blocking them would punish bystanders); use drop"
        ],
    ),
    (
        "rate_rewrite",
        _rate("msg: m", "action: rewrite", "window: 1s", "threshold: 3"),
        ["test.yaml:4: rule 3001: a rate rule cannot rewrite; use alert, drop, reject or block"],
    ),
    (
        "rate_unknown_measure",
        _rate("msg: m", "measure: packts", "window: 1s", "threshold: 3"),
        [
            "test.yaml:4: rule 3001: unknown measure 'packts'; use one of packets, bytes, syns, "
            "distinct_dst_ports, distinct_dst_hosts, dns_response_bytes, empty_connections"
        ],
    ),
    (
        "rate_unknown_key",
        _rate("msg: m", "key: port", "window: 1s", "threshold: 3"),
        ["test.yaml:4: rule 3001: unknown key 'port'; use one of src, dst, src+dst, flow"],
    ),
    (
        "rate_syns_on_udp",
        _rate("msg: m", "proto: udp", "measure: syns", "window: 1s", "threshold: 3"),
        ["test.yaml:5: rule 3001: measure syns needs proto tcp"],
    ),
    (
        "rate_dns_bytes_without_dns",
        _rate("msg: m", "proto: udp", "measure: dns_response_bytes", "window: 1s", "threshold: 3"),
        ["test.yaml:5: rule 3001: measure dns_response_bytes needs proto: dns"],
    ),
    (
        "ports_with_icmp",
        _sig("msg: m", "proto: icmp", "dst_port: 80"),
        ["test.yaml:5: rule 1001: ports need proto tcp, udp or an app protocol, not icmp"],
    ),
    (
        "flags_with_udp",
        _sig("msg: m", "proto: udp", "flags: S"),
        ["test.yaml:5: rule 1001: 'flags' needs proto tcp (or http/tls)"],
    ),
    (
        "flags_empty",
        _sig("msg: m", "proto: tcp", "flags: ''"),
        ["test.yaml:5: rule 1001: flags '': no flags given (use 0 for none set)"],
    ),
    (
        "flags_unknown_char",
        _sig("msg: m", "proto: tcp", "flags: SZ"),
        ["test.yaml:5: rule 1001: flags 'SZ': unknown flag 'Z' (use F S R P A U C E, 1 2, 0)"],
    ),
    (
        "icmp_type_with_tcp",
        _sig("msg: m", "proto: tcp", "icmp_type: 8"),
        ["test.yaml:5: rule 1001: ICMP type/code need proto icmp or icmpv6"],
    ),
    (
        "unknown_proto",
        _sig("msg: m", "proto: sctp"),
        [
            "test.yaml:4: rule 1001: unknown proto 'sctp'; "
            "use one of ip, tcp, udp, icmp, icmpv6, http, tls, dns"
        ],
    ),
    (
        "bad_address",
        _sig("msg: m", "src: 10.0.0.300"),
        ["test.yaml:4: rule 1001: src: '10.0.0.300' is not an IP address or network"],
    ),
    (
        "undefined_variable",
        _sig("msg: m", "dst: $NOPE"),
        ["test.yaml:4: rule 1001: dst: undefined variable $NOPE"],
    ),
    (
        "reversed_port_range",
        _sig("msg: m", "proto: tcp", "dst_port: '90:80'"),
        ["test.yaml:5: rule 1001: dst_port: port range '90:80' is outside 0-65535 or reversed"],
    ),
    (
        "unknown_flow_option",
        _sig("msg: m", "flow: to_sever"),
        [
            "test.yaml:4: rule 1001: unknown flow option 'to_sever'; "
            "use to_server, to_client, established, not_established"
        ],
    ),
    (
        "self_referential_variable",
        "vars:\n  LOOP: $LOOP\nsignatures: []\n",
        ["test.yaml:2: variable LOOP: variables nest too deep (a variable refers to itself?)"],
    ),
    (
        "top_level_not_mapping",
        "- sid: 1\n",
        [
            "test.yaml:1: the top level must be a mapping with keys "
            "['allowlist', 'include', 'normalize', 'policy', 'rate', 'signatures', 'vars']"
        ],
    ),
    (
        "rule_not_mapping",
        "signatures:\n  - just a string\n",
        ["test.yaml:1: every entry of 'signatures' must be a mapping, got 'just a string'"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BROKEN], ids=[n for n, _, _ in BROKEN])
def test_broken_rules(text: str, expected: list[str]) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert exc.value.errors == expected
    assert str(exc.value) == "\n".join(expected)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("signatures:\n  - sid: 1\n    msg: ok\n\tproto: tcp\n", 4),
        ("signatures:\n  - sid: 1\n    msg: ok: no\n", 3),
        ("signatures:\n  - sid: 1\n    msg: ok\n  - sid: 2\n   msg: bad\n", 5),
    ],
    ids=["tab", "colon_in_value", "indent"],
)
def test_yaml_syntax_error_names_the_line(text: str, line: int) -> None:
    # The problem text comes from PyYAML (pure or libyaml), so only its prefix is fixed.
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert len(exc.value.errors) == 1
    assert exc.value.errors[0].startswith(f"test.yaml:{line}: YAML syntax error: ")
    assert len(exc.value.errors[0]) > len(f"test.yaml:{line}: YAML syntax error: ")


def test_bad_regex_names_file_line_rule_and_re2_reason() -> None:
    text = _sig("msg: m", "payload:", "  - regex: 'a(b'")
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert len(exc.value.errors) == 1
    err = exc.value.errors[0]
    assert err.startswith("test.yaml:4: rule 1001: payload: regex 'a(b' is not valid RE2 syntax: ")
    assert "missing )" in err


def test_backreference_is_not_re2() -> None:
    text = _sig("msg: m", "payload:", "  - regex: '(a)\\1'")
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert exc.value.errors[0].startswith(r"test.yaml:4: rule 1001: payload: regex '(a)\\1' is not valid RE2")


def test_include_of_missing_file(tmp_path: Path) -> None:
    text = "include:\n  - missing.rules\n"
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml", base_dir=tmp_path)
    assert exc.value.errors == [f"test.yaml:1: include: {tmp_path / 'missing.rules'}: no such file"]


def test_include_of_existing_file_is_resolved_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "et.rules").write_text('alert tcp any any -> any any (msg:"x"; sid:1;)\n')
    rules = tmp_path / "rules.yaml"
    rules.write_text("include: et.rules\n")
    rs = load_rules_yaml(rules)
    assert rs.includes == (str(tmp_path / "et.rules"),)
    assert rs.sources == (str(rules),)


def test_many_errors_reported_together() -> None:
    text = textwrap.dedent(
        """\
        signaturs: []
        signatures:
          - sid: 1
            msg: m
            action: dorp
          - sid: 2
            proto: udp
            flags: S
        rate:
          - sid: 1
            msg: r
            window: 1s
            threshold: 5
        """
    )
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert exc.value.errors == [
        "test.yaml:1: unknown top-level key 'signaturs' (did you mean 'signatures'?)",
        "test.yaml:5: rule 1: unknown action 'dorp'; use one of alert, rewrite, drop, reject, block",
        "test.yaml:6: rule 2: missing required key 'msg'",
        "test.yaml:8: rule 2: 'flags' needs proto tcp (or http/tls)",
    ]


def test_many_errors_include_the_duplicate() -> None:
    text = (
        "signatures:\n  - sid: 1\n    msg: a\n  - sid: 2\n    msg: b\n    action: x\n  - sid: 1\n    msg: c\n"
    )
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "test.yaml")
    assert exc.value.errors == [
        "test.yaml:6: rule 2: unknown action 'x'; use one of alert, rewrite, drop, reject, block",
        "test.yaml:7: rule 1: duplicate sid (also at line 2)",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as exc:
        load_rules_yaml(missing)
    assert len(exc.value.errors) == 1
    assert exc.value.errors[0].startswith(f"{missing}: cannot read: ")


# ---- the shipped default rules ---------------------------------------------


@pytest.fixture(scope="module")
def default_rules() -> RuleSet:
    return load_rules_yaml(ROOT / "rules.yaml")


def test_default_rules_load(default_rules: RuleSet) -> None:
    rs = default_rules
    assert len(rs.signatures) >= 10
    assert len(rs.rates) >= 10
    sids = [r.sid for r in rs.signatures] + [r.sid for r in rs.rates]
    assert len(sids) == len(set(sids))
    assert rs.allowlist is not None
    assert rs.allowlist.contains(4, 0x7F000001) is True
    assert rs.includes == ()


@pytest.mark.parametrize(
    "topic",
    [
        "SYN flood",
        "port scan",
        "ping sweep",
        "ICMP flood",
        "DNS amplification",
        "SQL injection",
        "path traversal",
    ],
)
def test_default_rules_cover(default_rules: RuleSet, topic: str) -> None:
    rs = default_rules
    msgs = [r.msg for r in rs.signatures] + [r.msg for r in rs.rates]
    assert any(topic in m for m in msgs), f"no rule about {topic!r}"


def test_default_block_rules_are_keyed_by_source(default_rules: RuleSet) -> None:
    rs = default_rules
    for r in rs.rates:
        if r.action.action is Action.BLOCK:
            assert r.key in (RateKey.SRC, RateKey.SRC_DST), r.sid
            assert r.action.block_seconds == 600, r.sid


def test_default_xmas_rule_flags(default_rules: RuleSet) -> None:
    rs = default_rules
    xmas = next(s for s in rs.signatures if "Xmas" in s.msg)
    assert xmas.header.flags is not None
    assert xmas.header.flags.matches(0x29) is True  # FIN+PSH+URG
    assert xmas.header.flags.matches(0x29 | ACK) is False


# ---- load_rule_files: dispatch by file type --------------------------------


def test_rule_files_load_a_rules_file_beside_yaml(tmp_path: Path) -> None:
    suricata = tmp_path / "et.rules"
    suricata.write_text('alert tcp any any -> any any (msg:"x"; sid:1;)\n')
    yml = tmp_path / "local.yaml"
    yml.write_text("signatures:\n  - sid: 5\n    msg: m\n    proto: tcp\n    payload: evil\n")
    report = load_rule_files([yml, suricata])
    assert [s.sid for s in report.ruleset.signatures] == [5, 1]
    assert report.files == (str(yml), str(suricata))
    assert [(r.file, r.loaded, r.rules) for r in report.rule_files] == [(str(suricata), 1, 1)]
    assert report.ruleset.sources == (str(yml), str(suricata))


def test_rule_files_load_included_rules_file(tmp_path: Path) -> None:
    (tmp_path / "et.rules").write_text(
        "# a comment\n"
        '# alert tcp any any -> any 1 (msg:"disabled"; sid:2;)\n'
        'alert tcp any any -> any 80 (msg:"x"; content:"GET"; sid:1;)\n'
    )
    yml = tmp_path / "rules.yaml"
    yml.write_text("include:\n  - et.rules\n")
    report = load_rule_files([yml])
    (fr,) = report.rule_files
    assert (fr.file, fr.rules, fr.loaded, fr.disabled) == (str(tmp_path / "et.rules"), 1, 1, 1)
    assert [s.sid for s in report.ruleset.signatures] == [1]


def test_rule_files_include_glob(tmp_path: Path) -> None:
    for name in ("a.rules", "b.rules"):
        (tmp_path / name).write_text(f'alert ip any any -> any any (msg:"{name}"; sid:{ord(name[0])};)\n')
    yml = tmp_path / "rules.yaml"
    yml.write_text("include:\n  - '*.rules'\n")
    report = load_rule_files([yml])
    assert [r.file for r in report.rule_files] == [str(tmp_path / "a.rules"), str(tmp_path / "b.rules")]
    yml.write_text("include:\n  - 'none-*.rules'\n")
    with pytest.raises(RulesError) as exc:
        load_rule_files([yml])
    assert exc.value.errors == [f"{yml}:1: include: {tmp_path / 'none-*.rules'}: matches no file"]


def test_rule_files_duplicate_sids_keep_the_higher_rev(tmp_path: Path) -> None:
    a = tmp_path / "a.rules"
    a.write_text('alert ip any any -> any any (msg:"old"; sid:7; rev:1;)\n')
    b = tmp_path / "b.rules"
    b.write_text(
        'alert ip any any -> any any (msg:"new"; sid:7; rev:2;)\n'
        'alert ip any any -> any any (msg:"same again"; sid:7; rev:2;)\n'
    )
    yml = tmp_path / "rules.yaml"
    yml.write_text("signatures:\n  - sid: 8\n    msg: yaml\n")
    c = tmp_path / "c.rules"
    c.write_text('alert ip any any -> any any (msg:"clash"; sid:8;)\n')
    report = load_rule_files([yml, a, b, c])
    assert sorted((s.sid, s.msg) for s in report.ruleset.signatures) == [(7, "new"), (8, "yaml")]
    by_file = {r.file: (r.loaded, dict(r.skipped)) for r in report.rule_files}
    assert by_file == {
        str(a): (0, {"invalid: duplicate sid": 1}),
        str(b): (1, {"invalid: duplicate sid": 1}),
        str(c): (0, {"invalid: duplicate sid": 1}),
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rules.txt", "unknown rule file type '.txt' (expected .yaml, .yml or .rules)"),
        ("rules", "unknown rule file type '(none)' (expected .yaml, .yml or .rules)"),
        ("missing.rules", "no such file"),
    ],
)
def test_rule_files_errors(tmp_path: Path, name: str, message: str) -> None:
    p = tmp_path / name
    if not name.startswith("missing"):
        p.write_text("x\n")
    with pytest.raises(RulesError) as exc:
        load_rule_files([p])
    assert exc.value.errors == [f"{p}: {message}"]


def test_rule_files_gather_errors_from_every_file(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("signatures:\n  - sid: 1\n")
    b = tmp_path / "b.yml"
    b.write_text("rate:\n  - sid: 2\n    msg: m\n    window: 1s\n")
    c = tmp_path / "c.conf"
    c.write_text("")
    with pytest.raises(RulesError) as exc:
        load_rule_files([a, b, c])
    assert exc.value.errors == [
        f"{a}:2: rule 1: missing required key 'msg'",
        f"{b}:2: rule 2: missing required key 'threshold'",
        f"{c}: unknown rule file type '.conf' (expected .yaml, .yml or .rules)",
    ]


def test_rule_files_merge_allowlists_and_rules(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("allowlist: 10.0.0.1\nsignatures:\n  - sid: 1\n    msg: a\n")
    b = tmp_path / "b.yaml"
    b.write_text("allowlist: 10.0.0.2\nrate:\n  - sid: 2\n    msg: b\n    window: 1\n    threshold: 1\n")
    report = load_rule_files([a, b])
    rs = report.ruleset
    assert [s.sid for s in rs.signatures] == [1]
    assert [r.sid for r in rs.rates] == [2]
    assert rs.allowlist is not None
    assert rs.allowlist.contains(4, 0x0A000001) is True
    assert rs.allowlist.contains(4, 0x0A000002) is True
    assert rs.allowlist.contains(4, 0x0A000003) is False
    assert rs.sources == (str(a), str(b))
    assert report.rule_files == ()


def test_no_rule_files() -> None:
    with pytest.raises(RulesError) as exc:
        load_rule_files([])
    assert exc.value.errors == ["no rule files given"]


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [("dst", "'!any'", "matches no address"), ("dst_port", "'[80,!80]'", "matches no port")],
)
def test_a_rule_field_that_matches_nothing_is_an_error(field: str, value: str, what: str) -> None:
    text = f"signatures:\n  - sid: 5\n    msg: m\n    proto: tcp\n    {field}: {value}\n"
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "empty.yaml")
    assert exc.value.errors == [
        f"empty.yaml:5: rule 5: {field}: {value.strip(chr(39))!r} {what}, so the rule could never fire"
    ]


def test_a_key_given_twice_in_one_rule_is_an_error() -> None:
    text = "signatures:\n  - sid: 9\n    msg: m\n    action: drop\n    proto: tcp\n    action: alert\n"
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "dup.yaml")
    assert exc.value.errors == ["dup.yaml:6: rule 9: key 'action' given twice (first at line 4)"]


def test_a_top_level_key_given_twice_is_an_error() -> None:
    text = "signatures:\n  - {sid: 1, msg: a, proto: tcp}\nsignatures:\n  - {sid: 2, msg: b, proto: tcp}\n"
    with pytest.raises(RulesError) as exc:
        load_rules_text(text, "twice.yaml")
    assert exc.value.errors == [
        "twice.yaml:3: top-level key 'signatures' given twice (first at line 1); "
        "the first one's rules would be lost"
    ]
