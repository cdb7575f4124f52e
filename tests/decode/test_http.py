"""HTTP request decoding: request line, header buffers, body, URI normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inline_ips.decode.http import (
    HttpRequest,
    looks_like_request,
    normalize_uri,
    parse_request,
    uri_has_traversal,
)

GET = (
    b"GET /index.html?id=42 HTTP/1.1\r\n"
    b"Host: WWW.Example.COM:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)


def _parse(data: bytes, **kwargs: int) -> HttpRequest:
    req = parse_request(data, **kwargs)
    assert req is not None
    return req


# --- parse_request ---------------------------------------------------------------------------------


def test_common_get_fields() -> None:
    req = _parse(GET)
    assert req.method == b"GET"
    assert req.uri_raw == b"/index.html?id=42"
    assert req.uri == b"/index.html?id=42"
    assert req.version == b"HTTP/1.1"
    assert req.host == b"www.example.com:8080"
    assert req.user_agent == b"Mozilla/5.0 (X11; Linux x86_64)"
    assert req.headers == (
        b"Host: WWW.Example.COM:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n"
    )
    assert req.header_list == (
        (b"host", b"WWW.Example.COM:8080"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
        (b"accept", b"*/*"),
    )
    assert req.body == b""
    assert req.content_length == -1
    assert req.header_len == len(GET)


def test_header_buffer_strips_whitespace_around_values_and_names() -> None:
    req = _parse(b"GET / HTTP/1.1\r\nHost:   a.test  \t\r\nX-Thing :\tv a l \r\nEmpty:\r\nBlank:   \r\n\r\n")
    assert req.headers == b"Host: a.test\r\nX-Thing: v a l\r\nEmpty: \r\nBlank: \r\n"
    assert req.header_list == ((b"host", b"a.test"), (b"x-thing", b"v a l"), (b"empty", b""), (b"blank", b""))


def test_no_headers_at_all() -> None:
    req = _parse(b"GET / HTTP/1.0\r\n\r\n")
    assert (req.headers, req.header_list, req.host, req.user_agent) == (b"", (), b"", b"")
    assert req.header_len == 18


def test_host_absent_and_first_host_wins() -> None:
    assert _parse(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n").host == b""
    req = _parse(b"GET / HTTP/1.1\r\nHost: First.test\r\nHost: second.test\r\n\r\n")
    assert req.host == b"first.test"
    # Both stay visible to http.header rules, which is where a duplicate Host shows.
    assert req.headers == b"Host: First.test\r\nHost: second.test\r\n"


def test_duplicate_user_agents_are_joined_like_suricata() -> None:
    req = _parse(b"GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\nUser-Agent: Chrome/121.0.0\r\n\r\n")
    assert req.user_agent == b"Mozilla/5.0, Chrome/121.0.0"


def test_cookie_stays_in_header_buffer() -> None:
    req = _parse(b"GET / HTTP/1.1\r\nCookie: id=1' OR '1'='1\r\n\r\n")
    assert req.headers == b"Cookie: id=1' OR '1'='1\r\n"


def test_body_bounded_by_content_length() -> None:
    data = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nuser=admin&GET / HTTP/1.1\r\n\r\n"
    req = _parse(data)
    assert req.method == b"POST"
    assert req.content_length == 11
    assert req.body == b"user=admin&"
    # The caller continues at header_len + content_length for a pipelined request.
    nxt = _parse(data[req.header_len + req.content_length :])
    assert (nxt.method, nxt.uri) == (b"GET", b"/")


def test_body_bounded_by_max_body_bytes() -> None:
    head = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"
    req = _parse(head + b"a" * 100, max_body_bytes=10)
    assert (req.body, req.content_length) == (b"a" * 10, 100)
    # Only what has arrived so far.
    assert _parse(head + b"abc").body == b"abc"


def test_body_without_content_length_is_what_follows() -> None:
    req = _parse(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", max_body_bytes=8
    )
    assert req.content_length == -1
    assert req.body == b"5\r\nhello"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"  42 ", 42),
        (b"007", 7),
        (b"abc", -1),
        (b"-5", -1),
        (b"1e3", -1),
        (b"", -1),
        (b"9" * 10000, 2**63 - 1),
        (b"0" * 10000 + b"12", 12),
    ],
)
def test_content_length_values(value: bytes, expected: int) -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n"
    assert _parse(data, max_header_bytes=30000).content_length == expected


def test_first_valid_content_length_wins() -> None:
    req = _parse(
        b"POST / HTTP/1.1\r\nContent-Length: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcdef"
    )
    assert (req.content_length, req.body) == (3, b"abc")


def test_incomplete_header_block_returns_none_until_complete() -> None:
    for i in range(len(GET)):
        assert parse_request(GET[:i]) is None, i
    assert parse_request(GET) is not None


def test_bare_lf_line_endings() -> None:
    req = _parse(b"GET /a HTTP/1.1\nHost: lf.test\nUser-Agent: ua\n\nbody")
    assert (req.host, req.user_agent, req.version) == (b"lf.test", b"ua", b"HTTP/1.1")
    assert req.headers == b"Host: lf.test\r\nUser-Agent: ua\r\n"
    assert req.header_len == len(b"GET /a HTTP/1.1\nHost: lf.test\nUser-Agent: ua\n\n")
    assert req.body == b"body"


def test_mixed_line_endings_end_at_first_empty_line() -> None:
    data = b"GET / HTTP/1.1\r\nA: 1\n\r\nB: 2\r\n\r\n"
    req = _parse(data)
    assert req.header_list == ((b"a", b"1"),)
    assert req.header_len == data.index(b"B")


def test_folded_header_lines_are_joined() -> None:
    req = _parse(b"GET / HTTP/1.1\r\nX-Long: part one\r\n   part two\r\n\tpart three\r\nHost: h\r\n\r\n")
    assert req.header_list == ((b"x-long", b"part one part two part three"), (b"host", b"h"))
    assert req.headers == b"X-Long: part one part two part three\r\nHost: h\r\n"


def test_fold_before_any_header_is_dropped() -> None:
    req = _parse(b"GET / HTTP/1.1\r\n  orphan: x\r\nHost: h\r\n\r\n")
    assert req.header_list == ((b"host", b"h"),)


def test_header_lines_without_colon_are_skipped() -> None:
    req = _parse(b"GET / HTTP/1.1\r\nnonsense line\r\n: no name\r\nBad Name: x\r\nHost: h\r\n\r\n")
    assert req.header_list == ((b"host", b"h"),)


def test_odd_whitespace_in_request_line() -> None:
    req = _parse(b"GET \t /a/b   HTTP/1.1  \r\n\r\n")
    assert (req.method, req.uri_raw, req.version) == (b"GET", b"/a/b", b"HTTP/1.1")


def test_uri_with_spaces_is_kept_whole() -> None:
    req = _parse(b"GET /a b/c HTTP/1.0\r\n\r\n")
    assert (req.uri_raw, req.version) == (b"/a b/c", b"HTTP/1.0")


def test_http09_request_without_version() -> None:
    req = _parse(b"GET /old/../page\r\nanything after")
    assert (req.method, req.uri_raw, req.uri, req.version) == (b"GET", b"/old/../page", b"/page", b"")
    assert (req.headers, req.header_list, req.body, req.content_length) == (b"", (), b"", -1)
    assert req.header_len == len(b"GET /old/../page\r\n")


def test_leading_empty_lines_are_skipped() -> None:
    req = _parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (req.method, req.host) == (b"GET", b"h")
    assert req.header_len == len(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")


def test_uri_is_normalised_in_request() -> None:
    req = _parse(b"GET /cgi-bin/%2e%2e/%2e%2e/etc/passwd?a=1+2 HTTP/1.1\r\n\r\n")
    assert req.uri_raw == b"/cgi-bin/%2e%2e/%2e%2e/etc/passwd?a=1+2"
    assert req.uri == b"/etc/passwd?a=1 2"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET",
        b"GET \r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\r\n" * 20 + b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_not_a_request(data: bytes) -> None:
    assert parse_request(data) is None


def test_header_block_longer_than_limit_never_parses() -> None:
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert parse_request(data, max_header_bytes=len(data) - 1) is None
    assert parse_request(data, max_header_bytes=len(data)) is not None


def test_version_case_and_http10() -> None:
    assert _parse(b"GET / http/1.0\r\n\r\n").version == b"http/1.0"
    assert _parse(b"HEAD / HTTP/0.9\r\n\r\n").version == b"HTTP/0.9"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1", True),
        (b"POST /x", True),
        (b"HEAD ", True),
        (b"PUT ", True),
        (b"DELETE ", True),
        (b"OPTIONS * HTTP/1.1", True),
        (b"PATCH ", True),
        (b"TRACE ", True),
        (b"CONNECT host:443 HTTP/1.1", True),
        (b"PROPFIND ", True),
        (b"VERSION-CONTROL ", True),
        (b"M-SEARCH * HTTP/1.1", True),
        (b"ABCDEFGHIJKLMNOP ", True),  # 16 characters
        (b"ABCDEFGHIJKLMNOPQ ", False),  # 17
        (b"get / HTTP/1.1", False),
        (b"GET/ HTTP/1.1", False),
        (b"GET\t/", False),
        (b"GET", False),
        (b"-GET ", False),
        (b"", False),
        (b"\x16\x03\x01", False),
    ],
)
def test_looks_like_request(data: bytes, expected: bool) -> None:
    assert looks_like_request(data) is expected


# --- normalize_uri ---------------------------------------------------------------------------------

NORMALIZE_CASES: list[tuple[bytes, bytes]] = [
    (b"", b""),
    (b"/", b"/"),
    (b"*", b"*"),
    (b"/index.html?id=42", b"/index.html?id=42"),
    (b"/%2e%2e/%2e%2e/etc/passwd", b"/etc/passwd"),
    (b"/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", b"/etc/passwd"),
    (b"/a/..%2f..%2fetc/passwd", b"/etc/passwd"),
    (b"/%252e%252e/x", b"/%2e%2e/x"),  # decoded once only
    (b"//a///b", b"/a/b"),
    (b"/%2F%2Fa", b"/a"),
    (b"/a/./b/./c", b"/a/b/c"),
    (b"/a/b/.", b"/a/b/"),
    (b"/a/b/../c", b"/a/c"),
    (b"/a/b/..", b"/a/"),
    (b"/a/b/%2e%2e", b"/a/"),
    (b"/..", b"/"),
    (b"/../../etc/passwd", b"/etc/passwd"),
    (b"/a/.../b", b"/a/.../b"),
    (b"a/../b", b"b"),  # relative stays relative
    (b"/a+b/c", b"/a+b/c"),  # + is only special in the query
    (b"/search?q=a+b", b"/search?q=a b"),
    (b"/p?q=1+union+select+1,2--", b"/p?q=1 union select 1,2--"),
    (b"/p?q=%27%20OR%201%3D1", b"/p?q=' OR 1=1"),
    (b"/p?q=a%2bb", b"/p?q=a+b"),
    (b"/a?b=../../etc/passwd", b"/a?b=../../etc/passwd"),  # the query is not a path
    (b"/a?x=//y/./z", b"/a?x=//y/./z"),
    (b"\\windows\\system32\\cmd.exe", b"/windows/system32/cmd.exe"),
    (b"/scripts/..%5c..%5cwinnt/system32/cmd.exe", b"/winnt/system32/cmd.exe"),
    (b"/a%zz/b%", b"/a%zz/b%"),
    (b"/a%2", b"/a%2"),
    (b"/a?%zz%4", b"/a?%zz%4"),
    (b"/a/%00/b", b"/a/\x00/b"),
    (b"/a//?", b"/a/?"),
    (b"/%3f?x", b"/??x"),  # a decoded ? does not start the query
    (b"http://example.com/a/../b?x=1", b"/b?x=1"),
    (b"HTTP://Example.com:8080", b"/"),
    (b"http://user:pw@host?q=1", b"/?q=1"),
    (b"https://h//a/./b/", b"/a/b/"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES, ids=[repr(c[0]) for c in NORMALIZE_CASES])
def test_normalize_uri(raw: bytes, expected: bytes) -> None:
    assert normalize_uri(raw) == expected


@given(st.lists(st.sampled_from([b"a", b".", b"..", b"", b"%2e", b"%2f", b"\\"]), max_size=12))
def test_normalized_path_has_no_dot_segments(segments: list[bytes]) -> None:
    path = normalize_uri(b"/" + b"/".join(segments))
    assert path.startswith(b"/")
    assert b"//" not in path
    for seg in path.split(b"/"):
        assert seg not in (b".", b"..")
    # Normalising again changes nothing once no escapes are left.
    if b"%" not in path:
        assert normalize_uri(path) == path


# --- uri_has_traversal -----------------------------------------------------------------------------

TRAVERSAL_CASES: list[tuple[bytes, bool]] = [
    (b"", False),
    (b"/", False),
    (b"/index.html", False),
    (b"/a/../b", False),
    (b"/a/..", False),
    (b"/a/./b", False),
    (b"/a...b/", False),
    (b"/page?file=a..b", False),
    (b"/page?v=1.0..2.0", False),
    (b"http://host/a/../x", False),
    (b"/..", True),
    (b"/../etc/passwd", True),
    (b"/a/../../etc", True),
    (b"../x", True),
    (b"/%2e%2e/etc", True),
    (b"/..%2fetc", True),
    (b"/..%5cetc", True),
    (b"\\..\\windows", True),
    (b"/%252e%252e%252fetc", True),  # double encoding
    (b"/%25252e%25252e/x", True),  # triple
    (b"http://host/../x", True),
    (b"/page?file=../../../../etc/passwd", True),
    (b"/page?file=..%2f..%2fetc", True),
    (b"/page?file=..\\boot.ini", True),
    (b"/page?x=%252e%252e%252f", True),
]


@pytest.mark.parametrize(("raw", "expected"), TRAVERSAL_CASES, ids=[repr(c[0]) for c in TRAVERSAL_CASES])
def test_uri_has_traversal(raw: bytes, expected: bool) -> None:
    assert uri_has_traversal(raw) is expected


def test_traversal_still_visible_after_normalisation() -> None:
    # http.uri hides the climb (like Suricata); uri_raw and uri_has_traversal keep it visible.
    req = _parse(b"GET /cgi-bin/../../../../etc/passwd HTTP/1.1\r\n\r\n")
    assert req.uri == b"/etc/passwd"
    assert b"../" in req.uri_raw
    assert uri_has_traversal(req.uri_raw)


# --- robustness ------------------------------------------------------------------------------------


@given(st.binary(max_size=512))
def test_random_bytes_never_raise(data: bytes) -> None:
    req = parse_request(data)
    assert req is None or isinstance(req, HttpRequest)
    assert isinstance(looks_like_request(data), bool)
    assert isinstance(normalize_uri(data), bytes)
    assert isinstance(uri_has_traversal(data), bool)


@given(
    st.sampled_from([b"GET ", b"POST ", b"\r\nPUT "]),
    st.binary(max_size=300),
    st.sampled_from([b"", b"\r\n\r\n", b"\n\n", b" HTTP/1.1\r\nContent-Length: 3\r\n\r\n"]),
)
def test_request_like_bytes_never_raise(prefix: bytes, middle: bytes, suffix: bytes) -> None:
    req = parse_request(prefix + middle + suffix, max_header_bytes=256, max_body_bytes=16)
    if req is not None:
        assert isinstance(req, HttpRequest)
        assert 0 < req.header_len <= len(prefix + middle + suffix)
        assert len(req.body) <= 16
        assert all(name == name.lower() for name, _ in req.header_list)


@given(st.lists(st.tuples(st.text("abcXYZ-", min_size=1, max_size=8), st.binary(max_size=20)), max_size=6))
def test_generated_headers_round_trip(headers: list[tuple[str, bytes]]) -> None:
    values = [v.replace(b"\r", b"").replace(b"\n", b"").strip() for _, v in headers]
    block = b"".join(n.encode() + b": " + v + b"\r\n" for (n, _), v in zip(headers, values, strict=True))
    req = _parse(b"GET / HTTP/1.1\r\n" + block + b"\r\n")
    assert req.headers == block
    assert req.header_list == tuple(
        (n.lower().encode(), v) for (n, _), v in zip(headers, values, strict=True)
    )
