"""`inline-ips top`: the arithmetic on two scrapes, the layout, and a run against a real exporter."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inline_ips import top
from inline_ips.respond.block import BlocklistError
from inline_ips.top import (
    BlockedHostsError,
    ExporterError,
    KernelBlockedHosts,
    Rate,
    Sample,
    compute_view,
    counter,
    fetch,
    fmt_bits,
    fmt_count,
    fmt_duration,
    fmt_rate,
    fmt_seconds,
    histogram_quantile,
    increase,
    latency,
    parse,
    read_blocked,
    render,
    run_top,
)

BUCKETS = ("1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01")


def sample(t: float, text: str, wall: float = 1_000_000.0) -> Sample:
    """A scrape at monotonic time ``t`` of exposition lines (untyped is enough for the view)."""
    return parse(text.strip() + "\n", t, wall)


def by_verdict(labels: object) -> str:
    assert isinstance(labels, dict)
    return str(labels["verdict"])


# -- counters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev", "cur", "want"),
    [
        (None, 5.0, 5.0),  # a series born in the interval counted from zero
        (3.0, 5.0, 2.0),
        (5.0, 5.0, 0.0),
        (10.0, 4.0, 4.0),  # restarted: what it holds now is what it counted since
        (10.0, 0.0, 0.0),
    ],
)
def test_increase(prev: float | None, cur: float, want: float) -> None:
    assert increase(prev, cur) == want


@pytest.mark.parametrize(
    ("before", "after", "elapsed", "want"),
    [
        # accept on two queues is summed; queue 1 restarted (100 -> 30) and counts 30
        ({"0": 100, "1": 100}, {"0": 150, "1": 30}, 2.0, {"accept": Rate(180.0, 40.0)}),
        ({"0": 0, "1": 0}, {"0": 0, "1": 0}, 1.0, {"accept": Rate(0.0, 0.0)}),
        ({"0": 7}, {"0": 17, "1": 4}, 0.5, {"accept": Rate(21.0, 28.0)}),  # queue 1 appeared: +4
    ],
)
def test_counter_sums_queues_and_survives_resets(
    before: dict[str, int], after: dict[str, int], elapsed: float, want: dict[str, Rate]
) -> None:
    def text(values: dict[str, int]) -> str:
        return "\n".join(
            f'inline_ips_packets_total{{queue="{q}",verdict="accept"}} {v}' for q, v in values.items()
        )

    prev, cur = sample(10.0, text(before)), sample(10.0 + elapsed, text(after))
    assert counter(prev, cur, "inline_ips_packets_total", by_verdict) == want


def test_counter_on_the_first_frame_has_totals_but_no_rate() -> None:
    cur = sample(1.0, 'inline_ips_packets_total{queue="0",verdict="drop"} 9')
    assert counter(None, cur, "inline_ips_packets_total", by_verdict) == {"drop": Rate(9.0, None)}


def test_a_restart_of_the_whole_ips_is_seen_by_its_start_time() -> None:
    """Busy enough, a restarted process's counters are above the old ones; the start time tells."""
    prev = sample(
        0.0, 'inline_ips_start_time_seconds 100\ninline_ips_packets_total{queue="0",verdict="accept"} 50'
    )
    cur = sample(
        1.0, 'inline_ips_start_time_seconds 200\ninline_ips_packets_total{queue="0",verdict="accept"} 80'
    )
    assert counter(prev, cur, "inline_ips_packets_total", by_verdict) == {"accept": Rate(80.0, 80.0)}
    same = sample(
        1.0, 'inline_ips_start_time_seconds 100\ninline_ips_packets_total{queue="0",verdict="accept"} 80'
    )
    assert counter(prev, same, "inline_ips_packets_total", by_verdict) == {"accept": Rate(80.0, 30.0)}


# -- latency ----------------------------------------------------------------------------------

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "want"),
    [
        (0.5, [(0.1, 10), (0.2, 20), (INF, 20)], 0.1),  # rank 10 ends the first bucket
        (0.75, [(0.1, 10), (0.2, 20), (INF, 20)], 0.15),  # halfway into (0.1, 0.2]
        (0.25, [(0.1, 10), (0.2, 20), (INF, 20)], 0.05),  # the first bucket starts at 0
        (0.99, [(0.1, 10), (0.2, 20), (INF, 30)], 0.2),  # in +Inf: the highest finite bound
        (0.5, [(INF, 4), (1e-05, 0), (2.5e-05, 4)], 1.75e-05),  # unsorted input; (1e-5, 2.5e-5] halfway
        (0.5, [(0.1, 0), (INF, 0)], None),  # nothing observed
        (0.5, [(0.1, 5), (0.2, 10)], None),  # no +Inf bucket: not a histogram
        (0.5, [(INF, 5)], None),  # one bucket cannot be interpolated
        # a dip (snapshots of different moments) is flattened to 2, 6, 6, 8: rank 7 is halfway in (0.3, 0.4]
        (0.875, [(0.1, 2), (0.2, 6), (0.3, 4), (0.4, 8), (INF, 8)], 0.35),
    ],
)
def test_histogram_quantile_matches_prometheus(
    q: float, buckets: list[tuple[float, float]], want: float | None
) -> None:
    got = histogram_quantile(q, buckets)
    if want is None:
        assert got is None
    else:
        assert got == pytest.approx(want)


def test_histogram_quantile_rejects_a_quantile_outside_0_1() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        histogram_quantile(1.5, [(0.1, 1), (INF, 1)])


def hist(queue: str, counts: dict[str, int], total: float) -> str:
    """Cumulative bucket lines for one queue: counts per upper bound, the rest of the le's carried over."""
    lines, n = [], 0
    for le in (*BUCKETS, "+Inf"):
        n = counts.get(le, n)
        lines.append(f'inline_ips_verdict_latency_seconds_bucket{{le="{le}",queue="{queue}"}} {n}')
    lines.append(f'inline_ips_verdict_latency_seconds_count{{queue="{queue}"}} {n}')
    lines.append(f'inline_ips_verdict_latency_seconds_sum{{queue="{queue}"}} {total}')
    return "\n".join(lines)


def test_latency_uses_the_interval_and_falls_back_to_totals() -> None:
    # Before: 100 packets all under 10 µs. In the interval: 100 more, all in (50 µs, 100 µs].
    prev = sample(0.0, hist("0", {"1e-05": 100}, 0.0005))
    cur = sample(1.0, hist("0", {"1e-05": 100, "0.0001": 200}, 0.0085))
    lat = latency(prev, cur)
    assert lat.interval and lat.packets == 100
    assert lat.p50 == pytest.approx(75e-6)  # halfway through (50 µs, 100 µs]
    assert lat.p99 == pytest.approx(99.5e-6)
    assert lat.mean == pytest.approx(80e-6)
    first = latency(None, cur)  # first frame: since start, half the packets under 10 µs
    assert not first.interval and first.packets == 200
    assert first.p50 == pytest.approx(1e-05)
    idle = latency(cur, sample(2.0, hist("0", {"1e-05": 100, "0.0001": 200}, 0.0085)))
    assert not idle.interval and idle.p50 == first.p50  # nothing judged in the interval


def test_latency_of_a_restarted_worker_takes_all_its_buckets_as_new() -> None:
    prev = sample(0.0, hist("0", {"1e-05": 500}, 0.002) + "\n" + hist("1", {"1e-05": 10}, 0.0))
    # queue 0 restarted: 4 packets in (1 ms, 2.5 ms]; queue 1 judged nothing new.
    cur = sample(1.0, hist("0", {"0.001": 0, "0.0025": 4}, 0.008) + "\n" + hist("1", {"1e-05": 10}, 0.0))
    lat = latency(prev, cur)
    assert lat.interval and lat.packets == 4
    assert lat.p50 == pytest.approx(0.00175)
    assert latency(prev, cur, "1").interval is False  # per queue: queue 1 was idle


# -- the view ---------------------------------------------------------------------------------


def alerts(rules: dict[tuple[str, str], int]) -> str:
    return "\n".join(
        f'inline_ips_alerts_total{{gid="1",queue="0",sid="{sid}",signature="{sig}"}} {n}'
        for (sid, sig), n in rules.items()
    )


@pytest.mark.parametrize(
    ("before", "after", "want"),
    [
        # by rate first: sid 2 alerts more per second though sid 1 has the larger total
        ({("1", "old"): 500, ("2", "new"): 1}, {("1", "old"): 500, ("2", "new"): 11}, ["2", "1"]),
        # equal rates: the larger total first
        ({("1", "a"): 5, ("2", "b"): 50}, {("1", "a"): 6, ("2", "b"): 51}, ["2", "1"]),
        # a rule's first alert creates its series: counted from zero
        ({("1", "a"): 5}, {("1", "a"): 6, ("3", "c"): 4}, ["3", "1"]),
        # the top is cut at top_n
        ({}, {(str(i), f"r{i}"): i for i in range(1, 6)}, ["5", "4", "3"]),
    ],
)
def test_top_rules_rank_by_rate_then_total(
    before: dict[tuple[str, str], int], after: dict[tuple[str, str], int], want: list[str]
) -> None:
    prev, cur = sample(0.0, alerts(before) or "inline_ips_start_time_seconds 1"), sample(1.0, alerts(after))
    view = compute_view(prev, cur, top_n=3)
    assert [r.sid for r in view.top_rules] == want


def spec_text(
    accept: int, drop: int, fw_queued: int, alerts_new: int, up1: int = 1, queued1: int | None = None
) -> str:
    return f"""
inline_ips_info{{version="9.9",fail_open="true"}} 1
inline_ips_start_time_seconds 999000
inline_ips_packets_total{{queue="0",verdict="accept"}} {accept}
inline_ips_packets_total{{queue="0",verdict="drop"}} {drop}
inline_ips_bytes_total{{queue="0",verdict="accept"}} {accept * 1000}
inline_ips_bytes_total{{queue="0",verdict="drop"}} {drop * 100}
inline_ips_drops_total{{queue="0",reason="rule"}} {drop}
inline_ips_alerts_total{{queue="0",gid="1",sid="2000001",signature="ET SCAN x"}} {alerts_new}
inline_ips_worker_up{{queue="0"}} 1
inline_ips_worker_up{{queue="1"}} {up1}
inline_ips_queue_length{{queue="0"}} 3
inline_ips_queue_packets_total{{queue="0"}} {accept + drop}
{"" if queued1 is None else f'inline_ips_queue_packets_total{{queue="1"}} {queued1}'}
inline_ips_firewall_queued_packets_total{{family="ipv4"}} {fw_queued}
inline_ips_rules_loaded{{queue="0",kind="signature"}} 120
inline_ips_rules_loaded{{queue="1",kind="signature"}} 120
inline_ips_rules_loaded{{queue="0",kind="rate"}} 2
inline_ips_flows_active{{queue="0"}} 40
inline_ips_flows_active{{queue="1"}} 2
inline_ips_blocklist_hosts{{family="ipv4"}} 1
inline_ips_blocklist_capacity{{family="ipv4"}} 65536
inline_ips_blocklist_capacity{{family="ipv6"}} 65536
"""


def test_view_of_two_scrapes() -> None:
    prev = sample(0.0, spec_text(accept=1000, drop=10, fw_queued=1010, alerts_new=10), wall=1_000_000)
    cur = sample(2.0, spec_text(accept=3000, drop=30, fw_queued=3230, alerts_new=30, up1=0), wall=1_000_002)
    v = compute_view(prev, cur, [("198.51.100.2", 30), ("203.0.113.9", 0), ("203.0.113.7", 600)], None)
    assert v.elapsed == 2.0
    assert (v.version, v.fail_open, v.uptime) == ("9.9", True, 1002.0)
    assert (v.workers_up, v.workers, v.rules) == (1, 2, {"signature": 120, "rate": 2})  # not summed
    assert v.packets == Rate(3030.0, 1010.0)
    assert v.bits == Rate(8 * 3_003_000.0, 8 * 1_001_000.0)
    assert [(r.verdict, r.packets.rate) for r in v.verdicts] == [
        ("accept", 1000.0),
        ("rewrite", 0.0),
        ("drop", 10.0),
        ("reject", 0.0),
        ("block", 0.0),
    ]
    assert dict(v.drops)["rule"] == Rate(30.0, 10.0)
    assert v.unjudged == pytest.approx(100.0)  # (3230 - 1010) / 2 - 1010
    assert v.flows_active == 42
    assert [(q.queue, q.up) for q in v.queues] == [("0", True), ("1", False)]
    assert v.top_rules[0].alerts == Rate(30.0, 10.0)
    # permanent first, then the most time left
    assert v.blocked == (("203.0.113.9", 0), ("203.0.113.7", 600), ("198.51.100.2", 30))
    assert (v.blocklist_hosts, v.blocklist_capacity) == (1.0, 131072.0)


# -- units and layout -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "want"),
    [
        (fmt_count, None, "-"),
        (fmt_count, 345, "345"),
        (fmt_count, 1234, "1.23k"),
        (fmt_count, 999_999, "1.00M"),
        (fmt_count, 45_600_000, "45.6M"),
        (fmt_rate, None, "-"),
        (fmt_rate, 0, "0"),
        (fmt_rate, 0.4, "0.4"),
        (fmt_rate, 12.4, "12"),
        (fmt_rate, 1500, "1.50k"),
        (fmt_bits, 0, "0 bit/s"),
        (fmt_bits, 640, "640 bit/s"),
        (fmt_bits, 8000, "8.00 kbit/s"),
        (fmt_bits, 12_345_678, "12.3 Mbit/s"),
        (fmt_bits, 2.5e9, "2.50 Gbit/s"),
        (fmt_seconds, None, "-"),
        (fmt_seconds, 8.5e-6, "8.5 µs"),
        (fmt_seconds, 45e-6, "45 µs"),
        (fmt_seconds, 1.2e-3, "1.20 ms"),
        (fmt_seconds, 0.025, "25.0 ms"),
        (fmt_seconds, 1.5, "1.50 s"),
        (fmt_duration, 45, "45s"),
        (fmt_duration, 552, "9m 12s"),
        (fmt_duration, 7380, "2h 03m"),
        (fmt_duration, 273600, "3d 04h"),
    ],
)
def test_units(fmt: object, value: float | None, want: str) -> None:
    assert callable(fmt)
    assert fmt(value) == want


def busy_view(blocked: int = 3) -> top.View:
    prev = sample(0.0, spec_text(accept=1000, drop=10, fw_queued=1010, alerts_new=10))
    cur = sample(1.0, spec_text(accept=2000, drop=20, fw_queued=2020, alerts_new=20))
    hosts = [(f"192.0.2.{i}", 100 + i) for i in range(blocked)]
    return compute_view(prev, cur, hosts)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (40, 10), (200, 60), (1, 1), (20, 3)])
def test_render_fits_the_terminal(width: int, height: int) -> None:
    lines = render(busy_view(blocked=40), width, height)
    assert 0 < len(lines) <= height
    assert all(len(line) <= width for line in lines)


def test_render_shows_the_figures_in_human_units() -> None:
    text = "\n".join(render(busy_view(), 200, 60))
    assert "traffic  1.01k pkt/s  8.01 Mbit/s  alerts 10/s" in text
    assert re.search(r"^accept\s+1.00k\s+8.00 Mbit/s\s+2.00k", text, re.M)
    assert re.search(r"rule\s+10\s+20$", text, re.M)
    assert re.search(r"^\s+10\s+20\s+1:2000001\s+ET SCAN x$", text, re.M)
    assert "192.0.2.2" in text and "1m 42s left" in text
    assert "blocked hosts  3  (1 of 131072 in the ipsets)" in text
    assert "workers 2/2" in text and "rules 120 sig + 2 rate" in text and "fail-open" in text


def test_render_on_a_small_screen_shares_rows_and_says_what_is_cut() -> None:
    lines = render(busy_view(blocked=40), 120, 24)
    assert len(lines) == 24
    assert lines[-1].startswith("  ... ") and "more" in lines[-1]
    shown = [line for line in lines if line.endswith(" left  192.0.2." + line.rsplit(".", 1)[-1])]
    assert 0 < len(shown) < 40
    assert lines[-1] == f"  ... {40 - len(shown)} more (inline-ips block list shows all)"
    tiny = render(busy_view(), 120, 5)
    assert tiny[-1].endswith("more lines: enlarge the terminal")


def test_render_first_frame_and_notes() -> None:
    cur = sample(1.0, spec_text(accept=5, drop=0, fw_queued=5, alerts_new=0))
    v = compute_view(None, cur, [], "needs root")
    text = "\n".join(render(v, 200, 60))
    assert "first sample: rates next frame" in text
    assert "traffic  - pkt/s  -  alerts -/s" in text
    assert "blocked hosts: needs root" in text
    err = "\n".join(render(replace(v, error="cannot reach it"), 200, 60))
    assert err.splitlines()[1] == "! cannot reach it"


# -- blocked hosts ----------------------------------------------------------------------------


class FakeBlocklist:
    def __init__(self, exists: bool = True, fail: BaseException | None = None) -> None:
        self.exists, self.fail, self.closed = exists, fail, False

    def info(self) -> dict[str, dict[str, object]]:
        if self.fail is not None:
            raise self.fail
        return {"a": {"exists": self.exists}, "b": {"exists": False}}

    def entries(self) -> list[tuple[str, int]]:
        return [("192.0.2.1", 60)]

    def close(self) -> None:
        self.closed = True


class NetlinkDeniedError(Exception):
    code = 1  # EPERM, as pyroute2's NetlinkError carries it


def denied() -> BlocklistError:
    e = BlocklistError("cannot read ipset inline_ips_block4: (1, 'Operation not permitted')")
    e.__cause__ = NetlinkDeniedError()
    return e


@pytest.mark.parametrize(
    ("fake", "want"),
    [
        (FakeBlocklist(), ([("192.0.2.1", 60)], None)),
        (
            FakeBlocklist(exists=False),
            ([], "ipset not found (inline_ips_block4, inline_ips_block6 in this namespace)"),
        ),
        (FakeBlocklist(fail=denied()), ([], "needs root")),
        (
            FakeBlocklist(fail=BlocklistError("cannot read ipset x: kaput")),
            ([], "cannot read the ipsets: cannot read ipset x: kaput"),
        ),
    ],
)
def test_kernel_blocked_hosts_notes(
    monkeypatch: pytest.MonkeyPatch, fake: FakeBlocklist, want: tuple[list[tuple[str, int]], str | None]
) -> None:
    from inline_ips.respond import block

    monkeypatch.setattr(block, "KernelBlocklist", lambda set4, set6: fake)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    provider = KernelBlockedHosts()
    assert (provider.set4, provider.set6) == ("inline_ips_block4", "inline_ips_block6")
    assert read_blocked(provider) == want
    provider.close()
    assert fake.closed


def test_read_blocked_never_raises() -> None:
    def broken() -> list[tuple[str, int]]:
        raise RuntimeError("boom")

    def unavailable() -> list[tuple[str, int]]:
        raise BlockedHostsError("ipset not found")

    assert read_blocked(broken) == ([], "cannot read them: boom")
    assert read_blocked(unavailable) == ([], "ipset not found")


# -- against a real exporter ------------------------------------------------------------------


class ScriptedCollector(Collector):
    """Serves spec-named metrics; scrape n gets state n (the last one from then on)."""

    def __init__(self, states: list[dict[str, int]]) -> None:
        self.states = states
        self.scrapes = 0
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            s = self.states[min(self.scrapes, len(self.states) - 1)]
            self.scrapes += 1
        info = GaugeMetricFamily("inline_ips_info", "x", labels=["version", "fail_open"])
        info.add_metric(["1.2.3", "true"], 1)
        yield info
        yield GaugeMetricFamily("inline_ips_start_time_seconds", "x", value=1_700_000_000)
        packets = CounterMetricFamily("inline_ips_packets", "x", labels=["queue", "verdict"])
        nbytes = CounterMetricFamily("inline_ips_bytes", "x", labels=["queue", "verdict"])
        for q in ("0", "1"):
            packets.add_metric([q, "accept"], s[f"accept{q}"])
            nbytes.add_metric([q, "accept"], s[f"accept{q}"] * 500)
        packets.add_metric(["0", "drop"], s["drop"])
        nbytes.add_metric(["0", "drop"], s["drop"] * 60)
        yield from (packets, nbytes)
        drops = CounterMetricFamily("inline_ips_drops", "x", labels=["queue", "reason"])
        drops.add_metric(["0", "rule"], s["drop"])
        yield drops
        al = CounterMetricFamily("inline_ips_alerts", "x", labels=["queue", "gid", "sid", "signature"])
        al.add_metric(["0", "1", "2000001", "ET SCAN slow and steady"], 5000)  # big total, idle
        al.add_metric(["1", "1", "2000002", "ET EXPLOIT busy"], s["alerts"])
        yield al
        up = GaugeMetricFamily("inline_ips_worker_up", "x", labels=["queue"])
        length = GaugeMetricFamily("inline_ips_queue_length", "x", labels=["queue"])
        flows = GaugeMetricFamily("inline_ips_flows_active", "x", labels=["queue"])
        queued = CounterMetricFamily("inline_ips_queue_packets", "x", labels=["queue"])
        kdrops = CounterMetricFamily("inline_ips_queue_kernel_drops", "x", labels=["queue"])
        udrops = CounterMetricFamily("inline_ips_queue_user_drops", "x", labels=["queue"])
        for q in ("0", "1"):
            up.add_metric([q], 1)
            length.add_metric([q], int(q) * 7)
            flows.add_metric([q], 60)
            queued.add_metric([q], s[f"accept{q}"] + (s["drop"] if q == "0" else 0))
            kdrops.add_metric([q], 0)
            udrops.add_metric([q], 0)
        yield from (up, length, flows, queued, kdrops, udrops)
        hosts = GaugeMetricFamily("inline_ips_blocklist_hosts", "x", labels=["family"])
        hosts.add_metric(["ipv4"], 1)
        cap = GaugeMetricFamily("inline_ips_blocklist_capacity", "x", labels=["family"])
        cap.add_metric(["ipv4"], 65536)
        kblocked = CounterMetricFamily("inline_ips_firewall_blocked_packets", "x", labels=["family"])
        kblocked.add_metric(["ipv4"], s["kblocked"])
        yield from (hosts, cap, kblocked)
        fw = CounterMetricFamily("inline_ips_firewall_queued_packets", "x", labels=["family"])
        fw.add_metric(["ipv4"], s["fw"])
        yield fw
        rules = GaugeMetricFamily("inline_ips_rules_loaded", "x", labels=["queue", "kind"])
        rules.add_metric(["0", "signature"], 321)
        yield rules
        buckets = [(le, 0.0) for le in BUCKETS[:2]] + [(le, s["lat"]) for le in (*BUCKETS[2:], "+Inf")]
        lat = HistogramMetricFamily("inline_ips_verdict_latency_seconds", "x", labels=["queue"])
        lat.add_metric(["0"], buckets, sum_value=s["lat"] * 40e-6)
        yield lat


@pytest.fixture
def exporter() -> Iterator[tuple[str, ScriptedCollector]]:
    collector = ScriptedCollector(
        [
            {
                "accept0": 1000,
                "accept1": 9000,
                "drop": 10,
                "alerts": 100,
                "lat": 1000,
                "fw": 10010,
                "kblocked": 7,
            },
            # queue 1's worker restarted: its 9000 became 400, all counted in this interval.
            # iptables queued 1040 + 100: 100 passed unjudged.
            {
                "accept0": 1600,
                "accept1": 400,
                "drop": 50,
                "alerts": 180,
                "lat": 2000,
                "fw": 11150,
                "kblocked": 27,
            },
        ]
    )
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics", collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def test_once_against_a_real_exporter(exporter: tuple[str, ScriptedCollector]) -> None:
    url, collector = exporter
    out, err = io.StringIO(), io.StringIO()
    assert run_top(url, 0.2, True, None, lambda: [("203.0.113.7", 540)], out, err=err) == 0, err.getvalue()
    assert collector.scrapes == 2
    frame = out.getvalue()
    print(frame)
    # 600 + 400 accepted + 40 dropped in ~0.2 s
    pps = re.search(r"^traffic  (\d+(?:\.\d+)?)(k?) pkt/s", frame, re.M)
    assert pps is not None
    assert float(pps[1]) * (1000 if pps[2] else 1) == pytest.approx(1040 / 0.2, rel=0.25)
    assert re.search(r"^drop\s+\d+", frame, re.M)
    unjudged = re.search(r"^unjudged (\d+) pkt/s", frame, re.M)
    assert unjudged is not None
    assert float(unjudged[1]) == pytest.approx(100 / 0.2, rel=0.25)
    rules = frame.split("top rules", 1)[1].splitlines()
    assert "ET EXPLOIT busy" in rules[1]  # 80 in the interval beats the idle rule's 5000 total
    assert "ET SCAN slow and steady" in rules[2]
    assert re.search(r"^\s+9m 00s left  203\.0\.113\.7$", frame, re.M)
    assert "inline-ips 1.2.3" in frame and "rules 321 sig" in frame
    # latency: the 1000 new packets all fall in (25 µs, 50 µs] -> p50 37.5 µs
    assert re.search(
        r"^latency  p50 3[78] µs  p99 50 µs  mean 40 µs  \(last 0\.2 s, 1\.00k packets\)", frame, re.M
    )


def test_fetch_reads_every_series(exporter: tuple[str, ScriptedCollector]) -> None:
    url, _ = exporter
    s = fetch(url, 2.0)
    assert s.values("inline_ips_packets_total")[frozenset({("queue", "1"), ("verdict", "accept")})] == 9000
    assert s.first("inline_ips_start_time_seconds") == 1_700_000_000


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_exporter_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    out, err = io.StringIO(), io.StringIO()
    assert run_top(url, 0.2, True, None, lambda: [], out, err=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue() == (
        f"inline-ips: cannot reach the inline-ips exporter at {url}: connection refused — "
        "is `inline-ips run` running, and not with --no-metrics or another --metrics address?\n"
    )


@pytest.fixture
def not_http() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that answers every connection with an SSH banner."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(5)

    def serve() -> None:
        try:
            while True:
                conn, _ = srv.accept()
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        except OSError:  # closed by the fixture
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/metrics"
    finally:
        with contextlib.suppress(OSError):
            srv.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone would not
        srv.close()
        thread.join(timeout=2)


HINT = " — is `inline-ips run` running, and not with --no-metrics or another --metrics address?"


@pytest.mark.parametrize(
    ("target", "want"),
    [
        ("closed", "cannot reach the inline-ips exporter at {url}: connection refused" + HINT),
        ("not_http", "cannot reach the inline-ips exporter at {url}: the answer is not HTTP (BadStatusLine)"),
        (
            "no_scheme",
            "cannot reach the inline-ips exporter at {url}: unknown url type: 127.0.0.1 "
            "(expected http://HOST:PORT/metrics)",
        ),
    ],
)
def test_fetch_errors_say_what_went_wrong(target: str, want: str, request: pytest.FixtureRequest) -> None:
    if target == "closed":
        url = f"http://127.0.0.1:{closed_port()}/metrics"
    elif target == "not_http":
        url = request.getfixturevalue("not_http")
    else:
        url = "127.0.0.1:9108"
    with pytest.raises(ExporterError) as info:
        fetch(url, 2.0)
    assert str(info.value) == want.format(url=url)


def test_a_server_without_inline_ips_metrics_is_named() -> None:
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        with pytest.raises(
            ExporterError, match=r"serves no inline_ips_\* metrics; is that the inline-ips exporter"
        ):
            fetch(url, 2.0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


@pytest.mark.parametrize(("interval", "count"), [(0.0, None), (-1.0, None), (1.0, 0)])
def test_bad_arguments(interval: float, count: int | None) -> None:
    err = io.StringIO()
    assert (
        run_top("http://127.0.0.1:1/metrics", interval, True, count, lambda: [], io.StringIO(), err=err) == 2
    )
    assert "--interval must be above 0" in err.getvalue()


def on_a_terminal(
    url: str,
    keys: bytes,
    count: int | None,
    after_first: Callable[[], None] | None = None,
    wait_for: bytes = b"blocked hosts",
) -> tuple[int, str]:
    """Run the curses screen in a child on an 80x24 pseudo-terminal.

    After the first full frame, call ``after_first``; once ``wait_for`` has
    been drawn after that, type ``keys``.
    """
    import fcntl
    import pty
    import select
    import signal
    import struct
    import subprocess
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    code = (
        # the pty becomes the child's controlling terminal, so ^C typed on it is the child's SIGINT
        "import fcntl, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "from inline_ips.top import run_top; "
        f"sys.exit(run_top({url!r}, 0.2, False, {count!r}, lambda: [('203.0.113.7', 540)], sys.stdout))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={**os.environ, "TERM": "xterm", "LANG": "C.UTF-8"},
    )
    os.close(slave)
    seen, typed, first_at = b"", False, -1
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if first_at < 0 and b"blocked hosts" in seen:
                first_at = seen.index(b"blocked hosts")
                if after_first is not None:
                    after_first()
            if keys and not typed and first_at >= 0 and wait_for in seen[first_at:]:
                os.write(master, keys)
                typed = True
            if child.poll() is not None and not ready:
                break
        rc = child.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        os.close(master)
    return rc, seen.decode("utf-8", errors="replace")


@pytest.mark.parametrize(("keys", "count"), [(b"q", None), (b"\x03", None), (b"", 3)])
def test_the_screen_quits_and_restores_the_terminal(
    exporter: tuple[str, ScriptedCollector], keys: bytes, count: int | None
) -> None:
    url, collector = exporter
    rc, screen = on_a_terminal(url, keys, count)
    assert rc == 0, screen
    assert "ET EXPLOIT busy" in screen and "203.0.113.7" in screen
    assert "\x1b[?1049h" in screen and screen.rindex("\x1b[?1049l") > screen.rindex("blocked hosts")
    if count is not None:
        assert collector.scrapes == count


def test_the_screen_shows_a_lost_exporter_and_keeps_trying() -> None:
    collector = ScriptedCollector(
        [{"accept0": 1, "accept1": 1, "drop": 0, "alerts": 1, "lat": 1, "fw": 2, "kblocked": 0}]
    )
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)

    try:
        rc, screen = on_a_terminal(url, b"q", None, after_first=stop, wait_for=b"retrying")
    finally:
        if thread.is_alive():
            stop()
    assert rc == 0, screen
    assert "! cannot reach the inline-ips exporter at" in screen and "(retrying every 0.2 s)" in screen


def test_render_wraps_a_long_error() -> None:
    v = replace(
        busy_view(), error="cannot reach the inline-ips exporter at http://127.0.0.1:9108/metrics: no"
    )
    lines = render(v, 40, 60)
    errors = [line for line in lines if line.startswith("! ")]
    assert len(errors) >= 2 and " ".join(e[2:] for e in errors) == v.error
