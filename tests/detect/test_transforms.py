"""Transforms: each one on tricky inputs, then chains, against Suricata 8's implementation.

Cases marked "Suricata test" are the unit tests of rust/src/detect/transforms/*.rs (inputs and
outputs unchanged); the others exercise the same state machines on the edges they define.
"""

from __future__ import annotations

import hashlib

import pytest

from inline_ips.detect.content import inspect
from inline_ips.detect.transforms import FUNCTIONS, apply
from inline_ips.rules.model import Content, Transform

# (name, transform, input, output)
SINGLE: list[tuple[str, str, bytes, bytes]] = [
    # dotprefix
    ("dot_suricata_1", "dotprefix", b"example.com", b".example.com"),  # Suricata test
    ("dot_suricata_2", "dotprefix", b"hello.example.com", b".hello.example.com"),  # Suricata test
    ("dot_already_dotted", "dotprefix", b".a", b"..a"),
    # strip_whitespace: C isspace(), vertical tab included
    ("strip_suricata_1", "strip_whitespace", b" A B C D ", b"ABCD"),  # Suricata test
    ("strip_suricata_2", "strip_whitespace", b"EFGH", b"EFGH"),  # Suricata test
    ("strip_suricata_3", "strip_whitespace", b"I  \t J", b"IJ"),  # Suricata test
    ("strip_all_kinds", "strip_whitespace", b"a\tb\nc\vd\fe\rf g", b"abcdefg"),
    ("strip_not_nbsp_or_nul", "strip_whitespace", b"a\xa0b\x00c\x85", b"a\xa0b\x00c\x85"),
    ("strip_only_space", "strip_whitespace", b" \t\r\n", b""),
    # compress_whitespace: a run becomes its first byte
    ("compress_suricata_1", "compress_whitespace", b" A B C D ", b" A B C D "),  # Suricata test
    ("compress_suricata_2", "compress_whitespace", b"EFGH", b"EFGH"),  # Suricata test
    ("compress_suricata_3", "compress_whitespace", b"I  \t J", b"I J"),  # Suricata test
    ("compress_keeps_first_of_run", "compress_whitespace", b"a\t\t b", b"a\tb"),
    ("compress_crlf_runs", "compress_whitespace", b"x\r\n\r\ny", b"x\ry"),
    ("compress_vertical_tab", "compress_whitespace", b"a\v\vb", b"a\vb"),
    ("compress_single_kept", "compress_whitespace", b"a\nb c", b"a\nb c"),
    # case changes are ASCII only
    ("lower_suricata", "to_lowercase", b" A b C D ", b" a b c d "),  # Suricata test
    ("upper_suricata", "to_uppercase", b" A b C D ", b" A B C D "),  # Suricata test
    ("lower_not_latin1", "to_lowercase", b"\xc4\xd6Z", b"\xc4\xd6z"),
    ("upper_not_latin1", "to_uppercase", b"\xe4\xf6z", b"\xe4\xf6Z"),
    # hashes: the raw digest (Suricata tests)
    ("md5_suricata", "to_md5", b" A B C D ", bytes.fromhex("e059f830436958b645828cc233c24713")),
    ("sha1_suricata", "to_sha1", b" A B C D ", bytes.fromhex("c8dc4497f7e055f86b889052082c0c7bdcc9c889")),
    (
        "sha256_suricata",
        "to_sha256",
        b" A B C D ",
        bytes.fromhex("d6bf7d8d6953024d0d845c999bae93ccac68eaab9ac977d0fd306af59a3de43a"),
    ),
    # url_decode
    (
        "url_suricata",  # Suricata test
        "url_decode",
        b"Suricata%20is+%27%61wesome%21%27%25%30%30%ZZ%4",
        b"Suricata is 'awesome!'%00%ZZ%4",
    ),
    ("url_lower_hex", "url_decode", b"%2f%2F", b"//"),
    ("url_nul", "url_decode", b"a%00b", b"a\x00b"),
    ("url_decoded_percent_not_redecoded", "url_decode", b"%2541", b"%41"),
    ("url_decoded_plus_stays", "url_decode", b"%2B+", b"+ "),
    # a bad escape copies '%' and the byte after it, which starts nothing new
    ("url_percent_percent", "url_decode", b"%%41", b"%%41"),
    ("url_one_digit_then_escape", "url_decode", b"%4%41", b"%4%41"),
    ("url_plus_after_percent", "url_decode", b"%+", b"%+"),
    ("url_plus_after_digit", "url_decode", b"%4+x", b"%4+x"),
    ("url_trailing_percent", "url_decode", b"ab%", b"ab%"),
    ("url_percent_newline", "url_decode", b"%\n+", b"%\n "),
    ("url_no_unicode_escape", "url_decode", b"%u0041", b"%u0041"),
    # header_lowercase: names up to ':' (across lines without one), values to the end of line
    (
        "hl_suricata",
        "header_lowercase",
        b"Header1: Value1\nheader2:Value2\n",
        b"header1: Value1\nheader2:Value2\n",
    ),
    ("hl_crlf", "header_lowercase", b"Host: A.COM\r\nUser-Agent: X\r\n", b"host: A.COM\r\nuser-agent: X\r\n"),
    ("hl_colon_in_value", "header_lowercase", b"X-A: B:C\r\nX-D: E", b"x-a: B:C\r\nx-d: E"),
    ("hl_line_without_colon", "header_lowercase", b"FOO\r\nX-A: B\r\n", b"foo\r\nx-a: B\r\n"),
    ("hl_no_colon_at_all", "header_lowercase", b"ABC\nDEF", b"abc\ndef"),
    ("hl_pseudo_header", "header_lowercase", b":Method: GET\n", b":Method: GET\n"),
    ("hl_empty_name", "header_lowercase", b": V\nA: B", b": V\na: B"),
    # strip_pseudo_headers: lines split at '\n' (Suricata tests first)
    (
        "sp_suricata_1",
        "strip_pseudo_headers",
        b"Header1: Value1\n:method:get\nheader2:Value2\n",
        b"Header1: Value1\nheader2:Value2\n",
    ),
    ("sp_suricata_2", "strip_pseudo_headers", b":method:get", b""),
    ("sp_suricata_3", "strip_pseudo_headers", b"Header1: Value1\n:method:get", b"Header1: Value1\n"),
    ("sp_suricata_4", "strip_pseudo_headers", b":method:get\nheader2:Value2", b"header2:Value2"),
    (
        "sp_suricata_5",
        "strip_pseudo_headers",
        b"Header1: Value1\n:method:get\nheader2:Value2\n:scheme:https\nheader3:Value3\n",
        b"Header1: Value1\nheader2:Value2\nheader3:Value3\n",
    ),
    ("sp_cr_is_not_a_line_end", "strip_pseudo_headers", b"a\r:b\n:c\r\nd", b"a\r:b\nd"),
    ("sp_empty_lines_kept", "strip_pseudo_headers", b"\n\n:a\n", b"\n\n"),
    ("sp_colon_not_first", "strip_pseudo_headers", b" :a\n", b" :a\n"),
]


@pytest.mark.parametrize(("name", "data", "expected"), [c[1:] for c in SINGLE], ids=[c[0] for c in SINGLE])
def test_single(name: str, data: bytes, expected: bytes) -> None:
    assert apply((Transform(name),), data) == expected


def test_every_transform_has_cases() -> None:
    assert {c[1] for c in SINGLE} == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_empty_buffer_unchanged(name: str) -> None:
    # Suricata's transforms return early on an empty buffer: no dot, no digest of nothing.
    assert apply((Transform(name),), b"") == b""


def T(*names: str) -> tuple[Transform, ...]:  # noqa: N802 - reads like the rule
    return tuple(Transform(n) for n in names)


# (name, transforms in rule order, input, output)
CHAINS: list[tuple[str, tuple[Transform, ...], bytes, bytes]] = [
    ("lower_then_dot", T("to_lowercase", "dotprefix"), b"WWW.Example.COM", b".www.example.com"),
    ("url_then_lower", T("url_decode", "to_lowercase"), b"%4A%41", b"ja"),
    ("lower_then_url", T("to_lowercase", "url_decode"), b"%4A%41", b"JA"),
    ("url_then_compress", T("url_decode", "compress_whitespace"), b"a%20%20+b", b"a b"),
    ("compress_then_url", T("compress_whitespace", "url_decode"), b"a%20%20+b", b"a   b"),
    ("strip_then_md5", T("strip_whitespace", "to_md5"), b" A B\tC D ", hashlib.md5(b"ABCD").digest()),
    ("sha1_then_upper", T("to_sha1", "to_uppercase"), b"x", hashlib.sha1(b"x").digest().upper()),
    (
        "http2_headers",
        T("strip_pseudo_headers", "header_lowercase"),
        b":path: /\nContent-Type: X\n:method: GET\nHost: H\n",
        b"content-type: X\nhost: H\n",
    ),
    # a transform that empties the buffer stops the chain: nothing to prefix or hash
    ("emptied_then_dot", T("strip_whitespace", "dotprefix"), b" \t ", b""),
    ("emptied_then_md5", T("strip_pseudo_headers", "to_sha256"), b":a\n", b""),
    ("no_transforms", (), b"As Is", b"As Is"),
]


@pytest.mark.parametrize(("tfs", "data", "expected"), [c[1:] for c in CHAINS], ids=[c[0] for c in CHAINS])
def test_chain(tfs: tuple[Transform, ...], data: bytes, expected: bytes) -> None:
    assert apply(tfs, data) == expected


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        (b"example.com", True),
        (b"www.Example.com", True),
        (b"badexample.com", False),
        (b"example.com.x", False),
    ],
)
def test_dotprefix_domain_match(query: bytes, hit: bool) -> None:
    # transforms.rst: dns.query; to_lowercase; dotprefix; content:".example.com"; endswith;
    buf = apply(T("to_lowercase", "dotprefix"), query)
    matches = (Content(b".example.com", endswith=True),)
    assert (inspect(buf, buf.lower(), matches) is not None) is hit
