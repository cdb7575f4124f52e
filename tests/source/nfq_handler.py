"""Processes for the NFQUEUE integration tests, each run inside a test namespace.

``python -m tests.source.nfq_handler <command>`` with one of:

* ``source QUEUE``: run an :class:`~inline_ips.source.nfqueue.NfqueueSource`
  in the router namespace with a tiny handler. ``--mode functional``: UDP to
  port 9 is dropped, TCP/UDP to port 10 or 23 rejected (replies sent with a
  :class:`~inline_ips.respond.reject.Rejecter`), port 7 accepted with the
  bypass mark, port 11 makes the handler raise, a UDP payload of exactly
  ``KeyboardInterrupt`` makes it raise that, every ``hello`` in a TCP/UDP
  payload is rewritten to ``HELLO``, and UDP to port 5002 whose sequence
  number (see ``seqflood``) is a multiple of 7 gets BYPASS, of 11 a fresh
  ACCEPT decision (not the shared one). ``--mode sleep``: accept each packet
  after sleeping ``--sleep`` seconds (to fill the queue). ``--receive``:
  the source's receive path (auto, fast, library). Prints ``READY`` once the
  queue is bound and configured, the stats as JSON on SIGUSR1, and the stats
  again (``FINAL``) after SIGTERM stops it (``INTERRUPTED`` first when a
  KeyboardInterrupt ended it).
* ``sink``: print each UDP datagram / TCP stream received on the given
  ports as ``udp|tcp PORT HEX``; dual-stack, so IPv4 and IPv6 alike.
* ``count PORT``: count UDP datagrams until none came for ``--idle`` seconds.
* ``seqsink PORT``: like ``count``, for ``seqflood``'s datagrams: prints
  ``SEQ`` and a JSON summary (how many, whether in order, the rewrites seen).
* ``flood HOST PORT N``, ``seqflood HOST PORT N`` (datagrams ``seq`` + a
  32-bit sequence number + ``hello`` when it is a multiple of 13, else
  ``-----``), ``udp HOST PORT TEXT``, ``tcp HOST PORT TEXT``,
  ``udp-refused HOST PORT``: traffic from the client namespace.

Not a test module itself (pytest collects only ``test_*.py``). It never
touches iptables or namespaces: the test does that.
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inline_ips.respond.reject import Rejecter
    from inline_ips.source.nfqueue import Decision, Handler

BYPASS_PORT = 7
DROP_PORT = 9
REJECT_PORTS = (10, 23)
RAISE_PORT = 11
SEQ_PORT = 5002
INTERRUPT = b"KeyboardInterrupt"
SO_RCVBUFFORCE = 33  # Linux; the socket module does not name it


def _say(*parts: object) -> None:
    print(*parts, flush=True)


def functional_handler(rejecter: Rejecter) -> Handler:
    from inline_ips.source.nfqueue import ACCEPT, BYPASS, DROP, Decision
    from inline_ips.verdict import Action

    reject = Decision(Action.REJECT)
    fresh_accept = Decision(Action.ACCEPT)  # equal to ACCEPT, but not it: the slow path

    def handle(raw: bytes, ts: float) -> Decision:
        if raw[0] >> 4 == 4:
            l4 = (raw[0] & 15) * 4
            proto = raw[9]
        else:
            l4 = 40  # the tests send no extension headers
            proto = raw[6]
        if proto not in (6, 17):
            return ACCEPT
        dport = raw[l4 + 2] << 8 | raw[l4 + 3]
        if dport == RAISE_PORT:
            raise RuntimeError("a handler bug, on purpose")
        if proto == 17 and raw[l4 + 8 :] == INTERRUPT:
            raise KeyboardInterrupt
        if dport == DROP_PORT and proto == 17:
            return DROP
        if dport == SEQ_PORT and proto == 17 and raw[l4 + 8 : l4 + 11] == b"seq":
            n = int.from_bytes(raw[l4 + 11 : l4 + 15], "big")
            if n % 7 == 0:
                return BYPASS
            if n % 11 == 0:
                return fresh_accept
        if dport in REJECT_PORTS:
            rejecter.send(raw)
            return reject
        if dport == BYPASS_PORT:
            return BYPASS
        reps = []
        i = raw.find(b"hello", l4 + 8)
        while i >= 0:
            reps.append((i, b"HELLO"))
            i = raw.find(b"hello", i + 5)
        return Decision(Action.REWRITE, tuple(reps)) if reps else ACCEPT

    return handle


def sleep_handler(seconds: float) -> Handler:
    from inline_ips.source.nfqueue import ACCEPT

    def handle(raw: bytes, ts: float) -> Decision:
        time.sleep(seconds)
        return ACCEPT

    return handle


def cmd_source(args: argparse.Namespace) -> None:
    from inline_ips.source.nfqueue import NfqueueSource

    if args.mode == "functional":
        from inline_ips.respond.reject import Rejecter

        handler = functional_handler(Rejecter())
    else:
        handler = sleep_handler(args.sleep)
    source = NfqueueSource(
        args.queue, handler, maxlen=args.maxlen, fail_open=not args.fail_closed, receive=args.receive
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: _say("STATS", json.dumps(source.stats)))

    def announce() -> None:
        if source.ready.wait(10):
            _say("READY")

    threading.Thread(target=announce, daemon=True).start()
    try:
        source.run(stop)
    except KeyboardInterrupt:
        _say("INTERRUPTED")
    _say("FINAL", json.dumps(source.stats))


def _listener(kind: int, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    return s


def cmd_sink(args: argparse.Namespace) -> None:
    sel = selectors.DefaultSelector()
    for port in args.udp:
        sel.register(_listener(socket.SOCK_DGRAM, port), selectors.EVENT_READ, ("udp", port))
    for port in args.tcp:
        sel.register(_listener(socket.SOCK_STREAM, port), selectors.EVENT_READ, ("listen", port))
    streams: dict[socket.socket, bytearray] = {}
    _say("READY")
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            kind, port = key.data
            if kind == "udp":
                _say("udp", port, sock.recv(65536).hex())
            elif kind == "listen":
                conn, _ = sock.accept()
                streams[conn] = bytearray()
                sel.register(conn, selectors.EVENT_READ, ("tcp", port))
            else:
                data = sock.recv(65536)
                if data:
                    streams[sock] += data
                else:
                    _say("tcp", port, streams.pop(sock).hex())
                    sel.unregister(sock)
                    sock.close()


def cmd_count(args: argparse.Namespace) -> None:
    s = _listener(socket.SOCK_DGRAM, args.port)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    _say("READY")
    s.settimeout(args.wait)  # the first datagram may take a while
    n = 0
    try:
        while True:
            s.recv(2048)
            n += 1
            s.settimeout(args.idle)
    except TimeoutError:
        pass
    _say("COUNT", n)


def cmd_seqsink(args: argparse.Namespace) -> None:
    s = _listener(socket.SOCK_DGRAM, args.port)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    _say("READY")
    s.settimeout(args.wait)
    seqs: list[int] = []
    rewrites_ok = 0
    try:
        while True:
            data = s.recv(2048)
            s.settimeout(args.idle)
            n = int.from_bytes(data[3:7], "big")
            seqs.append(n)
            rewrites_ok += n % 13 == 0 and data[7:] == b"HELLO"
    except TimeoutError:
        pass
    disorder = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
    summary = {
        "count": len(seqs),
        "distinct": len(set(seqs)),
        "in_order": disorder is None,
        "first_disorder": None if disorder is None else seqs[disorder - 1 : disorder + 1],
        "rewrites_ok": rewrites_ok,
    }
    _say("SEQ", json.dumps(summary))


def cmd_seqflood(args: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((args.host, args.port))
    sent = 0
    for n in range(args.n):
        tail = b"hello" if n % 13 == 0 else b"-----"
        try:
            s.send(b"seq" + n.to_bytes(4, "big") + tail)
            sent += 1
        except OSError:
            pass
    _say("SENT", sent)


def cmd_flood(args: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((args.host, args.port))
    payload = b"x" * 36  # a 64-byte IPv4 datagram
    sent = 0
    for _ in range(args.n):
        try:
            s.send(payload)
            sent += 1
        except OSError:
            pass
    _say("SENT", sent)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def cmd_udp(args: argparse.Namespace) -> None:
    with socket.socket(_family(args.host), socket.SOCK_DGRAM) as s:
        s.sendto(args.text.encode(), (args.host, args.port))
    _say("SENT")


def cmd_tcp(args: argparse.Namespace) -> None:
    try:
        with socket.create_connection((args.host, args.port), timeout=5) as s:
            s.sendall(args.text.encode())
    except ConnectionRefusedError:
        _say("REFUSED")
        return
    except OSError as e:
        _say("ERROR", e)
        return
    _say("SENT")


def cmd_udp_refused(args: argparse.Namespace) -> None:
    with socket.socket(_family(args.host), socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((args.host, args.port))
        s.send(b"anyone there?")
        try:
            s.recv(100)
        except ConnectionRefusedError:
            _say("REFUSED")
            return
        except TimeoutError:
            _say("TIMEOUT")
            return
    _say("ANSWERED")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nfq_handler")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("source")
    s.add_argument("queue", type=int)
    s.add_argument("--mode", choices=("functional", "sleep"), default="functional")
    s.add_argument("--sleep", type=float, default=0.002)
    s.add_argument("--maxlen", type=int, default=4096)
    s.add_argument("--fail-closed", action="store_true")
    s.add_argument("--receive", choices=("auto", "fast", "library"), default="auto")
    s.set_defaults(func=cmd_source)
    s = sub.add_parser("sink")
    s.add_argument("--udp", type=int, action="append", default=[])
    s.add_argument("--tcp", type=int, action="append", default=[])
    s.set_defaults(func=cmd_sink)
    s = sub.add_parser("count")
    s.add_argument("port", type=int)
    s.add_argument("--idle", type=float, default=0.5)
    s.add_argument("--wait", type=float, default=10.0)
    s.set_defaults(func=cmd_count)
    s = sub.add_parser("seqsink")
    s.add_argument("port", type=int)
    s.add_argument("--idle", type=float, default=1.0)
    s.add_argument("--wait", type=float, default=10.0)
    s.set_defaults(func=cmd_seqsink)
    for name, func in (("flood", cmd_flood), ("seqflood", cmd_seqflood)):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("port", type=int)
        s.add_argument("n", type=int)
        s.set_defaults(func=func)
    for name, func in (("udp", cmd_udp), ("tcp", cmd_tcp)):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("port", type=int)
        s.add_argument("text")
        s.set_defaults(func=func)
    s = sub.add_parser("udp-refused")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.set_defaults(func=cmd_udp_refused)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
