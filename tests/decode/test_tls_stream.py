"""Incremental TLS parsing: real OpenSSL handshakes split every way, bounds, failures, fuzzing, corpus."""

from __future__ import annotations

import hashlib
import itertools
import ssl
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inline_ips.decode.tls import ClientHello, tls_buffer
from inline_ips.decode.tls_stream import MAX_ANOMALIES, MAX_MESSAGE, MAX_RECORD, TlsConnection
from tests.corpus import PCAPS, require_corpus
from tests.decode.test_tls import reference_ja3, reference_ja3s
from tests.decode.test_x509 import OPENSSL, Cert, make_cert

EVENTS = {"client_hello", "server_hello", "certificate", "encrypted"}


# --- real handshakes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    segments: tuple[tuple[bool, bytes], ...]  # (to_server, bytes) in the order they were sent
    version: str

    def stream(self, to_server: bool) -> bytes:
        return b"".join(data for direction, data in self.segments if direction == to_server)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    if OPENSSL is None:
        pytest.skip("openssl CLI not installed")
    directory = tmp_path_factory.mktemp("certs")
    return {
        "server": make_cert(
            directory,
            "/C=US/O=Stream Test/CN=server.example",
            serial=0x8F01,
            san="DNS:server.example,IP:192.0.2.1",
            name="server",
        ),
        "client": make_cert(directory, "/CN=client.example", serial=7, name="client"),
    }


def handshake(
    certs: dict[str, Cert],
    maximum: ssl.TLSVersion,
    *,
    client_cert: bool = False,
    hostname: str | None = "www.example.test",
) -> Capture:
    """A complete handshake between two OpenSSL endpoints over memory BIOs, plus a little data."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["server"].pem, certs["server"].key)
    server_ctx.maximum_version = maximum
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    if client_cert:
        server_ctx.verify_mode = ssl.CERT_OPTIONAL
        server_ctx.load_verify_locations(certs["client"].pem)
        client_ctx.load_cert_chain(certs["client"].pem, certs["client"].key)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    segments: list[tuple[bool, bytes]] = []

    def pump() -> bool:
        moved = False
        if data := c_out.read():
            segments.append((True, data))
            s_in.write(data)
            moved = True
        if data := s_out.read():
            segments.append((False, data))
            c_in.write(data)
            moved = True
        return moved

    done = {"client": False, "server": False}
    for _ in range(50):
        for role, obj in (("client", client), ("server", server)):
            if not done[role]:
                try:
                    obj.do_handshake()
                    done[role] = True
                except ssl.SSLWantReadError:
                    pass
        if not pump() and all(done.values()):
            break
    client.write(b"GET / HTTP/1.1\r\n\r\n")
    server.write(b"HTTP/1.1 200 OK\r\n\r\n")
    pump()
    version = client.version()
    assert version is not None
    return Capture(tuple(segments), version)


def records(stream: bytes) -> Iterator[tuple[int, bytes]]:
    """(content type, fragment) of each TLS record (test-side helper, no validation)."""
    pos = 0
    while pos + 5 <= len(stream):
        (length,) = struct.unpack_from("!H", stream, pos + 3)
        yield stream[pos], stream[pos + 5 : pos + 5 + length]
        pos += 5 + length


def first_message(stream: bytes) -> bytes:
    """The body of the first handshake message of a direction's stream."""
    hs = b"".join(frag for kind, frag in records(stream) if kind == 22)
    return hs[4 : 4 + int.from_bytes(hs[1:4], "big")]


def feed_all(conn: TlsConnection, segments: Iterable[tuple[bool, bytes]]) -> dict[bool, list[str]]:
    events: dict[bool, list[str]] = {True: [], False: []}
    for to_server, data in segments:
        events[to_server] += conn.feed(to_server, data)
    return events


def summary(conn: TlsConnection) -> tuple[object, ...]:
    return (
        conn.client_hello,
        conn.server_hello,
        conn.certificate,
        conn.client_certificate,
        conn.failed,
        conn.anomalies,
    )


HANDSHAKES = [
    pytest.param(ssl.TLSVersion.TLSv1_2, False, id="tls12"),
    pytest.param(ssl.TLSVersion.TLSv1_2, True, id="tls12-client-cert"),
    pytest.param(ssl.TLSVersion.MAXIMUM_SUPPORTED, False, id="tls13"),
    pytest.param(ssl.TLSVersion.MAXIMUM_SUPPORTED, True, id="tls13-client-cert"),
]


@pytest.mark.parametrize(("maximum", "client_cert"), HANDSHAKES)
def test_real_handshake(certs: dict[str, Cert], maximum: ssl.TLSVersion, client_cert: bool) -> None:
    cap = handshake(certs, maximum, client_cert=client_cert)
    conn = TlsConnection()
    events = feed_all(conn, cap.segments)
    tls12 = cap.version == "TLSv1.2"
    assert cap.version == ("TLSv1.2" if maximum == ssl.TLSVersion.TLSv1_2 else "TLSv1.3")
    assert events[True] == ["client_hello", *(["certificate"] if tls12 and client_cert else []), "encrypted"]
    assert events[False] == ["server_hello", *(["certificate"] if tls12 else []), "encrypted"]
    assert not conn.failed and conn.anomalies == () and conn.oversized == 0
    assert conn.done(True) and conn.done(False)

    ch, sh = conn.client_hello, conn.server_hello
    assert ch is not None and sh is not None
    assert ch.sni == b"www.example.test" and ch.version == 0x0304
    assert ch.ja3 == reference_ja3(first_message(cap.stream(True)))
    assert sh.ja3s == reference_ja3s(first_message(cap.stream(False)))
    assert sh.version == (0x0303 if tls12 else 0x0304)
    assert (
        tls_buffer(conn, "ja3.hash")
        == hashlib.md5(reference_ja3(first_message(cap.stream(True))).encode()).hexdigest().encode()
    )

    if not tls12:
        assert conn.certificate is None and conn.client_certificate is None  # encrypted in TLS 1.3
        return
    cert = conn.certificate
    assert cert is not None and cert.chain == (certs["server"].der,)
    assert cert.subject == cert.issuer == "C=US, O=Stream Test, CN=server.example"
    assert cert.serial == "00:8F:01"
    assert cert.fingerprint == ":".join(f"{b:02x}" for b in hashlib.sha1(certs["server"].der).digest())
    assert cert.subject_alt_names == ("server.example", "[192, 0, 2, 1]")
    assert tls_buffer(conn, "tls.certs") == [certs["server"].der]
    if client_cert:
        assert conn.client_certificate is not None
        assert conn.client_certificate.chain == (certs["client"].der,)
        assert tls_buffer(conn, "tls.cert_subject", to_server=True) == b"CN=client.example"
    else:
        assert conn.client_certificate is None


def test_handshake_without_sni(certs: dict[str, Cert]) -> None:
    conn = TlsConnection()
    feed_all(conn, handshake(certs, ssl.TLSVersion.TLSv1_2, hostname=None).segments)
    assert conn.client_hello is not None and conn.client_hello.sni is None
    assert tls_buffer(conn, "tls.sni") is None


@pytest.mark.parametrize(("maximum", "client_cert"), HANDSHAKES[:2])
def test_split_everywhere(certs: dict[str, Cert], maximum: ssl.TLSVersion, client_cert: bool) -> None:
    cap = handshake(certs, maximum, client_cert=client_cert)
    whole = TlsConnection()
    expected = feed_all(whole, cap.segments)
    for to_server in (True, False):
        stream = cap.stream(to_server)
        other = cap.stream(not to_server)
        for cut in range(1, len(stream)):
            conn = TlsConnection()
            got = feed_all(
                conn, [(not to_server, other), (to_server, stream[:cut]), (to_server, stream[cut:])]
            )
            assert got == expected, (to_server, cut)
            assert summary(conn) == summary(whole), (to_server, cut)
        conn = TlsConnection()
        got = feed_all(
            conn, [(not to_server, other), *((to_server, stream[i : i + 1]) for i in range(len(stream)))]
        )
        assert got == expected and summary(conn) == summary(whole)


def reframe(stream: bytes, size: int, interleave: bytes = b"") -> bytes:
    """The handshake records' payload cut into records of ``size`` bytes (rest unchanged).

    ``interleave`` (an alert or heartbeat record) goes after every handshake record.
    """
    out = bytearray()
    hs = bytearray()
    pos = 0
    for kind, frag in records(stream):
        if kind != 22:
            break
        hs += frag
        pos += 5 + len(frag)
    for i in range(0, len(hs), size):
        piece = bytes(hs[i : i + size])
        out += b"\x16\x03\x03" + struct.pack("!H", len(piece)) + piece + interleave
    return bytes(out) + stream[pos:]


ALERT = b"\x15\x03\x03\x00\x02\x01\x00"  # warning, close_notify (never sent mid-handshake, but skippable)
HEARTBEAT = b"\x18\x03\x03\x00\x03\x01\x00\x00"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 1000, MAX_RECORD - 2048])
@pytest.mark.parametrize("interleave", [b"", ALERT, HEARTBEAT], ids=["plain", "alert", "heartbeat"])
def test_record_fragmentation(certs: dict[str, Cert], size: int, interleave: bytes) -> None:
    cap = handshake(certs, ssl.TLSVersion.TLSv1_2, client_cert=True)
    whole = TlsConnection()
    expected = feed_all(whole, cap.segments)
    conn = TlsConnection()
    got = feed_all(conn, [(d, reframe(cap.stream(d), size, interleave)) for d in (True, False)])
    assert got == expected
    assert summary(conn) == summary(whole)


@pytest.fixture(scope="module")
def base_capture(certs: dict[str, Cert]) -> Capture:
    return handshake(certs, ssl.TLSVersion.TLSv1_2, client_cert=True)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_segmentation(base_capture: Capture, data: st.DataObject) -> None:
    cap = base_capture
    whole = TlsConnection()
    expected = feed_all(whole, cap.segments)
    pieces: list[tuple[bool, bytes]] = []
    for to_server in (True, False):
        stream = cap.stream(to_server)
        cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
        bounds = [0, *cuts, len(stream)]
        pieces += [(to_server, stream[a:b]) for a, b in itertools.pairwise(bounds)]
    # Interleave the directions arbitrarily while keeping each one in order.
    queues: dict[bool, list[bytes]] = defaultdict(list)
    for to_server, piece in pieces:
        queues[to_server].append(piece)
    order = data.draw(st.permutations([to_server for to_server, _ in pieces]))
    conn = TlsConnection()
    events = feed_all(conn, ((to_server, queues[to_server].pop(0)) for to_server in order))
    assert events == expected
    assert summary(conn) == summary(whole)


# --- hand-built streams --------------------------------------------------------------------------------


def _rec(content: int, payload: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([content]) + version + struct.pack("!H", len(payload)) + payload


def _msg(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def _hs_records(handshake_bytes: bytes, size: int = 16384) -> bytes:
    return b"".join(_rec(22, handshake_bytes[i : i + size]) for i in range(0, len(handshake_bytes), size))


CH_BODY = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
SH_BODY = b"\x03\x03" + b"s" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00"
CCS = _rec(20, b"\x01")


def _cert_body(*certs: bytes) -> bytes:
    chain = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    return len(chain).to_bytes(3, "big") + chain


def test_several_messages_in_one_record_and_zero_length_messages() -> None:
    conn = TlsConnection()
    stream = (
        _rec(22, _msg(2, SH_BODY) + _msg(11, _cert_body(b"\x30\x00")) + _msg(14, b"")) + _rec(22, b"") + CCS
    )
    assert conn.feed(False, stream) == ["server_hello", "certificate", "encrypted"]
    assert conn.certificate is not None and conn.certificate.chain == (b"\x30\x00",)


def test_oversized_message_is_skipped_and_counted() -> None:
    big = _msg(11, _cert_body(b"\x30" + b"\x00" * (MAX_MESSAGE + 10)))
    stream = _hs_records(_msg(2, SH_BODY) + big + _msg(14, b"")) + CCS
    conn = TlsConnection()
    events = []
    for i in range(0, len(stream), 1460):
        events += conn.feed(False, stream[i : i + 1460])
    assert events == ["server_hello", "encrypted"]
    assert conn.oversized == 1 and conn.anomalies == ("handshake_message_too_long",)
    assert conn.certificate is None and not conn.failed
    roomy = TlsConnection(max_message=2 * MAX_MESSAGE)
    assert roomy.feed(False, stream) == ["server_hello", "certificate", "encrypted"]
    assert roomy.oversized == 0


def test_buffering_is_bounded() -> None:
    # A message announced as 16 MiB is skipped as it streams past; nothing accumulates.
    conn = TlsConnection()
    conn.feed(False, _hs_records(_msg(2, SH_BODY)) + _rec(22, b"\x0b\xff\xff\xff"))
    for _ in range(200):
        conn.feed(False, _rec(22, b"\x00" * 16384))
    side = conn._server
    assert len(side.body) == 0 and not side.collect and conn.oversized == 1
    assert not conn.done(False)


def test_sslv2_client_hello_then_tls() -> None:
    from tests.decode.test_tls import _sslv2

    stream = _sslv2() + _rec(22, _msg(16, b"\x00\x02ab")) + CCS
    conn = TlsConnection()
    assert conn.feed(True, stream) == ["client_hello", "encrypted"]
    assert isinstance(conn.client_hello, ClientHello) and conn.client_hello.sslv2
    assert conn.feed(False, _hs_records(_msg(2, SH_BODY))) == ["server_hello"]
    for cut in range(1, len(stream)):
        split = TlsConnection()
        assert split.feed(True, stream[:cut]) + split.feed(True, stream[cut:]) == [
            "client_hello",
            "encrypted",
        ]


def test_sslv2_server_is_not_parsed() -> None:
    conn = TlsConnection()
    assert conn.feed(False, b"\x80\x30\x04" + b"\x00" * 0x2E) == []
    assert conn.sslv2_server and conn.done(False) and not conn.failed


NOT_TLS = [
    pytest.param(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(True, b"SSH-2.0-OpenSSH_9.6\r\n", id="ssh"),
    pytest.param(True, _rec(22, _msg(2, SH_BODY)), id="client-sends-server-hello"),
    pytest.param(True, _rec(23, b"x" * 10), id="client-starts-with-app-data"),
    pytest.param(True, _rec(22, _msg(1, CH_BODY), version=b"\x03\x05"), id="record-version-3.5"),
    pytest.param(True, _rec(22, _msg(1, CH_BODY), version=b"\x02\x00"), id="record-version-2.0"),
    pytest.param(True, b"\x16\x03\x01" + struct.pack("!H", MAX_RECORD + 1), id="record-too-long"),
    pytest.param(True, _rec(22, _msg(1, b"\x03\x03" + b"r" * 10)), id="hello-too-short"),
    pytest.param(True, b"\x80\x05\x04\x00\x02\x00\x00", id="sslv2-not-a-hello"),
    pytest.param(False, b"220 mail.example ESMTP\r\n", id="smtp-banner"),
    pytest.param(False, CCS, id="server-starts-with-ccs"),
    pytest.param(False, _rec(22, _msg(11, _cert_body())), id="server-starts-with-certificate"),
]


@pytest.mark.parametrize(("to_server", "data"), NOT_TLS)
def test_not_tls(to_server: bool, data: bytes) -> None:
    conn = TlsConnection()
    assert conn.feed(to_server, data) == []
    assert conn.failed and "not_tls" in conn.anomalies
    assert (
        conn.feed(not to_server, _hs_records(_msg(2 if to_server else 1, SH_BODY if to_server else CH_BODY)))
        == []
    )
    assert conn.client_hello is None and conn.server_hello is None
    assert conn.done(True) and conn.done(False)


def test_server_may_start_with_an_alert() -> None:
    conn = TlsConnection()
    assert conn.feed(False, _rec(21, b"\x02\x28")) == []
    assert not conn.failed and not conn.done(False)


def test_gap_stops_one_direction() -> None:
    conn = TlsConnection()
    server = _hs_records(_msg(2, SH_BODY) + _msg(11, _cert_body(b"\x30\x00")))
    assert conn.feed(False, server[:20]) == []
    conn.gap(False)
    assert conn.done(False) and not conn.done(True) and conn.anomalies == ("gap",)
    assert conn.feed(False, server[20:]) == []
    assert conn.feed(True, _hs_records(_msg(1, CH_BODY))) == ["client_hello"]
    conn.gap(False)  # a second gap changes nothing
    assert conn.anomalies == ("gap",)


def test_bad_record_mid_stream_stops_that_side_only() -> None:
    conn = TlsConnection()
    stream = _hs_records(_msg(2, SH_BODY)) + _rec(99, b"xx") + _hs_records(_msg(11, _cert_body()))
    assert conn.feed(False, stream) == ["server_hello"]
    assert conn.done(False) and not conn.failed and conn.anomalies == ("bad_record",)
    assert conn.feed(True, _hs_records(_msg(1, CH_BODY))) == ["client_hello"]


def test_second_hello_and_certificate_are_ignored() -> None:
    other_ch = CH_BODY.replace(b"\x13\x01", b"\x13\x02")
    conn = TlsConnection()
    events = conn.feed(True, _hs_records(_msg(1, CH_BODY) + _msg(1, other_ch)))
    assert events == ["client_hello"]
    assert conn.client_hello is not None and conn.client_hello.cipher_suites == (0x1301,)
    events = conn.feed(
        False, _hs_records(_msg(2, SH_BODY) + _msg(11, _cert_body(b"a")) + _msg(11, _cert_body(b"b")))
    )
    assert events == ["server_hello", "certificate"]
    assert conn.certificate is not None and conn.certificate.chain == (b"a",)


def test_bad_certificate_message_is_noted() -> None:
    conn = TlsConnection()
    assert conn.feed(False, _hs_records(_msg(2, SH_BODY) + _msg(11, b"\x00\x00\x09"))) == ["server_hello"]
    assert conn.certificate is None and conn.anomalies == ("bad_certificate_message",)


def test_anomalies_are_bounded() -> None:
    conn = TlsConnection(max_message=40)
    big = _msg(11, _cert_body(b"x" * 50))
    conn.feed(False, _hs_records(_msg(2, SH_BODY)))
    for _ in range(MAX_ANOMALIES + 5):
        conn.feed(False, _hs_records(big))
        conn.certificate = None  # let the next one be wanted (and dropped) again
    assert conn.oversized == MAX_ANOMALIES + 5 and len(conn.anomalies) == MAX_ANOMALIES


def test_empty_feed() -> None:
    conn = TlsConnection()
    assert conn.feed(True, b"") == [] and not conn.failed


# --- robustness ------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=12))
def test_random_bytes_never_raise(chunks: list[tuple[bool, bytes]]) -> None:
    conn = TlsConnection(max_message=512)
    for to_server, data in chunks:
        events = conn.feed(to_server, data)
        assert set(events) <= EVENTS
        if conn.failed:
            assert conn.feed(to_server, data) == []


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=120)), max_size=12))
def test_random_bodies_behind_valid_headers_never_raise(chunks: list[tuple[bool, bytes]]) -> None:
    conn = TlsConnection(max_message=512)
    for to_server, body in chunks:
        kind = 1 if to_server else 2
        for record in (_rec(22, _msg(kind, body)), _rec(22, _msg(11, body)), _rec(22, body)):
            assert set(conn.feed(to_server, record)) <= EVENTS


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_handshakes_never_raise(base_capture: Capture, data: st.DataObject) -> None:
    conn = TlsConnection()
    for to_server in (True, False):
        stream = bytearray(base_capture.stream(to_server))
        for _ in range(data.draw(st.integers(1, 8))):
            stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
        step = data.draw(st.integers(1, 600))
        for i in range(0, len(stream), step):
            assert set(conn.feed(to_server, bytes(stream[i : i + step]))) <= EVENTS


# --- real traffic from the corpus -----------------------------------------------------------------------

CORPUS_PCAP = PCAPS / "dns_amplification_rrsig_frag__stopddos.pcap"  # holds incidental TLS flows


def _tcp_streams(path: Path) -> dict[tuple[str, int, str, int], bytes]:
    """Each TCP direction that starts with a SYN, reassembled in order up to its first hole."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapReader

    start: dict[tuple[str, int, str, int], int] = {}
    segments: dict[tuple[str, int, str, int], list[tuple[int, bytes]]] = defaultdict(list)
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if IP not in pkt or TCP not in pkt:
                continue
            ip, tcp = pkt[IP], pkt[TCP]
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            if tcp.flags & 0x02:
                start[key] = tcp.seq + 1
            size = ip.len - 4 * ip.ihl - 4 * tcp.dataofs  # the IP length, not Ethernet padding
            payload = bytes(tcp.payload)[: max(size, 0)]
            if payload:
                segments[key].append((tcp.seq, payload))
    streams = {}
    for key, isn in start.items():
        out = bytearray()
        nxt = isn
        for seq, payload in sorted(segments.get(key, [])):
            if seq > nxt:
                break
            if seq + len(payload) > nxt:
                out += payload[nxt - seq :]
                nxt = seq + len(payload)
        if out:
            streams[key] = bytes(out)
    return streams


@pytest.mark.corpus
def test_corpus_tls_flows() -> None:
    require_corpus(CORPUS_PCAP)
    tls_flows = 0
    for (src, sport, dst, dport), stream in _tcp_streams(CORPUS_PCAP).items():
        to_server = dport < sport  # the capture is one-way; the lower port is the service
        conn = TlsConnection()
        events = conn.feed(to_server, stream)
        if stream[0] != 0x16:
            assert conn.failed, (src, sport, dst, dport)
            continue
        tls_flows += 1
        assert not conn.failed and events[-1] == "encrypted", (src, sport)
        if to_server:
            assert conn.client_hello is not None and conn.client_hello.ja3 == reference_ja3(
                first_message(stream)
            )
        else:
            assert conn.server_hello is not None and conn.server_hello.ja3s == reference_ja3s(
                first_message(stream)
            )
            assert conn.server_hello.version == 0x0304
    if tls_flows == 0:
        pytest.skip("no TLS flow in the corpus pcap")
    assert tls_flows >= 10
