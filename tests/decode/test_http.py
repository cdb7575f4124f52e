"""HTTP message decoding: request and status lines, Suricata buffers, bodies, URI normalisation."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inline_ips.decode.http import (
    BOTH_BUFFERS,
    HTTP_BUFFERS,
    REQUEST_BUFFERS,
    RESPONSE_BUFFERS,
    ContentDecoder,
    HttpRequest,
    HttpResponse,
    chunk_size,
    content_codings,
    dechunk,
    header_fields,
    http_buffer,
    looks_like_request,
    normalize_uri,
    parse_request,
    parse_response,
    suricata_uri,
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


# --- Suricata buffers: requests --------------------------------------------------------------------

REQ = (
    b"GET /index.html?id=42&q=a+b HTTP/1.1\r\n"
    b"Host: WWW.Example.COM:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11)\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Accept-Language: en-US\r\n"
    b"Connection: keep-alive\r\n"
    b"Referer: http://ref.test/p.php\r\n"
    b"Cookie: session=abc\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
REQ_HEADERS = REQ[REQ.index(b"\r\n") + 2 :]

REQUEST_CASES: list[tuple[str, bytes, bytes | None]] = [
    ("http.method", REQ, b"GET"),
    # plusspace decoding is off in Suricata ("don't convert + to space by default",
    # app-layer-htp.c), so http.uri keeps the "+".
    ("http.uri", REQ, b"/index.html?id=42&q=a+b"),
    ("http.uri.raw", REQ, b"/index.html?id=42&q=a+b"),
    ("http.protocol", REQ, b"HTTP/1.1"),
    ("http.request_line", REQ, b"GET /index.html?id=42&q=a+b HTTP/1.1"),
    # request_hostname: parse_hostport drops the port, the Host copy is lower-cased
    # (rust/htp/src/transaction.rs process_request_headers).
    ("http.host", REQ, b"www.example.com"),
    # detect-http-host.c GetRawData: the Host header value as sent, port included.
    ("http.host.raw", REQ, b"WWW.Example.COM:8080"),
    ("http.user_agent", REQ, b"Mozilla/5.0 (X11)"),
    ("http.accept", REQ, b"*/*"),
    ("http.accept_enc", REQ, b"gzip, deflate"),
    ("http.accept_lang", REQ, b"en-US"),
    ("http.connection", REQ, b"keep-alive"),
    ("http.referer", REQ, b"http://ref.test/p.php"),
    ("http.content_type", REQ, b"text/plain"),
    ("http.content_len", REQ, b"0"),
    ("http.cookie", REQ, b"session=abc"),
    # detect-http-header.c skips Cookie on requests and adds no final CRLF.
    ("http.header", REQ, REQ_HEADERS[:-2].replace(b"Cookie: session=abc\r\n", b"")),
    # libhtp's REQUEST_HEADER_DATA hook: everything after the request line, empty line included.
    ("http.header.raw", REQ, REQ_HEADERS),
    # detect-http-header-names.c: "\r\nName1\r\nName2\r\n\r\n", cookies included.
    (
        "http.header_names",
        REQ,
        b"\r\nHost\r\nUser-Agent\r\nAccept\r\nAccept-Encoding\r\nAccept-Language\r\nConnection\r\n"
        b"Referer\r\nCookie\r\nContent-Type\r\nContent-Length\r\n\r\n",
    ),
    # detect-http-start.c: request line, CRLF, every header (cookie too), extra CRLF.
    ("http.start", REQ, REQ),
    ("http.request_body", REQ, None),  # Content-Length: 0
    ("http.stat_code", REQ, None),
    ("http.response_body", REQ, None),
    ("http.server", REQ, None),
    ("no.such.buffer", REQ, None),
    # Legacy content-modifier names resolve to the same buffers.
    ("http_uri", REQ, b"/index.html?id=42&q=a+b"),
    ("http_raw_host", REQ, b"WWW.Example.COM:8080"),
    ("http_raw_header", REQ, REQ_HEADERS),
    # User-guide example: repeated User-Agent values joined with ", ".
    (
        "http.user_agent",
        b"GET /test.html HTTP/1.1\r\nUser-Agent: SuriTester/0.8\r\nUser-Agent: GGGG\r\n\r\n",
        b"SuriTester/0.8, GGGG",
    ),
    # User-guide example: repeated Host headers, both buffers.
    (
        "http.host",
        b"GET /test.html HTTP/1.1\r\nHost: ABC.com\r\nAccept: */*\r\nHost: efg.net\r\n\r\n",
        b"abc.com, efg.net",
    ),
    (
        "http.host.raw",
        b"GET /test.html HTTP/1.1\r\nHost: ABC.com\r\nAccept: */*\r\nHost: efg.net\r\n\r\n",
        b"ABC.com, efg.net",
    ),
    # A merged header keeps the first position and the first spelling of the name.
    ("http.header", b"GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2\r\n\r\n", b"X-A: 1, 2\r\nHost: h\r\n"),
    # A repeated Content-Length is ignored, not merged (process_request_header_generic).
    ("http.content_len", b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", b"3"),
    # "the header buffer is normalized. Any trailing whitespace and tab characters are removed."
    ("http.header", b"GET / HTTP/1.1\r\nX:   v  \t\r\n\r\n", b"X: v\r\n"),
    # headers.rs header_sans_colon: a line without colon is a header with an empty name.
    ("http.header", b"GET / HTTP/1.1\r\nnonsense line\r\nHost: h\r\n\r\n", b": nonsense line\r\nHost: h\r\n"),
    # Folded lines join with their first whitespace byte (headers.rs value()).
    ("http.header", b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n  c\r\n\r\n", b"X: a\tb c\r\n"),
    # "User-Agent: \r\n" gives an empty, present buffer (user guide).
    ("http.user_agent", b"GET / HTTP/1.1\r\nUser-Agent: \r\n\r\n", b""),
    ("http.user_agent", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", None),
    # User-guide example for http.header_names.
    ("http.header_names", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\nHost\r\n\r\n"),
    ("http.header_names", b"GET / HTTP/1.0\r\n\r\n", None),
    ("http.header", b"GET / HTTP/1.1\r\nCookie: only\r\n\r\n", None),
    # http.start with no headers: the loop that adds the final CRLF never runs.
    ("http.start", b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\n"),
    ("http.header.raw", b"GET / HTTP/1.0\n\n", b"\n"),
    # Absolute-form target: the URI's hostname wins over Host, normalised (lower case,
    # trailing dots removed) in both buffers (normalized_hostname in uri.rs; GetRawData
    # reads parsed_uri->hostname).
    ("http.host", b"GET http://ABC.Com./a HTTP/1.1\r\nHost: other.test\r\n\r\n", b"abc.com"),
    ("http.host.raw", b"GET http://ABC.Com./a HTTP/1.1\r\nHost: other.test\r\n\r\n", b"abc.com"),
    ("http.uri", b"GET http://ABC.Com./a HTTP/1.1\r\nHost: other.test\r\n\r\n", b"/a"),
    ("http.host", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", b"[::1]"),
    ("http.host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", None),
    ("http.host.raw", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b""),
    ("http.host", b"CONNECT Proxy.Test:443 HTTP/1.1\r\n\r\n", b"proxy.test"),
    ("http.uri", b"CONNECT Proxy.Test:443 HTTP/1.1\r\n\r\n", None),
    ("http.protocol", b"GET /old\r\n", None),
    ("http.request_line", b"GET /old\r\n", b"GET /old"),
    # Bodies: only with Content-Length or chunking; de-chunked; gzip undone.
    ("http.request_body", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello world", b"hello"),
    ("http.request_body", b"POST / HTTP/1.1\r\n\r\nnot a body", None),
    (
        "http.request_body",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"hello",
    ),
    ("file.data", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    ("http_client_body", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    REQUEST_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(REQUEST_CASES)],
)
def test_request_buffers(name: str, data: bytes, expected: bytes | None) -> None:
    req = _parse(data)
    assert http_buffer(req, name) == expected


def test_gzip_request_body_is_decompressed() -> None:
    # Suricata 8 turns request decompression on (htp_config_set_request_decompression).
    body = gzip.compress(b"cmd=id; cat /etc/passwd")
    data = b"POST /x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert http_buffer(_parse(data), "http.request_body") == b"cmd=id; cat /etc/passwd"


def test_body_argument_replaces_the_messages_own_body() -> None:
    req = _parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert http_buffer(req, "http.request_body", body=b"streamed") == b"streamed"
    assert http_buffer(req, "http.request_body", body=b"") is None


def test_hand_built_request_still_has_buffers() -> None:
    # Older code builds HttpRequest with the first eleven fields only.
    req = HttpRequest(
        b"GET", b"/a%2fb", b"/a/b", b"HTTP/1.1", b"h", b"ua", b"Host: h\r\nUser-Agent: ua\r\n",
        ((b"host", b"h"), (b"user-agent", b"ua")), b"", -1, 40,
    )  # fmt: skip
    assert http_buffer(req, "http.uri") == b"/a/b"
    assert http_buffer(req, "http.user_agent") == b"ua"
    assert http_buffer(req, "http.host") == b"h"
    assert http_buffer(req, "http.request_line") == b"GET /a%2fb HTTP/1.1"


def test_repetitions_stop_merging_after_64() -> None:
    block = b"".join(b"X: %d\r\n" % i for i in range(100))
    value = dict(header_fields(block))[b"X"]
    # The first value, one free repetition, then 64 counted ones.
    assert value.split(b", ") == [b"%d" % i for i in range(66)]


def test_buffer_name_sets_are_disjoint_and_complete() -> None:
    assert not REQUEST_BUFFERS & RESPONSE_BUFFERS
    assert not (REQUEST_BUFFERS | RESPONSE_BUFFERS) & BOTH_BUFFERS
    for name in HTTP_BUFFERS:
        # Every documented buffer resolves to something for a message that has it all.
        msg: HttpRequest | HttpResponse = _parse(REQ) if name not in RESPONSE_BUFFERS else _resp(RESP)
        if name in ("http.request_body", "file.data", "http.server", "http.location"):
            continue
        assert http_buffer(msg, name) is not None, name


# --- Suricata buffers: responses -------------------------------------------------------------------

RESP = (
    b"HTTP/1.1 404 Not Found\r\n"
    b"Server: Apache/2.4.7 (Ubuntu)\r\n"
    b"Set-Cookie: s=1\r\n"
    b"Location: http://x.test/\r\n"
    b"Set-Cookie: t=2\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)


def _resp(data: bytes) -> HttpResponse:
    resp = parse_response(data)
    assert resp is not None
    return resp


RESPONSE_CASES: list[tuple[str, bytes, bytes | None]] = [
    ("http.stat_code", RESP, b"404"),
    ("http.stat_msg", RESP, b"Not Found"),
    ("http.response_line", RESP, b"HTTP/1.1 404 Not Found"),
    ("http.protocol", RESP, b"HTTP/1.1"),
    ("http.server", RESP, b"Apache/2.4.7 (Ubuntu)"),
    ("http.location", RESP, b"http://x.test/"),
    # The whole header value, not libhtp's lower-cased MIME type.
    ("http.content_type", RESP, b"text/html; charset=utf-8"),
    ("http.content_len", RESP, b"5"),
    # Set-Cookie is http.cookie on responses (merged like any repeated header) ...
    ("http.cookie", RESP, b"s=1, t=2"),
    # ... and is left out of http.header (detect-http-header.c), kept in the others.
    (
        "http.header",
        RESP,
        b"Server: Apache/2.4.7 (Ubuntu)\r\nLocation: http://x.test/\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n",
    ),
    ("http.header.raw", RESP, RESP[RESP.index(b"\r\n") + 2 : RESP.index(b"\r\n\r\n") + 4]),
    (
        "http.header_names",
        RESP,
        b"\r\nServer\r\nSet-Cookie\r\nLocation\r\nContent-Type\r\nContent-Length\r\n\r\n",
    ),
    (
        "http.start",
        RESP,
        b"HTTP/1.1 404 Not Found\r\nServer: Apache/2.4.7 (Ubuntu)\r\nSet-Cookie: s=1, t=2\r\n"
        b"Location: http://x.test/\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n\r\n",
    ),
    ("http.response_body", RESP, b"hello"),
    ("file.data", RESP, b"hello"),
    ("file_data", RESP, b"hello"),
    ("http.server_body", RESP, b"hello"),
    ("http.uri", RESP, None),
    ("http.method", RESP, None),
    ("http.user_agent", RESP, None),
    ("http.stat_msg", b"HTTP/1.1 200\r\n\r\n", None),
    ("http.stat_code", b"HTTP/1.1  301   Moved  Permanently \r\n\r\n", b"301"),
    ("http.stat_msg", b"HTTP/1.1  301   Moved  Permanently \r\n\r\n", b"Moved  Permanently"),
    ("http.response_line", b"HTTP/1.0 200 OK\n\n", b"HTTP/1.0 200 OK"),
    (
        "http.response_body",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
        b"abc",
    ),
    ("http.response_body", b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"until close"),
    ("http.response_body", b"HTTP/1.1 204 No Content\r\n\r\n", None),
]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    RESPONSE_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(RESPONSE_CASES)],
)
def test_response_buffers(name: str, data: bytes, expected: bytes | None) -> None:
    assert http_buffer(_resp(data), name) == expected


def test_gzip_and_deflate_response_bodies_are_decompressed() -> None:
    page = b"<html><script>evil()</script></html>"
    for coding, blob in (
        (b"gzip", gzip.compress(page)),
        (b"deflate", zlib.compress(page)),
        (b"deflate", zlib.compress(page)[2:-4]),  # raw deflate, as IIS sends it
        (b"gzip", zlib.compress(page)),  # mislabelled: libhtp sniffs the real wrapper
        (b"x-gzip", gzip.compress(page)),
    ):
        data = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (coding, len(blob))
        assert http_buffer(_resp(data + blob), "file.data") == page, coding


def test_parse_response_fields() -> None:
    resp = _resp(RESP)
    assert (resp.version, resp.status, resp.status_code, resp.message) == (
        b"HTTP/1.1",
        b"404",
        404,
        b"Not Found",
    )
    assert resp.content_length == 5
    assert resp.header_len == RESP.index(b"hello")
    assert resp.body == b"hello"
    assert (b"set-cookie", b"s=1") in resp.header_list
    assert not resp.headerless


@pytest.mark.parametrize(
    ("status_line", "code"),
    [(b"HTTP/1.1 200 OK", 200), (b"HTTP/1.1 abc OK", -1), (b"HTTP/1.1 99 X", -1), (b"HTTP/1.1", -1),
     (b"http/1.0 302 Found", 302), (b"HTTP/1.1 1000 X", -1)],
)  # fmt: skip
def test_status_codes(status_line: bytes, code: int) -> None:
    assert _resp(status_line + b"\r\n\r\n").status_code == code


def _status_parts(line: bytes) -> tuple[bytes, bytes, bytes]:
    """The status line's split, spelled out: blanks, a token, blanks, a token, blanks, the rest."""
    ws = b" \t\r\n\x0b\x0c"

    def blanks(i: int) -> int:
        while i < len(line) and line[i] in b" \t":
            i += 1
        return i

    def token(i: int) -> int:
        while i < len(line) and line[i] not in ws:
            i += 1
        return i

    a = blanks(0)
    b = token(a)
    c = blanks(b)
    d = token(c)
    return line[a:b], line[c:d], line[blanks(d) :].rstrip(b" \t\r")


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        (b"HTTP/1.1 200 OK", (b"HTTP/1.1", b"200", b"OK")),
        (b"HTTP/1.1  404 \t Not  Found \t ", (b"HTTP/1.1", b"404", b"Not  Found")),
        (b"HTTP/1.0 200", (b"HTTP/1.0", b"200", b"")),
        (b"HTTP/1.0 200 \x0bX", (b"HTTP/1.0", b"200", b"\x0bX")),
        (b"HTTP/1.0\x0c200 X", (b"HTTP/1.0", b"", b"\x0c200 X")),
        (b"HTTP/1.1 200 a\rb \r", (b"HTTP/1.1", b"200", b"a\rb")),
        # Fuzzing finding: a run of blanks inside the message cost time quadratic in its
        # length ('(.*?)[ \t\r]*\\Z': 16 KiB of blanks took 3 s per response head).
        (b"HTTP/1.1 200 a" + b" " * 16000 + b"b", (b"HTTP/1.1", b"200", b"a" + b" " * 16000 + b"b")),
        (b"HTTP/1.1 200 " + b" \t" * 8000, (b"HTTP/1.1", b"200", b"")),
    ],
)
def test_status_line_parts(line: bytes, parts: tuple[bytes, bytes, bytes]) -> None:
    assert _status_parts(line) == parts
    resp = _resp(line + b"\r\n\r\n")
    assert (resp.version, resp.status, resp.message) == parts


@given(st.binary(max_size=40).map(lambda b: b"HTTP/" + bytes(b" \t\x0b\x0c\rA1"[x % 7] for x in b)))
def test_status_line_split_matches_its_spelled_out_form(line: bytes) -> None:
    resp = parse_response(line + b"\n\r\n")
    assert resp is not None
    assert (resp.version, resp.status, resp.message) == _status_parts(line.removesuffix(b"\r"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nServer: x\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"SSH-2.0-x\r\n\r\n",
    ],
)
def test_not_a_complete_response(data: bytes) -> None:
    assert parse_response(data) is None


def test_response_header_block_limit() -> None:
    data = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert parse_response(data, max_header_bytes=len(data) - 1) is None
    assert parse_response(data, max_header_bytes=len(data)) is not None


# --- Suricata's http.uri ---------------------------------------------------------------------------

SURICATA_URI_CASES: list[tuple[bytes, bytes]] = [
    # RFC 3986 dot removal as in uri.rs test_normalize_uri_path.
    (b"/a/b/c/./../../g", b"/a/g"),
    (b"mid/content=5/../6", b"mid/6"),
    (b"/../../../images.gif", b"/images.gif"),
    (b"/a/b/..", b"/a"),  # unlike normalize_uri, no trailing slash is kept
    (b"/a/b/.", b"/a/b"),
    (b"/a/./", b"/a"),
    (b"/a/b/", b"/a/b/"),
    (b"/", b"/"),
    (b"*", b"*"),
    # IDS personality: %2f and backslashes are separators, runs of "/" collapse.
    (b"/a%2fb", b"/a/b"),
    (b"/a%5cb\\c", b"/a/b/c"),
    (b"//a///b", b"/a/b"),
    (b"/scripts/..%5c..%5cwinnt/system32/cmd.exe", b"/winnt/system32/cmd.exe"),
    # %u escapes, overlong %u00XX, best-fit of fullwidth forms (unicode_bestfit_map.rs).
    (b"/%u002e%u002e/etc/passwd", b"/etc/passwd"),
    (b"/%uff0e%uff0e/x", b"/x"),
    (b"/%u0041", b"/A"),
    # UTF-8 in the path becomes one byte per character; overlong forms are accepted.
    (b"/%c0%ae%c0%ae/x", b"/x"),
    (b"/caf%C3%A9", b"/caf\xe9"),
    (b"/a%ffb", b"/a?b"),  # invalid UTF-8 becomes the replacement byte
    # Invalid escapes stay (PRESERVE_PERCENT).
    (b"/a%zz", b"/a%zz"),
    (b"/a%2", b"/a%2"),
    (b"/%u12", b"/%u12"),
    (b"/%uzzzz", b"/%uzzzz"),
    # Case is kept: Suricata turns the IDS personality's lower-casing off.
    (b"/Mixed/CASE", b"/Mixed/CASE"),
    # The query is decoded once; "+" stays; no backslash or dot handling there.
    (b"/search?q=a+b", b"/search?q=a+b"),
    (b"/p?q=%27%20OR%201%3D1", b"/p?q=' OR 1=1"),
    (b"/x?a=%2f&b=\\&c=../", b"/x?a=/&b=\\&c=../"),
    (b"/a?b=%uff0e", b"/a?b=."),
    (b"/%3f?x", b"/??x"),
    (b"/a#frag%41", b"/a#fragA"),
    (b"/p?q=1#f", b"/p?q=1#f"),
    (b"/a#b?c", b"/a#b?c"),  # the fragment starts at the first "#", "?" and all
    (b"/a?b#c?d", b"/a?b#c?d"),
    # Absolute form: scheme and authority go (uri-include-all: no).
    (b"http://host.com/path?x", b"/path?x"),
    (b"http://user:pw@host.com:8080/a/../b", b"/b"),
    (b"http://host.com", b""),  # uri.rs: no path, no partial normalised URI
    (b"", b""),
]


@pytest.mark.parametrize(
    ("raw", "expected"), SURICATA_URI_CASES, ids=[repr(c[0]) for c in SURICATA_URI_CASES]
)
def test_suricata_uri(raw: bytes, expected: bytes) -> None:
    assert suricata_uri(raw) == expected


def test_suricata_uri_of_connect_is_empty() -> None:
    assert suricata_uri(b"host:443", b"CONNECT") == b""


def test_uri_with_spaces_in_http_uri() -> None:
    # suricata-verify http-uri-spaces: content:" afterspace"; http_uri; must match.
    req = _parse(b"GET /uri afterspace HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n")
    uri = http_buffer(req, "http.uri")
    assert uri is not None and b" afterspace" in uri


# --- bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n", b"hello world"),
        (b"A\n0123456789\n0\n\n", b"0123456789"),  # bare LF
        (b"5\r\nhel", b"hel"),  # cut short
        (b"\r\n5\r\nhello\r\n0\r\n\r\n", b"hello"),  # stray empty line before a size
        (b"zz\r\nhello\r\n", b""),  # invalid size stops
        (b"", b""),
    ],
)
def test_dechunk(data: bytes, expected: bytes) -> None:
    assert dechunk(data) == expected


@pytest.mark.parametrize(
    ("line", "size"),
    [(b"0", 0), (b"1a", 26), (b"  1A ; ext", 26), (b"7fffffff", 2**31 - 1), (b"80000000", -1),
     (b"0000000000005", 5), (b"", None), (b"  ", None), (b"x1", -1), (b"-1", -1)],
)  # fmt: skip
def test_chunk_size(line: bytes, size: int | None) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize(
    ("value", "layers"),
    [
        (b"gzip", ("gzip",)),
        (b"x-gzip", ("gzip",)),
        (b"Deflate", ("deflate",)),
        (b"deflate, gzip", ("gzip", "deflate")),  # applied in order, undone in reverse
        (b"gzip, gzip, gzip", ("gzip", "gzip")),  # layer limit 2
        (b"identity", ()),
        (b"br", ()),
        (b"gzip, br", ()),  # the outer layer is unknown: nothing can be undone
    ],
)
def test_content_codings(value: bytes, layers: tuple[str, ...]) -> None:
    assert content_codings(((b"Content-Encoding", value),)) == layers


def test_two_layers_are_undone() -> None:
    page = b"double " * 100
    blob = gzip.compress(zlib.compress(page))
    dec = ContentDecoder(("gzip", "deflate"))
    for i in range(0, len(blob), 7):
        dec.feed(blob[i : i + 7])
    assert bytes(dec.body) == page


def test_decoder_bounds_output_of_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in about 50 KiB
    dec = ContentDecoder(("gzip",), limit=100_000)
    dec.feed(bomb)
    assert len(dec.body) == 100_000
    assert dec.truncated and dec.full
    # Nested gzip beats libhtp's 2048:1 ratio, which one zlib layer cannot: with a body
    # limit far above compression-bomb-limit, decoding stops soon after max_output.
    nested = gzip.compress(bomb)
    assert len(nested) * 2048 < 50 << 20
    dec = ContentDecoder(("gzip", "gzip"), limit=64 << 20, max_output=1 << 20, max_ratio=2048)
    for i in range(0, len(nested), 1460):
        dec.feed(nested[i : i + 1460])
    assert dec.bomb and dec.full
    assert (1 << 20) < len(dec.body) <= (1 << 20) + (256 << 10)


def test_decoder_passthrough_and_error() -> None:
    dec = ContentDecoder(("gzip",))
    dec.feed(b"not compressed at all")
    assert bytes(dec.body) == b"not compressed at all" and not dec.error
    blob = gzip.compress(b"x" * 1000)
    dec = ContentDecoder(("gzip",))
    dec.feed(blob[:20])
    dec.feed(b"\xff" * 50)  # corrupt after output began
    assert dec.error or len(dec.body) < 1000


@given(st.binary(max_size=2048), st.sampled_from([(), ("gzip",), ("deflate",), ("gzip", "deflate")]))
def test_decoder_never_raises(data: bytes, codings: tuple[str, ...]) -> None:
    dec = ContentDecoder(codings, limit=512)
    for i in range(0, len(data), 97):
        dec.feed(data[i : i + 97])
    assert len(dec.body) <= 512
    assert dec.raw_seen == len(data)


@given(st.binary(max_size=600))
def test_buffers_of_random_messages_never_raise(tail: bytes) -> None:
    for head in (b"GET ", b"POST /x HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"):
        data = head + tail + b"\r\n\r\n"
        msg: HttpRequest | HttpResponse | None = parse_request(data) or parse_response(data)
        if msg is None:
            continue
        for name in HTTP_BUFFERS:
            value = http_buffer(msg, name)
            assert value is None or isinstance(value, bytes)


@given(st.binary(max_size=300))
def test_suricata_uri_never_raises(raw: bytes) -> None:
    out = suricata_uri(raw)
    assert isinstance(out, bytes)
    if raw.startswith(b"/") and b"?" not in raw and b"#" not in raw:
        assert b"/./" not in out and b"/../" not in out and b"//" not in out.replace(b"?", b"")
