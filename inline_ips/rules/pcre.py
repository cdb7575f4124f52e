"""Suricata's ``pcre`` rule keyword, translated to RE2 so every regex runs in linear time.

``parse_pcre`` reads the keyword's value the way Suricata's ``DetectPcreParse`` does
(optional ``!`` and quotes, ``/pattern/flags``, ``, flow:name`` capture names).
``translate`` parses the PCRE2 pattern (8-bit, non-UTF, default character tables, LF
newline: Suricata's settings) into a small syntax tree and writes an RE2 pattern with
the same matches. It spells every character class out as an explicit byte set (case
folding, ``\\s`` with VT, ``\\h``/``\\v``, POSIX classes, ``.``), so nothing depends on
how RE2's own flags differ from PCRE's; inline options (``(?i)`` ...) are applied while
parsing, with PCRE's scoping.

Where a PCRE construct has no RE2 equivalent the translator proves, from what can follow
it, that the plain form matches the same inputs, or refuses with :class:`PcreUnsupported`
and a short, countable reason. Proofs used:

* a possessive quantifier (or atomic group) on a one-byte item behaves like the greedy one
  when no byte the item can take may start what follows (so giving one back cannot help),
  or when what follows always succeeds;
* ``\\R`` (atomic ``\\r\\n`` or one vertical space) likewise, when what follows cannot
  start with ``\\n``;
* PCRE ``$`` (end, or before a final newline) becomes ``\\z`` when what follows cannot
  start with ``\\n``; at the very end of the pattern it becomes ``\\n?\\z``: the same inputs
  match, but the match then ends after a final ``\\n`` rather than before it, so a later
  relative keyword starts one byte later in that one case;
* multiline ``^`` becomes RE2's ``(?m:^)`` when what follows cannot match empty at the
  end of the input (RE2, unlike PCRE, also matches after a newline that ends the input).

Counts above RE2's limit of 1000 (``{1075,}``, or ``(?:.{1,1000}x){5,}`` whose nested
counts multiply past it) are split into consecutive counted pieces with the same matches.
Like Suricata (``PCRE2_NO_AUTO_CAPTURE``), plain groups capture only when ``pkt:``/``flow:``
capture names follow the pattern; named groups always capture. ``{,n}`` follows PCRE2 10.43
and later (``{0,n}``); older PCRE2 read it as literal text. Flag ``Q`` selects
``file.data``, which is what Suricata 6 and later map it to; ``O`` (match limits) and ``B``
(Snort's rawbytes) are accepted and change nothing here.

This module does not run matches, does not negate (``PcreSpec.negated`` is for the
caller), and does not check keyword order (``R`` needing a previous match); rule-level
escapes such as ``\\;`` and ``\\"`` are left in the pattern, where PCRE reads them as the
literal characters, exactly as Suricata passes them.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, TypeAlias

import re2

MAX_RE2_MEMORY = 8 << 20  # per compiled regex, the same budget as yaml_loader.compile_regex
MAX_PATTERN = 32 << 10  # Suricata's whole rule is at most 8 KiB; bound hostile rule files anyway
MAX_NESTING = 64  # below PCRE2's 250, to bound recursion; rules in the corpus nest at most 9 deep
MAX_QUANTIFIER = 65535  # PCRE2's limit for the numbers in {n,m}

BUFFER_FLAGS = {
    "U": "http.uri",
    "I": "http.uri.raw",
    "P": "http.request_body",
    "Q": "file.data",
    "H": "http.header",
    "D": "http.header.raw",
    "M": "http.method",
    "C": "http.cookie",
    "S": "http.stat_code",
    "Y": "http.stat_msg",
    "V": "http.user_agent",
    "W": "http.host",
    "Z": "http.host.raw",
}
# Suricata refuses these buffer letters together with B (rawbytes), in either order.
_RAWBYTES_CONFLICT = frozenset("UVWZHIMC")
_PLAIN_FLAGS = frozenset("ismxAEGROB")


class PcreUnsupported(ValueError):  # noqa: N818 - the name the rule loaders use
    """The expression uses a construct RE2 cannot run with PCRE's meaning."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason  # short and stable, for counting skipped rules by cause


@dataclass(frozen=True, slots=True)
class PcreSpec:
    source: str  # the pattern between the delimiters, as written (PCRE syntax)
    negated: bool = False
    caseless: bool = False
    dotall: bool = False
    multiline: bool = False
    extended: bool = False
    anchored: bool = False
    dollar_endonly: bool = False
    ungreedy: bool = False
    relative: bool = False
    buffer: str | None = None
    flags: str = ""
    captures: tuple[str, ...] = ()  # "pkt:name" / "flow:name" after the pattern


def parse_pcre(value: str) -> PcreSpec:
    """Parse the keyword's value exactly as it stands in the rule, e.g. ``!"/a\\/b/Ui"``.

    Quotes are optional (as in Suricata); negation goes before the quote. The pattern is
    not unescaped: ``\\;`` and ``\\"`` reach PCRE, which reads them as ``;`` and ``"``.
    Raises ``ValueError`` for values Suricata refuses, and :class:`PcreUnsupported` for
    flag letters this engine does not know.
    """
    text = value.strip(" \t")
    negated = text.startswith("!")
    if negated:
        text = text[1:].lstrip(" \t")
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise ValueError(f"pcre {value!r}: missing closing double quote")
        text = text[1:-1]
    elif text.endswith('"'):
        raise ValueError(f"pcre {value!r}: missing opening double quote")
    if not text:
        raise ValueError(f"pcre {value!r}: empty value")
    text, captures = _split_captures(text)
    if not text.startswith("/"):
        hint = ' (negation goes before the quote: !"/.../")' if text.startswith("!") else ""
        raise ValueError(f"pcre {value!r}: the pattern must start with '/'{hint}")
    close = _closing_slash(text)
    if close < 0:
        raise ValueError(f"pcre {value!r}: no closing '/' after the pattern")
    source, flags = text[1:close], text[close + 1 :]
    seen_buffer = ""
    rawbytes = False
    for ch in flags:
        if ch in BUFFER_FLAGS:
            if seen_buffer:
                raise ValueError(f"pcre {value!r}: only one buffer flag is allowed ({seen_buffer} and {ch})")
            if rawbytes and ch in _RAWBYTES_CONFLICT:
                raise ValueError(f"pcre {value!r}: flag '{ch}' is inconsistent with 'B'")
            seen_buffer = ch
        elif ch == "B":
            if seen_buffer:
                raise ValueError(f"pcre {value!r}: flag 'B' is inconsistent with buffer flag '{seen_buffer}'")
            rawbytes = True
        elif ch not in _PLAIN_FLAGS:
            raise PcreUnsupported(f"pcre: unsupported flag {ch!r}", value)
    if seen_buffer == "W" and "i" not in flags and _has_upper(source):
        # Suricata refuses this: the host buffer is lower-cased, so the rule could never match.
        raise ValueError(f"pcre {value!r}: flag 'W' (http.host) with an upper-case pattern")
    return PcreSpec(
        source=source,
        negated=negated,
        caseless="i" in flags,
        dotall="s" in flags,
        multiline="m" in flags,
        extended="x" in flags,
        anchored="A" in flags,
        dollar_endonly="E" in flags,
        ungreedy="G" in flags,
        relative="R" in flags,
        buffer=BUFFER_FLAGS[seen_buffer] if seen_buffer else None,
        flags=flags,
        captures=captures,
    )


def _split_captures(text: str) -> tuple[str, tuple[str, ...]]:
    # Like Suricata: the first "flow:", "pkt:" or (8.0) "alert:" preceded by ',' or ' '
    # starts the names.
    hits = [p for p in (text.find("flow:"), text.find("pkt:"), text.find("alert:")) if p > 1]
    if not hits:
        return text, ()
    cut = min(hits)
    end = cut
    while end > 0 and text[end - 1] in ", ":
        end -= 1
    if end == cut:
        return text, ()
    names = tuple(n for n in text[cut:].replace(",", " ").split() if n)
    for n in names:
        if not (n.startswith(("pkt:", "flow:", "alert:")) and n.partition(":")[2]):
            raise ValueError(f"pcre capture name {n!r} must be pkt:<name>, flow:<name> or alert:<name>")
    return text[:end], names


def _closing_slash(text: str) -> int:
    # Suricata's parse regex takes the last '/' whose previous character is not a lone
    # backslash (so "\/" is escaped but "\\/" closes).
    for j in range(len(text) - 1, 0, -1):
        if text[j] != "/":
            continue
        if j >= 2 and text[j - 1] == "\\" and text[j - 2] != "\\":
            continue
        return j
    return -1


def _has_upper(source: str) -> bool:
    # Suricata's check: skip the character after a backslash, and two more after "\x".
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 4 if source[i + 1 : i + 2] == "x" else 2
            continue
        if ch.isupper():
            return True
        i += 1
    return False


# --- byte sets (bit b set = byte b) -------------------------------------------------

ALL = (1 << 256) - 1


def _span(lo: int, hi: int) -> int:
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)


def _bytes(*values: int) -> int:
    m = 0
    for v in values:
        m |= 1 << v
    return m


NL = _bytes(0x0A)
DIGIT = _span(0x30, 0x39)
UPPER = _span(0x41, 0x5A)
LOWER = _span(0x61, 0x7A)
ALPHA = UPPER | LOWER
WORD = DIGIT | ALPHA | _bytes(0x5F)
SPACE = _span(0x09, 0x0D) | _bytes(0x20)  # PCRE2's \s includes VT; RE2's does not
HSPACE = _bytes(0x09, 0x20, 0xA0)
VSPACE = _span(0x0A, 0x0D) | _bytes(0x85)
PUNCT = _span(0x21, 0x2F) | _span(0x3A, 0x40) | _span(0x5B, 0x60) | _span(0x7B, 0x7E)
POSIX = {
    "alnum": DIGIT | ALPHA,
    "alpha": ALPHA,
    "ascii": _span(0, 0x7F),
    "blank": _bytes(0x09, 0x20),
    "cntrl": _span(0, 0x1F) | _bytes(0x7F),
    "digit": DIGIT,
    "graph": _span(0x21, 0x7E),
    "lower": LOWER,
    "print": _span(0x20, 0x7E),
    "punct": PUNCT,
    "space": SPACE,
    "upper": UPPER,
    "word": WORD,
    "xdigit": DIGIT | _span(0x41, 0x46) | _span(0x61, 0x66),
}
_CLASS_ESCAPES = {
    "d": DIGIT,
    "D": ALL & ~DIGIT,
    "w": WORD,
    "W": ALL & ~WORD,
    "s": SPACE,
    "S": ALL & ~SPACE,
    "h": HSPACE,
    "H": ALL & ~HSPACE,
    "v": VSPACE,
    "V": ALL & ~VSPACE,
}
_SIMPLE_ESCAPES = {"a": 0x07, "e": 0x1B, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09}
_EXT_SPACE = frozenset(b" \t\n\x0b\x0c\r")
_NOOP_START = frozenset(
    (b"NO_AUTO_POSSESS", b"NO_START_OPT", b"NO_DOTSTAR_ANCHOR", b"NO_JIT", b"LF", b"BSR_UNICODE")
)
_LOOKAHEAD_VERBS = frozenset(
    b"pla positive_lookahead nla negative_lookahead napla non_atomic_positive_lookahead".split()
)
_LOOKBEHIND_VERBS = frozenset(
    b"plb positive_lookbehind nlb negative_lookbehind naplb non_atomic_positive_lookbehind".split()
)
_LIMIT_START = frozenset((b"LIMIT_MATCH", b"LIMIT_DEPTH", b"LIMIT_HEAP", b"LIMIT_RECURSION"))
_OTHER_START = frozenset(
    b"UTF UTF8 UCP CR CRLF ANYCRLF ANY NUL BSR_ANYCRLF NOTEMPTY NOTEMPTY_ATSTART".split()
)


def _fold(mask: int) -> int:
    # PCRE's default (C locale) tables fold ASCII letters only.
    return mask | ((mask & LOWER) >> 32) | ((mask & UPPER) << 32)


@functools.lru_cache(maxsize=256)
def _unicode_property(name: str) -> int | None:
    # In 8-bit non-UTF mode PCRE2 applies Unicode properties to code points 0-255, which is
    # what RE2 does in Latin-1 mode: ask RE2 (or Python's tables for PCRE's own names).
    def category(pred: Any) -> int:
        return sum(1 << b for b in range(256) if pred(unicodedata.category(chr(b))))

    special: dict[str, Any] = {
        "Any": lambda: ALL,
        "L&": lambda: category(lambda c: c in ("Lu", "Ll", "Lt")),
        "LC": lambda: category(lambda c: c in ("Lu", "Ll", "Lt")),
        "Xan": lambda: category(lambda c: c[0] in "LN"),
        "Xsp": lambda: category(lambda c: c[0] == "Z") | SPACE,
        "Xps": lambda: category(lambda c: c[0] == "Z") | SPACE,
        "Xwd": lambda: category(lambda c: c[0] in "LN") | _bytes(0x5F),
        "Xuc": lambda: _bytes(0x24, 0x40, 0x60) | _span(0xA0, 0xFF),
    }
    if name in special:
        return int(special[name]())
    if not name.replace("_", "").isalnum():
        return None
    opts = re2.Options()
    opts.encoding = re2.Options.Encoding.LATIN1
    opts.log_errors = False
    try:
        probe = re2.compile(b"\\p{" + name.encode("ascii") + b"}", options=opts)
    except re2.error:
        return None
    return sum(1 << b for b in range(256) if probe.fullmatch(bytes([b])))


# --- syntax tree --------------------------------------------------------------------


@dataclass(slots=True)
class _Chars:
    mask: int  # exactly one byte from this set


@dataclass(slots=True)
class _Seq:
    items: list[_Node]


@dataclass(slots=True)
class _Alt:
    branches: list[_Seq]


@dataclass(slots=True)
class _Group:
    body: _Alt
    kind: str  # "capture", "plain" or "atomic"
    name: str | None = None


@dataclass(slots=True)
class _Repeat:
    body: _Node
    lo: int
    hi: int | None
    mode: str  # "greedy", "lazy" or "possessive"


@dataclass(slots=True)
class _Assert:
    kind: str  # "start" \A, "end" \z, "dollar" PCRE $ / \Z, "mstart", "mend", "word", "nonword"


@dataclass(slots=True)
class _Newline:
    """PCRE's \\R: the atomic group (?>\\r\\n|\\n|\\x0b|\\f|\\r|\\x85)."""


_Node: TypeAlias = _Chars | _Seq | _Alt | _Group | _Repeat | _Assert | _Newline


@dataclass(frozen=True, slots=True)
class _Flags:
    i: bool = False
    s: bool = False
    m: bool = False
    x: bool = False
    xx: bool = False
    n: bool = False  # no auto capture
    U: bool = False  # ungreedy
    J: bool = False  # duplicate names allowed


class _Parser:
    def __init__(self, spec: PcreSpec) -> None:
        self.s = spec.source.encode("utf-8", "surrogateescape")
        self.i = 0
        self.f = _Flags(i=spec.caseless, s=spec.dotall, m=spec.multiline, x=spec.extended, U=spec.ungreedy)
        self.dollar_endonly = spec.dollar_endonly
        # Suricata compiles with PCRE2_NO_AUTO_CAPTURE unless capture names follow the pattern.
        self.auto_capture = bool(spec.captures)
        self.captures = 0
        self.names: set[str] = set()
        self.depth = 0
        self.in_quote = False
        self.source = spec.source

    def error(self, what: str) -> ValueError:
        return ValueError(f"pcre /{self.source}/: {what} at offset {self.i}")

    def peek(self, k: int = 0) -> int:
        j = self.i + k
        return self.s[j] if j < len(self.s) else -1

    def parse(self) -> _Alt:
        if len(self.s) > MAX_PATTERN:
            raise self.error(f"pattern longer than {MAX_PATTERN} bytes")
        self.start_options()
        root = self.alternation()
        if self.i < len(self.s):
            raise self.error("unmatched closing parenthesis")
        return root

    def start_options(self) -> None:
        # Options that only tune PCRE's optimiser or limits (or restate its defaults) are no-ops here.
        while self.s.startswith(b"(*", self.i):
            end = self.s.find(b")", self.i)
            name = self.s[self.i + 2 : end] if end > 0 else b""
            if name in _NOOP_START or name.partition(b"=")[0] in _LIMIT_START:
                self.i = end + 1
            elif name in _OTHER_START:
                raise PcreUnsupported("pcre: start-of-pattern option", name.decode("latin-1"))
            else:
                return

    # -- structure --

    def alternation(self) -> _Alt:
        branches = [self.sequence()]
        while self.peek() == ord("|"):
            self.i += 1
            branches.append(self.sequence())
        return _Alt(branches)

    def sequence(self) -> _Seq:
        items: list[_Node] = []
        while True:
            self.skip()
            c = self.peek()
            if c < 0 or (not self.in_quote and c in (ord("|"), ord(")"))):
                return _Seq(items)
            atom = self.atom()
            if atom is None:
                continue
            if self.in_quote and self.s.startswith(b"\\E", self.i):
                self.in_quote = False  # so that \Qab\E+ repeats the b
                self.i += 2
            self.skip()
            q = self.quantifier()
            if q is not None:
                if isinstance(atom, _Assert):
                    raise self.error("quantifier does not follow a repeatable item")
                atom = _Repeat(atom, *q)
                self.skip()
                if self.quantifier_here():
                    raise self.error("nested quantifier (use a group)")
            items.append(atom)

    def skip(self) -> None:
        # Things PCRE ignores between items: comments, empty \Q\E, stray \E, and in
        # extended mode white space and #-comments.
        s = self.s
        while self.i < len(s) and not self.in_quote:
            c = s[self.i]
            if self.f.x and c in _EXT_SPACE:
                self.i += 1
            elif self.f.x and c == ord("#"):
                nl = s.find(b"\n", self.i)
                self.i = len(s) if nl < 0 else nl + 1
            elif s.startswith(b"(?#", self.i):
                end = s.find(b")", self.i)
                if end < 0:
                    raise self.error("missing ) at end of (?# comment")
                self.i = end + 1
            elif s.startswith(b"\\Q\\E", self.i):
                self.i += 4
            elif s.startswith(b"\\E", self.i):
                self.i += 2
            else:
                return

    def literal(self, b: int) -> _Chars:
        bit = 1 << b
        return _Chars(_fold(bit) if self.f.i else bit)

    def atom(self) -> _Node | None:
        s = self.s
        c = s[self.i]
        if self.in_quote:
            if s.startswith(b"\\E", self.i):
                self.in_quote = False
                self.i += 2
                return None
            self.i += 1
            return self.literal(c)
        if c == ord("("):
            return self.group()
        if c == ord("["):
            return self.char_class()
        if c == ord("\\"):
            return self.escape()
        self.i += 1
        if c == ord("."):
            return _Chars(ALL if self.f.s else ALL & ~NL)
        if c == ord("^"):
            return _Assert("mstart" if self.f.m else "start")
        if c == ord("$"):
            if self.f.m:
                return _Assert("mend")
            return _Assert("end" if self.dollar_endonly else "dollar")
        if c in b"*+?" or (c == ord("{") and self.brace_quantifier(self.i - 1) is not None):
            self.i -= 1
            raise self.error("quantifier does not follow a repeatable item")
        return self.literal(c)

    # -- quantifiers --

    def quantifier_here(self) -> bool:
        c = self.peek()
        if self.in_quote or c < 0:
            return False
        return c in b"*+?" or (c == ord("{") and self.brace_quantifier(self.i) is not None)

    def brace_quantifier(self, at: int) -> tuple[int, int | None, int] | None:
        # PCRE2 10.43+: {n}, {n,}, {n,m}, {,m}; spaces and tabs allowed inside; {,} is text.
        s = self.s
        j = at + 1

        def blanks(k: int) -> int:
            while k < len(s) and s[k] in b" \t":
                k += 1
            return k

        def number(k: int) -> tuple[str, int]:
            e = k
            while e < len(s) and 0x30 <= s[e] <= 0x39:
                e += 1
            return s[k:e].decode(), e

        j = blanks(j)
        lo_text, j = number(j)
        j = blanks(j)
        if j < len(s) and s[j] == ord("}"):
            if not lo_text:
                return None
            lo = self.count(lo_text)
            return lo, lo, j + 1
        if j >= len(s) or s[j] != ord(","):
            return None
        j = blanks(j + 1)
        hi_text, j = number(j)
        j = blanks(j)
        if j >= len(s) or s[j] != ord("}") or not (lo_text or hi_text):
            return None
        lo = self.count(lo_text) if lo_text else 0
        hi = self.count(hi_text) if hi_text else None
        if hi is not None and hi < lo:
            raise self.error("numbers out of order in {} quantifier")
        return lo, hi, j + 1

    def count(self, text: str) -> int:
        if len(text) > 5 or int(text) > MAX_QUANTIFIER:
            raise self.error("number too big in {} quantifier")
        return int(text)

    def quantifier(self) -> tuple[int, int | None, str] | None:
        c = self.peek()
        if self.in_quote or c < 0:
            return None
        lo: int
        hi: int | None
        if c == ord("*"):
            lo, hi, self.i = 0, None, self.i + 1
        elif c == ord("+"):
            lo, hi, self.i = 1, None, self.i + 1
        elif c == ord("?"):
            lo, hi, self.i = 0, 1, self.i + 1
        elif c == ord("{"):
            q = self.brace_quantifier(self.i)
            if q is None:
                return None
            lo, hi, self.i = q
        else:
            return None
        mode = "greedy"
        if self.peek() == ord("?"):
            mode = "lazy"
            self.i += 1
        elif self.peek() == ord("+"):
            mode = "possessive"
            self.i += 1
        if self.f.U and mode != "possessive":
            mode = "lazy" if mode == "greedy" else "greedy"
        return lo, hi, mode

    # -- groups --

    def group(self) -> _Node | None:
        s = self.s
        start = self.i
        self.i += 1
        if self.peek() == ord("*"):
            return self.verb(start)
        if self.peek() != ord("?"):
            capture = self.auto_capture and not self.f.n
            if capture:
                self.captures += 1
            return self.group_body("capture" if capture else "plain")
        self.i += 1
        c = self.peek()
        two = s[self.i : self.i + 2]
        if c == ord(":"):
            self.i += 1
            return self.group_body("plain")
        if c == ord("|"):
            self.i += 1
            before = self.captures
            g = self.group_body("plain")
            if self.captures != before:
                raise PcreUnsupported("pcre: branch reset", "(?| with capture groups")
            return g
        if c == ord(">"):
            self.i += 1
            return self.group_body("atomic")
        if c in b"=!*" or two in (b"<=", b"<!", b"<*"):
            raise PcreUnsupported("pcre: lookahead" if c in b"=!*" else "pcre: lookbehind")
        if two == b"P=":
            raise PcreUnsupported("pcre: backreference", "(?P=name)")
        if two == b"P>" or c in b"&R" or (c in b"+-" and 0x30 <= self.peek(1) <= 0x39) or 0x30 <= c <= 0x39:
            raise PcreUnsupported("pcre: recursion", "subroutine call or (?R)")
        if c == ord("("):
            raise PcreUnsupported("pcre: conditional")
        if c == ord("C"):
            raise PcreUnsupported("pcre: callout")
        if c == ord("<") or c == ord("'") or two == b"P<":
            self.i += 2 if two == b"P<" else 1
            name = self.group_name(ord("'") if c == ord("'") else ord(">"))
            self.captures += 1
            return self.group_body("capture", name)
        return self.options()

    def group_name(self, close: int) -> str:
        s = self.s
        end = s.find(bytes([close]), self.i)
        raw = s[self.i : end] if end > 0 else b""
        if not raw or len(raw) > 32 or not raw.replace(b"_", b"a").isalnum() or raw[:1].isdigit():
            raise self.error("bad group name (1-32 letters, digits or _, not starting with a digit)")
        name = raw.decode("ascii")
        if name in self.names and not self.f.J:
            raise self.error(f"two named groups have the same name {name!r}")
        if name in self.names:
            raise PcreUnsupported("pcre: duplicate group names", name)
        self.names.add(name)
        self.i = end + 1
        return name

    def group_body(self, kind: str, name: str | None = None) -> _Group:
        if self.depth >= MAX_NESTING:
            raise PcreUnsupported("pcre: nesting too deep", f"more than {MAX_NESTING} levels of parentheses")
        self.depth += 1
        saved = self.f
        body = self.alternation()
        if self.peek() != ord(")"):
            raise self.error("missing closing parenthesis")
        self.i += 1
        self.f = saved
        self.depth -= 1
        return _Group(body, kind, name)

    def options(self) -> _Node | None:
        f = self.f
        on = True
        if self.peek() == ord("^"):
            f = replace(f, i=False, m=False, n=False, s=False, x=False, xx=False)
            self.i += 1
        while True:
            c = self.peek()
            if c == ord(")"):
                self.i += 1
                self.f = f  # applies to the rest of the enclosing group, later branches too
                return None
            if c == ord(":"):
                self.i += 1
                saved = self.f
                self.f = f
                g = self.group_body("plain")
                self.f = saved
                return g
            self.i += 1
            if c == ord("-") and on:
                on = False
            elif c == ord("x"):
                xx = on and self.peek() == ord("x")
                self.i += 1 if xx else 0
                f = replace(f, x=on, xx=xx)
            elif c >= 0 and chr(c) in "imnsUJ":
                f = replace(f, **{chr(c): on})
            elif c < 0:
                raise self.error("missing closing parenthesis")
            else:
                ch = chr(c)
                if ch.isalpha():
                    raise PcreUnsupported("pcre: inline option", f"(?{ch})")
                self.i -= 1
                raise self.error(f"unrecognized character {ch!r} after (?")

    def verb(self, start: int) -> _Node | None:
        s = self.s
        end = s.find(b")", self.i)
        colon = s.find(b":", self.i)
        name = s[self.i + 1 : colon if 0 < colon < end else end].lower() if end > 0 else b""
        if name in _LOOKAHEAD_VERBS:
            raise PcreUnsupported("pcre: lookahead")
        if name in _LOOKBEHIND_VERBS:
            raise PcreUnsupported("pcre: lookbehind")
        if name == b"atomic" and 0 < colon < end:
            self.i = colon + 1
            return self.group_body("atomic")
        if name in (b"sr", b"script_run", b"asr", b"atomic_script_run"):
            raise PcreUnsupported("pcre: script run")
        self.i = start
        raise PcreUnsupported("pcre: backtracking control verb", s[start : end + 1].decode("latin-1"))

    # -- escapes --

    def escape(self) -> _Node | None:
        s = self.s
        if self.i + 1 >= len(s):
            raise self.error("\\ at end of pattern")
        c = s[self.i + 1]
        ch = chr(c)
        self.i += 2
        if ch.isdigit():
            return self.digits_escape(c)
        if ch in _SIMPLE_ESCAPES:
            return self.literal(_SIMPLE_ESCAPES[ch])
        if ch in "cxo":
            return self.literal(self.char_escape(ch))
        if ch in _CLASS_ESCAPES:
            return _Chars(_CLASS_ESCAPES[ch])
        if ch in "pP":
            return _Chars(self.property(ch == "P"))
        simple: dict[str, _Node] = {
            "b": _Assert("word"),
            "B": _Assert("nonword"),
            "A": _Assert("start"),
            "z": _Assert("end"),
            "Z": _Assert("dollar"),  # end or before a final newline, whatever m and E say
            "C": _Chars(ALL),  # one code unit, i.e. any byte in non-UTF mode
            "R": _Newline(),
        }
        if ch in simple:
            return simple[ch]
        if ch == "N":
            if self.peek() == ord("{"):
                raise self.error("\\N{...} is only valid in UTF mode")
            return _Chars(ALL & ~NL)
        if ch == "Q":
            self.in_quote = True
            return None
        if ch == "E":
            return None
        if ch in "gk":
            if ch == "g" and self.peek() in (ord("<"), ord("'")):
                raise PcreUnsupported("pcre: recursion", "\\g<...> subroutine call")
            if ch == "k" and self.peek() not in (ord("<"), ord("'"), ord("{")):
                raise self.error("\\k is not followed by a name in <>, '' or {}")
            raise PcreUnsupported("pcre: backreference", f"\\{ch}")
        reasons = {"G": "pcre: \\G", "K": "pcre: \\K", "X": "pcre: \\X"}
        if ch in reasons:
            raise PcreUnsupported(reasons[ch])
        if ch in "uUlL":
            raise self.error(f"PCRE2 does not support \\{ch}")
        if ch.isascii() and ch.isalnum():
            raise self.error(f"unrecognized escape \\{ch}")
        return self.literal(c)

    def digits_escape(self, c: int) -> _Node:
        s = self.s
        if c == ord("0"):
            return self.literal(self.octal(self.i - 1, 3))
        start = self.i - 1
        j = start
        while j < len(s) and 0x30 <= s[j] <= 0x39:
            j += 1
        number = int(s[start:j])
        if number < 10 or c in b"89" or number <= self.captures:
            raise PcreUnsupported("pcre: backreference", f"\\{number}")
        return self.literal(self.octal(start, 3))

    def octal(self, start: int, most: int) -> int:
        s = self.s
        j = start
        while j < len(s) and j - start < most and 0x30 <= s[j] <= 0x37:
            j += 1
        self.i = j
        value = int(s[start:j], 8)
        if value > 0xFF:
            raise self.error("octal value greater than \\377 in 8-bit non-UTF mode")
        return value

    def char_escape(self, ch: str) -> int:
        s = self.s
        if ch == "c":
            c = self.peek()
            if c < 0x20 or c > 0x7E:
                raise self.error("\\c must be followed by a printable ASCII character")
            self.i += 1
            return (c - 0x20 if 0x61 <= c <= 0x7A else c) ^ 0x40
        if self.peek() == ord("{"):
            end = s.find(b"}", self.i)
            digits = s[self.i + 1 : end].strip(b" \t") if end > 0 else b""
            valid = b"0123456789abcdefABCDEF" if ch == "x" else b"01234567"
            if not digits or any(d not in valid for d in digits):
                raise self.error(f"bad \\{ch}{{...}}")
            value = int(digits, 16 if ch == "x" else 8)
            if value > 0xFF:
                raise self.error(f"character value in \\{ch}{{}} is too large for 8-bit non-UTF mode")
            self.i = end + 1
            return value
        if ch == "o":
            raise self.error("\\o must be followed by {")
        j = self.i
        while j < len(s) and j - self.i < 2 and chr(s[j]) in "0123456789abcdefABCDEF":
            j += 1
        value = int(s[self.i : j], 16) if j > self.i else 0  # a bare \x is NUL
        self.i = j
        return value

    def property(self, negated: bool) -> int:
        s = self.s
        if self.peek() == ord("{"):
            end = s.find(b"}", self.i)
            if end < 0:
                raise self.error("malformed \\p or \\P sequence")
            name = s[self.i + 1 : end].decode("latin-1").replace(" ", "")
            self.i = end + 1
        else:
            if self.peek() < 0:
                raise self.error("malformed \\p or \\P sequence")
            name = chr(self.peek())
            self.i += 1
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        mask = _unicode_property(name)
        if mask is None:
            raise PcreUnsupported("pcre: unicode property", name)
        return ALL & ~mask if negated else mask

    # -- character classes --

    def char_class(self) -> _Chars:
        s = self.s
        if s.startswith((b"[[:<:]]", b"[[:>:]]"), self.i):
            raise PcreUnsupported("pcre: [[:<:]] word boundary")
        self.i += 1
        negated = self.peek() == ord("^")
        if negated:
            self.i += 1
        literal = 0  # folded when caseless
        sets = 0  # escapes and POSIX classes, which are already closed under case
        first = True
        while True:
            c = self.peek()
            if c < 0:
                raise self.error("missing terminating ] for character class")
            if self.in_quote:
                if s.startswith(b"\\E", self.i):
                    self.in_quote = False
                    self.i += 2
                    continue
            elif c == ord("]") and not first:
                self.i += 1
                break
            elif self.f.xx and c in b" \t":
                self.i += 1
                continue
            first = False
            item = self.class_item()
            if item is None:
                continue
            kind, value = item
            if self.in_quote or self.peek() != ord("-") or self.peek(1) in (ord("]"), -1):
                if kind == "char":
                    literal |= 1 << value
                else:
                    sets |= value
                continue
            # a range a-z
            self.i += 1
            hi_item = self.class_item()
            if hi_item is None or kind != "char" or hi_item[0] != "char":
                raise self.error("invalid range in character class")
            if hi_item[1] < value:
                raise self.error("range out of order in character class")
            literal |= _span(value, hi_item[1])
        mask = (_fold(literal) if self.f.i else literal) | sets
        return _Chars(ALL & ~mask if negated else mask)

    def class_item(self) -> tuple[str, int] | None:
        s = self.s
        c = s[self.i]
        if self.in_quote:
            self.i += 1
            return "char", c
        if c == ord("[") and self.peek(1) in b":.=":
            posix = self.posix_class()
            if posix is not None:
                return "set", posix
        if c != ord("\\"):
            self.i += 1
            return "char", c
        if self.i + 1 >= len(s):
            raise self.error("\\ at end of pattern")
        e = s[self.i + 1]
        ch = chr(e)
        self.i += 2
        if ch in "01234567":
            return "char", self.octal(self.i - 1, 3)
        if ch in "89":
            return "char", e
        if ch == "b":
            return "char", 0x08
        if ch in _SIMPLE_ESCAPES:
            return "char", _SIMPLE_ESCAPES[ch]
        if ch in "cxo":
            return "char", self.char_escape(ch)
        if ch in _CLASS_ESCAPES:
            return "set", _CLASS_ESCAPES[ch]
        if ch in "pP":
            return "set", self.property(ch == "P")
        if ch == "Q":
            self.in_quote = True
            return None
        if ch == "E":
            return None
        if ch.isascii() and ch.isalnum():
            raise self.error(f"escape \\{ch} is not allowed in a character class")
        return "char", e

    def posix_class(self) -> int | None:
        s = self.s
        kind = s[self.i + 1]
        end = s.find(bytes([kind, ord("]")]), self.i + 2)
        close = s.find(b"]", self.i + 2)
        if end < 0 or close < end:
            return None
        if kind != ord(":"):
            raise self.error("POSIX collating elements are not supported")
        name = s[self.i + 2 : end].decode("latin-1")
        negated = name.startswith("^")
        name = name[1:] if negated else name
        if self.f.i and name in ("lower", "upper"):
            name = "alpha"  # as PCRE2 does for caseless matching
        if name not in POSIX:
            raise self.error(f"unknown POSIX class name {name!r}")
        self.i = end + 2
        return ALL & ~POSIX[name] if negated else POSIX[name]


# --- analysis of what can follow a node ----------------------------------------------


class _Follow(NamedTuple):
    accept: int  # bytes that may come next for the rest of the pattern to succeed (over-estimate)
    always: bool  # the rest can succeed anywhere by matching empty (no assertions on the way)
    at_end: bool  # the rest can succeed at the end of the input, matching empty
    last: bool  # nothing at all follows (end of pattern, no repetition around)


_TOP = _Follow(ALL, True, True, True)


def _accept(n: _Node, after: int) -> int:
    """Bytes that can be next when n starts, given ``after`` for what follows n."""
    if isinstance(n, _Chars):
        return n.mask
    if isinstance(n, _Seq):
        for item in reversed(n.items):
            after = _accept(item, after)
        return after
    if isinstance(n, _Alt):
        out = 0
        for b in n.branches:
            out |= _accept(b, after)
        return out
    if isinstance(n, _Group):
        return _accept(n.body, after)
    if isinstance(n, _Repeat):
        inner = _accept(n.body, ALL)  # over-estimate, but linear in the tree size
        return inner | (after if n.lo == 0 else 0)
    if isinstance(n, _Assert):
        if n.kind == "end":
            return 0
        if n.kind in ("dollar", "mend"):
            return after & NL
        return after
    return _bytes(0x0A, 0x0B, 0x0C, 0x0D, 0x85)  # _Newline


def _always_empty(n: _Node) -> bool:
    if isinstance(n, _Seq):
        return all(_always_empty(i) for i in n.items)
    if isinstance(n, _Alt):
        return any(_always_empty(b) for b in n.branches)
    if isinstance(n, _Group):
        return _always_empty(n.body)
    if isinstance(n, _Repeat):
        return n.lo == 0 or _always_empty(n.body)
    return False


def _empty_at_end(n: _Node, after: bool) -> bool:
    """Can n match empty at the end of an input whose last byte is a newline, then ``after``?"""
    if isinstance(n, _Seq):
        for item in reversed(n.items):
            after = _empty_at_end(item, after)
        return after
    if isinstance(n, _Alt):
        return any(_empty_at_end(b, after) for b in n.branches)
    if isinstance(n, _Group):
        return _empty_at_end(n.body, after)
    if isinstance(n, _Repeat):
        return after if n.lo == 0 else _empty_at_end(n.body, after)
    if isinstance(n, _Assert):
        return after and n.kind not in ("start", "word")
    return False


def _one_byte(n: _Node) -> int | None:
    """The byte set if n always matches exactly one byte, in exactly one way."""
    if isinstance(n, _Chars):
        return n.mask
    if isinstance(n, _Group):
        return _one_byte(n.body)
    if isinstance(n, _Seq):
        return _one_byte(n.items[0]) if len(n.items) == 1 else None
    if isinstance(n, _Alt):
        out = 0
        for b in n.branches:
            m = _one_byte(b)
            if m is None:
                return None
            out |= m
        return out
    return None


# --- writing RE2 syntax ---------------------------------------------------------------

RE2_MAX_REPEAT = 1000  # RE2's limit for a count, and for the product of nested counts
MAX_EXPANSION = 64 << 10  # bytes of RE2 text one repetition may be split into


def _lit(b: int) -> str:
    ch = chr(b)
    if ch.isascii() and ch.isalnum():
        return ch
    if 0x21 <= b <= 0x7E:
        return "\\" + ch
    return f"\\x{b:02x}"


def _class_char(b: int) -> str:
    ch = chr(b)
    if ch.isascii() and ch.isalnum():
        return ch
    if ch in "\\]^-[":
        return "\\" + ch
    if 0x21 <= b <= 0x7E:
        return ch
    return f"\\x{b:02x}"


def _class_body(mask: int) -> str:
    out = []
    while mask:
        lo = (mask & -mask).bit_length() - 1
        x = mask >> lo
        hi = lo + (x ^ (x + 1)).bit_length() - 2  # the run of ones starting at lo
        mask &= ~_span(lo, hi)
        if lo == hi:
            out.append(_class_char(lo))
        elif hi == lo + 1:
            out.append(_class_char(lo) + _class_char(hi))
        else:
            out.append(f"{_class_char(lo)}-{_class_char(hi)}")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _chars(mask: int) -> str:
    if mask == ALL:
        return "[\\x00-\\xff]"
    if mask == 0:
        return "[^\\x00-\\xff]"  # matches nothing: Latin-1 input has no code point above 0xff
    if mask & (mask - 1) == 0:
        return _lit(mask.bit_length() - 1)
    pos, neg = _class_body(mask), _class_body(ALL & ~mask)
    return f"[^{neg}]" if len(neg) < len(pos) else f"[{pos}]"


def _quant(lo: int, hi: int | None, lazy: bool) -> str:
    if lo == hi:
        return "" if lo == 1 else f"{{{lo}}}"  # an exact count has nothing to be lazy about
    if (lo, hi) == (0, None):
        q = "*"
    elif (lo, hi) == (1, None):
        q = "+"
    elif (lo, hi) == (0, 1):
        q = "?"
    elif hi is None:
        q = f"{{{lo},}}"
    else:
        q = f"{{{lo},{hi}}}"
    return q + ("?" if lazy else "")


class _Out(NamedTuple):
    text: str
    weight: int  # the largest product of nested {n,m} counts inside (RE2 allows at most 1000)


def _emit(n: _Node, fol: _Follow) -> _Out:
    if isinstance(n, _Chars):
        return _Out(_chars(n.mask), 1)
    if isinstance(n, _Alt):
        parts = [_emit(b, fol) for b in n.branches]
        return _Out("|".join(p.text for p in parts), max(p.weight for p in parts))
    if isinstance(n, _Seq):
        follows: list[_Follow] = []
        f = fol
        for item in reversed(n.items):
            follows.append(f)
            f = _Follow(
                _accept(item, f.accept),
                _always_empty(item) and f.always,
                _empty_at_end(item, f.at_end),
                False,
            )
        parts = [_emit(item, f) for item, f in zip(n.items, reversed(follows), strict=True)]
        return _Out("".join(p.text for p in parts), max((p.weight for p in parts), default=1))
    if isinstance(n, _Group):
        if n.kind == "atomic":
            return _emit_atomic(n, fol)
        body = _emit(n.body, fol)
        if n.name is not None:
            return _Out(f"(?P<{n.name}>{body.text})", body.weight)
        return _Out(f"({body.text})" if n.kind == "capture" else f"(?:{body.text})", body.weight)
    if isinstance(n, _Repeat):
        return _emit_repeat(n, fol)
    if isinstance(n, _Assert):
        return _Out(_emit_assert(n, fol), 1)
    if fol.always or not fol.accept & NL:
        # Backing off from \r\n to \r alone would leave \n next, which the rest refuses.
        return _Out("(?:\\r\\n|[\\n\\x0b\\x0c\\r\\x85])", 1)
    raise PcreUnsupported("pcre: \\R", "followed by something that may start with \\n")


def _emit_repeat(n: _Repeat, fol: _Follow) -> _Out:
    one = _one_byte(n.body)
    if n.mode == "possessive" and (one is None or not (fol.always or not one & fol.accept)):
        raise PcreUnsupported("pcre: possessive quantifier", "giving back could change the match")
    if n.hi == 1:
        inner = fol
    else:
        inner = _Follow(
            fol.accept | _accept(n.body, ALL),
            fol.always and (n.lo <= 1 or _always_empty(n.body)),
            fol.at_end,
            False,
        )
    body = _emit(n.body, inner)
    atom = body.text if isinstance(n.body, (_Chars, _Group)) else f"(?:{body.text})"
    lazy = n.mode == "lazy"
    count = n.hi if n.hi is not None else n.lo
    if (n.hi in (None, 1) and n.lo <= 1) or count * body.weight <= RE2_MAX_REPEAT:
        # *, + and ? are not counted repetitions for RE2's limit
        return _Out(atom + _quant(n.lo, n.hi, lazy), max(count, 1) * body.weight)
    # Too many for RE2 in one count. A mandatory prefix always splits off (B{2500} is
    # B{1000}B{1000}B{500}), and so does an optional part: in B{0,1000}B{0,1000} the second
    # count only repeats attempts the first already made and lost, so the first success is
    # the one B{0,2000} finds. Copies of a capture group would renumber the groups.
    cap = RE2_MAX_REPEAT // body.weight
    lo, hi = n.lo, n.hi
    pieces: list[str] = []
    while lo > cap:
        pieces.append(atom + _quant(cap, cap, False))
        lo -= cap
        hi = None if hi is None else hi - cap
    while hi is not None and hi > cap:
        pieces.append(atom + _quant(lo, cap, lazy))
        hi -= cap
        lo = 0
    pieces.append(atom + _quant(lo, hi, lazy))
    if _has_capture(n.body):
        raise PcreUnsupported("pcre: repetition too large", "splitting it would copy a capture group")
    if len(pieces) * len(atom) > MAX_EXPANSION:
        raise PcreUnsupported("pcre: repetition too large", f"{_quant(n.lo, n.hi, False)} of a long group")
    return _Out("".join(pieces), cap * body.weight)


def _has_capture(n: _Node) -> bool:
    if isinstance(n, _Group):
        return n.kind == "capture" or _has_capture(n.body)
    if isinstance(n, _Alt):
        return any(_has_capture(b) for b in n.branches)
    if isinstance(n, _Seq):
        return any(_has_capture(i) for i in n.items)
    if isinstance(n, _Repeat):
        return _has_capture(n.body)
    return False


def _emit_atomic(g: _Group, fol: _Follow) -> _Out:
    if _one_byte(g.body) is not None:
        body = _emit(g.body, fol)  # one byte, one way: nothing to backtrack into
        return _Out(f"(?:{body.text})", body.weight)
    if len(g.body.branches) == 1 and len(g.body.branches[0].items) == 1:
        item = g.body.branches[0].items[0]
        if isinstance(item, _Repeat) and item.mode != "lazy":
            out = _emit_repeat(_Repeat(item.body, item.lo, item.hi, "possessive"), fol)
            return _Out(f"(?:{out.text})", out.weight)
    raise PcreUnsupported("pcre: atomic group")


def _emit_assert(n: _Assert, fol: _Follow) -> str:
    kind = n.kind
    if kind == "dollar":
        if not fol.accept & NL:
            return "\\z"  # "before a final newline" cannot lead to a match here
        if fol.last:
            return "(?:\\n?\\z)"  # same inputs match; the match may end after the final \n
        raise PcreUnsupported("pcre: $ mid-pattern", "followed by something that may match a newline")
    if kind == "mstart":
        if fol.at_end:
            raise PcreUnsupported("pcre: multiline ^ before empty-matching pattern")
        return "(?m:^)"
    return {"start": "\\A", "end": "\\z", "mend": "(?m:$)", "word": "\\b", "nonword": "\\B"}[kind]


def translate(spec: PcreSpec) -> str:
    """An RE2 pattern (ASCII text, for Latin-1 byte matching) with PCRE's matches.

    Raises :class:`PcreUnsupported` for constructs RE2 cannot run with the same meaning,
    and ``ValueError`` for patterns PCRE itself rejects.
    """
    root = _Parser(spec).parse()
    body = _emit(root, _TOP).text
    return f"\\A(?:{body})" if spec.anchored else body


def compile_pcre(spec: PcreSpec) -> Any:
    """Compile for bytes with RE2 (linear time). Raises PcreUnsupported or ValueError."""
    pattern = translate(spec)
    opts = re2.Options()
    opts.max_mem = MAX_RE2_MEMORY
    opts.log_errors = False
    opts.encoding = re2.Options.Encoding.LATIN1
    # Case folding, '.', and ^/$ are already spelled out in the pattern (PCRE's meaning).
    opts.case_sensitive = True
    opts.dot_nl = False
    opts.never_nl = False
    try:
        compiled = re2.compile(pattern.encode("ascii"), options=opts)
    except re2.error as e:
        text = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise PcreUnsupported(f"pcre: re2 rejects: {text.split(':')[0]}", text) from None
    if len(spec.captures) > compiled.groups:
        raise ValueError(f"pcre /{spec.source}/: more capture names than capture groups")
    return compiled
