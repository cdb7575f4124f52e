"""Each lab traffic function runs its tool and reports what happened, without the IPS.

Parsers are checked on captured tool output first (no root needed); then each
function runs for real, with small counts, in one lab (prefix ``t<pid>atk``)
shared by the module and always torn down. The rate checks pin down that the
attacks exceed the default rules' thresholds clearly and the benign traffic
stays far below them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from inline_ips.lab import attacks, services, topology
from inline_ips.lab.topology import Lab
from tests.netns import require_root_netns

TOOLS = ("hping3", "nmap", "curl", "dig", "iperf3", "iptables-legacy", "ss", "timeout")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"lab needs {', '.join(missing)}")
    with topology.running_lab(Lab(f"t{os.getpid()}atk")) as the_lab, services.running_services(the_lab):
        yield the_lab


def ok(res: attacks.Result) -> None:
    assert not res.timed_out, res.output
    assert res.seconds > 0


# ---- parsers on captured output (no root needed) -----------------------------------

HPING_OUT = """HPING 10.77.3.80 (t1-a0 10.77.3.80): S set, 40 headers + 0 data bytes

--- 10.77.3.80 hping statistic ---
20000 packets tramitted, 17769 packets received, 12% packet loss
round-trip min/avg/max = 0.0/0.9/7.7 ms
"""

NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -n -sS -p1-1000 10.77.3.80">
<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>
<host><status state="up" reason="echo-reply" reason_ttl="63"/>
<address addr="10.77.3.80" addrtype="ipv4"/>
<ports><extraports state="closed" count="998"/>
<port protocol="tcp" portid="53"><state state="open" reason="syn-ack" reason_ttl="63"/></port>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="63"/></port>
<port protocol="tcp" portid="81"><state state="filtered" reason="no-response" reason_ttl="0"/></port>
</ports></host>
<host><status state="down" reason="no-response" reason_ttl="0"/>
<address addr="10.77.3.9" addrtype="ipv4"/></host>
<runstats><finished time="1" elapsed="0.13" exit="success"/><hosts up="1" down="1" total="2"/></runstats>
</nmaprun>
"""


def test_parse_hping() -> None:
    assert attacks.parse_hping(HPING_OUT) == (20000, 17769)
    assert attacks.parse_hping("hping3: can't open raw socket") == (0, 0)


def test_parse_nmap_xml() -> None:
    rep = attacks.parse_nmap_xml(NMAP_XML)
    assert rep.hosts_total == 2
    assert rep.hosts_up == ["10.77.3.80"]
    assert rep.ports_scanned == 1000
    assert rep.open_ports == ["tcp/53", "tcp/80"]
    assert rep.elapsed == pytest.approx(0.13)
    assert attacks.parse_nmap_xml("") == attacks.NmapReport(0, [], 0, [], 0.0)


def test_parse_http_codes_and_dig() -> None:
    assert attacks.parse_http_codes("200\n404\n000\n") == [200, 404, 0]
    dig = "a.lab.test.\t\t60\tIN\tA\t10.77.3.80\n;; connection timed out\nb.lab.test. 60 IN AAAA fd77:3::80\n"
    assert attacks.parse_dig_answers(dig) == [
        ("a.lab.test", "A", "10.77.3.80"),
        ("b.lab.test", "AAAA", "fd77:3::80"),
    ]


def test_amplification_packets_are_valid_fragmented_dns_answers() -> None:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, UDP, defragment

    answers = attacks.amplification_packets("10.77.3.80", 3, size=3000)
    assert len(answers) == 3
    sources = set()
    for frags in answers:
        assert [len(f) for f in frags] == [1500, 1500, 40]
        pkts = [IP(f) for f in frags]
        for p in pkts:
            fresh = p.copy()
            del fresh.chksum
            assert IP(bytes(fresh)).chksum == p.chksum  # IP header checksum is right
        whole = defragment(pkts)  # type: ignore[no-untyped-call]
        assert len(whole) == 1
        ip = IP(bytes(whole[0]))
        assert len(ip) == 3000 and ip.dst == "10.77.3.80" and ip[UDP].sport == 53
        again = ip.copy()
        del again[UDP].chksum
        assert IP(bytes(again))[UDP].chksum == ip[UDP].chksum  # UDP checksum is right
        assert ip[DNS].qr == 1 and ip[DNS].ancount > 1
        assert ip.src.startswith(("198.18.", "198.19."))
        sources.add(ip.src)
    assert len(sources) == 3
    fixed = attacks.amplification_packets("10.77.3.80", 2, size=1000, src="10.77.2.66")
    assert all(len(f) == 1 and IP(f[0]).src == "10.77.2.66" for f in fixed)


def test_ping_sweep_refuses_targets_outside_the_lab() -> None:
    with pytest.raises(ValueError):
        attacks.ping_sweep(Lab(), "192.0.2.0/24")


# ---- live runs ---------------------------------------------------------------------


def test_dns_amp_entry_point_refuses_targets_outside_the_lab(lab: Lab) -> None:
    # Inside the attacker namespace, so not even a bug could reach the host's network.
    cp = topology.exec_in(
        lab,
        "attacker",
        [sys.executable, "-m", "inline_ips.lab.attacks", "dns-amp", "--dst", "192.0.2.1", "--count", "1"],
        env={**os.environ, "PYTHONPATH": attacks._PROJECT_ROOT},
    )
    assert cp.returncode == 2
    assert "lab address" in cp.stderr


def test_http_gets(lab: Lab) -> None:
    res = attacks.http_gets(lab, 10)
    ok(res)
    assert (res.sent, res.succeeded, res.returncode) == (10, 10, 0)
    assert res.details == ("200",) * 10
    assert res.rate < 100  # paced at 50/s: far below 500 SYNs/s from one source


def test_dns_queries(lab: Lab) -> None:
    res = attacks.dns_queries(lab, 10)
    ok(res)
    assert (res.sent, res.succeeded, res.returncode) == (10, 10, 0)
    assert res.details[0] == "host1.lab.test"


def test_bulk_download(lab: Lab) -> None:
    res = attacks.bulk_download(lab)
    ok(res)
    assert (res.sent, res.succeeded, res.nbytes) == (1, 1, services.BULK_BYTES)
    assert res.details == ("http 200",)


def test_iperf(lab: Lab) -> None:
    res = attacks.iperf(lab, seconds=1)
    ok(res)
    assert res.succeeded == 1 and res.nbytes > 1_000_000


def test_syn_flood(lab: Lab) -> None:
    res = attacks.syn_flood(lab, count=5000)
    ok(res)
    assert res.sent == 5000
    assert res.succeeded >= 4900  # SYN-ACKs from the listening web server
    assert res.details[0].startswith("hping3 counted ")
    assert res.returncode in (0, 1)  # hping3 exits 1 when it counted no replies
    assert res.rate > 2 * 2000  # start-up included, still far above 2000 SYNs/s to one host
    assert "hping3" in res.argv and "-c" in res.argv and "--flood" not in res.argv


def test_spoofed_syn_flood(lab: Lab) -> None:
    res = attacks.syn_flood(lab, count=3000, spoofed=True)
    ok(res)
    assert (res.sent, res.succeeded) == (3000, 0)  # replies go to the forged sources
    assert "--rand-source" in res.argv


def test_icmp_flood(lab: Lab) -> None:
    res = attacks.icmp_flood(lab, count=3000)
    ok(res)
    assert res.sent == 3000 and res.succeeded >= 2900
    assert res.rate > 2 * 500


def test_port_scan(lab: Lab) -> None:
    res = attacks.port_scan(lab)
    ok(res)
    assert res.returncode == 0
    assert res.sent == 1000
    assert res.details == ("tcp/53", "tcp/80")
    assert res.succeeded == 2
    assert res.rate > 25 / 10  # 1000 ports in well under 10 s


@pytest.mark.slow  # nmap waits for 253 silent addresses: ~4 s
def test_ping_sweep(lab: Lab) -> None:
    res = attacks.ping_sweep(lab)
    ok(res)
    assert res.sent == 256
    assert set(res.details) == {lab.gateway("server"), lab.server_ip}
    assert res.seconds < 10  # > 30 hosts within 10 s


def test_sqli_and_path_traversal(lab: Lab) -> None:
    res = attacks.sqli(lab)
    ok(res)
    assert (res.sent, res.succeeded, res.details) == (1, 1, ("200",))
    trav = attacks.path_traversal(lab)
    ok(trav)
    # The query-string form gets index.html; http.server refuses ../ in the path.
    assert (trav.sent, trav.succeeded, trav.details) == (2, 2, ("200", "404"))
    assert "--path-as-is" in trav.argv


def test_dns_amplification(lab: Lab) -> None:
    res = attacks.dns_amplification(lab, count=100)
    ok(res)
    assert (res.returncode, res.sent, res.succeeded) == (0, 100, 100)
    assert res.nbytes == 100 * (1500 + 1500 + 40)
    assert res.details[0] == "300 fragments"
    send_seconds = float(res.details[1].split()[2])
    assert res.nbytes / max(send_seconds, 1e-3) > 2 * 500_000  # bytes/s of answers vs 500 KB/s
    unspoofed = attacks.dns_amplification(lab, count=5, spoofed=False)
    assert unspoofed.sent == 5 and unspoofed.argv[-2:] == ("--src", lab.attacker_ip)


def test_results_name_the_tool_and_bound_it(lab: Lab) -> None:
    res = attacks.sqli(lab)
    assert res.argv[:5] == ("ip", "netns", "exec", lab.ns("attacker"), "timeout")
    assert (
        subprocess.run(
            ["ip", "netns", "pids", lab.ns("attacker")], capture_output=True, text=True, check=True
        ).stdout
        == ""
    )
