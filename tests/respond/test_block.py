"""The kernel blocklist (ipsets over netlink) in a throw-away namespace: add, delete, timeouts, limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from inline_ips.respond.block import (
    MAX_TIMEOUT,
    BlocklistError,
    KernelBlocklist,
    format_address,
    parse_address,
)
from tests.firewall.test_iptables import in_netns, require_tools
from tests.netns import netns, run

S4, S6 = "tblock4", "tblock6"


@pytest.fixture
def ns() -> Iterator[str]:
    require_tools()
    with netns("blk") as names:
        yield names["blk"]


def addr(text: str) -> tuple[int, int]:
    return parse_address(text)


# -- pure helpers ----------------------------------------------------------------------------


def test_parse_address() -> None:
    assert parse_address("192.0.2.1") == (4, 0xC0000201)
    assert parse_address(" 2001:db8::1 ") == (6, 0x20010DB8000000000000000000000001)
    assert parse_address("[2001:db8::1]") == (6, 0x20010DB8000000000000000000000001)
    assert parse_address("::ffff:192.0.2.1") == (4, 0xC0000201)  # mapped: the IPv4 packets it stands for
    for bad in ("", "192.0.2.0/24", "example.org", "1.2.3", "2001:db8::1::2"):
        with pytest.raises(ValueError, match="not a single IPv4 or IPv6 address"):
            parse_address(bad)


def test_format_address() -> None:
    assert format_address(4, 0xC0000201) == "192.0.2.1"
    assert format_address(6, 1) == "::1"
    with pytest.raises(ValueError):
        format_address(4, 2**32)


def test_constructor_checks_names() -> None:
    with pytest.raises(ValueError):
        KernelBlocklist("same", "same")
    with pytest.raises(ValueError):
        KernelBlocklist("a", "")
    with pytest.raises(ValueError):
        KernelBlocklist("a", "b", max_entries=0)


# -- in a namespace --------------------------------------------------------------------------


def test_ipsets_are_per_network_namespace(ns: str) -> None:
    """Measured: a set made in a namespace is invisible in the host's (listing there is read-only)."""

    def make() -> list[str]:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
        return run("ipset", "list", "-n").stdout.split()

    assert in_netns(ns, make) == [S4, S6]
    host = run("ipset", "list", "-n", check=False).stdout.split()
    assert S4 not in host and S6 not in host


def test_ensure_sets_creates_hash_ip_sets_with_timeouts_once(ns: str) -> None:
    def make() -> dict[str, dict[str, object]]:
        with KernelBlocklist(S4, S6, max_entries=1000) as kb:
            kb.ensure_sets()
            assert kb.add(*addr("192.0.2.9"), 60)
            kb.ensure_sets()  # idempotent, and keeps what is in the sets
            return kb.info()

    info = in_netns(ns, make)
    assert info[S4] == {
        "exists": True,
        "type": "hash:ip",
        "family": "inet",
        "entries": 1,
        "maxelem": 1000,
        "references": 0,
        "timeout": True,
    }
    assert info[S6]["family"] == "inet6" and info[S6]["entries"] == 0
    headers = run("ipset", "list", "-t", ns=ns).stdout
    assert "Header: family inet hashsize 1024 maxelem 1000 timeout 0" in headers
    assert "Header: family inet6 hashsize 1024 maxelem 1000 timeout 0" in headers


def test_ensure_sets_refuses_a_set_of_the_wrong_kind(ns: str) -> None:
    run("ipset", "create", S4, "hash:ip", ns=ns)  # no timeout support

    def make() -> str:
        with KernelBlocklist(S4, S6) as kb, pytest.raises(BlocklistError) as e:
            kb.ensure_sets()
        return str(e.value)

    assert "without timeout support" in in_netns(ns, make)


def test_add_delete_entries_both_families(ns: str) -> None:
    def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict[str, int], list[bool]]:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
            assert kb.add(*addr("198.51.100.20"), 100)
            assert kb.add(*addr("198.51.100.3"), 50)
            assert kb.add(*addr("2001:db8::7"), 200)
            assert kb.add(*addr("198.51.100.3"), 70)  # again: the new timeout replaces the old
            first = kb.entries()
            deleted = [kb.delete(*addr("198.51.100.20")), kb.delete(*addr("198.51.100.20"))]
            deleted.append(kb.delete(*addr("2001:db8::7")))
            return first, kb.entries(), dict(kb.stats), deleted

    first, after, stats, deleted = in_netns(ns, scenario)
    assert [a for a, _ in first] == ["198.51.100.3", "198.51.100.20", "2001:db8::7"]  # numeric order
    left = dict(first)
    assert 68 <= left["198.51.100.3"] <= 70
    assert 98 <= left["198.51.100.20"] <= 100
    assert 198 <= left["2001:db8::7"] <= 200
    assert [a for a, _ in after] == ["198.51.100.3"]
    assert deleted == [True, False, True]  # deleting what is not there is False, not an error
    assert stats == {"added": 4, "deleted": 2, "refused_full": 0, "errors": 0}
    members = run("ipset", "list", S4, ns=ns).stdout
    assert "198.51.100.3 timeout" in members


def test_entries_expire_with_their_timeout(ns: str) -> None:
    def scenario() -> tuple[list[str], list[str]]:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
            assert kb.add(*addr("203.0.113.1"), 1)
            assert kb.add(*addr("2001:db8::1"), 1)
            assert kb.add(*addr("203.0.113.2"), 30)
            before = [a for a, _ in kb.entries()]
            time.sleep(2.1)
            return before, [a for a, _ in kb.entries()]

    before, after = in_netns(ns, scenario)
    assert before == ["203.0.113.1", "203.0.113.2", "2001:db8::1"]
    assert after == ["203.0.113.2"]


def test_long_blocks_are_clamped_and_short_ones_refused(ns: str) -> None:
    def scenario() -> tuple[list[tuple[str, int]], dict[str, int], bool, bool]:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
            assert kb.add(*addr("203.0.113.5"), 10**9)
            zero = kb.add(*addr("203.0.113.6"), 0)  # 0 would be permanent in ipset
            out_of_range = kb.add(4, 2**32, 60)
            return kb.entries(), dict(kb.stats), zero, out_of_range

    entries, stats, zero, out_of_range = in_netns(ns, scenario)
    assert [a for a, _ in entries] == ["203.0.113.5"]
    assert MAX_TIMEOUT - 2 <= entries[0][1] <= MAX_TIMEOUT
    assert (zero, out_of_range) == (False, False)
    assert stats["errors"] == 2


def test_full_set_refuses_and_counts(ns: str) -> None:
    def scenario() -> tuple[list[bool], dict[str, int], str | None, list[str]]:
        warnings: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                warnings.append(record.getMessage())

        logging.getLogger("inline_ips.respond.block").addHandler(Keep(logging.WARNING))
        with KernelBlocklist(S4, S6, max_entries=2) as kb:
            kb.ensure_sets()
            results = [kb.add(*addr(f"192.0.2.{i}"), 60) for i in (1, 2, 3, 4)]
            results.append(kb.add(*addr("192.0.2.1"), 90))  # already there: still fine when full
            results.append(kb.add(*addr("2001:db8::1"), 60))  # the IPv6 set has its own room
            return results, dict(kb.stats), kb.last_error, warnings

    results, stats, last, warnings = in_netns(ns, scenario)
    assert results == [True, True, False, False, True, True]
    assert stats == {"added": 4, "deleted": 0, "refused_full": 2, "errors": 0}
    assert last == "ipset tblock4 is full: 192.0.2.4 not blocked in the kernel"
    # Logged, but not once per refused packet: the first refusal, then every 1000th.
    assert warnings == [
        "kernel blocklist: ipset tblock4 is full: 192.0.2.3 not blocked in the kernel (1 refused so far)"
    ]


def test_kernel_errors_are_counted_not_raised(ns: str) -> None:
    def scenario() -> tuple[bool, bool, dict[str, int], str | None]:
        kb = KernelBlocklist(S4, S6)  # sets never created
        added = kb.add(*addr("192.0.2.1"), 60)
        deleted = kb.delete(*addr("2001:db8::1"))
        return added, deleted, dict(kb.stats), kb.last_error

    added, deleted, stats, last = in_netns(ns, scenario)
    assert (added, deleted) == (False, False)
    assert stats == {"added": 0, "deleted": 0, "refused_full": 0, "errors": 2}
    assert last is not None and "2001:db8::1" in last


def test_flush_and_destroy_only_touch_our_sets(ns: str) -> None:
    run("ipset", "create", "someone_else", "hash:ip", ns=ns)
    run("ipset", "add", "someone_else", "192.0.2.200", ns=ns)

    def scenario() -> tuple[list[tuple[str, int]], dict[str, dict[str, object]]]:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
            assert kb.add(*addr("192.0.2.1"), 60)
            assert kb.add(*addr("2001:db8::2"), 60)
            kb.flush()
            flushed = kb.entries()
            kb.destroy()
            kb.destroy()  # nothing left: still fine
            return flushed, kb.info()

    flushed, info = in_netns(ns, scenario)
    assert flushed == []
    assert info == {S4: {"exists": False}, S6: {"exists": False}}
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == ["someone_else"]
    assert "192.0.2.200" in run("ipset", "list", "someone_else", ns=ns).stdout


def test_destroy_refuses_a_set_in_use(ns: str) -> None:
    def scenario() -> str:
        with KernelBlocklist(S4, S6) as kb:
            kb.ensure_sets()
            run("iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", S4, "src", "-j", "DROP")
            with pytest.raises(BlocklistError) as e:
                kb.destroy()
            return str(e.value)

    assert "an iptables rule still uses it" in in_netns(ns, scenario)


def test_socket_follows_the_namespace_it_was_opened_in(ns: str) -> None:
    """The netlink socket is opened lazily, so a blocklist made before entering the namespace works there."""
    kb = KernelBlocklist(S4, S6)  # constructed in the host: opens nothing

    def scenario() -> None:
        kb.ensure_sets()
        assert kb.add(4, 0xC0000201, 60)
        kb.close()

    in_netns(ns, scenario)
    assert "192.0.2.1" in run("ipset", "list", S4, ns=ns).stdout
