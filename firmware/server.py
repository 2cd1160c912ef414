# The I/O side of the HTTP front door: accept connections, read a request head (bounded in
# size and time), send what routes.route decides, stream the page from flash, and hand an
# upgraded connection to its WebSocket session. Built around a node by app.build.
import asyncio

from . import VERSION
from . import auth
from . import http
from . import routes
from .compat import MICROPYTHON, sleep_ms, wait_for_ms, close_stream, read_into, peer_name, pending
from .compat import collect_often, start_server, const, ticks_ms
from .node import heap
from .session import Pages, echo, linger

_CHUNK = const(512)  # bytes per socket read and per file read
_HTML = const("text/html; charset=utf-8")
# The request header fields anything here reads (routes, auth, http.StaticFile, websocket,
# setup); the others are checked and dropped.
_HEADERS = const(
    " host origin authorization accept-encoding if-none-match content-length transfer-encoding"
    " upgrade connection sec-websocket-key sec-websocket-version "
)  # one string: a tuple would cost a string object per name


class Server:
    # node: node.Node; page: path of index.html in flash; cfg: the validated config; echo
    # overrides cfg["echo"].
    def __init__(self, node, cfg, page, echo):
        self.node = node
        self.on_tick = node.on_tick  # the board feeds its watchdog here: the node's timer task calls it
        self.limits = node.limits
        self.echo = cfg["echo"] if echo is None else echo
        self.guard = auth.Guard(cfg["auth"]["token"], cfg["auth"]["origins"], ticks_ms, node.log)
        # for socket and file reads, shared by every connection: each read is used up (parsed,
        # or written, which copies) before the next await
        self.buf = bytearray(_CHUNK)
        self.mv = memoryview(self.buf)
        self.page = http.StaticFile(page, _HTML, self.buf)
        self.pages = node.listen(Pages(node, self.guard, self.buf, self._left))
        self.connections = 0
        self.heads = []  # the tasks of the connections reading their head, oldest first
        self.server = None
        self.setup = None  # Wi-Fi setup mode: see offer_setup()
        self.networks = []
        self.config_path = None  # GET and PUT /api/config: see offer_config()
        self.reset = None
        # updates over Wi-Fi (firmware/update.py): (root of the flash they go to, "" on the board;
        # the function that resets once one is committed); without it the endpoints are 404.
        # (Set from outside, with no method: one more method's entry in the class costs heap.)
        self.updates = None
        node.stats = self.stats

    # Wi-Fi setup mode, for a board that could not join a network and runs its own access
    # point: /setup serves a form (networks: names it suggests) and save(ssid, password) keeps
    # what it sends (the board writes wifi.json and resets). Without it /setup is 404.
    def offer_setup(self, save, networks):
        self.setup = save
        self.networks = list(networks)

    # The config file that GET and PUT /api/config read and replace (firmware/api.py), and
    # reset(): restart the node once the answer in hand is out (a board's machine.reset), to
    # apply a new one. Without a path /api/config is 404; without reset a PUT is applied at the
    # next start.
    def offer_config(self, path, reset):
        self.config_path = path
        self.reset = reset

    def save(self):
        self.node.save()

    def stats(self):
        return {"clients": len(self.pages.hub.clients), "connections": self.connections}

    # Start listening; returns once the socket is bound.
    async def start(self, host, port):
        self.server = await start_server(self._handle, host, port, backlog=8)
        collect_often()
        node = self.node
        node.on_tick = self.on_tick
        if not node.url:
            node.url = "http://%s:%d/" % ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
        node.start()
        self.node.log("relaynode %s serving http://%s:%d/ (heap %d)" % (VERSION, host, port, heap()))

    async def stop(self):
        if self.server:
            self.server.close()
        self.node.stop()
        await self.pages.hub.shutdown()

    # One TCP connection. A WebSocket client goes on in a task of its own (Pages.run), so
    # that this coroutine's frame is not kept in the heap for as long as the client stays.
    async def _handle(self, reader, writer):
        self.connections += 1
        up = None
        try:
            up = await self._http(reader, writer)
            if up and up[0] == "/echo":
                rest = up[2]
                up = None
                await echo(rest, reader, self.limits, self.buf)
            elif up:  # (path, token verdict, bytes after the head, the connection)
                asyncio.create_task(self.pages.run(up))
        except OSError:
            pass  # the peer went away
        except asyncio.CancelledError:
            pass  # CPython < 3.12 would log the cancelled task as an error
        except MemoryError:
            self.node.log("http: MemoryError, connection closed (heap %d)" % heap())
        finally:
            if not up:  # else the session closes
                self.connections -= 1
                await close_stream(writer)

    # At the connection cap, a new connection takes the place of the oldest one still reading
    # its head: a client that sends its head a byte at a time, or never finishes it, must not
    # keep a phone out until the head timeout, and a phone's head comes whole in one read, so it
    # is never the oldest for long. True if one was shed.
    def _shed(self, peer):
        if not self.heads:
            return False
        self.heads.pop(0).cancel()
        self.node.log("http %s: in place of the oldest incomplete head" % peer)
        return True

    # A WebSocket session has ended.
    def _left(self):
        self.connections -= 1

    # Read and answer an HTTP request. For a WebSocket upgrade, returns once the 101 is written:
    # (path, verdict, rest, peer) with rest the bytes that came after the head.
    async def _http(self, reader, writer):
        peer = peer_name(writer.get_extra_info("peername"))
        if self.connections > self.limits["max_connections"] and not self._shed(peer):
            self.node.log("http %s: refused, %d connections" % (peer, self.connections - 1))
            return await self.send(writer, http.error_response(503, "too many connections", (("Retry-After", "5"),)))
        me = asyncio.current_task()
        self.heads.append(me)
        try:
            t = self.limits["handshake_timeout_ms"]
            req, rest = await wait_for_ms(self.read_head(reader, self._parse_request), t)
            if req is None:
                return None
        except asyncio.TimeoutError:
            self.node.log("http %s: 408 request head timeout" % peer)
            return await self.send(writer, http.error_response(408, "", ()))
        except http.HttpError as e:
            self.node.log("http %s: %d %s" % (peer, e.status, e.message))
            return await self.send(writer, http.error_response(e.status, e.message, ()))
        finally:
            if me in self.heads:
                self.heads.remove(me)
        out = []
        r = routes.route(self, req, peer, out)
        if r == routes.PAGE:
            return await self._page(req, writer)
        if r == routes.SETUP:
            from . import setup  # loaded only in setup mode

            return await setup.answer(self, req, rest, reader, writer, peer)
        if r == routes.API:
            from . import api  # loaded on the first API request: a node nobody scripts never has it

            return await api.answer(self, req, rest, reader, writer, peer)
        if r == routes.UPDATE:
            from . import update  # loaded only when an update request comes

            return await update.answer(self, req, rest, reader, writer, peer)
        for data in out:
            writer.write(data)
        if r == routes.LINGER:
            await self.drain(writer)
            return await linger(reader, self.buf)
        if isinstance(r, tuple):  # upgraded: the 101 is out
            return r[0], r[1], rest, reader
        await self.send(writer, r)

    # Read up to and including the blank line that ends an HTTP head (a request here, a response
    # for links); (head, rest), or (None, None) at EOF. Raises HttpError(431) past the limit.
    # With parse, head is parse(data, end) for the head at data[:end] instead: a head that came
    # in one read is parsed where it lies in the shared buffer (before any other task can read
    # into it), with no copy.
    async def read_head(self, reader, parse):
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
                if parse:  # a request that can never be valid is answered now, not at the timeout
                    http.check_start(buf, n)
                data = bytearray()
            data += self.mv[:n]
            end = http.head_end(data)
            if end > 0:
                if end > limit:
                    break
                return (parse(data, end) if parse else data[:end]), data[end:]
            if parse:
                http.check_start(data, len(data))
            if len(data) > limit:
                break
        raise http.HttpError(431, "request head larger than %d bytes" % limit)

    def _parse_request(self, data, end):
        return http.parse_head(data, self.limits["max_headers"], end, _HEADERS)

    async def send(self, writer, data):
        writer.write(data)
        await self.drain(writer)

    # Wait, for at most write_timeout_ms, until the socket has taken what was written. Most of
    # the time it took everything at once: then the other tasks get a turn and that is all, with
    # no timeout to set up (under MicroPython each costs a task).
    async def drain(self, writer):
        if pending(writer):
            await wait_for_ms(writer.drain(), self.limits["write_timeout_ms"])
        else:
            await sleep_ms(0)

    # A refusal: logged, sent.
    async def refuse(self, writer, peer, req, status, message, headers):
        await self.send(writer, routes.refuse(self, req, peer, status, message, headers))

    # The control page, streamed from flash in small chunks.
    async def _page(self, req, writer):
        buf = self.buf  # safe to share: write() sends or copies before the next await
        mv = self.mv
        n, path = self.page.head_for(req, buf)
        writer.write(mv[:n] if MICROPYTHON else bytes(mv[:n]))
        if path and req.method == "GET":
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    writer.write(mv[:n] if MICROPYTHON else bytes(mv[:n]))
                    await self.drain(writer)
        await self.drain(writer)


# Serve srv on host:port until the process ends.
def run(srv, host, port):
    asyncio.run(serve(srv, host, port))


# Start srv on host:port and keep the event loop alive forever (the server runs in its
# own tasks).
async def serve(srv, host, port):
    await srv.start(host, port)
    while True:
        await sleep_ms(3600000)
