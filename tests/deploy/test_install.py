"""deploy/install.sh, deploy/uninstall.sh and inline-ips.service, for real, in a test root.

One install into a :class:`~tests.deploy.testroot.OverlayRoot` (this machine's
file system under an overlay, in network namespaces of a lab the test builds:
client, router, server) serves the whole module; the tests run in file order
and the last ones uninstall. What they show:

- install.sh run twice writes the same files: every path it created or
  changed (the overlay's upper layer: venv, unit, config, user, the
  enablement symlink) has the same type, mode, owner, content and mtime
  after the second run, which rewrites nothing and rebuilds nothing;
- the installed unit passes ``systemd-analyze verify`` and stays at
  ``systemd-analyze security`` exposure "OK"; it has no User= and its
  bounding set is exactly NET_ADMIN, NET_RAW and what the drop needs
  (SETUID, SETGID, SETPCAP); logrotate accepts its config;
- the service, started as the unit says (as root with the unit's bounding
  set and no new privileges, in its sandbox: see testroot.py), drops to
  ``inline-ips``: every process and thread of it (two workers) runs as that
  user holding exactly NET_ADMIN and NET_RAW (effective, permitted,
  bounding); it installs its chains and ipsets under the xtables lock,
  judges the client's traffic to the server, exports the queue metrics
  (read from the root-only /proc file it opened before the drop), writes its
  EVE log as ``inline-ips`` (0640), reloads on ExecReload and then creates
  a new EVE file, still the user's, where logrotate moved the old one away;
  on SIGTERM (systemd's stop) it exits 0 with its rules removed, and
  ExecStopPost then finds nothing left;
- without one of the capabilities the drop needs (SETUID, SETGID, SETPCAP)
  in the bounding set the start fails, saying why, before a worker runs;
- after ``kill -9`` the rules stay but traffic still flows (queue bypass),
  and ExecStopPost removes them;
- a config file changed by the operator survives a re-install and an
  upgrade (the new version goes to FILE.dist), an unchanged one is upgraded;
- uninstall.sh removes the program and keeps the config; ``--purge``
  leaves the file system exactly as before the install.

Needs root, network namespaces and overlayfs; the wheels pip installs come
from a cache built once from PyPI (the root has no network).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inline_ips.lab import topology
from tests.deploy.testroot import (
    ROOT,
    Entry,
    OverlayRoot,
    Unit,
    cap_mask,
    credentials,
    exec_argv,
    net_changes,
    prepare_directories,
    read_environment_file,
    service_command,
    snapshot,
    wheelhouse,
)
from tests.netns import require_root_netns

UNIT_PATH = "/usr/local/lib/systemd/system/inline-ips.service"
CONFFILES = {
    "/etc/inline-ips/rules.yaml": (0o640, "root", "inline-ips", ROOT / "rules.yaml"),
    "/etc/inline-ips/inline-ips.env": (0o640, "root", "inline-ips", ROOT / "deploy/etc/inline-ips.env"),
    "/etc/logrotate.d/inline-ips": (0o644, "root", "root", ROOT / "deploy/etc/logrotate.conf"),
    "/etc/sysctl.d/90-inline-ips.conf": (0o644, "root", "root", ROOT / "deploy/etc/sysctl.conf"),
}
# The shadow tools keep the previous /etc/passwd, group, shadow and gshadow as FILE-, and leave
# their lock file (empty).
SHADOW_BACKUPS = {"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/.pwd.lock"}

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    lab: topology.Lab
    root: OverlayRoot
    first: dict[str, Entry]  # the upper layer after the first install
    outputs: list[str]


def _need_tools() -> None:
    require_root_netns()
    for tool in ("nsenter", "unshare", "setpriv", "chroot", "iptables-legacy", "ipset"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    if "overlay" not in Path("/proc/filesystems").read_text():
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            pytest.skip("needs overlayfs")


def _install_packages() -> list[str]:
    m = re.search(r"^PACKAGES=\(([^)]*)\)", (ROOT / "deploy/install.sh").read_text(), re.M)
    assert m, "install.sh has no PACKAGES=(...) line"
    return m.group(1).split()


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    _need_tools()
    missing = [
        p
        for p in _install_packages()
        if "install ok installed"
        not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False
        ).stdout
    ]
    if missing:
        # install.sh would apt-get them into the test root (no network there): setup.sh installs them.
        pytest.skip(f"Debian packages install.sh needs are missing here: {missing} (scripts/setup.sh)")
    wheels = wheelhouse()
    lab = topology.Lab(f"dp{os.getpid()}")
    topology.up(lab)
    try:
        # Forwarding off, so the install's sysctl is seen to turn it on.
        topology.exec_in(lab, "router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
        with OverlayRoot(lab.ns("router"), wheels) as root:
            src = root.copy_source()
            out = root.run("bash", f"{src}/deploy/install.sh").stdout
            yield Installed(lab, root, snapshot(root.upper), [out])
    finally:
        topology.down(lab)


def _stat(root: OverlayRoot, path: str) -> tuple[int, str, str]:
    out = root.run("stat", "-c", "%a %U %G", path).stdout.split()
    return int(out[0], 8), out[1], out[2]


def test_install_writes_what_it_says(installed: Installed) -> None:
    root, first = installed.root, installed.first
    for path, (mode, user, group, shipped) in CONFFILES.items():
        assert first[path].kind == "file", path
        assert _stat(root, path) == (mode, user, group), path
        assert root.path(path).read_bytes() == shipped.read_bytes(), path
    assert _stat(root, "/etc/inline-ips") == (0o750, "root", "inline-ips")
    # The EVE log's directory: the service user's, since the engine creates files there unprivileged.
    assert first["/var/log/inline-ips"].kind == "dir"
    assert _stat(root, "/var/log/inline-ips") == (0o750, "inline-ips", "inline-ips")
    assert root.path(UNIT_PATH).read_bytes() == (ROOT / "deploy/systemd/inline-ips.service").read_bytes()
    assert first["/usr/local/bin/inline-ips"] == Entry(
        "symlink", 0, 0, 0, target="/opt/inline-ips/bin/inline-ips"
    )
    assert first["/etc/systemd/system/multi-user.target.wants/inline-ips.service"].target == UNIT_PATH
    # The venv is Debian's python3 (not whatever python3 is first on PATH), with both C extensions.
    assert "home = /usr/bin" in root.path("/opt/inline-ips/pyvenv.cfg").read_text()
    root.run(
        "/opt/inline-ips/bin/python", "-c", "import inline_ips.decode._fastdecode, inline_ips.source._nfqloop"
    )
    assert root.run("inline-ips", "--version").stdout.startswith("inline-ips ")
    account = root.run("getent", "passwd", "inline-ips").stdout.strip().split(":")
    assert account[5:] == ["/nonexistent", "/usr/sbin/nologin"] and int(account[2]) < 1000  # a system user
    # The sysctl file was applied (in the router's namespace, where forwarding was off).
    assert root.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    # Nothing outside what it announces: no stray file in the tree.
    wrote = {p for p, e in first.items() if e.kind != "dir"}
    ours = {p for p in wrote if p.startswith(("/opt/inline-ips/", "/var/lib/inline-ips/"))}
    assert wrote - ours == {
        *CONFFILES,
        UNIT_PATH,
        "/usr/local/bin/inline-ips",
        "/etc/systemd/system/multi-user.target.wants/inline-ips.service",
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/etc/gshadow",
        *SHADOW_BACKUPS,
    }


def test_install_twice_same_files(installed: Installed) -> None:
    root = installed.root
    out = root.run("bash", "/tmp/src/deploy/install.sh").stdout
    installed.outputs.append(out)
    second = snapshot(root.upper)
    assert "/opt/inline-ips is up to date" in out
    assert "wrote" not in out and "created" not in out, out
    added = second.keys() - installed.first.keys()
    removed = installed.first.keys() - second.keys()
    changed = {p for p in second.keys() & installed.first.keys() if second[p] != installed.first[p]}
    # Directories' mtimes are not compared (a temporary file inside changes them); their modes are.
    assert (added, removed, changed) == (set(), set(), set())


def test_unit_verifies(installed: Installed) -> None:
    root = installed.root
    cp = root.run("systemd-analyze", "verify", UNIT_PATH, check=False)
    assert (cp.returncode, cp.stdout + cp.stderr) == (0, "")
    cp = root.run("systemd-analyze", "security", "--offline=yes", "--threshold=40", UNIT_PATH, check=False)
    level = re.search(r"Overall exposure level for inline-ips.service: ([\d.]+)", cp.stdout)
    assert cp.returncode == 0 and level and float(level.group(1)) <= 4.0, cp.stdout[-500:]
    # Started as root, and the engine drops to the user itself (--user): the bounding set holds
    # what it keeps and what the drop needs, no more (each of the three is needed:
    # test_start_without_a_capability_the_drop_needs_fails). NoNewPrivileges= does not stop the
    # drop to a lower uid (the service test runs under it).
    unit = Unit.parse(root.path(UNIT_PATH).read_text())
    assert not {"User", "Group", "AmbientCapabilities"} & unit.sections["Service"].keys()
    assert "--user inline-ips" in unit.get("ExecStart") and unit.yes("NoNewPrivileges")
    assert sorted(unit.words("CapabilityBoundingSet")) == [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
    ]


def test_logrotate_config(installed: Installed) -> None:
    root = installed.root
    cp = root.run(
        "logrotate", "--debug", "--state", "/tmp/logrotate.state", "/etc/logrotate.d/inline-ips", check=False
    )
    text = cp.stdout + cp.stderr
    assert cp.returncode == 0 and "error" not in text.lower(), text
    assert "rotating pattern: /var/log/inline-ips/eve.json" in text
    assert re.search(r"switching euid from 0 to \d+", text), text  # rotates as the service user


# -- the service ------------------------------------------------------------------------------


def _firewall(lab: topology.Lab) -> str:
    parts = []
    for argv in (
        ["iptables-legacy", "-S"],
        ["iptables-legacy", "-t", "mangle", "-S"],
        ["ip6tables-legacy", "-S"],
        ["ipset", "list", "-n"],
    ):
        parts.append(topology.exec_in(lab, "router", argv, check=True).stdout)
    return "\n".join(parts)


def _installed_rules(text: str) -> bool:
    return all(
        s in text
        for s in (
            "-A FORWARD -j INLINE_IPS",
            "--queue-bypass",
            "-j INLINE_IPS_MARK",
            "inline_ips_block4",
            "inline_ips_block6",
        )
    )


def _none_left(text: str) -> bool:
    return "INLINE_IPS" not in text and "inline_ips" not in text


def _ping(lab: topology.Lab) -> bool:
    cp = topology.exec_in(lab, "client", ["ping", "-c", "3", "-i", "0.2", "-W", "2", lab.server_ip])
    return cp.returncode == 0


def _metrics(lab: topology.Lab) -> str:
    cp = topology.exec_in(lab, "router", ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9108/metrics"])
    return cp.stdout


def _metric(lab: topology.Lab, name: str) -> float:
    text = _metrics(lab)
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _family(pid: int) -> list[int]:
    """``pid`` and all its descendants (the service's processes: the engine and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat_text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat_text.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return sorted(out)


def _credentials(pid: int) -> dict[int, dict[str, str]]:
    """Every thread of a process: {tid: the Uid, Gid, Cap* and NoNewPrivs fields of its status}."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        fields = dict(re.findall(r"^(Uid|Gid|Groups|Cap\w+|NoNewPrivs):[ \t]*(.*)$", text, re.M))
        out[int(tid)] = {k: " ".join(v.split()) for k, v in fields.items()}
    return out


class Service:
    """One start of the unit's ExecStart, as systemd would (testroot.service_command)."""

    def __init__(
        self, root: OverlayRoot, log: Path, args: str | None = None, unit: Unit | None = None
    ) -> None:
        """``args``: INLINE_IPS_ARGS instead of the env file's; ``unit``: instead of the installed one."""
        self.root = root
        self.unit = unit or Unit.parse(root.path(UNIT_PATH).read_text())
        env_file = self.unit.get("EnvironmentFile").lstrip("-")
        self.env = read_environment_file(root.path(env_file).read_text())
        if args is not None:
            self.env["INLINE_IPS_ARGS"] = args
        prepare_directories(root, self.unit)
        self.log = log
        with open(log, "wb") as f:
            for i in range(len(self.unit.all("ExecStartPre"))):
                pre = self.exec_line("ExecStartPre", i)
                f.write(f"ExecStartPre: {pre.returncode} {pre.stdout}{pre.stderr}\n".encode())
                assert pre.returncode == 0, pre
            self.proc = subprocess.Popen(service_command(root, self.unit, self.env), stdout=f, stderr=f)
        self.env["MAINPID"] = str(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: object, what: str, timeout: float = 45) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the service exited with {self.proc.returncode} before {what}:\n{self.text()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.text()}")

    def exec_line(self, key: str, index: int = -1) -> subprocess.CompletedProcess[str]:
        """ExecStartPre=, ExecReload=, ExecStopPost=: '+' runs as root outside the sandbox; without
        it, with the unit's credentials (its user, or root with its bounding set; no new privileges)."""
        prefix, argv = exec_argv(self.unit.all(key)[index], self.env)
        if "+" not in prefix:
            argv = [*credentials(self.unit), *argv]
        return self.root.run(*argv, check=False)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


EVE = "/var/log/inline-ips/eve.json"


def test_service_starts_installs_rules_stops_and_removes_them(installed: Installed, tmp_path: Path) -> None:
    lab, root = installed.lab, installed.root
    assert _none_left(_firewall(lab))
    # Two workers: every process of the service (the supervisor and one per queue) is checked.
    svc = Service(root, tmp_path / "service.log", args="--workers 2")
    try:
        svc.wait_for(lambda: _installed_rules(_firewall(lab)), "its rules")
        svc.wait_for(lambda: svc.text().count("judging packets") == 2, "the two workers")
        # Started as root (no User=), it dropped to inline-ips: every process and thread holds
        # exactly NET_ADMIN and NET_RAW, nothing else in any set, and cannot gain more.
        assert "User" not in svc.unit.sections["Service"]
        uid = root.run("id", "-u", "inline-ips").stdout.strip()
        gid = root.run("id", "-g", "inline-ips").stdout.strip()
        want = f"{cap_mask('CAP_NET_ADMIN CAP_NET_RAW'):016x}"
        assert want == "0000000000003000"
        pids = _family(svc.proc.pid)
        assert len(pids) == 3, pids  # the supervisor and two workers
        seen = 0
        for pid in pids:
            for tid, c in _credentials(pid).items():
                seen += 1
                assert c["Uid"] == f"{uid} {uid} {uid} {uid}" and c["Gid"] == f"{gid} {gid} {gid} {gid}", (
                    pid,
                    tid,
                    c,
                )
                assert c["Groups"] == "", (pid, tid, c)
                assert (c["CapEff"], c["CapPrm"], c["CapBnd"]) == (want, want, want), (pid, tid, c)
                assert (c["CapInh"], c["CapAmb"], c["NoNewPrivs"]) == ("0" * 16, "0" * 16, "1"), (pid, tid, c)
        assert seen > len(pids)  # threads too (metrics server, report receivers, timers)
        log = svc.text()
        assert re.search(r"running as inline-ips \(uid \d+, gid \d+\) with CAP_NET_ADMIN,CAP_NET_RAW", log), (
            log
        )
        # What the drop exists for: root's xtables lock and the root-only queue statistics, opened first.
        assert "xtables lock" not in log and "cannot read /proc/net/netfilter" not in log, log
        # It judges the traffic it was put in front of.
        before = _metric(lab, "inline_ips_packets_total")
        assert _ping(lab)
        svc.wait_for(lambda: _metric(lab, "inline_ips_packets_total") >= before + 6, "the pings to be judged")
        metrics = _metrics(lab)
        for q in (0, 1):
            assert re.search(rf'^inline_ips_queue_length{{queue="{q}"}} \d', metrics, re.M), metrics
            assert re.search(rf'^inline_ips_queue_kernel_drops_total{{queue="{q}"}} 0\.0$', metrics, re.M)
        assert re.search(r"^inline_ips_unjudged_packets_total \d", metrics, re.M), metrics
        assert re.search(r'^inline_ips_exporter_errors_total{source="nfqueue"} 0\.0$', metrics, re.M), metrics
        # The EVE log, created at set-up as the service user: its own, not for other local users.
        assert _stat(root, EVE) == (0o640, "inline-ips", "inline-ips")
        # logrotate: the file moved away, then ExecReload (SIGHUP): the engine, unprivileged by now,
        # reloads its rules and creates a new EVE file in the user's directory.
        root.run("mv", EVE, EVE + ".1")
        reloads = svc.text().count("reloaded")
        reload = svc.exec_line("ExecReload")
        assert reload.returncode == 0, reload
        svc.wait_for(lambda: svc.text().count("reloaded") >= reloads + 2, "both workers to reload")
        svc.wait_for(lambda: root.path(EVE).exists(), "a new EVE file")
        assert "cannot reopen" not in svc.text(), svc.text()
        assert _stat(root, EVE) == (0o640, "inline-ips", "inline-ips")
        assert _stat(root, EVE + ".1") == (0o640, "inline-ips", "inline-ips")
        # systemctl stop: SIGTERM, then ExecStopPost.
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=float(svc.unit.get("TimeoutStopSec").rstrip("s"))) == 0, svc.text()
        assert "firewall rules removed" in svc.text()
        assert "Traceback" not in svc.text() and " ERROR " not in svc.text(), svc.text()
        assert _none_left(_firewall(lab))
        post = svc.exec_line("ExecStopPost")
        assert post.returncode == 0 and "nothing of inline-ips was installed" in post.stdout, post
        # The final stats event went into the new file.
        assert _stat(root, "/var/log/inline-ips") == (0o750, "inline-ips", "inline-ips")
        events = [json.loads(line) for line in root.path(EVE).read_text().splitlines()]
        assert any(e["event_type"] == "stats" for e in events)
        assert _ping(lab)
    finally:
        svc.kill()
        root.run("inline-ips", "cleanup", check=False)


@pytest.mark.parametrize("cap", ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"])
def test_start_without_a_capability_the_drop_needs_fails(
    installed: Installed, tmp_path: Path, cap: str
) -> None:
    """Each of the unit's extra capabilities is needed: without it the start fails, and says why."""
    lab, root = installed.lab, installed.root
    unit = Unit.parse(root.path(UNIT_PATH).read_text())
    bounding = unit.words("CapabilityBoundingSet")
    assert cap in bounding
    unit.sections["Service"]["CapabilityBoundingSet"] = [" ".join(c for c in bounding if c != cap)]
    svc = Service(root, tmp_path / "service.log", unit=unit)
    try:
        code = svc.proc.wait(timeout=30)
        text = svc.text()
        assert code != 0, text
        # SETUID, SETGID: creating the EVE file as inline-ips fails, before the firewall is touched;
        # SETPCAP: the bounding set cannot be emptied, and the engine refuses to go on.
        want = "prctl PR_CAPBSET_DROP" if cap == "CAP_SETPCAP" else "cannot act as inline-ips"
        assert want in text, text
        assert "judging packets" not in text and "running as inline-ips" not in text, text
        post = svc.exec_line("ExecStopPost")
        assert post.returncode == 0, post
        assert _none_left(_firewall(lab))
    finally:
        svc.kill()
        root.run("inline-ips", "cleanup", check=False)


def test_kill_9_fails_open_and_stop_post_cleans_up(installed: Installed, tmp_path: Path) -> None:
    lab, root = installed.lab, installed.root
    svc = Service(root, tmp_path / "service.log")
    try:
        svc.wait_for(lambda: _installed_rules(_firewall(lab)), "its rules")
        svc.wait_for(lambda: "judging packets" in svc.text(), "the worker")
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait(timeout=10)
        assert _installed_rules(_firewall(lab))  # nobody removed them...
        assert _ping(lab)  # ...and yet traffic flows: --queue-bypass with no listener
        post = svc.exec_line("ExecStopPost")
        assert post.returncode == 0 and "removed" in post.stdout, post
        assert _none_left(_firewall(lab))
        assert _ping(lab)
    finally:
        svc.kill()
        root.run("inline-ips", "cleanup", check=False)


# -- config files and upgrades ------------------------------------------------------------------


def test_changed_config_survives_reinstall_and_upgrade(installed: Installed) -> None:
    root = installed.root
    rules, env = "/etc/inline-ips/rules.yaml", "/etc/inline-ips/inline-ips.env"
    mine = root.path(rules).read_text() + "\n# the operator's change\n"
    root.path(rules).write_text(mine)
    out = root.run("bash", "/tmp/src/deploy/install.sh").stdout
    assert root.path(rules).read_text() == mine
    assert f"kept {rules}" in out
    # The same version shipped again: nothing to offer, no .dist.
    assert not root.path(rules + ".dist").exists()
    # An upgrade: new shipped versions of both files. Ours is upgraded, the operator's kept.
    src = root.path("/tmp/src")
    (src / "rules.yaml").write_text((src / "rules.yaml").read_text() + "\n# shipped in the next version\n")
    (src / "deploy/etc/inline-ips.env").write_text(
        (src / "deploy/etc/inline-ips.env").read_text() + "# new\n"
    )
    out = root.run("bash", "/tmp/src/deploy/install.sh").stdout
    assert root.path(rules).read_text() == mine
    assert root.path(rules + ".dist").read_text() == (src / "rules.yaml").read_text()
    assert _stat(root, rules + ".dist") == (0o640, "root", "inline-ips")
    assert root.path(env).read_text() == (src / "deploy/etc/inline-ips.env").read_text()
    assert f"wrote {env}" in out and "up to date" in out  # config only: the venv was not rebuilt
    # The operator takes the new version: the .dist goes away on the next run.
    root.path(rules).write_text(root.path(rules + ".dist").read_text())
    root.run("bash", "/tmp/src/deploy/install.sh")
    assert not root.path(rules + ".dist").exists()


def test_uninstall_keeps_config_and_purge_removes_everything(installed: Installed) -> None:
    root = installed.root
    out = root.run("bash", "/tmp/src/deploy/uninstall.sh").stdout
    changes = net_changes(root.upper)
    for gone in (
        "/opt/inline-ips",
        UNIT_PATH,
        "/usr/local/bin/inline-ips",
        "/etc/systemd/system/multi-user.target.wants/inline-ips.service",
        "/usr/local/lib/systemd",
    ):
        assert not root.path(gone).exists() and not root.path(gone).is_symlink(), (gone, out)
    # What stays: the config, the user, the logs (if the service ran) and install.sh's records.
    kept = {p for p in changes if not p.startswith(("/var/lib/inline-ips", "/var/log/inline-ips"))}
    assert kept - SHADOW_BACKUPS == {
        *CONFFILES,
        "/etc/inline-ips",
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/etc/gshadow",
    }, out
    assert {"/var/lib/inline-ips/conffiles", "/var/lib/inline-ips/dirs"} <= changes.keys()
    # Running it again is fine, and --purge takes the rest.
    root.run("bash", "/tmp/src/deploy/uninstall.sh")
    out = root.run("bash", "/tmp/src/deploy/uninstall.sh", "--purge").stdout
    left = {p: what for p, what in net_changes(root.upper).items() if p not in SHADOW_BACKUPS}
    assert left == {}, out
    assert root.run("getent", "passwd", "inline-ips", check=False).returncode == 2
