"""The SPDY/3.1 codec (nbkube/apiserver/spdy.py): round trips, header compression with the fixed
dictionary over one context per direction, and clear errors for bad frames."""

from __future__ import annotations

import glob
import struct
import zlib

import pytest

from nbkube.apiserver import spdy

FRAMES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}),
    spdy.SynStream(
        3, {"streamtype": "data", "a": "x\x00y"}, associated_to=1, priority=7, fin=True, unidirectional=True
    ),
    spdy.SynReply(1),
    spdy.SynReply(3, {"x-stream-protocol-version": "portforward.k8s.io"}, fin=True),
    spdy.Headers(5, {"k": "v"}, fin=True),
    spdy.DataFrame(1, b"hello"),
    spdy.DataFrame(3, b"", fin=True),
    spdy.DataFrame(0x7FFFFFFF, bytes(range(256)) * 300),
    spdy.RstStream(7, spdy.CANCEL),
    spdy.Settings(((0, 7, 65536), (1, 4, 100))),
    spdy.Settings(clear=True),
    spdy.Ping(1),
    spdy.Ping(0xFFFFFFFF),
    spdy.GoAway(9, spdy.GOAWAY_INTERNAL_ERROR),
    spdy.WindowUpdate(1, 0x7FFFFFFF),
]


def test_the_dictionary_is_kubectls() -> None:
    # every kubectl carries the same fixed dictionary (moby/spdystream): ours must be its bytes
    binaries = sorted(glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*")) + ["/usr/bin/kubectl"]
    assert len(spdy.DICTIONARY) == 1423 and spdy.DICTIONARY.endswith(b"enq=0.")
    for path in binaries[:2]:
        with open(path, "rb") as f:
            blob = f.read()
        at = blob.find(spdy.DICTIONARY[:64])
        assert at >= 0 and blob[at : at + len(spdy.DICTIONARY)] == spdy.DICTIONARY, path


def test_every_frame_round_trips_in_one_piece_and_byte_by_byte() -> None:
    enc = spdy.Encoder()  # one compression context for the whole session
    wire = b"".join(enc.encode(f) for f in FRAMES)
    assert spdy.Decoder().feed(wire) == FRAMES
    decoder, got = spdy.Decoder(), []
    for i in range(len(wire)):
        got += decoder.feed(wire[i : i + 1])
    assert got == FRAMES


def test_the_wire_layout_of_control_and_data_frames() -> None:
    enc = spdy.Encoder()
    assert enc.encode(spdy.Ping(5)) == bytes.fromhex("80030006 00000004 00000005")
    assert enc.encode(spdy.RstStream(3, 5)) == bytes.fromhex("80030003 00000008 00000003 00000005")
    assert enc.encode(spdy.DataFrame(3, b"ab", fin=True)) == bytes.fromhex("00000003 01000002 6162")
    syn = enc.encode(spdy.SynStream(1, {}, priority=2, unidirectional=True))
    assert syn[:4] == bytes.fromhex("80030001") and syn[4] == 0x02  # type 1, flag unidirectional
    assert syn[8:18] == bytes.fromhex("00000001 00000000 4000")  # ids, priority 2 in the top 3 bits


def test_header_blocks_use_the_dictionary_and_one_context_per_direction() -> None:
    enc = spdy.Encoder()
    headers = {"streamtype": "data", "port": "80", "requestid": "0"}
    first = enc.encode(spdy.SynStream(1, headers))
    second = enc.encode(spdy.SynStream(3, headers))
    assert len(second) < len(first)  # the second block refers back into the same deflate stream
    block = first[18:]
    # a zlib stream with a preset dictionary: its id is the dictionary's Adler-32
    assert block[1] & 0x20 and struct.unpack(">I", block[2:6])[0] == zlib.adler32(spdy.DICTIONARY)
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(block)
    raw = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(block)
    assert raw[:4] == b"\x00\x00\x00\x03" and b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x04data" in raw
    # the second block only decodes in the context the first left behind
    dec = spdy.Decoder()
    assert dec.feed(first + second)[1] == spdy.SynStream(3, headers)
    with pytest.raises(spdy.FrameError, match="does not decompress with the SPDY/3 dictionary"):
        spdy.Decoder().feed(second)


def test_a_block_made_by_another_compressor_decodes() -> None:
    # what Go's compress/zlib writes: best compression, the dictionary, a sync flush per block
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    raw = b"\x00\x00\x00\x01" + b"\x00\x00\x00\x04port" + b"\x00\x00\x00\x044000"
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    frame = struct.pack(">HHI", 0x8003, 2, len(block) + 4) + struct.pack(">I", 9) + block
    assert spdy.Decoder().feed(frame) == [spdy.SynReply(9, {"port": "4000"})]


def _control(kind: int, body: bytes, flags: int = 0, version: int = 3) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, kind, flags << 24 | len(body)) + body


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (_control(6, b"\x00\x00\x00\x01", version=2), "SPDY version 2 is not spoken here"),
        (_control(6, b"\x00\x00\x00\x01\x00"), "a PING frame of 5 bytes"),
        (_control(3, b"\x00\x00\x00\x01"), "a RST_STREAM frame of 4 bytes"),
        (_control(1, b"\x00\x00\x00\x01"), "a SYN_STREAM frame of 4 bytes"),
        (_control(4, b"\x00\x00\x00\x02" + b"\x00" * 8), "cannot hold its 2 entries"),
        (_control(2, b"\x00\x00\x00\x01garbage!"), "does not decompress with the SPDY/3 dictionary"),
    ],
)
def test_bad_frames_break_the_session_with_a_clear_error(wire: bytes, message: str) -> None:
    dec = spdy.Decoder()
    with pytest.raises(spdy.FrameError, match=message) as info:
        dec.feed(wire)
    assert info.value.stream_id == 0
    with pytest.raises(spdy.FrameError, match=message):  # a broken session stays broken
        dec.feed(spdy.Encoder().encode(spdy.Ping(1)))


def test_a_frame_past_the_limit_is_refused_before_it_is_read() -> None:
    dec = spdy.Decoder(max_frame=1024)
    with pytest.raises(spdy.FrameError, match="a frame of 2048 bytes is larger than the limit of 1024"):
        dec.feed(struct.pack(">II", 1, 2048))  # only the header has arrived


def _raw_block(pairs: list[tuple[bytes, bytes]], count: int | None = None, extra: bytes = b"") -> bytes:
    raw = struct.pack(">I", len(pairs) if count is None else count)
    for n, v in pairs:
        raw += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return raw + extra


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_raw_block([(b"Port", b"80")]), 'header name "Port" must be non-empty and lower-case'),
        (_raw_block([(b"", b"80")]), 'header name "" must be'),
        (_raw_block([(b"a", b"1"), (b"a", b"2")]), 'header "a" appears twice'),
        (_raw_block([(b"a", b"1")], count=2), "pair 1 of 2: its name length is cut off"),
        (_raw_block([(b"a", b"1")], extra=b"zz"), "2 bytes after its 1 pairs"),
        (b"\x00\x00", "too short for its count"),
        (_raw_block([(b"a", b"\xff")]), "pair 0 is not UTF-8"),
    ],
)
def test_a_bad_header_block_breaks_only_its_stream(raw: bytes, message: str) -> None:
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">II", 5, 0) + b"\x00\x00" + block
    ping = _control(6, b"\x00\x00\x00\x03")
    dec = spdy.Decoder()
    dec.push(_control(1, body) + ping)
    with pytest.raises(spdy.FrameError, match=message) as info:
        dec.next()
    assert info.value.stream_id == 5 and info.value.status == spdy.PROTOCOL_ERROR
    assert dec.next() == spdy.Ping(3)  # the frames after it still decode


def test_unknown_control_frames_are_skipped_and_window_update_zero_refused() -> None:
    dec = spdy.Decoder()
    assert dec.feed(_control(10, b"anything") + _control(6, b"\x00\x00\x00\x07")) == [spdy.Ping(7)]
    with pytest.raises(spdy.FrameError, match="WINDOW_UPDATE with a delta of 0") as info:
        dec.feed(_control(9, struct.pack(">II", 3, 0)))
    assert info.value.stream_id == 3 and info.value.status == spdy.FLOW_CONTROL_ERROR


def test_a_compressed_block_past_the_limit_is_refused() -> None:
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    raw = _raw_block([(b"big", b"x" * (spdy.MAX_HEADER_BLOCK + 10))])
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)  # a few KiB on the wire
    with pytest.raises(spdy.FrameError, match="larger than 1048576 bytes"):
        spdy.Decoder().feed(_control(8, struct.pack(">I", 1) + block))


def test_the_encoder_refuses_what_does_not_fit() -> None:
    enc = spdy.Encoder()
    with pytest.raises(ValueError, match="stream id 2147483648 does not fit in 31 bits"):
        enc.encode(spdy.DataFrame(1 << 31, b""))
    with pytest.raises(ValueError, match="priority 8 is not between 0 and 7"):
        enc.encode(spdy.SynStream(1, {}, priority=8))
    with pytest.raises(ValueError, match="header name cannot be empty"):
        enc.encode(spdy.SynReply(1, {"": "x"}))
    with pytest.raises(ValueError, match="larger than 16777215"):
        enc.encode(spdy.DataFrame(1, bytes(1 << 24)))
