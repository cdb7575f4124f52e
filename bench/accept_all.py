"""The NFQUEUE ceiling: accept every queued packet with the plainest callback there is.

What it does: installs the very chain ``inline-ips run`` installs
(:func:`inline_ips.firewall.iptables.install` with a default
:class:`~inline_ips.firewall.iptables.FirewallConfig`: FORWARD jump, the
blocklist set match, the bypass connmark RETURN, NFQUEUE with
``--queue-bypass``, the mangle CONNMARK chain), binds queue 0 with
NetfilterQueue (4096 packets, like ``inline-ips run --queue-maxlen``) and
answers every packet with ``pkt.accept()``, nothing else. It prints
``ready`` on stdout once the queue is bound, so a harness can wait for it.
SIGTERM or SIGINT removes the rules (:func:`~inline_ips.firewall.iptables.remove`)
and exits at once; exiting closes the netlink socket, which unbinds the
queue, and ``--queue-bypass`` carries whatever comes after.

Whatever inline-ips adds per packet (decoding, flows, rules, EVE, metrics,
its stop-aware receive loop) is what separates it from this process: same
kernel path, same rules, same queue, same copy range, no Python work.

What it does not do: set the queue's fail-open flag (a full queue drops, as
the kernel does by default, so everything delivered was seen here), count
packets (the kernel's ``/proc/net/netfilter/nfnetlink_queue`` does), judge,
mark or change anything. Needs root and NetfilterQueue; run it inside the
router's namespace (``python -m bench.accept_all``).
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
        choices=("run", "run_socket"),
        default="run",
        help="NetfilterQueue's C receive loop (run, default: faster) or its Python-level run_socket",
    )
    ap.add_argument("--maxlen", type=int, default=QUEUE_MAXLEN, help="queue length (default 4096)")
    args = ap.parse_args(argv)

    from netfilterqueue import NetfilterQueue, Packet  # noqa: PLC0415 - needs the "live" extra

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


if __name__ == "__main__":
    sys.exit(main())
