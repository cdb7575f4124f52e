"""TLS handshake decoding: SNI, JA3/JA3S against references and published vectors, buffers, edge cases."""

from __future__ import annotations

import hashlib
import itertools
import ssl
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inline_ips.decode.tls import (
    MAX_CHAIN,
    TLS_BUFFER_ALIASES,
    TLS_BUFFERS,
    ClientHello,
    ServerHello,
    TlsSnapshot,
    client_hello_sni,
    format_fingerprint,
    is_client_hello,
    is_grease,
    parse_certificate_message,
    parse_client_hello,
    parse_client_hello_payload,
    parse_server_hello,
    parse_sslv2_client_hello,
    tls_buffer,
    tls_version,
    version_matches,
)


def _openssl_client_hello(
    server_hostname: str | None, maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
) -> bytes:
    """The first flight of a real TLS client, taken from its outgoing memory BIO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    data = outgoing.read()
    assert data
    return data


def _u16(n: int) -> bytes:
    return struct.pack("!H", n)


def _sni_ext(*entries: tuple[int, bytes]) -> bytes:
    names = b"".join(bytes([kind]) + _u16(len(name)) + name for kind, name in entries)
    return _u16(len(names)) + names


def _hello_body(extensions: list[tuple[int, bytes]] | None, session_id: bytes = b"\x11" * 32) -> bytes:
    body = b"\x03\x03" + b"\x5a" * 32 + bytes([len(session_id)]) + session_id
    body += _u16(4) + b"\x13\x01\xc0\x2f"  # cipher suites
    body += b"\x01\x00"  # compression: null
    if extensions is not None:
        exts = b"".join(_u16(kind) + _u16(len(data)) + data for kind, data in extensions)
        body += _u16(len(exts)) + exts
    return body


def _handshake(body: bytes) -> bytes:
    return b"\x01" + len(body).to_bytes(3, "big") + body


def _records(handshake: bytes, *cuts: int, version: bytes = b"\x03\x01") -> bytes:
    """Wrap a handshake message in records, split at the given offsets."""
    bounds = [0, *cuts, len(handshake)]
    return b"".join(
        b"\x16" + version + _u16(end - start) + handshake[start:end]
        for start, end in itertools.pairwise(bounds)
    )


def _hello(*entries: tuple[int, bytes], other_exts: list[tuple[int, bytes]] | None = None) -> bytes:
    exts = list(other_exts or [])
    if entries:
        exts.append((0, _sni_ext(*entries)))
    return _records(_handshake(_hello_body(exts)))


# --- real ClientHellos -----------------------------------------------------------------------------


@pytest.mark.parametrize("hostname", ["example.test", "www.example.com", "a.b.c.d.example.org", "x"])
@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED])
def test_openssl_client_hello(hostname: str, maximum: ssl.TLSVersion) -> None:
    data = _openssl_client_hello(hostname, maximum)
    assert is_client_hello(data)
    assert client_hello_sni(data) == hostname


def test_openssl_client_hello_mixed_case_is_lowered() -> None:
    data = _openssl_client_hello("WWW.Example.TEST")
    assert client_hello_sni(data) == "www.example.test"


def test_openssl_client_hello_without_sni() -> None:
    data = _openssl_client_hello(None)
    assert is_client_hello(data)
    assert client_hello_sni(data) is None


def test_openssl_client_hello_truncated_at_every_length() -> None:
    data = _openssl_client_hello("example.test")
    for i in range(len(data)):
        assert client_hello_sni(data[:i]) is None, i
    assert client_hello_sni(data + b"\x17\x03\x03\x00\x05hello") == "example.test"


def test_openssl_client_hello_split_into_records() -> None:
    data = _openssl_client_hello("split.example.test")
    handshake = data[5:]
    for cut in (1, 4, 40, 100, len(handshake) - 1):
        assert client_hello_sni(_records(handshake, cut)) == "split.example.test", cut
    assert client_hello_sni(_records(handshake, 10, 20, 30, 200)) == "split.example.test"
    assert client_hello_sni(_records(handshake, 1, 2, 3)) == "split.example.test"  # header cut too
    # The second record missing or cut short: not complete, so no answer.
    two = _records(handshake, 100)
    assert client_hello_sni(two[: 5 + 100]) is None
    assert client_hello_sni(two[:-1]) is None


# --- hand-built edge cases -------------------------------------------------------------------------


def test_hand_built_hello() -> None:
    assert client_hello_sni(_hello((0, b"Hand.Built.Example"))) == "hand.built.example"


def test_sni_after_other_extensions() -> None:
    data = _hello((0, b"late.example"), other_exts=[(10, b"\x00\x02\x00\x1d"), (13, b"\x00\x02\x04\x03")])
    assert client_hello_sni(data) == "late.example"


def test_first_host_name_entry_is_used() -> None:
    assert client_hello_sni(_hello((7, b"other-type"), (0, b"first.example"), (0, b"second"))) == (
        "first.example"
    )
    assert client_hello_sni(_hello((7, b"only-other-type"))) is None


def test_empty_host_name_is_none() -> None:
    assert client_hello_sni(_hello((0, b""))) is None


def test_non_ascii_host_name_is_escaped() -> None:
    assert client_hello_sni(_hello((0, b"B\xc3\xbccher.Example"))) == "b\\xc3\\xbccher.example"


def test_no_extensions_at_all() -> None:
    data = _records(_handshake(_hello_body(None)))
    assert is_client_hello(data)
    assert client_hello_sni(data) is None


def test_empty_session_id_and_tls13_record_version() -> None:
    hs = _handshake(_hello_body([(0, _sni_ext((0, b"v.example")))], session_id=b""))
    assert client_hello_sni(_records(hs, version=b"\x03\x03")) == "v.example"


@pytest.mark.parametrize(
    "ext_data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="one-byte"),
        pytest.param(_u16(100) + b"\x00\x00\x03abc", id="list-too-long"),
        pytest.param(_u16(6) + b"\x00\x00\x09abc", id="name-too-long"),
        pytest.param(_u16(2) + b"\x00\x00", id="entry-cut"),
    ],
)
def test_bad_server_name_extension(ext_data: bytes) -> None:
    data = _records(_handshake(_hello_body([(0, ext_data)])))
    assert client_hello_sni(data) is None


def test_extension_length_overflowing_block() -> None:
    body = _hello_body([(0, _sni_ext((0, b"a.example")))])
    # Grow the server_name extension's own length past the extensions block.
    idx = body.rindex(b"\x00\x00" + _u16(len(_sni_ext((0, b"a.example")))))
    bad = body[: idx + 2] + _u16(0xFFF0) + body[idx + 4 :]
    assert client_hello_sni(_records(_handshake(bad))) is None


@pytest.mark.parametrize(
    "field_offset",
    [
        pytest.param(34, id="session-id-length"),
        pytest.param(34 + 1 + 32, id="cipher-suites-length"),
        pytest.param(34 + 1 + 32 + 2 + 4, id="compression-length"),
        pytest.param(34 + 1 + 32 + 2 + 4 + 2, id="extensions-length"),
    ],
)
def test_inflated_length_fields(field_offset: int) -> None:
    body = bytearray(_hello_body([(0, _sni_ext((0, b"a.example")))]))
    body[field_offset] = 0xFF
    assert client_hello_sni(_records(_handshake(bytes(body)))) is None


def test_handshake_length_beyond_record_without_continuation() -> None:
    hs = _handshake(_hello_body([(0, _sni_ext((0, b"a.example")))]))
    data = _records(hs)
    assert client_hello_sni(data[:-3]) is None
    # Another content type after the first fragment does not continue the message.
    part = _records(hs, 50)
    assert client_hello_sni(part[: 5 + 50] + b"\x17" + part[5 + 50 + 1 :]) is None


def test_zero_length_continuation_record_is_rejected() -> None:
    hs = _handshake(_hello_body([(0, _sni_ext((0, b"a.example")))]))
    data = _records(hs, 50)
    empty = b"\x16\x03\x01\x00\x00"
    assert client_hello_sni(data[: 5 + 50] + empty + data[5 + 50 :]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x16",
        b"\x16\x03\x01\x00",
        b"\x16\x03\x01\x00\x00\x01",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x17\x03\x03\x00\x10" + b"\x00" * 16,  # application data
        b"\x16\x03\x03\x00\x04\x02\x00\x00\x00",  # ServerHello
        b"\x16\x02\x00\x00\x04\x01\x00\x00\x00",  # not 3.x
        b"\x16\x03\x05\x00\x04\x01\x00\x00\x00",  # 3.5 is not a TLS version
        b"\x80\x2e\x01\x00\x02\x00\x15",  # SSLv2-style ClientHello
    ],
)
def test_not_a_client_hello(data: bytes) -> None:
    assert client_hello_sni(data) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x16\x03\x01\x02\x00\x01", True),
        (b"\x16\x03\x04\x00\x04\x01", True),
        (b"\x16\x03\x01\x02\x00", False),
        (b"\x16\x03\x01\x02\x00\x02", False),
        (b"\x17\x03\x01\x02\x00\x01", False),
        (b"GET / ", False),
    ],
)
def test_is_client_hello(data: bytes, expected: bool) -> None:
    assert is_client_hello(data) is expected


# --- robustness ------------------------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    sni = client_hello_sni(data)
    assert sni is None or isinstance(sni, str)
    assert isinstance(is_client_hello(data), bool)


@given(st.binary(max_size=400), st.integers(0, 0xFFFF))
def test_random_bodies_behind_a_record_header_never_raise(body: bytes, record_len: int) -> None:
    for data in (
        b"\x16\x03\x01" + _u16(record_len) + b"\x01" + body,
        _records(b"\x01" + len(body).to_bytes(3, "big") + body),
    ):
        sni = client_hello_sni(data)
        assert sni is None or (isinstance(sni, str) and sni == sni.lower() and sni.isascii())


@given(st.binary(min_size=1, max_size=60), st.integers(0, 4))
def test_any_host_name_comes_back(name: bytes, cuts: int) -> None:
    hs = _handshake(_hello_body([(0, _sni_ext((0, name)))]))
    step = max(len(hs) // (cuts + 1), 1)
    data = _records(hs, *range(step, len(hs), step)) if cuts else _records(hs)
    assert client_hello_sni(data) == name.decode("ascii", "backslashreplace").lower()


# === full handshake decoding ========================================================================

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def reference_ja3(body: bytes) -> str:
    """JA3 of a ClientHello body per the Salesforce spec, written independently of the module."""
    grease = set(GREASE)
    (version,) = struct.unpack_from("!H", body, 0)
    off = 34
    off += 1 + body[off]
    (n,) = struct.unpack_from("!H", body, off)
    ciphers = [c for c in struct.unpack_from(f"!{n // 2}H", body, off + 2) if c not in grease]
    off += 2 + n
    off += 1 + body[off]
    exts: list[int] = []
    curves: list[int] = []
    formats: list[int] = []
    if off + 2 <= len(body):
        (total,) = struct.unpack_from("!H", body, off)
        off += 2
        end = off + total
        while off < end:
            kind, size = struct.unpack_from("!HH", body, off)
            data = body[off + 4 : off + 4 + size]
            off += 4 + size
            if kind not in grease:
                exts.append(kind)
            if kind == 10:
                (m,) = struct.unpack_from("!H", data)
                curves = [c for c in struct.unpack_from(f"!{m // 2}H", data, 2) if c not in grease]
            elif kind == 11:
                formats = list(data[1 : 1 + data[0]])
    fields = [[version], ciphers, exts, curves, formats]
    return ",".join("-".join(str(v) for v in field) for field in fields)


def reference_ja3s(body: bytes) -> str:
    """JA3S of a (non-draft) ServerHello body, written independently of the module."""
    (version,) = struct.unpack_from("!H", body, 0)
    off = 34
    off += 1 + body[off]
    (cipher,) = struct.unpack_from("!H", body, off)
    off += 3
    exts: list[int] = []
    if off + 2 <= len(body):
        (total,) = struct.unpack_from("!H", body, off)
        off += 2
        end = off + total
        while off < end:
            kind, size = struct.unpack_from("!HH", body, off)
            exts.append(kind)
            off += 4 + size
    # Suricata drops a GREASE cipher too (the Salesforce script never meets one).
    ciphers = "" if cipher in GREASE else str(cipher)
    return f"{version},{ciphers},{'-'.join(str(e) for e in exts if e not in GREASE)}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _ext(kind: int, data: bytes = b"") -> tuple[int, bytes]:
    return (kind, data)


def _curves(*values: int) -> tuple[int, bytes]:
    return (10, _u16(2 * len(values)) + b"".join(_u16(v) for v in values))


def _formats(*values: int) -> tuple[int, bytes]:
    return (11, bytes([len(values), *values]))


def _versions(*values: int) -> tuple[int, bytes]:
    return (43, bytes([2 * len(values)]) + b"".join(_u16(v) for v in values))


def _alpn(*names: bytes) -> tuple[int, bytes]:
    block = b"".join(bytes([len(n)]) + n for n in names)
    return (16, _u16(len(block)) + block)


def _sni(name: bytes) -> tuple[int, bytes]:
    return (0, _sni_ext((0, name)))


def _client_body(
    ciphers: list[int],
    extensions: list[tuple[int, bytes]] | None,
    version: int = 0x0303,
    session_id: bytes = b"\x22" * 32,
) -> bytes:
    body = _u16(version) + b"\x5a" * 32 + bytes([len(session_id)]) + session_id
    body += _u16(2 * len(ciphers)) + b"".join(_u16(c) for c in ciphers) + b"\x01\x00"
    if extensions is not None:
        exts = b"".join(_u16(k) + _u16(len(d)) + d for k, d in extensions)
        body += _u16(len(exts)) + exts
    return body


def _server_body(
    cipher: int, extensions: list[tuple[int, bytes]] | None, version: int = 0x0303, session_id: bytes = b""
) -> bytes:
    body = _u16(version) + b"\x33" * 32 + bytes([len(session_id)]) + session_id + _u16(cipher) + b"\x00"
    if extensions is not None:
        exts = b"".join(_u16(k) + _u16(len(d)) + d for k, d in extensions)
        body += _u16(len(exts)) + exts
    return body


def _client(body: bytes) -> ClientHello:
    hello = parse_client_hello(body)
    assert hello is not None
    return hello


def _server(body: bytes) -> ServerHello:
    hello = parse_server_hello(body)
    assert hello is not None
    return hello


@pytest.mark.parametrize("hostname", ["ja3.example", None])
@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED])
def test_openssl_ja3_matches_reference(hostname: str | None, maximum: ssl.TLSVersion) -> None:
    data = _openssl_client_hello(hostname, maximum)
    body = data[9 : 9 + int.from_bytes(data[6:9], "big")]
    hello = _client(body)
    assert hello.ja3 == reference_ja3(body)
    assert hello.ja3_hash == _md5(reference_ja3(body))
    assert hello.sni == (hostname.encode() if hostname else None)
    assert not hello.malformed
    assert parse_client_hello_payload(data) == hello


# Published JA3 strings with their MD5s: the Salesforce README example and a browserleaks.com
# capture of Chrome. GREASE is sprinkled in; it must not change the fingerprint.
KNOWN_JA3 = [
    pytest.param(
        "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0",
        "ada70206e40642a3e4461f35503241d5",
        id="salesforce-readme",
    ),
    pytest.param(
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0",
        "98487aa16281980e7d1120d399efb6a4",
        id="chrome-browserleaks",
    ),
]


@pytest.mark.parametrize(("ja3", "md5"), KNOWN_JA3)
def test_known_ja3_vectors(ja3: str, md5: str) -> None:
    version, ciphers, exts, curves, formats = (
        [int(v) for v in field.split("-")] if field else [] for field in ja3.split(",")
    )
    data = {0: _sni(b"grease.example")[1], 10: _curves(GREASE[3], *curves)[1], 11: _formats(*formats)[1]}
    data[43] = _versions(GREASE[5], 0x0304, 0x0303)[1]
    extensions = [(GREASE[1], b"")] + [(e, data.get(e, b"")) for e in exts] + [(GREASE[2], b"\x00")]
    body = _client_body([GREASE[0], *ciphers, GREASE[4]], extensions, version=version[0])
    hello = _client(body)
    assert hello.ja3 == ja3
    assert hello.ja3_hash == md5
    assert GREASE[0] in hello.cipher_suites and GREASE[1] in hello.extensions  # kept, not fingerprinted


CLIENT_CASES = [
    pytest.param(_client_body([0x1301, 0x1302], None), "771,4865-4866,,,", False, id="no-extensions"),
    pytest.param(_client_body([0x1301], []), "771,4865,,,", False, id="empty-extensions"),
    pytest.param(
        _client_body([0x1301], [_curves(29, 23), (0, b"\x00\x04\x01\x00\x01a"), _formats(0)]),
        "771,4865,10,29-23,",
        True,
        id="sni-not-host-name-stops-walk",
    ),
    pytest.param(
        _client_body([0x1301], [_curves(29), (0, _u16(3) + b"\x00" + _u16(0)), _formats(0)]),
        "771,4865,10,29,",
        True,
        id="empty-sni-stops-walk",
    ),
    pytest.param(
        _client_body([0x1301], [_sni(b"a" * 256), _formats(0)]), "771,4865,,,", True, id="sni-over-255"
    ),
    pytest.param(
        _client_body([0x1301], [_formats(0), (43, b"\x01\x03"), _curves(29)]),
        "771,4865,11,,0",
        True,
        id="short-supported-versions-stops-walk",
    ),
    pytest.param(_client_body([0x1301], [(10, _u16(8) + _u16(29))]), None, True, id="curves-past-extension"),
    pytest.param(_client_body([0x1301], [(11, b"\x05\x00")]), None, True, id="formats-past-extension"),
    pytest.param(_client_body([0x1301], [_sni(b"x.example")])[:-2], None, True, id="extension-past-block"),
    pytest.param(
        _client_body([0x1301], [_sni(b"x.example")]) + b"\x00",
        reference_ja3(_client_body([0x1301], [_sni(b"x.example")])),
        False,
        id="trailing-byte-ignored",
    ),
    pytest.param(
        _client_body([0x1301], [_sni(b"x.example")]).replace(b"\x00\x02\x13\x01", b"\x00\x03\x13\x01\x01"),
        None,
        True,
        id="odd-cipher-list",
    ),
    pytest.param(_client_body([0x1301], None)[:-3], None, True, id="cut-in-ciphers"),
]


@pytest.mark.parametrize(("body", "ja3", "malformed"), CLIENT_CASES)
def test_client_hello_ja3_edge_cases(body: bytes, ja3: str | None, malformed: bool) -> None:
    hello = _client(body)
    assert hello.ja3 == ja3
    assert hello.ja3_hash == (None if ja3 is None else _md5(ja3))
    assert hello.malformed is malformed
    if ja3 is not None and not malformed:
        assert ja3 == reference_ja3(body)


SNI_CASES = [
    pytest.param([_sni(b"WWW.Example.TEST")], b"WWW.Example.TEST", id="case-kept"),
    pytest.param([_sni(b"first.example"), _sni(b"second.example")], b"first.example", id="second-ignored"),
    pytest.param([(0, _u16(999) + b"\x00" + _u16(5) + b"a.exa")], b"a.exa", id="list-length-unchecked"),
    pytest.param([(0, b"")], None, id="empty-extension"),
    pytest.param([_sni(b"a\x00b")], b"a\x00b", id="nul-kept"),
    pytest.param([_sni(b"x" * 255)], b"x" * 255, id="255"),
]


@pytest.mark.parametrize(("extensions", "sni"), SNI_CASES)
def test_sni(extensions: list[tuple[int, bytes]], sni: bytes | None) -> None:
    assert _client(_client_body([0x1301], extensions)).sni == sni


VERSION_CASES = [
    pytest.param(0x0303, [], 0x0303, id="tls12"),
    pytest.param(0x0301, [], 0x0301, id="tls10"),
    pytest.param(0x0304, [], 0x7F01, id="legacy-1.3-is-pre-draft16"),
    pytest.param(0x7F0E, [], 0x7F01, id="early-draft"),
    pytest.param(0x7F12, [], 0x7F12, id="draft18"),
    pytest.param(0x0303, [_versions(0x0304, 0x0303)], 0x0304, id="supported-versions"),
    pytest.param(0x0303, [_versions(GREASE[7], 0x1234, 0x0304)], 0x0304, id="grease-and-noise-skipped"),
    pytest.param(0x0303, [_versions(GREASE[7])], 0x0303, id="nothing-known"),
]


@pytest.mark.parametrize(("legacy", "extensions", "version"), VERSION_CASES)
def test_client_version(legacy: int, extensions: list[tuple[int, bytes]], version: int) -> None:
    hello = _client(_client_body([0x1301], extensions, version=legacy))
    assert (hello.legacy_version, hello.version) == (legacy, version)
    assert tls_version(TlsSnapshot(client_hello=hello), to_server=True) == version


def test_client_hello_fields() -> None:
    exts = [
        _sni(b"f.example"),
        _curves(GREASE[0], 29, 23),
        _formats(0, 1),
        _versions(0x0304),
        _alpn(b"h2", b"http/1.1"),
    ]
    hello = _client(_client_body([0x1301, GREASE[2]], exts, session_id=b"\x01\x02"))
    assert hello.random == b"\x5a" * 32
    assert hello.session_id == b"\x01\x02"
    assert hello.cipher_suites == (0x1301, GREASE[2])
    assert hello.extensions == (0, 10, 11, 43, 16)
    assert hello.elliptic_curves == (GREASE[0], 29, 23)
    assert hello.ec_point_formats == (0, 1)
    assert hello.supported_versions == (0x0304,)
    assert hello.alpn == (b"h2", b"http/1.1")
    assert hello.ja3 == "771,4865,0-10-11-43-16,29-23,0-1"


@pytest.mark.parametrize("body", [b"", b"\x03\x03", b"\x03\x03" + b"\x00" * 31])
def test_client_hello_without_random_is_none(body: bytes) -> None:
    assert parse_client_hello(body) is None
    assert parse_server_hello(body) is None


SERVER_CASES = [
    pytest.param(
        _server_body(0xC02F, [(0xFF01, b"\x00"), (11, b"\x01\x00"), (35, b"")]),
        0x0303,
        None,
        "771,49199,65281-11-35",
        id="tls12",
    ),
    pytest.param(
        _server_body(
            0x1301, [(43, _u16(0x0304)), (51, b"\x00\x1d" + _u16(32) + b"k" * 32)], session_id=b"s" * 32
        ),
        0x0304,
        0x0304,
        "771,4865,43-51",
        id="tls13",
    ),
    pytest.param(_server_body(0xC02F, None), 0x0303, None, "771,49199,", id="no-extensions"),
    pytest.param(_server_body(GREASE[3], [(GREASE[1], b"")]), 0x0303, None, "771,,", id="grease"),
    pytest.param(
        _u16(0x7F12) + b"\x33" * 32 + _u16(0x1301) + _u16(6) + _u16(40) + _u16(2) + b"\x00\x17",
        0x7F12,
        None,
        "32530,4865,40",
        id="draft18-no-session-id",
    ),
    pytest.param(
        _server_body(0x1301, [(43, b"\x03")]), 0x0303, None, "771,4865,", id="short-selected-version"
    ),
    pytest.param(_server_body(0x1301, [(10, _u16(9))]), 0x0303, None, None, id="bad-curves"),
]


@pytest.mark.parametrize(("body", "version", "selected", "ja3s"), SERVER_CASES)
def test_server_hello(body: bytes, version: int, selected: int | None, ja3s: str | None) -> None:
    hello = _server(body)
    assert (hello.version, hello.selected_version, hello.ja3s) == (version, selected, ja3s)
    assert hello.ja3s_hash == (None if ja3s is None else _md5(ja3s))
    if ja3s is not None and not hello.malformed and hello.legacy_version == 0x0303:
        assert ja3s == reference_ja3s(body)
    assert tls_version(TlsSnapshot(server_hello=hello), to_server=False) == version


@pytest.mark.parametrize(
    ("version", "wanted", "raw", "expected"),
    [
        (0x0304, 0x0304, False, True),
        (0x7F12, 0x0304, False, True),
        (0x7F01, 0x0304, False, True),
        (0x7F12, 0x0304, True, False),
        (0x7F12, 0x7F12, True, True),
        (0x0303, 0x0304, False, False),
        (None, 0x0303, False, False),
    ],
)
def test_version_matches(version: int | None, wanted: int, raw: bool, expected: bool) -> None:
    assert version_matches(version, wanted, raw) is expected


def _sslv2(
    version: int = 0x0301,
    specs: bytes = b"\x01\x00\x80\x00\x00\x2f",
    sid: bytes = b"",
    challenge: bytes = b"c" * 16,
) -> bytes:
    body = (
        b"\x01"
        + _u16(version)
        + _u16(len(specs))
        + _u16(len(sid))
        + _u16(len(challenge))
        + specs
        + sid
        + challenge
    )
    return _u16(0x8000 | len(body)) + body


def test_sslv2_client_hello() -> None:
    hello = parse_sslv2_client_hello(_sslv2())
    assert hello is not None
    assert (hello.sslv2, hello.version, hello.cipher_suites) == (True, 0x0301, (0x010080, 0x00002F))
    assert (hello.ja3, hello.sni, hello.extensions, hello.random) == (None, None, (), b"c" * 16)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(_sslv2()[:-1], id="short"),
        pytest.param(b"\x00" + _sslv2()[1:], id="no-high-bit"),
        pytest.param(_sslv2()[:2] + b"\x04" + _sslv2()[3:], id="server-hello"),
        pytest.param(_sslv2(specs=b"\x01\x00"), id="spec-not-multiple-of-3"),
        pytest.param(_sslv2(challenge=b"c" * 8), id="short-challenge"),
    ],
)
def test_bad_sslv2_client_hello(record: bytes) -> None:
    assert parse_sslv2_client_hello(record) is None


# --- certificate messages and buffers ---------------------------------------------------------------


def _cert_message(*certs: bytes) -> bytes:
    chain = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    return len(chain).to_bytes(3, "big") + chain


def test_certificate_message_fields() -> None:
    from tests.decode.test_x509 import SAN_OID, build_cert, extension, tlv

    leaf = build_cert(
        serial=b"\x00\x8f\x01", extensions=[extension(SAN_OID, tlv(0x30, tlv(0x82, b"a.example")))]
    )
    ca = build_cert(serial=b"\x02")
    info = parse_certificate_message(_cert_message(leaf, ca))
    assert info is not None
    assert info.chain == (leaf, ca)
    assert (info.subject, info.issuer, info.serial) == ("CN=subject.example", "CN=issuer.example", "00:8F:01")
    assert info.fingerprint == ":".join(f"{b:02x}" for b in hashlib.sha1(leaf).digest())
    assert (info.not_before, info.not_after) == (1704067200, 1735689600)
    assert info.subject_alt_names == ("a.example",)
    assert not info.malformed


def test_certificate_message_edge_cases() -> None:
    from tests.decode.test_x509 import build_cert

    good = build_cert()
    # An undecodable first certificate: chain kept, no fields (no fingerprint either).
    info = parse_certificate_message(_cert_message(b"\x30\x00", good))
    assert info is not None and info.chain == (b"\x30\x00", good) and info.subject is None
    assert info.fingerprint is None
    # A certificate length past the chain: earlier ones kept.
    cut = _cert_message(good) + b"\xff\xff\xff"
    info = parse_certificate_message((len(cut) - 3).to_bytes(3, "big") + cut[3:])
    assert info is not None and info.chain == (good,) and info.malformed
    assert parse_certificate_message(b"\x00\x00\x10" + b"\x00" * 4) is None
    assert parse_certificate_message(b"\x00\x00") is None
    info = parse_certificate_message(_cert_message())
    assert info is not None and info.chain == ()
    info = parse_certificate_message(_cert_message(*[good] * (MAX_CHAIN + 3)))
    assert info is not None and len(info.chain) == MAX_CHAIN


def _snapshot() -> TlsSnapshot:
    from tests.decode.test_x509 import SAN_OID, build_cert, extension, name, tlv

    client = _client(_client_body([0x1301], [_sni(b"Buf.Example"), _curves(29), _formats(0)]))
    server = _server(_server_body(0xC02F, [(0xFF01, b"\x00")]))
    sans = tlv(0x30, tlv(0x82, b"a.example") + tlv(0x87, b"\x0a\x00\x00\x01"))
    leaf = build_cert(serial=b"\x5c\x19", extensions=[extension(SAN_OID, sans)])
    client_leaf = build_cert(subject=name([("2.5.4.3", 0x0C, b"client")]))
    return TlsSnapshot(
        client_hello=client,
        server_hello=server,
        certificate=parse_certificate_message(_cert_message(leaf, b"\x30\x00")),
        client_certificate=parse_certificate_message(_cert_message(client_leaf)),
    )


def test_tls_buffers() -> None:
    state = _snapshot()
    assert state.certificate is not None
    expected: dict[str, bytes | list[bytes]] = {
        "tls.sni": b"Buf.Example",
        "ja3.string": b"771,4865,0-10-11,29,0",
        "ja3.hash": _md5("771,4865,0-10-11,29,0").encode(),
        "ja3s.string": b"771,49199,65281",
        "ja3s.hash": _md5("771,49199,65281").encode(),
        "tls.cert_subject": b"CN=subject.example",
        "tls.cert_issuer": b"CN=issuer.example",
        "tls.cert_serial": b"5C:19",
        "tls.cert_fingerprint": format_fingerprint(state.certificate.chain[0]).encode(),
        "tls.certs": [state.certificate.chain[0], b"\x30\x00"],
        "tls.subjectaltname": [b"a.example", b"[10, 0, 0, 1]"],
    }
    assert set(expected) == TLS_BUFFERS
    for buffer_name, value in expected.items():
        assert tls_buffer(state, buffer_name) == value, buffer_name
    for alias, canonical in TLS_BUFFER_ALIASES.items():
        assert tls_buffer(state, alias) == expected[canonical], alias
    assert tls_buffer(state, "tls.cert_subject", to_server=True) == b"CN=client"
    assert tls_buffer(state, "tls.subjectaltname", to_server=True) is None  # no SAN: no instance
    assert tls_buffer(state, "tls.sni", to_server=True) == b"Buf.Example"


def test_tls_buffers_absent() -> None:
    empty = TlsSnapshot()
    for buffer_name in TLS_BUFFERS:
        assert tls_buffer(empty, buffer_name) is None, buffer_name
    assert tls_version(empty, True) is None and tls_version(empty, False) is None
    undecodable = TlsSnapshot(certificate=parse_certificate_message(_cert_message(b"\x30\x00")))
    assert tls_buffer(undecodable, "tls.certs") == [b"\x30\x00"]
    assert tls_buffer(undecodable, "tls.cert_subject") is None
    with pytest.raises(ValueError, match="not a TLS buffer"):
        tls_buffer(empty, "http.uri")


@pytest.mark.parametrize(
    ("value", "expected"), [(0x0A0A, True), (0xFAFA, True), (0x0A1A, False), (0x1301, False), (0x0B0B, False)]
)
def test_is_grease(value: int, expected: bool) -> None:
    assert is_grease(value) is expected


@given(st.binary(max_size=300))
def test_hello_parsers_never_raise(body: bytes) -> None:
    for parse in (parse_client_hello, parse_server_hello):
        hello = parse(body)
        assert hello is None or isinstance(hello, ClientHello | ServerHello)
    assert parse_sslv2_client_hello(body) is None or isinstance(parse_sslv2_client_hello(body), ClientHello)
    info = parse_certificate_message(body)
    assert info is None or len(info.chain) <= MAX_CHAIN


@given(
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=8),
    st.lists(st.integers(0, 0xFFFF), max_size=8),
)
def test_structured_hellos_never_raise(extensions: list[tuple[int, bytes]], ciphers: list[int]) -> None:
    hello = _client(_client_body(ciphers, extensions))
    assert hello.ja3 is None or hello.ja3_hash == _md5(hello.ja3)
    server = _server(_server_body(ciphers[0] if ciphers else 0, extensions))
    assert server.ja3s is None or server.ja3s_hash == _md5(server.ja3s)
