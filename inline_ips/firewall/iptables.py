"""The iptables chains, jumps and ipsets that put inline-ips in the data path.

:func:`install` builds, for IPv4 and (optionally) IPv6, in the legacy
iptables tables that python-iptables drives:

- in table ``filter``, chain ``cfg.chain`` (default ``INLINE_IPS``), reached
  by one jump at the top of ``FORWARD`` (and ``INPUT`` with ``hook_input``)::

      -m set --match-set <block set> src
          -m set ! --match-set <allow set> src -m set ! --match-set <allow set> dst -j DROP
      -m connmark --mark <bypass>/<bypass> -j RETURN
      -j NFQUEUE --queue-num N | --queue-balance N:M  [--queue-bypass]

  A blocked host is dropped by the kernel before the queue, so its packets
  never reach Python; unless the packet comes from or goes to an allowlisted
  network (the ``hash:net`` sets of :mod:`inline_ips.firewall.allowlist`,
  filled from the rules' ``allowlist:``): management hosts are never locked
  out by the kernel either, whatever is in the block set (an ``ipset add`` by
  hand, entries from before the allowlist changed). The exemption is part of
  the DROP rule, not a rule of its own before it: an ``ACCEPT`` there would
  widen the operator's own firewall (later FORWARD/INPUT rules would no
  longer see the packet), and a ``RETURN`` would also skip the queue, so
  management traffic would go uninspected and its alerts unlogged (the
  engine still judges and logs allowlisted hosts; it only never drops them,
  and bypasses their flows once the first packets are clean). So an
  allowlisted packet just does not match the DROP and goes on to the bypass
  and queue rules like any other. The block set is matched first: most
  packets are not blocked and pay one ``hash:ip`` lookup, as before; only a
  blocked source costs the two ``hash:net`` lookups.
  A flow the engine judged clean carries the bypass bit
  in its connmark and skips the queue from then on. Everything else is
  queued. ``--queue-bypass`` is on by default because a router must keep
  routing when no inline-ips process listens (not started yet, restarting,
  crashed): without it the kernel drops every queued packet and the box
  black-holes its traffic. With it, traffic passes uninspected instead
  (fail-open). It covers only the no-listener case; what happens when the
  listener's queue overflows is the listener's fail-open flag.
- in table ``mangle``, chain ``<chain>_MARK`` reached from ``POSTROUTING``,
  which copies the bypass bit of the packet mark (set by the verdict) into
  the connection mark: ``-m mark --mark B/B -j CONNMARK --save-mark --mask B``
  (``iptables -S`` prints the mask as ``--nfmask B --ctmask B``).
- with ``hook_input``, the same ``<chain>_MARK`` chain in table ``security``,
  reached from ``INPUT``. Measured on this kernel: a reinjected packet
  continues with the hooks *after* the queueing one, so mangle ``INPUT``
  (priority -150, before filter) never sees the verdict's mark, while
  security ``INPUT`` (priority 50) does.
- the two ``hash:ip`` ipsets of :class:`~inline_ips.respond.block.KernelBlocklist`
  and the two ``hash:net`` ipsets of
  :class:`~inline_ips.firewall.allowlist.KernelAllowlist`, created (and the
  allowlist filled) before the rule that matches them (iptables resolves the
  set by name when the rule is built). :func:`update_allowlist` changes the
  allowlist later, on reload, by an atomic ``ipset swap``; the rules stay.

Each table is changed in one libiptc commit, under the ``xtables.lock`` the
iptables commands use. :func:`install` is idempotent and converges to the
configuration (jumps for hooks no longer configured are removed); if any
step fails it tears down every chain and jump of ours, and the ipsets it had
just created, before raising :class:`FirewallError`, so a half-built chain
never sits in the data path. :func:`remove` deletes only what inline-ips
owns: the jumps to its chains in the hook chains, its chains, its ipsets
(block and allow sets, and an allowlist replacement set an interrupted
update left).

Everything is expressed through python-iptables (set match, connmark and
mark matches, NFQUEUE and CONNMARK targets); no iptables command is run.
python-iptables, when it builds or reads a rule with a non-standard target,
opens every table of the family to see whether the target is a chain, which
instantiates nat, raw and security (empty) in the namespace as a side effect.
This module does not judge packets, listen on the queue or add blocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from inline_ips.firewall.allowlist import TEMP_SUFFIX, AllowlistError, KernelAllowlist
from inline_ips.respond.block import BlocklistError, KernelBlocklist
from inline_ips.rules.addresses import AddressSet

log = logging.getLogger(__name__)

MARK_SUFFIX = "_MARK"
CHAIN_NAME_MAX = 28  # XT_EXTENSION_MAXNAMELEN - 1
IPSET_NAME_MAX = 31  # IPSET_MAXNAMELEN - 1
XTABLES_LOCK_WAIT = 10.0  # seconds to wait for another iptables process

_CHAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RESERVED = {"ACCEPT", "DROP", "QUEUE", "RETURN", "INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}

# Where our chains hang: (table, hook chain) -> which of our chains it jumps to.
# remove() looks at all of them whatever the configuration says, so a cleanup
# with a different config than the install still finds everything.
FILTER_HOOKS = ("FORWARD", "INPUT")
MANGLE_HOOKS = ("POSTROUTING",)
SECURITY_HOOKS = ("INPUT",)

# What each table's rules need from the kernel, named in error messages.
_NEEDS = {
    "filter": (
        "iptable_filter, xt_set + ip_set_hash_ip + ip_set_hash_net, xt_connmark, xt_NFQUEUE + nfnetlink_queue"
    ),
    "mangle": "iptable_mangle, xt_mark, xt_CONNMARK, nf_conntrack",
    "security": "iptable_security (security table), xt_mark, xt_CONNMARK",
}


class FirewallError(OSError):
    """The firewall could not be installed, inspected or removed; the message names what is missing."""


@dataclass(frozen=True, slots=True)
class FirewallConfig:
    queue_num: int = 0
    queues: int = 1  # > 1: --queue-balance queue_num:queue_num+queues-1 (one worker per queue)
    # When no process listens on the queue, let packets pass instead of dropping them
    # (see the module docstring: a router must not black-hole while inline-ips is down).
    queue_bypass: bool = True
    hook_forward: bool = True  # inspect routed traffic
    hook_input: bool = False  # also inspect traffic to the router itself
    chain: str = "INLINE_IPS"
    bypass_mark: int = 0x40000000  # packet/connmark bit of flows judged clean
    block_set4: str = "inline_ips_block4"
    block_set6: str = "inline_ips_block6"
    # The allowlist (hash:net): sources and destinations in it are never dropped by the block sets.
    allow_set4: str = "inline_ips_allow4"
    allow_set6: str = "inline_ips_allow6"
    ipv6: bool = True
    block_max: int = 65536  # maxelem of each block set

    def __post_init__(self) -> None:
        if not 0 <= self.queue_num <= 65535:
            raise ValueError(f"queue_num must be 0..65535, got {self.queue_num}")
        if self.queues < 1 or self.queue_num + self.queues - 1 > 65535:
            raise ValueError(f"queues must be at least 1 and end at queue 65535 or below, got {self.queues}")
        limit = CHAIN_NAME_MAX - len(MARK_SUFFIX)
        if not _CHAIN_RE.match(self.chain) or len(self.chain) > limit or self.chain in _RESERVED:
            raise ValueError(
                f"chain must be 1..{limit} letters, digits, '_', '.', '-' and not a built-in name, "
                f"got {self.chain!r}"
            )
        if not 0 < self.bypass_mark <= 0xFFFFFFFF:
            raise ValueError(f"bypass_mark must be a non-zero 32-bit mark, got {self.bypass_mark:#x}")
        for name in (self.block_set4, self.block_set6):
            if not 0 < len(name) <= IPSET_NAME_MAX or any(c.isspace() for c in name):
                raise ValueError(
                    f"ipset names must be 1..{IPSET_NAME_MAX} non-blank characters, got {name!r}"
                )
        allow_max = IPSET_NAME_MAX - len(TEMP_SUFFIX)  # room for the replacement set's name
        for name in (self.allow_set4, self.allow_set6):
            if not 0 < len(name) <= allow_max or any(c.isspace() for c in name):
                raise ValueError(
                    f"allowlist ipset names must be 1..{allow_max} non-blank characters, got {name!r}"
                )
        if self.block_set4 == self.block_set6:
            raise ValueError("block_set4 and block_set6 must differ")
        names = [self.block_set4, self.block_set6, *self.allowlist().names]
        if len(set(names)) != len(names):
            raise ValueError(f"the block and allowlist ipset names must all differ, got {names}")
        if not 0 < self.block_max <= 0xFFFFFFFF:
            raise ValueError(f"block_max must be at least 1, got {self.block_max}")
        if not (self.hook_forward or self.hook_input):
            raise ValueError("at least one of hook_forward and hook_input must be set")

    @property
    def mark_chain(self) -> str:
        return self.chain + MARK_SUFFIX

    def blocklist(self) -> KernelBlocklist:
        return KernelBlocklist(self.block_set4, self.block_set6, self.block_max)

    def allowlist(self) -> KernelAllowlist:
        return KernelAllowlist(self.allow_set4, self.allow_set6)


# -- python-iptables plumbing ------------------------------------------------------------


def _iptc() -> Any:
    """python-iptables, imported on first use: it loads libiptc and libxtables at import time."""
    try:
        import iptc  # noqa: PLC0415
    except Exception as e:
        raise FirewallError(
            f"python-iptables cannot load the iptables libraries (libip4tc, libip6tc, libxtables; "
            f"install iptables): {e}"
        ) from e
    return iptc


def _family_name(v: int) -> str:
    return f"ipv{v}"


def _open_table(v: int, name: str) -> Any:
    """The python-iptables table object; python-iptables caches it, so callers refresh it before reading."""
    iptc = _iptc()
    try:
        return iptc.Table6(name) if v == 6 else iptc.Table(name)
    except Exception as e:
        tool, mods = (
            ("ip6tables", f"ip6_tables, ip6table_{name}")
            if v == 6
            else ("iptables", f"ip_tables, iptable_{name}")
        )
        raise FirewallError(
            f"cannot open the {_family_name(v)} {name} table ({tool}-legacy; kernel {mods}): {e}"
        ) from e


def _table_loaded(v: int, name: str) -> bool:
    """Whether the kernel has instantiated this table in the current namespace.

    Opening a table instantiates it (and hooks it into the packet path), so
    remove and status look here first instead of opening tables that cannot
    hold anything of ours. When the list cannot be read, assume it is there.
    """
    try:
        with open(f"/proc/net/ip{'6' if v == 6 else ''}_tables_names", encoding="ascii") as f:
            return name in f.read().split()
    except OSError:
        return True


@contextlib.contextmanager
def _transaction(table: Any) -> Iterator[Any]:
    """Collect changes to ``table`` and commit them at once; discard them if the block raises.

    python-iptables caches one object per table, so autocommit is switched
    off only for the duration and restored afterwards.
    """
    prev = table.autocommit
    table.autocommit = False
    try:
        table.refresh()  # autocommit off: drops the cached handle without committing, re-reads the kernel
        yield table
        table.commit()
    finally:
        try:
            table.refresh()  # after a commit: re-read; after an error: discard the pending changes
        finally:
            table.autocommit = prev


_held_lock_fd: int | None = None  # see hold_xtables_lock()
_lock_warned = False


def _lock_path() -> str:
    return os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")


def hold_xtables_lock() -> None:
    """Open the xtables lock file now and keep it, for a process about to give up root.

    ``/run/xtables.lock`` is created ``0600 root`` by iptables: after the
    drop to an unprivileged user (:mod:`inline_ips.privilege`) it could not
    be opened again, so the removal of our rules at exit would run without
    the lock. ``flock`` on the descriptor opened here works for any uid.
    Safe to call twice; a lock file that cannot be opened is logged.
    """
    global _held_lock_fd
    if _held_lock_fd is not None:
        return
    path = _lock_path()
    try:
        _held_lock_fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as e:
        log.warning("cannot open the xtables lock %s (%s): firewall changes will not take it", path, e)


@contextlib.contextmanager
def _xtables_lock() -> Iterator[None]:
    """Hold the lock iptables commands take, so a concurrent ``iptables -A`` is not lost.

    libiptc replaces whole tables; python-iptables does not take the lock
    itself. Without a writable lock file (an unprivileged start: the file is
    root's) we proceed without it, with one warning.
    """
    global _lock_warned
    path = _lock_path()
    held = _held_lock_fd
    if held is not None:
        fd = held
    else:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if not _lock_warned:
                _lock_warned = True
                log.warning(
                    "no xtables lock (%s: %s): a concurrent iptables command could race with us", path, e
                )
            yield
            return
    try:
        deadline = time.monotonic() + XTABLES_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise FirewallError(
                        f"another iptables process has held {path} for {XTABLES_LOCK_WAIT:.0f} s"
                    ) from e
                time.sleep(0.05)
        yield
    finally:
        if held is None:
            os.close(fd)  # also releases the lock
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _rule(v: int) -> Any:
    iptc = _iptc()
    return iptc.Rule6() if v == 6 else iptc.Rule()


def _jump(v: int, target: str) -> Any:
    r = _rule(v)
    r.create_target(target)
    return r


def _build(what: str, table: str, fn: Callable[[], Any]) -> Any:
    """Build one rule; a missing extension becomes a FirewallError that names it."""
    try:
        return fn()
    except FirewallError:
        raise
    except Exception as e:
        raise FirewallError(f"cannot build the {what} rule ({e}); needs {_NEEDS[table]}") from e


def _filter_rules(v: int, cfg: FirewallConfig) -> list[Any]:
    mark = f"{cfg.bypass_mark:#x}/{cfg.bypass_mark:#x}"

    def block() -> Any:
        # Blocked source, unless either end is allowlisted (see the module docstring).
        r = _rule(v)
        m = r.create_match("set")
        m.match_set = [cfg.block_set6 if v == 6 else cfg.block_set4, "src"]
        allow = cfg.allow_set6 if v == 6 else cfg.allow_set4
        for direction in ("src", "dst"):
            m = r.create_match("set")
            m.match_set = ["!", allow, direction]
        r.create_target("DROP")
        return r

    def bypass() -> Any:
        r = _rule(v)
        m = r.create_match("connmark")
        m.mark = mark
        r.create_target("RETURN")
        return r

    def queue() -> Any:
        r = _rule(v)
        t = r.create_target("NFQUEUE")
        if cfg.queues > 1:
            t.queue_balance = f"{cfg.queue_num}:{cfg.queue_num + cfg.queues - 1}"
        else:
            t.queue_num = str(cfg.queue_num)
        if cfg.queue_bypass:
            t.queue_bypass = ""
        return r

    return [
        _build("set match (block list, allowlist)", "filter", block),
        _build("connmark (bypass)", "filter", bypass),
        _build("NFQUEUE", "filter", queue),
    ]


def _mark_rules(v: int, cfg: FirewallConfig, table: str) -> list[Any]:
    def save() -> Any:
        r = _rule(v)
        m = r.create_match("mark")
        m.mark = f"{cfg.bypass_mark:#x}/{cfg.bypass_mark:#x}"
        t = r.create_target("CONNMARK")
        t.save_mark = ""
        t.mask = f"{cfg.bypass_mark:#x}"  # --mask: --nfmask and --ctmask both
        return r

    return [_build("CONNMARK --save-mark", table, save)]


def _jumps_to(chain_obj: Any, target: str) -> list[Any]:
    return [r for r in chain_obj.rules if r.target is not None and r.target.name == target]


def _set_chain(
    table: Any, v: int, name: str, rules: list[Any], hooks: dict[str, bool], all_hooks: tuple[str, ...]
) -> None:
    """In an open transaction: chain ``name`` holds exactly ``rules``; each hook has one jump iff wanted."""
    iptc = _iptc()
    chain = iptc.Chain(table, name) if table.is_chain(name) else table.create_chain(name)
    chain.flush()
    for r in rules:
        chain.append_rule(r)
    for hook in all_hooks:
        hook_chain = iptc.Chain(table, hook)
        found = _jumps_to(hook_chain, name)
        want = hooks.get(hook, False)
        # Keep the first jump if one exists (a re-install does not move it), drop copies.
        for r in found[1:] if want else found:
            hook_chain.delete_rule(r)
        if want and not found:
            hook_chain.insert_rule(_jump(v, name), position=0)


def _drop_chain(table: Any, name: str, all_hooks: tuple[str, ...], where: str) -> list[str]:
    """In an open transaction: remove the jumps to ``name`` from the hook chains and the chain itself."""
    iptc = _iptc()
    done: list[str] = []
    for hook in all_hooks:
        if not table.is_chain(hook):
            continue
        hook_chain = iptc.Chain(table, hook)
        for r in _jumps_to(hook_chain, name):
            hook_chain.delete_rule(r)
            done.append(f"removed jump {hook} -> {name} ({where})")
    if table.is_chain(name):
        chain = iptc.Chain(table, name)
        chain.flush()
        try:
            table.delete_chain(name)
            done.append(f"removed chain {name} ({where})")
        except Exception as e:
            # Referenced from a chain we do not own: leave it, empty (an empty chain just returns).
            done.append(f"flushed chain {name} but kept it ({where}): still referenced elsewhere ({e})")
            log.warning("chain %s (%s) is still referenced by a rule inline-ips does not own", name, where)
    return done


def _commit_error(v: int, table: str, e: Exception) -> FirewallError:
    return FirewallError(
        f"the kernel refused the {_family_name(v)} {table} rules ({e}); check that it has {_NEEDS[table]}"
    )


# -- install / remove / status --------------------------------------------------------------


def _apply(v: int, table_name: str, change: Callable[[Any], list[str] | None]) -> list[str]:
    """Run ``change(table)`` in one transaction on a table; kernel refusals become FirewallError."""
    table = _open_table(v, table_name)
    try:
        with _transaction(table):
            done = change(table)
    except FirewallError:
        raise
    except Exception as e:
        raise _commit_error(v, table_name, e) from e
    return done or []


def _remove_from(v: int, table_name: str, chain: str, hooks: tuple[str, ...]) -> list[str]:
    """Drop ``chain`` and the jumps to it from one table; a table the kernel lacks holds nothing of ours."""
    if not _table_loaded(v, table_name):
        return []
    try:
        _open_table(v, table_name)
    except FirewallError as e:
        log.debug("%s", e)
        return []
    where = f"{_family_name(v)} {table_name}"
    return _apply(v, table_name, lambda t: _drop_chain(t, chain, hooks, where))


def _install_family(v: int, cfg: FirewallConfig) -> None:
    filter_hooks = {"FORWARD": cfg.hook_forward, "INPUT": cfg.hook_input}
    filter_rules = _filter_rules(v, cfg)
    _apply(v, "filter", lambda t: _set_chain(t, v, cfg.chain, filter_rules, filter_hooks, FILTER_HOOKS))
    if cfg.hook_forward:
        rules = _mark_rules(v, cfg, "mangle")
        _apply(
            v,
            "mangle",
            lambda t: _set_chain(t, v, cfg.mark_chain, rules, {"POSTROUTING": True}, MANGLE_HOOKS),
        )
    else:
        _remove_from(v, "mangle", cfg.mark_chain, MANGLE_HOOKS)
    if cfg.hook_input:
        rules = _mark_rules(v, cfg, "security")
        _apply(
            v, "security", lambda t: _set_chain(t, v, cfg.mark_chain, rules, {"INPUT": True}, SECURITY_HOOKS)
        )
    else:
        _remove_from(v, "security", cfg.mark_chain, SECURITY_HOOKS)


def _teardown_rules(cfg: FirewallConfig) -> list[str]:
    done: list[str] = []
    for v in (4, 6):
        done += _remove_from(v, "filter", cfg.chain, FILTER_HOOKS)
        done += _remove_from(v, "mangle", cfg.mark_chain, MANGLE_HOOKS)
        done += _remove_from(v, "security", cfg.mark_chain, SECURITY_HOOKS)
    return done


def install(cfg: FirewallConfig, allowlist: AddressSet | None = None) -> None:
    """Create the ipsets, chains and jumps of ``cfg``; idempotent; all or nothing.

    The allowlist sets are made to hold ``allowlist`` (None: nothing) before
    the rules that use them are built, so no packet meets the block-set DROP
    without the allowlist in force. Raises FirewallError (naming the missing
    piece) after undoing what it changed. A failed re-install leaves nothing
    of ours in the data path (traffic passes uninspected) rather than a
    half-built chain; ipsets that existed before the call are kept with their
    entries.
    """
    _iptc()  # fail before touching anything if python-iptables cannot load
    with _xtables_lock(), cfg.blocklist() as blocks, cfg.allowlist() as allow:
        before: dict[str, dict[str, Any]] = {}
        try:
            before = blocks.info()
            before |= allow.info()
            blocks.ensure_sets()
            allow.ensure_sets()
            n4, n6 = allow.replace(allowlist)
            log.info("kernel allowlist: %d IPv4 and %d IPv6 networks", n4, n6)
            _install_family(4, cfg)
            if cfg.ipv6:
                _install_family(6, cfg)
            else:
                # Converge: an earlier install with IPv6 left pieces there.
                _remove_from(6, "filter", cfg.chain, FILTER_HOOKS)
                _remove_from(6, "mangle", cfg.mark_chain, MANGLE_HOOKS)
                _remove_from(6, "security", cfg.mark_chain, SECURITY_HOOKS)
        except Exception as e:
            _rollback(cfg, blocks, allow, [name for name, i in before.items() if not i["exists"]])
            if isinstance(e, FirewallError):
                raise
            if isinstance(e, (BlocklistError, AllowlistError)):
                raise FirewallError(str(e)) from e
            raise FirewallError(f"install failed: {e!r}") from e


def _rollback(
    cfg: FirewallConfig, blocks: KernelBlocklist, allow: KernelAllowlist, created: list[str]
) -> None:
    """After a failed install: no chain or jump of ours stays; sets this install created go too."""
    log.error("firewall install failed; removing the chains and jumps of %s", cfg.chain)
    try:
        _teardown_rules(cfg)
    except Exception:
        log.exception("rollback could not remove every rule; run 'inline-ips cleanup'")
    for name in created:
        try:
            (allow if name in allow.names else blocks).destroy_set(name)
        except Exception:
            log.exception("rollback could not destroy ipset %s", name)


def update_allowlist(cfg: FirewallConfig, allowlist: AddressSet | None) -> tuple[int, int]:
    """Make the installed kernel allowlist hold ``allowlist``, atomically; (IPv4, IPv6) network counts.

    For a reload: the iptables rules are not touched, the sets are swapped
    (see :mod:`inline_ips.firewall.allowlist`). FirewallError when the sets
    are missing (not installed) or the kernel refuses; the old contents then
    stay in force.
    """
    with cfg.allowlist() as allow:
        try:
            return allow.replace(allowlist)
        except AllowlistError as e:
            raise FirewallError(str(e)) from e


def remove(cfg: FirewallConfig) -> list[str]:
    """Remove every jump, chain (IPv4 and IPv6; filter, mangle, security) and ipset of ours.

    Safe when nothing is installed. Returns one line per thing removed (empty
    when there was nothing). Rules and chains of others are not touched: a
    chain of ours that another rule still jumps to is flushed and kept, and a
    set another rule still uses is kept; both are reported in the lines.
    """
    _iptc()
    done: list[str] = []
    with _xtables_lock():
        done += _teardown_rules(cfg)
        with cfg.blocklist() as blocks, cfg.allowlist() as allow:
            sets: list[tuple[str, dict[str, Any], Callable[[str], bool]]] = []
            try:
                sets += [(name, i, blocks.destroy_set) for name, i in blocks.info().items()]
                # The replacement sets too: an update interrupted by a crash can leave one.
                sets += [(name, allow.info_of(name), allow.destroy_set) for name in allow.names]
            except (BlocklistError, AllowlistError) as e:  # no ipset support: no set of ours either
                log.debug("%s", e)
            for name, i, destroy in sets:
                if not i["exists"]:
                    continue
                try:
                    destroy(name)
                    n = i["entries"]
                    done.append(f"destroyed ipset {name} ({n} {'entry' if n == 1 else 'entries'})")
                except (BlocklistError, AllowlistError) as e:
                    done.append(f"kept ipset {name}: {e}")
                    log.warning("%s", e)
    return done


def _table_status(v: int, table_name: str, chain: str, hooks: tuple[str, ...]) -> dict[str, object]:
    if not _table_loaded(v, table_name):
        return {"available": True, "loaded": False, "chain": chain, "present": False, "rules": 0, "jumps": {}}
    try:
        table = _open_table(v, table_name)
        table.refresh()
    except FirewallError as e:
        return {"available": False, "error": str(e)}
    iptc = _iptc()
    present = table.is_chain(chain)
    return {
        "available": True,
        "loaded": True,
        "chain": chain,
        "present": bool(present),
        "rules": len(iptc.Chain(table, chain).rules) if present else 0,
        "jumps": {h: len(_jumps_to(iptc.Chain(table, h), chain)) if table.is_chain(h) else 0 for h in hooks},
    }


# What each rule of our filter chain does, by its target (see _filter_rules).
_COUNTER_KINDS = {"DROP": "blocked", "RETURN": "bypassed", "NFQUEUE": "queued"}


def counters(cfg: FirewallConfig) -> dict[tuple[str, str], tuple[int, int]]:
    """Packets and bytes through each rule of our filter chain: {(family, kind): (packets, bytes)}.

    ``kind`` is ``blocked`` (the blocklist DROP: the kernel dropped a blocked
    source), ``bypassed`` (a bypassed flow skipped the queue) or ``queued``
    (sent to NFQUEUE, including what the kernel let through unjudged because
    the queue was full or nobody listened). Families whose chain is absent
    are left out. Read-only; for the exporter, at scrape time.
    """
    iptc = _iptc()
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for v in (4, 6) if cfg.ipv6 else (4,):
        if not _table_loaded(v, "filter"):
            continue
        table = _open_table(v, "filter")
        table.refresh()
        if not table.is_chain(cfg.chain):
            continue
        for rule in iptc.Chain(table, cfg.chain).rules:
            kind = _COUNTER_KINDS.get(rule.target.name)
            if kind is not None:
                packets, nbytes = rule.get_counters()
                out[(_family_name(v), kind)] = (int(packets), int(nbytes))
    return out


def status(cfg: FirewallConfig) -> dict[str, object]:
    """What is present: per family and table our chain, its rule count and the jumps to it; the sets.

    ``installed`` is True when everything ``cfg`` asks for is there exactly
    once. Read-only.
    """
    _iptc()
    out: dict[str, object] = {}
    ok = True
    for v in (4, 6):
        fam: dict[str, object] = {
            "filter": _table_status(v, "filter", cfg.chain, FILTER_HOOKS),
            "mangle": _table_status(v, "mangle", cfg.mark_chain, MANGLE_HOOKS),
            "security": _table_status(v, "security", cfg.mark_chain, SECURITY_HOOKS),
        }
        out[_family_name(v)] = fam
        if v == 6 and not cfg.ipv6:
            continue
        want = {
            "filter": (3, {"FORWARD": cfg.hook_forward, "INPUT": cfg.hook_input}),
            "mangle": (1, {"POSTROUTING": cfg.hook_forward}),
            "security": (1, {"INPUT": cfg.hook_input}),
        }
        for table_name, (nrules, hooks) in want.items():
            if not any(hooks.values()):
                continue
            st = fam[table_name]
            assert isinstance(st, dict)
            jumps = st.get("jumps", {})
            ok = ok and bool(st.get("present")) and st.get("rules") == nrules
            ok = ok and all(jumps.get(h, 0) == (1 if w else 0) for h, w in hooks.items())
    try:
        with cfg.blocklist() as blocks, cfg.allowlist() as allow:
            sets: dict[str, object] = {**blocks.info(), **allow.info()}
    except (BlocklistError, AllowlistError) as e:
        sets = {"error": str(e)}
    out["sets"] = sets
    ok = ok and all(isinstance(i, dict) and i.get("exists") for i in sets.values())
    out["installed"] = ok
    return out
