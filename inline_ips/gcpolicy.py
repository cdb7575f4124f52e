"""Garbage-collector settings for a process that judges packets for a long time.

What it does: CPython's cyclic collector occasionally walks *every* tracked
object (a full, generation-2 collection). In a worker that holds a compiled
rule set (ET Open: about a million objects) and a full flow table (about 20
objects per flow), one such walk takes hundreds of milliseconds, and it runs
on the verdict thread: the queue fills and fail-open lets packets through
unjudged. A flood of new flows makes them frequent, because a full
collection is due whenever the long-lived objects have grown by a quarter.
So:

- :func:`configure` turns automatic full collections off. The young
  generations are still collected automatically, so short-lived cycles (an
  exception and its traceback) are freed as before, in well under a
  millisecond each.
- :func:`settle` runs one full collection, then freezes what survives
  (``gc.freeze``: no later collection looks at those objects again). The
  worker calls it before it judges its first packet and after every reload,
  when the loader has left its own cycles (parse errors with tracebacks).
  The previous rule set, frozen by an earlier settle, is freed by reference
  counting when the last flow lets go of it.

Why nothing piles up between reloads: the compiled rules and the engine's
per-flow state hold no reference cycles (``tests/test_gcpolicy.py`` checks
that with the default rules and ET Open, across benign traffic and attacks),
so what they drop is freed by reference counting alone.

What it does not do: change anything for a process that never calls it
(tests, ``inline-ips replay``), or limit memory (the tables' caps do that).
"""

from __future__ import annotations

import gc
import time
from typing import Final

# gc's generation-2 threshold counts generation-1 collections; none this high happens
# in the life of a process, so only an explicit collect() walks everything.
NO_AUTOMATIC_FULL: Final = 1 << 30


def configure() -> None:
    """Collect the young generations automatically as before, and never the whole heap."""
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NO_AUTOMATIC_FULL)


def settle() -> tuple[int, float]:
    """One full collection, then freeze the survivors; returns (objects freed, seconds taken)."""
    started = time.monotonic()
    gc.unfreeze()  # the earlier frozen objects that are garbage by now are freed with the rest
    freed = gc.collect()
    gc.freeze()
    return freed, time.monotonic() - started
