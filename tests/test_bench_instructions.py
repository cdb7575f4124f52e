"""The instruction-count benchmark's parts: its workloads, its child, and callgrind's toggle.

The workloads must be what they claim (every packet of the UDP flood and the
TCP stream accepted by the default rules, the stream established, nothing
judged invalid), the child must judge them and say what it gave, and
``--toggle-collect=builtin_eval`` must count the eval() and nothing else
(checked with a real callgrind: ten times the loop, about ten times the count,
after earlier eval() calls that must not count).
A whole callgrind run of the engine takes half a minute a row and stays out
of CI (``make bench-instructions``).
"""

from __future__ import annotations

import itertools
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import instructions
from inline_ips.decode import decode


@pytest.mark.parametrize("workload", ["udp64", "tcp"])
def test_the_child_accepts_every_packet_of_a_benign_workload(workload: str, tmp_path: Path) -> None:
    stream = instructions.WORKLOADS[workload][1](400)
    assert len(stream) == 400
    assert all(a[0] < b[0] for a, b in itertools.pairwise(stream))  # in time order
    pkl = tmp_path / "packets.pkl"
    pkl.write_bytes(pickle.dumps((stream[:200], stream[200:])))
    info = instructions.child(pkl, [str(instructions.DEFAULT_RULES)])
    assert info["actions"] == {"accept": 200}
    assert isinstance(info["signatures"], int) and info["signatures"] > 0


def test_the_tcp_workload_is_one_connection_with_a_handshake() -> None:
    stream = instructions.tcp_stream(50)
    pkts = [decode(raw, ts) for ts, raw in stream]
    assert [p.tcp_flags & 0x12 for p in pkts[:3]] == [0x02, 0x12, 0x10]  # SYN, SYN-ACK, ACK
    assert {(p.sport, p.dport) for p in pkts} == {(40001, 5201), (5201, 40001)}
    assert not any(p.error for p in pkts)
    data = [p for p in pkts if p.payload]
    assert data and all(len(p.payload) == 1400 for p in data)
    assert all(b.tcp_seq - a.tcp_seq == 1400 for a, b in itertools.pairwise(data))


def test_the_udp_workload_is_two_flows_of_64_byte_datagrams() -> None:
    stream = instructions.udp64(10)
    assert {len(raw) for _, raw in stream} == {64}
    assert len({raw for _, raw in stream}) == 2


def test_callgrind_total_reads_the_totals_line(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text("version: 1\ncmd: python\nevents: Ir\nfn=main\n0 12\ntotals: 123456\n")
    assert instructions.callgrind_total(out) == 123456
    out.write_text("version: 1\nevents: Ir\n")
    with pytest.raises(ValueError, match="no totals"):
        instructions.callgrind_total(out)


def _counted(tmp_path: Path, n: int) -> int:
    """The last eval() of a program that calls eval() before it too (as namedtuple does)."""
    out = tmp_path / str(n) / "callgrind.out"
    out.parent.mkdir()
    code = (
        "import collections\n"
        "P = collections.namedtuple('P', 'a b')  # an eval() of its own\n"
        "for _ in range(50): eval('sum(range(20000))')  # far more than the loop below\n"
        # Same-sized work per pass: a growing sum would leave small ints and cost more per pass.
        f"x = 0\neval(compile('for i in range({n}):\\n    x = i ^ 1', '<m>', 'exec'))\n"
    )
    argv = [*instructions.callgrind_argv(out), sys.executable, "-c", code]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert cp.returncode == 0, cp.stderr
    return instructions.last_eval_total(out)


def test_callgrind_counts_only_the_last_eval(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (scripts/setup.sh installs it)")
    try:
        small, large = _counted(tmp_path, 20_000), _counted(tmp_path, 200_000)
    except RuntimeError as e:
        if "no per-eval file" in str(e):
            pytest.skip(str(e))
        raise
    # The earlier evals (50 x 20,000 additions) would make the ratio near 1 if they counted.
    assert 8 < large / small < 11, (small, large)


def test_markdown_names_each_row(tmp_path: Path) -> None:
    rows = [
        instructions.Row("udp64", "default", 4000, 160_000_000, {"accept": 4000}, 13, 30.0),
        instructions.Row(
            "tcp", "default + ET Open", 4000, 200_000_000, {"accept": 3990, "drop": 10}, 24262, 300.0
        ),
    ]
    text = instructions.markdown(rows, ["--markdown", "bench/RESULTS.md"])
    assert text.startswith(instructions.HEADING)
    assert "| 40,000 | accept 4000 |" in text
    assert "| 24,262 | 4,000 | 50,000 | accept 3990, drop 10 |" in text
