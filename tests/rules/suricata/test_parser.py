"""Rule file splitting and the header/option tokenizer, against Suricata's loader and parser.

Cases follow detect-engine-loader.c (DetectLoadSigFile: continuations, comments) and
detect-parse.c (SigParseBasics, SigParseOptions: escaped ';', quotes not protecting ';').
"""

from __future__ import annotations

import pytest

from inline_ips.rules.suricata.parser import (
    RawOption,
    RuleSyntaxError,
    parse_rule,
    split_options,
    split_rules,
)

R1 = 'alert tcp any any -> any any (msg:"one"; sid:1;)'
R2 = 'drop udp any any -> any 53 (msg:"two"; sid:2;)'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (R1, [(1, R1, True)]),
        (f"{R1}\n\n{R2}\n", [(1, R1, True), (3, R2, True)]),
        # comments, blank lines and prose are skipped; commented-out rules come back disabled
        (f"# a comment\n#\n{R1}", [(3, R1, True)]),
        (f"# {R1}", [(1, R1, False)]),
        (f"#{R1}", [(1, R1, False)]),
        (f"## {R2}", [(1, R2, False)]),
        ("# alert is a word in prose, not a rule", []),
        ("# alert tcp any any -> any any (unclosed", []),
        # continuation: the backslash goes, the next line is appended as it is (no space added)
        (
            'alert tcp any any -> any any (msg:"a"; \\\n sid:1;)',
            [(1, 'alert tcp any any -> any any (msg:"a";  sid:1;)', True)],
        ),
        (
            'alert tcp any any -> any any (content:"ab\\\ncd"; sid:1;)',
            [(1, 'alert tcp any any -> any any (content:"abcd"; sid:1;)', True)],
        ),
        (
            'alert tcp any any -> any any (msg:"a";\\   \n  sid:1;)',
            [(1, 'alert tcp any any -> any any (msg:"a";  sid:1;)', True)],
        ),
        # the line number is the rule's first line
        (f"\n\n{R1[:20]}\\\n{R1[20:]}\n{R2}", [(3, R1, True), (5, R2, True)]),
        # a trailing continuation at end of file still yields the rule
        (f"{R1}\\", [(1, R1, True)]),
        # CRLF line ends
        (f"{R1}\r\n{R2}\r\n", [(1, R1, True), (2, R2, True)]),
        # indented rules load (suricata-update accepts them; see split_rules)
        (f"   {R1}", [(1, R1, True)]),
    ],
)
def test_split_rules(text: str, expected: list[tuple[int, str, bool]]) -> None:
    assert list(split_rules(text)) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('msg:"x"; sid:1;', [RawOption("msg", '"x"'), RawOption("sid", "1")]),
        ("nocase;", [RawOption("nocase", None)]),
        ("  NoCase ;  ", [RawOption("nocase", None)]),
        ('content : "a" ;', [RawOption("content", '"a"')]),
        # the value is split at the first ':' only
        ('pcre:"/a:b/";', [RawOption("pcre", '"/a:b/"')]),
        ("metadata:created_at 2020_01_01, k v;", [RawOption("metadata", "created_at 2020_01_01, k v")]),
        # an escaped ';' stays in the value, escapes are kept for the keyword's own parser
        ('content:"a\\;b";', [RawOption("content", '"a\\;b"')]),
        # Suricata's quirk: any backslash right before ';' escapes it, even an escaped one
        ('pcre:"/a\\\\;b/"; sid:1;', [RawOption("pcre", '"/a\\\\;b/"'), RawOption("sid", "1")]),
        # quotes do not protect ';': a stray quote inside a pcre does not swallow the rule
        ('pcre:"/x"y/"; sid:2;', [RawOption("pcre", '"/x"y/"'), RawOption("sid", "2")]),
        (
            "http.uri; dns.query; to_lowercase;",
            [RawOption("http.uri", None), RawOption("dns.query", None), RawOption("to_lowercase", None)],
        ),
        ("app-layer-event:x;", [RawOption("app-layer-event", "x")]),
        ("", []),
    ],
)
def test_split_options(body: str, expected: list[RawOption]) -> None:
    assert split_options(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('msg:"x"; sid:1', "is not terminated by ';'"),
        ('msg:"x"', "is not terminated by ';'"),
        ("sid:1; ;", "empty option"),
        ("sid:1;;", "empty option"),
        (":1;", "empty option name"),
        ("s id:1;", "bad option name 's id'"),
        ("sid!:1;", "bad option name 'sid!'"),
        ('"msg":"x";', "bad option name"),
        # an unescaped ';' inside quotes ends the option, leaving garbage behind
        ('content:"a;b"; sid:3;', "bad option name 'b\"'"),
    ],
)
def test_split_options_errors(body: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError, match=message):
        split_options(body)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "alert tcp $HOME_NET any -> $EXTERNAL_NET 80 (sid:1;)",
            ("alert", "tcp", "$HOME_NET", "any", "->", "$EXTERNAL_NET", "80", False),
        ),
        (
            "DROP UDP 10.0.0.1 53 <> 10.0.0.2 any (sid:1;)",
            ("drop", "udp", "10.0.0.1", "53", "<>", "10.0.0.2", "any", False),
        ),
        # bracketed groups may hold blanks; tabs separate fields too
        (
            "alert\ttcp [10.0.0.1, 10.0.0.2] [80, 443] -> [!1.2.3.4,$HOME_NET] any (sid:1;)",
            ("alert", "tcp", "[10.0.0.1,10.0.0.2]", "[80,443]", "->", "[!1.2.3.4,$HOME_NET]", "any", False),
        ),
        (
            "alert ip [[10.0.0.0/8,![10.1.0.0/16]],1.1.1.1] any -> any any (sid:1;)",
            ("alert", "ip", "[[10.0.0.0/8,![10.1.0.0/16]],1.1.1.1]", "any", "->", "any", "any", False),
        ),
        (
            "alert http any any => any any (sid:1;)",
            ("alert", "http", "any", "any", "=>", "any", "any", False),
        ),
        # Snort 3's header-less rules: any addresses and ports, marked elided
        ("alert http (sid:1;)", ("alert", "http", "any", "any", "->", "any", "any", True)),
        ("block tcp ( sid:1; )", ("block", "tcp", "any", "any", "->", "any", "any", True)),
        # every action word of either dialect passes the parser (compile judges them)
        (
            "rejectboth tcp any any -> any any (sid:1;)",
            ("rejectboth", "tcp", "any", "any", "->", "any", "any", False),
        ),
        ("react tcp any any -> any any (sid:1;)", ("react", "tcp", "any", "any", "->", "any", "any", False)),
    ],
)
def test_parse_rule_header(text: str, fields: tuple[object, ...]) -> None:
    r = parse_rule(text, line=7)
    assert (r.action, r.proto, r.src, r.sport, r.direction, r.dst, r.dport, r.elided) == fields
    assert r.line == 7
    assert r.enabled is True
    assert r.first("sid") == "1"


def test_parse_rule_options_and_first() -> None:
    r = parse_rule(
        'alert tcp any any -> any any (msg:"x"; content:"a"; nocase; content:"b"; sid:5;)', 1, False
    )
    assert [o.name for o in r.options] == ["msg", "content", "nocase", "content", "sid"]
    assert r.first("content") == '"a"'
    assert r.first("nocase") == ""
    assert r.first("rev") is None
    assert r.enabled is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alert tcp any any -> any any sid:1;", "no '\\(' opening the option list"),
        ("alert tcp any any -> any any (sid:1;", "does not end with '\\)'"),
        ("alert tcp any any -> any (sid:1;)", "the header has 6 fields"),
        ("alert tcp any any -> any any any (sid:1;)", "the header has 8 fields"),
        ("alert (sid:1;)", "the header has 1 fields"),
        ("foo tcp any any -> any any (sid:1;)", "unknown action 'foo'"),
        ("alert tcp any any <- any any (sid:1;)", "bad direction '<-'"),
        ("alert tcp any any > any any (sid:1;)", "bad direction '>'"),
        ("alert tcp [1.1.1.1 any -> any any (sid:1;)", "unbalanced '\\['"),
        ("alert tcp 1.1.1.1] any -> any any (sid:1;)", "unbalanced '\\]'"),
        ("alert tcp any any -> any any (sid:1)", "is not terminated by ';'"),
    ],
)
def test_parse_rule_errors(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError, match=message):
        parse_rule(text)
