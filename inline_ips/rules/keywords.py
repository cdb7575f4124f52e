"""Small value parsers shared by the rule loaders: content strings, TCP flags, durations.

Each returns a plain value or raises ``ValueError`` with a message that says
what is wrong with the value; the caller adds the file, line and rule id.
"""

from __future__ import annotations

import re

from inline_ips.packet import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from inline_ips.rules.model import FlagsMatch

_FLAG_BITS = {
    "F": FIN,
    "S": SYN,
    "R": RST,
    "P": PSH,
    "A": ACK,
    "U": URG,
    "E": ECE,
    "C": CWR,
    "1": CWR,
    "2": ECE,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_content(text: str, strict: bool = False) -> bytes:
    """Suricata content syntax: text with ``|hex bytes|`` sections and ``\\"``, ``\\;``, ``\\\\`` escapes.

    ``strict`` follows Suricata's rule parser exactly: only ``\\"``, ``\\;``,
    ``\\:`` and ``\\\\`` are escapes (any other backslash is an error), an
    unescaped ``"`` is an error, and commas inside a hex section are ignored
    like spaces (any other character there, a tab included, is an error).
    rules.yaml uses the lenient form, where a lone backslash is literal.
    """
    out = bytearray()
    i = 0
    n = len(text)
    escapes = '\\";:' if strict else '\\";:|'
    while i < n:
        ch = text[i]
        if ch == "|":
            end = text.find("|", i + 1)
            if end < 0:
                raise ValueError(f"content {text!r}: '|' hex section is not closed")
            hexpart = text[i + 1 : end].replace(" ", "")
            if strict:
                # detect-content.c skips only spaces and commas in a hex section; a tab is an error.
                hexpart = hexpart.replace(",", "")
            if len(hexpart) % 2:
                raise ValueError(f"content {text!r}: odd number of hex digits in |{text[i + 1 : end]}|")
            try:
                out += bytes.fromhex(hexpart)
            except ValueError:
                raise ValueError(f"content {text!r}: bad hex in |{text[i + 1 : end]}|") from None
            i = end + 1
        elif ch == "\\" and i + 1 < n and text[i + 1] in escapes:
            out += text[i + 1].encode()
            i += 2
        elif strict and ch == "\\":
            raise ValueError(
                f"content {text!r}: '\\{text[i + 1 : i + 2]}' is not an escape (use \\\\, \\\", \\; or \\:)"
            )
        elif strict and ch == '"':
            raise ValueError(f"content {text!r}: an unescaped '\"' inside the content")
        else:
            out += ch.encode("utf-8")
            i += 1
    if not out:
        raise ValueError("content is empty")
    return bytes(out)


def parse_flags(text: str) -> FlagsMatch:
    """Suricata ``flags``: e.g. ``S``, ``SA``, ``S,12`` (ignore CWR/ECE), ``A+``, ``*SF``, ``!R``.

    One modifier, anywhere in the flag letters: ``+`` all listed set (others
    may be too), ``*`` any listed set, ``!`` or ``-`` not all listed set, ``=``
    (the default) exactly the listed ones. The ignore mask after ``,`` only
    goes with exact mode, as in Suricata.
    """
    spec, sep, ignore = str(text).partition(",")
    spec = spec.strip()
    mode = "exact"
    letters: list[str] = []
    for ch in spec:
        if ch in "+*!-=":
            if mode != "exact" or (ch == "=" and "=" in spec.replace(ch, "", 1)):
                raise ValueError(f"flags {text!r}: only one modifier (+ * ! -) is allowed")
            mode = {"+": "plus", "*": "any", "!": "not", "-": "not", "=": "exact"}[ch]
        elif not ch.isspace():
            letters.append(ch)
    if not letters:
        raise ValueError(f"flags {text!r}: no flags given (use 0 for none set)")
    value = 0
    for ch in "".join(letters).upper():
        if ch == "0":
            continue
        if ch not in _FLAG_BITS:
            raise ValueError(f"flags {text!r}: unknown flag {ch!r} (use F S R P A U C E, 1 2, 0)")
        if value & _FLAG_BITS[ch]:
            raise ValueError(f"flags {text!r}: flag {ch!r} given twice")
        value |= _FLAG_BITS[ch]
    mask = 0xFF
    if sep and mode != "exact":
        raise ValueError(f"flags {text!r}: an ignore mask only goes with exact flags (no + * !)")
    for ch in ignore.strip().upper():
        if ch not in _FLAG_BITS:
            raise ValueError(f"flags {text!r}: unknown flag {ch!r} in the ignore mask")
        mask &= ~_FLAG_BITS[ch]
    return FlagsMatch(value & mask, mask, mode)


def parse_duration(value: object) -> float:
    """``10``, ``10s``, ``500ms``, ``5m``, ``1h``, ``1d`` to seconds; must be positive."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (examples: 10s, 500ms, 5m, 1h)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return seconds
