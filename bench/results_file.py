"""Sections of bench/RESULTS.md: each benchmark rewrites its own and keeps the others.

Does: :func:`replace_section` swaps one ``## `` section of a Markdown file's
text (or appends it), leaving every other byte alone; :func:`keep_other_sections`
appends to a benchmark's freshly written text the sections of the old file
that the benchmark does not write itself. Does not: read or write files.
"""

from __future__ import annotations


def _headings(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.startswith("## ")]


def _section(lines: list[str], start: int) -> str:
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[start:end])


def replace_section(text: str, section: str, heading: str) -> str:
    """``text`` with its ``heading`` section (up to the next ``## `` heading) replaced, or appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if not section.endswith("\n"):
        section += "\n"
    if start is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def keep_other_sections(new: str, old: str) -> str:
    """``new`` followed by the sections of ``old`` whose headings ``new`` does not have, in their order."""
    own = set(_headings(new))
    lines = old.splitlines(keepends=True)
    kept = [
        _section(lines, i)
        for i, line in enumerate(lines)
        if line.startswith("## ") and line.rstrip() not in own
    ]
    out = new
    for sec in kept:
        if not out.endswith("\n\n"):
            out += "\n" if out.endswith("\n") else "\n\n"
        out += sec
    return out
