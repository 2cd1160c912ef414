# Connected WebSocket clients and broadcast. Each outgoing frame is encoded once and the
# same bytes go to every client. Relay state is last-writer-wins (a client that lags gets the
# latest state of a relay, not every step); other messages wait in a small bounded queue per
# client. A client that falls too far behind or whose writes stall is closed; nobody waits.
import asyncio

from . import websocket as ws
from .compat import ticks_ms, ticks_diff, wait_for_ms, close_stream

SLOW_MS = 100  # a write pending this long with a full queue marks a client as slow


class Client:
    def __init__(self, writer, conn, peer, task):
        self.writer = writer
        self.conn = conn  # websocket.Connection
        self.peer = peer
        self.task = task  # the reader task, cancelled when the writer gives up
        self.queue = []  # frames (bytes) in order
        self.dirty = 0  # bit i set: relay i changed since last sent
        self.wake = asyncio.Event()
        self.done = False  # the reader has finished: flush and stop
        self.dead = False  # dropped by the hub: stop at once
        self.last_rx = ticks_ms()
        self.ping_at = None  # when the unanswered server ping went out
        self.drain_at = None  # when the write in progress started (None: writer idle)
        self.admitted = False  # passed the token check and joined the hub
        self.allow = 1 << 24  # command budget (token bucket, 1000 per command; starts full)
        self.last_cmd = ticks_ms()
        self.strikes = 0  # commands refused in a row for going too fast


class Hub:
    def __init__(self, max_clients=8, max_queue=8, write_timeout_ms=5000, log=print):
        self.clients = []
        self.max_clients = max_clients
        self.max_queue = max_queue
        self.write_timeout_ms = write_timeout_ms
        self.log = log
        self.relay_frames = {}  # relay id -> latest encoded relay frame

    def full(self):
        return len(self.clients) >= self.max_clients

    def add(self, c):
        self.clients.append(c)

    def remove(self, c):
        if c in self.clients:
            self.clients.remove(c)

    # Queue a frame for one client; a client whose queue is full is closed (1013). Full
    # counts only while its writer is stuck in a write: one read can hold a burst of commands
    # whose messages all queue before any writer has had its turn (hard cap: 4x).
    def push(self, c, frame):
        if c.dead or c.done:
            return
        n = len(c.queue)
        if n >= self.max_queue and (
            n >= 4 * self.max_queue or (c.drain_at is not None and ticks_diff(ticks_ms(), c.drain_at) >= SLOW_MS)
        ):
            self.close(c, ws.CLOSE_TRY_AGAIN, "too slow")
            return
        c.queue.append(frame)
        c.wake.set()

    # A frame for everybody.
    def broadcast(self, frame):
        for c in self.clients:
            self.push(c, frame)

    # Relay rid changed; frame is its newest relay message.
    def relay_changed(self, rid, frame):
        self.relay_frames[rid] = frame
        bit = 1 << rid
        for c in self.clients:
            c.dirty |= bit
            c.wake.set()

    # Close a client politely: the close frame goes out if the peer still reads.
    def close(self, c, code, reason):
        if c.conn.state == ws.OPEN:
            self.log("ws %s: closing %d (%s)" % (c.peer, code, reason))
        c.conn.fail(code, reason)
        c.wake.set()

    # Drop a client at once, without waiting for its writes.
    def drop(self, c, why):
        if not c.dead:
            self.log("ws %s: dropped (%s)" % (c.peer, why))
            c.dead = True
            self.remove(c)
            if not c.done:
                c.task.cancel()
            c.wake.set()

    # Send what is waiting for c until its reader is done or it is dropped.
    async def writer(self, c):
        w = c.writer
        try:
            while not c.dead:
                await c.wake.wait()
                c.wake.clear()
                if c.dead:
                    break
                out = c.conn.data_to_send()  # pongs and close frames first
                if out:
                    w.write(out)
                if c.conn.state == ws.OPEN:
                    q = c.queue
                    if q:
                        c.queue = []
                        for f in q:
                            w.write(f)
                    while c.dirty:
                        rid = 0
                        while not c.dirty & (1 << rid):
                            rid += 1
                        c.dirty &= ~(1 << rid)
                        w.write(self.relay_frames[rid])
                c.drain_at = ticks_ms()
                try:
                    await wait_for_ms(w.drain(), self.write_timeout_ms)
                except asyncio.TimeoutError:
                    self.drop(c, "write stalled")
                    break
                c.drain_at = None
                if c.conn.state == ws.CLOSED:
                    out = c.conn.data_to_send()  # a close frame queued while we drained
                    if out:
                        w.write(out)
                        await wait_for_ms(w.drain(), self.write_timeout_ms)
                    if not c.done:
                        c.task.cancel()  # close frame sent: end the TCP connection (7.1.1)
                    break
                if c.done:
                    break
        except Exception as e:
            self.drop(c, "write failed: %r" % e)
        finally:
            c.dead = True

    # Close every client (server shutdown), 1001.
    async def shutdown(self):
        for c in list(self.clients):
            self.close(c, ws.CLOSE_GOING_AWAY, "server stopping")
        await asyncio.sleep(0)
        for c in list(self.clients):
            await close_stream(c.writer)
