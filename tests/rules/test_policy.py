"""IPS policy matchers and ordering, as suricata-update applies enable/disable/modify/drop."""

from __future__ import annotations

import pytest

from inline_ips.rules.policy import Matcher, Modify, Policy, PolicyError, RuleFacts, parse_policy

RULE = (
    'alert tcp any any -> any any (msg:"ET EXPLOIT Something"; content:"x"; classtype:attempted-admin; '
    "metadata:signature_severity Major, attack_target Server; sid:2019401; rev:3;)"
)
FACTS = RuleFacts.of(RULE, "/etc/rules/emerging-exploit.rules")


def test_rule_facts() -> None:
    f = FACTS
    assert (f.sid, f.gid, f.rev, f.classtype, f.file, f.noalert) == (
        2019401,
        1,
        3,
        "attempted-admin",
        "/etc/rules/emerging-exploit.rules",
        False,
    )
    assert f.metadata == (("signature_severity", "Major"), ("attack_target", "Server"))
    g = RuleFacts.of("alert ip any any -> any any (gid:3; sid:7; flowbits:noalert;)", "x.rules")
    assert (g.sid, g.gid, g.rev, g.noalert) == (7, 3, 0, True)
    assert RuleFacts.of("alert ip any any -> any any (sid:7; noalert;)", "x").noalert is True
    assert RuleFacts.of('alert ip any any -> any any (msg:"noalert;" sid:7;)', "x").sid == 7


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("*", True),
        ("2019401", True),
        ("1:2019401", True),
        ("1:2019401:3", True),
        ("1:2019401:2", False),
        ("3:2019401", False),
        ("2019402", False),
        ("2019402, 2019401", True),
        ("1:5,1:2019401:3", True),
        ("re:ET EXPLOIT", True),
        ("re:et exploit", True),  # suricata-update compiles re: case-insensitive
        ("re:^alert tcp", True),
        ("re:EXPLOIT\\s+Nothing", False),
        ("group:emerging-exploit.rules", True),
        ("group:emerging-exploit", True),  # without the extension
        ("group:emerging-*", True),
        ("group:emerging-info.rules", False),
        ("emerging-exploit.rules", True),  # a bare *.rules token is a group
        ("emerging-*.rules", True),
        ("filename:/etc/rules/*", True),
        ("filename:emerging-exploit.rules", False),  # the whole path
        ("classtype:attempted-admin", True),
        ("classtype:Attempted-Admin", True),
        ("classtype:trojan-activity", False),
        ("metadata:signature_severity Major", True),
        ("metadata:signature_severity major", True),  # case-insensitive, like suricata-update
        ("METADATA:SIGNATURE_SEVERITY MAJOR", True),
        ("metadata:signature_severity Minor", False),
        ("metadata:attack_target", True),  # key only: any value
        ("metadata:former_category", False),
    ],
)
def test_matchers(text: str, matches: bool) -> None:
    assert Matcher.parse(text).matches(FACTS) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty matcher"),
        ("   ", "empty matcher"),
        ("re:(", "bad regular expression"),
        ("frob:x", "unknown matcher kind 'frob'"),
        ("group:", "use \\*, a sid"),
        ("emerging-exploit", "use \\*, a sid"),
        ("1:2:3:4", "unknown matcher kind '1'"),
        ("12a", "use \\*, a sid"),
    ],
)
def test_matcher_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Matcher.parse(text)


def test_matcher_str() -> None:
    assert [str(Matcher.parse(t)) for t in ("1:2", "*", "re:x", "group:a.rules")] == [
        "1:2",
        "*",
        "re:x",
        "group:a.rules",
    ]


@pytest.mark.parametrize(
    ("enable", "disable", "shipped", "expected"),
    [
        ([], [], True, True),
        ([], [], False, False),
        (["2019401"], [], False, True),
        ([], ["2019401"], True, False),
        # disable first, then enable (suricata-update main.py): enable wins
        (["2019401"], ["group:emerging-exploit.rules"], True, True),
        (["2019401"], ["group:emerging-exploit.rules"], False, True),
        (["2019402"], ["group:emerging-exploit.rules"], True, False),
        (["re:nothing"], ["*"], True, False),
    ],
)
def test_enable_disable_order(enable: list[str], disable: list[str], shipped: bool, expected: bool) -> None:
    pol = Policy(enable=tuple(map(Matcher.parse, enable)), disable=tuple(map(Matcher.parse, disable)))
    assert pol.enabled(FACTS, shipped) is expected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ({}, None),
        ({"drop": ["2019401"]}, "drop"),
        ({"drop": ["*"], "reject": ["re:EXPLOIT"]}, "reject"),
        ({"drop": ["*"], "reject": ["*"], "block": ["classtype:attempted-admin"]}, "block"),
        ({"block": ["2019402"], "drop": ["2019401"]}, "drop"),
    ],
)
def test_action_override(entries: dict[str, object], expected: str | None) -> None:
    pol, problems = parse_policy(entries)
    assert problems == []
    assert pol.action(FACTS) == expected


def test_noalert_rules_keep_their_action() -> None:
    pol, _ = parse_policy({"drop": ["*"]})
    setter = RuleFacts.of(
        "alert tcp any any -> any any (flowbits:set,a; flowbits:noalert; sid:9;)", "x.rules"
    )
    assert pol.action(setter) is None


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ('msg:"X \\1"', 'msg:"X ET EXPLOIT Something"'),
        ('msg:"X ${1}"', 'msg:"X ET EXPLOIT Something"'),  # Oinkmaster's form
        ('msg:"plain"', 'msg:"plain"'),
    ],
)
def test_modify(to: str, expected: str) -> None:
    pol, problems = parse_policy({"modify": [{"match": "2019401", "from": 'msg:"([^"]*)"', "to": to}]})
    assert problems == []
    assert expected in pol.rewrite(FACTS)
    other = RuleFacts.of(RULE.replace("2019401", "5"), "x.rules")
    assert pol.rewrite(other) == other.text


def test_modify_applies_every_matching_entry_in_order() -> None:
    pol, _ = parse_policy(
        {
            "modify": [
                {"match": "*", "from": "ET EXPLOIT", "to": "ONE"},
                {"match": "re:ONE", "from": "ONE", "to": "TWO"},
                {"match": "re:Something", "from": "Something", "to": "Else"},
            ]
        }
    )
    # matchers look at the rule as shipped (re:ONE does not match it); replacements chain
    assert 'msg:"ONE Else"' in pol.rewrite(FACTS)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"frobnicate": ["1"]}, "unknown policy key 'frobnicate'"),
        ({"drop": ["re:("]}, "drop: 're:(': bad regular expression"),
        ({"modify": ["1 x y"]}, "each modify entry is a mapping"),
        ({"modify": [{"match": "1", "from": "x"}]}, "needs match, from and to"),
        ({"modify": [{"match": "1", "from": "x", "to": "y", "extra": 1}]}, "unknown modify key"),
        ({"modify": [{"match": "1", "from": "(", "to": "y"}]}, "bad regular expression"),
        ({"modify": [{"match": "1", "from": "(a)", "to": "\\2"}]}, "bad replacement"),
        ({"modify": [{"match": "frob:1", "from": "a", "to": "b"}]}, "unknown matcher kind"),
    ],
)
def test_parse_policy_problems(raw: dict[str, object], problem: str) -> None:
    _, problems = parse_policy(raw)
    assert len(problems) == 1 and problem in problems[0]


def test_parse_policy_and_merge() -> None:
    a, _ = parse_policy({"enable": "1", "drop": ["2", "re:x"]}, block_seconds=30)
    b, _ = parse_policy(
        {"block": ["3"], "modify": [{"match": "*", "from": "a", "to": "b"}]}, block_seconds=90
    )
    assert [str(m) for m in a.enable] == ["1"]
    assert [str(m) for m in a.drop] == ["2", "re:x"]
    assert a.block_seconds == 30 and not a.empty
    assert Policy().empty
    merged = a.merged(b)
    assert [str(m) for m in merged.block] == ["3"]
    assert len(merged.modify) == 1 and isinstance(merged.modify[0], Modify)
    assert merged.block_seconds == 90
    assert a.merged(Policy()) is a
    assert Policy().merged(b) is b
