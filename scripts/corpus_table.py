#!/usr/bin/env python3
"""Replay every capture in ../shared/corpus/pcaps/ with the default rules and tabulate the alerts.

Prints a Markdown table (capture, packets, the attack it holds, the alerts
raised, packets dropped); with ``--update README.md`` it replaces the table
between the ``corpus-table`` markers there. Re-run it with ``make corpus-table``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inline_ips.engine import Engine  # noqa: E402
from inline_ips.replay import replay  # noqa: E402
from inline_ips.rules.loader import load_rule_files  # noqa: E402
from tests.corpus import DEFAULT_RULES, PCAPS, corpus_pcaps, expected_attack  # noqa: E402

START = "<!-- corpus-table:start -->"
END = "<!-- corpus-table:end -->"


def table() -> tuple[str, bool]:
    rules = load_rule_files([DEFAULT_RULES]).ruleset
    rows = [
        "| capture | packets | attack | alerts raised (count) | dropped | named? |",
        "|---|---:|---|---|---:|:-:|",
    ]
    all_ok = True
    pcaps = corpus_pcaps()
    if not pcaps:
        raise SystemExit(f"corpus_table: no captures in {PCAPS}")
    for pcap in pcaps:
        attack = expected_attack(pcap)
        s = replay(pcap, Engine(rules), progress=False)
        alerts = sorted(s.alerts.items(), key=lambda kv: (-kv[1], kv[0]))
        named = any(s.alert_msgs[sid].startswith(attack + ":") for sid, _ in alerts)
        all_ok &= named
        raised = "<br>".join(f"{s.alert_msgs[sid]} ({n})" for sid, n in alerts) or "none"
        dropped = s.verdicts.get("drop", 0) + s.verdicts.get("block", 0) + s.verdicts.get("reject", 0)
        mark = "yes" if named else "**NO**"
        rows.append(f"| `{pcap.name}` | {s.packets} | {attack} | {raised} | {dropped} | {mark} |")
    return "\n".join(rows), all_ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--update", metavar="README", help="rewrite the table between the markers in this file")
    args = ap.parse_args()
    text, ok = table()
    if args.update:
        path = Path(args.update)
        doc = path.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        if not pattern.search(doc):
            raise SystemExit(f"corpus_table: {path} has no {START} ... {END} markers")
        path.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", doc))
        print(f"corpus_table: updated {path}")
    else:
        print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
