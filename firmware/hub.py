# Connected WebSocket clients and broadcast. Each outgoing frame is encoded once and the
# same bytes go to every client. A frame goes straight to the socket; only a client whose
# socket is backed up gets a flush task, and while it is backed up its relay updates are
# last-writer-wins (it gets the latest state of a relay, not every step) and other messages
# wait in a small bounded queue. A client that falls too far behind or whose writes stall is
# closed; nobody waits for it. An idle client costs no task and no event.
import asyncio

from . import websocket as ws
from .compat import const, ticks_ms, wait_for_ms, close_stream, pending, prepare_writer, peer_name

_BATCH = const(1024)  # bytes the flush hands a backed-up client's stream before each drain

# Client.flags
_DONE = const(1)  # the reader has finished
_DEAD = const(2)  # dropped by the hub: write nothing more
ADMITTED = 4  # passed the token check and joined the hub
FEEDING = 8  # CPython: the server is handling bytes of this client in a transport callback
STRIKE = 16  # flags // STRIKE: commands refused in a row for going too fast (Pages.rate_ok)


# One WebSocket client: the protocol state (it is a websocket.Connection) plus what the hub
# needs to deliver to it. One object per client keeps the per-client heap small.
class Client(ws.Connection):
    flags = 0
    queue = None  # frames held back while a flush runs (a list then)
    dirty = 0  # bit i: relay i changed while a flush ran
    flush_at = None  # when the running flush started; None: not backed up
    ping_at = None  # when the unanswered server ping went out
    spent = 0  # of the command budget (Pages.rate_ok): none at first, a full bucket

    # Attributes are set only when they change from the class defaults above, and few are
    # per instance: past 12 the instance's table grows to 17 entries (272 B on the 64-bit
    # port), which a fragmented small heap may not find when a client closes.
    def __init__(self, writer, task, max_message):
        super().__init__(max_message, False)
        prepare_writer(writer)
        self.writer = writer
        self.task = task  # the reader task, cancelled when the hub gives up on the client
        self.last_rx = ticks_ms()

    def dead(self):
        return self.flags & _DEAD

    # "ip:port" for a log line, from the stream: no string kept per client.
    @property
    def peer(self):
        f = getattr(self.writer, "get_extra_info", None)
        return peer_name(f("peername")) if f else "?"


class Hub:
    def __init__(self, max_clients, max_queue, write_timeout_ms, log):
        self.clients = []
        self.max_clients = max_clients
        self.max_queue = max_queue
        self.write_timeout_ms = write_timeout_ms
        self.log = log
        self.relay_frames = {}  # relay id -> latest encoded relay frame
        self.batch = None  # while held: [(frame, relay id or None)] waiting for release()
        self._batch = []  # the list hold() reuses: no allocation per read

    def full(self):
        return len(self.clients) >= self.max_clients

    def add(self, c):
        c.flags |= ADMITTED
        self.clients.append(c)

    def remove(self, c):
        if c in self.clients:
            self.clients.remove(c)

    # Write bytes to c now; if its socket cannot take them all, start a flush task.
    def _write(self, c, data):
        try:
            c.writer.write(data)
        except Exception as e:
            self.drop(c, "write failed: %r" % e)
            return
        if c.flush_at is None and pending(c.writer):
            c.flush_at = ticks_ms()
            asyncio.create_task(self._flush(c))

    # Send what the protocol queued (pongs, a close frame). Pongs are skipped while c is
    # backed up: a peer that pings without reading must not grow our buffer (RFC 6455 5.5.3
    # lets an endpoint answer only the latest ping).
    def send_pending(self, c):
        if c.flags & _DEAD:
            return
        out = c.data_to_send()
        if out and (c.flush_at is None or c.state != ws.OPEN):
            self._write(c, out)

    # A frame for one client; while it is backed up frames queue, at most max_queue of them: a
    # client that falls further behind is closed (1013), so what it holds is bounded by the
    # queue and the frame size, whatever the rate.
    def push(self, c, frame):
        if c.flags & (_DONE | _DEAD) or c.state != ws.OPEN:
            return
        if self.batch is not None and self.batch:
            self.release()  # what everybody was due goes first: order is kept
            self.hold()
        if c.flush_at is None:
            self._write(c, frame)
            return
        q = c.queue
        if q is None:
            q = c.queue = []
        if len(q) >= self.max_queue:
            self.close(c, ws.CLOSE_TRY_AGAIN, "too slow")
            return
        q.append(frame)

    # A frame for everybody. (Over a copy of the list: push may close a client, which
    # removes it, and the one after it would be skipped.)
    def broadcast(self, frame):
        if self.batch is not None:
            self.batch.append((frame, None))
            return
        for c in list(self.clients):
            self.push(c, frame)

    # Relay rid changed; frame is its newest relay message.
    def relay_changed(self, rid, frame):
        self.relay_frames[rid] = frame
        if self.batch is not None:
            self.batch.append((frame, rid))
            return
        bit = 1 << rid
        for c in list(self.clients):
            if c.flush_at is None:
                self.push(c, frame)
            else:
                c.dirty |= bit

    # Hold broadcasts while one read's worth of commands is handled, then release() sends them
    # joined: one write per client for a pipelined burst instead of one per message.
    def hold(self):
        b = self.batch = self._batch
        b.clear()  # what the last release() sent

    def release(self):
        b = self.batch
        self.batch = None
        if not b:
            return
        data = b[0][0] if len(b) == 1 else b"".join([f for f, _ in b])
        cl = self.clients
        i = len(cl)
        while i:  # backwards, with no copy of the list: a failed write removes only c itself
            i -= 1
            c = cl[i]
            if c.flush_at is None:
                if not c.flags & (_DONE | _DEAD) and c.state == ws.OPEN:
                    self._write(c, data)
            else:  # backed up: the usual policy, message by message
                for f, rid in b:
                    if rid is None:
                        self.push(c, f)
                    else:
                        c.dirty |= 1 << rid

    # Close a client politely: the close frame goes out if the peer still reads, and the
    # reader stops (it is cancelled unless it is the caller).
    def close(self, c, code, reason):
        if c.state == ws.OPEN:
            self.log("ws %s: closing %d (%s)" % (c.peer, code, reason))
        c.fail(code, reason)
        self.remove(c)
        c.queue = None
        c.dirty = 0
        self.send_pending(c)
        self._stop_reader(c)

    # Drop a client at once, without waiting for its writes.
    def drop(self, c, why):
        if not c.flags & _DEAD:
            self.log("ws %s: dropped (%s)" % (c.peer, why))
            c.flags |= _DEAD
            self.remove(c)
            c.queue = None
            self._stop_reader(c)

    def _stop_reader(self, c):
        if not c.flags & (_DONE | FEEDING) and c.task is not asyncio.current_task():
            c.task.cancel()

    # Called by the reader when it ends: out of the hub, then a last bounded flush.
    async def finish(self, c):
        c.flags |= _DONE
        self.remove(c)
        if not c.flags & _DEAD and pending(c.writer):
            try:
                await wait_for_ms(c.writer.drain(), self.write_timeout_ms)
            except Exception:
                c.flags |= _DEAD

    # Runs while c's socket is backed up: wait for it to drain, then hand its stream what was
    # held back, about _BATCH bytes at a time (the stream copies what it is given: all of the
    # queue at once would double what a slow client costs).
    async def _flush(self, c):
        w = c.writer
        try:
            while not c.flags & _DEAD:
                await wait_for_ms(w.drain(), self.write_timeout_ms)
                q = c.queue
                while q and pending(w) < _BATCH:
                    w.write(q.pop(0))
                if not q:
                    c.queue = None
                    dirty = c.dirty
                    c.dirty = 0
                    rid = 0
                    while dirty:
                        if dirty & 1:
                            w.write(self.relay_frames[rid])
                        dirty >>= 1
                        rid += 1
                    out = c.data_to_send()
                    if out:
                        w.write(out)
                if not pending(w) and not q:
                    break
                c.flush_at = ticks_ms()
        except asyncio.TimeoutError:
            self.drop(c, "write stalled")
        except Exception as e:
            self.drop(c, "write failed: %r" % e)
        finally:
            c.flush_at = None

    # Close every client (server shutdown), 1001.
    async def shutdown(self):
        clients = list(self.clients)
        for c in clients:
            self.close(c, ws.CLOSE_GOING_AWAY, "server stopping")
        await asyncio.sleep(0)
        for c in clients:
            await close_stream(c.writer)
