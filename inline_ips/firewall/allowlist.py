"""The kernel allowlist: two ``hash:net`` ipsets (IPv4, IPv6) that exempt management hosts.

The ``allowlist:`` of the rules is a set of address intervals
(:class:`~inline_ips.rules.addresses.AddressSet`); this module writes it into
the kernel as CIDRs, so that the block-set DROP of the inline-ips chain
(:mod:`inline_ips.firewall.iptables`) never matches a packet from or to an
allowlisted address, whatever got into the block set (an ``ipset add`` by
hand, a set kept from before the allowlist changed).

:meth:`KernelAllowlist.replace` changes the contents atomically: it builds
the new contents in a second set (the live name plus :data:`TEMP_SUFFIX`),
then ``ipset swap``\\ s it with the live one (the kernel exchanges the two in
one step, and the iptables rule, which refers to the set by its index, sees
the new contents from the next packet), then destroys the old contents. No
packet ever sees a half-filled or empty allowlist. The iptables rules are
not touched. A failure leaves the live set as it was.

Kernel facts it relies on: ``hash:net`` takes prefixes /1../32 and
/1../128, not /0 (``any`` is written as two /1 halves); swap needs the same
type and family (not the same ``maxelem``). Like the block sets, these are
per network namespace; the netlink socket is opened on first use and again
after a fork. This module decides nothing about packets.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from inline_ips.respond.ipset_pair import ERR_BUSY, ERR_FIND_TYPE, ERR_REFERENCED, IpsetPair, error_code
from inline_ips.rules.addresses import AddressSet, IntervalSet

log = logging.getLogger(__name__)

SET_TYPE = "hash:net"
TEMP_SUFFIX = "_new"  # the set a replacement is built in, swapped in, then destroyed
DEFAULT_MAXELEM = 65536  # a larger allowlist gets a larger set


class AllowlistError(OSError):
    """The kernel allowlist cannot be created, read or changed; the message says what and why."""


def _networks(s: IntervalSet, version: int) -> list[str]:
    addr: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = (
        ipaddress.IPv6Address if version == 6 else ipaddress.IPv4Address
    )
    out: list[str] = []
    for lo, hi in zip(s.starts, s.ends, strict=True):
        for net in ipaddress.summarize_address_range(addr(lo), addr(hi)):
            halves = net.subnets(prefixlen_diff=1) if net.prefixlen == 0 else (net,)
            out.extend(str(n) for n in halves)  # hash:net refuses /0
    return out


def cidrs(allow: AddressSet | None) -> tuple[list[str], list[str]]:
    """The allowlist as the fewest CIDRs that cover it exactly: (IPv4, IPv6); none for None."""
    if allow is None:
        return [], []
    return _networks(allow.v4, 4), _networks(allow.v6, 6)


class KernelAllowlist(IpsetPair):
    """Allowlisted networks in two kernel ipsets, ``set4`` (IPv4) and ``set6`` (IPv6)."""

    error = AllowlistError

    @property
    def names(self) -> tuple[str, str, str, str]:
        """Every set name this allowlist may own: the two live sets and their replacement sets."""
        return self.set4, self.set6, self.set4 + TEMP_SUFFIX, self.set6 + TEMP_SUFFIX

    # -- reading ------------------------------------------------------------------

    def info_of(self, name: str) -> dict[str, Any]:
        """``exists`` and, when it does, type, family, entries, maxelem, references of one set."""
        h = self._header(name)
        if h is None:
            return {"exists": False}
        del h["timeout"]  # allowlist entries never carry one
        return {"exists": True, **h}

    def info(self) -> dict[str, dict[str, Any]]:
        """:meth:`info_of` each live set, by name."""
        return {name: self.info_of(name) for name, _family in self._sets()}

    def entries(self) -> list[str]:
        """The CIDRs in the live sets, IPv4 first, each family in address order; missing sets skipped."""
        from pyroute2.ipset import NoSuchObject  # noqa: PLC0415

        out: list[tuple[int, int, int, str]] = []
        for name, family in self._sets():
            key = "IPSET_ATTR_IPADDR_IPV6" if family == socket.AF_INET6 else "IPSET_ATTR_IPADDR_IPV4"
            try:
                msgs = list(self._sock().list(name))
            except NoSuchObject:
                continue
            except Exception as e:
                raise AllowlistError(f"cannot list ipset {name}: {e}") from e
            for msg in msgs:
                adt = msg.get_attr("IPSET_ATTR_ADT")
                if adt is None:
                    continue
                for data in adt.get_attrs("IPSET_ATTR_DATA"):
                    ip = data.get_attr("IPSET_ATTR_IP_FROM")
                    text = ip.get_attr(key) if ip is not None else None
                    if text is None:
                        continue
                    net = ipaddress.ip_network(f"{text}/{data.get_attr('IPSET_ATTR_CIDR')}")
                    out.append((net.version, int(net.network_address), net.prefixlen, str(net)))
        out.sort()
        return [text for *_, text in out]

    # -- changing -----------------------------------------------------------------

    def _create(self, name: str, family: int, maxelem: int) -> None:
        try:
            self._sock().create(name, stype=SET_TYPE, family=family, exclusive=True, maxelem=maxelem)
        except Exception as e:
            missing = " (the kernel lacks ip_set_hash_net)" if error_code(e) == ERR_FIND_TYPE else ""
            raise AllowlistError(f"cannot create ipset {name}: {e}{missing}") from e

    def _check(self, name: str, family: int, h: dict[str, Any]) -> None:
        want = "inet6" if family == socket.AF_INET6 else "inet"
        if h["type"] != SET_TYPE or h["family"] != want:
            raise AllowlistError(
                f"ipset {name} exists but is {h['type']} family {h['family']}; inline-ips needs "
                f"{SET_TYPE} family {want} for its allowlist: destroy it or configure another set name"
            )

    def ensure_sets(self) -> None:
        """Create the live sets that are missing (empty).

        An existing set of the wrong type or family is an error (the swap of
        :meth:`replace` would be refused).
        """
        for name, family in self._sets():
            h = self._header(name)
            if h is None:
                self._create(name, family, DEFAULT_MAXELEM)
            else:
                self._check(name, family, h)

    def replace(self, allow: AddressSet | None) -> tuple[int, int]:
        """Make the live sets hold exactly ``allow`` (None: empty), atomically; (IPv4, IPv6) CIDR counts.

        The live sets must exist (:meth:`ensure_sets`). On any error the live
        sets keep what they held, and AllowlistError says why.
        """
        counts: list[int] = []
        for (name, family), nets in zip(self._sets(), cidrs(allow), strict=True):
            h = self._header(name)
            if h is None:
                raise AllowlistError(f"ipset {name} does not exist: inline-ips is not installed here")
            self._check(name, family, h)
            temp = name + TEMP_SUFFIX
            self._destroy(temp)  # left over from an interrupted replace
            self._create(temp, family, max(DEFAULT_MAXELEM, len(nets)))
            try:
                for net in nets:
                    try:
                        self._sock().add(temp, net, family=family, exclusive=False, etype="net")
                    except Exception as e:
                        raise AllowlistError(f"cannot add {net} to ipset {temp}: {e}") from e
                try:
                    self._sock().swap(temp, name)  # one step: the rule sees the old set, then the new
                except Exception as e:
                    raise AllowlistError(f"cannot swap ipset {temp} into {name}: {e}") from e
            finally:
                self._destroy(temp)  # after the swap it holds the old contents
            counts.append(len(nets))
        return counts[0], counts[1]

    def _destroy(self, name: str) -> bool:
        from pyroute2.ipset import NoSuchObject  # noqa: PLC0415

        if not name:  # pyroute2's destroy() without a name destroys EVERY set
            raise AllowlistError("refusing to destroy an unnamed ipset")
        try:
            self._sock().destroy(name)
        except NoSuchObject:
            return False
        except Exception as e:
            busy = error_code(e) in (ERR_BUSY, ERR_REFERENCED)
            raise AllowlistError(
                f"cannot destroy ipset {name}{': an iptables rule still uses it' if busy else ''} ({e})"
            ) from e
        return True

    def destroy_set(self, name: str) -> bool:
        """Destroy one of :attr:`names`; False if it did not exist."""
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this allowlist's sets")
        return self._destroy(name)
