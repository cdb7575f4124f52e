"""Hot reload under load, in the lab: no packet lost, never a half-loaded rule set.

Two rule sets of 300 signatures each: set A alerts on marker ``mkNNN;`` with
sid 3000000+NNN, set B on the same markers with sid 4000000+NNN. The client
sends a paced UDP stream through the router, one packet per source port
(so every EVE alert names its packet), carrying a sequence number and the
marker ``seq % 300``, while HTTP requests run beside it; the test swaps the
rules file between A and B and sends SIGHUP ten times, one of them with a
broken file. Then:

- the server received every sequence number and every HTTP request succeeded;
- every marker packet raised exactly one alert, from the rule for its marker:
  zero would mean a rule was missing (a half-loaded set), two that both sets
  were in force at once;
- ordered by sequence number, the set that judged switches exactly once per
  successful reload and never back and forth: a swap rule by rule, or a
  window with parts of both, would show more switches; the broken file
  switched nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips.lab import attacks, services
from inline_ips.lab.demo import running_ips, settle
from inline_ips.lab.topology import Lab, down, popen_in, up, wait_for
from tests.netns import require_root_netns

pytestmark = pytest.mark.slow

MARKERS = 300
PORT = 5999
FIRST_SRC_PORT = 20000
RATE = 800  # packets/s: well below one worker's capacity, so fail-open never hides a loss
SID_A = 3_000_000
SID_B = 4_000_000

SENDER = """
import socket, sys, time
dst, port, first, count, rate, markers = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
start = time.monotonic()
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", first + i))
    s.sendto(b"seq=%d;mk%03d;" % (i, i % markers), (dst, port))
    s.close()
    delay = start + (i + 1) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""

RECEIVER = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(30)
got = []
try:
    while True:
        data = s.recv(2048)
        got.append(int(data.split(b";")[0][4:]))
        s.settimeout(3)  # once the stream runs, 3 s of silence ends it
except socket.timeout:
    pass
print(json.dumps(got), flush=True)
"""


def rules(base: int, broken_at: int | None = None) -> str:
    lines = ["signatures:"]
    for k in range(MARKERS):
        extra = ", treshold: 3" if k == broken_at else ""
        lines.append(
            f'  - {{sid: {base + k}, msg: "marker {k} set {base}", proto: udp, dst_port: {PORT}, '
            f'payload: [{{content: "mk{k:03d};"}}]{extra}}}'
        )
    return "\n".join(lines) + "\n"


def reloads(log: Path) -> int:
    """Reloads the IPS has finished, well or not."""
    text = log.read_text()
    return text.count("reloaded") + text.count("reload failed")


def replace(path: Path, text: str) -> None:
    """As an operator's deploy would: write aside, rename over (the reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    lab = Lab(f"pv{os.getpid() % 100000}rl")
    up(lab)
    try:
        with services.running_services(lab):
            yield lab
    finally:
        down(lab)


def test_reload_under_load_loses_nothing_and_swaps_whole_sets(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules(SID_A))
    eve = tmp_path / "eve.json"
    log = tmp_path / "ips.log"
    # Ten reloads: B, A, B, broken (stays B), A, B, A, B, A, B.
    plan = [SID_B, SID_A, SID_B, None, SID_A, SID_B, SID_A, SID_B, SID_A, SID_B]
    count = RATE * 11
    http: list[attacks.Result] = []
    with running_ips(lab, path, eve, "--bypass-after", "0", "--stats-interval", "0", log=log) as ips:
        receiver = popen_in(lab, "server", [sys.executable, "-c", RECEIVER, str(PORT)], stdout=-1, stderr=-1)
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        sender = popen_in(
            lab,
            "client",
            [
                sys.executable,
                "-c",
                SENDER,
                lab.server_ip,
                str(PORT),
                str(FIRST_SRC_PORT),
                str(count),
                str(RATE),
                str(MARKERS),
            ],
        )
        stop = threading.Event()

        def browse() -> None:
            while not stop.is_set():
                http.append(attacks.http_gets(lab, 4, per_second=20))

        browser = threading.Thread(target=browse)
        browser.start()
        try:
            time.sleep(1.0)
            for base in plan:
                done = reloads(log)
                replace(path, rules(SID_B, broken_at=150) if base is None else rules(base))
                ips.send_signal(signal.SIGHUP)
                assert wait_for(lambda: reloads(log) > done, timeout=20), log.read_text()  # noqa: B023
                time.sleep(0.4)  # traffic judged by this generation before the next reload
            assert sender.wait(timeout=60) == 0
        finally:
            stop.set()
            browser.join(timeout=60)
            if sender.poll() is None:
                sender.kill()
        out, _ = receiver.communicate(timeout=60)
        settle(lab)
    text = log.read_text()
    assert text.count("reloaded") == 9 and text.count("reload failed") == 1, text

    got = json.loads(out.strip().splitlines()[-1])
    missing = sorted(set(range(count)) - set(got))
    assert not missing, f"{len(missing)} of {count} packets lost, first {missing[:10]}"
    assert sum(r.succeeded for r in http) == sum(r.sent for r in http) > 0

    alerts: dict[int, list[int]] = {}
    for line in eve.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("event_type") == "alert" and ev.get("dest_port") == PORT:
            alerts.setdefault(ev["src_port"] - FIRST_SRC_PORT, []).append(ev["alert"]["signature_id"])
    generations = []
    for seq in range(count):
        sids = alerts.get(seq, [])
        assert len(sids) == 1, f"packet {seq} raised {sids}: a rule set was not whole"
        sid = sids[0]
        base = SID_A if sid < SID_B else SID_B
        assert sid - base == seq % MARKERS, f"packet {seq} matched the wrong rule {sid}"
        generations.append(base)
    switches = [seq for seq in range(1, count) if generations[seq] != generations[seq - 1]]
    assert generations[0] == SID_A and generations[-1] == SID_B
    assert len(switches) == 9, f"the rule set switched at packets {switches} (9 swaps were loaded)"


def _workers(supervisor: int) -> list[int]:
    """The worker processes of an ``inline-ips run --workers N``: the supervisor's children."""
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in out.stdout.split()]


def _marker_alerts(lab: Lab, eve: Path, first_port: int, count: int) -> list[int]:
    """Send ``count`` marker datagrams (one per source port from ``first_port``); the sids they raised."""
    argv = [sys.executable, "-c", SENDER, lab.server_ip, str(PORT), str(first_port), str(count), "200"]
    sender = popen_in(lab, "client", [*argv, str(MARKERS)])
    assert sender.wait(timeout=30) == 0
    settle(lab)
    sids = []
    for line in eve.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("event_type") == "alert" and first_port <= ev.get("src_port", 0) < first_port + count:
            sids.append(ev["alert"]["signature_id"])
    return sids


def test_a_restarted_worker_judges_with_the_rules_on_disk(lab: Lab, tmp_path: Path) -> None:
    """A worker the supervisor restarts reloads the rule files, as SIGHUP would, not the start-up set."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules(SID_A))
    eve = tmp_path / "eve.json"
    log = tmp_path / "ips.log"
    extra = ("--workers", "2", "--bypass-after", "0", "--stats-interval", "0")

    def logged(text: str, n: int) -> bool:
        return log.read_text().count(text) == n

    with running_ips(lab, path, eve, *extra, log=log) as ips:
        assert wait_for(lambda: logged("judging packets", 2), timeout=30), log.read_text()
        replace(path, rules(SID_B))
        ips.send_signal(signal.SIGHUP)
        assert wait_for(lambda: logged("reloaded", 2), timeout=30), log.read_text()
        workers = _workers(ips.pid)
        assert len(workers) == 2, workers
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(
            lambda: (
                logged("restarted; reloading", 2) and logged("judging packets", 4) and logged("reloaded", 4)
            ),
            timeout=30,
        ), log.read_text()
        sids = _marker_alerts(lab, eve, FIRST_SRC_PORT, 20)
        # Every marker raised one alert, from set B: the start-up set A would be a silent rollback.
        assert sorted(sids) == [SID_B + k for k in range(20)], sids

        # Files that do not load now: the restarted workers keep judging, with the start-up rules.
        replace(path, rules(SID_B, broken_at=150))
        for pid in _workers(ips.pid):
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: logged("judging packets", 6) and logged("reload failed", 2), timeout=30), (
            log.read_text()
        )
        sids = _marker_alerts(lab, eve, FIRST_SRC_PORT + 100, 20)
        assert sorted(sids) == [SID_A + k for k in range(20)], sids
        assert ips.poll() is None
