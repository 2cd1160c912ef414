# Device-to-device links: this node as a WebSocket client of other nodes ("links" in
# config.json), keeping relays in step by the rules of linkrules.py. One asyncio task per
# link: it connects, resynchronises from the peer's state message (nothing is replayed),
# follows the peer's relay messages through node.apply and, as a listener of the node, sends
# the peer commands for local changes. Every change carries its origin (the node where it
# began) and hops (links crossed), so nodes that mirror each other settle after one change: a
# change made by a link is not sent back over it, a node ignores its own changes coming back,
# and nothing travels more than linkrules.MAX_HOPS links.
# A listener only queues bytes here; all link I/O is bounded by timeouts, so a dead or stalled
# peer never slows the node or its browsers. Imported only when links are configured.
import asyncio
import json

from . import commands
from . import linkrules
from . import websocket as ws
from . import wsclient
from .http import head_end
from .compat import const, ticks_ms, ticks_diff, sleep_ms, wait_for_ms, close_stream, pending, prepare_writer
from .compat import open_connection
from .node import Listener
from .relays import LINK
from .retry import Backoff
from .text import printable

_MIN_BACKOFF = const(500)  # first retry after a failure, doubling each time...
_MAX_BACKOFF = const(30000)  # ...up to this
_AUTH_BACKOFF = const(60000)  # after the peer refused our token, doubling up to 10 minutes:
_MAX_AUTH_BACKOFF = const(600000)  # a wrong token is no stream of guesses locking others out
_STABLE_MS = const(10000)  # a link up this long retries fast again after its next failure
_MAX_MESSAGE = const(4096)  # bytes in one message from the peer (its state message)
_MAX_PENDING = const(2048)  # bytes the peer has not taken: past this the link is dropped
# bytes per read from the peer: each read allocates this much at once (a relay message is far
# smaller), which a small, fragmented heap may not have in one piece
_CHUNK = const(256)
_SAFE = const("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# The link is down: LinkDown(why) or LinkDown(why, True) when the peer refused our token
# (retry only after a long wait).
class LinkDown(Exception):
    pass


# %-encode s for a URL query component (RFC 3986: unreserved characters stay as they are).
def quote(s):
    return "".join(chr(b) if chr(b) in _SAFE else "%%%02X" % b for b in s.encode())


# Every configured link, as one listener of the node: its status is the list of theirs.
class Links(Listener):
    key = "links"

    def __init__(self, node, specs):
        self.links = [Link(node, spec, self) for spec in specs]

    def changed(self, changes, origin, hops, via):
        for link in self.links:
            link.changed(changes, origin, hops, via)

    def status(self):
        return [link.status() for link in self.links]

    def start(self):
        for link in self.links:
            link.start()

    def stop(self):
        for link in self.links:
            link.stop()


# Load the links of the config (specs) into node.
def attach(node, specs):
    return node.listen(Links(node, specs))


# A connection to link's peer: (reader, writer); LinkDown when there is none.
async def _connect(link):
    if link.addr is None:  # resolved once, and again after a failed connect
        import socket

        try:
            a = socket.getaddrinfo(link.host, link.port)[0][-1]
        except OSError as e:
            raise LinkDown("cannot resolve %s (%s)" % (link.host, e))
        # a (host, port) tuple on CPython and the ESP32, a raw sockaddr on the unix port
        link.addr = a[0] if isinstance(a, tuple) else "%d.%d.%d.%d" % (a[4], a[5], a[6], a[7])
    try:
        return await wait_for_ms(open_connection(str(link.addr), link.port), link.timeout)
    except (OSError, asyncio.TimeoutError) as e:
        link.addr = None
        raise LinkDown("cannot connect (%s)" % ("timeout" if isinstance(e, asyncio.TimeoutError) else e))

# The opening handshake; returns the bytes that came after the peer's head.
async def _handshake(link, reader, writer):
    t = link.timeout
    prepare_writer(writer)
    host = link.host if link.port == 80 else "%s:%d" % (link.host, link.port)
    req, key = wsclient.client_request(host, link.path + ("?token=" + quote(link.token) if link.token else ""))
    writer.write(req)
    await wait_for_ms(writer.drain(), t)
    head, data = await wait_for_ms(_read_head(reader), t)
    err = wsclient.response_error(head, key) if head else (0, "peer closed the connection")
    if err:
        raise LinkDown(err[1], True) if err[0] in (401, 403) else LinkDown(err[1])
    return data


# Close a connection to a peer that may never read again: CPython's transport is aborted
# rather than flushed; MicroPython's stream closes at once.
async def _abort(writer):
    tr = getattr(writer, "transport", None)
    if tr:
        tr.abort()
    try:
        await wait_for_ms(close_stream(writer), 1000)
    except Exception:
        pass


# The peer's response head and the bytes after it; (None, b"") when it closed first.
# HttpError past _MAX_MESSAGE bytes.
async def _read_head(reader):
    data = b""
    while True:
        more = await reader.read(_CHUNK)
        if not more:
            return None, b""
        data += more
        end = head_end(data)
        if end > 0:
            return data[:end], data[end:]
        if len(data) > _MAX_MESSAGE:
            raise LinkDown("response head too long")


# One configured peer.
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

    # group: the Links listener, whose status changes every page hears of.
    def __init__(self, node, spec, group):
        self.node = node
        self.group = group
        self.url = spec["url"]
        self.host, self.port, self.path = wsclient.parse_url(self.url)
        self.token = spec["token"]
        self.timeout = spec["timeout_ms"]
        self.ping_ms = spec["ping_ms"]
        self.rules = linkrules.make(node.bank, spec["rules"])
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
            self.node.notify(self.group)

    # Connect, talk until the connection fails, wait, again; forever.
    async def _run(self):
        retry = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        auth_retry = Backoff(_AUTH_BACKOFF, _MAX_AUTH_BACKOFF)
        while True:
            self.why = None
            self.session = asyncio.create_task(self._session())
            why = ("ended", False)  # (reason, True when the peer refused our token)
            try:
                await self.session
            except LinkDown as e:
                why = (e.args[0], len(e.args) > 1)  # pyright: ignore[reportGeneralTypeIssues]
            except asyncio.CancelledError:
                if self.stopped:
                    raise
                why = (self.why, False)
            except OSError as e:
                why = ("network error %s" % e, False)
            except Exception as e:  # a bug must not end the link for good
                why = ("error %r" % e, False)
            self.conn = self.writer = self.session = self.ping_at = None
            self.bad = ()
            was_up = self.up
            self.up = False
            now = ticks_ms()
            if was_up:
                self.since = now
                auth_retry.reset()  # the token was right: a refusal now is news
                if ticks_diff(now, self.up_at) >= _STABLE_MS:
                    retry.reset()
            wait = auth_retry.next() if why[1] else retry.next()
            self.log("down (%s), retry in %d ms" % (why[0], wait))
            self._report(why[0], was_up)
            await sleep_ms(wait)

    # One connection, from connect to failure; every step has a deadline.
    async def _session(self):
        t = self.timeout
        reader, writer = await _connect(self)
        what = "handshake"
        try:
            data = await _handshake(self, reader, writer)
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
                    data = await wait_for_ms(reader.read(_CHUNK), wait)
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
            await _abort(writer)

    # Feed bytes from the peer and act on its messages; LinkDown when it closes.
    def _receive(self, conn, data):
        conn.receive_data(data, False)
        for ev in conn.take_events():
            op = ev[0]
            if op == ws.OP_PONG:
                self.ping_at = None
            elif op == ws.OP_CLOSE:
                self._flush()  # the echo of its close frame
                why = "peer closed (%d %s)" % (ev[1], printable(ev[2], 80))
                # a wrong token waits long; a lock-out (CLOSE_LOCKED) is someone else's guesses
                if ev[1] == ws.CLOSE_POLICY and not self.up:
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
                    said = printable(msg.get("message"), 80)
                    self.log("peer says %s" % said)
                    self._report("peer: %s" % said)
        self._flush()
        if conn.state == ws.CLOSED:
            raise LinkDown("protocol error (%s %s)" % (conn.close_code, conn.close_reason))

    # The peer's whole state: on connect, and whenever it sends it.
    def _resync(self, msg):
        self.peer, remote, missing = linkrules.read_state(self.rules, msg, self.host)
        self.bad = [m.lower() for m in missing]
        error = "peer %s has no relay %s" % (self.peer, printable(", ".join(missing), 80)) if missing else ""
        if missing:
            self.log(error)
        changed = not self.up
        if changed:
            self.up = True
            self.up_at = self.since = ticks_ms()
            self.log("up, peer " + printable(self.peer, 80))
        self._report(error, changed)
        sends, follows = linkrules.resync(self.rules, self.bad, remote)
        self._send(sends, self.node.name, 1)
        for local, on in follows:
            self._follow(local, on, self.peer, 1)
        self._flush()

    # A relay of the peer changed: mirrors that follow the peer follow it.
    def _remote(self, msg):
        for local, on, origin, hops in linkrules.remote_change(self.rules, msg, self.node.name, self.peer):
            self._follow(local, on, origin, hops)

    def _follow(self, local, on, origin, hops):
        self.node.apply({"type": "set", "relay": local.id, "on": on}, LINK, origin, hops, self)

    # Every local change (the node's listener): queue what the rules send to the peer. Never
    # waits. A change this link made is not sent back, nor one that began at the peer.
    def changed(self, changes, origin, hops, via):
        origin = origin or self.node.name
        if via is self or not self.up or origin == self.peer or hops >= linkrules.MAX_HOPS:
            return
        self._send(linkrules.outgoing(self.rules, self.bad, changes), origin, hops + 1)
        self._flush()

    def _send(self, sends, origin, hops):
        if self.conn:
            for kind, name, value in sends:
                self.conn.send_text(commands.link_command(kind, name, value, origin, hops))

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
