"""Two kernel ipsets of one kind, IPv4 and IPv6, over one netlink socket: what the block and allow sets share.

Does: opens the pyroute2 ipset socket on first use, in the network namespace
the process is in at that moment, and again after a fork (a socket shared by
a parent and a child would mix their replies); closes it; reads one set's
header (type, family, entries, maxelem, references, and whether entries
carry a timeout) without its members. Errors are raised as the subclass's
``error`` type, with a message naming the set.

Does not: create, fill or destroy sets (``respond/block.py`` and
``firewall/allowlist.py`` know their own set types and rules), or touch
iptables.
"""

from __future__ import annotations

import logging
import os
import socket
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

# Kernel ipset error codes (include/uapi/linux/netfilter/ipset/ip_set*.h).
ERR_FIND_TYPE = 4098  # set type not supported by the kernel
ERR_BUSY = 4100  # set in use by a kernel component (an iptables rule)
ERR_EXIST = 4103  # element already added / not added
ERR_REFERENCED = 4108
ERR_HASH_FULL = 4352  # IPSET_ERR_TYPE_SPECIFIC: for hash types, "hash is full"
_FLAG_LIST_HEADER = 1 << 2  # IPSET_FLAG_LIST_HEADER: list the header only, no members


def error_code(e: BaseException) -> int | None:
    """The kernel's ipset error code carried by a pyroute2 exception, if any."""
    code = getattr(e, "code", None)
    return code if isinstance(code, int) else None


class IpsetPair:
    """``set4`` (IPv4) and ``set6`` (IPv6), and the socket to reach them."""

    error: type[OSError] = OSError  # what a subclass raises

    def __init__(self, set4: str, set6: str) -> None:
        if not set4 or not set6 or set4 == set6:
            raise ValueError(f"need two different ipset names, got {set4!r} and {set6!r}")
        self.set4 = set4
        self.set6 = set6
        self._ipset: Any = None
        self._pid = 0

    def _sock(self) -> Any:
        if self._ipset is None or self._pid != os.getpid():
            from pyroute2 import IPSet  # noqa: PLC0415 - loaded only by live commands

            self._ipset = IPSet()
            self._pid = os.getpid()
        return self._ipset

    def close(self) -> None:
        if self._ipset is not None and self._pid == os.getpid():
            try:
                self._ipset.close()
            except Exception:  # closing a broken socket is not worth an error
                log.debug("closing the ipset socket failed", exc_info=True)
        self._ipset = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _sets(self) -> tuple[tuple[str, int], tuple[str, int]]:
        return (self.set4, socket.AF_INET), (self.set6, socket.AF_INET6)

    def _header(self, name: str) -> dict[str, Any] | None:
        """The set's header as a dict, or None when no set of that name exists."""
        from pyroute2.ipset import NoSuchObject  # noqa: PLC0415

        try:
            msgs = list(self._sock().list(name, flags=_FLAG_LIST_HEADER))
        except NoSuchObject:
            return None
        except Exception as e:
            raise self.error(f"cannot read ipset {name}: {e} (does the kernel have ipset support?)") from e
        if not msgs:
            return None
        msg = msgs[0]
        data = msg.get_attr("IPSET_ATTR_DATA")

        def field(attr: str) -> int:
            v = data.get_attr(attr) if data is not None else None
            return int(v) if v is not None else 0

        family = msg.get_attr("IPSET_ATTR_FAMILY")
        return {
            "type": msg.get_attr("IPSET_ATTR_TYPENAME"),
            "family": "inet6" if family == socket.AF_INET6 else "inet",
            "entries": field("IPSET_ATTR_ELEMENTS"),
            "maxelem": field("IPSET_ATTR_MAXELEM"),
            "references": field("IPSET_ATTR_REFERENCES"),
            "timeout": data is not None and data.get_attr("IPSET_ATTR_TIMEOUT") is not None,
        }
