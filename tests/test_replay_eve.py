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
from tests.corpus import CORPUS, DEFAULT_RULES, SCHEMA, corpus_pcaps, require_corpus


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


@pytest.mark.corpus
def test_et_open_alerts_validate(validator: object, tmp_path: Path) -> None:
    """ET Open's alerts (metadata, HTTP request and response rules, reputation lists) validate too."""
    et = sorted((CORPUS / "rulesets").glob("et-open-suricata5-*"))
    pcaps = [p for p in corpus_pcaps() if p.name.startswith(("http_", "nmap_p80", "synack_reflection"))]
    if not et or not pcaps:
        pytest.skip("ET Open or the HTTP captures are not in the corpus")
    eve = tmp_path / "eve.json"
    args = ["replay", *map(str, pcaps), "--eve", str(eve), "--json", "--no-progress"]
    args += ["--var", "HOME_NET=any", "--var", "EXTERNAL_NET=any"]
    for rules in sorted(et[0].glob("*.rules")):
        args += ["--rules", str(rules)]
    assert main(args) == 0
    kinds = _validate_file(validator, eve)
    with eve.open() as f:
        events = [json.loads(line) for line in f]
    sigs = {ev["alert"]["signature_id"] for ev in events if ev["event_type"] == "alert"}
    # SQL injection in the request, /etc/passwd in the response body, nmap's user agent, a DROP list.
    assert {2006446, 2025879, 2024364} <= sigs
    assert kinds["alert"] >= 40
