"""Tests for the C receive loop (inline_ips.source._nfqloop), with a socketpair standing in for the kernel.

The loop reads datagrams with recvmmsg and sends its verdicts with send() on
the descriptor it is given, so a Unix datagram socketpair plays the kernel:
the tests write nfnetlink packet messages (built here byte by byte) on one
end and parse the verdict messages the loop writes back. What only the
kernel can show (a real queue, reinjection, ENOBUFS) is in test_nfqueue.py.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inline_ips.source.nfqueue import fast_loop_available

if not fast_loop_available():
    pytest.skip("the C receive loop inline_ips.source._nfqloop is not built", allow_module_level=True)

from inline_ips.source._nfqloop import Loop

QUEUE = 3
MARK = 0x40000000
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
PACKET, VERDICT, BATCH = 0x0300, 0x0301, 0x0303
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_MARK, NFQA_PAYLOAD = 1, 2, 3, 10
NF_DROP, NF_ACCEPT = 0, 1

# Stand-ins for the shared decisions; the loop compares by identity.
ACCEPT, BYPASS, DROP = object(), object(), object()


def attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def nlmsg(kind: int, body: bytes, seq: int = 0) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def packet(pid: int, payload: bytes = b"payload", *, mark: int | None = None, queue: int = QUEUE) -> bytes:
    """An NFQNL_MSG_PACKET message as the kernel writes it (id, optional mark, payload)."""
    body = struct.pack(">BBH", socket.AF_INET, 0, queue)
    body += attr(NFQA_PACKET_HDR, struct.pack(">IHB", pid, 0x0800, 2))
    if mark is not None:
        body += attr(NFQA_MARK, struct.pack(">I", mark))
    body += attr(NFQA_PAYLOAD, payload)
    return nlmsg(PACKET, body)


def error(err: int) -> bytes:
    return nlmsg(NLMSG_ERROR, struct.pack("=i", err) + struct.pack("=IHHII", 32, VERDICT, 1, 7, 0))


@dataclass(frozen=True)
class Verdict:
    kind: str  # "verdict" or "batch"
    id: int
    verdict: int
    mark: int | None = None
    payload: bytes | None = None


def parse_verdicts(datagram: bytes) -> list[Verdict]:
    out = []
    while datagram:
        length, kind, flags, _, _ = struct.unpack_from("=IHHII", datagram)
        assert length % 4 == 0 and flags == 1  # NLM_F_REQUEST, no ACK asked
        assert kind in (VERDICT, BATCH)
        family, version, res_id = struct.unpack_from(">BBH", datagram, 16)
        assert (family, version, res_id) == (socket.AF_UNSPEC, 0, QUEUE)
        attrs: dict[int, bytes] = {}
        off = 20
        while off < length:
            alen, akind = struct.unpack_from("=HH", datagram, off)
            attrs[akind] = datagram[off + 4 : off + alen]
            off += (alen + 3) & ~3
        verdict, pid = struct.unpack(">II", attrs[NFQA_VERDICT_HDR])
        mark = struct.unpack(">I", attrs[NFQA_MARK])[0] if NFQA_MARK in attrs else None
        kind_name = "batch" if kind == BATCH else "verdict"
        out.append(Verdict(kind_name, pid, verdict, mark, attrs.get(NFQA_PAYLOAD)))
        datagram = datagram[length:]
    return out


class FakeKernel:
    """A socketpair: ``user`` goes to the loop, ``kernel`` end feeds it and collects the verdicts."""

    def __init__(self) -> None:
        self.user, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.kernel.settimeout(0.05)
        self.datagrams: list[bytes] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.datagrams.append(self.kernel.recv(1 << 20))
            except TimeoutError:
                continue
            except OSError:
                return

    def send(self, datagram: bytes) -> None:
        self.kernel.sendall(datagram)

    def verdicts(self, settle: float = 0.1) -> list[Verdict]:
        """Every verdict so far, once no new datagram came for ``settle`` seconds."""
        seen = -1
        while seen != len(self.datagrams):
            seen = len(self.datagrams)
            time.sleep(settle)
        return [v for d in list(self.datagrams) for v in parse_verdicts(d)]

    def close(self) -> None:
        self._closed.set()
        self._reader.join(2)
        self.user.close()
        self.kernel.close()


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = FakeKernel()
    try:
        yield k
    finally:
        k.close()


def no_slow(decision: object, raw: bytes) -> tuple[int, int | None, bytes | None]:
    raise AssertionError(f"slow called for {decision!r}")


def run(
    loop: Loop,
    handler: Callable[[bytes, float], object],
    backlog: list[bytes],
    slow: Callable[[object, bytes], tuple[int, int | None, bytes | None]] = no_slow,
) -> None:
    loop.run(handler, ACCEPT, BYPASS, DROP, slow, backlog)


def run_backlog(
    kernel: FakeKernel,
    handler: Callable[[bytes, float], object],
    backlog: list[bytes],
    slow: Callable[[object, bytes], tuple[int, int | None, bytes | None]] = no_slow,
) -> Loop:
    """Judge ``backlog`` only: stop() before run() ends it after the backlog."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    loop.stop()
    run(loop, handler, backlog, slow)
    return loop


def test_loop_arguments_checked(kernel: FakeKernel) -> None:
    fd = kernel.user.fileno()
    for args in ((-1, 1, MARK), (fd, 70000, MARK), (fd, -1, MARK), (fd, 1, 0), (fd, 1, 1 << 32), (fd, 1, -1)):
        with pytest.raises(ValueError):
            Loop(*args)
    with pytest.raises(ValueError):
        Loop(fd, 1, MARK, batch=0)
    with pytest.raises(ValueError):
        Loop(fd, 1, MARK, poll_ms=0)
    for spin in (-1, 10_001):
        with pytest.raises(ValueError):
            Loop(fd, 1, MARK, spin_us=spin)
    loop = Loop(fd, 1, MARK)
    with pytest.raises(TypeError):
        loop.run(None, ACCEPT, BYPASS, DROP, no_slow, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop.run(lambda r, t: ACCEPT, ACCEPT, BYPASS, DROP, no_slow, ())  # type: ignore[arg-type]


def test_verdicts_keep_queue_order(kernel: FakeKernel) -> None:
    """Accepts are batched; a single verdict is always preceded by the pending batch."""
    special = object()
    answers: dict[bytes, object] = {
        b"p1": ACCEPT,
        b"p2": ACCEPT,
        b"p3": DROP,
        b"p4": ACCEPT,
        b"p5": BYPASS,
        b"p6": special,  # slow: a plain accept, deferred like ACCEPT
        b"p7": ACCEPT,
        b"p8": special,  # slow: mark bits and a new payload
        b"p9": special,  # slow: drop
    }
    slow_answers = {b"p6": (1, None, None), b"p8": (1, 0x100, b"new"), b"p9": (0, None, None)}
    seen: list[tuple[bytes, float]] = []

    def handler(raw: bytes, ts: float) -> object:
        seen.append((raw, ts))
        return answers[raw]

    def slow(decision: object, raw: bytes) -> tuple[int, int | None, bytes | None]:
        assert decision is special
        return slow_answers[raw]

    before = time.time()
    backlog = [packet(i, f"p{i}".encode(), mark=0x5 if i in (5, 8) else None) for i in range(1, 10)]
    loop = run_backlog(kernel, handler, backlog, slow)
    assert [raw for raw, _ in seen] == [f"p{i}".encode() for i in range(1, 10)]
    assert all(before <= ts <= time.time() for _, ts in seen)  # wall-clock time, like time.time()
    assert kernel.verdicts() == [
        Verdict("batch", 2, NF_ACCEPT),
        Verdict("verdict", 3, NF_DROP),
        Verdict("batch", 4, NF_ACCEPT),
        Verdict("verdict", 5, NF_ACCEPT, mark=MARK | 0x5),
        Verdict("batch", 7, NF_ACCEPT),
        Verdict("verdict", 8, NF_ACCEPT, mark=0x105, payload=b"new"),
        Verdict("verdict", 9, NF_DROP),
    ]
    stats = loop.stats()
    assert len(kernel.datagrams) == 1 and stats["sends"] == 1  # one send for the whole batch
    assert stats["packets"] == 9 and stats["accepted"] == 7 and stats["dropped"] == 2
    assert stats["bypass_marked"] == 1 and stats["slow_calls"] == 3
    assert stats["handler_errors"] == stats["verdict_errors"] == stats["bad_messages"] == 0


def test_one_receive_batch_one_send(kernel: FakeKernel) -> None:
    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    for i in range(1, 6):
        kernel.send(packet(i))

    def handler(raw: bytes, ts: float) -> object:
        if loop.stats()["packets"] == 5:
            loop.stop()  # looked at after the batch: all five are judged
        return DROP if loop.stats()["packets"] == 3 else ACCEPT

    run(loop, handler, [])
    assert kernel.verdicts() == [
        Verdict("batch", 2, NF_ACCEPT),
        Verdict("verdict", 3, NF_DROP),
        Verdict("batch", 5, NF_ACCEPT),
    ]
    stats = loop.stats()
    assert stats["recv_calls"] == 1 and stats["sends"] == 1 and len(kernel.datagrams) == 1


@pytest.mark.parametrize("spin_us", [0, 10_000])
def test_busy_poll_takes_the_next_packet_without_sleeping(kernel: FakeKernel, spin_us: int) -> None:
    """The second packet arrives after a short receive: with spin_us it is taken by the spin, not poll()."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK, spin_us=spin_us)
    kernel.send(packet(1))

    def handler(raw: bytes, ts: float) -> object:
        if loop.stats()["packets"] == 1:
            kernel.send(packet(2))  # queued before the loop looks again: a spin finds it at once
        else:
            loop.stop()
        return ACCEPT

    run(loop, handler, [])
    stats = loop.stats()
    assert stats["packets"] == 2 and kernel.verdicts() == [Verdict("batch", 1, 1), Verdict("batch", 2, 1)]
    if spin_us:
        # One ordinary receive (packet 1), then the spin's receive (packet 2): no poll() between.
        assert (stats["recv_calls"], stats["spins"], stats["spin_hits"]) == (1, 1, 1)
    else:
        assert (stats["recv_calls"], stats["spins"], stats["spin_hits"]) == (2, 0, 0)


def test_busy_poll_spins_once_after_traffic_stops(kernel: FakeKernel) -> None:
    """An idle queue costs no CPU: one spin after the last packet, then the loop sleeps in poll()."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK, poll_ms=20, spin_us=1000)
    kernel.send(packet(1))
    t = threading.Thread(target=run, args=(loop, lambda r, ts: ACCEPT, []), daemon=True)
    t.start()
    time.sleep(0.3)  # about 15 poll timeouts
    loop.stop()
    t.join(2)
    assert not t.is_alive()
    stats = loop.stats()
    assert stats["packets"] == 1
    assert stats["spins"] == 1 and stats["spin_hits"] == 0  # not one per poll timeout


def test_several_messages_in_one_datagram(kernel: FakeKernel) -> None:
    seen: list[bytes] = []

    def handler(raw: bytes, ts: float) -> object:
        seen.append(raw)
        return ACCEPT

    datagram = packet(1, b"a") + nlmsg(NLMSG_NOOP, b"") + packet(2, b"bb") + error(0) + packet(3, b"ccc")
    loop = run_backlog(kernel, handler, [datagram + nlmsg(NLMSG_DONE, b"\0\0\0\0")])
    assert seen == [b"a", b"bb", b"ccc"]
    assert kernel.verdicts() == [Verdict("batch", 3, NF_ACCEPT)]
    assert loop.stats()["bad_messages"] == 0 and loop.stats()["verdict_errors"] == 0


def test_kernel_errors_count_as_verdict_errors(kernel: FakeKernel) -> None:
    loop = run_backlog(kernel, lambda r, t: ACCEPT, [error(-errno.ENOENT), error(0), error(-errno.EINVAL)])
    assert loop.stats()["verdict_errors"] == 2
    assert kernel.verdicts() == []


def _truncate_attr_len(msg: bytes, attr_offset: int, new_len: int) -> bytes:
    return msg[:attr_offset] + struct.pack("=H", new_len) + msg[attr_offset + 2 :]


def _with_tail(msg: bytes, tail: bytes) -> bytes:
    """``msg`` with ``tail`` appended inside it (nlmsg_len grown to cover it)."""
    msg += tail
    return struct.pack("=I", len(msg)) + msg[4:]


def test_malformed_messages_are_counted_and_skipped(kernel: FakeKernel) -> None:
    good = packet(50, b"good")
    hdr_attr = 20  # offset of the first attribute (NFQA_PACKET_HDR) in a packet message
    payload_attr = 20 + 12  # NFQA_PAYLOAD follows the 12-byte packet header attribute
    no_id = nlmsg(PACKET, struct.pack(">BBH", 2, 0, QUEUE) + attr(NFQA_PAYLOAD, b"x"))
    short_hdr = nlmsg(PACKET, struct.pack(">BBH", 2, 0, QUEUE) + attr(NFQA_PACKET_HDR, b"\0\0\0\x07"))
    short_mark = nlmsg(
        PACKET,
        struct.pack(">BBH", 2, 0, QUEUE)
        + attr(NFQA_PACKET_HDR, struct.pack(">IHB", 9, 0, 2))
        + attr(NFQA_MARK, b"\x01"),
    )
    cases: list[tuple[str, bytes, int]] = [  # (what, datagram, bad messages in it)
        ("truncated nlmsghdr", good[:10], 1),
        ("nlmsg_len past the datagram", good[:-4], 1),
        ("nlmsg_len zero", b"\0" * 16 + good, 1),  # and what follows cannot be found
        ("nlmsg_len below the header", struct.pack("=IHHII", 8, PACKET, 0, 0, 0) + good, 1),
        ("no nfgenmsg", nlmsg(PACKET, b""), 1),
        ("wrong res_id", packet(60, b"other queue", queue=QUEUE + 1), 1),
        ("attribute past the end", _truncate_attr_len(packet(61, b"x" * 8), payload_attr, 200), 1),
        ("zero-length attribute", _truncate_attr_len(packet(62), hdr_attr, 0), 1),
        ("attribute shorter than its header", _truncate_attr_len(packet(63), hdr_attr, 3), 1),
        ("no packet header", no_id, 1),
        ("packet header too short", short_hdr, 1),
        ("mark too short", short_mark, 1),
        ("short NLMSG_ERROR", nlmsg(NLMSG_ERROR, b""), 1),
        ("garbage after a good message", packet(51, b"ok") + b"\x01\x02\x03", 1),
        ("bad message then a good one", packet(64, queue=9) + packet(52, b"after"), 1),
        ("2 bytes after the last attribute", _with_tail(packet(53, b"tail"), b"\x03\0"), 1),
    ]
    seen: list[bytes] = []

    def handler(raw: bytes, ts: float) -> object:
        seen.append(raw)
        return DROP  # a single verdict per packet: shows exactly which ids were judged

    backlog = [datagram for _, datagram, _ in cases] + [b"", good]
    loop = run_backlog(kernel, handler, backlog)
    stats = loop.stats()
    assert stats["bad_messages"] == sum(n for _, _, n in cases), cases
    # Only the well-formed packets of our queue reached the handler, each once, in order.
    assert seen == [b"ok", b"after", b"good"]
    assert [v.id for v in kernel.verdicts()] == [51, 52, 50]
    assert stats["packets"] == 3


def test_malformed_non_bytes_backlog_item(kernel: FakeKernel) -> None:
    loop = run_backlog(kernel, lambda r, t: ACCEPT, ["not bytes", packet(1)])  # type: ignore[list-item]
    assert loop.stats()["bad_messages"] == 1 and loop.stats()["packets"] == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda i, cut, junk: (packet(i, b"p" * (i % 40)) + junk)[:cut],
                st.integers(0, 2**32 - 1),
                st.integers(0, 120),
                st.binary(max_size=8),
            ),
        ),
        max_size=6,
    )
)
def test_random_datagrams_never_crash(kernel: FakeKernel, backlog: list[bytes]) -> None:
    judged: list[bytes] = []

    def handler(raw: bytes, ts: float) -> object:
        judged.append(raw)
        return ACCEPT

    loop = run_backlog(kernel, handler, backlog)
    stats = loop.stats()
    assert stats["packets"] == len(judged) == stats["accepted"]
    assert all(any(raw in d for d in backlog) for raw in judged)  # no payload read past its datagram


def test_handler_exception_accepts(kernel: FakeKernel) -> None:
    def handler(raw: bytes, ts: float) -> object:
        if raw == b"bug":
            raise ValueError("a handler bug")
        return DROP

    loop = run_backlog(kernel, handler, [packet(1, b"ok"), packet(2, b"bug"), packet(3, b"ok")])
    assert kernel.verdicts() == [
        Verdict("verdict", 1, NF_DROP),
        Verdict("batch", 2, NF_ACCEPT),
        Verdict("verdict", 3, NF_DROP),
    ]
    stats = loop.stats()
    assert stats["handler_errors"] == 1 and stats["accepted"] == 1 and stats["dropped"] == 2


@pytest.mark.parametrize(
    "answer",
    [
        RuntimeError("slow bug"),
        "not a tuple",
        (1,),
        (1, None, None, None),
        (2, None, None),
        (-1, None, None),
        ("1", None, None),
        (1, "mark", None),
        (1, -1, None),
        (1, 1 << 32, None),
        (1, None, "text"),
        (1, None, b"x" * 65532),  # more than one nlattr can carry
    ],
    ids=repr,
)
def test_slow_errors_accept_unchanged(kernel: FakeKernel, answer: object) -> None:
    special = object()

    def slow(decision: object, raw: bytes) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    loop = run_backlog(kernel, lambda r, t: special, [packet(7, mark=3)], slow)
    assert kernel.verdicts() == [Verdict("batch", 7, NF_ACCEPT)]
    stats = loop.stats()
    assert stats["verdict_errors"] == 1 and stats["accepted"] == 1 and stats["slow_calls"] == 1


def test_largest_rewrite_is_sent(kernel: FakeKernel) -> None:
    big = b"y" * 65531
    loop = run_backlog(kernel, lambda r, t: "rewrite", [packet(1)], lambda d, r: (1, None, big))
    assert kernel.verdicts() == [Verdict("verdict", 1, NF_ACCEPT, payload=big)]
    assert loop.stats()["verdict_errors"] == 0


def test_send_buffer_flushes_before_it_overflows(kernel: FakeKernel) -> None:
    """Ten 60 KB rewrites do not fit one datagram: several sends, still in order."""
    payloads = {i: bytes([i]) * 60000 for i in range(1, 11)}
    backlog = [packet(i, bytes([i])) for i in range(1, 11)]
    loop = run_backlog(kernel, lambda r, t: "rewrite", backlog, lambda d, raw: (1, None, payloads[raw[0]]))
    verdicts = kernel.verdicts()
    assert [(v.id, v.payload) for v in verdicts] == list(payloads.items())
    assert loop.stats()["sends"] == len(kernel.datagrams) > 1
    assert loop.stats()["verdict_errors"] == 0


def test_keyboard_interrupt_accepts_everything_received(kernel: FakeKernel) -> None:
    """A KeyboardInterrupt from the handler ends run(), but no received packet is left without a verdict."""
    for i in range(1, 6):
        kernel.send(packet(i, b"drop me" if i < 3 else b"interrupt" if i == 3 else b"after"))
    judged: list[bytes] = []

    def handler(raw: bytes, ts: float) -> object:
        judged.append(raw)
        if raw == b"interrupt":
            raise KeyboardInterrupt
        return DROP

    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    with pytest.raises(KeyboardInterrupt):
        run(loop, handler, [])
    assert judged == [b"drop me", b"drop me", b"interrupt"]  # not called after it
    assert kernel.verdicts() == [
        Verdict("verdict", 1, NF_DROP),
        Verdict("verdict", 2, NF_DROP),
        Verdict("batch", 5, NF_ACCEPT),  # 3, 4 and 5 accepted
    ]
    stats = loop.stats()
    assert stats["packets"] == 5 and stats["accepted"] == 3 and stats["handler_errors"] == 0


def test_system_exit_from_slow_in_the_backlog(kernel: FakeKernel) -> None:
    def slow(decision: object, raw: bytes) -> tuple[int, int | None, bytes | None]:
        raise SystemExit(3)

    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    with pytest.raises(SystemExit):
        run(loop, lambda r, t: "slow", [packet(1), packet(2) + packet(3)], slow)
    assert kernel.verdicts() == [Verdict("batch", 3, NF_ACCEPT)]
    assert loop.stats()["slow_calls"] == 1 and loop.stats()["verdict_errors"] == 0


def _flood(kernel: FakeKernel, done: threading.Event) -> None:
    """Packet messages, 20 to a datagram, as fast as the loop takes them (the socket stays full)."""
    pid = 1
    while not done.is_set():
        datagram = b"".join(packet(pid + k) for k in range(20))
        try:
            kernel.send(datagram)
        except TimeoutError:
            continue  # the loop stopped reading
        except OSError:
            return
        pid += 20


def test_stop_under_sustained_load(kernel: FakeKernel) -> None:
    """stop() from another thread ends run() within about a second although the socket never empties."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK, poll_ms=5000)  # a poll timeout never comes
    done = threading.Event()
    writer = threading.Thread(target=_flood, args=(kernel, done), daemon=True)
    writer.start()

    def busy(raw: bytes, ts: float) -> object:
        sum(range(300))  # slower than the writer: there is always something to receive
        return ACCEPT

    t = threading.Thread(target=run, args=(loop, busy, []), daemon=True)
    try:
        t.start()
        deadline = time.monotonic() + 5
        while loop.stats()["packets"] < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        loop.stop()
        t.join(5)
        took = time.monotonic() - started
    finally:
        done.set()
        writer.join(2)
    assert not t.is_alive()
    assert took < 1.0, took
    stats = loop.stats()
    assert stats["packets"] >= 2000 and stats["accepted"] == stats["packets"]
    # Every packet judged got its (batched) verdict.
    assert max(v.id for v in kernel.verdicts()) == stats["packets"]


def test_stop_when_idle_within_the_poll_timeout(kernel: FakeKernel) -> None:
    loop = Loop(kernel.user.fileno(), QUEUE, MARK, poll_ms=100)
    t = threading.Thread(target=run, args=(loop, lambda r, ts: ACCEPT, []), daemon=True)
    t.start()
    time.sleep(0.2)
    started = time.monotonic()
    loop.stop()
    t.join(2)
    assert not t.is_alive() and time.monotonic() - started < 0.5
    # The flag is cleared when run() returns: the loop can run again.
    kernel.send(packet(1))

    def stop_at_once(raw: bytes, ts: float) -> object:
        loop.stop()
        return ACCEPT

    run(loop, stop_at_once, [])
    assert loop.stats()["packets"] == 1


def _in_main_thread_with_alarm(handler: Callable[[int, Any], None], fn: Callable[[], None]) -> float:
    old = signal.signal(signal.SIGALRM, handler)
    try:
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        fn()
        return time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signal_handlers_run_while_waiting(kernel: FakeKernel) -> None:
    """A Python signal handler runs on EINTR (poll_ms is long) and may stop the loop."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK, poll_ms=10000)
    took = _in_main_thread_with_alarm(lambda s, f: loop.stop(), lambda: run(loop, lambda r, t: ACCEPT, []))
    assert took < 2.0


def test_signal_handler_raising_ends_run(kernel: FakeKernel) -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    loop = Loop(kernel.user.fileno(), QUEUE, MARK, poll_ms=10000)
    with pytest.raises(KeyboardInterrupt):
        _in_main_thread_with_alarm(interrupt, lambda: run(loop, lambda r, t: ACCEPT, []))


def test_receive_errors_raise_oserror() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as e:
            run(Loop(r, QUEUE, MARK), lambda raw, t: ACCEPT, [])
        assert e.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(OSError) as e:
            run(Loop(listener.fileno(), QUEUE, MARK), lambda raw, t: ACCEPT, [])
        assert e.value.errno == errno.ENOTCONN


def test_run_is_not_reentrant(kernel: FakeKernel) -> None:
    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    errors: list[BaseException] = []

    def handler(raw: bytes, ts: float) -> object:
        try:
            run(loop, handler, [])
        except RuntimeError as e:
            errors.append(e)
        return ACCEPT

    loop.stop()
    run(loop, handler, [packet(1)])
    assert len(errors) == 1 and loop.stats()["handler_errors"] == 0


@pytest.mark.parametrize(
    ("ids", "last"),
    [((10, 5), 10), ((0xFFFFFFFF, 0, 1), 1), ((3, 0xFFFFFFF0), 3)],
    ids=["older id", "wrap-around", "older across the wrap"],
)
def test_batch_accept_covers_the_newest_id(kernel: FakeKernel, ids: tuple[int, ...], last: int) -> None:
    """The batch verdict names the newest id (modulo 2^32), so it leaves no accepted packet queued."""
    run_backlog(kernel, lambda r, t: ACCEPT, [packet(i) for i in ids])
    assert kernel.verdicts() == [Verdict("batch", last, NF_ACCEPT)]


def test_verdicts_are_sent_after_every_receive_batch(kernel: FakeKernel) -> None:
    """Verdicts do not wait for the loop to end: each receive batch is answered at once."""
    loop = Loop(kernel.user.fileno(), QUEUE, MARK)
    t = threading.Thread(target=run, args=(loop, lambda r, ts: ACCEPT, []), daemon=True)
    t.start()
    try:
        for pid in (1, 2):
            kernel.send(packet(pid))
            deadline = time.monotonic() + 2
            while len(kernel.datagrams) < pid and time.monotonic() < deadline:
                time.sleep(0.005)
            assert t.is_alive()
            assert parse_verdicts(kernel.datagrams[-1]) == [Verdict("batch", pid, NF_ACCEPT)]
    finally:
        loop.stop()
        t.join(2)
    assert loop.stats()["sends"] == 2
