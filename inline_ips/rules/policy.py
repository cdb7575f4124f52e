"""IPS policy for Suricata/Snort rule files: which rules to enable, disable, modify, drop.

Emerging Threats ships every rule as ``alert``; an IPS operator decides which
ones should drop. This module mirrors suricata-update's ``enable.conf``,
``disable.conf``, ``modify.conf`` and ``drop.conf``, declared under
``policy:`` in rules.yaml. Each entry is a matcher in suricata-update's
syntax (suricata/update/matchers.py), plus ``classtype:``:

- ``*``: every rule;
- ``2019401``, ``1:2019401``, ``1:2019401:3`` (gid:sid:rev), or a comma-separated
  list of them: the rules with those ids (a bare sid means gid 1);
- ``re:ET EXPLOIT``: a regular expression searched, case-insensitively, in the
  rule's text;
- ``group:emerging-exploit.rules``: every rule of that file, a glob on the file's
  base name with or without its extension (``group:emerging-*``); a bare
  ``something.rules`` is a group too; ``filename:GLOB`` globs the whole path;
- ``classtype:trojan-activity``: every rule of that classtype (inline-ips' own);
- ``metadata:signature_severity Major``: rules with that metadata key and value,
  case-insensitive (``metadata:KEY`` alone matches any value, inline-ips' own).

Order, as suricata-update applies it: ``disable`` (active rules become
disabled), then ``enable`` (disabled and commented-out rules become active, so
an ``enable`` entry re-enables one rule of a disabled group), then ``modify`` (a
regex replacement on the rule text, before it is parsed; ``\\1`` or Oinkmaster's
``${1}`` refer to groups), then the action overrides ``alert`` < ``drop`` <
``reject`` < ``block``: a rule matched by several takes the strongest.
``block`` is inline-ips' own: drop, and put the source in the kernel blocklist
for ``block_for``. Overrides only ever strengthen an ``alert`` rule; a rule
shipped as ``drop`` stays at least a drop, and a ``noalert`` rule (a flowbit
setter) keeps its action, as suricata-update's drop filter leaves it alone.

This module matches and rewrites rule text; it does not parse rules.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

_ID = re.compile(r"^\d+(?::\d+){0,2}$")
_META_KEY = re.compile(r"(?:^|[;(\s])metadata\s*:([^;]*);")
_CLASSTYPE = re.compile(r"(?:^|[;(\s])classtype\s*:\s*([^;\s]+)\s*;")
_SID_IN_RULE = re.compile(r"(?:^|[;(\s])sid\s*:\s*(\d+)\s*;")
_GID_IN_RULE = re.compile(r"(?:^|[;(\s])gid\s*:\s*(\d+)\s*;")
_REV_IN_RULE = re.compile(r"(?:^|[;(\s])rev\s*:\s*(\d+)\s*;")
_NOALERT_IN_RULE = re.compile(r"(?:^|[;(\s])(?:noalert\s*;|flowbits\s*:\s*noalert\s*;)")
_OINKMASTER_GROUP = re.compile(r"\$\{(\d+)\}")

POLICY_KEYS = ("enable", "disable", "modify", "drop", "reject", "block")
ACTION_KEYS = ("drop", "reject", "block")


class PolicyError(ValueError):
    """A policy entry that cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What matchers look at, read cheaply from a rule's text."""

    text: str
    sid: int
    gid: int
    file: str
    classtype: str
    metadata: tuple[tuple[str, str], ...]
    rev: int = 0
    noalert: bool = False

    @classmethod
    def of(cls, text: str, file: str) -> RuleFacts:
        sid_m = _SID_IN_RULE.search(text)
        gid_m = _GID_IN_RULE.search(text)
        rev_m = _REV_IN_RULE.search(text)
        ct_m = _CLASSTYPE.search(text)
        meta: list[tuple[str, str]] = []
        for m in _META_KEY.finditer(text):
            for item in m.group(1).split(","):
                key, _, val = item.strip().partition(" ")
                if key:
                    meta.append((key, val.strip()))
        return cls(
            text=text,
            sid=int(sid_m.group(1)) if sid_m else 0,
            gid=int(gid_m.group(1)) if gid_m else 1,
            file=file,
            classtype=ct_m.group(1) if ct_m else "",
            metadata=tuple(meta),
            rev=int(rev_m.group(1)) if rev_m else 0,
            noalert=_NOALERT_IN_RULE.search(text) is not None,
        )


# One id a matcher names: (gid, sid, rev or None for any revision).
RuleId = tuple[int, int, int | None]


@dataclass(frozen=True, slots=True)
class Matcher:
    kind: str  # all, sid, re, group, filename, classtype, metadata
    value: str
    ids: tuple[RuleId, ...] = ()
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: object) -> Matcher:
        s = str(text).strip()
        if not s:
            raise PolicyError("empty matcher")
        if s == "*":
            return cls("all", s)
        entries = [e.strip() for e in s.split(",")]
        if all(_ID.match(e) for e in entries):
            return cls("sid", s, ids=tuple(_rule_id(e) for e in entries))
        kind, sep, value = s.partition(":")
        kind = kind.strip().lower()
        value = value.strip()
        if not sep and s.endswith(".rules"):
            return cls("group", s)
        if not sep or not value:
            raise PolicyError(
                f"{s!r}: use *, a sid, gid:sid, re:REGEX, group:FILE, filename:GLOB, classtype:NAME "
                "or metadata:KEY VALUE"
            )
        if kind == "re":
            try:
                return cls("re", value, regex=re.compile(value, re.IGNORECASE))
            except re.error as e:
                raise PolicyError(f"{s!r}: bad regular expression: {e}") from None
        if kind in ("group", "filename", "classtype"):
            return cls(kind, value)
        if kind == "metadata":
            return cls(kind, value.lower())
        raise PolicyError(
            f"{s!r}: unknown matcher kind {kind!r} (sid, re, group, filename, classtype, metadata)"
        )

    def matches(self, facts: RuleFacts) -> bool:
        k = self.kind
        if k == "all":
            return True
        if k == "sid":
            return any(
                facts.gid == gid and facts.sid == sid and (rev is None or facts.rev == rev)
                for gid, sid, rev in self.ids
            )
        if k == "re":
            assert self.regex is not None
            return self.regex.search(facts.text) is not None
        if k == "group":
            base = posixpath.basename(facts.file.replace("\\", "/"))
            stem = posixpath.splitext(base)[0]
            return fnmatch.fnmatch(base, self.value) or fnmatch.fnmatch(stem, self.value)
        if k == "filename":
            return fnmatch.fnmatch(facts.file, self.value)
        if k == "classtype":
            return facts.classtype.lower() == self.value.lower()
        key, _, val = self.value.partition(" ")
        val = val.strip()
        return any(mk.lower() == key and (not val or mv.lower() == val) for mk, mv in facts.metadata)

    def __str__(self) -> str:
        return self.value if self.kind in ("sid", "all") else f"{self.kind}:{self.value}"


def _rule_id(entry: str) -> RuleId:
    parts = [int(p) for p in entry.split(":")]
    if len(parts) == 1:
        return (1, parts[0], None)
    if len(parts) == 2:
        return (parts[0], parts[1], None)
    return (parts[0], parts[1], parts[2])


@dataclass(frozen=True, slots=True)
class Modify:
    matcher: Matcher
    pattern: re.Pattern[str]
    replacement: str


@dataclass(frozen=True, slots=True)
class Policy:
    enable: tuple[Matcher, ...] = ()
    disable: tuple[Matcher, ...] = ()
    modify: tuple[Modify, ...] = ()
    drop: tuple[Matcher, ...] = ()
    reject: tuple[Matcher, ...] = ()
    block: tuple[Matcher, ...] = ()
    block_seconds: int = 600

    @property
    def empty(self) -> bool:
        return not (self.enable or self.disable or self.modify or self.drop or self.reject or self.block)

    def enabled(self, facts: RuleFacts, enabled: bool) -> bool:
        """Is the rule active after disable, then enable? ``enabled`` is how the file ships it.

        suricata-update's order (main.py): disable matchers first, then enable ones, so
        an enable entry wins over a broader disable.
        """
        if enabled and any(m.matches(facts) for m in self.disable):
            enabled = False
        if not enabled and any(m.matches(facts) for m in self.enable):
            enabled = True
        return enabled

    def rewrite(self, facts: RuleFacts) -> str:
        text = facts.text
        for mod in self.modify:
            if mod.matcher.matches(facts):
                text = mod.pattern.sub(mod.replacement, text)
        return text

    def action(self, facts: RuleFacts) -> str | None:
        """The strongest action override that matches, or None (always None for noalert rules)."""
        if facts.noalert:
            return None
        for name in ("block", "reject", "drop"):
            if any(m.matches(facts) for m in getattr(self, name)):
                return name
        return None

    def merged(self, other: Policy) -> Policy:
        if other.empty:
            return self
        if self.empty:
            return other
        return Policy(
            self.enable + other.enable,
            self.disable + other.disable,
            self.modify + other.modify,
            self.drop + other.drop,
            self.reject + other.reject,
            self.block + other.block,
            other.block_seconds,
        )


def parse_policy(raw: Mapping[str, object], block_seconds: int = 600) -> tuple[Policy, list[str]]:
    """Build a Policy from the ``policy:`` mapping; return it and a list of problems (key: what)."""
    problems: list[str] = []
    lists: dict[str, list[Matcher]] = {k: [] for k in POLICY_KEYS if k != "modify"}
    mods: list[Modify] = []
    for key, value in raw.items():
        if key not in POLICY_KEYS:
            problems.append(f"unknown policy key '{key}'; use {', '.join(POLICY_KEYS)}")
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            try:
                if key == "modify":
                    mods.append(_modify(item))
                else:
                    lists[key].append(Matcher.parse(item))
            except PolicyError as e:
                problems.append(f"{key}: {e}")
    return (
        Policy(
            enable=tuple(lists["enable"]),
            disable=tuple(lists["disable"]),
            modify=tuple(mods),
            drop=tuple(lists["drop"]),
            reject=tuple(lists["reject"]),
            block=tuple(lists["block"]),
            block_seconds=block_seconds,
        ),
        problems,
    )


def _modify(item: object) -> Modify:
    if not isinstance(item, Mapping):
        raise PolicyError(f"{item!r}: each modify entry is a mapping with match, from and to")
    unknown = set(item) - {"match", "from", "to"}
    if unknown:
        raise PolicyError(f"unknown modify key(s) {sorted(unknown)}; use match, from, to")
    if "match" not in item or "from" not in item or "to" not in item:
        raise PolicyError("a modify entry needs match, from and to")
    try:
        pattern = re.compile(str(item["from"]))
    except re.error as e:
        raise PolicyError(f"from {item['from']!r}: bad regular expression: {e}") from None
    # Oinkmaster's ${1} means Python's \\1 (suricata-update's ModifyRuleFilter converts it too).
    replacement = _OINKMASTER_GROUP.sub(r"\\\1", str(item["to"]))
    try:
        pattern.sub(replacement, "")
    except (re.error, IndexError) as e:
        raise PolicyError(f"to {item['to']!r}: bad replacement: {e}") from None
    return Modify(Matcher.parse(item["match"]), pattern, replacement)
