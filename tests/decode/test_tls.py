"""TLS ClientHello SNI extraction: real ClientHellos from OpenSSL and hand-built edge cases."""

from __future__ import annotations

import itertools
import ssl
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inline_ips.decode.tls import client_hello_sni, is_client_hello


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
