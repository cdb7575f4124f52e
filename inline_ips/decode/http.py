"""HTTP/1.x message decoding for the detection engine's ``http.*`` and ``file.data`` buffers.

Does: parse one request (:func:`parse_request`) or one response
(:func:`parse_response`) from the start of a reassembled stream into the
fields Suricata rules inspect; tolerate what real servers tolerate (bare LF
line ends, runs of spaces or tabs in the request line, obs-fold continuation
lines, header lines without a colon, empty lines before the first line,
HTTP/0.9 requests without a version); build every Suricata HTTP/1 sticky
buffer from a parsed message with :func:`http_buffer` (one function, keyed by
the buffer name, so the detection engine needs no per-buffer code); normalise
the URI the way Suricata 8 does by default (:func:`suricata_uri`) and, for
the older ``HttpRequest.uri`` field, the way a traversal rule wants it
(:func:`normalize_uri`, :func:`uri_has_traversal`); decode message bodies
(:func:`dechunk`, :class:`ContentDecoder` for gzip/deflate, bounded).

Does not: follow a connection (``inline_ips.decode.http_stream`` does that:
pipelining, body framing across segments, 1xx, CONNECT); parse HTTP/2 (the
``PRI * HTTP/2.0`` preface is rejected like any non-1.x version); decompress
brotli, zstd or lzma (Suricata leaves lzma off by default; the others pass
through undecoded); treat a bare CR as a response line end (libhtp does);
extract multipart file parts (``file.data`` on a request is the whole body).
It never raises on any input and never uses Scapy (hot path).

Buffer definitions (``http_buffer``), checked against OISF/suricata
``src/detect-http-*.c``, the Rust libhtp under ``rust/htp/src`` (Suricata 8)
and ``doc/userguide/rules/http-keywords.rst``:

* Headers form libhtp's table (:func:`header_fields`): the name as first sent
  with surrounding whitespace trimmed, the value trimmed; a repeated name is
  merged into the first entry as ``"first, second"`` (after 64 repetitions
  per message further ones are dropped), except that a repeated
  Content-Length is ignored; a line without a colon is a header with an
  empty name and the whole line as value; folded lines join with their first
  whitespace byte.
* ``http.header`` is ``Name: value\\r\\n`` per table entry, in order, without
  ``Cookie`` (request) or ``Set-Cookie`` (response) and without a final
  empty line; ``http.header.raw`` is the bytes after the first line up to and
  including the empty line that ends the block (plus chunked trailers when
  the stream parser saw them); ``http.header_names`` is ``\\r\\n`` + each name
  + ``\\r\\n`` ... + an extra ``\\r\\n``; ``http.start`` is the first line,
  ``\\r\\n``, every header (cookies included) as ``Name: value\\r\\n`` and a
  final ``\\r\\n`` after the last header.
* ``http.cookie`` is the (merged) Cookie value of a request, Set-Cookie of a
  response; ``http.user_agent``, ``http.referer``, ``http.accept``,
  ``http.accept_enc``, ``http.accept_lang``, ``http.connection``,
  ``http.content_type``, ``http.content_len``, ``http.server`` and
  ``http.location`` are the (merged) header values as sent.
* ``http.host`` is libhtp's hostname: from an absolute-form URI when there is
  one (percent-decoded, lower-cased, trailing dots removed), else the Host
  header's host part (port and surrounding spaces dropped, lower-cased);
  ``http.host.raw`` is that URI hostname, else the whole Host value (port
  kept, case kept).
* ``http.uri`` is :func:`suricata_uri` of the raw target; ``http.uri.raw`` the
  target as sent; ``http.method``, ``http.protocol``, ``http.request_line``,
  ``http.response_line``, ``http.stat_code``, ``http.stat_msg`` are the
  pieces of the first line.
* ``http.request_body`` / ``http.response_body`` / ``file.data`` are the body
  de-chunked and, for gzip and deflate, decompressed (Suricata 8 decompresses
  requests too), cut at the configured body limit.

A buffer a message does not have (no such header, an HTTP/0.9 request's
protocol, a response buffer asked of a request) is None; a header that is
present with an empty value gives b"".

The older ``HttpRequest`` fields keep their meaning for existing callers:
``headers`` lists every header line (cookies included, duplicates on separate
lines, folded lines joined with a space), ``host`` is the first Host value
lower-cased with its port, ``uri`` is :func:`normalize_uri` (which, unlike
Suricata, turns ``+`` into a space in the query and drops the authority of
``http://host`` to ``/``).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

# An uppercase token followed by one space. Beyond the registered methods this
# admits WebDAV's (PROPFIND, VERSION-CONTROL, ...) and custom ones, which
# servers route to handlers and so must be inspected too.
_METHOD_RE: Final = re.compile(rb"[A-Z][A-Z_-]{0,15} ")

# One header line: a name (no whitespace or colon; a line whose name has
# inner whitespace is skipped like one without a colon), optional blanks, a
# colon, and the value without surrounding blanks or the line's CR. Letting the
# regex strip saves a Python-level pass over every header.
_HEADER_RE: Final = re.compile(rb"^([^\s:]+)[ \t]*:[ \t\x0b\x0c]*((?:[^\r\n]*[^\s])?)", re.MULTILINE)

# ``scheme://`` at the start of an absolute-form request target (proxy requests).
_SCHEME_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")

# RFC 9112 asks servers to ignore at least one empty line before the request
# line; allowing a few keeps a stray CRLF from hiding a request.
_MAX_LEADING_EMPTY: Final = 8

# Above this many digits a Content-Length is absurd, and CPython refuses int()
# on digit strings longer than sys.get_int_max_str_digits() (4300 by default).
_MAX_CL_DIGITS: Final = 18
_CL_SATURATED: Final = 2**63 - 1

# How often uri_has_traversal decodes: enough to see through double and triple
# encoding aimed at servers that decode more than once.
_TRAVERSAL_DECODE_ROUNDS: Final = 3

# libhtp stops merging a message's repeated headers after this many
# repetitions (request_header_repetitions < 64 in request_generic.rs) and keeps
# at most this many headers (number_headers_limit in config.rs).
_MAX_REPETITIONS: Final = 64
_MAX_FIELDS: Final = 1024

# Chunk sizes above this are invalid for libhtp (parse_chunked_length).
MAX_CHUNK_SIZE: Final = 2**31 - 1

Fields = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP/1.x request head (and the start of its body).

    The first eleven fields are the original ones (see the module docstring);
    the rest default so that older constructors keep working:
    ``request_line`` is the first line without its line end, ``header_raw``
    the raw header block (``http.header.raw``), ``fields`` libhtp's merged
    header table and ``uri_norm`` Suricata's ``http.uri`` (b"" when Suricata
    builds none, None when not computed: :func:`http_buffer` computes it).
    """

    method: bytes
    uri_raw: bytes
    uri: bytes
    version: bytes
    host: bytes
    user_agent: bytes
    headers: bytes
    header_list: tuple[tuple[bytes, bytes], ...]
    body: bytes
    content_length: int
    header_len: int
    request_line: bytes = b""
    header_raw: bytes = b""
    fields: Fields = ()
    uri_norm: bytes | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP/1.x response head (and the start of its body).

    ``version``, ``status`` and ``message`` are the three parts of the status
    line (``http.protocol``, ``http.stat_code``, ``http.stat_msg``; b"" when
    absent), ``status_code`` the status as a number (-1 unless it is three
    digits, 100-999), ``headers``/``header_list``/``fields``/``header_raw``
    as for :class:`HttpRequest`. ``body`` is what follows the header block,
    at most ``content_length`` bytes when one was sent. ``headerless`` marks
    a response that did not start with ``HTTP``, which libhtp takes as an
    HTTP/0.9 body: every byte is body.
    """

    version: bytes
    status: bytes
    status_code: int
    message: bytes
    response_line: bytes
    headers: bytes
    header_list: tuple[tuple[bytes, bytes], ...]
    fields: Fields
    header_raw: bytes
    body: bytes
    content_length: int
    header_len: int
    headerless: bool = False


HEADERLESS_RESPONSE: Final = HttpResponse(b"", b"", -1, b"", b"", b"", (), (), b"", b"", -1, 0, True)


def looks_like_request(data: bytes) -> bool:
    """Cheap check: does ``data`` begin with an uppercase method token and a space?"""
    return _METHOD_RE.match(data) is not None


def _skip_empty_lines(data: bytes) -> int:
    n = len(data)
    start = 0
    while start < n and start < _MAX_LEADING_EMPTY and data[start] in b"\r\n":
        start += 1
    return start


def _block_end(data: bytes, eol: int, limit: int) -> tuple[int, int]:
    """(end of the header lines, end of the block) after the first line, or (-1, -1)."""
    crlf = data.find(b"\n\r\n", eol, limit)
    lf = data.find(b"\n\n", eol, limit)
    if crlf < 0 and lf < 0:
        return -1, -1
    if lf < 0 or 0 <= crlf < lf:
        return crlf, crlf + 3
    return lf, lf + 2


def parse_request(
    data: bytes, max_header_bytes: int = 16384, max_body_bytes: int = 65536
) -> HttpRequest | None:
    """Parse the request at the start of ``data``.

    Returns None while the header block is incomplete (no empty line within
    ``max_header_bytes``; a longer header block therefore never parses), or
    when ``data`` is not an HTTP/0.9 or HTTP/1.x request. ``body`` holds the
    bytes after the header block, at most ``content_length`` of them when a
    Content-Length was sent, and never more than ``max_body_bytes``. Without a
    Content-Length the body is simply what follows, so a pipelined request
    would show up there.
    """
    start = _skip_empty_lines(data)
    if _METHOD_RE.match(data, start) is None:
        return None
    limit = min(len(data), start + max_header_bytes)
    eol = data.find(b"\n", start, limit)
    if eol < 0:
        return None

    line = data[start:eol]
    parts = line.split()
    method = parts[0]
    last = parts[-1]
    request_line = line[:-1] if line[-1:] == b"\r" else line
    if len(parts) >= 2 and last[:5].upper() == b"HTTP/":
        tail = last[5:]
        # HTTP/2 and later have no text request line; anything else claiming
        # to be HTTP but not 1.x/0.9 is not a request we understand.
        if tail[:2] != b"1." and tail != b"0.9":
            return None
        version = last
        uri_raw = line[len(method) : line.rfind(last)].strip()
    else:
        version = b""
        uri_raw = line[len(method) :].strip()
        if not uri_raw:
            return None
    uri = normalize_uri(uri_raw)
    uri_norm = suricata_uri(uri_raw, method)

    if not version:
        # HTTP/0.9: the request is this one line; it has no headers or body.
        return HttpRequest(
            method, uri_raw, uri, b"", b"", b"", b"", (), b"", -1, eol + 1, request_line, b"", (), uri_norm
        )

    block_end, header_len = _block_end(data, eol, limit)
    if block_end < 0:
        return None
    block = data[eol + 1 : block_end] if block_end > eol else b""
    pairs = _split_headers(block) if block else []
    header_list = tuple([(name.lower(), value) for name, value in pairs])
    host = b""
    agents: list[bytes] = []
    content_length = -1
    have_host = False
    for lname, value in header_list:
        if lname == b"host":
            if not have_host:
                host = value.lower()
                have_host = True
        elif lname == b"user-agent":
            agents.append(value)
        elif lname == b"content-length" and content_length < 0:
            content_length = _parse_content_length(value)

    headers = b"\r\n".join(map(b": ".join, pairs)) + b"\r\n" if pairs else b""
    body_len = max_body_bytes if content_length < 0 else min(content_length, max_body_bytes)
    body = data[header_len : header_len + max(body_len, 0)]
    return HttpRequest(
        method,
        uri_raw,
        uri,
        version,
        host,
        b", ".join(agents),
        headers,
        header_list,
        body,
        content_length,
        header_len,
        request_line,
        data[eol + 1 : header_len],
        _table(block, pairs, header_list),
        uri_norm,
    )


def parse_response(
    data: bytes, max_header_bytes: int = 16384, max_body_bytes: int = 65536
) -> HttpResponse | None:
    """Parse the response at the start of ``data``.

    Like :func:`parse_request`: None while the header block is incomplete or
    longer than ``max_header_bytes``, or when ``data`` does not start (after
    a few empty lines) with ``HTTP/``. The status line splits at runs of
    whitespace into protocol, status and message (the message keeps inner
    spaces), as libhtp's generic response-line parser does.
    """
    start = _skip_empty_lines(data)
    if data[start : start + 5].upper() != b"HTTP/":
        return None
    limit = min(len(data), start + max_header_bytes)
    eol = data.find(b"\n", start, limit)
    if eol < 0:
        return None
    line = data[start:eol]
    if line[-1:] == b"\r":
        line = line[:-1]
    m = _STATUS_LINE_RE.match(line)  # always matches: every part may be empty
    version, status, rest = (m[1], m[2], m.end()) if m is not None else (line, b"", len(line))
    # The message is the rest without trailing blanks, trimmed outside the regex: as
    # '(.*?)[ \t\r]*\Z' it cost time quadratic in a run of blanks (16 KiB took 3 s).
    message = line[rest:].rstrip(b" \t\r")
    status_code = int(status) if 0 < len(status) <= 5 and status.isdigit() else -1
    if not 100 <= status_code <= 999:
        status_code = -1

    block_end, header_len = _block_end(data, eol, limit)
    if block_end < 0:
        return None
    block = data[eol + 1 : block_end] if block_end > eol else b""
    pairs = _split_headers(block) if block else []
    header_list = tuple([(name.lower(), value) for name, value in pairs])
    content_length = -1
    for lname, value in header_list:
        if lname == b"content-length":
            content_length = _parse_content_length(value)
            break
    headers = b"\r\n".join(map(b": ".join, pairs)) + b"\r\n" if pairs else b""
    body_len = max_body_bytes if content_length < 0 else min(content_length, max_body_bytes)
    return HttpResponse(
        version,
        status,
        status_code,
        message,
        line,
        headers,
        header_list,
        _table(block, pairs, header_list),
        data[eol + 1 : header_len],
        data[header_len : header_len + max(body_len, 0)],
        content_length,
        header_len,
    )


def _split_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name as sent, value) pairs of a header block, both stripped."""
    if block.find(b"\n ") < 0 and block.find(b"\n\t") < 0 and block[:1] not in (b" ", b"\t"):
        # No continuation lines: one C-level pass; colon-less lines never match.
        pairs: list[tuple[bytes, bytes]] = _HEADER_RE.findall(block)
        return pairs
    pairs = []
    for line in block.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            # obs-fold: servers that accept it append the line to the previous
            # value with one space, so that is what a rule must see.
            folded = line.strip()
            if pairs and folded:
                name, value = pairs[-1]
                pairs[-1] = (name, value + b" " + folded if value else folded)
            continue
        m = _HEADER_RE.match(line)
        if m is not None:
            pairs.append((m[1], m[2]))
    return pairs


def _table(block: bytes, pairs: list[tuple[bytes, bytes]], header_list: Fields) -> Fields:
    """libhtp's table, reusing the pairs already split when they are the same thing."""
    if (
        len(pairs) == block.count(b"\n") + 1
        and len(pairs) <= _MAX_FIELDS
        and block.find(b"\n ") < 0
        and block.find(b"\n\t") < 0
        and len({n for n, _ in header_list}) == len(header_list)
    ):
        # Every line was a plain "Name: value" (no fold, no colon-less line,
        # no name with blanks) and no name repeats: nothing to merge.
        return tuple(pairs)
    return header_fields(block)


def header_fields(block: bytes, start: Fields = ()) -> Fields:
    """libhtp's header table for the header lines in ``block`` (no first line, no empty line).

    ``start`` is an existing table to extend (a chunked body's trailers join
    the message's headers, as in libhtp). See the module docstring for the
    rules; they follow ``headers.rs`` and ``process_request_header_generic``.
    """
    entries: list[list[bytes]] = []
    for raw_line in block.split(b"\n"):
        line = raw_line[:-1] if raw_line[-1:] == b"\r" else raw_line
        if line[:1] in (b" ", b"\t") and entries:
            folded = line.strip()
            if folded:
                entry = entries[-1]
                entry[1] = entry[1] + line[:1] + folded if entry[1] else folded
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            if not line.strip():
                continue
            name, value = b"", line
        entries.append([name.strip(), value.strip()])
    return _merge_fields(entries, start)


def _merge_fields(entries: list[list[bytes]], start: Fields) -> Fields:
    out: list[list[bytes]] = [[n, v] for n, v in start]
    index = {n.lower(): i for i, (n, _) in enumerate(start)}
    repeated: set[int] = set()
    reps = 0
    for name, value in entries:
        key = name.lower()
        i = index.get(key)
        if i is None:
            if len(out) >= _MAX_FIELDS:
                continue
            index[key] = len(out)
            out.append([name, value])
            continue
        if i in repeated:
            if reps >= _MAX_REPETITIONS:
                continue
            reps += 1
        repeated.add(i)
        if key != b"content-length":
            out[i][1] = out[i][1] + b", " + value
    return tuple([(n, v) for n, v in out])


def field(fields: Fields, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in a libhtp table, or None."""
    for n, v in fields:
        if len(n) == len(name) and n.lower() == name:
            return v
    return None


def _parse_content_length(value: bytes) -> int:
    """Content-Length as an int; -1 if it is not a decimal number."""
    if not value.isdigit():
        return -1
    digits = value.lstrip(b"0") or b"0"
    if len(digits) > _MAX_CL_DIGITS:
        return _CL_SATURATED
    return int(digits)


def content_length(fields: Fields) -> int:
    """The message's Content-Length as libhtp reads it: the first header, -1 if absent or invalid."""
    value = field(fields, b"content-length")
    return -1 if value is None else _parse_content_length(value.strip())


def is_chunked(fields: Fields) -> bool:
    """Does Transfer-Encoding name ``chunked`` (anywhere, any case, as libhtp checks)?"""
    value = field(fields, b"transfer-encoding")
    return value is not None and value.lower().find(b"chunked") >= 0


# Status line: protocol and status separated by runs of blanks; the message is what
# follows (trailing blanks trimmed by the caller). Nothing after the groups can fail, so
# the match never backtracks: linear in the line.
_STATUS_LINE_RE: Final = re.compile(rb"[ \t]*(\S*)[ \t]*(\S*)[ \t]*")


# --- Suricata's normalised URI ----------------------------------------------------------------------

# libhtp's IDS personality decodes %uXXXX and %XX (a %u with fewer than four
# hex digits, or a % without two, stays as it is).
_PCT_RE: Final = re.compile(rb"%(?:[uU]([0-9A-Fa-f]{4})|([0-9A-Fa-f]{2}))")
_SLASHES_RE: Final = re.compile(rb"/{2,}")
_HOST_END_RE: Final = re.compile(rb"[/?#:]")
_PATH_END_RE: Final = re.compile(rb"[?#]")
_PORT_END_RE: Final = re.compile(rb"[/?#]")
_IPV6_END_RE: Final = re.compile(rb"[/?#\]]")


def _bestfit_table() -> dict[int, int]:
    """Windows-1252 best-fit map libhtp uses to turn a code point above U+00FF into one byte.

    Data from ``rust/htp/src/unicode_bestfit_map.rs`` (Microsoft's bestfit1252),
    written as runs: (first code point, the bytes of consecutive code points).
    """
    runs: tuple[tuple[int, bytes], ...] = (
        (0x100, b"AaAaAaCcCcCcCcDd"),
        (0x111, b"dEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIi"),
        (0x134, b"JjKk"),
        (0x139, b"LlLlLl"),
        (0x141, b"LlNnNnNn"),
        (0x14C, b"OoOoOo"),
        (0x154, b"RrRrRrSsSsSs"),
        (0x162, b"TtTtTtUuUuUuUuUuUuWwYy"),
        (0x179, b"Z"),
        (0x17B, b"Zz"),
        (0x180, b"b"),
        (0x197, b"I"),
        (0x19A, b"l"),
        (0x19F, b"OOo"),
        (0x1AB, b"t"),
        (0x1AE, b"TUu"),
        (0x1B6, b"z"),
        (0x1C0, b"|"),
        (0x1C3, b"!"),
        (0x1CD, b"AaIiOoUuUuUuUuUu"),
        (0x1DE, b"Aa"),
        (0x1E4, b"GgGgKkOoOo"),
        (0x1F0, b"j"),
        (0x261, b"g"),
        (0x2B9, b"'\""),
        (0x2BC, b"'"),
        (0x2C4, b"^"),
        (0x2C8, b"'"),
        (0x2CB, b"`"),
        (0x2CD, b"_"),
        (0x300, b"`"),
        (0x302, b"^~"),
        (0x30E, b'"'),
        (0x331, b"__"),
        (0x37E, b";"),
        (0x393, b"G"),
        (0x398, b"T"),
        (0x3A3, b"S"),
        (0x3A6, b"F"),
        (0x3A9, b"O"),
        (0x3B1, b"a"),
        (0x3B4, b"de"),
        (0x3C0, b"p"),
        (0x3C3, b"st"),
        (0x3C6, b"f"),
        (0x4BB, b"h"),
        (0x589, b":"),
        (0x66A, b"%"),
        (0x2000, b"       "),
        (0x2010, b"--"),
        (0x2017, b"="),
        (0x2032, b"'"),
        (0x2035, b"`"),
        (0x2044, b"/"),
        (0x2074, b"45678"),
        (0x207F, b"n"),
        (0x2080, b"0123456789"),
        (0x20A7, b"P"),
        (0x2102, b"C"),
        (0x2107, b"E"),
        (0x210A, b"gHHHh"),
        (0x2110, b"IILl"),
        (0x2115, b"N"),
        (0x2118, b"PPQRRR"),
        (0x2124, b"Z"),
        (0x2128, b"Z"),
        (0x212A, b"K"),
        (0x212C, b"BCeeEF"),
        (0x2133, b"Mo"),
        (0x2212, b"-"),
        (0x2215, b"/\\*"),
        (0x221A, b"v"),
        (0x221E, b"8"),
        (0x2223, b"|"),
        (0x2229, b"n"),
        (0x2236, b":"),
        (0x223C, b"~"),
        (0x2261, b"="),
        (0x2264, b"=="),
        (0x2303, b"^"),
        (0x2320, b"()"),
        (0x2329, b"<>"),
        (0x2500, b"-"),
        (0x250C, b"+"),
        (0x2510, b"+"),
        (0x2514, b"+"),
        (0x2518, b"+"),
        (0x251C, b"+"),
        (0x252C, b"-"),
        (0x2534, b"-"),
        (0x253C, b"+"),
        (0x2550, b"-"),
        (0x2552, b"+" * 12),
        (0x2564, b"-" * 6),
        (0x256A, b"+++"),
        (0x2584, b"_"),
        (0x2758, b"|"),
        (0x3000, b" "),
        (0x3008, b"<>"),
        (0x301A, b"[]"),
        # Fullwidth ASCII: U+FF01..U+FF5E map to 0x21..0x7E.
        (0xFF01, bytes(range(0x21, 0x7F))),
    )
    table: dict[int, int] = {}
    for first, chars in runs:
        for i, c in enumerate(chars):
            table[first + i] = c
    return table


_BESTFIT: Final = _bestfit_table()


def _bestfit(cp: int) -> int:
    return cp if cp < 0x100 else _BESTFIT.get(cp, 0x3F)


def _pct_sub(m: re.Match[bytes]) -> bytes:
    u = m[1]
    if u is None:
        return bytes((int(m[2], 16),))
    c1 = int(u[:2], 16)
    c2 = int(u[2:], 16)
    # %u00XX is an overlong form of XX; anything else goes through best fit.
    return bytes((c2 if c1 == 0 else _bestfit((c1 << 8) | c2),))


def _pct_decode(data: bytes) -> bytes:
    """libhtp's decode_uri with Suricata's settings: no ``+`` to space, invalid escapes kept."""
    if 0x25 not in data:
        return data
    if data.find(b"%u") < 0 and data.find(b"%U") < 0:
        # Same result for %XX alone (invalid escapes kept, "+" untouched), and faster.
        return unquote_to_bytes(data)
    return _PCT_RE.sub(_pct_sub, data)


def _utf8_bestfit(data: bytes) -> bytes:
    """libhtp's UTF-8 path decoding: each sequence becomes one byte, invalid bytes ``?``.

    Overlong forms are accepted (``\\xc0\\xaf`` is ``/``), surrogates and
    code points above U+10FFFF are invalid; an invalid byte inside a sequence
    ends that sequence with one ``?`` and starts over, and a sequence cut
    short by the end of the path gives one ``?`` per byte after its first
    (``utf8_decoder.rs``).
    """
    if data.isascii():
        return data
    out = bytearray()
    need = seq = cp = 0
    lo, hi = 0x80, 0xBF
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if need == 0:
            i += 1
            if b < 0x80:
                out.append(b)
                continue
            lo, hi = 0x80, 0xBF
            if 0xC0 <= b <= 0xDF:
                need, cp = 1, b & 0x1F
            elif 0xE0 <= b <= 0xEF:
                need, cp = 2, b & 0x0F
                if b == 0xED:
                    hi = 0x9F
            elif 0xF0 <= b <= 0xF4:
                need, cp = 3, b & 0x07
                if b == 0xF4:
                    hi = 0x8F
            else:
                out.append(0x3F)
                continue
            seq = 1
            continue
        if lo <= b <= hi:
            i += 1
            cp = (cp << 6) | (b & 0x3F)
            need -= 1
            seq += 1
            lo, hi = 0x80, 0xBF
            if need == 0:
                out.append(_bestfit(cp))
        else:
            # Replace the broken sequence, then read this byte afresh.
            out.append(0x3F)
            need = 0
    if need:
        out += b"?" * (seq - 1)
    return bytes(out)


def _remove_dots_rfc(path: bytes) -> bytes:
    """RFC 3986 remove_dot_segments as libhtp's normalize_uri_path_inplace implements it.

    ``/a/b/..`` becomes ``/a``, ``/a/b/.`` becomes ``/a/b``, ``/..`` and ``..``
    become empty, a leading ``./`` or ``../`` is dropped.
    """
    if path.find(b"/.") < 0 and path[:1] != b".":
        return path
    out = bytearray()
    # 0 start, 1 ".", 2 "..", 3 "/" pending, 4 "/.", 5 "/..", 6 regular, 7 "/" pending
    # after a removed segment (libhtp's SlashDotDotSlash: no trailing "/" at the end).
    state = 0
    for c in path:
        if state == 0:
            if c == 0x2E:
                state = 1
            elif c == 0x2F:
                state = 3
            else:
                out.append(c)
                state = 6
        elif state == 1:
            if c == 0x2E:
                state = 2
            elif c == 0x2F:
                state = 0
            else:
                out += b"." + bytes((c,))
                state = 6
        elif state == 2:
            if c == 0x2F:
                state = 0
            else:
                out += b".." + bytes((c,))
                state = 6
        elif state in (3, 7):
            if c == 0x2E:
                state = 4
            else:
                out += b"/" + bytes((c,))
                state = 6
        elif state == 4:
            if c == 0x2F:
                state = 7
            elif c == 0x2E:
                state = 5
            else:
                out += b"/." + bytes((c,))
                state = 6
        elif state == 5:
            if c == 0x2F:
                _drop_last_segment(out)
                state = 7
            else:
                out += b"/.." + bytes((c,))
                state = 6
        elif c == 0x2F:
            state = 3
        else:
            out.append(c)
    if state == 3:
        out.append(0x2F)
    elif state == 5:
        _drop_last_segment(out)
    return bytes(out)


def _drop_last_segment(out: bytearray) -> None:
    cut = out.rfind(b"/")
    del out[max(cut, 0) :]


def _split_uri(raw: bytes) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """(hostname, path, query, fragment) of a request target, as libhtp's parse_uri splits it.

    A target not starting with ``/`` that has a ``:`` is taken as
    ``scheme:``; ``//user:pass@`` (the ``@`` searched for anywhere after it,
    as libhtp does) and a hostname (an ``[IPv6]`` literal or up to one of
    ``/?#:``) and ``:port`` may follow.
    """
    host: bytes | None = None
    pos = 0
    n = len(raw)
    if raw[:1] != b"/":
        colon = raw.find(b":")
        if colon >= 0:
            pos = colon + 1
            if raw.startswith(b"//", pos) and not raw.startswith(b"///", pos):
                at = raw.find(b"@", pos + 2)
                if at >= 0:
                    pos = at + 1
            k = pos + 2 if raw.startswith(b"//", pos) else pos
            if k < n and raw[k] != 0x2F:
                while k < n and raw[k] == 0x20:
                    k += 1
                end = -1
                if raw[k : k + 1] == b"[":
                    m = _IPV6_END_RE.search(raw, k + 1)
                    end = m.start() if m is not None else n
                    if end > k + 1:
                        if raw[end : end + 1] == b"]":
                            end += 1
                    else:
                        end = -1
                else:
                    m = _HOST_END_RE.search(raw, k)
                    end = m.start() if m is not None else n
                    if end == k:
                        end = -1
                if end > k:
                    host = raw[k:end].rstrip(b" ")
                    pos = end
                    if raw[pos : pos + 1] == b":":
                        q = pos + 1
                        while q < n and raw[q] == 0x20:
                            q += 1
                        m = _PORT_END_RE.search(raw, q)
                        e = m.start() if m is not None else n
                        if e > q:
                            pos = e
    path = query = fragment = None
    m = _PATH_END_RE.search(raw, pos)
    e = m.start() if m is not None else n
    if e > pos:
        path = raw[pos:e]
        pos = e
    if raw[pos : pos + 1] == b"?":
        e = raw.find(b"#", pos + 1)
        e = n if e < 0 else e
        query = raw[pos + 1 : e]
        pos = e
    if raw[pos : pos + 1] == b"#":
        fragment = raw[pos + 1 :]
    return host, path, query, fragment


def _normalize_path_suricata(path: bytes) -> bytes:
    if 0x25 in path:
        path = _pct_decode(path)
    if 0x5C in path:
        path = path.replace(b"\\", b"/")
    if path.find(b"//") >= 0:
        path = _SLASHES_RE.sub(b"/", path)
    return _remove_dots_rfc(_utf8_bestfit(path))


def suricata_uri(raw: bytes, method: bytes = b"GET") -> bytes:
    """``http.uri`` as Suricata 8 builds it from the raw target (b"" when it builds none).

    libhtp's IDS personality with Suricata's overrides (no lower-casing, no
    ``+`` to space, ``uri-include-all: no``): the path is percent- and
    %u-decoded (``%2f`` included), ``\\`` becomes ``/``, runs of ``/``
    collapse, UTF-8 sequences become single bytes by best fit (invalid bytes
    become ``?``), and dot segments are removed per RFC 3986; the query and
    fragment are percent-decoded only. An absolute-form target loses scheme
    and authority; a CONNECT target or an authority without a path has no
    ``http.uri``. Sources: ``uri.rs``, ``urlencoded.rs``, ``utf8_decoder.rs``,
    ``config.rs`` (IDS) and Suricata's ``app-layer-htp.c`` overrides.
    """
    if not raw or method == b"CONNECT":
        return b""
    if raw[:1] == b"/" and raw.find(b"#") < 0:
        # Origin form without fragment, by far the most common: no scheme or
        # authority to look for.
        opath, sep, oquery = raw.partition(b"?")
        out = _normalize_path_suricata(opath)
        return out + b"?" + _pct_decode(oquery) if sep else out
    _, path, query, fragment = _split_uri(raw)
    out = _normalize_path_suricata(path) if path is not None else b""
    if query is not None:
        out += b"?" + _pct_decode(query)
    if fragment is not None:
        out += b"#" + _pct_decode(fragment)
    return out


def _host_from_header(value: bytes) -> bytes | None:
    """The host part of a Host header, libhtp's parse_hostport hostname, lower-cased."""
    k = 2 if value.startswith(b"//") else 0
    n = len(value)
    if k >= n or value[k] == 0x2F:
        return None
    while k < n and value[k] == 0x20:
        k += 1
    if value[k : k + 1] == b"[":
        m = _IPV6_END_RE.search(value, k + 1)
        end = m.start() if m is not None else n
        if end <= k + 1:
            return None
        if value[end : end + 1] == b"]":
            end += 1
    else:
        m = _HOST_END_RE.search(value, k)
        end = m.start() if m is not None else n
        if end <= k:
            return None
    return value[k:end].rstrip(b" ").lower()


def _uri_hostname(req: HttpRequest) -> bytes | None:
    """The normalised hostname of an absolute-form (or CONNECT) target, or None."""
    raw = req.uri_raw
    if req.method == b"CONNECT":
        host = _host_from_header(raw)
        if host is not None:
            host = _pct_decode(host).lower()
    else:
        if raw[:1] == b"/" or raw.find(b":") < 0:
            return None
        host = _split_uri(raw)[0]
        if host is None:
            return None
        host = _pct_decode(host).lower()
    return host.rstrip(b".") if host is not None else None


# --- buffers ---------------------------------------------------------------------------------------

# Legacy content-modifier names and aliases -> the sticky buffer name.
BUFFER_ALIASES: Final[dict[str, str]] = {
    "http_uri": "http.uri",
    "http_raw_uri": "http.uri.raw",
    "http_method": "http.method",
    "http_protocol": "http.protocol",
    "http_request_line": "http.request_line",
    "http_response_line": "http.response_line",
    "http_header": "http.header",
    "http_raw_header": "http.header.raw",
    "http_header_names": "http.header_names",
    "http_cookie": "http.cookie",
    "http_user_agent": "http.user_agent",
    "http_host": "http.host",
    "http_raw_host": "http.host.raw",
    "http_accept": "http.accept",
    "http_accept_enc": "http.accept_enc",
    "http_accept_lang": "http.accept_lang",
    "http_connection": "http.connection",
    "http_content_type": "http.content_type",
    "http_content_len": "http.content_len",
    "http_referer": "http.referer",
    "http_start": "http.start",
    "http_client_body": "http.request_body",
    "http.client_body": "http.request_body",
    "http_stat_code": "http.stat_code",
    "http_stat_msg": "http.stat_msg",
    "http_server": "http.server",
    "http_location": "http.location",
    "http_server_body": "http.response_body",
    "http.server_body": "http.response_body",
    "file_data": "file.data",
}

# Sticky buffers that are one header's value: buffer name -> header name.
_VALUE_BUFFERS: Final[dict[str, bytes]] = {
    "http.user_agent": b"user-agent",
    "http.referer": b"referer",
    "http.accept": b"accept",
    "http.accept_enc": b"accept-encoding",
    "http.accept_lang": b"accept-language",
    "http.connection": b"connection",
}
_BOTH_VALUE_BUFFERS: Final[dict[str, bytes]] = {
    "http.content_type": b"content-type",
    "http.content_len": b"content-length",
}
_RESPONSE_VALUE_BUFFERS: Final[dict[str, bytes]] = {
    "http.server": b"server",
    "http.location": b"location",
}

REQUEST_BUFFERS: Final = frozenset(
    {
        "http.method",
        "http.uri",
        "http.uri.raw",
        "http.request_line",
        "http.host",
        "http.host.raw",
        "http.request_body",
        *_VALUE_BUFFERS,
    }
)
RESPONSE_BUFFERS: Final = frozenset(
    {"http.stat_code", "http.stat_msg", "http.response_line", "http.response_body", *_RESPONSE_VALUE_BUFFERS}
)
BOTH_BUFFERS: Final = frozenset(
    {
        "http.protocol",
        "http.header",
        "http.header.raw",
        "http.header_names",
        "http.cookie",
        "http.start",
        "file.data",
        *_BOTH_VALUE_BUFFERS,
    }
)
HTTP_BUFFERS: Final = REQUEST_BUFFERS | RESPONSE_BUFFERS | BOTH_BUFFERS


def canonical_buffer(name: str) -> str:
    """The sticky-buffer name for ``name`` (``http_uri`` -> ``http.uri``); unknown names unchanged."""
    return BUFFER_ALIASES.get(name, name)


def _fields_of(msg: HttpRequest | HttpResponse) -> Fields:
    if msg.fields or not msg.header_list:
        return msg.fields
    # A message built by hand without a libhtp table: merge what it has.
    return header_fields(b"\n".join(n + b": " + v for n, v in msg.header_list))


def header_buffer(fields: Fields, exclude: bytes) -> bytes:
    """``http.header``: ``Name: value\\r\\n`` per field, without the ``exclude`` header."""
    parts = [n + b": " + v + b"\r\n" for n, v in fields if n.lower() != exclude]
    return b"".join(parts)


def header_names_buffer(fields: Fields) -> bytes:
    """``http.header_names``: ``\\r\\nName1\\r\\nName2\\r\\n\\r\\n``; b"" without headers."""
    if not fields:
        return b""
    return b"\r\n" + b"".join(n + b"\r\n" for n, _ in fields) + b"\r\n"


def start_buffer(first_line: bytes, fields: Fields) -> bytes:
    """``http.start``: first line, CRLF, every header as ``Name: value\\r\\n``, final CRLF."""
    if not fields:
        return first_line + b"\r\n"
    return first_line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"


def _nonempty(value: bytes) -> bytes | None:
    return value if value else None


def request_buffer(req: HttpRequest, name: str, body: bytes | None = None) -> bytes | None:
    """The request's buffer called ``name`` (canonical name); None if it has none."""
    fields = _fields_of(req)
    if name == "http.uri":
        norm = req.uri_norm if req.uri_norm is not None else suricata_uri(req.uri_raw, req.method)
        return _nonempty(norm)
    if name == "http.uri.raw":
        return _nonempty(req.uri_raw)
    if name == "http.method":
        return req.method
    if name == "http.protocol":
        return _nonempty(req.version)
    if name == "http.request_line":
        return req.request_line or (b" ".join(p for p in (req.method, req.uri_raw, req.version) if p))
    if name in ("http.host", "http.host.raw"):
        host = _uri_hostname(req)
        if host is not None:
            return host
        value = field(fields, b"host")
        if value is None:
            return None
        return value if name == "http.host.raw" else _host_from_header(value)
    if name == "http.header":
        return _nonempty(header_buffer(fields, b"cookie"))
    if name == "http.header.raw":
        return _nonempty(req.header_raw)
    if name == "http.header_names":
        return _nonempty(header_names_buffer(fields))
    if name == "http.start":
        return start_buffer(req.request_line or req.method + b" " + req.uri_raw, fields)
    if name == "http.cookie":
        return field(fields, b"cookie")
    header = _VALUE_BUFFERS.get(name) or _BOTH_VALUE_BUFFERS.get(name)
    if header is not None:
        return field(fields, header)
    if name in ("http.request_body", "file.data"):
        if body is None:
            body = request_body(req)
        return _nonempty(body)
    return None


def response_buffer(resp: HttpResponse, name: str, body: bytes | None = None) -> bytes | None:
    """The response's buffer called ``name`` (canonical name); None if it has none."""
    if name in ("http.response_body", "file.data"):
        if body is None:
            body = response_body(resp)
        return _nonempty(body)
    if resp.headerless:
        return None
    fields = _fields_of(resp)
    if name == "http.stat_code":
        return _nonempty(resp.status)
    if name == "http.stat_msg":
        return _nonempty(resp.message)
    if name == "http.response_line":
        return resp.response_line
    if name == "http.protocol":
        return _nonempty(resp.version)
    if name == "http.header":
        return _nonempty(header_buffer(fields, b"set-cookie"))
    if name == "http.header.raw":
        return _nonempty(resp.header_raw)
    if name == "http.header_names":
        return _nonempty(header_names_buffer(fields))
    if name == "http.start":
        return start_buffer(resp.response_line, fields)
    if name == "http.cookie":
        return field(fields, b"set-cookie")
    header = _RESPONSE_VALUE_BUFFERS.get(name) or _BOTH_VALUE_BUFFERS.get(name)
    if header is not None:
        return field(fields, header)
    return None


def http_buffer(msg: HttpRequest | HttpResponse, name: str, body: bytes | None = None) -> bytes | None:
    """The Suricata buffer ``name`` (``"http.uri"``, ``"http_stat_code"``, ``"file_data"``...) of ``msg``.

    ``body`` replaces the message's own body for the body buffers (the
    stream parser passes the de-chunked, decompressed body it collected);
    without it the body is decoded from ``msg.body``. Names of the other
    direction and unknown names give None.
    """
    name = BUFFER_ALIASES.get(name, name)
    if isinstance(msg, HttpRequest):
        return request_buffer(msg, name, body)
    return response_buffer(msg, name, body)


# --- bodies ----------------------------------------------------------------------------------------


def dechunk(data: bytes, limit: int = 1 << 20) -> bytes:
    """The payload of a complete or partial chunked body, at most ``limit`` bytes.

    Chunk extensions are ignored, a chunk cut short keeps what arrived, and
    parsing stops at the last chunk, at an invalid size line or at the end
    of ``data`` (see ``http_stream`` for the incremental version).
    """
    out = bytearray()
    pos = 0
    n = len(data)
    while pos < n and len(out) < limit:
        eol = data.find(b"\n", pos, pos + 1024)
        if eol < 0:
            break
        size = chunk_size(data[pos:eol])
        pos = eol + 1
        if size is None:
            continue  # an empty line where a size was expected: libhtp skips it
        if size < 0 or size == 0:
            break
        out += data[pos : pos + min(size, limit - len(out))]
        pos += size
        eol = data.find(b"\n", pos)
        if eol < 0:
            break
        pos = eol + 1
    return bytes(out)


_CHUNK_RE: Final = re.compile(rb"[\s\x00-\x1f]*([0-9A-Fa-f]*)")


def chunk_size(line: bytes) -> int | None:
    """A chunk-size line's size; None for an empty line, -1 when invalid (libhtp parse_chunked_length)."""
    m = _CHUNK_RE.match(line)
    digits = m[1] if m is not None else b""
    if not digits:
        return None if not line.strip() else -1
    digits = digits.lstrip(b"0") or b"0"
    if len(digits) > 8:
        return -1
    size = int(digits, 16)
    return size if size <= MAX_CHUNK_SIZE else -1


def content_codings(fields: Fields, max_layers: int = 2) -> tuple[str, ...]:
    """The Content-Encoding layers to undo, outermost first: ``"gzip"`` or ``"deflate"``.

    Unknown codings end the list (the body passes on undecoded from there),
    ``identity`` is skipped; at most ``max_layers`` (Suricata's
    ``response-body-decompress-layer-limit`` default is 2).
    """
    value = field(fields, b"content-encoding")
    if not value:
        return ()
    layers: list[str] = []
    # Content-Encoding lists codings in the order they were applied.
    for part in reversed(value.lower().split(b",")):
        token = part.strip()
        if token in (b"gzip", b"x-gzip"):
            layers.append("gzip")
        elif token in (b"deflate", b"x-deflate"):
            layers.append("deflate")
        elif token in (b"identity", b""):
            continue
        else:
            break
        if len(layers) >= max_layers:
            break
    return tuple(layers)


_INFLATE_STEP: Final = 256 * 1024


class _Layer:
    __slots__ = ("obj", "out", "pending", "sniff")

    def __init__(self) -> None:
        self.obj: zlib._Decompress | None = None
        self.pending = b""  # input zlib has not consumed yet (output was capped)
        self.sniff = b""  # first bytes, held until the wrapper can be told
        self.out = 0


class ContentDecoder:
    """Undo gzip/deflate Content-Encoding incrementally, keeping at most ``limit`` bytes.

    ``feed`` takes the next bytes of the (de-chunked) body and returns how
    many bytes were added to ``body``. The wrapper is detected from the
    first bytes whatever the header says (gzip magic, zlib header, else raw
    deflate), as libhtp does for servers that mislabel one as the other. A
    layer that fails before producing anything passes its input through as
    it is (libhtp's passthrough); one that fails later stops decoding. Output
    stops at ``limit`` (``truncated``), and decoding stops for good once more
    than ``max_output`` bytes came out of fewer than 1/``max_ratio`` as many
    input bytes (``bomb``), Suricata's compression-bomb-limit and libhtp's
    ratio (checked every 256 KiB of output). A single gzip layer cannot
    exceed that ratio (zlib's best is about 1:1030), so one layer is bounded
    by ``limit`` alone. Never raises.
    """

    __slots__ = (
        "_buf",
        "_layers",
        "_max_output",
        "_max_ratio",
        "_passthrough",
        "_stopped",
        "bomb",
        "error",
        "limit",
        "raw_seen",
        "truncated",
    )

    def __init__(
        self,
        codings: tuple[str, ...] = (),
        limit: int = 102400,
        max_output: int = 1 << 20,
        max_ratio: int = 2048,
    ) -> None:
        self._buf = bytearray()
        self._layers = [_Layer() for _ in codings]
        self._max_output = max_output
        self._max_ratio = max_ratio
        self._passthrough = not codings
        self._stopped = False
        self.limit = max(limit, 0)
        self.raw_seen = 0
        self.truncated = False
        self.bomb = False
        self.error = False

    @property
    def body(self) -> bytearray:
        return self._buf

    @property
    def full(self) -> bool:
        return self._stopped or len(self._buf) >= self.limit

    def feed(self, data: bytes | memoryview) -> int:
        n = len(data)
        if not n:
            return 0
        self.raw_seen += n
        if self._stopped:
            return 0
        before = len(self._buf)
        if self._passthrough:
            self._store(data)
        else:
            self._inflate(bytes(data))
        return len(self._buf) - before

    def _store(self, data: bytes | memoryview) -> None:
        room = self.limit - len(self._buf)
        if len(data) > room:
            self._buf += data[:room]
            self.truncated = True
            self._stopped = True
        else:
            self._buf += data

    def _inflate(self, data: bytes) -> None:
        # Each layer's output is capped by the room left in the body, so a bomb
        # never makes any stage allocate more than the body limit per call;
        # what a capped layer did not consume waits in its ``pending``.
        for _ in range(64):
            stage = data
            data = b""
            progressed = False
            j = 0
            while j < len(self._layers):
                layer = self._layers[j]
                room = self.limit - len(self._buf)
                if room <= 0 or len(layer.pending) > self._max_pending():
                    self.truncated = True
                    self._stopped = True
                    return
                # Steps of at most _INFLATE_STEP bytes, so that the bomb check
                # runs before a bomb can get far past max_output.
                out, ok = self._run_layer(layer, stage, min(room, _INFLATE_STEP))
                if not ok:
                    if layer.out:
                        self.error = True
                        self._stopped = True
                        return
                    # Not compressed after all (libhtp's passthrough): this
                    # layer's input goes on as it is, now and later.
                    del self._layers[j]
                    stage = out
                    progressed = True
                    continue
                progressed = progressed or bool(out)
                stage = out
                j += 1
            if not self._layers:
                self._passthrough = True
            self._store(stage)
            if self._stopped or self._check_bomb():
                return
            if not progressed or not any(layer.pending for layer in self._layers):
                return

    def _max_pending(self) -> int:
        return 4 * self.limit + 65536

    @staticmethod
    def _run_layer(layer: _Layer, data: bytes, room: int) -> tuple[bytes, bool]:
        """(output, True), or (the layer's whole input, False) when zlib rejects it."""
        inp = layer.pending + data if layer.pending else data
        if layer.obj is None:
            inp = layer.sniff + inp
            if len(inp) < 2:
                layer.sniff = inp
                return b"", True
            layer.sniff = b""
            layer.obj = zlib.decompressobj(_wbits(inp))
        if layer.obj.eof:
            layer.pending = b""
            return b"", True
        try:
            out = layer.obj.decompress(inp, room)
        except zlib.error:
            layer.pending = b""
            return inp, False
        layer.pending = layer.obj.unconsumed_tail
        layer.out += len(out)
        return out, True

    def _check_bomb(self) -> bool:
        total = len(self._buf)
        if total > self._max_output and total > self._max_ratio * max(self.raw_seen, 1):
            self.bomb = True
            self._stopped = True
            return True
        return False


def _wbits(head: bytes) -> int:
    if head[:2] == b"\x1f\x8b":
        return 31
    if head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0:
        return 15
    return -15


def decode_body(raw: bytes, fields: Fields, *, chunked: bool, limit: int = 102400) -> bytes:
    """One-shot body decoding: de-chunk if ``chunked``, then undo the message's Content-Encoding."""
    entity = dechunk(raw, limit=max(limit, 0) * 4 + 65536) if chunked else raw
    dec = ContentDecoder(content_codings(fields), limit=limit)
    dec.feed(entity)
    return bytes(dec.body)


def request_body(req: HttpRequest) -> bytes:
    """``http.request_body`` of a one-shot parsed request: none without Content-Length or chunking."""
    fields = _fields_of(req)
    chunked = is_chunked(fields)
    if not chunked and content_length(fields) < 0:
        return b""
    return decode_body(req.body, fields, chunked=chunked)


def response_body(resp: HttpResponse) -> bytes:
    """``http.response_body`` of a one-shot parsed response (what arrived after the headers)."""
    if resp.headerless:
        return resp.body
    fields = _fields_of(resp)
    return decode_body(resp.body, fields, chunked=is_chunked(fields))


# --- the older normalisation -----------------------------------------------------------------------


def normalize_uri(raw: bytes) -> bytes:
    """Return the URI a content rule should match: ``http.uri``.

    * An absolute-form target (``http://host:port/path?q``) is reduced to
      its path and query, as Suricata does by default (``uri-include-all: no``).
    * The path and the query are percent-decoded once. Invalid escapes
      (``%zz``, a lone ``%``) stay as they are; a double-encoded ``%252e``
      becomes ``%2e`` and stays that way, since decoding repeatedly would make
      ``http.uri`` differ from what single-decoding servers see (use
      :func:`uri_has_traversal` to catch double-encoded traversal). Decoding
      happens before path normalisation, so ``..%2f`` is resolved like
      ``../``; a decoded ``%3f`` does not start the query.
    * In the path only: ``\\`` becomes ``/`` (IIS and other Windows servers
      treat both as separators), runs of ``/`` collapse to one, ``.``
      segments disappear and ``..`` segments remove their parent but never
      climb above the root (``/../../etc/passwd`` -> ``/etc/passwd``). A
      trailing ``/`` (including one implied by a final ``.`` or ``..``) is
      kept. Relative paths (no leading ``/``) stay relative.
    * In the query only: ``+`` becomes a space (before decoding, so ``%2b``
      stays a ``+``).
    * ``*`` (``OPTIONS *``) and the empty string come back unchanged.

    The raw buffer (``HttpRequest.uri_raw``) keeps the dots, as Suricata's
    ``http.uri.raw`` does, so a rule can still look for ``../`` there.
    Suricata's own ``http.uri`` differs in details (``+`` stays, ``/a/..``
    gives ``/``... see :func:`suricata_uri`).
    """
    # Most URIs need none of this. Single bytes are tested as ints and pairs
    # with find(): ``bytes in bytes`` first tries the argument as an int and
    # pays for a TypeError, several times slower on the hot path.
    if (
        raw[:1] == b"/"
        and 0x25 not in raw  # %
        and 0x2B not in raw  # +
        and 0x5C not in raw  # backslash
        and raw.find(b"//") < 0
        and raw.find(b"/.") < 0
    ):
        return raw
    path, sep, query = raw.partition(b"?")
    path = _strip_authority(path)
    path = _remove_dot_segments(unquote_to_bytes(path).replace(b"\\", b"/"))
    if not sep:
        return path
    return path + b"?" + unquote_to_bytes(query.replace(b"+", b" "))


def uri_has_traversal(raw: bytes) -> bool:
    """True if the request target tries to leave its directory tree.

    The path (after dropping an absolute-form scheme and authority) counts
    when one of its ``..`` segments would climb above the root; ``/a/../b``
    does not. The query counts as soon as it contains ``../`` or ``..\\``
    anywhere (``page=../../etc/passwd``), since a parameter that is used as a
    file name has no root to clamp to. Both are percent-decoded repeatedly (up
    to three rounds, so ``%252e%252e%252f`` is caught; servers or
    applications that decode twice are the target of such encodings), and
    backslashes count as separators in the path.
    """
    if 0x25 not in raw and raw.find(b"..") < 0:
        return False
    path, _, query = raw.partition(b"?")
    path = _decode_repeatedly(_strip_authority(path)).replace(b"\\", b"/")
    depth = 0
    for seg in path.split(b"/"):
        if seg == b"..":
            if depth == 0:
                return True
            depth -= 1
        elif seg and seg != b".":
            depth += 1
    if query:
        decoded = _decode_repeatedly(query)
        if decoded.find(b"../") >= 0 or decoded.find(b"..\\") >= 0:
            return True
    return False


def _strip_authority(path: bytes) -> bytes:
    """Drop ``scheme://authority`` from an absolute-form request target."""
    m = _SCHEME_RE.match(path)
    if m is None:
        return path
    slash = path.find(b"/", m.end())
    return path[slash:] if slash >= 0 else b"/"


def _decode_repeatedly(data: bytes) -> bytes:
    for _ in range(_TRAVERSAL_DECODE_ROUNDS):
        if 0x25 not in data:
            break
        decoded = unquote_to_bytes(data)
        if decoded == data:
            break
        data = decoded
    return data


def _remove_dot_segments(path: bytes) -> bytes:
    """Collapse ``//``, drop ``.`` and resolve ``..`` without climbing above the root."""
    if not path:
        return path
    segments = path.split(b"/")
    out: list[bytes] = []
    for seg in segments:
        if seg == b"..":
            if out:
                out.pop()
        elif seg and seg != b".":
            out.append(seg)
    absolute = path[:1] == b"/"
    result = b"/".join(out)
    if absolute:
        result = b"/" + result
    # "/a/b/" and "/a/b/.." both name a directory; keep the trailing slash so
    # "/admin/" and "/admin" stay distinguishable to rules.
    if out and len(segments) > 1 and segments[-1] in (b"", b".", b".."):
        result += b"/"
    return result
