"""The engine's blocklist: add, expiry, extension and the capped size."""

from __future__ import annotations

import pytest

from inline_ips.blocklist import PURGE_INTERVAL, Blocklist

A, B, C = 0x0A000001, 0x0A000002, 0x0A000003


def test_add_and_expire() -> None:
    bl = Blocklist()
    assert bl.add(4, A, 100.0, 60) is True
    assert len(bl) == 1
    assert bl.is_blocked(4, A, 100.0) is True
    assert bl.is_blocked(4, A, 159.999) is True
    assert bl.is_blocked(4, B, 120.0) is False
    assert bl.is_blocked(4, A, 160.0) is False  # expired exactly at now + seconds
    assert len(bl) == 0
    assert bl.stats == {"added": 1, "refused_full": 0, "expired": 1}


def test_families_are_apart() -> None:
    bl = Blocklist()
    bl.add(4, A, 0.0, 10)
    assert bl.is_blocked(6, A, 1.0) is False
    assert bl.is_blocked(4, A, 1.0) is True


@pytest.mark.parametrize(
    ("adds", "left_at_10"),
    [
        ([(0.0, 60)], 50.0),
        ([(0.0, 60), (5.0, 10)], 50.0),  # a shorter block does not cut an existing one short
        ([(0.0, 60), (5.0, 100)], 95.0),  # a longer one extends it
        ([(0.0, 5), (8.0, 5)], 3.0),  # re-added after it ran out
    ],
)
def test_extend(adds: list[tuple[float, int]], left_at_10: float) -> None:
    bl = Blocklist()
    for now, seconds in adds:
        assert bl.add(4, A, now, seconds) is True
    assert bl.entries(10.0) == [(4, A, left_at_10)]
    assert bl.stats["added"] == len(adds)


def test_cap_refuses_and_counts() -> None:
    bl = Blocklist(max_entries=2)
    assert bl.add(4, A, 0.0, 100) is True
    assert bl.add(6, A, 0.0, 10) is True
    assert bl.add(4, C, 1.0, 100) is False
    assert bl.is_blocked(4, C, 1.0) is False
    assert len(bl) == 2
    assert bl.stats["refused_full"] == 1
    # Extending an entry already present is not refused when full.
    assert bl.add(4, A, 2.0, 500) is True
    assert bl.stats["refused_full"] == 1
    # Once an entry has expired, its room is reused.
    assert bl.add(4, C, 20.0, 100) is True
    assert bl.stats == {"added": 4, "refused_full": 1, "expired": 1}
    assert sorted((v, a) for v, a, _ in bl.entries(20.0)) == [(4, A), (4, C)]


def test_entries_purges_expired() -> None:
    bl = Blocklist()
    bl.add(4, A, 0.0, 10)
    bl.add(4, B, 0.0, 30)
    assert bl.entries(20.0) == [(4, B, 10.0)]
    assert len(bl) == 1
    assert bl.stats["expired"] == 1


def test_a_full_table_looks_for_expired_entries_once_per_interval() -> None:
    bl = Blocklist(max_entries=2)
    bl.add(4, A, 0.0, 1)
    bl.add(6, A, 0.0, 100)
    assert bl.add(4, C, 0.5, 100) is False  # full; the purge finds nothing expired yet
    # A's block ran out at 1.0, but within PURGE_INTERVAL of the last purge nothing is scanned:
    assert bl.add(4, C, 0.5 + PURGE_INTERVAL / 2, 100) is False
    assert bl.stats["refused_full"] == 2
    assert bl.add(4, C, 0.5 + PURGE_INTERVAL, 100) is True  # the next purge frees A's room
    assert bl.stats["expired"] == 1
