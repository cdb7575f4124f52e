"""TLS ClientHello decoding for ``tls.sni`` rules.

Does: recognise a TCP payload that starts with a TLS handshake record
(content type 22, record version 3.x) carrying a ClientHello, and extract the
server_name extension's host_name, lower-cased. Every length field is checked
against its enclosing structure. A ClientHello fragmented over several
consecutive handshake records within the payload is put back together (a
known evasion; TLS allows it).

Does not: reassemble TCP (when a record spans segments the caller passes the
concatenated stream bytes); parse SSLv2-compatible ClientHellos (no
extensions there anyway), ServerHellos, certificates or any other handshake
message; see through Encrypted Client Hello (the outer ClientHello's SNI, the
public name, is what is returned) or QUIC (the ClientHello is encrypted in
QUIC Initial packets). It never raises on any input and never uses Scapy (hot
path).

The name is decoded as ASCII with non-ASCII bytes written as ``\\xNN``
(``backslashreplace``), then lower-cased: host names are case-insensitive
and rules compare the lower-case form. An empty host_name gives None.
"""

from __future__ import annotations

from typing import Final

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
