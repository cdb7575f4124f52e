"""Issue 7, point 5, in the kernel: the block-set DROP never drops allowlisted traffic.

The engine never blocks allowlisted hosts (``tests/test_never_lock_out.py``);
here the kernel's side of it: whatever is in the block ipset (an ``ipset add``
by hand, entries from before the allowlist changed), a packet from or to an
allowlisted network passes the DROP and is still queued for inspection.

- real traffic (ping and TCP, IPv4 and IPv6) through a router namespace with
  the firewall installed and nobody on the queue (``--queue-bypass``): an
  allowlisted source in the block set passes, a blocked source outside the
  allowlist is dropped, and replies from a blocked host to an allowlisted one
  pass (destination allowlisting), while the same replies to a host outside
  the allowlist are dropped;
- an allowlist update lets a blocked host through at once;
- ``inline-ips run`` installs the firewall with the rules' allowlist; a
  reload (:meth:`Worker._do_reload`) makes the kernel allowlist follow the
  rules file, a broken file leaves it as it was, and only the worker that
  owns it (the first queue's, with ``--workers N``) writes it; the
  replacement is atomic: a reader polling the sets while they are replaced
  over and over only ever sees the old or the new contents, never an empty
  or half-filled set;
- ``inline-ips cleanup`` removes the allowlist sets (and a replacement set an
  interrupted update left) with everything else;
- the rule list: the only DROP is the first rule and carries the allowlist
  exemptions for source and destination.

Namespaces start with ``al`` (``tests.netns`` prefixes the test's pid) and
are always deleted.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips import runner
from inline_ips.firewall import commands
from inline_ips.firewall import iptables as fw
from inline_ips.firewall.allowlist import cidrs
from inline_ips.firewall.iptables import FirewallConfig, install, status, update_allowlist
from inline_ips.rules.addresses import AddressSet, parse_addresses
from inline_ips.rules.loader import load_rule_files
from inline_ips.runner import RunOptions, Worker
from tests.firewall.test_iptables import (
    A4,
    A6,
    B4,
    B6,
    everything,
    in_netns,
    require_tools,
    routed,
    rules,
    start_in_netns,
)
from tests.netns import netns, run

CFG = FirewallConfig()
ALLOW_TEXT = "[10.99.1.0/30, fd99:1::/126]"  # holds the client's first address, A4 / A6
ALLOW = parse_addresses(ALLOW_TEXT)
MGMT = {4: A4, 6: A6}  # the client's allowlisted address
OTHER = {4: "10.99.1.5", 6: "fd99:1::5"}  # the same client's second address, outside the allowlist
SERVER = {4: B4, 6: B6}
PORT = 2222


# -- CIDRs of an allowlist ---------------------------------------------------------------------


def test_cidrs_cover_the_allowlist_exactly() -> None:
    assert cidrs(None) == ([], [])
    assert cidrs(ALLOW) == (["10.99.1.0/30"], ["fd99:1::/126"])
    assert cidrs(parse_addresses("[10.0.0.1-10.0.0.6, 192.0.2.7]")) == (
        ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32", "192.0.2.7/32"],
        [],
    )
    # hash:net refuses /0: "any" (and the complement of a list) is written as /1 halves.
    assert cidrs(parse_addresses("any")) == (["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"])
    assert cidrs(parse_addresses("![0.0.0.0/1, ::/1]")) == (["128.0.0.0/1"], ["8000::/1"])


# -- the rule list -----------------------------------------------------------------------------


@pytest.fixture
def ns() -> Iterator[str]:
    require_tools()
    with netns("al") as names:
        yield names["al"]


def _built_rules(v: int) -> list[tuple[str, list[tuple[str, dict[str, list[str]]]]]]:
    return [
        (r.target.name, [(m.name, m.get_all_parameters()) for m in r.matches])
        for r in fw._filter_rules(v, CFG)
    ]


@pytest.mark.parametrize("v", [4, 6])
def test_the_drop_rule_carries_the_allowlist_exemption(ns: str, v: int) -> None:
    in_netns(ns, install, CFG, ALLOW)  # a set match is resolved by name: the sets must exist
    built = in_netns(ns, _built_rules, v)
    targets = [t for t, _ in built]
    assert targets == ["DROP", "RETURN", "NFQUEUE"]  # the drop first, before bypass and queue
    assert built[0][1] == [
        ("set", {"match-set": [f"inline_ips_block{v}", "src"]}),
        ("set", {"match-set": ["!", f"inline_ips_allow{v}", "src"]}),
        ("set", {"match-set": ["!", f"inline_ips_allow{v}", "dst"]}),
    ]
    # ... and so it is in the kernel: the exemption in the one DROP rule, the queue after it.
    listed = [line for line in rules(ns, v=v) if line.startswith("-A INLINE_IPS")]
    drops = [line for line in listed if line.endswith("-j DROP")]
    assert drops == [listed[0]]
    assert f"! --match-set inline_ips_allow{v} src" in drops[0]
    assert f"! --match-set inline_ips_allow{v} dst" in drops[0]
    assert listed[-1].startswith("-A INLINE_IPS -j NFQUEUE")


# -- real traffic --------------------------------------------------------------------------------


@pytest.fixture
def al_router() -> Iterator[dict[str, str]]:
    """a (client, with a second address outside the allowlist) - r (router) - b (server)."""
    with routed("ala", "alr", "alb") as names:
        run("ip", "-n", names["a"], "addr", "add", f"{OTHER[4]}/24", "dev", "eth0")
        run("ip", "-n", names["a"], "addr", "add", f"{OTHER[6]}/64", "dev", "eth0", "nodad")
        ready_r, ready_w = os.pipe()
        stop_r, stop_w = os.pipe()
        server = start_in_netns(names["b"], _echo_server, ready_w, stop_r)
        try:
            assert select.select([ready_r], [], [], 10)[0], "the TCP server did not start"
            for v in (4, 6):  # the topology works, and neighbour discovery is done before any timing
                for src in (MGMT[v], OTHER[v]):
                    ping = ("ping", "-c", "1", "-W", "3", "-I", src, SERVER[v])
                    assert run(*ping, ns=names["a"], check=False).returncode == 0, (src, SERVER[v])
            yield names
        finally:
            os.write(stop_w, b"s")
            server.result()
            for fd in (ready_r, ready_w, stop_r, stop_w):
                os.close(fd)


def _echo_server(ready_fd: int, stop_fd: int) -> int:
    """Echo what each TCP connection sends, IPv4 and IPv6 on one socket, until told to stop."""
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", PORT))
    srv.listen(16)
    os.write(ready_fd, b"r")
    served = 0
    while True:
        readable = select.select([srv.fileno(), stop_fd], [], [], 60)[0]
        if stop_fd in readable or not readable:
            srv.close()
            return served
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall(conn.recv(100))
                served += 1
            except OSError:
                pass


def _tcp_echo(src: str, dst: str) -> bool:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.5)
        try:
            s.bind((src, 0))
            s.connect((dst, PORT))
            s.sendall(b"mgmt")
            return s.recv(100) == b"mgmt"
        except OSError:
            return False


def reaches(client: str, src: str, dst: str) -> bool:
    """A ping and a TCP exchange from ``src`` (an address of the client) to ``dst``: True if both work."""
    ping = run("ping", "-c", "1", "-W", "1", "-I", src, dst, ns=client, check=False).returncode == 0
    return ping and in_netns(client, _tcp_echo, src, dst)


def unreachable(client: str, src: str, dst: str) -> bool:
    """Neither a ping nor a TCP exchange gets through."""
    ping = run("ping", "-c", "1", "-W", "1", "-I", src, dst, ns=client, check=False).returncode == 0
    return not ping and not in_netns(client, _tcp_echo, src, dst)


def block_by_hand(router: str, *addresses: str) -> None:
    """What an operator may do, or a set kept from before the allowlist changed: no timeout, permanent."""
    for a in addresses:
        run("ipset", "add", f"inline_ips_block{6 if ':' in a else 4}", a, ns=router)


@pytest.mark.slow
@pytest.mark.parametrize("v", [4, 6])
def test_a_blocked_allowlisted_source_still_passes(al_router: dict[str, str], v: int) -> None:
    a, r = al_router["a"], al_router["r"]
    in_netns(r, install, CFG, ALLOW)
    assert reaches(a, MGMT[v], SERVER[v]) and reaches(a, OTHER[v], SERVER[v])  # installed, nothing blocked
    block_by_hand(r, MGMT[v], OTHER[v])
    assert reaches(a, MGMT[v], SERVER[v])  # allowlisted: the DROP does not apply
    assert unreachable(a, OTHER[v], SERVER[v])  # the control: blocked and not allowlisted
    assert run("ipset", "test", f"inline_ips_block{v}", MGMT[v], ns=r, check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("v", [4, 6])
def test_replies_from_a_blocked_host_reach_an_allowlisted_one(al_router: dict[str, str], v: int) -> None:
    """Destination allowlisting: a management host can still talk to a host that got blocked."""
    a, r = al_router["a"], al_router["r"]
    in_netns(r, install, CFG, ALLOW)
    block_by_hand(r, SERVER[v])  # the server's packets (the replies) now meet the DROP
    assert reaches(a, MGMT[v], SERVER[v])  # replies to an allowlisted address pass
    assert unreachable(a, OTHER[v], SERVER[v])  # replies to anyone else are dropped


@pytest.mark.slow
def test_an_allowlist_update_frees_a_blocked_host_at_once(al_router: dict[str, str]) -> None:
    a, r = al_router["a"], al_router["r"]
    in_netns(r, install, CFG, ALLOW)
    block_by_hand(r, OTHER[4], OTHER[6])
    assert unreachable(a, OTHER[4], SERVER[4]) and unreachable(a, OTHER[6], SERVER[6])
    wider = parse_addresses("[10.99.1.0/24, fd99:1::/64]")
    assert in_netns(r, update_allowlist, CFG, wider) == (1, 1)
    assert reaches(a, OTHER[4], SERVER[4]) and reaches(a, OTHER[6], SERVER[6])  # still in the block set
    assert in_netns(r, update_allowlist, CFG, ALLOW) == (1, 1)
    assert unreachable(a, OTHER[4], SERVER[4])


# -- reload ------------------------------------------------------------------------------------


def _rules_file(path: Path, allow: list[str] | None) -> None:
    text = "signatures:\n  - {sid: 1, msg: x, proto: tcp, dst_port: 9, action: drop}\n"
    if allow is not None:
        text = "allowlist:\n" + "".join(f"  - {a}\n" for a in allow) + text
    path.write_text(text)


def _reloads(path: str) -> list[list[str]]:
    """Install from the file; after each change of it, a reload by the owning worker (and one that is not)."""
    opts = RunOptions(rules=(path,), firewall=CFG, metrics=None)
    report = load_rule_files(opts.rules)
    install(CFG, report.ruleset.allowlist)
    owner = Worker(CFG.queue_num, opts, report, owns_allowlist=True)
    other = Worker(CFG.queue_num + 1, opts, report)
    seen: list[list[str]] = []

    def entries() -> None:
        with CFG.allowlist() as allow:
            seen.append(allow.entries())

    entries()
    _rules_file(Path(path), ["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"])
    owner._do_reload()
    entries()
    Path(path).write_text("allowlist:\n  - not-an-address\n")  # broken: the old allowlist stays
    owner._do_reload()
    assert owner.engine.stats["reloads_failed"] == 1
    entries()
    _rules_file(Path(path), ["203.0.113.0/24"])
    other._do_reload()  # not the owner: leaves the kernel alone
    entries()
    _rules_file(Path(path), None)  # no allowlist any more: the kernel's is emptied
    owner._do_reload()
    entries()
    return seen


def test_reload_makes_the_kernel_allowlist_follow_the_rules(ns: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _rules_file(path, ["10.99.1.0/30", "fd99:1::/126"])
    first, reloaded, after_broken, after_other, emptied = in_netns(ns, _reloads, str(path))
    assert first == ["10.99.1.0/30", "fd99:1::/126"]
    assert reloaded == ["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"]
    assert after_broken == reloaded
    assert after_other == reloaded
    assert emptied == []
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == [  # no replacement set left behind
        "inline_ips_block4",
        "inline_ips_block6",
        "inline_ips_allow4",
        "inline_ips_allow6",
    ]


class _Installed(Exception):  # noqa: N818 - not an error: how the fake install reports back
    pass


def _fake_install(cfg: FirewallConfig, allowlist: AddressSet | None = None) -> None:
    raise _Installed(cidrs(allowlist))


def _run_until_install(path: str) -> tuple[list[str], list[str]]:
    """``inline-ips run`` up to its firewall install, which reports the allowlist it was given."""
    try:
        runner.run(RunOptions(rules=(path,), firewall=CFG, metrics=None))
    except _Installed as e:
        result: tuple[list[str], list[str]] = e.args[0]
        return result
    raise AssertionError("run() returned without installing the firewall")


def test_run_installs_the_allowlist_of_the_rules(
    ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "install", _fake_install)  # inherited by the forked child
    path = tmp_path / "rules.yaml"
    _rules_file(path, ["10.99.1.0/30", "fd99:1::/126"])
    assert in_netns(ns, _run_until_install, str(path)) == (["10.99.1.0/30"], ["fd99:1::/126"])


_OWNERS: list[tuple[int, bool]] = []


def _record_owner(self: Worker) -> None:  # stands in for Worker.run: no queue is bound
    _OWNERS.append((self.queue_num, self.owns_allowlist))


def _children(path: str, cfg: FirewallConfig) -> list[tuple[int, bool]]:
    """What each ``--workers N`` child would be: its queue and whether it writes the allowlist."""
    opts = RunOptions(rules=(path,), firewall=cfg, metrics=None)
    report = load_rule_files(opts.rules)
    for q in range(cfg.queue_num, cfg.queue_num + cfg.queues):
        _recv, send = multiprocessing.Pipe(duplex=False)
        runner._child(q, opts, report, send)
    return _OWNERS


def test_with_several_workers_only_the_first_queue_writes_the_allowlist(
    ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Worker, "run", _record_owner)  # inherited by the forked child
    path = tmp_path / "rules.yaml"
    _rules_file(path, ["10.99.1.0/30"])
    cfg = FirewallConfig(queue_num=3, queues=3)
    assert in_netns(ns, _children, str(path), cfg) == [(3, True), (4, False), (5, False)]


def _big(prefix4: str, prefix6: str, n: int) -> str:
    # Every other address: n separate /32s (and /128s), so filling a set takes a while.
    parts = (f"{prefix4}.{i // 128}.{2 * (i % 128)}, {prefix6}::{2 * i:x}" for i in range(n))
    return "[" + ",".join(parts) + "]"


OLD_N, NEW_N = 300, 500


def _watch(stop_fd: int) -> tuple[set[tuple[int, int]], int]:
    """Poll the entry counts of both allowlist sets until told to stop."""
    seen: set[tuple[int, int]] = set()
    polls = 0
    with CFG.allowlist() as allow:
        while not select.select([stop_fd], [], [], 0)[0]:
            info = allow.info()
            seen.add((info["inline_ips_allow4"]["entries"], info["inline_ips_allow6"]["entries"]))
            polls += 1
    return seen, polls


def _replace_repeatedly(rounds: int) -> float:
    old = parse_addresses(_big("10.1", "2001:db8:1", OLD_N))
    new = parse_addresses(_big("10.2", "2001:db8:2", NEW_N))
    started = time.monotonic()
    for _ in range(rounds):
        assert update_allowlist(CFG, new) == (NEW_N, NEW_N)
        assert update_allowlist(CFG, old) == (OLD_N, OLD_N)
    return time.monotonic() - started


@pytest.mark.slow
def test_the_allowlist_is_never_empty_or_partial_while_it_is_replaced(ns: str) -> None:
    in_netns(ns, install, CFG, parse_addresses(_big("10.1", "2001:db8:1", OLD_N)))
    stop_r, stop_w = os.pipe()
    watcher = start_in_netns(ns, _watch, stop_r)
    try:
        took = in_netns(ns, _replace_repeatedly, 3)
    finally:
        os.write(stop_w, b"s")
        seen, polls = watcher.result()
        os.close(stop_r)
        os.close(stop_w)
    assert polls > 50 and took > 0.2  # the reader really ran while the sets were being filled
    # Only ever the whole old or the whole new contents (the v4 and v6 sets are swapped one
    # after the other, so for a moment one family is new and the other old).
    assert seen <= {(OLD_N, OLD_N), (NEW_N, OLD_N), (NEW_N, NEW_N), (OLD_N, NEW_N)}, sorted(seen)
    assert (NEW_N, NEW_N) in seen


# -- cleanup -----------------------------------------------------------------------------------


def test_cleanup_removes_the_allowlist_sets(ns: str) -> None:
    before = everything(ns)
    in_netns(ns, install, CFG, ALLOW)
    assert in_netns(ns, status, CFG)["installed"] is True
    # What an update killed between creating its replacement set and the swap leaves behind.
    run("ipset", "create", "inline_ips_allow6_new", "hash:net", "family", "inet6", ns=ns)
    lines = in_netns(ns, commands.cleanup, CFG)
    assert lines[-3:] == [
        "destroyed ipset inline_ips_allow4 (1 entry)",
        "destroyed ipset inline_ips_allow6 (1 entry)",
        "destroyed ipset inline_ips_allow6_new (0 entries)",
    ]
    assert everything(ns) == before  # no rule, chain or set of ours left
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == []
    assert in_netns(ns, commands.cleanup, CFG) == []


def test_a_foreign_set_of_the_allowlists_name_fails_the_install_and_is_kept(ns: str) -> None:
    before = everything(ns)
    run("ipset", "create", "inline_ips_allow6", "hash:ip", "family", "inet6", ns=ns)

    def attempt() -> str:
        with pytest.raises(fw.FirewallError) as e:
            install(CFG, ALLOW)
        return str(e.value)

    assert "inline_ips_allow6 exists but is hash:ip" in in_netns(ns, attempt)
    # The three sets this install created are gone again (rolled back); the foreign one stays.
    assert run("ipset", "list", "-n", ns=ns).stdout.split() == ["inline_ips_allow6"]
    assert {k: v for k, v in everything(ns).items() if k != "sets"} == {
        k: v for k, v in before.items() if k != "sets"
    }
