"""Type stub for the compiled common case of RateTracker.update (inline_ips/detect/_fastrate.c)."""

from typing import Any

from inline_ips.detect.rate import RateTracker, _Window
from inline_ips.flow import Flow
from inline_ips.packet import Packet

def setup(window_class: type[_Window], packet_class: type[Packet], /) -> None: ...
def update(
    state: tuple[Any, ...], tracker: RateTracker, pkt: Packet, flow: Flow, to_server: bool, /
) -> int: ...
