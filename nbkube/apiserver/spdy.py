"""SPDY/3.1 framing: the frames kubectl's port-forward (and exec/attach before 1.30) speaks.

Why: `kubectl port-forward` multiplexes its connections over SPDY/3.1 (plainly upgraded, or
tunnelled inside a WebSocket since 1.31), and kubectl 1.28/1.29 do the same for exec, attach and
cp. PyPI has no maintained SPDY library, and the part kubectl uses is small, so this module is our
own codec of the draft-3.1 wire format; nbkube/apiserver/spdysession.py keeps the session state.

Wire format (all integers big-endian):
- control frame: 1 bit set | 15-bit version (3) | 16-bit type | 8-bit flags | 24-bit length | data
- data frame:    1 bit clear | 31-bit stream id | 8-bit flags | 24-bit length | data
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are `count, (len, name, len, value)*` (32-bit
  counts and lengths), zlib-compressed with the fixed SPDY/3 dictionary. Each direction keeps ONE
  compression context for the whole session: every block ends with a sync flush, and the next
  block continues the same deflate stream. So an Encoder and a Decoder each belong to one
  direction of one session, and frames must be encoded in the order they are sent.

Deviations, on purpose: names are refused unless lower-case and unique (as the spec says);
unknown control frame types are skipped (the spec says to ignore them); the decompressed size of
one header block is bounded (MAX_HEADER_BLOCK) so a small frame cannot inflate without limit.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "DICTIONARY",
    "MAX_FRAME_LENGTH",
    "MAX_HEADER_BLOCK",
    "VERSION",
    "DataFrame",
    "Decoder",
    "Encoder",
    "Frame",
    "FrameError",
    "GoAway",
    "Headers",
    "Ping",
    "RstStream",
    "Settings",
    "SynReply",
    "SynStream",
    "WindowUpdate",
]

VERSION = 3
MAX_FRAME_LENGTH = (1 << 24) - 1  # the 24-bit length field
MAX_HEADER_BLOCK = 1 << 20  # decompressed; kubectl's blocks are a few dozen bytes

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL, FLAG_CLEAR_SETTINGS = 0x01, 0x02, 0x01

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL = 1, 2, 3, 4, 5
INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED, FRAME_TOO_LARGE = 6, 7, 8, 9, 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

# The dictionary the SPDY/3 draft fixes for header compression: 4-byte-length-prefixed words,
# then a run of common values. Built from its parts here; its bytes are checked against
# kubectl's own copy in tests/apiserver/test_spdy.py.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status |200 OK| version HTTP/1.1 url "
    "public set-cookie keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    words = _WORDS.replace("|200 OK|", "200\x00OK").split()
    return (
        b"".join(struct.pack(">I", len(w)) + w.replace("\x00", " ").encode() for w in words) + _TAIL.encode()
    )


DICTIONARY = _dictionary()


class FrameError(ValueError):
    """The peer sent bytes that are not a SPDY/3.1 frame (the message says which and why).
    `stream_id` is set when only that stream is broken (answer RST_STREAM), 0 when the session is
    (answer GOAWAY and close)."""

    def __init__(self, message: str, stream_id: int = 0, status: int = PROTOCOL_ERROR):
        super().__init__(message)
        self.stream_id, self.status = stream_id, status


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str]
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class Headers:
    stream_id: int
    headers: dict[str, str]
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | Headers | WindowUpdate

_CONTROL = struct.Struct(">HHI")  # version|C, type, flags<<24|length
_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")
_MASK31 = 0x7FFFFFFF


def _check_id(value: int, what: str) -> int:
    if not 0 <= value <= _MASK31:
        raise ValueError(f"{what} {value} does not fit in 31 bits")
    return value


class Encoder:
    """Frames to bytes for one direction of one session (it owns that direction's compressor)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
        )

    def header_block(self, headers: dict[str, str]) -> bytes:
        parts = [_U32.pack(len(headers))]
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            if not n:
                raise ValueError("a SPDY header name cannot be empty")
            parts += [_U32.pack(len(n)), n, _U32.pack(len(v)), v]
        return self._z.compress(b"".join(parts)) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError(f"a data frame of {len(frame.data)} bytes is larger than {MAX_FRAME_LENGTH}")
            head = _U32x2.pack(
                _check_id(frame.stream_id, "stream id"),
                (FLAG_FIN if frame.fin else 0) << 24 | len(frame.data),
            )
            return head + frame.data
        kind, flags, body = self._control(frame)
        if len(body) > MAX_FRAME_LENGTH:
            raise ValueError(f"a control frame of {len(body)} bytes is larger than {MAX_FRAME_LENGTH}")
        return _CONTROL.pack(0x8000 | VERSION, kind, flags << 24 | len(body)) + body

    def _control(self, f: Frame) -> tuple[int, int, bytes]:
        if isinstance(f, SynStream):
            if not 0 <= f.priority <= 7:
                raise ValueError(f"priority {f.priority} is not between 0 and 7")
            flags = (FLAG_FIN if f.fin else 0) | (FLAG_UNIDIRECTIONAL if f.unidirectional else 0)
            ids = _U32x2.pack(
                _check_id(f.stream_id, "stream id"), _check_id(f.associated_to, "associated stream id")
            )
            return SYN_STREAM, flags, ids + bytes([f.priority << 5, 0]) + self.header_block(f.headers)
        if isinstance(f, SynReply):
            sid = _U32.pack(_check_id(f.stream_id, "stream id"))
            return SYN_REPLY, FLAG_FIN if f.fin else 0, sid + self.header_block(f.headers)
        if isinstance(f, Headers):
            sid = _U32.pack(_check_id(f.stream_id, "stream id"))
            return HEADERS, FLAG_FIN if f.fin else 0, sid + self.header_block(f.headers)
        if isinstance(f, RstStream):
            return RST_STREAM, 0, _U32x2.pack(_check_id(f.stream_id, "stream id"), f.status)
        if isinstance(f, Settings):
            body = _U32.pack(len(f.entries)) + b"".join(
                _U32x2.pack(flags << 24 | ident, value) for flags, ident, value in f.entries
            )
            return SETTINGS, FLAG_CLEAR_SETTINGS if f.clear else 0, body
        if isinstance(f, Ping):
            return PING, 0, _U32.pack(f.ping_id)
        if isinstance(f, GoAway):
            return GOAWAY, 0, _U32x2.pack(_check_id(f.last_good_stream_id, "last good stream id"), f.status)
        if isinstance(f, WindowUpdate):
            return (
                WINDOW_UPDATE,
                0,
                _U32x2.pack(_check_id(f.stream_id, "stream id"), _check_id(f.delta, "delta")),
            )
        raise TypeError(f"not a SPDY frame: {f!r}")


class Decoder:
    """Bytes to frames for one direction of one session: feed() what arrives, in any pieces, and
    get the whole frames it completes. A FrameError with stream_id 0 breaks the session (the
    decompression context can no longer be trusted); after one, feed() refuses more bytes."""

    def __init__(self, max_frame: int = MAX_FRAME_LENGTH) -> None:
        self._z = zlib.decompressobj(15, DICTIONARY)
        self._buf = bytearray()
        self._max = max_frame
        self._broken: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Take `data` and return every whole frame it completes; the first bad frame raises."""
        self.push(data)
        frames: list[Frame] = []
        while (frame := self.next()) is not None:
            frames.append(frame)
        return frames

    def push(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        self._buf += data

    def next(self) -> Frame | None:
        """The next whole frame pushed (None: not yet complete). A bad frame raises FrameError
        once it is consumed, so the frames after a stream-level error can still be read."""
        if self._broken is not None:
            raise self._broken
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if length > self._max:
                self._broken = FrameError(
                    f"a frame of {length} bytes is larger than the limit of {self._max}"
                )
                raise self._broken
            if len(self._buf) < 8 + length:
                return None
            head, body = bytes(self._buf[:8]), bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            try:
                frame = self._frame(head, body)
            except FrameError as e:
                if e.stream_id == 0:
                    self._broken = e
                raise
            if frame is not None:
                return frame
        return None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def _frame(self, head: bytes, body: bytes) -> Frame | None:
        first, flags = _U32.unpack(head[:4])[0], head[4]
        if not first & 0x80000000:
            return DataFrame(first & _MASK31, body, bool(flags & FLAG_FIN))
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise FrameError(f"SPDY version {version} is not spoken here (only {VERSION})")
        name = _NAMES.get(kind)
        if name is None:
            return None  # an unknown control frame is ignored, as the spec says
        need = _MIN_LENGTH[kind]
        if len(body) < need or (kind in _EXACT_LENGTH and len(body) != need):
            raise FrameError(f"a {name} frame of {len(body)} bytes (it needs {need})")
        fin = bool(flags & FLAG_FIN)
        if kind == SYN_STREAM:
            sid, assoc = _U32x2.unpack(body[:8])
            sid &= _MASK31
            return SynStream(
                sid,
                self._headers(body[10:], sid),
                assoc & _MASK31,
                body[8] >> 5,
                fin,
                bool(flags & FLAG_UNIDIRECTIONAL),
            )
        if kind in (SYN_REPLY, HEADERS):
            sid = _U32.unpack(body[:4])[0] & _MASK31
            headers = self._headers(body[4:], sid)
            return SynReply(sid, headers, fin) if kind == SYN_REPLY else Headers(sid, headers, fin)
        if kind == RST_STREAM:
            sid, status = _U32x2.unpack(body)
            return RstStream(sid & _MASK31, status)
        if kind == SETTINGS:
            count = _U32.unpack(body[:4])[0]
            if len(body) != 4 + 8 * count:
                raise FrameError(f"a SETTINGS frame of {len(body)} bytes cannot hold its {count} entries")
            entries = []
            for i in range(count):
                word, value = _U32x2.unpack(body[4 + 8 * i : 12 + 8 * i])
                entries.append((word >> 24, word & 0xFFFFFF, value))
            return Settings(tuple(entries), bool(flags & FLAG_CLEAR_SETTINGS))
        if kind == PING:
            return Ping(_U32.unpack(body)[0])
        if kind == GOAWAY:
            last, status = _U32x2.unpack(body)
            return GoAway(last & _MASK31, status)
        sid, delta = _U32x2.unpack(body)  # WINDOW_UPDATE
        if not delta & _MASK31:
            raise FrameError("a WINDOW_UPDATE with a delta of 0", sid & _MASK31, FLOW_CONTROL_ERROR)
        return WindowUpdate(sid & _MASK31, delta & _MASK31)

    def _headers(self, block: bytes, stream_id: int) -> dict[str, str]:
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise FrameError(
                f"stream {stream_id}: its header block does not decompress with the SPDY/3 dictionary ({e})"
            ) from None
        if self._z.unconsumed_tail:
            raise FrameError(f"stream {stream_id}: its header block is larger than {MAX_HEADER_BLOCK} bytes")
        return _parse_block(raw, stream_id)


def _parse_block(raw: bytes, stream_id: int) -> dict[str, str]:
    """The name/value pairs of a decompressed header block. A malformed block breaks only its
    stream: the decompression context is intact."""

    def bad(why: str) -> FrameError:
        return FrameError(f"stream {stream_id}: bad header block: {why}", stream_id)

    if len(raw) < 4:
        raise bad(f"{len(raw)} bytes, too short for its count")
    count, pos = _U32.unpack(raw[:4])[0], 4
    headers: dict[str, str] = {}
    for i in range(count):
        parts = []
        for what in ("name", "value"):
            if pos + 4 > len(raw):
                raise bad(f"pair {i} of {count}: its {what} length is cut off")
            n = _U32.unpack(raw[pos : pos + 4])[0]
            pos += 4
            if pos + n > len(raw):
                raise bad(f"pair {i} of {count}: its {what} of {n} bytes is cut off")
            parts.append(raw[pos : pos + n])
            pos += n
        try:
            name, value = parts[0].decode(), parts[1].decode()
        except UnicodeDecodeError:
            raise bad(f"pair {i} is not UTF-8") from None
        if not name or name != name.lower():
            raise bad(f'header name "{name}" must be non-empty and lower-case')
        if name in headers:
            raise bad(f'header "{name}" appears twice')
        headers[name] = value
    if pos != len(raw):
        raise bad(f"{len(raw) - pos} bytes after its {count} pairs")
    return headers


_NAMES = {
    SYN_STREAM: "SYN_STREAM",
    SYN_REPLY: "SYN_REPLY",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PING: "PING",
    GOAWAY: "GOAWAY",
    HEADERS: "HEADERS",
    WINDOW_UPDATE: "WINDOW_UPDATE",
}
_MIN_LENGTH = {
    SYN_STREAM: 10,
    SYN_REPLY: 4,
    RST_STREAM: 8,
    SETTINGS: 4,
    PING: 4,
    GOAWAY: 8,
    HEADERS: 4,
    WINDOW_UPDATE: 8,
}
_EXACT_LENGTH = {RST_STREAM, PING, GOAWAY, WINDOW_UPDATE}
