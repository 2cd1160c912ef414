# The few things CPython and MicroPython spell differently: millisecond ticks, sleeps and
# timeouts in milliseconds, reading and writing a connection, closing a stream. Everything
# that relies on an asyncio internal is here, each behind a named function with a test
# (host_tests/portable/test_compat.py), so that a runtime upgrade breaks this file only.
import asyncio
import time

try:
    from micropython import const  # noqa: F401  # pyright: ignore[reportAssignmentType]
except ImportError:

    def const(x):
        return x


try:
    ticks_ms = time.ticks_ms  # pyright: ignore[reportAttributeAccessIssue]
    ticks_diff = time.ticks_diff  # pyright: ignore[reportAttributeAccessIssue]
    ticks_add = time.ticks_add  # pyright: ignore[reportAttributeAccessIssue]
except AttributeError:
    _T0 = time.monotonic()

    def ticks_ms():
        return int((time.monotonic() - _T0) * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


MICROPYTHON = hasattr(asyncio, "sleep_ms")


async def sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


# Await aw for at most ms milliseconds; asyncio.TimeoutError past that.
async def wait_for_ms(aw, ms):
    return await asyncio.wait_for(aw, ms / 1000)


if MICROPYTHON:
    sleep_ms = asyncio.sleep_ms  # noqa: F811  # pyright: ignore[reportAttributeAccessIssue]

    # MicroPython's own wait_for runs aw in a task of its own plus a runner task, and loads the
    # asyncio.funcs module for good. Here aw runs in the caller's task, and one small alarm task
    # cancels that task at the deadline.
    async def _alarm(task, ms):
        await asyncio.sleep_ms(ms)  # pyright: ignore[reportAttributeAccessIssue]
        task.cancel()

    async def wait_for_ms(aw, ms):  # noqa: F811
        alarm = asyncio.create_task(_alarm(asyncio.current_task(), ms))
        try:
            return await aw
        except asyncio.CancelledError:
            if alarm.done():  # the alarm went off: a timeout, not a cancel from outside
                raise asyncio.TimeoutError
            raise
        finally:
            alarm.cancel()


# Read what has arrived into buf (at most len(buf) bytes); the count, 0 at EOF, None when
# MicroPython woke the reader but the socket had nothing after all (EAGAIN). MicroPython
# reads straight into buf: no allocation per read, so no heap fragmented by 512-byte reads.
# buf is shared by every connection: use its bytes before the next await.
async def read_into(reader, buf):  # pyright: ignore[reportRedeclaration]
    data = await reader.read(len(buf))
    buf[: len(data)] = data
    return len(data)


# A task cancelled only to wake it (node.Timers) goes on: CPython 3.11+ counts cancel
# requests, and a counted one would cancel the task's next wait_for.
def cancelled_wake(task):
    un = getattr(task, "uncancel", None)
    if un:
        un()


if MICROPYTHON:
    from asyncio import core as _core  # pyright: ignore[reportAttributeAccessIssue]

    def read_into(reader, buf):  # noqa: F811
        return reader.readinto(buf)

    # `await wait_read(sock)` suspends the task until sock is readable, as Conn.readinto
    # does, without a generator object per wait (one would be held for as long as a
    # client is idle). One object serves every task, as asyncio's own SingletonGenerator does:
    # nothing is kept across the wait. Relies on asyncio.core._io_queue.queue_read, the call
    # MicroPython's own streams make. cancelled: None, a cancel raises CancelledError at the
    # await, as always; else the StopIteration whose value the await gives instead.
    class _ReadWait:
        def __init__(self, cancelled):
            self.sock = None
            self.exc = StopIteration()
            self.cancelled = cancelled

        def __iter__(self):
            return self

        def __next__(self):
            s = self.sock
            if s is not None:  # the await starts: park the task on the socket
                self.sock = None
                _core._io_queue.queue_read(s)
                return None
            self.exc.__traceback__ = None  # the task was woken: the await is over
            raise self.exc

        # What is thrown into the waiting task: task.cancel() throws the class CancelledError
        # (and takes the task off the socket).
        def throw(self, exc, *_):
            c = self.cancelled
            if c is not None and (exc is asyncio.CancelledError or isinstance(exc, asyncio.CancelledError)):
                c.__traceback__ = None
                raise c
            raise exc

    _read_wait = _ReadWait(None)
    _read_or_cancel = _ReadWait(StopIteration(True))

    def wait_read(sock):
        _read_wait.sock = sock
        return _read_wait

    # `await wait_read_or_cancel(sock)`: None once sock is readable, True once the task is
    # cancelled instead of CancelledError. A coroutine that waits so needs no try block, which
    # would cost its frame stack slots for as long as it waits. Not under wait_for_ms: the
    # alarm's cancel would not end the wait.
    def wait_read_or_cancel(sock):
        _read_or_cancel.sock = sock
        return _read_or_cancel

    # The socket of a connection (Conn.s), for the waits above and its readinto.
    def socket_of(stream):
        return stream.s

    import errno
    import socket

    # A connection: what the node uses of asyncio's Stream (asyncio/stream.py), which is not
    # loaded at all (its module is 0.9 KB of heap): read, readinto, write, drain, close,
    # wait_closed, get_extra_info("peername"). No write buffer until a write is held back
    # (out_buf, a class default till then). The listening server is one too: its close()
    # cancels its accept task.
    class Conn:
        out_buf = b""
        task = None

        def __init__(self, s, addr):
            self.s = s
            self.e = addr

        def get_extra_info(self, v):
            return self.e if v == "peername" else None

        def close(self):
            if self.task:
                self.task.cancel()

        async def wait_closed(self):
            self.s.close()

        # async: up to n bytes once some have come, b"" at EOF
        def read(self, n):
            while True:
                yield _core._io_queue.queue_read(self.s)
                r = self.s.read(n)
                if r is not None:
                    return r

        # async: the count read into buf, 0 at EOF, None when the socket had nothing after all
        def readinto(self, buf):
            yield _core._io_queue.queue_read(self.s)
            return self.s.readinto(buf)

        # Now: while nothing is held back the socket takes what it can (None: nothing), and
        # the rest waits in out_buf for drain().
        def write(self, buf):
            if not self.out_buf:
                n = self.s.write(buf)
                if n == len(buf):
                    return
                if n:
                    buf = buf[n:]
            self.out_buf += buf

        # async: until the socket has taken everything held back; always lets other tasks run
        def drain(self):
            if not self.out_buf:
                return (yield from asyncio.sleep_ms(0))  # pyright: ignore[reportAttributeAccessIssue]
            mv = memoryview(self.out_buf)
            off = 0
            while off < len(mv):
                yield _core._io_queue.queue_write(self.s)
                n = self.s.write(mv[off:])
                if n:
                    off += n
            self.out_buf = b""

    # The accept task: cb(conn, conn) in a task of its own for each connection. A failed accept
    # (no heap for the connection) loses that connection only. Cancelled: the socket closes.
    def _serve(s, cb):
        try:
            while True:
                yield _core._io_queue.queue_read(s)
                s2 = None
                try:
                    s2, addr = s.accept()
                    s2.setblocking(False)
                    c = Conn(s2, addr)
                    asyncio.create_task(cb(c, c))
                except Exception:
                    if s2 is not None:
                        s2.close()
        finally:
            s.close()

    # Listen on host:port; returns the server (a Conn: close() stops it) once bound.
    async def start_server(cb, host, port, backlog):
        a = socket.getaddrinfo(host, port)[0]
        s = socket.socket(a[0])
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(a[-1])
        s.listen(backlog)
        srv = Conn(s, None)
        srv.task = asyncio.create_task(_serve(s, cb))  # pyright: ignore[reportAttributeAccessIssue]
        await asyncio.sleep_ms(0)  # pyright: ignore[reportAttributeAccessIssue]  # it runs: a close() now closes s
        return srv

    # async: a TCP connection to host (an IP address) and port, as (reader, writer), both the
    # same Conn, once the socket can write.
    def open_connection(host, port):
        a = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(a[0], a[1], a[2])
        s.setblocking(False)
        try:
            s.connect(a[-1])
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                s.close()
                raise
        c = Conn(s, None)
        yield _core._io_queue.queue_write(s)
        return c, c
else:
    from .cpython import pump, start_server  # noqa: F401  # pyright: ignore[reportAssignmentType]

    open_connection = asyncio.open_connection  # pyright: ignore[reportAssignmentType]


# Bytes written to a stream but not yet taken by the socket.
def pending(writer):
    t = None if MICROPYTHON else getattr(writer, "transport", None)  # CPython: it flushes by itself
    if t is not None:
        return t.get_write_buffer_size()
    buf = getattr(writer, "out_buf", None)  # MicroPython: flushed only by drain()
    return len(buf) if buf is not None else 0


# Make drain() wait until everything is written (CPython waits only above 64 KB by default).
# Also switch Nagle's algorithm off where the runtime leaves it on (MicroPython, lwIP on the
# board): small frames go out at once instead of waiting for the previous one's ACK, which a
# phone delays by up to 40 ms. CPython's asyncio already sets TCP_NODELAY.
def prepare_writer(writer):
    t = getattr(writer, "transport", None)
    if t is not None:
        t.set_write_buffer_limits(0)
        return
    s = getattr(writer, "s", None)
    if s is not None:
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: the same numbers on Linux and lwIP
        except Exception:
            pass


# MicroPython with a small heap (under 128 KB, as on an ESP32): collect garbage each time 1/16
# of the heap has been allocated, not only when an allocation fails. Collected late, garbage
# spreads the long-lived objects made meanwhile (a client's socket, stream and task) over the
# whole heap, and a small heap is soon in pieces too small for the next connection; collected
# early, they stay packed together. A big heap is left to collect when full: it is in no such
# danger, and there the extra collections would only cost time.
def collect_often():
    if MICROPYTHON:
        import gc

        total = gc.mem_alloc() + gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue]
        if total < 128 * 1024:
            gc.threshold(max(total // 16, 2048))  # pyright: ignore[reportAttributeAccessIssue]


# Close a stream and wait for it; MicroPython only closes in wait_closed().
async def close_stream(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except Exception:
        pass


# "ip:port" from a (host, port) tuple (CPython) or a raw IPv4 sockaddr (MicroPython); a
# string is taken as it is.
def peer_name(addr):
    if isinstance(addr, str):
        return addr
    if isinstance(addr, (bytes, bytearray)) and len(addr) >= 8:
        return "%d.%d.%d.%d:%d" % (addr[4], addr[5], addr[6], addr[7], (addr[2] << 8) | addr[3])
    if isinstance(addr, tuple) and len(addr) >= 2:
        return "%s:%s" % (addr[0], addr[1])
    return "?"


# A flag that an interrupt handler sets and one task waits for: set() (allocates nothing, so
# an interrupt may call it), clear(), and `await flag.wait()` (also inside wait_for_ms) until
# it is set. MicroPython: a stream whose poll says "readable" while the flag is set, so the
# task waits on it as on a socket (wait_read) and asyncio's poll wakes it, the way asyncio's
# ThreadSafeFlag works, without loading that module. Its class is made on the first call: a
# node without inputs pays for one function. CPython: an asyncio.Event (no interrupts there).
def irq_flag():
    if not MICROPYTHON:
        return asyncio.Event()
    import io

    class Flag(io.IOBase):
        def __init__(self):
            self.state = 0

        def ioctl(self, req, flags):
            return self.state * flags if req == 3 else -22  # 3: MP_STREAM_POLL; -22: EINVAL

        def set(self):
            self.state = 1

        def clear(self):
            self.state = 0

        def wait(self):
            return wait_read(self)  # pyright: ignore[reportPossiblyUnbound]

    return Flag()
