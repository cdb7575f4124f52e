"""What ``inline-ips cleanup`` and ``inline-ips block`` print, run in a throw-away namespace."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from inline_ips.firewall import commands
from inline_ips.firewall.iptables import FirewallConfig, FirewallError, install
from inline_ips.rules.addresses import parse_addresses
from tests.firewall.test_iptables import in_netns, require_tools
from tests.netns import netns, run

CFG = FirewallConfig()


@pytest.fixture
def ns() -> Iterator[str]:
    require_tools()
    with netns("cmd") as names:
        yield names["cmd"]


@pytest.fixture
def installed(ns: str) -> str:
    in_netns(ns, install, CFG)
    return ns


def test_cleanup_lists_what_it_removed(installed: str) -> None:
    def scenario() -> tuple[list[str], list[str]]:
        commands.block_add(CFG, "192.0.2.1", 60)
        return commands.cleanup(CFG), commands.cleanup(CFG)

    first, second = in_netns(installed, scenario)
    assert first == [
        "removed jump FORWARD -> INLINE_IPS (ipv4 filter)",
        "removed chain INLINE_IPS (ipv4 filter)",
        "removed jump POSTROUTING -> INLINE_IPS_MARK (ipv4 mangle)",
        "removed chain INLINE_IPS_MARK (ipv4 mangle)",
        "removed jump FORWARD -> INLINE_IPS (ipv6 filter)",
        "removed chain INLINE_IPS (ipv6 filter)",
        "removed jump POSTROUTING -> INLINE_IPS_MARK (ipv6 mangle)",
        "removed chain INLINE_IPS_MARK (ipv6 mangle)",
        "destroyed ipset inline_ips_block4 (1 entry)",
        "destroyed ipset inline_ips_block6 (0 entries)",
        "destroyed ipset inline_ips_allow4 (0 entries)",
        "destroyed ipset inline_ips_allow6 (0 entries)",
    ]
    assert second == []  # the CLI prints "nothing of inline-ips was installed"
    assert run("ipset", "list", "-n", ns=installed).stdout.split() == []


def test_block_add_list_del(installed: str) -> None:
    def scenario() -> list[object]:
        out: list[object] = [
            commands.block_list(CFG),
            commands.block_add(CFG, "198.51.100.10", 120),
            commands.block_add(CFG, " 2001:DB8::10 ", 3000000),
            commands.block_add(CFG, "::ffff:198.51.100.9", 60),
            commands.block_list(CFG),
            commands.block_del(CFG, "198.51.100.10"),
            commands.block_del(CFG, "198.51.100.10"),
            commands.block_del(CFG, "2001:db8::10"),
            commands.block_list(CFG),
        ]
        return out

    (empty, add4, add6, add_mapped, listed, del4, del_again, del6, rest) = in_netns(installed, scenario)
    assert empty == []  # the CLI prints "the blocklist is empty"
    assert add4 == "blocked 198.51.100.10 for 120 s in ipset inline_ips_block4"
    assert add6 == (
        "blocked 2001:db8::10 for 2147483 s (the kernel's maximum; 3000000 s asked) "
        "in ipset inline_ips_block6"
    )
    assert add_mapped == "blocked 198.51.100.9 for 60 s in ipset inline_ips_block4"
    assert isinstance(listed, list) and len(listed) == 3
    assert [line.split()[0] for line in listed] == ["198.51.100.9", "198.51.100.10", "2001:db8::10"]
    assert re.fullmatch(r"198\.51\.100\.10  (119|120) s left", listed[1])
    assert del4 == "unblocked 198.51.100.10 (removed from ipset inline_ips_block4)"
    assert del_again == "198.51.100.10 was not blocked"
    assert del6 == "unblocked 2001:db8::10 (removed from ipset inline_ips_block6)"
    assert isinstance(rest, list) and [line.split()[0] for line in rest] == ["198.51.100.9"]


def test_block_list_shows_permanent_entries(installed: str) -> None:
    run("ipset", "add", "inline_ips_block6", "2001:db8::99", "timeout", "0", ns=installed)  # added by hand
    assert in_netns(installed, commands.block_list, CFG) == ["2001:db8::99  permanent"]


def test_block_add_refuses_allowlisted_and_bad_input(installed: str) -> None:
    allow = parse_addresses("[10.0.0.0/8,2001:db8:1::/48]")

    def scenario() -> list[str]:
        out = []
        for address, seconds in (("10.1.2.3", 60), ("2001:db8:1::5", 60), ("nonsense", 60), ("192.0.2.1", 0)):
            with pytest.raises(ValueError) as e:
                commands.block_add(CFG, address, seconds, allowlist=allow)
            out.append(f"{type(e.value).__name__}: {e.value}")
        out.append(commands.block_add(CFG, "192.0.2.1", 60, allowlist=allow))
        return out

    refused4, refused6, bad, zero, ok = in_netns(installed, scenario)
    assert refused4 == (
        "BlockRefusedError: refusing to block 10.1.2.3: it is in the allowlist "
        "([10.0.0.0/8,2001:db8:1::/48]), which the engine never blocks"
    )
    assert refused6.startswith("BlockRefusedError: refusing to block 2001:db8:1::5")
    assert bad == "ValueError: not a single IPv4 or IPv6 address: 'nonsense'"
    assert zero == "ValueError: the block time must be at least 1 second, got 0"
    assert ok == "blocked 192.0.2.1 for 60 s in ipset inline_ips_block4"
    assert "10.1.2.3" not in run("ipset", "list", ns=installed).stdout


def test_block_add_when_the_set_is_full(ns: str) -> None:
    small = FirewallConfig(block_max=1)

    def scenario() -> str:
        install(small)
        commands.block_add(small, "192.0.2.1", 60)
        with pytest.raises(FirewallError) as e:
            commands.block_add(small, "192.0.2.2", 60)
        return str(e.value)

    assert in_netns(ns, scenario) == "ipset inline_ips_block4 is full: 192.0.2.2 not blocked in the kernel"


def test_block_commands_when_not_installed(ns: str) -> None:
    def scenario() -> list[str]:
        out = []
        for call in (
            lambda: commands.block_list(CFG),
            lambda: commands.block_add(CFG, "192.0.2.1", 60),
            lambda: commands.block_del(CFG, "192.0.2.1"),
        ):
            with pytest.raises(FirewallError) as e:
                call()
            out.append(str(e.value))
        return out

    messages = in_netns(ns, scenario)
    assert (
        messages
        == [
            "the blocklist ipsets inline_ips_block4 and inline_ips_block6 do not exist: "
            "inline-ips is not installed in this network namespace"
        ]
        * 3
    )
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == []  # nothing was created on the way
