"""The ``inline-ips`` command line: replay, check-rules, run, cleanup, block, lab.

Parses arguments, loads rules, builds the engine and hands off to the
module that does the work; it holds no detection logic. Exit codes: 0 on
success, 1 when rules or inputs are invalid, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from inline_ips import __version__
from inline_ips.detect.bypass import BypassOptions
from inline_ips.engine import Engine
from inline_ips.flow import FlowOptions
from inline_ips.options import DEFAULT_METRICS_LISTEN, EngineOptions, PrivilegeOptions
from inline_ips.output.eve import EveOutputError, EveWriter
from inline_ips.replay import replay
from inline_ips.rules.loader import LoadReport, load_rule_files
from inline_ips.rules.yaml_loader import RulesError
from inline_ips.source.pcap import PcapError

DEFAULT_RULES = ("rules.yaml", "/etc/inline-ips/rules.yaml")

if TYPE_CHECKING:
    from inline_ips.firewall.iptables import FirewallConfig as FirewallConfigT
    from inline_ips.output.sinks import SinkOptions as SinkOptionsT
    from inline_ips.output.sinks import SyslogFormat as SyslogFormatT


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


# --set KEY=VALUE: the settings suricata-verify cases name, with Suricata's meaning.
SETTINGS = ("checksum-checks", "stream.midstream", "stream.inline", "simulate-ips")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _bool_setting(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{key} takes true or false, got {value!r}")


def _busy_poll_us(text: str) -> int:
    from inline_ips.source.nfqueue import MAX_SPIN_US  # noqa: PLC0415 - keeps --help fast

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of microseconds: {text!r}") from None
    if not 0 <= value <= MAX_SPIN_US:
        raise argparse.ArgumentTypeError(f"{value} is out of range 0-{MAX_SPIN_US}")
    return value


def replay_options(settings: Sequence[str], bypass_after: int, no_midstream: bool = False) -> EngineOptions:
    """EngineOptions for replay from ``--set KEY=VALUE`` items (ValueError naming a bad one).

    Replay defaults to judging as if inline (IPS, midstream pickups, no
    checksum checks); each key switches to Suricata's meaning of that setting:
    ``checksum-checks`` (none, all or auto), ``stream.midstream``,
    ``stream.inline`` (accepted for compatibility: this engine always inspects
    the stream as it arrives, which only moves when an alert fires, not how
    many) and ``simulate-ips`` (false: IDS, nothing dropped).
    """
    midstream = not no_midstream
    checksums = "none"
    ips = True
    for item in settings:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if key == "checksum-checks":
            v = value.strip().lower()
            if v in ("none", "no", "false", "off"):
                checksums = "none"
            elif v in ("all", "yes", "true", "on"):
                checksums = "all"
            elif v == "auto":
                checksums = "auto"
            else:
                raise ValueError(f"checksum-checks takes none, all or auto, got {value!r}")
        elif key == "stream.midstream":
            midstream = _bool_setting(key, value)
        elif key == "stream.inline":
            if value.strip().lower() != "auto":
                _bool_setting(key, value)
        elif key == "simulate-ips":
            ips = _bool_setting(key, value)
        else:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
    return EngineOptions(
        flows=FlowOptions(midstream=midstream),
        bypass=_bypass_options(bypass_after),
        checksum_checks=checksums,
        ips=ips,
    )


def _bypass_options(after_packets: int) -> BypassOptions:
    """--bypass-after N: N packets or 256 KiB, whichever comes first; 0 turns bypass by volume off."""
    return BypassOptions(after_packets=after_packets, after_bytes=262_144 if after_packets > 0 else 0)


def _rules_report(report: LoadReport) -> dict[str, object]:
    """check-rules --json: what loaded, and every skipped rule counted by reason."""
    rs = report.ruleset
    reasons: Counter[str] = Counter()
    kinds: dict[str, str] = {}
    for fr in report.rule_files:
        reasons.update(fr.skipped)
        kinds.update(fr.kinds)
    active = report.active
    return {
        "ok": True,
        "files": list(report.files),
        "signatures": len(rs.signatures),
        "rate_rules": len(rs.rates),
        "rule_files": {
            "files": len(report.rule_files),
            "rules": active,
            "loaded": report.loaded,
            "skipped": report.skipped,
            "loaded_percent": round(100.0 * report.loaded / active, 1) if active else 100.0,
            "disabled": sum(fr.disabled for fr in report.rule_files),
            "seconds": round(report.seconds, 2),
            "skipped_by_reason": [
                {"reason": reason, "kind": kinds[reason], "rules": n} for reason, n in reasons.most_common()
            ],
            "per_file": [fr.as_dict() for fr in report.rule_files],
        },
    }


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
        print(json.dumps(_rules_report(report), indent=2))
        return 0
    yaml_files = [f for f in report.files if not f.endswith(".rules")]
    if yaml_files:
        yaml_sigs = len(rs.signatures) - report.loaded
        print(f"ok: {yaml_sigs} signature rules, {len(rs.rates)} rate rules from {', '.join(yaml_files)}")
    if report.rule_files:
        info = _rules_report(report)["rule_files"]
        assert isinstance(info, dict)
        print(
            f"rule files: {info['loaded']} of {info['rules']} rules loaded ({info['loaded_percent']}%), "
            f"{info['skipped']} skipped, {info['disabled']} disabled, in {info['seconds']} s"
        )
        for item in info["skipped_by_reason"]:
            reason, kind = item["reason"], item["kind"]
            label = reason if reason.startswith(kind) else f"{reason} ({kind})"
            print(f"  skipped {item['rules']:>6}  {label}")
        if args.verbose:
            for fr in report.rule_files:
                for msg in fr.messages:
                    print(msg, file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        report = _load(args)
    except RulesError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        return 1
    for fr in report.rule_files:
        if fr.skipped:
            print(
                f"inline-ips: {fr.file}: {fr.loaded} rules loaded, {sum(fr.skipped.values())} skipped "
                "(inline-ips check-rules shows why)",
                file=sys.stderr,
            )
    try:
        opts = replay_options(args.set, args.bypass_after, args.no_midstream)
    except ValueError as e:
        print(f"inline-ips: --set: {e}", file=sys.stderr)
        return 2

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


# The live commands import python-iptables, which needs the iptables libraries at
# import time; they are imported inside the commands so replay and check-rules
# work on any machine.


def _firewall_config(args: argparse.Namespace) -> FirewallConfigT:
    from inline_ips.firewall.iptables import FirewallConfig  # noqa: PLC0415 - see above

    return FirewallConfig(
        queue_num=args.queue,
        queues=getattr(args, "workers", 1),
        hook_input=getattr(args, "input", False),
        ipv6=not getattr(args, "no_ipv6", False),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from inline_ips import runner  # noqa: PLC0415 - see above

    runner.configure_logging(args.verbose)
    files = args.rules or _default_rules()
    if not files:
        print(f"inline-ips: no --rules given and none of {', '.join(DEFAULT_RULES)} exists", file=sys.stderr)
        return 1
    try:
        sinks = _sink_options(args)
    except ValueError as e:
        print(f"inline-ips: {e}", file=sys.stderr)
        return 1
    opts = runner.RunOptions(
        rules=tuple(files),
        variables=_parse_vars(args.var),
        firewall=_firewall_config(args),
        engine=EngineOptions(bypass=_bypass_options(args.bypass_after), emulate_blocklist=False),
        queue_maxlen=args.queue_maxlen,
        busy_poll_us=args.busy_poll_us,
        fail_open=not args.fail_closed,
        eve=args.eve,
        metrics=None if args.no_metrics else args.metrics,
        stats_interval=args.stats_interval,
        sinks=sinks,
        privilege=PrivilegeOptions(user=args.user),
    )
    try:
        return runner.run(opts)
    except (OSError, RuntimeError) as e:
        print(f"inline-ips: {e}", file=sys.stderr)
        return 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    from inline_ips.firewall import commands  # noqa: PLC0415 - see above

    lines = commands.cleanup(_firewall_config(args))
    print("\n".join(lines) if lines else "nothing of inline-ips was installed")
    return 0


def cmd_block(args: argparse.Namespace) -> int:
    from inline_ips.firewall import commands  # noqa: PLC0415 - see above

    cfg = _firewall_config(args)
    try:
        if args.block_command == "list":
            print("\n".join(commands.block_list(cfg)) or "the blocklist is empty")
        elif args.block_command == "add":
            allow = None
            files = args.rules or _default_rules()
            if files:
                allow = load_rule_files(files, _parse_vars(args.var)).ruleset.allowlist
            print(commands.block_add(cfg, args.address, args.seconds, allowlist=allow))
        else:
            print(commands.block_del(cfg, args.address))
    except (ValueError, OSError, RulesError) as e:
        print(f"inline-ips: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from inline_ips import top  # noqa: PLC0415 - curses and pyroute2 only when used

    return top.run_top(args.url, args.interval, args.once, args.count, None, sys.stdout)


def cmd_lab(args: argparse.Namespace) -> int:
    from inline_ips.lab import demo  # noqa: PLC0415 - see above

    if args.lab_command == "up":
        demo.lab_up(args.prefix)
        print(f"lab {args.prefix} is up: namespaces {args.prefix}-client, -attacker, -router, -server")
    elif args.lab_command == "down":
        demo.lab_down(args.prefix)
        print(f"lab {args.prefix} is down")
    else:
        try:
            return demo.demo(args.prefix)
        except KeyboardInterrupt:
            print("interrupted; the lab was torn down", file=sys.stderr)
            return 130
    return 0


def _sink_options(args: argparse.Namespace) -> SinkOptionsT:
    """The syslog and webhook outputs of ``run``; ValueError names a bad value."""
    from inline_ips.output import sinks as s  # noqa: PLC0415 - see above

    syslog = None
    if args.syslog is not None:
        target = s.parse_syslog_target(args.syslog)
        # journald reads only the BSD header on /dev/log; a remote collector wants RFC 5424.
        fmt: SyslogFormatT = args.syslog_format or ("rfc5424" if target.kind == "udp" else "rfc3164")
        syslog = s.SyslogOptions(
            target=args.syslog,
            facility=args.syslog_facility,
            format=fmt,
            event_types=s.parse_event_types(args.syslog_events),
        )
    webhook = None
    if args.webhook is not None:
        webhook = s.WebhookOptions(
            url=s.parse_webhook_url(args.webhook),
            format=args.webhook_format,
            event_types=s.parse_event_types(args.webhook_events),
            headers=tuple(s.parse_header(h) for h in args.webhook_header),
            timeout=args.webhook_timeout,
        )
    if args.sink_queue < 1:
        raise ValueError(f"--sink-queue {args.sink_queue}: must be at least 1")
    opts = s.SinkOptions(syslog=syslog, webhook=webhook, queue_size=args.sink_queue)
    s.build_sinks(opts)  # checks every option now, before the firewall is touched
    return opts


def _listen_address(text: str) -> str:
    from inline_ips.output.metrics import parse_listen  # noqa: PLC0415 - see above

    try:
        parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds cannot be negative")
    return value


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
            help="rules.yaml or a Suricata/Snort .rules file (repeatable); "
            "default ./rules.yaml, then /etc/inline-ips/rules.yaml",
        )
        sp.add_argument(
            "--var",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="set a rule variable, e.g. --var HOME_NET=[10.0.0.0/8]",
        )

    cr = sub.add_parser(
        "check-rules",
        help="validate rules.yaml (exit 1 on any error) and report how much of each .rules file loads",
    )
    cr.add_argument("files", nargs="*", metavar="FILE", help="rules.yaml and/or Suricata/Snort .rules files")
    cr.add_argument("--json", action="store_true", help="machine-readable report")
    cr.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    cr.add_argument(
        "-v", "--verbose", action="store_true", help="print every rule that did not load, and why"
    )
    cr.set_defaults(func=cmd_check_rules, rules=None)

    rp = sub.add_parser("replay", help="run captures through the engine offline, as if inline")
    rp.add_argument("pcap", nargs="+", metavar="FILE.pcap")
    rules_args(rp)
    rp.add_argument("--eve", metavar="OUT", help="write EVE JSON events here ('-' for stdout)")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.add_argument(
        "--no-midstream",
        action="store_true",
        help="no session for TCP flows picked up without a handshake (same as --set stream.midstream=false)",
    )
    rp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Suricata setting: checksum-checks=none|all|auto, stream.midstream=true|false, "
        "stream.inline=true|false, simulate-ips=true|false",
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

    def queue_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--queue", type=int, default=0, metavar="N", help="first NFQUEUE number (default 0)")
        sp.add_argument("--no-ipv6", action="store_true", help="leave ip6tables alone")

    run = sub.add_parser("run", help="judge forwarded traffic inline (NFQUEUE; needs root)")
    rules_args(run)
    queue_args(run)
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="spread flows over N queues, one process each (--queue-balance)",
    )
    run.add_argument(
        "--input", action="store_true", help="also judge traffic to this host (INPUT), not only FORWARD"
    )
    run.add_argument(
        "--queue-maxlen",
        type=int,
        default=4096,
        metavar="N",
        help="packets the kernel holds for us before fail-open lets the rest pass",
    )
    run.add_argument(
        "--busy-poll-us",
        type=_busy_poll_us,
        default=0,
        metavar="US",
        help="after a packet, poll the queue this many microseconds before sleeping: "
        "less added latency under steady traffic, for CPU time (default 0: off)",
    )
    run.add_argument(
        "--fail-closed",
        action="store_true",
        help="drop packets when the queue is full instead of passing them (not the default)",
    )
    run.add_argument("--eve", metavar="FILE", help="write EVE JSON events here (reopened on SIGHUP)")
    run.add_argument(
        "--metrics",
        type=_listen_address,
        default=DEFAULT_METRICS_LISTEN,
        metavar="HOST:PORT",
        help=f"serve Prometheus metrics here (default {DEFAULT_METRICS_LISTEN}, loopback only)",
    )
    run.add_argument("--no-metrics", action="store_true", help="do not serve Prometheus metrics")
    run.add_argument(
        "--stats-interval",
        type=_seconds,
        default=8.0,
        metavar="SECONDS",
        help="write an EVE stats event this often (default 8, as Suricata; 0: never)",
    )
    out = run.add_argument_group("EVE outputs besides --eve (each behind a bounded queue that never blocks)")
    out.add_argument(
        "--syslog",
        nargs="?",
        const="/dev/log",
        metavar="TARGET",
        help="send events to syslog: a unix socket (default /dev/log) or udp://HOST[:PORT]",
    )
    out.add_argument(
        "--syslog-facility", default="local5", metavar="NAME", help="default local5, as Suricata"
    )
    out.add_argument(
        "--syslog-format",
        choices=["rfc5424", "rfc3164"],
        help="message header (default rfc3164 on a unix socket, which journald reads; rfc5424 over UDP)",
    )
    out.add_argument(
        "--syslog-events", default="alert", metavar="TYPES", help="e.g. alert,drop (default alert)"
    )
    out.add_argument("--webhook", metavar="URL", help="POST events to this http(s) URL (e.g. a chat channel)")
    out.add_argument(
        "--webhook-format",
        choices=["ndjson", "slack"],
        default="ndjson",
        help='JSON lines, or Slack/Mattermost {"text": ...} messages (default ndjson)',
    )
    out.add_argument(
        "--webhook-events", default="alert", metavar="TYPES", help="e.g. alert,drop (default alert)"
    )
    out.add_argument(
        "--webhook-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, e.g. Authorization (repeatable)",
    )
    out.add_argument(
        "--webhook-timeout", type=_seconds, default=5.0, metavar="SECONDS", help="per request (default 5)"
    )
    out.add_argument(
        "--sink-queue",
        type=int,
        default=10_000,
        metavar="N",
        help="events each output holds while its receiver is slow; beyond that they are dropped and counted",
    )
    run.add_argument(
        "--bypass-after",
        type=int,
        default=64,
        metavar="N",
        help="let the kernel carry a clean flow after N packets (0: never)",
    )
    run.add_argument(
        "--user",
        metavar="NAME",
        help="after set-up (rules installed, port bound, files opened), run as this user keeping only "
        "CAP_NET_ADMIN and CAP_NET_RAW (start as root; under systemd use User= instead)",
    )
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=cmd_run)

    tp = sub.add_parser(
        "top", help="live view of a running inline-ips: traffic, drops, top rules, blocked hosts"
    )
    tp.add_argument(
        "--url",
        default=f"http://{DEFAULT_METRICS_LISTEN}/metrics",
        help=f"the exporter's metrics URL (default http://{DEFAULT_METRICS_LISTEN}/metrics)",
    )
    tp.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between frames (default 1)"
    )
    tp.add_argument(
        "--once", action="store_true", help="print one frame to stdout and exit (for scripts; no terminal)"
    )
    tp.add_argument(
        "--count", type=int, metavar="N", help="stop after N frames (with --once: print N frames)"
    )
    tp.set_defaults(func=cmd_top)

    cl = sub.add_parser("cleanup", help="remove every iptables rule, chain and ipset inline-ips installed")
    queue_args(cl)
    cl.set_defaults(func=cmd_cleanup)

    bl = sub.add_parser("block", help="show or change the kernel blocklist")
    queue_args(bl)
    bsub = bl.add_subparsers(dest="block_command", required=True)
    bsub.add_parser("list", help="blocked addresses and seconds left")
    ba = bsub.add_parser("add", help="block an address (refused for allowlisted addresses)")
    ba.add_argument("address")
    ba.add_argument("--seconds", type=int, default=600)
    rules_args(ba)
    bd = bsub.add_parser("del", help="unblock an address")
    bd.add_argument("address")
    bl.set_defaults(func=cmd_block)

    lab = sub.add_parser("lab", help="network-namespace lab: client, attacker, router (IPS), server")
    lab.add_argument("lab_command", choices=["up", "down", "demo"])
    lab.add_argument("--prefix", default="iips", help="namespace name prefix (default iips)")
    lab.set_defaults(func=cmd_lab)
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
