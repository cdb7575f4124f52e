"""Live packets from an NFQUEUE: bind the queue, judge each packet, give the kernel a verdict.

Does: :class:`NfqueueSource` binds one netfilter queue with NetfilterQueue,
makes it fail open (:func:`set_queue_flags`), and for every queued packet
calls ``handler(ip datagram bytes, wall-clock time)``, which returns a
:class:`Decision`. The decision becomes the kernel verdict: ACCEPT accepts
(optionally OR-ing the bypass mark into the packet mark, so an iptables
``CONNMARK --save-mark`` rule can take the rest of the connection out of the
queue), REWRITE applies the byte replacements with
:func:`inline_ips.respond.rewrite.apply_replacements` and accepts the changed
packet, DROP / REJECT / BLOCK drop it. An exception in the handler or in the
rewrite is counted and the packet is accepted unchanged: an IPS bug must not
black-hole traffic. :func:`read_queue_stats` reads the kernel's per-queue
counters from ``/proc/net/netfilter/nfnetlink_queue``.

Fail-open: NetfilterQueue 1.1.0 has no switch for ``NFQA_CFG_F_FAIL_OPEN``, and
the kernel takes a queue's config only from the netlink socket that bound it
(others get EPERM), so :func:`set_queue_flags` writes the nfnetlink config
message itself on a duplicate of that socket's descriptor. With the flag, a
packet that finds the queue full (``maxlen``) or the socket buffer full is
accepted by the kernel without being judged, instead of dropped; neither
``queue_dropped`` nor ``user_dropped`` counts it.

The callback is the hot path (about 13 µs per packet at the NFQUEUE ceiling):
it does no logging, keeps its lookups in closure locals and allocates nothing
of its own on accept and drop. ``run`` honours its stop event within about
:data:`POLL_SECONDS`, also under load (see :class:`_Reader`).

Does not: install iptables rules or the CONNMARK rule (``firewall`` does), send
reject replies or block addresses (the handler does that with ``respond``), decode
or judge packets (the engine does), or read packets larger than NetfilterQueue's
copy range (4016 bytes: a longer packet arrives cut short, and a rewrite of it
is refused and the packet accepted unchanged). Packets are judged in one thread.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from inline_ips.respond.rewrite import apply_replacements
from inline_ips.verdict import Action

if TYPE_CHECKING:
    from netfilterqueue import Packet as NfqPacket

__all__ = [
    "ACCEPT",
    "BYPASS",
    "DROP",
    "POLL_SECONDS",
    "Decision",
    "Handler",
    "NfqueueSource",
    "QueueConfigError",
    "build_config_message",
    "parse_queue_stats",
    "read_queue_stats",
    "set_queue_flags",
]

# nfnetlink / nfnetlink_queue constants (linux/netfilter/nfnetlink*.h).
NETLINK_NETFILTER: Final = 12
NLMSG_ERROR: Final = 2
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_CONFIG: Final = 2
NFQA_CFG_QUEUE_MAXLEN: Final = 3
NFQA_CFG_MASK: Final = 4
NFQA_CFG_FLAGS: Final = 5
NFQA_CFG_F_FAIL_OPEN: Final = 1

PROC_QUEUES: Final = Path("/proc/net/netfilter/nfnetlink_queue")
POLL_SECONDS: Final = 0.25  # how long a receive waits before the stop event is looked at again
ACK_TIMEOUT: Final = 2.0
_RECV_SIZE: Final = 65536

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, portid (host order)
_NLATTR = struct.Struct("=HH")  # length, type (host order); the values themselves are big-endian
_seq = itertools.count(0x49505300)  # "IPS\0": our config sequence numbers


class QueueConfigError(Exception):
    """The kernel refused (or never answered) a queue configuration message."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one queued packet: the handler's answer to the source."""

    action: Action
    # (offset into the IP datagram, new bytes of the same length), for REWRITE.
    replacements: tuple[tuple[int, bytes], ...] = ()
    # Set the bypass mark, so the connection can leave the queue (CONNMARK).
    bypass: bool = False


# Shared decisions, so a handler need not build an object per packet.
ACCEPT: Final = Decision(Action.ACCEPT)
DROP: Final = Decision(Action.DROP)
BYPASS: Final = Decision(Action.ACCEPT, bypass=True)


def _attr(kind: int, value: bytes) -> bytes:
    length = _NLATTR.size + len(value)
    return _NLATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def build_config_message(queue_num: int, fail_open: bool, maxlen: int | None, seq: int) -> bytes:
    """The NFQNL_MSG_CONFIG request setting the fail-open flag (and the queue length).

    Layout: nlmsghdr (16 bytes, host order: length, type = NFNL_SUBSYS_QUEUE << 8 |
    NFQNL_MSG_CONFIG, flags = NLM_F_REQUEST | NLM_F_ACK, seq, portid 0), nfgenmsg
    (family AF_UNSPEC, version 0, res_id = queue number big-endian), then the
    attributes NFQA_CFG_QUEUE_MAXLEN (when given), NFQA_CFG_MASK and
    NFQA_CFG_FLAGS, each a 32-bit big-endian value. The mask names only the
    fail-open bit, so other flags the library may have set stay as they are.
    """
    if not 0 <= queue_num <= 0xFFFF:
        raise ValueError(f"queue number {queue_num} out of range 0-65535")
    body = struct.pack(">BBH", socket.AF_UNSPEC, 0, queue_num)
    if maxlen is not None:
        if not 1 <= maxlen <= 0xFFFFFFFF:
            raise ValueError(f"queue length {maxlen} out of range")
        body += _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen))
    body += _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN))
    body += _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN if fail_open else 0))
    msg_type = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def set_queue_flags(
    fd: int,
    queue_num: int,
    fail_open: bool,
    maxlen: int | None,
    *,
    backlog: list[bytes] | None = None,
    timeout: float = ACK_TIMEOUT,
) -> None:
    """Configure queue ``queue_num`` through ``fd``, the netlink socket that bound it, and check the ACK.

    Raises :class:`QueueConfigError` naming the kernel's reason (EPERM: ``fd``
    did not bind the queue; ENODEV: nobody bound it; EOPNOTSUPP: the kernel
    lacks the flag) or when no answer comes within ``timeout`` seconds.
    The queue is live while we wait, so packet messages can arrive before the
    ACK: they are appended to ``backlog`` (or discarded when it is None, which
    leaves those packets unjudged until the queue is unbound), for the caller
    to feed to the library. ``fd`` itself is left as it was (it is duplicated).
    """
    seq = next(_seq) & 0xFFFFFFFF
    msg = build_config_message(queue_num, fail_open, maxlen, seq)
    with socket.socket(fileno=os.dup(fd)) as sock:
        try:
            sock.sendto(msg, (0, 0))  # portid 0: the kernel
        except OSError as e:
            raise QueueConfigError(f"queue {queue_num}: cannot send the config message: {e}") from e
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise QueueConfigError(f"queue {queue_num}: no answer to the config message in {timeout} s")
            try:
                data = sock.recv(_RECV_SIZE)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    continue  # the kernel dropped messages for us; ours may still come
                raise QueueConfigError(f"queue {queue_num}: reading the config answer: {e}") from e
            if len(data) < _NLMSGHDR.size:
                continue
            _, msg_type, _, msg_seq, _ = _NLMSGHDR.unpack_from(data)
            if msg_type != NLMSG_ERROR:
                if backlog is not None:
                    backlog.append(data)
                continue
            if msg_seq != seq or len(data) < _NLMSGHDR.size + 4:
                continue  # an answer to someone else's request
            (err,) = struct.unpack_from("=i", data, _NLMSGHDR.size)
            if err:
                what = "fail-open" if fail_open else "fail-closed"
                raise QueueConfigError(
                    f"queue {queue_num}: the kernel refused the {what} config: "
                    f"{os.strerror(-err)} ({errno.errorcode.get(-err, -err)})"
                )
            return


_STATS_FIELDS: Final = (
    "portid",
    "queue_total",
    "copy_mode",
    "copy_range",
    "queue_dropped",
    "user_dropped",
    "id_sequence",
)


def parse_queue_stats(text: str) -> dict[int, dict[str, int]]:
    """Parse the text of /proc/net/netfilter/nfnetlink_queue into {queue: {counter: value}}.

    Columns: queue, portid, queue_total (now waiting), copy_mode, copy_range,
    queue_dropped (queue full), user_dropped (socket buffer full), id_sequence
    (packets queued so far), 1. Lines that do not parse are skipped.
    """
    out: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 1 + len(_STATS_FIELDS):
            continue
        try:
            nums = [int(f) for f in fields[: 1 + len(_STATS_FIELDS)]]
        except ValueError:
            continue
        out[nums[0]] = dict(zip(_STATS_FIELDS, nums[1:], strict=True))
    return out


def read_queue_stats(path: Path = PROC_QUEUES) -> dict[int, dict[str, int]]:
    """The kernel's counters for every bound queue of this network namespace ({} when none)."""
    try:
        return parse_queue_stats(path.read_text())
    except FileNotFoundError:
        return {}  # nfnetlink_queue not loaded: no queue is bound


class _StopRequestedError(Exception):
    """Raised through the library's receive loop to leave it when the stop event is set."""


def _stop_requested(size: int) -> bytes:
    raise _StopRequestedError


class _Reader:
    """What the library's ``run_socket`` reads from: an object with a ``recv`` attribute.

    ``recv`` is the socket's own C method, so a packet costs no Python frame
    here; to stop, a watcher thread swaps it for :func:`_stop_requested` (the
    library looks the attribute up before every receive, so this takes effect
    even when packets never stop coming).
    """

    __slots__ = ("recv",)

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self.recv = recv


class _Replay:
    """Hands the library messages that arrived while we waited for the config ACK."""

    __slots__ = ("_msgs",)

    def __init__(self, msgs: list[bytes]) -> None:
        self._msgs = msgs

    def recv(self, size: int) -> bytes:
        if not self._msgs:
            raise BlockingIOError(errno.EAGAIN, "no more saved messages")
        return self._msgs.pop(0)


Handler = Callable[[bytes, float], Decision]


class NfqueueSource:
    """One NFQUEUE bound in this process's network namespace, judged by ``handler``.

    ``stats`` counts packets, accepted, dropped, rewritten, bypass_marked,
    handler_errors (the handler raised; packet accepted), rewrite_errors (the
    replacements could not be applied; packet accepted unchanged),
    verdict_errors (the library refused the verdict). ``ready`` is set once
    the queue is bound and configured.
    """

    def __init__(
        self,
        queue_num: int,
        handler: Handler,
        *,
        maxlen: int = 4096,
        fail_open: bool = True,
        bypass_mark: int = 0x40000000,
    ) -> None:
        if not 0 <= queue_num <= 0xFFFF:
            raise ValueError(f"queue number {queue_num} out of range 0-65535")
        if maxlen < 1:
            raise ValueError(f"queue length {maxlen} must be at least 1")
        if not 0 < bypass_mark <= 0xFFFFFFFF:
            raise ValueError(f"bypass mark {bypass_mark:#x} must be a non-zero 32-bit value")
        self.queue_num = queue_num
        self.handler = handler
        self.maxlen = maxlen
        self.fail_open = fail_open
        self.bypass_mark = bypass_mark
        self.ready = threading.Event()
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "packets",
                "accepted",
                "dropped",
                "rewritten",
                "bypass_marked",
                "handler_errors",
                "rewrite_errors",
                "verdict_errors",
            ),
            0,
        )
        self.callback = self._make_callback()

    def _make_callback(self) -> Callable[[NfqPacket], None]:
        """The per-packet function the library calls; everything it needs is a closure local."""
        handler = self.handler
        stats = self.stats
        now = time.time
        mark = self.bypass_mark
        accept_action = Action.ACCEPT
        rewrite_action = Action.REWRITE
        apply = apply_replacements

        def callback(pkt: NfqPacket) -> None:
            stats["packets"] += 1
            try:
                raw = pkt.get_payload()
                decision = handler(raw, now())
                action = decision.action
            except Exception:
                # Fail open: a handler bug must not drop traffic or stop the loop.
                stats["handler_errors"] += 1
                decision = ACCEPT
                action = accept_action
            try:
                if action is accept_action:
                    if decision.bypass:
                        pkt.set_mark(pkt.get_mark() | mark)
                        stats["bypass_marked"] += 1
                    stats["accepted"] += 1
                    pkt.accept()
                elif action is rewrite_action:
                    try:
                        new = apply(raw, decision.replacements)
                    except Exception:
                        stats["rewrite_errors"] += 1  # accepted unchanged (fail open)
                    else:
                        if new is not raw:
                            pkt.set_payload(new)
                            stats["rewritten"] += 1
                    if decision.bypass:
                        pkt.set_mark(pkt.get_mark() | mark)
                        stats["bypass_marked"] += 1
                    stats["accepted"] += 1
                    pkt.accept()
                else:
                    # DROP, REJECT, BLOCK: the packet does not go on; replies and blocks are the handler's.
                    stats["dropped"] += 1
                    pkt.drop()
            except Exception:
                # An exception escaping into the library would be left pending in its C
                # loop; count it instead (the packet may stay queued until unbind).
                stats["verdict_errors"] += 1

        return callback

    def run(self, stop: threading.Event | None = None) -> None:
        """Bind the queue, make it fail open (or closed), judge packets until ``stop`` is set.

        Raises OSError when the queue cannot be bound (not root, or another
        process holds it) and :class:`QueueConfigError` when the kernel refuses
        the flags; the queue is always unbound on the way out, after which the
        kernel's ``--queue-bypass`` (or a drop, without it) takes over.
        """
        # The "live" extra: replay and the unit tests do not need NetfilterQueue installed.
        from netfilterqueue import NetfilterQueue  # noqa: PLC0415

        stop = stop if stop is not None else threading.Event()
        nfq = NetfilterQueue()
        sock: socket.socket | None = None
        done = threading.Event()
        try:
            nfq.bind(self.queue_num, self.callback, max_len=self.maxlen)
            # Our own socket object on the library's netlink socket: same portid, so the
            # kernel takes the config from it.
            sock = socket.socket(fileno=os.dup(nfq.get_fd()))
            backlog: list[bytes] = []
            set_queue_flags(sock.fileno(), self.queue_num, self.fail_open, self.maxlen, backlog=backlog)
            if backlog:
                nfq.run_socket(_Replay(backlog))  # type: ignore[arg-type]  # duck-typed: needs recv()
            # Non-blocking, not a timeout: a socket with a timeout polls before every
            # receive (one more system call per packet). The library returns on EAGAIN
            # and we wait here with select, looking at the stop event in between.
            sock.setblocking(False)
            reader = _Reader(sock.recv)
            threading.Thread(target=self._watch, args=(stop, done, reader), daemon=True).start()
            self.ready.set()
            while not stop.is_set():
                try:
                    nfq.run_socket(reader)  # type: ignore[arg-type]
                except _StopRequestedError:
                    break
                select.select((sock,), (), (), POLL_SECONDS)
        finally:
            done.set()
            self.ready.clear()
            if sock is not None:
                # The descriptor's non-blocking flag is shared with the library's; its
                # unbind waits for the kernel's answer on it, so make it blocking again.
                sock.setblocking(True)
                sock.close()
            nfq.unbind()

    @staticmethod
    def _watch(stop: threading.Event, done: threading.Event, reader: _Reader) -> None:
        """Break the receive loop once ``stop`` is set, even if packets keep coming."""
        while not done.is_set():
            if stop.wait(POLL_SECONDS):
                reader.recv = _stop_requested
                return
