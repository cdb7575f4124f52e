"""Load one Suricata or Snort 3 ``.rules`` file into signature rules and a report.

Does: read the file, tell its dialect (Snort 3 and Suricata rules read alike
but mean different things, so each file is judged by the markers only one
dialect uses, see :func:`detect_dialect`), apply the IPS policy (disable,
enable, modify, then action overrides), compile every active rule, and count
what did not load by reason: ``invalid`` (Suricata would reject it too) or
``unsupported`` (well-formed, but this engine cannot honour it). Like
Suricata, a bad rule is reported and the rest of the file still loads. The
classification.config beside the file is used when there is one. Messages
are bounded (:data:`MAX_MESSAGES`); the counts are always complete.

Does not: merge several files or resolve duplicate sids across them (the
top-level loader does), or touch anything per packet.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from inline_ips.rules.classification import (
    DEFAULT_CLASSTYPES,
    ClassificationError,
    Classtype,
    load_classification,
)
from inline_ips.rules.model import RuleAction, SignatureRule
from inline_ips.rules.policy import Policy, RuleFacts
from inline_ips.rules.suricata.compile import CompileContext, compile_rule
from inline_ips.rules.suricata.errors import RuleLoadError
from inline_ips.rules.suricata.parser import RuleSyntaxError, parse_rule, split_rules
from inline_ips.verdict import Action

# Text only Snort 3 rules have (snort3 doc/upgrade; measured on the corpus, R2 §G.1): inline
# content modifiers, service:, bufferlen:, http_header:field, rem:, sd_pattern:, js_data,
# header-less rules (alert http (...)) and the actions block, react and rewrite.
_SNORT3_MARK = re.compile(
    r'content\s*:\s*!?\s*"(?:[^"\\]|\\.)*"\s*,'
    r"|[;(]\s*(?:service|bufferlen|rem|sd_pattern)\s*:"
    r"|[;(]\s*http_header\s*:\s*field\b"
    r"|[;(]\s*(?:js_data|vba_data)\s*;"
    r"|^[#\s]*(?:alert|drop|block|pass|reject|log|react|rewrite)\s+[\w-]+\s*\("
    r"|^[#\s]*(?:block|react|rewrite)\s"
)
# Text only Suricata rules have: content modifiers as keywords of their own, dotted sticky
# buffers (http.uri;), and the reject variants.
_SURICATA_MARK = re.compile(
    r"[;(]\s*(?:depth|offset|distance|within)\s*:"
    r"|[;(]\s*(?:http|dns|tls|file|ja3s?)\.[a-z_.]+\s*;"
    r"|^[#\s]*(?:rejectsrc|rejectdst|rejectboth)\s"
)

# Rule lines read to tell a file's dialect (more when none of them has a marker).
DIALECT_SAMPLE = 500

# How many per-rule messages a report keeps (the counts are always complete).
MAX_MESSAGES = 200

_POLICY_ACTIONS = {
    "drop": RuleAction(Action.DROP),
    "reject": RuleAction(Action.REJECT),
}


@dataclass(slots=True)
class FileReport:
    """What happened to the rules of one file."""

    file: str
    dialect: str = "suricata"
    rules: int = 0  # active rules after enable/disable
    loaded: int = 0
    disabled: int = 0  # commented out (or disabled by policy) and not enabled
    dropped_by_policy: int = 0  # loaded with an action changed by the policy
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rules
    kinds: dict[str, str] = field(default_factory=dict)  # reason -> "invalid" | "unsupported"
    messages: list[str] = field(default_factory=list)  # file:line: rule sid: detail (first MAX_MESSAGES)
    error: str = ""  # the whole file could not be read

    def add_skip(self, reason: str, kind: str, message: str) -> None:
        self.skipped[reason] += 1
        self.kinds.setdefault(reason, kind)
        self.note(message)

    def note(self, message: str) -> None:
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message[:1000])

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "dialect": self.dialect,
            "rules": self.rules,
            "loaded": self.loaded,
            "skipped": sum(self.skipped.values()),
            "disabled": self.disabled,
            "policy_actions": self.dropped_by_policy,
            "skipped_by_reason": [
                {"reason": r, "kind": self.kinds[r], "rules": n} for r, n in self.skipped.most_common()
            ],
            **({"error": self.error} if self.error else {}),
        }


def detect_dialect(text: str) -> tuple[bool, str]:
    """Is the file Snort 3 rather than Suricata, and a note when its rules disagree.

    The file is Snort 3 when more of its lines carry a Snort 3 marker than a Suricata
    one; with no marker at all it is Suricata (the two read the same there, except for
    subtle differences such as isdataat's relative end, which is why this is per file).
    """
    snort = suri = seen = 0
    for line in text.splitlines():
        if "(" not in line:
            continue
        snort += _SNORT3_MARK.search(line) is not None
        suri += _SURICATA_MARK.search(line) is not None
        seen += 1
        if seen >= DIALECT_SAMPLE and (snort or suri):
            break  # a file's dialect is clear long before its end
    snort3 = snort > suri
    note = ""
    if snort and suri:
        note = (
            f"ambiguous dialect: {snort} rules look like Snort 3 and {suri} like Suricata; "
            f"read as {'Snort 3' if snort3 else 'Suricata'}"
        )
    return snort3, note


def is_snort3(text: str) -> bool:
    return detect_dialect(text)[0]


def classtypes_for(path: Path) -> tuple[dict[str, Classtype], str]:
    """The classification.config beside ``path`` merged over the defaults, and a problem if any."""
    cfg = path.parent / "classification.config"
    if not cfg.is_file():
        return dict(DEFAULT_CLASSTYPES), ""
    try:
        return {**DEFAULT_CLASSTYPES, **load_classification(cfg)}, ""
    except ClassificationError as e:
        # Suricata keeps the classtypes read before the bad line.
        return {**DEFAULT_CLASSTYPES, **e.classtypes}, "; ".join(e.errors[:3])


def load_rules_file(
    path: str | Path,
    variables: Mapping[str, str],
    policy: Policy | None = None,
    snort3: bool | None = None,
    classtypes: Mapping[str, Classtype] | None = None,
) -> tuple[list[SignatureRule], FileReport]:
    p = Path(path)
    report = FileReport(str(p))
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        report.error = f"{p}: cannot read: {e.strerror or e}"
        return [], report
    if classtypes is None:
        classtypes, problem = classtypes_for(p)
        if problem:
            report.note(f"{p.parent / 'classification.config'}: {problem}")
    return load_rules_text(text, str(p), variables, policy, snort3, classtypes, report)


def load_rules_text(
    text: str,
    name: str,
    variables: Mapping[str, str],
    policy: Policy | None = None,
    snort3: bool | None = None,
    classtypes: Mapping[str, Classtype] | None = None,
    report: FileReport | None = None,
) -> tuple[list[SignatureRule], FileReport]:
    report = report or FileReport(name)
    if snort3 is None:
        dialect_snort3, note = detect_dialect(text)
        if note:
            report.note(f"{name}: {note}")
    else:
        dialect_snort3 = snort3
    report.dialect = "snort3" if dialect_snort3 else "suricata"
    ctx = CompileContext(variables, classtypes or DEFAULT_CLASSTYPES, name, dialect_snort3)
    pol = policy if policy is not None and not policy.empty else None
    out: list[SignatureRule] = []
    for line, shipped_text, shipped_enabled in split_rules(text):
        rule_text, enabled = shipped_text, shipped_enabled
        facts: RuleFacts | None = None
        if pol is not None:
            facts = RuleFacts.of(rule_text, name)
            enabled = pol.enabled(facts, enabled)
            if enabled and pol.modify:
                rule_text = pol.rewrite(facts)
                facts = RuleFacts.of(rule_text, name)
        if not enabled:
            report.disabled += 1
            continue
        report.rules += 1
        try:
            raw = parse_rule(rule_text, line)
            rule = compile_rule(raw, ctx)
        except RuleSyntaxError as e:
            sid = _sid_of(rule_text)
            report.add_skip("invalid: syntax", "invalid", f"{name}:{line}: rule {sid}: invalid: {e}")
            continue
        except RuleLoadError as e:
            sid = _sid_of(rule_text)
            report.add_skip(e.reason, e.kind, f"{name}:{line}: rule {sid}: {e.kind}: {e.detail}")
            continue
        if pol is not None and facts is not None:
            override = pol.action(facts)
            if override is not None:
                changed = _override(rule, override, pol.block_seconds)
                if changed is not rule:
                    rule = changed
                    report.dropped_by_policy += 1
        out.append(rule)
        report.loaded += 1
    return out, report


def _override(rule: SignatureRule, name: str, block_seconds: int) -> SignatureRule:
    if rule.action.passes:
        return rule  # a pass rule is an exception the rule writer made on purpose
    act = RuleAction(Action.BLOCK, block_seconds) if name == "block" else _POLICY_ACTIONS[name]
    if act.action <= rule.action.action:
        return rule
    return replace(rule, action=act)


_SID_RE = re.compile(r"[;(\s]sid\s*:\s*(\d+)")


def _sid_of(text: str) -> str:
    m = _SID_RE.search(text)
    return m.group(1) if m else "?"
