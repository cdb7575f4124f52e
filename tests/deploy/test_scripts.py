"""Every shell script in the repository passes shellcheck and starts with strict mode.

"Every script" is found, not listed: each file under the project (outside
.git, .venv and caches) named ``*.sh`` or starting with a ``sh``/``bash``
shebang, so a new script cannot be forgotten. A deliberately broken script
shows that the shellcheck run used here does report problems. Skipped
without shellcheck (Debian package ``shellcheck``, installed by scripts/setup.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".git",
    ".venv",
    ".vagrant",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "node_modules",
}
SHEBANG = re.compile(rb"^#!\s*(/usr)?/bin/(env\s+)?(ba)?sh\b")
SHELLCHECK = shutil.which("shellcheck")
needs_shellcheck = pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed (Debian package)")


def shell_scripts() -> list[Path]:
    found = []
    for p in sorted(ROOT.rglob("*")):
        rel = p.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix == ".sh":
            found.append(p)
            continue
        with p.open("rb") as f:
            if SHEBANG.match(f.read(64)):
                found.append(p)
    return found


def _shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert SHELLCHECK is not None
    return subprocess.run(
        [SHELLCHECK, "--format=gcc", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_scripts_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in shell_scripts()}
    assert {"scripts/setup.sh", ".ci/run", "deploy/install.sh", "deploy/uninstall.sh"} <= names
    assert {"deploy/vagrant/router.sh", "deploy/vagrant/leaf.sh"} <= names
    assert not any(n.endswith((".py", ".yml", ".json")) for n in names)


@needs_shellcheck
def test_every_script_passes_shellcheck() -> None:
    cp = _shellcheck(*shell_scripts())
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_every_script_runs_in_strict_mode() -> None:
    for p in shell_scripts():
        assert re.search(r"^set -euo pipefail$", p.read_text(), re.M), (
            f"{p.relative_to(ROOT)}: no set -euo pipefail"
        )


@needs_shellcheck
def test_shellcheck_reports_a_broken_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nset -euo pipefail\nfor f in $(ls "$1"); do rm $f; done\n')
    cp = _shellcheck(bad)
    assert cp.returncode != 0 and "SC2045" in cp.stdout and "SC2086" in cp.stdout, cp.stdout
