"""Inspect one buffer with a rule's ordered content and regex matches.

Follows Suricata's content inspection: ``offset``/``depth`` bound a match
from the buffer start (depth counts from offset); ``distance``/``within`` are
relative to the end of the previous match (within counts from there plus the
distance); a negated content must not occur in its window; when a later match
is relative, earlier ones are retried at their next occurrence (backtracking,
with a step budget so a hostile buffer cannot make it quadratic without end).
Regexes run on RE2, linear in the buffer. This module does not decide which
rules to try; the prefilter and ``signature`` do.
"""

from __future__ import annotations

from inline_ips.rules.model import Content, Match, Regex

# Upper bound on match attempts per buffer and rule; Suricata has a similar
# inspection recursion limit (detect.inspection-recursion-limit).
MAX_STEPS = 3000


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_STEPS


def inspect(buf: bytes, lowered: bytes, matches: tuple[Match, ...]) -> list[tuple[int, bytes]] | None:
    """Return the replacements to apply (possibly empty) if all matches hold, else None.

    ``lowered`` is ``buf.lower()``, computed once by the caller for nocase contents.
    Replacement offsets are positions in ``buf``.
    """
    out: list[tuple[int, bytes]] = []
    if _inspect(buf, lowered, matches, 0, 0, out, _Budget()):
        return out
    return None


def _window(m: Content, prev_end: int, n: int) -> tuple[int, int]:
    if m.distance is not None or m.within is not None:
        start = prev_end + (m.distance or 0)
        end = start + m.within if m.within is not None else n
    else:
        start = m.offset or 0
        end = start + m.depth if m.depth is not None else n
    return max(start, 0), min(end, n)


def _inspect(
    buf: bytes,
    lowered: bytes,
    matches: tuple[Match, ...],
    i: int,
    prev_end: int,
    out: list[tuple[int, bytes]],
    budget: _Budget,
) -> bool:
    if i == len(matches):
        return True
    budget.left -= 1
    if budget.left < 0:
        return False
    m = matches[i]
    n = len(buf)
    if isinstance(m, Regex):
        # Like pcre /R, a relative regex sees the buffer from the previous match's end,
        # so '^' anchors there (search(buf, pos) would not match '^' at pos).
        start = prev_end if m.relative else 0
        found = (m.compiled.search(buf[start:]) if start else m.compiled.search(buf)) if start <= n else None
        if m.negated:
            return found is None and _inspect(buf, lowered, matches, i + 1, prev_end, out, budget)
        if found is None:
            return False
        return _inspect(buf, lowered, matches, i + 1, start + found.end(), out, budget)

    start, end = _window(m, prev_end, n)
    hay = lowered if m.nocase else buf
    plen = len(m.pattern)
    pos = hay.find(m.pattern, start, end) if end - start >= plen else -1
    if m.negated:
        return pos < 0 and _inspect(buf, lowered, matches, i + 1, prev_end, out, budget)
    # Only a later relative match can make an earlier occurrence the wrong one.
    retry = i + 1 < len(matches) and _any_relative(matches, i + 1)
    while pos >= 0:
        mark = len(out)
        if m.replace is not None:
            out.append((pos, m.replace))
        if _inspect(buf, lowered, matches, i + 1, pos + plen, out, budget):
            return True
        del out[mark:]
        if not retry or budget.left < 0:
            return False
        pos = hay.find(m.pattern, pos + 1, end)
    return False


def _any_relative(matches: tuple[Match, ...], j: int) -> bool:
    nxt = matches[j]
    return nxt.relative if isinstance(nxt, (Content, Regex)) else False
