# The pages: every open control page is a WebSocket client of the hub. Pages is the node's
# listener that turns changes into frames for all of them and pings them, and it runs each
# client from its upgrade to its close: the token check, reading frames, commands (with the
# rate limit) into node.apply. echo() serves /echo for conformance suites.
import asyncio

from . import auth
from . import commands
from . import websocket as ws
from .compat import MICROPYTHON, const, ticks_ms, ticks_diff, wait_for_ms, close_stream, read_into

if MICROPYTHON:
    from .compat import socket_of, wait_read_or_cancel
else:
    from .compat import pump
from .hub import Hub, Client, ADMITTED, FEEDING, STRIKE
from .node import Listener, heap
from .relays import CLIENT
from .text import printable

_CHUNK = const(512)  # bytes per socket read
# close codes logged as nothing unusual: websocket's CLOSE_NORMAL, _GOING_AWAY, _NO_STATUS, _ABNORMAL
_QUIET_CLOSES = const((1000, 1001, 1005, 1006))


# Every open page: the node's listener that sends them every change, and each page's
# session from its upgrade to its close.
class Pages(Listener):
    # True: each client's "open" log line gives the heap in use after a full collection, for
    # benchmarks (tools/sim.py --heap-log); it holds back the client's state message.
    heap_log = False

    # guard: auth.Guard; buf: the server's read buffer, shared by every connection (each read
    # is used up before the next await); left() is called as each session ends.
    def __init__(self, node, guard, buf, left):
        lim = self.limits = node.limits
        self.node = node
        self.log = node.log
        self.hub = Hub(lim["max_clients"], lim["client_queue"], lim["write_timeout_ms"], node.log)
        self.guard = guard
        self.buf = buf
        self.mv = memoryview(buf)
        self.left = left
        self.frames = {}  # relay id * 2 + on -> the frame of a client's change to it
        self.last_ping = ticks_ms()

    def changed(self, changes, origin, hops, via):
        for r, cause in changes:
            # a client's change (no link origin) is the same bytes every time for a relay and
            # state: made once, at most two frames a relay (the hub keeps one of them anyway),
            # which takes the JSON and frame building and their garbage off the hot path
            k = r.id * 2 + r.on if cause == CLIENT and origin is None else -1
            f = self.frames.get(k)
            if f is None:
                f = ws.encode_frame(ws.OP_TEXT, commands.relay_message(r, cause, origin, hops), True, None)
                if k >= 0:
                    self.frames[k] = f
            self.hub.relay_changed(r.id, f)

    def message(self, text):
        self.hub.broadcast(ws.encode_frame(ws.OP_TEXT, text, True, None))

    # Server pings, and the end of peers that do not answer them or stay idle too long.
    def tick(self, now):
        lim = self.limits
        hub = self.hub
        ping = ticks_diff(now, self.last_ping) >= lim["ping_interval_ms"]
        if ping:
            self.last_ping = now
        for c in list(hub.clients):
            if c.ping_at is not None and ticks_diff(now, c.ping_at) > lim["pong_timeout_ms"]:
                hub.close(c, ws.CLOSE_INTERNAL, "ping timeout")
                hub.drop(c, "no pong")
            elif ticks_diff(now, c.last_rx) > lim["idle_timeout_ms"]:
                hub.close(c, ws.CLOSE_GOING_AWAY, "idle")
            elif ping and c.ping_at is None:
                c.ping_at = now
                c.send_ping(b"rn")
                hub.send_pending(c)

    # A control client, from its upgrade to its close: up is (path, verdict, rest, stream) with
    # verdict the token check of the upgrade (auth.OK, BAD, LOCKED, or None: an auth message is
    # expected first), rest the bytes that came with the head and stream the connection. The
    # task lives as long as the client, and so does this frame: few locals, short calls and no
    # try (the start, which may fail in many ways, is _start's, and take() catches what a read
    # may raise); the rare parts are methods. Each local and each value a call stacks up is a
    # word of the frame: one word more would make it a heap block larger, for every client.
    async def run(self, up):
        # up let go: a slot of this frame keeps what it last held (the collector sees it), so
        # none may be left holding up (rest) for as long as the client stays. up goes first:
        # the await puts what it sends into that slot.
        c = await _start(up, self)
        up = None
        if c is None:
            return  # it has left already
        # None while reading; then True: the peer finished (EOF, its close frame, a lost
        # connection); False: we stopped (c closed or dropped, the hub gave up on it)
        done = None
        if MICROPYTHON:
            # the task waits on the socket itself (True: the task was cancelled), and take()
            # reads into the buffer every connection shares (nothing allocated per read but
            # the view). The socket goes in up's slot.
            up = socket_of(c.writer)
            while done is None:
                done = False if await wait_read_or_cancel(up) else self.take(c, up)  # pyright: ignore
        else:
            done = await _pumped(self, c)
        await self.leave(c, c.writer, done)

    # A new client, admitted or refused by the token check of its upgrade.
    def join(self, verdict, writer):
        c = Client(writer, asyncio.current_task(), self.limits["max_message"])
        if verdict == auth.OK:
            self.admit(c)
        elif verdict is not None:
            self.hub.close(c, *auth.close_for(verdict, True))
        return c

    # Make c a client of the hub: it gets the state now and every change from now on.
    def admit(self, c):
        self.hub.add(c)
        n = len(self.hub.clients)
        self.log("ws %s: open (%d clients%s)" % (c.peer, n, ", heap %d" % heap() if self.heap_log else ""))
        self.hub.push(c, ws.encode_frame(ws.OP_TEXT, self.node.state_message(), True, None))

    # c's bytes as they come (CPython: from the connection's protocol callback), or under
    # MicroPython c's socket, read here into the shared buffer. None, go on; True, the peer
    # finished (EOF, its close frame, the connection lost); False, stop reading (c is closed or
    # dropped, or the heap ran out). While its own bytes are handled, the hub does not cancel
    # c's reader (FEEDING): this decides.
    def take(self, c, data):
        c.flags |= FEEDING
        try:
            if MICROPYTHON:
                n = data.readinto(self.buf)
                if n is None:
                    return None  # woken, but nothing to read after all
                if not n:
                    return True
                data = self.mv[:n]
            if self.receive(c, data):
                return True
        except OSError:
            return True  # the peer went away
        except MemoryError:
            self.oom(c)
            return False
        finally:
            c.flags &= ~FEEDING
        return False if c.state == ws.CLOSED or c.dead() else None

    # Feed bytes from c to its parser and act on the events; True when c sent a close frame.
    def receive(self, c, data):
        c.receive_data(data, isinstance(data, memoryview))  # a view: of the shared read buffer
        now = ticks_ms()
        # what c spent of its command budget (see rate_ok) comes back with the time since c
        # last sent anything: no time of its last command is kept per client
        if c.spent:
            gap = min(max(ticks_diff(now, c.last_rx), 0), 60000)  # ticks wrap: keep it sane
            c.spent = max(0, c.spent - gap * self.limits["max_rate"])
        c.last_rx = now
        hub = self.hub
        hub.hold()
        self.node.hold()
        try:
            closed = self.events(c)
        finally:
            hub.release()
            self.node.release()
        if c.state == ws.CLOSED and c.close_code not in _QUIET_CLOSES:
            self.log("ws %s: protocol close %s (%s)" % (c.peer, c.close_code, printable(c.close_reason, 80)))
        hub.send_pending(c)
        return closed

    # Act on the events c's parser produced; True when one was a close frame.
    def events(self, c):
        closed = False
        for ev in c.take_events():
            op = ev[0]
            if op == ws.OP_TEXT:
                self.command(c, ev[1])
            elif op == ws.OP_BINARY:
                self.error(c, "binary_unsupported", "send JSON text frames")
            elif op == ws.OP_PONG:
                c.ping_at = None
            elif op == ws.OP_CLOSE:
                closed = True
        return closed

    def error(self, c, code, message):
        self.log("ws %s: error %s: %s" % (c.peer, code, printable(message, 80)))
        self.hub.push(c, ws.encode_frame(ws.OP_TEXT, commands.error_message(code, message), True, None))

    # True when c may send one more command now: a token bucket of max_rate commands per
    # second, in bursts of up to max_rate (a command costs 1000; receive() gives back max_rate
    # a millisecond). A client that keeps flooding after being told is closed (1008).
    def rate_ok(self, c):
        rate = self.limits["max_rate"]
        if c.spent + 1000 <= rate * 1000:
            c.spent += 1000
            if c.flags >= STRIKE:
                c.flags %= STRIKE  # no strikes
            return True
        c.flags += STRIKE
        strikes = c.flags // STRIKE
        if strikes > rate:
            self.hub.close(c, ws.CLOSE_POLICY, "too many commands")
        elif strikes == 1:
            self.error(c, "rate_limited", "more than %d commands a second" % rate)
        return False

    def command(self, c, text):
        if not c.flags & ADMITTED:
            return _authenticate(self, c, text)
        if not self.rate_ok(c):
            return
        node = self.node
        try:
            cmd = commands.parse(text, node.handlers)
        except commands.CommandError as e:
            return self.error(c, e.code, e.message)
        kind = cmd["type"]
        err = None
        if kind == "get":
            self.hub.push(c, ws.encode_frame(ws.OP_TEXT, node.state_message(), True, None))
        elif kind == "say":
            self.log("say from %s: %s" % (c.peer, printable(cmd["text"], 80)))
            node.message(commands.say_message(cmd["text"]))
        elif kind in ("set", "toggle", "pulse"):
            origin = cmd.get("origin")  # from another node's link
            if origin is None:
                err = node.apply(cmd, CLIENT)
            else:
                err = node.apply(cmd, "link", origin, cmd.get("hops", 1))
        else:
            h = node.handlers.get(kind)
            err = h(cmd) if h else ("unknown_type", "unknown message type")
            if isinstance(err, str):  # a reply for the sender only
                self.hub.push(c, ws.encode_frame(ws.OP_TEXT, err, True, None))
                err = None
        if err:
            self.error(c, err[0], err[1])

    # A MemoryError while serving c (None: it was being made), say a message under max_message
    # that the heap left cannot hold: c is closed with 1011 (what it sent so far is dropped),
    # and the node recovers (everybody gets the whole state again).
    def oom(self, c):
        who = "ws ?"
        if c is not None:
            who = "ws " + c.peer
            self.hub.close(c, ws.CLOSE_INTERNAL, "out of memory")  # drops its partial message
        self.node.recover(who)

    # The end of a connection that was upgraded (c is None when making its client failed): out
    # of the hub with a last bounded flush and, when the peer has not finished, a linger so that
    # our close frame is not destroyed by a reset; then the socket is closed. done: the peer
    # closed TCP or sent its close frame.
    async def leave(self, c, stream, done):
        try:
            if c is not None:
                if done:
                    c.receive_eof()  # nothing when its close frame came: CLOSED already
                await self.hub.finish(c)
                if not done and not c.dead():
                    await linger(stream, self.buf)
                self.log("ws %s: closed %s %s" % (c.peer, c.close_code, printable(c.close_reason, 80)))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.left()
            await close_stream(stream)


# The start of a control client, for Pages.run, from up (see there): made with the token check
# of its upgrade, given the bytes that came with its head, and its auth message awaited when the
# upgrade had no token. The client once it is to be read from; None when it has left already
# (refused, closed, gone).
async def _start(up, pages):
    c = None
    done = False  # the peer closed TCP or sent its close frame: nothing more to read
    stream = up[3]
    try:
        c = pages.join(up[1], stream)
        rest = up[2]
        up = None
        if rest:
            done = pages.receive(c, rest)
        rest = None
        if not done and not c.flags & ADMITTED:
            done = await _token_wait(pages, c, stream)
        if not done and c.flags & ADMITTED and c.state != ws.CLOSED and not c.dead():
            done = None
            return c
    except OSError:
        done = True  # the peer went away
    except asyncio.CancelledError:
        pass  # the hub gave up on this client
    except MemoryError:
        pages.oom(c)
    finally:
        if done is not None:
            await pages.leave(c, stream, done)
    return None


if not MICROPYTHON:
    # CPython's read step: what arrives goes from the connection's protocol callback to
    # take(); as take() answers, True when the connection is lost, False when the task is
    # cancelled (the hub gave up on the client).
    async def _pumped(pages, c):
        try:
            return await pump(c.writer, pages.take, c)
        except OSError:
            return True
        except asyncio.CancelledError:
            return False


# The first message of a client that gave no token in the URL must be
# {"type":"auth","token":...}; anything else closes the connection.
def _authenticate(pages, c, text):
    try:
        cmd = commands.parse(text)
    except commands.CommandError:
        cmd = {}
    tok = cmd.get("token") if cmd.get("type") == "auth" else None
    verdict = pages.guard.check(tok if isinstance(tok, str) else None, c.peer)
    if verdict == auth.OK:
        pages.admit(c)
    else:
        pages.hub.close(c, *auth.close_for(verdict, tok is not None))

# Read until a client that gave no token in the URL sends its auth message (or fails to in
# time); True when the peer finished meanwhile.
async def _token_wait(pages, c, reader):
    while not c.flags & ADMITTED and c.state != ws.CLOSED and not c.dead():
        try:
            # a read of its own: under wait_for it completes in another task, and the
            # shared buffer could be refilled before this one resumes
            data = await wait_for_ms(reader.read(_CHUNK), pages.limits["handshake_timeout_ms"])
        except asyncio.TimeoutError:
            pages.hub.close(c, *auth.close_for(auth.BAD, False))
            return False
        if not data or pages.receive(c, data):
            return True
    return False


# After our last words (a close frame, or an answer to a request whose body was not read),
# read and drop what the peer still sends until it closes TCP or a second passes: closing with
# unread input makes the kernel send a reset, which can destroy what we sent before the peer
# reads it. (After a complete close handshake the server closes TCP first, RFC 6455 7.1.1.)
async def linger(stream, buf):
    try:
        await wait_for_ms(_discard(stream, buf), 1000)
    except Exception:
        pass


async def _discard(stream, buf):
    while await read_into(stream, buf) != 0:  # None: nothing yet, 0: EOF
        pass


# A request body of size bytes handed to sink in pieces: first (what came with the head),
# then what the peer sends, read into the shared buffer buf, each piece given to sink before
# the next await. EOFError when the peer goes away first. The caller bounds it in time.
async def read_body(stream, buf, first, size, sink):
    if first:
        sink(first)
    left = size - len(first)
    mv = memoryview(buf)
    while left > 0:
        n = await read_into(stream, buf)
        if n is None:
            continue  # MicroPython: woken, but nothing to read after all
        if not n:
            raise EOFError
        n = min(n, left)
        sink(mv[:n])
        left -= n


# /echo: every message back as it came, for conformance suites. Reads go into the shared
# buffer (buf), each used up before the next await, as the pages' do.
async def echo(rest, stream, limits, buf):
    conn = ws.Connection(limits["max_message"], False)
    data = rest
    while True:
        if data:
            conn.receive_data(data, isinstance(data, memoryview))
        peer_closed = False
        for ev in conn.take_events():
            if ev[0] == ws.OP_TEXT:
                conn.send_text(ev[1])
            elif ev[0] == ws.OP_BINARY:
                conn.send_binary(ev[1])
            elif ev[0] == ws.OP_CLOSE:
                peer_closed = True
        out = conn.data_to_send()
        if out:
            stream.write(out)
            await wait_for_ms(stream.drain(), limits["write_timeout_ms"])
        if conn.state == ws.CLOSED:
            if not peer_closed:
                await linger(stream, buf)
            return
        n = await read_into(stream, buf)
        if n == 0:
            return
        data = memoryview(buf)[:n] if n else None  # None: woken with nothing to read (MicroPython)
