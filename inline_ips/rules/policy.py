"""IPS policy for Suricata/Snort rule files: which rules to enable, disable, modify, drop.

Emerging Threats ships every rule as ``alert``; an IPS operator decides which
ones should drop. This module mirrors suricata-update's ``enable.conf``,
``disable.conf``, ``modify.conf`` and ``drop.conf``, declared under
``policy:`` in rules.yaml. Each entry is a matcher in suricata-update's
syntax, plus ``classtype:``:

- ``2019401`` or ``1:2019401``: the rule with that sid (and gid);
- ``re:ET EXPLOIT``: a regular expression searched in the rule's text;
- ``group:emerging-exploit.rules``: every rule of that file (a glob on the
  file name, e.g. ``group:emerging-*.rules``);
- ``classtype:trojan-activity``: every rule of that classtype;
- ``metadata:signature_severity Major``: rules with that metadata key and value.

Order, as suricata-update applies it: ``enable`` (commented-out rules become
active), then ``disable`` (wins over enable), then ``modify`` (a regex
replacement on the rule text, before it is parsed), then the action
overrides ``alert`` < ``drop`` < ``reject`` < ``block``: a rule matched by
several takes the strongest. ``block`` is inline-ips' own: drop, and put the
source in the kernel blocklist for ``block_for``. Overrides only ever
strengthen an ``alert`` rule; a rule shipped as ``drop`` stays at least a drop.

This module matches and rewrites rule text; it does not parse rules.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

_SID = re.compile(r"^(?:(\d+):)?(\d+)$")
_META_KEY = re.compile(r"(?:^|[;(\s])metadata\s*:([^;]*);")
_CLASSTYPE = re.compile(r"(?:^|[;(\s])classtype\s*:\s*([^;\s]+)\s*;")
_SID_IN_RULE = re.compile(r"(?:^|[;(\s])sid\s*:\s*(\d+)\s*;")
_GID_IN_RULE = re.compile(r"(?:^|[;(\s])gid\s*:\s*(\d+)\s*;")

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

    @classmethod
    def of(cls, text: str, file: str) -> RuleFacts:
        sid_m = _SID_IN_RULE.search(text)
        gid_m = _GID_IN_RULE.search(text)
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
        )


@dataclass(frozen=True, slots=True)
class Matcher:
    kind: str  # sid, re, group, classtype, metadata
    value: str
    sid: int = 0
    gid: int | None = None
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: object) -> Matcher:
        s = str(text).strip()
        if not s:
            raise PolicyError("empty matcher")
        m = _SID.match(s)
        if m:
            return cls("sid", s, sid=int(m.group(2)), gid=int(m.group(1)) if m.group(1) else None)
        kind, sep, value = s.partition(":")
        kind = kind.strip().lower()
        value = value.strip()
        if not sep or not value:
            raise PolicyError(
                f"{s!r}: use a sid, gid:sid, re:REGEX, group:FILE, classtype:NAME or metadata:KEY VALUE"
            )
        if kind == "re":
            try:
                return cls("re", value, regex=re.compile(value))
            except re.error as e:
                raise PolicyError(f"{s!r}: bad regular expression: {e}") from None
        if kind in ("group", "classtype", "metadata"):
            return cls(kind, value)
        raise PolicyError(f"{s!r}: unknown matcher kind {kind!r} (sid, re, group, classtype, metadata)")

    def matches(self, facts: RuleFacts) -> bool:
        k = self.kind
        if k == "sid":
            return facts.sid == self.sid and (self.gid is None or facts.gid == self.gid)
        if k == "re":
            assert self.regex is not None
            return self.regex.search(facts.text) is not None
        if k == "group":
            name = facts.file.rsplit("/", 1)[-1]
            return fnmatch.fnmatch(name, self.value) or fnmatch.fnmatch(facts.file, self.value)
        if k == "classtype":
            return facts.classtype == self.value
        key, _, val = self.value.partition(" ")
        return any(mk == key and (not val.strip() or mv == val.strip()) for mk, mv in facts.metadata)

    def __str__(self) -> str:
        return self.value if self.kind == "sid" else f"{self.kind}:{self.value}"


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
        """Is the rule active after enable/disable? ``enabled`` is how the file ships it."""
        if not enabled and any(m.matches(facts) for m in self.enable):
            enabled = True
        if enabled and any(m.matches(facts) for m in self.disable):
            enabled = False
        return enabled

    def rewrite(self, facts: RuleFacts) -> str:
        text = facts.text
        for mod in self.modify:
            if mod.matcher.matches(facts):
                text = mod.pattern.sub(mod.replacement, text)
        return text

    def action(self, facts: RuleFacts) -> str | None:
        """The strongest action override that matches, or None."""
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
    return Modify(Matcher.parse(item["match"]), pattern, str(item["to"]))
