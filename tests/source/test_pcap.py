"""Tests for inline_ips.source.pcap: pcap/pcapng reading, link-layer stripping, corrupt files."""

from __future__ import annotations

import struct
import time
from decimal import Decimal
from pathlib import Path

import pytest

from inline_ips.source.pcap import PcapError, PcapReader, read_ip_packets

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
PCAPS = CORPUS / "pcaps"

# Two small datagrams, built by hand so the tests do not depend on Scapy's builders.
# IPv4 TCP SYN 192.168.0.1:54321 -> 192.168.0.2:80, total length 40.
IPV4_TCP = (
    bytes.fromhex("45000028 00014000 40060000 c0a80001 c0a80002")  # IPv4 header
    + bytes.fromhex("d4310050 00000001 00000000 5002ffff 00000000")  # TCP header
)
# IPv6 UDP [2001:db8::1]:53 -> [2001:db8::2]:54321 with a 1-byte payload.
IPV6_UDP = (
    bytes.fromhex("60000000 00091140")  # IPv6 header up to the addresses
    + bytes.fromhex("20010db8 00000000 00000000 00000001")
    + bytes.fromhex("20010db8 00000000 00000000 00000002")
    + bytes.fromhex("0035d431 00090000 41")  # UDP header and payload
)
ETH_SRC_DST = bytes.fromhex("020000000002" + "020000000001")
ARP_BODY = bytes.fromhex("0001080006040001") + bytes(20)


def eth(ethertype: int, body: bytes, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """An Ethernet frame; ``tags`` are (TPID, VLAN id) pairs, outermost first."""
    out = ETH_SRC_DST
    for tpid, vid in tags:
        out += struct.pack(">HH", tpid, vid)
    return out + struct.pack(">H", ethertype) + body


def pcap_file(
    records: list[tuple[int, int, bytes]],
    linktype: int = 1,
    *,
    big: bool = False,
    nano: bool = False,
) -> bytes:
    """A classic pcap file; records are (seconds, fraction, frame)."""
    order = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, frame in records:
        out += struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def ng_block(order: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def ng_shb(order: str) -> bytes:
    return ng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


def ng_idb(order: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    opts = ng_option(order, 2, b"eth0")  # if_name, to check unknown options are stepped over
    if tsresol is not None:
        opts += ng_option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += ng_option(order, 14, struct.pack(order + "q", tsoffset))
    opts += struct.pack(order + "HH", 0, 0)
    return ng_block(order, 1, struct.pack(order + "HHI", linktype, 0, 65535) + opts)


def ng_epb(order: str, if_id: int, ts: int, frame: bytes) -> bytes:
    head = struct.pack(order + "IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
    return ng_block(order, 6, head + _pad4(frame))


def ng_spb(order: str, frame: bytes) -> bytes:
    return ng_block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def ng_pb(order: str, if_id: int, ts: int, frame: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", if_id, 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
    return ng_block(order, 2, head + frame)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- files written by Scapy -------------------------------------------------------------------


def test_scapy_pcap_ethernet(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import EDecimal, wrpcap

    pkts = [
        Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1234, dport=80, flags="S"),
        Ether() / ARP(pdst="192.0.2.9"),
        Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / b"hello",
    ]
    for i, p in enumerate(pkts):
        p.time = EDecimal(f"1700000000.{i + 1:06d}")
    path = tmp_path / "scapy.pcap"
    wrpcap(str(path), pkts)

    reader = PcapReader(path)
    got = list(reader)
    assert got == [
        (1700000000.000001, bytes(pkts[0][IP])),
        (1700000000.000003, bytes(pkts[2][IPv6])),
    ]
    assert (reader.frames, reader.ip_packets, reader.non_ip_skipped, reader.truncated) == (3, 2, 1, 0)
    assert reader.format == "pcap"
    assert reader.bytes_read == reader.file_size == path.stat().st_size


def test_scapy_pcapng(tmp_path: Path) -> None:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    from scapy.utils import EDecimal, PcapNgWriter

    pkts = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2", id=i) / ICMP(seq=i) for i in range(5)]
    for i, p in enumerate(pkts):
        p.time = EDecimal(f"1712345678.{i * 111111:06d}")
    path = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(path))
    for p in pkts:
        writer.write(p)
    writer.close()

    reader = PcapReader(path)
    got = list(reader)
    assert [ts for ts, _ in got] == [float(Decimal(f"1712345678.{i * 111111:06d}")) for i in range(5)]
    assert [b for _, b in got] == [bytes(p[IP]) for p in pkts]
    assert reader.format == "pcapng"
    assert (reader.frames, reader.ip_packets, reader.truncated) == (5, 5, 0)


# -- hand-built classic pcap ------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_classic_byte_order_and_resolution(tmp_path: Path, big: bool, nano: bool) -> None:
    frac = 123456789 if nano else 123456
    data = pcap_file([(1700000000, frac, eth(0x0800, IPV4_TCP))], big=big, nano=nano)
    got = list(read_ip_packets(write(tmp_path, "x.pcap", data)))
    expected_ts = 1700000000123456789 / 10**9 if nano else 1700000000123456 / 10**6
    assert got == [(expected_ts, IPV4_TCP)]


LINK_CASES: list[tuple[str, int, bytes, bytes | None]] = [
    # name, link type, frame, expected datagram (None: skipped as non-IP)
    ("ethernet-ipv4", 1, eth(0x0800, IPV4_TCP), IPV4_TCP),
    ("ethernet-ipv6", 1, eth(0x86DD, IPV6_UDP), IPV6_UDP),
    ("ethernet-arp", 1, eth(0x0806, ARP_BODY), None),
    ("ethernet-lldp", 1, eth(0x88CC, bytes(30)), None),
    ("ethernet-short", 1, ETH_SRC_DST, None),
    ("vlan-8021q", 1, eth(0x0800, IPV4_TCP, ((0x8100, 100),)), IPV4_TCP),
    ("vlan-qinq", 1, eth(0x86DD, IPV6_UDP, ((0x88A8, 10), (0x8100, 20))), IPV6_UDP),
    ("vlan-triple", 1, eth(0x0800, IPV4_TCP, ((0x9100, 1), (0x88A8, 2), (0x8100, 3))), IPV4_TCP),
    ("vlan-arp", 1, eth(0x0806, ARP_BODY, ((0x8100, 100),)), None),
    ("vlan-cut", 1, ETH_SRC_DST + b"\x81\x00\x00", None),
    # Ethernet pads short frames to 60 bytes, and some captures keep the FCS.
    ("ethernet-padding", 1, eth(0x0800, IPV4_TCP + bytes(6)), IPV4_TCP),
    ("ethernet-fcs", 1, eth(0x86DD, IPV6_UDP + b"\xde\xad\xbe\xef"), IPV6_UDP),
    ("sll-ipv4", 113, struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + IPV4_TCP, IPV4_TCP),
    ("sll-ipv6", 113, struct.pack(">HHH8sH", 4, 1, 6, bytes(8), 0x86DD) + IPV6_UDP, IPV6_UDP),
    ("sll-arp", 113, struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0806) + ARP_BODY, None),
    ("sll2-ipv4", 276, struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + IPV4_TCP, IPV4_TCP),
    ("sll2-ipv6", 276, struct.pack(">HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, bytes(8)) + IPV6_UDP, IPV6_UDP),
    ("sll2-arp", 276, struct.pack(">HHIHBB8s", 0x0806, 0, 2, 1, 0, 6, bytes(8)) + ARP_BODY, None),
    ("raw101-ipv4", 101, IPV4_TCP, IPV4_TCP),
    ("raw101-ipv6", 101, IPV6_UDP, IPV6_UDP),
    ("raw101-garbage", 101, b"\x00\x01\x02", None),
    ("raw12", 12, IPV4_TCP, IPV4_TCP),
    ("raw14", 14, IPV6_UDP, IPV6_UDP),
    ("ipv4-228", 228, IPV4_TCP, IPV4_TCP),
    ("ipv6-229", 229, IPV6_UDP, IPV6_UDP),
    ("null-le-inet", 0, struct.pack("<I", 2) + IPV4_TCP, IPV4_TCP),
    ("null-be-inet", 0, struct.pack(">I", 2) + IPV4_TCP, IPV4_TCP),
    ("null-le-inet6-macos", 0, struct.pack("<I", 30) + IPV6_UDP, IPV6_UDP),
    ("null-be-inet6-freebsd", 0, struct.pack(">I", 28) + IPV6_UDP, IPV6_UDP),
    ("null-linux-inet6", 0, struct.pack("<I", 10) + IPV6_UDP, IPV6_UDP),
    ("null-other-family", 0, struct.pack("<I", 7) + IPV4_TCP, None),
    ("loop-inet", 108, struct.pack(">I", 2) + IPV4_TCP, IPV4_TCP),
]


@pytest.mark.parametrize(
    ("linktype", "frame", "expected"),
    [case[1:] for case in LINK_CASES],
    ids=[case[0] for case in LINK_CASES],
)
def test_link_types(tmp_path: Path, linktype: int, frame: bytes, expected: bytes | None) -> None:
    reader = PcapReader(write(tmp_path, "link.pcap", pcap_file([(10, 500000, frame)], linktype)))
    got = list(reader)
    assert reader.frames == 1
    if expected is None:
        assert got == []
        assert reader.non_ip_skipped == 1
    else:
        assert got == [(10.5, expected)]
        assert reader.non_ip_skipped == 0


def test_ipv4_zero_total_length_keeps_frame(tmp_path: Path) -> None:
    # TSO captures on the sending host record a total length of 0: keep the bytes as they are.
    tso = IPV4_TCP[:2] + b"\x00\x00" + IPV4_TCP[4:] + b"payload"
    got = list(read_ip_packets(write(tmp_path, "tso.pcap", pcap_file([(1, 0, eth(0x0800, tso))]))))
    assert got == [(1.0, tso)]


def test_fcs_bits_in_link_type_field(tmp_path: Path) -> None:
    # The upper bits of the header's link type carry FCS length information.
    data = pcap_file(
        [(1, 0, eth(0x0800, IPV4_TCP + b"\x01\x02\x03\x04"))], linktype=(0x1 << 28) | (1 << 26) | 1
    )
    assert list(read_ip_packets(write(tmp_path, "fcs.pcap", data))) == [(1.0, IPV4_TCP)]


def test_unsupported_link_type(tmp_path: Path) -> None:
    path = write(tmp_path, "wifi.pcap", pcap_file([(1, 0, b"\x00" * 30)], linktype=105))
    with pytest.raises(PcapError, match=r"^wifi\.pcap: unsupported link type 105$"):
        list(read_ip_packets(path))


# -- hand-built pcapng ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcapng_blocks(tmp_path: Path, order: str) -> None:
    data = (
        ng_shb(order)
        + ng_idb(order, 1)  # if 0: Ethernet, microseconds
        + ng_idb(order, 101, tsresol=9, tsoffset=100)  # if 1: raw IP, nanoseconds, +100 s
        + ng_idb(order, 113, tsresol=0x80 | 10)  # if 2: SLL, 1/1024 s
        + ng_block(order, 4, b"\x00\x00\x00\x00")  # name resolution block: skipped
        + ng_epb(order, 0, 1700000000_000001, eth(0x0800, IPV4_TCP))
        + ng_epb(order, 1, 5_000000007, IPV6_UDP)
        + ng_epb(order, 0, 1700000001_000000, eth(0x0806, ARP_BODY))
        + ng_epb(order, 2, 1024 * 3 + 512, struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + IPV4_TCP)
        + ng_spb(order, eth(0x86DD, IPV6_UDP))  # no timestamp: keeps the previous one
        + ng_pb(order, 0, 1700000002_250000, eth(0x0800, IPV4_TCP))
        + ng_block(order, 5, bytes(16))  # interface statistics block: skipped
        + ng_block(order, 0x00000BAD, b"custom")  # custom block: skipped
    )
    reader = PcapReader(write(tmp_path, "blocks.pcapng", data))
    got = list(reader)
    assert got == [
        (1700000000_000001 / 10**6, IPV4_TCP),
        (5_000000007 / 10**9 + 100, IPV6_UDP),
        (3.5, IPV4_TCP),
        (3.5, IPV6_UDP),
        (1700000002.25, IPV4_TCP),
    ]
    assert (reader.frames, reader.ip_packets, reader.non_ip_skipped, reader.truncated) == (6, 5, 1, 0)
    assert reader.bytes_read == reader.file_size == len(data)


def test_pcapng_sections_switch_byte_order(tmp_path: Path) -> None:
    data = (
        ng_shb("<")
        + ng_idb("<", 1)
        + ng_epb("<", 0, 1_000000, eth(0x0800, IPV4_TCP))
        # A new section: big-endian, and its interface 0 is raw IP now.
        + ng_shb(">")
        + ng_idb(">", 101)
        + ng_epb(">", 0, 2_000000, IPV6_UDP)
    )
    assert list(read_ip_packets(write(tmp_path, "two.pcapng", data))) == [(1.0, IPV4_TCP), (2.0, IPV6_UDP)]


def test_pcapng_undeclared_interface(tmp_path: Path) -> None:
    data = ng_shb("<") + ng_idb("<", 1) + ng_epb("<", 3, 0, eth(0x0800, IPV4_TCP))
    with pytest.raises(PcapError, match=r"^bad\.pcapng: packet for undeclared interface 3 at byte \d+$"):
        list(read_ip_packets(write(tmp_path, "bad.pcapng", data)))


def test_pcapng_bad_block_length(tmp_path: Path) -> None:
    good = ng_shb("<") + ng_idb("<", 1)
    bad = struct.pack("<II", 6, 10) + bytes(8)  # length 10: not a multiple of 4
    with pytest.raises(PcapError, match=rf"^len\.pcapng: bad block length 10 at byte {len(good)}$"):
        list(read_ip_packets(write(tmp_path, "len.pcapng", good + bad)))


def test_pcapng_block_length_mismatch(tmp_path: Path) -> None:
    good = ng_shb("<") + ng_idb("<", 1)
    block = bytearray(ng_epb("<", 0, 0, eth(0x0800, IPV4_TCP)))
    block[-4:] = struct.pack("<I", 12)
    with pytest.raises(PcapError, match=rf"^mm\.pcapng: block length mismatch at byte {len(good)}$"):
        list(read_ip_packets(write(tmp_path, "mm.pcapng", good + bytes(block))))


def test_pcapng_caplen_beyond_block(tmp_path: Path) -> None:
    good = ng_shb("<") + ng_idb("<", 1)
    body = struct.pack("<IIIII", 0, 0, 0, 500, 500) + bytes(8)
    with pytest.raises(PcapError, match=rf"^cap\.pcapng: truncated block at byte {len(good)}$"):
        list(read_ip_packets(write(tmp_path, "cap.pcapng", good + ng_block("<", 6, body))))


def test_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    data = struct.pack("<III", 0x0A0D0D0A, 28, 0x12345678) + bytes(16)
    with pytest.raises(PcapError, match=r"^bom\.pcapng: bad byte-order magic"):
        list(read_ip_packets(write(tmp_path, "bom.pcapng", data)))


# -- not a capture, truncated -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", r"^capture\.pcap: not a pcap or pcapng file \(magic 0x47455420\)$"),
        (b"", r"^capture\.pcap: not a pcap or pcapng file \(0 bytes long\)$"),
        (b"\xd4\xc3", r"^capture\.pcap: not a pcap or pcapng file \(2 bytes long\)$"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", r"^capture\.pcap: truncated file header$"),
    ],
    ids=["text", "empty", "tiny", "short-header"],
)
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "capture.pcap", content)
    with pytest.raises(PcapError, match=message):
        list(read_ip_packets(path))


def test_impossible_record_length(tmp_path: Path) -> None:
    data = pcap_file([]) + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 0x7FFFFFFF)
    with pytest.raises(PcapError, match=r"^huge\.pcap: record length 2147483647 is impossible at byte 24$"):
        list(read_ip_packets(write(tmp_path, "huge.pcap", data)))


@pytest.mark.parametrize("cut", [1, 10, 16, 17, 30], ids=lambda n: f"cut{n}")
def test_truncated_pcap_yields_complete_records(tmp_path: Path, cut: int) -> None:
    frames = [eth(0x0800, IPV4_TCP)] * 3
    data = pcap_file([(i, 0, f) for i, f in enumerate(frames)])
    last_record = 16 + len(frames[-1])
    path = write(tmp_path, "cut.pcap", data[: len(data) - last_record + cut])
    reader = PcapReader(path)
    assert list(reader) == [(0.0, IPV4_TCP), (1.0, IPV4_TCP)]
    assert (reader.frames, reader.truncated) == (2, 1)
    assert reader.bytes_read == reader.file_size


@pytest.mark.parametrize("cut", [3, 8, 20, 40], ids=lambda n: f"cut{n}")
def test_truncated_pcapng_yields_complete_blocks(tmp_path: Path, cut: int) -> None:
    head = ng_shb("<") + ng_idb("<", 101)
    data = head + ng_epb("<", 0, 1_000000, IPV4_TCP) + ng_epb("<", 0, 2_000000, IPV6_UDP)
    reader = PcapReader(write(tmp_path, "cut.pcapng", data[: len(data) - cut]))
    assert list(reader) == [(1.0, IPV4_TCP)]
    assert (reader.frames, reader.truncated) == (1, 1)


def test_header_only_file_is_empty_not_truncated(tmp_path: Path) -> None:
    reader = PcapReader(write(tmp_path, "empty.pcap", pcap_file([])))
    assert list(reader) == []
    assert (reader.frames, reader.truncated, reader.bytes_read) == (0, 0, 24)


def test_iterating_twice_resets_counters(tmp_path: Path) -> None:
    reader = PcapReader(write(tmp_path, "twice.pcap", pcap_file([(1, 0, eth(0x0800, IPV4_TCP))])))
    assert list(reader) == list(reader)
    assert reader.frames == reader.ip_packets == 1


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_ip_packets(tmp_path / "absent.pcap"))


# -- the third-party corpus -------------------------------------------------------------------

# Files big enough that Scapy takes seconds to dissect them.
_BIG = {
    "synflood_spoofed__stopddos.pcap",
    "icmp_flood__pcapanalizer.pcap",
    "synflood_ecn_cwr__stopddos.pcapng",
    "synack_reflection__stopddos.pcap",
    "portscan_udp__pcaphunt.pcap",
    "portscan_tcp_ack__pcaphunt.pcap",
    "portscan_tcp_syn__pcaphunt.pcap",
}


def _corpus_files() -> list[object]:
    if not PCAPS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {PCAPS}"))]
    return [
        pytest.param(
            p, id=p.name, marks=[pytest.mark.corpus] + ([pytest.mark.slow] if p.name in _BIG else [])
        )
        for p in sorted(PCAPS.glob("*.pcap*"))
    ]


@pytest.mark.parametrize("path", _corpus_files())
def test_corpus_matches_scapy(path: Path) -> None:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    reader = PcapReader(path)
    mine = list(reader)
    frames = rdpcap(str(path))
    ref = [(p, layer) for p in frames if (layer := p.getlayer(IP) or p.getlayer(IPv6)) is not None]

    assert len(mine) == len(ref)
    assert reader.frames == len(frames)
    assert reader.ip_packets + reader.non_ip_skipped == reader.frames
    assert reader.truncated == 0
    assert reader.bytes_read == reader.file_size
    for (ts, data), (frame, layer) in zip(mine, ref, strict=True):
        assert ts == float(frame.time)
        # Scapy's rebuilt bytes can differ (it re-encodes some protocols), so compare
        # with the bytes it dissected from, which include any link-layer trailer.
        assert layer.original.startswith(data)
        stated = layer.len if layer.version == 4 else 40 + layer.plen
        assert len(data) == min(stated, len(layer.original))


@pytest.mark.corpus
def test_corpus_big_file_is_fast() -> None:
    path = PCAPS / "synflood_spoofed__stopddos.pcap"
    if not path.is_file():
        pytest.skip(f"corpus file not found: {path}")
    start = time.perf_counter()
    count = sum(1 for _ in read_ip_packets(path))
    elapsed = time.perf_counter() - start
    assert count == 37841
    # Measured around 0.06 s; the bound leaves room for slow CI machines.
    assert elapsed < 1.0, f"reading {count} packets took {elapsed:.2f} s"
