"""Value parsers: content strings, TCP flags (checked on concrete flag bytes), durations."""

from __future__ import annotations

import pytest

from inline_ips.packet import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from inline_ips.rules.keywords import parse_content, parse_duration, parse_flags
from inline_ips.rules.model import FlagsMatch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", b"abc"),
        ("|41 42|", b"AB"),
        ("|4142|", b"AB"),
        ("GET |20|/", b"GET  /"),
        ("a|00 ff|b|0d0a|", b"a\x00\xffb\r\n"),
        ("|de AD be EF|", b"\xde\xad\xbe\xef"),
        ("a||b", b"ab"),
        ('say \\"hi\\"', b'say "hi"'),
        ("a\\;b", b"a;b"),
        ("a\\:b", b"a:b"),
        ("back\\\\slash", b"back\\slash"),
        ("pipe\\|x", b"pipe|x"),
        ("\\n stays", b"\\n stays"),
        ("caf\u00e9", b"caf\xc3\xa9"),
    ],
)
def test_content(text: str, expected: bytes) -> None:
    assert parse_content(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|414|", "odd number of hex digits in |414|"),
        ("ab|4 1 4|", "odd number of hex digits"),
        ("|41", "'|' hex section is not closed"),
        ("x|41 42", "'|' hex section is not closed"),
        ("|zz|", "bad hex in |zz|"),
        ("", "content is empty"),
        ("||", "content is empty"),
    ],
)
def test_content_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_content(text)
    assert message in str(exc.value)


ALL = FIN | SYN | RST | PSH | ACK | URG | ECE | CWR


@pytest.mark.parametrize(
    ("text", "matching", "not_matching"),
    [
        ("S", [SYN], [SYN | ACK, 0, SYN | CWR, SYN | ECE, ACK]),
        ("s", [SYN], [SYN | ACK]),
        ("SA", [SYN | ACK], [SYN, ACK, SYN | ACK | PSH]),
        ("AS", [SYN | ACK], [SYN]),
        ("S,CE", [SYN, SYN | CWR, SYN | ECE, SYN | CWR | ECE], [SYN | ACK, SYN | ACK | CWR, 0]),
        ("S,12", [SYN, SYN | CWR | ECE], [SYN | ACK]),
        ("SA,CE", [SYN | ACK, SYN | ACK | ECE], [SYN, SYN | ACK | FIN]),
        ("+S", [SYN, SYN | ACK, SYN | FIN | PSH, ALL], [ACK, 0, FIN]),
        ("+SF", [SYN | FIN, SYN | FIN | ACK], [SYN, FIN, SYN | ACK]),
        ("*SF", [SYN, FIN, SYN | FIN, FIN | ACK], [ACK, RST, 0]),
        ("!R", [0, SYN, ACK, ALL & ~RST], [RST, RST | ACK, ALL]),
        # Suricata's '!': not all of the listed flags set (detect-tcp-flags.c FlagsMatch)
        ("!SA", [0, FIN, RST | PSH, SYN, ACK], [SYN | ACK, SYN | ACK | PSH]),
        ("-SA", [SYN, ACK], [SYN | ACK]),
        # the modifier may follow the letters, as in ET's flags:A+ and flags:RSF*
        ("A+", [ACK, ACK | PSH], [SYN, 0]),
        ("RSF*", [RST, SYN | ACK, FIN], [ACK, 0]),
        ("0", [0], [SYN, FIN, ACK, CWR]),
        ("FPU", [FIN | PSH | URG], [FIN | PSH | URG | ACK, FIN | PSH]),
        ("FPU,CE", [FIN | PSH | URG, FIN | PSH | URG | ECE], [FIN | PSH]),
        ("FSRPAUEC", [ALL], [ALL & ~FIN]),
        ("S12", [SYN | CWR | ECE], [SYN]),
    ],
)
def test_flags(text: str, matching: list[int], not_matching: list[int]) -> None:
    fm = parse_flags(text)
    for flags in matching:
        assert fm.matches(flags) is True, f"{text!r} should match {flags:#04x}"
    for flags in not_matching:
        assert fm.matches(flags) is False, f"{text!r} should not match {flags:#04x}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S", FlagsMatch(SYN, 0xFF, "exact")),
        ("SA", FlagsMatch(SYN | ACK, 0xFF, "exact")),
        ("S,CE", FlagsMatch(SYN, 0xFF & ~(CWR | ECE), "exact")),
        ("+S", FlagsMatch(SYN, 0xFF, "plus")),
        ("*SF", FlagsMatch(SYN | FIN, 0xFF, "any")),
        ("!R", FlagsMatch(RST, 0xFF, "not")),
        ("0", FlagsMatch(0, 0xFF, "exact")),
    ],
)
def test_flags_value(text: str, expected: FlagsMatch) -> None:
    assert parse_flags(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SX", "unknown flag 'X'"),
        ("S,Q", "unknown flag 'Q' in the ignore mask"),
        ("+", "no flags given"),
        ("", "no flags given"),
        (",CE", "no flags given"),
        ("+S,12", "an ignore mask only goes with exact flags"),
        ("SS", "flag 'S' given twice"),
        ("+*S", "only one modifier"),
    ],
)
def test_flags_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_flags(text)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (10, 10.0),
        (2.5, 2.5),
        ("10", 10.0),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
    ],
)
def test_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bad", "is not a duration"),
        ("10x", "is not a duration"),
        ("s", "is not a duration"),
        ("-5s", "is not a duration"),
        (True, "is not a duration"),
        (None, "is not a duration"),
        (0, "must be positive"),
        ("0s", "must be positive"),
        ("0ms", "must be positive"),
        (-1, "must be positive"),
        (-0.5, "must be positive"),
    ],
)
def test_duration_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration(value)
    assert message in str(exc.value)
