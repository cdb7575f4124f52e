"""A four-namespace lab network: client, attacker and server around a router.

What it does: builds (and tears down) network namespaces joined by veth
pairs, with the router in the middle::

    client   10.77.1.10/24  fd77:1::10/64 --+
    attacker 10.77.2.66/24  fd77:2::66/64 --+-- router (.1 / ::1 on each side)
    server   10.77.3.80/24  fd77:3::80/64 --+

Every name carries the lab's prefix (``iips`` by default, ``t<pid>`` in the
tests): namespaces are ``<prefix>-client``, ``<prefix>-attacker``,
``<prefix>-router`` and ``<prefix>-server``; interfaces are ``<prefix>-c0``
(leaf side) and ``<prefix>-rc`` (router side), with ``a``/``s`` for the
attacker and server links. Each veth is created directly inside the lab's
namespaces, so the host namespace's links, addresses, routes and firewall are
never touched; two labs with different prefixes can run at once because the
same addresses live in separate namespaces.

The router forwards IPv4 and IPv6 and has reverse-path filtering off
(``rp_filter=0``), like a router without uRPF: spoofed sources from the
attacker side (``hping3 --rand-source``, fake DNS resolvers) are forwarded to
the server, which is what the IPS in the router has to cope with. The router
has a blackhole default route, so the server's answers to forged addresses
vanish silently (as they would on the internet) instead of coming back as
ICMP "network unreachable".

What it does not do: start services (:mod:`inline_ips.lab.services`), send
traffic (:mod:`inline_ips.lab.attacks`) or run the IPS; the IPS, when used,
binds NFQUEUE inside the router namespace. Needs root and iproute2.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

ROLES = ("client", "attacker", "router", "server")
LEAVES = ("client", "attacker", "server")

# Subnet number and host number of each leaf: 10.77.<net>.<host>, fd77:<net>::<host>.
_NET = {"client": 1, "attacker": 2, "server": 3}
_HOST = {"client": 10, "attacker": 66, "server": 80}

CLIENT_IP = "10.77.1.10"
ATTACKER_IP = "10.77.2.66"
SERVER_IP = "10.77.3.80"
SERVER_NET = "10.77.3.0/24"
CLIENT_IP6 = "fd77:1::10"
ATTACKER_IP6 = "fd77:2::66"
SERVER_IP6 = "fd77:3::80"

# Interface names are at most 15 characters (IFNAMSIZ - 1); the longest is
# "<prefix>-rc", so the prefix may have up to 12. No dashes: "<prefix>-" must
# not also be the start of another lab's prefix.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,12}")


@dataclass(frozen=True)
class Lab:
    """Names and addresses of one lab; creating it changes nothing (see :func:`up`)."""

    prefix: str = "iips"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(f"lab prefix must be 1-12 letters, digits or '_': {self.prefix!r}")

    def ns(self, role: str) -> str:
        """The namespace of a role: ``<prefix>-<role>``."""
        _check_role(role)
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.ns(r) for r in ROLES)

    def ip(self, leaf: str) -> str:
        """IPv4 address of a client, attacker or server."""
        return f"10.77.{_net(leaf)}.{_HOST[leaf]}"

    def ip6(self, leaf: str) -> str:
        return f"fd77:{_net(leaf)}::{_HOST[leaf]}"

    def gateway(self, leaf: str) -> str:
        """The router's IPv4 address on the leaf's link."""
        return f"10.77.{_net(leaf)}.1"

    def gateway6(self, leaf: str) -> str:
        return f"fd77:{_net(leaf)}::1"

    def leaf_iface(self, leaf: str) -> str:
        """The interface inside the leaf's namespace (``<prefix>-c0``, ``-a0``, ``-s0``)."""
        return f"{self.prefix}-{_letter(leaf)}0"

    def router_iface(self, leaf: str) -> str:
        """The router's interface towards a leaf (``<prefix>-rc``, ``-ra``, ``-rs``)."""
        return f"{self.prefix}-r{_letter(leaf)}"

    @property
    def client_ip(self) -> str:
        return self.ip("client")

    @property
    def attacker_ip(self) -> str:
        return self.ip("attacker")

    @property
    def server_ip(self) -> str:
        return self.ip("server")

    @property
    def workdir(self) -> Path:
        """Scratch directory for this lab's services (web root, logs); removed by :func:`down`."""
        return Path(tempfile.gettempdir()) / f"inline-ips-lab-{self.prefix}"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown lab role {role!r}; expected one of {', '.join(ROLES)}")


def _net(leaf: str) -> int:
    if leaf not in _NET:
        raise ValueError(f"not a leaf of the lab: {leaf!r}; expected one of {', '.join(LEAVES)}")
    return _NET[leaf]


def _letter(leaf: str) -> str:
    _net(leaf)
    return leaf[0]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _sysctl(lab: Lab, role: str, *settings: str) -> None:
    # /proc/sys/net is per namespace: this only changes the lab's namespace.
    exec_in(lab, role, ["sysctl", "-q", "-w", *settings], check=True)


def list_netns() -> set[str]:
    """Names of all network namespaces (``ip netns list``)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def leftovers(lab: Lab) -> list[str]:
    """This lab's namespaces that exist now (empty after :func:`down`)."""
    existing = list_netns()
    return [n for n in lab.namespaces if n in existing]


def exists(lab: Lab) -> bool:
    """True when all four namespaces of the lab exist."""
    return len(leftovers(lab)) == len(ROLES)


def up(lab: Lab) -> None:
    """Create the lab; a stale lab with the same prefix is torn down first."""
    down(lab)
    try:
        _build(lab)
    except BaseException:
        down(lab)
        raise


def _build(lab: Lab) -> None:
    router = lab.ns("router")
    for role in ROLES:
        _ip("netns", "add", lab.ns(role))
        _ip("-n", lab.ns(role), "link", "set", "lo", "up")
        # No IPv6 duplicate address detection (link-local addresses included):
        # addresses are usable at once instead of ~2 s later, and the lab's
        # addresses cannot collide with anything.
        _sysctl(lab, role, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    # New namespaces inherit IPv4 "all"/"default" settings from the host
    # (net.core.devconf_inherit_init_net=0), so set what the router needs
    # explicitly; "default" first so the veths created below start with it.
    _sysctl(
        lab,
        "router",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    )
    for leaf in LEAVES:
        ns, rif, lif = lab.ns(leaf), lab.router_iface(leaf), lab.leaf_iface(leaf)
        # Created inside the router namespace, peer straight into the leaf's:
        # neither end ever exists in the host namespace.
        _ip("-n", router, "link", "add", rif, "type", "veth", "peer", "name", lif, "netns", ns)
        _ip("-n", router, "addr", "add", f"{lab.gateway(leaf)}/24", "dev", rif)
        # nodad: usable at once instead of after ~2 s of duplicate detection.
        _ip("-n", router, "-6", "addr", "add", f"{lab.gateway6(leaf)}/64", "dev", rif, "nodad")
        _ip("-n", router, "link", "set", rif, "up")
        _ip("-n", ns, "addr", "add", f"{lab.ip(leaf)}/24", "dev", lif)
        _ip("-n", ns, "-6", "addr", "add", f"{lab.ip6(leaf)}/64", "dev", lif, "nodad")
        _ip("-n", ns, "link", "set", lif, "up")
        _ip("-n", ns, "route", "add", "default", "via", lab.gateway(leaf))
        _ip("-n", ns, "-6", "route", "add", "default", "via", lab.gateway6(leaf))
        # The effective rp_filter is max(all, interface): both must be 0.
        _sysctl(lab, "router", f"net.ipv4.conf.{rif}.rp_filter=0")
    # Replies to forged sources (SYN-ACKs to --rand-source addresses) are
    # dropped quietly, as the internet would lose them.
    _ip("-n", router, "route", "add", "blackhole", "default")
    _ip("-n", router, "-6", "route", "add", "blackhole", "default")


def down(lab: Lab) -> None:
    """Delete the lab's namespaces (and so its veths) and kill processes left in them.

    Always safe: missing namespaces are skipped, errors are ignored, and only
    this lab's exact namespace names are touched.
    """
    existing = list_netns()
    for ns in lab.namespaces:
        if ns not in existing:
            continue
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False, timeout=30
        ).stdout.split()
        for pid in pids:
            # Everything in a lab namespace was started for the lab (services,
            # floods that outlived their caller); a dead pid is fine.
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)
    shutil.rmtree(lab.workdir, ignore_errors=True)


def _wrap(lab: Lab, role: str, argv: list[str]) -> list[str]:
    # "ip netns exec" setns()es and then execs argv, so the pid of the
    # resulting process is the command's own (terminate() reaches it).
    return ["ip", "netns", "exec", lab.ns(role), *argv]


def exec_in(lab: Lab, role: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run argv inside a role's namespace and wait; captures text output, no check, 120 s timeout.

    Keyword arguments go to :func:`subprocess.run` and override those defaults.
    """
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    check = bool(kw.pop("check", False))
    return cast("subprocess.CompletedProcess[str]", subprocess.run(_wrap(lab, role, argv), check=check, **kw))


def popen_in(lab: Lab, role: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
    """Start argv inside a role's namespace (text mode unless overridden)."""
    kw.setdefault("text", True)
    return cast("subprocess.Popen[str]", subprocess.Popen(_wrap(lab, role, argv), **kw))


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0, kill_timeout: float | None = None) -> None:
    """SIGTERM ``proc``, wait up to ``timeout`` s, then SIGKILL and wait; nothing if it has ended."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=kill_timeout)


class _Signals:
    """SIGTERM becomes KeyboardInterrupt inside the lab, and teardown is not interrupted."""

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.previous: dict[int, Any] = {}
        self.deferred: int | None = None

    def enter(self) -> None:
        if self.active:
            self.previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)

    def defer(self) -> None:
        """While tearing down, remember SIGINT/SIGTERM instead of raising mid-teardown."""
        if not self.active:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            prev = signal.signal(sig, self._remember)
            self.previous.setdefault(sig, prev)

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self.deferred = signum

    def restore(self) -> None:
        if not self.active:
            return
        for sig, prev in self.previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running_lab(lab: Lab | None = None) -> Iterator[Lab]:
    """Bring the lab up for the ``with`` block and always tear it down.

    Inside the block SIGTERM raises KeyboardInterrupt (when called from the
    main thread), so ``kill`` of the test or demo still removes the
    namespaces. A signal arriving during teardown is held until it is done.
    """
    lab = lab or Lab()
    sigs = _Signals()
    sigs.enter()
    try:
        up(lab)
        yield lab
    finally:
        sigs.defer()
        try:
            down(lab)
        finally:
            sigs.restore()
        if sigs.deferred is not None:
            raise KeyboardInterrupt(f"signal {sigs.deferred} during lab teardown")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
