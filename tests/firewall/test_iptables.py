"""Install, re-install, remove and roll back the inline-ips firewall in throw-away namespaces.

Every firewall call runs in a forked child that has entered a namespace made
by ``tests.netns`` (and checks that it really left the host namespace), so
nothing here touches the host's iptables or ipsets. The traffic tests build
a - r - b with veth pairs created directly inside the namespaces and route
through r; no process listens on the queue unless the test starts one.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import select
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, ParamSpec, TypeVar

import pytest

from inline_ips.firewall import iptables as fw
from inline_ips.firewall.iptables import FirewallConfig, FirewallError, install, remove, status
from inline_ips.respond.block import parse_address
from tests.netns import netns, require_root_netns, run

P = ParamSpec("P")
T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# -- running code inside a namespace -------------------------------------------------------


def _enter_netns(ns: str) -> None:
    """In a forked child: switch to namespace ``ns``; refuse to go on if still in the host's."""
    host = os.stat("/proc/self/ns/net").st_ino
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)
    if os.stat("/proc/self/ns/net").st_ino == host:
        raise RuntimeError(f"still in the host network namespace after setns({ns})")
    iptc = sys.modules.get("iptc")
    # python-iptables caches table handles; one opened in the parent would point at the host.
    if iptc is not None and (iptc.Table._cache or iptc.Table6._cache):
        raise RuntimeError("python-iptables has cached tables from the parent process")


class Pending(Generic[T]):
    """A function running in a forked child inside a namespace; ``result()`` waits for it."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    def result(self, timeout: float = 30) -> T:
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    os.kill(self.pid, signal.SIGKILL)
                    raise TimeoutError(f"namespace child {self.pid} did not finish in {timeout} s")
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            os.waitpid(self.pid, 0)
        if not chunks:
            raise RuntimeError("namespace child exited without a result")
        ok, value = pickle.loads(b"".join(chunks))
        if not ok:
            raise AssertionError(f"in the namespace:\n{value}")
        result: T = value
        return result


def start_in_netns(ns: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Pending[T]:
    """Fork; the child enters ``ns``, runs ``fn`` and pipes back its result or traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(r)
            try:
                _enter_netns(ns)
                out: tuple[bool, object] = (True, fn(*args, **kwargs))
            except BaseException:
                out = (False, traceback.format_exc())
            try:
                data = pickle.dumps(out)
            except Exception:
                data = pickle.dumps((False, traceback.format_exc()))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
        finally:
            os._exit(0)
    os.close(w)
    return Pending(pid, r)


def in_netns(ns: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return start_in_netns(ns, fn, *args, **kwargs).result()


def require_tools() -> None:
    require_root_netns()
    for tool in ("iptables-legacy", "ip6tables-legacy", "ipset"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


@pytest.fixture
def ns() -> Iterator[str]:
    require_tools()
    with netns("fw") as names:
        yield names["fw"]


def rules(ns: str, table: str = "filter", v: int = 4) -> list[str]:
    return run(f"ip{'6' if v == 6 else ''}tables-legacy", "-t", table, "-S", ns=ns).stdout.splitlines()


def everything(ns: str) -> dict[str, list[str]]:
    """-S of every table we use, both families, plus the ipset names."""
    out = {f"{t}{v}": rules(ns, t, v) for v in (4, 6) for t in ("filter", "mangle", "security")}
    out["sets"] = run("ipset", "list", "-n", ns=ns).stdout.split()
    return out


POLICIES = ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"]
MANGLE_POLICIES = ["-P PREROUTING ACCEPT", *POLICIES, "-P POSTROUTING ACCEPT"]


def filter_rules(v: int, queue: str = "--queue-num 0 --queue-bypass") -> list[str]:
    return [
        f"-A INLINE_IPS -m set --match-set inline_ips_block{v} src "
        f"-m set ! --match-set inline_ips_allow{v} src -m set ! --match-set inline_ips_allow{v} dst -j DROP",
        "-A INLINE_IPS -m connmark --mark 0x40000000/0x40000000 -j RETURN",
        f"-A INLINE_IPS -j NFQUEUE {queue}",
    ]


MARK_RULE = (
    "-A INLINE_IPS_MARK -m mark --mark 0x40000000/0x40000000 "
    "-j CONNMARK --save-mark --nfmask 0x40000000 --ctmask 0x40000000"
)


def add_foreign_rules(ns: str) -> None:
    """Rules and a chain that belong to someone else; inline-ips must leave them alone."""
    run("iptables-legacy", "-A", "FORWARD", "-s", "192.0.2.1", "-j", "ACCEPT", ns=ns)
    run("iptables-legacy", "-N", "OTHER", ns=ns)
    run("iptables-legacy", "-A", "OTHER", "-j", "RETURN", ns=ns)
    run("ip6tables-legacy", "-A", "FORWARD", "-s", "2001:db8::1", "-j", "ACCEPT", ns=ns)
    run("iptables-legacy", "-t", "mangle", "-A", "POSTROUTING", "-o", "lo", "-j", "ACCEPT", ns=ns)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chain": ""},
        {"chain": "has space"},
        {"chain": "A" * 24},  # the _MARK chain would exceed 28 characters
        {"chain": "FORWARD"},
        {"queue_num": 70000},
        {"queues": 0},
        {"queue_num": 65535, "queues": 2},
        {"bypass_mark": 0},
        {"block_set4": "x" * 32},
        {"block_set4": "same", "block_set6": "same"},
        {"allow_set4": "x" * 28},  # no room for the replacement set's "_new"
        {"allow_set6": ""},
        {"allow_set4": "same", "allow_set6": "same"},
        {"allow_set4": "inline_ips_block4"},
        {"block_set6": "inline_ips_allow4_new"},  # the allowlist's replacement set
        {"block_max": 0},
        {"hook_forward": False, "hook_input": False},
    ],
)
def test_config_rejects_invalid_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FirewallConfig(**kwargs)


def test_config_defaults() -> None:
    cfg = FirewallConfig()
    assert (cfg.queue_num, cfg.queues, cfg.queue_bypass, cfg.chain, cfg.mark_chain) == (
        0,
        1,
        True,
        "INLINE_IPS",
        "INLINE_IPS_MARK",
    )
    assert (cfg.block_set4, cfg.block_set6, cfg.block_max, cfg.bypass_mark) == (
        "inline_ips_block4",
        "inline_ips_block6",
        65536,
        0x40000000,
    )
    assert (cfg.allow_set4, cfg.allow_set6) == ("inline_ips_allow4", "inline_ips_allow6")


# -- install / remove ------------------------------------------------------------------------


def test_install_creates_exactly_the_expected_rules(ns: str) -> None:
    add_foreign_rules(ns)
    in_netns(ns, install, FirewallConfig())
    assert rules(ns, "filter", 4) == [
        *POLICIES,
        "-N INLINE_IPS",
        "-N OTHER",
        "-A FORWARD -j INLINE_IPS",  # first, before the rules that were there
        "-A FORWARD -s 192.0.2.1/32 -j ACCEPT",
        *filter_rules(4),
        "-A OTHER -j RETURN",
    ]
    assert rules(ns, "filter", 6) == [
        *POLICIES,
        "-N INLINE_IPS",
        "-A FORWARD -j INLINE_IPS",
        "-A FORWARD -s 2001:db8::1/128 -j ACCEPT",
        *filter_rules(6),
    ]
    assert rules(ns, "mangle", 4) == [
        *MANGLE_POLICIES,
        "-N INLINE_IPS_MARK",
        "-A POSTROUTING -j INLINE_IPS_MARK",
        "-A POSTROUTING -o lo -j ACCEPT",
        MARK_RULE,
    ]
    assert rules(ns, "mangle", 6) == [
        *MANGLE_POLICIES,
        "-N INLINE_IPS_MARK",
        "-A POSTROUTING -j INLINE_IPS_MARK",
        MARK_RULE,
    ]
    sets = run("ipset", "list", "-t", ns=ns).stdout
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == [
        "inline_ips_block4",
        "inline_ips_block6",
        "inline_ips_allow4",
        "inline_ips_allow6",
    ]
    headers = re.findall(
        r"Type: (\S+)\nRevision: \d+\nHeader: family (\S+) .*?maxelem (\d+)( timeout \d+)?", sets
    )
    assert headers == [
        ("hash:ip", "inet", "65536", " timeout 0"),
        ("hash:ip", "inet6", "65536", " timeout 0"),
        ("hash:net", "inet", "65536", ""),  # no allowlist given: empty
        ("hash:net", "inet6", "65536", ""),
    ]
    st = in_netns(ns, status, FirewallConfig())
    assert st["installed"] is True


def test_install_twice_changes_nothing(ns: str) -> None:
    add_foreign_rules(ns)
    in_netns(ns, install, FirewallConfig())
    first = everything(ns)
    in_netns(ns, install, FirewallConfig())
    assert everything(ns) == first


def test_reinstall_keeps_blocked_addresses(ns: str) -> None:
    cfg = FirewallConfig()

    def block_then_reinstall() -> list[tuple[str, int]]:
        install(cfg)
        with cfg.blocklist() as kb:
            assert kb.add(*parse_address("198.51.100.7"), 300)
        install(cfg)
        with cfg.blocklist() as kb:
            return kb.entries()

    assert [a for a, _ in in_netns(ns, block_then_reinstall)] == ["198.51.100.7"]


def test_install_dedupes_and_converges_to_the_config(ns: str) -> None:
    in_netns(ns, install, FirewallConfig(hook_input=True, queues=2))
    run("iptables-legacy", "-A", "FORWARD", "-j", "INLINE_IPS", ns=ns)  # a stray second jump
    assert rules(ns, "security", 4) == [
        *POLICIES,
        "-N INLINE_IPS_MARK",
        "-A INPUT -j INLINE_IPS_MARK",
        MARK_RULE,
    ]
    in_netns(ns, install, FirewallConfig())
    assert rules(ns, "filter", 4) == [
        *POLICIES,
        "-N INLINE_IPS",
        "-A FORWARD -j INLINE_IPS",
        *filter_rules(4),
    ]
    assert rules(ns, "security", 4) == POLICIES
    assert rules(ns, "security", 6) == POLICIES


def test_remove_leaves_only_foreign_rules(ns: str) -> None:
    add_foreign_rules(ns)
    before = everything(ns)
    cfg = FirewallConfig(hook_input=True)
    in_netns(ns, install, cfg)
    assert everything(ns) != before
    lines = in_netns(ns, remove, FirewallConfig())  # a cleanup without --input still finds INPUT
    assert "removed jump INPUT -> INLINE_IPS (ipv4 filter)" in lines
    assert "removed chain INLINE_IPS_MARK (ipv6 security)" in lines
    assert "destroyed ipset inline_ips_block6 (0 entries)" in lines
    assert everything(ns) == before
    st = in_netns(ns, status, cfg)
    assert st["installed"] is False
    assert st["sets"] == {
        name: {"exists": False}
        for name in ("inline_ips_block4", "inline_ips_block6", "inline_ips_allow4", "inline_ips_allow6")
    }


def test_remove_when_nothing_is_installed(ns: str) -> None:
    add_foreign_rules(ns)
    before = everything(ns)
    assert in_netns(ns, remove, FirewallConfig()) == []
    assert in_netns(ns, remove, FirewallConfig()) == []
    assert everything(ns) == before


def test_remove_keeps_a_chain_that_a_foreign_rule_uses(ns: str) -> None:
    in_netns(ns, install, FirewallConfig())
    run("iptables-legacy", "-N", "MINE", ns=ns)
    run("iptables-legacy", "-A", "MINE", "-j", "INLINE_IPS", ns=ns)
    lines = in_netns(ns, remove, FirewallConfig())
    assert any(line.startswith("flushed chain INLINE_IPS but kept it (ipv4 filter)") for line in lines)
    # Kept but empty, so it returns at once; the set it referenced could go.
    assert rules(ns, "filter", 4) == [*POLICIES, "-N INLINE_IPS", "-N MINE", "-A MINE -j INLINE_IPS"]
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == []


def test_queue_balance_and_no_bypass(ns: str) -> None:
    in_netns(ns, install, FirewallConfig(queue_num=4, queues=2))
    assert rules(ns)[-1] == "-A INLINE_IPS -j NFQUEUE --queue-balance 4:5 --queue-bypass"
    assert rules(ns, v=6)[-1] == "-A INLINE_IPS -j NFQUEUE --queue-balance 4:5 --queue-bypass"
    in_netns(ns, install, FirewallConfig(queue_num=7, queue_bypass=False))
    assert rules(ns)[-1] == "-A INLINE_IPS -j NFQUEUE --queue-num 7"
    assert rules(ns).count("-A FORWARD -j INLINE_IPS") == 1


def test_ipv4_only(ns: str) -> None:
    in_netns(ns, install, FirewallConfig())
    in_netns(ns, install, FirewallConfig(ipv6=False))
    assert rules(ns, "filter", 6) == POLICIES
    assert rules(ns, "mangle", 6) == MANGLE_POLICIES
    assert rules(ns, "filter", 4)[-1] == "-A INLINE_IPS -j NFQUEUE --queue-num 0 --queue-bypass"
    assert in_netns(ns, status, FirewallConfig(ipv6=False))["installed"] is True


def test_failed_install_leaves_nothing_behind(ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    add_foreign_rules(ns)
    before = everything(ns)
    real = fw._mark_rules

    def broken(v: int, cfg: FirewallConfig, table: str) -> list[Any]:
        # The IPv6 mangle step, after IPv4 and the IPv6 filter chain are committed, is
        # refused by the kernel at commit: TCPMSS without "-p tcp" fails its checkentry.
        if v != 6:
            return real(v, cfg, table)
        rule = fw._rule(6)
        rule.create_target("TCPMSS").clamp_mss_to_pmtu = ""
        return [rule]

    monkeypatch.setattr(fw, "_mark_rules", broken)  # inherited by the forked child

    def attempt() -> str:
        with pytest.raises(FirewallError) as e:
            install(FirewallConfig())
        return str(e.value)

    message = in_netns(ns, attempt)
    assert "ipv6 mangle" in message
    assert "xt_CONNMARK" in message  # names what the kernel may lack
    assert everything(ns) == before


def test_failed_install_keeps_a_foreign_set(ns: str) -> None:
    before_rules = everything(ns)
    run("ipset", "create", "inline_ips_block6", "hash:net", "family", "inet6", ns=ns)

    def attempt() -> str:
        with pytest.raises(FirewallError) as e:
            install(FirewallConfig())
        return str(e.value)

    assert "inline_ips_block6 exists but is hash:net" in in_netns(ns, attempt)
    # The IPv4 set this install created is gone again; the foreign one stays.
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == ["inline_ips_block6"]
    assert {k: v for k, v in everything(ns).items() if k != "sets"} == {
        k: v for k, v in before_rules.items() if k != "sets"
    }


# -- real traffic: a - r - b -----------------------------------------------------------------

A4, B4 = "10.99.1.2", "10.99.2.2"
A6, B6 = "fd99:1::2", "fd99:2::2"


@pytest.fixture
def router() -> Iterator[dict[str, str]]:
    """Namespaces a, r, b; r routes 10.99.1.0/24 + fd99:1::/64 <-> 10.99.2.0/24 + fd99:2::/64."""
    with routed("a", "r", "b") as names:
        yield names


@contextmanager
def routed(a_name: str, r_name: str, b_name: str) -> Iterator[dict[str, str]]:
    """The a - r - b topology of :func:`router` with namespaces of the given names, keyed a, r, b."""
    require_tools()
    with netns(a_name, r_name, b_name) as real:
        names = {"a": real[a_name], "r": real[r_name], "b": real[b_name]}
        r = names["r"]
        for n in names.values():
            # No duplicate address detection: addresses are usable at once, pings do not race it.
            run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", ns=n)
        for side, net in (("a", 1), ("b", 2)):
            host = names[side]
            # Both ends are created inside our namespaces, so the names cannot clash with anyone's.
            run(
                "ip",
                "-n",
                host,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"r{side}",
                "netns",
                r,
            )
            run("ip", "-n", host, "addr", "add", f"10.99.{net}.2/24", "dev", "eth0")
            run("ip", "-n", host, "addr", "add", f"fd99:{net}::2/64", "dev", "eth0", "nodad")
            run("ip", "-n", host, "link", "set", "eth0", "up")
            run("ip", "-n", host, "route", "add", "default", "via", f"10.99.{net}.1")
            run("ip", "-n", host, "-6", "route", "add", "default", "via", f"fd99:{net}::1")
            run("ip", "-n", r, "addr", "add", f"10.99.{net}.1/24", "dev", f"r{side}")
            run("ip", "-n", r, "addr", "add", f"fd99:{net}::1/64", "dev", f"r{side}", "nodad")
            run("ip", "-n", r, "link", "set", f"r{side}", "up")
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", ns=r)
        yield names


def pings(ns: str, dst: str, wait: int = 1, count: int = 1) -> bool:
    res = run("ping", "-c", str(count), "-i", "0.2", "-W", str(wait), dst, ns=ns, check=False)
    return res.returncode == 0


@pytest.mark.slow
def test_traffic_passes_without_listener_and_blocks_drop_in_kernel(router: dict[str, str]) -> None:
    a, r = router["a"], router["r"]
    cfg = FirewallConfig()
    assert pings(a, B4, wait=2) and pings(a, B6, wait=2)  # the topology works
    in_netns(r, install, cfg)
    # No process listens on queue 0: --queue-bypass lets the traffic through.
    assert pings(a, B4) and pings(a, B6)

    def block(addr: str, seconds: int) -> bool:
        with cfg.blocklist() as kb:
            return kb.add(*parse_address(addr), seconds)

    def unblock(addr: str) -> bool:
        with cfg.blocklist() as kb:
            return kb.delete(*parse_address(addr))

    assert in_netns(r, block, A4, 60)
    assert not pings(a, B4)
    assert pings(a, B6)  # only a's IPv4 address is blocked
    assert in_netns(r, block, A6, 60)
    assert not pings(a, B6)
    assert in_netns(r, unblock, A4) and in_netns(r, unblock, A6)
    assert pings(a, B4) and pings(a, B6)

    assert in_netns(r, block, A4, 1)
    added = time.monotonic()
    assert not pings(a, B4)
    time.sleep(max(0.0, added + 2.2 - time.monotonic()))
    assert pings(a, B4)
    in_netns(r, remove, cfg)
    assert pings(a, B4)


def _listen(queue: int, mark: int, ready_fd: int, stop_fd: int) -> int:
    """Accept every queued packet, setting ``mark`` on it; count them until told to stop."""
    from netfilterqueue import NetfilterQueue

    seen = 0

    def judge(pkt: Any) -> None:
        nonlocal seen
        seen += 1
        if mark:
            pkt.set_mark(mark)
        pkt.accept()

    q = NetfilterQueue()
    q.bind(queue, judge)
    try:
        os.write(ready_fd, b"r")
        fd = q.get_fd()
        while True:
            readable = select.select([fd, stop_fd], [], [], 10)[0]
            if stop_fd in readable or not readable:
                return seen
            q.run(block=False)
    finally:
        q.unbind()


@pytest.mark.slow
@pytest.mark.parametrize(("mark", "queued"), [(0x40000000, 1), (0, 6)])
def test_bypass_mark_is_saved_to_the_connection(router: dict[str, str], mark: int, queued: int) -> None:
    """With the bypass bit on the first packet, the rest of the flow (both ways) skips the queue."""
    a, r = router["a"], router["r"]
    cfg = FirewallConfig()
    in_netns(r, install, cfg)
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    listener = start_in_netns(r, _listen, cfg.queue_num, mark, ready_w, stop_r)
    try:
        assert select.select([ready_r], [], [], 10)[0], "the queue listener did not start"
        assert pings(a, B4, count=3)  # 3 requests + 3 replies, one ICMP "connection"
    finally:
        os.write(stop_w, b"s")
        seen = listener.result()
        for fd in (ready_r, ready_w, stop_r, stop_w):
            os.close(fd)
    assert seen == queued
