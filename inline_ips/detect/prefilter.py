"""Multi-pattern prefilter: one Hyperscan scan per buffer yields the candidate rules.

Each signature contributes one literal (its fast pattern: the content marked
``fast_pattern``, or else its longest non-negated content), indexed under its
buffer and transforms. A rule can only
match when its fast pattern occurs in that buffer, so scanning a buffer once
for all literals gives a superset of the rules worth a full check; rules with
no usable literal are "unfiltered" and always checked. The scan cost barely
grows with the number of patterns (10,000 literals cost about the same as 10),
which is the point. This module does not evaluate rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import hyperscan

from inline_ips.rules.model import Buffer, Content, SignatureRule, Transform

BufferKey = tuple[Buffer, tuple[Transform, ...]]


@dataclass(frozen=True, slots=True)
class FastPattern:
    buffer: Buffer
    pattern: bytes
    nocase: bool
    transforms: tuple[Transform, ...] = ()

    @property
    def key(self) -> BufferKey:
        return (self.buffer, self.transforms)


def fast_pattern(rule: SignatureRule) -> FastPattern | None:
    """The literal this rule is indexed by, or None when it has none.

    The content the rule marks ``fast_pattern`` (its chopped slice with
    ``fast_pattern:offset,length``) when there is one, else the longest
    non-negated content: any of them must occur for the rule to match.
    """
    best: FastPattern | None = None
    for bm in rule.buffers:
        for m in bm.matches:
            if not isinstance(m, Content) or m.negated:
                continue
            if m.fast_pattern:
                return FastPattern(bm.buffer, m.literal, m.nocase, bm.transforms)
            # Longer literals are rarer, so they let fewer rules through.
            if best is None or len(m.pattern) > len(best.pattern):
                best = FastPattern(bm.buffer, m.pattern, m.nocase, bm.transforms)
    return best


class Scanner:
    """One compiled Hyperscan database for one buffer kind."""

    def __init__(self, entries: Sequence[tuple[int, FastPattern]]) -> None:
        # Many rules share a literal: compile each distinct (pattern, nocase) once.
        by_literal: dict[tuple[bytes, bool], list[int]] = {}
        for idx, fp in entries:
            by_literal.setdefault((fp.pattern, fp.nocase), []).append(idx)
        self.groups: list[tuple[int, ...]] = []
        exprs: list[bytes] = []
        flags: list[int] = []
        for (pat, nocase), idxs in by_literal.items():
            self.groups.append(tuple(idxs))
            exprs.append(_escape(pat))
            flags.append(hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if nocase else 0))
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        self.scratch = hyperscan.Scratch(self.db)
        self.db.scratch = self.scratch
        # One match list and one handler for every scan, not a closure per call; the
        # engine that owns this scanner scans from one thread.
        self._hits: list[int] = []
        hits = self._hits

        def on_match(pid: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
            hits.append(pid)

        self._on_match = on_match
        # Bound once, and called with the handler as a positional argument: the binding's
        # keyword parsing alone costs about as much as scanning a small packet.
        self._db_scan = self.db.scan

    def scan(self, data: bytes, out: set[int]) -> None:
        """Add the indexes of the rules whose literal occurs in ``data`` to ``out``."""
        found = self.matches(data)
        if found:
            out.update(found)

    def matches(self, data: bytes) -> set[int] | None:
        """The indexes of the rules whose literal occurs in ``data``; None when none does (no set built)."""
        hits = self._hits
        try:
            self._db_scan(data, self._on_match)
        except BaseException:
            hits.clear()  # what a failed scan reported so far must not leak into the next one
            raise
        if not hits:
            return None
        groups = self.groups
        out: set[int] = set()
        for pid in hits:
            out.update(groups[pid])
        hits.clear()
        return out


def _escape(literal: bytes) -> bytes:
    """A literal as a Hyperscan expression: every byte as \\xHH.

    The Python binding's literal mode measures patterns with strlen, so a
    literal holding a NUL byte (common in rules: ``|00|``) would be cut;
    escaped expressions compile to the same literal matcher.
    """
    return b"".join(_HEX[c] for c in literal)


_HEX = [b"\\x%02x" % c for c in range(256)]


class Prefilter:
    """Maps a buffer's bytes to the indexes of the rules whose fast pattern occurs in it.

    ``indexes`` names each rule's index in the caller's numbering (default:
    its position in ``rules``); ``scan`` reports those.
    """

    def __init__(self, rules: Sequence[SignatureRule], indexes: Sequence[int] | None = None) -> None:
        per_key: dict[BufferKey, list[tuple[int, FastPattern]]] = {}
        unfiltered: list[int] = []
        for pos, rule in enumerate(rules):
            idx = indexes[pos] if indexes is not None else pos
            fp = fast_pattern(rule)
            if fp is None:
                unfiltered.append(idx)
            else:
                per_key.setdefault(fp.key, []).append((idx, fp))
        self.unfiltered: tuple[int, ...] = tuple(unfiltered)
        self._scanners = {key: Scanner(entries) for key, entries in per_key.items()}
        self.pattern_count = sum(len(s.groups) for s in self._scanners.values())
        self.keys: tuple[BufferKey, ...] = tuple(self._scanners)

    @staticmethod
    def _key(buffer: Buffer | BufferKey) -> BufferKey:
        return (buffer, ()) if isinstance(buffer, Buffer) else buffer

    def has(self, buffer: Buffer | BufferKey) -> bool:
        return self._key(buffer) in self._scanners

    def scan(self, buffer: Buffer | BufferKey, data: bytes, out: set[int]) -> None:
        """Add the indexes of candidate rules for ``data`` in ``buffer`` to ``out``."""
        scanner = self._scanners.get(self._key(buffer))
        if scanner is None or not data:
            return
        scanner.scan(data, out)

    def scanner(self, buffer: Buffer | BufferKey) -> Scanner | None:
        """The scanner of one buffer (None: no rule has a fast pattern there), to scan it directly."""
        return self._scanners.get(self._key(buffer))
