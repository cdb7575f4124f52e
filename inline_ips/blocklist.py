"""The engine's own view of blocked sources: address -> expiry, capped.

In live operation ``respond/block`` mirrors each entry into a kernel ipset so
later packets are dropped before they reach Python; in replay this table
plays the kernel's part. Entries expire by time; the table never holds more
than ``max_entries`` (what does not fit is refused and counted, never
silent). It does not know about the allowlist: the engine checks that first.

Worst case: ``max_entries`` entries of about 230 bytes (an IPv6 key). While
the table is full, a refused add looks for expired entries at most once per
:data:`PURGE_INTERVAL` seconds of packet time, so a flood of new offenders
against a full table costs O(1) per packet, not a scan each.
"""

from __future__ import annotations

PURGE_INTERVAL = 1.0


class Blocklist:
    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._purged_at = float("-inf")
        # (IP version, address) -> expiry time; others only read it (the engine tests it for emptiness).
        self.expiry: dict[tuple[int, int], float] = {}
        self.stats = {"added": 0, "refused_full": 0, "expired": 0}

    def __len__(self) -> int:
        return len(self.expiry)

    def is_blocked(self, version: int, addr: int, now: float) -> bool:
        until = self.expiry.get((version, addr))
        if until is None:
            return False
        if now >= until:
            del self.expiry[(version, addr)]
            self.stats["expired"] += 1
            return False
        return True

    def add(self, version: int, addr: int, now: float, seconds: float) -> bool:
        """Block for ``seconds`` (extending an existing entry); False if the table is full."""
        key = (version, addr)
        if key not in self.expiry and len(self.expiry) >= self.max_entries:
            if now - self._purged_at >= PURGE_INTERVAL or now < self._purged_at:
                self._purge(now)
            if len(self.expiry) >= self.max_entries:
                self.stats["refused_full"] += 1
                return False
        self.expiry[key] = max(self.expiry.get(key, 0.0), now + seconds)
        self.stats["added"] += 1
        return True

    def _purge(self, now: float) -> None:
        self._purged_at = now
        expired = [k for k, until in self.expiry.items() if now >= until]
        for k in expired:
            del self.expiry[k]
        self.stats["expired"] += len(expired)

    def entries(self, now: float) -> list[tuple[int, int, float]]:
        """(version, address, seconds left) of every live entry."""
        self._purge(now)
        return [(v, a, until - now) for (v, a), until in self.expiry.items()]
