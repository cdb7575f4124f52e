"""Fuzz target: the packet decoders, the compiled one against the pure-Python reference.

Does: decode each input with :func:`inline_ips.decode.decode_py` and, when the
C extension is built and passes its self-check, with ``_fastdecode``'s
decoder; every ``Packet`` slot must be equal and of the same type, and
``error`` must be one of ``DECODE_ERRORS`` (never ``internal_error``, which
marks an exception caught inside the decoder). The payload must be the slice
of ``raw`` it claims to be. Fragments go on into a small, long-lived
:class:`~inline_ips.decode.defrag.Defragmenter` (its bounds are asserted
after every input) and a reassembled datagram is decoded again, by both.

Does not: build the C decoder with libFuzzer's own instrumentation (only the
Python code gets coverage feedback; the C side is checked by the
differential comparison), or look at anything past L4.
"""

from __future__ import annotations

from fuzz.common import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from inline_ips.decode import DECODE_ERRORS, INTERNAL_ERROR, decode_py, load_fast_decoder
    from inline_ips.decode.defrag import Defragmenter
    from inline_ips.packet import FRAG_PIECE, Packet

FAST, FAST_REASON = load_fast_decoder()
MAX_DATAGRAMS = 16
MAX_DATAGRAM_BYTES = 16384
_DEFRAG = Defragmenter(
    max_datagrams=MAX_DATAGRAMS,
    max_datagram_bytes=MAX_DATAGRAM_BYTES,
    timeout=5.0,
    max_fragments_per_datagram=16,
)
_clock = [0.0]


class MismatchError(AssertionError):
    """The two decoders disagree, or a decoder broke its own contract."""


def check(raw: bytes, ts: float) -> Packet:
    """Decode ``raw`` with both decoders, compare them slot by slot, and check the reference's contract."""
    ref = decode_py(raw, ts)
    if ref.error is not None and ref.error not in DECODE_ERRORS:
        raise MismatchError(f"unknown decode error {ref.error!r} for {raw.hex()}")
    if ref.error == INTERNAL_ERROR:
        raise MismatchError(f"decode_py caught an exception (internal_error) for {raw.hex()}")
    if ref.payload and ref.raw[ref.payload_offset : ref.payload_offset + len(ref.payload)] != ref.payload:
        raise MismatchError(f"payload is not raw[payload_offset:...] for {raw.hex()}")
    if FAST is not None:
        got = FAST(raw, ts)
        for name in Packet.__slots__:
            want, have = getattr(ref, name), getattr(got, name)
            if type(want) is not type(have) or want != have:
                raise MismatchError(f"slot {name}: python {want!r} != C {have!r} for {raw.hex()}")
        if got.error is not ref.error:  # the very same interned string objects
            raise MismatchError(f"error string object differs for {raw.hex()}")
    return ref


def test_one_input(data: bytes) -> None:
    _clock[0] += 0.01
    ts = _clock[0]
    pkt = check(data, ts)
    if pkt.frag == FRAG_PIECE:
        whole = _DEFRAG.feed(pkt)
        if len(_DEFRAG) > MAX_DATAGRAMS:
            raise MismatchError(f"defragmenter holds {len(_DEFRAG)} datagrams, bound {MAX_DATAGRAMS}")
        if whole is not None:
            if len(whole) > MAX_DATAGRAM_BYTES + 60 + 40 * 8:  # data bound plus the first fragment's headers
                raise MismatchError(
                    f"reassembled {len(whole)} bytes past the {MAX_DATAGRAM_BYTES}-byte bound"
                )
            check(whole, ts)


if __name__ == "__main__":
    fuzz(test_one_input)
