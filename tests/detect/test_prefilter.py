"""Prefilter: the fast pattern each rule is indexed by, and the candidate rules for a buffer."""

from __future__ import annotations

import pytest

from inline_ips.detect.prefilter import FastPattern, Prefilter, fast_pattern
from inline_ips.rules.model import (
    Buffer,
    BufferMatch,
    Content,
    Header,
    Match,
    Origin,
    Regex,
    RuleAction,
    SignatureRule,
)
from inline_ips.rules.yaml_loader import compile_regex
from inline_ips.verdict import Action


def rule(sid: int, *buffers: tuple[Buffer, tuple[Match, ...]]) -> SignatureRule:
    return SignatureRule(
        sid=sid,
        msg=f"rule {sid}",
        action=RuleAction(Action.ACCEPT),
        header=Header(),
        origin=Origin("test.yaml", sid),
        buffers=tuple(BufferMatch(b, m) for b, m in buffers),
    )


def payload(*matches: Match) -> tuple[Buffer, tuple[Match, ...]]:
    return (Buffer.PAYLOAD, matches)


def regex(source: str) -> Regex:
    return Regex(source, compile_regex(source))


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (
            rule(1, payload(Content(b"ab"), Content(b"abcdef"), Content(b"abc"))),
            FastPattern(Buffer.PAYLOAD, b"abcdef", False),
        ),
        (
            rule(2, payload(Content(b"short"), Content(b"a much longer negated", negated=True))),
            FastPattern(Buffer.PAYLOAD, b"short", False),
        ),
        (
            rule(3, payload(Content(b"xy")), (Buffer.HTTP_URI, (Content(b"/admin"),))),
            FastPattern(Buffer.HTTP_URI, b"/admin", False),
        ),
        (
            rule(4, payload(Content(b"same1"), Content(b"same2"))),
            FastPattern(Buffer.PAYLOAD, b"same1", False),
        ),
        (rule(5, payload(Content(b"EVIL", nocase=True))), FastPattern(Buffer.PAYLOAD, b"evil", True)),
        (rule(6, payload(regex("a+b"), Content(b"zz"))), FastPattern(Buffer.PAYLOAD, b"zz", False)),
        (rule(7), None),
        (rule(8, payload(regex("a+b"))), None),
        (rule(9, payload(Content(b"nope", negated=True))), None),
    ],
    ids=lambda v: str(v.sid) if isinstance(v, SignatureRule) else "",
)
def test_fast_pattern(r: SignatureRule, expected: FastPattern | None) -> None:
    assert fast_pattern(r) == expected


RULES = [
    rule(100, payload(Content(b"evil"))),  # 0
    rule(101, payload(Content(b"EVIL", nocase=True))),  # 1
    rule(102, payload(Content(b"Evil"))),  # 2
    rule(103, payload(regex("x+y"))),  # 3: unfiltered
    rule(104),  # 4: unfiltered
    rule(105, payload(Content(b"ev"), Content(b"il-payload"))),  # 5: indexed by "il-payload"
    rule(106, (Buffer.HTTP_URI, (Content(b"/admin"),))),  # 6
    rule(107, (Buffer.DNS_QUERY, (Content(b"evil"),))),  # 7
    rule(108, payload(Content(b"nope", negated=True))),  # 8: unfiltered
]


@pytest.fixture(scope="module")
def pf() -> Prefilter:
    return Prefilter(RULES)


def test_unfiltered_and_counts(pf: Prefilter) -> None:
    assert pf.unfiltered == (3, 4, 8)
    # evil, evil/nocase, Evil, il-payload on payload; /admin; evil on dns.query
    assert pf.pattern_count == 6
    assert pf.has(Buffer.PAYLOAD) is True
    assert pf.has(Buffer.HTTP_URI) is True
    assert pf.has(Buffer.DNS_QUERY) is True
    assert pf.has(Buffer.TLS_SNI) is False


@pytest.mark.parametrize(
    ("buffer", "data", "expected"),
    [
        (Buffer.PAYLOAD, b"nothing here", set()),
        (Buffer.PAYLOAD, b"", set()),
        (Buffer.PAYLOAD, b"an evil thing", {0, 1}),
        (Buffer.PAYLOAD, b"an EVIL thing", {1}),
        (Buffer.PAYLOAD, b"an Evil thing", {1, 2}),
        (Buffer.PAYLOAD, b"eViL", {1}),
        (Buffer.PAYLOAD, b"devil-payload", {0, 1, 5}),
        (Buffer.PAYLOAD, b"GET /admin", set()),  # /admin is an http.uri literal only
        (Buffer.HTTP_URI, b"/admin/x", {6}),
        (Buffer.HTTP_URI, b"/ADMIN/x", set()),
        (Buffer.HTTP_URI, b"evil", set()),
        (Buffer.DNS_QUERY, b"www.evil.example", {7}),
        (Buffer.TLS_SNI, b"evil", set()),  # no tls.sni literals: nothing to scan
    ],
)
def test_candidates(pf: Prefilter, buffer: Buffer, data: bytes, expected: set[int]) -> None:
    out: set[int] = set()
    pf.scan(buffer, data, out)
    assert out == expected


def test_matches_returns_a_new_set_or_none(pf: Prefilter) -> None:
    scanner = pf.scanner(Buffer.PAYLOAD)
    assert scanner is not None
    assert scanner.matches(b"nothing here") is None  # the common case builds no set
    first = scanner.matches(b"an evil thing")
    assert first == {0, 1}
    first.add(99)  # the caller owns it: the next answer is not the same object
    assert scanner.matches(b"an Evil thing") == {1, 2}
    assert scanner.matches(b"nothing") is None  # no hit of an earlier scan is left over


def test_scan_adds_to_existing_set(pf: Prefilter) -> None:
    out = {3, 4}
    pf.scan(Buffer.PAYLOAD, b"evil", out)
    assert out == {0, 1, 3, 4}


def test_many_rules_share_one_literal() -> None:
    rules = [rule(i, payload(Content(b"shared-literal"))) for i in range(1, 201)]
    rules.append(rule(999, payload(Content(b"other"))))
    pf = Prefilter(rules)
    assert pf.pattern_count == 2
    out: set[int] = set()
    pf.scan(Buffer.PAYLOAD, b"..shared-literal..", out)
    assert out == set(range(200))
    out = set()
    pf.scan(Buffer.PAYLOAD, b"other", out)
    assert out == {200}


def test_same_literal_caseless_and_exact_are_separate() -> None:
    pf = Prefilter([rule(1, payload(Content(b"abc"))), rule(2, payload(Content(b"abc", nocase=True)))])
    assert pf.pattern_count == 2
    out: set[int] = set()
    pf.scan(Buffer.PAYLOAD, b"ABC", out)
    assert out == {1}


def test_ten_thousand_literals() -> None:
    rules = [rule(i + 1, payload(Content(f"marker-{i:05d}-end".encode()))) for i in range(10_000)]
    pf = Prefilter(rules)
    assert pf.pattern_count == 10_000
    assert pf.unfiltered == ()
    out: set[int] = set()
    pf.scan(Buffer.PAYLOAD, b"junk " * 200 + b"marker-04242-end" + b" junk" * 200, out)
    assert out == {4242}
    assert rules[4242].sid == 4243
    out = set()
    pf.scan(Buffer.PAYLOAD, b"marker-09999-end marker-00000-end marker-1234-end", out)
    assert out == {0, 9999}
    out = set()
    pf.scan(Buffer.PAYLOAD, b"marker-0424-end", out)
    assert out == set()


def test_literals_with_nul_bytes() -> None:
    """Rules often carry |00| bytes; the Hyperscan binding's literal mode would cut them at the NUL."""
    rules = [rule(1, payload(Content(b"\x00\x01SMB"))), rule(2, payload(Content(b"a\x00b", nocase=True)))]
    pf = Prefilter(rules)
    out: set[int] = set()
    pf.scan(Buffer.PAYLOAD, b"xx\x00\x01SMB..A\x00B", out)
    assert out == {0, 1}
    out = set()
    pf.scan(Buffer.PAYLOAD, b"SMB ab \x01SMB", out)
    assert out == set()
