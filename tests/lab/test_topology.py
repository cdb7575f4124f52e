"""The namespace lab without the IPS: it builds, serves, carries attacks, and goes away.

The attack counters measured here are the baseline the IPS tests compare
against: with nothing in the router, every attack reaches the server. The
live tests share one lab (prefix ``t<pid>lab``) torn down after the module;
a few tests build their own short-lived labs to check teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.lab import attacks, services, topology
from inline_ips.lab.topology import Lab
from tests.netns import require_root_netns

TOOLS = ("hping3", "nmap", "curl", "dig", "iperf3", "iptables-legacy", "ss", "timeout")
ROOT = Path(__file__).resolve().parents[2]


def require_lab() -> None:
    require_root_netns()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"lab needs {', '.join(missing)}")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()
    with topology.running_lab(Lab(f"t{os.getpid()}lab")) as the_lab, services.running_services(the_lab):
        yield the_lab


def delta(lab: Lab, before: dict[str, int]) -> dict[str, int]:
    time.sleep(0.2)  # the last packets of a burst are still in flight when the tool exits
    return services.counters_delta(before, services.server_counters(lab))


# ---- names and addresses (no root needed) ------------------------------------


def test_names_and_addresses() -> None:
    lab = Lab()
    assert lab.namespaces == ("iips-client", "iips-attacker", "iips-router", "iips-server")
    assert (lab.client_ip, lab.attacker_ip, lab.server_ip) == ("10.77.1.10", "10.77.2.66", "10.77.3.80")
    assert [lab.gateway(leaf) for leaf in topology.LEAVES] == ["10.77.1.1", "10.77.2.1", "10.77.3.1"]
    assert lab.ip6("server") == "fd77:3::80"
    assert lab.gateway6("attacker") == "fd77:2::1"
    assert (lab.leaf_iface("client"), lab.router_iface("server")) == ("iips-c0", "iips-rs")
    longest = Lab("p" * 12)
    names = [longest.leaf_iface(leaf) for leaf in topology.LEAVES]
    names += [longest.router_iface(leaf) for leaf in topology.LEAVES]
    assert max(len(n) for n in names) <= 15


@pytest.mark.parametrize("prefix", ["", "a-b", "p" * 13, "x y", "../x"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        Lab(prefix)


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError):
        Lab().ns("outside")
    with pytest.raises(ValueError):
        Lab().ip("router")


# ---- the DNS server's answers and the counters' parsers (no root needed) -------


def _query(name: str, qtype: int, qid: int = 0x1234, flags: int = 0x0100) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!6H", qid, flags, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def test_dns_answers_a_and_aaaa_in_the_lab_zone() -> None:
    from scapy.layers.dns import DNS

    ans = services.dns_answer(_query("www.Lab.Test", 1))
    assert ans is not None
    resp, qname, qtype = ans
    assert (qname, qtype) == ("www.lab.test", 1)
    d = DNS(resp)
    assert (d.id, d.qr, d.aa, d.rd, d.rcode, d.ancount) == (0x1234, 1, 1, 1, 0, 1)
    assert d.an[0].rdata == "10.77.3.80"
    aaaa = services.dns_answer(_query("x.lab.test", 28))
    assert aaaa is not None
    assert DNS(aaaa[0]).an[0].rdata == "fd77:3::80"


def test_dns_refuses_other_zones_and_ignores_responses() -> None:
    from scapy.layers.dns import DNS

    ans = services.dns_answer(_query("example.com", 1))
    assert ans is not None
    assert (DNS(ans[0]).rcode, DNS(ans[0]).ancount) == (5, 0)
    assert services.dns_answer(_query("a.lab.test", 1, flags=0x8180)) is None  # a response
    assert services.dns_answer(b"\x00" * 5) is None
    assert services.dns_answer(_query("a.lab.test", 1)[:-3]) is None  # truncated question


def test_parse_counter_table_and_http_log() -> None:
    table = (
        "Chain IIPS_COUNT (1 references)\n"
        "    pkts      bytes target     prot opt in     out     source               destination\n"
        "   20000   800000            6    --  *      *       0.0.0.0/0            0.0.0.0/0"
        "            tcp dpt:80 flags:0x17/0x02 /* tcp_syn_80 */\n"
        "       3       84            1    --  *      *       0.0.0.0/0            0.0.0.0/0"
        "            icmptype 8 /* icmp_echo */\n"
    )
    assert services.parse_counter_table(table) == {
        "tcp_syn_80": 20000,
        "tcp_syn_80_bytes": 800000,
        "icmp_echo": 3,
        "icmp_echo_bytes": 84,
    }
    log = (
        '10.77.1.10 "GET /index.html?n=1 HTTP/1.1" 200 -\n'
        '10.77.2.66 "GET /?id=1%20UNION%20SELECT%20user,password%20FROM%20users-- HTTP/1.1" 200 -\n'
        "10.77.2.66 code 404, message File not found\n"
        '10.77.2.66 "GET /../../../../etc/passwd HTTP/1.1" 404 -\n'
        '10.77.2.66 "GET /?page=..%2f..%2fetc%2fshadow HTTP/1.1" 200 -\n'
        '10.77.1.10 "GET /blog/how-to-select-a-union-rep HTTP/1.1" 404 -\n'
    )
    assert services.parse_http_log(log) == {"http_requests": 5, "http_sqli": 1, "http_traversal": 2}


# ---- the live lab ---------------------------------------------------------------


def test_lab_is_up_and_the_host_untouched(lab: Lab) -> None:
    assert topology.exists(lab)
    fwd = topology.exec_in(lab, "router", ["sysctl", "-n", "net.ipv4.ip_forward"], check=True)
    assert fwd.stdout.strip() == "1"
    for leaf in topology.LEAVES:
        key = f"net.ipv4.conf.{lab.router_iface(leaf)}.rp_filter"
        assert topology.exec_in(lab, "router", ["sysctl", "-n", key], check=True).stdout.strip() == "0"
    assert (
        topology.exec_in(lab, "router", ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.strip() == "0"
    )
    # Every veth was made inside the lab: none of its names exists in the host namespace.
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"{lab.prefix}-" not in host_links


def test_client_reaches_server_over_http_and_dns(lab: Lab) -> None:
    gets = attacks.http_gets(lab, 5)
    assert (gets.sent, gets.succeeded, gets.returncode) == (5, 5, 0)
    dns = attacks.dns_queries(lab, 5)
    assert (dns.sent, dns.succeeded) == (5, 5)
    tcp = topology.exec_in(lab, "client", ["dig", f"@{lab.server_ip}", "+tcp", "+short", "a.lab.test"])
    assert tcp.stdout.split() == [lab.server_ip]
    refused = topology.exec_in(lab, "client", ["dig", f"@{lab.server_ip}", "example.com"])
    assert "status: REFUSED" in refused.stdout
    v6 = topology.exec_in(
        lab,
        "client",
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://[{lab.ip6('server')}]/"],
    )
    assert v6.stdout == "200"
    c = services.server_counters(lab)
    assert c["http_requests"] >= 6
    assert c["dns_queries"] >= 7


def test_syn_flood_reaches_the_server(lab: Lab) -> None:
    before = services.server_counters(lab)
    res = attacks.syn_flood(lab, count=5000)
    d = delta(lab, before)
    assert res.sent == 5000
    assert d["tcp_syn_80"] >= 4900
    assert d["from_attacker"] >= 4900


def test_spoofed_syn_flood_reaches_the_server_from_many_sources(lab: Lab) -> None:
    before = services.server_counters(lab)
    res = attacks.syn_flood(lab, count=5000, spoofed=True)
    d = delta(lab, before)
    assert res.sent == 5000
    # The router forwards forged sources (rp_filter=0) except the martians
    # Linux never routes (0/8, 127/8, 224/3): about 13 % of random addresses.
    assert d["tcp_syn_80"] >= 4000
    assert d["from_attacker"] == 0


@pytest.mark.slow  # nmap waits for 253 silent addresses: ~4 s
def test_icmp_flood_and_scans_reach_the_server(lab: Lab) -> None:
    before = services.server_counters(lab)
    attacks.icmp_flood(lab, count=2000)
    d = delta(lab, before)
    assert d["icmp_echo"] >= 1950
    before = services.server_counters(lab)
    scan = attacks.port_scan(lab)
    d = delta(lab, before)
    assert d["tcp_syn_other"] >= 990  # 999 ports besides 80, no retries
    assert {"tcp/53", "tcp/80"} <= set(scan.details)
    before = services.server_counters(lab)
    sweep = attacks.ping_sweep(lab)
    d = delta(lab, before)
    assert d["icmp_echo"] >= 1
    assert lab.server_ip in sweep.details


def test_web_attacks_reach_the_server(lab: Lab) -> None:
    before = services.server_counters(lab)
    attacks.sqli(lab)
    attacks.path_traversal(lab)
    d = delta(lab, before)
    assert (d["http_sqli"], d["http_traversal"], d["http_requests"]) == (1, 2, 3)


def test_dns_amplification_reaches_the_server(lab: Lab) -> None:
    before = services.server_counters(lab)
    res = attacks.dns_amplification(lab, count=100)
    d = delta(lab, before)
    assert res.sent == 100
    assert d["udp_from_53"] == 100  # reassembled: one per 3,000-byte answer
    assert d["udp_from_53_bytes"] == 100 * 3000
    assert d["from_attacker"] == 0  # forged resolver addresses


def test_reset_counters(lab: Lab) -> None:
    attacks.http_gets(lab, 2)
    services.reset_counters(lab)
    c = services.server_counters(lab)
    assert c["http_requests"] == 0
    assert c["tcp_syn_80"] == 0


# ---- teardown ---------------------------------------------------------------------


def test_up_is_idempotent_and_down_removes_everything() -> None:
    require_lab()
    lab = Lab(f"t{os.getpid()}dn")
    try:
        topology.up(lab)
        topology.up(lab)  # tears the first one down
        assert topology.exists(lab)
        stray = topology.popen_in(lab, "router", ["sleep", "60"])
        lab.workdir.mkdir(exist_ok=True)
        topology.down(lab)
        assert stray.wait(timeout=10) == -signal.SIGKILL
        assert topology.leftovers(lab) == []
        assert not topology.exists(lab)
        assert not lab.workdir.exists()
        topology.down(lab)  # safe when nothing is left
    finally:
        topology.down(lab)


def test_running_lab_tears_down_on_error() -> None:
    require_lab()
    lab = Lab(f"t{os.getpid()}er")
    with pytest.raises(RuntimeError, match="boom"), topology.running_lab(lab):
        assert topology.exists(lab)
        raise RuntimeError("boom")
    assert topology.leftovers(lab) == []


def test_running_lab_tears_down_on_sigterm() -> None:
    require_lab()
    lab = Lab(f"t{os.getpid()}st")
    code = (
        "import sys, time\n"
        "from inline_ips.lab.topology import Lab, running_lab\n"
        "with running_lab(Lab(sys.argv[1])):\n"
        "    print('up', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, lab.prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        assert topology.exists(lab)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.returncode != 0
        assert topology.leftovers(lab) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.communicate()
        topology.down(lab)
