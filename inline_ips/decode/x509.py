"""Minimal DER reader for the X.509 fields that Suricata's ``tls.cert_*`` buffers expose.

Does: walk one DER-encoded certificate far enough to return the serial
number's content octets, the issuer and subject names formatted the way
Suricata prints them, the validity period as POSIX seconds, and the
subjectAltName entries formatted the way Suricata's ``tls.subjectaltname``
buffer holds them. Every length is checked against its enclosing element;
indefinite lengths (BER, not DER) and lengths over 4 octets are rejected. The
walk is iterative except for the one fixed-depth step into a directoryName
alternative name, so nesting depth is bounded by construction; at most
:data:`MAX_SANS` alternative names are kept.

Does not: verify signatures, chains, key usages or any constraint; decode
the public key, issuer/subject unique identifiers or any extension other
than subjectAltName; enforce DER's minimal-length or canonical-ordering
rules (x509-parser, which Suricata uses, is lenient there too); print OIDs
with an arc beyond 64 bits (x509-parser switches to another form; here they
count as malformed). It never raises on any input: a structure it cannot
walk gives None.

Formats (Suricata 7/8 call the Rust x509-parser crate; these follow its
``X509Name`` and ``GeneralName`` Display code and Suricata's
``rust/src/x509/mod.rs``):

* A name is its RDNs in wire order joined by ``", "``, the attributes of a
  multi-valued RDN joined by ``" + "``, each attribute ``SHORT=value`` with
  no escaping at all. SHORT is CN, C, L, ST, O, OU, DC or Email for the usual
  attributes, else the oid-registry short name (``serialNumber``,
  ``givenName``, ...), else ``OID(2.5.4.97)``. A value whose tag number is one
  of the ASN.1 string types is its raw octets read as UTF-8 (BMPString
  octets too, unconverted, as x509-parser does); any other value is its
  content octets in upper-case hex. A string value that is not valid UTF-8
  makes the whole name ``<X509Error: Invalid X.509 name>``.
* A subjectAltName entry is the bare string for dNSName and URI; the Rust
  ``{:?}`` form of the octets for iPAddress (``[127, 0, 0, 1]``); and
  x509-parser's Display form for the rest (``RFC822Name(a@b)``,
  ``DirectoryName(CN=x)``, ``OtherName(1.3.6.1.4.1.311.20.2.3, [...])``,
  ``RegisteredID(1.2.3)``, ``X400Address(<unparsed>)``,
  ``EDIPartyName(<unparsed>)``). A malformed extension, or a string entry
  that is not UTF-8, gives no names at all (x509-parser's SAN parse fails as a
  whole). Only the first subjectAltName extension is read.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Final

MAX_SANS: Final = 1024
INVALID_NAME: Final = "<X509Error: Invalid X.509 name>"

_SEQUENCE: Final = 0x30
_SET: Final = 0x31
_INTEGER: Final = 0x02
_BIT_STRING: Final = 0x03
_OCTET_STRING: Final = 0x04
_OID: Final = 0x06
_BOOLEAN: Final = 0x01
_UTC_TIME: Final = 0x17
_GENERALIZED_TIME: Final = 0x18
_VERSION_TAG: Final = 0xA0
_EXTENSIONS_TAG: Final = 0xA3
_SAN_OID: Final = b"\x55\x1d\x11"  # 2.5.29.17
# x509-parser prints an OID with an arc beyond 64 bits in another form; such OIDs are
# treated as malformed here (and it keeps int-to-str conversions small).
_MAX_ARC: Final = (1 << 64) - 1

# Tag numbers x509-parser prints as text: Numeric, BMP, Visible, Printable, General,
# ObjectDescriptor, Graphic, T61, Videotex, UTF8 and IA5 strings. It compares the tag
# number only, whatever the class, and so does this module.
_STRING_TAG_NUMBERS: Final = frozenset({18, 30, 26, 19, 27, 7, 25, 20, 21, 12, 22})

# x509-parser's abbreviations first, then the oid-registry short names it falls back on.
_ATTRIBUTE_NAMES: Final[dict[bytes, str]] = {
    b"\x55\x04\x03": "CN",
    b"\x55\x04\x06": "C",
    b"\x55\x04\x07": "L",
    b"\x55\x04\x08": "ST",
    b"\x55\x04\x0a": "O",
    b"\x55\x04\x0b": "OU",
    b"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19": "DC",  # 0.9.2342.19200300.100.1.25
    b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01": "Email",  # 1.2.840.113549.1.9.1
    b"\x55\x04\x00": "objectClass",
    b"\x55\x04\x01": "aliasedEntryName",
    b"\x55\x04\x02": "knowledgeInformation",
    b"\x55\x04\x04": "surname",
    b"\x55\x04\x05": "serialNumber",
    b"\x55\x04\x09": "streetAddress",
    b"\x55\x04\x0c": "title",
    b"\x55\x04\x0d": "description",
    b"\x55\x04\x0e": "searchGuide",
    b"\x55\x04\x0f": "businessCategory",
    b"\x55\x04\x10": "postalAddress",
    b"\x55\x04\x11": "postalCode",
    b"\x55\x04\x29": "name",
    b"\x55\x04\x2a": "givenName",
    b"\x55\x04\x2b": "initials",
    b"\x55\x04\x2c": "generationQualifier",
    b"\x55\x04\x2d": "uniqueIdentifier",
    b"\x55\x04\x2e": "dnQualifier",
    b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x02": "unstructuredName",
    b"\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x01": "msJurisdictionLocality",
    b"\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x02": "msJurisdictionStateOrProvince",
    b"\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x03": "msJurisdictionCountry",
}


@dataclass(frozen=True, slots=True)
class X509Fields:
    """What the rule buffers need from one certificate."""

    serial: bytes  # the INTEGER's content octets as encoded (a leading 0x00 sign octet stays)
    issuer: str
    subject: str
    not_before: int  # POSIX seconds, UTC
    not_after: int
    subject_alt_names: tuple[str, ...]


class _DerError(Exception):
    """Internal: the DER does not have the expected shape (never escapes this module)."""


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(first tag octet, content start, content end) of the element at ``pos``."""
    if pos + 2 > end:
        raise _DerError
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        # High tag number form: skip the continuation octets (bounded: 4 at most).
        for _ in range(4):
            if pos >= end:
                raise _DerError
            more = data[pos] & 0x80
            pos += 1
            if not more:
                break
        else:
            raise _DerError
        if pos >= end:
            raise _DerError
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise _DerError  # indefinite length, or absurdly long
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise _DerError
    return tag, pos, pos + length


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _header(data, pos, end)
    if got != tag:
        raise _DerError
    return start, stop


def oid_text(raw: bytes) -> str | None:
    """Dotted-decimal form of an OID's content octets, or None when malformed."""
    if not raw or raw[-1] & 0x80:
        return None
    arcs: list[int] = []
    value = 0
    for octet in raw:
        value = (value << 7) | (octet & 0x7F)
        if value > _MAX_ARC:
            return None
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def format_name(data: bytes, start: int, end: int) -> str:
    """Suricata's string for the Name (RDNSequence) content at ``data[start:end]``.

    Raises the internal error on a structural fault (the certificate is then
    unusable, as with x509-parser); a value that is not UTF-8 only spoils the
    string (``INVALID_NAME``).
    """
    rdns: list[str] = []
    valid = True
    pos = start
    while pos < end:
        set_start, set_end = _expect(data, pos, end, _SET)
        pos = set_end
        if set_start == set_end:
            raise _DerError  # an RDN holds at least one attribute
        parts: list[str] = []
        inner = set_start
        while inner < set_end:
            atv_start, atv_end = _expect(data, inner, set_end, _SEQUENCE)
            inner = atv_end
            oid_start, oid_end = _expect(data, atv_start, atv_end, _OID)
            oid = data[oid_start:oid_end]
            short = _ATTRIBUTE_NAMES.get(oid)
            if short is None:
                dotted = oid_text(oid)
                if dotted is None:
                    raise _DerError
                short = f"OID({dotted})"
            value_tag, value_start, value_end = _header(data, oid_end, atv_end)
            value = data[value_start:value_end]
            if value_tag & 0x1F in _STRING_TAG_NUMBERS:
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    valid = False
                    continue
            else:
                text = value.hex().upper()
            parts.append(f"{short}={text}")
        rdns.append(" + ".join(parts))
    return ", ".join(rdns) if valid else INVALID_NAME


def _two(text: str, at: int) -> int:
    piece = text[at : at + 2]
    if len(piece) != 2 or not piece.isdigit() or not piece.isascii():
        raise _DerError
    return int(piece)


def _time(tag: int, raw: bytes) -> int:
    """POSIX seconds of a UTCTime or GeneralizedTime value."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _DerError from None
    if tag == _UTC_TIME:
        yy = _two(text, 0)
        year = 1900 + yy if yy >= 50 else 2000 + yy  # RFC 5280 4.1.2.5.1
        rest = text[2:]
    elif tag == _GENERALIZED_TIME:
        year = _two(text, 0) * 100 + _two(text, 2)
        rest = text[4:]
    else:
        raise _DerError
    month, day, hour, minute = (_two(rest, i) for i in (0, 2, 4, 6))
    pos = 8
    second = 0
    if rest[pos : pos + 1].isdigit():
        second = _two(rest, pos)
        pos += 2
    if tag == _GENERALIZED_TIME and rest[pos : pos + 1] in (".", ","):
        pos += 1
        digits = pos
        while pos < len(rest) and pos - digits < 9 and rest[pos].isdigit():
            pos += 1
        if pos == digits:
            raise _DerError
    zone = rest[pos:]
    if zone == "Z":
        offset = 0
    elif len(zone) == 5 and zone[0] in "+-":
        offset = (_two(zone, 1) * 60 + _two(zone, 3)) * 60
        if zone[0] == "-":
            offset = -offset
    else:
        raise _DerError
    if year < 1:
        raise _DerError
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise _DerError
    if hour > 23 or minute > 59 or second > 60:
        raise _DerError
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset


def _general_name(data: bytes, tag: int, start: int, end: int) -> str:
    """One GeneralName in Suricata's tls.subjectaltname form."""
    number = tag & 0x1F
    value = data[start:end]
    if number in (1, 2, 6) and not tag & 0x20:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _DerError from None
        return f"RFC822Name({text})" if number == 1 else text
    if number == 7 and not tag & 0x20:
        return "[" + ", ".join(str(octet) for octet in value) + "]"
    if number == 8 and not tag & 0x20:
        dotted = oid_text(value)
        if dotted is None:
            raise _DerError
        return f"RegisteredID({dotted})"
    if number == 0 and tag & 0x20:
        oid_start, oid_end = _expect(data, start, end, _OID)
        dotted = oid_text(data[oid_start:oid_end])
        if dotted is None:
            raise _DerError
        return f"OtherName({dotted}, [...])"
    if number == 4 and tag & 0x20:
        # [4] holds a Name, explicitly tagged because Name is a CHOICE.
        name_start, name_end = _expect(data, start, end, _SEQUENCE)
        return f"DirectoryName({format_name(data, name_start, name_end)})"
    if number == 3:
        return "X400Address(<unparsed>)"
    if number == 5:
        return "EDIPartyName(<unparsed>)"
    raise _DerError


def _subject_alt_names(data: bytes) -> tuple[str, ...]:
    """The entries of a subjectAltName extension value (empty when malformed)."""
    try:
        start, end = _expect(data, 0, len(data), _SEQUENCE)
        names: list[str] = []
        pos = start
        while pos < end and len(names) < MAX_SANS:
            tag, value_start, value_end = _header(data, pos, end)
            pos = value_end
            names.append(_general_name(data, tag, value_start, value_end))
        return tuple(names)
    except _DerError:
        return ()


def _extensions(data: bytes, start: int, end: int) -> tuple[str, ...]:
    seq_start, seq_end = _expect(data, start, end, _SEQUENCE)
    pos = seq_start
    while pos < seq_end:
        ext_start, ext_end = _expect(data, pos, seq_end, _SEQUENCE)
        pos = ext_end
        oid_start, oid_end = _expect(data, ext_start, ext_end, _OID)
        inner = oid_end
        tag, value_start, value_end = _header(data, inner, ext_end)
        if tag == _BOOLEAN:
            tag, value_start, value_end = _header(data, value_end, ext_end)
        if tag != _OCTET_STRING:
            raise _DerError
        if data[oid_start:oid_end] == _SAN_OID:
            return _subject_alt_names(data[value_start:value_end])
    return ()


def parse_certificate(der: bytes) -> X509Fields | None:
    """The rule-relevant fields of a DER certificate, or None when it cannot be walked.

    Bytes after the outer SEQUENCE are ignored, as x509-parser (and so
    Suricata) ignores them.
    """
    try:
        return _parse(der)
    except _DerError:
        return None


def _parse(data: bytes) -> X509Fields:
    cert_start, cert_end = _expect(data, 0, len(data), _SEQUENCE)
    tbs_start, tbs_end = _expect(data, cert_start, cert_end, _SEQUENCE)
    sig_alg_start, sig_alg_end = _expect(data, tbs_end, cert_end, _SEQUENCE)
    del sig_alg_start
    _expect(data, sig_alg_end, cert_end, _BIT_STRING)

    pos = tbs_start
    tag, start, end = _header(data, pos, tbs_end)
    if tag == _VERSION_TAG:
        version_start, version_end = _expect(data, start, end, _INTEGER)
        version = data[version_start:version_end]
        if len(version) != 1 or version[0] > 2:
            raise _DerError
        pos = end
    serial_start, serial_end = _expect(data, pos, tbs_end, _INTEGER)
    _, pos = _expect(data, serial_end, tbs_end, _SEQUENCE)  # signature AlgorithmIdentifier
    issuer_start, issuer_end = _expect(data, pos, tbs_end, _SEQUENCE)
    validity_start, validity_end = _expect(data, issuer_end, tbs_end, _SEQUENCE)
    subject_start, subject_end = _expect(data, validity_end, tbs_end, _SEQUENCE)
    _, pos = _expect(data, subject_end, tbs_end, _SEQUENCE)  # subjectPublicKeyInfo

    before_tag, before_start, before_end = _header(data, validity_start, validity_end)
    after_tag, after_start, after_end = _header(data, before_end, validity_end)
    not_before = _time(before_tag, data[before_start:before_end])
    not_after = _time(after_tag, data[after_start:after_end])

    sans: tuple[str, ...] = ()
    while pos < tbs_end:
        tag, start, end = _header(data, pos, tbs_end)
        pos = end
        if tag == _EXTENSIONS_TAG:
            sans = _extensions(data, start, end)
            break
        if tag & 0x1F not in (1, 2) or not tag & 0x80:
            raise _DerError  # only the unique identifiers [1] and [2] may come before [3]

    return X509Fields(
        serial=data[serial_start:serial_end],
        issuer=format_name(data, issuer_start, issuer_end),
        subject=format_name(data, subject_start, subject_end),
        not_before=not_before,
        not_after=not_after,
        subject_alt_names=sans,
    )
