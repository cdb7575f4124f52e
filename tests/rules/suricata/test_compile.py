"""Compiling Suricata and Snort 3 rules: tables of rule text -> compiled fields, or -> the error.

Every error case names the exception class and its countable ``reason``; the Suricata
behaviour each row pins is cited from its source (detect-*.c) in compile.py and
payload.py. Rules are parsed with the real parser and compiled with the real compiler.
"""

from __future__ import annotations

import pytest

from inline_ips.detect.bytes import ByteExtract, ByteTest, IsDataAt
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from inline_ips.rules.classification import DEFAULT_CLASSTYPES
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
    AppProto,
    BufferSize,
    Content,
    Flowbit,
    FlowMatch,
    PacketCondition,
    Regex,
    SignatureRule,
    Threshold,
)
from inline_ips.rules.numeric import UintMatch
from inline_ips.rules.suricata.compile import CompileContext, classify, compile_rule
from inline_ips.rules.suricata.errors import RuleInvalid, RuleLoadError, RuleUnsupported
from inline_ips.rules.suricata.parser import parse_rule
from inline_ips.verdict import Action

VARS = {
    "HOME_NET": "[10.0.0.0/8,192.168.0.0/16]",
    "EXTERNAL_NET": "!$HOME_NET",
    "HTTP_SERVERS": "$HOME_NET",
    "HTTP_PORTS": "[80,8080]",
    "ODD": "[$HOME_NET,!10.1.0.0/16]",
}
TCP = "alert tcp any any -> any any"
HTTP = "alert http any any -> any any"
LIMIT = "threshold:type limit,track by_src,count 1,seconds 60;"
DF = "detection_filter:track by_src,count 1,seconds 60;"


def compile_text(text: str, snort3: bool = False) -> SignatureRule:
    return compile_rule(parse_rule(text, 3), CompileContext(VARS, DEFAULT_CLASSTYPES, "t.rules", snort3))


def opts(options: str, header: str = TCP, snort3: bool = False) -> SignatureRule:
    return compile_text(f"{header} ({options} sid:1;)", snort3)


def fails(options: str, header: str = TCP, snort3: bool = False) -> RuleLoadError:
    with pytest.raises(RuleLoadError) as exc:
        opts(options, header, snort3)
    return exc.value


def _item(m: object) -> object:
    if isinstance(m, Content):
        return m.pattern
    if isinstance(m, Regex):
        return f"re:{m.source}{'/R' if m.relative else ''}"
    if isinstance(m, BufferSize):
        return ("size", m.size.mode, m.size.a, m.size.b)
    if isinstance(m, IsDataAt):
        return ("isdataat", m.offset, m.relative, m.negate)
    return type(m).__name__


def lists(rule: SignatureRule) -> dict[str, list[object]]:
    """Each buffer list (named buffer+transform,...) with its matches in order."""
    out: dict[str, list[object]] = {}
    for bm in rule.buffers:
        key = bm.buffer.value + "".join(f"+{t.name}" for t in bm.transforms)
        out[key] = [_item(m) for m in bm.matches]
    return out


def contents(rule: SignatureRule) -> list[Content]:
    return [m for bm in rule.buffers for m in bm.matches if isinstance(m, Content)]


# -- header: actions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "snort3", "expected", "passes"),
    [
        ("alert", False, Action.ACCEPT, False),
        ("ALERT", False, Action.ACCEPT, False),
        ("drop", False, Action.DROP, False),
        ("reject", False, Action.REJECT, False),
        ("rejectsrc", False, Action.REJECT, False),
        ("rejectdst", False, Action.REJECT, False),
        ("rejectboth", False, Action.REJECT, False),
        ("pass", False, Action.ACCEPT, True),
        ("alert", True, Action.ACCEPT, False),
        ("block", True, Action.DROP, False),
        ("drop", True, Action.DROP, False),
        ("reject", True, Action.REJECT, False),
        ("pass", True, Action.ACCEPT, True),
    ],
)
def test_actions(action: str, snort3: bool, expected: Action, passes: bool) -> None:
    r = compile_text(f"{action} tcp any any -> any any (sid:1;)", snort3)
    assert r.action.action is expected
    assert r.action.passes is passes


@pytest.mark.parametrize(
    ("action", "snort3", "exc", "reason"),
    [
        ("block", False, RuleInvalid, "invalid: action"),  # Snort 3 only
        ("log", False, RuleInvalid, "invalid: action"),
        ("sdrop", False, RuleInvalid, "invalid: action"),  # Snort 2
        ("react", False, RuleInvalid, "invalid: action"),
        ("config", False, RuleUnsupported, "unsupported action 'config'"),
        ("rejectsrc", True, RuleInvalid, "invalid: action"),  # Suricata only
        ("sdrop", True, RuleInvalid, "invalid: action"),
        ("log", True, RuleUnsupported, "unsupported action 'log'"),
        ("react", True, RuleUnsupported, "unsupported action 'react'"),
        ("rewrite", True, RuleUnsupported, "unsupported action 'rewrite'"),
    ],
)
def test_action_errors(action: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    with pytest.raises(exc) as e:
        compile_text(f"{action} tcp any any -> any any (sid:1;)", snort3)
    assert e.value.reason == reason


# -- header: protocols ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proto", "snort3", "ip", "alt", "app", "version", "stream"),
    [
        ("ip", False, None, None, AppProto.NONE, 0, STREAM_ANY),
        ("pkthdr", False, None, None, AppProto.NONE, 0, STREAM_ANY),
        ("ipv4", False, None, None, AppProto.NONE, 4, STREAM_ANY),
        ("ip4", False, None, None, AppProto.NONE, 4, STREAM_ANY),
        ("ipv6", False, None, None, AppProto.NONE, 6, STREAM_ANY),
        ("ip6", False, None, None, AppProto.NONE, 6, STREAM_ANY),
        ("tcp", False, PROTO_TCP, None, AppProto.NONE, 0, STREAM_ANY),
        ("TCP", False, PROTO_TCP, None, AppProto.NONE, 0, STREAM_ANY),
        ("tcp-pkt", False, PROTO_TCP, None, AppProto.NONE, 0, STREAM_NONE),
        ("tcp-stream", False, PROTO_TCP, None, AppProto.NONE, 0, STREAM_ONLY),
        ("udp", False, PROTO_UDP, None, AppProto.NONE, 0, STREAM_ANY),
        ("icmp", False, PROTO_ICMP, PROTO_ICMPV6, AppProto.NONE, 0, STREAM_ANY),  # both families
        ("icmpv4", False, PROTO_ICMP, None, AppProto.NONE, 0, STREAM_ANY),
        ("icmpv6", False, PROTO_ICMPV6, None, AppProto.NONE, 0, STREAM_ANY),
        ("http", False, PROTO_TCP, None, AppProto.HTTP, 0, STREAM_ANY),
        ("http1", False, PROTO_TCP, None, AppProto.HTTP, 0, STREAM_ANY),
        ("tls", False, PROTO_TCP, None, AppProto.TLS, 0, STREAM_ANY),
        ("dns", False, None, None, AppProto.DNS, 0, STREAM_ANY),  # tcp and udp
        ("ip", True, None, None, AppProto.NONE, 0, STREAM_ANY),
        ("icmp", True, PROTO_ICMP, PROTO_ICMPV6, AppProto.NONE, 0, STREAM_ANY),
        ("http", True, PROTO_TCP, None, AppProto.HTTP, 0, STREAM_ANY),
        ("ssl", True, PROTO_TCP, None, AppProto.TLS, 0, STREAM_ANY),
        ("dns", True, None, None, AppProto.DNS, 0, STREAM_ANY),
    ],
)
def test_protocols(
    proto: str, snort3: bool, ip: int | None, alt: int | None, app: AppProto, version: int, stream: int
) -> None:
    r = compile_text(f"alert {proto} any any -> any any (sid:1;)", snort3)
    h = r.header
    assert (h.proto, h.alt_proto, h.app, h.ip_version, r.flow.stream) == (ip, alt, app, version, stream)


@pytest.mark.parametrize(
    ("proto", "snort3", "exc", "reason"),
    [
        ("smtp", False, RuleUnsupported, "unsupported protocol 'smtp'"),
        ("http2", False, RuleUnsupported, "unsupported protocol 'http2'"),
        ("smb", False, RuleUnsupported, "unsupported protocol 'smb'"),
        ("sctp", False, RuleUnsupported, "unsupported protocol 'sctp'"),
        ("foo", False, RuleInvalid, "invalid: protocol"),
        ("6", False, RuleInvalid, "invalid: protocol"),  # numbers are refused
        ("icmp4", False, RuleInvalid, "invalid: protocol"),
        ("file", True, RuleUnsupported, "unsupported protocol 'file'"),
        ("smtp", True, RuleUnsupported, "unsupported protocol 'smtp'"),
        ("tcp-pkt", True, RuleUnsupported, "unsupported protocol 'tcp-pkt'"),
    ],
)
def test_protocol_errors(proto: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    with pytest.raises(exc) as e:
        compile_text(f"alert {proto} any any -> any any (sid:1;)", snort3)
    assert e.value.reason == reason


# -- header: addresses, ports, direction ---------------------------------------------------------


def _has(s: object, addr: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(addr)
    return s.contains(ip.version, int(ip))  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("src", "inside", "outside"),
    [
        ("$HOME_NET", ["10.2.3.4", "192.168.1.1"], ["8.8.8.8", "2001:db8::1"]),
        ("$EXTERNAL_NET", ["8.8.8.8", "2001:db8::1"], ["10.2.3.4"]),
        ("!$HOME_NET", ["8.8.8.8"], ["192.168.9.9"]),
        ("$ODD", ["10.2.0.1"], ["10.1.0.1", "8.8.8.8"]),
        ("[10.0.0.0/8,[192.168.0.0/16,!192.168.1.0/24]]", ["10.9.9.9", "192.168.2.1"], ["192.168.1.5"]),
        ("10.0.0.5-10.0.0.9", ["10.0.0.5", "10.0.0.9"], ["10.0.0.4", "10.0.0.10"]),
        ("[2001:db8::1-2001:db8::ff,1.2.3.4]", ["2001:db8::80", "1.2.3.4"], ["2001:db8::100"]),
        ("1.2.3.0/255.255.255.0", ["1.2.3.77"], ["1.2.4.1"]),
        ("any", ["1.1.1.1", "::1"], []),
    ],
)
def test_addresses(src: str, inside: list[str], outside: list[str]) -> None:
    r = compile_text(f"alert ip {src} any -> any any (sid:1;)")
    assert all(_has(r.header.src, a) for a in inside)
    assert not any(_has(r.header.src, a) for a in outside)


@pytest.mark.parametrize(
    ("sport", "dport", "inside", "outside"),
    [
        ("any", "$HTTP_PORTS", [80, 8080], [443]),
        ("any", "![80,443]", [22, 8080], [80, 443]),
        ("any", "[1024:,!8080]", [1024, 65535], [1023, 8080]),
        ("any", ":1023", [0, 1023], [1024]),
        ("any", "[80:90,![85:86]]", [80, 87], [85, 86]),
    ],
)
def test_ports(sport: str, dport: str, inside: list[int], outside: list[int]) -> None:
    r = compile_text(f"alert tcp any {sport} -> any {dport} (sid:1;)")
    assert all(r.header.dport.contains(p) for p in inside)
    assert not any(r.header.dport.contains(p) for p in outside)
    assert r.header.sport.is_any


@pytest.mark.parametrize(
    ("header", "exc", "reason"),
    [
        ("alert ip !any any -> any any", RuleInvalid, "invalid: empty address set"),
        ("alert ip [1.2.3.4,!1.2.3.4] any -> any any", RuleInvalid, "invalid: empty address set"),
        ("alert ip any any -> ![any] any", RuleInvalid, "invalid: empty address set"),
        ("alert tcp any !any -> any any", RuleInvalid, "invalid: empty port set"),
        ("alert tcp any any -> any [80,!80]", RuleInvalid, "invalid: empty port set"),
        ("alert ip $NOPE any -> any any", RuleInvalid, "undefined variable $NOPE"),
        ("alert tcp any $NO_PORTS -> any any", RuleInvalid, "undefined variable $NO_PORTS"),
        ("alert ip 10.0.0.256 any -> any any", RuleInvalid, "invalid: address"),
        ("alert ip 10.0.0.9-10.0.0.1 any -> any any", RuleInvalid, "invalid: address"),
        ("alert ip [1.2.3.4 any -> any any", RuleLoadError, ""),  # parser: unbalanced bracket
        ("alert tcp any 70000 -> any any", RuleInvalid, "invalid: port"),
        ("alert tcp any 90:80 -> any any", RuleInvalid, "invalid: port"),
        ("alert tcp any 80-90 -> any any", RuleInvalid, "invalid: port"),  # '-' is not port syntax
        ("alert http any any => any any", RuleUnsupported, "unsupported direction '=>'"),
    ],
)
def test_header_errors(header: str, exc: type[RuleLoadError], reason: str) -> None:
    if not reason:
        with pytest.raises(ValueError):
            compile_text(f"{header} (sid:1;)")
        return
    with pytest.raises(exc) as e:
        compile_text(f"{header} (sid:1;)")
    assert e.value.reason == reason


def test_bidirectional() -> None:
    assert compile_text("alert tcp 1.1.1.1 any <> 2.2.2.2 80 (sid:1;)").header.bidirectional is True
    assert compile_text("alert tcp 1.1.1.1 any -> 2.2.2.2 80 (sid:1;)").header.bidirectional is False


def test_snort3_header_less_rules() -> None:
    r = compile_text('alert http (msg:"x"; http_uri; content:"/a"; sid:1;)', snort3=True)
    assert r.header.app is AppProto.HTTP
    assert r.header.src.is_any and r.header.dport.is_any
    assert lists(r) == {"http.uri": [b"/a"]}
    with pytest.raises(RuleInvalid) as e:
        compile_text('alert http (msg:"x"; sid:1;)')  # Suricata needs the whole header
    assert e.value.reason == "invalid: header"
    with pytest.raises(RuleInvalid) as e:
        compile_text("alert tcp any any => any any (sid:1;)", snort3=True)
    assert e.value.reason == "invalid: direction"


# -- options: identity and meta ----------------------------------------------------------------


def test_meta_options() -> None:
    r = compile_text(
        'alert tcp any any -> any any (msg:"a\\;b \\"q\\" \\\\"; sid:42; rev:7; gid:3; '
        "metadata:created_at 2020_01_01, tag one, tag two; target:dest_ip; reference:url,x.org; "
        "tag:session,10,packets; noalert;)"
    )
    assert (r.sid, r.rev, r.gid, r.msg) == (42, 7, 3, 'a;b "q" \\')
    assert r.metadata == {"created_at": ("2020_01_01",), "tag": ("one", "two")}
    assert r.target == "dest_ip"
    assert r.noalert is True
    assert r.origin.file == "t.rules" and r.origin.line == 3
    d = compile_text("alert tcp any any -> any any (sid:1;)")
    assert (d.rev, d.gid, d.priority, d.classtype, d.target, d.noalert) == (1, 1, 3, "", "", False)


@pytest.mark.parametrize(
    ("options", "priority", "category"),
    [
        ("classtype:trojan-activity;", 1, "A Network Trojan was detected"),
        ("classtype:Trojan-Activity;", 1, "A Network Trojan was detected"),  # case-insensitive
        ("classtype:misc-activity;", 3, "Misc activity"),
        ("classtype:bad-unknown;", 2, "Potentially Bad Traffic"),
        # an unknown classtype only warns in Suricata: priority 3, no category
        ("classtype:no-such-thing;", 3, ""),
        # priority wins over the classtype's, whatever the order
        ("classtype:trojan-activity; priority:4;", 4, "A Network Trojan was detected"),
        ("priority:4; classtype:trojan-activity;", 4, "A Network Trojan was detected"),
        ("priority:255;", 255, ""),
        # a second classtype replaces the first (a warning in Suricata)
        ("classtype:trojan-activity; classtype:misc-activity;", 3, "Misc activity"),
    ],
)
def test_classtype_and_priority(options: str, priority: int, category: str) -> None:
    r = opts(options)
    assert (r.priority, r.classtype) == (priority, category)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("", "invalid: no sid"),  # the helper adds sid:1, so these replace it below
        ("priority:0;", "invalid: priority"),
        ("priority:256;", "invalid: priority"),
        ("priority:high;", "invalid: priority"),
        ("classtype:1abc;", "invalid: classtype"),
        ("classtype:a b;", "invalid: classtype"),
        ("target:client;", "invalid: target"),
        ("rev:-1;", "invalid: rev"),
        ("gid:x;", "invalid: gid"),
        ("msg;", "invalid: msg without value"),
        ("noalert:1;", "invalid: noalert takes no value"),
        ("sameip:yes;", "invalid: sameip takes no value"),
        ('content:"a"; nocase:1;', "invalid: nocase takes no value"),
        ('content:"a"; endswith:5;', "invalid: endswith takes no value"),
        ('http.uri; to_lowercase:x; content:"a";', "invalid: to_lowercase takes no value"),
        ("msg:unquoted;", "invalid: msg"),
        ('msg:"half;', "invalid: msg"),
        ('msg:"a"; msg:"b";', "invalid: msg twice"),
    ],
)
def test_meta_errors(options: str, reason: str) -> None:
    text = f"{TCP} ({options} sid:1;)" if options else f'{TCP} (msg:"x";)'
    with pytest.raises(RuleInvalid) as e:
        compile_text(text)
    assert e.value.reason == reason


@pytest.mark.parametrize("sid", ["0", "-1", "abc", "4294967296"])
def test_bad_sid(sid: str) -> None:
    with pytest.raises(RuleInvalid) as e:
        compile_text(f"{TCP} (sid:{sid};)")
    assert e.value.reason == "invalid: sid"


def test_unknown_keyword_is_unsupported() -> None:
    e = fails("xbits:set,a,track ip_src;")
    assert isinstance(e, RuleUnsupported) and e.reason == "unsupported keyword 'xbits'"
    e = fails('replace:"b"; content:"a";')
    assert e.reason == "unsupported keyword 'replace'"


# -- content and its modifiers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ('content:"abc";', False, Content(b"abc")),
        ('content:!"abc";', False, Content(b"abc", negated=True)),
        ('content: ! "abc";', False, Content(b"abc", negated=True)),
        ('content:"a|42 43|d";', False, Content(b"aBCd")),
        ('content:"|41,42|";', False, Content(b"AB")),  # commas are ignored in hex
        ('content:"a\\;b\\:c\\"d\\\\";', False, Content(b'a;b:c"d\\')),
        ('content:"a:b";', False, Content(b"a:b")),  # an unescaped ':' is accepted
        ('content:"ABC"; nocase;', False, Content(b"abc", nocase=True)),
        ('content:"abc"; offset:2; depth:5;', False, Content(b"abc", offset=2, depth=5)),
        ('content:"abc"; depth:0x10;', False, Content(b"abc", depth=16)),
        ('content:"a"; content:"bc"; distance:-2; within:4;', False, Content(b"bc", distance=-2, within=4)),
        ('content:"a"; content:"bc"; distance:0;', False, Content(b"bc", distance=0)),
        ('content:"abc"; startswith;', False, Content(b"abc", offset=0, depth=3, startswith=True)),
        ('content:"abc"; endswith;', False, Content(b"abc", endswith=True)),
        ('content:"abc"; rawbytes; rawbytes;', False, Content(b"abc")),
        ('content:"abc"; fast_pattern;', False, Content(b"abc", fast_pattern=True)),
        ('content:"abc"; fast_pattern:only;', False, Content(b"abc", fast_pattern=True)),
        ('content:"abcd"; fast_pattern:1,2;', False, Content(b"abcd", fast_pattern=True, fp_chop=(1, 2))),
        ('content:"abcd"; fast_pattern: 1 , 3 ;', False, Content(b"abcd", fast_pattern=True, fp_chop=(1, 3))),
        ('content:"abcd"; fast_pattern:0,0;', False, Content(b"abcd", fast_pattern=True)),
        ('content:"abc"; prefilter;', False, Content(b"abc", fast_pattern=True)),
        ('content:"abc"; fast_pattern; prefilter;', False, Content(b"abc", fast_pattern=True)),
        # Snort 3's inline form
        ('content:"ABC",nocase,depth 5,offset 1;', True, Content(b"abc", nocase=True, offset=1, depth=5)),
        ('content:"x"; content:"bc", distance 2, within 4;', True, Content(b"bc", distance=2, within=4)),
        ('content:"abcd",fast_pattern;', True, Content(b"abcd", fast_pattern=True)),
        (
            'content:"abcd",fast_pattern_offset 1,fast_pattern_length 2;',
            True,
            Content(b"abcd", fast_pattern=True, fp_chop=(1, 2)),
        ),
        ('content:"abcd",fast_pattern_offset 1;', True, Content(b"abcd", fast_pattern=True, fp_chop=(1, 3))),
        ('content:!"abc",nocase;', True, Content(b"abc", nocase=True, negated=True)),
    ],
)
def test_content(options: str, snort3: bool, expected: Content) -> None:
    assert contents(opts(options, snort3=snort3))[-1] == expected


def test_content_with_byte_variables() -> None:
    r = opts('byte_extract:1,0,len; content:"x"; distance:len; within:len; byte_test:len,=,1,0;')
    c = contents(r)[0]
    assert (c.distance, c.within) == ("len", "len")
    assert [type(m) for m in r.buffers[0].matches] == [ByteExtract, Content, ByteTest]


@pytest.mark.parametrize(
    ("options", "snort3", "exc", "reason"),
    [
        ('content:"abcd"; depth:3;', False, RuleInvalid, "invalid: depth shorter than content"),
        ('content:"abc"; within:2;', False, RuleInvalid, "invalid: within shorter than content"),
        ('content:"abc"; within:0;', False, RuleInvalid, "invalid: within shorter than content"),
        ('content:"abc"; within:-5;', False, RuleInvalid, "invalid: within shorter than content"),
        (
            'content:"a"; offset:1; distance:1;',
            False,
            RuleInvalid,
            "invalid: relative and absolute modifiers",
        ),
        ('content:"a"; within:5; depth:3;', False, RuleInvalid, "invalid: relative and absolute modifiers"),
        (
            'content:"a"; startswith; offset:1;',
            False,
            RuleInvalid,
            "invalid: startswith with positional modifiers",
        ),
        (
            'content:"a"; distance:0; startswith;',
            False,
            RuleInvalid,
            "invalid: startswith with positional modifiers",
        ),
        ("nocase;", False, RuleInvalid, "invalid: modifier without content"),
        ("depth:4;", False, RuleInvalid, "invalid: modifier without content"),
        ("fast_pattern;", False, RuleInvalid, "invalid: modifier without content"),
        # with a sticky buffer active, a modifier only sees that buffer's contents
        ('content:"a"; http.uri; nocase;', False, RuleInvalid, "invalid: modifier without content"),
        ('content:"a"; nocase; nocase;', False, RuleInvalid, "invalid: nocase twice"),
        ('content:"abc"; depth:5; depth:6;', False, RuleInvalid, "invalid: depth twice"),
        ('content:"abc"; offset:1; offset:2;', False, RuleInvalid, "invalid: offset twice"),
        ('content:"a"; content:"b"; within:5; within:6;', False, RuleInvalid, "invalid: within twice"),
        ('content:"a"; startswith; startswith;', False, RuleInvalid, "invalid: startswith twice"),
        ('content:"a"; fast_pattern; fast_pattern;', False, RuleInvalid, "invalid: fast_pattern twice"),
        (
            'content:"a"; fast_pattern; content:"b"; fast_pattern;',
            False,
            RuleInvalid,
            "invalid: fast_pattern twice",
        ),
        (
            'content:"a"; fast_pattern; content:"b"; prefilter;',
            False,
            RuleInvalid,
            "invalid: fast_pattern twice",
        ),
        ('content:"abc"; fast_pattern:2,2;', False, RuleInvalid, "invalid: fast_pattern chop"),
        ('content:"abc"; fast_pattern:70000,1;', False, RuleInvalid, "invalid: fast_pattern chop"),
        ('content:"abc"; fast_pattern:foo;', False, RuleInvalid, "invalid: fast_pattern value"),
        ('content:"abc"; fast_pattern:1;', False, RuleInvalid, "invalid: fast_pattern value"),
        ('content:"abc"; fast_pattern:ONLY;', False, RuleInvalid, "invalid: fast_pattern value"),
        ('content:"abc"; fast_pattern:only; offset:1;', False, RuleInvalid, "invalid: fast_pattern:only"),
        ('content:"abc"; depth:5; fast_pattern:only;', False, RuleInvalid, "invalid: fast_pattern:only"),
        ('content:!"abc"; fast_pattern:only;', False, RuleInvalid, "invalid: fast_pattern:only"),
        ('content:"abc"; startswith; fast_pattern:only;', False, RuleInvalid, "invalid: fast_pattern:only"),
        ('content:"abc"; fast_pattern:only; startswith;', False, RuleInvalid, "invalid: fast_pattern:only"),
        (
            'content:"a"; fast_pattern:only; content:"b"; distance:0;',
            False,
            RuleInvalid,
            "invalid: fast_pattern:only",
        ),
        (
            'content:!"a"; offset:1; fast_pattern;',
            False,
            RuleInvalid,
            "invalid: fast_pattern on negated content",
        ),
        (
            'content:!"a"; fast_pattern; depth:4;',
            False,
            RuleInvalid,
            "invalid: fast_pattern on negated content",
        ),
        ('content:!"a"; depth:4; prefilter;', False, RuleInvalid, "invalid: prefilter"),
        ('content:"abc"; depth:-1;', False, RuleInvalid, "invalid: depth value"),
        ('content:"abc"; offset:70000;', False, RuleInvalid, "invalid: offset value"),
        ('content:"abc"; depth:4x;', False, RuleInvalid, "invalid: depth value"),
        ('content:"a"; content:"b"; distance:2000000;', False, RuleInvalid, "invalid: distance value"),
        ('content:"abc"; depth;', False, RuleInvalid, "invalid: depth without value"),
        ('content:"abc"; depth:len;', False, RuleInvalid, "invalid: undefined byte variable"),
        # content strings as Suricata parses them
        ('content:"a\\x";', False, RuleInvalid, "invalid: content string"),  # not an escape
        ('content:"a\\|41|";', False, RuleInvalid, "invalid: content string"),
        ('content:"a"b";', False, RuleInvalid, "invalid: content string"),  # stray quote
        ('content:"|414|";', False, RuleInvalid, "invalid: content string"),  # odd hex digits
        ('content:"|41";', False, RuleInvalid, "invalid: content string"),  # unclosed |
        ('content:"|4g|";', False, RuleInvalid, "invalid: content string"),
        ('content:"|41\t42|";', False, RuleInvalid, "invalid: content string"),  # tab in hex
        ('content:"";', False, RuleInvalid, "invalid: content string"),
        ('content:"||";', False, RuleInvalid, "invalid: content string"),
        ("content:abc;", False, RuleInvalid, "invalid: content not quoted"),
        ('content:"abc;', False, RuleInvalid, "invalid: unterminated string"),
        ("content;", False, RuleInvalid, "invalid: content without value"),
        # Snort 3's inline modifiers are not Suricata syntax
        ('content:"abc",nocase;', False, RuleInvalid, "invalid: content string"),
        ('content:"abc" nocase;', True, RuleInvalid, "invalid: content string"),
        ('content:"abc",width 8;', True, RuleUnsupported, "unsupported content modifier 'width'"),
        ('content:"abc",fast_pattern_length 9;', True, RuleInvalid, "invalid: fast_pattern chop"),
        ('content:"abc",depth 2;', True, RuleInvalid, "invalid: depth shorter than content"),
        ('content:"abc",fast_pattern only;', True, RuleInvalid, "invalid: fast_pattern value"),
    ],
)
def test_content_errors(options: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    e = fails(options, snort3=snort3)
    assert type(e) is exc
    assert e.reason == reason


@pytest.mark.parametrize(
    ("options", "header"),
    [
        ('http.host; content:"Example.com";', HTTP),
        ('http.host; content:"example.com"; nocase;', HTTP),
        ('content:"EXAMPLE"; http_host;', HTTP),
    ],
)
def test_http_host_must_be_lower_case(options: str, header: str) -> None:
    e = fails(options, header)
    assert isinstance(e, RuleInvalid) and e.reason == "invalid: http.host needs lower case"


def test_http_host_lower_case_and_raw_host_any_case() -> None:
    assert lists(opts('http.host; content:"example.com";', HTTP)) == {"http.host": [b"example.com"]}
    assert lists(opts('http.host.raw; content:"Example.com";', HTTP)) == {"http.host.raw": [b"Example.com"]}
    # after a transform the check is the transform's, not http.host's
    assert lists(opts('http.host; to_uppercase; content:"EXAMPLE";', HTTP)) == {
        "http.host+to_uppercase": [b"EXAMPLE"]
    }


# -- buffers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ('content:"a"; content:"b";', False, {"payload": [b"a", b"b"]}),
        ('http.uri; content:"a"; content:"b";', False, {"http.uri": [b"a", b"b"]}),
        ('http_uri; content:"a";', False, None),  # Suricata: modifier without a content
        # legacy modifiers move the content before them
        ('content:"a"; http_uri; content:"b";', False, {"http.uri": [b"a"], "payload": [b"b"]}),
        (
            'content:"GET"; http_method; content:"/x"; http_uri;',
            False,
            {"http.method": [b"GET"], "http.uri": [b"/x"]},
        ),
        ('uricontent:"/x";', False, {"http.uri": [b"/x"]}),
        ('content:"x"; http_server_body;', False, {"http.response_body": [b"x"]}),
        ('content:"x"; http_client_body;', False, {"http.request_body": [b"x"]}),
        ('content:"x"; http_raw_header;', False, {"http.header.raw": [b"x"]}),
        # the modifier takes the last content still in the payload: here "a", after "b" moved
        (
            'content:"a"; content:"b"; http_uri; http_header;',
            False,
            {"http.uri": [b"b"], "http.header": [b"a"]},
        ),
        # Snort 3: the same names are sticky buffers written before their contents
        ('http_uri; content:"a"; content:"b";', True, {"http.uri": [b"a", b"b"]}),
        ('content:"a"; http_uri; content:"b";', True, {"payload": [b"a"], "http.uri": [b"b"]}),
        (
            'http_header; content:"h"; pkt_data; content:"p";',
            True,
            {"http.header": [b"h"], "payload": [b"p"]},
        ),
        ('file_data; content:"f"; raw_data; content:"r";', True, {"file.data": [b"f"], "payload": [b"r"]}),
        ('http_version; content:"HTTP/1.1";', True, {"http.protocol": [b"HTTP/1.1"]}),
        ('http_header:field user-agent; content:"curl";', True, {"http.user_agent": [b"curl"]}),
        ('http_header:field Host; content:"x";', True, {"http.host.raw": [b"x"]}),
        # pkt_data resets the sticky buffer
        ('http.uri; content:"a"; pkt_data; content:"b";', False, {"http.uri": [b"a"], "payload": [b"b"]}),
        (
            'http.uri; content:"a"; pkt_data; content:"b"; http_header;',
            False,
            {"http.uri": [b"a"], "http.header": [b"b"]},
        ),
        # the same buffer named twice continues one list
        (
            'http.uri; content:"a"; http.header; content:"b"; http.uri; content:"c"; distance:0;',
            False,
            {"http.uri": [b"a", b"c"], "http.header": [b"b"]},
        ),
        ('http.uri; content:"a"; content:"b"; http_uri;', False, None),  # modifier inside a sticky buffer
        # underscore aliases of sticky buffers
        ('dns_query; content:"x";', False, {"dns.query": [b"x"]}),
        ('file_data; content:"x";', False, {"file.data": [b"x"]}),
        ('tls_sni; content:"x";', False, {"tls.sni": [b"x"]}),
        # transforms make a list of their own
        (
            'http.uri; content:"a"; http.uri; to_lowercase; content:"b";',
            False,
            {"http.uri": [b"a"], "http.uri+to_lowercase": [b"b"]},
        ),
        (
            'http.uri; to_lowercase; compress_whitespace; content:"b c";',
            False,
            {"http.uri+to_lowercase+compress_whitespace": [b"b c"]},
        ),
        # transforms may follow plain matches of the buffer until a match consumes them (ET 2044076)
        (
            'dns.query; content:"rs-"; startswith; pcre:"/[a-z]{2}/Ri"; dotprefix; content:".x.com";',
            False,
            {"dns.query": [b"rs-", "re:[a-z]{2}/R"], "dns.query+dotprefix": [b".x.com"]},
        ),
        (
            'http.uri; to_lowercase; content:!"A";',
            False,
            {"http.uri+to_lowercase": [b"A"]},
        ),  # negated: not checked
        ('http.uri; strip_whitespace; content:"ab";', False, {"http.uri+strip_whitespace": [b"ab"]}),
        ('http.uri; strip_whitespace; content:"a|1c|b";', False, {"http.uri+strip_whitespace": [b"a\x1cb"]}),
        ('http.uri; url_decode; content:"a b";', False, {"http.uri+url_decode": [b"a b"]}),
        # urilen goes to the uri list whatever buffer is active (ET 2044341)
        (
            'http.method; content:"GET"; urilen:>1; http.host; content:"logo.x.com"; bsize:10;',
            False,
            {
                "http.method": [b"GET"],
                "http.uri": [("size", "gt", 1, 0)],
                "http.host": [b"logo.x.com", ("size", "eq", 10, 0)],
            },
        ),
        # pcre /Q (file_data) fits inside http.response_body, one list in Suricata (ET 2038501)
        (
            'flow:to_client; http.response_body; content:"var"; pcre:"/x/Qi";',
            False,
            {"http.response_body": [b"var", "re:x"]},
        ),
    ],
)
def test_buffer_lists(options: str, snort3: bool, expected: dict[str, list[object]] | None) -> None:
    if expected is None:
        assert isinstance(fails(options, HTTP, snort3), RuleInvalid)
        return
    assert lists(opts(options, "alert tcp any any -> any any", snort3)) == expected


@pytest.mark.parametrize(
    ("options", "header", "snort3", "exc", "reason"),
    [
        ('content:"a"; http.uri;', TCP, False, RuleInvalid, "invalid: sticky buffer without matches"),
        (
            'http.uri; http.header; content:"a";',
            TCP,
            False,
            RuleInvalid,
            "invalid: sticky buffer without matches",
        ),
        (
            'http.uri; content:"a"; http.header;',
            TCP,
            False,
            RuleInvalid,
            "invalid: sticky buffer without matches",
        ),
        ('http.uri:x; content:"a";', TCP, False, RuleInvalid, "invalid: sticky buffer with value"),
        (
            'content:"a"; rawbytes; http_uri;',
            TCP,
            False,
            RuleInvalid,
            "invalid: modifier on rawbytes content",
        ),
        ('to_lowercase; content:"a";', TCP, False, RuleInvalid, "invalid: transform without sticky buffer"),
        (
            'http.uri; to_lowercase; content:"a"; strip_whitespace; content:"b";',
            TCP,
            False,
            RuleInvalid,
            "invalid: transform after a match",
        ),
        (
            'http.uri; to_lowercase; http.header; content:"a";',
            TCP,
            False,
            RuleInvalid,
            "invalid: transform without match",
        ),
        (
            'http.uri; to_lowercase; content:"A";',
            TCP,
            False,
            RuleInvalid,
            "invalid: content incompatible with transform",
        ),
        (
            'http.uri; to_uppercase; content:"a";',
            TCP,
            False,
            RuleInvalid,
            "invalid: content incompatible with transform",
        ),
        (
            'http.uri; strip_whitespace; content:"a b";',
            TCP,
            False,
            RuleInvalid,
            "invalid: content incompatible with transform",
        ),
        (
            'http.uri; compress_whitespace; content:"a  b";',
            TCP,
            False,
            RuleInvalid,
            "invalid: content incompatible with transform",
        ),
        (
            'http.uri; xor:"0d0ac8ff"; content:"a";',
            TCP,
            False,
            RuleUnsupported,
            "unsupported transform 'xor'",
        ),
        ('http.uri; pcrexform; content:"a";', TCP, False, RuleInvalid, "invalid: pcrexform"),
        # request and response buffers in one rule
        (
            'http.uri; content:"a"; http.stat_code; content:"200";',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffers of both directions",
        ),
        (
            'content:"a"; http_uri; content:"200"; http_stat_code;',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffers of both directions",
        ),
        (
            'tls.sni; content:"a"; ja3s.hash; content:"b";',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffers of both directions",
        ),
        # flow direction against the buffers' direction
        ('flow:to_client; http.uri; content:"a";', TCP, False, RuleInvalid, "invalid: buffer direction"),
        (
            'flow:established,from_client; http.stat_code; content:"200";',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffer direction",
        ),
        (
            'flow:to_server; file_data; content:"a"; http.stat_msg; content:"OK";',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffer direction",
        ),
        # buffers against the header's protocol
        (
            'http.uri; content:"a";',
            "alert dns any any -> any any",
            False,
            RuleInvalid,
            "invalid: buffer does not fit protocol",
        ),
        (
            'http.uri; content:"a";',
            "alert udp any any -> any any",
            False,
            RuleInvalid,
            "invalid: buffer does not fit protocol",
        ),
        (
            'dns.query; content:"a";',
            "alert tls any any -> any any",
            False,
            RuleInvalid,
            "invalid: buffer does not fit protocol",
        ),
        (
            'dns.query; content:"a";',
            "alert icmp any any -> any any",
            False,
            RuleInvalid,
            "invalid: buffer does not fit protocol",
        ),
        (
            'tls.sni; content:"a";',
            "alert udp any any -> any any",
            False,
            RuleInvalid,
            "invalid: buffer does not fit protocol",
        ),
        (
            'dns.query; content:"a"; http.uri; content:"b";',
            TCP,
            False,
            RuleInvalid,
            "invalid: buffers of several protocols",
        ),
        # Snort 3 buffer options this engine has no buffer for
        (
            'http_header:field x-foo; content:"a";',
            TCP,
            True,
            RuleUnsupported,
            "unsupported: http_header:field",
        ),
        ('http_uri:path; content:"a";', TCP, True, RuleUnsupported, "unsupported: http_uri with options"),
        (
            'service:smtp; file_data; content:"a";',
            TCP,
            True,
            RuleUnsupported,
            "unsupported: http buffers for service smtp",
        ),
    ],
)
def test_buffer_errors(
    options: str, header: str, snort3: bool, exc: type[RuleLoadError], reason: str
) -> None:
    e = fails(options, header, snort3)
    assert type(e) is exc
    assert e.reason == reason


@pytest.mark.parametrize(
    ("options", "header", "snort3", "app", "proto"),
    [
        ('http.uri; content:"a";', TCP, False, AppProto.HTTP, PROTO_TCP),
        ('http.uri; content:"a";', "alert ip any any -> any any", False, AppProto.HTTP, PROTO_TCP),
        ('tls.sni; content:"a";', "alert ip any any -> any any", False, AppProto.TLS, PROTO_TCP),
        ('dns.query; content:"a";', "alert udp any any -> any any", False, AppProto.DNS, PROTO_UDP),
        ('dns.query; content:"a";', "alert ip any any -> any any", False, AppProto.DNS, None),
        ('content:"a"; http_uri;', "alert http any any -> any any", False, AppProto.HTTP, PROTO_TCP),
        # Snort 3's service names the app protocol when it names one
        ('service:http; content:"a";', TCP, True, AppProto.HTTP, PROTO_TCP),
        ('service:ssl; content:"a";', TCP, True, AppProto.TLS, PROTO_TCP),
        ('service:http,smtp; content:"a";', TCP, True, AppProto.NONE, PROTO_TCP),
        ('service:http,smtp; http_uri; content:"a";', TCP, True, AppProto.HTTP, PROTO_TCP),
        ('service:smtp; content:"a";', TCP, True, AppProto.NONE, PROTO_TCP),
    ],
)
def test_buffer_app_protocol(
    options: str, header: str, snort3: bool, app: AppProto, proto: int | None
) -> None:
    r = opts(options, header, snort3)
    assert (r.header.app, r.header.proto) == (app, proto)


# -- pcre ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ('pcre:"/a/";', False, {"payload": ["re:a"]}),
        ("pcre:/a/i;", False, {"payload": ["re:a"]}),  # quotes are optional
        ('pcre:"/a/U";', False, {"http.uri": ["re:a"]}),
        ('pcre:"/a/I";', False, {"http.uri.raw": ["re:a"]}),
        ('pcre:"/a/H";', False, {"http.header": ["re:a"]}),
        ('pcre:"/a/P";', False, {"http.request_body": ["re:a"]}),
        ('pcre:"/a/M";', False, {"http.method": ["re:a"]}),
        ('pcre:"/a/C";', False, {"http.cookie": ["re:a"]}),
        ('pcre:"/a/W";', False, {"http.host": ["re:a"]}),
        ('pcre:"/a/V";', False, {"http.user_agent": ["re:a"]}),
        ('http.uri; pcre:"/a/";', False, {"http.uri": ["re:a"]}),
        ('http.uri; pcre:"/a/U";', False, {"http.uri": ["re:a"]}),
        ('http.uri; pcre:"/a/R";', False, {"http.uri": ["re:a/R"]}),  # a sticky buffer needs no match before
        ('content:"x"; pcre:"/a/R";', False, {"payload": [b"x", "re:a/R"]}),
        ('content:"x"; http_uri; pcre:"/a/UR";', False, {"http.uri": [b"x", "re:a/R"]}),
        ('pcre:"/x/"; pcre:"/a/R";', False, {"payload": ["re:x", "re:a/R"]}),
        ('content:"x"; http_uri; pcre:"/a/";', False, {"http.uri": [b"x"], "payload": ["re:a"]}),
        ('pcre:!"/a/";', False, {"payload": ["re:a"]}),
        # Snort 3: /R needs no match before it (relative to the start)
        ('pcre:"/a/R";', True, {"payload": ["re:a/R"]}),
        ('http_uri; pcre:"/a/i";', True, {"http.uri": ["re:a"]}),
    ],
)
def test_pcre_placement(options: str, snort3: bool, expected: dict[str, list[object]]) -> None:
    assert lists(opts(options, snort3=snort3)) == expected


@pytest.mark.parametrize(
    ("options", "snort3", "exc", "reason"),
    [
        ('pcre:"/a/R";', False, RuleInvalid, "invalid: relative pcre without match"),
        ('byte_test:1,=,1,0; pcre:"/a/R";', False, RuleInvalid, "invalid: relative pcre without match"),
        # /R stays in the payload list: the content moved to http.uri is not before it there
        ('content:"x"; http_uri; pcre:"/a/R";', False, RuleInvalid, "invalid: relative pcre without match"),
        ('http.uri; pcre:"/a/H";', False, RuleInvalid, "invalid: buffer conflict"),
        ('file_data; pcre:"/a/P";', False, RuleInvalid, "invalid: buffer conflict"),
        ('pcre:"/a/UH";', False, RuleInvalid, "invalid: pcre"),
        ('pcre:"/a/W"; pcre:"/A/W";', False, RuleInvalid, "invalid: pcre"),  # W: upper-case pattern
        ('pcre:"a";', False, RuleInvalid, "invalid: pcre"),
        ('pcre:"/a/U";', True, RuleInvalid, "invalid: pcre"),  # Snort 3 dropped buffer letters
        ('pcre:"/a/B";', True, RuleInvalid, "invalid: pcre"),
        ('pcre:"/(a)\\1/";', False, RuleUnsupported, "pcre: backreference"),
    ],
)
def test_pcre_errors(options: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    e = fails(options, snort3=snort3)
    assert type(e) is exc
    assert e.reason == reason


# -- byte_*, isdataat, sizes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ("isdataat:1;", False, {"payload": [("isdataat", 1, False, False)]}),
        ("isdataat:!1,relative;", False, {"payload": [("isdataat", 1, True, True)]}),
        # relative keywords without a sticky buffer join the list of the latest match
        (
            'content:"a"; http_uri; isdataat:2,relative;',
            False,
            {"http.uri": [b"a", ("isdataat", 2, True, False)]},
        ),
        ('content:"a"; http_uri; byte_test:1,=,1,0,relative;', False, {"http.uri": [b"a", "ByteTest"]}),
        ('content:"a"; http_uri; byte_jump:1,0,relative;', False, {"http.uri": [b"a", "ByteJump"]}),
        ('content:"a"; http_uri; byte_extract:1,0,v,relative;', False, {"http.uri": [b"a", "ByteExtract"]}),
        (
            'content:"a"; http_uri; byte_math:bytes 1, offset 0, oper +, rvalue 1, result r, relative;',
            False,
            {"http.uri": [b"a", "ByteMath"]},
        ),
        (
            'http.uri; content:"a"; pkt_data; isdataat:1,relative;',
            False,
            {"http.uri": [b"a", ("isdataat", 1, True, False)]},
        ),
        # absolute ones go to the payload (or the sticky buffer)
        ('content:"a"; http_uri; byte_test:1,=,1,0;', False, {"http.uri": [b"a"], "payload": ["ByteTest"]}),
        ('http.uri; content:"a"; isdataat:1;', False, {"http.uri": [b"a", ("isdataat", 1, False, False)]}),
        # the latest match counts, whichever keyword it was
        (
            'content:"a"; http_uri; content:"b"; byte_test:1,=,1,0,relative;',
            False,
            {"http.uri": [b"a"], "payload": [b"b", "ByteTest"]},
        ),
        (
            'content:"a"; http_uri; pcre:"/b/"; isdataat:1,relative;',
            False,
            {"http.uri": [b"a"], "payload": ["re:b", ("isdataat", 1, True, False)]},
        ),
        ("isdataat:1,relative;", False, {"payload": [("isdataat", 1, True, False)]}),
        # Snort 3's relative isdataat tests cursor+N < length: Suricata's N+1
        ('content:"a"; isdataat:!0,relative;', True, {"payload": [b"a", ("isdataat", 1, True, True)]}),
        ("isdataat:5;", True, {"payload": [("isdataat", 5, False, False)]}),
        # sizes
        ('http.uri; content:"abc"; bsize:<10;', False, {"http.uri": [b"abc", ("size", "lt", 10, 0)]}),
        ('http.uri; bsize:3<>10; content:"abc";', False, {"http.uri": [("size", "range", 3, 10), b"abc"]}),
        ('http.uri; bsize:>20; content:"abc";', False, {"http.uri": [("size", "gt", 20, 0), b"abc"]}),
        ("urilen:5;", False, {"http.uri": [("size", "eq", 5, 0)]}),
        ("urilen:5<>10,norm;", False, {"http.uri": [("size", "range", 5, 10)]}),
        ("urilen:>5, raw;", False, {"http.uri.raw": [("size", "gt", 5, 0)]}),
        ('urilen:<5; content:"abcde"; http_uri;', False, {"http.uri": [("size", "lt", 5, 0), b"abcde"]}),
        ("http_uri; bufferlen:11<=>20;", True, {"http.uri": [("size", "range_incl", 11, 20)]}),
        ("http_uri; bufferlen:<5;", True, {"http.uri": [("size", "lt", 5, 0)]}),
        ("bufferlen:5;", True, {"payload": [("size", "eq", 5, 0)]}),
    ],
)
def test_byte_and_size_placement(options: str, snort3: bool, expected: dict[str, list[object]]) -> None:
    assert lists(opts(options, snort3=snort3)) == expected


@pytest.mark.parametrize(
    ("options", "snort3", "exc", "reason"),
    [
        (
            'content:"a"; distance:n; byte_extract:2,0,n;',
            False,
            RuleInvalid,
            "invalid: undefined byte variable",
        ),
        (
            'byte_extract:2,0,n; http.uri; content:"a"; offset:n;',
            False,
            RuleInvalid,
            "invalid: undefined byte variable",
        ),
        ("byte_test:n,=,1,0;", False, RuleInvalid, "invalid: undefined byte variable"),
        ("isdataat:n;", False, RuleInvalid, "invalid: undefined byte variable"),
        ("byte_jump:1,n;", False, RuleInvalid, "invalid: undefined byte variable"),
        ("byte_test:1,=,1;", False, RuleInvalid, "invalid: byte_test"),
        ("isdataat:70000;", False, RuleInvalid, "invalid: isdataat"),
        (
            "byte_extract:2,0,n; isdataat:n,relative;",
            True,
            RuleUnsupported,
            "unsupported: isdataat relative variable",
        ),
        ("bsize:5;", False, RuleInvalid, "invalid: bsize without sticky buffer"),
        ('http.uri; bsize:abc; content:"a";', False, RuleInvalid, "invalid: bsize"),
        ('http.uri; bsize:5; content:"abcdef";', False, RuleInvalid, "invalid: content longer than bsize"),
        ('http.uri; bsize:<5; content:"abcdef";', False, RuleInvalid, "invalid: content longer than bsize"),
        (
            'http.uri; bsize:2<>5; content:"abc"; offset:3;',
            False,
            RuleInvalid,
            "invalid: content longer than bsize",
        ),
        ('urilen:<3; content:"abcdef"; http_uri;', False, RuleInvalid, "invalid: content longer than urilen"),
        ("urilen:5,foo;", False, RuleInvalid, "invalid: urilen"),
        ("urilen:abc;", False, RuleInvalid, "invalid: urilen"),
        ("bufferlen:5,relative;", True, RuleUnsupported, "unsupported: bufferlen relative"),
        ("bufferlen:5,foo;", True, RuleInvalid, "invalid: bufferlen"),
        ("bufferlen:20<=>11;", True, RuleInvalid, "invalid: bufferlen"),
    ],
)
def test_byte_and_size_errors(options: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    e = fails(options, snort3=snort3)
    assert type(e) is exc
    assert e.reason == reason


def test_negated_content_longer_than_bsize_is_fine() -> None:
    assert lists(opts('http.uri; bsize:2; content:!"abcdef";')) == {
        "http.uri": [("size", "eq", 2, 0), b"abcdef"]
    }


# -- flow ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("established,to_server", FlowMatch(True, True)),
        ("to_client,established", FlowMatch(False, True)),
        ("from_client", FlowMatch(True)),
        ("from_server", FlowMatch(False)),
        ("ESTABLISHED, TO_SERVER", FlowMatch(True, True)),
        ("not_established", FlowMatch(None, False)),
        ("stateless", FlowMatch()),
        ("not_established,stateless", FlowMatch(None, False)),
        ("established,only_stream", FlowMatch(None, True, STREAM_ONLY)),
        ("to_server,no_stream", FlowMatch(True, None, STREAM_NONE)),
        ("only_frag", FlowMatch(None, None, STREAM_ANY, True)),
        ("no_frag,to_server,established", FlowMatch(True, True, STREAM_ANY, False)),
    ],
)
def test_flow(value: str, expected: FlowMatch) -> None:
    assert opts(f"flow:{value};").flow == expected


def test_flow_after_a_direction_only_flow() -> None:
    # a direction-only flow adds no match in Suricata, so another flow keyword may follow
    assert opts("flow:to_server; flow:established;").flow == FlowMatch(True, True)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("flow:to_server,to_client;", "invalid: flow"),
        ("flow:from_client,to_client;", "invalid: flow"),
        ("flow:established,not_established;", "invalid: flow"),
        ("flow:established,stateless;", "invalid: flow"),
        ("flow:stateless,established;", "invalid: flow"),
        ("flow:only_stream,no_stream;", "invalid: flow"),
        ("flow:only_frag,no_frag;", "invalid: flow"),
        ("flow:established,established;", "invalid: flow"),
        ("flow:to_server,from_client;", "invalid: flow"),
        ("flow:established,to_server,no_frag,only_stream;", "invalid: flow"),  # at most 3
        ("flow:sideways;", "invalid: flow"),
        ("flow:est ablished;", "invalid: flow"),
        ("flow:to_server; flow:to_client;", "invalid: flow"),
        ("flow:established; flow:to_server;", "invalid: flow twice"),
        ("flow;", "invalid: flow without value"),
    ],
)
def test_flow_errors(options: str, reason: str) -> None:
    e = fails(options)
    assert isinstance(e, RuleInvalid) and e.reason == reason


@pytest.mark.parametrize(
    ("options", "header", "reason"),
    [
        ("flow:only_stream;", "alert tcp-pkt any any -> any any", "invalid: packet and stream keywords"),
        ("flow:no_stream;", "alert tcp-stream any any -> any any", "invalid: packet and stream keywords"),
        ("dsize:>10;", "alert tcp-stream any any -> any any", "invalid: packet and stream keywords"),
        ("flags:S; flow:only_stream;", TCP, "invalid: packet and stream keywords"),
        ('dsize:>10; http.uri; content:"a";', TCP, "invalid: packet keyword with app-layer buffer"),
        ('ttl:5; content:"a"; http_header;', TCP, "invalid: packet keyword with app-layer buffer"),
        ('flow:no_stream; dns.query; content:"a";', TCP, "invalid: packet keyword with app-layer buffer"),
        (
            'tls.sni; content:"a";',
            "alert tcp-pkt any any -> any any",
            "invalid: packet keyword with app-layer buffer",
        ),
    ],
)
def test_packet_only_conflicts(options: str, header: str, reason: str) -> None:
    e = fails(options, header)
    assert isinstance(e, RuleInvalid) and e.reason == reason


def test_packet_keywords_with_app_buffers_load_in_snort3() -> None:
    r = opts('dsize:>10; http_uri; content:"a";', snort3=True)
    assert r.header.conditions == (PacketCondition("dsize", UintMatch("gt", 10)),)


def test_stream_mode_from_header_and_flow() -> None:
    assert opts('content:"a";', "alert tcp-pkt any any -> any any").flow.stream == STREAM_NONE
    assert opts('content:"a"; flow:established;', "alert tcp-stream any any -> any any").flow == FlowMatch(
        None, True, STREAM_ONLY
    )
    assert opts("flow:no_stream;", "alert tcp-pkt any any -> any any").flow.stream == STREAM_NONE


# -- flowbits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ("flowbits:set,a;", False, (Flowbit("set", ("a",)),)),
        ("flowbits:unset,a.b-c_d;", False, (Flowbit("unset", ("a.b-c_d",)),)),
        ("flowbits:toggle,a;", False, (Flowbit("toggle", ("a",)),)),
        ("flowbits:isset,a;", False, (Flowbit("isset", ("a",)),)),
        ("flowbits:isnotset,a;", False, (Flowbit("isnotset", ("a",)),)),
        ("flowbits:isset, a ;", False, (Flowbit("isset", ("a",)),)),
        ("flowbits:isset,a|b;", False, (Flowbit("isset", ("a", "b"), any_of=True),)),
        ("flowbits:isnotset,a | b|c;", False, (Flowbit("isnotset", ("a", "b", "c"), any_of=True),)),
        # Suricata has no '&' operator: it is part of the name (AND is two keywords)
        ("flowbits:isset,a&b;", False, (Flowbit("isset", ("a&b",)),)),
        ("flowbits:isset,a; flowbits:isset,b;", False, (Flowbit("isset", ("a",)), Flowbit("isset", ("b",)))),
        ("flowbits:set,a,b;", False, (Flowbit("set", ("a,b",)),)),  # the name runs to the end
        ("flowbits:noalert;", False, ()),
        # Snort 3: '|' any, '&' all; isnotset negates isset
        ("flowbits:set,a&b;", True, (Flowbit("set", ("a", "b")),)),
        ("flowbits:SET,a;", True, (Flowbit("set", ("a",)),)),
        ("flowbits:isset,a|b;", True, (Flowbit("isset", ("a", "b"), any_of=True),)),
        ("flowbits:isset,a&b;", True, (Flowbit("isset", ("a", "b")),)),
        ("flowbits:isnotset,a|b;", True, (Flowbit("isnotset", ("a", "b")),)),  # none set
        ("flowbits:isnotset,a&b;", True, (Flowbit("isnotset", ("a", "b"), any_of=True),)),  # not all set
        ("flowbits:isnotset,a;", True, (Flowbit("isnotset", ("a",)),)),
        ("flowbits:noalert;", True, ()),
    ],
)
def test_flowbits(options: str, snort3: bool, expected: tuple[Flowbit, ...]) -> None:
    r = opts(options, snort3=snort3)
    assert r.flowbits == expected
    assert r.noalert is ("noalert" in options)


@pytest.mark.parametrize(
    ("options", "snort3", "exc", "reason"),
    [
        ("flowbits:set,a|b;", False, RuleUnsupported, "unsupported: flowbits set with '|'"),
        ("flowbits:toggle,a|b;", False, RuleUnsupported, "unsupported: flowbits toggle with '|'"),
        ("flowbits:frob,a;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:SET,a;", False, RuleInvalid, "invalid: flowbits"),  # Suricata's command regex is [a-z]+
        ("flowbits:set;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set,;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set a;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set,a b;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:isset,a b|c;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:isset,|;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:noalert,a;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:1set,a;", False, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set,a|b;", True, RuleInvalid, "invalid: flowbits"),
        ("flowbits:isset,a|b&c;", True, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set,a$b;", True, RuleInvalid, "invalid: flowbits"),
        ("flowbits:set,a,group1;", True, RuleUnsupported, "unsupported: flowbits groups"),
        ("flowbits:isset,all,group1;", True, RuleUnsupported, "unsupported: flowbits groups"),
        ("flowbits:reset;", True, RuleUnsupported, "unsupported: flowbits reset"),
        ("flowbits:set,a,b,c;", True, RuleInvalid, "invalid: flowbits"),
        ("flowbits:noalert,a;", True, RuleInvalid, "invalid: flowbits"),
    ],
)
def test_flowbits_errors(options: str, snort3: bool, exc: type[RuleLoadError], reason: str) -> None:
    e = fails(options, snort3=snort3)
    assert type(e) is exc
    assert e.reason == reason


# -- header keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "snort3", "expected"),
    [
        ("dsize:>10;", False, PacketCondition("dsize", UintMatch("gt", 10))),
        ("dsize:10<>20;", False, PacketCondition("dsize", UintMatch("range", 10, 20))),
        ("dsize:0;", False, PacketCondition("dsize", UintMatch("eq", 0))),
        ("ttl:<5;", False, PacketCondition("ttl", UintMatch("lt", 5))),
        ("itype:8;", False, PacketCondition("icmp_type", UintMatch("eq", 8))),
        ("icode:>0;", False, PacketCondition("icmp_code", UintMatch("gt", 0))),
        ("icmp_id:100;", False, PacketCondition("icmp_id", UintMatch("eq", 100))),
        ("icmp_seq:2;", False, PacketCondition("icmp_seq", UintMatch("eq", 2))),
        ("id:31337;", False, PacketCondition("ip_id", UintMatch("eq", 31337))),
        ("window:!1024;", False, PacketCondition("tcp_win", UintMatch("ne", 1024))),
        ("seq:4294967295;", False, PacketCondition("tcp_seq", UintMatch("eq", 4294967295))),
        ("ack:0;", False, PacketCondition("tcp_ack", UintMatch("eq", 0))),
        ("tos:8;", False, PacketCondition("tos", UintMatch("eq", 8))),
        ("ip_proto:6;", False, PacketCondition("proto", UintMatch("eq", 6))),
        ("ip_proto:TCP;", False, PacketCondition("proto", UintMatch("eq", 6))),
        ("ip_proto:!icmp;", False, PacketCondition("proto", UintMatch("ne", 1))),
        ("ip_proto:>100;", False, PacketCondition("proto", UintMatch("gt", 100))),
        # Snort 3's RangeCheck: inclusive <=>, exclusive <>
        ("dsize:10<=>20;", True, PacketCondition("dsize", UintMatch("range_incl", 10, 20))),
        ("dsize:10<>20;", True, PacketCondition("dsize", UintMatch("range", 10, 20))),
        ("ttl:>=64;", True, PacketCondition("ttl", UintMatch("ge", 64))),
    ],
)
def test_packet_conditions(options: str, snort3: bool, expected: PacketCondition) -> None:
    assert opts(options, "alert ip any any -> any any", snort3).header.conditions == (expected,)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("dsize:>65535;", "invalid: dsize"),
        ("dsize:20<>10;", "invalid: dsize"),
        ("dsize:5; dsize:6;", "invalid: dsize twice"),
        ("ttl:300;", "invalid: ttl"),
        ("ttl:abc;", "invalid: ttl"),
        ("itype:;", "invalid: itype without value"),
        ("ip_proto:frob;", "invalid: ip_proto"),
        ("ip_proto:300;", "invalid: ip_proto"),
        ("flags:SX;", "invalid: flags"),
        ("flags:SS;", "invalid: flags"),
        ("flags:S; flags:A;", "invalid: flags twice"),
        ("flags:+S,C;", "invalid: flags"),
    ],
)
def test_packet_condition_errors(options: str, reason: str) -> None:
    e = fails(options)
    assert isinstance(e, RuleInvalid) and e.reason == reason


def test_flags_and_sameip() -> None:
    r = opts("flags:S,CE; sameip;")
    assert r.header.flags is not None and r.header.flags.matches(0x02 | 0x80)
    assert r.header.sameip is True
    assert opts("tcp.flags:SA;").header.flags == opts("flags:SA;").header.flags
    # flags in a non-TCP rule load (and never match), as in Suricata
    assert opts("flags:S;", "alert udp any any -> any any").kind == KIND_PKT


# -- threshold and detection_filter ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "header", "threshold", "detection_filter"),
    [
        (
            "threshold:type limit, track by_src, count 1, seconds 60;",
            TCP,
            Threshold("limit", "by_src", 1, 60.0),
            None,
        ),
        (
            "threshold: seconds 5, count 3, type both, track by_flow;",
            TCP,
            Threshold("both", "by_flow", 3, 5.0),
            None,
        ),
        (
            "threshold:type threshold,track by_rule,count 10,seconds 1;",
            TCP,
            Threshold("threshold", "by_rule", 10, 1.0),
            None,
        ),
        (
            "detection_filter:track by_dst, count 2, seconds 10;",
            TCP,
            None,
            Threshold("detection_filter", "by_dst", 2, 10.0),
        ),
        (
            "detection_filter:track by_src, count 1, seconds 60, unique_on src_port;",
            "alert udp any any -> any any",
            None,
            Threshold("detection_filter", "by_src", 1, 60.0, "src_port"),
        ),
        (
            "detection_filter:track by_both, count 1, seconds 60, unique_on dst_port;",
            HTTP,
            None,
            Threshold("detection_filter", "by_both", 1, 60.0, "dst_port"),
        ),
        (
            # Suricata 8's backoff: per flow, no seconds
            "threshold:type backoff, track by_flow, count 3, multiplier 2;",
            TCP,
            Threshold("backoff", "by_flow", 3, 0.0, multiplier=2),
            None,
        ),
    ],
)
def test_thresholds(
    options: str, header: str, threshold: Threshold | None, detection_filter: Threshold | None
) -> None:
    r = opts(options, header)
    assert (r.threshold, r.detection_filter) == (threshold, detection_filter)


@pytest.mark.parametrize(
    ("options", "header", "reason"),
    [
        (
            LIMIT + DF,
            TCP,
            "invalid: threshold and detection_filter",
        ),
        (
            DF + LIMIT,
            TCP,
            "invalid: threshold and detection_filter",
        ),
        (
            LIMIT + LIMIT,
            TCP,
            "invalid: threshold twice",
        ),
        (
            DF + DF,
            TCP,
            "invalid: detection_filter twice",
        ),
        ("threshold:type limit, track by_src, seconds 60;", TCP, "invalid: threshold"),
        ("threshold:track by_src, count 1, seconds 60;", TCP, "invalid: threshold"),
        ("threshold:type sometimes, track by_src, count 1, seconds 60;", TCP, "invalid: threshold"),
        ("threshold:type limit, track both, count 1, seconds 60;", TCP, "invalid: threshold"),
        ("threshold:type limit, track by_src, count 0, seconds 60;", TCP, "invalid: threshold count"),
        ("threshold:type limit, track by_src, count 1, seconds 0;", TCP, "invalid: threshold seconds"),
        ("threshold:type limit, track by_src, count 1, count 2, seconds 1;", TCP, "invalid: threshold"),
        (
            "threshold:type limit, track by_src, count 1, seconds 1, unique_on src_port;",
            TCP,
            "invalid: threshold",
        ),
        ("detection_filter:type limit, track by_src, count 1, seconds 60;", TCP, "invalid: detection_filter"),
        (
            "detection_filter:track by_src, count 1, seconds 60, unique_on proto;",
            TCP,
            "invalid: detection_filter",
        ),
        (
            "detection_filter:track by_src, count 1, seconds 60, unique_on src_port;",
            "alert ip any any -> any any",
            "invalid: detection_filter",
        ),
        (
            "detection_filter:track by_src, count 1, seconds 60, unique_on src_port;",
            "alert icmp any any -> any any",
            "invalid: detection_filter",
        ),
        ("threshold:type backoff, track by_src, count 1, multiplier 2;", TCP, "invalid: threshold"),
        ("threshold:type backoff, track by_flow, count 1;", TCP, "invalid: threshold"),
        ("threshold:type backoff,track by_flow,count 1,multiplier 2,seconds 9;", TCP, "invalid: threshold"),
        ("threshold:type limit, track by_src, count 1, seconds 9, multiplier 2;", TCP, "invalid: threshold"),
    ],
)
def test_threshold_errors(options: str, header: str, reason: str) -> None:
    e = fails(options, header)
    assert isinstance(e, RuleInvalid) and e.reason == reason


# -- prefilter ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "ok"),
    [
        ('content:"a"; nocase; prefilter;', True),
        ("ttl:5; prefilter;", True),
        ("flow:established; prefilter;", True),
        ('content:"a"; ttl:5; prefilter;', True),
        ("prefilter;", False),
        ('msg:"x"; prefilter;', False),
        ('content:"a"; prefilter; prefilter;', False),
        ('pcre:"/a/"; prefilter;', False),
        ('content:"a"; prefilter:yes;', False),
        # after a legacy modifier the content it moved is the prefilter (suricata-verify rules/prefilter)
        ('content:"a"; http_uri; prefilter;', True),
        ('uricontent:"a"; prefilter;', True),
    ],
)
def test_prefilter(options: str, ok: bool) -> None:
    if ok:
        opts(options)
    else:
        assert fails(options).reason == "invalid: prefilter"


# -- signature types (Suricata's SignatureSetType) ----------------------------------------------


@pytest.mark.parametrize(
    ("header", "options", "kind"),
    [
        # IP-only: no app proto, no buffers, no flow keyword, only flowbits:set among matches
        ("alert ip any any -> any any", "", KIND_IPONLY),
        ("alert ip any any -> 8.8.8.8 any", "", KIND_IPONLY),
        ("alert tcp any any -> any 80", "", KIND_IPONLY),  # ports are allowed
        ("alert udp any 53 -> $HOME_NET any", "", KIND_IPONLY),
        ("alert tcp-stream any any -> any any", "", KIND_IPONLY),
        ("alert tcp-pkt any any -> any any", "", KIND_IPONLY),
        (
            "alert icmp any any -> any any",
            'msg:"x"; classtype:misc-activity; priority:1; metadata:a b;',
            KIND_IPONLY,
        ),
        ("alert ip any any -> any any", "flowbits:set,x;", KIND_IPONLY),
        ("alert ip any any -> any any", "flowbits:noalert; flowbits:set,x;", KIND_IPONLY),
        ("alert ip any any -> any any", "threshold:type limit,track by_src,count 1,seconds 60;", KIND_IPONLY),
        ("alert ip any any -> any any", "detection_filter:track by_src,count 1,seconds 60;", KIND_IPONLY),
        ("alert ip any any -> any any", "ip_proto:47;", KIND_IPONLY),  # narrows the header protocol
        (
            "alert ip any any -> any any",
            "target:src_ip; tag:session,5,packets; reference:url,x;",
            KIND_IPONLY,
        ),
        # a negated address makes it like-IP-only (every packet, flow-wide actions)
        ("alert ip !10.0.0.1 any -> any any", "", KIND_LIKE_IPONLY),
        ("alert ip any any -> [10.0.0.0/8,!10.1.1.1] any", "", KIND_LIKE_IPONLY),
        ("alert ip $EXTERNAL_NET any -> any any", "", KIND_LIKE_IPONLY),  # !$HOME_NET
        ("alert ip $ODD any -> any any", "", KIND_LIKE_IPONLY),
        ("alert tcp any ![80,443] -> any any", "", KIND_IPONLY),  # port negation does not count
        # any flow keyword, match keyword, or flowbits check makes a packet rule
        ("alert ip any any -> any any", "flow:to_server;", KIND_PKT),
        ("alert ip any any -> any any", "flow:established;", KIND_PKT),
        ("alert ip !1.1.1.1 any -> any any", "flow:established;", KIND_PKT),
        ("alert ip any any -> any any", "flowbits:isset,x;", KIND_PKT),
        ("alert ip any any -> any any", "flowbits:isnotset,x; flowbits:set,y;", KIND_PKT),
        ("alert ip any any -> any any", "flowbits:unset,x;", KIND_PKT),
        ("alert ip any any -> any any", "flowbits:toggle,x;", KIND_PKT),
        ("alert ip any any -> any any", "ttl:5;", KIND_PKT),
        ("alert icmp any any -> any any", "itype:8;", KIND_PKT),
        ("alert tcp any any -> any any", "flags:S;", KIND_PKT),
        ("alert ip any any -> any any", "sameip;", KIND_PKT),
        ("alert ip any any -> any any", "dsize:0;", KIND_PKT),
        # payload: the stream for TCP (or any IP), packets otherwise
        ("alert tcp any any -> any any", 'content:"a";', KIND_STREAM),
        ("alert tcp any any -> any any", 'content:"a"; depth:4;', KIND_STREAM),
        ("alert ip any any -> any any", 'content:"a";', KIND_STREAM),
        ("alert tcp any any -> any any", 'content:"a"; flow:established,to_server;', KIND_STREAM),
        ("alert tcp any any -> any any", 'pcre:"/a/";', KIND_STREAM),
        ("alert tcp any any -> any any", "isdataat:5;", KIND_STREAM),
        ("alert tcp any any -> any any", 'content:"a"; ip_proto:6;', KIND_STREAM),
        ("alert udp any any -> any any", 'content:"a";', KIND_PKT),
        ("alert icmp any any -> any any", 'content:"a";', KIND_PKT),
        ("alert tcp-pkt any any -> any any", 'content:"a";', KIND_PKT),
        ("alert tcp any any -> any any", 'content:"a"; flow:no_stream;', KIND_PKT),
        ("alert tcp any any -> any any", 'content:"a"; dsize:>5;', KIND_PKT),
        ("alert tcp any any -> any any", 'content:"a"; flags:PA;', KIND_PKT),
        ("alert tcp-stream any any -> any any", 'content:"a";', KIND_STREAM),
        # app protocol in the header, nothing else to match: app-layer
        ("alert http any any -> any any", "", KIND_APPLAYER),
        ("alert dns any any -> any any", 'msg:"x";', KIND_APPLAYER),
        ("alert tls any any -> any any", "flowbits:set,x;", KIND_APPLAYER),
        ("alert http any any -> any any", "flow:to_server;", KIND_APPLAYER),  # a direction is no match
        ("alert http any any -> any any", "flow:established;", KIND_PKT),
        ("alert http any any -> any any", "flow:to_server,established;", KIND_PKT),
        ("alert http any any -> any any", "flow:stateless;", KIND_PKT),
        ("alert http any any -> any any", "flowbits:isset,x;", KIND_PKT),
        ("alert http any any -> any any", "ttl:5;", KIND_PKT),
        ("alert http any any -> any any", 'content:"a";', KIND_STREAM),
        # application buffers: once per transaction
        ("alert http any any -> any any", 'http.uri; content:"a";', KIND_APP_TX),
        ("alert tcp any any -> any any", 'content:"a"; http_uri;', KIND_APP_TX),
        ("alert tcp any any -> any any", 'content:"a"; http_uri; content:"b";', KIND_APP_TX),
        ("alert dns any any -> any any", 'dns.query; content:"a";', KIND_APP_TX),
        ("alert tls any any -> any any", "tls.sni; bsize:>5;", KIND_APP_TX),
        ("alert http any any -> any any", "urilen:>5;", KIND_APP_TX),
        ("alert http any any -> any any", 'pcre:"/a/U";', KIND_APP_TX),
    ],
)
def test_signature_type(header: str, options: str, kind: str) -> None:
    r = compile_text(f"{header} ({options} sid:1;)")
    assert r.kind == kind
    assert r.ip_only is (kind == KIND_IPONLY)


def test_classify_direct() -> None:
    r = compile_text("alert ip any any -> any any (sid:1;)")
    assert classify(r, False, VARS) == KIND_IPONLY
    assert classify(r, True, VARS) == KIND_PKT  # a flow keyword, even a direction-only one
    a = compile_text("alert http any any -> any any (sid:1;)")
    assert classify(a, True, VARS, flow_match=False) == KIND_APPLAYER
    assert classify(a, True, VARS) == KIND_PKT
    # the negation may hide in a variable's value
    n = compile_text("alert ip $EXTERNAL_NET any -> any any (sid:1;)")
    assert classify(n, False, VARS) == KIND_LIKE_IPONLY
    assert classify(n, False, {**VARS, "EXTERNAL_NET": "any"}) == KIND_IPONLY


# -- Suricata's older TLS match keywords, requires, pcre captures ---------------------------------


@pytest.mark.parametrize(
    ("options", "buffer", "content"),
    [
        ('tls.subject:"CN=example.com";', "tls.cert_subject", Content(b"CN=example.com")),
        ('tls.issuerdn:!"O=Evil CA";', "tls.cert_issuer", Content(b"O=Evil CA", negated=True)),
        (
            'tls.fingerprint:"90:86:A4:3B";',
            "tls.cert_fingerprint",
            Content(b"90:86:a4:3b", nocase=True, startswith=True, endswith=True),
        ),
    ],
)
def test_tls_value_keywords(options: str, buffer: str, content: Content) -> None:
    r = opts(options, "alert tls any any -> any any")
    (bm,) = r.buffers
    assert (bm.buffer.value, bm.matches) == (buffer, (content,))


@pytest.mark.parametrize(
    ("requires", "loads"),
    [
        ("version >= 7", True),
        ("version >= 7.0.3 < 8 | >= 8.0.1", True),
        ("version < 8", False),
        ("version >= 10", False),
        ("keyword tls.sni", True),
        ("keyword lua", False),
        ("feature ja3, version >= 7", True),
        ("feature geoip", False),
    ],
)
def test_requires(requires: str, loads: bool) -> None:
    text = f'{TCP} (msg:"r"; requires: {requires}; content:"a"; sid:1;)'
    if loads:
        assert compile_text(text).sid == 1
    else:
        with pytest.raises(RuleUnsupported) as e:
            compile_text(text)
        assert e.value.reason.startswith("unsupported: requires")


def test_pcre_alert_capture_names_load() -> None:
    """Suricata 8 names captures for the alert (``, alert:name``); the match is the same."""
    r = opts('http.user_agent; pcre:"/^([a-z]+) ([0-9]+)/ ,alert:user_agent, flow:ua";', HTTP)
    assert [type(m).__name__ for m in r.buffers[0].matches] == ["Regex"]
