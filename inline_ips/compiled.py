"""Loading an optional compiled twin of a Python function, or saying why not.

What it does: imports an extension module built beside the package (setup.py
marks every one optional), unless the environment variable that forces the
Python code is set, and runs the module's set-up (which checks the classes it
will read by slot offset). Returns the module, or None and the reason, which
the caller keeps for ``inline-ips`` diagnostics and tests.

What it does not do: compare the compiled code with the Python code; each
twin's tests do that on real traffic (``tests/test_fastflow.py``,
``tests/detect/test_fastrate.py``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType


def load_twin(
    name: str, force_python: str, setup: Callable[[ModuleType], object]
) -> tuple[ModuleType | None, str]:
    """``(module, "compiled")``, or ``(None, why)``: ``force_python`` set, module absent or refusing."""
    if os.environ.get(force_python, "") not in ("", "0"):
        return None, f"{force_python} is set"
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        return None, f"extension not available ({exc})"
    try:
        setup(mod)
    except TypeError as exc:
        return None, f"extension refused the classes it reads ({exc})"
    return mod, "compiled"
