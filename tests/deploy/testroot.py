"""A throw-away test root for deploy/install.sh, and a stand-in for systemd that runs its unit.

:class:`OverlayRoot` is this machine's own root file system under an overlay:
the lower layer is ``/`` (read-only to the overlay), every write lands in an
upper layer on a tmpfs. It lives in a private mount namespace held open by a
``sleep`` process that sits in a network namespace the test made, so
``sysctl``, iptables and ipset inside the root change only that namespace,
and nothing a command in the root writes reaches the host's files. Commands
run chrooted into the overlay; ``/proc``, ``/sys`` and ``/dev`` are the
namespace's, ``/run`` and ``/tmp`` are empty tmpfs (as after a boot).
Because the upper layer holds exactly what was written, :func:`snapshot` of
it is the complete list of what an install created or changed, and
:func:`net_changes` compares it with the host to find what an uninstall left
behind (or deleted that it should not have).

:class:`Unit` reads a systemd unit file, and :func:`service_command`
builds the command systemd would run for ``ExecStart=``: as ``User=`` and
``Group=`` (root without them) with the unit's bounding, ambient and
inheritable capability sets and no-new-privileges (through ``setpriv``, as
systemd applies them: root then holds exactly the bounding set), its
``UMask=``, its ``EnvironmentFile=``, ``LogsDirectory=`` and ``RuntimeDirectory=``,
and the file-system sandbox of ``ProtectSystem=strict`` (with ``ReadWritePaths=``,
files or directories), ``ProtectHome=``, ``PrivateTmp=`` and
``ProtectKernelTunables=`` (read-only bind mounts); :func:`credentials` is
the same for ``ExecReload=`` and the other commands without ``+``. Other
directives (seccomp, address families, ``Protect*`` of kernel logs,
modules, clock...) are not emulated: :data:`NOT_EMULATED` lists
those the harness knows it skips, and an unknown one is an error, so a
change to the unit cannot go silently untested. systemd itself (PID 1) is
not needed and not used.

:func:`wheelhouse` builds, once per dependency set, the wheels install.sh
installs (Debian's python3, from PyPI) and keeps them in the user's cache:
the test root has no network, and pip reads them from there (``PIP_NO_INDEX``,
``PIP_FIND_LINKS``, the same variables an operator sets for an offline install).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What install.sh needs from the source tree (what `vagrant up` syncs, minus the rest).
SOURCE_ITEMS = ("setup.py", "setup.cfg", "README.md", "rules.yaml", "inline_ips", "deploy")


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".so", ".pyc")) or n == "build"}


def wheelhouse() -> Path:
    """Wheels of inline-ips's dependencies (with ``live``) plus setuptools and wheel, cached."""
    key = hashlib.sha256()
    for name in ("setup.cfg", "setup.py"):
        key.update((ROOT / name).read_bytes())
    key.update(subprocess.run([DEBIAN_PYTHON, "-VV"], capture_output=True, check=True).stdout)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inline-ips-tests"
    out = cache / f"wheels-{key.hexdigest()[:16]}"
    if (out / ".complete").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = Path(tmp) / "src"
        for item in ("setup.py", "setup.cfg", "README.md", "inline_ips"):
            if (ROOT / item).is_dir():
                shutil.copytree(ROOT / item, src / item, ignore=_ignore)
            else:
                src.mkdir(exist_ok=True)
                shutil.copy2(ROOT / item, src / item)
        venv = Path(tmp) / "venv"
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(venv)], check=True)
        wheels = Path(tmp) / "wheels"
        subprocess.run(
            [
                str(venv / "bin/pip"),
                "wheel",
                "-q",
                "--no-cache-dir",
                "--use-pep517",  # a new venv has no `wheel` for setup.py-only projects
                "-w",
                str(wheels),
                f"{src}[live]",
                "setuptools",
                "wheel",
            ],
            check=True,
            timeout=600,
        )
        for own in wheels.glob("inline_ips-*.whl"):
            own.unlink()  # install.sh builds this one itself, from the tree it is given
        (wheels / ".complete").touch()
        shutil.rmtree(out, ignore_errors=True)
        wheels.rename(out)
    return out


# The holder: mounts the overlay in its (private) mount namespace and keeps it alive.
_SETUP = r"""
set -eu
B=$1 WHEELS=$2
mount -t tmpfs -o mode=0700 dp-testroot "$B"
mkdir "$B/upper" "$B/work" "$B/merged"
M=$B/merged
mount -t overlay dp-testroot -o "lowerdir=/,upperdir=$B/upper,workdir=$B/work" "$M"
mount -t proc proc "$M/proc"
mount --rbind /sys "$M/sys"
mount --rbind /dev "$M/dev"
mount -t tmpfs -o mode=0755 tmpfs "$M/run"
mount -t tmpfs -o mode=1777 tmpfs "$M/tmp"
mkdir "$M/tmp/wheels"
mount --bind "$WHEELS" "$M/tmp/wheels"
mount -o remount,bind,ro "$M/tmp/wheels"
echo ready
exec sleep infinity
"""


class OverlayRoot:
    """The overlay root; see the module docstring. Use as a context manager: it always goes away."""

    def __init__(self, netns: str, wheels: Path) -> None:
        self.netns = netns
        self.base = Path(tempfile.mkdtemp(prefix="dp-testroot-"))
        self._holder = subprocess.Popen(
            ["ip", "netns", "exec", netns, "sh", "-c", _SETUP, "sh", str(self.base), str(wheels)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(
                f"test root did not come up: {self._holder.stderr.read() if self._holder.stderr else ''}"
            )
        self.pid = self._holder.pid  # "ip netns exec", sh and sleep exec each other: one process
        self.merged = f"{self.base}/merged"

    def __enter__(self) -> OverlayRoot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs in the root, then the holder: the mount namespace and its tmpfs go with it."""
        if self._holder.poll() is None:
            for pid in self.processes():
                if pid != self._holder.pid:
                    _kill(pid)
            self._holder.kill()
        self._holder.wait(timeout=10)
        for stream in (self._holder.stdout, self._holder.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def processes(self) -> list[int]:
        """Processes in the root's mount namespace (the holder included)."""
        mine = os.readlink(f"/proc/{self._holder.pid}/ns/mnt")
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                        out.append(int(entry))
                except OSError:
                    continue
        return out

    # -- paths: what the root contains, seen from the test process ----------------------
    def path(self, inside: str) -> Path:
        """A path of the root, reachable from outside (through the holder's /proc/PID/root)."""
        return Path(f"/proc/{self.pid}/root{self.merged}{inside}")

    @property
    def upper(self) -> Path:
        return Path(f"/proc/{self.pid}/root{self.base}/upper")

    def copy_source(self, dest: str = "/tmp/src") -> str:
        """A copy of the working tree (what install.sh needs) at ``dest`` in the root's /tmp."""
        target = self.path(dest)
        target.mkdir()
        for item in SOURCE_ITEMS:
            if (ROOT / item).is_dir():
                shutil.copytree(ROOT / item, target / item, ignore=_ignore)
            else:
                shutil.copy2(ROOT / item, target / item)
        return dest

    # -- commands ---------------------------------------------------------------------------
    def env(self, **extra: str) -> list[str]:
        base = {
            "PATH": PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "/tmp/wheels",
        }
        base.update(extra)
        return ["env", "-i", *(f"{k}={v}" for k, v in base.items())]

    def enter(self) -> list[str]:
        """The prefix that puts a command in the root's mount and network namespaces (not chrooted)."""
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", f"--net=/proc/{self.pid}/ns/net", "--"]

    def command(self, argv: list[str]) -> list[str]:
        return [*self.enter(), "chroot", self.merged, *self.env(), *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run argv chrooted in the root; its output is kept (and shown when ``check`` fails)."""
        cmd = self.command(list(argv))
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and cp.returncode != 0:
            raise AssertionError(
                f"{shlex.join(argv)} exited with {cp.returncode}\n"
                f"--- stdout\n{cp.stdout}\n--- stderr\n{cp.stderr}"
            )
        return cp


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- what a tree holds ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # file, dir, symlink, whiteout (an overlay deletion), other
    mode: int
    uid: int
    gid: int
    sha256: str = ""  # files
    target: str = ""  # symlinks
    mtime_ns: int = 0  # files: a file rewritten with the same bytes is not "the same file"


def _entry(p: Path, st: os.stat_result, with_mtime: bool) -> Entry:
    mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    if stat.S_ISLNK(st.st_mode):
        return Entry("symlink", 0, uid, gid, target=os.readlink(p))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode, uid, gid)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        return Entry("file", mode, uid, gid, sha256=digest, mtime_ns=st.st_mtime_ns if with_mtime else 0)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return Entry("whiteout", 0, 0, 0)
    return Entry("other", mode, uid, gid)


def snapshot(top: Path, with_mtime: bool = True) -> dict[str, Entry]:
    """Every path under ``top`` (as ``/relative/path``) with its type, mode, owner, content hash."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out["/" + str(p.relative_to(top))] = _entry(p, p.lstat(), with_mtime)
    return out


def net_changes(upper: Path, lower: Path = Path("/")) -> dict[str, str]:
    """What the overlay changed for real: upper-layer entries that differ from the lower layer.

    Overlayfs copies a file or directory up even when it ends as it was (a
    user added, then removed): those are not changes. Returns {path: what}.
    """
    out: dict[str, str] = {}
    for path, up in snapshot(upper, with_mtime=False).items():
        low_path = lower / path.lstrip("/")
        try:
            low = _entry(low_path, low_path.lstat(), with_mtime=False)
        except FileNotFoundError:
            out[path] = (
                "deleted (not in the lower layer either)" if up.kind == "whiteout" else f"new {up.kind}"
            )
            continue
        if up.kind == "whiteout":
            out[path] = f"deleted {low.kind}"
        elif up != low:
            out[path] = f"changed {low.kind}"
    return out


# -- systemd units --------------------------------------------------------------------------

# Directives the harness does not reproduce (systemd enforces them; the harness cannot
# without being systemd). Anything in [Service] neither emulated nor listed here fails.
NOT_EMULATED = frozenset(
    {
        "Type",
        "Restart",
        "RestartSec",
        "TimeoutStopSec",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectProc",
        "ProtectKernelLogs",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "LockPersonality",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RestrictNamespaces",
        "RemoveIPC",
        "RestrictAddressFamilies",
        "SystemCallArchitectures",
    }
)
EMULATED = frozenset(
    {
        "ExecStartPre",
        "ExecStart",
        "ExecReload",
        "ExecStopPost",
        "EnvironmentFile",
        "User",
        "Group",
        "AmbientCapabilities",
        "CapabilityBoundingSet",
        "NoNewPrivileges",
        "LogsDirectory",
        "LogsDirectoryMode",
        "RuntimeDirectory",
        "UMask",
        "ProtectSystem",
        "ReadWritePaths",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
    }
)


@dataclass
class Unit:
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Unit:
        unit = cls()
        section: dict[str, list[str]] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = unit.sections.setdefault(line.strip("[]"), {})
                continue
            if section is None or "=" not in line or line.endswith("\\"):
                raise ValueError(f"unit line not understood by the harness: {raw!r}")
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())
        unknown = set(unit.sections.get("Service", {})) - EMULATED - NOT_EMULATED
        if unknown:
            raise ValueError(
                f"[Service] directives the harness neither emulates nor knows it skips: {sorted(unknown)}"
            )
        return unit

    def get(self, key: str, default: str = "") -> str:
        values = self.sections.get("Service", {}).get(key)
        return values[-1] if values else default

    def all(self, key: str) -> list[str]:
        """Every value of a directive that may be given more than once (ExecStartPre=)."""
        return list(self.sections.get("Service", {}).get(key, []))

    def words(self, key: str) -> list[str]:
        """A list directive (ReadWritePaths=, CapabilityBoundingSet=): every value's words."""
        return [w for v in self.all(key) for w in v.split()]

    def yes(self, key: str) -> bool:
        return self.get(key).lower() in ("yes", "true", "on", "1")


def read_environment_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines, # comments, optional single or double quotes (what our env file uses)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"environment file line not understood: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def exec_argv(line: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """An Exec*= line: (its prefix characters, argv), with systemd's $VAR (split) and ${VAR} (one word)."""
    m = re.match(r"^([-+@:!]*)(.*)$", line)
    assert m is not None
    prefix, rest = m.group(1), m.group(2)
    if "@" in prefix or ":" in prefix or "!" in prefix:
        raise ValueError(f"Exec prefix {prefix!r} not emulated")
    argv: list[str] = []
    for word in shlex.split(rest):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:  # $VAR alone: its value split at whitespace, no word when empty
            argv.extend(env.get(whole.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda g: env.get(g.group(1), ""), word))
    if any("$" in a for a in argv):
        raise ValueError(f"unsupported variable syntax in {line!r}")
    return prefix, argv


CAPS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_SYS_ADMIN": 21,
}


def cap_mask(value: str) -> int:
    return sum(1 << CAPS[c] for c in value.split())


def prepare_directories(root: OverlayRoot, unit: Unit) -> None:
    """What systemd does before ExecStart: LogsDirectory= and RuntimeDirectory=, owned by User=."""
    user, group = unit.get("User", "root"), unit.get("Group", "root")
    logs, runtime = unit.get("LogsDirectory"), unit.get("RuntimeDirectory")
    mode = unit.get("LogsDirectoryMode", "0755")
    script = "set -e\n"
    if logs:
        script += f"install -d -m {mode} -o {user} -g {group} /var/log/{logs}\n"
    if runtime:
        script += f"install -d -m 0755 -o {user} -g {group} /run/{runtime}\n"
    root.run("sh", "-c", script)


def credentials(unit: Unit) -> list[str]:
    """The setpriv prefix that gives a command the unit's user, capabilities and no-new-privileges.

    Without ``User=`` the command runs as root; its capabilities are then
    the bounding set (a root execve() gets every capability the bounding set
    allows), the same as under systemd. Inheritable and ambient sets are
    ``AmbientCapabilities=`` (empty without it).
    """
    creds = ["setpriv"]
    user = unit.get("User")
    if user:
        creds += [f"--reuid={user}", f"--regid={unit.get('Group') or user}", "--init-groups"]
    elif unit.get("Group"):
        raise ValueError("Group= without User= not emulated")
    flags = [("AmbientCapabilities", "--inh-caps"), ("AmbientCapabilities", "--ambient-caps")]
    if unit.all("CapabilityBoundingSet"):
        flags.append(("CapabilityBoundingSet", "--bounding-set"))
    for key, flag in flags:
        words = unit.words(key)
        if any(w.startswith("~") for w in words):
            raise ValueError(f"{key}=~... not emulated")
        caps = ",".join("+" + c.removeprefix("CAP_").lower() for c in words)
        creds.append(f"{flag}=-all" + (f",{caps}" if caps else ""))
    if unit.yes("NoNewPrivileges"):
        creds.append("--no-new-privs")
    return [*creds, "--"]


def service_command(root: OverlayRoot, unit: Unit, env: dict[str, str]) -> list[str]:
    """The ExecStart= process as systemd would start it (see the module docstring)."""
    prefix, argv = exec_argv(unit.get("ExecStart"), env)
    if prefix:
        raise ValueError(f"ExecStart prefix {prefix!r} not emulated")
    m = root.merged
    # Mounts first (in a mount namespace of the service's own, as systemd makes one), then
    # chroot, umask, and the credentials last: setpriv execs the command.
    sandbox = ["set -e"]
    writable = []
    if unit.get("LogsDirectory"):
        writable.append(f"/var/log/{unit.get('LogsDirectory')}")
    if unit.get("RuntimeDirectory"):
        writable.append(f"/run/{unit.get('RuntimeDirectory')}")
    for word in unit.words("ReadWritePaths"):
        d = word.removeprefix("-")  # "-": optional, systemd skips it when missing
        if not root.path(d).exists():
            if word.startswith("-"):
                continue
            # What systemd does too: the start fails (status 226/NAMESPACE).
            sandbox.append(f"echo 'ReadWritePaths={d}: No such file or directory' >&2; exit 226")
        writable.append(d)
    if unit.yes("PrivateTmp"):
        sandbox.append(f"mount -t tmpfs -o mode=1777 tmpfs {m}/tmp")
    if unit.get("ProtectSystem") == "strict":
        for d in writable:
            sandbox.append(f"mount --bind {m}{d} {m}{d}")
        sandbox += [f"mount -o remount,bind,ro {m}", f"mount -o remount,bind,ro {m}/run"]
        for d in writable:  # a bind keeps its own flags: still writable
            sandbox.append(f"mount -o remount,bind,rw {m}{d}")
    elif unit.get("ProtectSystem"):
        raise ValueError(f"ProtectSystem={unit.get('ProtectSystem')} not emulated")
    if unit.yes("ProtectHome"):
        sandbox += [
            f"mount -t tmpfs -o ro,mode=0755 tmpfs {m}/root",
            f"mount -t tmpfs -o ro,mode=0755 tmpfs {m}/home",
        ]
    if unit.yes("ProtectKernelTunables"):
        sandbox += [f"mount --bind {m}/proc/sys {m}/proc/sys", f"mount -o remount,bind,ro {m}/proc/sys"]
    if unit.get("UMask"):
        sandbox.append(f"umask {unit.get('UMask')}")
    sandbox.append(f'exec chroot {m} "$@"')
    creds = credentials(unit)
    return [
        *root.enter(),
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "\n".join(sandbox),
        "sh",
        *root.env(),
        *creds,
        *argv,
    ]
