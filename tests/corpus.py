"""Where the shared third-party corpus lives, and what each attack capture is.

The corpus sits beside the project root (``../shared/corpus``); a fresh clone
does not have it, so tests that need it skip with a reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PCAPS = CORPUS / "pcaps"
SCHEMA = CORPUS / "eve-schema" / "schema.json"
DEFAULT_RULES = ROOT / "rules.yaml"

# File-name prefix -> the attack's name as the default rules' alert messages spell it.
EXPECTED_ATTACK = {
    "dns_amplification": "DNS amplification",
    "http_dirtraversal": "path traversal",
    "http_sqli": "SQL injection",
    "icmp_flood": "ICMP flood",
    "icmp_ping_sweep": "ping sweep",
    "masscan_": "port scan",
    "nmap_": "port scan",
    "portscan_": "port scan",
    "synack_reflection": "SYN flood",
    "synflood_": "SYN flood",
    "tcp_syn_ping_sweep": "ping sweep",
}


def expected_attack(path: Path) -> str:
    for prefix, attack in EXPECTED_ATTACK.items():
        if path.name.startswith(prefix):
            return attack
    raise KeyError(f"{path.name}: no expected attack listed in tests/corpus.py")


def corpus_pcaps() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


def require_corpus(path: Path = CORPUS) -> None:
    if not path.exists():
        pytest.skip(f"third-party corpus not found at {path} (it sits beside the project root)")
