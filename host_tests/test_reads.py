# The server's socket reads into its one shared buffer (compat.read_into): a reader woken with
# nothing to read (MicroPython's readinto gives None then) must go round again, never take the
# buffer's old bytes. The reads are scripted; CPython runs the node's coroutines directly.
import asyncio

from firmware import server, session


class Scripted:
    """A stand-in for compat.read_into: each call takes the next step (bytes, None or b"")."""

    def __init__(self, steps):
        self.steps = list(steps)

    async def __call__(self, reader, buf):
        step = self.steps.pop(0)
        if step is None:
            buf[:4] = b"JUNK"  # what an earlier read left in the shared buffer
            return None
        buf[: len(step)] = step
        return len(step)


class Bare:
    limits = {"max_head": 4096}

    def __init__(self, size=16):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)


def run(coro):
    return asyncio.run(coro)


def test_read_head_goes_round_again_on_none(monkeypatch):
    monkeypatch.setattr(server, "read_into", Scripted([None, b"GET / HTTP/1.1\r\n", None, b"Host: x\r\n\r\nab"]))
    head, rest = run(server.Server.read_head(Bare(), None, None))
    assert bytes(head) == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert bytes(rest) == b"ab"


# A head that came whole in one read is parsed where it lies in the shared buffer (no copy);
# one that took several reads is parsed from the bytes gathered. parse gets (data, end).
def test_read_head_parses_in_place_or_from_the_gathered_bytes(monkeypatch):
    node = Bare(64)
    seen = []

    def parse(data, end):
        seen.append((data is node.buf, bytes(data[:end])))
        return "request"

    monkeypatch.setattr(server, "read_into", Scripted([None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nab"]))
    assert run(server.Server.read_head(node, None, parse)) == ("request", b"ab")
    monkeypatch.setattr(server, "read_into", Scripted([b"GET / HTTP/1.1\r\n", None, b"Host: y\r\n\r\n"]))
    req, rest = run(server.Server.read_head(node, None, parse))
    assert (req, bytes(rest)) == ("request", b"")
    assert seen == [(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (False, b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")]


def test_read_head_none_then_eof(monkeypatch):
    monkeypatch.setattr(server, "read_into", Scripted([None, b""]))
    assert run(server.Server.read_head(Bare(), None, None)) == (None, None)


def test_discard_stops_at_eof_not_at_none(monkeypatch):
    steps = Scripted([b"x", None, b"yz", None, b""])
    monkeypatch.setattr(session, "read_into", steps)
    run(session._discard(None, Bare().buf))
    assert steps.steps == []


# ---- firmware/cpython.py: pump: a WebSocket client's bytes go to its session as the transport
# hands them over, without a read() per message. A loopback connection through
# cpython.start_server (a Stream protocol); the client side writes, the server side pumps.


async def _pair():
    from firmware import cpython

    got = asyncio.get_running_loop().create_future()

    async def on_conn(reader, writer):
        got.set_result((reader, writer))

    server = await cpython.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cr, cw = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await asyncio.wait_for(got, 5)
    return server, reader, writer, cw


async def _until(cond):
    for _ in range(200):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_pump_hands_bytes_over_until_on_data_answers_then_reads_work_again():
    from firmware import cpython

    async def main():
        server, reader, writer, cw = await _pair()
        cw.write(b"early")  # buffered before consume: handed over first
        await cw.drain()
        await _until(lambda: len(reader.buf) == 5)
        seen = []

        def on_data(c, data):
            assert c == "c"
            seen.append(bytes(data))
            return "stop" if b"!" in data else None

        fut = cpython.pump(reader, on_data, "c")
        assert seen == [b"early"] and not fut.done()
        cw.write(b"one")
        await cw.drain()
        await _until(lambda: len(seen) == 2)
        cw.write(b"two!")
        await cw.drain()
        assert await asyncio.wait_for(fut, 5) == "stop"
        assert seen == [b"early", b"one", b"two!"]
        cw.write(b"after")  # the reader buffers again
        await cw.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b"after"
        cw.close()
        writer.close()
        server.close()

    run(main())


def test_pump_ends_at_eof_and_on_an_error_of_on_data():
    from firmware import cpython

    async def main():
        server, reader, writer, cw = await _pair()
        fut = cpython.pump(reader, lambda c, data: None, None)
        cw.write(b"x")
        cw.close()
        assert await asyncio.wait_for(fut, 5) is True  # EOF: the peer finished
        writer.close()

        _, reader, writer, cw = await _pair()

        def boom(c, data):
            raise ValueError("bad")

        fut = cpython.pump(reader, boom, None)
        cw.write(b"x")
        await cw.drain()
        try:
            await asyncio.wait_for(fut, 5)
        except ValueError as e:
            assert str(e) == "bad"
        else:
            raise AssertionError("no ValueError")
        cw.close()
        writer.close()
        server.close()

    run(main())


def test_pump_cancelled_gives_the_reader_back():
    from firmware import cpython

    async def main():
        server, reader, writer, cw = await _pair()
        seen = []
        fut = cpython.pump(reader, lambda c, data: seen.append(data), None)  # None: goes on
        fut.cancel()
        await asyncio.sleep(0)
        cw.write(b"later")
        await cw.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b"later"
        assert seen == []
        cw.close()
        writer.close()
        server.close()

    run(main())
