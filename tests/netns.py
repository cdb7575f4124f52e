"""Throw-away network namespaces for tests that need real kernel networking.

Every name carries this process's id so parallel or crashed runs never
collide, and :func:`netns` always deletes what it created. Tests send
traffic only between namespaces they made. Skips when not root or when
``ip netns`` is unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def require_root_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, iptables)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command")


def run(
    *args: str, ns: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


@contextmanager
def netns(*names: str) -> Iterator[dict[str, str]]:
    """Create namespaces named ``t<pid>-<name>``; yield {name: real name}; always delete them."""
    real = {n: f"t{os.getpid()}-{n}" for n in names}
    try:
        for r in real.values():
            run("ip", "netns", "add", r)
            run("ip", "link", "set", "lo", "up", ns=r)
        yield real
    finally:
        for r in real.values():
            subprocess.run(["ip", "netns", "del", r], capture_output=True, check=False)
