"""Type stub for the compiled NFQUEUE receive loop (inline_ips/source/_nfqloop.c)."""

from collections.abc import Callable
from typing import Final, TypeVar

_D = TypeVar("_D")

RECV_SLOT: Final[int]
MAX_BATCH: Final[int]

class Loop:
    """A receive loop on a netlink socket bound to one queue (the socket stays the caller's)."""

    def __init__(
        self,
        fd: int,
        queue_num: int,
        bypass_mark: int,
        batch: int = 32,
        poll_ms: int = 250,
        spin_us: int = 0,
    ) -> None: ...
    def run(
        self,
        handler: Callable[[bytes, float], _D],
        accept: _D,
        bypass: _D,
        drop: _D,
        slow: Callable[[_D, bytes], tuple[int, int | None, bytes | None]],
        backlog: list[bytes],
    ) -> None:
        """Judge packets until stop(); ``slow``'s mark is OR-ed into the packet's mark."""

    def stop(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
