# Hub slow-client policy and close-frame flushing, with a fake stream writer (CPython asyncio).
import asyncio

from firmware import hub as hub_mod
from firmware import websocket as ws
from firmware.hub import Hub, Client


class FakeWriter:
    def __init__(self):
        self.data = b""
        self.stall = None  # an asyncio.Event: drain() waits for it
        self.closed = False

    def write(self, b):
        self.data += bytes(b)

    async def drain(self):
        if self.stall is not None:
            await self.stall.wait()

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


def make(hub, w):
    async def reader():
        await asyncio.sleep(3600)

    c = Client(w, ws.Connection(1024), "peer", asyncio.create_task(reader()))
    hub.add(c)
    return c


def frames(data):
    out = []
    while data:
        n = data[1] & 0x7F
        out.append((data[0] & 0x0F, data[2 : 2 + n]))
        data = data[2 + n :]
    return out


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_burst_while_writer_idle_is_not_slow():
    async def main():
        hub = Hub(max_queue=4, log=lambda *a: None)
        w = FakeWriter()
        c = make(hub, w)
        t = asyncio.create_task(hub.writer(c))
        for i in range(10):  # more than max_queue before the writer has had a turn
            hub.broadcast(ws.encode_frame(ws.OP_TEXT, "m%d" % i))
        await asyncio.sleep(0.01)
        assert c.conn.state == ws.OPEN
        assert [p for _, p in frames(w.data)] == [b"m%d" % i for i in range(10)]
        c.done = True
        c.wake.set()
        await t
        c.task.cancel()

    run(main())


def test_hard_cap_closes_even_when_idle():
    async def main():
        hub = Hub(max_queue=2, log=lambda *a: None)
        c = make(hub, FakeWriter())
        for _ in range(9):
            hub.push(c, b"x")
        assert c.conn.state == ws.CLOSED and c.conn.close_code == ws.CLOSE_TRY_AGAIN
        c.task.cancel()

    run(main())


def test_stuck_writer_with_full_queue_is_closed_1013_and_close_frame_flushed():
    async def main():
        hub = Hub(max_queue=2, log=lambda *a: None)
        w = FakeWriter()
        w.stall = asyncio.Event()
        c = make(hub, w)
        t = asyncio.create_task(hub.writer(c))
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "first"))
        await asyncio.sleep(0.01)  # the writer is now stuck in drain()
        hub.push(c, b"a")
        hub.push(c, b"b")
        assert c.conn.state == ws.OPEN  # full, but not stuck long enough yet
        await asyncio.sleep(hub_mod.SLOW_MS / 1000 + 0.05)
        hub.push(c, b"c")
        assert c.conn.state == ws.CLOSED and c.conn.close_code == ws.CLOSE_TRY_AGAIN
        w.stall.set()
        await t
        got = frames(w.data)
        assert got[0] == (ws.OP_TEXT, b"first")
        assert got[-1][0] == ws.OP_CLOSE and got[-1][1][:2] == b"\x03\xf5"  # 1013 reaches the peer

    run(main())


def test_protocol_error_during_drain_still_sends_close_frame():
    async def main():
        hub = Hub(log=lambda *a: None)
        w = FakeWriter()
        w.stall = asyncio.Event()
        c = make(hub, w)
        t = asyncio.create_task(hub.writer(c))
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "state"))
        await asyncio.sleep(0.01)
        c.conn.receive_data(b"\x81\x05hello")  # unmasked: 1002 while the writer drains
        c.done = True
        c.wake.set()
        w.stall.set()
        await t
        got = frames(w.data)
        assert got[-1][0] == ws.OP_CLOSE and got[-1][1][:2] == b"\x03\xea"
        c.task.cancel()

    run(main())
