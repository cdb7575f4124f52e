"""Injectable time source for every stage that needs "now".

Stages never call ``time.time()`` themselves: live mode passes a
:class:`SystemClock`, replay takes the time from each packet's capture
timestamp, and tests use :class:`FrozenClock` and move it by hand (the idea
of fail2ban's ``MyTime``). This module does not schedule anything.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as a float."""
        ...


class SystemClock:
    """Wall-clock time; the default for live inline operation."""

    def now(self) -> float:
        return time.time()


class FrozenClock:
    """A clock that only moves when told to; for tests of rate rules."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._t += seconds

    def set(self, t: float) -> None:
        self._t = t
