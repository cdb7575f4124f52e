"""EVE events to syslog and to a webhook, without ever holding up a verdict.

Besides the EVE file (:class:`~inline_ips.output.eve.EveWriter`), the events
can go to a syslog daemon (:class:`SyslogSink`: a unix datagram socket such
as ``/dev/log``, or ``udp://host:port``) and to an HTTP(S) webhook
(:class:`WebhookSink`: JSON lines, or Slack/Mattermost-style chat messages).
Each sink is an :class:`AsyncSink`: ``submit`` only appends the event to a
bounded in-memory queue and returns; a daemon thread per sink serialises the
events (``json.dumps`` runs there, not on the verdict path), sends them, and
retries a little. A receiver that is slow, gone or hanging therefore costs
the verdict path nothing but the append: once the queue is full, further
events are counted and dropped (``dropped_full``), never waited for.
``counters()`` says what happened to every event accepted into the queue:
``queued == sent + dropped_error + still queued or in flight``.

The command line (``inline-ips run``) is expected to map onto
:class:`SinkOptions` like this (:func:`build_sinks` builds the sinks):

* ``--syslog [TARGET]``: also send events to syslog; TARGET is a unix
  datagram socket path (default ``/dev/log``) or ``udp://host[:port]``
  (port 514 by default). :func:`parse_syslog_target`.
* ``--syslog-facility NAME``: ``local5`` (Suricata's default), any of
  ``kern user mail daemon auth syslog lpr news uucp cron authpriv ftp
  local0``..``local7``, or 0-23. :func:`parse_facility`.
* ``--syslog-format rfc5424|rfc3164``: the message header. RFC 5424
  (``<PRI>1 TIMESTAMP HOSTNAME inline-ips PROCID - - MSG``) is this
  module's default and the command line's for ``udp://`` targets;
  ``rfc3164`` is the BSD form glibc's ``syslog()`` writes
  (``<PRI>Mmm dd hh:mm:ss inline-ips[PID]: MSG``), the command line's
  default for unix sockets, because systemd-journald on ``/dev/log`` does
  not parse RFC 5424 headers and would log them as part of the message.
* ``--syslog-events LIST``: comma-separated EVE event types to send
  (``alert`` by default; ``alert,drop``). :func:`parse_event_types`.
* ``--webhook URL``: also POST events to this http(s) URL.
  :func:`parse_webhook_url`.
* ``--webhook-format ndjson|slack``: the body: JSON lines
  (``application/x-ndjson``) or ``{"text": ...}`` with one readable line
  per event, which Slack and Mattermost incoming webhooks accept.
* ``--webhook-events LIST``: as ``--syslog-events`` (default ``alert``).
* ``--webhook-header 'Name: value'`` (repeatable): extra request headers,
  e.g. ``Authorization``. :func:`parse_header`.
* ``--webhook-timeout SECONDS``: per request (default 5).
* ``--sink-queue N``: events each sink holds while its receiver is slow or
  away (default 10,000); beyond that they are dropped and counted.

Syslog messages carry one event each, the compact EVE JSON as MSG (as
Suricata's syslog EVE output does), severity from the event type: ``alert``
warning (4), ``drop`` notice (5), anything else info (6); PRI is facility * 8
+ severity. The header's timestamp is when the message is formatted (UTC);
the event's own time is in the JSON. The socket is reopened after an error,
so a syslog daemon that restarts (and re-creates ``/dev/log``) gets messages
again. Webhook requests carry up to ``batch_max`` events (50) gathered for up
to ``batch_seconds`` (1 s), which keeps chat services under their rate
limits. Any answer but 2xx is an error (redirects are not followed: urllib
would turn the POST into a GET and lose the body). Proxy environment
variables are ignored. A batch that fails is retried ``retries`` times (1)
after ``retry_delay`` (0.5 s); then its events are counted as
``dropped_error`` and the sink waits before the next batch, twice as long
after each further failure, up to ``backoff_max`` (30 s). The first error is
logged at once, then at most one line a minute.

It does not: persist events across restarts or spill the queue to disk; send
syslog over TCP or TLS, or frame octet counts; fold many events into one
syslog message; follow redirects, use proxies or client certificates; put
packet or HTTP content into chat messages (only rule text, addresses and
ports, so a packet cannot inject mentions or links); deduplicate or rate-limit
alerts (the rules do that). Sinks are not shared between processes: build
and start them in the process that submits (threads do not survive fork).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from inline_ips import __version__

__all__ = [
    "COUNTER_NAMES",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_SYSLOG_TARGET",
    "EVENT_TYPES",
    "AsyncSink",
    "SinkOptions",
    "SyslogOptions",
    "SyslogSink",
    "SyslogTarget",
    "WebhookError",
    "WebhookOptions",
    "WebhookSink",
    "build_sinks",
    "chat_line",
    "parse_event_types",
    "parse_facility",
    "parse_header",
    "parse_syslog_target",
    "parse_webhook_url",
    "redact_url",
]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_EVENT_TYPES: frozenset[str] = frozenset({"alert"})
# The event types inline_ips.output.eve builds.
EVENT_TYPES: frozenset[str] = frozenset({"alert", "drop", "stats"})
COUNTER_NAMES = ("queued", "sent", "dropped_full", "dropped_error", "errors")
DEFAULT_SYSLOG_TARGET = "/dev/log"
SYSLOG_PORT = 514
APP_NAME = "inline-ips"

# Without any event, the worker still wakes now and then; the wake-up event
# is the real signal, this only bounds the cost of a lost wake-up.
_IDLE_SECONDS = 1.0
_ERROR_LOG_SECONDS = 60.0
# Even with retry_delay 0, a failing receiver is not tried in a busy loop.
_MIN_BACKOFF_SECONDS = 0.01
# Syslog over UDP cannot carry more than this in one datagram (IPv4).
_UDP_MAX = 65_507
# A webhook's answer is read (so the connection ends cleanly) but not kept.
_RESPONSE_READ_MAX = 64 * 1024
# A longer rule message is cut in chat lines: chat services reject or fold huge messages.
_CHAT_SIGNATURE_MAX = 300

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5
SEVERITY_INFO = 6
_SEVERITY: dict[object, int] = {"alert": SEVERITY_WARNING, "drop": SEVERITY_NOTICE}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

WebhookFormat = Literal["ndjson", "slack"]
SyslogFormat = Literal["rfc5424", "rfc3164"]
WEBHOOK_FORMATS: tuple[str, ...] = ("ndjson", "slack")
SYSLOG_FORMATS: tuple[str, ...] = ("rfc5424", "rfc3164")


def _dumps(event: Mapping[str, object]) -> str:
    # default=str: one odd value must not make a whole batch undeliverable.
    return json.dumps(event, separators=(",", ":"), default=str)


# -- parsing what the command line gives --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where syslog messages go: a unix datagram socket, or a UDP host and port."""

    kind: Literal["unix", "udp"]
    path: str = ""
    host: str = ""
    port: int = SYSLOG_PORT

    def __str__(self) -> str:
        if self.kind == "unix":
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def parse_syslog_target(text: str) -> SyslogTarget:
    """``/dev/log`` (an absolute unix socket path, also as ``unix:PATH``) or ``udp://host[:port]``."""
    value = text.strip()
    if value.startswith("unix:"):
        value = value[len("unix:") :]
        if value.startswith("//"):
            value = value[2:]
    if value.startswith("/"):
        if "\0" in value:
            raise ValueError(f"bad syslog target {text!r}: NUL in the socket path")
        return SyslogTarget("unix", path=value)
    if "://" not in value:
        raise ValueError(
            f"bad syslog target {text!r}: want an absolute unix socket path (/dev/log) or udp://host:port"
        )
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() != "udp":
        raise ValueError(
            f"bad syslog target {text!r}: scheme {parts.scheme!r} is not supported, only udp:// "
            "(or a unix socket path)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"bad syslog target {text!r}: want udp://host:port and nothing else")
    host = parts.hostname
    if not host:
        raise ValueError(f"bad syslog target {text!r}: no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad syslog target {text!r}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"bad syslog target {text!r}: the port must be a number from 1 to 65535")
    return SyslogTarget("udp", host=host, port=port or SYSLOG_PORT)


def parse_webhook_url(text: str) -> str:
    """Check a webhook URL (http or https, with a host) and return it without surrounding blanks."""
    value = text.strip()
    if not value or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise ValueError(f"bad webhook URL {text!r}: empty or contains blanks or control characters")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"bad webhook URL {text!r}: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"bad webhook URL {text!r}: no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"bad webhook URL {text!r}: no user:password@ in the URL; send credentials as a header "
            "('Authorization: ...')"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad webhook URL {text!r}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"bad webhook URL {text!r}: the port must be a number from 1 to 65535")
    return value


def redact_url(url: str) -> str:
    """``scheme://host[:port]/...``: for logs, since webhook URLs often hold their secret in the path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/..." if parts.path not in ("", "/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def parse_facility(text: str | int) -> int:
    """A syslog facility by name (``local5``, ``daemon``, ...) or number (0-23)."""
    if isinstance(text, int):
        number = text
    else:
        name = text.strip().lower()
        if name in FACILITIES:
            return FACILITIES[name]
        if not name.isdigit():
            raise ValueError(f"unknown syslog facility {text!r}: want one of {', '.join(FACILITIES)} or 0-23")
        number = int(name)
    if not 0 <= number <= 23:
        raise ValueError(f"bad syslog facility {text!r}: a number must be from 0 to 23")
    return number


def parse_event_types(text: str | Iterable[str]) -> frozenset[str]:
    """``"alert,drop"`` (or an iterable of names) as a set of EVE event types this project writes."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = frozenset(item.strip().lower() for item in items if item.strip())
    if not names:
        raise ValueError(f"no EVE event types in {text!r}: want e.g. alert or alert,drop")
    unknown = sorted(names - EVENT_TYPES)
    if unknown:
        raise ValueError(
            f"unknown EVE event type {', '.join(map(repr, unknown))} in {text!r} "
            f"(known: {', '.join(sorted(EVENT_TYPES))})"
        )
    return names


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as a header pair (for ``Authorization`` and the like)."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or not set(name) <= _TOKEN:
        raise ValueError(f"bad HTTP header {text!r}: want 'Name: value'")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"bad HTTP header {text!r}: line breaks in the value")
    return name, value


# -- the queue and its thread -------------------------------------------------------------------


class _ErrorLog:
    """The first failure at once, then at most one line per interval, with the count in between."""

    def __init__(self, what: str, interval: float = _ERROR_LOG_SECONDS) -> None:
        self.what = what
        self.interval = interval
        self._last: float | None = None
        self._quiet = 0
        self.failing = False

    def failed(self, e: BaseException) -> None:
        self.failing = True
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            self._quiet += 1
            return
        more = f" ({self._quiet} more failed attempts since the last message)" if self._quiet else ""
        log.warning("EVE sink %s: sending failed: %s%s", self.what, e or type(e).__name__, more)
        self._last, self._quiet = now, 0

    def recovered(self) -> None:
        if self.failing:
            log.info("EVE sink %s: sending works again", self.what)
        self.failing = False


class AsyncSink:
    """A bounded queue of EVE events and one daemon thread that sends them on.

    Subclasses implement :meth:`_send`. ``submit`` never blocks and never
    raises; events whose ``event_type`` is not in ``event_types`` are
    ignored (not counted). At most ``queue_size`` events wait; more are
    dropped and counted as ``dropped_full``. The thread takes up to
    ``batch_max`` events at a time, after waiting up to ``batch_seconds``
    for a batch to fill (0: send what is there at once).

    Submitted events are read later by the sink's thread: do not change an
    event after submitting it (the ``*_event`` functions build a new dict
    every time).
    """

    def __init__(
        self,
        name: str,
        *,
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_max: int = 100,
        batch_seconds: float = 0.0,
        retries: int = 1,
        retry_delay: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"EVE sink {name}: the queue size must be at least 1, got {queue_size}")
        if batch_max < 1:
            raise ValueError(f"EVE sink {name}: batch_max must be at least 1, got {batch_max}")
        if batch_seconds < 0 or retries < 0 or retry_delay < 0 or backoff_max < 0:
            raise ValueError(f"EVE sink {name}: times and retry counts cannot be negative")
        self.name = name
        self.event_types = frozenset(event_types)
        self.queue_size = queue_size
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.retries = retries
        self.retry_delay = retry_delay
        self.backoff_max = backoff_max
        self._queue: collections.deque[Mapping[str, object]] = collections.deque()
        # One lock for the queue's size check and the counters. Nobody holds it
        # while doing I/O, and the thread only for taking one batch off the queue.
        self._lock = threading.Lock()
        self._wake = threading.Event()  # an event arrived, a batch filled, or close()
        self._closing = threading.Event()  # interrupts retry and back-off waits
        self._closed = False
        self._flushing = False  # flush() asks the thread not to wait for a batch to fill
        self._abandoned = False  # close() gave up on the thread and counted what it held
        self._deadline = 0.0  # monotonic time by which close() wants the thread finished
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._errlog = _ErrorLog(name)
        self._failures = 0  # batches given up in a row, for the back-off
        self.queued = 0
        self.sent = 0
        self.dropped_full = 0
        self.dropped_error = 0
        self.errors = 0

    # ---- the verdict path

    def submit(self, event: Mapping[str, object]) -> None:
        """Queue ``event`` for sending, or count it as dropped; returns at once, never raises."""
        try:
            if event.get("event_type") not in self.event_types:
                return
            with self._lock:
                if self._closed:
                    self.dropped_error += 1
                    return
                queue = self._queue
                if len(queue) >= self.queue_size:
                    self.dropped_full += 1
                    return
                queue.append(event)
                self.queued += 1
                n = len(queue)
            # Only the wake-ups the thread waits for: the first event of an empty
            # queue, and a full batch while it lets one gather.
            if n in (1, self.batch_max):
                self._wake.set()
        except Exception:  # a malformed event must not cost a verdict
            self.dropped_error += 1

    # ---- what other threads may ask

    def counters(self) -> dict[str, int]:
        """A snapshot of ``queued``, ``sent``, ``dropped_full``, ``dropped_error`` and ``errors``."""
        with self._lock:
            return {
                "queued": self.queued,
                "sent": self.sent,
                "dropped_full": self.dropped_full,
                "dropped_error": self.dropped_error,
                "errors": self.errors,
            }

    @property
    def pending(self) -> int:
        """Events queued or being sent right now."""
        with self._lock:
            return len(self._queue) + self._inflight

    def describe(self) -> str:
        """Where the events go, for a start-up log line (no secrets)."""
        return self.name

    def flush(self, timeout: float) -> bool:
        """Send what is queued now, without waiting for a batch to fill; wait at most ``timeout``.

        True when nothing was left queued or in flight. Not for the verdict
        path: it waits for the receiver.
        """
        deadline = time.monotonic() + timeout
        self._flushing = True
        self._wake.set()
        try:
            while self.pending:
                if time.monotonic() >= deadline or self._closed:
                    return False
                time.sleep(0.001)
            return True
        finally:
            self._flushing = False

    # ---- life cycle

    def start(self) -> None:
        """Start the sending thread (once; again is a no-op)."""
        if self._closed:
            raise RuntimeError(f"EVE sink {self.name} is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"eve-sink-{self.name}", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop: send what is queued for at most ``timeout`` seconds, count the rest as dropped_error.

        Returns within about ``timeout`` even if the receiver hangs: a thread
        stuck in a send is left behind (it is a daemon thread) and what it
        held is counted as dropped. Events submitted afterwards are counted
        as dropped_error too.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + max(timeout, 0.0)
        self._closing.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(self._deadline - time.monotonic(), 0.0))
        with self._lock:
            self._abandoned = True
            left = len(self._queue) + self._inflight
            self._queue.clear()
            self._inflight = 0
            self.dropped_error += left
        if left:
            log.warning("EVE sink %s: closed with %d events unsent (counted as dropped)", self.name, left)
        if thread is None:
            self._disconnect()

    # ---- the sink's thread

    def _run(self) -> None:
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    return
                self._deliver(batch)
        except Exception:  # a bug here must not go unnoticed; the verdict path is unaffected
            log.exception("EVE sink %s: the sending thread failed", self.name)
        finally:
            self._disconnect()

    def _past_deadline(self) -> bool:
        return self._closed and time.monotonic() >= self._deadline

    def _take_batch(self) -> list[Mapping[str, object]] | None:
        queue = self._queue
        while not queue:
            if self._closed:
                return None
            self._wake.clear()
            if queue or self._closed:  # came between the check and the clear: look again
                continue
            self._wake.wait(_IDLE_SECONDS)
        if self._past_deadline():
            return None
        if self.batch_seconds > 0 and not self._closed:
            # Let a batch gather; the event that started it stays queued, so the
            # producer's wake-up at batch_max (or close(), flush()) cuts the wait short.
            until = time.monotonic() + self.batch_seconds
            while len(queue) < self.batch_max and not (self._closed or self._flushing):
                self._wake.clear()
                left = until - time.monotonic()
                # Checked again after the clear: a wake-up just before it would be lost.
                if left <= 0 or len(queue) >= self.batch_max or self._closed or self._flushing:
                    break
                self._wake.wait(left)
        with self._lock:
            if self._abandoned:
                return None
            n = min(len(queue), self.batch_max)
            batch = [queue.popleft() for _ in range(n)]
            self._inflight = n
        return batch

    def _account(self, *, sent: int = 0, dropped: int = 0, errors: int = 0) -> None:
        with self._lock:
            if self._abandoned:  # close() has counted these already
                return
            self.sent += sent
            self.dropped_error += dropped
            self.errors += errors
            self._inflight -= sent + dropped

    def _deliver(self, batch: list[Mapping[str, object]]) -> None:
        for attempt in range(self.retries + 1):
            before = len(batch)
            try:
                self._send(batch)
            except Exception as e:
                if self._abandoned:  # close() gave up on this send and has counted the batch
                    return
                self._account(sent=before - len(batch), errors=1)
                self._errlog.failed(e)
                if not batch:  # everything went out before the error
                    return
                if attempt < self.retries and not self._past_deadline():
                    self._closing.wait(self.retry_delay)
                    if self._past_deadline():
                        break
                continue
            self._account(sent=before)
            self._errlog.recovered()
            self._failures = 0
            return
        if batch:
            self._account(dropped=len(batch))
            batch.clear()
        self._failures = min(self._failures + 1, 30)  # 2**30 * any delay is past backoff_max
        # Back off before the next batch, so a dead receiver costs a few attempts
        # a minute instead of a busy loop; close() cuts the wait short.
        backoff = min(self.backoff_max, self.retry_delay * 2**self._failures)
        self._closing.wait(max(backoff, _MIN_BACKOFF_SECONDS))

    def _io_timeout(self, timeout: float) -> float:
        """``timeout``, or less while closing, so a flush cannot outlast ``close(timeout)`` by much."""
        if self._closed:
            return max(min(timeout, self._deadline - time.monotonic()), 0.05)
        return timeout

    def _send(self, batch: list[Mapping[str, object]]) -> None:
        """Send ``batch``; raise on failure.

        May delete events it delivered from the front of ``batch`` before
        raising: only what is left is retried (and counted as sent or dropped).
        """
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Release sockets; called once the thread is done with them."""


# -- syslog -------------------------------------------------------------------------------------


def _syslog_hostname() -> str:
    # RFC 5424 HOSTNAME: printable US-ASCII without blanks, at most 255.
    name = "".join(c for c in socket.gethostname() if "!" <= c <= "~")[:255]
    return name or "-"


def _rfc3164_time(now: float) -> str:
    t = time.localtime(now)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _rfc5424_time(now: float) -> str:
    usec_total = round(now * 1_000_000)
    sec, usec = divmod(usec_total, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(sec))}.{usec:06d}Z"


class SyslogSink(AsyncSink):
    """One syslog message per event, its MSG the compact EVE JSON.

    ``target`` is a :class:`SyslogTarget` or its text (see
    :func:`parse_syslog_target`); ``facility`` a name or number. The socket
    is opened by the sink's thread and opened again after any error.
    """

    def __init__(
        self,
        target: SyslogTarget | str = DEFAULT_SYSLOG_TARGET,
        *,
        facility: str | int = "local5",
        format: SyslogFormat = "rfc5424",
        timeout: float = 5.0,
        name: str = "syslog",
        hostname: str | None = None,
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_max: int = 100,
        retries: int = 1,
        retry_delay: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        super().__init__(
            name,
            event_types=event_types,
            queue_size=queue_size,
            batch_max=batch_max,
            batch_seconds=0.0,
            retries=retries,
            retry_delay=retry_delay,
            backoff_max=backoff_max,
        )
        self.target = parse_syslog_target(target) if isinstance(target, str) else target
        self.facility = parse_facility(facility)
        if format not in SYSLOG_FORMATS:
            raise ValueError(f"unknown syslog format {format!r}: want {' or '.join(SYSLOG_FORMATS)}")
        self.format = format
        self.timeout = timeout
        self.hostname = hostname if hostname is not None else _syslog_hostname()
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        return f"{self.name} {self.target} ({self.format}, facility {self.facility})"

    def format_message(self, event: Mapping[str, object], now: float | None = None) -> bytes:
        """The datagram for one event."""
        now = time.time() if now is None else now
        pri = self.facility * 8 + _SEVERITY.get(event.get("event_type"), SEVERITY_INFO)
        body = _dumps(event)
        pid = os.getpid()
        if self.format == "rfc3164":
            # glibc's local form has no hostname; a remote collector wants one.
            host = f"{self.hostname} " if self.target.kind == "udp" else ""
            return f"<{pri}>{_rfc3164_time(now)} {host}{APP_NAME}[{pid}]: {body}".encode()
        return f"<{pri}>1 {_rfc5424_time(now)} {self.hostname} {APP_NAME} {pid} - - {body}".encode()

    def _connect(self) -> socket.socket:
        t = self.target
        if t.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.settimeout(self._io_timeout(self.timeout))
                sock.connect(t.path)
            except OSError:
                sock.close()
                raise
            return sock
        family, kind, proto, _, addr = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self._io_timeout(self.timeout))
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    def _send(self, batch: list[Mapping[str, object]]) -> None:
        sock = self._sock
        if sock is None:
            sock = self._sock = self._connect()
        else:
            sock.settimeout(self._io_timeout(self.timeout))
        done = 0
        try:
            for event in batch:
                message = self.format_message(event)
                if self.target.kind == "udp" and len(message) > _UDP_MAX:
                    message = message[:_UDP_MAX]  # a cut message beats none; the collector sees it is cut
                sock.send(message)
                done += 1
        except OSError:
            # The daemon restarted or the socket is gone: connect again next time.
            self._disconnect()
            raise
        finally:
            del batch[:done]

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


# -- webhook ------------------------------------------------------------------------------------


class WebhookError(OSError):
    """The webhook answered with something other than 2xx."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302/303 to a POST with a GET and drop the body.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None


def _endpoint(ip: object, port: object) -> str:
    if not isinstance(ip, str):
        return "?"
    ip = _chat_escape(ip)
    if not isinstance(port, int):
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _chat_escape(text: str) -> str:
    # Slack's rule: only &, < and > need escaping; Mattermost's Markdown decodes the entities.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_line(event: Mapping[str, object]) -> str:
    """One readable line for a chat message.

    ``[blocked] SQL injection ... (sid 2100001) 10.0.0.2:1234 -> 10.0.1.2:80 TCP`` for
    an alert, ``[drop] 10.0.0.2:1234 -> 10.0.1.2:80 TCP (rule)`` for a drop. Only
    rule text, addresses, ports and protocol: nothing a packet carries. ``&``,
    ``<`` and ``>`` inside the fields are escaped as Slack asks (``<!channel>``
    in a rule's message must not notify anyone); the arrow is left as it is.
    """
    kind = _chat_escape(str(event.get("event_type", "?")))
    src = _endpoint(event.get("src_ip"), event.get("src_port"))
    dst = _endpoint(event.get("dest_ip"), event.get("dest_port"))
    flow = f"{src} -> {dst} {_chat_escape(str(event.get('proto', '')))}".rstrip()
    alert = event.get("alert")
    drop = event.get("drop")
    if kind == "alert" and isinstance(alert, Mapping):
        signature = str(alert.get("signature", ""))
        if len(signature) > _CHAT_SIGNATURE_MAX:
            signature = signature[: _CHAT_SIGNATURE_MAX - 3] + "..."
        return (
            f"[{_chat_escape(str(alert.get('action', '?')))}] {_chat_escape(signature)} "
            f"(sid {_chat_escape(str(alert.get('signature_id', '?')))}) {flow}"
        )
    if kind == "drop" and isinstance(drop, Mapping):
        return f"[drop] {flow}" + (f" ({_chat_escape(str(drop['reason']))})" if drop.get("reason") else "")
    if "src_ip" in event:
        return f"[{kind}] {flow}"
    return f"[{kind}] {_chat_escape(str(event.get('timestamp', '')))}".rstrip()


class WebhookSink(AsyncSink):
    """HTTP(S) POSTs of batches of events.

    ``format`` ``ndjson``: the body is the events as JSON lines
    (``application/x-ndjson``). ``slack``: ``{"text": ...}`` with one
    :func:`chat_line` per event (Slack and Mattermost incoming webhooks).
    ``headers`` are added to every request.
    """

    def __init__(
        self,
        url: str,
        *,
        format: WebhookFormat = "ndjson",
        timeout: float = 5.0,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        name: str = "webhook",
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_max: int = 50,
        batch_seconds: float = 1.0,
        retries: int = 1,
        retry_delay: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        super().__init__(
            name,
            event_types=event_types,
            queue_size=queue_size,
            batch_max=batch_max,
            batch_seconds=batch_seconds,
            retries=retries,
            retry_delay=retry_delay,
            backoff_max=backoff_max,
        )
        self.url = parse_webhook_url(url)
        if format not in WEBHOOK_FORMATS:
            raise ValueError(f"unknown webhook format {format!r}: want {' or '.join(WEBHOOK_FORMATS)}")
        self.format = format
        if timeout <= 0:
            raise ValueError(f"webhook timeout must be positive, got {timeout}")
        self.timeout = timeout
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        self.headers: dict[str, str] = {"User-Agent": f"inline-ips/{__version__}"}
        self.headers.update(pairs)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def describe(self) -> str:
        return f"{self.name} {redact_url(self.url)} ({self.format})"

    def body(self, batch: Sequence[Mapping[str, object]]) -> tuple[bytes, str]:
        """The request body for ``batch`` and its Content-Type."""
        if self.format == "slack":
            text = "\n".join(chat_line(ev) for ev in batch)
            return json.dumps({"text": text}).encode(), "application/json"
        return "".join(_dumps(ev) + "\n" for ev in batch).encode(), "application/x-ndjson"

    def _send(self, batch: list[Mapping[str, object]]) -> None:
        data, content_type = self.body(batch)
        request = urllib.request.Request(
            self.url, data=data, method="POST", headers={**self.headers, "Content-Type": content_type}
        )
        try:
            with self._opener.open(request, timeout=self._io_timeout(self.timeout)) as response:
                response.read(_RESPONSE_READ_MAX)
                status: int = response.status
        except urllib.error.HTTPError as e:
            e.close()
            raise WebhookError(f"{redact_url(self.url)} answered HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise WebhookError(f"{redact_url(self.url)}: {e.reason}") from None
        if not 200 <= status < 300:
            raise WebhookError(f"{redact_url(self.url)} answered HTTP {status}")


# -- options and the factory --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyslogOptions:
    """``--syslog [TARGET]``, ``--syslog-facility``, ``--syslog-format``, ``--syslog-events``."""

    target: str = DEFAULT_SYSLOG_TARGET
    facility: str = "local5"
    format: SyslogFormat = "rfc5424"
    event_types: frozenset[str] = DEFAULT_EVENT_TYPES


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """``--webhook URL`` and the other ``--webhook-*`` flags (see the module's docstring)."""

    url: str
    format: WebhookFormat = "ndjson"
    event_types: frozenset[str] = DEFAULT_EVENT_TYPES
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0
    batch_max: int = 50
    batch_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Which sinks to build; ``queue_size`` is ``--sink-queue`` (per sink)."""

    syslog: SyslogOptions | None = None
    webhook: WebhookOptions | None = None
    queue_size: int = DEFAULT_QUEUE_SIZE
    # Not flags: here so tests and benchmarks can shorten them.
    retries: int = 1
    retry_delay: float = 0.5
    backoff_max: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.syslog is not None or self.webhook is not None


def build_sinks(opts: SinkOptions) -> list[AsyncSink]:
    """The configured sinks, not started yet; ValueError (naming the value) for a bad option.

    Call it early to check the options; call ``start()`` on each in the
    process that submits, ``close(timeout)`` on the way out.
    """
    sinks: list[AsyncSink] = []
    if opts.syslog is not None:
        s = opts.syslog
        sinks.append(
            SyslogSink(
                s.target,
                facility=s.facility,
                format=s.format,
                event_types=s.event_types,
                queue_size=opts.queue_size,
                retries=opts.retries,
                retry_delay=opts.retry_delay,
                backoff_max=opts.backoff_max,
            )
        )
    if opts.webhook is not None:
        w = opts.webhook
        sinks.append(
            WebhookSink(
                w.url,
                format=w.format,
                timeout=w.timeout,
                headers=w.headers,
                event_types=w.event_types,
                queue_size=opts.queue_size,
                batch_max=w.batch_max,
                batch_seconds=w.batch_seconds,
                retries=opts.retries,
                retry_delay=opts.retry_delay,
                backoff_max=opts.backoff_max,
            )
        )
    return sinks
