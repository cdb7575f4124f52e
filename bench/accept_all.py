"""The NFQUEUE ceiling: accept every queued packet with the plainest callback there is.

What it does: installs the very chain ``inline-ips run`` installs
(:func:`inline_ips.firewall.iptables.install` with a default
:class:`~inline_ips.firewall.iptables.FirewallConfig`: FORWARD jump, the
blocklist set match, the bypass connmark RETURN, NFQUEUE with
``--queue-bypass``, the mangle CONNMARK chain), binds queue 0 with
NetfilterQueue (4096 packets, like ``inline-ips run --queue-maxlen``) and
answers every packet with ``pkt.accept()``, nothing else. It prints
``ready`` on stdout once the queue is bound, so a harness can wait for it.

``--loop`` picks the receive loop: ``run`` (default, the ceiling:
NetfilterQueue's C loop, one ``recv`` per packet), ``run_socket`` (its
Python-level loop, one ``sock.recv`` per packet, what inline-ips used
before its own loop), or ``fast``: inline-ips's own C loop
(:mod:`inline_ips.source._nfqloop`, queue bound by
:func:`~inline_ips.source.nfqueue.bind_queue`, fail-open off like the
others) calling a handler that returns the shared accept decision, so
accepts go out as batch verdicts; what it costs over ``run`` is the Python
call, the payload ``bytes`` and the time ``float`` per packet.

SIGTERM or SIGINT removes the rules (:func:`~inline_ips.firewall.iptables.remove`)
and exits at once; exiting closes the netlink socket, which unbinds the
queue, and ``--queue-bypass`` carries whatever comes after.

Whatever inline-ips adds per packet (decoding, flows, rules, EVE, metrics,
its stop-aware receive loop) is what separates it from this process: same
kernel path, same rules, same queue, same copy range (``fast`` copies up to
65535 bytes, the others 4016: the same for small packets), no Python work.

What it does not do: set the queue's fail-open flag (a full queue drops, as
the kernel does by default, so everything delivered was seen here), count
packets (the kernel's ``/proc/net/netfilter/nfnetlink_queue`` does), judge,
mark or change anything. Needs root and NetfilterQueue (``--loop fast``: the
built extension instead); run it inside the router's namespace
(``python -m bench.accept_all``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from inline_ips.firewall.iptables import FirewallConfig, install, remove

QUEUE_MAXLEN = 4096  # inline-ips run's default --queue-maxlen


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.accept_all", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--loop",
        choices=("run", "run_socket", "fast"),
        default="run",
        help="NetfilterQueue's C receive loop (run, default), its Python-level run_socket, "
        "or inline-ips's own C loop (fast: recvmmsg, batch verdicts)",
    )
    ap.add_argument("--maxlen", type=int, default=QUEUE_MAXLEN, help="queue length (default 4096)")
    args = ap.parse_args(argv)

    cfg = FirewallConfig()

    def stop(signum: int, frame: FrameType | None) -> None:
        # Remove the rules first, so nothing new is queued, then leave without
        # unwinding: an exception raised inside the library's callback would be
        # left pending in its C loop.
        try:
            remove(cfg)
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.loop == "fast":
        try:
            install(cfg)
            _run_fast(cfg.queue_num, args.maxlen)
        finally:
            remove(cfg)
        return 0

    from netfilterqueue import NetfilterQueue, Packet  # noqa: PLC0415 - needs the "live" extra

    nfq = NetfilterQueue()
    try:
        install(cfg)

        def accept(pkt: Packet) -> None:
            pkt.accept()

        nfq.bind(cfg.queue_num, accept, max_len=args.maxlen)
        print("ready", flush=True)
        if args.loop == "run":
            nfq.run()
        else:
            import socket  # noqa: PLC0415

            with socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW) as sock:
                nfq.run_socket(sock)
    finally:
        remove(cfg)
    return 0


def _run_fast(queue_num: int, maxlen: int) -> None:
    """Accept every packet with inline-ips's C loop; returns only through the signal handler's exit."""
    from inline_ips.source._nfqloop import Loop  # noqa: PLC0415 - built by the editable install
    from inline_ips.source.nfqueue import bind_queue  # noqa: PLC0415

    accept, never = object(), object()  # the handler only ever answers accept

    def handler(raw: bytes, ts: float) -> object:
        return accept

    def slow(decision: object, raw: bytes) -> tuple[int, int | None, bytes | None]:
        return (1, None, None)

    backlog: list[bytes] = []
    sock = bind_queue(queue_num, False, maxlen, backlog=backlog)
    print("ready", flush=True)
    with sock:
        Loop(sock.fileno(), queue_num, 0x40000000).run(handler, accept, never, never, slow, backlog)


if __name__ == "__main__":
    sys.exit(main())
