"""byte_test, byte_jump, byte_extract, byte_math and isdataat: parsers and matchers, Suricata semantics.

Parsers take the keyword's argument text (``"4,>,1000,0,relative,little"``) and return a frozen
dataclass or raise ``ValueError``. A message starting with ``"unsupported:"`` means the rule is
valid but uses something this engine does not implement (``dce``: DCE/RPC byte order;
byte_extract ``slice``), so a loader can count it apart from real errors. Both Suricata's
argument forms and Snort 3's (the same positional lists, plus Snort's ``bitmask`` on
byte_extract, a variable ``post_offset`` on byte_jump) are accepted; where the two differ the
Suricata meaning wins. A value that may name a byte_extract/byte_math variable is ``int | str``;
as in Suricata, a token is a variable name when its first character is a letter.

Matchers are pure functions of (parsed keyword, buffer, ``prev_end``, ``env``). ``prev_end`` is
Suricata's ``det_ctx->buffer_offset``: where the previous match in the same buffer ended (0 at
the start), the base of ``relative``. ``env`` maps variable names to the unsigned 64-bit values
byte_extract/byte_math stored; a name absent from it makes the keyword fail (the loader is
expected to reject rules naming unknown variables). Out-of-buffer reads fail, never raise.

How each keyword moves the relative position (the engine must follow this):

==============  =================================================================================
byte_test       never moves it; returns bool.
isdataat        never moves it; returns bool.
byte_jump       moves it to the jump target; returns that offset (None: no match).
byte_extract    moves it to just past the bytes it read -- also when not ``relative``; returns
                that offset and stores the value in ``env[name]``.
byte_math       same as byte_extract; the result goes to ``env[result]``.
==============  =================================================================================

Semantics reproduced from Suricata (``detect-byte*.c``, ``detect-bytemath.c``,
``rust/src/detect/byte_{extract,math}.rs``, ``detect-engine-content-inspection.c``):

* start = offset (+ prev_end when ``relative``); a relative read with nothing left after the
  start fails (byte_jump: unless it reads 0 bytes); a start before the buffer or fewer than
  ``nbytes`` bytes left fails; an empty buffer fails every byte_* keyword.
* ``string`` reads ``nbytes`` characters with C ``strtoull`` semantics: leading whitespace and a
  sign are accepted (``-1`` wraps to 2**64-1), parsing stops at the first non-digit, no digit at
  all fails. byte_test/byte_jump ``string`` without a base auto-detects (``0x`` hex, ``0`` octal);
  byte_extract/byte_math default to decimal. byte_jump/byte_extract/byte_math advance by the
  characters strtoull consumed, not by ``nbytes``.
* Arithmetic is unsigned 64-bit and wraps (multiplier, byte_math ``+ - *``, negative test
  values). byte_math ``/ 0`` fails; a shift by 64 or more gives 0 (C leaves it undefined).
* ``bitmask``: value &= mask, then shifted right by the mask's trailing zero bits. byte_test and
  byte_jump apply it before comparing / multiplying, byte_math after the operation.
* byte_jump: value * multiplier, ``align`` rounds up to 4, + post_offset, then the target is
  from the buffer start (``from_beginning``), the buffer end (``from_end``) or just past the bytes
  read; a target before the buffer is clamped to 0, one past the end fails.
* isdataat: absolute ``N`` needs N < len(buf); relative needs prev_end + N <= len(buf) (one more
  than absolute, as Suricata documents); a variable of 100000000 or more never has data.

Documented deviations: ``rawbytes`` is accepted and ignored; option words are matched
case-insensitively; a flag given an argument (``string hex`` in byte_extract, which Suricata 8
silently reads as ``string``) is an error; string extraction with ``nbytes`` 0 fails (C reads
an unbounded string there). Nothing here knows about buffers, transactions or DCE/RPC.
"""

from __future__ import annotations

from dataclasses import dataclass

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF
OFFSET_LIMIT = 65535
ISDATAAT_VAR_LIMIT = 100_000_000

_WS = b" \t\n\v\f\r"
_DIGITS = "0123456789"
BASES = {"hex": 16, "dec": 10, "oct": 8}


def _unsupported(keyword: str, what: str) -> ValueError:
    return ValueError(f"unsupported: {keyword}: {what}")


# -- number parsing helpers (rule text) -----------------------------------------------------------


def _is_var(token: str) -> bool:
    return bool(token) and token[0].isascii() and token[0].isalpha()


def _strtoull(data: bytes, base: int) -> tuple[int, int] | None:
    """C ``strtoull`` over ``data``: (value, characters consumed) or None (no digits / ERANGE)."""
    nul = data.find(b"\0")
    n = len(data) if nul < 0 else nul
    i = 0
    while i < n and data[i] in _WS:
        i += 1
    neg = False
    if i < n and data[i] in b"+-":
        neg = data[i] == 0x2D
        i += 1

    def digit(c: int) -> int:
        if 0x30 <= c <= 0x39:
            return c - 0x30
        if 0x61 <= c <= 0x7A:
            return c - 0x61 + 10
        if 0x41 <= c <= 0x5A:
            return c - 0x41 + 10
        return 99

    has_hex_after_0x = i + 2 < n and data[i] == 0x30 and data[i + 1] in b"xX" and digit(data[i + 2]) < 16
    if base == 0:
        if has_hex_after_0x:
            base, i = 16, i + 2
        elif i < n and data[i] == 0x30:
            base = 8
        else:
            base = 10
    elif base == 16 and has_hex_after_0x:
        i += 2
    start = i
    val = 0
    while i < n and digit(data[i]) < base:
        val = val * base + digit(data[i])
        i += 1
    if i == start or val > U64:
        return None
    if neg:
        val = -val & U64
    return val, i


def _text_u64(token: str) -> int | None:
    """Suricata's lenient ``ByteExtractStringUint64(base 0)``: trailing junk is ignored."""
    r = _strtoull(token.encode("utf-8", "replace"), 0)
    return None if r is None else r[0]


def _strict_int(token: str, base: int, lo: int, hi: int) -> int | None:
    """Suricata's strict ``StringParse*`` (whole token, ``strtol`` rules) within [lo, hi]."""
    t = token.lstrip(" \t\n\v\f\r")
    if not t:
        return None
    sign = -1 if t[0] == "-" else 1
    body = t[1:] if t[0] in "+-" else t
    if base == 0:
        if body[:2] in ("0x", "0X") and len(body) > 2:
            body, base = body[2:], 16
        elif body[:1] == "0":
            base = 8
        else:
            base = 10
    allowed = {16: "0123456789abcdefABCDEF", 10: _DIGITS, 8: "01234567"}[base]
    if not body or any(c not in allowed for c in body):
        return None
    v = sign * int(body, base)
    return v if lo <= v <= hi else None


def _trailing_zeros(mask: int) -> int:
    return (mask & -mask).bit_length() - 1 if mask else 0


def _parse_bitmask(keyword: str, arg: str) -> int:
    v = _text_u64(arg)
    if v is None or v > U32:
        raise ValueError(f"{keyword}: malformed bitmask value {arg!r} (expected a 32-bit number)")
    return v


def _split(keyword: str, text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise ValueError(f"{keyword}: empty argument in {text!r}")
    return parts


def _option(token: str) -> tuple[str, str]:
    """'multiplier 2' -> ('multiplier', '2'); 'relative' -> ('relative', '')."""
    bits = token.split(None, 1)
    return bits[0].lower(), (bits[1].strip() if len(bits) > 1 else "")


def _single(keyword: str, what: str, token: str) -> str:
    if any(c in token for c in " \t\r\n\v\f"):
        raise ValueError(f"{keyword}: malformed {what} {token!r}")
    return token


def _no_arg(keyword: str, name: str, arg: str) -> None:
    if arg:
        raise ValueError(f"{keyword}: option {name!r} takes no value (got {arg!r})")


def _max_string_digits(base: int) -> int:
    # Largest strings that cannot overflow 64 bits (byte_extract/byte_math's per-base limits).
    return {8: 23, 10: 20, 16: 14}.get(base, 23)


# -- parsed keywords ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteTest:
    nbytes: int | str
    op: str  # one of < > = <= >= & ^
    negate: bool
    value: int | str
    offset: int | str
    relative: bool = False
    little: bool = False
    string: bool = False
    base: int = 0  # strtoull base for ``string``; 0 = auto-detect
    bitmask: int | None = None


@dataclass(frozen=True, slots=True)
class ByteJump:
    nbytes: int | str
    offset: int | str
    relative: bool = False
    little: bool = False
    string: bool = False
    base: int = 0
    multiplier: int = 1
    align: bool = False
    from_beginning: bool = False
    from_end: bool = False
    post_offset: int | str = 0
    bitmask: int | None = None


@dataclass(frozen=True, slots=True)
class ByteExtract:
    nbytes: int
    offset: int
    name: str
    relative: bool = False
    little: bool = False
    string: bool = False
    base: int = 10
    multiplier: int = 1
    align: int = 0  # 0, 2 or 4
    bitmask: int | None = None  # Snort 3 only


@dataclass(frozen=True, slots=True)
class ByteMath:
    nbytes: int | str
    offset: int
    oper: str  # one of + - * / << >>
    rvalue: int | str
    result: str
    relative: bool = False
    little: bool = False
    string: bool = False
    base: int = 10
    bitmask: int | None = None


@dataclass(frozen=True, slots=True)
class IsDataAt:
    offset: int | str
    relative: bool = False
    negate: bool = False


# -- parsers --------------------------------------------------------------------------------------


_BT_OPS = ("<=", ">=", "<", ">", "=", "&", "^")


@dataclass(slots=True)
class _ReadOptions:
    """The options byte_test and byte_jump share: where to read and how to decode."""

    relative: bool = False
    little: bool = False
    big: bool = False
    string: bool = False
    dce: bool = False
    base: int = 0

    def take(self, kw: str, name: str) -> bool:
        """Record a shared option; False when ``name`` is not one of them."""
        if name == "relative":
            self.relative = True
        elif name == "string":
            self.string = True
        elif name in BASES:
            if self.base and self.base != BASES[name]:
                raise ValueError(f"{kw}: more than one of hex/dec/oct")
            self.base = BASES[name]
        elif name == "big":
            self.big, self.little = True, False
        elif name == "little":
            self.little = True
        elif name == "dce":
            self.dce = True
        else:
            return False
        return True

    def check(self, kw: str, nbytes: int | str, verb: str) -> None:
        if isinstance(nbytes, int):
            if self.string and nbytes > 23:
                raise ValueError(f"{kw}: cannot {verb} more than 23 bytes with 'string'")
            if not self.string and nbytes > 8:
                raise ValueError(f"{kw}: cannot {verb} more than 8 bytes without 'string'")
        if self.base and not self.string:
            raise ValueError(f"{kw}: a base (hex/dec/oct) needs 'string'")


def _nbytes_arg(kw: str, tok: str) -> int | str:
    if _is_var(tok):
        return tok
    n = _strict_int(tok, 10, 0, U32)
    if n is None:
        raise ValueError(f"{kw}: malformed number of bytes {tok!r}")
    return n


def parse_byte_test(text: str) -> ByteTest:
    """``nbytes, [!]op, value, offset [, relative][, big|little][, string[, hex|dec|oct]]
    [, dce][, bitmask M]``."""
    kw = "byte_test"
    parts = _split(kw, text)
    if len(parts) < 4:
        raise ValueError(f"{kw}: needs nbytes, operator, value and offset: {text!r}")
    nb_s, op_s, val_s, off_s = parts[:4]
    for what, tok in (("number of bytes", nb_s), ("value", val_s), ("offset", off_s)):
        _single(kw, what, tok)
    nbytes = _nbytes_arg(kw, nb_s)

    negate = op_s.startswith("!")
    op = op_s[1:].strip() if negate else op_s
    if negate and op == "":
        op = "="
    if op not in _BT_OPS:
        raise ValueError(f"{kw}: invalid operator {op_s!r}")

    value: int | str
    if _is_var(val_s):
        value = val_s
    else:
        v = _text_u64(val_s)
        if v is None:
            raise ValueError(f"{kw}: malformed value {val_s!r}")
        value = v

    offset: int | str
    if _is_var(off_s):
        offset = off_s
    else:
        o = _strict_int(off_s, 0, -(1 << 31), (1 << 31) - 1)
        if o is None:
            raise ValueError(f"{kw}: malformed offset {off_s!r}")
        offset = o

    opts = _ReadOptions()
    bitmask: int | None = None
    for tok in parts[4:]:
        name, arg = _option(tok)
        if name.startswith("bitmask"):
            bitmask = _parse_bitmask(kw, tok[len("bitmask") :])
            continue
        _no_arg(kw, name, arg)
        if not opts.take(kw, name):
            raise ValueError(f"{kw}: unknown option {tok!r}")
    opts.check(kw, nbytes, "test")
    if opts.dce:
        if opts.string or opts.little or opts.big or opts.base:
            raise ValueError(f"{kw}: 'dce' cannot be combined with string, big, little or a base")
        raise _unsupported(kw, "dce (DCE/RPC byte order)")
    return ByteTest(
        nbytes, op, negate, value, offset, opts.relative, opts.little, opts.string, opts.base, bitmask
    )


def parse_byte_jump(text: str) -> ByteJump:
    """``nbytes, offset [, relative][, multiplier N][, big|little][, string[, base]][, align]
    [, from_beginning|from_end][, post_offset N][, dce][, bitmask M]``."""
    kw = "byte_jump"
    parts = _split(kw, text)
    if len(parts) < 2:
        raise ValueError(f"{kw}: needs nbytes and offset: {text!r}")
    nb_s, off_s = parts[:2]
    _single(kw, "number of bytes", nb_s)
    _single(kw, "offset", off_s)
    nbytes = _nbytes_arg(kw, nb_s)
    offset: int | str
    if _is_var(off_s):
        offset = off_s
    else:
        o = _strict_int(off_s, 10, -OFFSET_LIMIT, OFFSET_LIMIT)
        if o is None:
            raise ValueError(f"{kw}: malformed offset {off_s!r} (decimal, -65535..65535)")
        offset = o

    opts = _ReadOptions()
    align = begin = end = False
    multiplier = 1
    post_offset: int | str = 0
    bitmask: int | None = None
    for tok in parts[2:]:
        name, arg = _option(tok)
        if name == "multiplier":
            m = _strict_int(arg, 10, 1, 65535)
            if m is None:
                raise ValueError(f"{kw}: malformed multiplier {arg!r} (1..65535)")
            multiplier = m
            continue
        if name == "post_offset":
            if _is_var(arg):
                post_offset = arg
            else:
                p = _strict_int(arg, 10, -OFFSET_LIMIT, OFFSET_LIMIT)
                if p is None:
                    raise ValueError(f"{kw}: malformed post_offset {arg!r} (-65535..65535)")
                post_offset = p
            continue
        if name == "bitmask":
            bitmask = _parse_bitmask(kw, arg)
            continue
        _no_arg(kw, name, arg)
        if opts.take(kw, name):
            continue
        if name == "from_beginning":
            begin = True
        elif name == "from_end":
            end = True
        elif name == "align":
            align = True
        else:
            raise ValueError(f"{kw}: unknown option {tok!r}")

    if begin and end:
        raise ValueError(f"{kw}: 'from_end' and 'from_beginning' cannot be used together")
    opts.check(kw, nbytes, "read")
    if opts.dce:
        if opts.string or opts.little or opts.big or begin or end or opts.base:
            raise ValueError(f"{kw}: 'dce' cannot be combined with string, big, little, a base or from_*")
        raise _unsupported(kw, "dce (DCE/RPC byte order)")
    return ByteJump(
        nbytes,
        offset,
        opts.relative,
        opts.little,
        opts.string,
        opts.base,
        multiplier,
        align,
        begin,
        end,
        post_offset,
        bitmask,
    )


def parse_byte_extract(text: str) -> ByteExtract:
    """``nbytes, offset, name [, relative][, multiplier N][, big|little|dce][, string[, base]]
    [, align 2|4][, bitmask M]``."""
    kw = "byte_extract"
    parts = _split(kw, text)
    if not 3 <= len(parts) <= 10:
        raise ValueError(f"{kw}: needs nbytes, offset and a name, and at most 7 options: {text!r}")
    nb_s, off_s, name = parts[:3]
    nbytes = _strict_int(nb_s, 10, 0, 255)
    if nbytes is None:
        raise ValueError(f"{kw}: invalid number of bytes {nb_s!r}")
    # Suricata 8 stores the offset as i16 (7.x allowed -65535..65535).
    offset = _strict_int(off_s, 10, -32768, 32767)
    if offset is None:
        raise ValueError(f"{kw}: invalid offset {off_s!r} (decimal, -32768..32767)")
    if not _is_var(name) or any(c in name for c in " \t\r\n;:"):
        raise ValueError(f"{kw}: variable name {name!r} must start with a letter")

    seen: set[str] = set()
    relative = little = string = dce = False
    base = 0
    multiplier = 1
    align = 0
    bitmask: int | None = None
    for tok in parts[3:]:
        opt, arg = _option(tok)
        group = "endian" if opt in ("big", "little", "dce") else "base" if opt in BASES else opt
        if group in seen:
            raise ValueError(f"{kw}: {group} given more than once")
        seen.add(group)
        if opt == "align":
            a = _strict_int(arg, 10, 0, 255)
            if a not in (2, 4):
                raise ValueError(f"{kw}: invalid align value {arg!r} (must be 2 or 4)")
            align = a
            continue
        if opt == "multiplier":
            m = _strict_int(arg, 10, 1, 65535)
            if m is None:
                raise ValueError(f"{kw}: invalid multiplier {arg!r} (1..65535)")
            multiplier = m
            continue
        if opt == "bitmask":
            bitmask = _parse_bitmask(kw, arg)
            continue
        _no_arg(kw, opt, arg)
        if opt == "relative":
            relative = True
        elif opt in ("big", "little"):
            little = opt == "little"
        elif opt == "dce":
            dce = True
        elif opt == "string":
            string = True
        elif opt in BASES:
            if not string:
                raise ValueError(f"{kw}: {opt!r} needs 'string' before it")
            base = BASES[opt]
        elif opt == "slice":
            pass
        else:
            raise ValueError(f"{kw}: unknown option {tok!r}")

    if string and "endian" in seen:
        raise ValueError(f"{kw}: 'string' cannot be combined with big, little or dce")
    if string and "slice" in seen:
        raise ValueError(f"{kw}: 'string' and 'slice' cannot be used together")
    if string:
        base = base or 10
        if nbytes > _max_string_digits(base):
            raise ValueError(f"{kw}: cannot read more than {_max_string_digits(base)} bytes with this base")
    elif nbytes > 8:
        raise ValueError(f"{kw}: cannot read more than 8 bytes without 'string'")
    if dce:
        raise _unsupported(kw, "dce (DCE/RPC byte order)")
    if "slice" in seen:
        raise _unsupported(kw, "slice")
    return ByteExtract(nbytes, offset, name, relative, little, string, base or 10, multiplier, align, bitmask)


_BM_OPERS = ("+", "-", "*", "/", "<<", ">>")


def parse_byte_math(text: str) -> ByteMath:
    """``bytes N, offset N, oper OP, rvalue N|var, result var [, relative][, endian big|little]
    [, string hex|dec|oct][, dce][, bitmask M]`` (options in any order)."""
    kw = "byte_math"
    parts = _split(kw, text)
    if not 5 <= len(parts) <= 10:
        raise ValueError(f"{kw}: needs bytes, offset, oper, rvalue and result, and at most 5 options")
    seen: set[str] = set()
    nbytes: int | str = 0
    offset = 0
    oper = ""
    rvalue: int | str = 0
    result = ""
    relative = little = string = dce = False
    base = 10
    bitmask: int | None = None
    for tok in parts:
        name, arg = _option(tok)
        group = "endian" if name in ("endian", "dce") else name
        if group in seen:
            raise ValueError(f"{kw}: {group} given more than once")
        seen.add(group)
        if name == "bytes":
            if _is_var(arg):
                nbytes = arg
            else:
                n = _strict_int(arg, 10, 0, U64)
                if n is None or not 1 <= n <= 10:
                    raise ValueError(f"{kw}: invalid bytes value {arg!r} (1..10)")
                nbytes = n
        elif name == "offset":
            o = _strict_int(arg, 10, -OFFSET_LIMIT, OFFSET_LIMIT)
            if o is None:
                raise ValueError(f"{kw}: invalid offset {arg!r} (-65535..65535)")
            offset = o
        elif name == "oper":
            if arg not in _BM_OPERS:
                raise ValueError(f"{kw}: unknown oper {arg!r} (one of + - * / << >>)")
            oper = arg
        elif name == "rvalue":
            if _is_var(arg):
                rvalue = arg
            else:
                r = _strict_int(arg, 10, 0, U64)
                if r is None or r > U32:
                    raise ValueError(f"{kw}: invalid rvalue {arg!r} (0..4294967295 or a variable)")
                rvalue = r
        elif name == "result":
            if not _is_var(arg) or any(c in arg for c in " \t,;:"):
                raise ValueError(f"{kw}: result {arg!r} must be a variable name")
            result = arg
        elif name == "endian":
            if arg == "dce":
                dce = True
            elif arg in ("big", "little"):
                little = arg == "little"
            else:
                raise ValueError(f"{kw}: invalid endian {arg!r} (big, little or dce)")
        elif name == "dce":
            _no_arg(kw, name, arg)
            dce = True
        elif name == "string":
            if arg not in BASES:
                raise ValueError(f"{kw}: invalid string base {arg!r} (hex, dec or oct)")
            string, base = True, BASES[arg]
        elif name == "relative":
            _no_arg(kw, name, arg)
            relative = True
        elif name == "bitmask":
            # Suricata reads the byte_math mask as hex whether or not it has a 0x prefix.
            digits = arg[2:] if arg[:2] in ("0x", "0X") else arg
            if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits) or int(digits, 16) > U32:
                raise ValueError(f"{kw}: invalid bitmask {arg!r} (hex, 32 bits)")
            bitmask = int(digits, 16)
        else:
            raise ValueError(f"{kw}: unknown option {tok!r}")
    missing = [k for k in ("bytes", "offset", "oper", "rvalue", "result") if k not in seen]
    if missing:
        raise ValueError(f"{kw}: missing required {', '.join(missing)}")
    if oper in ("<<", ">>") and isinstance(nbytes, int) and nbytes > 4:
        raise ValueError(f"{kw}: bytes must be 1..4 with '<<' or '>>'")
    if dce:
        if string:
            raise ValueError(f"{kw}: 'dce' cannot be combined with 'string'")
        raise _unsupported(kw, "dce (DCE/RPC byte order)")
    return ByteMath(nbytes, offset, oper, rvalue, result, relative, little, string, base, bitmask)


def parse_isdataat(text: str) -> IsDataAt:
    """``[!]N|var [, relative][, rawbytes]``."""
    kw = "isdataat"
    t = text.lstrip()
    negate = t.startswith("!")
    parts = _split(kw, t[1:] if negate else t)
    first, opts = parts[0], parts[1:]
    if opts[:1] == ["relative"]:
        relative, opts = True, opts[1:]
    else:
        relative = False
    if opts[:1] == ["rawbytes"]:
        opts = opts[1:]
    if opts:
        raise ValueError(f"{kw}: unexpected {', '.join(opts)!r} (only 'relative' then 'rawbytes')")
    offset: int | str
    if _is_var(first):
        offset = first
    else:
        if any(c in first for c in " \t"):
            raise ValueError(f"{kw}: malformed offset {first!r}")
        r = _strtoull(first.encode("utf-8", "replace"), 10)
        if r is None or r[0] > 65535:
            raise ValueError(f"{kw}: offset {first!r} out of range (0..65535)")
        offset = r[0]
    return IsDataAt(offset, relative, negate)


# -- matchers -------------------------------------------------------------------------------------


def _i32(v: int) -> int:
    # Suricata casts extracted 64-bit values to int32_t when used as offsets.
    v &= U32
    return v - (1 << 32) if v >= 1 << 31 else v


def _signed64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >= 1 << 63 else v


def _lookup(env: dict[str, int], name: str) -> int | None:
    v = env.get(name)
    return None if v is None else v & U64


def _window(buf: bytes, prev_end: int, offset: int, relative: bool) -> tuple[int, int] | None:
    start = offset + prev_end if relative else offset
    length = len(buf) - start
    if relative and length <= 0:
        return None
    return start, length


def _read(
    buf: bytes, start: int, nbytes: int, string: bool, base: int, little: bool
) -> tuple[int, int] | None:
    """(value, bytes consumed) of the field at ``start`` (already bounds-checked), or None."""
    if string:
        if nbytes <= 0 or nbytes > 23:
            return None
        return _strtoull(buf[start : start + nbytes], base)
    if nbytes > 8 or nbytes < 0:
        return None
    return int.from_bytes(buf[start : start + nbytes], "little" if little else "big"), nbytes


def _apply_mask(val: int, mask: int | None) -> int:
    if mask is None:
        return val
    val &= mask
    shift = _trailing_zeros(mask)
    return val >> shift if val and shift else val


def _nbytes(n: int | str, env: dict[str, int], string: bool) -> int | None:
    if isinstance(n, int):
        return n
    v = _lookup(env, n)
    if v is None or v > (23 if string else 8):
        return None
    return v


def _offset(o: int | str, env: dict[str, int]) -> int | None:
    if isinstance(o, int):
        return o
    v = _lookup(env, o)
    return None if v is None else _i32(v)


def match_byte_test(bt: ByteTest, buf: bytes, prev_end: int, env: dict[str, int]) -> bool:
    """True when the comparison holds. Never moves the relative position."""
    if not buf:
        return False
    nbytes = _nbytes(bt.nbytes, env, bt.string)
    offset = _offset(bt.offset, env)
    value = bt.value if isinstance(bt.value, int) else _lookup(env, bt.value)
    if nbytes is None or offset is None or value is None:
        return False
    win = _window(buf, prev_end, offset, bt.relative)
    if win is None or win[0] < 0 or nbytes > win[1]:
        return False
    got = _read(buf, win[0], nbytes, bt.string, bt.base, bt.little)
    if got is None:
        return False
    val = _apply_mask(got[0], bt.bitmask)
    op = bt.op
    if op == "=":
        ok = val == value
    elif op == "<":
        ok = val < value
    elif op == ">":
        ok = val > value
    elif op == "<=":
        ok = val <= value
    elif op == ">=":
        ok = val >= value
    elif op == "&":
        ok = (val & value) != 0
    else:
        ok = (val ^ value) != 0
    return ok != bt.negate


def match_byte_jump(bj: ByteJump, buf: bytes, prev_end: int, env: dict[str, int]) -> int | None:
    """The new relative position (the jump target, 0..len(buf)) or None when it does not match."""
    if not buf:
        return None
    nbytes = _nbytes(bj.nbytes, env, bj.string)
    offset = _offset(bj.offset, env)
    post = _offset(bj.post_offset, env)
    if nbytes is None or offset is None or post is None:
        return None
    start = offset + (prev_end if bj.relative else 0)
    length = len(buf) - start
    if bj.relative and nbytes and length <= 0:
        return None
    if start < 0 or nbytes > length:
        return None
    got = _read(buf, start, nbytes, bj.string, bj.base, bj.little)
    if got is None:
        return None
    val, used = got
    val = (_apply_mask(val, bj.bitmask) * bj.multiplier) & U64
    if bj.align and val % 4:
        val = (val + 4 - val % 4) & U64
    jump = _signed64(val + post)
    if bj.from_beginning:
        target = jump
    elif bj.from_end:
        target = len(buf) + jump
    else:
        target = start + jump + used
    if target < 0:
        return 0
    if target > len(buf):
        return None
    return target


def match_byte_extract(be: ByteExtract, buf: bytes, prev_end: int, env: dict[str, int]) -> int | None:
    """Store the value in ``env[be.name]`` and return the position just past the bytes read."""
    if not buf:
        return None
    win = _window(buf, prev_end, be.offset, be.relative)
    if win is None or win[0] < 0 or be.nbytes > win[1]:
        return None
    got = _read(buf, win[0], be.nbytes, be.string, be.base, be.little)
    if got is None:
        return None
    val = (_apply_mask(got[0], be.bitmask) * be.multiplier) & U64
    if be.align and val % be.align:
        val = (val + be.align - val % be.align) & U64
    env[be.name] = val
    return win[0] + got[1]


def match_byte_math(bm: ByteMath, buf: bytes, prev_end: int, env: dict[str, int]) -> int | None:
    """Store the result in ``env[bm.result]`` and return the position just past the bytes read."""
    if not buf:
        return None
    if isinstance(bm.nbytes, int):
        nbytes = bm.nbytes
    else:
        v = _lookup(env, bm.nbytes)
        if v is None:
            return None
        nbytes = v & 0xFF  # Suricata narrows a variable byte count to uint8_t
    rvalue = bm.rvalue if isinstance(bm.rvalue, int) else _lookup(env, bm.rvalue)
    if rvalue is None:
        return None
    win = _window(buf, prev_end, bm.offset, bm.relative)
    if win is None or win[0] < 0 or nbytes > win[1]:
        return None
    got = _read(buf, win[0], nbytes, bm.string, bm.base, bm.little)
    if got is None:
        return None
    val, used = got
    op = bm.oper
    if op == "+":
        val = (val + rvalue) & U64
    elif op == "-":
        val = (val - rvalue) & U64
    elif op == "*":
        val = (val * rvalue) & U64
    elif op == "/":
        if rvalue == 0:
            return None
        val //= rvalue
    elif op == "<<":
        val = (val << rvalue) & U64 if rvalue < 64 else 0
    else:
        val = val >> rvalue if rvalue < 64 else 0
    env[bm.result] = _apply_mask(val, bm.bitmask)
    return win[0] + used


def match_isdataat(ia: IsDataAt, buf: bytes, prev_end: int, env: dict[str, int]) -> bool:
    """True when there is (or, negated, is not) data at the offset. Never moves the position."""
    if isinstance(ia.offset, int):
        at = ia.offset
    else:
        v = _lookup(env, ia.offset)
        if v is None:
            return False
        if v >= ISDATAAT_VAR_LIMIT:
            return ia.negate
        at = v
    have = prev_end + at <= len(buf) if ia.relative else at < len(buf)
    return have != ia.negate
