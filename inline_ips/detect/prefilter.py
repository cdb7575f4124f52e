"""Multi-pattern prefilter: one Hyperscan scan per buffer yields the candidate rules.

Each signature contributes one literal (its fast pattern: the longest
non-negated content of one buffer, or the one marked fast). A rule can only
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

from inline_ips.rules.model import Buffer, Content, SignatureRule


@dataclass(frozen=True, slots=True)
class FastPattern:
    buffer: Buffer
    pattern: bytes
    nocase: bool


def fast_pattern(rule: SignatureRule) -> FastPattern | None:
    """The literal this rule is indexed by, or None when it has none."""
    best: FastPattern | None = None
    for bm in rule.buffers:
        for m in bm.matches:
            if not isinstance(m, Content) or m.negated:
                continue
            # Longer literals are rarer, so they let fewer rules through.
            if best is None or len(m.pattern) > len(best.pattern):
                best = FastPattern(bm.buffer, m.pattern, m.nocase)
    return best


class _Scanner:
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
            exprs.append(pat)
            flags.append(hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if nocase else 0))
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(
            expressions=exprs,
            ids=list(range(len(exprs))),
            elements=len(exprs),
            flags=flags,
            literal=True,
        )
        self.scratch = hyperscan.Scratch(self.db)
        self.db.scratch = self.scratch


class Prefilter:
    """Maps a buffer's bytes to the indexes of the rules whose fast pattern occurs in it."""

    def __init__(self, rules: Sequence[SignatureRule]) -> None:
        per_buffer: dict[Buffer, list[tuple[int, FastPattern]]] = {}
        unfiltered: list[int] = []
        for idx, rule in enumerate(rules):
            fp = fast_pattern(rule)
            if fp is None:
                unfiltered.append(idx)
            else:
                per_buffer.setdefault(fp.buffer, []).append((idx, fp))
        self.unfiltered: tuple[int, ...] = tuple(unfiltered)
        self._scanners = {buf: _Scanner(entries) for buf, entries in per_buffer.items()}
        self.pattern_count = sum(len(s.groups) for s in self._scanners.values())

    def has(self, buffer: Buffer) -> bool:
        return buffer in self._scanners

    def scan(self, buffer: Buffer, data: bytes, out: set[int]) -> None:
        """Add the indexes of candidate rules for ``data`` in ``buffer`` to ``out``."""
        scanner = self._scanners.get(buffer)
        if scanner is None or not data:
            return
        groups = scanner.groups
        hits: list[int] = []

        def on_match(pid: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
            hits.append(pid)

        scanner.db.scan(data, match_event_handler=on_match)
        for pid in hits:
            out.update(groups[pid])
