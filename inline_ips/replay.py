"""Offline replay: feed a capture through the engine as if it were inline.

Reads IP datagrams from a pcap/pcapng file, asks the same :class:`Engine`
that runs on NFQUEUE for a verdict on each, writes EVE events for alerts and
drops, and counts everything into a :class:`ReplaySummary`. A dropped or
blocked packet is simply not "forwarded"; nothing is sent anywhere.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from inline_ips.engine import Engine, Result
from inline_ips.output.eve import EveWriter, alert_event, drop_event
from inline_ips.source.pcap import PcapReader
from inline_ips.verdict import Action


@dataclass
class ReplaySummary:
    file: str
    packets: int = 0
    non_ip_frames: int = 0
    truncated_records: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    drop_reasons: Counter[str] = field(default_factory=Counter)
    alerts: Counter[int] = field(default_factory=Counter)
    alert_msgs: dict[int, str] = field(default_factory=dict)
    decode_errors: Counter[str] = field(default_factory=Counter)
    engine_errors: int = 0
    flows: int = 0
    blocked_hosts: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "packets": self.packets,
            "non_ip_frames": self.non_ip_frames,
            "truncated_records": self.truncated_records,
            "verdicts": dict(self.verdicts),
            "drop_reasons": dict(self.drop_reasons),
            "alerts": [
                {"sid": sid, "signature": self.alert_msgs[sid], "count": n}
                for sid, n in sorted(self.alerts.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "decode_errors": dict(self.decode_errors),
            "engine_errors": self.engine_errors,
            "flows": self.flows,
            "blocked_hosts": self.blocked_hosts,
            "seconds": round(self.seconds, 3),
            "packets_per_second": round(self.packets / self.seconds) if self.seconds > 0 else 0,
        }

    def render(self) -> str:
        lines = [
            f"{self.file}: {self.packets} packets in {self.seconds:.2f}s "
            f"({self.packets / self.seconds if self.seconds else 0:,.0f} packets/s), {self.flows} flows",
            "verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())) or "none"),
        ]
        if self.drop_reasons:
            lines.append(
                "drops by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(self.drop_reasons.items()))
            )
        if self.blocked_hosts:
            lines.append(f"hosts blocked: {self.blocked_hosts}")
        if self.alerts:
            lines.append("alerts by rule:")
            for sid, n in sorted(self.alerts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {n:>8}  [{sid}] {self.alert_msgs[sid]}")
        else:
            lines.append("alerts: none")
        if self.decode_errors:
            lines.append(
                "decode errors: " + ", ".join(f"{k} {v}" for k, v in sorted(self.decode_errors.items()))
            )
        if self.non_ip_frames or self.truncated_records:
            lines.append(
                f"skipped: {self.non_ip_frames} non-IP frames, {self.truncated_records} truncated records"
            )
        if self.engine_errors:
            lines.append(f"ENGINE ERRORS (packets accepted, fail-open): {self.engine_errors}")
        return "\n".join(lines)


class Progress:
    """A one-line progress bar on a terminal; silent when output is not a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.stream = stream = stream if stream is not None else sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, done: int, packets: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r[{bar:<30}] {frac:6.1%} {packets:>10,} packets")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def replay(
    path: str | Path,
    engine: Engine,
    eve: EveWriter | None = None,
    progress: bool | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> ReplaySummary:
    reader = PcapReader(path)
    summary = ReplaySummary(str(path))
    bar: Progress | None = None
    started = time.perf_counter()
    for ts, raw in reader:
        if bar is None:
            bar = Progress(reader.file_size, enabled=progress)
        res = engine.process(raw, ts)
        summary.packets += 1
        v = res.verdict
        summary.verdicts[v.action.name.lower()] += 1
        if v.action >= Action.DROP:
            summary.drop_reasons[v.reason.value] += 1
        for a in res.alerts:
            summary.alerts[a.sid] += 1
            summary.alert_msgs[a.sid] = a.msg
        if eve is not None:
            blocked = v.action.blocks
            for a in res.alerts:
                eve.write(alert_event(res.packet, res.flow_id, res.to_server, a, blocked, res.app_proto))
            if blocked:
                eve.write(drop_event(res.packet, res.flow_id, v))
        if on_result is not None:
            on_result(res)
        if not summary.packets & 0x3FF:
            bar.update(reader.bytes_read, summary.packets)
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - started
    summary.non_ip_frames = reader.non_ip_skipped
    summary.truncated_records = reader.truncated
    summary.decode_errors = Counter(engine.decode_errors)
    summary.engine_errors = engine.stats["engine_errors"]
    summary.flows = engine.flows.stats["created"]
    summary.blocked_hosts = engine.blocklist.stats["added"]
    return summary
