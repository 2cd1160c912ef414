# CPython only (firmware/server.py imports it there; MicroPython never does, so none of it
# takes a board's heap): a server whose WebSocket clients' bytes reach the node from the
# transport's callback, and the node's client loop that takes them.
import asyncio

from . import websocket as ws
from .hub import ADMITTED, FEEDING


# Listen on host:port; cb(reader, writer) for each connection, as asyncio.start_server, with
# readers that consume() can take over.
async def start_server(cb, host, port, backlog=8):
    loop = asyncio.get_running_loop()

    def protocol():
        return asyncio.StreamReaderProtocol(_Reader(loop=loop), cb, loop=loop)

    return await loop.create_server(protocol, host, port, backlog=backlog)


# A StreamReader that, while it has a sink, hands what arrives to it from the transport's
# callback (bytes, None at EOF, or the connection's exception) instead of buffering it for a
# read(). A WebSocket client then costs no task wake-up, future and read() per message:
# about 10 us of the 0.16 ms from command to every client on CPython (BENCHMARKS.md). Uses
# the StreamReader's buffer and flow control (CPython 3.8-3.13), hence the subclass.
class _Reader(asyncio.StreamReader):
    sink = None

    def feed_data(self, data):
        if self.sink is None:
            super().feed_data(data)
        else:
            self.sink(data)

    def feed_eof(self):
        super().feed_eof()
        if self.sink is not None:
            self.sink(None)

    def set_exception(self, exc):
        super().set_exception(exc)
        if self.sink is not None:
            self.sink(exc)

    # What is buffered, now taken out of the buffer (reading goes on if it was paused).
    def take(self):
        data = bytes(self._buffer)  # pyright: ignore[reportAttributeAccessIssue]
        self._buffer.clear()  # pyright: ignore[reportAttributeAccessIssue]
        self._maybe_resume_transport()  # pyright: ignore[reportAttributeAccessIssue]
        return data


# Give what arrives on reader (made by start_server) to on_data(bytes) as it arrives, until
# on_data returns something other than None. Returns a future of that value: True at EOF,
# the connection's exception, or on_data's. Afterwards, or once the future is cancelled,
# reads work as before.
def consume(reader, on_data):
    fut = asyncio.get_running_loop().create_future()

    def finish(result, exc=None):
        reader.sink = None
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)

    def sink(x):
        if fut.done():
            return
        if x is None:
            return finish(True)
        if isinstance(x, BaseException):
            return finish(None, x)
        try:
            r = on_data(x)
        except Exception as e:
            return finish(None, e)
        if r is not None:
            finish(r)

    fut.add_done_callback(lambda f: setattr(reader, "sink", None))  # also when cancelled
    data = reader.take()
    reader.sink = sink
    if data:
        sink(data)
    if not fut.done():
        if reader.exception() is not None:
            finish(None, reader.exception())
        elif reader.at_eof():
            finish(True)
    return fut


# Node._client under CPython (node is the Node): as MicroPython's in firmware/server.py, but
# once the client is admitted its bytes come from the transport's callback (consume) instead
# of a read() and a task wake-up per message.
async def client(node, up, reader, writer):
    c = None
    done = False  # the peer closed TCP or sent its close frame: nothing more to read
    try:
        c = node._join(up[1], writer)
        if up[2]:  # bytes that came with the upgrade
            done = node._receive(c, up[2])
        up = None
        if not done and not c.flags & ADMITTED:
            done = await node._token_wait(c, reader)
        if not done and c.flags & ADMITTED and c.state != ws.CLOSED and not c.dead():
            done = await consume(reader, lambda data: _take(node, c, data))
    except OSError:
        done = True  # the peer went away
    except asyncio.CancelledError:
        pass  # the hub gave up on this client
    except MemoryError:
        node._oom(c)
    finally:
        await node._leave(c, reader, writer, done)


# c's bytes as the transport hands them over (consume). None: go on; True: the peer finished
# (its close frame); False: stop reading (c is closed or dropped). While its own bytes are
# handled, the hub does not cancel c's task (FEEDING): this decides.
def _take(node, c, data):
    c.flags |= FEEDING
    try:
        if node._receive(c, data):
            return True
    finally:
        c.flags &= ~FEEDING
    return False if c.state == ws.CLOSED or c.dead() else None
