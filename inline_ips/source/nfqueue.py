"""Live packets from an NFQUEUE: bind the queue, judge each packet, give the kernel a verdict.

Does: :class:`NfqueueSource` binds one netfilter queue, makes it fail open
(or closed), and for every queued packet calls ``handler(ip datagram bytes,
wall-clock time)``, which returns a :class:`Decision`. The decision becomes
the kernel verdict: ACCEPT accepts (optionally OR-ing the bypass mark into
the packet mark, so an iptables ``CONNMARK --save-mark`` rule can take the
rest of the connection out of the queue), REWRITE applies the byte
replacements with :func:`inline_ips.respond.rewrite.apply_replacements` and
accepts the changed packet, DROP / REJECT / BLOCK drop it. An exception in
the handler or in the rewrite is counted and the packet is accepted
unchanged: an IPS bug must not black-hole traffic. :func:`read_queue_stats`
reads the kernel's per-queue counters from ``/proc/net/netfilter/nfnetlink_queue``.

Two receive paths, the same verdicts and counters (``receive=``):

* ``"fast"`` (the default ``"auto"`` when it is built): our own nfnetlink
  socket, bound and configured here (:func:`bind_queue`: bind with copy mode
  packet and the largest copy range, whole packets; queue length, fail-open
  flag; each answer checked), and the C loop of
  :mod:`inline_ips.source._nfqloop`: up to 32
  queue messages per ``recvmmsg``, the handler called straight from C, the
  shared :data:`ACCEPT` / :data:`BYPASS` / :data:`DROP` decisions turned into
  verdicts without Python (consecutive accepts become one batch verdict), the
  other decisions through a small Python function (``slow``: rewrites,
  REJECT, BLOCK), one ``send`` of all verdicts per receive batch, in queue
  order. A KeyboardInterrupt or SystemExit from the handler (or a signal
  handler) ends ``run`` after every packet already received is accepted.
* ``"library"`` (the fallback when the extension is not built):
  NetfilterQueue's ``run_socket``, one ``recv`` and one Python callback per
  packet. NetfilterQueue 1.1.0 has no switch for ``NFQA_CFG_F_FAIL_OPEN``,
  and the kernel takes a queue's config only from the netlink socket that
  bound it (others get EPERM), so :func:`set_queue_flags` writes the
  nfnetlink config message itself on a duplicate of that socket's
  descriptor. Its copy range is 4016 bytes: a longer packet arrives cut
  short, and a rewrite of it is refused and the packet accepted unchanged.

Fail-open: with the flag, a packet that finds the queue full (``maxlen``) or
the socket buffer full is accepted by the kernel without being judged,
instead of dropped; neither ``queue_dropped`` nor ``user_dropped`` counts it
(the fast loop counts the kernel's ENOBUFS notices as ``enobufs``).

The hot path does no logging and allocates nothing of its own on accept and
drop. ``run`` honours its stop event within about :data:`POLL_SECONDS`, also
under load (see :class:`_Reader` and ``Loop.stop``). Closing the socket (or
an explicit unbind, which the fast path sends first) releases the queue; the
packets still queued then are dropped by the kernel, and its
``--queue-bypass`` (or a drop, without it) takes over for what comes after.

Does not: install iptables rules or the CONNMARK rule (``firewall`` does), send
reject replies or block addresses (the handler does that with ``respond``), decode
or judge packets (the engine does), or judge packets in more than one thread.
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
from typing import TYPE_CHECKING, Final, Literal

from inline_ips.respond.rewrite import apply_replacements
from inline_ips.verdict import Action

if TYPE_CHECKING:
    from netfilterqueue import Packet as NfqPacket

    from inline_ips.source._nfqloop import Loop

__all__ = [
    "ACCEPT",
    "BYPASS",
    "DROP",
    "FAST_LOOP_ERROR",
    "POLL_SECONDS",
    "STATS_KEYS",
    "Decision",
    "Handler",
    "NfqueueSource",
    "QueueConfigError",
    "bind_queue",
    "build_bind_message",
    "build_config_message",
    "fast_loop_available",
    "parse_queue_stats",
    "read_queue_stats",
    "set_queue_flags",
    "unbind_queue",
]

# nfnetlink / nfnetlink_queue constants (linux/netfilter/nfnetlink*.h).
NETLINK_NETFILTER: Final = 12
NLMSG_ERROR: Final = 2
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_CONFIG: Final = 2
NFQA_CFG_CMD: Final = 1
NFQA_CFG_PARAMS: Final = 2
NFQA_CFG_QUEUE_MAXLEN: Final = 3
NFQA_CFG_MASK: Final = 4
NFQA_CFG_FLAGS: Final = 5
NFQA_CFG_F_FAIL_OPEN: Final = 1
NFQNL_CFG_CMD_BIND: Final = 1
NFQNL_CFG_CMD_UNBIND: Final = 2
NFQNL_COPY_PACKET: Final = 2
COPY_RANGE: Final = 0xFFFF  # the fast path copies whole packets (the kernel's maximum)

PROC_QUEUES: Final = Path("/proc/net/netfilter/nfnetlink_queue")
MAX_SPIN_US: Final = 10_000  # the C loop's own bound on spin_us
POLL_SECONDS: Final = 0.25  # how long a receive waits before the stop event is looked at again
ACK_TIMEOUT: Final = 2.0
_RECV_SIZE: Final = 65536 + 8192  # a whole packet message (payload up to COPY_RANGE)
# The fast path's receive buffer: what NetfilterQueue asks for by default (1024 packets of
# its 4016-byte copy range plus overhead; the kernel doubles it), so both paths hold as much.
_RCVBUF: Final = 1024 * (4016 + 780) // 2
SO_RCVBUFFORCE: Final = 33  # Linux; the socket module does not name it

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, portid (host order)
_NLATTR = struct.Struct("=HH")  # length, type (host order); the values themselves are big-endian
_seq = itertools.count(0x49505300)  # "IPS\0": our config sequence numbers


class QueueConfigError(OSError):
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


def _config_request(queue_num: int, attrs: bytes, seq: int, *, ack: bool = True) -> bytes:
    """One NFQNL_MSG_CONFIG request for ``queue_num`` carrying ``attrs``.

    Layout: nlmsghdr (16 bytes, host order: length, type = NFNL_SUBSYS_QUEUE << 8 |
    NFQNL_MSG_CONFIG, flags = NLM_F_REQUEST (| NLM_F_ACK), seq, portid 0), nfgenmsg
    (family AF_UNSPEC, version 0, res_id = queue number big-endian), the attributes.
    """
    if not 0 <= queue_num <= 0xFFFF:
        raise ValueError(f"queue number {queue_num} out of range 0-65535")
    body = struct.pack(">BBH", socket.AF_UNSPEC, 0, queue_num) + attrs
    msg_type = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def build_config_message(queue_num: int, fail_open: bool, maxlen: int | None, seq: int) -> bytes:
    """The NFQNL_MSG_CONFIG request setting the fail-open flag (and the queue length).

    The attributes: NFQA_CFG_QUEUE_MAXLEN (when given), NFQA_CFG_MASK and
    NFQA_CFG_FLAGS, each a 32-bit big-endian value. The mask names only the
    fail-open bit, so other flags the library may have set stay as they are.
    The request asks for an ACK.
    """
    attrs = b""
    if maxlen is not None:
        if not 1 <= maxlen <= 0xFFFFFFFF:
            raise ValueError(f"queue length {maxlen} out of range")
        attrs += _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen))
    attrs += _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN))
    attrs += _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN if fail_open else 0))
    return _config_request(queue_num, attrs, seq)


def build_bind_message(queue_num: int, seq: int, copy_range: int = COPY_RANGE) -> bytes:
    """The request binding ``queue_num`` to the sending socket, copying up to ``copy_range`` bytes.

    NFQA_CFG_CMD (struct nfqnl_msg_config_cmd: command NFQNL_CFG_CMD_BIND, pad,
    pf 0: the per-family commands are obsolete) and NFQA_CFG_PARAMS (struct
    nfqnl_msg_config_params, packed: copy range big-endian 32 bits, copy mode
    NFQNL_COPY_PACKET) in one message, so the queue never delivers a packet
    in the kernel's default metadata-only mode (the kernel creates the queue
    and sets its mode in one request). Asks for an ACK.
    """
    if not 0 <= copy_range <= 0xFFFF:
        raise ValueError(f"copy range {copy_range} out of range 0-65535")
    attrs = _attr(NFQA_CFG_CMD, struct.pack(">BBH", NFQNL_CFG_CMD_BIND, 0, 0))
    attrs += _attr(NFQA_CFG_PARAMS, struct.pack(">IB", copy_range, NFQNL_COPY_PACKET))
    return _config_request(queue_num, attrs, seq)


def _config_error(queue_num: int, what: str, err: int) -> QueueConfigError:
    reason = f"{os.strerror(err)} ({errno.errorcode.get(err, err)})"
    hint = ""
    if err == errno.EPERM:
        holder = read_queue_stats().get(queue_num)
        if holder is not None:
            hint = f": another socket (portid {holder['portid']}) has bound queue {queue_num}"
        elif os.geteuid() != 0:
            hint = ": configuring a queue needs root (CAP_NET_ADMIN)"
    elif err == errno.EBUSY:
        hint = f": queue {queue_num} is bound already"
    return QueueConfigError(err, f"queue {queue_num}: the kernel refused the {what}: {reason}{hint}")


def _request(
    fd: int, queue_num: int, msg: bytes, what: str, backlog: list[bytes] | None, timeout: float
) -> None:
    """Send the config request ``msg`` on (a duplicate of) ``fd`` and wait for its ACK.

    Packet messages that arrive first go to ``backlog`` (or are discarded when it is None).
    """
    _, _, _, seq, _ = _NLMSGHDR.unpack_from(msg)
    with socket.socket(fileno=os.dup(fd)) as sock:
        try:
            sock.sendto(msg, (0, 0))  # portid 0: the kernel
        except OSError as e:
            raise QueueConfigError(e.errno, f"queue {queue_num}: cannot send the {what} message: {e}") from e
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise QueueConfigError(
                    errno.ETIMEDOUT, f"queue {queue_num}: no answer to the {what} message in {timeout} s"
                )
            try:
                data = sock.recv(_RECV_SIZE)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    continue  # the kernel dropped messages for us; ours may still come
                raise QueueConfigError(e.errno, f"queue {queue_num}: reading the {what} answer: {e}") from e
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
                raise _config_error(queue_num, what, -err)
            return


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
    to judge. ``fd`` itself is left as it was (it is duplicated).
    """
    msg = build_config_message(queue_num, fail_open, maxlen, next(_seq) & 0xFFFFFFFF)
    what = "fail-open config" if fail_open else "fail-closed config"
    _request(fd, queue_num, msg, what, backlog, timeout)


def bind_queue(
    queue_num: int,
    fail_open: bool,
    maxlen: int | None,
    *,
    backlog: list[bytes] | None = None,
    timeout: float = ACK_TIMEOUT,
) -> socket.socket:
    """A new nfnetlink socket bound to queue ``queue_num`` (copy mode packet, range 65535) and configured.

    Steps, each answer checked: bind with copy mode and range
    (:func:`build_bind_message`), then queue length and fail-open flag
    (:func:`set_queue_flags`). Raises :class:`QueueConfigError` naming the
    queue and the kernel's reason (EPERM: not root, or another process holds
    the queue; EBUSY: this socket holds it already; ...); the socket is closed
    then. Packet messages that arrive while it configures go to ``backlog``.
    The socket is blocking; :func:`unbind_queue` releases the queue and closes it.
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.bind((0, 0))  # portid chosen by the kernel
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except OSError:  # not root: as much as net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        msg = build_bind_message(queue_num, next(_seq) & 0xFFFFFFFF)
        _request(sock.fileno(), queue_num, msg, "bind", backlog, timeout)
        set_queue_flags(sock.fileno(), queue_num, fail_open, maxlen, backlog=backlog, timeout=timeout)
    except BaseException:
        sock.close()  # closing unbinds, if the bind went through
        raise
    return sock


def unbind_queue(sock: socket.socket, queue_num: int) -> None:
    """Release queue ``queue_num``: an explicit NFQNL_CFG_CMD_UNBIND (best effort), then close ``sock``.

    Closing alone would do (the kernel releases the queues of a closed
    socket's portid); the explicit unbind does not wait for an answer.
    Packets still queued are dropped by the kernel either way.
    """
    try:
        attrs = _attr(NFQA_CFG_CMD, struct.pack(">BBH", NFQNL_CFG_CMD_UNBIND, 0, 0))
        sock.sendto(_config_request(queue_num, attrs, next(_seq) & 0xFFFFFFFF, ack=False), (0, 0))
    except OSError:
        pass
    finally:
        sock.close()


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
# slow()'s answer to the C loop: (verdict 0 drop / 1 accept, mark bits to OR in or None, new payload or None).
SlowVerdict = tuple[int, int | None, bytes | None]
Receive = Literal["auto", "fast", "library"]

# Every counter of NfqueueSource.stats, on both receive paths (the last seven only the fast loop counts).
STATS_KEYS: Final = (
    "packets",
    "accepted",
    "dropped",
    "rewritten",
    "bypass_marked",
    "handler_errors",
    "rewrite_errors",
    "verdict_errors",
    "slow_calls",
    "enobufs",
    "bad_messages",
    "recv_calls",
    "sends",
    "spins",
    "spin_hits",
)


def _import_fast_loop() -> tuple[type[Loop] | None, str]:
    try:
        from inline_ips.source._nfqloop import Loop  # noqa: PLC0415
    except ImportError as e:  # not built (no compiler when installed): the library path
        return None, str(e)
    return Loop, ""


_FAST_LOOP, FAST_LOOP_ERROR = _import_fast_loop()


def fast_loop_available() -> bool:
    """Whether the C receive loop (:mod:`inline_ips.source._nfqloop`) is built and importable."""
    return _FAST_LOOP is not None


def _rewritten(raw: bytes, decision: Decision, stats: dict[str, int]) -> bytes | None:
    """The datagram with the decision's replacements, or None: nothing changed, or refused.

    A refusal (replacements that do not fit) is counted; the packet is then
    accepted unchanged (fail open).
    """
    try:
        new = apply_replacements(raw, decision.replacements)
    except Exception:
        stats["rewrite_errors"] += 1
        return None
    if new is raw:
        return None
    stats["rewritten"] += 1
    return new


class NfqueueSource:
    """One NFQUEUE bound in this process's network namespace, judged by ``handler``.

    ``stats`` (a new dict on every read) counts packets, accepted, dropped,
    rewritten, bypass_marked, handler_errors (the handler raised, or returned
    something that is not a Decision; packet accepted), rewrite_errors (the
    replacements could not be applied; packet accepted unchanged),
    verdict_errors (the verdict was refused: by the library, or by the kernel
    on the fast path), and, on the fast path only, slow_calls (decisions
    other than the shared ACCEPT / BYPASS / DROP), enobufs (the kernel could
    not queue a packet message to our socket), bad_messages (malformed
    messages skipped), recv_calls and sends (system calls), spins and
    spin_hits (busy-poll phases, and those that found a packet). ``ready`` is
    set once the queue is bound and configured.

    ``receive``: "fast" (the C loop; a :class:`RuntimeError` here when it is
    not built), "library" (NetfilterQueue's ``run_socket``) or "auto" (fast
    when built). ``receive_path`` is the one chosen.

    ``spin_us`` (fast path only; 0 = off): after a packet, keep polling the
    socket without sleeping for up to this many microseconds before the
    process blocks. Under steady traffic the process then never waits for the
    scheduler to wake it, which is most of the latency NFQUEUE adds; the cost
    is CPU time while traffic flows (an idle queue spins no more than once).
    """

    def __init__(
        self,
        queue_num: int,
        handler: Handler,
        *,
        maxlen: int = 4096,
        fail_open: bool = True,
        bypass_mark: int = 0x40000000,
        receive: Receive = "auto",
        spin_us: int = 0,
    ) -> None:
        if not 0 <= queue_num <= 0xFFFF:
            raise ValueError(f"queue number {queue_num} out of range 0-65535")
        if maxlen < 1:
            raise ValueError(f"queue length {maxlen} must be at least 1")
        if not 0 < bypass_mark <= 0xFFFFFFFF:
            raise ValueError(f"bypass mark {bypass_mark:#x} must be a non-zero 32-bit value")
        if receive not in ("auto", "fast", "library"):
            raise ValueError(f"receive must be 'auto', 'fast' or 'library', not {receive!r}")
        if not 0 <= spin_us <= MAX_SPIN_US:
            raise ValueError(f"busy-poll time {spin_us} µs out of range 0-{MAX_SPIN_US}")
        if receive == "fast" and _FAST_LOOP is None:
            raise RuntimeError(
                "receive='fast' needs the compiled inline_ips.source._nfqloop, which is not built "
                f"({FAST_LOOP_ERROR}); scripts/setup.sh (pip install -e .) builds it"
            )
        self.queue_num = queue_num
        self.handler = handler
        self.maxlen = maxlen
        self.fail_open = fail_open
        self.bypass_mark = bypass_mark
        self.spin_us = spin_us
        self.receive_path: Literal["fast", "library"] = (
            "library" if receive == "library" or _FAST_LOOP is None else "fast"
        )
        self.ready = threading.Event()
        # What Python counts: everything on the library path; rewrites and handler errors
        # found by slow() on the fast path, whose loops count the rest (summed in ``stats``).
        self._counts: dict[str, int] = dict.fromkeys(STATS_KEYS, 0)
        self._loops: list[Loop] = []
        self.callback = self._make_callback()
        self.slow = self._make_slow()

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self._counts)
        for loop in tuple(self._loops):
            for key, value in loop.stats().items():
                out[key] = out.get(key, 0) + value
        return out

    def _make_callback(self) -> Callable[[NfqPacket], None]:
        """The per-packet function the library calls; everything it needs is a closure local."""
        handler = self.handler
        stats = self._counts
        now = time.time
        mark = self.bypass_mark
        accept_action = Action.ACCEPT
        rewrite_action = Action.REWRITE

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
                    new = _rewritten(raw, decision, stats)
                    if new is not None:
                        pkt.set_payload(new)
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

    def _make_slow(self) -> Callable[[Decision, bytes], SlowVerdict]:
        """The fast loop's verdict for a decision other than the shared ACCEPT / BYPASS / DROP.

        Same meaning as the library callback: ACCEPT accepts (bypass: the mark
        bits, which the C loop ORs into the packet's mark), REWRITE applies the
        replacements (refused: accepted unchanged, counted), anything else drops.
        """
        stats = self._counts
        mark = self.bypass_mark
        accept_action = Action.ACCEPT
        rewrite_action = Action.REWRITE
        accept_unchanged: SlowVerdict = (1, None, None)
        drop: SlowVerdict = (0, None, None)

        def slow(decision: Decision, raw: bytes) -> SlowVerdict:
            try:
                action = decision.action
                bits = mark if decision.bypass else None
            except AttributeError:
                stats["handler_errors"] += 1  # not a Decision: a handler bug; fail open
                return accept_unchanged
            if action is accept_action:
                return (1, bits, None)
            if action is rewrite_action:
                return (1, bits, _rewritten(raw, decision, stats))
            return drop

        return slow

    def run(self, stop: threading.Event | None = None) -> None:
        """Bind the queue, make it fail open (or closed), judge packets until ``stop`` is set.

        Raises OSError when the queue cannot be bound (:class:`QueueConfigError`,
        an OSError, names the kernel's reason: not root, another process holds
        it, the flags refused); the queue is always unbound on the way out,
        after which the kernel's ``--queue-bypass`` (or a drop, without it)
        takes over. On the fast path a KeyboardInterrupt or SystemExit raised
        in the handler (or by a signal handler) ends the run: the packets
        already received are accepted first, then it propagates.
        """
        stop = stop if stop is not None else threading.Event()
        if self.receive_path == "fast":
            self._run_fast(stop)
        else:
            self._run_library(stop)

    def _run_fast(self, stop: threading.Event) -> None:
        assert _FAST_LOOP is not None
        backlog: list[bytes] = []
        sock = bind_queue(self.queue_num, self.fail_open, self.maxlen, backlog=backlog)
        done = threading.Event()
        try:
            loop = _FAST_LOOP(
                sock.fileno(),
                self.queue_num,
                self.bypass_mark,
                poll_ms=int(POLL_SECONDS * 1000),
                spin_us=self.spin_us,
            )
            self._loops.append(loop)
            threading.Thread(target=self._watch, args=(stop, done, loop.stop), daemon=True).start()
            self.ready.set()
            # The backlog first (packets that arrived before the config ACK), then the queue.
            loop.run(self.handler, ACCEPT, BYPASS, DROP, self.slow, backlog)
        finally:
            done.set()
            self.ready.clear()
            unbind_queue(sock, self.queue_num)

    def _run_library(self, stop: threading.Event) -> None:
        # The "live" extra: replay and the unit tests do not need NetfilterQueue installed.
        from netfilterqueue import NetfilterQueue  # noqa: PLC0415

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

            def break_loop() -> None:
                reader.recv = _stop_requested

            threading.Thread(target=self._watch, args=(stop, done, break_loop), daemon=True).start()
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
    def _watch(stop: threading.Event, done: threading.Event, on_stop: Callable[[], None]) -> None:
        """Call ``on_stop`` once ``stop`` is set (it breaks the receive loop, even if packets keep coming)."""
        while not done.is_set():
            if stop.wait(POLL_SECONDS):
                on_stop()
                return
