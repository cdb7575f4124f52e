"""One byte budget shared by the application-layer buffers of every flow.

Does: :class:`Memcap` counts the bytes that the stream parsers
(``http_stream``, ``tls_stream``, ``dns_stream``) hold across all flows:
partial HTTP heads and chunk lines, HTTP bodies kept for inspection, a
CONNECT's held bytes, a TLS handshake message being collected, a DNS/TCP
message being framed. Each parser settles its own share after each ``feed``
(:meth:`Memcap.settle`, O(1): the parser knows what it holds) and gives it
back when its flow leaves the flow table (``release``). While the budget is
spent, a parser treats the next bytes of a direction as lost (a gap): HTTP
resynchronises at the next message, TLS and DNS stop that direction. That is
Suricata's behaviour at its stream and app-layer memcaps; each refusal is
counted (``refused``), so a flood that starves inspection is visible in
telemetry rather than in the kernel's OOM killer.

Bound: ``used`` never exceeds ``cap`` plus what one ``feed`` can add before
it settles (one segment's payload, or one HTTP body chunk decompressed up to
the body limit). Per-flow limits (``HttpLimits``, the TLS and DNS message
limits) still apply inside the budget.

Does not: track the flow table's own memory (flows, stream windows; see
``flow.FlowOptions``), copies made for inspection (an HTTP body's ``bytes``
view, at most as large again), or anything outside the app-layer parsers.
"""

from __future__ import annotations

from typing import Final

DEFAULT_APP_MEMCAP: Final = 256 << 20  # Suricata's stream.reassembly.memcap default: 256 MiB


class Memcap:
    """A byte budget; parsers settle what they hold and give it back when their flow goes."""

    __slots__ = ("cap", "peak", "refused", "used")

    def __init__(self, cap: int = DEFAULT_APP_MEMCAP) -> None:
        if cap < 0:
            raise ValueError(f"app memcap must be at least 0 bytes, got {cap}")
        self.cap = cap
        self.used = 0
        self.peak = 0
        self.refused = 0  # feeds turned into gaps because the budget was spent

    @property
    def full(self) -> bool:
        return self.used >= self.cap

    def settle(self, held: int, charged: int) -> int:
        """A parser that had ``charged`` bytes now holds ``held``: account the difference.

        Returns ``held``, the parser's new charge.
        """
        used = self.used + held - charged
        self.used = used
        self.peak = max(self.peak, used)
        return held

    def refuse(self) -> None:
        self.refused += 1


__all__ = ["DEFAULT_APP_MEMCAP", "Memcap"]
