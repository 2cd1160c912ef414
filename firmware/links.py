# Device-to-device links: this node as a WebSocket client of other nodes ("links" in
# config.json), keeping relays in step by rules. One asyncio task per link: it connects,
# resynchronises from the peer's state message (nothing is replayed), follows the peer's relay
# messages and sends the peer commands for local changes. Every change carries its origin
# (the node where it began) and hops (links crossed), so nodes that mirror each other settle
# after one change: a change made by a link is not sent back over it, a node ignores its own
# changes coming back, and nothing travels more than _MAX_HOPS links.
# The node's publish path only queues bytes here; all link I/O is bounded by timeouts, so a
# dead or stalled peer never slows the node or its browsers. Imported only when links are
# configured; kept short because its code is heap on the board.
import asyncio
import json
import os

from . import websocket as ws
from . import wsclient
from .compat import const, ticks_ms, ticks_diff, sleep_ms, wait_for_ms, close_stream, pending, prepare_writer
from .relays import LINK

_MIN_BACKOFF = const(500)  # first retry after a failure, doubling each time...
_MAX_BACKOFF = const(30000)  # ...up to this
_AUTH_BACKOFF = const(60000)  # after the peer refused our token, doubling up to 10 minutes:
_MAX_AUTH_BACKOFF = const(600000)  # a wrong token is no stream of guesses locking others out
_STABLE_MS = const(10000)  # a link up this long retries fast again after its next failure
_MAX_HOPS = const(8)  # a change is not passed on past this many links (toggle rings end)
_MAX_MESSAGE = const(4096)  # bytes in one message from the peer (its state message)
_MAX_PENDING = const(2048)  # bytes the peer has not taken: past this the link is dropped
_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


# The link is down: LinkDown(why) or LinkDown(why, True) when the peer refused our token
# (retry only after a long wait).
class LinkDown(Exception):
    pass


# %-encode s for a URL query component (RFC 3986: unreserved characters stay as they are).
def quote(s):
    return "".join(chr(b) if chr(b) in _SAFE else "%%%02X" % b for b in s.encode())


# ms with +-25% jitter, so nodes that lost a peer together do not all retry together.
def jitter(ms):
    return ms * (192 + os.urandom(1)[0] % 128) // 256


def _js(b):
    return "true" if b else "false"


# One configured peer. Rules are tuples (kind, local relay, remote name, mode, on, ms): mode
# is the mirror direction or the trigger action; on and ms only matter to triggers.
class Link:
    up = False  # connected and the peer's state received
    peer = None  # the peer's node name, from its state message
    conn = None  # websocket.Connection while connected
    writer = None
    task = None  # the link's task (reconnects forever)
    session = None  # the task of the current connection
    flushing = None  # the writer a drain task is waiting on
    ping_at = None  # when our unanswered ping went out
    up_at = 0
    addr = None  # the peer's IP address: MicroPython's DNS lookup blocks, so it is kept
    why = None  # why the session was cancelled from outside
    stopped = False
    bad = ()  # lower-case remote names the peer does not have
    error = ""

    def __init__(self, node, spec):
        self.node = node
        self.url = spec["url"]
        self.host, self.port, self.path = wsclient.parse_url(self.url)
        self.token = spec["token"]
        self.timeout = spec["timeout_ms"]
        self.ping_ms = spec["ping_ms"]
        self.rules = [
            (
                r["kind"],
                node.bank.find(r["local"]),
                r["remote"],
                r.get("direction") or r["action"],
                r.get("on"),
                r.get("ms"),
            )
            for r in spec["rules"]
        ]
        self.since = ticks_ms()  # when it last went up or down

    def start(self):
        self.task = asyncio.create_task(self._run())

    def stop(self):
        self.stopped = True
        for t in (self.session, self.task):
            if t:
                t.cancel()

    # What the state message says about this link.
    def status(self):
        since = ticks_diff(ticks_ms(), self.since) // 1000
        return {"url": self.url, "peer": self.peer, "up": self.up, "error": self.error, "since": since}

    def log(self, text):
        self.node.log("link %s: %s" % (self.url, text))

    # Set the error shown in the status; every browser hears of a change at once.
    def _report(self, error, changed=False):
        if error != self.error or changed:
            self.error = error
            node = self.node
            msg = json.dumps({"type": "links", "links": [k.status() for k in node.links]})
            node.hub.broadcast(ws.encode_frame(ws.OP_TEXT, msg))

    # Connect, talk until the connection fails, wait, again; forever.
    async def _run(self):
        delay = _MIN_BACKOFF
        auth_delay = _AUTH_BACKOFF
        while True:
            auth = False
            self.why = None
            self.session = asyncio.create_task(self._session())
            try:
                await self.session
            except LinkDown as e:
                why = e.args[0]
                auth = len(e.args) > 1
            except asyncio.CancelledError:
                if self.stopped:
                    raise
                why = self.why
            except OSError as e:
                why = "network error %s" % e
            except Exception as e:  # a bug must not end the link for good
                why = "error %r" % e
            self.conn = self.writer = self.session = self.ping_at = None
            self.bad = ()
            was_up = self.up
            self.up = False
            now = ticks_ms()
            if was_up:
                self.since = now
                auth_delay = _AUTH_BACKOFF  # the token was right: a refusal now is news
                if ticks_diff(now, self.up_at) >= _STABLE_MS:
                    delay = _MIN_BACKOFF
            if auth:
                wait = jitter(auth_delay)
                auth_delay = min(auth_delay * 2, _MAX_AUTH_BACKOFF)
            else:
                wait = jitter(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
            self.log("down (%s), retry in %d ms" % (why, wait))
            self._report(why, was_up)
            await sleep_ms(wait)

    # One connection, from connect to failure; every step has a deadline.
    async def _session(self):
        t = self.timeout
        if self.addr is None:  # resolved once, and again after a failed connect
            import socket

            try:
                a = socket.getaddrinfo(self.host, self.port)[0][-1]
            except OSError as e:
                raise LinkDown("cannot resolve %s (%s)" % (self.host, e))
            # a (host, port) tuple on CPython and the ESP32, a raw sockaddr on the unix port
            self.addr = a[0] if isinstance(a, tuple) else "%d.%d.%d.%d" % (a[4], a[5], a[6], a[7])
        try:
            reader, writer = await wait_for_ms(asyncio.open_connection(str(self.addr), self.port), t)
        except (OSError, asyncio.TimeoutError) as e:
            self.addr = None
            raise LinkDown("cannot connect (%s)" % ("timeout" if isinstance(e, asyncio.TimeoutError) else e))
        try:
            prepare_writer(writer)
            host = self.host if self.port == 80 else "%s:%d" % (self.host, self.port)
            req, key = wsclient.client_request(host, self.path + ("?token=" + quote(self.token) if self.token else ""))
            writer.write(req)
            what = "handshake"
            await wait_for_ms(writer.drain(), t)
            head, data = await wait_for_ms(self.node.read_head(reader), t)  # the server's, bounded
            err = wsclient.response_error(head, key) if head else (0, "peer closed the connection")
            if err:
                raise LinkDown(err[1], True) if err[0] in (401, 403) else LinkDown(err[1])
            conn = self.conn = ws.Connection(_MAX_MESSAGE, True)
            self.writer = writer
            start = ticks_ms()
            while True:
                if data:
                    self._receive(conn, data)
                what = "pong"
                if not self.up:  # the peer sends its state first thing
                    what = "state message"
                    wait = t - ticks_diff(ticks_ms(), start)
                elif self.ping_at is None:
                    wait = self.ping_ms
                else:
                    wait = t - ticks_diff(ticks_ms(), self.ping_at)
                if wait <= 0:
                    raise asyncio.TimeoutError
                try:
                    data = await wait_for_ms(reader.read(512), wait)
                except asyncio.TimeoutError:
                    data = None
                    if self.up and self.ping_at is None:  # quiet for ping_ms: is the peer there?
                        self.ping_at = ticks_ms()
                        conn.send_ping(b"link")
                        self._flush()
                    continue
                if not data:
                    raise LinkDown("peer closed the connection")
        except asyncio.TimeoutError:
            raise LinkDown("%s timeout (%d ms)" % (what, t))
        finally:
            self.conn = self.writer = None
            tr = getattr(writer, "transport", None)
            if tr:
                tr.abort()  # CPython: do not wait to flush to a peer that may never read
            try:
                await wait_for_ms(close_stream(writer), 1000)
            except Exception:
                pass

    # Feed bytes from the peer and act on its messages; LinkDown when it closes.
    def _receive(self, conn, data):
        conn.receive_data(data)
        for ev in conn.take_events():
            op = ev[0]
            if op == ws.OP_PONG:
                self.ping_at = None
            elif op == ws.OP_CLOSE:
                self._flush()  # the echo of its close frame
                why = "peer closed (%d %s)" % (ev[1], ev[2])
                # a wrong token waits long; "too many wrong tokens, wait" is someone else's
                if ev[1] == ws.CLOSE_POLICY and not self.up and "too many" not in ev[2]:
                    raise LinkDown("peer refused the token: " + why, True)
                raise LinkDown(why)
            elif op == ws.OP_TEXT:
                try:
                    msg = json.loads(ev[1])
                    kind = msg.get("type")
                except Exception:
                    continue
                if kind == "relay":
                    self._remote(msg)
                elif kind == "state":
                    self._resync(msg)
                elif kind == "error":
                    self.log("peer says %s" % msg.get("message"))
                    self._report("peer: %s" % msg.get("message"))
        self._flush()
        if conn.state == ws.CLOSED:
            raise LinkDown("protocol error (%s %s)" % (conn.close_code, conn.close_reason))

    # The peer's whole state: on connect, and whenever it sends it. Mirrors that follow the
    # peer take its state; mirrors to the peer send ours. Nothing missed while down is replayed.
    def _resync(self, msg):
        remote = {}
        for r in msg.get("relays") or ():
            remote[str(r.get("name")).lower()] = r.get("on") is True
        self.peer = str(msg.get("node") or self.host)
        missing = [rule[2] for rule in self.rules if rule[2].lower() not in remote]
        self.bad = [m.lower() for m in missing]
        error = "peer %s has no relay %s" % (self.peer, ", ".join(missing)) if missing else ""
        if missing:
            self.log(error)
        changed = not self.up
        if changed:
            self.up = True
            self.up_at = self.since = ticks_ms()
            self.log("up, peer " + self.peer)
        self._report(error, changed)
        for kind, local, name, mode, _, _ in self.rules:
            if kind == "mirror" and name.lower() not in self.bad:
                if mode == "to_remote":
                    self._send("set", name, ',"on":' + _js(local.on), self.node.name, 1)
                else:
                    self._follow(local, remote[name.lower()], self.peer, 1)
        self._flush()

    # A relay of the peer changed: mirrors that follow the peer follow it, unless it is our
    # own change coming back or one that has travelled far enough.
    def _remote(self, msg):
        name = str(msg.get("name")).lower()
        on = msg.get("on")
        origin = msg.get("origin") or self.peer
        hops = msg.get("hops", 0)
        if isinstance(on, bool) and isinstance(hops, int) and origin != self.node.name and hops < _MAX_HOPS:
            for kind, local, rname, mode, _, _ in self.rules:
                if kind == "mirror" and mode != "to_remote" and rname.lower() == name:
                    self._follow(local, on, origin, hops + 1)

    def _follow(self, local, on, origin, hops):
        changes = self.node.bank.set(local, on, LINK)
        if changes:
            self.node.publish(changes, origin, hops, self)

    # Called by Node.publish for every local change: queue what the rules send to the peer.
    # Never waits. A change this link made is not sent back, nor one that began at the peer.
    def changed(self, changes, origin, hops, via):
        origin = origin or self.node.name
        if via is self or not self.up or origin == self.peer or hops >= _MAX_HOPS:
            return
        hops += 1
        for r, _ in changes:
            for kind, local, name, mode, on, ms in self.rules:
                if local is not r or name.lower() in self.bad:
                    continue
                if kind == "mirror":
                    if mode != "from_remote":
                        self._send("set", name, ',"on":' + _js(r.on), origin, hops)
                elif on == "change" or on == r.on:
                    if mode == "pulse":
                        self._send("pulse", name, ',"ms":%d' % ms, origin, hops)
                    elif mode == "toggle":
                        self._send("toggle", name, "", origin, hops)
                    else:
                        self._send("set", name, ',"on":' + _js(mode == "set_on"), origin, hops)
        self._flush()

    def _send(self, kind, name, fields, origin, hops):
        if self.conn:
            msg = '{"type":"%s","relay":%s%s,"origin":%s,"hops":%d}'
            self.conn.send_text(msg % (kind, json.dumps(name), fields, json.dumps(origin), hops))

    # Hand what the connection queued to the socket; a drain task runs only while the peer
    # is slow, and a peer that falls too far behind or stalls is dropped.
    def _flush(self):
        w = self.writer
        if w is None or self.conn is None:
            return
        out = self.conn.data_to_send()
        try:
            if out:
                w.write(out)
            n = pending(w)
            if n > _MAX_PENDING:
                raise OSError("peer does not read")
        except Exception as e:
            return self._kill("write failed: %s" % e)
        if n and self.flushing is not w:
            self.flushing = w
            asyncio.create_task(self._drain(w))

    async def _drain(self, w):
        try:
            while pending(w) and w is self.writer:
                await wait_for_ms(w.drain(), self.timeout)
        except Exception as e:
            if w is self.writer:
                self._kill("write stalled" if isinstance(e, asyncio.TimeoutError) else "write failed")
        finally:
            if self.flushing is w:
                self.flushing = None

    # End the current connection from outside its task (from inside: raise LinkDown).
    def _kill(self, why):
        s = self.session
        if s is asyncio.current_task():
            raise LinkDown(why)
        if s:
            self.why = why
            s.cancel()
