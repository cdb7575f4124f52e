"""Fuzz target: the ``rules.yaml`` loader.

Does: load each input (as UTF-8, undecodable bytes replaced, as an operator's
editor would have refused them) with
:func:`inline_ips.rules.yaml_loader.load_rules_text`. It either returns a
rule set or raises :class:`~inline_ips.rules.yaml_loader.RulesError` whose
every message starts with the file name and a line number
(``fuzz.yaml:12: ...``); any other exception, or a message without its line,
is a failure. ``include:`` entries are resolved against an empty directory of
its own, so the loader never reads the machine's files.

Does not: load Suricata ``.rules`` files (``fuzz_suricata_rules`` does), or
compile the loaded rules into an engine.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from fuzz.common import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from inline_ips.rules.yaml_loader import RulesError, load_rules_text

NAME = "fuzz.yaml"
_MESSAGE = re.compile(re.escape(NAME) + r":\d+: ")
_EMPTY_DIR = Path(tempfile.mkdtemp(prefix="fuzz-yaml-"))


class UndocumentedError(AssertionError):
    """The loader failed in a way its contract does not allow."""


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    if "include" in text:
        # Keep include paths inside the empty directory: an absolute one would make the
        # loader stat and glob the machine's file system (``/**`` walks all of it).
        text = text.replace("/", "_")
    try:
        load_rules_text(text, NAME, base_dir=_EMPTY_DIR)
    except RulesError as e:
        if not e.errors:
            raise UndocumentedError("RulesError without a message") from e
        for msg in e.errors:
            if not _MESSAGE.match(msg):
                raise UndocumentedError(f"message without file and line: {msg!r}") from e


if __name__ == "__main__":
    fuzz(test_one_input)
