#!/usr/bin/env python3
"""The offline demo (``make replay-demo``): attacks and ordinary traffic through the engine.

Builds benign traffic (browsing, DNS, TLS, a download) and the attacks the
default rules stop (SYN flood, port scan, ping sweep, ICMP flood, DNS
amplification, SQL injection and path traversal), replays each through the
same engine that runs inline, and prints what was allowed, dropped and
blocked, and which rule said so. Then it replays the real attack captures
from ../shared/corpus/pcaps when they are there. Nothing is sent on any
network; `make demo` is the live one, in a namespace lab.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inline_ips.engine import Engine  # noqa: E402
from inline_ips.lab import synth  # noqa: E402
from inline_ips.replay import replay  # noqa: E402
from inline_ips.rules.loader import load_rule_files  # noqa: E402
from tests.corpus import corpus_pcaps  # noqa: E402

BOLD, RED, GREEN, DIM, RESET = ("\033[1m", "\033[31m", "\033[32m", "\033[2m", "\033[0m")
if not sys.stdout.isatty():
    BOLD = RED = GREEN = DIM = RESET = ""


def show(title: str, pcap: Path, rules_path: Path) -> None:
    rules = load_rule_files([rules_path]).ruleset
    s = replay(pcap, Engine(rules), progress=False)
    stopped = s.verdicts.get("drop", 0) + s.verdicts.get("block", 0) + s.verdicts.get("reject", 0)
    allowed = s.verdicts.get("accept", 0) + s.verdicts.get("rewrite", 0)
    colour = RED if stopped else GREEN
    print(
        f"{BOLD}{title:<34}{RESET} {s.packets:>7} packets  "
        f"{GREEN}{allowed:>7} allowed{RESET}  {colour}{stopped:>7} stopped{RESET}  "
        f"{DIM}{s.blocked_hosts} host(s) blocked{RESET}"
    )
    for sid, n in sorted(s.alerts.items(), key=lambda kv: -kv[1]):
        print(f"    {RED}alert{RESET} [{sid}] {s.alert_msgs[sid]}  x{n}")


def main() -> int:
    rules = ROOT / "rules.yaml"
    print(f"{BOLD}inline-ips offline demo{RESET}: rules from {rules}\n")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{BOLD}Ordinary traffic (should all pass){RESET}")
        for name, build in synth.BENIGN.items():
            show(name, synth.write_pcap(Path(tmp) / "benign.pcap", build()), rules)
        print(f"\n{BOLD}Attacks (should be stopped){RESET}")
        for name, build in synth.ATTACKS.items():
            show(name, synth.write_pcap(Path(tmp) / "attack.pcap", build()), rules)
    pcaps = corpus_pcaps()
    if pcaps:
        print(f"\n{BOLD}Real attack captures from the shared corpus{RESET}")
        for pcap in pcaps:
            show(pcap.name[:34], pcap, rules)
    print("\nReplay any capture yourself:  .venv/bin/inline-ips replay FILE.pcap --eve eve.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
