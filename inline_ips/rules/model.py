"""The parsed, frozen form of every rule the engine runs.

Loaders (``yaml_loader`` for rules.yaml, ``suricata/`` for Suricata and Snort 3
``.rules`` files) build these dataclasses once; the per-packet path only reads
them and never sees raw YAML or rule text. Compiled regular expressions live
here too, so a rule set is ready to match as soon as it is loaded. Matching
logic is in ``detect/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from inline_ips.detect.bytes import ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt
from inline_ips.normalize import Normalize
from inline_ips.rules.addresses import ANY_ADDRESS, ANY_PORT, AddressSet, PortSet, parse_addresses
from inline_ips.rules.numeric import UintMatch
from inline_ips.rules.policy import Policy
from inline_ips.verdict import Action


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule came from, for error messages and ``check-rules``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Buffer(Enum):
    """Inspection buffers a match can apply to (Suricata's sticky buffer names)."""

    # Members are singletons compared by identity, so the identity hash is right, and it
    # is C code: Enum's own hashes the name in Python, on every buffer lookup of a packet.
    __hash__ = object.__hash__

    PAYLOAD = "payload"  # the packet payload, or the TCP stream window
    # HTTP request side
    HTTP_URI = "http.uri"  # normalised request URI
    HTTP_URI_RAW = "http.uri.raw"
    HTTP_METHOD = "http.method"
    HTTP_REQUEST_LINE = "http.request_line"
    HTTP_HOST = "http.host"
    HTTP_HOST_RAW = "http.host.raw"
    HTTP_USER_AGENT = "http.user_agent"
    HTTP_REFERER = "http.referer"
    HTTP_ACCEPT = "http.accept"
    HTTP_ACCEPT_ENC = "http.accept_enc"
    HTTP_ACCEPT_LANG = "http.accept_lang"
    HTTP_CONNECTION = "http.connection"
    HTTP_REQUEST_BODY = "http.request_body"
    # HTTP response side
    HTTP_STAT_CODE = "http.stat_code"
    HTTP_STAT_MSG = "http.stat_msg"
    HTTP_RESPONSE_LINE = "http.response_line"
    HTTP_SERVER = "http.server"
    HTTP_LOCATION = "http.location"
    HTTP_RESPONSE_BODY = "http.response_body"
    FILE_DATA = "file.data"  # the HTTP body of the inspected direction (response or upload)
    # HTTP, either side (the rule's direction picks the request's or the response's)
    HTTP_PROTOCOL = "http.protocol"
    HTTP_HEADER = "http.header"
    HTTP_HEADER_RAW = "http.header.raw"
    HTTP_HEADER_NAMES = "http.header_names"
    HTTP_CONTENT_TYPE = "http.content_type"
    HTTP_CONTENT_LEN = "http.content_len"
    HTTP_COOKIE = "http.cookie"  # Cookie in requests, Set-Cookie in responses
    HTTP_START = "http.start"
    # DNS and TLS
    DNS_QUERY = "dns.query"
    TLS_SNI = "tls.sni"
    TLS_CERT_SUBJECT = "tls.cert_subject"
    TLS_CERT_ISSUER = "tls.cert_issuer"
    TLS_CERT_SERIAL = "tls.cert_serial"
    TLS_CERT_FINGERPRINT = "tls.cert_fingerprint"
    TLS_CERTS = "tls.certs"
    TLS_SUBJECTALTNAME = "tls.subjectaltname"
    JA3_HASH = "ja3.hash"
    JA3_STRING = "ja3.string"
    JA3S_HASH = "ja3s.hash"
    JA3S_STRING = "ja3s.string"
    TLS_RANDOM = "tls.random"  # the hello's 32 random bytes (the client's to_server, the server's to_client)
    TLS_RANDOM_TIME = "tls.random_time"  # its first 4 bytes
    TLS_RANDOM_BYTES = "tls.random_bytes"  # its last 28

    @property
    def is_http(self) -> bool:
        return self.value.startswith("http.") or self is Buffer.FILE_DATA

    @property
    def app(self) -> str:
        """The application protocol whose records hold this buffer ("" for the payload)."""
        return _BUFFER_APP.get(self, "")

    @property
    def side(self) -> int:
        """Which direction produces it: TO_SERVER_SIDE, TO_CLIENT_SIDE, or EITHER_SIDE."""
        return _BUFFER_SIDE.get(self, EITHER_SIDE)


EITHER_SIDE = 0
TO_SERVER_SIDE = 1
TO_CLIENT_SIDE = 2

_BUFFER_APP: dict[Buffer, str] = {}
_BUFFER_SIDE: dict[Buffer, int] = {}
for _b in Buffer:
    if _b.is_http:
        _BUFFER_APP[_b] = "http"
    elif _b.value.startswith("dns."):
        _BUFFER_APP[_b] = "dns"
    elif _b.value.startswith(("tls.", "ja3")):
        _BUFFER_APP[_b] = "tls"
for _b in (
    Buffer.HTTP_URI,
    Buffer.HTTP_URI_RAW,
    Buffer.HTTP_METHOD,
    Buffer.HTTP_REQUEST_LINE,
    Buffer.HTTP_HOST,
    Buffer.HTTP_HOST_RAW,
    Buffer.HTTP_USER_AGENT,
    Buffer.HTTP_REFERER,
    Buffer.HTTP_ACCEPT,
    Buffer.HTTP_ACCEPT_ENC,
    Buffer.HTTP_ACCEPT_LANG,
    Buffer.HTTP_CONNECTION,
    Buffer.HTTP_REQUEST_BODY,
    Buffer.DNS_QUERY,
    Buffer.TLS_SNI,
    Buffer.JA3_HASH,
    Buffer.JA3_STRING,
):
    _BUFFER_SIDE[_b] = TO_SERVER_SIDE
for _b in (
    Buffer.HTTP_STAT_CODE,
    Buffer.HTTP_STAT_MSG,
    Buffer.HTTP_RESPONSE_LINE,
    Buffer.HTTP_SERVER,
    Buffer.HTTP_LOCATION,
    Buffer.HTTP_RESPONSE_BODY,
    # The certificate buffers are of either side: to_server they read the client's certificate.
    Buffer.JA3S_HASH,
    Buffer.JA3S_STRING,
):
    _BUFFER_SIDE[_b] = TO_CLIENT_SIDE


class AppProto(Enum):
    NONE = "none"
    HTTP = "http"
    DNS = "dns"
    TLS = "tls"


# A content modifier's value: a number, or the name of a byte_extract variable.
Pos = int | str


@dataclass(frozen=True, slots=True)
class Content:
    """A literal to find, with Suricata's positional modifiers (all in bytes)."""

    pattern: bytes
    nocase: bool = False
    negated: bool = False
    offset: Pos | None = None
    depth: Pos | None = None
    distance: Pos | None = None  # relative to the end of the previous match
    within: Pos | None = None
    replace: bytes | None = None  # same length as pattern; makes the rule a rewrite
    startswith: bool = False  # the match must start at the buffer start
    endswith: bool = False  # the match must end at the buffer end
    fast_pattern: bool = False  # chosen by the rule for the prefilter
    fp_chop: tuple[int, int] | None = None  # fast_pattern:offset,length: only that slice is indexed

    def __post_init__(self) -> None:
        # Matching compares nocase patterns against a lower-cased buffer, so store them lowered.
        if self.nocase:
            object.__setattr__(self, "pattern", self.pattern.lower())

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None

    @property
    def literal(self) -> bytes:
        """The bytes the prefilter may index this content by."""
        if self.fp_chop is not None:
            start, length = self.fp_chop
            return self.pattern[start : start + length]
        return self.pattern


@dataclass(frozen=True, slots=True)
class Regex:
    """A regular expression, compiled with RE2 so matching time is linear in the input."""

    source: str
    compiled: Any = field(compare=False, repr=False)  # re2._Regexp over bytes
    negated: bool = False
    relative: bool = False  # starts at the end of the previous match (pcre /R)


@dataclass(frozen=True, slots=True)
class BufferSize:
    """``bsize`` / ``urilen`` / Snort's ``bufferlen``: the buffer's length must match."""

    size: UintMatch


Match = Content | Regex | BufferSize | ByteTest | ByteJump | ByteExtract | ByteMath | IsDataAt


@dataclass(frozen=True, slots=True)
class Transform:
    """A Suricata transform applied to a buffer before its matches (``dotprefix``, ...)."""

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class BufferMatch:
    """The ordered matches a rule applies to one buffer (after its transforms)."""

    buffer: Buffer
    matches: tuple[Match, ...]
    transforms: tuple[Transform, ...] = ()

    @property
    def key(self) -> tuple[Buffer, tuple[Transform, ...]]:
        """Rules whose buffers share a key inspect the same bytes."""
        return (self.buffer, self.transforms)


@dataclass(frozen=True, slots=True)
class FlagsMatch:
    """TCP flags as Suricata matches them, after clearing the bits outside ``mask`` (the ignore mask).

    exact: the remaining bits equal ``value``; plus: all of ``value`` set; any:
    one of ``value`` set; not: not all of ``value`` set. ``flags:0`` (exact,
    value 0) needs a packet with no flag at all.
    """

    value: int
    mask: int
    mode: str = "exact"  # exact, plus, any, not

    def matches(self, flags: int) -> bool:
        if not self.value and flags:
            return self.mode == "not"
        f = flags & self.mask
        if self.mode == "any":
            return bool(f & self.value)
        if self.mode == "plus":
            return (f & self.value) == self.value
        if self.mode == "not":
            return (f & self.value) != self.value
        return f == self.value


STREAM_ANY = 0
STREAM_ONLY = 1  # flow:only_stream: the reassembled stream, not a lone packet
STREAM_NONE = 2  # flow:no_stream: packets only


@dataclass(frozen=True, slots=True)
class FlowMatch:
    to_server: bool | None = None  # None: either direction
    established: bool | None = None
    stream: int = STREAM_ANY
    frag: bool | None = None  # only_frag (True) / no_frag (False): was the packet reassembled

    @property
    def is_any(self) -> bool:
        return self.to_server is None and self.established is None and self.frag is None


@dataclass(frozen=True, slots=True)
class Flowbit:
    """One ``flowbits`` option: ``set``, ``unset``, ``toggle``, ``isset``, ``isnotset``.

    ``names`` holds one name, or several joined by ``|`` (any of them, for
    isset/isnotset) or ``&`` (all of them).
    """

    cmd: str
    names: tuple[str, ...]
    any_of: bool = False

    @property
    def reads(self) -> bool:
        return self.cmd in ("isset", "isnotset")


@dataclass(frozen=True, slots=True)
class Threshold:
    """``threshold`` (type limit/threshold/both/backoff) or ``detection_filter`` (kind "detection_filter")."""

    kind: str
    track: str  # by_src, by_dst, by_rule, by_both, by_flow
    count: int
    seconds: float
    unique_on: str = ""  # detection_filter: count distinct src_port or dst_port
    multiplier: int = 0  # type backoff: alert at count, count*multiplier, count*multiplier**2, ...


@dataclass(frozen=True, slots=True)
class PacketCondition:
    """A numeric test on one packet field (``dsize``, ``ttl``, ``itype``, ``icode``, ...)."""

    field: str  # the Packet attribute, or "dsize" for the payload length
    match: UintMatch


@dataclass(frozen=True, slots=True)
class RuleAction:
    action: Action
    block_seconds: int = 0
    passes: bool = False  # Suricata's pass: stop inspecting this packet (and flow) and accept it

    @property
    def name(self) -> str:
        return "pass" if self.passes else self.action.name.lower()


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
    conditions: tuple[PacketCondition, ...] = ()
    sameip: bool | None = None
    alt_proto: int | None = None  # a second IP protocol that also matches (Suricata's icmp: v4 and v6)
    ip_version: int = 0  # 4 or 6 to match only that IP version (ipv4/ipv6 rules); 0 for both


KIND_IPONLY = "iponly"  # addresses, ports and protocol only: first packet of each flow direction
KIND_LIKE_IPONLY = "like_iponly"  # the same with a negated address: every packet, flow-wide actions
KIND_PKT = "pkt"  # packet keywords (flags, dsize, ttl, ...) or packet-only payload: packet actions
KIND_STREAM = "stream"  # TCP payload content: the stream (packets without a session alone)
KIND_APPLAYER = "applayer"  # an application protocol in the header and nothing else to match
KIND_APP_TX = "app_tx"  # application buffers: once per transaction and direction
FLOW_ACTION_KINDS = frozenset({KIND_IPONLY, KIND_LIKE_IPONLY, KIND_APPLAYER, KIND_APP_TX})


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
    metadata: Mapping[str, Sequence[str]] = field(default_factory=dict, compare=False)
    flowbits: tuple[Flowbit, ...] = ()
    threshold: Threshold | None = None
    detection_filter: Threshold | None = None
    noalert: bool = False
    target: str = ""  # "src_ip" or "dest_ip": which end is the target, for EVE
    # Suricata's signature type (detect-engine-build.c SignatureSetType), set by the
    # .rules loader; "" for rules.yaml signatures. It decides how often a rule is
    # judged (KIND_IPONLY: once per flow direction) and whether its drop or pass
    # applies to the packet or to the whole flow.
    kind: str = ""

    @property
    def ip_only(self) -> bool:
        return self.kind == KIND_IPONLY

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
    policy: Policy = field(default_factory=Policy)

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
            self.policy.merged(other.policy),
        )


def _union(a: AddressSet, b: AddressSet) -> AddressSet:
    return parse_addresses(f"[{a.text},{b.text}]")
