"""Tests for inline_ips.output.sinks: syslog and webhook sinks over real sockets, no mocks.

Receivers are a unix datagram socket in a temporary directory, UDP and HTTP
servers on 127.0.0.1, and a TCP listener that accepts and never answers (the
hanging webhook). Assertions count events; the only time bounds are generous
ones on ``submit`` and ``close``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inline_ips.output.eve import alert_event, drop_event
from inline_ips.output.sinks import (
    DEFAULT_QUEUE_SIZE,
    AsyncSink,
    SinkOptions,
    SyslogOptions,
    SyslogSink,
    SyslogTarget,
    WebhookOptions,
    WebhookSink,
    build_sinks,
    chat_line,
    parse_event_types,
    parse_facility,
    parse_header,
    parse_syslog_target,
    parse_webhook_url,
    redact_url,
)
from inline_ips.packet import PROTO_TCP, SYN, Packet
from inline_ips.verdict import Action, Alert, Reason, Verdict

TS = 1700000000.123456
# Retry and back-off waits that keep the tests quick.
RETRY, BACKOFF = 0.02, 0.05


# -- events -------------------------------------------------------------------------------------


def _packet(src: str = "10.0.0.2", sport: int = 1234, dst: str = "10.0.1.2", dport: int = 80) -> Packet:
    pkt = Packet(bytes(40), TS)
    pkt.ip_version, pkt.proto = 4, PROTO_TCP
    pkt.src = int.from_bytes(socket.inet_aton(src), "big")
    pkt.dst = int.from_bytes(socket.inet_aton(dst), "big")
    pkt.ttl, pkt.ip_len, pkt.ip_id, pkt.l4_offset = 64, 40, 1, 20
    pkt.sport, pkt.dport, pkt.tcp_flags = sport, dport, SYN
    return pkt


RULE = Alert(
    sid=2000001,
    gid=1,
    rev=3,
    msg="ET SCAN <probe> & more",
    category="Attempted Information Leak",
    severity=2,
    action=Action.DROP,
)


def alert(i: int = 0) -> dict[str, object]:
    return alert_event(_packet(sport=1234 + i), 42 + i, True, RULE, blocked=True)


def drop(i: int = 0) -> dict[str, object]:
    return drop_event(_packet(sport=1234 + i), 42 + i, Verdict(Action.DROP, Reason.RULE))


STATS: dict[str, object] = {"timestamp": "2023-11-14T22:13:20.123456+0000", "event_type": "stats"}


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def sinks() -> Iterator[list[AsyncSink]]:
    """Sinks a test starts; closed at teardown so no thread outlives its test's receivers."""
    made: list[AsyncSink] = []
    yield made
    for s in made:
        s.close(0.5)


def started(made: list[AsyncSink], sink: AsyncSink) -> AsyncSink:
    made.append(sink)
    sink.start()
    return sink


# -- receivers ----------------------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="iips-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def unix_receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 204
    posts: list[Posted] = field(default_factory=list)
    gets: int = 0


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    state = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.posts.append(Posted(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # only a followed redirect would ask
            state.gets += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-token"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Hanging:
    url: str
    connected: threading.Event
    connections: list[socket.socket]


@pytest.fixture
def hanging_receiver() -> Iterator[Hanging]:
    """Accepts connections and never reads or answers; closing them at teardown frees the sink."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    state = Hanging(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", threading.Event(), [])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.connections.append(conn)
            state.connected.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(2)
    for conn in state.connections:
        conn.close()
    listener.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return port


# -- syslog -------------------------------------------------------------------------------------

RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]+) inline-ips "
    r"(?P<pid>\d+) - - (?P<msg>.*)",
    re.DOTALL,
)
RFC3164 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(?P<host>[!-~]+) )?"
    r"inline-ips\[(?P<pid>\d+)\]: (?P<msg>.*)",
    re.DOTALL,
)


def test_syslog_unix_socket_rfc5424(short_dir: Path, sinks: list[AsyncSink]) -> None:
    path = short_dir / "log"
    receiver = unix_receiver(path)
    sink = started(sinks, SyslogSink(str(path), hostname="router1"))
    event = alert()
    sink.submit(event)
    m = RFC5424.fullmatch(receiver.recv(65536).decode())
    assert m is not None
    assert int(m["pri"]) == 21 * 8 + 4  # local5, warning
    assert m["host"] == "router1"
    assert int(m["pid"]) == os.getpid()
    assert json.loads(m["msg"]) == event
    assert m["msg"] == json.dumps(event, separators=(",", ":"))  # compact, as in eve.json
    wait_until(lambda: sink.counters()["sent"] == 1)
    assert sink.counters() == {"queued": 1, "sent": 1, "dropped_full": 0, "dropped_error": 0, "errors": 0}


@pytest.mark.parametrize(
    ("event_type", "facility", "pri"),
    [
        ("alert", "local5", 21 * 8 + 4),
        ("drop", "local5", 21 * 8 + 5),
        ("stats", "local5", 21 * 8 + 6),
        ("alert", "daemon", 3 * 8 + 4),
        ("drop", "local0", 16 * 8 + 5),
        ("alert", "1", 1 * 8 + 4),
    ],
)
def test_syslog_udp_pri_from_facility_and_event_type(
    udp_receiver: socket.socket, sinks: list[AsyncSink], event_type: str, facility: str, pri: int
) -> None:
    port = udp_receiver.getsockname()[1]
    sink = started(
        sinks,
        SyslogSink(f"udp://127.0.0.1:{port}", facility=facility, event_types={"alert", "drop", "stats"}),
    )
    event = {"alert": alert, "drop": drop, "stats": lambda: dict(STATS)}[event_type]()
    sink.submit(event)
    m = RFC5424.fullmatch(udp_receiver.recv(65536).decode())
    assert m is not None
    assert int(m["pri"]) == pri
    assert m["host"] != "-"
    assert json.loads(m["msg"]) == event


def test_syslog_rfc3164_unix_and_udp(
    short_dir: Path, udp_receiver: socket.socket, sinks: list[AsyncSink]
) -> None:
    path = short_dir / "log"
    unix = unix_receiver(path)
    port = udp_receiver.getsockname()[1]
    local = started(sinks, SyslogSink(str(path), format="rfc3164", hostname="router1"))
    remote = started(sinks, SyslogSink(f"udp://127.0.0.1:{port}", format="rfc3164", hostname="router1"))
    event = alert()
    local.submit(event)
    remote.submit(event)
    m = RFC3164.fullmatch(unix.recv(65536).decode())
    assert m is not None
    assert m["host"] is None  # glibc's local form: no hostname on /dev/log
    assert int(m["pri"]) == 172
    assert int(m["pid"]) == os.getpid()
    assert json.loads(m["msg"]) == event
    m = RFC3164.fullmatch(udp_receiver.recv(65536).decode())
    assert m is not None
    assert m["host"] == "router1"
    assert json.loads(m["msg"]) == event


def test_syslog_messages_arrive_again_after_the_daemon_re_creates_its_socket(
    short_dir: Path, sinks: list[AsyncSink]
) -> None:
    path = short_dir / "log"
    receiver = unix_receiver(path)
    sink = started(sinks, SyslogSink(str(path), retry_delay=RETRY, backoff_max=BACKOFF))
    sink.submit(alert(1))
    assert json.loads(RFC5424.fullmatch(receiver.recv(65536).decode())["msg"])["flow_id"] == 43  # type: ignore[index]

    receiver.close()
    path.unlink()
    sink.submit(alert(2))  # nobody there: the send and the retry fail, the event is given up
    wait_until(lambda: sink.counters()["dropped_error"] == 1)
    assert sink.counters()["errors"] == 2

    receiver = unix_receiver(path)
    sink.submit(alert(3))
    assert json.loads(RFC5424.fullmatch(receiver.recv(65536).decode())["msg"])["flow_id"] == 45  # type: ignore[index]
    receiver.close()
    wait_until(lambda: sink.counters()["sent"] == 2)
    assert sink.counters() == {"queued": 3, "sent": 2, "dropped_full": 0, "dropped_error": 1, "errors": 2}


def test_syslog_socket_replaced_while_connected_gets_messages_at_the_retry(
    short_dir: Path, sinks: list[AsyncSink]
) -> None:
    # The daemon restarts between two events: the old connection is refused, the retry reconnects.
    path = short_dir / "log"
    receiver = unix_receiver(path)
    sink = started(sinks, SyslogSink(str(path), retry_delay=RETRY, backoff_max=BACKOFF))
    sink.submit(alert(1))
    receiver.recv(65536)
    receiver.close()
    path.unlink()
    receiver = unix_receiver(path)
    sink.submit(alert(2))
    m = RFC5424.fullmatch(receiver.recv(65536).decode())
    assert m is not None
    assert json.loads(m["msg"])["flow_id"] == 44
    wait_until(lambda: sink.counters()["sent"] == 2)
    assert sink.counters()["errors"] == 1
    assert sink.counters()["dropped_error"] == 0
    receiver.close()


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("/dev/log", SyslogTarget("unix", path="/dev/log")),
        ("  /run/systemd/journal/syslog ", SyslogTarget("unix", path="/run/systemd/journal/syslog")),
        ("unix:/dev/log", SyslogTarget("unix", path="/dev/log")),
        ("unix:///dev/log", SyslogTarget("unix", path="/dev/log")),
        ("udp://127.0.0.1:5514", SyslogTarget("udp", host="127.0.0.1", port=5514)),
        ("udp://logs.example.net", SyslogTarget("udp", host="logs.example.net", port=514)),
        ("UDP://[::1]:514", SyslogTarget("udp", host="::1", port=514)),
    ],
)
def test_parse_syslog_target(text: str, target: SyslogTarget) -> None:
    assert parse_syslog_target(text) == target


@pytest.mark.parametrize(
    "text",
    ["", "log.sock", "dev/log", "tcp://127.0.0.1:514", "udp://", "udp://:514", "udp://127.0.0.1:99999",
     "udp://127.0.0.1:0", "udp://127.0.0.1:x", "udp://127.0.0.1:514/path", "127.0.0.1:514", "/dev/\0log"],
)  # fmt: skip
def test_bad_syslog_targets_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_syslog_target(text)


def test_str_of_a_target_parses_back() -> None:
    for text in ("/dev/log", "udp://127.0.0.1:5514", "udp://[::1]:514"):
        assert str(parse_syslog_target(text)) == text


@pytest.mark.parametrize(
    ("text", "number"), [("local5", 21), ("LOCAL0", 16), ("daemon", 3), ("kern", 0), ("23", 23), (4, 4)]
)
def test_parse_facility(text: str | int, number: int) -> None:
    assert parse_facility(text) == number


@pytest.mark.parametrize("text", ["local8", "24", "-1", "", "daemons"])
def test_bad_facilities_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_facility(text)


# -- webhook ------------------------------------------------------------------------------------


def test_webhook_ndjson_batch_with_extra_headers(http_receiver: HttpReceiver, sinks: list[AsyncSink]) -> None:
    sink = started(
        sinks,
        WebhookSink(
            http_receiver.url,
            headers={"Authorization": "Bearer t0ken"},
            batch_seconds=0.3,
            event_types={"alert", "drop"},
        ),
    )
    events = [alert(0), drop(0), alert(1), alert(2), drop(2)]
    for ev in events:
        sink.submit(ev)
    wait_until(lambda: sink.counters()["sent"] == 5)
    assert len(http_receiver.posts) == 1  # all five gathered into one request
    post = http_receiver.posts[0]
    assert post.path == "/hooks/T000/secret-token"
    assert post.headers["content-type"] == "application/x-ndjson"
    assert post.headers["authorization"] == "Bearer t0ken"
    assert post.headers["user-agent"].startswith("inline-ips/")
    assert post.body.endswith(b"\n")
    assert [json.loads(line) for line in post.body.splitlines()] == events
    assert sink.counters() == {"queued": 5, "sent": 5, "dropped_full": 0, "dropped_error": 0, "errors": 0}


def test_webhook_batches_hold_at_most_batch_max(http_receiver: HttpReceiver, sinks: list[AsyncSink]) -> None:
    sink = started(sinks, WebhookSink(http_receiver.url, batch_max=3, batch_seconds=30))
    for i in range(7):
        sink.submit(alert(i))
    wait_until(lambda: sink.counters()["sent"] == 6)
    started_at = time.monotonic()
    sink.close(5)  # the last one waits for its batch to fill: close() sends it at once
    assert time.monotonic() - started_at < 2.5
    assert [len(p.body.splitlines()) for p in http_receiver.posts] == [3, 3, 1]
    assert sink.counters()["sent"] == 7


def test_webhook_slack_body(http_receiver: HttpReceiver, sinks: list[AsyncSink]) -> None:
    sink = started(
        sinks,
        WebhookSink(http_receiver.url, format="slack", batch_seconds=0.3, event_types={"alert", "drop"}),
    )
    sink.submit(alert(0))
    sink.submit(drop(1))
    wait_until(lambda: sink.counters()["sent"] == 2)
    (post,) = http_receiver.posts
    assert post.headers["content-type"] == "application/json"
    assert json.loads(post.body) == {
        "text": "[blocked] ET SCAN &lt;probe&gt; &amp; more (sid 2000001) 10.0.0.2:1234 -> 10.0.1.2:80 TCP\n"
        "[drop] 10.0.0.2:1235 -> 10.0.1.2:80 TCP (rule)"
    }


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            {"event_type": "alert", "src_ip": "2001:db8::1", "src_port": 443, "dest_ip": "2001:db8::2",
             "dest_port": 50123, "proto": "TCP",
             "alert": {"action": "allowed", "signature": "ET POLICY x", "signature_id": 7}},
            "[allowed] ET POLICY x (sid 7) [2001:db8::1]:443 -> [2001:db8::2]:50123 TCP",
        ),
        (
            {"event_type": "alert", "src_ip": "10.0.0.128", "dest_ip": "10.0.0.1", "proto": "ICMP",
             "alert": {"action": "blocked", "signature": "ping sweep", "signature_id": 2200040}},
            "[blocked] ping sweep (sid 2200040) 10.0.0.128 -> 10.0.0.1 ICMP",
        ),
        ({"event_type": "stats", "timestamp": "T"}, "[stats] T"),
        ({"event_type": "alert"}, "[alert]"),
        ({"event_type": "flow", "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2"}, "[flow] 10.0.0.1 -> 10.0.0.2"),
    ],
)  # fmt: skip
def test_chat_line(event: dict[str, object], line: str) -> None:
    assert chat_line(event) == line


def test_chat_line_cuts_a_huge_rule_message() -> None:
    ev = alert()
    ev["alert"] = {**ev["alert"], "signature": "x" * 5000}  # type: ignore[dict-item]
    assert chat_line(ev) == f"[blocked] {'x' * 297}... (sid 2000001) 10.0.0.2:1234 -> 10.0.1.2:80 TCP"


@pytest.mark.parametrize("status", [500, 404, 302])
def test_webhook_non_2xx_is_an_error_retried_once_then_dropped(
    http_receiver: HttpReceiver, sinks: list[AsyncSink], status: int
) -> None:
    http_receiver.statuses[:] = [status, status]
    sink = started(
        sinks, WebhookSink(http_receiver.url, batch_seconds=0, retry_delay=RETRY, backoff_max=BACKOFF)
    )
    sink.submit(alert())
    wait_until(lambda: sink.counters()["dropped_error"] == 1)
    assert sink.counters() == {"queued": 1, "sent": 0, "dropped_full": 0, "dropped_error": 1, "errors": 2}
    assert len(http_receiver.posts) == 2
    assert http_receiver.gets == 0  # a redirect is not followed (it would turn the POST into a GET)


def test_webhook_retry_delivers_after_one_failure(
    http_receiver: HttpReceiver, sinks: list[AsyncSink]
) -> None:
    http_receiver.statuses[:] = [503]
    sink = started(
        sinks, WebhookSink(http_receiver.url, batch_seconds=0, retry_delay=RETRY, backoff_max=BACKOFF)
    )
    sink.submit(alert())
    wait_until(lambda: sink.counters()["sent"] == 1)
    assert sink.counters() == {"queued": 1, "sent": 1, "dropped_full": 0, "dropped_error": 0, "errors": 1}
    first, second = http_receiver.posts
    assert first.body == second.body


def test_webhook_errors_are_logged_once_then_rate_limited(
    sinks: list[AsyncSink], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook/secret-token"
    sink = started(
        sinks, WebhookSink(url, batch_max=1, batch_seconds=0, retry_delay=RETRY, backoff_max=BACKOFF)
    )
    with caplog.at_level(logging.WARNING, logger="inline_ips.output.sinks"):
        for i in range(3):
            sink.submit(alert(i))
        wait_until(lambda: sink.counters()["dropped_error"] == 3)
    assert sink.counters()["errors"] == 6
    warnings = [r for r in caplog.records if r.name == "inline_ips.output.sinks"]
    assert len(warnings) == 1
    assert "refused" in warnings[0].getMessage().lower()
    assert "secret-token" not in caplog.text


def test_hanging_webhook_never_blocks_submit_and_counts_what_it_drops(
    hanging_receiver: Hanging, sinks: list[AsyncSink]
) -> None:
    queue_size, extra = 100, 7
    sink = WebhookSink(hanging_receiver.url, timeout=60, queue_size=queue_size, batch_seconds=0)
    sinks.append(sink)
    sink.start()
    sink.submit(alert(0))
    # The thread has taken the first event and now waits for an answer that never comes.
    assert hanging_receiver.connected.wait(5)
    started_at = time.monotonic()
    for i in range(queue_size + extra):
        sink.submit(alert(1 + i))
    submitting = time.monotonic() - started_at
    assert sink.counters() == {
        "queued": 1 + queue_size,
        "sent": 0,
        "dropped_full": extra,
        "dropped_error": 0,
        "errors": 0,
    }
    assert sink.pending == 1 + queue_size
    assert submitting < 1.0  # 107 appends; a blocking submit would take the 60 s timeout

    started_at = time.monotonic()
    sink.close(timeout=1.0)
    assert time.monotonic() - started_at < 1.0 + 2
    assert sink.counters() == {
        "queued": 1 + queue_size,
        "sent": 0,
        "dropped_full": extra,
        "dropped_error": 1 + queue_size,  # the one in flight and all still queued
        "errors": 0,
    }
    sink.submit(alert(999))  # after close: counted as dropped, nothing raised
    assert sink.counters()["dropped_error"] == 2 + queue_size


def test_submit_stays_cheap_while_the_receiver_hangs(
    hanging_receiver: Hanging, sinks: list[AsyncSink]
) -> None:
    sink = WebhookSink(hanging_receiver.url, timeout=60, queue_size=1000, batch_seconds=0)
    sinks.append(sink)
    sink.start()
    sink.submit(alert(0))
    assert hanging_receiver.connected.wait(5)
    events = [alert(i) for i in range(20_000)]
    started_at = time.perf_counter()
    for ev in events:
        sink.submit(ev)
    per_event = (time.perf_counter() - started_at) / len(events)
    assert sink.counters()["dropped_full"] == len(events) - 1000
    assert per_event < 50e-6  # about half a microsecond here; generous for slow CI machines


def test_close_flushes_what_is_queued(http_receiver: HttpReceiver) -> None:
    sink = WebhookSink(http_receiver.url, batch_seconds=60)
    sink.start()
    for i in range(3):
        sink.submit(alert(i))
    started_at = time.monotonic()
    sink.close(5)
    assert time.monotonic() - started_at < 3
    assert sink.counters() == {"queued": 3, "sent": 3, "dropped_full": 0, "dropped_error": 0, "errors": 0}
    assert len(http_receiver.posts[0].body.splitlines()) == 3


@pytest.mark.parametrize(
    "text",
    ["", "ftp://example.org/hook", "hooks.slack.com/services/x", "http://", "https:///path",
     "http://user:pw@example.org/hook", "http://example.org:99999/", "http://example.org:0/",
     "http://exa mple.org/", "file:///etc/passwd"],
)  # fmt: skip
def test_bad_webhook_urls_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_webhook_url(text)


@pytest.mark.parametrize(
    "text", ["http://127.0.0.1:8080/hook", " https://hooks.slack.com/services/T/B/x ", "HTTPS://[::1]/a?b=c"]
)
def test_good_webhook_urls(text: str) -> None:
    assert parse_webhook_url(text) == text.strip()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/..."),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
        ("https://[::1]:8443/x?token=y", "https://[::1]:8443/..."),
    ],
)
def test_redact_url_hides_path_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- what every sink shares ---------------------------------------------------------------------


def test_event_types_filter_is_not_counted_as_dropped(short_dir: Path, sinks: list[AsyncSink]) -> None:
    path = short_dir / "log"
    receiver = unix_receiver(path)
    sink = started(sinks, SyslogSink(str(path)))  # alerts only, by default
    sink.submit(drop())
    sink.submit(dict(STATS))
    sink.submit({"no": "event_type"})
    sink.submit(alert())
    assert json.loads(RFC5424.fullmatch(receiver.recv(65536).decode())["msg"])["event_type"] == "alert"  # type: ignore[index]
    wait_until(lambda: sink.counters()["sent"] == 1)
    assert sink.counters() == {"queued": 1, "sent": 1, "dropped_full": 0, "dropped_error": 0, "errors": 0}
    receiver.close()


def test_submit_never_raises_on_a_bad_event() -> None:
    sink = SyslogSink("/nonexistent/log")
    sink.submit(None)  # type: ignore[arg-type]
    sink.submit(42)  # type: ignore[arg-type]
    assert sink.counters()["dropped_error"] == 2


def test_close_without_start_counts_the_queue_and_start_after_close_fails() -> None:
    sink = WebhookSink("http://127.0.0.1:9/hook", queue_size=2)
    for i in range(3):
        sink.submit(alert(i))
    sink.close(0.1)
    sink.close(0.1)  # twice is fine
    assert sink.counters() == {"queued": 2, "sent": 0, "dropped_full": 1, "dropped_error": 2, "errors": 0}
    with pytest.raises(RuntimeError, match="closed"):
        sink.start()


def test_counters_can_be_read_while_submitting(http_receiver: HttpReceiver, sinks: list[AsyncSink]) -> None:
    sink = started(sinks, WebhookSink(http_receiver.url, batch_seconds=0.01, queue_size=50))
    stop = threading.Event()
    seen: list[dict[str, int]] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(sink.counters())

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(2000):
        sink.submit(alert(i))
    stop.set()
    reader.join()
    sink.close(5)
    c = sink.counters()
    assert c["queued"] + c["dropped_full"] == 2000
    assert c["sent"] + c["dropped_error"] == c["queued"]
    assert all(s["sent"] + s["dropped_error"] <= s["queued"] for s in seen)


@pytest.mark.parametrize(
    ("text", "types"),
    [("alert", {"alert"}), ("alert,drop", {"alert", "drop"}), (" Drop , stats ,", {"drop", "stats"})],
)
def test_parse_event_types(text: str, types: set[str]) -> None:
    assert parse_event_types(text) == types


@pytest.mark.parametrize("text", ["", ",", "alert,flow", "alerts"])
def test_bad_event_types_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_event_types(text)


@pytest.mark.parametrize(
    ("text", "pair"),
    [("Authorization: Bearer x", ("Authorization", "Bearer x")), ("X-Token:abc", ("X-Token", "abc"))],
)
def test_parse_header(text: str, pair: tuple[str, str]) -> None:
    assert parse_header(text) == pair


@pytest.mark.parametrize("text", ["Authorization", ": x", "Bad Name: x", "X: a\r\nInjected: b"])
def test_bad_headers_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_header(text)


def test_build_sinks_from_options() -> None:
    assert build_sinks(SinkOptions()) == []
    opts = SinkOptions(
        syslog=SyslogOptions(target="udp://127.0.0.1:5514", facility="local3"),
        webhook=WebhookOptions(
            url="https://hooks.example.net/T/B/secret",
            format="slack",
            event_types=parse_event_types("alert,drop"),
            headers=(parse_header("Authorization: Bearer x"),),
        ),
        queue_size=123,
    )
    syslog, webhook = build_sinks(opts)
    assert isinstance(syslog, SyslogSink)
    assert isinstance(webhook, WebhookSink)
    assert syslog.target == SyslogTarget("udp", host="127.0.0.1", port=5514)
    assert syslog.facility == 19
    assert syslog.event_types == {"alert"}
    assert webhook.format == "slack"
    assert webhook.event_types == {"alert", "drop"}
    assert webhook.headers["Authorization"] == "Bearer x"
    assert syslog.queue_size == webhook.queue_size == 123
    assert SinkOptions().queue_size == DEFAULT_QUEUE_SIZE
    assert "secret" not in webhook.describe()
    assert syslog.describe() == "syslog udp://127.0.0.1:5514 (rfc5424, facility 19)"


@pytest.mark.parametrize(
    ("opts", "bad"),
    [
        (SinkOptions(webhook=WebhookOptions(url="ftp://x/")), "'ftp://x/'"),
        (SinkOptions(syslog=SyslogOptions(target="tcp://x:1")), "'tcp://x:1'"),
        (SinkOptions(syslog=SyslogOptions(facility="local9")), "'local9'"),
        (SinkOptions(webhook=WebhookOptions(url="http://x/", format="xml")), "'xml'"),  # type: ignore[arg-type]
        (SinkOptions(syslog=SyslogOptions(), queue_size=0), "0"),
    ],
)
def test_build_sinks_rejects_bad_options(opts: SinkOptions, bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(bad)):
        build_sinks(opts)


def test_flush_sends_without_waiting_for_the_batch_to_fill(
    http_receiver: HttpReceiver, sinks: list[AsyncSink]
) -> None:
    sink = started(sinks, WebhookSink(http_receiver.url, batch_seconds=60))
    for i in range(3):
        sink.submit(alert(i))
    assert sink.flush(5)
    assert sink.counters()["sent"] == 3
    sink.submit(alert(4))
    assert sink.flush(5)
    assert [len(p.body.splitlines()) for p in http_receiver.posts] == [3, 1]


def test_flush_gives_up_on_a_hanging_receiver(hanging_receiver: Hanging, sinks: list[AsyncSink]) -> None:
    sink = started(sinks, WebhookSink(hanging_receiver.url, timeout=60, batch_seconds=0))
    sink.submit(alert())
    assert not sink.flush(0.2)
    assert sink.pending == 1


# -- bench/sink_bench.py ------------------------------------------------------------------------


def test_sink_bench_runs_end_to_end_and_keeps_other_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import sink_bench

    md = tmp_path / "RESULTS.md"
    md.write_text("# Engine benchmark results\n\nkept\n", encoding="utf-8")
    args = ["--connections", "100", "--repeat", "1", "--queue", "50", "--quiet", "--markdown", str(md)]
    for _ in range(2):  # the second run replaces the section instead of adding one
        assert sink_bench.main(args) == 0
    out = capsys.readouterr().out
    for name in (
        sink_bench.NAME_NONE,
        sink_bench.NAME_HANGING,
        sink_bench.NAME_WEBHOOK,
        sink_bench.NAME_SYSLOG,
    ):
        assert name in out
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Engine benchmark results\n\nkept\n\n## EVE sinks")
    assert text.count(sink_bench.SECTION) == 1
    # 100 alerts into a queue of 50 that nobody empties: what was neither taken (the batch in
    # flight) nor queued was dropped as full, and close() gave up the rest.
    row = next(line for line in text.splitlines() if line.startswith(f"| {sink_bench.NAME_HANGING} |"))
    queued, sent, full, error, errors = (int(c) for c in row.rstrip(" |").split(" | ")[-5:])
    assert queued + full == 100
    assert queued >= 50  # the first 50 always fit
    assert (sent, error, errors) == (0, queued, 0)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "S\n"),
        ("# T\n", "# T\n\nS\n"),
        ("# T", "# T\n\nS\n"),
        ("# T\n\n## EVE sinks: a hanging webhook\n\nold\n", "# T\n\nS\n"),
        ("# T\n\n## EVE sinks: a hanging webhook\nold\n\n## Next\nkeep\n", "# T\n\nS\n\n## Next\nkeep\n"),
    ],
)
def test_sink_bench_replace_section(before: str, after: str) -> None:
    from bench import sink_bench

    assert sink_bench.replace_section(before, "S\n") == after
