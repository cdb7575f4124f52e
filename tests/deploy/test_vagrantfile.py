"""The Vagrantfile: ``vagrant validate`` accepts it, and rejects a broken copy.

Validation parses the Vagrantfile with Vagrant itself and checks every
machine's configuration (networks, synced folders, provisioner scripts that
must exist), without a provider (``--ignore-provider``) and without a box:
nothing is downloaded and no VM starts. Vagrant's state goes to a temporary
directory, not into the project. What the VMs do once up (deploy/vagrant/*.sh,
which shellcheck checks in test_scripts.py) needs a hypervisor and is not run
here. Skipped without vagrant (Debian package ``vagrant``, installed by
scripts/setup.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VAGRANT = shutil.which("vagrant")
pytestmark = pytest.mark.skipif(VAGRANT is None, reason="vagrant not installed (Debian package vagrant)")


def _validate(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    assert VAGRANT is not None
    env = dict(
        os.environ,
        VAGRANT_HOME=str(home / "home"),
        VAGRANT_DOTFILE_PATH=str(home / "dot"),
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_NO_COLOR="1",
    )
    return subprocess.run(
        [VAGRANT, "validate", "--ignore-provider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_vagrant_validate(tmp_path: Path) -> None:
    had_state = (ROOT / ".vagrant").exists()
    cp = _validate(ROOT, tmp_path)
    assert cp.returncode == 0 and "Vagrantfile validated successfully" in cp.stdout, cp.stdout + cp.stderr
    for vm in ("router", "attacker", "victim"):
        assert f"==> {vm}:" in cp.stdout
    assert (ROOT / ".vagrant").exists() == had_state  # its state went to the temporary directory


def test_vagrant_validate_rejects_a_broken_vagrantfile(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "deploy/vagrant", project / "deploy/vagrant")
    text = (ROOT / "Vagrantfile").read_text()
    (project / "Vagrantfile").write_text(text)
    assert _validate(project, tmp_path).returncode == 0  # the copy alone is valid...
    broken = text.replace('path: "deploy/vagrant/router.sh"', 'path: "deploy/vagrant/routr.sh"')
    assert broken != text
    (project / "Vagrantfile").write_text(broken)
    cp = _validate(project, tmp_path)
    assert cp.returncode != 0 and "routr.sh" in cp.stdout + cp.stderr  # ...a missing provisioner is not


def test_the_topology_crosses_the_router() -> None:
    """The addresses the docs and provisioning rely on: two /24s joined only by the router."""
    text = (ROOT / "Vagrantfile").read_text()
    ips = dict(re.findall(r'^(\w+_IP) = "([\d.]+)"', text, re.M))
    assert ips == {
        "ATTACKER_IP": "10.10.1.10",
        "ROUTER_OUTSIDE_IP": "10.10.1.254",
        "ROUTER_INSIDE_IP": "10.10.2.254",
        "VICTIM_IP": "10.10.2.10",
    }
    # Internal networks (no host, no DHCP): the attacker's only way to the victim is the router.
    assert (
        text.count('virtualbox__intnet: "ips-outside"') == 2
        and text.count('virtualbox__intnet: "ips-inside"') == 2
    )
    assert 'args: ["attacker", "10.10.2.0/24", ROUTER_OUTSIDE_IP]' in text
    assert 'args: ["victim", "10.10.1.0/24", ROUTER_INSIDE_IP]' in text
    assert 'bash "$SRC/deploy/install.sh"' in (ROOT / "deploy/vagrant/router.sh").read_text()
