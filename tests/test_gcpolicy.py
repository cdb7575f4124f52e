"""Tests for inline_ips.gcpolicy, and the property it relies on: no reference cycles in engine state.

The collector is process-wide, so every test that changes it puts it back.
The cycle tests run with the collector off and count what one explicit
collection finds: anything it frees would, under gcpolicy, have waited for
the next reload.
"""

from __future__ import annotations

import functools
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips import gcpolicy
from inline_ips.engine import Engine
from inline_ips.lab import synth
from inline_ips.rules.loader import load_rule_files
from tests.corpus import CORPUS, require_corpus

ROOT = Path(__file__).resolve().parent.parent
ET_DIR = CORPUS / "rulesets" / "et-open-suricata5-2024-04-21"


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the collector's thresholds, state and frozen set as they were."""
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        gc.enable() if enabled else gc.disable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_configure_keeps_young_collections_and_stops_full_ones(collector: None) -> None:
    gc.enable()
    gcpolicy.configure()
    assert gc.get_threshold()[2] == gcpolicy.NO_AUTOMATIC_FULL
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        # Default thresholds would run a full collection several times over this much allocation.
        refs = [_cycle() for _ in range(300_000)]
        keep = [[i] for i in range(300_000)]  # long-lived objects, as a flow table grows
    finally:
        gc.callbacks.remove(record)
    assert seen.count(0) > 100 and 1 in seen
    assert 2 not in seen
    # Short-lived cycles are still freed by the young collections alone.
    assert sum(r() is None for r in refs) > 0.99 * len(refs)
    assert len(keep) == 300_000


def test_settle_frees_cycles_and_freezes_the_rest(collector: None) -> None:
    gc.disable()
    ref = _cycle()
    survivor = [object()]
    freed, took = gcpolicy.settle()
    assert ref() is None and freed >= 2 and took >= 0
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(survivor)  # frozen, not untracked: a later unfreeze sees it again
    # A second settle unfreezes first, so what became garbage meanwhile is freed too.
    again = _cycle()
    gc.freeze()
    gcpolicy.settle()
    assert again() is None


@functools.cache
def _traffic() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
    """Every kind of flow state (HTTP, TLS, DNS, bulk TCP, floods, scans); then more benign traffic."""
    first = sorted(
        synth.browsing(pages=10)
        + synth.dns_lookups(count=20)
        + synth.tls_sessions(count=5)
        + synth.bulk_download(megabytes=1)
        + synth.http_attacks()
        + synth.syn_flood(count=500)
        + synth.dns_amplification(count=50)
        + synth.port_scan(range(1, 100))
        + synth.icmp_flood(count=200)
    )
    return first, sorted(synth.browsing(seed=8, pages=5) + synth.dns_lookups(seed=9, count=10))


def _cycles_left(files: list[Path]) -> tuple[int, int]:
    """Objects in cycles after judging traffic, and after a reload dropped the first rules."""
    traffic, more = _traffic()  # Scapy's objects are cyclic: built before the count starts
    gc.disable()
    engine = Engine(load_rule_files(files, {}).ruleset)
    gc.collect()  # the loader's own garbage (parse errors keep tracebacks) is not the engine's
    for ts, raw in traffic:
        engine.process(raw, ts)
    during = gc.collect()
    new_rules = load_rule_files(files, {}).ruleset
    gc.collect()
    engine.reload(new_rules)  # the old compiled rules go, and every flow's cache of them
    for ts, raw in more:
        engine.process(raw, ts)
    del engine
    return during, gc.collect()


def test_engine_state_has_no_cycles_with_the_default_rules(collector: None) -> None:
    assert _cycles_left([ROOT / "rules.yaml"]) == (0, 0)


@pytest.mark.corpus
@pytest.mark.slow
def test_engine_state_has_no_cycles_with_et_open(collector: None) -> None:
    require_corpus(ET_DIR)
    assert _cycles_left([ROOT / "rules.yaml", *sorted(ET_DIR.glob("*.rules"))]) == (0, 0)
