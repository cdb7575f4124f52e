"""The parsed, frozen form of every rule the engine runs.

Loaders (``yaml_loader`` for rules.yaml, later a Suricata/Snort parser) build
these dataclasses once; the per-packet path only reads them and never sees raw
YAML or rule text. Compiled regular expressions live here too, so a rule set
is ready to match as soon as it is loaded. Matching logic is in ``detect/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from inline_ips.normalize import Normalize
from inline_ips.rules.addresses import ANY_ADDRESS, ANY_PORT, AddressSet, PortSet, parse_addresses
from inline_ips.verdict import Action


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule came from, for error messages and ``check-rules``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Buffer(Enum):
    """Inspection buffers a content or regex can apply to (Suricata's sticky buffers)."""

    PAYLOAD = "payload"  # the packet payload, or the TCP stream window
    HTTP_URI = "http.uri"  # normalised request URI
    HTTP_URI_RAW = "http.uri.raw"
    HTTP_METHOD = "http.method"
    HTTP_HOST = "http.host"
    HTTP_USER_AGENT = "http.user_agent"
    HTTP_HEADER = "http.header"
    HTTP_REQUEST_BODY = "http.request_body"
    DNS_QUERY = "dns.query"
    TLS_SNI = "tls.sni"

    @property
    def is_http(self) -> bool:
        return self.value.startswith("http.")


class AppProto(Enum):
    NONE = "none"
    HTTP = "http"
    DNS = "dns"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class Content:
    """A literal to find, with Suricata's positional modifiers (all in bytes)."""

    pattern: bytes
    nocase: bool = False
    negated: bool = False
    offset: int | None = None
    depth: int | None = None
    distance: int | None = None  # relative to the end of the previous match
    within: int | None = None
    replace: bytes | None = None  # same length as pattern; makes the rule a rewrite

    def __post_init__(self) -> None:
        # Matching compares nocase patterns against a lower-cased buffer, so store them lowered.
        if self.nocase:
            object.__setattr__(self, "pattern", self.pattern.lower())

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None


@dataclass(frozen=True, slots=True)
class Regex:
    """A regular expression, compiled with RE2 so matching time is linear in the input."""

    source: str
    compiled: Any = field(compare=False, repr=False)  # re2._Regexp over bytes
    negated: bool = False
    relative: bool = False  # starts at the end of the previous match (pcre /R)


Match = Content | Regex


@dataclass(frozen=True, slots=True)
class BufferMatch:
    """The ordered matches a rule applies to one buffer."""

    buffer: Buffer
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class FlagsMatch:
    """TCP flags: the bits in ``mask`` must equal ``value`` (``+`` and ``*`` modes as Suricata)."""

    value: int
    mask: int
    mode: str = "exact"  # exact: (flags & mask) == value; any: flags & value; plus: all of value set

    def matches(self, flags: int) -> bool:
        if self.mode == "any":
            return bool(flags & self.value)
        if self.mode == "plus":
            return (flags & self.value) == self.value
        return (flags & self.mask) == self.value


@dataclass(frozen=True, slots=True)
class FlowMatch:
    to_server: bool | None = None  # None: either direction
    established: bool | None = None

    @property
    def is_any(self) -> bool:
        return self.to_server is None and self.established is None


@dataclass(frozen=True, slots=True)
class RuleAction:
    action: Action
    block_seconds: int = 0

    @property
    def name(self) -> str:
        return self.action.name.lower()


@dataclass(frozen=True, slots=True)
class Header:
    """Who a rule applies to: protocol, addresses, ports, direction, flags."""

    proto: int | None = None  # IP protocol number; None for any IP
    app: AppProto = AppProto.NONE
    src: AddressSet = ANY_ADDRESS
    sport: PortSet = ANY_PORT
    dst: AddressSet = ANY_ADDRESS
    dport: PortSet = ANY_PORT
    bidirectional: bool = False
    flags: FlagsMatch | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclass(frozen=True, slots=True)
class SignatureRule:
    sid: int
    msg: str
    action: RuleAction
    header: Header
    origin: Origin
    rev: int = 1
    gid: int = 1
    classtype: str = ""
    priority: int = 3
    flow: FlowMatch = FlowMatch()
    buffers: tuple[BufferMatch, ...] = ()
    metadata: dict[str, list[str]] = field(default_factory=dict, compare=False)

    @property
    def rewrites(self) -> bool:
        return any(isinstance(m, Content) and m.replace is not None for b in self.buffers for m in b.matches)


class RateKey(Enum):
    SRC = "src"
    DST = "dst"
    SRC_DST = "src+dst"
    FLOW = "flow"


class Measure(Enum):
    PACKETS = "packets"
    BYTES = "bytes"
    SYNS = "syns"  # TCP SYN without ACK
    DST_PORTS = "distinct_dst_ports"
    DST_HOSTS = "distinct_dst_hosts"
    DNS_RESPONSE_BYTES = "dns_response_bytes"
    # TCP connections the client reset right after the handshake, before any
    # payload either way: what a connect() port scan leaves behind.
    EMPTY_CONNECTIONS = "empty_connections"


@dataclass(frozen=True, slots=True)
class RateRule:
    """Count what ``header`` selects, per ``key``, over a tumbling ``window``; act at ``threshold``."""

    sid: int
    msg: str
    action: RuleAction
    header: Header
    key: RateKey
    measure: Measure
    window: float
    threshold: int
    origin: Origin
    rev: int = 1
    gid: int = 1
    classtype: str = ""
    priority: int = 2
    flow: FlowMatch = FlowMatch()


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything the engine needs, parsed and validated."""

    signatures: tuple[SignatureRule, ...] = ()
    rates: tuple[RateRule, ...] = ()
    allowlist: AddressSet | None = None
    variables: dict[str, str] = field(default_factory=dict, compare=False)
    includes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    normalize: Normalize = field(default_factory=Normalize)

    def merged(self, other: RuleSet) -> RuleSet:
        allow = self.allowlist
        if other.allowlist is not None:
            allow = other.allowlist if allow is None else _union(allow, other.allowlist)
        return RuleSet(
            self.signatures + other.signatures,
            self.rates + other.rates,
            allow,
            {**self.variables, **other.variables},
            self.includes + other.includes,
            self.sources + other.sources,
            other.normalize if other.normalize.active else self.normalize,
        )


def _union(a: AddressSet, b: AddressSet) -> AddressSet:
    return parse_addresses(f"[{a.text},{b.text}]")
