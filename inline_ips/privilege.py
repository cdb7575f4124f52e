"""Least privilege for ``inline-ips run``: what the process may keep, and dropping to it.

Does: :func:`drop_to` turns a root process into an unprivileged user that
keeps only ``CAP_NET_ADMIN`` (iptables through libiptc, ipset and NFQUEUE
over netlink, the queue's bind after a worker restart, removing the rules
at exit) and ``CAP_NET_RAW`` (libiptc opens a raw socket to talk to the
kernel; reject sends its RST and ICMP through raw sockets). In order:
``PR_SET_KEEPCAPS``, the bounding set reduced to those two, ambient
capabilities cleared, supplementary groups dropped, ``setresgid`` and
``setresuid`` to the user, ``capset`` to exactly those two (effective and
permitted, nothing inheritable), ``PR_SET_NO_NEW_PRIVS``; then it reads
``/proc/self/status`` back and raises :class:`PrivilegeError` unless the
uids, gids and every capability set are what was asked. It refuses to run
with more than one thread: ``capset`` changes only the calling thread, so
a thread started earlier would keep root's set (or, after the glibc-wide
``setresuid``, none at all).

:func:`check_capabilities` is for a start that is unprivileged from the
beginning (systemd's ``User=`` with ``AmbientCapabilities=``): it names what
is missing instead of letting iptables fail half-way.

:func:`files_as` lets root create or open a file with the user's own
permissions (fsuid and fsgid) before the drop: the EVE file, in the user's
log directory, is created as the user, and a file or symlink the user put
there cannot make root write (or chown) anything else.

Does not: open sockets or files for later (callers do that before the drop:
the metrics port, the EVE file, ``/proc/net/netfilter/nfnetlink_queue``,
which is ``0440 root``), chown anything, or manage user accounts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CAP_SETGID: Final = 6
CAP_SETUID: Final = 7
CAP_SETPCAP: Final = 8
CAP_NET_ADMIN: Final = 12
CAP_NET_RAW: Final = 13

CAP_NAMES: Final = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_NET_RAW: "CAP_NET_RAW"}
# What the engine needs after set-up (see the module docstring for why each).
KEEP: Final = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW)

# <linux/prctl.h>, <linux/capability.h>
PR_SET_KEEPCAPS: Final = 8
PR_CAPBSET_READ: Final = 23
PR_CAPBSET_DROP: Final = 24
PR_SET_NO_NEW_PRIVS: Final = 38
PR_CAP_AMBIENT: Final = 47
PR_CAP_AMBIENT_CLEAR_ALL: Final = 4
_LINUX_CAPABILITY_VERSION_3: Final = 0x20080522

_STATUS_FIELDS: Final = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class PrivilegeError(OSError):
    """The privileges could not be dropped (or are missing); the message says which and why."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A process's ids and capability sets, as ``/proc/<pid>/status`` shows them."""

    uids: tuple[int, int, int, int]  # real, effective, saved, filesystem
    gids: tuple[int, int, int, int]
    groups: tuple[int, ...]
    inheritable: int
    permitted: int
    effective: int
    bounding: int
    ambient: int
    no_new_privs: bool


def parse_status(text: str) -> Credentials:
    """The ids and capability masks in the text of a ``/proc/<pid>/status`` file."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    try:
        uids = tuple(int(x) for x in fields["Uid"].split())
        gids = tuple(int(x) for x in fields["Gid"].split())
        caps = {k: int(fields[k], 16) for k in _STATUS_FIELDS}
    except (KeyError, ValueError) as e:
        raise ValueError(f"not a /proc/<pid>/status text (missing or bad {e})") from e
    if len(uids) != 4 or len(gids) != 4:
        raise ValueError("Uid and Gid lines must have four fields")
    return Credentials(
        uids=(uids[0], uids[1], uids[2], uids[3]),
        gids=(gids[0], gids[1], gids[2], gids[3]),
        groups=tuple(int(x) for x in fields.get("Groups", "").split()),
        inheritable=caps["CapInh"],
        permitted=caps["CapPrm"],
        effective=caps["CapEff"],
        bounding=caps["CapBnd"],
        ambient=caps["CapAmb"],
        no_new_privs=fields.get("NoNewPrivs", "0") == "1",
    )


def read_credentials(pid: int | str = "self", thread: int | None = None) -> Credentials:
    """Credentials of a process (or one of its threads: capabilities are per thread)."""
    path = Path("/proc") / str(pid) / ("status" if thread is None else f"task/{thread}/status")
    return parse_status(path.read_text())


def cap_names(mask: int) -> str:
    """``CAP_NET_ADMIN,CAP_NET_RAW`` for a mask (unknown bits as numbers); ``none`` for 0."""
    names = [CAP_NAMES.get(bit, f"cap{bit}") for bit in range(64) if mask >> bit & 1]
    return ",".join(names) or "none"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: int
    gid: int


def lookup_user(name: str) -> User:
    """The account to drop to; PrivilegeError for an unknown name or for root itself."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise PrivilegeError(f"--user {name}: no such user") from None
    if pw.pw_uid == 0:
        raise PrivilegeError(f"--user {name}: that is root; name an unprivileged account")
    return User(name, pw.pw_uid, pw.pw_gid)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(libc: ctypes.CDLL, what: str, option: int, arg2: int = 0, arg3: int = 0) -> int:
    ret = int(
        libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0))
    )
    if ret < 0:
        err = ctypes.get_errno()
        raise PrivilegeError(err, f"prctl {what}: {os.strerror(err)}")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _capset(libc: ctypes.CDLL, effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(err, f"capset: {os.strerror(err)}")


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one of Linux 5.9+


def _threads() -> list[str]:
    return os.listdir("/proc/self/task")


def drop_to(user: User, keep: int = KEEP) -> Credentials:
    """Become ``user`` keeping only the capabilities in ``keep``; verify it; return what is in force.

    Must be called as root, from a process with a single thread. Raises
    PrivilegeError (the process is then in an undefined state: exit) when a
    step fails or the result read back from ``/proc/self/status`` is not
    exactly what was asked.
    """
    if os.geteuid() != 0:
        raise PrivilegeError(f"dropping to user {user.name} needs root (running as uid {os.geteuid()})")
    threads = _threads()
    if len(threads) != 1:
        # capset() is per thread: an earlier thread would keep root's capabilities.
        raise PrivilegeError(
            f"cannot drop privileges with {len(threads)} threads running (capabilities are per thread); "
            "drop before starting any thread"
        )
    libc = _libc()
    _prctl(libc, "PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 1)
    for cap in range(_last_cap() + 1):
        if not keep >> cap & 1 and _prctl(libc, "PR_CAPBSET_READ", PR_CAPBSET_READ, cap):
            _prctl(libc, f"PR_CAPBSET_DROP {cap}", PR_CAPBSET_DROP, cap)
    with contextlib.suppress(PrivilegeError):  # a kernel before 4.3 has no ambient set to clear
        _prctl(libc, "PR_CAP_AMBIENT_CLEAR_ALL", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    try:
        os.setgroups([])
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise PrivilegeError(e.errno, f"cannot switch to user {user.name}: {e.strerror}") from e
    _capset(libc, keep, keep, 0)
    _prctl(libc, "PR_SET_KEEPCAPS 0", PR_SET_KEEPCAPS, 0)
    # No setuid binary (modprobe, which python-iptables may run) can give anything back.
    _prctl(libc, "PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1)
    creds = read_credentials()
    problems = verify(creds, user.uid, user.gid, keep)
    if problems:
        raise PrivilegeError(f"dropping privileges to {user.name} did not take: {'; '.join(problems)}")
    return creds


@contextlib.contextmanager
def files_as(user: User | None) -> Iterator[None]:
    """Within the block, files are opened and created with ``user``'s permissions (and owned by it).

    Sets the calling thread's fsgid and fsuid (root's other ids stay, and so
    do its capabilities other than the file ones, which the kernel lifts
    while the fsuid is not 0) and restores them after. Needs CAP_SETUID and
    CAP_SETGID; PrivilegeError if the switch did not take. ``None``: as the
    process is (no --user), nothing changes.
    """
    if user is None:
        yield
        return
    libc = _libc()
    old_gid = int(libc.setfsgid(user.gid))
    old_uid = int(libc.setfsuid(user.uid))
    try:
        # setfsuid() reports no error: the value in force is what a second call returns.
        if int(libc.setfsuid(user.uid)) != user.uid or int(libc.setfsgid(user.gid)) != user.gid:
            raise PrivilegeError(
                f"cannot act as {user.name} (setfsuid/setfsgid refused: no CAP_SETUID, CAP_SETGID?)"
            )
        yield
    finally:
        libc.setfsuid(old_uid)
        libc.setfsgid(old_gid)


def verify(creds: Credentials, uid: int, gid: int, keep: int = KEEP) -> list[str]:
    """What differs between ``creds`` and "user uid/gid holding exactly ``keep``" (empty: as asked)."""
    problems = []
    if set(creds.uids) != {uid}:
        problems.append(f"uids are {creds.uids}, want {uid}")
    if set(creds.gids) != {gid}:
        problems.append(f"gids are {creds.gids}, want {gid}")
    for what, mask in (
        ("effective", creds.effective),
        ("permitted", creds.permitted),
        ("bounding", creds.bounding),
    ):
        if mask != keep:
            problems.append(f"{what} capabilities are {cap_names(mask)}, want {cap_names(keep)}")
    if creds.ambient or creds.inheritable:
        problems.append(
            f"ambient {cap_names(creds.ambient)} and inheritable {cap_names(creds.inheritable)}, want none"
        )
    return problems


def check_capabilities(need: int = KEEP) -> None:
    """For a start that is not root: PrivilegeError naming the missing capabilities, if any."""
    if os.geteuid() == 0:
        return
    creds = read_credentials()
    missing = need & ~creds.effective
    if missing:
        raise PrivilegeError(
            f"inline-ips run needs root or the capabilities {cap_names(need)} "
            f"(uid {os.geteuid()} holds {cap_names(creds.effective)}; missing {cap_names(missing)}); "
            "under systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW"
        )


__all__ = [
    "KEEP",
    "Credentials",
    "PrivilegeError",
    "User",
    "cap_names",
    "check_capabilities",
    "drop_to",
    "files_as",
    "lookup_user",
    "parse_status",
    "read_credentials",
    "verify",
]
