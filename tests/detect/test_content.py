"""Content inspection: positional modifiers, negation, nocase, backtracking, regexes, replacements."""

from __future__ import annotations

import pytest

from inline_ips.detect.content import MAX_STEPS, inspect
from inline_ips.rules.model import Content, Match, Regex
from inline_ips.rules.yaml_loader import compile_regex


def C(  # noqa: N802 - reads like the rule keyword
    pattern: bytes,
    *,
    nocase: bool = False,
    negated: bool = False,
    offset: int | None = None,
    depth: int | None = None,
    distance: int | None = None,
    within: int | None = None,
    replace: bytes | None = None,
) -> Content:
    return Content(pattern, nocase, negated, offset, depth, distance, within, replace)


def R(source: str, *, negated: bool = False, relative: bool = False, nocase: bool = False) -> Regex:  # noqa: N802
    return Regex(source, compile_regex(source, nocase), negated, relative)


def run(buf: bytes, *matches: Match) -> list[tuple[int, bytes]] | None:
    return inspect(buf, buf.lower(), tuple(matches))


CASES: list[tuple[str, bytes, tuple[Match, ...], bool]] = [
    # plain
    ("plain_hit", b"xxabcxx", (C(b"abc"),), True),
    ("plain_miss", b"xxabxcx", (C(b"abc"),), False),
    ("empty_buffer", b"", (C(b"a"),), False),
    ("no_matches_is_true", b"anything", (), True),
    # offset: the match may not start before it
    ("offset_at", b"abcabc", (C(b"abc", offset=3),), True),
    ("offset_past_only_occurrence", b"xabcxx", (C(b"abc", offset=2),), False),
    ("offset_beyond_buffer", b"abc", (C(b"abc", offset=10),), False),
    # depth counts from the buffer start, or from offset when one is given
    ("depth_exact_fit", b"abcx", (C(b"abc", depth=3),), True),
    ("depth_too_short", b"xabc", (C(b"abc", depth=3),), False),
    ("depth_from_offset", b"xabc", (C(b"abc", offset=1, depth=3),), True),
    ("depth_from_offset_miss", b"xxabc", (C(b"abc", offset=1, depth=3),), False),
    ("depth_from_offset_wide", b"xxabc", (C(b"abc", offset=1, depth=4),), True),
    # distance: from the end of the previous match
    ("distance_ok", b"abcxxdef", (C(b"abc"), C(b"def", distance=2)), True),
    ("distance_later_ok", b"abcxxxxdef", (C(b"abc"), C(b"def", distance=2)), True),
    ("distance_too_close", b"abcxdef", (C(b"abc"), C(b"def", distance=2)), False),
    ("distance_zero_adjacent", b"abcdef", (C(b"abc"), C(b"def", distance=0)), True),
    ("distance_before_previous", b"defabc", (C(b"abc"), C(b"def", distance=0)), False),
    # within: from the previous end plus the distance
    ("within_ok", b"abcdef", (C(b"abc"), C(b"def", within=3)), True),
    ("within_too_far", b"abcxdef", (C(b"abc"), C(b"def", within=3)), False),
    ("within_after_distance", b"abcxdef", (C(b"abc"), C(b"def", distance=1, within=3)), True),
    ("within_after_distance_far", b"abcxxdef", (C(b"abc"), C(b"def", distance=1, within=3)), False),
    ("within_after_distance_near", b"abcdefdef", (C(b"abc"), C(b"def", distance=1, within=3)), False),
    # a negative distance reaches back into (and before) the previous match
    ("negative_distance", b"abcdef", (C(b"abcdef"), C(b"cd", distance=-4, within=2)), True),
    ("negative_distance_miss", b"abcdef", (C(b"abcdef"), C(b"bc", distance=-4, within=2)), False),
    ("negative_distance_clamped", b"abcdef", (C(b"cd"), C(b"ab", distance=-10)), True),
    # negation
    ("negated_absent", b"good", (C(b"evil", negated=True),), True),
    ("negated_present", b"so evil", (C(b"evil", negated=True),), False),
    ("negated_outside_depth", b"xxxxevil", (C(b"evil", negated=True, depth=4),), True),
    ("negated_relative_hit", b"abcxxdef", (C(b"abc"), C(b"def", negated=True, within=5)), False),
    ("negated_relative_outside", b"abcxxxdef", (C(b"abc"), C(b"def", negated=True, within=5)), True),
    ("negated_then_positive", b"abcdef", (C(b"zzz", negated=True), C(b"def")), True),
    # nocase: the pattern is stored lowered and compared with the lowered buffer
    ("nocase_hit", b"xAbCx", (C(b"ABC", nocase=True),), True),
    ("nocase_pattern_lowered", b"xabcx", (C(b"AbC", nocase=True),), True),
    ("case_sensitive_miss", b"xAbCx", (C(b"abc"),), False),
    ("case_sensitive_hit", b"xAbCx", (C(b"AbC"),), True),
    ("nocase_negated", b"EVIL", (C(b"evil", nocase=True, negated=True),), False),
    # backtracking: the first occurrence fails a later relative match, the second succeeds
    ("backtrack", b"abxxabcd", (C(b"ab"), C(b"cd", distance=0, within=2)), True),
    ("backtrack_none_fits", b"abxxabxcd", (C(b"ab"), C(b"cd", distance=0, within=2)), False),
    (
        "backtrack_three_levels",
        b"a1b a2b a3c",
        (C(b"a"), C(b"3", within=2), C(b"c", distance=0, within=1)),
        True,
    ),
    # regexes
    ("regex_hit", b"GET /x?id=42", (R(r"id=\d+"),), True),
    ("regex_miss", b"GET /x?id=x", (R(r"id=\d+"),), False),
    ("regex_anchor_absolute", b"xGET", (R(r"^GET"),), False),
    ("regex_nocase", b"select", (R("SELECT", nocase=True),), True),
    ("regex_relative_after", b"abc123", (C(b"abc"), R(r"\d{3}", relative=True)), True),
    ("regex_relative_not_before", b"123abc", (C(b"abc"), R(r"\d{3}", relative=True)), False),
    # like pcre /R: '^' anchors at the end of the previous match
    ("regex_relative_anchor", b"abc123", (C(b"abc"), R(r"^\d", relative=True)), True),
    ("regex_relative_anchor_miss", b"abc 123", (C(b"abc"), R(r"^\d", relative=True)), False),
    (
        "regex_relative_then_content",
        b"abc12x",
        (C(b"abc"), R(r"\d+", relative=True), C(b"x", within=1)),
        True,
    ),
    (
        "regex_relative_then_content_miss",
        b"abc12 x",
        (C(b"abc"), R(r"\d+", relative=True), C(b"x", within=1)),
        False,
    ),
    ("regex_then_relative_content", b"id=42;x", (R(r"id=\d+"), C(b";", within=1)), True),
    ("regex_then_relative_content_miss", b"id=42 ;", (R(r"id=\d+"), C(b";", within=1)), False),
    ("regex_negated_absent", b"hello", (R(r"\d", negated=True),), True),
    ("regex_negated_present", b"hello1", (R(r"\d", negated=True),), False),
    ("regex_negated_relative", b"1abc", (C(b"abc"), R(r"\d", negated=True, relative=True)), True),
    ("regex_negated_relative_hit", b"abc1", (C(b"abc"), R(r"\d", negated=True, relative=True)), False),
]


@pytest.mark.parametrize(("buf", "matches", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_inspect(buf: bytes, matches: tuple[Match, ...], expected: bool) -> None:
    res = inspect(buf, buf.lower(), matches)
    if expected:
        assert res == []
    else:
        assert res is None


@pytest.mark.parametrize(
    ("buf", "matches", "expected"),
    [
        (b"00abc00abc", (C(b"abc", replace=b"xyz"),), [(2, b"xyz")]),
        (b"00abc00abc", (C(b"abc", offset=3, replace=b"xyz"),), [(7, b"xyz")]),
        (
            b"abc-def",
            (C(b"abc", replace=b"ABC"), C(b"def", distance=1, replace=b"DEF")),
            [(0, b"ABC"), (4, b"DEF")],
        ),
        (b"abc", (C(b"abc"), C(b"bc", distance=-2, replace=b"BC")), [(1, b"BC")]),
        (b"xxAbC", (C(b"abc", nocase=True, replace=b"zzz"),), [(2, b"zzz")]),
        # the replacement of a failed first occurrence is not kept
        (b"abxxabcd", (C(b"ab", replace=b"AB"), C(b"cd", distance=0, within=2)), [(4, b"AB")]),
        (b"ab-ab", (C(b"ab", replace=b"AB"), C(b"cd")), None),
    ],
)
def test_replacements(
    buf: bytes, matches: tuple[Match, ...], expected: list[tuple[int, bytes]] | None
) -> None:
    assert run(buf, *matches) == expected


def test_pathological_backtracking_is_bounded() -> None:
    buf = b"a" * 100_000
    # Every 'a' starts a chain of adjacent 'a's that can never end in 'b':
    # unbounded backtracking would try about n**k combinations.
    matches: tuple[Match, ...] = (
        C(b"a"),
        *(C(b"a", distance=0, within=1) for _ in range(20)),
        C(b"b", distance=0, within=1),
    )
    assert inspect(buf, buf, matches) is None
    assert MAX_STEPS == 3000


def test_budget_does_not_stop_a_legitimate_late_match() -> None:
    # The match needs several hundred retries of the first content, well within the budget.
    buf = b"ab " * 500 + b"abcd"
    matches = (C(b"ab"), C(b"cd", distance=0, within=2))
    assert inspect(buf, buf, matches) == []
