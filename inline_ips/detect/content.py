"""Inspect one buffer with a rule's ordered matches (content, pcre, byte_*, isdataat, bsize).

Follows Suricata's content inspection (detect-engine-content-inspection.c,
``DetectEngineContentInspectionInternal``): a cursor starts at 0 and each
keyword is evaluated left to right. ``offset``/``depth`` bound a content from
the buffer start (depth counts from offset); ``distance``/``within`` are
relative to the cursor (within counts from there plus the distance; a
negative distance reaching before the buffer start is clamped to 0);
``startswith``/``endswith`` need the match to start/end the buffer; a negated content must not
occur in its window and never moves the cursor. A content or pcre moves the
cursor to its match end, byte_jump to its target, byte_extract and byte_math
past the bytes they read; byte_test, isdataat and bsize only test. Values
that name a byte_extract variable are read from the variables set earlier in
the same buffer (offset/depth as unsigned 32-bit, distance/within as signed
32-bit numbers, as Suricata casts them).

Backtracking is Suricata's, not an exhaustive search. Each keyword answers
match, no match, or "give up": a content not found without distance/within,
an isdataat that fails with a constant offset, or a later keyword that fails
without depending on where this one matched makes the whole buffer fail at
once. A content is retried at its next occurrence only when a keyword after
it is tied to its position by ``within``, by a negated ``distance`` content,
or by a relative pcre/byte_*/isdataat (Suricata's WITHIN_NEXT and
RELATIVE_NEXT flags, set on the nearest earlier content or pcre); a pcre is
retried (at its previous match start + 1, so ``^`` cannot match again) when
any relative keyword follows it. A negated ``endswith`` content looks at its
first occurrence only: found but not ending the buffer counts as absent. The
number of keyword evaluations per buffer is capped like Suricata's
``detect.inspection-recursion-limit`` (3000): reaching it is a no match, so a
hostile buffer cannot make it quadratic without end. Regexes run on RE2,
linear in the buffer. This module does not decide which rules to try; the
prefilter and ``signature`` do.

Deviations: a relative window whose end (cursor + distance + within) is
negative is empty here (Suricata's unsigned arithmetic wraps it to the whole
buffer), and a negated ``endswith`` content with a window starting past 0 is
compared with the buffer end (Suricata compares the match end with the
window's length).
"""

from __future__ import annotations

from inline_ips.detect.bytes import (
    ByteExtract,
    ByteJump,
    ByteMath,
    ByteTest,
    IsDataAt,
    match_byte_extract,
    match_byte_jump,
    match_byte_math,
    match_byte_test,
    match_isdataat,
)
from inline_ips.rules.model import BufferSize, Content, Match, Regex

# Keyword evaluations per buffer and rule; Suricata's detect.inspection-recursion-limit
# (default 3000): the evaluation that reaches it gives up.
MAX_STEPS = 3000

# Results of one keyword and everything after it (Suricata: 1, 0, -1).
_MATCH = 1
_NO = 0
_STOP = -1  # no match, and no earlier keyword may retry

_U32 = 0xFFFF_FFFF
_BYTE_KEYWORDS = (ByteTest, ByteJump, ByteExtract, ByteMath, IsDataAt)


class _State:
    __slots__ = ("env", "left")

    def __init__(self) -> None:
        self.left = MAX_STEPS
        self.env: dict[str, int] = {}


def inspect(buf: bytes, lowered: bytes, matches: tuple[Match, ...]) -> list[tuple[int, bytes]] | None:
    """Return the replacements to apply (possibly empty) if all matches hold, else None.

    ``lowered`` is ``buf.lower()``, computed once by the caller for nocase contents.
    Replacement offsets are positions in ``buf``.
    """
    out: list[tuple[int, bytes]] = []
    if _inspect(buf, lowered, matches, 0, 0, out, _State()) == _MATCH:
        return out
    return None


def _i32(v: int) -> int:
    v &= _U32
    return v - (1 << 32) if v >= 1 << 31 else v


def _window(m: Content, prev_end: int, n: int, env: dict[str, int]) -> tuple[int, int] | None:
    """[start, end) to search, unclamped at the buffer end; None when a variable is unset."""
    if m.distance is not None or m.within is not None:
        distance = m.distance
        within = m.within
        if isinstance(distance, str):
            got = env.get(distance)
            if got is None:
                return None
            distance = _i32(got)
        if isinstance(within, str):
            got = env.get(within)
            if got is None:
                return None
            within = _i32(got)
        d = distance or 0
        start = max(prev_end + d, 0)
        end = prev_end + d + within if within is not None else n
        return start, end
    if m.startswith:
        return 0, len(m.pattern)
    offset = m.offset
    depth = m.depth
    if isinstance(offset, str):
        got = env.get(offset)
        if got is None:
            return None
        offset = got & _U32
    if isinstance(depth, str):
        got = env.get(depth)
        if got is None:
            return None
        depth = got & _U32
    start = offset or 0
    return start, start + depth if depth is not None else n


def _inspect(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
) -> int:
    if i == len(matches):
        return _MATCH
    st.left -= 1
    if st.left <= 0:
        return _STOP
    m = matches[i]
    if isinstance(m, Content):
        return _content(buf, lowered, matches, i, prev_end, out, st, m)
    if isinstance(m, Regex):
        return _regex(buf, lowered, matches, i, prev_end, out, st, m)
    env = st.env
    if isinstance(m, BufferSize):
        if not m.size.matches(len(buf)):
            return _NO
    elif isinstance(m, IsDataAt):
        if not match_isdataat(m, buf, prev_end, env):
            # Suricata gives up on a constant offset: no other cursor could do better
            # (relative), or the cursor plays no part (absolute); a negated relative one
            # might hold further on.
            return _NO if isinstance(m.offset, str) or (m.negate and m.relative) else _STOP
    elif isinstance(m, ByteTest):
        if not match_byte_test(m, buf, prev_end, env):
            return _NO
    else:
        if isinstance(m, ByteJump):
            pos = match_byte_jump(m, buf, prev_end, env)
        elif isinstance(m, ByteExtract):
            pos = match_byte_extract(m, buf, prev_end, env)
        elif isinstance(m, ByteMath):
            pos = match_byte_math(m, buf, prev_end, env)
        else:  # pragma: no cover - the Match union is closed
            return _NO
        if pos is None:
            return _NO
        return _inspect(buf, lowered, matches, i + 1, pos, out, st)
    return _inspect(buf, lowered, matches, i + 1, prev_end, out, st)


def _content(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
    m: Content,
) -> int:
    n = len(buf)
    win = _window(m, prev_end, n, st.env)
    if win is None:
        return _NO
    start, end = win
    end = min(end, n)
    if start > end or end <= 0:
        # An empty window can never hold the pattern; a negated content holds.
        return _inspect(buf, lowered, matches, i + 1, prev_end, out, st) if m.negated else _NO
    hay = lowered if m.nocase else buf
    pattern = m.pattern
    plen = len(pattern)
    relative = m.relative
    if (m.endswith and end < n) or plen > end - start:
        pos = -1
    elif m.endswith and not m.negated:
        # Suricata scans on past occurrences that do not end the buffer: only the last can.
        pos = n - plen if hay.startswith(pattern, n - plen) else -1
    else:
        pos = hay.find(pattern, start, end)
    if m.negated:
        if pos < 0 or (m.endswith and pos + plen != n):
            return _inspect(buf, lowered, matches, i + 1, prev_end, out, st)
        single = not relative and m.offset is None and m.depth is None and not _relative_next(matches, i)
        return _STOP if single else _NO
    if pos < 0:
        return _NO if relative else _STOP
    retry: bool | None = None  # computed on the first failure only
    while True:
        mark = len(out)
        if m.replace is not None:
            out.append((pos, m.replace))
        r = _inspect(buf, lowered, matches, i + 1, pos + plen, out, st)
        if r == _MATCH:
            return _MATCH
        del out[mark:]
        if r == _STOP:
            return _STOP
        if retry is None:
            retry = _within_next(matches, i)
        if not retry:
            return _STOP  # what follows does not depend on where this matched
        pos = -1 if m.endswith else hay.find(pattern, pos + 1, end)
        if pos < 0:
            return _NO if relative else _STOP


def _regex(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
    m: Regex,
) -> int:
    # Like pcre /R, a relative regex sees the buffer from the previous match's end,
    # so '^' anchors there (search(buf, pos) would not match '^' at pos).
    start = prev_end if m.relative else 0
    if start > len(buf):  # pragma: no cover - the cursor never passes the buffer end
        return _inspect(buf, lowered, matches, i + 1, prev_end, out, st) if m.negated else _NO
    sub = buf[start:] if start else buf
    found = m.compiled.search(sub)
    if m.negated:
        if found is not None:
            return _NO
        return _inspect(buf, lowered, matches, i + 1, prev_end, out, st)
    if found is None:
        return _NO
    if not _relative_next(matches, i):
        return _inspect(buf, lowered, matches, i + 1, start + found.end(), out, st)
    while True:
        r = _inspect(buf, lowered, matches, i + 1, start + found.end(), out, st)
        if r != _NO:
            return r
        # The next search starts one byte after this match's start, in the same subject.
        nxt = found.start() + 1
        if nxt > len(sub):
            return _NO
        found = m.compiled.search(sub, nxt)
        if found is None:
            return _NO


def _is_relative(k: Match) -> bool:
    if isinstance(k, (Content, Regex)):
        return k.relative
    return isinstance(k, _BYTE_KEYWORDS) and k.relative


def _within_next(matches: tuple[Match, ...], i: int) -> bool:
    """Suricata's DETECT_CONTENT_WITHIN_NEXT on content ``i``: retry it if what follows fails.

    Set by the keywords whose nearest earlier content or pcre is ``i``: a content with
    ``within``, a negated content with ``distance``, or a relative pcre, byte_* or isdataat.
    A positive distance-only content sets DISTANCE_NEXT, which does not retry: a later
    occurrence of ``i`` could only shrink its window.
    """
    for j in range(i + 1, len(matches)):
        k = matches[j]
        if isinstance(k, Content):
            return k.within is not None or (k.negated and k.distance is not None)
        if isinstance(k, Regex):
            return k.relative
        if isinstance(k, _BYTE_KEYWORDS) and k.relative:
            return True
    return False


def _relative_next(matches: tuple[Match, ...], i: int) -> bool:
    """Suricata's RELATIVE_NEXT on keyword ``i``: a relative keyword depends on its position."""
    for j in range(i + 1, len(matches)):
        k = matches[j]
        if _is_relative(k):
            return True
        if isinstance(k, (Content, Regex)):
            return False
    return False
