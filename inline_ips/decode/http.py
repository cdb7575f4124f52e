"""HTTP/1.x request decoding for the detection engine's ``http.*`` buffers.

Does: parse one request from the start of a reassembled client stream into
the fields Suricata rules inspect (``http.method``, ``http.uri``,
``http.uri.raw``, ``http.protocol``, ``http.host``, ``http.user_agent``,
``http.header``, ``http.request_body``); tolerate what real servers tolerate
(bare LF line ends, runs of spaces or tabs in the request line, obs-fold
continuation lines, header lines without a colon, a few empty lines before
the request line, HTTP/0.9 requests without a version); normalise the URI the
way a path-traversal or SQL-injection rule wants to see it (see
:func:`normalize_uri`) and flag traversal attempts (:func:`uri_has_traversal`).

Does not: parse responses, HTTP/2 (the ``PRI * HTTP/2.0`` preface is rejected
like any non-1.x version) or pipelined requests after the first (the caller
may continue at ``header_len + content_length``); de-chunk
``Transfer-Encoding: chunked`` bodies or decompress ``Content-Encoding`` (the
body is the raw bytes after the header block); decode IIS ``%uXXXX`` or
overlong UTF-8 escapes; take ``http.host`` from an absolute-form URI (Suricata
prefers the URI's authority; here ``host`` is always the Host header). It never
raises on any input and never uses Scapy (hot path).

Buffer choices, compared with Suricata:

* ``headers`` is ``Name: value\\r\\n`` per header in wire order, excluding the
  request line and the blank line, with the value stripped of surrounding
  whitespace (Suricata's normalised ``http.header`` strips trailing
  whitespace). Unlike Suricata it keeps the ``Cookie`` header, because this
  engine has no separate ``http.cookie`` buffer and a cookie is a common
  injection vector; and duplicate headers stay on separate lines instead of
  being merged with ``", "``.
* ``user_agent`` joins duplicate User-Agent values with ``", "`` as Suricata
  does; ``host`` is the first Host header only (a second one is an evasion
  sign that a rule can find in ``headers``).
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP/1.x request head (and the start of its body)."""

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


def looks_like_request(data: bytes) -> bool:
    """Cheap check: does ``data`` begin with an uppercase method token and a space?"""
    return _METHOD_RE.match(data) is not None


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
    n = len(data)
    start = 0
    while start < n and start < _MAX_LEADING_EMPTY and data[start] in b"\r\n":
        start += 1
    if _METHOD_RE.match(data, start) is None:
        return None
    limit = min(n, start + max_header_bytes)
    eol = data.find(b"\n", start, limit)
    if eol < 0:
        return None

    line = data[start:eol]
    parts = line.split()
    method = parts[0]
    last = parts[-1]
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

    if not version:
        # HTTP/0.9: the request is this one line; it has no headers or body.
        return HttpRequest(method, uri_raw, uri, b"", b"", b"", b"", (), b"", -1, eol + 1)

    # The header block ends at the first empty line, written as CRLF or LF.
    crlf = data.find(b"\n\r\n", eol, limit)
    lf = data.find(b"\n\n", eol, limit)
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        block_end, header_len = crlf, crlf + 3
    else:
        block_end, header_len = lf, lf + 2

    pairs = _split_headers(data[eol + 1 : block_end]) if block_end > eol else []
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


def _parse_content_length(value: bytes) -> int:
    """Content-Length as an int; -1 if it is not a decimal number."""
    if not value.isdigit():
        return -1
    digits = value.lstrip(b"0") or b"0"
    if len(digits) > _MAX_CL_DIGITS:
        return _CL_SATURATED
    return int(digits)


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
