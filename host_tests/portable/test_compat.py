# Tests for firmware/compat.py, the few things CPython and MicroPython spell differently:
# the timed wait (MicroPython: the caller's task and one alarm task), garbage collection by
# allocation, peer names.
# Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
import asyncio

from firmware import compat


def run(coro):
    return asyncio.run(coro)


async def _value_after(ms, value):
    await compat.sleep_ms(ms)
    return value


def test_wait_for_ms_returns_the_value_in_time():
    async def main():
        v = await compat.wait_for_ms(_value_after(5, 42), 1000)
        # the alarm is gone: nothing cancels this task later
        await compat.sleep_ms(30)
        return v

    assert run(main()) == 42


def test_wait_for_ms_raises_timeout_and_the_task_goes_on():
    async def main():
        try:
            await compat.wait_for_ms(_value_after(1000, 1), 20)
        except asyncio.TimeoutError:
            pass
        else:
            assert False, "no TimeoutError"
        # the task that timed out keeps working, and is not cancelled again afterwards
        return await compat.wait_for_ms(_value_after(30, "again"), 1000)

    assert run(main()) == "again"


def test_wait_for_ms_nested_timeouts_reach_the_one_that_expired():
    async def main():
        try:
            # the outer wait expires first: the inner one must not take it as its own
            await compat.wait_for_ms(compat.wait_for_ms(_value_after(1000, 1), 500), 20)
        except asyncio.TimeoutError:
            return "outer"
        return "none"

    assert run(main()) == "outer"


def test_wait_for_ms_passes_a_cancel_from_outside_through():
    async def waiter(log):
        try:
            await compat.wait_for_ms(_value_after(1000, 1), 500)
            log.append("done")
        except asyncio.TimeoutError:
            log.append("timeout")
        except asyncio.CancelledError:
            log.append("cancelled")

    async def main():
        log = []
        t = asyncio.create_task(waiter(log))
        await compat.sleep_ms(20)
        t.cancel()
        await compat.sleep_ms(20)
        return log

    assert run(main()) == ["cancelled"]


def test_wait_for_ms_passes_exceptions_through():
    async def boom():
        await compat.sleep_ms(1)
        raise ValueError("x")

    async def main():
        try:
            await compat.wait_for_ms(boom(), 1000)
        except ValueError as e:
            return str(e)

    assert run(main()) == "x"


# MicroPython with a small heap: a threshold of 1/16 of it; a big heap (mp_run.py gives 128K)
# is left alone; CPython: nothing.
def test_collect_often_sets_a_threshold_on_small_micropython_heaps_only():
    if not compat.MICROPYTHON:
        compat.collect_often()
        return
    import gc

    gc.threshold(-1)  # pyright: ignore[reportAttributeAccessIssue]
    compat.collect_often()
    total = gc.mem_alloc() + gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue]
    t = gc.threshold()  # pyright: ignore[reportAttributeAccessIssue]
    if total < 128 * 1024:
        want = max(total // 16, 2048)
        assert want - 32 < t <= want, (t, total)  # kept in whole GC blocks
    else:
        assert t == -1, (t, total)
    gc.threshold(-1)  # pyright: ignore[reportAttributeAccessIssue]


def test_peer_name():
    assert compat.peer_name(("10.0.0.7", 5000)) == "10.0.0.7:5000"
    # a raw IPv4 sockaddr as MicroPython's accept() gives it: family, port, address
    assert compat.peer_name(bytes([2, 0, 0x13, 0x88, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0])) == "10.0.0.7:5000"
    assert compat.peer_name("name") == "name"
    assert compat.peer_name(None) == "?"


# ---- the connection side: compat.start_server, the read step and the stream's write over a
# real loopback connection, on the runtime this runs on (MicroPython: compat.Conn and the
# asyncio internal wait_read relies on, core._io_queue; CPython: cpython.Stream and pump).


# The read step as session.Pages.run takes it on each runtime: take(c, bytes) until it
# answers something other than None (True at EOF).
async def _read_step(stream, take, c, buf):
    if compat.MICROPYTHON:
        s = compat.socket_of(stream)
        mv = memoryview(buf)
        while True:
            await compat.wait_read(s)
            n = s.readinto(buf)
            if n is not None:
                r = take(c, mv[:n]) if n else True
                if r is not None:
                    return r
    return await compat.pump(stream, take, c)


# A server on a free loopback port (MicroPython's server cannot say which port 0 gave it).
async def _loopback(on_conn):
    import os

    base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
    for port in range(base, base + 50):
        try:
            return await compat.start_server(on_conn, "127.0.0.1", port, backlog=8), port
        except OSError:
            pass
    raise AssertionError("no free port")


# A client of the loopback server at port that has sent data: (reader, writer).
async def _send(port, data):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data)
    await w.drain()
    return r, w


# What reader gives until EOF, read size bytes at a time (each read within 2 s).
async def _read_to_eof(reader, size=512):
    got = b""
    for _ in range(10000):
        more = await compat.wait_for_ms(reader.read(size), 2000)
        if not more:
            break
        got += more
    return got


def test_read_step_hands_every_byte_to_take_until_it_answers_and_write_goes_out():
    got = []
    result = []

    def take(c, data):
        assert c == "client"
        got.append(bytes(data))
        return "done" if b"!" in b"".join(got) else None

    async def on_conn(reader, writer):
        result.append(await _read_step(reader, take, "client", bytearray(16)))
        writer.write(b"thanks " * 40)  # more than one socket write may take
        await writer.drain()
        await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for part in (b"one ", b"two " * 10, b"three!"):
            w.write(part)
            await w.drain()
            await compat.sleep_ms(5)
        reply = await _read_to_eof(r)
        await compat.close_stream(w)
        srv.close()
        return reply

    reply = run(main())
    assert result == ["done"]
    assert b"".join(got) == b"one " + b"two " * 10 + b"three!"
    if compat.MICROPYTHON:
        assert max(len(g) for g in got) <= 16  # read into the 16-byte buffer given
    assert reply == b"thanks " * 40


def test_read_step_returns_true_at_eof():
    result = []

    async def on_conn(reader, writer):
        result.append(await _read_step(reader, lambda c, data: None, None, bytearray(64)))
        await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await _send(port, b"bye")
        await compat.close_stream(w)
        for _ in range(100):
            if result:
                break
            await compat.sleep_ms(10)
        srv.close()

    run(main())
    assert result == [True]


# A reader's task cancelled while it waits (the hub gave up on the client): what the wait
# answers, then whether the task went on. MicroPython: wait_read_or_cancel's await gives True
# instead of raising (session.Pages.run has no try block), wait_read's raises CancelledError (as
# wait_for_ms's alarm needs); CPython: pump raises CancelledError (session._pumped answers False).
def _cancelled_wait(wait):
    got = []
    readers = []

    async def on_conn(reader, writer):
        readers.append(asyncio.current_task())
        try:
            try:
                got.append(await wait(reader))
            except asyncio.CancelledError:
                got.append("cancelled")
            await compat.sleep_ms(1)
            got.append("went on")
        finally:
            await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await compat.sleep_ms(20)  # the server's task waits on the socket: nothing was sent
        assert len(readers) == 1
        readers[0].cancel()
        for _ in range(100):
            if len(got) == 2:
                break
            await compat.sleep_ms(10)
        await compat.close_stream(w)
        srv.close()

    run(main())
    return got


async def _timed(aw):
    try:
        await compat.wait_for_ms(aw, 5)  # before _cancelled_wait cancels the task
    except asyncio.TimeoutError:
        return "timeout"


def test_cancelled_read_wait_answers_true_or_raises_and_the_task_goes_on():
    if compat.MICROPYTHON:
        assert _cancelled_wait(lambda r: compat.wait_read_or_cancel(compat.socket_of(r))) == [True, "went on"]
        assert _cancelled_wait(lambda r: compat.wait_read(compat.socket_of(r))) == ["cancelled", "went on"]
        # under wait_for_ms, wait_read's wait ends at the deadline (its alarm cancels the task)
        assert _cancelled_wait(lambda r: _timed(compat.wait_read(compat.socket_of(r)))) == ["timeout", "went on"]
    else:
        assert _cancelled_wait(lambda r: compat.pump(r, lambda c, data: None, None)) == ["cancelled", "went on"]


# compat.start_server's streams name their peer, read and write (MicroPython: its own lighter
# connection object in place of asyncio's Stream).
def test_server_stream_names_its_peer_and_echoes():
    seen = []

    async def on_conn(reader, writer):
        seen.append(compat.peer_name(writer.get_extra_info("peername")))
        data = await reader.read(64)
        writer.write(data.upper())
        await writer.drain()
        await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await _send(port, b"hello")
        reply = await compat.wait_for_ms(r.read(64), 2000)
        await compat.close_stream(w)
        srv.close()
        return reply

    assert run(main()) == b"HELLO"
    assert len(seen) == 1 and seen[0].startswith("127.0.0.1:"), seen
    assert seen[0][len("127.0.0.1:"):].isdigit() and seen[0] != "127.0.0.1:0", seen


# compat.open_connection (MicroPython: the node's own, the one links and MQTT use) reaches the
# server; the client writes, drains and reads through what it gives.
def test_open_connection_talks_to_the_server():
    async def on_conn(reader, writer):
        data = await reader.read(64)
        writer.write(b"<" + data + b">")
        await writer.drain()
        await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await compat.wait_for_ms(compat.open_connection("127.0.0.1", port), 2000)
        w.write(b"ping")
        await w.drain()
        reply = await _read_to_eof(r, 64)
        await compat.close_stream(w)
        srv.close()
        return reply

    assert run(main()) == b"<ping>"


# A client whose socket takes little (a receive buffer of a few KB, set before it connects):
# (reader, writer).
async def _narrow_client(port):
    import socket

    s = socket.socket()
    s.setsockopt(1, 8, 4096)  # SOL_SOCKET, SO_RCVBUF (Linux numbers; MicroPython names neither)
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    if compat.MICROPYTHON:
        c = compat.Conn(s, None)
        return c, c
    return await asyncio.open_connection(sock=s)


# A write the socket cannot take at once waits in the stream (pending says how much) until
# drain() has handed it all over, in order.
def test_held_back_write_goes_out_in_order_with_drain():
    data = bytes(range(256)) * 96  # 24 KB: more than the two sockets hold together
    seen = []

    async def on_conn(reader, writer):
        await reader.read(2)  # the client is ready
        compat.prepare_writer(writer)  # drain() waits for everything, as the node's writers do
        if compat.MICROPYTHON:
            compat.socket_of(writer).setsockopt(1, 7, 4096)  # SOL_SOCKET, SO_SNDBUF
        else:
            writer.transport.get_extra_info("socket").setsockopt(1, 7, 4096)
        writer.write(data)
        seen.append(compat.pending(writer))
        await compat.wait_for_ms(writer.drain(), 5000)
        seen.append(compat.pending(writer))
        await compat.close_stream(writer)

    async def main():
        srv, port = await _loopback(on_conn)
        r, w = await _narrow_client(port)
        w.write(b"go")
        await w.drain()
        await compat.sleep_ms(50)  # the server has written what the sockets take
        got = await _read_to_eof(r, 4096)
        await compat.close_stream(w)
        srv.close()
        return got

    assert run(main()) == data
    assert seen[0] > 0 and seen[1] == 0, seen


# A closed server takes no more connections: a new one is refused or ends unanswered, where
# the running server answered.
def test_closed_server_takes_no_more_connections():
    async def on_conn(reader, writer):
        writer.write(b"hello")
        await writer.drain()
        await compat.close_stream(writer)

    async def answer(port):
        try:
            r, w = await compat.wait_for_ms(compat.open_connection("127.0.0.1", port), 2000)
        except OSError:
            return "refused"
        try:
            return await compat.wait_for_ms(r.read(64), 2000)
        except OSError:
            return "refused"
        finally:
            await compat.close_stream(w)

    async def main():
        srv, port = await _loopback(on_conn)
        before = await answer(port)
        srv.close()
        await compat.sleep_ms(20)
        return before, await answer(port)

    before, after = run(main())
    assert before == b"hello"
    assert after in ("refused", b""), after


# A task cancelled to wake it goes on, and its next timed wait is not cancelled by that
# request (CPython 3.11+ counts cancel requests).
def test_cancelled_wake_lets_the_task_go_on():
    async def sleeper(out):
        try:
            await compat.sleep_ms(1000)
        except asyncio.CancelledError:
            compat.cancelled_wake(asyncio.current_task())
        out.append(await compat.wait_for_ms(_value_after(10, "awake"), 1000))

    async def main():
        out = []
        t = asyncio.create_task(sleeper(out))
        await compat.sleep_ms(10)
        t.cancel()
        for _ in range(100):
            if out:
                break
            await compat.sleep_ms(10)
        return out

    assert run(main()) == ["awake"]


def test_irq_flag_wakes_its_waiter_and_stays_set_until_cleared():
    flag = compat.irq_flag()

    async def timed_out():
        try:
            await compat.wait_for_ms(flag.wait(), 30)
        except asyncio.TimeoutError:
            return True
        return False

    async def set_later(ms):
        await compat.sleep_ms(ms)
        flag.set()

    async def main():
        assert await timed_out()  # never set
        flag.set()
        assert not await timed_out()  # set before the wait: no wait at all
        assert not await timed_out()  # still set: only clear() takes it back
        flag.clear()
        assert await timed_out()
        # set while the task waits (with no time limit, and with one far away)
        t0 = compat.ticks_ms()
        setter = asyncio.create_task(set_later(20))
        await flag.wait()
        await setter
        flag.clear()
        asyncio.create_task(set_later(20))
        await compat.wait_for_ms(flag.wait(), 2000)
        return compat.ticks_diff(compat.ticks_ms(), t0)

    assert run(main()) < 1500
