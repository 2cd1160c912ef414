# CPython only (firmware/compat.py imports it there; MicroPython never does, so none of it
# takes a board's heap): the server's connections as asyncio Protocols. A connection is its
# own reader and writer, with the few stream methods the node uses; while pump() runs, what
# arrives goes from the transport's callback straight to the WebSocket session (no task
# wake-up, future and read() per message). Only asyncio's public Protocol API is used.
import asyncio

_LIMIT = 65536  # bytes buffered before reading pauses


# Listen on host:port; cb(stream, stream) for each connection, as asyncio.start_server.
async def start_server(cb, host, port, backlog=8):
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Stream(cb, loop), host, port, backlog=backlog)


class Stream(asyncio.Protocol):
    transport = None
    sink = None  # while pumped: takes bytes, None at EOF, or the connection's exception

    def __init__(self, cb=None, loop=None):
        self.cb = cb
        self.loop = loop or asyncio.get_running_loop()
        self.buf = bytearray()
        self.eof = False
        self.exc = None
        self.waiter = None  # a read waiting for bytes
        self.drainer = None  # a drain waiting for the transport to take what was written
        self.paused = False  # reading paused (the buffer is full)
        self.writing_paused = False
        self.closed = self.loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if self.cb is not None:
            self.loop.create_task(self.cb(self, self))

    def data_received(self, data):
        if self.sink is not None:
            return self.sink(data)
        self.buf += data
        self._wake()
        if len(self.buf) > _LIMIT and not self.paused:
            self.paused = True
            self.transport.pause_reading()  # pyright: ignore

    def eof_received(self):
        self.eof = True
        self._wake()
        if self.sink is not None:
            self.sink(None)

    def connection_lost(self, exc):
        if exc is not None:
            self.exc = exc
        self.eof = True
        self._wake()
        if self.sink is not None:
            self.sink(exc)
        self.writing_paused = False
        self._wake_drain(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self):
        self.writing_paused = True

    def resume_writing(self):
        self.writing_paused = False
        self._wake_drain(None)

    def _wake(self):
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_drain(self, exc):
        d = self.drainer
        self.drainer = None
        if d is not None and not d.done():
            if exc is None:
                d.set_result(None)
            else:
                d.set_exception(exc)

    # What is buffered, taken out of the buffer (reading goes on if it was paused).
    def take(self):
        data = bytes(self.buf)
        self.buf.clear()
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()  # pyright: ignore
        return data

    async def read(self, n=-1):
        while not self.buf and not self.eof and self.exc is None:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if not self.buf and self.exc is not None:
            raise self.exc
        if n < 0 or n >= len(self.buf):
            return self.take()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def at_eof(self):
        return self.eof and not self.buf

    def exception(self):
        return self.exc

    def write(self, data):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)  # pyright: ignore

    async def drain(self):
        if self.exc is not None:
            raise self.exc
        if self.closed.done():
            raise ConnectionResetError("connection lost")
        if self.writing_paused:
            self.drainer = self.loop.create_future()
            await self.drainer

    # Closed after a drain with its timeout: what the peer has not taken by now it is not going
    # to take, and a close would wait for it for ever (the socket never closes). It is dropped,
    # as MicroPython drops what its stream holds back when it closes.
    def close(self):
        t = self.transport
        if t is not None:
            if t.get_write_buffer_size():  # pyright: ignore[reportAttributeAccessIssue]
                t.abort()  # pyright: ignore[reportAttributeAccessIssue]
            else:
                t.close()

    async def wait_closed(self):
        await self.closed

    def get_extra_info(self, name, default=None):
        return self.transport.get_extra_info(name, default) if self.transport else default


# Give what arrives on stream to take(c, bytes) as it arrives, until take returns something
# other than None. Returns a future of that value: True at EOF, the connection's exception, or
# take's. Afterwards, or once the future is cancelled, reads work as before.
def pump(stream, take, c):
    fut = stream.loop.create_future()

    def finish(result, exc=None):
        stream.sink = None
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
            r = take(c, x)
        except Exception as e:
            return finish(None, e)
        if r is not None:
            finish(r)

    fut.add_done_callback(lambda f: setattr(stream, "sink", None))  # also when cancelled
    data = stream.take()
    stream.sink = sink
    if data:
        sink(data)
    if not fut.done():
        if stream.exc is not None:
            finish(None, stream.exc)
        elif stream.eof:
            finish(True)
    return fut
