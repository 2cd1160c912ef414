# Hub delivery and slow-client policy with a fake stream that can back up (CPython asyncio).
# The fake behaves like MicroPython's stream: what the socket cannot take waits in out_buf
# until drain() moves it.
import asyncio

from firmware import hub as hub_mod
from firmware import websocket as ws
from firmware.hub import Hub, Client


class FakeWriter:
    def __init__(self):
        self.data = b""  # what reached the peer
        self.out_buf = b""  # written, not yet taken by the "socket"
        self.blocked = False  # socket full: writes wait in out_buf
        self.release = asyncio.Event()  # drain() waits for this while blocked
        self.closed = False

    def write(self, b):
        if self.blocked or self.out_buf:
            self.out_buf += bytes(b)
        else:
            self.data += bytes(b)

    async def drain(self):
        while self.blocked and self.out_buf:
            await self.release.wait()
            self.release.clear()
        self.data += self.out_buf
        self.out_buf = b""

    # A slow socket: it takes n bytes of what waits; drain() returns once it took everything.
    def take_some(self, n):
        self.data += self.out_buf[:n]
        self.out_buf = self.out_buf[n:]
        if not self.out_buf:
            self.release.set()

    def unblock(self):
        self.blocked = False
        self.release.set()

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


def make(hub, w):
    async def reader():
        await asyncio.sleep(3600)

    c = Client(w, asyncio.create_task(reader()), 1024)
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


def quiet(*a):
    pass


def test_frames_go_straight_out_while_the_socket_takes_them():
    async def main():
        hub = Hub(max_queue=2, log=quiet, max_clients=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        for i in range(10):  # far more than max_queue: nothing is backed up, nothing queues
            hub.broadcast(ws.encode_frame(ws.OP_TEXT, "m%d" % i, True, None))
        assert c.state == ws.OPEN and c.flush_at is None and c.queue is None
        assert [p for _, p in frames(w.data)] == [b"m%d" % i for i in range(10)]
        c.task.cancel()

    run(main())


def test_backed_up_client_gets_held_frames_in_order_after_drain():
    async def main():
        hub = Hub(max_queue=4, log=quiet, max_clients=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        w.blocked = True
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "a", True, None))  # into out_buf: a flush task starts
        assert c.flush_at is not None
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "b", True, None))
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "c", True, None))
        assert len(c.queue) == 2 and w.data == b""
        w.unblock()
        await asyncio.sleep(0.01)
        assert [p for _, p in frames(w.data)] == [b"a", b"b", b"c"]
        assert c.flush_at is None and c.state == ws.OPEN
        c.task.cancel()

    run(main())


def test_relay_updates_are_last_writer_wins_while_backed_up():
    async def main():
        hub = Hub(log=quiet, max_clients=8, max_queue=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        w.blocked = True
        hub.relay_changed(0, ws.encode_frame(ws.OP_TEXT, "r0 on", True, None))
        for i in range(20):  # a lagging client only needs the newest state of each relay
            hub.relay_changed(1, ws.encode_frame(ws.OP_TEXT, "r1 v%d" % i, True, None))
            hub.relay_changed(0, ws.encode_frame(ws.OP_TEXT, "r0 v%d" % i, True, None))
        assert c.queue is None and c.dirty == 0b11
        w.unblock()
        await asyncio.sleep(0.01)
        assert [p for _, p in frames(w.data)] == [b"r0 on", b"r0 v19", b"r1 v19"]
        c.task.cancel()

    run(main())


def test_full_queue_closes_1013_and_close_frame_reaches_peer():
    async def main():
        hub = Hub(max_queue=2, log=quiet, max_clients=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        w.blocked = True
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "first", True, None))
        hub.push(c, b"a")
        hub.push(c, b"b")
        assert c.state == ws.OPEN and c.queue == [b"a", b"b"]  # the queue is full, not over
        hub.push(c, b"c")  # one more than max_queue: closed at once
        assert c.state == ws.CLOSED and c.close_code == ws.CLOSE_TRY_AGAIN
        assert c not in hub.clients and c.queue is None
        w.unblock()
        await asyncio.sleep(0.01)
        got = frames(w.data)
        assert got[0] == (ws.OP_TEXT, b"first")
        assert got[-1][0] == ws.OP_CLOSE and got[-1][1][:2] == b"\x03\xf5"  # 1013 reaches the peer
        assert b"c" not in [p for _, p in got]

    run(main())


# A client whose flush keeps progressing, slowly, while messages come faster than it takes
# them: its queue never holds more than max_queue frames, and what its stream is handed at
# once stays near _BATCH bytes; it is the one closed (1013), nobody else.
def test_slow_but_progressing_reader_is_bounded_and_closed():
    async def main():
        hub = Hub(max_queue=4, log=quiet, max_clients=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        other = make(hub, FakeWriter())
        w.blocked = True
        big = ws.encode_frame(ws.OP_TEXT, "x" * 120, True, None)
        most_queued = most_pending = 0
        for i in range(200):
            hub.broadcast(big)
            if c.queue:
                most_queued = max(most_queued, len(c.queue))
            most_pending = max(most_pending, len(w.out_buf))
            if i % 3 == 0:  # the socket takes a little now and then
                w.take_some(200)
            await asyncio.sleep(0)
            if c.state == ws.CLOSED:
                break
        assert c.state == ws.CLOSED and c.close_code == ws.CLOSE_TRY_AGAIN
        assert most_queued <= 4, most_queued
        assert most_pending <= hub_mod._BATCH + len(big), most_pending
        assert other.state == ws.OPEN and len(frames(other.writer.data)) == i + 1
        other.task.cancel()

    run(main())


def test_stalled_write_drops_client_after_write_timeout():
    async def main():
        logged = []
        hub = Hub(write_timeout_ms=50, log=logged.append, max_clients=8, max_queue=8)
        w = FakeWriter()
        c = make(hub, w)
        other = make(hub, FakeWriter())
        w.blocked = True
        hub.push(c, b"\x81\x01x")
        await asyncio.sleep(0.15)
        assert c.dead() and c not in hub.clients
        assert any("dropped (write stalled)" in line for line in logged)
        hub.broadcast(ws.encode_frame(ws.OP_TEXT, "still here", True, None))  # the others never waited
        assert frames(other.writer.data)[-1] == (ws.OP_TEXT, b"still here")
        other.task.cancel()

    run(main())


def test_protocol_error_while_backed_up_still_sends_close_frame():
    async def main():
        hub = Hub(log=quiet, max_clients=8, max_queue=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        w.blocked = True
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "state", True, None))
        c.receive_data(b"\x81\x05hello", False)  # unmasked: 1002 while the socket is backed up
        hub.send_pending(c)
        w.unblock()
        await hub.finish(c)
        got = frames(w.data)
        assert got[0] == (ws.OP_TEXT, b"state")
        assert got[-1][0] == ws.OP_CLOSE and got[-1][1][:2] == b"\x03\xea"
        c.task.cancel()

    run(main())


def test_pongs_are_skipped_while_backed_up():
    async def main():
        hub = Hub(log=quiet, max_clients=8, max_queue=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        w.blocked = True
        hub.push(c, b"\x81\x01x")
        for _ in range(50):  # a peer that pings without reading must not grow our buffer
            c.receive_data(b"\x89\x80\x00\x00\x00\x00", False)
            hub.send_pending(c)
        assert len(w.out_buf) == 3
        c.task.cancel()

    run(main())


class CountingWriter(FakeWriter):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, b):
        self.writes += 1
        super().write(b)


def test_held_burst_goes_out_as_one_write_per_client_in_order():
    async def main():
        hub = Hub(max_queue=2, log=quiet, max_clients=8, write_timeout_ms=5000)
        ws_ = [CountingWriter() for _ in range(3)]
        cs = [make(hub, w) for w in ws_]
        hub.hold()
        for i in range(20):  # a pipelined burst from one read: more than max_queue, nobody is slow
            hub.relay_changed(i % 2, ws.encode_frame(ws.OP_TEXT, "r%d" % i, True, None))
        hub.broadcast(ws.encode_frame(ws.OP_TEXT, "say", True, None))
        assert all(w.writes == 0 for w in ws_)  # nothing leaves before release
        hub.release()
        for w, c in zip(ws_, cs):
            assert w.writes == 1 and c.state == ws.OPEN
            assert [p for _, p in frames(w.data)] == [b"r%d" % i for i in range(20)] + [b"say"]
            c.task.cancel()

    run(main())


def test_reply_to_one_client_during_hold_keeps_order():
    async def main():
        hub = Hub(log=quiet, max_clients=8, max_queue=8, write_timeout_ms=5000)
        w = FakeWriter()
        c = make(hub, w)
        hub.hold()
        hub.relay_changed(0, ws.encode_frame(ws.OP_TEXT, "relay", True, None))
        hub.push(c, ws.encode_frame(ws.OP_TEXT, "error", True, None))  # the broadcast before it goes first
        hub.relay_changed(1, ws.encode_frame(ws.OP_TEXT, "relay2", True, None))
        hub.release()
        assert [p for _, p in frames(w.data)] == [b"relay", b"error", b"relay2"]
        c.task.cancel()

    run(main())


def test_backed_up_client_gets_latest_relay_state_from_a_held_burst():
    async def main():
        hub = Hub(log=quiet, max_clients=8, max_queue=8, write_timeout_ms=5000)
        slow, fast = FakeWriter(), FakeWriter()
        cs, cf = make(hub, slow), make(hub, fast)
        slow.blocked = True
        hub.push(cs, ws.encode_frame(ws.OP_TEXT, "first", True, None))  # backs up: a flush task runs
        hub.hold()
        for i in range(10):
            hub.relay_changed(0, ws.encode_frame(ws.OP_TEXT, "v%d" % i, True, None))
        hub.release()
        assert cs.dirty == 1 and cs.state == ws.OPEN
        slow.unblock()
        await asyncio.sleep(0.01)
        assert [p for _, p in frames(slow.data)] == [b"first", b"v9"]
        assert len(frames(fast.data)) == 10  # every step for the client that keeps up
        cs.task.cancel()
        cf.task.cancel()

    run(main())
