"""Suricata's buffer transforms: bytes in, bytes out, applied in rule order.

Does: ``dotprefix`` (prepend ``.``, so ``.example.com`` plus ``endswith``
matches a domain and its subdomains but not ``badexample.com``),
``strip_whitespace``, ``compress_whitespace``, ``to_lowercase``,
``to_uppercase``, ``to_md5``/``to_sha1``/``to_sha256`` (the raw digest),
``url_decode`` (``%HH`` and ``+``), ``header_lowercase`` (names before each
line's ``:``) and ``strip_pseudo_headers`` (drop lines starting with ``:``),
as documented in Suricata's transforms.rst and implemented in
rust/src/detect/transforms/*.rs (8.x). Pure functions; the output of one
feeds the next.

Details that follow Suricata's code rather than its prose: every transform
leaves an empty buffer empty (``dotprefix`` adds no dot, the hashes hash
nothing); whitespace is C's ``isspace()`` set (space, ``\t \n \v \f \r``);
``compress_whitespace`` keeps the first byte of each run (``"a\t\tb"`` gives
``"a\tb"``); ``url_decode`` copies a ``%`` not followed by two hex digits,
and the byte after it, unchanged (so ``%%41`` stays ``%%41`` and ``%+`` keeps
its ``+``); ``header_lowercase`` lowercases everything up to the next ``:``,
across lines without one, then copies up to the end of the line;
``strip_pseudo_headers`` splits lines at ``\n`` only.

Does not: implement ``xor``, ``pcrexform`` or ``from_base64`` (the loader
skips rules that use them, counted), or cache anything (``signature`` keeps
one result per packet and buffer).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Final

from inline_ips.rules.model import Transform

_WS: Final = b" \t\n\v\f\r"
_WS_RUN: Final = re.compile(rb"([ \t\n\v\f\r])[ \t\n\v\f\r]+")
# An escape and what follows it, left to right: a valid %HH is decoded; a '%' with at most
# one hex digit is copied with the byte after it (that byte is never decoded or turned from
# '+' into a space); a '+' outside an escape is a space.
_URL_TOKEN: Final = re.compile(rb"%([0-9A-Fa-f]{2})|%[0-9A-Fa-f]?.?|\+", re.DOTALL)
_PSEUDO_LINE: Final = re.compile(rb"(?m)^:[^\n]*\n?")


def _url_token(m: re.Match[bytes]) -> bytes:
    hexpair = m.group(1)
    if hexpair is not None:
        return bytes((int(hexpair, 16),))
    tok = m.group(0)
    return b" " if tok == b"+" else tok


def _url_decode(b: bytes) -> bytes:
    return _URL_TOKEN.sub(_url_token, b)


def _header_lowercase(b: bytes) -> bytes:
    out: list[bytes] = []
    i, n = 0, len(b)
    while i < n:
        colon = b.find(b":", i)
        if colon < 0:
            out.append(b[i:].lower())
            break
        out.append(b[i:colon].lower())
        eol = b.find(b"\n", colon)
        if eol < 0:
            out.append(b[colon:])
            break
        out.append(b[colon : eol + 1])
        i = eol + 1
    return b"".join(out)


FUNCTIONS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "dotprefix": lambda b: b"." + b,
    "strip_whitespace": lambda b: b.translate(None, _WS),
    "compress_whitespace": lambda b: _WS_RUN.sub(rb"\1", b),
    "to_lowercase": bytes.lower,
    "to_uppercase": bytes.upper,
    "to_md5": lambda b: hashlib.md5(b, usedforsecurity=False).digest(),
    "to_sha1": lambda b: hashlib.sha1(b, usedforsecurity=False).digest(),
    "to_sha256": lambda b: hashlib.sha256(b).digest(),
    "url_decode": _url_decode,
    "header_lowercase": _header_lowercase,
    "strip_pseudo_headers": lambda b: _PSEUDO_LINE.sub(b"", b),
}


def apply(transforms: Sequence[Transform], data: bytes) -> bytes:
    for t in transforms:
        if not data:
            break  # Suricata's transforms all return early on an empty buffer
        data = FUNCTIONS[t.name](data)
    return data
