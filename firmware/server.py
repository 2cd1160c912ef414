# The node's asyncio code: accept connections, answer HTTP, upgrade /ws to a
# WebSocket client of the hub, and run the timers (pulses, pings, state saving).
import asyncio
import gc
import json

from . import VERSION
from . import auth
from . import commands
from . import http
from . import websocket as ws
from .compat import MICROPYTHON, ticks_ms, ticks_diff, sleep_ms, wait_for_ms, close_stream, read_into, peer_name
from .compat import collect_often, pending
from .hub import Hub, Client, ADMITTED, STRIKE
from .relays import LINK, CLIENT

if MICROPYTHON:
    from asyncio import start_server
    from .compat import wait_read
else:
    from .cpython import start_server, client as cpython_client

_CHUNK = 512  # bytes per socket read and per file read
_HTML = "text/html; charset=utf-8"
# The request header fields anything here reads (server, auth, http.StaticFile, websocket,
# setup); the others are checked and dropped.
_HEADERS = (
    " host origin authorization accept-encoding if-none-match content-length transfer-encoding"
    " upgrade connection sec-websocket-key sec-websocket-version "
)  # one string: a tuple would cost a string object per name
_QUIET_CLOSES = (ws.CLOSE_NORMAL, ws.CLOSE_GOING_AWAY, ws.CLOSE_NO_STATUS, ws.CLOSE_ABNORMAL)


class Node:
    # True: each client's "open" log line gives the heap in use after a full collection, for
    # benchmarks (tools/sim.py --heap-log). Off by default: a collection per connection would
    # hold back every new client's state message (by about 0.2 ms on the unix port).
    heap_log = False

    # cfg: validated config; bank: RelayBank; store: StateStore or None; page: path of
    # index.html in flash; log: a print-like function; echo overrides cfg["echo"].
    def __init__(self, cfg, bank, store, page, log=print, echo=None):
        self.limits = cfg["limits"]  # of cfg only what is used is kept: the rest is heap
        self.link_specs = cfg.get("links") or ()
        self.name = cfg["name"]
        self.bank = bank
        self.store = store
        self.log = log
        self.echo = cfg["echo"] if echo is None else echo
        lim = self.limits
        self.hub = Hub(lim["max_clients"], lim["client_queue"], lim["write_timeout_ms"], log)
        self.guard = auth.Guard(cfg["auth"]["token"], cfg["auth"]["origins"], log=log)
        # for socket and file reads, shared by every connection: each read is used up (parsed,
        # or written, which copies) before the next await
        self.buf = bytearray(_CHUNK)
        self.mv = memoryview(self.buf)
        self.page = http.StaticFile(page, _HTML, self.buf)
        self.connections = 0
        self.dirty_at = None  # when relay state last changed without being saved
        self.timers = None  # the timer task
        self.sleeping = False  # the timer task sleeps and may be woken early: see _wake()
        self.server = None
        self.on_tick = _nothing  # called by the timer task (the board feeds its watchdog there)
        self.links = []  # firmware/links.py: made by start()
        self.setup = None  # Wi-Fi setup mode: see offer_setup()
        self.networks = []
        self.held = []  # relay log lines (tuples) held while the hub holds: see publish()
        self.frames = {}  # relay id * 2 + on -> the frame of a client's change to it (publish)

    # Wi-Fi setup mode, for a board that could not join a network and runs its own access
    # point: /setup serves a form (networks: names it suggests) and save(ssid, password) keeps
    # what it sends (the board writes wifi.json and resets). Without it /setup is 404.
    def offer_setup(self, save, networks=()):
        self.setup = save
        self.networks = list(networks)

    # Start listening; returns once the socket is bound.
    async def start(self, host, port):
        self.server = await start_server(self._handle, host, port, backlog=8)
        collect_often()
        self.timers = asyncio.create_task(self._timers())
        if self.link_specs:
            # imported only when configured, and only now that the boot-only modules are gone
            from .links import Link

            self.links = [Link(self, spec) for spec in self.link_specs]
            for link in self.links:
                link.start()
        self.log("relaynode %s serving http://%s:%d/ (heap %d)" % (VERSION, host, port, heap()))

    # Apply relay changes: one encoded frame each for every client, log, save later, and hand
    # them to the links (which only queue). origin, hops: where a linked change began and the
    # links it crossed; via: the link that made it here (it is not sent back there).
    def publish(self, changes, origin=None, hops=0, via=None):
        for r, cause in changes:
            # first what must not be lost if the heap runs out below: the save, the pulse's end
            if self.dirty_at is None:
                self.dirty_at = ticks_ms()
                self._wake()  # the timer task must wake in time for the save
            if r.off_at is not None:
                self._wake()  # a pulse started: the timer task must wake for its end
            # a client's change (no link origin) is the same bytes every time for a relay and
            # state: made once, at most two frames a relay (the hub keeps one of them anyway),
            # which takes the JSON and frame building and their garbage off the hot path
            k = r.id * 2 + r.on if cause == CLIENT and origin is None else -1
            f = self.frames.get(k)
            if f is None:
                f = ws.encode_frame(ws.OP_TEXT, commands.relay_message(r, cause, origin, hops))
                if k >= 0:
                    self.frames[k] = f
            self.hub.relay_changed(r.id, f)
            line = (r.name, "on" if r.on else "off", cause + " from " + origin if origin else cause)
            if self.hub.batch is None:
                self.log("relay %s -> %s (%s)" % line)
            else:  # the clients first: logged once the hub has released (a print is a syscall)
                self.held.append(line)
        if changes:
            for link in self.links:
                link.changed(changes, origin, hops, via)

    def state_message(self):
        extra = {"links": [link.status() for link in self.links]} if self.links else None
        return commands.state_message(self.name, VERSION, self.bank, extra)

    # Heap and connection figures for benchmarks and soak tests (GET /api/debug).
    def debug_message(self):
        h = heap()
        try:
            free = gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue]
        except AttributeError:
            free = 0
        return json.dumps({"heap": h, "free": free, "clients": len(self.hub.clients), "connections": self.connections})

    # Persist relay state now if it changed (also called at shutdown).
    def save(self):
        self.dirty_at = None
        if self.store is not None:
            try:
                self.store.save(self.bank.snapshot())
            except OSError as e:
                self.log("state: save failed: %r" % e)

    # Wake the timer task now if it sleeps (it works out its next wake-up again). A cancelled
    # sleep does it: an asyncio.Event would cost its module's heap for this one use.
    def _wake(self):
        if self.sleeping and self.timers is not None:
            self.sleeping = False
            self.timers.cancel()

    # One task for every timer: pulse ends, state saves, server pings, dead peers.
    async def _timers(self):
        last_ping = ticks_ms()
        while True:
            due = self.bank.next_due()
            wait = 500 if due is None else min(500, due)
            if self.dirty_at is not None:
                left = self.limits["save_delay_ms"] - ticks_diff(ticks_ms(), self.dirty_at)
                wait = max(0, min(wait, left))
            if wait > 0:
                self.sleeping = True
                try:
                    await sleep_ms(wait)
                except asyncio.CancelledError:
                    if self.sleeping:
                        raise  # not _wake(): the task is being stopped
                    un = getattr(self.timers, "uncancel", None)  # CPython >= 3.11 counts requests
                    if un:
                        un()
                self.sleeping = False
            try:
                last_ping = self._tick(last_ping)
            except MemoryError:  # a pulse's end may have reached some clients only
                self._oom(None, "timers")
            except Exception as e:  # keep the timers alive whatever one of them does
                self.log("timers: %r" % e)
            self.on_tick()

    # One round of the timers; returns when the last ping round went out.
    def _tick(self, last_ping):
        lim = self.limits
        now = ticks_ms()
        self.publish(self.bank.expire(now))
        if self.dirty_at is not None and ticks_diff(now, self.dirty_at) >= lim["save_delay_ms"]:
            self.save()
        ping = ticks_diff(now, last_ping) >= lim["ping_interval_ms"]
        if ping:
            last_ping = now
        for c in list(self.hub.clients):
            if c.ping_at is not None and ticks_diff(now, c.ping_at) > lim["pong_timeout_ms"]:
                self.hub.close(c, ws.CLOSE_INTERNAL, "ping timeout")
                self.hub.drop(c, "no pong")
            elif ticks_diff(now, c.last_rx) > lim["idle_timeout_ms"]:
                self.hub.close(c, ws.CLOSE_GOING_AWAY, "idle")
            elif ping and c.ping_at is None:
                c.ping_at = now
                c.send_ping(b"rn")
                self.hub.send_pending(c)
        return last_ping

    # One TCP connection. A WebSocket client goes on in a task of its own (_client), so that
    # this coroutine's frame is not kept in the heap for as long as the client stays.
    async def _handle(self, reader, writer):
        self.connections += 1
        up = None
        try:
            up = await self._http(reader, writer)
            if up and up[0] == "/echo":
                up = await self._echo(up, reader, writer)
            elif up:  # (path, token verdict, bytes after the head, peer)
                asyncio.create_task(self._client(up, reader, writer))
        except OSError:
            pass  # the peer went away
        except asyncio.CancelledError:
            pass  # CPython < 3.12 would log the cancelled task as an error
        except MemoryError:
            self.log("http: MemoryError, connection closed (heap %d)" % heap())
        finally:
            if not up:  # else _client closes
                self.connections -= 1
                await close_stream(writer)

    # Read and answer an HTTP request. For a WebSocket upgrade, returns once the 101 is written:
    # (path, verdict, rest, peer) with rest the bytes that came after the head.
    async def _http(self, reader, writer):
        peer = peer_name(writer.get_extra_info("peername"))
        if self.connections > self.limits["max_connections"]:
            self.log("http %s: refused, %d connections" % (peer, self.connections - 1))
            return await self._send(writer, http.error_response(503, "too many connections", (("Retry-After", "5"),)))
        try:
            t = self.limits["handshake_timeout_ms"]
            req, rest = await wait_for_ms(self.read_head(reader, self._parse_request), t)
            if req is None:
                return None
        except asyncio.TimeoutError:
            self.log("http %s: 408 request head timeout" % peer)
            return await self._send(writer, http.error_response(408))
        except http.HttpError as e:
            self.log("http %s: %d %s" % (peer, e.status, e.message))
            return await self._send(writer, http.error_response(e.status, e.message))
        if req.method in ("GET", "HEAD") and (
            req.header("content-length", "0") != "0" or "transfer-encoding" in req.headers
        ):
            # nothing here takes a body; unread it would make the answer a reset
            await self._refuse(writer, peer, req, 413, "no request body accepted")
            return await self._linger(reader)
        if req.path == "/setup" and self.setup is not None:
            from . import setup  # loaded only in setup mode

            return await setup.answer(self, self.setup, req, rest, reader, writer, peer)
        up = await self._route(req, writer, peer)
        return (up[0], up[1], rest, peer) if up else None

    # Read up to and including the blank line that ends an HTTP head (a request here, a response
    # for links); (head, rest), or (None, None) at EOF. Raises HttpError(431) past the limit.
    # With parse, head is parse(data, end) for the head at data[:end] instead: a head that came
    # in one read is parsed where it lies in the shared buffer (before any other task can read
    # into it), with no copy.
    async def read_head(self, reader, parse=None):
        data = None
        limit = self.limits["max_head"]
        buf = self.buf
        while True:
            n = await read_into(reader, buf)
            if n is None:
                continue  # MicroPython: woken, but nothing to read after all
            if not n:
                return None, None
            if data is None:
                end = buf.find(b"\r\n\r\n", 0, n) + 4
                if 3 < end <= limit:  # the whole head in this read: the common case
                    rest = bytes(self.mv[end:n])
                    return (parse(buf, end) if parse else bytes(self.mv[:end])), rest
                data = bytearray()
            data += self.mv[:n]
            end = http.head_end(data)
            if end > 0:
                if end > limit:
                    break
                return (parse(data, end) if parse else data[:end]), data[end:]
            if len(data) > limit:
                break
        raise http.HttpError(431, "request head larger than %d bytes" % limit)

    def _parse_request(self, data, end):
        return http.parse_head(data, self.limits["max_headers"], end, _HEADERS)

    async def _send(self, writer, data):
        writer.write(data)
        await self._drain(writer)

    # Wait, for at most write_timeout_ms, until the socket has taken what was written. Most of
    # the time it took everything at once: then the other tasks get a turn and that is all, with
    # no timeout to set up (under MicroPython each costs a task).
    async def _drain(self, writer):
        if pending(writer):
            await wait_for_ms(writer.drain(), self.limits["write_timeout_ms"])
        else:
            await sleep_ms(0)

    # Answer a plain HTTP request, or write the 101 of a WebSocket upgrade and return
    # (path, verdict): verdict is auth.OK/BAD/LOCKED for the token, None when none came yet.
    async def _route(self, req, writer, peer):
        path = req.path
        if path in ("/", "/index.html"):
            if req.method not in ("GET", "HEAD"):
                return await self._refuse(writer, peer, req, 405, "use GET", (("Allow", "GET, HEAD"),))
            return await self._page(req, writer)
        if path in ("/api/state", "/api/debug"):
            if req.method != "GET":
                return await self._refuse(writer, peer, req, 405, "use GET", (("Allow", "GET"),))
            verdict = self.guard.check(auth.request_token(req), peer)
            if verdict == auth.LOCKED:
                return await self._refuse(writer, peer, req, 429, "too many wrong tokens", (("Retry-After", "30"),))
            if verdict == auth.BAD:
                return await self._refuse(writer, peer, req, 401, "token required", (("WWW-Authenticate", "Bearer"),))
            body = self.state_message() if path == "/api/state" else self.debug_message()
            return await self._send(writer, http.response(200, body, "application/json"))
        if path == "/ws" or (path == "/echo" and self.echo):
            err = ws.handshake_error(req.method, req.version, req.headers)
            if err:
                return await self._refuse(writer, peer, req, err[0], err[1], err[2])
            if not self.guard.origin_ok(req.header("origin"), req.header("host")):
                return await self._refuse(writer, peer, req, 403, "origin not allowed")
            if path == "/ws" and self.hub.full():
                return await self._refuse(writer, peer, req, 503, "too many clients", (("Retry-After", "5"),))
            writer.write(ws.handshake_response(req.header("sec-websocket-key")))
            verdict = auth.OK
            if path == "/ws" and self.guard.required():
                # the token comes as ?token= or, failing that, in the first message (None)
                tok = req.query.get("token")
                verdict = None if tok is None else self.guard.check(tok, peer)
            return path, verdict
        return await self._refuse(writer, peer, req, 404, "no such page")

    async def _refuse(self, writer, peer, req, status, message, headers=()):
        self.log("http %s: %s %s -> %d %s" % (peer, req.method, req.path, status, message))
        await self._send(writer, http.error_response(status, message, headers))

    # The control page, streamed from flash in small chunks.
    async def _page(self, req, writer):
        head, path = self.page.head_for(req)
        writer.write(head)
        if path and req.method == "GET":
            buf = self.buf  # safe to share: write() sends or copies before the next await
            mv = memoryview(buf)
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    writer.write(mv[:n] if MICROPYTHON else bytes(mv[:n]))
                    await self._drain(writer)
        await self._drain(writer)

    # A control client: read frames and act on them. up: what _http returned (path, verdict,
    # rest, peer); verdict is the token check of the upgrade (auth.OK, BAD, LOCKED, or None:
    # expect an auth message first). The task lives as long as the client, and so does this
    # frame: it keeps few locals and one try, and the rare parts are in _join, _token_wait and
    # _leave. It reads into the buffer all clients share and waits on the socket itself
    # (compat.wait_read): nothing is allocated per read but a memoryview. This is MicroPython's;
    # CPython's, which takes the bytes from the transport's callback, is in firmware/cpython.py.
    async def _client(self, up, reader, writer):
        c = None
        done = False
        try:
            c = self._join(up[1], writer)
            if up[2]:
                done = self._receive(c, up[2])
            up = None
            if not done and not c.flags & ADMITTED:
                done = await self._token_wait(c, reader)
            s = reader.s
            while not done and c.flags & ADMITTED and c.state != ws.CLOSED and not c.dead():
                yield wait_read(s)
                n = s.readinto(self.buf)
                if n is not None:  # None: woken, but nothing to read after all
                    done = self._receive(c, self.mv[:n]) if n else True  # parsed before the next wait
        except OSError:
            done = True
        except asyncio.CancelledError:
            pass
        except MemoryError:
            self._oom(c)
        finally:
            await self._leave(c, reader, writer, done)

    if not MICROPYTHON:
        _client = cpython_client  # noqa: F811  # pyright: ignore[reportAssignmentType]

    # A new client, admitted or refused by the token check of its upgrade.
    def _join(self, verdict, writer):
        c = Client(writer, asyncio.current_task(), self.limits["max_message"])
        if verdict == auth.OK:
            self._admit(c)
        elif verdict is not None:
            self.hub.close(c, ws.CLOSE_POLICY, "bad token" if verdict == auth.BAD else "too many wrong tokens, wait")
        return c

    # A MemoryError while serving c (None: it was being made, or it came from elsewhere: who
    # says where), say a message under max_message that the heap left cannot hold: logged, and
    # c closed with 1011 (what it sent so far is dropped). The other clients go on, and get the
    # whole state again: a relay may have moved with its message sent to some of them only.
    def _oom(self, c, who="ws ?"):
        if c is not None:
            who = "ws " + c.peer
            self.hub.close(c, ws.CLOSE_INTERNAL, "out of memory")  # drops its partial message
        self.log("%s: MemoryError (heap %d)" % (who, heap()))
        try:
            self.hub.broadcast(ws.encode_frame(ws.OP_TEXT, self.state_message()))
        except MemoryError:
            self.log("ws: MemoryError, state not sent again")

    # Read until a client that gave no token in the URL sends its auth message (or fails to in
    # time); True when the peer finished meanwhile.
    async def _token_wait(self, c, reader):
        while not c.flags & ADMITTED and c.state != ws.CLOSED and not c.dead():
            try:
                # a read of its own: under wait_for it completes in another task, and the
                # shared buffer could be refilled before this one resumes
                data = await wait_for_ms(reader.read(_CHUNK), self.limits["handshake_timeout_ms"])
            except asyncio.TimeoutError:
                self.hub.close(c, ws.CLOSE_POLICY, "token required")
                return False
            if not data or self._receive(c, data):
                return True
        return False

    # The end of a connection that was upgraded (c is None when making its client failed): out
    # of the hub with a last bounded flush and, when the peer has not finished, a linger so that
    # our close frame is not destroyed by a reset; then the socket is closed. done: the peer
    # closed TCP or sent its close frame.
    async def _leave(self, c, reader, writer, done):
        try:
            if c is not None:
                if done:
                    c.receive_eof()  # nothing when its close frame came: CLOSED already
                await self.hub.finish(c)
                if not done and not c.dead():
                    await self._linger(reader)
                self.log("ws %s: closed %s %s" % (c.peer, c.close_code, c.close_reason))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.connections -= 1
            await close_stream(writer)

    # After our close frame, when the peer has not sent its own, read and drop what it still
    # sends until it closes TCP or a second passes: closing with unread input makes the kernel
    # send a reset, which can destroy the close frame before the peer reads it. (After a
    # complete close handshake the server closes TCP first, RFC 6455 7.1.1: no linger.)
    async def _linger(self, reader):
        try:
            await wait_for_ms(self._discard(reader), 1000)
        except Exception:
            pass

    async def _discard(self, reader):
        while await read_into(reader, self.buf) != 0:  # None: nothing yet, 0: EOF
            pass

    # Make c a client of the hub: it gets the state now and every change from now on.
    def _admit(self, c):
        self.hub.add(c)
        n = len(self.hub.clients)
        self.log("ws %s: open (%d clients%s)" % (c.peer, n, ", heap %d" % heap() if self.heap_log else ""))
        self.hub.push(c, ws.encode_frame(ws.OP_TEXT, self.state_message()))

    # Feed bytes from c to its parser and act on the events; True when c sent a close frame.
    def _receive(self, c, data):
        c.receive_data(data, isinstance(data, memoryview))  # a view: of the shared read buffer
        c.last_rx = ticks_ms()
        self.hub.hold()
        try:
            closed = self._events(c)
        finally:
            self.hub.release()
            for line in self.held:
                self.log("relay %s -> %s (%s)" % line)
            self.held.clear()
        if c.state == ws.CLOSED and c.close_code not in _QUIET_CLOSES:
            self.log("ws %s: protocol close %s (%s)" % (c.peer, c.close_code, c.close_reason))
        self.hub.send_pending(c)
        return closed

    # Act on the events c's parser produced; True when one was a close frame.
    def _events(self, c):
        closed = False
        for ev in c.take_events():
            op = ev[0]
            if op == ws.OP_TEXT:
                self._command(c, ev[1])
            elif op == ws.OP_BINARY:
                self._error(c, "binary_unsupported", "send JSON text frames")
            elif op == ws.OP_PONG:
                c.ping_at = None
            elif op == ws.OP_CLOSE:
                closed = True
        return closed

    def _error(self, c, code, message):
        self.log("ws %s: error %s: %s" % (c.peer, code, message))
        self.hub.push(c, ws.encode_frame(ws.OP_TEXT, commands.error_message(code, message)))

    # True when c may send one more command now: a token bucket of max_rate commands per
    # second. A client that keeps flooding after being told is closed (1008).
    def _rate_ok(self, c):
        rate = self.limits["max_rate"]
        now = ticks_ms()
        gap = min(max(ticks_diff(now, c.last_cmd), 0), 60000)  # ticks wrap: keep it sane
        c.allow = min(rate * 1000, c.allow + gap * rate)
        c.last_cmd = now
        if c.allow >= 1000:
            c.allow -= 1000
            if c.flags >= STRIKE:
                c.flags %= STRIKE  # no strikes
            return True
        c.flags += STRIKE
        strikes = c.flags // STRIKE
        if strikes > rate:
            self.hub.close(c, ws.CLOSE_POLICY, "too many commands")
        elif strikes == 1:
            self._error(c, "rate_limited", "more than %d commands a second" % rate)
        return False

    def _command(self, c, text):
        if not c.flags & ADMITTED:
            return self._authenticate(c, text)
        if not self._rate_ok(c):
            return
        try:
            cmd = commands.parse(text)
            kind = cmd["type"]
            if kind == "get":
                self.hub.push(c, ws.encode_frame(ws.OP_TEXT, self.state_message()))
            elif kind == "say":
                self.log("say from %s: %s" % (c.peer, json.dumps(cmd["text"])))
                self.hub.broadcast(ws.encode_frame(ws.OP_TEXT, commands.say_message(cmd["text"])))
            elif kind in ("set", "toggle", "pulse"):
                origin = cmd.get("origin")  # from another node's link
                if origin is None:
                    self.publish(commands.apply(self.bank, cmd))
                elif origin != self.name:  # else our own change came back around a loop
                    self.publish(commands.apply(self.bank, cmd, LINK), origin, cmd.get("hops", 1))
        except commands.CommandError as e:
            self._error(c, e.code, e.message)

    # The first message of a client that gave no token in the URL must be
    # {"type":"auth","token":...}; anything else closes the connection (1008).
    def _authenticate(self, c, text):
        try:
            cmd = commands.parse(text)
        except commands.CommandError:
            cmd = {}
        tok = cmd.get("token") if cmd.get("type") == "auth" else None
        verdict = self.guard.check(tok if isinstance(tok, str) else None, c.peer)
        if verdict == auth.OK:
            self._admit(c)
        elif verdict == auth.LOCKED:  # the same words as for ?token=: a right token may be refused
            self.hub.close(c, ws.CLOSE_POLICY, "too many wrong tokens, wait")
        else:
            self.hub.close(c, ws.CLOSE_POLICY, "token required" if tok is None else "bad token")

    # /echo: every message back as it came, for conformance suites.
    async def _echo(self, up, reader, writer):
        conn = ws.Connection(self.limits["max_message"])
        data = up[2]
        up = None
        while True:
            if data:
                conn.receive_data(data)
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
                writer.write(out)
                await wait_for_ms(writer.drain(), self.limits["write_timeout_ms"])
            if conn.state == ws.CLOSED:
                return None if peer_closed else await self._linger(reader)
            data = await reader.read(4096)
            if not data:
                return

    async def stop(self):
        if self.server:
            self.server.close()
        for link in self.links:
            link.stop()
        await self.hub.shutdown()
        self.save()


def _nothing():
    pass


# Bytes of heap in use after a collection (gc.mem_alloc), for the logs and benchmarks.
def heap():
    gc.collect()
    try:
        return gc.mem_alloc()  # pyright: ignore[reportAttributeAccessIssue]
    except AttributeError:
        return 0


# Serve node on host:port until the process ends. Collect first: boot is over, and its
# garbage (config parsing, forgotten modules) must not wait for the first allocation failure.
def run(node, host, port):
    asyncio.run(serve(node, host, port))


# Start node on host:port and keep the event loop alive forever (the server runs in its
# own tasks).
async def serve(node, host, port):
    await node.start(host, port)
    while True:
        await sleep_ms(3600000)
