"""Classtypes: ``classification.config`` files and the defaults Suricata ships.

Does: parse ``config classification: name,description,priority`` lines as
Suricata does (util-classification-config.c: names are case-insensitive and
stored lower-cased, the description runs to the last comma, the first
definition of a name wins, and reading stops at the first malformed line;
errors name the file and line), and provide the standard classtypes (the ones
Snort defined and Suricata ships) for rule files that come without a
``classification.config`` of their own. A rule's ``classtype`` gives its
default priority (EVE ``alert.severity``) and its category text (EVE
``alert.category``).

Does not: read any file by itself; the loader decides which file applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Classtype:
    name: str
    description: str
    priority: int


# Suricata's DETECT_CLASSCONFIG_REGEX; the greedy description may hold commas.
_LINE = re.compile(r"^\s*config\s*classification\s*:\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*,\s*(.+)\s*,\s*(\d+)\s*$")

# (name, description, priority): the standard set.
_DEFAULTS: tuple[tuple[str, str, int], ...] = (
    ("not-suspicious", "Not Suspicious Traffic", 3),
    ("unknown", "Unknown Traffic", 3),
    ("bad-unknown", "Potentially Bad Traffic", 2),
    ("attempted-recon", "Attempted Information Leak", 2),
    ("successful-recon-limited", "Information Leak", 2),
    ("successful-recon-largescale", "Large Scale Information Leak", 2),
    ("attempted-dos", "Attempted Denial of Service", 2),
    ("successful-dos", "Denial of Service", 2),
    ("attempted-user", "Attempted User Privilege Gain", 1),
    ("unsuccessful-user", "Unsuccessful User Privilege Gain", 1),
    ("successful-user", "Successful User Privilege Gain", 1),
    ("attempted-admin", "Attempted Administrator Privilege Gain", 1),
    ("successful-admin", "Successful Administrator Privilege Gain", 1),
    ("rpc-portmap-decode", "Decode of an RPC Query", 2),
    ("shellcode-detect", "Executable code was detected", 1),
    ("string-detect", "A suspicious string was detected", 3),
    ("suspicious-filename-detect", "A suspicious filename was detected", 2),
    ("suspicious-login", "An attempted login using a suspicious username was detected", 2),
    ("system-call-detect", "A system call was detected", 2),
    ("tcp-connection", "A TCP connection was detected", 4),
    ("trojan-activity", "A Network Trojan was detected", 1),
    ("unusual-client-port-connection", "A client was using an unusual port", 2),
    ("network-scan", "Detection of a Network Scan", 3),
    ("denial-of-service", "Detection of a Denial of Service Attack", 2),
    ("non-standard-protocol", "Detection of a non-standard protocol or event", 2),
    ("protocol-command-decode", "Generic Protocol Command Decode", 3),
    ("web-application-activity", "access to a potentially vulnerable web application", 2),
    ("web-application-attack", "Web Application Attack", 1),
    ("misc-activity", "Misc activity", 3),
    ("misc-attack", "Misc Attack", 2),
    ("icmp-event", "Generic ICMP event", 3),
    ("inappropriate-content", "Inappropriate Content was Detected", 1),
    ("policy-violation", "Potential Corporate Privacy Violation", 1),
    ("default-login-attempt", "Attempt to login by a default username and password", 2),
    ("targeted-activity", "Targeted Malicious Activity was Detected", 1),
    ("exploit-kit", "Exploit Kit Activity Detected", 1),
    ("external-ip-check", "Device Retrieving External IP Address Detected", 2),
    ("domain-c2", "Domain Observed Used for C2 Detected", 1),
    ("pup-activity", "Possibly Unwanted Program Detected", 2),
    ("credential-theft", "Successful Credential Theft Detected", 1),
    ("social-engineering", "Possible Social Engineering Attempted", 2),
    ("coin-mining", "Crypto Currency Mining Activity Detected", 2),
    ("command-and-control", "Malware Command and Control Activity Detected", 1),
    # Snort 3 community rules use these too.
    ("sdf", "Sensitive Data", 2),
    ("file-format", "Known malicious file or file based exploit", 1),
    ("malware-cnc", "Known malware command and control traffic", 1),
    ("client-side-exploit", "Known client side exploit attempt", 1),
)

DEFAULT_CLASSTYPES: dict[str, Classtype] = {n: Classtype(n, d, p) for n, d, p in _DEFAULTS}


class ClassificationError(ValueError):
    """A malformed classification.config; ``errors`` lists ``file:line: what``.

    ``classtypes`` holds what was read before the bad line, which Suricata keeps.
    """

    def __init__(self, errors: list[str], classtypes: dict[str, Classtype] | None = None) -> None:
        self.errors = errors
        self.classtypes = classtypes or {}
        super().__init__("\n".join(errors))


def parse_classification(text: str, name: str = "classification.config") -> dict[str, Classtype]:
    out: dict[str, Classtype] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(stripped)
        if m is None:
            raise ClassificationError(
                [f"{name}:{number}: not a 'config classification: name,description,priority' line"], out
            )
        ct = Classtype(m.group(1).lower(), m.group(2).strip(), int(m.group(3)))
        out.setdefault(ct.name, ct)
    return out


def load_classification(path: Path) -> dict[str, Classtype]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ClassificationError([f"{path}: cannot read: {e.strerror or e}"]) from None
    return parse_classification(text, str(path))
