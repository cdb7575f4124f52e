"""Which inspection buffer each Suricata/Snort keyword names, and how transforms are spelled.

Does: map sticky-buffer keywords (``http.uri``, ``dns.query``, ``file.data``,
Suricata's underscore aliases like ``dns_query``), Suricata's legacy content
modifiers (``http_uri`` after a content), Snort 3's sticky buffers (which are
written *before* the contents they govern, with the same names as Suricata's
legacy modifiers) and the transforms to :class:`~inline_ips.rules.model.Buffer`
and :class:`~inline_ips.rules.model.Transform` values.

Does not: build rules (``payload`` does) or produce buffer bytes
(``detect/buffers`` does).
"""

from __future__ import annotations

from typing import Final

from inline_ips.rules.model import Buffer

# Sticky buffers: the keyword selects the buffer for the contents that follow.
STICKY: Final[dict[str, Buffer]] = {
    "pkt_data": Buffer.PAYLOAD,
    "http.uri": Buffer.HTTP_URI,
    "http.uri.raw": Buffer.HTTP_URI_RAW,
    "http.method": Buffer.HTTP_METHOD,
    "http.request_line": Buffer.HTTP_REQUEST_LINE,
    "http_request_line": Buffer.HTTP_REQUEST_LINE,
    "http.host": Buffer.HTTP_HOST,
    "http.host.raw": Buffer.HTTP_HOST_RAW,
    "http.user_agent": Buffer.HTTP_USER_AGENT,
    "http.cookie": Buffer.HTTP_COOKIE,
    "http.referer": Buffer.HTTP_REFERER,
    "http_referer": Buffer.HTTP_REFERER,
    "http.accept": Buffer.HTTP_ACCEPT,
    "http_accept": Buffer.HTTP_ACCEPT,
    "http.accept_enc": Buffer.HTTP_ACCEPT_ENC,
    "http_accept_enc": Buffer.HTTP_ACCEPT_ENC,
    "http.accept_lang": Buffer.HTTP_ACCEPT_LANG,
    "http_accept_lang": Buffer.HTTP_ACCEPT_LANG,
    "http.request_body": Buffer.HTTP_REQUEST_BODY,
    "http.stat_code": Buffer.HTTP_STAT_CODE,
    "http.stat_msg": Buffer.HTTP_STAT_MSG,
    "http.response_line": Buffer.HTTP_RESPONSE_LINE,
    "http_response_line": Buffer.HTTP_RESPONSE_LINE,
    "http.server": Buffer.HTTP_SERVER,
    "http.location": Buffer.HTTP_LOCATION,
    "http.response_body": Buffer.HTTP_RESPONSE_BODY,
    "file.data": Buffer.FILE_DATA,
    "file_data": Buffer.FILE_DATA,
    "http.protocol": Buffer.HTTP_PROTOCOL,
    "http_protocol": Buffer.HTTP_PROTOCOL,
    "http.header": Buffer.HTTP_HEADER,
    "http.header.raw": Buffer.HTTP_HEADER_RAW,
    "http.header_names": Buffer.HTTP_HEADER_NAMES,
    "http_header_names": Buffer.HTTP_HEADER_NAMES,
    "http.content_type": Buffer.HTTP_CONTENT_TYPE,
    "http_content_type": Buffer.HTTP_CONTENT_TYPE,
    "http.content_len": Buffer.HTTP_CONTENT_LEN,
    "http_content_len": Buffer.HTTP_CONTENT_LEN,
    "http.connection": Buffer.HTTP_CONNECTION,
    "http_connection": Buffer.HTTP_CONNECTION,
    "http.start": Buffer.HTTP_START,
    "http_start": Buffer.HTTP_START,
    "dns.query": Buffer.DNS_QUERY,
    "dns_query": Buffer.DNS_QUERY,
    "tls.sni": Buffer.TLS_SNI,
    "tls_sni": Buffer.TLS_SNI,
    "tls.cert_subject": Buffer.TLS_CERT_SUBJECT,
    "tls_cert_subject": Buffer.TLS_CERT_SUBJECT,
    "tls.cert_issuer": Buffer.TLS_CERT_ISSUER,
    "tls_cert_issuer": Buffer.TLS_CERT_ISSUER,
    "tls.cert_serial": Buffer.TLS_CERT_SERIAL,
    "tls_cert_serial": Buffer.TLS_CERT_SERIAL,
    "tls.cert_fingerprint": Buffer.TLS_CERT_FINGERPRINT,
    "tls_cert_fingerprint": Buffer.TLS_CERT_FINGERPRINT,
    "tls.certs": Buffer.TLS_CERTS,
    "tls.subjectaltname": Buffer.TLS_SUBJECTALTNAME,
    "ja3.hash": Buffer.JA3_HASH,
    "ja3_hash": Buffer.JA3_HASH,
    "ja3.string": Buffer.JA3_STRING,
    "ja3_string": Buffer.JA3_STRING,
    "ja3s.hash": Buffer.JA3S_HASH,
    "ja3s_hash": Buffer.JA3S_HASH,
    "ja3s.string": Buffer.JA3S_STRING,
    "ja3s_string": Buffer.JA3S_STRING,
    "tls.random": Buffer.TLS_RANDOM,
    "tls.random_time": Buffer.TLS_RANDOM_TIME,
    "tls.random_bytes": Buffer.TLS_RANDOM_BYTES,
}

# Suricata's legacy content modifiers: written after a content, they move it
# into their buffer. Snort 3 spells its sticky buffers the same way.
MODIFIERS: Final[dict[str, Buffer]] = {
    "http_uri": Buffer.HTTP_URI,
    "http_raw_uri": Buffer.HTTP_URI_RAW,
    "http_method": Buffer.HTTP_METHOD,
    "http_cookie": Buffer.HTTP_COOKIE,
    "http_header": Buffer.HTTP_HEADER,
    "http_raw_header": Buffer.HTTP_HEADER_RAW,
    "http_client_body": Buffer.HTTP_REQUEST_BODY,
    "http_server_body": Buffer.HTTP_RESPONSE_BODY,
    "http_stat_code": Buffer.HTTP_STAT_CODE,
    "http_stat_msg": Buffer.HTTP_STAT_MSG,
    "http_user_agent": Buffer.HTTP_USER_AGENT,
    "http_host": Buffer.HTTP_HOST,
    "http_raw_host": Buffer.HTTP_HOST_RAW,
}

# Snort 3 sticky buffers beyond MODIFIERS' names.
SNORT3_STICKY: Final[dict[str, Buffer]] = {
    **MODIFIERS,
    "http_version": Buffer.HTTP_PROTOCOL,
    "file_data": Buffer.FILE_DATA,
    "pkt_data": Buffer.PAYLOAD,
    "raw_data": Buffer.PAYLOAD,
}

# Snort 3's http_header:field NAME selects one header; these have a buffer of their own.
SNORT3_HEADER_FIELDS: Final[dict[str, Buffer]] = {
    "user-agent": Buffer.HTTP_USER_AGENT,
    "host": Buffer.HTTP_HOST_RAW,
    "cookie": Buffer.HTTP_COOKIE,
    "referer": Buffer.HTTP_REFERER,
    "content-type": Buffer.HTTP_CONTENT_TYPE,
    "content-length": Buffer.HTTP_CONTENT_LEN,
    "accept": Buffer.HTTP_ACCEPT,
    "accept-encoding": Buffer.HTTP_ACCEPT_ENC,
    "accept-language": Buffer.HTTP_ACCEPT_LANG,
    "connection": Buffer.HTTP_CONNECTION,
    "server": Buffer.HTTP_SERVER,
    "location": Buffer.HTTP_LOCATION,
}

# Transforms, by keyword; the value says whether the keyword takes an argument.
TRANSFORMS: Final[dict[str, bool]] = {
    "dotprefix": False,
    "strip_whitespace": False,
    "compress_whitespace": False,
    "to_lowercase": False,
    "to_uppercase": False,
    "to_md5": False,
    "to_sha1": False,
    "to_sha256": False,
    "url_decode": False,
    "header_lowercase": False,
    "strip_pseudo_headers": False,
    "xor": True,
    "pcrexform": True,
    "from_base64": True,
}
