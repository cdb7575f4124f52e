"""Type stub for the compiled common case of FlowTable.lookup (inline_ips/_fastflow.c)."""

from collections import OrderedDict
from collections.abc import Callable

from inline_ips.flow import Flow, FlowKey
from inline_ips.packet import Packet

def setup(
    flow_class: type[Flow],
    packet_class: type[Packet],
    proto_tcp: int,
    syn: int,
    ack: int,
    fin: int,
    rst: int,
    /,
) -> None: ...
def lookup(
    state: tuple[
        OrderedDict[FlowKey, Flow],
        Callable[[FlowKey], None],
        float,
        Callable[[Packet, bool], tuple[Flow, bool]],
    ],
    pkt: Packet,
    tcp_state: bool = True,
    /,
) -> tuple[Flow, bool]: ...
