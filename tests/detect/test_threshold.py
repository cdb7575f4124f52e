"""threshold / detection_filter: what each match of a rule returns, with a frozen clock.

Every expectation follows Suricata 7.x/8.x detect-engine-threshold.c (``ThresholdHandlePacket``
in 7.x, ``ThresholdSetup`` + ``ThresholdCheckUpdate`` in 8.x; they agree on these types): the
window is fixed from the first match, ``p->ts <= start + seconds`` (inclusive, microseconds) is
inside it, and the first match after it restarts the window with a count of 1. Cases marked
"Suricata test" port the unit tests of detect-detection-filter.c and detect-threshold.c; "sv"
ones are the suricata-verify cases threshold-rule-flow and detection_filter-rule-flow (8 matches
in one flow).
"""

from __future__ import annotations

import pytest

from inline_ips.detect.threshold import ALERT, NO_ALERT, SILENT, Thresholds
from inline_ips.flow import Flow, flow_key
from inline_ips.packet import PROTO_TCP, Packet
from inline_ips.rules.model import Threshold

N, A, S = NO_ALERT, ALERT, SILENT
SID, GID = 1000, 1


def pkt(
    ts: float, src: int = 1, dst: int = 2, sport: int = 1024, dport: int = 80, version: int = 4
) -> Packet:
    p = Packet(b"", ts)
    p.ip_version = version
    p.proto = PROTO_TCP
    p.src, p.dst, p.sport, p.dport = src, dst, sport, dport
    return p


def flow_of(p: Packet) -> Flow:
    return Flow(flow_key(p), 1, p, True)


def limit(count: int, seconds: float = 60, track: str = "by_src") -> Threshold:
    return Threshold("limit", track, count, seconds)


def thresh(count: int, seconds: float = 60, track: str = "by_src") -> Threshold:
    return Threshold("threshold", track, count, seconds)


def both(count: int, seconds: float = 60, track: str = "by_src") -> Threshold:
    return Threshold("both", track, count, seconds)


def dfilter(count: int, seconds: float = 60, track: str = "by_src", unique_on: str = "") -> Threshold:
    return Threshold("detection_filter", track, count, seconds, unique_on)


US = 0.000001  # one microsecond, the resolution Suricata compares at

# (name, threshold, match timestamps, expected result of each match); one source, one destination.
TIMELINE: list[tuple[str, Threshold, list[float], list[int]]] = [
    # limit: the first `count` matches of a window alert, the rest act silently
    ("limit_2", limit(2), [0, 1, 2, 3], [A, A, S, S]),
    ("limit_1", limit(1), [0, 1, 59], [A, S, S]),
    ("limit_window_end_inclusive", limit(1), [0, 60], [A, S]),
    ("limit_window_just_after", limit(1), [0, 60 + US], [A, A]),
    ("limit_restarted_window_is_fixed", limit(1), [0, 61, 100, 121, 121 + US], [A, A, S, S, A]),
    ("limit_fractional_start", limit(1, 1), [0.1, 1.1, 1.1 + US], [A, S, A]),
    # 127.471549 + 3 is 130.47154900000001 in floats: compared in microseconds, the end is inside
    ("limit_float_boundary", limit(1, 3), [127.471549, 130.471549, 130.47155], [A, S, A]),
    # threshold: every count-th match of a window alerts; the count restarts, the window does not
    ("threshold_3", thresh(3), [0, 1, 2, 3, 4, 5, 6], [N, N, A, N, N, A, N]),
    ("threshold_1_always", thresh(1), [0, 1, 60, 61, 500], [A, A, A, A, A]),
    ("threshold_2_window_fixed", thresh(2, 10), [0, 1, 2, 3, 10, 10 + US, 11], [N, A, N, A, N, N, A]),
    # expiry restarts at count 1 without alerting, even if the old window was at count-1
    ("threshold_expiry_resets", thresh(3), [0, 1, 60 + US, 61, 62], [N, N, N, N, A]),
    # both: alert once at the count-th match, silent after it
    ("both_3", both(3), [0, 1, 2, 3, 4], [N, N, A, S, S]),
    ("both_3_expiry", both(3), [0, 1, 2, 3, 60 + US, 61, 62, 63], [N, N, A, S, N, N, A, S]),
    ("both_1", both(1), [0, 1, 60, 60 + US, 70], [A, S, S, A, S]),
    # detection_filter: every match after the first `count` of a window alerts
    ("df_2", dfilter(2), [0, 1, 2, 3, 4], [N, N, A, A, A]),
    ("df_window_end_inclusive", dfilter(1), [0, 60], [N, A]),
    ("df_window_just_after", dfilter(1), [0, 60 + US, 61], [N, N, A]),
    ("df_expiry_restarts", dfilter(2), [0, 1, 2, 60 + US, 61, 62], [N, N, A, N, N, A]),
    # Suricata test DetectDetectionFilterTestSig1: count 4 -> 4 silent, then every match alerts
    ("df_suricata_sig1", dfilter(4), [0] * 8, [N] * 4 + [A] * 4),
    # Suricata test DetectDetectionFilterTestSig2: 3 matches, 200 s later 4 more: none alerts
    ("df_suricata_sig2", dfilter(4), [0, 0, 0, 200, 200, 200, 200], [N] * 7),
    # Suricata test DetectDetectionFilterTestSig3: count 2 -> third alerts; same after 200 s
    ("df_suricata_sig3", dfilter(2), [0, 0, 0, 200, 200, 200], [N, N, A, N, N, A]),
    # a packet stamped before the window's start is inside it (Suricata only tests the end)
    ("df_out_of_order_in_window", dfilter(1), [10, 5], [N, A]),
    ("limit_out_of_order_in_window", limit(1), [10, 5, 70, 70 + US], [A, S, S, A]),
]


@pytest.mark.parametrize(("th", "times", "expected"), [c[1:] for c in TIMELINE], ids=[c[0] for c in TIMELINE])
def test_timeline(th: Threshold, times: list[float], expected: list[int]) -> None:
    t = Thresholds()
    got = [t.check(th, SID, GID, pkt(ts), None) for ts in times]
    assert got == expected


# sv threshold-rule-flow and detection_filter-rule-flow: 8 matches in one flow (alerts expected).
SV_FLOW: list[tuple[Threshold, int]] = [
    (limit(1, 3600, "by_flow"), 1),
    (limit(2, 3600, "by_flow"), 2),
    (both(3, 3600, "by_flow"), 1),
    *((dfilter(n, 3600, "by_flow"), alerts) for n, alerts in ((1, 7), (2, 6), (4, 4), (7, 1), (8, 0))),
]


@pytest.mark.parametrize(("th", "alerts"), SV_FLOW, ids=[f"{t.kind}_{t.count}" for t, _ in SV_FLOW])
def test_suricata_verify_flow_counts(th: Threshold, alerts: int) -> None:
    t = Thresholds()
    first = pkt(0)
    flow = flow_of(first)
    got = [t.check(th, SID, GID, pkt(i), flow) for i in range(8)]
    assert got.count(ALERT) == alerts
    assert len(t) == 0  # by_flow entries live in the flow, not in the table


# (name, threshold, events (ts, src, dst, sport, dport), expected)
Event = tuple[float, int, int, int, int]
UNIQUE: list[tuple[str, Threshold, list[Event], list[int]]] = [
    # Suricata test DetectDetectionFilterDistinctBoundaryNoAlert: exactly `count` ports, no alert
    ("boundary", dfilter(2, 60, "by_dst", "dst_port"), [(0, 1, 2, 1024, 80), (0, 1, 2, 1024, 81)], [N, N]),
    # Suricata test DetectDetectionFilterDistinctWindowReset (seconds 2, +3 s)
    (
        "window_reset",
        dfilter(2, 2, "by_dst", "dst_port"),
        [(0.0, 1, 2, 1024, p) for p in (80, 81, 82)] + [(3.0, 1, 2, 1024, p) for p in (80, 81, 82)],
        [N, N, A, N, N, A],
    ),
    # duplicates do not count towards the distinct number
    (
        "duplicates_do_not_count",
        dfilter(2, 60, "by_dst", "dst_port"),
        [(float(i), 1, 2, 1024, 80) for i in range(5)],
        [N] * 5,
    ),
    # ... but once past it, every match of the window alerts, a repeated port too
    (
        "duplicate_after_threshold",
        dfilter(1, 60, "by_dst", "dst_port"),
        [(0, 1, 2, 1024, 80), (1, 1, 2, 1024, 81), (2, 1, 2, 1024, 80), (61, 1, 2, 1024, 80)],
        [N, A, A, N],
    ),
    # sv detection_filter-distinct-srcport: SYNs from ports 2000 and 2001, count 1 -> one alert
    ("src_port", dfilter(1, 60, "by_src", "src_port"), [(0, 1, 2, 2000, 80), (0, 1, 2, 2001, 80)], [N, A]),
    # src_port counting ignores the destination port and vice versa
    (
        "src_port_ignores_dport",
        dfilter(1, 60, "by_src", "src_port"),
        [(0, 1, 2, 2000, 80), (0, 1, 2, 2000, 81)],
        [N, N],
    ),
    # the window restarts with the current packet's port as its first distinct value
    (
        "restart_keeps_current_port",
        dfilter(1, 10, "by_src", "dst_port"),
        [(0, 1, 2, 1, 80), (11, 1, 2, 1, 81), (12, 1, 2, 1, 81), (13, 1, 2, 1, 80)],
        [N, N, N, A],
    ),
]


@pytest.mark.parametrize(("th", "events", "expected"), [c[1:] for c in UNIQUE], ids=[c[0] for c in UNIQUE])
def test_unique_on(th: Threshold, events: list[Event], expected: list[int]) -> None:
    t = Thresholds()
    got = [t.check(th, SID, GID, pkt(ts, s, d, sp, dp), None) for ts, s, d, sp, dp in events]
    assert got == expected


# (name, track, packets as (src, dst), expected) for limit count 1: A marks a new key.
A_, B_, C_ = 10, 20, 30
TRACKS: list[tuple[str, str, list[tuple[int, int]], list[int]]] = [
    ("by_src", "by_src", [(A_, C_), (B_, C_), (A_, B_), (B_, A_)], [A, A, S, S]),
    ("by_dst", "by_dst", [(A_, C_), (A_, B_), (B_, C_), (C_, B_)], [A, A, S, S]),
    # by_both: the address pair, either way round
    ("by_both", "by_both", [(A_, B_), (B_, A_), (A_, C_), (C_, A_), (B_, C_)], [A, S, A, S, A]),
    ("by_rule", "by_rule", [(A_, B_), (C_, B_), (B_, C_)], [A, S, S]),
]


@pytest.mark.parametrize(("track", "pairs", "expected"), [c[1:] for c in TRACKS], ids=[c[0] for c in TRACKS])
def test_tracks(track: str, pairs: list[tuple[int, int]], expected: list[int]) -> None:
    t = Thresholds()
    got = [t.check(limit(1, 60, track), SID, GID, pkt(i, s, d), None) for i, (s, d) in enumerate(pairs)]
    assert got == expected


def test_by_flow_is_per_flow() -> None:
    t = Thresholds()
    th = limit(1, 60, "by_flow")
    p1, p2 = pkt(0, sport=1000), pkt(0, sport=2000)
    f1, f2 = flow_of(p1), flow_of(p2)
    assert [t.check(th, SID, GID, p1, f1), t.check(th, SID, GID, p2, f2)] == [A, A]
    assert [t.check(th, SID, GID, p1, f1), t.check(th, SID, GID, p2, f2)] == [S, S]
    assert f1.thresholds is not None and len(f1.thresholds) == 1


@pytest.mark.parametrize("th", [limit(1, 60, "by_flow"), thresh(1, 60, "by_flow"), dfilter(1, 60, "by_flow")])
def test_by_flow_without_flow_never_alerts(th: Threshold) -> None:
    t = Thresholds()
    assert [t.check(th, SID, GID, pkt(i), None) for i in range(3)] == [N, N, N]
    assert len(t) == 0


def test_keys_separate_rules_and_families() -> None:
    t = Thresholds()
    th = limit(1)
    assert t.check(th, 1, 1, pkt(0), None) == A
    assert t.check(th, 2, 1, pkt(0), None) == A  # another sid
    assert t.check(th, 1, 3, pkt(0), None) == A  # another gid
    assert t.check(th, 1, 1, pkt(0, version=6), None) == A  # the same integer as an IPv6 address
    assert t.check(th, 1, 1, pkt(0), None) == S
    assert len(t) == 4


def test_entry_cap_evicts_least_recently_used() -> None:
    t = Thresholds(max_entries=2)
    th = limit(1)
    assert [t.check(th, SID, GID, pkt(0, src=s), None) for s in (1, 2)] == [A, A]
    assert t.check(th, SID, GID, pkt(1, src=1), None) == S  # touches 1: 2 is now the oldest
    assert t.check(th, SID, GID, pkt(2, src=3), None) == A
    assert (len(t), t.evicted) == (2, 1)
    assert t.check(th, SID, GID, pkt(3, src=1), None) == S  # 1 survived
    assert t.check(th, SID, GID, pkt(4, src=2), None) == A  # 2 was forgotten: a new window
    assert (len(t), t.evicted) == (2, 2)


def test_entry_cap_does_not_count_flow_entries() -> None:
    t = Thresholds(max_entries=1)
    p = pkt(0)
    f = flow_of(p)
    for sid in range(5):
        t.check(limit(1, 60, "by_flow"), sid, GID, p, f)
    assert (len(t), t.evicted) == (0, 0)


def test_zero_cap_does_not_raise() -> None:
    t = Thresholds(max_entries=0)
    assert [t.check(limit(1), SID, GID, pkt(0, src=s), None) for s in (1, 2, 1)] == [A, A, A]
    assert len(t) == 1


def test_unique_on_keeps_at_most_count_plus_one_ports() -> None:
    t = Thresholds()
    th = dfilter(3, 60, "by_dst", "dst_port")
    got = [t.check(th, SID, GID, pkt(0, dport=port), None) for port in range(10_000)]
    assert got == [N, N, N] + [A] * 9_997
    (entry,) = t._entries.values()
    assert entry.ports is not None and len(entry.ports) == 4


@pytest.mark.parametrize(
    ("count", "multiplier", "alert_at"),
    [
        (1, 2, [1, 2, 4, 8, 16]),
        (3, 2, [3, 6, 12]),
        (1, 10, [1, 10]),
        (5, 5, [5]),
    ],
)
def test_backoff_alerts_at_count_times_powers_of_multiplier(
    count: int, multiplier: int, alert_at: list[int]
) -> None:
    """Suricata 8's type backoff (thresholding.rst): no window; the other matches act silently."""
    t = Threshold("backoff", "by_flow", count, 0.0, multiplier=multiplier)
    th = Thresholds()
    p = pkt(0.0)
    f = flow_of(p)
    got = [th.check(t, SID, GID, pkt(float(i * 1000)), f) for i in range(1, 21)]
    assert [i for i, r in enumerate(got, 1) if r == ALERT] == alert_at
    assert all(r == SILENT for r in got if r != ALERT)
    # Another flow counts on its own.
    other = flow_of(pkt(0.0, src=9))
    assert th.check(t, SID, GID, pkt(1.0, src=9), other) == (ALERT if count == 1 else SILENT)


@pytest.mark.parametrize("track", ["by_src", "by_dst", "by_both"])
def test_a_spoofed_flood_of_ten_times_the_cap_stays_at_the_cap(track: str) -> None:
    cap = 25
    t = Thresholds(max_entries=cap)
    th = limit(1, 60, track)
    for i in range(10 * cap):
        p = pkt(i * 1e-3, src=i + 1) if track != "by_dst" else pkt(i * 1e-3, dst=i + 1)
        assert t.check(th, SID, GID, p, None) == A  # each new key is a new window
        assert len(t) <= cap
    assert (len(t), t.evicted) == (cap, 9 * cap)
