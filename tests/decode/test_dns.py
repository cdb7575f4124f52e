"""DNS decoding: header and first question against Scapy, names, and hostile input."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from inline_ips.decode.dns import MAX_POINTER_JUMPS, DnsMessage, parse_dns, read_name


def _parse(payload: bytes, tcp: bool = False) -> DnsMessage:
    msg = parse_dns(payload, tcp=tcp)
    assert msg is not None
    return msg


def _header(
    *, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100, ident: int = 0x1234
) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def _tcp(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


QUERIES: list[tuple[str, int, int]] = [
    ("www.example.com", 1, 0),
    ("example.org", 28, 0),
    ("_sip._tcp.example.com", 33, 0),
    ("xn--bcher-kva.example", 16, 0),
    ("MiXeD.CaSe.Example", 1, 0),
    ("a", 255, 0),
    ("status.example", 1, 2),  # opcode STATUS
    ("zone.example", 6, 4),  # opcode NOTIFY
]


@pytest.mark.parametrize(("qname", "qtype", "opcode"), QUERIES)
@pytest.mark.parametrize("tcp", [False, True])
def test_query_matches_scapy(qname: str, qtype: int, opcode: int, tcp: bool) -> None:
    wire = bytes(DNS(id=0xBEEF, rd=1, opcode=opcode, qd=DNSQR(qname=qname, qtype=qtype)))
    msg = _parse(_tcp(wire) if tcp else wire, tcp=tcp)
    ref = DNS(wire)
    assert msg == DnsMessage(
        id=ref.id,
        is_response=False,
        opcode=ref.opcode,
        rcode=ref.rcode,
        qname=qname,
        qtype=qtype,
        qdcount=ref.qdcount,
        ancount=ref.ancount,
        nscount=ref.nscount,
        arcount=ref.arcount,
        size=len(wire),
    )
    assert (msg.id, msg.opcode, msg.qdcount) == (0xBEEF, opcode, 1)


def test_root_query() -> None:
    wire = bytes(DNS(id=7, qd=DNSQR(qname=".", qtype=2)))
    msg = _parse(wire)
    assert (msg.qname, msg.qtype) == ("", 2)


def _compressed_response() -> bytes:
    # Scapy's compress() is untyped; going through a typed name keeps mypy strict.
    compress: Callable[[], DNS] = _response().compress
    return bytes(compress())


def _response() -> DNS:
    return DNS(
        id=0x4242,
        qr=1,
        aa=1,
        rd=1,
        ra=1,
        rcode=0,
        qd=DNSQR(qname="www.example.com", qtype="A"),
        an=[
            DNSRR(rrname="www.example.com", type="CNAME", rdata="web.example.com"),
            DNSRR(rrname="web.example.com", type="A", rdata="192.0.2.1"),
            DNSRR(rrname="web.example.com", type="A", rdata="192.0.2.2"),
        ],
        ns=[DNSRR(rrname="example.com", type="NS", rdata="ns1.example.com")],
        ar=[DNSRR(rrname="ns1.example.com", type="A", rdata="192.0.2.53")],
    )


@pytest.mark.parametrize("tcp", [False, True])
def test_compressed_response_matches_scapy(tcp: bool) -> None:
    wire = _compressed_response()
    assert b"\xc0\x0c" in wire  # Scapy really compressed it
    ref = DNS(wire)
    msg = _parse(_tcp(wire) if tcp else wire, tcp=tcp)
    assert msg.is_response
    assert (msg.id, msg.opcode, msg.rcode) == (0x4242, 0, 0)
    assert (msg.qname, msg.qtype) == ("www.example.com", 1)
    assert (msg.qdcount, msg.ancount, msg.nscount, msg.arcount) == (
        ref.qdcount,
        ref.ancount,
        ref.nscount,
        ref.arcount,
    )
    assert (msg.ancount, msg.nscount, msg.arcount) == (3, 1, 1)
    assert msg.size == len(wire)


def test_read_name_follows_pointers_in_answers() -> None:
    wire = _compressed_response()
    ref = DNS(wire)
    # Walk the answer section and compare each owner name with Scapy's.
    off = 12 + len(b"\x03www\x07example\x03com\x00") + 4
    for rr in ref.an:
        parsed = read_name(wire, off)
        assert parsed is not None
        name, end = parsed
        assert name + "." == rr.rrname.decode()
        (rdlen,) = struct.unpack_from("!H", wire, end + 8)
        off = end + 10 + rdlen


def test_error_response_rcode_and_no_question() -> None:
    wire = bytes(DNS(id=9, qr=1, rcode=3, qd=DNSQR(qname="nx.example")))
    assert _parse(wire).rcode == 3
    bare = _header(qd=0, flags=0x8005)  # response, REFUSED, no question
    msg = _parse(bare)
    assert (msg.is_response, msg.rcode, msg.qname, msg.qtype, msg.qdcount) == (True, 5, "", 0, 0)


def test_query_without_question_is_not_dns() -> None:
    assert parse_dns(_header(qd=0)) is None


def test_manual_pointer_to_earlier_name() -> None:
    # Question "example.com", then a second question "mail" + pointer to offset 12.
    msg = _header(qd=2) + b"\x07example\x03com\x00\x00\x01\x00\x01" + b"\x04mail\xc0\x0c\x00\x0f\x00\x01"
    second = 12 + 13 + 4
    assert read_name(msg, second) == ("mail.example.com", second + 7)
    assert _parse(msg).qname == "example.com"


def test_pointer_in_first_question() -> None:
    # Odd but legal-looking: the qname is a pointer to a name placed in the answer.
    msg = _header(qd=1, an=1, flags=0x8180) + b"\xc0\x12\x00\x01\x00\x01" + b"\x01x\x00" + b"\x00" * 10
    assert _parse(msg).qname == "x"


@pytest.mark.parametrize(
    "name_bytes",
    [
        pytest.param(b"\xc0\x0c", id="self-loop"),
        pytest.param(b"\x01a\xc0\x0c", id="label-then-loop"),
        pytest.param(b"\xc0\xff", id="pointer-past-end"),
        pytest.param(b"\xc0", id="pointer-cut"),
        pytest.param(b"\x41abc\x00", id="type-01-label"),
        pytest.param(b"\x81abc\x00", id="type-10-label"),
        pytest.param(b"\x05ab", id="label-past-end"),
        pytest.param(b"\x03abc", id="no-terminator"),
    ],
)
def test_malformed_names(name_bytes: bytes) -> None:
    msg = _header() + name_bytes + b"\x00\x01\x00\x01"
    assert parse_dns(msg) is None


def test_pointer_chain_is_limited() -> None:
    # A chain of pointers, each to the next, ending in the root label.
    base = 12
    hops = MAX_POINTER_JUMPS + 1
    chain = b"".join(struct.pack("!H", 0xC000 | (base + 2 * (i + 1))) for i in range(hops)) + b"\x00"
    msg = _header(an=0) + chain + b"\x00\x01\x00\x01"
    assert parse_dns(msg) is None
    ok_chain = chain[2:]  # one jump fewer
    assert read_name(_header() + b"\x00\x00" + ok_chain, base + 2) is not None


def _name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def test_name_length_limit() -> None:
    longest = _name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61)  # 255 bytes on the wire
    assert len(longest) == 255
    msg = _parse(_header() + longest + b"\x00\x01\x00\x01")
    assert len(msg.qname) == 253
    too_long = _name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62)
    assert parse_dns(_header() + too_long + b"\x00\x01\x00\x01") is None


def test_name_length_limit_counts_through_pointers() -> None:
    tail = _name(b"a" * 63, b"b" * 63, b"c" * 63)  # 193 bytes at offset 12
    head = bytes([63]) + b"x" * 63 + b"\xc0\x0c"  # 64 more bytes + pointer: 257 in all
    msg = _header(qd=2) + tail + b"\x00\x01\x00\x01" + head + b"\x00\x01\x00\x01"
    assert read_name(msg, 12 + len(tail) + 4) is None


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (b"plain-label_1", "plain-label_1"),
        (b"UPPER", "UPPER"),
        (b"a\x00b", "a\\x00b"),
        (b"sp ace", "sp\\x20ace"),
        (b"back\\slash", "back\\x5cslash"),
        (b"\xff\xfe", "\\xff\\xfe"),
        (b"del\x7f", "del\\x7f"),
        (b"dot.inside", "dot.inside"),
    ],
)
def test_label_text(label: bytes, text: str) -> None:
    msg = _header() + _name(label, b"example") + b"\x00\x01\x00\x01"
    assert _parse(msg).qname == text + ".example"


def test_counts_must_fit_the_message() -> None:
    assert parse_dns(_header(qd=1, an=0xFFFF) + _name(b"a") + b"\x00\x01\x00\x01") is None
    # A truncated (TC) response may keep counts for records it did not include.
    tc = _header(qd=1, an=5, flags=0x8380) + _name(b"a") + b"\x00\x01\x00\x01"
    msg = _parse(tc)
    assert (msg.ancount, msg.qname) == (5, "a")


def test_tcp_length_prefix() -> None:
    wire = bytes(DNS(id=1, qd=DNSQR(qname="tcp.example")))
    # Two messages in one segment: only the first is read.
    msg = _parse(_tcp(wire) + _tcp(bytes(DNS(id=2, qd=DNSQR(qname="other.example")))), tcp=True)
    assert (msg.id, msg.qname, msg.size) == (1, "tcp.example", len(wire))
    assert parse_dns(b"\x00", tcp=True) is None
    assert parse_dns(b"\x00\x05" + wire, tcp=True) is None  # declared shorter than a header


def test_tcp_message_cut_after_question_still_decodes() -> None:
    wire = _compressed_response()
    head = _tcp(wire)[: 2 + 12 + 17 + 4]
    msg = _parse(head, tcp=True)
    assert (msg.qname, msg.size, msg.ancount) == ("www.example.com", len(wire), 3)


def test_udp_query_truncated_at_every_length() -> None:
    wire = bytes(DNS(id=3, rd=1, qd=DNSQR(qname="trunc.example.net", qtype="MX")))
    for i in range(len(wire)):
        assert parse_dns(wire[:i]) is None, i
        assert parse_dns(_tcp(wire)[: i + 2], tcp=True) is None, i
    assert _parse(wire).qtype == 15


def test_response_truncated_at_every_length_never_raises() -> None:
    wire = _compressed_response()
    for i in range(len(wire) + 1):
        for payload, tcp in ((wire[:i], False), (_tcp(wire)[:i], True), (_tcp(wire[:i]), True)):
            msg = parse_dns(payload, tcp=tcp)
            assert msg is None or isinstance(msg, DnsMessage)


@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_never_raise(payload: bytes, tcp: bool) -> None:
    msg = parse_dns(payload, tcp=tcp)
    if msg is not None:
        assert isinstance(msg, DnsMessage)
        assert msg.size >= 12
        assert isinstance(msg.qname, str)
        assert msg.qname.isascii() and msg.qname.isprintable()


@given(st.binary(max_size=300), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_random_names_behind_a_valid_header_never_raise(body: bytes, flags: int, offset: int) -> None:
    msg = _header(flags=flags) + body
    parse_dns(msg)
    parsed = read_name(msg, offset)
    if parsed is not None:
        name, end = parsed
        assert len(name) <= 4 * 253  # every byte escaped at most
        assert end <= len(msg)
