"""Fuzz target: Suricata ``pcre`` values translated to RE2.

Does: read each input as a ``pcre:`` keyword value (latin-1, so every byte is
one character, as in rule files) and run
:func:`~inline_ips.rules.pcre.parse_pcre` and
:func:`~inline_ips.rules.pcre.compile_pcre` on it. Each either refuses, with
``PcreUnsupported`` (a countable reason) or ``ValueError`` (PCRE would
reject the pattern too), or returns a compiled RE2 object; anything else is
a failure, and so is a translation that is not ASCII text or a compiled
object that is not RE2's. The compiled regex is then run (search, from
offset 0 and 1) over the input itself and over a fixed subject, which must
not fail either: RE2 runs in time linear in the subject, so a hang here is a
translation bug (libFuzzer's ``-timeout`` catches it).

Does not: check that the translation matches what PCRE matches
(``tests/rules/test_pcre.py`` compares them on 33,589 inputs), or compile
through the rule compiler (``fuzz_suricata_rules`` does that).
"""

from __future__ import annotations

import re2

from fuzz.common import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from inline_ips.rules.pcre import PcreUnsupported, compile_pcre, parse_pcre, translate

SUBJECT = b"GET /index.php?id=1%27%20UNION%20SELECT HTTP/1.1\r\nHost: a.example\r\n\r\n" + bytes(range(256))


class UndocumentedError(AssertionError):
    """The translator failed in a way its contract does not allow."""


def test_one_input(data: bytes) -> None:
    text = data.decode("latin-1")
    try:
        spec = parse_pcre(text)
        pattern = translate(spec)
        compiled = compile_pcre(spec)
    except PcreUnsupported as e:
        if not e.reason:
            raise UndocumentedError("PcreUnsupported without a reason") from e
        return
    except ValueError:
        return
    if not pattern.isascii():
        raise UndocumentedError(f"translation of {text!r} is not ASCII: {pattern!r}")
    if not isinstance(compiled, re2._Regexp):
        raise UndocumentedError(f"{text!r} compiled to {type(compiled).__name__}, not RE2")
    for subject in (data, SUBJECT):
        compiled.search(subject)
        compiled.search(subject, 1)


if __name__ == "__main__":
    fuzz(test_one_input)
