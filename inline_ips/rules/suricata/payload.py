"""Build a rule's per-buffer match lists from its payload keywords, in rule order.

Does: follow Suricata's list semantics — a content (or pcre, byte_*,
isdataat, bsize) goes to the active sticky buffer, or to the packet payload
when none is active; a legacy modifier (``content:"x"; http_uri;``) moves the
latest payload content into that buffer; Snort 3's buffers are sticky and come
first; the same buffer named twice continues one list; transforms after a
sticky buffer make a list of their own. Content modifiers (``nocase``,
``depth``, ``fast_pattern``, ...) apply to the latest content, in either
Suricata's separate-keyword form or Snort 3's inline ``content:"x",nocase``
form, and are checked the way Suricata checks them (a depth shorter than the
content, relative and absolute modifiers on one content, a modifier given
twice or with no content before it, a fast_pattern Suricata refuses, a
content a transform could never produce: the rule is invalid).

Does not: evaluate anything (``detect/content`` does), or handle keywords
other than payload ones (``compile`` dispatches those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inline_ips.detect.bytes import ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt
from inline_ips.rules.keywords import parse_content
from inline_ips.rules.model import Buffer, BufferMatch, BufferSize, Content, Match, Pos, Regex, Transform
from inline_ips.rules.suricata.errors import RuleInvalid, RuleUnsupported

# depth and offset are uint16 in Suricata (detect-depth.c, detect-offset.c); distance and
# within are int32 bounded by DETECT_CONTENT_VALUE_MAX, 1 MiB (detect-distance.c, detect-within.c).
MAX_POSITION = 65535
MAX_RELATIVE = 1024 * 1024
MAX_TRANSFORMS = 16  # DETECT_TRANSFORMS_MAX
_FP_CHOP = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*")
_POSITIONAL = ("offset", "depth", "distance", "within")
_C_SPACE = frozenset(b" \t\n\v\f\r")  # C's isspace()

# Buffers Suricata keeps in one list although this engine names them apart: http.response_body
# and its legacy http_server_body register the file_data list (detect-http-server-body.c), so
# a pcre /Q (file_data) fits inside http.response_body.
_SAME_LIST = {frozenset({Buffer.FILE_DATA, Buffer.HTTP_RESPONSE_BODY})}


def _same_list(a: Buffer, b: Buffer) -> bool:
    return a is b or frozenset({a, b}) in _SAME_LIST


@dataclass(slots=True, eq=False)
class _Draft:
    """A content while its modifiers are still being read."""

    pattern: bytes
    negated: bool
    nocase: bool = False
    offset: Pos | None = None
    depth: Pos | None = None
    distance: Pos | None = None
    within: Pos | None = None
    startswith: bool = False
    endswith: bool = False
    fast_pattern: bool = False
    fp_only: bool = False
    fp_chop: tuple[int, int] | None = None
    seen: set[str] = field(default_factory=set)

    @property
    def positional(self) -> bool:
        # startswith is a depth to Suricata (DetectStartsWithSetup sets DETECT_CONTENT_DEPTH).
        return self.startswith or any(getattr(self, name) is not None for name in _POSITIONAL)

    def freeze(self) -> Content:
        n = len(self.pattern)
        absolute = self.offset is not None or self.depth is not None
        relative = self.distance is not None or self.within is not None
        if absolute and relative:
            raise RuleInvalid(
                "invalid: relative and absolute modifiers",
                "a content cannot have both offset/depth and distance/within",
            )
        if self.startswith and (absolute or relative):
            raise RuleInvalid(
                "invalid: startswith with positional modifiers",
                "startswith cannot be combined with offset, depth, distance or within",
            )
        if isinstance(self.depth, int) and self.depth < n:
            raise RuleInvalid(
                "invalid: depth shorter than content", f"depth {self.depth} is shorter than the content ({n})"
            )
        if isinstance(self.within, int) and self.within < n:
            raise RuleInvalid(
                "invalid: within shorter than content",
                f"within {self.within} is shorter than the content ({n})",
            )
        # detect-fast-pattern.c and the depth/offset/distance/within setups refuse these in
        # either keyword order.
        if self.fp_only and (self.negated or self.positional):
            raise RuleInvalid(
                "invalid: fast_pattern:only",
                "fast_pattern:only cannot go with a negated content or offset, depth, distance, within",
            )
        if self.fast_pattern and self.negated and self.positional:
            raise RuleInvalid(
                "invalid: fast_pattern on negated content",
                "a negated content with offset, depth, distance or within cannot be the fast_pattern",
            )
        offset, depth = self.offset, self.depth
        if self.startswith:
            offset, depth = 0, n
        return Content(
            pattern=self.pattern,
            nocase=self.nocase,
            negated=self.negated,
            offset=offset,
            depth=depth,
            distance=self.distance,
            within=self.within,
            startswith=self.startswith,
            endswith=self.endswith,
            fast_pattern=self.fast_pattern,
            fp_chop=self.fp_chop,
        )


Item = _Draft | Match


@dataclass(slots=True)
class _List:
    buffer: Buffer
    transforms: list[Transform]
    items: list[Item] = field(default_factory=list)
    size_kind: str = ""  # "bsize" or "urilen" when such a keyword bounds this buffer's length


def _check_lowercase_host(lst: _List) -> None:
    """http.host is lower-cased by the parser, so Suricata refuses contents that could never match."""
    for it in lst.items:
        if isinstance(it, _Draft) and (it.nocase or it.pattern != it.pattern.lower()):
            raise RuleInvalid(
                "invalid: http.host needs lower case",
                "http.host is normalised to lower case: use a lower-case content without nocase",
            )


def _transform_refuses(name: str, pattern: bytes) -> bool:
    """Suricata's TransformValidate callbacks: a content the transform's output can never contain."""
    if name == "to_lowercase":
        return pattern != pattern.lower()
    if name == "to_uppercase":
        return pattern != pattern.upper()
    if name == "strip_whitespace":
        return any(c in _C_SPACE for c in pattern)
    if name == "compress_whitespace":
        return re.search(rb"[ \t\n\v\f\r]{2}", pattern) is not None
    return False


def split_quoted(value: str) -> tuple[bool, str, str]:
    """``!"text",rest`` -> (negated, text between the quotes with escapes kept, rest after them)."""
    v = value.strip()
    negated = v.startswith("!")
    if negated:
        v = v[1:].lstrip()
    if not v.startswith('"'):
        raise RuleInvalid("invalid: content not quoted", f"expected a quoted string, got {value[:40]!r}")
    i = 1
    n = len(v)
    while i < n:
        ch = v[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return negated, v[1:i], v[i + 1 :].strip()
        i += 1
    raise RuleInvalid("invalid: unterminated string", f"the quoted string in {value[:40]!r} is not closed")


def parse_position(value: str | None, name: str, *, allow_negative: bool = False) -> Pos:
    """A modifier's number, or a byte_extract variable name."""
    if value is None or not value.strip():
        raise RuleInvalid(f"invalid: {name} without value", f"'{name}' needs a value")
    v = value.strip()
    try:
        n = int(v, 0) if v.lower().startswith(("0x", "-0x")) else int(v)
    except ValueError:
        if v.replace("_", "").isalnum() and not v[0].isdigit():
            return v  # a byte_extract variable, checked when the rule is complete
        raise RuleInvalid(f"invalid: {name} value", f"'{name}' needs a number, got {v!r}") from None
    if n < 0 and not allow_negative:
        raise RuleInvalid(f"invalid: {name} value", f"'{name}' cannot be negative ({n})")
    limit = MAX_RELATIVE if allow_negative else MAX_POSITION
    if abs(n) > limit:
        raise RuleInvalid(f"invalid: {name} value", f"'{name}' {n} is out of range (at most {limit})")
    return n


# What relative keywords without a sticky buffer follow: the latest of these, in any list
# (DetectGetLastSMFromLists with content, pcre, byte_* and isdataat in detect-bytetest.c & co).
_ANCHORS = (_Draft, Regex, ByteTest, ByteJump, ByteExtract, ByteMath, IsDataAt)


class PayloadBuilder:
    """Collects one rule's buffer lists while its options are read in order."""

    def __init__(self, snort3: bool = False) -> None:
        self.snort3 = snort3
        self._lists: dict[tuple[Buffer, tuple[Transform, ...]], _List] = {}
        self._order: list[_List] = []
        self._sticky: Buffer | None = None  # None: the packet payload
        self._transforms: list[Transform] = []
        # Suricata's list_set: transforms may follow the sticky buffer until a match consumes
        # them (detect-engine.c DetectBufferGetActiveList), even after plain matches.
        self._transforms_open = False
        self._last: _Draft | None = None  # the latest content, wherever it lives now
        self._latest: Item | None = None  # the latest content, pcre, byte_* or isdataat

    # -- buffers ---------------------------------------------------------------

    def sticky(self, buf: Buffer) -> None:
        if self._sticky is not None and self._transforms:
            pending = self._lists.get((self._sticky, tuple(self._transforms)))
            if pending is None or not pending.items:
                # DetectBufferSetActiveList: "previous transforms not consumed".
                raise RuleInvalid(
                    "invalid: transform without match",
                    f"transforms on {self._sticky.value} with no match after them",
                )
        if self._sticky is not None and buf is not Buffer.PAYLOAD and not self.snort3:
            current = self._lists.get((self._sticky, tuple(self._transforms)))
            if current is None or not current.items:
                # DetectBufferSetActiveList (7.x): "previous sticky buffer has no matches".
                raise RuleInvalid(
                    "invalid: sticky buffer without matches",
                    f"the sticky buffer {self._sticky.value} is followed by another before any match",
                )
        self._sticky = None if buf is Buffer.PAYLOAD else buf
        self._transforms = []
        self._transforms_open = self._sticky is not None

    def transform(self, t: Transform) -> None:
        if self._sticky is None:
            raise RuleInvalid(
                "invalid: transform without sticky buffer",
                f"transform '{t.name}' needs a sticky buffer before it",
            )
        if not self._transforms_open:
            # detect-parse.c DetectSignatureAddTransform: "transforms must directly follow stickybuffers".
            raise RuleInvalid(
                "invalid: transform after a match",
                f"transform '{t.name}' must directly follow the sticky buffer {self._sticky.value}",
            )
        if len(self._transforms) >= MAX_TRANSFORMS:
            raise RuleInvalid(
                "invalid: too many transforms", f"at most {MAX_TRANSFORMS} transforms per buffer"
            )
        self._transforms.append(t)

    def _list(self, buf: Buffer, transforms: tuple[Transform, ...]) -> _List:
        key = (buf, transforms)
        lst = self._lists.get(key)
        if lst is None:
            lst = self._lists[key] = _List(buf, list(transforms))
            self._order.append(lst)
        return lst

    def _active(self) -> _List:
        if self._sticky is None:
            return self._list(Buffer.PAYLOAD, ())
        return self._list(self._sticky, tuple(self._transforms))

    def _list_of(self, item: Item) -> _List:
        for lst in self._order:
            if any(it is item for it in lst.items):
                return lst
        raise AssertionError("item in no list")  # pragma: no cover - every item is appended to a list

    def _append(self, lst: _List, item: Item) -> None:
        lst.items.append(item)
        if lst.transforms:
            self._transforms_open = False
        if isinstance(item, _ANCHORS):
            self._latest = item

    @property
    def active_buffer(self) -> Buffer:
        return self._sticky or Buffer.PAYLOAD

    # -- content ----------------------------------------------------------------

    def content(self, value: str | None) -> None:
        if value is None:
            raise RuleInvalid("invalid: content without value", "'content' needs a value")
        negated, text, rest = split_quoted(value)
        if rest and not self.snort3:
            # SigParseOptions: a quoted value must end with its closing quote.
            raise RuleInvalid(
                "invalid: content string", f"text after the closing quote: {rest[:40]!r} (missing ';'?)"
            )
        try:
            pattern = parse_content(text, strict=True)
        except ValueError as e:
            raise RuleInvalid("invalid: content string", str(e)) from None
        draft = _Draft(pattern, negated)
        lst = self._active()
        if lst.transforms and not negated:
            for t in lst.transforms:
                if _transform_refuses(t.name, pattern):
                    # detect-content.c DetectContentSetup: DetectEngineBufferTypeValidateTransform.
                    raise RuleInvalid(
                        "invalid: content incompatible with transform",
                        f"content {text[:40]!r} can never match after the {t.name} transform",
                    )
        self._append(lst, draft)
        self._last = draft
        if rest:
            if not rest.startswith(","):
                raise RuleInvalid(
                    "invalid: content string", f"unexpected text after the content: {rest[:40]!r}"
                )
            self._inline_modifiers(rest[1:])

    def _inline_modifiers(self, text: str) -> None:
        """Snort 3: ``content:"x",nocase,depth 4,offset 1,fast_pattern``."""
        for part in text.split(","):
            word, _, arg = part.strip().partition(" ")
            word = word.strip().lower()
            arg = arg.strip()
            if word in ("fast_pattern_offset", "fast_pattern_length"):
                self._snort_chop(word, arg)
                continue
            if word == "fast_pattern" and arg:
                raise RuleInvalid("invalid: fast_pattern value", "Snort 3's fast_pattern takes no value")
            self.modifier(word, arg or None)

    def _snort_chop(self, word: str, arg: str) -> None:
        draft = self._need_content(word)
        start, length = draft.fp_chop or (0, len(draft.pattern))
        try:
            n = int(arg)
        except ValueError:
            raise RuleInvalid(f"invalid: {word}", f"'{word}' needs a number, got {arg!r}") from None
        if word == "fast_pattern_offset":
            draft.fp_chop = (n, length - n if draft.fp_chop is None else length)
        else:
            draft.fp_chop = (start, n)
        if draft.fp_chop[0] < 0 or draft.fp_chop[1] <= 0 or sum(draft.fp_chop) > len(draft.pattern):
            raise RuleInvalid("invalid: fast_pattern chop", f"{word} {n} is outside the content")
        draft.fast_pattern = True

    def _need_content(self, name: str) -> _Draft:
        """The content a modifier applies to: the latest one, or with a sticky buffer active the
        latest one in that buffer (DetectGetLastSMFromLists only looks at the active list)."""
        if self._sticky is not None:
            for it in reversed(self._active().items):
                if isinstance(it, _Draft):
                    return it
        elif self._last is not None:
            return self._last
        raise RuleInvalid("invalid: modifier without content", f"'{name}' needs a content before it")

    def modifier(self, name: str, value: str | None) -> None:
        """A content modifier: applies to the latest content."""
        draft = self._need_content(name)
        if name in draft.seen and name not in ("rawbytes", "fast_pattern"):
            raise RuleInvalid(f"invalid: {name} twice", f"'{name}' given twice for one content")
        draft.seen.add(name)
        if name == "nocase":
            draft.nocase = True
        elif name == "rawbytes":
            pass  # Snort 2 compatibility; Suricata ignores it too
        elif name in ("offset", "depth"):
            setattr(draft, name, parse_position(value, name))
        elif name == "distance":
            draft.distance = parse_position(value, name, allow_negative=True)
        elif name == "within":
            draft.within = parse_position(value, name, allow_negative=True)
        elif name == "startswith":
            draft.startswith = True
        elif name == "endswith":
            draft.endswith = True
        elif name == "fast_pattern":
            self._fast_pattern(draft, value)
        else:
            raise RuleUnsupported(f"unsupported content modifier '{name}'")
        if name != "fast_pattern" and (name in _POSITIONAL or name == "startswith") and draft.fp_only:
            raise RuleInvalid(
                "invalid: fast_pattern:only", f"'{name}' on a content that is fast_pattern:only"
            )

    def _fast_pattern(self, draft: _Draft, value: str | None) -> None:
        """detect-fast-pattern.c DetectFastPatternSetup."""
        if value is None or not value.strip():
            if draft.fast_pattern:
                raise RuleInvalid("invalid: fast_pattern twice", "fast_pattern given twice for one content")
            for lst in self._order:
                for it in lst.items:
                    if isinstance(it, _Draft) and it.fast_pattern:
                        raise RuleInvalid(
                            "invalid: fast_pattern twice", "only one content can be the fast_pattern"
                        )
            draft.fast_pattern = True
            return
        if value.strip() == "only":
            draft.fp_only = True
        else:
            m = _FP_CHOP.fullmatch(value)
            if m is None:
                raise RuleInvalid(
                    "invalid: fast_pattern value",
                    f"fast_pattern takes 'only' or offset,length, got {value!r}",
                )
            start, length = int(m.group(1)), int(m.group(2))
            if start > MAX_POSITION or length > MAX_POSITION or start > MAX_POSITION - length:
                raise RuleInvalid("invalid: fast_pattern chop", f"fast_pattern:{value} is out of range")
            if start + length > len(draft.pattern):
                raise RuleInvalid(
                    "invalid: fast_pattern chop", "fast_pattern offset+length is beyond the content's end"
                )
            # A zero-length slice is accepted by Suricata and says nothing: index the whole content.
            draft.fp_chop = (start, length) if length else None
        draft.fast_pattern = True

    def prefilter_content(self) -> None:
        """``content:...; prefilter;``: the content becomes the fast pattern."""
        draft = self._need_content("prefilter")
        if draft.negated and draft.positional:
            raise RuleInvalid(
                "invalid: prefilter",
                "a negated content with offset, depth, distance or within cannot prefilter",
            )
        if not draft.fast_pattern:
            self._fast_pattern(draft, None)

    def legacy_modifier(self, name: str, buf: Buffer) -> None:
        """``content:"x"; http_uri;``: move the latest payload content into ``buf``.

        As detect-parse.c DetectEngineContentModifierBufferSetup: the content moved is
        the last one still in the payload list (which need not be the latest content),
        never one inside a sticky buffer, and not one marked rawbytes.
        """
        if self._sticky is not None:
            raise RuleInvalid(
                "invalid: modifier inside sticky buffer",
                f"'{name}' while the sticky buffer {self._sticky.value} is set (reset it with pkt_data)",
            )
        payload = self._lists.get((Buffer.PAYLOAD, ()))
        draft = None
        if payload is not None:
            draft = next((it for it in reversed(payload.items) if isinstance(it, _Draft)), None)
        if payload is None or draft is None:
            raise RuleInvalid(
                "invalid: modifier without content", f"'{name}' needs a payload content before it"
            )
        if "rawbytes" in draft.seen:
            raise RuleInvalid("invalid: modifier on rawbytes content", f"'{name}' on a rawbytes content")
        payload.items.remove(draft)
        self._list(buf, ()).items.append(draft)

    # -- other matches -------------------------------------------------------------

    def add(self, m: Match, relative: bool = False) -> None:
        """Append a byte_* or isdataat match: to the active list, or for a ``relative`` one
        without a sticky buffer to the list of the latest content/pcre/byte match."""
        if relative and self._sticky is None and self._latest is not None:
            lst = self._list_of(self._latest)
        else:
            lst = self._active()
        self._append(lst, m)

    def pcre(self, m: Regex, buf: Buffer | None) -> None:
        """A pcre goes to the active sticky buffer, else to its buffer flag's list or the payload
        (detect-pcre.c DetectPcreSetup; unlike byte_*, /R does not follow the latest match)."""
        if self._sticky is not None:
            if buf is not None and not _same_list(buf, self._sticky):
                raise RuleInvalid(
                    "invalid: buffer conflict",
                    f"a pcre for {buf.value} inside the sticky buffer {self._sticky.value}",
                )
            lst = self._active()
        else:
            lst = self._list(buf or Buffer.PAYLOAD, ())
            anchored = any(isinstance(it, (_Draft, Regex)) for it in lst.items)
            if m.relative and not self.snort3 and not anchored:
                raise RuleInvalid(
                    "invalid: relative pcre without match",
                    f"pcre /R needs a content or pcre before it in {lst.buffer.value}",
                )
        self._append(lst, m)

    def size(self, m: BufferSize, kind: str, buf: Buffer | None = None) -> None:
        """bsize/bufferlen (the active buffer) or urilen (``buf``, whatever buffer is active:
        detect-urilen.c appends to the uri list). These never anchor relative matches."""
        lst = self._active() if buf is None else self._list(buf, ())
        lst.items.append(m)
        if kind in ("bsize", "urilen"):
            lst.size_kind = kind
        if buf is None and lst.transforms:
            self._transforms_open = False

    def add_to(self, buf: Buffer, m: Match) -> None:
        """A match keyword with a buffer of its own (tls.subject...): outside the sticky-buffer flow."""
        self._list(buf, ()).items.append(m)

    def finish(self) -> tuple[BufferMatch, ...]:
        if self._sticky is not None and not self.snort3:
            lst = self._lists.get((self._sticky, tuple(self._transforms)))
            if lst is None or not lst.items:
                # detect-parse.c SigValidate: "rule %u setup buffer %s but didn't add matches to it".
                raise RuleInvalid(
                    "invalid: sticky buffer without matches",
                    f"the sticky buffer {self._sticky.value} is set but nothing matches in it",
                )
        out: list[BufferMatch] = []
        for lst in self._order:
            if not lst.items:
                continue
            if lst.buffer is Buffer.HTTP_HOST and not lst.transforms:
                _check_lowercase_host(lst)
            _check_relative_after_fp_only(lst)
            matches = tuple(it.freeze() if isinstance(it, _Draft) else it for it in lst.items)
            if lst.size_kind:
                _check_fits_size(lst, matches)
            out.append(BufferMatch(lst.buffer, matches, tuple(lst.transforms)))
        return tuple(out)

    @property
    def has_contents(self) -> bool:
        return any(isinstance(it, _Draft) for lst in self._order for it in lst.items)


def _check_relative_after_fp_only(lst: _List) -> None:
    """detect-distance.c / detect-within.c: "previous keyword has a fast_pattern:only; set"."""
    prev: Item | None = None
    for it in lst.items:
        relative = isinstance(it, _Draft) and (it.distance is not None or it.within is not None)
        if relative and isinstance(prev, _Draft) and prev.fp_only:
            raise RuleInvalid(
                "invalid: fast_pattern:only",
                "a relative content follows a content that is fast_pattern:only",
            )
        if isinstance(it, (_Draft, Regex)):
            prev = it


def _size_bound(kind: str, sizes: list[BufferSize]) -> int | None:
    """The longest buffer the size keywords allow, as Suricata computes it for its check
    (detect-bsize.c SigParseGetMaxBsize, detect-urilen.c DetectUrilenApplyToContent)."""
    bound: int | None = None
    for bs in sizes:
        m = bs.size
        if kind == "bsize":
            b = {"eq": m.a, "lt": m.a, "range": m.b}.get(m.mode)
        else:
            b = {"eq": m.a, "le": m.a, "lt": m.a + 1, "range": m.b + 1}.get(m.mode)
        if b is not None and (bound is None or b < bound):
            bound = b
    return bound


def _check_fits_size(lst: _List, matches: tuple[Match, ...]) -> None:
    """A content longer than the buffer can ever be: Suricata refuses the rule."""
    bound = _size_bound(lst.size_kind, [m for m in matches if isinstance(m, BufferSize)])
    if bound is None:
        return
    for m in matches:
        if isinstance(m, Content) and not m.negated:
            need = len(m.pattern) + (m.offset if isinstance(m.offset, int) else 0)
            if need > bound:
                raise RuleInvalid(
                    f"invalid: content longer than {lst.size_kind}",
                    f"a content needs {need} bytes but {lst.size_kind} allows at most {bound}",
                )
