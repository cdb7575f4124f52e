"""inline_ips/detect/_fastrate.c against RateTracker.update, its specification: same windows.

For every measure and key, two trackers of the same rule count the same packets,
one through ``update`` (Python) and one through the compiled ``_fastrate.update``
(which hands what it does not do to ``update``). After every packet both must
have returned the same state and hold the same keys, in the same LRU order, with
equal windows. The packets revisit a few keys within and across windows, past
the threshold, with the key cap small enough to evict, and with a clock that
steps back.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP

from inline_ips.decode import decode
from inline_ips.detect import rate as rate_mod
from inline_ips.detect.rate import RateTracker, fast_kind
from inline_ips.flow import FlowTable
from inline_ips.rules.model import Measure, RateKey
from tests.detect.test_rate import rate_rule

pytestmark = pytest.mark.skipif(
    not rate_mod.FAST_RATE, reason=f"no compiled rate path: {rate_mod.FAST_RATE_REASON}"
)


def _windows(t: RateTracker) -> list[tuple[object, float, int, frozenset[int] | None, bool]]:
    return [
        (k, w.start, w.count, None if w.distinct is None else frozenset(w.distinct), w.fired)
        for k, w in t.keys.items()
    ]


def _traffic(seed: int, n: int = 600) -> list[tuple[float, bytes]]:
    rng = random.Random(seed)
    out = []
    ts = 1_700_000_000.0
    for _ in range(n):
        ts += rng.choice((0.01,) * 8 + (0.5, 12.0, -0.2))  # mostly close; a gap past the window; a step back
        src = f"10.0.0.{rng.randrange(1, 4)}"
        dst = f"192.0.2.{rng.randrange(1, 3)}"
        dport = rng.randrange(1, 40)
        if rng.random() < 0.5:
            p = IP(src=src, dst=dst) / UDP(sport=40000, dport=dport)
        else:
            p = IP(src=src, dst=dst) / TCP(sport=40000, dport=dport, flags=rng.choice(("S", "A", "SA")))
        out.append((ts, bytes(p)))
    return out


CASES = [
    (measure, key)
    for measure in (Measure.PACKETS, Measure.DST_PORTS, Measure.DST_HOSTS, Measure.SYNS, Measure.BYTES)
    for key in (RateKey.SRC, RateKey.SRC_DST, RateKey.DST)
]


@pytest.mark.parametrize(("measure", "key"), CASES, ids=lambda v: getattr(v, "value", v))
def test_compiled_and_python_trackers_keep_the_same_windows(measure: Measure, key: RateKey) -> None:
    # Two destination hosts in the traffic: a host count can reach 2 (per source), not 6.
    rule = rate_rule(measure, key, threshold=2 if measure is Measure.DST_HOSTS else 6, proto="ip")
    py, fast = RateTracker(rule, max_keys=5), RateTracker(rule, max_keys=5)
    assert (fast.fast is not None) == bool(fast_kind(measure, key is RateKey.SRC, key is RateKey.SRC_DST))
    slow_calls = 0
    if fast.fast is not None:
        # Count what the compiled path hands back, to show it did the rest itself.
        def slow(t: RateTracker, *args: object) -> int:
            nonlocal slow_calls
            slow_calls += 1
            return RateTracker.update(t, *args)  # type: ignore[arg-type]

        fast.fast = (*fast.fast[:5], slow)
    flows = FlowTable()
    states = []
    for i, (ts, raw) in enumerate(_traffic(seed=CASES.index((measure, key)))):
        pkt = decode(raw, ts)
        flow, to_server = flows.lookup(pkt)
        a = py.update(pkt, flow, to_server)
        b = (
            fast.update(pkt, flow, to_server)
            if fast.fast is None
            else rate_mod._fast_update(fast.fast, fast, pkt, flow, to_server)
        )
        assert a == b, f"packet {i}"
        assert _windows(py) == _windows(fast), f"packet {i}"
        assert py.evicted == fast.evicted
        states.append(a)
    crossable = measure in (Measure.PACKETS, Measure.DST_PORTS) or (measure, key) == (
        Measure.DST_HOSTS,
        RateKey.SRC,
    )
    assert {1, 2} <= set(states) or not crossable  # thresholds were crossed, and stayed crossed
    if fast.fast is not None:
        assert 600 - slow_calls > 150, slow_calls  # the compiled path counted most packets itself


def test_the_engine_counts_with_the_compiled_path() -> None:
    rule = rate_rule(Measure.DST_PORTS, RateKey.SRC, threshold=3, proto="udp")
    t = RateTracker(rule)
    assert t.fast is not None and t.fast[2] == fast_kind(Measure.DST_PORTS, True, False)
