"""``inline-ips top``: a live terminal view of a running inline-ips, read from its Prometheus exporter.

Does: scrapes the exporter's ``/metrics`` text (:func:`fetch`, into a
:class:`Sample`), turns two scrapes into a :class:`View` (:func:`compute_view`:
per-second rates from counter differences, sums across queues, the top rules,
latency quantiles estimated from the histogram buckets the way Prometheus's
``histogram_quantile`` does), lays the view out as plain text lines
(:func:`render`) and shows them, either once for scripts (``--once``) or
redrawn every interval in a curses screen (:func:`run_top`). Blocked hosts
and their seconds left come from the kernel ipsets
(:class:`KernelBlockedHosts`), because the exporter only counts them.

The metric names are the contract in the project's metrics spec (the
exporter is :mod:`inline_ips.output.metrics`). A counter that goes down
between two scrapes belongs to a process that restarted, so its current
value is what it counted in the interval, as Prometheus's ``rate()`` assumes.
Workers report a snapshot once a second while kernel counters are read at
scrape time, so with intervals under a second the rates jitter, and
"unjudged" (packets iptables queued minus packets judged) can be briefly off
by a second's worth of traffic.

Does not: change anything in the IPS or the kernel, keep history beyond the
previous scrape, or talk to anything but the one exporter URL and the
ipsets of this network namespace. Reading the ipsets needs root; without it
the view says so and shows everything else.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import locale
import math
import os
import shutil
import socket
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, TextIO, TypeVar

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from inline_ips.respond.block import KernelBlocklist

DEFAULT_URL: Final = "http://127.0.0.1:9108/metrics"
RUN_HINT: Final = "is `inline-ips run` running, and not with --no-metrics or another --metrics address?"

# The label values the spec fixes, in the order the view lists them; others a newer
# exporter adds are shown after these.
VERDICTS: Final = ("accept", "rewrite", "drop", "reject", "block")
DROP_REASONS: Final = ("rule", "rate", "flow_drop", "blocklist", "decode_error")
TOP_RULES: Final = 10
BLOCKED_KEPT: Final = 50  # a full ipset holds 65536 per family; nobody reads that many on a console

Labels = frozenset[tuple[str, str]]
BlockedHosts = list[tuple[str, int]]
K = TypeVar("K")


class ExporterError(Exception):
    """The exporter could not be read; the message names the URL, the cause and what to check."""


class BlockedHostsError(Exception):
    """The blocked hosts cannot be read; the message is the short note the view shows instead."""


# -- scraping ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One scrape: when it arrived and every sample's value, by sample name then label set."""

    time: float  # time.monotonic() when the answer arrived: rates divide by differences of this
    wall: float  # time.time() at the same moment: uptime is measured against the exporter's clock
    series: Mapping[str, Mapping[Labels, float]]

    def values(self, name: str) -> Mapping[Labels, float]:
        return self.series.get(name, {})

    def first(self, name: str) -> float | None:
        for v in self.values(name).values():
            return v
        return None


def parse(text: str, now: float, wall: float) -> Sample:
    """The exposition text as a :class:`Sample` taken at ``now`` (monotonic) and ``wall`` (unix time).

    ValueError when the text is not Prometheus exposition format.
    """
    series: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series.setdefault(s.name, {})[frozenset(s.labels.items())] = float(s.value)
    return Sample(time=now, wall=wall, series=series)


def _cause(e: BaseException, timeout: float) -> tuple[str, bool]:
    """Why a request failed, in words, and whether the IPS not running is a likely reason."""
    reason: object = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s", True
    if isinstance(reason, ConnectionResetError | http.client.RemoteDisconnected):
        return "the connection was closed without an answer", True
    if isinstance(reason, http.client.HTTPException):
        return f"the answer is not HTTP ({type(reason).__name__})", False
    if isinstance(reason, str):  # urllib's own complaints about the URL
        return f"{reason} (expected http://HOST:PORT/metrics)", False
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror or reason})", False
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:], True
    return str(reason) or type(reason).__name__, False


def fetch(url: str, timeout: float) -> Sample:
    """GET ``url`` and parse it; :class:`ExporterError` says why when that fails."""
    where = f"the inline-ips exporter at {url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            charset = resp.headers.get_content_charset() or "utf-8"
    except ValueError as e:  # urllib's word for a URL it cannot parse
        raise ExporterError(f"cannot reach {where}: {e} (expected http://HOST:PORT/metrics)") from e
    except urllib.error.HTTPError as e:
        raise ExporterError(f"{where} answered HTTP {e.code} {e.reason}; is that the metrics path?") from e
    except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
        cause, maybe_not_running = _cause(e, timeout)
        hint = f" — {RUN_HINT}" if maybe_not_running else ""
        raise ExporterError(f"cannot reach {where}: {cause}{hint}") from e
    now, wall = time.monotonic(), time.time()
    try:
        sample = parse(body.decode(charset, errors="replace"), now, wall)
    except ValueError as e:
        raise ExporterError(f"{url} answered, but not with Prometheus metrics: {e}") from e
    if not any(name.startswith("inline_ips_") for name in sample.series):
        raise ExporterError(f"{url} serves no inline_ips_* metrics; is that the inline-ips exporter?")
    return sample


# -- arithmetic on two samples ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """A counter: its value now, and its increase per second over the interval (None on the first frame)."""

    total: float
    rate: float | None


def increase(prev: float | None, cur: float) -> float:
    """What a counter counted between two readings.

    A counter only goes down when its process restarted and began again
    from zero, so its current value is what it counted since then. A series
    missing from the previous reading started counting in between (the
    exporter creates per-rule series on the first alert).
    """
    if prev is None or cur < prev:
        return cur
    return cur - prev


def _restarted(prev: Sample, cur: Sample) -> bool:
    # A restart of the whole IPS can leave busy counters above their old values; the start time tells.
    a = prev.first("inline_ips_start_time_seconds")
    b = cur.first("inline_ips_start_time_seconds")
    return a is not None and b is not None and a != b


def _elapsed(prev: Sample | None, cur: Sample) -> float | None:
    if prev is None or cur.time <= prev.time:
        return None
    return cur.time - prev.time


def counter(
    prev: Sample | None, cur: Sample, name: str, key: Callable[[Mapping[str, str]], K]
) -> dict[K, Rate]:
    """The counter ``name`` summed over the series ``key`` maps to the same group, with rates."""
    elapsed = _elapsed(prev, cur)
    before: Mapping[Labels, float] = {}
    if prev is not None and not _restarted(prev, cur):
        before = prev.values(name)
    totals: dict[K, float] = {}
    deltas: dict[K, float] = {}
    for labels, value in cur.values(name).items():
        k = key(dict(labels))
        totals[k] = totals.get(k, 0.0) + value
        deltas[k] = deltas.get(k, 0.0) + increase(before.get(labels), value)
    return {k: Rate(totals[k], None if elapsed is None else deltas[k] / elapsed) for k in totals}


def counter_sum(prev: Sample | None, cur: Sample, name: str) -> Rate | None:
    """The counter summed over all its series; None when the exporter serves no series of it."""
    return counter(prev, cur, name, lambda _labels: None).get(None)


def gauge(cur: Sample, name: str, key: Callable[[Mapping[str, str]], K]) -> dict[K, float]:
    out: dict[K, float] = {}
    for labels, value in cur.values(name).items():
        k = key(dict(labels))
        out[k] = out.get(k, 0.0) + value
    return out


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets, as Prometheus estimates it.

    Linear interpolation inside the bucket the rank falls in (the first
    bucket starts at 0); a rank in the +Inf bucket gives the highest finite
    bound. None without observations or without a +Inf bucket.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    bs = sorted(buckets)
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return None
    # Buckets summed from snapshots taken at slightly different times can dip; counts never do.
    fixed: list[tuple[float, float]] = []
    for le, n in bs:
        fixed.append((le, max(n, fixed[-1][1]) if fixed else n))
    observations = fixed[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next(i for i, (_le, n) in enumerate(fixed) if n >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    upper, n = fixed[b]
    if b == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if b == 0 else fixed[b - 1]
    if n - below <= 0:
        return lower
    return lower + (upper - lower) * (rank - below) / (n - below)


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float | None
    p99: float | None
    mean: float | None
    packets: float  # observations the figures are computed from
    interval: bool  # True: over the last interval; False: since the workers started


_HIST: Final = "inline_ips_verdict_latency_seconds"


def _histogram(
    prev: Sample | None, cur: Sample, want: Callable[[Mapping[str, str]], bool]
) -> tuple[dict[float, float], dict[float, float], tuple[float, float], tuple[float, float]]:
    """(bucket increases, bucket totals, (sum, count) increases, (sum, count) totals) over matching series."""
    before: Mapping[str, Mapping[Labels, float]] = {}
    if prev is not None and not _restarted(prev, cur):
        before = prev.series
    groups: dict[Labels, dict[float, tuple[float | None, float]]] = {}
    for labels, value in cur.values(_HIST + "_bucket").items():
        d = dict(labels)
        if not want(d):
            continue
        le = float(d.pop("le", "inf"))
        old = before.get(_HIST + "_bucket", {}).get(labels)
        groups.setdefault(frozenset(d.items()), {})[le] = (old, value)
    window: dict[float, float] = {}
    totals: dict[float, float] = {}
    restarted_groups: set[Labels] = set()
    for group, buckets in groups.items():
        # A series' buckets restart together; mixing reset and unreset buckets would invent counts.
        reset = any(old is None or value < old for old, value in buckets.values())
        if reset:
            restarted_groups.add(group)
        for le, (old, value) in buckets.items():
            totals[le] = totals.get(le, 0.0) + value
            window[le] = window.get(le, 0.0) + (value if reset or old is None else value - old)
    sums = [0.0, 0.0, 0.0, 0.0]  # sum increase, count increase, sum total, count total
    for i, suffix in enumerate(("_sum", "_count")):
        for labels, value in cur.values(_HIST + suffix).items():
            if frozenset(labels) not in groups:
                continue
            old = before.get(_HIST + suffix, {}).get(labels)
            reset = labels in restarted_groups or old is None or value < old
            sums[i] += value if reset else value - (old or 0.0)
            sums[i + 2] += value
    return window, totals, (sums[0], sums[1]), (sums[2], sums[3])


def latency(prev: Sample | None, cur: Sample, queue: str | None = None) -> Latency:
    """Verdict latency over the interval, or since start on the first frame or an idle interval."""
    window, totals, (wsum, wcount), (tsum, tcount) = _histogram(
        prev, cur, lambda labels: queue is None or labels.get("queue") == queue
    )
    use_window = prev is not None and wcount > 0
    buckets, s, n = (window, wsum, wcount) if use_window else (totals, tsum, tcount)
    items = list(buckets.items())
    return Latency(
        p50=histogram_quantile(0.5, items),
        p99=histogram_quantile(0.99, items),
        mean=s / n if n > 0 else None,
        packets=n,
        interval=use_window,
    )


# -- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerdictRow:
    verdict: str
    packets: Rate
    bits: Rate


@dataclass(frozen=True, slots=True)
class RuleRow:
    gid: str
    sid: str
    signature: str
    alerts: Rate


@dataclass(frozen=True, slots=True)
class QueueRow:
    queue: str
    up: bool | None  # None: the exporter does not report this worker
    length: float | None
    queued: Rate | None  # packets the kernel queued here (None: not readable)
    judged: Rate
    kernel_drops: Rate | None
    user_drops: Rate | None
    restarts: Rate
    p99: float | None


@dataclass(frozen=True, slots=True)
class View:
    """Everything one frame shows, computed from two scrapes; render() only lays it out."""

    url: str
    elapsed: float | None  # seconds between the two scrapes; None on the first frame
    version: str | None
    fail_open: bool | None
    uptime: float | None
    workers_up: int
    workers: int
    rules: dict[str, int]  # kind -> rules loaded (the same in every worker, so not summed)
    rules_skipped: int
    reload_failed: bool
    flows_active: float
    flows_bypassed: Rate
    flows_evicted: Rate
    packets: Rate
    bits: Rate
    alerts: Rate
    verdicts: tuple[VerdictRow, ...]
    drops: tuple[tuple[str, Rate], ...]
    top_rules: tuple[RuleRow, ...]
    queues: tuple[QueueRow, ...]
    firewall_queued: Rate | None  # None: the exporter cannot read the iptables counters
    unjudged: float | None  # packets/s iptables queued but nobody judged (fail-open engaged)
    latency: Latency
    engine_errors: Rate
    decode_errors: Rate
    eve_dropped: Rate
    blocked: tuple[tuple[str, int], ...]  # the BLOCKED_KEPT with most time left; 0 s left = permanent
    blocked_count: int
    blocked_note: str | None
    blocklist_hosts: float | None  # the exporter's count of ipset entries
    blocklist_capacity: float | None
    kernel_blocked: Rate | None  # packets the kernel dropped because their source is blocked
    error: str | None = field(default=None)  # set by the live loop when the latest scrape failed


def _ordered(known: Sequence[str], present: Iterable[str]) -> list[str]:
    return list(known) + sorted(set(present) - set(known))


def _queue_order(q: str) -> tuple[int, str]:
    return (int(q), q) if q.isdigit() else (1 << 30, q)


def compute_view(
    prev: Sample | None,
    cur: Sample,
    blocked: Sequence[tuple[str, int]] = (),
    blocked_note: str | None = None,
    url: str = DEFAULT_URL,
    top_n: int = TOP_RULES,
) -> View:
    """The frame for ``cur``, with rates over the interval since ``prev`` (None: the first frame)."""

    def by(label: str) -> Callable[[Mapping[str, str]], str]:
        return lambda labels: labels.get(label, "")

    def one(name: str) -> Rate:
        return counter_sum(prev, cur, name) or Rate(0.0, None if prev is None else 0.0)

    zero = Rate(0.0, None if prev is None else 0.0)
    packets = counter(prev, cur, "inline_ips_packets_total", by("verdict"))
    nbytes = counter(prev, cur, "inline_ips_bytes_total", by("verdict"))
    verdicts = tuple(
        VerdictRow(v, packets.get(v, zero), _bits(nbytes.get(v, zero)))
        for v in _ordered(VERDICTS, [*packets, *nbytes])
    )
    drops_by = counter(prev, cur, "inline_ips_drops_total", by("reason"))
    drops = tuple((r, drops_by.get(r, zero)) for r in _ordered(DROP_REASONS, drops_by))

    rules = counter(
        prev,
        cur,
        "inline_ips_alerts_total",
        lambda labels: (labels.get("gid", ""), labels.get("sid", ""), labels.get("signature", "")),
    )
    ranked = sorted(
        rules.items(), key=lambda kv: (-(kv[1].rate or 0.0), -kv[1].total, _queue_order(kv[0][1]))
    )
    top_rules = tuple(RuleRow(gid, sid, sig, r) for (gid, sid, sig), r in ranked[:top_n])

    up = gauge(cur, "inline_ips_worker_up", by("queue"))
    lengths = gauge(cur, "inline_ips_queue_length", by("queue"))
    judged = counter(prev, cur, "inline_ips_packets_total", by("queue"))
    queued = counter(prev, cur, "inline_ips_queue_packets_total", by("queue"))
    kdrops = counter(prev, cur, "inline_ips_queue_kernel_drops_total", by("queue"))
    udrops = counter(prev, cur, "inline_ips_queue_user_drops_total", by("queue"))
    restarts = counter(prev, cur, "inline_ips_worker_restarts_total", by("queue"))
    queues = tuple(
        QueueRow(
            queue=q,
            up=(up[q] > 0) if q in up else None,
            length=lengths.get(q),
            queued=queued.get(q),
            judged=judged.get(q, zero),
            kernel_drops=kdrops.get(q),
            user_drops=udrops.get(q),
            restarts=restarts.get(q, zero),
            p99=latency(prev, cur, q).p99,
        )
        for q in sorted({*up, *lengths, *judged, *queued}, key=_queue_order)
    )

    total_packets = _sum(packets.values(), zero)
    fw_queued = counter_sum(prev, cur, "inline_ips_firewall_queued_packets_total")
    unjudged = None
    if fw_queued is not None and fw_queued.rate is not None and total_packets.rate is not None:
        # Snapshots lag the kernel's counters by up to a second; a negative gap is that lag, not traffic.
        unjudged = max(0.0, fw_queued.rate - total_packets.rate)

    info = next(iter(cur.values("inline_ips_info")), None)
    info_labels = dict(info) if info is not None else {}
    start = cur.first("inline_ips_start_time_seconds")
    loaded: dict[str, int] = {}
    for labels, value in cur.values("inline_ips_rules_loaded").items():
        kind = dict(labels).get("kind", "")
        loaded[kind] = max(loaded.get(kind, 0), int(value))
    skipped: dict[str, int] = {}
    for labels, value in cur.values("inline_ips_rules_skipped").items():
        kind = dict(labels).get("kind", "")
        skipped[kind] = max(skipped.get(kind, 0), int(value))
    reload_ok = cur.values("inline_ips_config_last_reload_successful").values()

    hosts = gauge(cur, "inline_ips_blocklist_hosts", lambda _labels: None)
    capacity = gauge(cur, "inline_ips_blocklist_capacity", lambda _labels: None)
    shown = sorted(blocked, key=lambda h: (h[1] != 0, -h[1], h[0]))[:BLOCKED_KEPT]

    return View(
        url=url,
        elapsed=_elapsed(prev, cur),
        version=info_labels.get("version"),
        fail_open={"true": True, "false": False}.get(info_labels.get("fail_open", "")),
        uptime=max(0.0, cur.wall - start) if start else None,
        workers_up=sum(1 for v in up.values() if v > 0),
        workers=len(up),
        rules=loaded,
        rules_skipped=sum(skipped.values()),
        reload_failed=any(v == 0 for v in reload_ok),
        flows_active=sum(gauge(cur, "inline_ips_flows_active", by("queue")).values()),
        flows_bypassed=one("inline_ips_flows_bypassed_total"),
        flows_evicted=one("inline_ips_flows_evicted_total"),
        packets=total_packets,
        bits=_bits(_sum(nbytes.values(), zero)),
        alerts=_sum(rules.values(), zero),
        verdicts=verdicts,
        drops=drops,
        top_rules=top_rules,
        queues=queues,
        firewall_queued=fw_queued,
        unjudged=unjudged,
        latency=latency(prev, cur),
        engine_errors=one("inline_ips_engine_errors_total"),
        decode_errors=one("inline_ips_decode_errors_total"),
        eve_dropped=one("inline_ips_eve_dropped_events_total"),
        blocked=tuple(shown),
        blocked_count=len(blocked),
        blocked_note=blocked_note,
        blocklist_hosts=hosts.get(None),
        blocklist_capacity=capacity.get(None),
        kernel_blocked=counter_sum(prev, cur, "inline_ips_firewall_blocked_packets_total"),
    )


def _sum(rates: Iterable[Rate], zero: Rate) -> Rate:
    total, rate = zero.total, zero.rate
    for r in rates:
        total += r.total
        rate = None if rate is None or r.rate is None else rate + r.rate
    return Rate(total, rate)


def _bits(r: Rate) -> Rate:
    return Rate(r.total * 8, None if r.rate is None else r.rate * 8)


# -- units ------------------------------------------------------------------------------------

_PREFIXES: Final = ("", "k", "M", "G", "T", "P")


def _three_digits(x: float) -> tuple[str, str]:
    """(mantissa with 3 significant digits, SI prefix): 1234 -> ("1.23", "k"), 999_999 -> ("1.00", "M")."""
    i = 0
    while abs(x / 1000**i) >= 999.5 and i < len(_PREFIXES) - 1:
        i += 1
    scaled, prefix = x / 1000**i, _PREFIXES[i]
    decimals = 2 if abs(scaled) < 9.995 else 1 if abs(scaled) < 99.95 else 0
    return f"{scaled:.{decimals}f}", prefix


def fmt_count(x: float | None) -> str:
    """A total: 345, 1.23k, 45.6M; "-" when unknown."""
    if x is None:
        return "-"
    if abs(x) < 999.5:
        return f"{x:.0f}"
    digits, prefix = _three_digits(x)
    return digits + prefix


def fmt_rate(x: float | None) -> str:
    """Events per second: 0, 0.4, 12, 1.23k; "-" on the first frame."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) < 9.95:
        return f"{x:.1f}"
    return fmt_count(x)


def fmt_bits(bps: float | None) -> str:
    """Bits per second: 0 bit/s, 640 bit/s, 8.00 kbit/s, 12.3 Mbit/s."""
    if bps is None:
        return "-"
    if abs(bps) < 999.5:
        return f"{bps:.0f} bit/s"
    digits, prefix = _three_digits(bps)
    return f"{digits} {prefix}bit/s"


def fmt_seconds(s: float | None) -> str:
    """A latency: 8.5 µs, 45 µs, 1.20 ms, 25.0 ms, 1.50 s."""
    if s is None:
        return "-"
    if s < 9.995e-6:
        return f"{s * 1e6:.1f} µs"
    if s < 999.5e-6:
        return f"{s * 1e6:.0f} µs"
    if s < 0.9995:
        digits, _ = _three_digits(s * 1e3)
        return f"{digits} ms"
    return f"{s:.2f} s"


def fmt_duration(s: float | None) -> str:
    """A span of time: 45s, 9m 12s, 2h 03m, 3d 04h."""
    if s is None:
        return "-"
    n = int(s)
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m {n % 60:02d}s"
    if n < 86400:
        return f"{n // 3600}h {n % 3600 // 60:02d}m"
    return f"{n // 86400}d {n % 86400 // 3600:02d}h"


# -- layout -----------------------------------------------------------------------------------


def _header(v: View) -> str:
    parts = [f"inline-ips {v.version}" if v.version else "inline-ips"]
    parts.append(f"up {fmt_duration(v.uptime)}")
    parts.append(f"workers {v.workers_up}/{v.workers}")
    kinds = " + ".join(f"{n} {'sig' if kind == 'signature' else kind}" for kind, n in v.rules.items())
    parts.append(f"rules {kinds or '-'}" + (f" ({v.rules_skipped} skipped)" if v.rules_skipped else ""))
    if v.reload_failed:
        parts.append("LAST RELOAD FAILED")
    if v.fail_open is not None:
        parts.append("fail-open" if v.fail_open else "fail-closed")
    parts.append(f"interval {v.elapsed:.1f} s" if v.elapsed is not None else "first sample: rates next frame")
    return "  ".join(parts)


def _rate_total(r: Rate | None) -> str:
    return "-" if r is None else f"{fmt_rate(r.rate)}/s ({fmt_count(r.total)})"


def _error_lines(error: str, width: int) -> list[str]:
    return textwrap.wrap(error, max(width, 12), initial_indent="! ", subsequent_indent="! ")


def _fixed_lines(v: View, width: int) -> list[str]:
    lines = [_header(v)]
    if v.error:
        lines += _error_lines(v.error, width)
    lines.append(
        f"traffic  {fmt_rate(v.packets.rate)} pkt/s  {fmt_bits(v.bits.rate)}"
        f"  alerts {fmt_rate(v.alerts.rate)}/s"
        f"  flows {fmt_count(v.flows_active)} active, {fmt_rate(v.flows_bypassed.rate)}/s bypassed,"
        f" {fmt_rate(v.flows_evicted.rate)}/s evicted"
    )
    left = [f"{'verdict':<8} {'pkt/s':>7} {'bit/s':>12} {'packets':>8}"]
    left += [
        f"{r.verdict:<8} {fmt_rate(r.packets.rate):>7} {fmt_bits(r.bits.rate):>12}"
        f" {fmt_count(r.packets.total):>8}"
        for r in v.verdicts
    ]
    right = [f"{'drop reason':<12} {'pkt/s':>7} {'packets':>8}"]
    right += [f"{reason:<12} {fmt_rate(r.rate):>7} {fmt_count(r.total):>8}" for reason, r in v.drops]
    width = max(len(s) for s in left)
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"{a:<{width}}   {b}".rstrip())

    lat = v.latency
    window = f"last {v.elapsed:.1f} s" if lat.interval and v.elapsed is not None else "since start"
    lines.append(
        f"latency  p50 {fmt_seconds(lat.p50)}  p99 {fmt_seconds(lat.p99)}  mean {fmt_seconds(lat.mean)}"
        f"  ({window}, {fmt_count(lat.packets)} packet{'' if lat.packets == 1 else 's'})"
    )
    lines.append(
        f"{'queue':<6} {'worker':<6} {'length':>7} {'queued/s':>9} {'judged/s':>9} "
        f"{'kernel drops':>13} {'user drops':>11} {'p99':>8}"
    )
    for q in v.queues:
        worker = "-" if q.up is None else "up" if q.up else "DOWN"
        if q.restarts.total:
            worker += f" r{fmt_count(q.restarts.total)}"
        lines.append(
            f"{q.queue:<6} {worker:<6} {fmt_count(q.length):>7} "
            f"{fmt_rate(q.queued.rate) if q.queued else '-':>9} {fmt_rate(q.judged.rate):>9} "
            f"{_drops(q.kernel_drops):>13} {_drops(q.user_drops):>11} {fmt_seconds(q.p99):>8}"
        )
    if v.firewall_queued is None:
        lines.append("unjudged -  (the exporter cannot read the iptables counters)")
    else:
        lines.append(
            f"unjudged {fmt_rate(v.unjudged)} pkt/s"
            + ("  FAIL-OPEN" if v.unjudged and v.unjudged >= 1 else "")
            + f"  (iptables queued {fmt_rate(v.firewall_queued.rate)}/s, judged {fmt_rate(v.packets.rate)}/s)"
        )
    lines.append(
        f"errors   engine {_rate_total(v.engine_errors)}  decode {_rate_total(v.decode_errors)}"
        f"  eve dropped {_rate_total(v.eve_dropped)}"
    )
    return lines


def _drops(r: Rate | None) -> str:
    if r is None:
        return "-"
    return fmt_count(r.total) if not r.rate else f"{fmt_count(r.total)} +{fmt_rate(r.rate)}/s"


def _rule_lines(v: View, room: int) -> list[str]:
    lines = [f"top rules  {'alerts/s':>8} {'total':>7}  {'gid:sid':<12} signature"]
    if not v.top_rules:
        return [*lines, "  (no alerts yet)"]
    for r in v.top_rules[: max(1, room)]:
        lines.append(
            f"           {fmt_rate(r.alerts.rate):>8} {fmt_count(r.alerts.total):>7}  "
            f"{r.gid + ':' + r.sid:<12} {r.signature}"
        )
    return lines


def _blocked_lines(v: View, room: int) -> list[str]:
    head = f"blocked hosts: {v.blocked_note}" if v.blocked_note else f"blocked hosts  {v.blocked_count}"
    kernel = []
    if v.blocklist_hosts is not None:
        cap = f" of {v.blocklist_capacity:.0f}" if v.blocklist_capacity else ""
        kernel.append(f"{fmt_count(v.blocklist_hosts)}{cap} in the ipsets")
    if v.kernel_blocked is not None:
        kernel.append(f"kernel drops {fmt_rate(v.kernel_blocked.rate)} pkt/s from them")
    if kernel:
        head += "  (" + ", ".join(kernel) + ")"
    lines = [head]
    if v.blocked_note:
        return lines
    if not v.blocked:
        return [*lines, "  (none)"]
    room = max(1, room)
    rows = [
        f"  {'permanent' if left == 0 else fmt_duration(left) + ' left':>12}  {addr}"
        for addr, left in v.blocked
    ]
    if v.blocked_count > min(room, len(rows)):
        keep = min(room - 1, len(rows))
        rows = [*rows[:keep], f"  ... {v.blocked_count - keep} more (inline-ips block list shows all)"]
    return lines + rows


def render(view: View, width: int, height: int) -> list[str]:
    """The frame as at most ``height`` lines of at most ``width`` characters.

    The top rules and blocked hosts share the rows left after the fixed
    sections; a frame taller than ``height`` ends with a line saying so.
    """
    if width <= 0 or height <= 0:
        return []
    fixed = _fixed_lines(view, width)
    room = height - len(fixed) - 2  # the two section headers
    n_rules = len(view.top_rules) or 1
    n_blocked = (
        0 if view.blocked_note else max(1, len(view.blocked) + (view.blocked_count > len(view.blocked)))
    )
    if n_rules + n_blocked <= room:
        r, b = n_rules, n_blocked
    else:
        r = min(n_rules, max(room - n_blocked, room // 2))
        b = max(room - r, 0)
    lines = fixed + _rule_lines(view, r) + _blocked_lines(view, b)
    if len(lines) > height:
        lines = [*lines[: height - 1], f"... {len(lines) - height + 1} more lines: enlarge the terminal"]
    return [line[:width] for line in lines]


# -- blocked hosts ----------------------------------------------------------------------------


def _denied(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, PermissionError) or getattr(e, "code", None) in (errno.EPERM, errno.EACCES):
            return True
        e = e.__cause__
    return False


class KernelBlockedHosts:
    """The blocked hosts of the kernel ipsets, as ``(address, seconds left)``; call it each frame.

    Raises :class:`BlockedHostsError` with a short note (needs root,
    ipset not found, ...) instead of failing; :meth:`close` drops the netlink
    socket.
    """

    def __init__(self, set4: str | None = None, set6: str | None = None) -> None:
        if set4 is None or set6 is None:
            from inline_ips.firewall.iptables import FirewallConfig  # noqa: PLC0415 - live use only

            default = FirewallConfig()
            set4, set6 = set4 or default.block_set4, set6 or default.block_set6
        self.set4, self.set6 = set4, set6
        self._blocklist: KernelBlocklist | None = None

    def __call__(self) -> BlockedHosts:
        try:
            if self._blocklist is None:
                from inline_ips.respond.block import KernelBlocklist  # noqa: PLC0415 - pyroute2 on use

                self._blocklist = KernelBlocklist(self.set4, self.set6)
            info = self._blocklist.info()
            if not any(s.get("exists") for s in info.values()):
                raise BlockedHostsError(f"ipset not found ({self.set4}, {self.set6} in this namespace)")
            return self._blocklist.entries()
        except BlockedHostsError:
            raise
        except Exception as e:
            if _denied(e) or os.geteuid() != 0:
                raise BlockedHostsError("needs root") from e
            raise BlockedHostsError(f"cannot read the ipsets: {e}") from e

    def close(self) -> None:
        if self._blocklist is not None:
            self._blocklist.close()
            self._blocklist = None


def read_blocked(provider: Callable[[], BlockedHosts]) -> tuple[BlockedHosts, str | None]:
    """The provider's hosts, or [] and the note saying why not; never raises."""
    try:
        return list(provider()), None
    except BlockedHostsError as e:
        return [], str(e)
    except Exception as e:  # a display must not die of its side panel
        return [], f"cannot read them: {e}"


# -- the command ------------------------------------------------------------------------------


def _fetch_timeout(interval: float) -> float:
    return min(max(interval, 1.0), 5.0)


def run_top(
    url: str,
    interval: float,
    once: bool,
    count: int | None,
    blocklist: Callable[[], BlockedHosts] | None,
    out: TextIO,
    *,
    err: TextIO | None = None,
) -> int:
    """Show the view: ``count`` frames (default 1) printed to ``out`` with ``once``, else a curses screen.

    Each printed frame comes from two scrapes ``interval`` seconds apart. The
    curses screen redraws every interval until ``q``, Ctrl-C or ``count``
    frames (the first one, from a single scrape, has totals but no rates);
    when a scrape fails it shows the error over the last frame and keeps
    trying. ``blocklist`` supplies blocked hosts (default: the kernel
    ipsets). Returns 0, 1 when the exporter cannot be read (printed mode) or 2
    for bad arguments.
    """
    errors = err if err is not None else sys.stderr
    if not interval > 0 or (count is not None and count < 1):
        print(
            f"inline-ips: top: --interval must be above 0 and --count at least 1, got {interval}, {count}",
            file=errors,
        )
        return 2
    own = blocklist is None
    provider: Callable[[], BlockedHosts] = KernelBlockedHosts() if blocklist is None else blocklist
    try:
        if once:
            return _print_frames(url, interval, count or 1, provider, out, errors)
        return _screen(url, interval, count, provider)
    finally:
        if own and isinstance(provider, KernelBlockedHosts):
            provider.close()


def _print_frames(
    url: str, interval: float, frames: int, provider: Callable[[], BlockedHosts], out: TextIO, err: TextIO
) -> int:
    width = shutil.get_terminal_size((120, 40)).columns if out.isatty() else 120
    timeout = _fetch_timeout(interval)
    try:
        prev = fetch(url, timeout)
        for i in range(frames):
            time.sleep(max(0.0, prev.time + interval - time.monotonic()))
            cur = fetch(url, timeout)
            hosts, note = read_blocked(provider)
            view = compute_view(prev, cur, hosts, note, url=url)
            if i:
                out.write("\n")
            out.write("\n".join(render(view, width, 10_000)) + "\n")
            out.flush()
            prev = cur
    except ExporterError as e:
        print(f"inline-ips: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _screen(url: str, interval: float, count: int | None, provider: Callable[[], BlockedHosts]) -> int:
    import curses  # noqa: PLC0415 - only the screen needs it

    locale.setlocale(locale.LC_ALL, "")  # curses writes µ only in the terminal's encoding

    def draw(stdscr: curses.window, view: View | None, error: str | None) -> None:
        height, width = stdscr.getmaxyx()
        if view is not None:
            lines = render(replace(view, error=error), max(width - 1, 1), height)
        else:
            lines = [f"inline-ips top  {url}"]
            lines += _error_lines(error, max(width - 1, 1)) if error else ["reading ..."]
            lines = [line[: max(width - 1, 1)] for line in lines[:height]]
        stdscr.erase()
        for y, line in enumerate(lines):
            attr = curses.A_REVERSE if y == 0 else curses.A_BOLD if line.startswith("!") else curses.A_NORMAL
            try:
                try:
                    stdscr.addstr(y, 0, line, attr)
                except UnicodeEncodeError:  # a terminal whose encoding has no µ
                    stdscr.addstr(y, 0, line.replace("µ", "u"), attr)
            except curses.error:  # a terminal shrinking under us; the resize event redraws
                pass
        stdscr.refresh()

    def loop(stdscr: curses.window) -> int:
        with contextlib.suppress(curses.error):  # terminals without cursor control
            curses.curs_set(0)
        prev: Sample | None = None
        view: View | None = None
        error: str | None = None
        frames = 0
        due = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= due:
                try:
                    cur = fetch(url, _fetch_timeout(interval))
                except ExporterError as e:
                    error = f"{e} (retrying every {interval:g} s)"
                else:
                    hosts, note = read_blocked(provider)
                    view = compute_view(prev, cur, hosts, note, url=url)
                    prev, error = cur, None
                    frames += 1
                draw(stdscr, view, error)
                if count is not None and frames >= count:
                    return 0
                due = max(due + interval, time.monotonic())
            stdscr.timeout(max(1, int((due - time.monotonic()) * 1000)))
            key = stdscr.getch()
            if key in (ord("q"), ord("Q")):
                return 0
            if key == curses.KEY_RESIZE:
                draw(stdscr, view, error)

    try:
        return curses.wrapper(loop)
    except KeyboardInterrupt:  # the usual way to leave a monitor; wrapper has restored the terminal
        return 0
