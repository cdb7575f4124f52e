"""Fuzz target: the Suricata/Snort 3 rule language, from text to compiled rules.

Does: read each input as rule-file text (UTF-8, undecodable bytes replaced,
as :func:`~inline_ips.rules.suricata.loader.load_rules_file` reads files)
and load it with :func:`~inline_ips.rules.suricata.loader.load_rules_text`,
dialect detected as for a file, which must never raise: a bad rule is a
counted skip. Then each rule line once more through
:func:`~inline_ips.rules.suricata.parser.parse_rule` and
:func:`~inline_ips.rules.suricata.compile.compile_rule` in both dialects,
which may raise only their documented errors (``RuleSyntaxError``,
``RuleInvalid``, ``RuleUnsupported``, each with a non-empty reason). Every
counted skip must carry its kind (``invalid`` or ``unsupported``).

Does not: build a detection engine from what loads (the engine fuzz target
runs the default rules), or apply an IPS policy.
"""

from __future__ import annotations

from fuzz.common import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from inline_ips.rules.classification import DEFAULT_CLASSTYPES
    from inline_ips.rules.suricata.compile import CompileContext, compile_rule
    from inline_ips.rules.suricata.errors import RuleLoadError
    from inline_ips.rules.suricata.loader import load_rules_text
    from inline_ips.rules.suricata.parser import RuleSyntaxError, parse_rule, split_rules
    from inline_ips.rules.yaml_loader import DEFAULT_VARS

CONTEXTS = {
    snort3: CompileContext(dict(DEFAULT_VARS), DEFAULT_CLASSTYPES, "fuzz.rules", snort3)
    for snort3 in (False, True)
}


class UndocumentedError(AssertionError):
    """The rule loader failed in a way its contract does not allow."""


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _, report = load_rules_text(text, "fuzz.rules", DEFAULT_VARS)
    for reason, n in report.skipped.items():
        if not reason or n <= 0 or report.kinds.get(reason) not in ("invalid", "unsupported"):
            raise UndocumentedError(f"skip {reason!r} x{n} has kind {report.kinds.get(reason)!r}")
    for line, rule_text, enabled in split_rules(text):
        for ctx in CONTEXTS.values():
            try:
                compile_rule(parse_rule(rule_text, line, enabled), ctx)
            except RuleSyntaxError as e:
                if not str(e):
                    raise UndocumentedError("RuleSyntaxError without a message") from e
            except RuleLoadError as e:
                if not e.reason:
                    raise UndocumentedError(f"{type(e).__name__} without a reason") from e


if __name__ == "__main__":
    fuzz(test_one_input)
