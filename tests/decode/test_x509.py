"""X.509 fields in Suricata's formats: certificates made by the openssl CLI, hand-built DER, fuzzing."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inline_ips.decode.tls import format_fingerprint, format_serial
from inline_ips.decode.x509 import INVALID_NAME, MAX_SANS, X509Fields, oid_text, parse_certificate

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


# --- certificates from the openssl CLI ---------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    pem: Path
    key: Path
    der: bytes


def make_cert(
    directory: Path,
    subject: str = "/CN=test.example",
    *,
    serial: int = 1,
    san: str | None = None,
    days: int = 30,
    extra: tuple[str, ...] = (),
    name: str = "cert",
) -> Cert:
    """A self-signed P-256 certificate made by ``openssl req -x509`` (fast: no RSA keygen)."""
    assert OPENSSL is not None
    key, pem = directory / f"{name}.key", directory / f"{name}.pem"
    cmd = [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    cmd += ["-keyout", str(key), "-out", str(pem), "-days", str(days), "-subj", subject]
    cmd += ["-set_serial", str(serial), "-utf8", *extra]
    if san is not None:
        cmd += ["-addext", f"subjectAltName={san}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return Cert(pem, key, ssl.PEM_cert_to_DER_cert(pem.read_text()))


def _openssl_field(cert: Cert, option: str) -> str:
    assert OPENSSL is not None
    out = subprocess.run(
        [OPENSSL, "x509", "-in", str(cert.pem), "-noout", option], check=True, capture_output=True, text=True
    ).stdout.strip()
    return out.split("=", 1)[1]


def _decoded(cert: Cert) -> dict[str, object]:
    # CPython's own OpenSSL-based decoder: an independent reading of the same certificate.
    return ssl._ssl._test_decode_cert(str(cert.pem))  # type: ignore[attr-defined,no-any-return]


# OpenSSL's long names -> the short names Suricata (x509-parser) prints; written from RFC 4519 and
# x509-parser's abbreviation table, independently of the module under test.
_SHORT = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "domainComponent": "DC",
    "emailAddress": "Email",
    "serialNumber": "serialNumber",
    "givenName": "givenName",
    "surname": "surname",
    "title": "title",
    "businessCategory": "businessCategory",
    "postalCode": "postalCode",
    "jurisdictionCountryName": "msJurisdictionCountry",
    "organizationIdentifier": "OID(2.5.4.97)",
}


def _reference_name(rdns: object) -> str:
    assert isinstance(rdns, tuple)
    return ", ".join(" + ".join(f"{_SHORT[attr]}={value}" for attr, value in rdn) for rdn in rdns)


NAMES = [
    pytest.param("/C=US/O=Let's Encrypt/CN=R3", (), "C=US, O=Let's Encrypt, CN=R3", id="lets-encrypt"),
    pytest.param(
        "/DC=org/DC=example/OU=Ops, Inc/CN=a\\+b.example/emailAddress=ops@example.org",
        (),
        "DC=org, DC=example, OU=Ops, Inc, CN=a+b.example, Email=ops@example.org",
        id="no-escaping",
    ),
    pytest.param("/CN=Test1+CN=Test2/O=X", ("-multivalue-rdn",), "CN=Test1 + CN=Test2, O=X", id="multi-rdn"),
    pytest.param("/CN=Bücher café/O=Zoë", (), "CN=Bücher café, O=Zoë", id="utf8"),
    pytest.param(
        "/jurisdictionC=US/businessCategory=Private Organization/serialNumber=123/C=US/ST=CA/L=SF"
        "/organizationIdentifier=NTRUS-1/O=Acme/CN=acme.example",
        (),
        "msJurisdictionCountry=US, businessCategory=Private Organization, serialNumber=123, C=US, ST=CA, "
        "L=SF, OID(2.5.4.97)=NTRUS-1, O=Acme, CN=acme.example",
        id="ev-attributes",
    ),
    pytest.param(
        "/GN=Ann/SN=Lee/title=Dr/postalCode=12345",
        (),
        "givenName=Ann, surname=Lee, title=Dr, postalCode=12345",
        id="person",
    ),
]


@needs_openssl
@pytest.mark.parametrize(("subject", "extra", "expected"), NAMES)
def test_names(tmp_path: Path, subject: str, extra: tuple[str, ...], expected: str) -> None:
    cert = make_cert(tmp_path, subject, extra=extra)
    fields = parse_certificate(cert.der)
    assert fields is not None
    assert fields.subject == expected
    assert fields.issuer == expected  # self-signed
    assert _reference_name(_decoded(cert)["subject"]) == expected


SERIALS = [
    pytest.param(1, "01", id="one"),
    pytest.param(0x7F, "7F", id="7f"),
    pytest.param(0x80, "00:80", id="sign-octet"),
    pytest.param(0x8F01, "00:8F:01", id="8f01"),
    pytest.param(0x5C19B7B1323B1CA1, "5C:19:B7:B1:32:3B:1C:A1", id="suricata-doc-example"),
    pytest.param(
        int.from_bytes(bytes(range(1, 21)), "big"),
        ":".join(f"{i:02X}" for i in range(1, 21)),
        id="20-octets",
    ),
]


@needs_openssl
@pytest.mark.parametrize(("serial", "expected"), SERIALS)
def test_serial_and_fingerprint(tmp_path: Path, serial: int, expected: str) -> None:
    cert = make_cert(tmp_path, serial=serial)
    fields = parse_certificate(cert.der)
    assert fields is not None
    assert format_serial(fields.serial) == expected
    # openssl prints the value without the DER sign octet.
    assert format_serial(fields.serial).replace(":", "").removeprefix("00") == _openssl_field(cert, "-serial")
    assert format_fingerprint(cert.der) == _openssl_field(cert, "-fingerprint").lower()


@needs_openssl
@pytest.mark.parametrize("days", [1, 3650, 20000])  # 20000 days reaches GeneralizedTime (after 2049)
def test_validity(tmp_path: Path, days: int) -> None:
    cert = make_cert(tmp_path, days=days)
    fields = parse_certificate(cert.der)
    assert fields is not None
    assert fields.not_before == ssl.cert_time_to_seconds(_openssl_field(cert, "-startdate"))
    assert fields.not_after == ssl.cert_time_to_seconds(_openssl_field(cert, "-enddate"))


SANS = [
    pytest.param("DNS:a.example,DNS:*.b.example", ["a.example", "*.b.example"], id="dns"),
    pytest.param(
        "IP:127.0.0.1,IP:2001:db8::1",
        ["[127, 0, 0, 1]", "[32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"],
        id="ip-rust-debug",
    ),
    pytest.param(
        "email:x@y.example,URI:https://u.example/p",
        ["RFC822Name(x@y.example)", "https://u.example/p"],
        id="email-uri",
    ),
    pytest.param(
        "RID:1.2.3.4,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@example",
        ["RegisteredID(1.2.3.4)", "OtherName(1.3.6.1.4.1.311.20.2.3, [...])"],
        id="rid-othername",
    ),
]


@needs_openssl
@pytest.mark.parametrize(("san", "expected"), SANS)
def test_subject_alt_names(tmp_path: Path, san: str, expected: list[str]) -> None:
    cert = make_cert(tmp_path, san=san)
    fields = parse_certificate(cert.der)
    assert fields is not None
    assert list(fields.subject_alt_names) == expected


@needs_openssl
def test_no_san_extension(tmp_path: Path) -> None:
    fields = parse_certificate(make_cert(tmp_path).der)
    assert fields is not None
    assert fields.subject_alt_names == ()


# --- hand-built DER ------------------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


CN, ORG, C = "2.5.4.3", "2.5.4.10", "2.5.4.6"


def name(*rdns: list[tuple[str, int, bytes]]) -> bytes:
    return tlv(
        0x30, b"".join(tlv(0x31, b"".join(tlv(0x30, oid(o) + tlv(t, v)) for o, t, v in rdn)) for rdn in rdns)
    )


def extension(ext_oid: str, value: bytes, critical: bool = False) -> bytes:
    return tlv(0x30, oid(ext_oid) + (tlv(0x01, b"\xff") if critical else b"") + tlv(0x04, value))


def build_cert(
    *,
    subject: bytes | None = None,
    issuer: bytes | None = None,
    serial: bytes = b"\x01",
    not_before: bytes = tlv(0x17, b"240101000000Z"),
    not_after: bytes = tlv(0x17, b"250101000000Z"),
    extensions: list[bytes] | None = None,
    version: bytes | None = tlv(0xA0, tlv(0x02, b"\x02")),
    after_spki: bytes = b"",
) -> bytes:
    subject = name([(CN, 0x0C, b"subject.example")]) if subject is None else subject
    issuer = name([(CN, 0x0C, b"issuer.example")]) if issuer is None else issuer
    alg = tlv(0x30, oid("1.2.840.10045.4.3.2"))
    spki = tlv(0x30, tlv(0x30, oid("1.2.840.10045.2.1")) + tlv(0x03, b"\x00\x04" + b"\x11" * 64))
    exts = b"" if extensions is None else tlv(0xA3, tlv(0x30, b"".join(extensions)))
    tbs = (version or b"") + tlv(0x02, serial) + alg + issuer + tlv(0x30, not_before + not_after)
    tbs = tlv(0x30, tbs + subject + spki + after_spki + exts)
    return tlv(0x30, tbs + alg + tlv(0x03, b"\x00" + b"\x22" * 70))


def _fields(der: bytes) -> X509Fields:
    fields = parse_certificate(der)
    assert fields is not None
    return fields


SAN_OID = "2.5.29.17"

VALUES = [
    pytest.param([[(CN, 0x1E, "ab".encode("utf-16-be"))]], "CN=\x00a\x00b", id="bmp-raw-octets"),
    pytest.param([[(CN, 0x1C, b"\x00\x00\x00a")]], "CN=00000061", id="universal-string-hex"),
    pytest.param([[(CN, 0x04, b"\xde\xad")]], "CN=DEAD", id="octet-string-hex"),
    pytest.param([[(CN, 0x14, b"t61")], [(ORG, 0x1A, b"vis")]], "CN=t61, O=vis", id="t61-visible"),
    pytest.param([[(CN, 0x0C, b"ok")], [(ORG, 0x0C, b"\xff\xfe")]], INVALID_NAME, id="bad-utf8-spoils-name"),
    pytest.param([[("1.2.3.4.5", 0x0C, b"x")]], "OID(1.2.3.4.5)=x", id="unknown-oid"),
    pytest.param([[(C, 0x13, b"US"), (ORG, 0x0C, b"A, B")]], "C=US + O=A, B", id="multi-valued"),
    pytest.param([], "", id="empty-name"),
]


@pytest.mark.parametrize(("rdns", "expected"), VALUES)
def test_hand_built_names(rdns: list[list[tuple[str, int, bytes]]], expected: str) -> None:
    assert _fields(build_cert(subject=name(*rdns))).subject == expected


HAND_SANS = [
    pytest.param(
        tlv(0x30, tlv(0xA4, name([(CN, 0x0C, b"dir")], [(ORG, 0x0C, b"Org")]))),
        ("DirectoryName(CN=dir, O=Org)",),
        id="directory-name",
    ),
    pytest.param(tlv(0x30, tlv(0x82, b"ok.example") + tlv(0x82, b"\xff")), (), id="bad-utf8-drops-all"),
    pytest.param(tlv(0x30, tlv(0x82, b"a") + tlv(0x89, b"x")), (), id="unknown-tag-drops-all"),
    pytest.param(
        tlv(0x30, tlv(0xA3, b"") + tlv(0xA5, b"")),
        ("X400Address(<unparsed>)", "EDIPartyName(<unparsed>)"),
        id="unparsed",
    ),
    pytest.param(tlv(0x30, tlv(0x82, b"a"))[:-1], (), id="truncated"),
    pytest.param(tlv(0x30, b""), (), id="empty"),
]


@pytest.mark.parametrize(("value", "expected"), HAND_SANS)
def test_hand_built_sans(value: bytes, expected: tuple[str, ...]) -> None:
    assert _fields(build_cert(extensions=[extension(SAN_OID, value)])).subject_alt_names == expected


def test_first_san_extension_wins_and_critical_flag_is_skipped() -> None:
    first = extension(SAN_OID, tlv(0x30, tlv(0x82, b"first.example")), critical=True)
    second = extension(SAN_OID, tlv(0x30, tlv(0x82, b"second.example")))
    other = extension("2.5.29.19", tlv(0x30, b""))
    assert _fields(build_cert(extensions=[other, first, second])).subject_alt_names == ("first.example",)


def test_san_count_is_bounded() -> None:
    many = tlv(0x30, tlv(0x82, b"n.example") * (MAX_SANS + 10))
    assert len(_fields(build_cert(extensions=[extension(SAN_OID, many)])).subject_alt_names) == MAX_SANS


def test_v1_certificate_and_unique_ids() -> None:
    fields = _fields(build_cert(version=None, after_spki=tlv(0x81, b"\x00\x01") + tlv(0x82, b"\x00\x02")))
    assert (fields.subject, fields.serial) == ("CN=subject.example", b"\x01")


def test_trailing_bytes_after_certificate_are_ignored() -> None:
    assert _fields(build_cert() + b"junk").issuer == "CN=issuer.example"


TIMES = [
    pytest.param(tlv(0x17, b"491231235959Z"), 2524607999, id="utc-2049"),
    pytest.param(tlv(0x17, b"500101000000Z"), -631152000, id="utc-1950"),
    pytest.param(tlv(0x17, b"2401010000Z"), 1704067200, id="utc-no-seconds"),
    pytest.param(tlv(0x17, b"240101010000+0100"), 1704067200, id="utc-offset"),
    pytest.param(tlv(0x18, b"20240101000000Z"), 1704067200, id="generalized"),
    pytest.param(tlv(0x18, b"20240101000000.123Z"), 1704067200, id="generalized-fraction"),
    pytest.param(tlv(0x18, b"99991231235959Z"), 253402300799, id="generalized-max"),
]


@pytest.mark.parametrize(("value", "expected"), TIMES)
def test_times(value: bytes, expected: int) -> None:
    assert _fields(build_cert(not_before=value)).not_before == expected


BROKEN = [
    pytest.param({"not_before": tlv(0x17, b"241301000000Z")}, id="month-13"),
    pytest.param({"not_before": tlv(0x17, b"240230000000Z")}, id="feb-30"),
    pytest.param({"not_before": tlv(0x17, b"240101000000")}, id="no-zone"),
    pytest.param({"not_before": tlv(0x18, b"00000101000000Z")}, id="year-0"),
    pytest.param({"not_before": tlv(0x04, b"240101000000Z")}, id="not-a-time"),
    pytest.param({"version": tlv(0xA0, tlv(0x02, b"\x03"))}, id="version-4"),
    pytest.param({"subject": tlv(0x30, tlv(0x31, b""))}, id="empty-rdn"),
    pytest.param(
        {"subject": tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, b"\x81") + tlv(0x0C, b"x"))))}, id="bad-oid"
    ),
    pytest.param({"after_spki": tlv(0x04, b"")}, id="stray-element"),
]


@pytest.mark.parametrize("kwargs", BROKEN)
def test_broken_certificates(kwargs: dict[str, Any]) -> None:
    assert _fields(build_cert()) is not None  # the baseline parses
    assert parse_certificate(build_cert(**kwargs)) is None


def test_indefinite_and_overlong_lengths() -> None:
    der = build_cert()
    assert parse_certificate(b"\x30\x80" + der[2:]) is None
    assert parse_certificate(b"\x30\x85\x00\x00\x00\x00\x10" + der) is None


def test_long_form_lengths_with_leading_zeros_are_accepted() -> None:
    # Not minimal DER, but x509-parser is lenient about it and so is this reader.
    body = build_cert()[2:] if build_cert()[1] < 0x80 else build_cert()[4:]
    assert parse_certificate(b"\x30\x84" + len(body).to_bytes(4, "big") + body) is not None


def test_every_truncation_is_none() -> None:
    der = build_cert(extensions=[extension(SAN_OID, tlv(0x30, tlv(0x82, b"a.example")))])
    for i in range(len(der)):
        assert parse_certificate(der[:i]) is None, i


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x55\x04\x03", "2.5.4.3"),
        (b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01", "1.2.840.113549.1.9.1"),
        (b"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19", "0.9.2342.19200300.100.1.25"),
        (b"\x88\x37", "2.999"),
        (b"", None),
        (b"\x55\x84", None),
        (b"\x55" + b"\xff" * 10 + b"\x01", None),  # an arc beyond 64 bits
    ],
)
def test_oid_text(raw: bytes, expected: str | None) -> None:
    assert oid_text(raw) == expected


# --- robustness ------------------------------------------------------------------------------------------


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = parse_certificate(data)
    assert result is None or isinstance(result, X509Fields)
    result = parse_certificate(b"\x30" + bytes([len(data) & 0x7F]) + data)
    assert result is None or isinstance(result, X509Fields)


_BASE = build_cert(
    subject=name([(C, 0x13, b"US")], [(CN, 0x0C, b"m.example")]),
    extensions=[
        extension(
            SAN_OID,
            tlv(0x30, tlv(0x82, b"a") + tlv(0x87, b"\x01\x02\x03\x04") + tlv(0xA4, name([(CN, 0x0C, b"d")]))),
        )
    ],
)


@settings(max_examples=400)
@given(st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_certificates_never_raise(edits: list[tuple[int, int]]) -> None:
    der = bytearray(_BASE)
    for pos, value in edits:
        der[pos] = value
    result = parse_certificate(bytes(der))
    if result is not None:
        assert isinstance(result.subject, str) and isinstance(result.serial, bytes)
        assert len(result.subject_alt_names) <= MAX_SANS
