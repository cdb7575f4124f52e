"""Suricata's buffer transforms: bytes in, bytes out, applied in rule order.

Does: ``dotprefix`` (prepend ``.``, so ``.example.com`` plus ``endswith``
matches a domain and its subdomains but not ``badexample.com``),
``strip_whitespace``, ``compress_whitespace``, ``to_lowercase``,
``to_uppercase``, ``to_md5``/``to_sha1``/``to_sha256`` (the raw digest),
``url_decode`` (``%HH`` and ``+``), ``header_lowercase`` (names before each
line's ``:``) and ``strip_pseudo_headers`` (drop lines starting with ``:``),
as documented in Suricata's transforms.rst. Pure functions; the output of one
feeds the next.

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
_WS_RUN: Final = re.compile(rb"[ \t\n\v\f\r]+")
_PCT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")
_HEADER_NAME: Final = re.compile(rb"(?m)^([^:\r\n]*):")


def _url_decode(b: bytes) -> bytes:
    return _PCT.sub(lambda m: bytes((int(m.group(1), 16),)), b.replace(b"+", b" "))


def _strip_pseudo(b: bytes) -> bytes:
    return b"".join(line for line in b.splitlines(keepends=True) if not line.startswith(b":"))


FUNCTIONS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "dotprefix": lambda b: b"." + b,
    "strip_whitespace": lambda b: b.translate(None, _WS),
    "compress_whitespace": lambda b: _WS_RUN.sub(b" ", b),
    "to_lowercase": bytes.lower,
    "to_uppercase": bytes.upper,
    "to_md5": lambda b: hashlib.md5(b, usedforsecurity=False).digest(),
    "to_sha1": lambda b: hashlib.sha1(b, usedforsecurity=False).digest(),
    "to_sha256": lambda b: hashlib.sha256(b).digest(),
    "url_decode": _url_decode,
    "header_lowercase": lambda b: _HEADER_NAME.sub(lambda m: m.group(1).lower() + b":", b),
    "strip_pseudo_headers": _strip_pseudo,
}


def apply(transforms: Sequence[Transform], data: bytes) -> bytes:
    for t in transforms:
        data = FUNCTIONS[t.name](data)
    return data
