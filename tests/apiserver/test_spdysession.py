"""The server side of a SPDY/3.1 session (nbkube/apiserver/spdysession.py), driven by a client made
of the codec: replies, pings, half-closes, resets, protocol errors and backpressure."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable

from nbkube.apiserver import spdy, spdysession
from nbkube.apiserver.spdysession import Session, Stream


class Client:
    """The client's end: encodes what it sends with its own context, decodes what the server sent."""

    def __init__(self, block: asyncio.Event | None = None) -> None:
        self.enc, self.dec = spdy.Encoder(), spdy.Decoder()
        self.received: list[spdy.Frame] = []
        self.opened: list[Stream] = []
        self.block = block
        self.session = Session(self.send, self.opened.append)

    async def send(self, data: bytes) -> None:
        if self.block is not None:
            await self.block.wait()
        self.received += self.dec.feed(data)

    def put(self, *frames: spdy.Frame) -> None:
        self.session.feed(b"".join(self.enc.encode(f) for f in frames))

    async def settle(self) -> list[spdy.Frame]:
        """What the server has sent so far (after its writer has run)."""
        for _ in range(5):
            await asyncio.sleep(0)
        out, self.received = self.received, []
        return out


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_a_new_stream_is_answered_and_handed_over() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {"streamtype": "data", "port": "80"}), spdy.SynStream(3, {}, fin=True))
        assert await c.settle() == [spdy.SynReply(1), spdy.SynReply(3)]
        assert [s.id for s in c.opened] == [1, 3] and c.opened[0].headers["port"] == "80"
        assert c.opened[1].remote_closed and await c.opened[1].read() == b""

    run(go)


def test_data_in_order_then_the_clients_fin() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}), spdy.DataFrame(1, b"ab"), spdy.DataFrame(1, b"cd", fin=True))
        s = c.opened[0]
        assert [await s.read(), await s.read(), await s.read(), await s.read()] == [b"ab", b"cd", b"", b""]
        assert not s.local_closed and 1 in c.session.streams  # our half is still open
        await s.write(b"reply")
        s.close()
        s.close()  # once only
        frames = await c.settle()
        assert frames[1:] == [spdy.DataFrame(1, b"reply"), spdy.DataFrame(1, b"", fin=True)]
        assert 1 not in c.session.streams  # both halves closed: forgotten

    run(go)


def test_large_writes_are_cut_into_frames() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}))
        data = bytes(range(256)) * 1000
        await c.opened[0].write(data)
        frames = [f for f in await c.settle() if isinstance(f, spdy.DataFrame)]
        assert all(len(f.data) <= spdysession.MAX_DATA for f in frames) and len(frames) > 1
        assert b"".join(f.data for f in frames) == data

    run(go)


def test_client_pings_are_echoed_and_settings_and_window_updates_ignored() -> None:
    async def go() -> None:
        c = Client()
        c.put(
            spdy.Ping(1),
            spdy.Ping(2),
            spdy.Settings(((0, 7, 1 << 20),)),
            spdy.WindowUpdate(0, 100),
            spdy.Ping(7),
        )
        assert await c.settle() == [spdy.Ping(1), spdy.Ping(7)]  # even ids would be our own pings

    run(go)


def test_a_reset_ends_both_halves() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}), spdy.RstStream(1, spdy.CANCEL))
        s = c.opened[0]
        assert await s.read() == b"" and s.local_closed and s.reset_status == spdy.CANCEL
        assert 1 not in c.session.streams
        c.put(spdy.DataFrame(1, b"late"))  # data racing the reset: dropped without an answer
        assert await c.settle() == [spdy.SynReply(1)]

    run(go)


def test_data_for_a_stream_never_opened_is_reset() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.DataFrame(9, b"x"))
        assert await c.settle() == [spdy.RstStream(9, spdy.INVALID_STREAM)]
        assert not c.session.closed

    run(go)


def test_data_after_the_clients_fin_is_a_stream_error() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}, fin=True), spdy.DataFrame(1, b"x"))
        assert await c.settle() == [spdy.SynReply(1), spdy.RstStream(1, spdy.STREAM_ALREADY_CLOSED)]

    run(go)


def test_a_bad_header_block_resets_its_stream_and_the_session_goes_on() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}))
        # an upper-case name, in the client's own compression context (the encoder lower-cases
        # names, so this block is made by hand)
        raw = b"\x00\x00\x00\x01\x00\x00\x00\x02OK\x00\x00\x00\x011"
        block = c.enc._z.compress(raw) + c.enc._z.flush(zlib.Z_SYNC_FLUSH)
        body = b"\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00" + block
        c.session.feed(bytes.fromhex("80030001") + len(body).to_bytes(4, "big") + body)
        c.put(spdy.Ping(5))
        assert await c.settle() == [spdy.SynReply(1), spdy.RstStream(3, spdy.PROTOCOL_ERROR), spdy.Ping(5)]
        assert not c.session.closed and 3 not in c.session.streams

    run(go)


def test_stream_ids_must_be_odd_and_increasing() -> None:
    async def go() -> None:
        for second in (1, 2):
            c = Client()
            c.put(spdy.SynStream(3, {}))
            c.put(spdy.SynStream(second, {}))
            assert await c.settle() == [spdy.SynReply(3), spdy.GoAway(3, spdy.GOAWAY_PROTOCOL_ERROR)]
            assert (
                c.session.closed and c.session.done.is_set() and "must be odd and larger" in c.session.error
            )
            assert await c.opened[0].read() == b""

    run(go)


def test_garbage_ends_the_session_with_goaway() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}))
        c.session.feed(bytes.fromhex("80020006 00000004 00000001"))  # SPDY/2
        assert (await c.settle())[-1] == spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
        assert "SPDY version 2" in c.session.error
        c.put(spdy.Ping(1))  # nothing more is read
        assert await c.settle() == []

    run(go)


def test_goaway_and_the_transports_end_close_every_stream() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}), spdy.GoAway(1))
        assert c.session.closed and c.session.done.is_set() and await c.opened[0].read() == b""
        c2 = Client()
        c2.put(spdy.SynStream(1, {}))
        c2.session.feed_eof()
        assert c2.session.done.is_set() and await c2.opened[0].read() == b""

    run(go)


def test_writers_wait_while_the_transport_is_slow() -> None:
    async def go() -> None:
        gate = asyncio.Event()
        c = Client(block=gate)
        c.put(spdy.SynStream(1, {}))
        s = c.opened[0]
        big = b"x" * (spdysession.HIGH_WATER + 1)
        writer = asyncio.create_task(s.write(big))
        await c.settle()
        assert not writer.done()  # more than HIGH_WATER queued: it waits for the transport
        gate.set()
        await writer
        received = [f for f in await c.settle() if isinstance(f, spdy.DataFrame)]
        assert sum(len(f.data) for f in received) == len(big)

    run(go)


def test_writes_after_close_fail_and_flush_ends_the_writer() -> None:
    async def go() -> None:
        c = Client()
        c.put(spdy.SynStream(1, {}))
        s = c.opened[0]
        s.close()
        try:
            await s.write(b"x")
            raise AssertionError("a write after close went through")
        except ConnectionResetError as e:
            assert "stream 1 is closed" in str(e)
        c.session.close()
        await c.session.flush(5)
        assert c.session._writer.done()
        assert (await c.settle())[-1] == spdy.DataFrame(1, b"", fin=True)

    run(go)


def test_reading_pauses_while_the_streams_readers_are_behind() -> None:
    async def go() -> None:
        calls: list[bool] = []
        c = Client()
        c.session._pause = calls.append
        c.put(spdy.SynStream(1, {}))
        chunk = b"y" * spdysession.MAX_DATA
        n = spdysession.HIGH_WATER // len(chunk) + 1
        c.put(*(spdy.DataFrame(1, chunk) for _ in range(n)))
        assert calls == [True] and c.session.reading_paused
        s = c.opened[0]
        for _ in range(n // 2):
            await s.read()
        assert calls == [True]  # still more than half of HIGH_WATER waiting
        for _ in range(n - n // 2):
            await s.read()
        assert calls == [True, False] and not c.session.reading_paused

    run(go)
