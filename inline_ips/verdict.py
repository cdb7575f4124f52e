"""Verdicts and alerts: what the engine decides about one packet, and why.

Every non-accept verdict carries a :class:`Reason` and the id of the rule that
caused it. The reason's string value is used unchanged as the EVE ``drop.reason``
field and as the Prometheus ``reason`` label, so the three always agree.
When several rules match, the strongest action wins (:func:`strongest`).
This module only describes decisions; ``respond`` carries them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final


class Action(IntEnum):
    """What happens to the packet. Higher values are stronger."""

    ACCEPT = 0
    REWRITE = 1  # accept, after changing bytes in place
    DROP = 2
    REJECT = 3  # drop, and tell both ends (TCP RST / ICMP unreachable)
    BLOCK = 4  # drop, and put the source in the kernel blocklist for a while

    @property
    def blocks(self) -> bool:
        """True when the packet does not go on (EVE ``alert.action`` "blocked")."""
        return self >= Action.DROP


class Reason(StrEnum):
    """Why a packet was not simply accepted (Suricata enumerates its drop reasons too)."""

    RULE = "rule"  # a signature rule matched
    RATE = "rate"  # a rate rule's threshold was crossed
    FLOW_DROP = "flow_drop"  # an earlier packet of this flow was dropped by a rule
    BLOCKLIST = "blocklist"  # the source is in the blocklist
    DECODE_ERROR = "decode_error"  # malformed packet, only when fail-closed on decode errors
    NORMALIZE = "normalize"  # rewritten by normalisation (MSS clamp, TTL), not by a rule
    NONE = "none"  # accepted


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: Reason = Reason.NONE
    rule_id: int = 0
    block_seconds: int = 0
    # (offset into the IP datagram, new bytes of the same length), for REWRITE.
    replacements: tuple[tuple[int, bytes], ...] = ()


ACCEPT = Verdict(Action.ACCEPT)

# Members as module globals, for code that runs for every packet: on Python 3.11 each read
# of ``Action.DROP`` goes through EnumType.__getattr__ (about 0.1 us), a global's does not.
ACCEPT_ACTION: Final = Action.ACCEPT
REWRITE_ACTION: Final = Action.REWRITE
DROP_ACTION: Final = Action.DROP


def strongest(a: Verdict, b: Verdict) -> Verdict:
    """The stronger of two verdicts; on a tie the first one stays."""
    return b if b.action > a.action else a


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule firing on one packet (or one application transaction)."""

    sid: int
    gid: int
    rev: int
    msg: str
    category: str
    severity: int
    action: Action  # what the rule asked for; the packet's final verdict may be stronger
    metadata: Mapping[str, Sequence[str]] = field(default_factory=dict)
    target: str = ""  # the rule's target keyword: "src_ip" or "dest_ip" is the attacked end
