"""TLS handshake decoding for the ``tls.*``, ``ja3.*`` and ``ja3s.*`` rule buffers.

Does: parse the cleartext handshake messages Suricata's TLS rule keywords
look at, given one complete message body each (reassembly across records and
TCP segments is :mod:`inline_ips.decode.tls_stream`'s job): the ClientHello
(legacy version, random, session id, cipher suites, extensions, SNI,
supported_versions, elliptic curves, point formats, ALPN) with its JA3 string
and MD5; the SSLv2-compatible ClientHello (no extensions, so no JA3); the
ServerHello (version including the TLS 1.3 supported_versions answer, cipher,
extensions) with its JA3S; the Certificate message of TLS <= 1.2 (the chain
as DER blobs, and for its first certificate the subject, issuer, serial,
SHA-1 fingerprint, validity and subjectAltName in Suricata's formats, through
:mod:`inline_ips.decode.x509`). :func:`tls_buffer` maps a rule buffer name to
its bytes so the detection engine needs no per-buffer code.

Also, for the per-packet path (:func:`is_client_hello`,
:func:`client_hello_sni`): recognise a TCP payload that starts with a TLS
handshake record (content type 22, record version 3.x) carrying a
ClientHello, and extract the server_name extension's host_name (the first
host_name entry), decoded as ASCII with other bytes written as ``\\xNN``
(``backslashreplace``) and lower-cased, since host names are
case-insensitive; an empty host_name gives None. A ClientHello fragmented
over several consecutive handshake records within the payload is put back
together (a known evasion; TLS allows it).

Does not: decrypt anything (TLS 1.3 certificates, encrypted extensions and
Encrypted Client Hello inner hellos stay unseen; the outer ClientHello's SNI
is the public name); parse QUIC (its ClientHello is encrypted in Initial
packets), DTLS, or handshake messages other than the three above; verify
certificates. Every length field is checked against its enclosing structure;
nothing here raises on any input or uses Scapy (hot path).

Semantics, following Suricata 7/8 (``src/app-layer-ssl.c``,
``src/util-ja3.c``, ``rust/src/x509/mod.rs``) and the Salesforce JA3 spec:

* JA3 is ``version,ciphers,extensions,curves,point_formats``: the
  ClientHello's legacy_version, then the lists in wire order as decimals
  joined by ``-``, GREASE values (RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa)
  removed from ciphers, extension types and curves; an absent list is an
  empty field (``771,4865,,,``). JA3S is ``version,cipher,extensions`` from
  the ServerHello. The hashes are lower-case MD5 hex.
* Suricata stops reading the extension block at an SNI extension whose first
  entry is not a host_name of 1..255 octets, or at a supported_versions
  extension shorter than one version; the JA3 it then computes has only the
  extensions (and curves, point formats) read before that one. This module
  does the same and sets ``malformed``. Any other structural fault (a length
  past its block, an odd cipher list) leaves JA3/JA3S unset.
* ``tls.sni`` is the first server_name entry's octets as sent (not
  lower-cased; :func:`client_hello_sni` keeps its own lower-cased form for the
  per-packet path); a second server_name extension is ignored.
* ``version`` is Suricata's per-direction version for ``tls.version``: the
  first supported_versions entry that is a known SSL/TLS version (GREASE and
  noise skipped), else the legacy version, where a legacy 0x0304 or a
  0x7f01..0x7f0f draft number reads as 0x7f01 (Suricata's "pre draft 16");
  for the ServerHello the supported_versions answer, else the same legacy
  rule. :func:`version_matches` folds 0x7fXX drafts into 1.3 as
  ``tls.version:1.3`` does (not for raw hex values).
* Certificate fields come from the first certificate of the chain only;
  ``serial`` is the INTEGER's content octets (a leading 00 sign octet
  included) as upper-case hex joined by ``:``; ``fingerprint`` is the SHA-1
  of the DER as lower-case hex joined by ``:``. A first certificate that
  cannot be decoded gives no fields (fingerprint included) but stays in the
  chain (``tls.certs``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final, Protocol

from inline_ips.decode import x509

CONTENT_HANDSHAKE: Final = 22
HANDSHAKE_CLIENT_HELLO: Final = 1
EXT_SERVER_NAME: Final = 0
NAME_TYPE_HOST: Final = 0

_RECORD_HEADER_LEN: Final = 5
_HANDSHAKE_HEADER_LEN: Final = 4
# legacy_version (2) + random (32): fixed ahead of the variable-length fields.
_HELLO_FIXED_LEN: Final = 34
# TLS 1.3 is still 3.4 on the wire at most; a higher minor byte is not TLS.
_MAX_MINOR: Final = 4


def is_client_hello(payload: bytes) -> bool:
    """Cheap check: a handshake record (3.x) whose first message is a ClientHello."""
    return (
        len(payload) > _RECORD_HEADER_LEN
        and payload[0] == CONTENT_HANDSHAKE
        and payload[1] == 3
        and payload[2] <= _MAX_MINOR
        and payload[5] == HANDSHAKE_CLIENT_HELLO
    )


def client_hello_sni(payload: bytes) -> str | None:
    """Return the lower-cased SNI host name of the ClientHello starting ``payload``.

    None when ``payload`` does not start with a ClientHello, when the
    ClientHello is not complete within ``payload``, when any length is
    inconsistent, or when there is no server_name extension with a non-empty
    host_name entry.
    """
    if not is_client_hello(payload):
        return None
    body = _client_hello_body(payload)
    if body is None:
        return None
    ext = _find_extension(body, EXT_SERVER_NAME)
    if ext is None:
        return None
    return _host_name(ext)


def _client_hello_body(payload: bytes) -> bytes | None:
    """The ClientHello message body, joined from as many records as it spans."""
    n = len(payload)
    rec_end = _RECORD_HEADER_LEN + ((payload[3] << 8) | payload[4])
    if rec_end <= n and rec_end >= _RECORD_HEADER_LEN + _HANDSHAKE_HEADER_LEN:
        hs_end = (
            _RECORD_HEADER_LEN + _HANDSHAKE_HEADER_LEN + ((payload[6] << 16) | (payload[7] << 8) | payload[8])
        )
        if hs_end <= rec_end:
            # The usual case: the whole message in the first record.
            return payload[_RECORD_HEADER_LEN + _HANDSHAKE_HEADER_LEN : hs_end]

    # The message (even its 4-byte header) may be cut at any byte into
    # consecutive handshake records; put the fragments back together.
    parts: list[bytes] = []
    have = 0
    need = -1
    pos = 0
    while need < 0 or have < need:
        if pos + _RECORD_HEADER_LEN > n:
            return None
        if payload[pos] != CONTENT_HANDSHAKE or payload[pos + 1] != 3:
            return None
        frag_end = pos + _RECORD_HEADER_LEN + ((payload[pos + 3] << 8) | payload[pos + 4])
        # Zero-length handshake fragments are forbidden (RFC 8446 5.1).
        if frag_end == pos + _RECORD_HEADER_LEN or frag_end > n:
            return None
        parts.append(payload[pos + _RECORD_HEADER_LEN : frag_end])
        have += frag_end - pos - _RECORD_HEADER_LEN
        pos = frag_end
        if need < 0 and have >= _HANDSHAKE_HEADER_LEN:
            head = b"".join(parts)
            need = _HANDSHAKE_HEADER_LEN + int.from_bytes(head[1:_HANDSHAKE_HEADER_LEN], "big")
    return b"".join(parts)[_HANDSHAKE_HEADER_LEN:need]


def _find_extension(body: bytes, wanted: int) -> bytes | None:
    """The data of extension ``wanted`` in a ClientHello body, or None."""
    n = len(body)
    pos = _HELLO_FIXED_LEN
    if pos + 1 > n:
        return None
    pos += 1 + body[pos]  # legacy_session_id
    if pos + 2 > n:
        return None
    pos += 2 + ((body[pos] << 8) | body[pos + 1])  # cipher_suites
    if pos + 1 > n:
        return None
    pos += 1 + body[pos]  # legacy_compression_methods
    if pos + 2 > n:
        # Also the pre-extensions (SSL 3.0) layout: nothing after compression.
        return None
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
    if end > n:
        return None
    pos += 2
    while pos + 4 <= end:
        ext_type = (body[pos] << 8) | body[pos + 1]
        ext_end = pos + 4 + ((body[pos + 2] << 8) | body[pos + 3])
        if ext_end > end:
            return None
        if ext_type == wanted:
            return body[pos + 4 : ext_end]
        pos = ext_end
    return None


def _host_name(ext: bytes) -> str | None:
    """The first host_name entry of a server_name extension's data."""
    n = len(ext)
    if n < 2:
        return None
    end = 2 + ((ext[0] << 8) | ext[1])
    if end > n:
        return None
    pos = 2
    while pos + 3 <= end:
        name_type = ext[pos]
        name_end = pos + 3 + ((ext[pos + 1] << 8) | ext[pos + 2])
        if name_end > end:
            return None
        if name_type == NAME_TYPE_HOST:
            name = ext[pos + 3 : name_end]
            if not name:
                return None
            return name.decode("ascii", "backslashreplace").lower()
        pos = name_end
    return None


# --- full handshake decoding ------------------------------------------------------------------------

HANDSHAKE_SERVER_HELLO: Final = 2
HANDSHAKE_CERTIFICATE: Final = 11
EXT_ELLIPTIC_CURVES: Final = 10
EXT_EC_POINT_FORMATS: Final = 11
EXT_ALPN: Final = 16
EXT_SUPPORTED_VERSIONS: Final = 43

TLS_VERSION_13: Final = 0x0304
TLS_VERSION_13_PRE_DRAFT16: Final = 0x7F01
# Suricata's TLSVersionValid(): what a supported_versions entry must be to count.
KNOWN_VERSIONS: Final = frozenset(
    {0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x7F01, *range(0x7F10, 0x7F1D)}
    | {0xFB14, 0xFB15, 0xFB16, 0xFB17, 0xFB1A}
)

MAX_CHAIN: Final = 64  # certificates kept per Certificate message
MAX_LIST: Final = 4096  # values kept per list field (a 64 KiB hello has at most 32 Ki)


def is_grease(value: int) -> bool:
    """True for the RFC 8701 GREASE values (0x0a0a, 0x1a1a, ..., 0xfafa)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A decoded ClientHello; every tuple is in wire order with GREASE values kept."""

    legacy_version: int
    version: int  # Suricata's client version (see the module docstring)
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]  # 24-bit cipher specs for an SSLv2 hello
    extensions: tuple[int, ...]
    supported_versions: tuple[int, ...]
    elliptic_curves: tuple[int, ...]
    ec_point_formats: tuple[int, ...]
    alpn: tuple[bytes, ...]
    sni: bytes | None
    ja3: str | None
    ja3_hash: str | None
    malformed: bool = False
    sslv2: bool = False


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A decoded ServerHello (a HelloRetryRequest is one too)."""

    legacy_version: int
    version: int  # Suricata's server version: supported_versions answer, else legacy
    random: bytes
    session_id: bytes
    cipher_suite: int | None
    compression_method: int | None
    extensions: tuple[int, ...]
    selected_version: int | None  # the supported_versions answer (TLS 1.3), if any
    ja3s: str | None
    ja3s_hash: str | None
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """A Certificate message: the chain, and the first certificate's fields."""

    chain: tuple[bytes, ...]
    subject: str | None = None
    issuer: str | None = None
    serial: str | None = None
    fingerprint: str | None = None
    not_before: int | None = None
    not_after: int | None = None
    subject_alt_names: tuple[str, ...] = ()
    malformed: bool = False


class TlsState(Protocol):
    """What :func:`tls_buffer` reads; :class:`~inline_ips.decode.tls_stream.TlsConnection` has it."""

    @property
    def client_hello(self) -> ClientHello | None: ...
    @property
    def server_hello(self) -> ServerHello | None: ...
    @property
    def certificate(self) -> CertificateInfo | None: ...
    @property
    def client_certificate(self) -> CertificateInfo | None: ...


@dataclass(frozen=True, slots=True)
class TlsSnapshot:
    """A plain :class:`TlsState` (for callers that decode messages themselves)."""

    client_hello: ClientHello | None = None
    server_hello: ServerHello | None = None
    certificate: CertificateInfo | None = None
    client_certificate: CertificateInfo | None = None


class _ShortError(Exception):
    """Internal: a field runs past its enclosing block (never escapes this module)."""


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def u8(self) -> int:
        if self.pos >= self.end:
            raise _ShortError
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        if self.pos + 2 > self.end:
            raise _ShortError
        self.pos += 2
        return (self.data[self.pos - 2] << 8) | self.data[self.pos - 1]

    def u24(self) -> int:
        if self.pos + 3 > self.end:
            raise _ShortError
        self.pos += 3
        return int.from_bytes(self.data[self.pos - 3 : self.pos], "big")

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _ShortError
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def sub(self, n: int) -> _Reader:
        """A reader over the next ``n`` bytes, which this one skips."""
        if self.pos + n > self.end:
            raise _ShortError
        self.pos += n
        return _Reader(self.data, self.pos - n, self.pos)


def _u16_list(raw: bytes) -> tuple[int, ...]:
    n = min(len(raw) // 2, MAX_LIST)
    return struct.unpack_from(f"!{n}H", raw)


def _legacy_version(version: int) -> int:
    """Suricata's reading of a hello's legacy version field (TLS 1.3 draft numbering)."""
    if version == TLS_VERSION_13 or 0x7F01 <= version < 0x7F10:
        return TLS_VERSION_13_PRE_DRAFT16
    return version


def _ja3_list(values: tuple[int, ...] | list[int], drop_grease: bool = True) -> str:
    return "-".join(str(v) for v in values if not (drop_grease and is_grease(v)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


class _Hello:
    """Mutable accumulator for the extension walk shared by both hellos."""

    __slots__ = ("alpn", "curves", "ext_types", "point_formats", "sni", "sv_list", "sv_version", "truncated")

    def __init__(self) -> None:
        self.ext_types: list[int] = []
        self.curves: tuple[int, ...] = ()
        self.point_formats: tuple[int, ...] = ()
        self.sv_list: tuple[int, ...] = ()
        self.sv_version: int | None = None
        self.alpn: tuple[bytes, ...] = ()
        self.sni: bytes | None = None
        self.truncated = False


def _sni_entry(data: bytes) -> bytes | None:
    """Suricata's SNI: the first entry, which must be a host_name of 1..255 octets.

    The list length is skipped unchecked, as Suricata does. None means "stop
    reading extensions" (Suricata's ``goto end``).
    """
    r = _Reader(data)
    try:
        r.u16()
        if r.u8() != NAME_TYPE_HOST:
            return None
        n = r.u16()
        if n == 0 or n > 255:
            return None
        return r.take(n)
    except _ShortError:
        return None


def _walk_extensions(r: _Reader, client: bool, out: _Hello) -> None:
    """Walk the extension block; raises _ShortError on a structural fault (no JA3 then)."""
    if r.left() < 2:
        return  # extensions are optional (RFC 5246 7.4.1.2)
    block = r.sub(r.u16())
    while block.left() > 0:
        ext_type = block.u16()
        data = block.take(block.u16())
        if ext_type == EXT_SERVER_NAME and data:
            name = _sni_entry(data)
            if name is None:
                out.truncated = True
                return
            if out.sni is None:
                out.sni = name
        elif ext_type == EXT_SUPPORTED_VERSIONS and data:
            if client:
                n = data[0]
                if n < 2 or 1 + n > len(data):
                    out.truncated = True
                    return
                if not out.sv_list:
                    out.sv_list = _u16_list(data[1 : 1 + n - n % 2])
                    out.sv_version = next((v for v in out.sv_list if v in KNOWN_VERSIONS), None)
            else:
                if len(data) < 2:
                    out.truncated = True
                    return
                out.sv_version = (data[0] << 8) | data[1]
                out.sv_list = (out.sv_version,)
        elif ext_type == EXT_ELLIPTIC_CURVES and data:
            inner = _Reader(data)
            raw = inner.take(inner.u16())
            if len(raw) % 2:
                raise _ShortError
            if client and not out.curves:
                out.curves = _u16_list(raw)
        elif ext_type == EXT_EC_POINT_FORMATS and data:
            inner = _Reader(data)
            raw = inner.take(inner.u8())
            if client and not out.point_formats:
                out.point_formats = tuple(raw)
        elif ext_type == EXT_ALPN and data and not out.alpn:
            out.alpn = _alpn(data)
        if len(out.ext_types) < MAX_LIST:
            out.ext_types.append(ext_type)


def _alpn(data: bytes) -> tuple[bytes, ...]:
    """ALPN protocol names; a malformed list keeps the names read before the fault."""
    names: list[bytes] = []
    r = _Reader(data)
    try:
        block = r.sub(r.u16())
        while block.left() > 0 and len(names) < 64:
            names.append(block.take(block.u8()))
    except _ShortError:
        pass
    return tuple(names)


def parse_client_hello(body: bytes) -> ClientHello | None:
    """Decode a ClientHello message body (after the 4-byte handshake header).

    None when even the legacy version and random are missing. A fault later
    on gives a ClientHello with the fields read so far, ``malformed`` set and
    no JA3 (see the module docstring for the one Suricata-compatible
    exception).
    """
    r = _Reader(body)
    try:
        legacy = r.u16()
        random = r.take(32)
    except _ShortError:
        return None
    session_id = b""
    ciphers: tuple[int, ...] = ()
    hello = _Hello()
    complete = False
    try:
        session_id = r.take(r.u8())
        raw = r.take(r.u16())
        if len(raw) % 2:
            raise _ShortError
        ciphers = _u16_list(raw)
        r.take(r.u8())  # compression methods
        _walk_extensions(r, True, hello)
        complete = True
    except _ShortError:
        pass
    ja3 = None
    if complete:
        ja3 = ",".join(
            (
                str(legacy),
                _ja3_list(ciphers),
                _ja3_list(hello.ext_types),
                _ja3_list(hello.curves),
                _ja3_list(hello.point_formats, drop_grease=False),
            )
        )
    return ClientHello(
        legacy_version=legacy,
        version=hello.sv_version if hello.sv_version is not None else _legacy_version(legacy),
        random=random,
        session_id=session_id,
        cipher_suites=ciphers,
        extensions=tuple(hello.ext_types),
        supported_versions=hello.sv_list,
        elliptic_curves=hello.curves,
        ec_point_formats=hello.point_formats,
        alpn=hello.alpn,
        sni=hello.sni,
        ja3=ja3,
        ja3_hash=_md5(ja3) if ja3 is not None else None,
        malformed=not complete or hello.truncated,
    )


def parse_server_hello(body: bytes) -> ServerHello | None:
    """Decode a ServerHello message body; None when the version and random are missing.

    TLS 1.3 drafts that announce themselves in legacy_version (0x0304,
    0x7fXX) had no session id or compression fields; Suricata reads them that
    way and so does this.
    """
    r = _Reader(body)
    try:
        legacy = r.u16()
        random = r.take(32)
    except _ShortError:
        return None
    draft = legacy == TLS_VERSION_13 or legacy >> 8 == 0x7F
    session_id = b""
    cipher: int | None = None
    compression: int | None = None
    hello = _Hello()
    complete = False
    try:
        if not draft:
            session_id = r.take(r.u8())
        cipher = r.u16()
        if not draft:
            compression = r.u8()
        _walk_extensions(r, False, hello)
        complete = True
    except _ShortError:
        pass
    ja3s = None
    if complete and cipher is not None:
        ja3s = ",".join((str(legacy), _ja3_list((cipher,)), _ja3_list(hello.ext_types)))
    return ServerHello(
        legacy_version=legacy,
        version=hello.sv_version if hello.sv_version is not None else _legacy_version(legacy),
        random=random,
        session_id=session_id,
        cipher_suite=cipher,
        compression_method=compression,
        extensions=tuple(hello.ext_types),
        selected_version=hello.sv_version,
        ja3s=ja3s,
        ja3s_hash=_md5(ja3s) if ja3s is not None else None,
        malformed=not complete or hello.truncated,
    )


def parse_sslv2_client_hello(record: bytes) -> ClientHello | None:
    """Decode an SSLv2-compatible ClientHello (RFC 5246 appendix E.2).

    ``record`` is the whole record including its 2-byte header (high bit
    set). There are no extensions, so no SNI and no JA3 (Suricata computes
    none either); cipher specs are 24-bit values.
    """
    r = _Reader(record)
    try:
        head = r.u16()
        if not head & 0x8000 or (head & 0x7FFF) != len(record) - 2 or r.u8() != HANDSHAKE_CLIENT_HELLO:
            return None
        version = r.u16()
        spec_len, sid_len, challenge_len = r.u16(), r.u16(), r.u16()
        if spec_len % 3 or not 16 <= challenge_len <= 32 or sid_len > 32:
            return None
        specs = r.take(spec_len)
        session_id = r.take(sid_len)
        challenge = r.take(challenge_len)
    except _ShortError:
        return None
    return ClientHello(
        legacy_version=version,
        version=version,
        random=challenge,
        session_id=session_id,
        cipher_suites=tuple(
            int.from_bytes(specs[i : i + 3], "big") for i in range(0, min(spec_len, 3 * MAX_LIST), 3)
        ),
        extensions=(),
        supported_versions=(),
        elliptic_curves=(),
        ec_point_formats=(),
        alpn=(),
        sni=None,
        ja3=None,
        ja3_hash=None,
        sslv2=True,
    )


def format_serial(raw: bytes) -> str:
    """Suricata's ``tls.cert_serial`` form: upper-case hex octets joined by ``:``."""
    return ":".join(f"{octet:02X}" for octet in raw)


def format_fingerprint(der: bytes) -> str:
    """Suricata's ``tls.cert_fingerprint`` form: SHA-1, lower-case hex octets joined by ``:``."""
    return ":".join(f"{octet:02x}" for octet in hashlib.sha1(der, usedforsecurity=False).digest())


def parse_certificate_message(body: bytes) -> CertificateInfo | None:
    """Decode a TLS <= 1.2 Certificate message body (TLS 1.3's is encrypted anyway).

    None when the chain length runs past the message. A certificate whose
    length runs past the chain ends the walk (``malformed``); the ones before
    it are kept. At most :data:`MAX_CHAIN` certificates are kept.
    """
    r = _Reader(body)
    try:
        chain_reader = r.sub(r.u24())
    except _ShortError:
        return None
    chain: list[bytes] = []
    malformed = False
    try:
        while chain_reader.left() > 0 and len(chain) < MAX_CHAIN:
            chain.append(chain_reader.take(chain_reader.u24()))
    except _ShortError:
        malformed = True
    if not chain:
        return CertificateInfo(chain=(), malformed=malformed)
    fields = x509.parse_certificate(chain[0])
    if fields is None:
        return CertificateInfo(chain=tuple(chain), malformed=malformed)
    return CertificateInfo(
        chain=tuple(chain),
        subject=fields.subject,
        issuer=fields.issuer,
        serial=format_serial(fields.serial),
        fingerprint=format_fingerprint(chain[0]),
        not_before=fields.not_before,
        not_after=fields.not_after,
        subject_alt_names=fields.subject_alt_names,
        malformed=malformed,
    )


def parse_client_hello_payload(payload: bytes) -> ClientHello | None:
    """The ClientHello starting ``payload`` (records joined as for :func:`client_hello_sni`)."""
    if not is_client_hello(payload):
        return None
    body = _client_hello_body(payload)
    return None if body is None else parse_client_hello(body)


# --- rule buffers ----------------------------------------------------------------------------------

TLS_BUFFERS: Final = frozenset(
    {
        "tls.sni",
        "tls.cert_subject",
        "tls.cert_issuer",
        "tls.cert_serial",
        "tls.cert_fingerprint",
        "tls.certs",
        "tls.subjectaltname",
        "ja3.hash",
        "ja3.string",
        "ja3s.hash",
        "ja3s.string",
    }
)
# Suricata's older spellings of the same buffers.
TLS_BUFFER_ALIASES: Final[dict[str, str]] = {
    "tls_sni": "tls.sni",
    "tls_cert_subject": "tls.cert_subject",
    "tls_cert_issuer": "tls.cert_issuer",
    "tls_cert_serial": "tls.cert_serial",
    "tls_cert_fingerprint": "tls.cert_fingerprint",
    "ja3_hash": "ja3.hash",
    "ja3_string": "ja3.string",
    "ja3s_hash": "ja3s.hash",
    "ja3s_string": "ja3s.string",
}


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")


def tls_buffer(state: TlsState, name: str, *, to_server: bool = False) -> bytes | list[bytes] | None:
    """The content of rule buffer ``name`` for a connection's TLS state.

    ``tls.certs`` and ``tls.subjectaltname`` are multi-buffers (a list, one
    entry per certificate / name); the rest are single byte strings. None
    when the message carrying the buffer was not seen or lacked the field
    (a multi-buffer with no entries is None too). The certificate buffers
    read the server's Certificate message, or with ``to_server`` the
    client's (Suricata 7 only decodes the server's). Raises ValueError for a
    name outside :data:`TLS_BUFFERS` and :data:`TLS_BUFFER_ALIASES`: that is a
    rule-loading bug, never traffic.
    """
    name = TLS_BUFFER_ALIASES.get(name, name)
    if name not in TLS_BUFFERS:
        raise ValueError(f"not a TLS buffer: {name!r}")
    if name.startswith("ja3s."):
        sh = state.server_hello
        if sh is None:
            return None
        return _encode(sh.ja3s_hash if name == "ja3s.hash" else sh.ja3s)
    if name.startswith("ja3.") or name == "tls.sni":
        ch = state.client_hello
        if ch is None:
            return None
        if name == "tls.sni":
            return ch.sni
        return _encode(ch.ja3_hash if name == "ja3.hash" else ch.ja3)
    cert = state.client_certificate if to_server else state.certificate
    if cert is None:
        return None
    if name == "tls.certs":
        return list(cert.chain) or None
    if name == "tls.subjectaltname":
        return [san.encode("utf-8") for san in cert.subject_alt_names] or None
    field = {
        "tls.cert_subject": cert.subject,
        "tls.cert_issuer": cert.issuer,
        "tls.cert_serial": cert.serial,
        "tls.cert_fingerprint": cert.fingerprint,
    }[name]
    return _encode(field)


def tls_version(state: TlsState, to_server: bool) -> int | None:
    """The version ``tls.version`` compares for this direction, or None before the hello."""
    hello = state.client_hello if to_server else state.server_hello
    return None if hello is None else hello.version


def version_matches(version: int | None, wanted: int, raw: bool = False) -> bool:
    """``tls.version`` semantics: 1.3 drafts (0x7fXX) count as 1.3 unless ``raw`` (a hex value)."""
    if version is None:
        return False
    if not raw and version >> 8 == 0x7F:
        version = TLS_VERSION_13
    return version == wanted
