"""The compiled decoder (``_fastdecode.c``) against the pure-Python reference, slot by slot.

Every input is decoded by both :func:`inline_ips.decode.decode_py` and the
compiled ``decode``; every name in ``Packet.__slots__`` must have the same
type and value (and ``error`` the very same string object). Inputs: the
project's synthetic traffic (``inline_ips.lab.synth``), the corpus captures
and Suricata-verify pcaps (skipped when ``../shared/corpus`` is absent), every
truncation of hand-built packets (IPv4/IPv6 x TCP/UDP/ICMP/ICMPv6/other, with
options, extension headers, fragments, padding), and seeded random mutations
and random bytes. Also: setup() refuses Packet layouts it does not know, and a
million decodes leak neither references nor memory. The whole module is
skipped when the extension is not built;
it runs whatever ``INLINE_IPS_PURE_DECODE`` says, since it loads the compiled
decoder itself.
"""

from __future__ import annotations

import gc
import importlib.util
import random
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.inet6 import fragment6 as scapy_fragment6
from scapy.layers.ipsec import AH
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from inline_ips.decode import DECODE_ERRORS, decode_py, load_fast_decoder
from inline_ips.packet import Packet
from tests.corpus import CORPUS, PCAPS, require_corpus

if importlib.util.find_spec("inline_ips.decode._fastdecode") is None:
    pytest.skip(
        "inline_ips.decode._fastdecode is not built (.venv/bin/python setup.py build_ext --inplace)",
        allow_module_level=True,
    )

SLOTS = Packet.__slots__
_ALL = attrgetter(*SLOTS)
SEED = 0xFA57
N_MUTATED = 50_000
N_RANDOM = 10_000

# Both decoders also take bytearray/memoryview (and raise TypeError for what bytes() refuses).
Decoder = Callable[..., Packet]
reference: Decoder = decode_py


@pytest.fixture(scope="module")
def fast() -> Decoder:
    """The compiled decoder itself, set up but without the import-time self-check (tested apart)."""
    from inline_ips.decode import _fastdecode

    _fastdecode.setup(Packet, Packet(b"", 0.0), DECODE_ERRORS)
    return _fastdecode.decode


def test_extension_loads_and_passes_its_self_check() -> None:
    decoder, reason = load_fast_decoder()
    assert decoder is not None, f"the extension is built but not usable: {reason}"
    assert reason == "compiled"


def difference(c: Packet, p: Packet) -> str | None:
    """The first slot where the compiled result ``c`` and the Python result ``p`` differ."""
    assert type(c) is Packet
    vc, vp = _ALL(c), _ALL(p)
    if vc == vp and all(type(x) is type(y) for x, y in zip(vc, vp, strict=True)) and c.error is p.error:
        return None
    for name, x, y in zip(SLOTS, vc, vp, strict=True):
        if type(x) is not type(y) or x != y or (name == "error" and x is not y):
            return f"{name}: compiled {x!r} ({type(x).__name__}), python {y!r} ({type(y).__name__})"
    raise AssertionError("unreachable")


def check_all(fast: Decoder, inputs: Iterable[object]) -> int:
    """Decode every input with both decoders; fail on the first difference. Returns the count."""
    count = 0
    for i, raw in enumerate(inputs):
        ts = 1000.0 + i
        c = fast(raw, ts)
        p = reference(raw, ts)
        diff = difference(c, p)
        if diff is not None:
            pytest.fail(f"input {p.raw.hex()} ({type(raw).__name__}): {diff}")
        assert p.error != "internal_error", p.raw.hex()
        count += 1
    return count


def truncations(raw: bytes) -> Iterator[bytes]:
    for n in range(len(raw) + 1):
        yield raw[:n]


# ---- hand-built packets ---------------------------------------------------------------------------

V4: dict[str, Any] = {"src": "10.1.2.3", "dst": "198.51.100.250"}
V6: dict[str, Any] = {"src": "2001:db8::1", "dst": "fe80::1:ffff:ffff:ffff"}


def _frag(pkt: ScapyPacket, size: int) -> list[bytes]:
    return [bytes(f) for f in scapy_fragment(pkt, fragsize=size)]  # type: ignore[no-untyped-call]


def _frag6(pkt: ScapyPacket, mtu: int) -> list[bytes]:
    return [bytes(f) for f in scapy_fragment6(pkt, mtu)]  # type: ignore[no-untyped-call]


def _tcp_with_raw_options(opts: bytes, doff_words: int | None = None) -> bytes:
    """IPv4 TCP whose option bytes are exactly ``opts`` (padded to the data offset)."""
    words = doff_words if doff_words is not None else 5 + (len(opts) + 3) // 4
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 2, words << 4, 0x02, 1024, 0, 0)
    tcp += opts.ljust((words - 5) * 4, b"\x00") + b"data"
    return bytes(IP(**V4, proto=6) / Raw(tcp))


DSTOPT = bytes([60, 0]) + b"\x00" * 6  # a destination-options header followed by another


def hand_built() -> dict[str, bytes]:
    v4, v6 = IP(**V4, id=4242, ttl=9, tos=0xB8), IPv6(**V6, tc=0x2E, fl=0xFEDCB, hlim=200)
    cases: dict[str, ScapyPacket | bytes] = {
        "v4_tcp_syn_opts": v4
        / TCP(
            sport=40000,
            dport=443,
            flags="S",
            seq=0xFFFFFFFF,
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)],
        ),
        "v4_tcp_nop_nop_ts": v4
        / TCP(flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (7, 8))])
        / Raw(b"GET / HTTP/1.1\r\n\r\n"),
        "v4_tcp_plain": v4 / TCP(sport=1, dport=2, flags="FA", ack=0x80000000, window=65535, urgptr=7),
        "v4_tcp_ip_options": IP(**V4, options=[IPOption_RR(routers=["9.9.9.9"] * 3)]) / TCP() / Raw(b"o"),
        "v4_tcp_mss_bad_len": _tcp_with_raw_options(b"\x02\x03\x05\xb4"),
        "v4_tcp_two_mss": _tcp_with_raw_options(b"\x02\x04\x05\xb4\x02\x04\x02\x18"),
        "v4_tcp_mss_then_bad": _tcp_with_raw_options(b"\x02\x04\x05\xb4\x08\x01"),
        "v4_tcp_eol_first": _tcp_with_raw_options(b"\x00\x02\x04\x05\xb4"),
        "v4_tcp_opt_runs_over": _tcp_with_raw_options(b"\x01\x01\x08\x0a\x00\x00"),
        "v4_tcp_opt_last_byte_kind": _tcp_with_raw_options(b"\x01\x01\x01\x08"),
        "v4_tcp_nop_nop_ts_lookalike": _tcp_with_raw_options(b"\x01\x01\x08\x0a" + b"\x00" * 8),
        "v4_tcp_doff_15": _tcp_with_raw_options(b"\x01" * 40, doff_words=15),
        "v4_tcp_doff_4": _tcp_with_raw_options(b"", doff_words=4),
        "v4_udp": v4 / UDP(sport=5353, dport=53) / Raw(b"q" * 30),
        "v4_udp_short_len": v4 / UDP(sport=1, dport=2, len=12) / Raw(b"abcdefgh"),
        "v4_udp_long_len": v4 / UDP(sport=1, dport=2, len=500) / Raw(b"abcdefgh"),
        "v4_udp_len_7": v4 / UDP(sport=1, dport=2, len=7) / Raw(b"abcdefgh"),
        "v4_udp_len_8": v4 / UDP(sport=1, dport=2, len=8) / Raw(b"abcdefgh"),
        "v4_udp_len_0": v4 / UDP(sport=1, dport=2, len=0) / Raw(b"abcdefgh"),
        "v4_icmp_echo": v4 / ICMP(type=8, id=0xBEEF, seq=3) / Raw(b"ping"),
        "v4_icmp_reply": v4 / ICMP(type=0, id=1, seq=65535) / Raw(b"pong"),
        "v4_icmp_unreach": v4 / ICMP(type=3, code=3) / bytes(IP(**V4) / UDP()),
        "v4_icmpv6_proto": IP(**V4, proto=58) / Raw(bytes([128, 0, 0, 0, 0, 9, 0, 10]) + b"x"),
        "v4_other_gre": IP(**V4, proto=47) / Raw(b"\x00\x00\x08\x00payload"),
        "v4_esp": IP(**V4, proto=50) / Raw(b"\x00" * 24),
        "v4_df_only": IP(**V4, flags="DF") / UDP(sport=3, dport=4) / Raw(b"d"),
        "v4_total_too_small": IP(**V4, len=20, proto=6) / Raw(bytes(TCP())),
        "v4_total_under_ihl": IP(**V4, len=19) / Raw(b"x" * 20),
        "v4_ihl_4": IP(**V4, ihl=4) / Raw(b"x" * 20),
        "v4_ihl_15": IP(**V4, ihl=15) / Raw(b"x" * 60),
        "v4_total_over": IP(**V4, len=1000) / UDP() / Raw(b"x" * 10),
        "v4_ping_of_death": IP(**V4, frag=8189, flags="MF", proto=17) / Raw(b"x" * 80),
        # Offset 65504 plus 31 data bytes is the largest datagram there can be; 32 is one too many.
        "v4_frag_max_ok": IP(**V4, frag=8188, proto=17) / Raw(b"x" * 31),
        "v4_frag_one_too_big": IP(**V4, frag=8188, proto=17) / Raw(b"x" * 32),
        "v4_frag_too_big_ihl_24": IP(**V4, frag=8188, options=[b"\x01" * 4], proto=17) / Raw(b"x" * 32),
        "v6_tcp": v6 / TCP(sport=1, dport=443, flags="A", options=[("MSS", 1220)]) / Raw(b"x" * 64),
        "v6_tcp_syn": v6 / TCP(sport=50000, dport=22, flags="S", options=[("MSS", 1440), ("WScale", 14)]),
        "v6_udp_chain": v6
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=53, dport=53)
        / Raw(b"q" * 20),
        "v6_icmpv6_echo": v6 / ICMPv6EchoRequest(id=5, seq=6, data=b"ping6"),
        "v6_icmpv6_reply": v6 / ICMPv6EchoReply(id=7, seq=8, data=b"pong6"),
        "v6_icmpv6_ns": v6 / ICMPv6ND_NS(tgt="2001:db8::2"),
        "v6_icmp_proto": IPv6(**V6, nh=1) / Raw(bytes([8, 0, 0, 0, 0, 1, 0, 2])),
        "v6_ah_tcp": v6 / AH(spi=1, seq=2, icv=b"\x00" * 12) / TCP(sport=9, dport=10),
        "v6_esp": IPv6(**V6, nh=50) / Raw(b"\x00" * 16),
        "v6_no_next": IPv6(**V6, nh=59) / Raw(b"trailing"),
        "v6_mobility": IPv6(**V6, nh=135) / Raw(bytes([59, 0]) + b"\x00" * 6),
        "v6_hip_shim6": IPv6(**V6, nh=139)
        / Raw(bytes([140, 0]) + b"\x00" * 6 + bytes([17, 0]) + b"\x00" * 6)
        / UDP(sport=1, dport=2),
        "v6_atomic_frag": v6 / IPv6ExtHdrFragment(id=0xFFFFFFFF) / UDP(sport=7, dport=8) / Raw(b"a"),
        "v6_two_frag_headers": v6
        / IPv6ExtHdrFragment(id=1, m=1)
        / IPv6ExtHdrFragment(id=2)
        / TCP(sport=1, dport=2),
        "v6_too_many_ext": IPv6(**V6, nh=60)
        / Raw((bytes([60, 0]) + b"\x00" * 6) * 8 + bytes([17, 0]) + b"x" * 6),
        "v6_eight_ext": IPv6(**V6, nh=60)
        / Raw(DSTOPT * 7 + bytes([17, 0]) + b"\x00" * 6)
        / UDP(sport=1, dport=2),
        "v6_jumbogram": IPv6(**V6, plen=0, nh=17) / Raw(bytes(UDP(sport=1, dport=2) / Raw(b"j"))),
        "v6_plen_over": IPv6(**V6, plen=400, nh=17) / Raw(bytes(UDP(sport=1, dport=2) / Raw(b"j"))),
        "v6_ext_len_over": IPv6(**V6, nh=0) / Raw(bytes([17, 200]) + b"\x00" * 6),
    }
    out = {name: bytes(p) for name, p in cases.items()}
    for i, f in enumerate(_frag(v4 / UDP(sport=1, dport=2) / Raw(b"f" * 1200), 400)):
        out[f"v4_udp_frag_{i}"] = f
    for i, f in enumerate(_frag(v4 / TCP(sport=5, dport=6, options=[("MSS", 536)]) / Raw(b"t" * 100), 16)):
        out[f"v4_tcp_frag_{i}"] = f
    frag6 = _frag6(v6 / IPv6ExtHdrFragment(id=9) / TCP(sport=3, dport=4) / Raw(b"g" * 2000), 1280)
    for i, f in enumerate(frag6):
        out[f"v6_tcp_frag_{i}"] = f
    hbh_frag = v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(id=3) / ICMPv6EchoRequest(data=b"e" * 1500)
    for i, f in enumerate(_frag6(hbh_frag, 1280)):
        out[f"v6_icmp_hbh_frag_{i}"] = f
    for name in list(out):
        out[name + "_padded"] = out[name] + b"\x00" * 10  # Ethernet padding beyond the IP length
    out["empty"] = b""
    out["version_5"] = b"\x55" + b"\x00" * 40
    out["version_0"] = b"\x00"
    return out


HAND_BUILT = hand_built()


@pytest.mark.parametrize("name", list(HAND_BUILT))
def test_hand_built_and_every_truncation(fast: Decoder, name: str) -> None:
    raw = HAND_BUILT[name]
    assert check_all(fast, truncations(raw)) == len(raw) + 1


def test_input_types_are_converted_like_python(fast: Decoder) -> None:
    raw = HAND_BUILT["v4_tcp_syn_opts_padded"]

    class Sub(bytes):
        pass

    inputs: list[bytes | bytearray | memoryview] = [
        bytearray(raw),
        memoryview(raw),
        memoryview(bytearray(raw))[2:],
        Sub(raw),
        bytearray(),
    ]
    assert check_all(fast, inputs) == len(inputs)
    c = fast(bytearray(raw), 0.0)
    assert type(c.raw) is bytes
    assert type(c.payload) is bytes
    with pytest.raises(TypeError):
        fast("not bytes", 0.0)
    with pytest.raises(TypeError):
        reference("not bytes", 0.0)


def test_ts_is_kept_as_given(fast: Decoder) -> None:
    for ts in (0.0, 1.5, 7, None):
        c = fast(HAND_BUILT["v4_udp"], ts)
        assert c.ts is ts


def test_decode_errors_are_the_python_constants(fast: Decoder) -> None:
    seen = {fast(raw, 0.0).error for raw in _mutations(random.Random(SEED), 5000)}
    for err in seen - {None}:
        assert any(err is e for e in DECODE_ERRORS), err
    assert "internal_error" not in seen


def test_setup_refuses_an_unknown_layout() -> None:
    from inline_ips.decode import _fastdecode

    class Fewer:
        __slots__ = tuple(n for n in SLOTS if n != "tls_sni")

    class More:
        __slots__ = (*SLOTS, "extra")

    class Renamed:
        __slots__ = tuple(n if n != "tls_sni" else "tls_snx" for n in SLOTS)

    class WithDict:
        __slots__ = (*SLOTS, "__dict__")

    class Other:  # right names, but class attributes instead of slots
        pass

    for name in SLOTS:
        setattr(Other, name, 0)
    template = Packet(b"", 0.0)
    for cls in (Fewer, More, Renamed, WithDict, Other, int, template):
        with pytest.raises(TypeError, match="layout"):
            _fastdecode.setup(cls, template, DECODE_ERRORS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="template"):
        _fastdecode.setup(Packet, object(), DECODE_ERRORS)  # type: ignore[arg-type]
    changed = Packet(b"", 0.0)
    changed.error = "x"
    with pytest.raises(TypeError, match="defaults"):
        _fastdecode.setup(Packet, changed, DECODE_ERRORS)
    with pytest.raises(ValueError, match="DECODE_ERRORS"):
        _fastdecode.setup(Packet, template, DECODE_ERRORS[:-1])
    with pytest.raises(ValueError, match="DECODE_ERRORS"):
        _fastdecode.setup(Packet, template, ("nope", *DECODE_ERRORS[1:]))
    # A refused setup leaves the last good one in place.
    diff = difference(_fastdecode.decode(HAND_BUILT["v6_tcp"], 1.0), decode_py(HAND_BUILT["v6_tcp"], 1.0))
    assert diff is None


@pytest.mark.parametrize(("env", "fast_expected"), [("1", False), ("0", None), ("", None)])
def test_pure_decode_environment_variable(env: str, fast_expected: bool | None) -> None:
    import os
    import subprocess

    code = (
        "import inline_ips.decode as d; print(d.FAST_DECODE, d.decode is d.decode_py, d.FAST_DECODE_REASON)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "INLINE_IPS_PURE_DECODE": env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(maxsplit=2)
    fast_flag, is_py = out[0] == "True", out[1] == "True"
    assert fast_flag is not is_py
    # With the variable unset or "0", the extension is built (else this module is skipped).
    assert fast_flag is (True if fast_expected is None else fast_expected), out


# ---- project traffic and corpus captures ------------------------------------------------------------


def test_project_synthetic_traffic(fast: Decoder) -> None:
    from inline_ips.lab import synth

    timed = (
        synth.browsing(pages=5)
        + synth.dns_lookups(count=30)
        + synth.tls_sessions(count=3)
        + synth.syn_flood(count=200)
        + synth.port_scan(range(1, 100))
        + synth.ping_sweep(hosts=30)
        + synth.icmp_flood(count=100)
        + synth.dns_amplification(count=20)
        + synth.http_attacks()
    )
    assert check_all(fast, (raw for _, raw in timed)) == len(timed)


def _capture_files() -> list[Path]:
    sv = sorted((CORPUS / "suricata-verify").rglob("*.pcap")) if CORPUS.is_dir() else []
    return sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng")) + sv


@pytest.mark.corpus
def test_corpus_captures(fast: Decoder) -> None:
    require_corpus(PCAPS)
    from inline_ips.source.pcap import PcapReader

    files = _capture_files()
    assert files
    total = 0
    for path in files:
        n = check_all(fast, (raw for _, raw in PcapReader(path)))
        assert n > 0, path
        total += n
    assert total > 1000


# ---- mutations and random bytes ---------------------------------------------------------------------

# Where length/offset/type fields sit: IPv4 ver/IHL, total length, flags/offset, protocol; IPv6
# payload length, next header; first extension header's next header/length; TCP data offset and
# option bytes at 20+; UDP length at 24.
_FIELD_OFFSETS = (0, 2, 3, 6, 7, 9, 4, 5, 40, 41, 42, 43, 44, 45, 46, 47, 48, 52, 32, 33, 34, 24, 25)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        if op == 0 and buf:  # bit flips
            for _ in range(rng.randint(1, 6)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncation
            del buf[rng.randint(0, len(buf)) :]
        elif op == 2 and buf:  # a byte of a header field, to an edge or random value
            i = rng.choice(_FIELD_OFFSETS) % len(buf)
            buf[i] = rng.choice((0, 1, 2, 4, 5, 6, 8, 0x0F, 0x10, 0x3F, 0x40, 0x45, 0x60, 0x80, 0xFF)) ^ (
                rng.randrange(256) if rng.random() < 0.3 else 0
            )
        elif op == 3 and len(buf) >= 6:  # a 16-bit length field near the real length
            i = rng.choice((2, 4, 24, 44, 64)) % (len(buf) - 1)
            value = max(0, min(0xFFFF, len(buf) + rng.randint(-48, 48)))
            buf[i : i + 2] = value.to_bytes(2, "big")
        elif op == 4 and buf:  # next header / protocol to an interesting number
            i = rng.choice((6, 9, 40, 48, 56))
            if i < len(buf):
                buf[i] = rng.choice((0, 1, 6, 17, 43, 44, 50, 51, 58, 59, 60, 135, 139, 140, 255))
        elif op == 5:  # padding or garbage
            buf += rng.randbytes(rng.randint(1, 32))
        elif buf:  # byte deletion / insertion
            i = rng.randrange(len(buf))
            if rng.random() < 0.5:
                del buf[i : i + rng.randint(1, 8)]
            else:
                buf[i:i] = rng.randbytes(rng.randint(1, 8))
    return bytes(buf)


def _mutations(rng: random.Random, count: int) -> Iterator[bytes]:
    seeds = list(HAND_BUILT.values())
    for _ in range(count):
        yield _mutate(rng, rng.choice(seeds))


def _random_bytes(rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        raw = rng.randbytes(rng.randint(0, 200))
        if raw and rng.random() < 0.8:
            raw = bytes([rng.choice((0x40, 0x60)) | (raw[0] & 0x0F)]) + raw[1:]
        yield raw


def test_mutations(fast: Decoder) -> None:
    assert check_all(fast, _mutations(random.Random(SEED), N_MUTATED)) == N_MUTATED


def test_random_bytes(fast: Decoder) -> None:
    assert check_all(fast, _random_bytes(random.Random(SEED + 1), N_RANDOM)) == N_RANDOM


# ---- reference counts and memory --------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_no_reference_or_memory_leak(fast: Decoder) -> None:
    """A million decodes (every path, conversions included) must not grow RSS or leak references."""
    rng = random.Random(SEED + 2)
    pool: list[bytes | bytearray] = [*HAND_BUILT.values(), *_mutations(rng, 300)]
    pool += [bytearray(r) for r in pool[:20]]
    ts = 12.5
    # The shared objects the decoder hands out (singletons, small ints, the error strings,
    # the template's defaults) and the inputs: their counts must come back exactly.
    tracked = [Packet, ts, b"", None, True, False, 0, 1, -1, 4, 6, 17, *DECODE_ERRORS, *pool]
    for raw in pool * 20:  # warm-up: caches, allocator arenas
        fast(raw, ts)
    del raw
    gc.collect()
    gc.disable()  # no collection may free unrelated objects while the counts are compared
    try:
        # An array, not a list: a list of counts would itself hold references to small ints.
        refs_before = array("q", (sys.getrefcount(o) for o in tracked))
        objects_before = len(gc.get_objects())
        rss_before = _rss_bytes()
        rounds = 1_000_000 // len(pool) + 1
        for _ in range(rounds):
            for raw in pool:
                fast(raw, ts)
        del raw
        # Only large ints until the counts are taken: a 0 or a small difference would add a reference.
        objects_after = len(gc.get_objects())
        rss_after = _rss_bytes()
        refs_after = array("q", (sys.getrefcount(o) for o in tracked))
    finally:
        gc.enable()
    assert rounds * len(pool) >= 1_000_000
    rss_growth = rss_after - rss_before
    # One leaked 32-byte object per decode would be 32 MB.
    assert rss_growth < 2 * 1024 * 1024, f"RSS grew by {rss_growth} bytes"
    assert objects_after == objects_before
    changed = [
        (repr(o)[:40], a - b) for o, a, b in zip(tracked, refs_after, refs_before, strict=True) if a != b
    ]
    assert not changed
