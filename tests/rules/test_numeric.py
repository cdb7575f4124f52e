"""Suricata's unsigned-integer keyword syntax and Snort 3's ranges: parsing, errors, matching, corpus.

Cases marked "dsize test" / "uint.rs test" port the inputs and expectations of Suricata's own unit
tests (src/detect-dsize.c, rust/src/detect/uint.rs); "doc" ones come from its user guide.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.rules.numeric import (
    KEYWORD_MAX,
    U8_MAX,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    UintMatch,
    parse_snort_range,
    parse_uint,
)
from inline_ips.rules.suricata.parser import parse_rule, split_rules
from tests.corpus import CORPUS, require_corpus

U = UintMatch


@pytest.mark.parametrize(
    ("text", "max_value", "expected"),
    [
        # dsize tests 01..10
        ("1", U16_MAX, U("eq", 1)),
        (">10", U16_MAX, U("gt", 10)),
        ("<100", U16_MAX, U("lt", 100)),
        ("1<>3", U16_MAX, U("range", 1, 3)),
        (" 1 <> 3 ", U16_MAX, U("range", 1, 3)),
        ("> 2 ", U16_MAX, U("gt", 2)),
        ("<   12 ", U16_MAX, U("lt", 12)),
        ("   12 ", U16_MAX, U("eq", 12)),
        ("!1", U16_MAX, U("ne", 1)),
        ("! 1", U16_MAX, U("ne", 1)),
        # doc (integer-keywords.rst bsize examples)
        ("19", U64_MAX, U("eq", 19)),
        ("=0x13", U64_MAX, U("eq", 0x13)),
        ("!0x14", U64_MAX, U("ne", 0x14)),
        ("!=20", U64_MAX, U("ne", 20)),
        (">21", U64_MAX, U("gt", 21)),
        (">=21", U64_MAX, U("ge", 21)),
        ("<22", U64_MAX, U("lt", 22)),
        ("<=22", U64_MAX, U("le", 22)),
        ("19-22", U64_MAX, U("range", 19, 22)),
        ("!19-22", U64_MAX, U("negrange", 19, 22)),
        ("&0xc0=0x80", U64_MAX, U("bitmask", 0xC0, 0x80)),
        ("&0xc0!=0", U64_MAX, U("negbitmask", 0xC0, 0)),
        # uint.rs tests
        ("&0x40!=0", U64_MAX, U("negbitmask", 0x40, 0)),
        ("0x100", U64_MAX, U("eq", 0x100)),
        ("0xFF", U8_MAX, U("eq", 255)),
        ("0xff", U8_MAX, U("eq", 255)),
        ("!1-6", U8_MAX, U("negrange", 1, 6)),
        (" 2kb", U64_MAX, U("eq", 2048)),
        ("> 3MB", U32_MAX, U("gt", 3 * 1024 * 1024)),
        ("3", U8_MAX, U("eq", 3)),
        (">3", U8_MAX, U("gt", 3)),
        ("<44", U8_MAX, U("lt", 44)),
        # other accepted spellings
        ("= 5", U16_MAX, U("eq", 5)),
        ("!= 5", U16_MAX, U("ne", 5)),
        (">= 1", U16_MAX, U("ge", 1)),
        ("<= 65534", U16_MAX, U("le", 65534)),
        ("1 - 5", U16_MAX, U("range", 1, 5)),
        ("1-3", U16_MAX, U("range", 1, 3)),
        ("0<>65535", U16_MAX, U("range", 0, 65535)),
        ("007", U16_MAX, U("eq", 7)),
        ("0", U16_MAX, U("eq", 0)),
        ("65535", U16_MAX, U("eq", 65535)),
        ("!0", U16_MAX, U("ne", 0)),
        ("< 1", U16_MAX, U("lt", 1)),
        ("> 65534", U16_MAX, U("gt", 65534)),
        ("2KiB", U64_MAX, U("eq", 2048)),
        ("1gb", U64_MAX, U("eq", 1 << 30)),
        ("0kb", U8_MAX, U("eq", 0)),
        ("& 0x0f = 0x01", U8_MAX, U("bitmask", 0x0F, 1)),
        ("&0x0f!= 1", U8_MAX, U("negbitmask", 0x0F, 1)),
        ("18446744073709551615", U64_MAX, U("eq", U64_MAX)),
    ],
)
def test_parse_uint(text: str, max_value: int, expected: UintMatch) -> None:
    assert parse_uint(text, max_value) == expected


@pytest.mark.parametrize(
    ("text", "max_value", "message"),
    [
        # dsize test 11
        ("A", U16_MAX, "expected a number"),
        (">10<>10", U16_MAX, "unexpected '<>10'"),
        ("<>10", U16_MAX, "expected a number"),
        ("1<>", U16_MAX, "expected a number"),
        ("", U16_MAX, "empty"),
        (" ", U16_MAX, "empty"),
        ("2<>1", U16_MAX, "range 2-1 is empty"),
        ("1!", U16_MAX, "unexpected '!'"),
        # uint.rs tests
        ("&0xc0=12", U64_MAX, "can never match"),
        ("2kb", U8_MAX, "above the maximum 255"),
        ("<444", U8_MAX, "above the maximum 255"),
        # empty exclusive ranges and pointless comparisons
        ("1-2", U16_MAX, "range 1-2 is empty"),
        ("5-5", U16_MAX, "range 5-5 is empty"),
        ("5-3", U16_MAX, "range 5-3 is empty"),
        ("<0", U16_MAX, "'<0' can never match"),
        (">=0", U16_MAX, "'>=0' always matches"),
        (">65535", U16_MAX, "can never match"),
        ("<=65535", U16_MAX, "always matches"),
        (">255", U8_MAX, "can never match"),
        # values and syntax
        ("65536", U16_MAX, "above the maximum 65535"),
        ("0x10000", U16_MAX, "above the maximum 65535"),
        ("64kb", U16_MAX, "above the maximum 65535"),
        ("0x", U16_MAX, "not followed by hex digits"),
        ("0X10", U16_MAX, "unexpected 'X10'"),
        ("\t5", U16_MAX, "expected a number"),
        ("5\t", U16_MAX, "unexpected '\\t'"),
        ("==5", U16_MAX, "expected a number"),
        ("> =5", U16_MAX, "expected a number"),
        ("! 1-6", U16_MAX, "unexpected '-6'"),
        ("!= ", U16_MAX, "expected a number"),
        ("5 6", U16_MAX, "unexpected '6'"),
        ("-5", U16_MAX, "expected a number"),
        ("+5", U16_MAX, "expected a number"),
        ("5k", U16_MAX, "unexpected 'k'"),
        ("1.5", U16_MAX, "unexpected '.5'"),
        ("&0x0f", U8_MAX, "needs '='"),
        ("&0x0f ! = 1", U8_MAX, "needs '='"),
        ("1,raw", U16_MAX, "unexpected ',raw'"),
        ("1 gib", U64_MAX, "unexpected 'gib'"),
    ],
)
def test_parse_uint_errors(text: str, max_value: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_uint(text, max_value)


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        # doc: "a range between 1 and 4 will match 2 and 3, but neither 1 nor 4"
        ("1-4", 1, False),
        ("1-4", 2, True),
        ("1-4", 3, True),
        ("1-4", 4, False),
        # doc: "!1-4 will match for 1 or below and for 4 or above"
        ("!1-4", 0, True),
        ("!1-4", 1, True),
        ("!1-4", 2, False),
        ("!1-4", 4, True),
        # uint.rs negated range test
        ("!1-6", 1, True),
        ("!1-6", 2, False),
        ("!1-6", 5, False),
        ("!1-6", 6, True),
        # uint.rs bitmask tests
        ("&0x40!=0", 0xBF, False),
        ("&0x40!=0", 0x40, True),
        ("&0xc0=0x80", 0x80, True),
        ("&0xc0=0x80", 0x40, False),
        ("&0xc0=0x80", 0xC0, False),
        ("&0xc0=0x80", 0xBF, True),
        # dsize match tests 01/02 (inequality)
        ("!2", 1, True),
        ("!1", 1, False),
        ("1", 1, True),
        ("1", 2, False),
        ("<10", 9, True),
        ("<10", 10, False),
        ("<=10", 10, True),
        ("<=10", 11, False),
        (">8", 8, False),
        (">8", 9, True),
        (">=10", 10, True),
        (">=10", 9, False),
        ("8<>20", 8, False),
        ("8<>20", 9, True),
        ("8<>20", 19, True),
        ("8<>20", 20, False),
    ],
)
def test_uint_matches(text: str, value: int, expected: bool) -> None:
    assert parse_uint(text, U16_MAX).matches(value) is expected


@pytest.mark.parametrize(
    ("text", "expected", "inside", "outside"),
    [
        ("2-5", U("range", 1, 6), (2, 5), (1, 6)),
        ("!2-5", U("negrange", 1, 6), (1, 6), (2, 5)),
        ("7", U("eq", 7), (7, 7), (6, 8)),
        (">7", U("gt", 7), (8, 9), (6, 7)),
    ],
)
def test_parse_uint_inclusive(
    text: str, expected: UintMatch, inside: tuple[int, int], outside: tuple[int, int]
) -> None:
    m = parse_uint(text, U32_MAX, inclusive_range=True)
    assert m == expected
    assert all(m.matches(v) for v in inside)
    assert not any(m.matches(v) for v in outside)


@pytest.mark.parametrize("text", ["0-5", "2-2", "3-2", f"1-{U32_MAX}", "&0x0f=1"])
def test_parse_uint_inclusive_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uint(text, U32_MAX, inclusive_range=True)


def test_uint_match_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown integer match mode"):
        UintMatch("between", 1, 2)


def test_parse_uint_rejects_bad_max() -> None:
    with pytest.raises(ValueError, match="max_value"):
        parse_uint("1", 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Snort 3 RangeCheck unit tests (src/framework/range.cc)
        ("5", U("eq", 5)),
        ("=+0x5", U("eq", 5)),
        ("!=5", U("ne", 5)),
        ("<5", U("lt", 5)),
        ("<=5", U("le", 5)),
        (">5", U("gt", 5)),
        (">=5", U("ge", 5)),
        ("0<>5", U("range", 0, 5)),
        ("0<=>5", U("range_incl", 0, 5)),
        (" 5 ", U("eq", 5)),
        (" ! 5 ", U("ne", 5)),
        (" != 5 ", U("ne", 5)),
        (" < 5 ", U("lt", 5)),
        (" >= 5 ", U("ge", 5)),
        (" 10 <> 50 ", U("range", 10, 50)),
        (" 0x10 <=> 0x50 ", U("range_incl", 0x10, 0x50)),
        # strtol base 0: a leading 0 is octal in Snort (Suricata reads it as decimal)
        ("010", U("eq", 8)),
        # corpus spelling (bufferlen)
        ("11<=>20", U("range_incl", 11, 20)),
    ],
)
def test_parse_snort_range(text: str, expected: UintMatch) -> None:
    assert parse_snort_range(text, U16_MAX) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Snort 3 RangeCheck invalid ranges
        " ! = 5 ",
        " < = 5 ",
        " > = 5 ",
        " 1 < > 5 ",
        " < > 5 ",
        "5x",
        "5.0",
        "5-0",
        "*5",
        "=$5",
        "=5x",
        "<<0",
        "4<>2",
        "24<=>16",
        " 5 = ",
        " 5 ! ",
        " 5 < ",
        " 5 >= ",
        " 1 <> ",
        " <> 5 ",
        " 1 <=> ",
        " <=> 5 ",
        # outside the field
        "-1",
        "!-5",
        "70000",
        "1<>70000",
        "08",
    ],
)
def test_parse_snort_range_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_snort_range(text, U16_MAX)


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("0<=>5", 0, True),
        ("0<=>5", 5, True),
        ("0<=>5", 6, False),
        ("0<>5", 0, False),
        ("0<>5", 1, True),
        ("0<>5", 5, False),
        ("!=5", 5, False),
        ("!=5", 4, True),
    ],
)
def test_snort_range_matches(text: str, value: int, expected: bool) -> None:
    assert parse_snort_range(text, U16_MAX).matches(value) is expected


# -- corpus ----------------------------------------------------------------------------------------

RULESETS = CORPUS / "rulesets"
CORPUS_KEYWORDS = ("dsize", "bsize", "urilen", "ttl", "itype", "icode")


def _rule_options(rule: str) -> Iterator[tuple[str, str]]:
    """(name, value) of each option of a rule, split as the rule loader splits them."""
    for opt in parse_rule(rule).options:
        yield opt.name, opt.value or ""


def _enabled_rules(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        for _line, text, enabled in split_rules(path.read_text(encoding="utf-8", errors="replace")):
            if enabled:
                yield text


@pytest.mark.corpus
def test_corpus_integer_values_parse() -> None:
    require_corpus(RULESETS)
    paths = sorted((RULESETS / "et-open-suricata5-2024-04-21").glob("*.rules"))
    paths.append(RULESETS / "snort3-community" / "snort3-community.rules")
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for rule in _enabled_rules(paths):
        for name, value in _rule_options(rule):
            if name not in CORPUS_KEYWORDS:
                continue
            # urilen's own suffix selects the raw or normalized URI; not part of the integer.
            number = re.sub(r"\s*,\s*(raw|norm)\s*$", "", value) if name == "urilen" else value
            try:
                parse_uint(number, KEYWORD_MAX[name])
                counts[name] += 1
            except ValueError as e:
                failures.append(f"{name}:{value} -> {e}")
    print("integer keyword values parsed:", dict(sorted(counts.items())))
    assert not failures, failures[:20]
    # Measured 2024-04 corpus: bsize 2250, dsize 187, urilen 165, itype 153, icode 89, ttl 2.
    assert sum(counts.values()) > 2500
    assert set(counts) == set(CORPUS_KEYWORDS)
