"""What every fuzz target shares: instrumentation, the libFuzzer entry point, input framing.

Does: :func:`instrumented` instruments the project's modules imported inside it
(``inline_ips.*``) for atheris's coverage feedback, only when the target runs
as a fuzzer (imported by a test it is a plain module, so the test suite's
modules are not rewritten); :func:`fuzz` hands a target to libFuzzer with the
command line's flags; :func:`records` / :func:`frame` read and write the one
framing the multi-part targets use (a stream's segments, an engine's packets).

Does not: choose libFuzzer flags (:mod:`fuzz.run` does) or generate seeds
(:mod:`fuzz.seeds`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

# Record framing: tag byte, 2-byte big-endian length, that many bytes. A length past
# the end takes what is left, so every input means something (libFuzzer's mutations
# rarely keep lengths consistent, and an input that is refused teaches it nothing).
HEADER = 3
MAX_RECORD = 0xFFFF


def records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(tag, chunk)`` for each record of ``data`` (see :func:`frame`); a lone trailing tag gives ``b""``."""
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        length = int.from_bytes(data[i + 1 : i + HEADER], "big")
        yield tag, data[i + HEADER : i + HEADER + length]
        i += HEADER + length


def frame(items: Iterable[tuple[int, bytes]]) -> bytes:
    """The input that :func:`records` splits back into ``items`` (chunks longer than 64 KiB are cut)."""
    out = bytearray()
    for tag, whole in items:
        chunk = whole[:MAX_RECORD]
        out += bytes([tag & 0xFF]) + len(chunk).to_bytes(2, "big") + chunk
    return bytes(out)


def instrumented(active: bool) -> AbstractContextManager[Any]:
    """Instrument ``inline_ips`` modules imported inside the block when ``active`` (running as a fuzzer)."""
    if not active:
        return contextlib.nullcontext()
    import atheris  # noqa: PLC0415 - a dev dependency, needed only to fuzz

    # The stubs declare it in atheris.import_hook only; atheris exports it at the top too.
    hooks: AbstractContextManager[Any] = atheris.instrument_imports(include=["inline_ips"])  # type: ignore[attr-defined]
    return hooks


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under libFuzzer with ``sys.argv``'s flags and corpus directories."""
    import atheris  # noqa: PLC0415

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
