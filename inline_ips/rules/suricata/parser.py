"""Split Suricata/Snort rule files into rules, and one rule's text into header and options.

Does: join ``\\``-continued lines, tell enabled rules from commented-out ones
(``# alert ...``, which policies can enable) and from prose comments, split
the header (action, protocol, addresses, ports, direction) with brackets kept
together, and split the option list at ``;`` into ordered ``(keyword, value)``
pairs. A ``;`` is part of a value only when a backslash comes right before
it, as in Suricata (quotes do not protect it; real pcre values hold stray
quotes). Values are returned with their escapes intact: each keyword's own
parser knows which escapes it honours (content: ``\\"`` ``\\;`` ``\\\\``;
pcre keeps its own).

Does not: know what any keyword means, resolve variables, or validate values;
that is ``compile``'s job. Errors are :class:`RuleSyntaxError` with a message
naming what is wrong; the caller adds the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Every action word of either dialect; ``compile`` decides which ones a dialect accepts.
ACTION_WORDS = frozenset(
    {
        "alert",
        "drop",
        "reject",
        "rejectsrc",
        "rejectdst",
        "rejectboth",
        "pass",
        "config",
        "log",
        "sdrop",
        "block",
        "react",
        "rewrite",
    }
)
DIRECTIONS = frozenset({"->", "<>", "=>"})

# A commented-out rule: '#', optional blanks, an action word, a blank, and a closing ')'.
_DISABLED = re.compile(r"^#+\s*(" + "|".join(sorted(ACTION_WORDS)) + r")\s.*\)\s*$")


_OPTION_NAME = re.compile(r"[a-z0-9_.\-]+")


class RuleSyntaxError(ValueError):
    """The text is not a well-formed rule; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RawOption:
    name: str  # lower-cased keyword
    value: str | None  # argument text, stripped, escapes kept; None for a bare keyword


@dataclass(frozen=True, slots=True)
class RawRule:
    action: str
    proto: str
    src: str
    sport: str
    direction: str
    dst: str
    dport: str
    options: tuple[RawOption, ...]
    line: int = 0
    enabled: bool = True
    elided: bool = False  # Snort 3 header-less rule (``alert http (...)``): addresses and ports omitted

    def first(self, name: str) -> str | None:
        """The value of the first option called ``name`` ("" for a bare keyword), or None."""
        for o in self.options:
            if o.name == name:
                return "" if o.value is None else o.value
        return None


def split_rules(text: str) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(first line number, rule text, enabled)`` for every rule in a rules file.

    A line ending in a backslash (trailing blanks ignored) continues on the
    next one: as in Suricata's ``DetectLoadSigFile`` the backslash is removed
    and the next line is appended as it is, leading blanks included, with no
    separator added. Blank lines and comments that are not commented-out rules
    are skipped. Unlike Suricata, an indented rule is loaded rather than
    silently ignored (suricata-update, which usually writes the files Suricata
    reads, accepts it too).
    """
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        whole = "".join(pending).strip()
        pending = []
        if not whole:
            continue
        if whole.startswith("#"):
            if _DISABLED.match(whole):
                yield start, whole.lstrip("#").strip(), False
            continue
        yield start, whole, True
    if pending:
        whole = "".join(pending).strip()
        if whole and not whole.startswith("#"):
            yield start, whole, True


def _split_header(header: str) -> list[str]:
    """Split at blanks, keeping ``[...]`` groups (which may contain blanks) together."""
    if "[" not in header and "]" not in header:
        return header.split()
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in header:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise RuleSyntaxError("unbalanced ']' in the rule header")
        if ch.isspace() and depth == 0:
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        if not (ch.isspace() and depth > 0):
            cur.append(ch)
    if depth:
        raise RuleSyntaxError("unbalanced '[' in the rule header")
    if cur:
        out.append("".join(cur))
    return out


def split_options(body: str) -> list[RawOption]:
    """Split ``msg:"x"; content:"a\\;b"; nocase;`` into ordered options.

    As in Suricata's ``SigParseOptions``, a ``;`` ends an option unless the
    character right before it is a backslash (so ``\\\\;`` does not end one
    either); quotes do not protect a ``;`` (real rules carry unbalanced quotes
    inside pcre values).
    """
    options: list[RawOption] = []
    start = 0
    i = body.find(";")
    while i >= 0:
        if i == 0 or body[i - 1] != "\\":
            _add_option(options, body[start:i])
            start = i + 1
        i = body.find(";", i + 1)
    rest = body[start:].strip()
    if rest:
        raise RuleSyntaxError(f"the last option {rest[:60]!r} is not terminated by ';'")
    return options


def _add_option(options: list[RawOption], text: str) -> None:
    text = text.strip()
    name, sep, value = text.partition(":")
    name = name.strip().lower()
    if not name:
        # Suricata looks the empty name up and fails: "unknown rule keyword ''" (';;' included).
        raise RuleSyntaxError(f"empty option name in {text[:60]!r}" if text else "empty option (';;')")
    if not _OPTION_NAME.fullmatch(name):
        raise RuleSyntaxError(f"bad option name {name!r} in {text[:60]!r}")
    options.append(RawOption(name, value.strip() if sep else None))


def parse_rule(text: str, line: int = 0, enabled: bool = True) -> RawRule:
    """Parse one rule: ``action proto src sport dir dst dport (options)``.

    Snort 3's header-less service rules (``alert http (...)``) get ``any``
    addresses and ports and ``elided`` set (Suricata refuses them; ``compile``
    knows the dialect).
    """
    open_at = text.find("(")
    if open_at < 0:
        raise RuleSyntaxError("no '(' opening the option list")
    body = text[open_at + 1 :].rstrip()
    if not body.endswith(")"):
        raise RuleSyntaxError("the option list does not end with ')'")
    body = body[:-1]
    words = _split_header(text[:open_at])
    elided = len(words) == 2
    if elided:
        words = [words[0], words[1], "any", "any", "->", "any", "any"]
    if len(words) != 7:
        raise RuleSyntaxError(
            f"the header has {len(words)} fields, expected 7 "
            "(action protocol source port direction destination port)"
        )
    action, proto, src, sport, direction, dst, dport = words
    action = action.lower()
    if action not in ACTION_WORDS:
        raise RuleSyntaxError(f"unknown action {action!r}")
    if direction not in DIRECTIONS:
        raise RuleSyntaxError(f"bad direction {direction!r}; use '->' or '<>'")
    return RawRule(
        action=action,
        proto=proto.lower(),
        src=src,
        sport=sport,
        direction=direction,
        dst=dst,
        dport=dport,
        options=tuple(split_options(body)),
        line=line,
        enabled=enabled,
        elided=elided,
    )
