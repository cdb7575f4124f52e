"""Why a Suricata/Snort rule was not loaded: invalid, or valid but not supported here.

Both carry a short, stable ``reason`` (counted by ``check-rules``, e.g.
``"unsupported keyword 'xbits'"``) and a longer ``detail`` for the log line.
:class:`RuleInvalid` is a rule Suricata itself would reject; the engine
reports it and loads the rest of the file, as Suricata does.
:class:`RuleUnsupported` is a well-formed rule that uses something this engine
cannot honour; it is skipped whole, never half-applied. This module holds no
parsing logic.
"""

from __future__ import annotations


class RuleLoadError(ValueError):
    kind = "not loaded"

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail or reason
        super().__init__(self.detail)


class RuleInvalid(RuleLoadError):  # noqa: N818 - reads as the reason it names
    """The rule is malformed (Suricata would refuse it too)."""

    kind = "invalid"


class RuleUnsupported(RuleLoadError):  # noqa: N818 - reads as the reason it names
    """The rule is well-formed but needs a keyword, protocol or construct this engine lacks."""

    kind = "unsupported"
