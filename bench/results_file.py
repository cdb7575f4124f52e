"""What the benchmarks share in bench/RESULTS.md: their sections, the machine, the command.

Does: :func:`replace_section` swaps one ``## `` section of a Markdown file's
text (or appends it), leaving every other byte alone; :func:`keep_other_sections`
appends to a benchmark's freshly written text the sections of the old file
that the benchmark does not write itself; :func:`cpu_model` and
:func:`command_line` say what each section records about the run;
:func:`positive_int` is the benchmarks' argparse type for counts. Does not:
read or write the results file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def command_line(module: str, argv: Sequence[str]) -> str:
    """``python -m module argv...``: the command that reproduces this run (a local interpreter relative)."""
    exe = sys.executable or "python"
    try:
        rel = os.path.relpath(exe)
        if not rel.startswith(".."):
            exe = rel
    except ValueError:  # another drive (not on Linux, but relpath can say so)
        pass
    return shlex.join([exe, "-m", module, *argv])


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
