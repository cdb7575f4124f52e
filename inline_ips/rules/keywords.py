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


def parse_content(text: str) -> bytes:
    """Suricata content syntax: text with ``|hex bytes|`` sections and ``\\"``, ``\\;``, ``\\\\`` escapes."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "|":
            end = text.find("|", i + 1)
            if end < 0:
                raise ValueError(f"content {text!r}: '|' hex section is not closed")
            hexpart = text[i + 1 : end].replace(" ", "")
            if len(hexpart) % 2:
                raise ValueError(f"content {text!r}: odd number of hex digits in |{text[i + 1 : end]}|")
            try:
                out += bytes.fromhex(hexpart)
            except ValueError:
                raise ValueError(f"content {text!r}: bad hex in |{text[i + 1 : end]}|") from None
            i = end + 1
        elif ch == "\\" and i + 1 < n and text[i + 1] in '\\";:|':
            out += text[i + 1].encode()
            i += 2
        else:
            out += ch.encode("utf-8")
            i += 1
    if not out:
        raise ValueError("content is empty")
    return bytes(out)


def parse_flags(text: str) -> FlagsMatch:
    """Suricata ``flags``: e.g. ``S``, ``SA``, ``S,12`` (ignore CWR/ECE), ``+S``, ``*SF``, ``!R``."""
    spec, _, ignore = str(text).partition(",")
    spec = spec.strip()
    mode = "exact"
    if spec[:1] and spec[0] in "+*!":
        mode = {"+": "plus", "*": "any", "!": "not"}[spec[0]]
        spec = spec[1:]
    if not spec:
        raise ValueError(f"flags {text!r}: no flags given (use 0 for none set)")
    value = 0
    for ch in spec.upper():
        if ch == "0":
            continue
        if ch not in _FLAG_BITS:
            raise ValueError(f"flags {text!r}: unknown flag {ch!r} (use F S R P A U C E, 1 2, 0)")
        value |= _FLAG_BITS[ch]
    mask = 0xFF
    for ch in ignore.strip().upper():
        if ch not in _FLAG_BITS:
            raise ValueError(f"flags {text!r}: unknown flag {ch!r} in the ignore mask")
        mask &= ~_FLAG_BITS[ch]
    if mode == "not":
        # "!R": none of the given flags set.
        return FlagsMatch(0, value, "exact")
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
