"""Build a rule's per-buffer match lists from its payload keywords, in rule order.

Does: follow Suricata's list semantics — a content (or pcre, byte_*,
isdataat, bsize) goes to the active sticky buffer, or to the packet payload
when none is active; a legacy modifier (``content:"x"; http_uri;``) moves the
content before it into that buffer; Snort 3's buffers are sticky and come
first; the same buffer named twice continues one list; transforms after a
sticky buffer make a list of their own. Content modifiers (``nocase``,
``depth``, ``fast_pattern``, ...) apply to the latest content, in either
Suricata's separate-keyword form or Snort 3's inline ``content:"x",nocase``
form, and are checked the way Suricata checks them (a depth shorter than the
content, relative and absolute modifiers on one content, a modifier given
twice or with no content before it: the rule is invalid).

Does not: evaluate anything (``detect/content`` does), or handle keywords
other than payload ones (``compile`` dispatches those).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inline_ips.rules.keywords import parse_content
from inline_ips.rules.model import Buffer, BufferMatch, Content, Match, Pos, Transform
from inline_ips.rules.suricata.errors import RuleInvalid, RuleUnsupported

# An upper bound on any offset/depth/distance/within (Suricata's is 65535 for most).
MAX_POSITION = 65535


@dataclass(slots=True)
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
    fp_chop: tuple[int, int] | None = None
    seen: set[str] = field(default_factory=set)

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
        if self.fp_chop is not None and self.fp_chop[0] + self.fp_chop[1] > n:
            raise RuleInvalid(
                "invalid: fast_pattern chop", "fast_pattern offset+length is beyond the content's end"
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


@dataclass(slots=True)
class _List:
    buffer: Buffer
    transforms: list[Transform]
    items: list[_Draft | Match] = field(default_factory=list)


def _check_lowercase_host(lst: _List) -> None:
    """http.host is lower-cased by the parser, so Suricata refuses contents that could never match."""
    for it in lst.items:
        if isinstance(it, _Draft) and (it.nocase or it.pattern != it.pattern.lower()):
            raise RuleInvalid(
                "invalid: http.host needs lower case",
                "http.host is normalised to lower case: use a lower-case content without nocase",
            )


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
    if abs(n) > MAX_POSITION:
        raise RuleInvalid(f"invalid: {name} value", f"'{name}' {n} is out of range")
    return n


class PayloadBuilder:
    """Collects one rule's buffer lists while its options are read in order."""

    def __init__(self, snort3: bool = False) -> None:
        self.snort3 = snort3
        self._lists: dict[tuple[Buffer, tuple[Transform, ...]], _List] = {}
        self._order: list[_List] = []
        self._sticky: Buffer | None = None  # None: the packet payload
        self._transforms: list[Transform] = []
        self._last: tuple[_List, _Draft] | None = None
        self._last_any: _List | None = None  # list of the latest match of any kind

    # -- buffers ---------------------------------------------------------------

    def sticky(self, buf: Buffer) -> None:
        self._sticky = None if buf is Buffer.PAYLOAD else buf
        self._transforms = []

    def transform(self, t: Transform) -> None:
        if self._sticky is None:
            raise RuleInvalid(
                "invalid: transform without sticky buffer",
                f"transform '{t.name}' needs a sticky buffer before it",
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

    @property
    def active_buffer(self) -> Buffer:
        return self._sticky or Buffer.PAYLOAD

    # -- content ----------------------------------------------------------------

    def content(self, value: str | None) -> None:
        if value is None:
            raise RuleInvalid("invalid: content without value", "'content' needs a value")
        negated, text, rest = split_quoted(value)
        try:
            pattern = parse_content(text, strict=True)
        except ValueError as e:
            raise RuleInvalid("invalid: content string", str(e)) from None
        draft = _Draft(pattern, negated)
        lst = self._active()
        lst.items.append(draft)
        self._last = (lst, draft)
        self._last_any = lst
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
        draft.fast_pattern = True

    def _need_content(self, name: str) -> _Draft:
        if self._last is None:
            raise RuleInvalid("invalid: modifier without content", f"'{name}' needs a content before it")
        return self._last[1]

    def modifier(self, name: str, value: str | None) -> None:
        """A content modifier: applies to the latest content."""
        draft = self._need_content(name)
        if name in draft.seen and name != "rawbytes":
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
            if isinstance(draft.within, int) and draft.within < 0:
                raise RuleInvalid("invalid: within value", "'within' cannot be negative")
        elif name == "startswith":
            draft.startswith = True
        elif name == "endswith":
            draft.endswith = True
        elif name == "fast_pattern":
            self._fast_pattern(draft, value)
        else:
            raise RuleUnsupported(f"unsupported content modifier '{name}'")

    def _fast_pattern(self, draft: _Draft, value: str | None) -> None:
        for lst in self._order:
            for it in lst.items:
                if isinstance(it, _Draft) and it.fast_pattern and it is not draft:
                    raise RuleInvalid(
                        "invalid: fast_pattern twice", "only one content can be the fast_pattern"
                    )
        draft.fast_pattern = True
        if value is None or value.strip().lower() == "only":
            return
        start, sep, length = value.partition(",")
        try:
            chop = (int(start), int(length))
        except ValueError:
            raise RuleInvalid(
                "invalid: fast_pattern value", f"fast_pattern takes 'only' or offset,length, got {value!r}"
            ) from None
        if not sep or chop[0] < 0 or chop[1] <= 0:
            raise RuleInvalid("invalid: fast_pattern value", f"bad fast_pattern chop {value!r}")
        draft.fp_chop = chop

    def prefilter_content(self) -> None:
        """``content:...; prefilter;``: the content becomes the fast pattern."""
        draft = self._need_content("prefilter")
        if draft.negated and (
            draft.offset is not None
            or draft.depth is not None
            or draft.distance is not None
            or draft.within is not None
        ):
            raise RuleInvalid(
                "invalid: prefilter",
                "a negated content with offset, depth, distance or within cannot prefilter",
            )
        if not draft.fast_pattern:
            self._fast_pattern(draft, None)

    def legacy_modifier(self, name: str, buf: Buffer) -> None:
        """``content:"x"; http_uri;``: move the latest content into ``buf``."""
        if self._last is None:
            raise RuleInvalid("invalid: modifier without content", f"'{name}' needs a content before it")
        if self._sticky is not None:
            raise RuleInvalid(
                "invalid: modifier inside sticky buffer",
                f"'{name}' while the sticky buffer {self._sticky.value} is set (reset it with pkt_data)",
            )
        lst, draft = self._last
        if lst.buffer is not Buffer.PAYLOAD:
            raise RuleInvalid(
                "invalid: content in two buffers",
                f"'{name}' on a content that is already in {lst.buffer.value}",
            )
        lst.items.remove(draft)
        target = self._list(buf, ())
        target.items.append(draft)
        self._last = (target, draft)
        self._last_any = target

    # -- other matches -------------------------------------------------------------

    def add(self, m: Match, buf: Buffer | None = None, relative: bool = False) -> None:
        """Append a non-content match: to ``buf``, or the active list (for ``relative``
        matches without a sticky buffer: the list of the latest match, as Suricata does)."""
        if buf is not None:
            if self._sticky is not None and buf is not self._sticky:
                raise RuleInvalid(
                    "invalid: buffer conflict",
                    f"a match for {buf.value} inside the sticky buffer {self._sticky.value}",
                )
            lst = self._list(buf, tuple(self._transforms) if self._sticky is buf else ())
        elif relative and self._sticky is None and self._last_any is not None:
            lst = self._last_any
        else:
            lst = self._active()
        lst.items.append(m)
        self._last_any = lst

    def finish(self) -> tuple[BufferMatch, ...]:
        out: list[BufferMatch] = []
        for lst in self._order:
            if not lst.items:
                continue
            if lst.buffer is Buffer.HTTP_HOST and not lst.transforms:
                _check_lowercase_host(lst)
            matches = tuple(it.freeze() if isinstance(it, _Draft) else it for it in lst.items)
            out.append(BufferMatch(lst.buffer, matches, tuple(lst.transforms)))
        return tuple(out)

    @property
    def has_contents(self) -> bool:
        return any(isinstance(it, _Draft) for lst in self._order for it in lst.items)
