"""bench/lab_bench.py and its helpers: the parsing and formatting, and one real run in the lab.

The unit tests feed recorded tool output (iperf3 ``-J`` from a real lab run,
trimmed to what is read; ``iptables -L -v -x -n`` from the router with the
ceiling's rules; ``/proc`` text) to the parsers, check the percentile maths
against hand-computed values, and check that the Markdown section
replacement leaves every other section of RESULTS.md byte for byte. The
smoke test (slow; root, network namespaces and iperf3) runs the whole harness
with ``--quick --seconds 1`` on a copy of RESULTS.md and asserts nothing
about speed, only that every configuration delivered UDP packets and that the
tables were written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import lab_bench as lb
from bench.http_load import rotation
from bench.udp_latency import percentile, summarize
from inline_ips.lab.topology import list_netns
from tests.netns import require_root_netns

ROOT = Path(__file__).resolve().parents[1]

# iperf3 3.12, client side of `iperf3 -c 10.77.3.80 -u -b 0 -l 36 -t 1 -J` in the lab (end section).
IPERF_UDP = """{"start": {"test_start": {"protocol": "UDP", "num_streams": 1, "blksize": 36, "duration": 1}},
"end": {"streams": [],
"sum": {"start": 0, "end": 1.000116, "seconds": 1.000116, "bytes": 6733080, "bits_per_second": 53862593.2,
        "jitter_ms": 0.0041, "lost_packets": 1877, "packets": 187030, "lost_percent": 1.0035, "sender": true},
"sum_sent": {"start": 0, "end": 1.000038, "seconds": 1.000038, "bytes": 6733080,
             "bits_per_second": 53862593.2, "jitter_ms": 0, "lost_packets": 0, "packets": 187030,
             "lost_percent": 0, "sender": true},
"sum_received": {"start": 0, "end": 1.000116, "seconds": 1.000116, "bytes": 6665508,
                 "bits_per_second": 53317879.1, "jitter_ms": 0.0041, "lost_packets": 1877,
                 "packets": 187030, "lost_percent": 1.0035, "sender": false}}}"""

# The same run's TCP counterpart: `iperf3 -c 10.77.3.80 -t 1 -J`.
IPERF_TCP = """{"end": {"streams": [],
"sum_sent": {"start": 0, "end": 1.000427, "seconds": 1.000427, "bytes": 1939865600,
             "bits_per_second": 15512301047.45, "retransmits": 1173, "sender": true},
"sum_received": {"start": 0, "end": 1.000477, "seconds": 1.000477, "bytes": 1939865600,
                 "bits_per_second": 15511525802.19, "sender": true}}}"""

IPERF_ERROR = '{"start": {}, "end": {}, "error": "the server is busy running a test. try again later"}'

# `iptables-legacy -L -v -x -n` in the router while bench.accept_all ran (counts edited for the
# test, runs of blanks shortened to fit the line length).
IPTABLES = """Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
  505952 32381000 INLINE_IPS  0    --  *      *       0.0.0.0/0            0.0.0.0/0

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination

Chain INLINE_IPS (1 references)
    pkts      bytes target     prot opt in     out     source               destination
       7      420 DROP       0    --  *  *  0.0.0.0/0  0.0.0.0/0  match-set inline_ips_block4 src
     100     6400 RETURN     0    --  *  *  0.0.0.0/0  0.0.0.0/0  connmark match  0x40000000/0x40000000
  505845 32374180 NFQUEUE    0    --  *  *  0.0.0.0/0  0.0.0.0/0  NFQUEUE num 0 bypass
"""

SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 2 64 321039 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors
Udp: 193631 3 127394 1 127394
IpExt: InNoRoutes InTruncatedPkts InOctets OutOctets
IpExt: 0 0 20546746 1103
"""

# /proc/net/dev in a lab client (blanks shortened).
NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier comp
    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
lbc-c0: 1629948 24583 0 0 0 0 0 0 1958869242 228177 0 0 0 0 0 0
"""


# -- parsers ---------------------------------------------------------------------------------------


def test_iperf_udp_counts_what_was_sent_and_what_the_server_read() -> None:
    r = lb.parse_iperf_udp(IPERF_UDP)
    assert r.sent == 187030
    assert r.received == 6665508 // 36 == 187030 - 1877
    assert r.seconds == pytest.approx(1.000038)


def test_iperf_tcp_gives_the_receivers_goodput_and_the_senders_retransmits() -> None:
    r = lb.parse_iperf_tcp(IPERF_TCP)
    assert r.bits_per_second == pytest.approx(15511525802.19)
    assert r.received_bytes == 1939865600
    assert r.retransmits == 1173


@pytest.mark.parametrize("text", [IPERF_ERROR, "", "iperf3: error - unable to connect", "[]"])
def test_iperf_errors_and_garbage_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        lb.parse_iperf_udp(text)


def test_iptables_listing_gives_each_of_our_rules_counters() -> None:
    c = lb.parse_iptables_listing(IPTABLES)
    assert c == lb.ChainCounters(
        forwarded=505952,
        forwarded_bytes=32381000,
        queued=505845,
        queued_bytes=32374180,
        bypassed=100,
        blocked=7,
    )
    assert lb.parse_iptables_listing("Chain FORWARD (policy ACCEPT)\n") == lb.ChainCounters()


def test_snmp_pairs_header_and_value_lines() -> None:
    s = lb.parse_snmp(SNMP)
    assert s["Ip.InReceives"] == 321039
    assert s["Udp.RcvbufErrors"] == 127394
    assert s["IpExt.InOctets"] == 20546746
    assert lb.parse_snmp("Ip: a b\nUdp: 1 2\n") == {}  # mismatched pair: nothing invented


def test_net_dev_gives_transmit_counters() -> None:
    assert lb.parse_net_dev(NET_DEV) == {"lo": (0, 0), "lbc-c0": (1958869242, 228177)}


def test_proc_stat_survives_parentheses_and_spaces_in_the_command_name() -> None:
    line = "4242 (we(ird) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 75 3 4 20 0 3 0 1 2 3"
    assert lb.parse_proc_stat(line) == (17, 325)


def test_process_tree_sums_a_process_and_its_descendants(tmp_path: Path) -> None:
    def proc(pid: int, ppid: int, utime: int, stime: int) -> None:
        (tmp_path / str(pid)).mkdir()
        fields = ["S", str(ppid), *["0"] * 9, str(utime), str(stime), *["0"] * 8]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python3) " + " ".join(fields))

    proc(10, 1, 100, 50)
    proc(11, 10, 7, 3)  # a worker
    proc(12, 11, 1, 1)  # its child
    proc(20, 1, 999, 999)  # not ours
    (tmp_path / "self").mkdir()
    assert lb.process_tree(10, tmp_path) == {10: 150, 11: 10, 12: 2}
    assert lb.process_tree(99, tmp_path) == {}


# -- percentiles -------------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summarize_reports_microseconds() -> None:
    s = summarize([1000, 2000, 3000, 4000, 100_000])
    assert s["p50_us"] == 3.0
    assert s["max_us"] == 100.0
    assert s["mean_us"] == 22.0
    assert s["p99_us"] == pytest.approx(96.16)
    assert all(math.isnan(v) for v in summarize([]).values())


def test_http_rotation_gives_every_source_and_host_pair_an_equal_share() -> None:
    hosts = ["h1", "h2", "h3", "h4"]
    sources = [f"s{i}" for i in range(16)]
    pairs = rotation(hosts, sources)
    assert len(pairs) == len(set(pairs)) == 64
    assert {h for h, _ in pairs[:4]} == set(hosts)  # consecutive connections change host too
    assert rotation(["h"], []) == [("h", None)]


# -- the Markdown section ----------------------------------------------------------------------------


OTHER = (
    "# Engine benchmark results\n\nintro\n\n## Per-packet cost\n\n| a | b |\n\n"
    "## EVE sinks: a hanging webhook\n\nsinks\n"
)


def test_section_is_appended_when_absent_and_the_rest_kept() -> None:
    new = lb.replace_section(OTHER, f"{lb.SECTION}\n\nfirst\n")
    assert new.startswith(OTHER)
    assert new.endswith(f"\n\n{lb.SECTION}\n\nfirst\n")


def test_section_is_replaced_in_place_keeping_the_sections_around_it() -> None:
    text = OTHER.replace("## EVE sinks", f"{lb.SECTION}\n\nold table\n\n## EVE sinks")
    new = lb.replace_section(text, f"{lb.SECTION}\n\nnew table\n")
    assert "old table" not in new
    assert new == OTHER.replace("## EVE sinks", f"{lb.SECTION}\n\nnew table\n\n## EVE sinks")
    assert new.count(lb.SECTION) == 1
    # Replacing again is stable, and the real file's other sections survive as they are.
    assert lb.replace_section(new, f"{lb.SECTION}\n\nnew table\n") == new
    real = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    before, sep, _ = real.partition(lb.SECTION)
    out = lb.replace_section(real, f"{lb.SECTION}\n\nx\n")
    assert out.startswith(before if sep else real)


# -- the report ----------------------------------------------------------------------------------------


def _m(config: str, load: str, figure: float, judged: int, cpu: float | None, **kw: float) -> lb.Measurement:
    m = lb.Measurement(config, load, 10.0, judged=judged, cpu_seconds=cpu, rss_bytes=50 << 20)
    if load in (lb.UDP, lb.PACED):
        m.delivered_pps = figure
        m.bits_per_second = figure * 64 * 8
        m.loss_percent = kw.get("loss", 0.0)
        m.sent = int(figure * 10)
    elif load in (lb.TCP, lb.TCP2):
        m.bits_per_second = figure
    else:
        m.connections_per_second = figure
        m.failures = 0
    m.forwarded = int(kw.get("forwarded", 0))
    m.unjudged = int(kw.get("unjudged", 0))
    return m


def _report(ceiling_cpu: float, ceiling_loss: float) -> lb.Report:
    r = lb.Report("cmd", "date", "cpu", 2, "6.x", "3.11", 10, 2, 1.0, "pinned", "skipped (--no-et)")
    # UDP: the IPS judges 60k/s of 150k/s forwarded, fail-open passes 90k/s unjudged.
    r.results = [
        _m(lb.KERNEL, lb.UDP, 250_000, 0, None),
        _m(lb.CEILING, lb.UDP, 100_000, 1_000_000, ceiling_cpu, loss=ceiling_loss),
        _m(lb.IPS, lb.UDP, 200_000, 100, 0.01),
        _m(lb.IPS_JUDGED, lb.UDP, 150_000, 600_000, 10.0, forwarded=1_500_000, unjudged=900_000),
        _m(lb.IPS_W2, lb.UDP, 150_000, 660_000, 10.0, forwarded=1_500_000, unjudged=840_000),
        # Paced at 90k/s: one worker judges 60k/s of it, two judge all of it.
        _m(lb.IPS_JUDGED, lb.PACED, 90_000, 600_000, 10.0, forwarded=900_000, unjudged=300_000),
        _m(lb.IPS_W2, lb.PACED, 90_000, 900_000, 14.0, forwarded=900_000),
        _m(lb.KERNEL, lb.TCP, 10e9, 0, None),
        _m(lb.CEILING, lb.TCP, 1e9, 1_000_000, 10.0),
        _m(lb.IPS, lb.TCP, 9e9, 100, 0.1),
        # Two streams: one worker at 98% of a CPU carries 1 Gbit/s, two carry 1.6.
        _m(lb.IPS_JUDGED, lb.TCP2, 1e9, 850_000, 9.8),
        _m(lb.IPS_W2, lb.TCP2, 1.6e9, 1_360_000, 16.0),
        _m(lb.KERNEL, lb.HTTP, 3000, 0, None),
        _m(lb.CEILING, lb.HTTP, 2900, 300_000, 3.0),
    ]
    r.latencies = [
        lb.Latency(lb.KERNEL, 50_000, 50_000, 500_000, 500_000, 3.0, 5.0, 100.0),
        lb.Latency(lb.IPS_JUDGED, 50_000, 48_000, 480_000, 480_000, 303.0, 805.0, 2000.0),
        lb.Latency(lb.CEILING, 50_000, 49_000, 490_000, 490_000, 43.0, 1205.0, 3000.0),
    ]
    r.latency_rate = 50_000
    r.paced_rate = 90_000
    r.configs = {lb.IPS_ET: lb.ConfigInfo(lb.IPS_ET, skipped="skipped (--no-et)")}
    return r


def test_ratios_count_only_inspected_delivery() -> None:
    r = _report(ceiling_cpu=10.0, ceiling_loss=20.0)
    # 150k/s delivered, 60% of the forwarded packets unjudged: 60k/s inspected, 0.6 of the ceiling.
    assert r.ratio(lb.IPS_JUDGED, lb.UDP, lb.CEILING) == pytest.approx(0.6)
    assert r.ratio(lb.KERNEL, lb.UDP, lb.CEILING) == pytest.approx(2.5)
    assert r.ratio(lb.IPS, lb.TCP, lb.KERNEL) == pytest.approx(0.9)
    assert r.judged_ratio(lb.IPS_W2, lb.IPS_JUDGED) == pytest.approx(1.1)
    assert r.judged_ratio(lb.IPS_W2, lb.IPS_JUDGED, lb.PACED) == pytest.approx(1.5)
    # 1.5 x what one worker judged of the flood (60k/s), below 0.8 x kernel forwarding's 250k/s.
    assert r.choose_paced_rate() == pytest.approx(90_000)
    r.get(lb.KERNEL, lb.UDP).delivered_pps = 100_000  # type: ignore[union-attr]
    assert r.choose_paced_rate() == pytest.approx(80_000)
    assert r.added(lb.IPS_JUDGED) == (300.0, 800.0)


def test_targets_say_met_or_not_and_fall_back_to_cpu_per_packet_when_the_senders_limited() -> None:
    saturated = {t[:2]: (v, ok) for t, v, _, ok in _report(ceiling_cpu=10.0, ceiling_loss=20.0).targets()}
    assert saturated["1."] == ("0.600", False)
    assert saturated["2."] == ("-", None)  # no ET row
    assert saturated["3."] == ("0.900", True)
    assert saturated["4."] == ("800 µs", True)
    t4 = next(how for t, _, how, _ in _report(10.0, 20.0).targets() if t.startswith("4."))
    assert "the accept-all ceiling itself adds 1,200 µs" in t4
    # Two TCP streams decide; the paced UDP's 1.5 and the flood's 1.1 are quoted.
    assert saturated["5."] == ("1.600", True)
    t5 = next(how for t, _, how, _ in _report(10.0, 20.0).targets() if t.startswith("5."))
    assert "one worker's CPU 98%" in t5
    assert "paced at 90,000/s, packets/s judged: 1.500" in t5 and "unpaced UDP flood: 1.100" in t5
    slower = _report(10.0, 20.0)
    slower.get(lb.IPS_W2, lb.TCP2).bits_per_second = 0.9e9  # type: ignore[union-attr]
    assert [(v, ok) for t, v, _, ok in slower.targets() if t.startswith("5.")] == [("0.900", False)]
    # A ceiling with CPU to spare and no loss judged what the senders sent: compare CPU per packet
    # (ceiling 2 µs, the IPS 16.7 µs), not packets/s.
    limited = _report(ceiling_cpu=2.0, ceiling_loss=0.0)
    assert limited.ceiling_sender_limited()
    assert limited.per_core_ratio(lb.IPS_JUDGED) == pytest.approx(2.0 / (10.0 / 0.6))
    t1 = limited.targets()[0]
    assert "sender-limited" in t1[2]
    assert t1[3] is False


def test_a_router_process_that_falls_behind_with_cpu_to_spare_is_flagged() -> None:
    assert _report(ceiling_cpu=10.0, ceiling_loss=20.0).starved() == []  # saturated: its own limit
    assert _report(ceiling_cpu=2.0, ceiling_loss=0.0).starved() == []  # sender-limited: nothing lost
    r = _report(ceiling_cpu=3.3, ceiling_loss=62.9)  # measured while another test ran on its CPU
    (warning,) = r.starved()
    assert warning.startswith(lb.NAMES[lb.CEILING] + ", udp: 62.9% lost")
    assert "**Warning**" in r.markdown()


def test_markdown_has_a_table_per_load_latency_targets_and_the_command() -> None:
    md = _report(ceiling_cpu=10.0, ceiling_loss=20.0).markdown()
    assert md.startswith(lb.SECTION + "\n")
    for title in lb.LOAD_TITLES.values():
        assert f"### {title}" in md
    assert "### Latency at 50,000 datagrams/s asked (half the ceiling's UDP rate)" in md
    assert "- Command: `cmd`" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_JUDGED]} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:6] == ["150,000", "76.8", "0.0", "60,000", "60.0"]
    assert cells[6] == "0.600"  # ÷ ceiling
    assert cells[-2:] == ["16.7", "50"]  # CPU s/Mpkt, RSS MB
    assert "| 4. added latency p99 under 1 ms at half the ceiling's rate | 800 µs |" in md
    assert "### 64-byte UDP paced at 90,000 datagrams/s" in md
    paced = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_W2]} | 9"))
    assert [c.strip() for c in paced.strip("|").split("|")][4:7] == ["90,000", "0.0", "1.500"]
    tcp2 = md.split(f"### {lb.LOAD_TITLES[lb.TCP2]}: one worker and two")[1].split("###")[0]
    row2 = next(line for line in tcp2.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_W2]} |"))
    # Mbit/s, ..., judged pkt/s, unjudged %, ÷ 1 worker, router CPU %
    assert [c.strip() for c in row2.strip("|").split("|")][1:8] == [
        "1,600",
        "0",
        "-",
        "136,000",
        "0.0",
        "1.600",
        "160",
    ]
    assert f"{lb.NAMES[lb.IPS_ET]}: skipped (--no-et)" in md
    doc = lb.Report.to_json(_report(10.0, 20.0))
    assert json.loads(json.dumps(doc))["targets"][2]["met"] is True


def test_router_cpu_stalls_are_shown_beside_the_latency_they_explain() -> None:
    r = _report(10.0, 20.0)
    judged, kernel = r.lat(lb.IPS_JUDGED), r.lat(lb.KERNEL)
    assert judged is not None and kernel is not None
    judged.stalls, judged.stall_max_ms, judged.stalled_ms = 12, 8.5, 41.0
    kernel.stalls, kernel.stall_max_ms, kernel.stalled_ms = 7, 6.5, 20.0
    t4 = next(how for t, _, how, _ in r.targets() if t.startswith("4."))
    assert "the router's CPU stalled 12 times for 1 ms or more meanwhile (longest 8.5 ms, 41 ms in all)" in t4
    assert "and 7 times during kernel forwarding's run, with nothing on it" in t4
    md = r.markdown()
    row = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_JUDGED]} | 48,000"))
    assert [c.strip() for c in row.strip("|").split("|")][-3:] == ["12", "8.5", "41"]
    ceiling = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.CEILING]} | 49,000"))
    assert ceiling.rstrip().endswith("| - | - | - |")  # not probed (unpinned): no figure, not 0
    no_probe = _report(10.0, 20.0)
    assert "stalled" not in next(how for t, _, how, _ in no_probe.targets() if t.startswith("4."))


def _three_rounds() -> lb.Report:
    """_report's figures three times, the IPS's UDP unjudged share and p99 differing by round."""
    base = _report(ceiling_cpu=10.0, ceiling_loss=20.0)
    r = replace(base, results=[], latencies=[], rounds=3)
    # Unjudged 900k, 300k, 600k of 1.5M forwarded: 0.600, 1.200, 0.900 of the ceiling.
    for n, unjudged in ((1, 900_000), (2, 300_000), (3, 600_000)):
        for m in base.results:
            r.results.append(replace(m, round_no=n))
            if (m.config, m.load) == (lb.IPS_JUDGED, lb.UDP):
                r.results[-1].unjudged = unjudged
        for x in base.latencies:
            extra = 100.0 * n if x.config == lb.IPS_JUDGED else 0.0  # added p99 900, 1000, 1100 µs
            r.latencies.append(replace(x, round_no=n, p99_us=(x.p99_us or 0.0) + extra))
    return r


def test_over_rounds_each_target_is_the_round_with_the_median_figure() -> None:
    r = _three_rounds()
    t = {name[:2]: (v, how, ok) for name, v, how, ok in r.targets()}
    v, how, ok = t["1."]
    assert (v, ok) == ("0.900", True)
    assert "round 3 of 3" in how and "(by round: 0.600, 1.200, 0.900)" in how
    v, how, ok = t["4."]
    assert (v, ok) == ("1,000 µs", False)  # not under 1 ms
    assert "round 2 of 3" in how and "(by round: 900 µs, 1,000 µs, 1,100 µs)" in how
    assert t["2."][0] == "-" and "no round measured it" in t["2."][1]
    assert r.in_round(2).ratio(lb.IPS_JUDGED, lb.UDP, lb.CEILING) == pytest.approx(1.2)


def test_over_rounds_the_tables_give_medians_and_the_json_every_round() -> None:
    r = _three_rounds()
    md = r.markdown()
    assert "- Rounds: 3, each every configuration under every load in turn." in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_JUDGED]} | 150,000"))
    assert [c.strip() for c in row.strip("|").split("|")][5:7] == ["40.0", "0.900"]  # median unjudged
    lat = next(line for line in md.splitlines() if line.startswith(f"| {lb.NAMES[lb.IPS_JUDGED]} | 48,000"))
    assert [c.strip() for c in lat.strip("|").split("|")][3] == "1,005"  # median p99
    doc = json.loads(json.dumps(r.to_json()))
    ratios = [
        x["ratio_ceiling"] for x in doc["results"] if (x["config"], x["load"]) == (lb.IPS_JUDGED, lb.UDP)
    ]
    assert ratios == pytest.approx([0.6, 1.2, 0.9])  # each against its own round's ceiling
    assert [x["round_no"] for x in doc["latencies"]].count(2) == 3


def test_median_of_rounds_keeps_whole_numbers_and_merges_the_rest() -> None:
    a = _m(lb.IPS_W2, lb.UDP, 100.0, 10, 1.0)
    a.per_queue, a.blocked, a.error = {0: 10, 1: 20}, ["10.0.0.1"], ""
    b = replace(a, judged=13, per_queue={0: 30}, blocked=["10.0.0.2"], error="tool hung", round_no=2)
    c = replace(a, judged=20, cpu_seconds=None, error="tool hung", round_no=3)
    m = lb._median_of([a, b, c])
    assert (m.judged, m.cpu_seconds, m.round_no) == (13, 1.0, 0)  # cpu: median of the rounds with one
    assert m.per_queue == {0: 10, 1: 20} and m.blocked == ["10.0.0.1", "10.0.0.2"]
    assert m.error == "tool hung"


def test_arguments_quick_means_short_and_without_et() -> None:
    a = lb.parse_args(["--quick"])
    assert (a.seconds, a.no_et, a.rounds) == (lb.QUICK_SECONDS, True, 1)
    assert (lb.parse_args([]).seconds, lb.parse_args([]).rounds) == (lb.DEFAULT_SECONDS, lb.DEFAULT_ROUNDS)
    assert lb.parse_args(["--quick", "--rounds", "2"]).rounds == 2
    assert lb.parse_args(["--configs", "kernel,ceiling"]).configs == ["kernel", "ceiling"]
    with pytest.raises(SystemExit):
        lb.parse_args(["--configs", "kernel,bogus"])
    with pytest.raises(SystemExit):
        lb.parse_args(["--seconds", "0"])


# -- one real run ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_in_the_lab_writes_the_section_and_every_configuration_delivers(tmp_path: Path) -> None:
    require_root_netns()
    for tool in ("iperf3", "iptables-legacy", "ipset", "taskset"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    pytest.importorskip("netfilterqueue")
    prefix = f"t{os.getpid() % 100000}lb"
    md = tmp_path / "RESULTS.md"
    shutil.copy(ROOT / "bench" / "RESULTS.md", md)
    original = md.read_text(encoding="utf-8")
    js = tmp_path / "lab.json"
    cmd = [sys.executable, "-m", "bench.lab_bench", "--quick", "--no-et", "--seconds", "1"]
    cmd += ["--prefix", prefix, "--quiet", "--markdown", str(md), "--json", str(js)]
    try:
        cp = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    finally:
        assert not [n for n in list_netns() if n.startswith(prefix + "-")], "lab left behind"
    assert cp.returncode == 0, cp.stderr[-3000:]
    doc = json.loads(js.read_text(encoding="utf-8"))
    udp = {r["config"]: r for r in doc["results"] if r["load"] == lb.UDP}
    assert set(udp) == {lb.KERNEL, lb.CEILING, lb.IPS, lb.IPS_JUDGED, lb.IPS_W2}
    for key, r in udp.items():
        assert r["delivered_pps"] > 0, (key, r)
        if key in (lb.CEILING, lb.IPS_JUDGED, lb.IPS_W2):
            assert r["judged"] > 0, (key, r)  # every packet goes through the queue
    if len(os.sched_getaffinity(0)) >= 2:  # pinned: the router's CPU was probed for stalls
        assert all(x["stalls"] is not None for x in doc["latencies"]), doc["latencies"]
    text = md.read_text(encoding="utf-8")
    assert text.count(lb.SECTION) == 1
    before, _, section = text.partition(lb.SECTION)
    if lb.SECTION in original:
        # Everything outside the section is as it was.
        assert before == original.partition(lb.SECTION)[0]
        assert _after_section(text) == _after_section(original)
    else:
        assert text.startswith(original)
    assert f"| {lb.NAMES[lb.IPS_JUDGED]} |" in section
    assert "### Targets" in section
    assert "--quick --no-et --seconds 1" in section


def _after_section(text: str) -> str:
    """What follows the lab section: from the next level-2 heading on."""
    rest = text.partition(lb.SECTION)[2]
    i = rest.find("\n## ")
    return "" if i < 0 else rest[i:]
