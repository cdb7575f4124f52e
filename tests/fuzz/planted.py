"""Fuzz targets that fail on purpose, to prove the runner (and so the CI test) notices.

``python -m tests.fuzz.planted crash|hang|memory [libFuzzer flags] DIR``: the
target raises on an input starting with ``!``, sleeps past any ``-timeout``
on one starting with ``#``, or holds ever more memory. Every input of the
given seed directory starts with the trigger, so the failure comes at once.
"""

from __future__ import annotations

import sys
import time

from fuzz.common import fuzz

_held: list[bytearray] = []


def crash(data: bytes) -> None:
    if data[:1] == b"!":
        raise RuntimeError("planted crash")


def hang(data: bytes) -> None:
    if data[:1] == b"#":
        time.sleep(60)


def memory(data: bytes) -> None:
    _held.append(bytearray(64 << 20))  # 64 MiB more per input, never released


if __name__ == "__main__":
    kind = sys.argv.pop(1)
    fuzz({"crash": crash, "hang": hang, "memory": memory}[kind])
