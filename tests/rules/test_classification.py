"""classification.config parsing as Suricata does it (util-classification-config.c), and the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from inline_ips.rules.classification import (
    DEFAULT_CLASSTYPES,
    ClassificationError,
    Classtype,
    load_classification,
    parse_classification,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "config classification: not-suspicious,Not Suspicious Traffic,3",
            Classtype("not-suspicious", "Not Suspicious Traffic", 3),
        ),
        ("  config classification:web_app , Web App Attack , 1  ", Classtype("web_app", "Web App Attack", 1)),
        ("config  classification :  a,b,10", Classtype("a", "b", 10)),
        ("config classification:x,y,0", Classtype("x", "y", 0)),
        # names are stored lower-cased; the description runs to the last comma
        (
            "config classification: Bad-Unknown,Potentially Bad Traffic,2",
            Classtype("bad-unknown", "Potentially Bad Traffic", 2),
        ),
        ("config classification: c,one, two, three,4", Classtype("c", "one, two, three", 4)),
    ],
)
def test_parse_line(line: str, expected: Classtype) -> None:
    assert parse_classification(line) == {expected.name: expected}


def test_comments_blank_lines_and_duplicates() -> None:
    text = (
        "# classification.config\n"
        "\n"
        "   # indented comment\n"
        "config classification: a,First,1\n"
        "config classification: A,Second,2\n"  # the first definition wins, case-insensitively
        "config classification: b,Bee,2\n"
    )
    assert parse_classification(text) == {"a": Classtype("a", "First", 1), "b": Classtype("b", "Bee", 2)}


@pytest.mark.parametrize(
    "line",
    [
        "onfig classification: unknown,Unknown Traffic,3",
        "config classification: _badunknown,Potentially Bad Traffic,2",
        "config classification: 1abc,Digit first,2",
        "config classification: misc-activity,Misc activity,-1",
        "config classification: misc-activity,Misc activity",
        "config classification: misc-activity,,3",
        "config classification: misc-activity,Misc,high",
        "config classification misc-activity,Misc,1",
    ],
)
def test_bad_lines(line: str) -> None:
    with pytest.raises(ClassificationError) as exc:
        parse_classification(line, "cls.config")
    assert exc.value.errors == ["cls.config:1: not a 'config classification: name,description,priority' line"]


def test_reading_stops_at_the_first_bad_line() -> None:
    text = "config classification: a,A,1\nbroken\nconfig classification: b,B,2\n"
    with pytest.raises(ClassificationError) as exc:
        parse_classification(text, "c")
    assert exc.value.errors == ["c:2: not a 'config classification: name,description,priority' line"]
    assert exc.value.classtypes == {"a": Classtype("a", "A", 1)}
    assert "c:2:" in str(exc.value)


def test_load_classification(tmp_path: Path) -> None:
    p = tmp_path / "classification.config"
    p.write_text("config classification: a,A,1\n")
    assert load_classification(p) == {"a": Classtype("a", "A", 1)}
    with pytest.raises(ClassificationError) as exc:
        load_classification(tmp_path / "missing.config")
    assert "cannot read" in exc.value.errors[0]
    assert exc.value.classtypes == {}


def test_defaults() -> None:
    assert len(DEFAULT_CLASSTYPES) >= 40
    for name, ct in DEFAULT_CLASSTYPES.items():
        assert name == ct.name == ct.name.lower()
        assert ct.description and 1 <= ct.priority <= 4
        # every default survives a round trip through the parser
        line = f"config classification: {ct.name},{ct.description},{ct.priority}"
        assert parse_classification(line) == {name: ct}
    assert DEFAULT_CLASSTYPES["trojan-activity"] == Classtype(
        "trojan-activity", "A Network Trojan was detected", 1
    )
    assert DEFAULT_CLASSTYPES["tcp-connection"].priority == 4
