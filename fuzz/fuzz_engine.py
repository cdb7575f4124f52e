"""Fuzz target: the whole verdict path, ``Engine`` with the default ``rules.yaml``, on raw packets.

Does: split each input into records (:func:`fuzz.common.records`), each one
IP datagram whose tag byte advances the clock (tag x 5 ms, so rate windows,
flow timeouts and fragment expiry are reached), and judge them with one
long-lived engine, as inline: flows, fragments, rate windows and the
blocklist carry over from input to input, and their bounds are what the
fuzzer's RSS limit checks. The engine's ``raise_errors`` is set: inline,
``process`` turns any exception into an accepted packet and a counter (fail
open), which would hide the bug from the fuzzer. Every verdict
must be a valid one: a known action and reason, and for a rewrite,
replacements inside the datagram.

Does not: load ET Open (the default rules and their app-layer parsers are
what runs per packet here; the ET set's regexes are measured by
``bench/redos_bench.py``), or touch the network. A finding may depend on the
inputs judged before it; the failure message carries the datagram.
"""

from __future__ import annotations

from fuzz.common import fuzz, instrumented, records

with instrumented(__name__ == "__main__"):
    from fuzz.seeds import DEFAULT_RULES
    from inline_ips.engine import Engine, Result
    from inline_ips.rules.loader import load_rule_files
    from inline_ips.verdict import Action, Reason

ENGINE = Engine(load_rule_files([DEFAULT_RULES]).ruleset)
ENGINE.raise_errors = True
STEP = 0.005  # seconds per unit of a record's tag
_clock = [1_700_000_000.0]


class BadVerdictError(AssertionError):
    """The engine returned something that is not a verdict the NFQUEUE side can carry out."""


def check(res: Result, raw: bytes) -> None:
    v = res.verdict
    if not isinstance(v.action, Action) or not isinstance(v.reason, Reason):
        raise BadVerdictError(f"verdict {v!r} for {raw.hex()}")
    if v.action == Action.REWRITE:
        for off, new in v.replacements:
            if off < 0 or off + len(new) > len(raw):
                raise BadVerdictError(
                    f"replacement at {off}+{len(new)} outside a {len(raw)}-byte datagram {raw.hex()}"
                )
    if v.action == Action.BLOCK and v.block_seconds <= 0:
        raise BadVerdictError(f"block for {v.block_seconds} s for {raw.hex()}")


def test_one_input(data: bytes) -> None:
    for tag, raw in records(data):
        _clock[0] += tag * STEP
        check(ENGINE.process(raw, _clock[0]), raw)


if __name__ == "__main__":
    fuzz(test_one_input)
