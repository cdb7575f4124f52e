"""Turn one raw Suricata/Snort 3 rule into the engine's frozen :class:`SignatureRule`.

Does: resolve the header (action, protocol, addresses and ports with
variables, direction), dispatch every option to its keyword handler in rule
order, and check the result as Suricata does (sid present, buffers fit the
protocol and direction, byte_extract variables defined before use). A rule
the engine cannot honour raises :class:`RuleUnsupported` naming the first
reason; a malformed one raises :class:`RuleInvalid`. Nothing is ever
half-applied: a rule either loads whole or not at all.

Does not: read files or apply policies (``loader`` does), or run anything per
packet.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from inline_ips.detect.bytes import (
    ByteExtract,
    ByteJump,
    ByteMath,
    ByteTest,
    IsDataAt,
    parse_byte_extract,
    parse_byte_jump,
    parse_byte_math,
    parse_byte_test,
    parse_isdataat,
)
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from inline_ips.rules.addresses import AddressSet, PortSet, SetSyntaxError
from inline_ips.rules.addresses import parse_addresses as _parse_addresses
from inline_ips.rules.addresses import parse_ports as _parse_ports
from inline_ips.rules.classification import Classtype
from inline_ips.rules.keywords import parse_flags
from inline_ips.rules.model import (
    KIND_APP_TX,
    KIND_APPLAYER,
    KIND_IPONLY,
    KIND_LIKE_IPONLY,
    KIND_PKT,
    KIND_STREAM,
    STREAM_ANY,
    STREAM_NONE,
    STREAM_ONLY,
    TO_CLIENT_SIDE,
    TO_SERVER_SIDE,
    AppProto,
    Buffer,
    BufferMatch,
    BufferSize,
    Content,
    FlagsMatch,
    Flowbit,
    FlowMatch,
    Header,
    Origin,
    PacketCondition,
    Regex,
    RuleAction,
    SignatureRule,
    Threshold,
    Transform,
)
from inline_ips.rules.numeric import parse_snort_range, parse_uint
from inline_ips.rules.pcre import PcreSpec, PcreUnsupported, compile_pcre, parse_pcre
from inline_ips.rules.suricata.buffers import (
    MODIFIERS,
    SNORT3_HEADER_FIELDS,
    SNORT3_STICKY,
    STICKY,
    TRANSFORMS,
)
from inline_ips.rules.suricata.errors import RuleInvalid, RuleLoadError, RuleUnsupported
from inline_ips.rules.suricata.parser import RawRule
from inline_ips.rules.suricata.payload import PayloadBuilder
from inline_ips.verdict import Action

ACTIONS: Final[dict[str, RuleAction]] = {
    "alert": RuleAction(Action.ACCEPT),
    "drop": RuleAction(Action.DROP),
    "reject": RuleAction(Action.REJECT),
    "rejectsrc": RuleAction(Action.REJECT),
    "rejectdst": RuleAction(Action.REJECT),
    "rejectboth": RuleAction(Action.REJECT),
    "pass": RuleAction(Action.ACCEPT, passes=True),
    "block": RuleAction(Action.DROP),  # Snort 3: drop this and the rest of the session
}

# The action words each dialect knows (Suricata's SigParseAction; Snort 3's rule actions).
# A word the dialect does not know makes the rule invalid; a known one missing from
# ACTIONS (Suricata's config, Snort's log, react, rewrite) is unsupported.
SURICATA_ACTIONS: Final = frozenset(
    {"alert", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth", "pass", "config"}
)
SNORT3_ACTIONS: Final = frozenset({"alert", "block", "drop", "log", "pass", "react", "reject", "rewrite"})


@dataclass(frozen=True, slots=True)
class _Proto:
    proto: int | None
    app: AppProto = AppProto.NONE
    alt: int | None = None  # a second IP protocol that also matches (icmp: v4 and v6)
    ip_version: int = 0
    stream: int = STREAM_ANY


PROTOCOLS: Final[dict[str, _Proto]] = {
    "ip": _Proto(None),
    "pkthdr": _Proto(None),
    "ipv4": _Proto(None, ip_version=4),
    "ip4": _Proto(None, ip_version=4),
    "ipv6": _Proto(None, ip_version=6),
    "ip6": _Proto(None, ip_version=6),
    "tcp": _Proto(PROTO_TCP),
    "tcp-pkt": _Proto(PROTO_TCP, stream=STREAM_NONE),
    "tcp-stream": _Proto(PROTO_TCP, stream=STREAM_ONLY),
    "udp": _Proto(PROTO_UDP),
    "icmp": _Proto(PROTO_ICMP, alt=PROTO_ICMPV6),
    "icmpv4": _Proto(PROTO_ICMP),
    "icmpv6": _Proto(PROTO_ICMPV6),
    "http": _Proto(PROTO_TCP, AppProto.HTTP),
    "http1": _Proto(PROTO_TCP, AppProto.HTTP),
    "dns": _Proto(None, AppProto.DNS),
    "tls": _Proto(PROTO_TCP, AppProto.TLS),
}

# Application protocols Suricata knows and this engine does not parse.
UNSUPPORTED_PROTOCOLS: Final = frozenset(
    [
        "smtp",
        "ftp",
        "ftp-data",
        "smb",
        "ssh",
        "dcerpc",
        "nfs",
        "dhcp",
        "krb5",
        "snmp",
        "sip",
        "rdp",
        "ikev2",
        "ike",
        "ntp",
        "tftp",
        "modbus",
        "dnp3",
        "enip",
        "mqtt",
        "http2",
        "quic",
        "rfb",
        "pgsql",
        "bittorrent-dht",
        "telnet",
        "imap",
        "pop3",
        "ldap",
        "websocket",
        "sctp",
        "dnp3",
        "cip",
        "template",
        "ssl",
        "mdns",
        "doh2",
        "llmnr",
    ]
)

# Snort 3 service names this engine identifies, and the app protocol each means.
SERVICES: Final[dict[str, AppProto]] = {"http": AppProto.HTTP, "ssl": AppProto.TLS, "dns": AppProto.DNS}

# Snort 3's protocol field: ip, icmp, tcp, udp, or a service name ("alert http (...)").
SNORT3_PROTOCOLS: Final[dict[str, _Proto]] = {
    "ip": _Proto(None),
    "icmp": _Proto(PROTO_ICMP, alt=PROTO_ICMPV6),
    "tcp": _Proto(PROTO_TCP),
    "udp": _Proto(PROTO_UDP),
    "http": _Proto(PROTO_TCP, AppProto.HTTP),
    "ssl": _Proto(PROTO_TCP, AppProto.TLS),
    "dns": _Proto(None, AppProto.DNS),
}

# Options that only describe the rule (logged or ignored) and do not affect matching.
_IGNORED: Final = frozenset({"reference", "rev_date", "rem", "tag", "sid_rev", "created_at"})

# Packet fields with Suricata's uint syntax: keyword -> (Packet attribute, largest value).
_CONDITIONS: Final[dict[str, tuple[str, int]]] = {
    "dsize": ("dsize", 65535),
    "ttl": ("ttl", 255),
    "itype": ("icmp_type", 255),
    "icode": ("icmp_code", 255),
    "icmp_id": ("icmp_id", 65535),
    "icmp_seq": ("icmp_seq", 65535),
    "id": ("ip_id", 65535),
    "window": ("tcp_win", 65535),
    "seq": ("tcp_seq", 2**32 - 1),
    "ack": ("tcp_ack", 2**32 - 1),
    "tos": ("tos", 255),
}

_IP_PROTO_NAMES: Final = {
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "udp": 17,
    "ipv6": 41,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "pim": 103,
}


@dataclass(slots=True)
class CompileContext:
    """What every rule of one file is compiled against."""

    variables: Mapping[str, str]
    classtypes: Mapping[str, Classtype]
    file: str = "<rules>"
    snort3: bool = False
    # Resolved address/port sets, shared by the many rules that use $HOME_NET and friends.
    _addr_cache: dict[str, AddressSet] = field(default_factory=dict)
    _port_cache: dict[str, PortSet] = field(default_factory=dict)

    def addresses(self, text: str) -> AddressSet:
        got = self._addr_cache.get(text)
        if got is None:
            got = self._addr_cache[text] = _set(text, self.variables, _parse_addresses, "address")
        return got

    def ports(self, text: str) -> PortSet:
        got = self._port_cache.get(text)
        if got is None:
            got = self._port_cache[text] = _set(text, self.variables, _parse_ports, "port")
        return got


_SetT = TypeVar("_SetT", AddressSet, PortSet)


def _set(
    text: str, variables: Mapping[str, str], parse: Callable[[str, Mapping[str, str]], _SetT], what: str
) -> _SetT:
    try:
        value = parse(text, variables)
    except SetSyntaxError as e:
        msg = str(e)
        if msg.startswith("undefined variable"):
            raise RuleInvalid(msg.split(" (", maxsplit=1)[0], f"{what} {text!r}: {msg}") from None
        raise RuleInvalid(f"invalid: {what}", f"{what} {text!r}: {msg}") from None
    if value.is_empty:
        raise RuleInvalid(f"invalid: empty {what} set", f"{what} {text!r} matches nothing")
    return value


class _Build:
    """The mutable state of one rule while its options are read."""

    def __init__(self, raw: RawRule, ctx: CompileContext, snort3: bool) -> None:
        self.raw = raw
        self.ctx = ctx
        self.snort3 = snort3
        self.payload = PayloadBuilder(snort3)
        self.sid = 0
        self.gid = 1
        self.rev = 1
        self.msg = ""
        self.msg_given = False
        self.classtype = ""
        self.priority: int | None = None
        self.metadata: dict[str, list[str]] = {}
        self.flow = FlowMatch()
        self.flow_given = False
        self.flow_words: set[str] = set()
        # Suricata drops the sigmatch of a flow that only gives a direction (detect-flow.c);
        # any other flow is a match keyword (it keeps a rule from being IP-only or app-layer).
        self.flow_match = False
        self.flowbits: list[Flowbit] = []
        self.flags: FlagsMatch | None = None
        self.conditions: list[PacketCondition] = []
        self.ip_proto: PacketCondition | None = None
        self.sameip: bool | None = None
        self.threshold: Threshold | None = None
        self.detection_filter: Threshold | None = None
        self.noalert = False
        self.target = ""
        self.services: list[str] = []
        self.packet_keywords: list[str] = []  # keywords that set Suricata's SIG_FLAG_REQUIRE_PACKET
        self.last_match = ""  # the latest keyword that adds a match (what prefilter applies to)
        self.prefilter = False


Handler = Callable[[_Build, str | None], None]


def _need(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise RuleInvalid(f"invalid: {name} without value", f"'{name}' needs a value")
    return value.strip()


def _unquote(value: str, name: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
    if "\\" not in v:
        return v
    out: list[str] = []
    i = 0
    while i < len(v):
        if v[i] == "\\" and i + 1 < len(v):
            out.append(v[i + 1])
            i += 2
            continue
        out.append(v[i])
        i += 1
    return "".join(out)


def _int(value: str | None, name: str, lo: int, hi: int) -> int:
    v = _need(value, name)
    try:
        n = int(v)
    except ValueError:
        raise RuleInvalid(f"invalid: {name}", f"'{name}' needs an integer, got {v!r}") from None
    if not lo <= n <= hi:
        raise RuleInvalid(f"invalid: {name}", f"'{name}' {n} is outside {lo}..{hi}")
    return n


# -- identity and description ---------------------------------------------------------


def _msg(b: _Build, v: str | None) -> None:
    # detect-msg.c: quotes are mandatory, one msg per rule; any backslash escape is dropped.
    text = _need(v, "msg")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise RuleInvalid("invalid: msg", f"msg must be a quoted string, got {text[:40]!r}")
    if b.msg_given:
        raise RuleInvalid("invalid: msg twice", "'msg' given twice")
    b.msg_given = True
    b.msg = _unquote(text, "msg")


def _sid(b: _Build, v: str | None) -> None:
    b.sid = _int(v, "sid", 1, 2**32 - 1)


def _rev(b: _Build, v: str | None) -> None:
    b.rev = _int(v, "rev", 0, 2**32 - 1)


def _gid(b: _Build, v: str | None) -> None:
    b.gid = _int(v, "gid", 0, 2**32 - 1)


_CLASSTYPE_NAME: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*")


def _classtype(b: _Build, v: str | None) -> None:
    # An unknown classtype is only a warning in Suricata: priority 3, no category. Names are
    # looked up lower-cased (util-classification-config.c); a later classtype replaces an
    # earlier one (a warning in detect-classtype.c).
    name = _need(v, "classtype")
    if not _CLASSTYPE_NAME.fullmatch(name):
        raise RuleInvalid("invalid: classtype", f"classtype {name!r} is not a name")
    b.classtype = name.lower()


def _priority(b: _Build, v: str | None) -> None:
    b.priority = _int(v, "priority", 1, 255)


def _metadata(b: _Build, v: str | None) -> None:
    for item in _need(v, "metadata").split(","):
        key, _, val = item.strip().partition(" ")
        if key:
            b.metadata.setdefault(key, []).append(val.strip())


_SHARED_VALUES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared_metadata(meta: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """The rule's metadata with keys and value tuples shared between rules.

    Rule sets repeat the same keys and values (dates, severities, products)
    thousands of times: ET Open's metadata took 20 MiB as one list per key and
    rule, and a few hundred KiB shared.
    """
    if len(_SHARED_VALUES) > 500_000:
        _SHARED_VALUES.clear()  # a bound for a process that reloads ever-new rule sets
    out: dict[str, tuple[str, ...]] = {}
    for key, values in meta.items():
        t = tuple(sys.intern(x) for x in values)
        out[sys.intern(key)] = _SHARED_VALUES.setdefault(t, t)
    return out


def _target(b: _Build, v: str | None) -> None:
    t = _need(v, "target")
    if t not in ("src_ip", "dest_ip"):
        raise RuleInvalid("invalid: target", f"target must be src_ip or dest_ip, got {t!r}")
    b.target = t


def _no_value(name: str, v: str | None) -> None:
    """SigParseOptions: a keyword that takes no value (SIGMATCH_NOOPT) refuses one."""
    if v is not None and v.strip():
        raise RuleInvalid(
            f"invalid: {name} takes no value", f"'{name}' takes no value, got {v.strip()[:40]!r}"
        )


def _noalert(b: _Build, v: str | None) -> None:
    _no_value("noalert", v)
    b.noalert = True


def _ignored(b: _Build, v: str | None) -> None:
    return None


# -- flow and state ------------------------------------------------------------------------


_FLOW_WORD: Final = re.compile(r"[A-Za-z_]+")
_FLOW_ALIASES: Final = {"from_client": "to_server", "from_server": "to_client"}
# detect-flow.c DetectFlowParse: each option once, and not together with these.
_FLOW_CONFLICTS: Final = {
    "established": ("not_established", "stateless"),
    "not_established": ("established",),
    "stateless": ("established",),
    "to_server": ("to_client",),
    "to_client": ("to_server",),
    "only_stream": ("no_stream",),
    "no_stream": ("only_stream",),
    "only_frag": ("no_frag",),
    "no_frag": ("only_frag",),
}


def _flow(b: _Build, v: str | None) -> None:
    # Suricata allows one flow keyword that matches something; a direction-only flow adds
    # no match, so another flow may follow it (DetectFlowSetup's SIG_FLAG_INIT_FLOW).
    if b.flow_match:
        raise RuleInvalid("invalid: flow twice", "a rule may have only one flow option")
    words = [w.strip() for w in _need(v, "flow").split(",")]
    if len(words) > 3 or any(not _FLOW_WORD.fullmatch(w) for w in words):
        raise RuleInvalid("invalid: flow", f"flow takes one to three options, got {v!r}")
    given: set[str] = set()
    for raw_word in words:
        word = raw_word.lower()
        word = _FLOW_ALIASES.get(word, word)
        if word not in _FLOW_CONFLICTS:
            raise RuleInvalid("invalid: flow", f"unknown flow option {raw_word!r}")
        if word in given or word in b.flow_words:
            raise RuleInvalid("invalid: flow", f"flow option {word} given twice")
        clash = [c for c in _FLOW_CONFLICTS[word] if c in given or c in b.flow_words]
        if clash:
            raise RuleInvalid("invalid: flow", f"flow has both {word} and {clash[0]}")
        given.add(word)
    b.flow_given = True
    b.flow_match = given not in ({"to_server"}, {"to_client"})
    b.flow_words |= given
    w = b.flow_words
    to_server = True if "to_server" in w else (False if "to_client" in w else None)
    established = True if "established" in w else (False if "not_established" in w else None)
    stream = STREAM_ONLY if "only_stream" in w else (STREAM_NONE if "no_stream" in w else STREAM_ANY)
    frag = True if "only_frag" in w else (False if "no_frag" in w else None)
    b.flow = FlowMatch(to_server, established, stream, frag)


_FLOWBITS: Final = re.compile(r"([a-z]+)(?:,\s*(.*))?", re.S)
_FLOWBITS_MAX_NAMES: Final = 100  # MAX_TOKENS in detect-flowbits.c
_SNORT3_FLOWBIT_NAME: Final = re.compile(r"[A-Za-z0-9._-]+")


def _flowbits(b: _Build, v: str | None) -> None:
    """Suricata's flowbits (detect-flowbits.c): ``a|b`` is the only operator; ``&`` is part of a name."""
    text = _need(v, "flowbits")
    if b.snort3:
        _snort3_flowbits(b, text)
        return
    m = _FLOWBITS.match(text)
    if m is None:
        raise RuleInvalid("invalid: flowbits", f"{text!r} is not a valid setting for flowbits")
    cmd, names = m.group(1), (m.group(2) or "").rstrip()
    if cmd == "noalert":
        if names:
            raise RuleInvalid("invalid: flowbits", "flowbits:noalert takes no name")
        b.noalert = True
        return
    if cmd not in ("set", "unset", "toggle", "isset", "isnotset"):
        raise RuleInvalid("invalid: flowbits", f"unknown flowbits command {cmd!r}")
    if not names:
        raise RuleInvalid("invalid: flowbits", f"flowbits:{cmd} needs a name")
    if "|" not in names:
        if any(c in " \t" for c in names):
            raise RuleInvalid("invalid: flowbits", f"spaces are not allowed in flowbit names: {names!r}")
        b.flowbits.append(Flowbit(cmd, (names,)))
        return
    parts = tuple(p.strip() for p in names.split("|") if p.strip())
    if not parts or len(parts) > _FLOWBITS_MAX_NAMES or any(" " in p or "\t" in p for p in parts):
        raise RuleInvalid("invalid: flowbits", f"bad flowbits name list {names!r}")
    if cmd not in ("isset", "isnotset"):
        # Suricata parses the list but its set/unset/toggle then act on an unrelated bit.
        raise RuleUnsupported(f"unsupported: flowbits {cmd} with '|'", f"flowbits:{cmd},{names}")
    b.flowbits.append(Flowbit(cmd, parts, any_of=True))


def _snort3_flowbits(b: _Build, text: str) -> None:
    """Snort 3's flowbits (ips_flowbits.cc): ``a|b`` (any) and ``a&b`` (all), never mixed."""
    parts = [p.strip() for p in text.split(",")]
    cmd = parts[0].lower()
    if len(parts) > 3:
        raise RuleInvalid("invalid: flowbits", f"too many flowbits arguments in {text!r}")
    if cmd == "noalert":
        if len(parts) > 1:
            raise RuleInvalid("invalid: flowbits", "flowbits:noalert takes no name")
        b.noalert = True
        return
    if cmd in ("reset", "setx"):
        raise RuleUnsupported(f"unsupported: flowbits {cmd}")
    if cmd not in ("set", "unset", "toggle", "isset", "isnotset"):
        raise RuleInvalid("invalid: flowbits", f"unknown flowbits command {cmd!r}")
    if len(parts) < 2 or not parts[1]:
        raise RuleInvalid("invalid: flowbits", f"flowbits:{cmd} needs a name")
    if len(parts) == 3 or parts[1].lower() in ("all", "any"):
        raise RuleUnsupported("unsupported: flowbits groups", f"flowbits:{text}")
    bits = parts[1]
    if "|" in bits and "&" in bits:
        raise RuleInvalid("invalid: flowbits", "flowbits names cannot mix '|' and '&'")
    either = "|" in bits
    names = tuple(n.strip() for n in bits.replace("&", "|").split("|"))
    if any(not _SNORT3_FLOWBIT_NAME.fullmatch(n) for n in names):
        raise RuleInvalid("invalid: flowbits", f"bad flowbits name in {bits!r}")
    if either and cmd not in ("isset", "isnotset"):
        raise RuleInvalid("invalid: flowbits", f"flowbits:{cmd} takes bit[&bit], not '|'")
    # The model's any_of is Suricata's: isset any set, isnotset any not set. Snort's isnotset
    # negates its isset: a|b -> none set (all not set), a&b -> not all set (any not set).
    any_of = either if cmd == "isset" else (not either and len(names) > 1 if cmd == "isnotset" else False)
    b.flowbits.append(Flowbit(cmd, names, any_of))


def _threshold_spec(v: str | None, name: str) -> Threshold:
    kind = "detection_filter" if name == "detection_filter" else ""
    track = ""
    count: int | None = None
    seconds: float | None = None
    unique_on = ""
    multiplier = 0
    keys: set[str] = set()
    for item in _need(v, name).split(","):
        key, _, val = item.strip().partition(" ")
        key = key.strip().lower()
        val = val.strip()
        if key in keys:
            raise RuleInvalid(f"invalid: {name}", f"{name} option {key!r} given twice")
        keys.add(key)
        if key == "type" and name == "threshold":
            if val not in ("limit", "threshold", "both", "backoff"):
                raise RuleInvalid(f"invalid: {name}", f"unknown threshold type {val!r}")
            kind = val
        elif key == "multiplier" and name == "threshold":
            multiplier = _int(val, f"{name} multiplier", 1, 2**31 - 1)
        elif key == "track":
            if val not in ("by_src", "by_dst", "by_rule", "by_both", "by_flow"):
                raise RuleInvalid(f"invalid: {name}", f"unknown track {val!r}")
            track = val
        elif key == "count":
            count = _int(val, f"{name} count", 1, 2**31 - 1)
        elif key == "seconds":
            seconds = float(_int(val, f"{name} seconds", 1, 2**31 - 1))
        elif key == "unique_on" and name == "detection_filter":
            if val not in ("src_port", "dst_port"):
                raise RuleInvalid(f"invalid: {name}", f"unique_on must be src_port or dst_port, got {val!r}")
            unique_on = val
        else:
            raise RuleInvalid(f"invalid: {name}", f"unknown {name} option {key!r}")
    if kind == "backoff":
        # Suricata 8: alerts at the count-th match, then at count*multiplier, count*multiplier^2...;
        # per flow only, and without a time window.
        if track != "by_flow" or not multiplier or count is None or seconds is not None:
            raise RuleInvalid(
                f"invalid: {name}", "type backoff needs track by_flow, count and multiplier (and no seconds)"
            )
        return Threshold(kind, track, count, 0.0, multiplier=multiplier)
    if multiplier:
        raise RuleInvalid(f"invalid: {name}", "multiplier goes with type backoff only")
    if not kind or not track or count is None or seconds is None:
        raise RuleInvalid(f"invalid: {name}", f"{name} needs type (threshold only), track, count and seconds")
    if unique_on and track not in ("by_src", "by_dst", "by_rule", "by_flow", "by_both"):
        raise RuleInvalid(f"invalid: {name}", "unique_on needs a track")
    return Threshold(kind, track, count, seconds, unique_on)


def _threshold(b: _Build, v: str | None) -> None:
    if b.threshold is not None:
        raise RuleInvalid("invalid: threshold twice", "'threshold' given twice")
    if b.detection_filter is not None:
        raise RuleInvalid(_BOTH_THRESHOLDS, "threshold and detection_filter are not allowed in the same rule")
    b.threshold = _threshold_spec(v, "threshold")


# detect-threshold.c / detect-detection-filter.c refuse a rule with both, in either order.
_BOTH_THRESHOLDS: Final = "invalid: threshold and detection_filter"


def _detection_filter(b: _Build, v: str | None) -> None:
    if b.detection_filter is not None:
        raise RuleInvalid("invalid: detection_filter twice", "'detection_filter' given twice")
    if b.threshold is not None:
        raise RuleInvalid(_BOTH_THRESHOLDS, "threshold and detection_filter are not allowed in the same rule")
    b.detection_filter = _threshold_spec(v, "detection_filter")


# -- packet header fields ------------------------------------------------------------------


def _flags(b: _Build, v: str | None) -> None:
    if b.flags is not None:
        raise RuleInvalid("invalid: flags twice", "'flags' given twice")
    text = _need(v, "flags")
    try:
        b.flags = parse_flags(text.replace(" ", ""))
    except ValueError as e:
        raise RuleInvalid("invalid: flags", str(e)) from None
    b.packet_keywords.append("flags")


def _condition(name: str) -> Handler:
    attr, hi = _CONDITIONS[name]

    def handler(b: _Build, v: str | None) -> None:
        if any(c.field == attr for c in b.conditions):
            raise RuleInvalid(f"invalid: {name} twice", f"'{name}' given twice")
        text = _need(v, name)
        try:
            # Snort 3 reads these with its RangeCheck (``<=>`` inclusive ranges, strtol numbers).
            m = parse_snort_range(text, hi) if b.snort3 else parse_uint(text, hi)
        except ValueError as e:
            raise RuleInvalid(f"invalid: {name}", f"{name}: {e}") from None
        b.conditions.append(PacketCondition(attr, m))
        b.packet_keywords.append(name)

    return handler


def _ip_proto(b: _Build, v: str | None) -> None:
    text = _need(v, "ip_proto")
    prefix = ""
    body = text
    for p in ("!", "<", ">"):
        if body.startswith(p):
            prefix, body = p, body[1:].strip()
            break
    number = _IP_PROTO_NAMES.get(body.lower())
    if number is None:
        try:
            number = int(body)
        except ValueError:
            raise RuleInvalid("invalid: ip_proto", f"unknown ip_proto {text!r}") from None
    try:
        m = parse_uint(f"{prefix}{number}", 255)
    except ValueError as e:
        raise RuleInvalid("invalid: ip_proto", f"ip_proto: {e}") from None
    b.conditions.append(PacketCondition("proto", m))


def _sameip(b: _Build, v: str | None) -> None:
    _no_value("sameip", v)
    b.sameip = True


# -- payload ---------------------------------------------------------------------------------


def _content(b: _Build, v: str | None) -> None:
    b.payload.content(v)


def _uricontent(b: _Build, v: str | None) -> None:
    # Deprecated Suricata keyword: detect-uricontent.c sets up a content, then http_uri.
    b.payload.content(v)
    b.payload.legacy_modifier("uricontent", Buffer.HTTP_URI)


def _modifier(name: str) -> Handler:
    def handler(b: _Build, v: str | None) -> None:
        if name in ("nocase", "rawbytes", "startswith", "endswith"):
            _no_value(name, v)
        b.payload.modifier(name, v)

    return handler


def _sticky(buf: Buffer) -> Handler:
    def handler(b: _Build, v: str | None) -> None:
        if v is not None and v.strip():
            raise RuleInvalid("invalid: sticky buffer with value", f"'{buf.value}' takes no value")
        b.payload.sticky(buf)

    return handler


def _legacy(name: str, buf: Buffer) -> Handler:
    def handler(b: _Build, v: str | None) -> None:
        if b.snort3:
            if name == "http_header" and v:
                _snort3_header_field(b, v)
                return
            if v is not None and v.strip():
                raise RuleUnsupported(f"unsupported: {name} with options", f"'{name}:{v}' (Snort 3 options)")
            b.payload.sticky(SNORT3_STICKY[name])
        else:
            b.payload.legacy_modifier(name, buf)

    return handler


def _snort3_header_field(b: _Build, v: str) -> None:
    word, _, field_name = v.strip().partition(" ")
    buf = SNORT3_HEADER_FIELDS.get(field_name.strip().lower()) if word == "field" else None
    if buf is None:
        raise RuleUnsupported(
            "unsupported: http_header:field", f"http_header:{v} (no buffer for that header)"
        )
    b.payload.sticky(buf)


def _snort3_sticky(buf: Buffer) -> Handler:
    def handler(b: _Build, v: str | None) -> None:
        if v is not None and v.strip():
            raise RuleUnsupported(f"unsupported: {buf.value} with options", f"Snort 3 buffer option {v!r}")
        b.payload.sticky(buf)

    return handler


def _transform(name: str) -> Handler:
    takes_arg = TRANSFORMS[name]

    def handler(b: _Build, v: str | None) -> None:
        if takes_arg and not v and name != "from_base64":  # from_base64's options are optional
            raise RuleInvalid(f"invalid: {name}", f"transform '{name}' needs an argument")
        _no_value(name, None if takes_arg else v)
        if name in ("xor", "pcrexform", "from_base64"):
            raise RuleUnsupported(f"unsupported transform '{name}'")
        b.payload.transform(Transform(name, (v or "").strip()))

    return handler


@functools.lru_cache(maxsize=8192)
def _compiled_pcre(text: str) -> tuple[PcreSpec, Any] | tuple[type[RuleLoadError], str, str]:
    """Parse and compile a pcre value once: rule sets repeat expressions (ET: 1,647 distinct of 4,511).

    A failure is cached as (exception class, reason, detail), so each rule raises its own exception.
    """
    try:
        spec = parse_pcre(text)
        return spec, compile_pcre(spec)
    except PcreUnsupported as e:
        return RuleUnsupported, e.reason, str(e)
    except ValueError as e:
        return RuleInvalid, "invalid: pcre", f"pcre: {e}"


def _pcre(b: _Build, v: str | None) -> None:
    got = _compiled_pcre(_need(v, "pcre"))
    if len(got) == 3:
        cls, reason, detail = got
        raise cls(reason, detail)
    spec, compiled = got
    buf: Buffer | None = None
    if spec.buffer is not None:
        try:
            buf = Buffer(spec.buffer)
        except ValueError:
            raise RuleUnsupported(f"unsupported: pcre buffer {spec.buffer}") from None
    if b.snort3:
        bad = sorted(set(spec.flags) - set(_SNORT3_PCRE_FLAGS))
        if bad:
            # ips_pcre.cc: Snort 3 dropped the buffer letters; sticky buffers replace them.
            raise RuleInvalid("invalid: pcre", f"pcre flag(s) {''.join(bad)} do not exist in Snort 3")
    b.payload.pcre(Regex(spec.source, compiled, spec.negated, spec.relative), buf)


_SNORT3_PCRE_FLAGS: Final = "ismxAEGRO"


def _byte_keyword(name: str) -> Handler:
    parsers: dict[str, Callable[[str], object]] = {
        "byte_test": parse_byte_test,
        "byte_jump": parse_byte_jump,
        "byte_extract": parse_byte_extract,
        "byte_math": parse_byte_math,
        "isdataat": parse_isdataat,
    }
    parse = parsers[name]

    def handler(b: _Build, v: str | None) -> None:
        text = _need(v, name)
        try:
            m = parse(text)
        except ValueError as e:
            text = str(e)
            if text.startswith("unsupported:"):
                raise RuleUnsupported(f"unsupported: {name} {text[12:].strip()}"[:80], text) from None
            raise RuleInvalid(f"invalid: {name}", f"{name}: {text}") from None
        if b.snort3 and isinstance(m, IsDataAt) and m.relative:
            # Snort 3 (ips_isdataat.cc) wants data *at* cursor+N (cursor + N < length);
            # Suricata's relative form is cursor + N <= length: N+1 is the same test.
            if not isinstance(m.offset, int):
                raise RuleUnsupported(
                    "unsupported: isdataat relative variable", "Snort 3 isdataat:var,relative"
                )
            m = replace(m, offset=m.offset + 1)
        b.payload.add(m, bool(getattr(m, "relative", False)))  # type: ignore[arg-type]

    return handler


def _bsize(b: _Build, v: str | None) -> None:
    if b.payload.active_buffer is Buffer.PAYLOAD:
        raise RuleInvalid("invalid: bsize without sticky buffer", "bsize needs a sticky buffer")
    text = _need(v, "bsize")
    try:
        m = parse_uint(text, 2**64 - 1)
    except ValueError as e:
        raise RuleInvalid("invalid: bsize", f"bsize: {e}") from None
    b.payload.size(BufferSize(m), "bsize")


def _bufferlen(b: _Build, v: str | None) -> None:
    text = _need(v, "bufferlen")
    body, _, opt = text.partition(",")
    if opt.strip() not in ("", "relative"):
        raise RuleInvalid("invalid: bufferlen", f"unknown bufferlen option {opt.strip()!r}")
    if opt.strip() == "relative":
        raise RuleUnsupported("unsupported: bufferlen relative")
    try:
        # ips_bufferlen.cc reads its value with Snort's RangeCheck: ``A<=>B`` is inclusive.
        m = parse_snort_range(body.strip(), 2**32 - 1)
    except ValueError as e:
        raise RuleInvalid("invalid: bufferlen", f"bufferlen: {e}") from None
    b.payload.size(BufferSize(m), "bufferlen")


def _urilen(b: _Build, v: str | None) -> None:
    text = _need(v, "urilen")
    body, _, opt = text.partition(",")
    opt = opt.strip().lower()
    if opt not in ("", "norm", "raw"):
        raise RuleInvalid("invalid: urilen", f"urilen option must be norm or raw, got {opt!r}")
    try:
        m = parse_uint(body.strip(), 65535)
    except ValueError as e:
        raise RuleInvalid("invalid: urilen", f"urilen: {e}") from None
    # detect-urilen.c appends to the uri list whatever sticky buffer is active.
    b.payload.size(BufferSize(m), "urilen", Buffer.HTTP_URI_RAW if opt == "raw" else Buffer.HTTP_URI)


def _tls_value(buf: Buffer, nocase: bool) -> Handler:
    """``tls.subject:"..."``, ``tls.issuerdn``, ``tls.fingerprint``: a string the certificate field holds.

    Suricata's own match keywords (detect-tls.c), older than the sticky
    buffers: the subject and issuer must contain the string, the
    fingerprint must equal it whatever the case; ``!`` negates.
    """

    def handler(b: _Build, v: str | None) -> None:
        text = _need(v, buf.value)
        negated = text.startswith("!")
        value = _unquote(text[1:] if negated else text, buf.value)
        if not value:
            raise RuleInvalid(f"invalid: {buf.value}", f"'{buf.value}' needs a string")
        pattern = value.encode("utf-8")
        content = (
            Content(pattern, nocase=True, negated=negated, startswith=True, endswith=True)
            if nocase
            else Content(pattern, negated=negated)
        )
        b.payload.add_to(buf, content)

    return handler


# The Suricata version whose rule language this engine follows, for requires: version.
SURICATA_VERSION: Final = (9, 0, 0)
# requires: feature NAME that this engine has.
_FEATURES: Final = frozenset({"ja3"})


def _version(text: str) -> tuple[int, ...]:
    parts = text.strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise RuleInvalid("invalid: requires", f"bad version {text!r}")
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def _version_ok(spec: str) -> bool:
    """``>= 7.0.3 < 8 | >= 8.0.1``: alternatives joined by '|', each a list of comparisons."""
    for alternative in spec.split("|"):
        tokens = re.findall(r"(>=|<=|>|<|=)?\s*([0-9][0-9.]*)", alternative)
        if not tokens:
            raise RuleInvalid("invalid: requires", f"bad version requirement {spec!r}")
        ok = True
        for op, ver in tokens:
            mine, theirs = SURICATA_VERSION, _version(ver)
            ok &= {
                ">=": mine >= theirs,
                "<=": mine <= theirs,
                ">": mine > theirs,
                "<": mine < theirs,
            }.get(op, mine[: len(ver.split("."))] == theirs[: len(ver.split("."))])
        if ok:
            return True
    return False


def _requires(b: _Build, v: str | None) -> None:
    """Suricata 7's requires: skip the rule (counted) when this engine does not meet a requirement."""
    for item in _need(v, "requires").split(","):
        word, _, arg = item.strip().partition(" ")
        arg = arg.strip()
        if word == "version":
            if not _version_ok(arg):
                raise RuleUnsupported("unsupported: requires version", f"requires version {arg}")
        elif word == "feature":
            if arg not in _FEATURES:
                raise RuleUnsupported(f"unsupported: requires feature {arg}")
        elif word == "keyword":
            if arg not in HANDLERS:
                raise RuleUnsupported(f"unsupported: requires keyword {arg}")
        else:
            raise RuleInvalid("invalid: requires", f"unknown requirement {word!r}")


def _service(b: _Build, v: str | None) -> None:
    b.services.extend(s.strip().lower() for s in _need(v, "service").split(",") if s.strip())


# Keywords Suricata can run as a prefilter (SupportsPrefilter in their detect-*.c).
_PREFILTERABLE: Final = frozenset(
    {
        "itype",
        "icode",
        "icmp_id",
        "icmp_seq",
        "ttl",
        "id",
        "dsize",
        "flags",
        "ack",
        "seq",
        "window",
        "flow",
        "flowbits",
        "tos",
        "fragbits",
        "ip_proto",
    }
)
# Options that do not add a match of their own (prefilter looks past them to the match).
_MODIFIER_NAMES: Final = frozenset(
    {"nocase", "offset", "depth", "distance", "within", "rawbytes", "fast_pattern", "startswith", "endswith"}
)


def _prefilter(b: _Build, v: str | None) -> None:
    """Suricata's ``prefilter``: which check runs first; it never changes what matches."""
    if v is not None and v.strip():
        raise RuleInvalid("invalid: prefilter", "'prefilter' takes no value")
    if b.prefilter:
        raise RuleInvalid("invalid: prefilter", "'prefilter' given twice")
    b.prefilter = True
    prev = b.last_match
    if not prev:
        raise RuleInvalid("invalid: prefilter", "'prefilter' needs a keyword before it")
    if prev == "content":
        b.payload.prefilter_content()
    elif prev not in _PREFILTERABLE:
        raise RuleInvalid("invalid: prefilter", f"'{prev}' cannot be a prefilter")


def _build_handlers() -> dict[str, Handler]:
    h: dict[str, Handler] = {
        "msg": _msg,
        "sid": _sid,
        "rev": _rev,
        "gid": _gid,
        "classtype": _classtype,
        "priority": _priority,
        "metadata": _metadata,
        "target": _target,
        "noalert": _noalert,
        "flow": _flow,
        "flowbits": _flowbits,
        "threshold": _threshold,
        "detection_filter": _detection_filter,
        "flags": _flags,
        "tcp.flags": _flags,
        "ip_proto": _ip_proto,
        "sameip": _sameip,
        "content": _content,
        "uricontent": _uricontent,
        "pcre": _pcre,
        "bsize": _bsize,
        "urilen": _urilen,
        "prefilter": _prefilter,
        "requires": _requires,
        "tls.subject": _tls_value(Buffer.TLS_CERT_SUBJECT, False),
        "tls.issuerdn": _tls_value(Buffer.TLS_CERT_ISSUER, False),
        "tls.fingerprint": _tls_value(Buffer.TLS_CERT_FINGERPRINT, True),
    }
    for name in _IGNORED:
        h[name] = _ignored
    for name in _CONDITIONS:
        h[name] = _condition(name)
    for name in (
        "nocase",
        "offset",
        "depth",
        "distance",
        "within",
        "rawbytes",
        "fast_pattern",
        "startswith",
        "endswith",
    ):
        h[name] = _modifier(name)
    for name, buf in STICKY.items():
        h[name] = _sticky(buf)
    for name, buf in MODIFIERS.items():
        h[name] = _legacy(name, buf)
    for name in TRANSFORMS:
        h[name] = _transform(name)
    for name in ("byte_test", "byte_jump", "byte_extract", "byte_math", "isdataat"):
        h[name] = _byte_keyword(name)
    return h


HANDLERS: Final = _build_handlers()
# Handlers of options that describe the rule and add no match.
_NO_MATCH: Final = frozenset(
    {
        _msg,
        _sid,
        _rev,
        _gid,
        _classtype,
        _priority,
        _metadata,
        _target,
        _noalert,
        _ignored,
        _threshold,
        _detection_filter,
        _requires,
    }
)

# Snort 3 keywords that differ from Suricata's (or do not exist there).
SNORT3_HANDLERS: Final[dict[str, Handler]] = {
    **HANDLERS,
    "service": _service,
    "bufferlen": _bufferlen,
    "file_data": _snort3_sticky(Buffer.FILE_DATA),
    "pkt_data": _snort3_sticky(Buffer.PAYLOAD),
    "raw_data": _snort3_sticky(Buffer.PAYLOAD),
    "http_version": _snort3_sticky(Buffer.HTTP_PROTOCOL),
}


def compile_rule(raw: RawRule, ctx: CompileContext, snort3: bool | None = None) -> SignatureRule:
    """Compile one raw rule; raise RuleInvalid or RuleUnsupported when it cannot load."""
    is_snort3 = ctx.snort3 if snort3 is None else snort3
    dialect = "Snort 3" if is_snort3 else "Suricata"
    if raw.action not in (SNORT3_ACTIONS if is_snort3 else SURICATA_ACTIONS):
        raise RuleInvalid("invalid: action", f"{raw.action!r} is not a {dialect} rule action")
    action = ACTIONS.get(raw.action)
    if action is None:
        raise RuleUnsupported(f"unsupported action '{raw.action}'")
    if raw.elided and not is_snort3:
        raise RuleInvalid("invalid: header", "Suricata rules need addresses, ports and a direction")
    proto = (SNORT3_PROTOCOLS if is_snort3 else PROTOCOLS).get(raw.proto)
    if proto is None:
        # Snort 3 takes any service name there; Suricata only the protocols it knows.
        if is_snort3 or raw.proto in UNSUPPORTED_PROTOCOLS:
            raise RuleUnsupported(f"unsupported protocol '{raw.proto}'")
        raise RuleInvalid("invalid: protocol", f"unknown protocol {raw.proto!r}")
    if raw.direction == "=>":
        if is_snort3:
            raise RuleInvalid("invalid: direction", "Snort 3 has no '=>' direction")
        raise RuleUnsupported("unsupported direction '=>'")
    src = ctx.addresses(raw.src)
    dst = ctx.addresses(raw.dst)
    sport = ctx.ports(raw.sport)
    dport = ctx.ports(raw.dport)

    b = _Build(raw, ctx, is_snort3)
    handlers = SNORT3_HANDLERS if is_snort3 else HANDLERS
    for opt in raw.options:
        handler = handlers.get(opt.name)
        if handler is None:
            raise RuleUnsupported(f"unsupported keyword '{opt.name}'")
        handler(b, opt.value)
        if opt.name in MODIFIERS or opt.name == "uricontent":
            # A legacy modifier moves its content; prefilter still applies to that content.
            b.last_match = "content"
        elif opt.name != "prefilter" and opt.name not in _MODIFIER_NAMES and handler not in _NO_MATCH:
            b.last_match = opt.name
    if not b.sid:
        raise RuleInvalid("invalid: no sid", "the rule has no sid")
    buffers = b.payload.finish()
    _check_variables(buffers)

    app = proto.app
    needed = {bm.buffer.app for bm in buffers if bm.buffer.app}
    if len(needed) > 1:
        raise RuleInvalid("invalid: buffers of several protocols", f"buffers of {sorted(needed)} in one rule")
    if needed:
        need = AppProto(needed.pop())
        if app is not AppProto.NONE and app is not need:
            raise RuleInvalid(
                "invalid: buffer does not fit protocol", f"{need.value} buffers in an {raw.proto} rule"
            )
        app = need
    if b.services:
        apps = {SERVICES[s] for s in b.services if s in SERVICES}
        if app is AppProto.NONE and len(apps) == 1 and len(b.services) == 1:
            app = apps.pop()
        elif app is not AppProto.NONE and app not in apps:
            # file_data of an smtp/pop3/imap/ftp service rule is a mail or file attachment:
            # there is no parser here that would produce it.
            raise RuleUnsupported(
                f"unsupported: {app.value} buffers for service {','.join(sorted(b.services))}",
                f"{app.value} buffers with service:{','.join(b.services)}",
            )
    if app is AppProto.HTTP and proto.proto not in (None, PROTO_TCP):
        raise RuleInvalid("invalid: buffer does not fit protocol", f"http buffers in an {raw.proto} rule")
    if app is AppProto.TLS and proto.proto not in (None, PROTO_TCP):
        raise RuleInvalid("invalid: buffer does not fit protocol", f"tls buffers in an {raw.proto} rule")
    if app is AppProto.DNS and proto.proto not in (None, PROTO_TCP, PROTO_UDP):
        raise RuleInvalid("invalid: buffer does not fit protocol", f"dns buffers in an {raw.proto} rule")
    _check_direction(b.flow, buffers)
    if not is_snort3:
        _check_packet_vs_stream(b, proto, buffers)
    df = b.detection_filter
    ported = proto.proto in (PROTO_TCP, PROTO_UDP) or app is not AppProto.NONE
    if df is not None and df.unique_on and not ported:
        # detect-detection-filter.c: unique_on needs tcp/udp/sctp, and 'ip' (any) is refused.
        raise RuleInvalid("invalid: detection_filter", "unique_on needs a tcp or udp rule")

    # flags in a non-TCP rule load and never match, as in Suricata (DetectFlagsMatch).
    ip_proto = proto.proto
    if app is AppProto.HTTP or app is AppProto.TLS:
        ip_proto = PROTO_TCP
    stream = proto.stream if b.flow.stream == STREAM_ANY else b.flow.stream
    flow = (
        b.flow
        if stream == b.flow.stream
        else FlowMatch(b.flow.to_server, b.flow.established, stream, b.flow.frag)
    )

    header = Header(
        proto=ip_proto,
        app=app,
        src=src,
        sport=sport,
        dst=dst,
        dport=dport,
        bidirectional=raw.direction == "<>",
        flags=b.flags,
        conditions=tuple(b.conditions),
        sameip=b.sameip,
        alt_proto=proto.alt if ip_proto == proto.proto else None,
        ip_version=proto.ip_version,
    )
    ct = ctx.classtypes.get(b.classtype)
    priority = b.priority if b.priority is not None else (ct.priority if ct is not None else 3)
    rule = SignatureRule(
        sid=b.sid,
        msg=b.msg,
        action=action,
        header=header,
        origin=Origin(ctx.file, raw.line),
        rev=b.rev,
        gid=b.gid,
        classtype=(ct.description if ct is not None else ""),
        priority=priority,
        flow=flow,
        buffers=buffers,
        metadata=_shared_metadata(b.metadata),
        flowbits=tuple(b.flowbits),
        threshold=b.threshold,
        detection_filter=b.detection_filter,
        noalert=b.noalert,
        target=b.target,
    )
    return replace(rule, kind=classify(rule, b.flow_given, ctx.variables, flow_match=b.flow_match))


def _check_packet_vs_stream(b: _Build, proto: _Proto, buffers: tuple[BufferMatch, ...]) -> None:
    """detect-parse.c SigValidate: packet-only keywords (SIG_FLAG_REQUIRE_PACKET: tcp-pkt,
    flow:no_stream, dsize, ttl, flags, ...) cannot go with stream-only ones (tcp-stream,
    flow:only_stream) nor with app-layer buffers."""
    packet = [*b.packet_keywords]
    if proto.stream == STREAM_NONE:
        packet.append("tcp-pkt")
    if b.flow.stream == STREAM_NONE:
        packet.append("flow:no_stream")
    if not packet:
        return
    stream = ""
    if proto.stream == STREAM_ONLY:
        stream = "tcp-stream"
    elif b.flow.stream == STREAM_ONLY:
        stream = "flow:only_stream"
    if stream:
        raise RuleInvalid("invalid: packet and stream keywords", f"{packet[0]} cannot go with {stream}")
    app = next((bm.buffer for bm in buffers if bm.buffer is not Buffer.PAYLOAD), None)
    if app is not None:
        raise RuleInvalid(
            "invalid: packet keyword with app-layer buffer",
            f"{packet[0]} (packets only) cannot go with the {app.value} buffer",
        )


# Fields of each match that may name a byte_extract/byte_math variable.
_VAR_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    Content: ("offset", "depth", "distance", "within"),
    ByteTest: ("nbytes", "value", "offset"),
    ByteJump: ("nbytes", "offset", "post_offset"),
    ByteMath: ("nbytes", "rvalue"),
    IsDataAt: ("offset",),
}


def _check_variables(buffers: tuple[BufferMatch, ...]) -> None:
    """Every variable is set (byte_extract / byte_math result) before it is used, in one buffer."""
    for bm in buffers:
        defined: set[str] = set()
        for m in bm.matches:
            for name in _VAR_FIELDS.get(type(m), ()):
                value = getattr(m, name)
                if isinstance(value, str) and value not in defined:
                    raise RuleInvalid(
                        "invalid: undefined byte variable",
                        f"variable {value!r} is used before a byte_extract in {bm.buffer.value} sets it",
                    )
            if isinstance(m, ByteExtract):
                defined.add(m.name)
            elif isinstance(m, ByteMath):
                defined.add(m.result)


def _check_direction(flow: FlowMatch, buffers: tuple[BufferMatch, ...]) -> None:
    """Suricata inspects one direction per rule: buffers and flow: must agree."""
    sides = {bm.buffer.side for bm in buffers}
    if TO_SERVER_SIDE in sides and TO_CLIENT_SIDE in sides:
        raise RuleInvalid(
            "invalid: buffers of both directions",
            "request and response buffers in one rule (Suricata inspects one direction per rule)",
        )
    if flow.to_server is True and TO_CLIENT_SIDE in sides:
        raise RuleInvalid("invalid: buffer direction", "response buffers in a to_server rule")
    if flow.to_server is False and TO_SERVER_SIDE in sides:
        raise RuleInvalid("invalid: buffer direction", "request buffers in a to_client rule")


def _negated(text: str, variables: Mapping[str, str], depth: int = 0) -> bool:
    """Does an address expression contain a negation once its variables are expanded?"""
    if "!" in text:
        return True
    if depth > 16:
        return False
    for name in re.findall(r"\$([A-Za-z0-9_]+)", text):
        value = variables.get(name)
        if value is not None and _negated(value, variables, depth + 1):
            return True
    return False


def classify(
    rule: SignatureRule, flow_given: bool, variables: Mapping[str, str], *, flow_match: bool | None = None
) -> str:
    """Suricata's signature type (SignatureIsIPOnly / SignatureSetType in detect-engine-build.c).

    ``flow_given``: the rule has a ``flow`` keyword (never IP-only then); ``flow_match``
    (default: the same): that flow is more than a direction, so it is a match keyword.
    """
    if flow_match is None:
        flow_match = flow_given
    h = rule.header
    payload = any(bm.buffer is Buffer.PAYLOAD for bm in rule.buffers)
    app_buffers = any(bm.buffer is not Buffer.PAYLOAD for bm in rule.buffers)
    if app_buffers:
        return KIND_APP_TX
    # ip_proto narrows the header protocol (detect-ipproto.c has no Match; SigInitHelper
    # removes its sigmatch), so it is not a match keyword; the others are packet keywords.
    packet_keywords = h.flags is not None or any(c.field != "proto" for c in h.conditions)
    if payload:
        if h.proto not in (None, PROTO_TCP) or rule.flow.stream == STREAM_NONE or packet_keywords:
            return KIND_PKT
        return KIND_STREAM
    has_match = packet_keywords or h.sameip is not None or flow_match or any(fb.reads for fb in rule.flowbits)
    if h.app is not AppProto.NONE:
        return KIND_PKT if has_match else KIND_APPLAYER
    if has_match or flow_given or any(fb.cmd != "set" for fb in rule.flowbits):
        return KIND_PKT
    if _negated(h.src.text, variables) or _negated(h.dst.text, variables):
        return KIND_LIKE_IPONLY
    return KIND_IPONLY
