"""Loading .rules files: dialect per file, disabled rules, skip counting, policies, classtypes.

The corpus tests load every enabled rule of ET Open and the Snort 3 community set: each
rule loads or is skipped with RuleInvalid/RuleUnsupported (any other exception fails the
test), and the loaded share must not fall below the floor.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inline_ips.rules.classification import DEFAULT_CLASSTYPES, load_classification
from inline_ips.rules.model import Buffer, Content, SignatureRule
from inline_ips.rules.policy import Policy, parse_policy
from inline_ips.rules.suricata.loader import (
    MAX_MESSAGES,
    FileReport,
    detect_dialect,
    is_snort3,
    load_rules_file,
    load_rules_text,
)
from inline_ips.rules.yaml_loader import DEFAULT_VARS
from inline_ips.verdict import Action
from tests.corpus import CORPUS, require_corpus

VARS = {"HOME_NET": "[10.0.0.0/8]", "EXTERNAL_NET": "!$HOME_NET", "HTTP_PORTS": "80"}

SURI = 'alert http any any -> any any (msg:"s"; flow:to_server; http.uri; content:"/x"; sid:10;)'
SNORT = 'alert tcp any any -> any 80 (msg:"n"; content:"/x",fast_pattern,nocase; sid:20;)'
PLAIN = 'alert tcp any any -> any any (msg:"p"; content:"POST"; http_uri; content:"/x"; sid:30;)'


def load(
    text: str, policy: Policy | None = None, snort3: bool | None = None
) -> tuple[list[SignatureRule], FileReport]:
    return load_rules_text(text, "t.rules", VARS, policy, snort3)


def by_sid(rules: list[SignatureRule]) -> dict[int, SignatureRule]:
    return {r.sid: r for r in rules}


def policy(**entries: object) -> Policy:
    pol, problems = parse_policy(entries, block_seconds=60)
    assert problems == []
    return pol


# -- dialect ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "snort3", "ambiguous"),
    [
        (SURI, False, False),
        (SNORT, True, False),
        (PLAIN, False, False),  # nothing only one dialect has: Suricata
        ("", False, False),
        ("# prose (with parentheses) but no rule", False, False),
        ('alert tcp any any -> any any (msg:"a"; service:http; sid:1;)', True, False),
        ('alert tcp any any -> any any (msg:"a"; http_uri; bufferlen:<5; sid:1;)', True, False),
        ('alert tcp any any -> any any (http_header:field host; content:"x"; sid:1;)', True, False),
        ('alert tcp any any -> any any (rem:"note"; sid:1;)', True, False),
        ('alert http (msg:"header-less"; sid:1;)', True, False),
        ("block tcp any any -> any any (sid:1;)", True, False),
        ("rejectboth tcp any any -> any any (sid:1;)", False, False),
        ('alert tcp any any -> any any (content:"a"; depth:4; sid:1;)', False, False),
        ('alert tcp any any -> any any (dns.query; content:"a"; sid:1;)', False, False),
        (f"# {SNORT}", True, False),  # commented-out rules count too
        (f"{SNORT}\n{SNORT}\n{SURI}", True, True),
        (f"{SNORT}\n{SURI}\n{SURI}", False, True),
        (f"{PLAIN}\n{SNORT}", True, False),
    ],
)
def test_detect_dialect(text: str, snort3: bool, ambiguous: bool) -> None:
    got, note = detect_dialect(text)
    assert got is snort3
    assert is_snort3(text) is snort3
    assert bool(note) is ambiguous
    if ambiguous:
        assert "ambiguous dialect" in note


def test_dialect_decides_what_the_same_rule_means() -> None:
    # Suricata: http_uri moves "POST" into the URI buffer; Snort 3: it selects the buffer for "/x".
    suri, rs = load(PLAIN)
    snort, rn = load(f"{PLAIN}\n{SNORT}")
    assert (rs.dialect, rn.dialect) == ("suricata", "snort3")
    assert {
        bm.buffer: [m.pattern for m in bm.matches if isinstance(m, Content)] for bm in suri[0].buffers
    } == {
        Buffer.HTTP_URI: [b"POST"],
        Buffer.PAYLOAD: [b"/x"],
    }
    assert {
        bm.buffer: [m.pattern for m in bm.matches if isinstance(m, Content)]
        for bm in by_sid(snort)[30].buffers
    } == {
        Buffer.PAYLOAD: [b"POST"],
        Buffer.HTTP_URI: [b"/x"],
    }
    # the caller may force the dialect
    forced, rf = load(PLAIN, snort3=True)
    assert rf.dialect == "snort3"
    assert forced[0].buffers == by_sid(snort)[30].buffers


def test_ambiguous_file_is_reported() -> None:
    _, report = load(f"{SNORT}\n{SURI}\n{SURI}")
    assert report.dialect == "suricata"
    assert any("ambiguous dialect" in m for m in report.messages)


# -- counting -----------------------------------------------------------------------------------


MIXED = "\n".join(
    [
        "# ET-style header comment",
        'alert tcp any any -> any any (msg:"ok"; content:"a"; sid:1;)',
        '# alert tcp any any -> any any (msg:"disabled"; sid:2;)',
        'alert tcp any any -> any any (msg:"invalid"; content:"abc"; depth:1; sid:3;)',
        'alert smtp any any -> any any (msg:"unsupported"; sid:4;)',
        'alert tcp any any -> any any (msg:"syntax" sid:5;)',
        'alert tcp any any -> any any (msg:"no sid";)',
        'alert tcp any any -> any any (msg:"ok too"; \\',
        '    content:"b"; sid:7;)',
        'alert tcp any any -> any any (msg:"trailing blank"; sid:8;) ',
        "alert tcp $NOPE any -> any any (sid:9;)",
        'alert tcp any any -> any any (msg:"unclosed"; sid:11;',
    ]
)


def test_counts_and_reasons() -> None:
    rules, report = load(MIXED)
    assert [r.sid for r in rules] == [1, 7, 8]
    assert (report.rules, report.loaded, report.disabled) == (9, 3, 1)
    assert dict(report.skipped) == {
        "invalid: depth shorter than content": 1,
        "unsupported protocol 'smtp'": 1,
        "invalid: msg": 1,
        "invalid: syntax": 1,
        "invalid: no sid": 1,
        "undefined variable $NOPE": 1,
    }
    assert report.kinds["unsupported protocol 'smtp'"] == "unsupported"
    assert report.kinds["invalid: msg"] == report.kinds["invalid: syntax"] == "invalid"
    assert any(
        m == "t.rules:12: rule 11: invalid: the option list does not end with ')'" for m in report.messages
    )
    assert by_sid(rules)[7].origin.line == 8  # the continued rule's first line
    assert "t.rules:4: rule 3: invalid: depth 1 is shorter than the content (3)" in report.messages
    assert any(m.startswith("t.rules:7: rule ?:") for m in report.messages)
    d = report.as_dict()
    assert (d["rules"], d["loaded"], d["skipped"], d["disabled"], d["dialect"]) == (9, 3, 6, 1, "suricata")
    by_reason = d["skipped_by_reason"]
    assert isinstance(by_reason, list)
    assert {"reason": "unsupported protocol 'smtp'", "kind": "unsupported", "rules": 1} in by_reason


def test_a_bad_rule_does_not_stop_the_file() -> None:
    text = "\n".join(
        f'alert tcp any any -> any any (content:"x{i}"; depth:1; sid:{i};)' for i in range(1, 300)
    )
    text += '\nalert tcp any any -> any any (content:"z"; sid:1000;)'
    rules, report = load(text)
    assert [r.sid for r in rules] == [1000]
    assert sum(report.skipped.values()) == 299
    assert len(report.messages) == MAX_MESSAGES  # bounded; the counts stay complete


def test_long_messages_are_cut() -> None:
    _, report = load(f'alert tcp any any -> any any (msg:"{"x" * 5000}"; content:"a"; depth:0; sid:1;)')
    assert report.messages and all(len(m) <= 1000 for m in report.messages)


# -- policy -------------------------------------------------------------------------------------


ET = "\n".join(
    [
        'alert tcp any any -> any any (msg:"ET EXPLOIT one"; content:"a"; classtype:attempted-admin; '
        "metadata:signature_severity Major; sid:1; rev:2;)",
        '# alert tcp any any -> any any (msg:"ET INFO two"; content:"b"; classtype:misc-activity; '
        "sid:2; rev:1;)",
        'alert tcp any any -> any any (msg:"ET INFO three"; flowbits:set,x; flowbits:noalert; sid:3; rev:1;)',
        'drop tcp any any -> any any (msg:"ET DROP four"; content:"d"; sid:4; rev:1;)',
        'pass tcp any any -> any any (msg:"ET PASS five"; content:"e"; sid:5; rev:1;)',
        'alert tcp any any -> any any (msg:"ET EXPLOIT six"; gid:3; content:"f"; sid:6; rev:1;)',
    ]
)


@pytest.mark.parametrize(
    ("entries", "loaded", "disabled"),
    [
        ({}, [1, 3, 4, 5, 6], 1),
        ({"enable": ["2"]}, [1, 2, 3, 4, 5, 6], 0),
        ({"enable": ["1:2"]}, [1, 2, 3, 4, 5, 6], 0),
        ({"enable": ["re:et info two"]}, [1, 2, 3, 4, 5, 6], 0),  # case-insensitive
        ({"disable": ["re:ET EXPLOIT"]}, [3, 4, 5], 3),
        ({"disable": ["1,4"]}, [3, 5, 6], 3),
        ({"disable": ["3:6"]}, [1, 3, 4, 5], 2),
        ({"disable": ["6"]}, [1, 3, 4, 5, 6], 1),  # a bare sid means gid 1
        ({"disable": ["1:1:2"]}, [3, 4, 5, 6], 2),  # gid:sid:rev
        ({"disable": ["1:1:3"]}, [1, 3, 4, 5, 6], 1),
        ({"disable": ["group:t.rules"]}, [], 6),
        ({"disable": ["group:t"]}, [], 6),  # the file name without its extension
        ({"disable": ["t.rules"]}, [], 6),
        ({"disable": ["group:other*"]}, [1, 3, 4, 5, 6], 1),
        ({"disable": ["classtype:attempted-admin"]}, [3, 4, 5, 6], 2),
        ({"disable": ["metadata:signature_severity major"]}, [3, 4, 5, 6], 2),
        ({"disable": ["*"]}, [], 6),
        # suricata-update applies disable, then enable: one rule of a disabled group comes back
        ({"disable": ["group:t.rules"], "enable": ["4"]}, [4], 5),
        ({"disable": ["group:t.rules"], "enable": ["2"]}, [2], 5),
    ],
)
def test_policy_enable_disable(entries: dict[str, object], loaded: list[int], disabled: int) -> None:
    rules, report = load(ET, policy(**entries))
    assert sorted(r.sid for r in rules) == loaded
    assert report.disabled == disabled


@pytest.mark.parametrize(
    ("entries", "actions", "changed"),
    [
        ({"drop": ["classtype:attempted-admin"]}, {1: Action.DROP}, 1),
        ({"reject": ["metadata:signature_severity Major"]}, {1: Action.REJECT}, 1),
        ({"block": ["3:6"]}, {6: Action.BLOCK}, 1),
        ({"drop": ["re:ET EXPLOIT"], "block": ["1"]}, {1: Action.BLOCK, 6: Action.DROP}, 2),
        # a noalert rule (a flowbit setter) keeps its action, as suricata-update's drop filter does
        ({"drop": ["3"]}, {3: Action.ACCEPT}, 0),
        # a drop rule matched by drop stays a drop and is not counted; reject strengthens it
        ({"drop": ["4"]}, {4: Action.DROP}, 0),
        ({"reject": ["4"]}, {4: Action.REJECT}, 1),
        # a pass rule is the rule writer's exception
        ({"block": ["5"]}, {5: Action.ACCEPT}, 0),
        (
            {"drop": ["*"]},
            {1: Action.DROP, 3: Action.ACCEPT, 4: Action.DROP, 5: Action.ACCEPT, 6: Action.DROP},
            2,
        ),
    ],
)
def test_policy_actions(entries: dict[str, object], actions: dict[int, Action], changed: int) -> None:
    rules, report = load(ET, policy(**entries))
    got = by_sid(rules)
    assert {sid: got[sid].action.action for sid in actions} == actions
    assert report.dropped_by_policy == changed
    if 6 in actions and actions[6] is Action.BLOCK:
        assert got[6].action.block_seconds == 60
    assert got[5].action.passes is True


def test_policy_modify() -> None:
    mods = [
        {"match": "1", "from": 'content:"a"', "to": 'content:"zz"'},
        {"match": "re:ET INFO", "from": r"msg:\"ET INFO (\w+)\"", "to": r'msg:"INFO ${1}"'},
        # a modification that breaks a rule: reported as invalid, the rest loads
        {"match": "4", "from": r"\)\s*$", "to": ""},
        {"match": "3:6", "from": r'content:"f"', "to": 'content:"f"; depth:0'},
    ]
    rules, report = load(ET, policy(modify=mods, enable=["2"]))
    got = by_sid(rules)
    assert [c.pattern for bm in got[1].buffers for c in bm.matches if isinstance(c, Content)] == [b"zz"]
    assert (got[2].msg, got[3].msg) == ("INFO two", "INFO three")
    assert sorted(got) == [1, 2, 3, 5]
    assert dict(report.skipped) == {"invalid: syntax": 1, "invalid: depth shorter than content": 1}


# -- classification.config --------------------------------------------------------------------


def test_classification_config_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "classification.config").write_text(
        "# comment\n"
        "config classification: my-class,My Class, with a comma,1\n"
        "config classification: misc-activity,Misc activity (local),2\n"
        "config classification: my-class,Second definition,3\n"
    )
    (tmp_path / "local.rules").write_text(
        "alert tcp any any -> any any (classtype:My-Class; sid:1;)\n"
        "alert tcp any any -> any any (classtype:misc-activity; sid:2;)\n"
        "alert tcp any any -> any any (classtype:trojan-activity; sid:3;)\n"
    )
    rules, report = load_rules_file(tmp_path / "local.rules", VARS)
    got = by_sid(rules)
    assert (got[1].priority, got[1].classtype) == (1, "My Class, with a comma")  # first definition wins
    assert (got[2].priority, got[2].classtype) == (2, "Misc activity (local)")
    assert (got[3].priority, got[3].classtype) == (1, "A Network Trojan was detected")  # defaults remain
    assert report.messages == []


def test_malformed_classification_config_keeps_what_came_before(tmp_path: Path) -> None:
    (tmp_path / "classification.config").write_text(
        "config classification: early,Early,1\n"
        "this is not a classification line\n"
        "config classification: late,Late,1\n"
    )
    (tmp_path / "r.rules").write_text(
        "alert tcp any any -> any any (classtype:early; sid:1;)\n"
        "alert tcp any any -> any any (classtype:late; sid:2;)\n"
    )
    rules, report = load_rules_file(tmp_path / "r.rules", VARS)
    got = by_sid(rules)
    assert got[1].priority == 1
    assert (got[2].priority, got[2].classtype) == (3, "")  # unknown: Suricata stopped before it
    assert len(report.messages) == 1 and "classification.config:2:" in report.messages[0]


def test_explicit_classtypes_win_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "classification.config").write_text("config classification: x,X,1\n")
    (tmp_path / "r.rules").write_text("alert tcp any any -> any any (classtype:x; sid:1;)\n")
    rules, _ = load_rules_file(tmp_path / "r.rules", VARS, classtypes=DEFAULT_CLASSTYPES)
    assert rules[0].priority == 3


def test_unreadable_file(tmp_path: Path) -> None:
    rules, report = load_rules_file(tmp_path / "missing.rules", VARS)
    assert rules == []
    assert "cannot read" in report.error
    assert report.as_dict()["error"] == report.error


# -- corpus -------------------------------------------------------------------------------------


ET_DIR = CORPUS / "rulesets" / "et-open-suricata5-2024-04-21"
SNORT3_FILE = CORPUS / "rulesets" / "snort3-community" / "snort3-community.rules"
# snort_defaults.lua's variables the community rules use beyond Suricata's defaults.
SNORT3_VARS = {
    **DEFAULT_VARS,
    "SIP_SERVERS": "$HOME_NET",
    "SIP_PORTS": "[5060,5061,5600]",
    "SSH_SERVERS": "$HOME_NET",
    "FTP_SERVERS": "$HOME_NET",
    "ORACLE_PORTS": "1024:",
}


def _load_all(paths: list[Path], variables: dict[str, str]) -> tuple[int, int, set[str]]:
    active = loaded = 0
    dialects: set[str] = set()
    for path in paths:
        rules, report = load_rules_file(path, variables)  # anything but RuleLoadError escapes and fails
        assert report.error == ""
        assert report.loaded == len(rules)
        assert report.rules == report.loaded + sum(report.skipped.values())
        assert all(kind in ("invalid", "unsupported") for kind in report.kinds.values())
        active += report.rules
        loaded += report.loaded
        dialects.add(report.dialect)
    return active, loaded, dialects


def test_et_open_loads() -> None:
    require_corpus(ET_DIR)
    active, loaded, dialects = _load_all(sorted(ET_DIR.glob("*.rules")), DEFAULT_VARS)
    assert active > 20000
    assert loaded / active >= 0.80, f"only {loaded}/{active} ET Open rules loaded"
    assert dialects == {"suricata"}


def test_snort3_community_loads() -> None:
    require_corpus(SNORT3_FILE)
    active, loaded, dialects = _load_all([SNORT3_FILE], SNORT3_VARS)
    assert active > 3000
    assert loaded / active >= 0.70, f"only {loaded}/{active} Snort 3 community rules loaded"
    assert dialects == {"snort3"}


def test_default_classtypes_agree_with_et() -> None:
    cfg = ET_DIR / "classification.config"
    require_corpus(cfg)
    et = load_classification(cfg)
    shared = set(et) & set(DEFAULT_CLASSTYPES)
    assert len(shared) >= 40
    for name in shared:
        assert DEFAULT_CLASSTYPES[name] == et[name], name
