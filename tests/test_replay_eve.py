"""Every EVE line that replay writes validates against Suricata's schema.

All corpus captures are replayed into one EVE file with the default rules
(alerts and drop events of every kind), then each line is validated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inline_ips.cli import main
from inline_ips.lab import synth
from tests.corpus import DEFAULT_RULES, SCHEMA, corpus_pcaps, require_corpus


@pytest.fixture(scope="module")
def validator() -> object:
    require_corpus(SCHEMA)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def _validate_file(validator: object, eve: Path) -> dict[str, int]:
    kinds: dict[str, int] = {}
    with eve.open() as f:
        for n, line in enumerate(f, 1):
            ev = json.loads(line)
            errors = list(validator.iter_errors(ev))  # type: ignore[attr-defined]
            assert not errors, f"{eve}:{n}: {errors[0].message} in {line[:300]}"
            kinds[ev["event_type"]] = kinds.get(ev["event_type"], 0) + 1
    return kinds


@pytest.mark.corpus
def test_corpus_replay_eve_validates(validator: object, tmp_path: Path) -> None:
    pcaps = corpus_pcaps()
    if not pcaps:
        pytest.skip("no corpus captures")
    eve = tmp_path / "eve.json"
    args = [
        "replay",
        *map(str, pcaps),
        "--rules",
        str(DEFAULT_RULES),
        "--eve",
        str(eve),
        "--json",
        "--no-progress",
    ]
    assert main(args) == 0
    kinds = _validate_file(validator, eve)
    assert kinds.get("alert", 0) >= 20
    assert kinds.get("drop", 0) > 1000


def test_synthetic_attacks_eve_validates(validator: object, tmp_path: Path) -> None:
    """Covers what the corpus lacks: IPv4 HTTP attacks on our own server, reassembled DNS."""
    pcap = synth.write_pcap(
        tmp_path / "attacks.pcap", synth.http_attacks() + synth.dns_amplification(count=80)
    )
    eve = tmp_path / "eve.json"
    assert main(["replay", str(pcap), "--rules", str(DEFAULT_RULES), "--eve", str(eve), "--no-progress"]) == 0
    kinds = _validate_file(validator, eve)
    assert kinds["alert"] >= 5
