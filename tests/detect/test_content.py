"""Content inspection: positional modifiers, negation, nocase, backtracking, regexes, replacements."""

from __future__ import annotations

import pytest

from inline_ips.detect.bytes import ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt
from inline_ips.detect.content import MAX_STEPS, inspect
from inline_ips.rules.model import BufferSize, Content, Match, Regex
from inline_ips.rules.numeric import UintMatch
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


# ------------------------------------------------------------------------------------------------
# Suricata semantics beyond content/pcre: endswith/startswith, byte keywords and the cursor,
# byte_extract variables in positional modifiers, pcre backtracking, the recursion limit
# (detect-engine-content-inspection.c, and the *_NEXT flags set by detect-within.c,
# detect-distance.c, detect-pcre.c, detect-bytetest.c and friends).


def K(pattern: bytes, **kw: object) -> Content:  # noqa: N802 - reads like the rule keyword
    """A content with any modifier, including variables and startswith/endswith."""
    return Content(pattern, **kw)  # type: ignore[arg-type]


def starts(pattern: bytes, negated: bool = False) -> Content:
    # What the .rules loader builds for `startswith`: depth = len, offset 0.
    return Content(pattern, negated=negated, offset=0, depth=len(pattern), startswith=True)


def bsize(mode: str, a: int, b: int = 0) -> BufferSize:
    return BufferSize(UintMatch(mode, a, b))


MORE: list[tuple[str, bytes, tuple[Match, ...], bool]] = [
    # endswith
    ("endswith_hit", b"xxabc", (K(b"abc", endswith=True),), True),
    ("endswith_not_at_end", b"abcxx", (K(b"abc", endswith=True),), False),
    ("endswith_later_occurrence", b"abcxabc", (K(b"abc", endswith=True),), True),
    ("endswith_whole_buffer", b"abc", (K(b"abc", endswith=True),), True),
    ("endswith_buffer_too_short", b"bc", (K(b"abc", endswith=True),), False),
    ("endswith_offset_ok", b"xxabc", (K(b"abc", endswith=True, offset=2),), True),
    ("endswith_offset_past_start", b"xxabc", (K(b"abc", endswith=True, offset=3),), False),
    ("endswith_depth_covers_buffer", b"xxabc", (K(b"abc", endswith=True, depth=5),), True),
    # depth shorter than the buffer: the match cannot end it
    ("endswith_depth_short", b"xxabcx", (K(b"abc", endswith=True, depth=5),), False),
    ("endswith_depth_short_at_end", b"abcxxabc", (K(b"abc", endswith=True, depth=3),), False),
    ("endswith_relative", b"abxxcd", (C(b"ab"), K(b"cd", endswith=True, distance=0)), True),
    ("endswith_relative_within_short", b"abxxcd", (C(b"ab"), K(b"cd", endswith=True, within=3)), False),
    ("endswith_nocase", b"xxABC", (K(b"abc", endswith=True, nocase=True),), True),
    # negated endswith: absent from the end; Suricata looks at the first occurrence only
    ("neg_endswith_at_end", b"xxabc", (K(b"abc", negated=True, endswith=True),), False),
    ("neg_endswith_not_at_end", b"abcxx", (K(b"abc", negated=True, endswith=True),), True),
    ("neg_endswith_absent", b"xxxx", (K(b"abc", negated=True, endswith=True),), True),
    ("neg_endswith_first_occurrence_only", b"abcxabc", (K(b"abc", negated=True, endswith=True),), True),
    ("neg_endswith_depth_short", b"abcabc", (K(b"abc", negated=True, endswith=True, depth=3),), True),
    # startswith (offset 0, depth len) and the flag alone
    ("startswith_hit", b"abcx", (starts(b"abc"),), True),
    ("startswith_miss", b"xabc", (starts(b"abc"),), False),
    ("startswith_negated", b"xabc", (starts(b"abc", negated=True),), True),
    ("startswith_negated_hit", b"abcx", (starts(b"abc", negated=True),), False),
    ("startswith_flag_alone", b"xabc", (K(b"abc", startswith=True),), False),
    ("startswith_then_relative", b"GET /x", (starts(b"GET"), C(b"/", within=2)), True),
    # bsize: the buffer length, wherever it sits in the list
    ("bsize_eq", b"abcd", (bsize("eq", 4),), True),
    ("bsize_eq_miss", b"abcde", (bsize("eq", 4),), False),
    ("bsize_zero_empty", b"", (bsize("eq", 0),), True),
    ("bsize_after_content", b"abcd", (C(b"bc"), bsize("lt", 5), C(b"d", within=1)), True),
    ("bsize_range_exclusive", b"abcd", (bsize("range", 3, 5),), True),
    ("bsize_range_exclusive_edge", b"abc", (bsize("range", 3, 5),), False),
    # byte_test and isdataat test without moving the cursor
    (
        "byte_test_keeps_cursor",
        b"abAx",
        (C(b"ab"), ByteTest(1, "=", False, 0x41, 0, relative=True), C(b"A", distance=0, within=1)),
        True,
    ),
    ("byte_test_fails", b"abBx", (C(b"ab"), ByteTest(1, "=", False, 0x41, 0, relative=True)), False),
    (
        "isdataat_keeps_cursor",
        b"abcd",
        (C(b"ab"), IsDataAt(2, relative=True), C(b"cd", distance=0, within=2)),
        True,
    ),
    ("isdataat_relative_short", b"abc", (C(b"ab"), IsDataAt(2, relative=True)), False),
    ("isdataat_negated_end", b"xxab", (C(b"ab"), IsDataAt(1, relative=True, negate=True)), True),
    # a later occurrence of the content has no data after it: the negated relative isdataat retries
    ("isdataat_negated_retries", b"ab ab", (C(b"ab"), IsDataAt(1, relative=True, negate=True)), True),
    ("isdataat_absolute", b"abc", (IsDataAt(2), C(b"c")), True),
    ("isdataat_absolute_miss", b"abc", (IsDataAt(3), C(b"c")), False),
    # byte_jump moves the cursor to its target, byte_extract/byte_math past what they read
    ("byte_jump_moves", b"\x02xxAB", (ByteJump(1, 0), C(b"AB", distance=0, within=2)), True),
    ("byte_jump_moves_short", b"\x01xxAB", (ByteJump(1, 0), C(b"AB", distance=0, within=2)), False),
    ("byte_jump_from_beginning", b"ABx\x00", (ByteJump(1, 3, from_beginning=True), C(b"AB", within=2)), True),
    ("byte_jump_past_end", b"\x09x", (ByteJump(1, 0), C(b"x")), False),
    ("byte_extract_moves", b"xx\x05AB", (ByteExtract(1, 2, "v"), C(b"AB", distance=0, within=2)), True),
    ("byte_extract_moves_miss", b"x\x05xAB", (ByteExtract(1, 0, "v"), C(b"AB", distance=0, within=2)), False),
    (
        "byte_extract_relative",
        b"hdr\x07AB",
        (C(b"hdr"), ByteExtract(1, 0, "v", relative=True), C(b"AB", distance=0, within=2)),
        True,
    ),
    ("byte_math_moves", b"\x01\x02AB", (ByteMath(2, 0, "+", 1, "r"), C(b"AB", distance=0, within=2)), True),
    # variables in content modifiers
    ("var_offset", b"\x03xxabc", (ByteExtract(1, 0, "o"), K(b"abc", offset="o")), True),
    ("var_offset_past", b"\x04xxabc", (ByteExtract(1, 0, "o"), K(b"abc", offset="o")), False),
    ("var_depth", b"\x04abc", (ByteExtract(1, 0, "d"), K(b"abc", depth="d")), True),
    ("var_depth_short", b"\x03abc", (ByteExtract(1, 0, "d"), K(b"abc", depth="d")), False),
    # depth counts from offset, for variables too
    (
        "var_offset_depth",
        b"\x03\x03xabc",
        (ByteExtract(1, 0, "o"), ByteExtract(1, 1, "d"), K(b"abc", offset="o", depth="d")),
        True,
    ),
    (
        "var_offset_depth_short",
        b"\x03\x02xabc",
        (ByteExtract(1, 0, "o"), ByteExtract(1, 1, "d"), K(b"abc", offset="o", depth="d")),
        False,
    ),
    (
        "var_static_depth_from_var_offset",
        b"\x03xxabc",
        (ByteExtract(1, 0, "o"), K(b"abc", offset="o", depth=3)),
        True,
    ),
    ("var_distance", b"\x02xxabc", (ByteExtract(1, 0, "n"), K(b"abc", distance="n")), True),
    ("var_distance_past", b"\x03xxabc", (ByteExtract(1, 0, "n"), K(b"abc", distance="n")), False),
    ("var_within", b"\x04xabc", (ByteExtract(1, 0, "w"), K(b"abc", within="w")), True),
    ("var_within_short", b"\x03xabc", (ByteExtract(1, 0, "w"), K(b"abc", within="w")), False),
    (
        "var_distance_within",
        b"\x01\x03xabc",
        (ByteExtract(1, 0, "n"), ByteExtract(1, 1, "w"), K(b"abc", distance="n", within="w")),
        True,
    ),
    # Suricata casts a distance variable to a signed 32-bit number: 0xffffffff is -1
    (
        "var_distance_negative",
        b"\xff\xff\xff\xffab",
        (ByteExtract(4, 0, "n"), K(b"\xffa", distance="n")),
        True,
    ),
    ("var_unknown", b"abc", (K(b"abc", offset="nope"),), False),
    ("var_from_byte_math", b"\x01\x01xxabc", (ByteMath(1, 0, "+", 1, "r"), K(b"abc", distance="r")), True),
    # relative pcre: anchored at the cursor, and the content before it is retried
    ("pcre_relative_retries_content", b"abxab1", (C(b"ab"), R(r"^\d", relative=True)), True),
    ("pcre_relative_sees_only_after", b"1ab", (C(b"ab"), R(r"1", relative=True)), False),
    # pcre backtracking: a later relative match forces the next pcre occurrence
    ("pcre_retry_next_occurrence", b"a1 a2x", (R(r"a\d"), C(b"x", distance=0, within=1)), True),
    ("pcre_retry_overlapping", b"aaab", (R(r"aa"), C(b"b", distance=0, within=1)), True),
    # the retry starts one byte after the match start: '^' cannot match again
    ("pcre_retry_anchor_once", b"aab", (R(r"^a"), C(b"b", distance=0, within=1)), False),
    ("pcre_retry_unanchored", b"aab", (R(r"a"), C(b"b", distance=0, within=1)), True),
    (
        "pcre_retry_for_byte_test",
        b"k1 k2",
        (R(r"k\d"), ByteTest(1, "=", False, ord("2"), -1, relative=True)),
        True,
    ),
    ("pcre_relative_chain", b"a1b2 a1b3", (R(r"a\d"), R(r"^b3", relative=True)), True),
    (
        "pcre_negated_keeps_cursor",
        b"abcd",
        (C(b"ab"), R(r"x", negated=True, relative=True), C(b"cd", within=2)),
        True,
    ),
    # retry flags come from the nearest earlier content/pcre, across keywords in between
    (
        "retry_across_absolute_byte_test",
        b"a..ab",
        (C(b"a"), ByteTest(1, "=", False, ord("a"), 0), C(b"b", within=2)),
        True,
    ),
    ("retry_for_negated_distance", b"abxab", (C(b"ab"), C(b"x", negated=True, distance=0)), True),
    (
        "retry_for_relative_byte_jump",
        b"T\x05T\x00Z",
        (C(b"T"), ByteJump(1, 0, relative=True), C(b"Z", distance=0, within=1)),
        True,
    ),
]


@pytest.mark.parametrize(("buf", "matches", "expected"), [c[1:] for c in MORE], ids=[c[0] for c in MORE])
def test_inspect_more(buf: bytes, matches: tuple[Match, ...], expected: bool) -> None:
    res = inspect(buf, buf.lower(), matches)
    assert (res == []) if expected else (res is None)


@pytest.mark.parametrize(("k", "hit"), [(2997, True), (2998, False)])
def test_budget_is_suricata_recursion_limit(k: int, hit: bool) -> None:
    # One evaluation for the first content, one per occurrence tried for the second: the match
    # at occurrence k+1 needs k+2 evaluations, and the 3000th evaluation gives up.
    buf = b"ab " * k + b"abcd"
    matches = (C(b"ab"), C(b"cd", distance=0, within=2))
    assert (inspect(buf, buf, matches) == []) is hit


def test_regex_retries_are_bounded() -> None:
    buf = b"a" * 50_000
    matches: tuple[Match, ...] = (R(r"a"), C(b"b", distance=0, within=1))
    assert inspect(buf, buf, matches) is None


def test_absent_content_gives_up_at_once() -> None:
    # A content without distance/within that is not found fails the buffer: the earlier
    # content is not retried at its 10,000 other occurrences.
    buf = b"a" * 10_000
    matches: tuple[Match, ...] = (C(b"a"), C(b"zz"), C(b"b", within=1))
    assert inspect(buf, buf, matches) is None


def test_variable_in_failed_branch_is_reset_by_retry() -> None:
    # byte_extract after a retried content reads again at the new cursor.
    buf = b"L\x03....L\x02ok"
    matches: tuple[Match, ...] = (C(b"L"), ByteExtract(1, 0, "n", relative=True), K(b"ok", within="n"))
    assert inspect(buf, buf, matches) == []
