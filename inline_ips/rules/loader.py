"""Load the rule files named on the command line into one RuleSet.

Does: load every rules.yaml first (``.yaml``/``.yml``: their variables,
allowlists, policies and includes merge), then every Suricata/Snort
``.rules`` file, from their ``include:`` lists and from the command line,
with those variables (Suricata's defaults unless overridden, then
``--var``) and that policy. rules.yaml errors are fatal and gathered into one
:class:`RulesError`, all at once; a ``.rules`` rule that cannot load is
counted by reason in the file's :class:`FileReport` and the rest still load,
as in Suricata. A duplicate sid in ``.rules`` files keeps the higher
revision (Suricata's rule), and a rules.yaml rule always wins over a
``.rules`` one with its sid.

Does not: compile rules for matching (the engine does) or watch files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from inline_ips.rules.model import RateRule, RuleSet, SignatureRule
from inline_ips.rules.suricata.loader import FileReport, load_rules_file
from inline_ips.rules.yaml_loader import DEFAULT_VARS, RulesError, load_rules_yaml


@dataclass(frozen=True, slots=True)
class LoadReport:
    ruleset: RuleSet
    files: tuple[str, ...] = field(default=())
    rule_files: tuple[FileReport, ...] = ()  # one per .rules file
    seconds: float = 0.0

    @property
    def loaded(self) -> int:
        return sum(r.loaded for r in self.rule_files)

    @property
    def skipped(self) -> int:
        return sum(sum(r.skipped.values()) for r in self.rule_files)

    @property
    def active(self) -> int:
        return sum(r.rules for r in self.rule_files)


def load_rule_files(
    paths: Sequence[str | Path],
    extra_vars: Mapping[str, str] | None = None,
    snort3: bool | None = None,
) -> LoadReport:
    if not paths:
        raise RulesError(["no rule files given"])
    started = time.perf_counter()
    errors: list[str] = []
    merged = RuleSet(variables={**DEFAULT_VARS, **(extra_vars or {})})
    rule_paths: list[Path] = []
    for p in paths:
        path = Path(p)
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            try:
                rs = load_rules_yaml(path, extra_vars)
            except RulesError as e:
                errors.extend(e.errors)
                continue
            merged = merged.merged(rs)
            rule_paths.extend(Path(inc) for inc in rs.includes)
        elif suffix == ".rules":
            if not path.is_file():
                errors.append(f"{path}: no such file")
            else:
                rule_paths.append(path)
        else:
            errors.append(
                f"{path}: unknown rule file type '{suffix or '(none)'}' (expected .yaml, .yml or .rules)"
            )
    seen: dict[int, str] = {}
    every: list[SignatureRule | RateRule] = [*merged.signatures, *merged.rates]
    for rule in every:
        where = str(rule.origin)
        if rule.sid in seen:
            errors.append(f"{where}: rule {rule.sid}: duplicate sid (also at {seen[rule.sid]})")
        seen.setdefault(rule.sid, where)
    if errors:
        raise RulesError(errors)

    reports: dict[str, FileReport] = {}
    from_files: dict[tuple[int, int], SignatureRule] = {}
    for path in dict.fromkeys(rule_paths):  # each file once, in order
        rules, report = load_rules_file(path, merged.variables, merged.policy, snort3)
        reports[report.file] = report
        for rule in rules:
            key = (rule.gid, rule.sid)
            if rule.sid in seen:
                _duplicate(reports, rule, f"rules.yaml has sid {rule.sid} ({seen[rule.sid]})")
                continue
            old = from_files.get(key)
            if old is not None:
                if rule.rev > old.rev:
                    from_files[key] = rule
                    _duplicate(reports, old, f"replaced by rev {rule.rev} at {rule.origin}")
                else:
                    _duplicate(reports, rule, f"rev {old.rev} already loaded at {old.origin}")
                continue
            from_files[key] = rule
    if from_files:
        merged = replace(merged, signatures=merged.signatures + tuple(from_files.values()))
    merged = replace(merged, sources=merged.sources + tuple(reports))
    return LoadReport(
        merged,
        tuple(str(p) for p in paths),
        tuple(reports.values()),
        time.perf_counter() - started,
    )


def _duplicate(reports: Mapping[str, FileReport], rule: SignatureRule, why: str) -> None:
    report = reports[rule.origin.file]
    report.loaded -= 1
    report.add_skip(
        "invalid: duplicate sid", "invalid", f"{rule.origin}: rule {rule.sid}: duplicate sid: {why}"
    )
