"""The ``inline-ips`` command line: ``replay`` and ``check-rules``.

Parses arguments, loads rules, builds the engine and hands off to the
module that does the work; it holds no detection logic. Exit codes: 0 on
success, 1 when rules or inputs are invalid, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from inline_ips import __version__
from inline_ips.detect.bypass import BypassOptions
from inline_ips.engine import Engine
from inline_ips.flow import FlowOptions
from inline_ips.options import EngineOptions
from inline_ips.output.eve import EveOutputError, EveWriter
from inline_ips.replay import replay
from inline_ips.rules.loader import LoadReport, load_rule_files
from inline_ips.rules.yaml_loader import RulesError
from inline_ips.source.pcap import PcapError

DEFAULT_RULES = ("rules.yaml", "/etc/inline-ips/rules.yaml")


def _default_rules() -> list[str]:
    for cand in DEFAULT_RULES:
        if Path(cand).is_file():
            return [cand]
    return []


def _parse_vars(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"inline-ips: --var wants NAME=VALUE, got {item!r}")
        out[name.lstrip("$")] = value
    return out


def _load(args: argparse.Namespace) -> LoadReport:
    files = args.rules or _default_rules()
    if not files:
        raise RulesError([f"no --rules given and none of {', '.join(DEFAULT_RULES)} exists"])
    return load_rule_files(files, _parse_vars(args.var))


def cmd_check_rules(args: argparse.Namespace) -> int:
    try:
        report = _load(args)
    except RulesError as e:
        if args.json:
            print(json.dumps({"ok": False, "errors": e.errors}, indent=2))
        else:
            for line in e.errors:
                print(line, file=sys.stderr)
            print(f"{len(e.errors)} error(s)", file=sys.stderr)
        return 1
    rs = report.ruleset
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "files": list(report.files),
                    "signatures": len(rs.signatures),
                    "rate_rules": len(rs.rates),
                    "not_loaded": [{"file": f, "reason": r} for f, r in report.not_loaded],
                },
                indent=2,
            )
        )
    else:
        files = ", ".join(report.files)
        print(f"ok: {len(rs.signatures)} signature rules, {len(rs.rates)} rate rules from {files}")
        for f, reason in report.not_loaded:
            print(f"not loaded: {f}: {reason}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        report = _load(args)
    except RulesError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        return 1
    for f, reason in report.not_loaded:
        print(f"inline-ips: not loaded: {f}: {reason}", file=sys.stderr)
    opts = EngineOptions(
        flows=FlowOptions(midstream=not args.no_midstream),
        bypass=BypassOptions(
            after_packets=args.bypass_after, after_bytes=0 if args.bypass_after == 0 else 262_144
        ),
    )
    eve = None
    if args.eve:
        try:
            eve = EveWriter(args.eve)
        except EveOutputError as e:
            print(f"inline-ips: {e}", file=sys.stderr)
            return 1
    summaries = []
    try:
        for pcap in args.pcap:
            engine = Engine(report.ruleset, opts)
            try:
                summary = replay(pcap, engine, eve, progress=args.progress)
            except (PcapError, OSError) as e:
                print(f"inline-ips: {e}", file=sys.stderr)
                return 1
            summaries.append(summary)
            if not args.json:
                print(summary.render())
    finally:
        if eve is not None:
            eve.close()
    if args.json:
        print(json.dumps([s.as_dict() for s in summaries], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inline-ips", description="Inline intrusion prevention for Linux routers."
    )
    p.add_argument("--version", action="version", version=f"inline-ips {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def rules_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--rules",
            action="append",
            metavar="FILE",
            help="rules.yaml (repeatable); default ./rules.yaml, then /etc/inline-ips/rules.yaml",
        )
        sp.add_argument(
            "--var",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="set a rule variable, e.g. --var HOME_NET=[10.0.0.0/8]",
        )

    cr = sub.add_parser("check-rules", help="validate rule files; exit 1 on any error")
    cr.add_argument("files", nargs="*", metavar="FILE")
    cr.add_argument("--json", action="store_true", help="machine-readable report")
    cr.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    cr.set_defaults(func=cmd_check_rules, rules=None)

    rp = sub.add_parser("replay", help="run captures through the engine offline, as if inline")
    rp.add_argument("pcap", nargs="+", metavar="FILE.pcap")
    rules_args(rp)
    rp.add_argument("--eve", metavar="OUT", help="write EVE JSON events here ('-' for stdout)")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.add_argument(
        "--no-midstream",
        action="store_true",
        help="do not treat TCP flows picked up without a handshake as established",
    )
    rp.add_argument(
        "--bypass-after",
        type=int,
        default=64,
        metavar="N",
        help="stop inspecting a clean flow after N packets, as the kernel would once it is "
        "bypassed inline (default 64; 0 never bypasses)",
    )
    prog = rp.add_mutually_exclusive_group()
    prog.add_argument("--progress", action="store_true", default=None, help="always show the progress bar")
    prog.add_argument("--no-progress", action="store_false", dest="progress", help="never show it")
    rp.set_defaults(func=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-rules":
        args.rules = args.files or None
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
