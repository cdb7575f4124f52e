"""The kernel blocklist: two ipsets (IPv4, IPv6) that mirror the engine's blocks.

The engine keeps its own table (:mod:`inline_ips.blocklist`); this module
copies each new block into a ``hash:ip`` ipset so that the kernel drops the
offender's later packets before they are queued (the set is matched by the
first rule of the inline-ips chain, see :mod:`inline_ips.firewall.iptables`;
that DROP rule exempts packets from or to an allowlisted network, the
``hash:net`` sets of :mod:`inline_ips.firewall.allowlist`, whatever this set holds).
Every entry carries its own timeout, so the kernel forgets a block at about
the time the engine does (the engine extends a repeated block to the later
expiry; the kernel takes the timeout of the latest add). It talks to the
kernel over netlink with pyroute2's ``IPSet``; the ``ipset`` command is
not used.

What it does not do: decide what to block (the engine does), check the
allowlist before adding (the engine and
:func:`inline_ips.firewall.commands.block_add` do; the kernel's rule is the
last guard), or add iptables rules. ``add`` and ``delete`` sit on the verdict path and never
raise: a kernel error is counted in ``stats``, logged with the address and
returned as ``False`` (the caller still drops the packet itself). A full set
is counted separately (``refused_full``) and logged, never silent. The
administrative calls (``ensure_sets``, ``entries``, ``info``, ``flush``,
``destroy``) raise :class:`BlocklistError`.

Kernel semantics worth knowing: ipsets are per network namespace (measured:
a set made in one is invisible in the others); re-adding an address that
is already blocked replaces its timeout; a full set still accepts re-adds
and drops expired entries to make room; ipset timeouts are
whole seconds and at most :data:`MAX_TIMEOUT` (about 24.8 days), so longer
blocks are clamped; an entry whose timeout reads 0 is permanent (inline-ips
never adds one, but ``ipset add`` by hand can).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
from typing import Any

from inline_ips.respond.ipset_pair import (
    ERR_BUSY,
    ERR_EXIST,
    ERR_FIND_TYPE,
    ERR_HASH_FULL,
    ERR_REFERENCED,
    IpsetPair,
    error_code,
)

log = logging.getLogger(__name__)

MAX_TIMEOUT = 2_147_483  # the kernel's limit for ipset timeouts, in seconds
SET_TYPE = "hash:ip"


_FULL_LOG_EVERY = 1000  # log the first refusal of a full set, then every 1000th


class BlocklistError(OSError):
    """The kernel blocklist cannot be created, read or changed; the message says what and why."""


def parse_address(text: str) -> tuple[int, int]:
    """``"192.0.2.1"`` -> ``(4, 3221225985)``; IPv6 likewise with 6. ValueError if not one address.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is taken as the IPv4
    address it maps, because that is how its packets reach the router.
    """
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"not a single IPv4 or IPv6 address: {text!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return 4, int(ip.ipv4_mapped)
    return ip.version, int(ip)


def format_address(version: int, addr: int) -> str:
    """The text form of an integer address; ValueError when it does not fit the family."""
    if version == 4:
        return str(ipaddress.IPv4Address(addr))
    if version == 6:
        return str(ipaddress.IPv6Address(addr))
    raise ValueError(f"unknown IP version {version}")


class KernelBlocklist(IpsetPair):
    """Blocked addresses in two kernel ipsets (``set4`` for IPv4, ``set6`` for IPv6).

    The netlink socket is opened on first use, in the network namespace the
    process is in at that moment, and reopened after a fork.
    """

    error = BlocklistError

    def __init__(self, set4: str, set6: str, max_entries: int = 65536) -> None:
        super().__init__(set4, set6)
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.stats: dict[str, int] = {"added": 0, "deleted": 0, "refused_full": 0, "errors": 0}
        self.last_error: str | None = None  # the most recent failure of add/delete, for the CLI

    def set_name(self, version: int) -> str:
        return self.set6 if version == 6 else self.set4

    # -- administration (raises BlocklistError) ---------------------------------

    def info(self) -> dict[str, dict[str, Any]]:
        """Per set name: ``exists`` and, when it does, type, family, entries, maxelem, references, timeout."""
        out: dict[str, dict[str, Any]] = {}
        for name, _family in self._sets():
            h = self._header(name)
            out[name] = {"exists": False} if h is None else {"exists": True, **h}
        return out

    def ensure_sets(self) -> None:
        """Create both sets if missing (``hash:ip``, per-entry timeouts, ``maxelem`` = max_entries).

        Idempotent. An existing set is kept with its entries (blocks survive a
        restart); one of the wrong type or family, or without timeout support,
        is an error, since the iptables match and the timeouts would not work
        with it. A different ``maxelem`` is only logged: the kernel cannot
        change it in place.
        """
        from pyroute2.ipset import AlreadyExists  # noqa: PLC0415

        for name, family in self._sets():
            want_family = "inet6" if family == socket.AF_INET6 else "inet"
            h = self._header(name)
            if h is None:
                try:
                    # timeout=0: the set supports timeouts, and each entry brings its own.
                    self._sock().create(
                        name,
                        stype=SET_TYPE,
                        family=family,
                        exclusive=True,
                        maxelem=self.max_entries,
                        timeout=0,
                    )
                    log.info(
                        "created ipset %s (%s %s, maxelem %d)", name, SET_TYPE, want_family, self.max_entries
                    )
                    continue
                except AlreadyExists:  # created meanwhile by someone else: check it below
                    h = self._header(name)
                except Exception as e:
                    missing = " (the kernel lacks ip_set_hash_ip)" if error_code(e) == ERR_FIND_TYPE else ""
                    raise BlocklistError(f"cannot create ipset {name}: {e}{missing}") from e
                if h is None:
                    raise BlocklistError(f"ipset {name} vanished while it was being created")
            if h["type"] != SET_TYPE or h["family"] != want_family or not h["timeout"]:
                raise BlocklistError(
                    f"ipset {name} exists but is {h['type']} family {h['family']}"
                    f"{'' if h['timeout'] else ' without timeout support'}; inline-ips needs {SET_TYPE} "
                    f"family {want_family} with timeout: destroy it or configure another set name"
                )
            if h["maxelem"] != self.max_entries:
                log.warning(
                    "ipset %s exists with maxelem %d, not %d; keeping it (destroy it to change the cap)",
                    name,
                    h["maxelem"],
                    self.max_entries,
                )

    def entries(self) -> list[tuple[str, int]]:
        """(address, seconds left) of every entry, IPv4 first, each family in address order.

        Missing sets are skipped. Seconds left of 0 means permanent.
        """
        from pyroute2.ipset import NoSuchObject  # noqa: PLC0415

        out: list[tuple[int, int, str, int]] = []
        for name, family in self._sets():
            key = "IPSET_ATTR_IPADDR_IPV6" if family == socket.AF_INET6 else "IPSET_ATTR_IPADDR_IPV4"
            try:
                msgs = list(self._sock().list(name))
            except NoSuchObject:
                continue
            except Exception as e:
                raise BlocklistError(f"cannot list ipset {name}: {e}") from e
            for msg in msgs:
                adt = msg.get_attr("IPSET_ATTR_ADT")
                if adt is None:
                    continue
                for data in adt.get_attrs("IPSET_ATTR_DATA"):
                    ip = data.get_attr("IPSET_ATTR_IP_FROM")
                    text = ip.get_attr(key) if ip is not None else None
                    if text is None:
                        continue
                    left = data.get_attr("IPSET_ATTR_TIMEOUT")
                    a = ipaddress.ip_address(text)
                    out.append((a.version, int(a), str(a), int(left or 0)))
        out.sort()
        return [(text, left) for _v, _a, text, left in out]

    def flush(self) -> None:
        """Empty both sets (missing sets are skipped)."""
        self._each_set("flush")

    def destroy(self) -> None:
        """Destroy both sets (missing sets are skipped); an error if a rule still uses one."""
        self._each_set("destroy")

    def destroy_set(self, name: str) -> bool:
        """Destroy one of the two sets by name; False if it did not exist."""
        if name not in (self.set4, self.set6):
            raise ValueError(f"{name!r} is not one of this blocklist's sets")
        return self._one_set("destroy", name)

    def _each_set(self, op: str) -> None:
        for name, _family in self._sets():
            self._one_set(op, name)

    def _one_set(self, op: str, name: str) -> bool:
        from pyroute2.ipset import NoSuchObject  # noqa: PLC0415

        # pyroute2's flush()/destroy() without a name act on EVERY set in the namespace.
        if not name:
            raise BlocklistError(f"refusing to {op} an unnamed ipset")
        try:
            getattr(self._sock(), op)(name)
        except NoSuchObject:
            return False
        except Exception as e:
            busy = error_code(e) in (ERR_BUSY, ERR_REFERENCED)
            why = ": an iptables rule still uses it" if busy else ""
            raise BlocklistError(f"cannot {op} ipset {name}{why} ({e})") from e
        return True

    # -- verdict path (never raises) --------------------------------------------

    def _fail(self, what: str, version: int, addr: int, e: object) -> bool:
        self.stats["errors"] += 1
        try:
            shown = format_address(version, addr)
        except ValueError:
            shown = f"{addr} (IPv{version})"
        self.last_error = f"{what} {shown}: {e}"
        log.error("kernel blocklist: %s", self.last_error)
        return False

    def add(self, version: int, addr: int, seconds: int) -> bool:
        """Block ``addr`` in the kernel for ``seconds`` (at least 1, clamped to MAX_TIMEOUT).

        False when it was not added: the set is full (``refused_full``) or the
        kernel refused (``errors``); both are logged.
        """
        try:
            text = format_address(version, addr)
        except ValueError as e:
            return self._fail("cannot block", version, addr, e)
        if seconds < 1:  # 0 would make the entry permanent in ipset
            return self._fail("cannot block", version, addr, f"block time {seconds} s is below 1 s")
        timeout = min(math.ceil(seconds), MAX_TIMEOUT)
        name = self.set_name(version)
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        try:
            # exclusive=False: an address already in the set gets the new timeout (ipset -exist).
            self._sock().add(name, text, family=family, exclusive=False, timeout=timeout, etype="ip")
        except Exception as e:
            if error_code(e) == ERR_HASH_FULL:
                self.stats["refused_full"] += 1
                self.last_error = f"ipset {name} is full: {text} not blocked in the kernel"
                if self.stats["refused_full"] % _FULL_LOG_EVERY == 1:
                    log.warning(
                        "kernel blocklist: %s (%d refused so far)",
                        self.last_error,
                        self.stats["refused_full"],
                    )
                return False
            self._reset_if_broken(e)
            return self._fail(f"ipset {name}: cannot block", version, addr, e)
        self.stats["added"] += 1
        return True

    def delete(self, version: int, addr: int) -> bool:
        """Unblock ``addr``; False when it was not in the set or the kernel refused (``errors``)."""
        try:
            text = format_address(version, addr)
        except ValueError as e:
            return self._fail("cannot unblock", version, addr, e)
        name = self.set_name(version)
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        try:
            self._sock().delete(name, text, family=family, exclusive=True, etype="ip")
        except Exception as e:
            if error_code(e) == ERR_EXIST:  # it was not there: not an error
                return False
            self._reset_if_broken(e)
            return self._fail(f"ipset {name}: cannot unblock", version, addr, e)
        self.stats["deleted"] += 1
        return True

    def _reset_if_broken(self, e: BaseException) -> None:
        # A kernel refusal arrives as a netlink error with a code; anything else
        # (a closed or confused socket) is cured by a fresh socket next time.
        if error_code(e) is None:
            self.close()
