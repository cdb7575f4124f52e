"""Integer comparison keywords: Suricata's unsigned-integer syntax and Snort 3's range syntax.

Suricata parses dsize, bsize, urilen, ttl, itype, icode, tcp.mss, ... with one generic
unsigned-integer grammar (``rust/src/detect/uint.rs``); :func:`parse_uint` reproduces it for
the newest Suricata read (8.x/master), including its validation errors:

=================  =========================================================================
``N`` / ``=N``     equality (also ``= N``)
``!N`` / ``!=N``   inequality (also ``! N``, ``!= N``)
``<N`` ``<=N``     less than / or equal; ``<0`` and ``<=MAX`` are rejected (never / always true)
``>N`` ``>=N``     greater than / or equal; ``>MAX`` and ``>=0`` are rejected
``N-M`` ``N<>M``   *exclusive* range N < v < M; spaces allowed around the separator; an
                   empty range (M <= N + 1) is rejected
``!N-M``           negated range: v <= N or v >= M (8.x)
``&M=V`` ``&M!=V`` bitmask: (v & M) == V / != V; V with bits outside M is rejected (8.x)
=================  =========================================================================

Numbers are decimal or ``0x`` hex (lowercase ``x``; hex is 8.x), with an optional
case-insensitive unit suffix ``kb``/``kib`` (1024), ``mb``/``mib``, ``gb``/``gib`` (8.x; ``kib``
forms are master). Only spaces count as whitespace (a tab is an error), as in Suricata.
Values above the keyword's maximum are rejected.

Version differences (Suricata 7.0 ``rs_detect_u*_parse``): 7.0 has ``N``, ``=N``, ``!N``, ``!=N``,
``<``, ``<=``, ``>``, ``>=`` and exclusive ``N-M``/``N<>M`` only: no hex, no units, no bitmask, no
negated range. Suricata 5/6 parsed dsize/itype/icode with per-keyword parsers accepting a
subset of the same forms. ``inclusive_range=True`` is Suricata's second entry point
(``SCDetectU32ParseInclusive``) where ``N-M`` includes both ends.

:func:`parse_snort_range` is Snort 3's ``RangeCheck`` (dsize, bufferlen, ...): the same
operators plus ``N<=>M`` (inclusive range), numbers via ``strtol`` base 0 (so ``010`` is octal).

What this module does not do: multi-integer index suffixes (``,any``/``,all``), enumeration
names (``websocket.opcode:text``), keyword-specific suffixes such as urilen's ``,raw``/``,norm``
-- the caller strips those. Pure functions; every error is a ``ValueError`` naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

U8_MAX = 0xFF
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

# Integer width of keywords using the generic parser (Suricata 7+). dsize, urilen and icode
# were checked in OISF/suricata sources and bsize's width is documented; the others follow the
# same pattern. Suricata 8 also accepts icmp_id/icmp_seq in double quotes (the caller unquotes).
KEYWORD_MAX: dict[str, int] = {
    "dsize": U16_MAX,
    "urilen": U16_MAX,
    "bsize": U64_MAX,
    "ttl": U8_MAX,
    "itype": U8_MAX,
    "icode": U8_MAX,
    "icmp_id": U16_MAX,
    "icmp_seq": U16_MAX,
    "id": U16_MAX,
    "tcp.mss": U16_MAX,
}

MODES = frozenset(
    {"eq", "ne", "lt", "le", "gt", "ge", "range", "negrange", "range_incl", "bitmask", "negbitmask"}
)


@dataclass(frozen=True, slots=True)
class UintMatch:
    """One integer comparison.

    ``range`` is exclusive (a < v < b) as Suricata's ``a-b``/``a<>b``; ``negrange`` is its
    complement (v <= a or v >= b); ``range_incl`` (a <= v <= b) is Snort 3's ``a<=>b``;
    ``bitmask`` is (v & a) == b and ``negbitmask`` (v & a) != b.
    """

    mode: str
    a: int
    b: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown integer match mode {self.mode!r}")

    def matches(self, v: int) -> bool:
        m = self.mode
        if m == "eq":
            return v == self.a
        if m == "ne":
            return v != self.a
        if m == "lt":
            return v < self.a
        if m == "le":
            return v <= self.a
        if m == "gt":
            return v > self.a
        if m == "ge":
            return v >= self.a
        if m == "range":
            return self.a < v < self.b
        if m == "negrange":
            return v <= self.a or v >= self.b
        if m == "range_incl":
            return self.a <= v <= self.b
        if m == "bitmask":
            return (v & self.a) == self.b
        return (v & self.a) != self.b


class _ParseFailError(Exception):
    # Internal: one grammar alternative failed at ``pos`` (-1: it did not apply at all);
    # parse_uint reports the failure that got furthest into the text.
    def __init__(self, reason: str, pos: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos


_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
# Order matters: "kib" must be tried before "kb" would leave a dangling "ib".
_UNITS = (
    ("kib", 1 << 10),
    ("kb", 1 << 10),
    ("mib", 1 << 20),
    ("mb", 1 << 20),
    ("gib", 1 << 30),
    ("gb", 1 << 30),
)


def _spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] == " ":
        i += 1
    return i


def _value(s: str, i: int, max_value: int) -> tuple[int, int]:
    if s.startswith("0x", i):
        j = i + 2
        while j < len(s) and s[j] in _HEX:
            j += 1
        if j == i + 2:
            raise _ParseFailError("'0x' is not followed by hex digits", j)
        v = int(s[i + 2 : j], 16)
        if v > max_value:
            raise _ParseFailError(f"{s[i:j]} is above the maximum {max_value}", i)
        return v, j
    j = i
    while j < len(s) and s[j] in _DIGITS:
        j += 1
    if j == i:
        raise _ParseFailError("expected a number", i)
    v = int(s[i:j])
    if v > max_value:
        raise _ParseFailError(f"{v} is above the maximum {max_value}", i)
    low = s[j : j + 3].lower()
    for unit, mult in _UNITS:
        if low.startswith(unit):
            j += len(unit)
            # Suricata applies the unit only to values >= 1 ("0kb" is 0).
            if v >= 1:
                if max_value // mult < v:
                    raise _ParseFailError(f"{s[i:j]} is above the maximum {max_value}", i)
                v *= mult
            break
    return v, j


def _bitmask(s: str, i: int, mx: int) -> tuple[UintMatch, int]:
    if not s.startswith("&", i):
        raise _ParseFailError("not a bitmask", -1)
    mask, i = _value(s, _spaces(s, i + 1), mx)
    i = _spaces(s, i)
    neg = s.startswith("!", i)
    if neg:
        i += 1
    if not s.startswith("=", i):
        raise _ParseFailError("bitmask needs '=' or '!=' after the mask", i)
    val, i = _value(s, _spaces(s, i + 1), mx)
    if val & mask != val:
        why = f"bitmask value {val:#x} has bits outside the mask {mask:#x}: it can never match"
        raise _ParseFailError(why, i)
    return UintMatch("negbitmask" if neg else "bitmask", mask, val), i


def _interval(s: str, i: int, mx: int, inclusive: bool) -> tuple[UintMatch, int]:
    neg = s.startswith("!", i)
    if neg:
        i += 1
    lo, i = _value(s, i, mx)
    if inclusive and lo == 0:
        raise _ParseFailError("inclusive range cannot start at 0", i)
    i = _spaces(s, i)
    if s.startswith("-", i):
        i += 1
    elif s.startswith("<>", i):
        i += 2
    else:
        raise _ParseFailError("not a range", -1)
    hi, i = _value(s, _spaces(s, i), mx)
    mode = "negrange" if neg else "range"
    if inclusive:
        if not lo < hi < mx:
            raise _ParseFailError(f"range {lo}-{hi} is empty or reaches the maximum {mx}", i)
        return UintMatch(mode, lo - 1, hi + 1), i
    if not (hi > lo and hi - lo > 1):
        raise _ParseFailError(f"range {lo}-{hi} is empty (ranges exclude both ends)", i)
    return UintMatch(mode, lo, hi), i


def _equal(s: str, i: int, mx: int) -> tuple[UintMatch, int]:
    if s.startswith("=", i):
        i += 1
    v, i = _value(s, _spaces(s, i), mx)
    return UintMatch("eq", v), i


# Suricata also lists "=" here but rejects it: "=N" is always taken by _equal first.
_SYMBOLS = ((">=", "ge"), ("<=", "le"), (">", "gt"), ("<", "lt"), ("!=", "ne"), ("!", "ne"))


def _symbol(s: str, i: int, mx: int) -> tuple[UintMatch, int]:
    for sym, mode in _SYMBOLS:  # noqa: B007 -- the loop finds (sym, mode)
        if s.startswith(sym, i):
            break
    else:
        raise _ParseFailError("expected a number or one of = ! != < <= > >= &", -1)
    v, j = _value(s, _spaces(s, i + len(sym)), mx)
    if mode == "lt" and v == 0:
        raise _ParseFailError("'<0' can never match", j)
    if mode == "le" and v == mx:
        raise _ParseFailError(f"'<={v}' always matches ({v} is the maximum)", j)
    if mode == "gt" and v == mx:
        raise _ParseFailError(f"'>{v}' can never match ({v} is the maximum)", j)
    if mode == "ge" and v == 0:
        raise _ParseFailError("'>=0' always matches", j)
    return UintMatch(mode, v), j


def parse_uint(text: str, max_value: int, *, inclusive_range: bool = False) -> UintMatch:
    """Parse a Suricata unsigned-integer match (see the module docstring) for a field of ``max_value``."""
    if max_value < 1:
        raise ValueError(f"max_value must be positive, not {max_value}")
    if not text.strip(" "):
        raise ValueError("invalid integer: the value is empty")
    i = _spaces(text, 0)
    best: _ParseFailError | None = None
    result: tuple[UintMatch, int] | None = None
    # Suricata tries these in order and keeps the first that parses, even if text remains
    # after it (then the whole value is an error): that is why "5-3" fails instead of being
    # read as "5".
    for alt in ("bitmask", "interval", "equal", "symbol"):
        try:
            if alt == "bitmask":
                if inclusive_range:
                    continue
                result = _bitmask(text, i, max_value)
            elif alt == "interval":
                result = _interval(text, i, max_value, inclusive_range)
            elif alt == "equal":
                result = _equal(text, i, max_value)
            else:
                result = _symbol(text, i, max_value)
            break
        except _ParseFailError as e:
            if best is None or e.pos > best.pos:
                best = e
    if result is None:
        assert best is not None
        raise ValueError(f"invalid integer {text!r}: {best.reason}")
    match, end = result
    end = _spaces(text, end)
    if end != len(text):
        if best is not None and best.pos > end:
            raise ValueError(f"invalid integer {text!r}: {best.reason}")
        raise ValueError(f"invalid integer {text!r}: unexpected {text[end:]!r} after {text[:end].strip()!r}")
    return match


_SNORT_OPS = {
    "": "eq",
    "=": "eq",
    "!": "ne",
    "!=": "ne",
    "<": "lt",
    ">": "gt",
    "<=": "le",
    ">=": "ge",
    "<>": "range",
    "<=>": "range_incl",
}
_NUM_START = "+-x" + _HEX
_NUM_CONT = "x" + _HEX
_OPCHARS = "=!<>"


def _snort_tokens(s: str) -> tuple[str, str, str] | None:
    # Snort 3's RangeCheck tokenizer, state for state: low number, operator, high number.
    low = ops = hi = ""
    state = 0
    for ch in s:
        if state == 0:
            if ch in _NUM_START:
                low += ch
                state = 1
            elif ch in _OPCHARS:
                ops += ch
                state = 2
            elif ch != " ":
                return None
        elif state == 1:
            if ch in _NUM_CONT:
                low += ch
            elif ch in _OPCHARS:
                ops += ch
                state = 2
            elif ch != " ":
                return None
        elif state == 2:
            if ch in _NUM_START:
                hi += ch
                state = 4
            elif ch in _OPCHARS:
                ops += ch
            elif ch == " ":
                state = 3
            else:
                return None
        elif state == 3:
            if ch in _NUM_START:
                hi += ch
                state = 4
            else:
                return None
        elif ch in _NUM_CONT:
            hi += ch
        elif ch != " ":
            return None
    return low, ops, hi


def _strtol0(s: str) -> int | None:
    """C ``strtol(s, &end, 0)`` that must consume all of ``s``; None when it would not."""
    if not s:
        return 0
    sign = -1 if s[0] == "-" else 1
    body = s[1:] if s[0] in "+-" else s
    if body[:2] in ("0x", "0X"):
        digits, base, allowed = body[2:], 16, _HEX
    elif body[:1] == "0":
        digits, base, allowed = body, 8, "01234567"
    else:
        digits, base, allowed = body, 10, _DIGITS
    if not digits or any(c not in allowed for c in digits):
        return None
    v = sign * int(digits, base)
    if not -(1 << 63) <= v < (1 << 63):
        return None
    return v


def parse_snort_range(text: str, max_value: int) -> UintMatch:
    """Parse a Snort 3 range (``5``, ``!5``, ``<=5``, ``1<>5``, ``1<=>5``, ...) for a 0..max_value field."""
    toks = _snort_tokens(text)
    if toks is None:
        raise ValueError(f"invalid range {text!r}: unexpected character")
    low_s, ops, hi_s = toks
    if ops not in _SNORT_OPS:
        raise ValueError(f"invalid range {text!r}: unknown operator {ops!r}")
    mode = _SNORT_OPS[ops]
    low, hi = _strtol0(low_s), _strtol0(hi_s)
    if low is None or hi is None:
        raise ValueError(f"invalid range {text!r}: malformed number")
    has_low, has_hi = bool(low_s), bool(hi_s)
    if mode == "eq":
        ok = has_low != has_hi and not (has_low and ops)
    elif mode in ("range", "range_incl"):
        ok = has_low and has_hi
    else:
        ok = has_hi and not has_low
    if not ok:
        where = "operator " + repr(ops or "=")
        raise ValueError(f"invalid range {text!r}: {where} has its number(s) in the wrong place")
    if mode in ("range", "range_incl"):
        if low > hi:
            raise ValueError(f"invalid range {text!r}: {low} is above {hi}")
        bounds = (low, hi)
        m = UintMatch(mode, low, hi)
    else:
        v = low if has_low else hi
        bounds = (v, v)
        m = UintMatch(mode, v)
    if bounds[0] < 0 or bounds[1] > max_value:
        raise ValueError(f"invalid range {text!r}: outside 0..{max_value}")
    return m
