"""DNS message header and first-question decoding for ``dns.query`` rules.

Does: read the 12-byte header (id, QR, opcode, rcode, the four counts) and the
first question (name and type) of a DNS message carried over UDP, or over TCP
after its 2-byte length prefix; follow compression pointers with a jump limit;
enforce the 63-byte label and 255-byte name limits; reject payloads that are
not plausibly DNS (see :func:`parse_dns`).

Does not: decode answer, authority or additional records (their counts are
reported, their contents are not parsed), EDNS options, DNSSEC, or more than
the first question; reassemble DNS over TCP across segments (a message that
is cut short is still decoded if its question is present); handle several
messages in one TCP segment (only the first is read). It never raises on any
input and never uses Scapy (hot path).

Name text: labels are joined with ``.`` without the trailing root dot (the
root itself is ``""``), and the case is kept as sent (DNS 0x20 case
randomisation means rules should use ``nocase``), as in Suricata's
``dns.query``. Bytes outside printable ASCII (``0x21``-``0x7e``), and the
backslash itself, are written as ``\\xNN`` (lower-case hex), so the text is
unambiguous and printable; a ``.`` inside a label is kept as is, like
Suricata, which makes ``a.b`` as one label look like two labels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

_HEADER: Final = struct.Struct("!HHHHHH")
HEADER_LEN: Final = 12

FLAG_QR: Final = 0x8000
FLAG_TC: Final = 0x0200

MAX_NAME_LEN: Final = 255  # wire length, length bytes and the final zero included
# A label's length byte has two type bits on top, so 00-typed labels cannot
# exceed this; any longer "length" is a pointer or a reserved type.
MAX_LABEL_LEN: Final = 0x3F

# A legitimate name is compressed through a handful of pointers; a chain
# longer than this is a loop or an attack on the parser.
MAX_POINTER_JUMPS: Final = 32

# The smallest question (root name, type, class) and resource record (root
# name, type, class, TTL, rdlength) on the wire.
_MIN_QUESTION_LEN: Final = 5
_MIN_RR_LEN: Final = 11

_SAFE_BYTES: Final = bytes(b for b in range(0x21, 0x7F) if b != 0x5C)


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """The header and first question of one DNS message."""

    id: int
    is_response: bool
    opcode: int
    rcode: int
    qname: str
    qtype: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    size: int


def parse_dns(payload: bytes, tcp: bool = False) -> DnsMessage | None:
    """Decode the DNS message at the start of a UDP or TCP payload.

    ``size`` is the message length: the UDP payload length, or the length
    prefix for TCP (which may exceed what this segment holds). Returns None
    when the payload is not plausibly DNS:

    * shorter than the 12-byte header;
    * a query without a question (responses may have none: then ``qname`` is
      ``""`` and ``qtype`` 0);
    * the counts promise more records than ``size`` could hold (skipped for
      truncated, TC, responses, whose counts servers do not always trim);
    * the first question's name is malformed (runs past the end, label type
      bits 01/10, a label over 63 or name over 255 bytes, a pointer loop) or
      its type and class are missing.
    """
    if tcp:
        if len(payload) < 2:
            return None
        size = (payload[0] << 8) | payload[1]
        msg = payload[2 : 2 + size]
    else:
        msg = payload
        size = len(payload)
    if size < HEADER_LEN or len(msg) < HEADER_LEN:
        return None
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
    is_response = bool(flags & FLAG_QR)
    if (
        not flags & FLAG_TC
        and qdcount * _MIN_QUESTION_LEN + (ancount + nscount + arcount) * _MIN_RR_LEN > size - HEADER_LEN
    ):
        return None

    qname = ""
    qtype = 0
    if qdcount:
        parsed = read_name(msg, HEADER_LEN)
        if parsed is None:
            return None
        qname, end = parsed
        if end + 4 > len(msg):
            return None
        qtype = (msg[end] << 8) | msg[end + 1]
    elif not is_response:
        return None

    return DnsMessage(
        ident,
        is_response,
        (flags >> 11) & 0xF,
        flags & 0xF,
        qname,
        qtype,
        qdcount,
        ancount,
        nscount,
        arcount,
        size,
    )


def read_name(msg: bytes, offset: int) -> tuple[str, int] | None:
    """Read the (possibly compressed) name at ``offset`` in ``msg``.

    Returns the name text and the offset just after the name as it is
    written at ``offset`` (after its first pointer, if any), or None when the
    name is malformed.
    """
    n = len(msg)
    pos = offset
    after = -1
    jumps = 0
    wire_len = 1  # the root label's zero byte
    labels: list[str] = []
    while True:
        if pos >= n:
            return None
        length = msg[pos]
        if length == 0:
            return ".".join(labels), (pos + 1 if after < 0 else after)
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                return None
            if after < 0:
                after = pos + 2
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                return None
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if kind:
            # 0x40 (extended label, RFC 6891 deprecated it) and 0x80 (reserved).
            return None
        wire_len += length + 1
        if wire_len > MAX_NAME_LEN:
            return None
        end = pos + 1 + length
        if end > n:
            return None
        label = msg[pos + 1 : end]
        if label.translate(None, _SAFE_BYTES):
            labels.append(_escape(label))
        else:
            labels.append(label.decode("ascii"))
        pos = end


def _escape(label: bytes) -> str:
    return "".join(chr(b) if b in _SAFE_BYTES else f"\\x{b:02x}" for b in label)
