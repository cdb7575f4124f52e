"""inline_ips/compiled.py: an optional compiled twin is used, or the reason it is not is given."""

from __future__ import annotations

from types import ModuleType

import pytest

from inline_ips.compiled import load_twin


def _refuse(mod: ModuleType) -> None:
    raise TypeError("Flow has no slot client")


@pytest.mark.parametrize(
    ("name", "env", "setup", "why"),
    [
        ("json", "", lambda m: None, "compiled"),
        ("json", "1", lambda m: None, "T_FORCE is set"),
        ("json", "0", lambda m: None, "compiled"),  # 0 means not set
        ("inline_ips._no_such_twin", "", lambda m: None, "extension not available (No module named"),
        ("json", "", _refuse, "extension refused the classes it reads (Flow has no slot client)"),
    ],
)
def test_a_twin_is_loaded_or_the_reason_given(
    monkeypatch: pytest.MonkeyPatch, name: str, env: str, setup: object, why: str
) -> None:
    monkeypatch.setenv("T_FORCE", env)
    mod, reason = load_twin(name, "T_FORCE", setup)  # type: ignore[arg-type]
    assert reason.startswith(why)
    assert (mod is not None) == (why == "compiled")


def test_the_shipped_twins_load_when_built() -> None:
    from inline_ips import flow
    from inline_ips.detect import rate

    for ok, reason in ((flow.FAST_FLOW, flow.FAST_FLOW_REASON), (rate.FAST_RATE, rate.FAST_RATE_REASON)):
        assert ok == (reason == "compiled"), reason
