"""What ``inline-ips cleanup`` and ``inline-ips block list|add|del`` do, as plain functions.

Each returns the text to print (lines or one message) and raises
:class:`~inline_ips.firewall.iptables.FirewallError` (an ``OSError``) when
the kernel side is missing or refuses, or ``ValueError`` for bad input
(:class:`BlockRefusedError` for an allowlisted address). They work on the kernel
state of the current network namespace and do not parse arguments or print.

Note that ``block del`` removes the kernel entry only: a running engine also
keeps the address in its own table (:mod:`inline_ips.blocklist`) until that
entry expires, and keeps dropping what reaches the queue from it meanwhile.
"""

from __future__ import annotations

from inline_ips.firewall.iptables import FirewallConfig, FirewallError, remove
from inline_ips.respond.block import (
    MAX_TIMEOUT,
    BlocklistError,
    KernelBlocklist,
    format_address,
    parse_address,
)
from inline_ips.rules.addresses import AddressSet


class BlockRefusedError(ValueError):
    """The address must not be blocked (it is allowlisted)."""


def cleanup(cfg: FirewallConfig) -> list[str]:
    """Remove every rule, chain and ipset of inline-ips; one line per thing removed, [] if none."""
    return remove(cfg)


def _installed_blocklist(cfg: FirewallConfig) -> KernelBlocklist:
    blocks = cfg.blocklist()
    try:
        info = blocks.info()
    except BlocklistError as e:
        blocks.close()
        raise FirewallError(str(e)) from e
    if not any(i["exists"] for i in info.values()):
        blocks.close()
        raise FirewallError(
            f"the blocklist ipsets {cfg.block_set4} and {cfg.block_set6} do not exist: "
            "inline-ips is not installed in this network namespace"
        )
    return blocks


def block_list(cfg: FirewallConfig) -> list[str]:
    """One line per blocked address with the time left, IPv4 first; [] when the blocklist is empty."""
    with _installed_blocklist(cfg) as blocks:
        try:
            entries = blocks.entries()
        except BlocklistError as e:
            raise FirewallError(str(e)) from e
    if not entries:
        return []
    width = max(len(a) for a, _ in entries)
    return [f"{a:<{width}}  {f'{left} s left' if left else 'permanent'}" for a, left in entries]


def block_add(cfg: FirewallConfig, address: str, seconds: int, allowlist: AddressSet | None = None) -> str:
    """Block ``address`` in the kernel for ``seconds``; refused for allowlisted addresses."""
    version, addr = parse_address(address)
    shown_addr = format_address(version, addr)
    if seconds < 1:
        raise ValueError(f"the block time must be at least 1 second, got {seconds}")
    if allowlist is not None and allowlist.contains(version, addr):
        raise BlockRefusedError(
            f"refusing to block {shown_addr}: it is in the allowlist ({allowlist.text}), "
            "which the engine never blocks"
        )
    with _installed_blocklist(cfg) as blocks:
        name = blocks.set_name(version)
        if not blocks.add(version, addr, seconds):
            raise FirewallError(blocks.last_error or f"ipset {name} refused {shown_addr}")
    shown = min(seconds, MAX_TIMEOUT)
    clamped = f" (the kernel's maximum; {seconds} s asked)" if shown != seconds else ""
    return f"blocked {shown_addr} for {shown} s{clamped} in ipset {name}"


def block_del(cfg: FirewallConfig, address: str) -> str:
    """Unblock ``address`` in the kernel; says so when it was not blocked."""
    version, addr = parse_address(address)
    shown_addr = format_address(version, addr)
    with _installed_blocklist(cfg) as blocks:
        name = blocks.set_name(version)
        if blocks.delete(version, addr):
            return f"unblocked {shown_addr} (removed from ipset {name})"
        if blocks.stats["errors"]:
            raise FirewallError(blocks.last_error or f"ipset {name} refused to delete {shown_addr}")
    return f"{shown_addr} was not blocked"
