"""Least privilege: the drop itself (inline_ips/privilege.py) and ``inline-ips run`` without root.

The unit tests drop privileges for real, in a forked child, and read the
child's ``/proc/<pid>/status`` from outside. The lab test runs the IPS in a
lab router two ways, (a) started unprivileged by ``setpriv`` as systemd
would (user ``nobody``, ambient and bounding sets CAP_NET_ADMIN and
CAP_NET_RAW, no new privileges) and (b) started as root with ``--user
nobody``, and checks in both: every process of it runs as nobody holding
exactly those two capabilities; an attack is still dropped and its source
blocked in the ipset; reject still sends its RST; the exporter answers on
127.0.0.1 only and still reads the kernel's counters; a SIGHUP reload
works; no file it wrote is world-writable; and at exit it removes its rules.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inline_ips import privilege
from inline_ips.lab import attacks, services
from inline_ips.lab.demo import attacker_blocked, ips_ready, settle, unblock_attacker
from inline_ips.lab.topology import Lab, down, exec_in, popen_in, stop, up, wait_for
from inline_ips.privilege import KEEP, PrivilegeError
from tests.corpus import DEFAULT_RULES, ROOT
from tests.netns import require_root_netns

NOBODY = "nobody"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (dropping privileges)")


def in_child(fn: object) -> tuple[int, str]:
    """Run ``fn()`` in a forked child; (exit status, what it wrote to the pipe). Status 0: it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(r)
        code = 0
        try:
            out = str(fn())  # type: ignore[operator]
        except BaseException as e:
            out, code = f"{type(e).__name__}: {e}", 3
        os.write(w, out.encode())
        os._exit(code)
    os.close(w)
    chunks = []
    while data := os.read(r, 65536):
        chunks.append(data)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def test_parse_status_reads_this_process() -> None:
    creds = privilege.read_credentials()
    assert creds.uids[1] == os.geteuid()
    assert creds.gids[1] == os.getegid()
    assert creds.bounding != 0  # every process has a bounding set


def test_parse_status_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="status"):
        privilege.parse_status("Name:\tx\nUid:\t0\t0\n")


def test_cap_names() -> None:
    assert privilege.cap_names(KEEP) == "CAP_NET_ADMIN,CAP_NET_RAW"
    assert privilege.cap_names(0) == "none"
    assert privilege.cap_names(1 << 21) == "cap21"


def test_lookup_user_refuses_unknown_and_root() -> None:
    with pytest.raises(PrivilegeError, match="no such user"):
        privilege.lookup_user("no-such-user-pv")
    with pytest.raises(PrivilegeError, match="root"):
        privilege.lookup_user("root")


def test_verify_names_what_is_left() -> None:
    """The check that refuses to go on: root's own credentials are far from 'nobody with two caps'."""
    require_root()
    problems = privilege.verify(privilege.read_credentials(), 65534, 65534)
    assert any("uids" in p for p in problems)
    assert any("effective" in p for p in problems)
    assert any("bounding" in p for p in problems)


def test_drop_to_keeps_exactly_net_admin_and_net_raw() -> None:
    require_root()
    user = privilege.lookup_user(NOBODY)

    def child() -> str:
        privilege.drop_to(user)
        # Read back by a fresh look at /proc, and by what the kernel now refuses and allows.
        try:
            open("/etc/shadow").close()  # root's 0640 file: DAC override is gone
            shadow = "readable"
        except PermissionError:
            shadow = "refused"
        import socket

        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()  # CAP_NET_RAW kept
        try:
            os.setuid(0)
            back = "root again"
        except PermissionError:
            back = "stays"
        return f"{shadow} {back}"

    code, out = in_child(child)
    assert code == 0, out
    assert out == "refused stays"


def test_drop_to_result_seen_from_outside() -> None:
    """The parent reads the dropped child's /proc/<pid>/status: the kernel's word, not the child's."""
    require_root()
    user = privilege.lookup_user(NOBODY)
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(go_w)
        try:
            privilege.drop_to(user)
            os.write(w, b"ok")
        except BaseException as e:
            os.write(w, str(e).encode())
        os.read(go_r, 1)  # stay alive until the parent has looked
        os._exit(0)
    os.close(w)
    os.close(go_r)
    try:
        assert os.read(r, 4096) == b"ok"
        creds = privilege.read_credentials(pid)
        assert set(creds.uids) == {user.uid}
        assert set(creds.gids) == {user.gid}
        assert creds.groups == ()
        assert creds.effective == creds.permitted == creds.bounding == KEEP
        assert creds.ambient == creds.inheritable == 0
        assert creds.no_new_privs
    finally:
        os.write(go_w, b"x")
        os.waitpid(pid, 0)


def test_drop_to_refuses_with_a_second_thread() -> None:
    """capset() is per thread: dropping with another thread alive would leave it privileged."""
    require_root()
    user = privilege.lookup_user(NOBODY)

    def child() -> str:
        gate = threading.Event()
        t = threading.Thread(target=gate.wait, daemon=True)
        t.start()
        try:
            privilege.drop_to(user)
            return "dropped"
        except PrivilegeError as e:
            return f"refused ({os.geteuid()}): {e}"
        finally:
            gate.set()

    code, out = in_child(child)
    assert code == 0, out
    assert out.startswith("refused (0): cannot drop privileges with 2 threads"), out


def test_check_capabilities_names_what_is_missing() -> None:
    """An unprivileged start without the two capabilities is refused with their names."""
    require_root()
    user = privilege.lookup_user(NOBODY)

    def child() -> str:
        os.setgroups([])
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)  # no keepcaps: every capability goes
        try:
            privilege.check_capabilities()
            return "accepted"
        except PrivilegeError as e:
            return str(e)

    code, out = in_child(child)
    assert code == 0, out
    assert "missing CAP_NET_ADMIN,CAP_NET_RAW" in out


# -- inline, in the lab --------------------------------------------------------------------------

REJECT_RULE = """
  - {sid: 9100001, msg: "reject test", proto: http, action: reject, http.uri: [{content: "/reject-me"}]}
"""


SETPRIV = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={pwd.getpwnam(NOBODY).pw_gid}",
    "--clear-groups",
    "--inh-caps=-all,+net_admin,+net_raw",
    "--ambient-caps=-all,+net_admin,+net_raw",
    "--bounding-set=-all,+net_admin,+net_raw",
    "--no-new-privs",
]


def unprivileged_python() -> list[str]:
    """An interpreter (and environment) with which ``nobody`` can import inline_ips.

    This venv's interpreter may live under a home directory nobody cannot
    read (here: /root/.pyenv); the system python3 of the same minor version
    with the venv's site-packages on the path runs the same code.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(sys.prefix) / "lib" / f"python{version}" / "site-packages"
    env = ["env", f"PYTHONPATH={site}:{ROOT}"]
    probe = "import socket, ctypes, multiprocessing.popen_fork, iptc, inline_ips.runner"
    for python in (sys.executable, f"/usr/bin/python{version}"):
        argv = [*env, python]
        ok = subprocess.run(
            [*SETPRIV[:4], *argv, "-c", probe],
            capture_output=True,
            check=False,
            cwd="/",
            timeout=60,
        )
        if ok.returncode == 0:
            return argv
    pytest.skip("no Python interpreter that user nobody can run with inline_ips importable")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    lab = Lab(f"pv{os.getpid() % 100000}pr")
    up(lab)
    try:
        with services.running_services(lab):
            yield lab
    finally:
        down(lab)


def ours_left(lab: Lab) -> list[str]:
    out = []
    for cmd in (["iptables-legacy-save"], ["ip6tables-legacy-save"], ["ipset", "list", "-n"]):
        text = exec_in(lab, "router", cmd).stdout
        out += [line for line in text.splitlines() if "INLINE_IPS" in line or "inline_ips" in line]
    return out


def ips_pids(lab: Lab, top: int) -> list[int]:
    """The IPS process and its workers (the router namespace's processes descending from ``top``)."""
    listed = subprocess.run(
        ["ip", "netns", "pids", lab.ns("router")], capture_output=True, text=True, check=False
    )
    pids = [int(p) for p in listed.stdout.split()]
    family = {top}
    changed = True
    while changed:
        changed = False
        for pid in pids:
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in family and pid not in family:
                family.add(pid)
                changed = True
    return sorted(p for p in family if "inline_ips" in Path(f"/proc/{p}/cmdline").read_text(errors="replace"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["setpriv", "--user"])
def test_run_unprivileged_keeps_only_net_admin_and_net_raw(lab: Lab, how: str) -> None:
    python = unprivileged_python()
    nobody = pwd.getpwnam(NOBODY)
    work = Path(f"/tmp/pv-priv-{os.getpid()}-{how.strip('-')}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o750)
    os.chown(work, nobody.pw_uid, nobody.pw_gid)  # the user's own log directory
    try:
        rules = work / "rules.yaml"
        text = DEFAULT_RULES.read_text()
        assert "\nsignatures:\n" in text
        rules.write_text(text.replace("\nsignatures:\n", "\nsignatures:\n" + REJECT_RULE.lstrip("\n"), 1))
        rules.chmod(0o644)
        eve = work / "eve.json"
        log = work / "ips.log"
        run = [*python, "-m", "inline_ips", "run", "--rules", str(rules), "--eve", str(eve), "--workers", "2"]
        argv = [*SETPRIV, *run] if how == "setpriv" else [*run, "--user", NOBODY]
        with open(log, "w") as out:
            proc = popen_in(lab, "router", argv, stdout=out, stderr=subprocess.STDOUT, cwd="/")
            try:
                assert wait_for(lambda: ips_ready(lab, queues=2) or proc.poll() is not None, timeout=30)
                assert proc.poll() is None, log.read_text()
                assert wait_for(lambda: "queue 1: judging" in log.read_text(), timeout=20), log.read_text()
                check_running_unprivileged(lab, proc, nobody.pw_uid, log)
                check_it_still_protects(lab, log, queue_file_readable=how == "--user")
                proc.send_signal(signal.SIGHUP)
                assert wait_for(lambda: log.read_text().count("reloaded") >= 2, timeout=30), log.read_text()
            finally:
                stop(proc)
        text = log.read_text()
        assert proc.returncode == 0, text
        assert "firewall rules removed" in text
        assert "Traceback" not in text and "ERROR" not in text, text
        assert ours_left(lab) == [], "the unprivileged IPS left rules behind"
        for path in work.iterdir():
            mode = path.stat().st_mode
            assert not mode & stat.S_IWOTH, f"{path} is world-writable ({stat.filemode(mode)})"
        assert eve.stat().st_uid == nobody.pw_uid
        assert not eve.stat().st_mode & stat.S_IROTH  # alerts name hosts: not for every local user
    finally:
        exec_in(lab, "router", [sys.executable, "-m", "inline_ips", "cleanup"], cwd=ROOT)
        unblock_attacker(lab)
        shutil.rmtree(work, ignore_errors=True)


def check_running_unprivileged(lab: Lab, proc: subprocess.Popen[str], uid: int, log: Path) -> None:
    pids = ips_pids(lab, proc.pid)
    assert len(pids) >= 3, (pids, log.read_text())  # the supervisor and two workers
    for pid in pids:
        creds = privilege.read_credentials(pid)
        assert set(creds.uids) == {uid}, (pid, creds)
        assert creds.effective == creds.permitted == creds.bounding == KEEP, (pid, creds)
        assert creds.ambient in (0, KEEP)  # setpriv's start keeps the ambient set it was given
        for tid in os.listdir(f"/proc/{pid}/task"):  # capabilities are per thread
            t = privilege.read_credentials(pid, int(tid))
            assert t.effective == KEEP and set(t.uids) == {uid}, (pid, tid, t)


def check_it_still_protects(lab: Lab, log: Path, queue_file_readable: bool) -> None:
    # An SQL injection is dropped before the server.
    before = services.server_counters(lab)
    attacks.sqli(lab)
    settle(lab)
    assert services.server_counters(lab)["http_sqli"] == before["http_sqli"]
    # A SYN flood lands the attacker in the kernel blocklist (ipset over netlink, as nobody).
    attacks.syn_flood(lab, 3000, interval_us=100)
    settle(lab)
    assert attacker_blocked(lab), log.read_text()
    unblock_attacker(lab)
    # Reject's RST (raw socket, CAP_NET_RAW) reaches the client.
    r = exec_in(lab, "client", ["curl", "-sS", "-m", "5", f"http://{lab.server_ip}/reject-me"])
    assert r.returncode == 56, r
    # Metrics on loopback only, and the exporter thread can still read iptables and the queues.
    lines = exec_in(lab, "router", ["ss", "-Hltn", "sport", "= :9108"]).stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["127.0.0.1:9108"], lines  # the local address column
    away = exec_in(lab, "client", ["curl", "-sS", "-m", "3", f"http://{lab.gateway('client')}:9108/metrics"])
    assert away.returncode != 0
    time.sleep(1.2)  # one report from each worker
    page = exec_in(lab, "router", ["curl", "-sS", "-m", "5", "http://127.0.0.1:9108/metrics"]).stdout
    for source in ("iptables", "ipset"):
        assert f'inline_ips_exporter_errors_total{{source="{source}"}} 0.0' in page, page
    # /proc/net/netfilter/nfnetlink_queue is 0440 root: kept open across --user's drop; an
    # unprivileged start cannot read it (logged, counted, and the rest of the scrape is there).
    nfqueue_ok = 'inline_ips_exporter_errors_total{source="nfqueue"} 0.0' in page
    assert nfqueue_ok is queue_file_readable, page
    assert ("inline_ips_queue_length{" in page) is queue_file_readable
    assert 'inline_ips_worker_up{queue="0"} 1.0' in page and 'inline_ips_worker_up{queue="1"} 1.0' in page
