"""Inspect one buffer with a rule's ordered matches (content, pcre, byte_*, isdataat, bsize).

Follows Suricata's content inspection (detect-engine-content-inspection.c):
a cursor starts at 0 and each keyword is evaluated left to right.
``offset``/``depth`` bound a content from the buffer start (depth counts from
offset); ``distance``/``within`` are relative to the cursor (within counts
from there plus the distance); ``endswith`` needs the match to end the
buffer; a negated content must not occur in its window and never moves the
cursor. A content or pcre moves the cursor to its match end, byte_jump to
its target, byte_extract and byte_math past the bytes they read; byte_test,
isdataat and bsize only test. When a later keyword is relative, an earlier
content or pcre is retried at its next occurrence (backtracking), within a
step budget so a hostile buffer cannot make it quadratic without end (Suricata's
detect.inspection-recursion-limit). Regexes run on RE2, linear in the
buffer. Values that name a byte_extract variable are read from the
variables set earlier in the same buffer. This module does not decide which
rules to try; the prefilter and ``signature`` do.
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
from inline_ips.rules.model import BufferSize, Content, Match, Pos, Regex

# Upper bound on match attempts per buffer and rule; Suricata has a similar
# inspection recursion limit (detect.inspection-recursion-limit).
MAX_STEPS = 3000


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
    if _inspect(buf, lowered, matches, 0, 0, out, _State()):
        return out
    return None


def _value(v: Pos | None, env: dict[str, int]) -> int | None:
    if v is None or isinstance(v, int):
        return v
    return env.get(v)


def _window(m: Content, prev_end: int, n: int, env: dict[str, int]) -> tuple[int, int] | None:
    if m.distance is not None or m.within is not None:
        distance = _value(m.distance, env)
        within = _value(m.within, env)
        if (m.distance is not None and distance is None) or (m.within is not None and within is None):
            return None
        start = prev_end + (distance or 0)
        end = start + within if within is not None else n
    else:
        offset = _value(m.offset, env)
        depth = _value(m.depth, env)
        if (m.offset is not None and offset is None) or (m.depth is not None and depth is None):
            return None
        start = offset or 0
        end = start + depth if depth is not None else n
    return max(start, 0), min(end, n)


def _inspect(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
) -> bool:
    if i == len(matches):
        return True
    st.left -= 1
    if st.left < 0:
        return False
    m = matches[i]
    if isinstance(m, Content):
        return _content(buf, lowered, matches, i, prev_end, out, st, m)
    if isinstance(m, Regex):
        return _regex(buf, lowered, matches, i, prev_end, out, st, m)
    env = st.env
    if isinstance(m, BufferSize):
        ok = m.size.matches(len(buf))
    elif isinstance(m, IsDataAt):
        ok = match_isdataat(m, buf, prev_end, env)
    elif isinstance(m, ByteTest):
        ok = match_byte_test(m, buf, prev_end, env)
    else:
        if isinstance(m, ByteJump):
            pos = match_byte_jump(m, buf, prev_end, env)
        elif isinstance(m, ByteExtract):
            pos = match_byte_extract(m, buf, prev_end, env)
        elif isinstance(m, ByteMath):
            pos = match_byte_math(m, buf, prev_end, env)
        else:  # pragma: no cover - the Match union is closed
            return False
        return pos is not None and _inspect(buf, lowered, matches, i + 1, pos, out, st)
    return ok and _inspect(buf, lowered, matches, i + 1, prev_end, out, st)


def _content(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
    m: Content,
) -> bool:
    n = len(buf)
    win = _window(m, prev_end, n, st.env)
    if win is None:
        return False
    start, end = win
    hay = lowered if m.nocase else buf
    plen = len(m.pattern)
    if m.endswith:
        # Only an occurrence that ends the buffer counts.
        pos = n - plen if n - plen >= start and end == n and hay.startswith(m.pattern, n - plen) else -1
    else:
        pos = hay.find(m.pattern, start, end) if end - start >= plen else -1
    if m.negated:
        return pos < 0 and _inspect(buf, lowered, matches, i + 1, prev_end, out, st)
    # Only a later relative match can make an earlier occurrence the wrong one.
    retry = not m.endswith and _next_relative(matches, i + 1)
    while pos >= 0:
        mark = len(out)
        if m.replace is not None:
            out.append((pos, m.replace))
        if _inspect(buf, lowered, matches, i + 1, pos + plen, out, st):
            return True
        del out[mark:]
        if not retry or st.left < 0:
            return False
        pos = hay.find(m.pattern, pos + 1, end)
    return False


def _regex(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    st: _State,
    m: Regex,
) -> bool:
    # Like pcre /R, a relative regex sees the buffer from the previous match's end,
    # so '^' anchors there (search(buf, pos) would not match '^' at pos).
    start = prev_end if m.relative else 0
    if start > len(buf):
        return m.negated and _inspect(buf, lowered, matches, i + 1, prev_end, out, st)
    sub = buf[start:] if start else buf
    found = m.compiled.search(sub)
    if m.negated:
        return found is None and _inspect(buf, lowered, matches, i + 1, prev_end, out, st)
    retry = _next_relative(matches, i + 1)
    while found is not None:
        if _inspect(buf, lowered, matches, i + 1, start + found.end(), out, st):
            return True
        if not retry or st.left < 0:
            return False
        st.left -= 1
        nxt = found.start() + 1
        if nxt > len(sub):
            return False
        found = m.compiled.search(sub, nxt)
    return False


def _next_relative(matches: tuple[Match, ...], j: int) -> bool:
    """Does the keyword after this one depend on where this one matched?"""
    if j >= len(matches):
        return False
    nxt = matches[j]
    if isinstance(nxt, Content):
        return nxt.relative
    if isinstance(nxt, (Regex, ByteTest, ByteJump, ByteExtract, ByteMath, IsDataAt)):
        return nxt.relative
    return False
