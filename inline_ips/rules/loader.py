"""Load the rule files named on the command line into one RuleSet.

Dispatches by file type: ``.yaml``/``.yml`` go to the rules.yaml loader.
Suricata/Snort ``.rules`` files (given directly or through ``include:``) are
reported as not loaded by this version, with the file named, never silently
ignored. Errors from all files are gathered into one :class:`RulesError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inline_ips.rules.model import RateRule, RuleSet, SignatureRule
from inline_ips.rules.yaml_loader import RulesError, load_rules_yaml


@dataclass(frozen=True, slots=True)
class LoadReport:
    ruleset: RuleSet
    # (file, reason) for every rule file that was named but not loaded.
    not_loaded: tuple[tuple[str, str], ...] = ()
    files: tuple[str, ...] = field(default=())


RULES_LANGUAGE_PENDING = "Suricata/Snort .rules files are not loaded by this version yet"


def load_rule_files(paths: Sequence[str | Path], extra_vars: Mapping[str, str] | None = None) -> LoadReport:
    if not paths:
        raise RulesError(["no rule files given"])
    errors: list[str] = []
    merged = RuleSet()
    not_loaded: list[tuple[str, str]] = []
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
            not_loaded.extend((inc, RULES_LANGUAGE_PENDING) for inc in rs.includes)
        elif suffix == ".rules":
            if not path.is_file():
                errors.append(f"{path}: no such file")
            else:
                not_loaded.append((str(path), RULES_LANGUAGE_PENDING))
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
    return LoadReport(merged, tuple(not_loaded), tuple(str(p) for p in paths))
