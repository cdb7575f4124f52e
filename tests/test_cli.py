"""The command line as a user meets it: exit codes and the words of its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inline_ips.cli import main
from inline_ips.lab import synth
from tests.corpus import DEFAULT_RULES, ROOT

BROKEN = ROOT / "tests" / "data" / "broken.yaml"


def test_check_rules_accepts_the_default_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-rules", str(DEFAULT_RULES)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_check_rules_lists_every_error_with_file_line_and_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """The README quotes exactly this output."""
    assert main(["check-rules", str(BROKEN)]) == 1
    err = capsys.readouterr().err.replace(str(ROOT) + "/", "")
    assert err.splitlines() == [
        "tests/data/broken.yaml:6: rule 2000001: unknown key 'treshold'",
        "tests/data/broken.yaml:7: rule 2000001: unknown action 'dropp'; "
        "use one of alert, rewrite, drop, reject, block",
        "tests/data/broken.yaml:19: rule 2200003: action: block needs key src or src+dst (with key dst "
        "the sources are often spoofed, and blocking them would punish bystanders); use drop",
        "3 error(s)",
    ]


def test_check_rules_json_reports_rule_files_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "local.rules"
    rules.write_text(
        'alert tcp any any -> any 80 (msg:"x"; content:"GET"; sid:1;)\n'
        'alert smtp any any -> any 25 (msg:"smtp"; sid:2;)\n'
        'alert tcp any any -> any 80 (msg:"bad"; depth:4; sid:3;)\n'
        'alert tcp any any -> any 80 (msg:"xb"; xbits:set,a,track ip_src; sid:4;)\n'
        '# alert tcp any any -> any 80 (msg:"off"; sid:5;)\n'
    )
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("include:\n  - local.rules\n")
    assert main(["check-rules", "--json", str(cfg)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    rf = report["rule_files"]
    assert (rf["files"], rf["rules"], rf["loaded"], rf["skipped"], rf["disabled"]) == (1, 4, 1, 3, 1)
    assert rf["loaded_percent"] == 25.0
    assert sorted((x["reason"], x["kind"], x["rules"]) for x in rf["skipped_by_reason"]) == [
        ("invalid: modifier without content", "invalid", 1),
        ("unsupported keyword 'xbits'", "unsupported", 1),
        ("unsupported protocol 'smtp'", "unsupported", 1),
    ]
    assert [f["file"] for f in rf["per_file"]] == [str(rules)]


def test_check_rules_text_names_every_skipped_rule_with_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "local.rules"
    rules.write_text('alert tcp any any -> any 80 (msg:"bad"; depth:4; sid:3;)\n')
    assert main(["check-rules", "-v", str(rules)]) == 0
    out, err = capsys.readouterr()
    assert "rule files: 0 of 1 rules loaded (0.0%), 1 skipped, 0 disabled" in out
    assert "skipped      1  invalid: modifier without content" in out
    assert err.strip() == f"{rules}:1: rule 3: invalid: 'depth' needs a content before it"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "/nonexistent/x.pcap"], "No such file or directory: '/nonexistent/x.pcap'"),
        (["replay", str(DEFAULT_RULES)], "rules.yaml: not a pcap or pcapng file (magic 0x"),
    ],
)
def test_replay_bad_input_names_the_file(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--rules", str(DEFAULT_RULES)]) == 1
    assert expected in capsys.readouterr().err


def test_replay_unwritable_eve_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = synth.write_pcap(tmp_path / "x.pcap", synth.http_attacks())
    blocker = tmp_path / "file"
    blocker.write_text("")
    eve = blocker / "eve.json"  # a path below a regular file cannot be created, even by root
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--eve", str(eve)]) == 1
    err = capsys.readouterr().err
    assert str(eve) in err
    assert "Not a directory" in err


def test_replay_text_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = synth.write_pcap(tmp_path / "scan.pcap", synth.port_scan(range(1, 101)))
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "100 packets" in out
    assert "verdicts: accept 24, block 1, drop 75" in out
    assert "drops by reason: blocklist 75, rate 1" in out
    assert "[2200030] port scan: TCP SYN to more than 25 ports of one host in 10s" in out


def test_replay_progress_bar_when_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = synth.write_pcap(tmp_path / "flood.pcap", synth.icmp_flood(count=3000))
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--progress"]) == 0
    assert "packets" in capsys.readouterr().err


def test_console_script_runs() -> None:
    """`python -m inline_ips` is the same entry point the installed `inline-ips` uses."""
    out = subprocess.run(
        [sys.executable, "-m", "inline_ips", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.startswith("inline-ips ")


def test_duplicate_sid_across_files_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("signatures:\n  - {sid: 7, msg: one, proto: tcp, flags: S}\n")
    b.write_text("rate:\n  - {sid: 7, msg: two, proto: udp, window: 1s, threshold: 5}\n")
    assert main(["check-rules", str(a), str(b)]) == 1
    assert f"{b}:2: rule 7: duplicate sid (also at {a}:2)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        # Refused before the firewall is touched: these run as any user, without root.
        (["--webhook", "ftp://chat.example/hook"], 1, "ftp://chat.example/hook"),
        (["--syslog", "tcp://10.0.0.5:514"], 1, "tcp://10.0.0.5:514"),
        (["--syslog-facility", "local9", "--syslog"], 1, "local9"),
        (["--webhook", "http://127.0.0.1:9/", "--webhook-header", "no colon"], 1, "no colon"),
        (["--webhook-events", "alert,nosuch", "--webhook", "http://127.0.0.1:9/"], 1, "nosuch"),
        (["--sink-queue", "0", "--webhook", "http://127.0.0.1:9/"], 1, "--sink-queue 0"),
        (["--metrics", "127.0.0.1:99999"], 2, "out of range"),
        (["--stats-interval", "-1"], 2, "cannot be negative"),
    ],
)
def test_run_refuses_bad_output_options_naming_the_value(
    argv: list[str], code: int, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from inline_ips import runner

    def must_not_start(_opts: object) -> int:
        raise AssertionError("the bad option got through to the firewall")

    monkeypatch.setattr(runner, "run", must_not_start)  # a regression must not touch this host's firewall
    if code == 2:
        with pytest.raises(SystemExit) as e:
            main(["run", "--rules", str(DEFAULT_RULES), *argv])
        assert e.value.code == 2
    else:
        assert main(["run", "--rules", str(DEFAULT_RULES), *argv]) == 1
    assert says in capsys.readouterr().err
