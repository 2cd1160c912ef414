# The HTTP API, for scripts and other systems: read or switch one relay (GET and POST
# /api/relays/NAME), back up and restore the config (GET and PUT /api/config). The server
# imports this on the first such request, so a node nobody scripts never has its code in RAM.
# Token, Origin and a rate limit as for the pages; a change goes in through node.apply with the
# cause "http", so every page hears of it. Every answer is JSON; an error is the WebSocket's
# error message ({"type":"error","code","message"}) with the matching HTTP status.
import asyncio
import json

from . import auth
from . import commands
from . import http
from .compat import ticks_ms, ticks_diff, wait_for_ms
from .relays import HTTP
from .websocket import utf8_check
from .session import linger, read_body
from .text import printable

_JSON = "application/json"
MAX_COMMAND = 256  # bytes in a relay command's body
MAX_NAME = 32  # characters in a relay name (config.py), so a longer NAME names no relay
_ONE_OF = 'send one of {"on": true}, {"on": false}, {"toggle": true}, {"pulse_ms": MS}'

# The rate limit of every API request together (max_rate a second, bursts up to that many):
# [allowance in thousandths of a request, when the last one came or None].
_bucket = [0, None]


# A refusal: the HTTP status, the error code and message of the answer, extra headers.
class ApiError(Exception):
    def __init__(self, status, code, message, headers=(), field=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.field = field


# Answer a request for /api/config or /api/relays/... on srv (server.Server; its connection
# handler calls this). rest: the bytes read after the head (the body's start).
async def answer(srv, req, rest, reader, writer, peer):
    # a body not read to its end when refused: the server lingers, else the reset could
    # destroy the answer (a body that came with the head is read)
    unread = int(req.header("content-length", "0")) > len(rest) or "transfer-encoding" in req.headers
    try:
        name = target(req.path)
        if name is None and srv.config_path is None:
            raise ApiError(404, "not_found", "no config file here")
        allow = "GET, PUT" if name is None else "GET, POST"
        if req.method not in allow.split(", "):
            raise ApiError(405, "bad_method", "use " + allow.replace(", ", " or "), (("Allow", allow),))
        _admit(srv, req, peer)
        if name is None:
            from . import apiconfig  # the config's part, loaded on its first request

            if req.method == "GET":
                return await _send(srv, writer, 200, json.dumps(apiconfig.public(srv.config_path)))
            await apiconfig.put(srv, req, rest, reader)
            unread = False
            again = srv.reset is not None
            await _send(srv, writer, 200, '{"saved":true,"restart":%s}' % ("true" if again else "false"))
            srv.node.log("config: %s saved by %s%s" % (srv.config_path, peer, ", restarting" if again else ""))
            if again:
                srv.reset()
            return
        node = srv.node
        if req.method == "POST":
            data = bytearray()
            await body(srv, req, rest, reader, MAX_COMMAND, data.extend)
            unread = False
            cmd = command(bytes(data), _ref(node.bank, name))
            err = node.apply(cmd, HTTP)
            if err:
                raise ApiError(404 if err[0] == "unknown_relay" else 400, err[0], err[1])
        relay = node.bank.find(_ref(node.bank, name))
        if relay is None:
            raise ApiError(404, "unknown_relay", "no relay %s" % json.dumps(name))
        await _send(srv, writer, 200, json.dumps(commands.relay_dict(relay)))
    except ApiError as e:
        # cut first: a clean line of up to 80 characters needs no escaping code in the heap
        what = (peer, req.method, printable(req.path[:80], 80), e.status, printable(e.message[:80], 80))
        srv.node.log("http %s: %s %s -> %d %s" % what)
        msg = {"type": "error", "code": e.code, "message": e.message}
        if e.field:
            msg["field"] = e.field
        await _send(srv, writer, e.status, json.dumps(msg), e.headers)
        if unread:
            await linger(reader, srv.buf)  # closing with the body unread could reset the answer away
    except asyncio.TimeoutError:
        srv.node.log("http %s: %s %s -> 408 body too slow" % (peer, req.method, printable(req.path[:80], 80)))
        await _send(srv, writer, 408, commands.error_message("timeout", "request body too slow"))
    except EOFError:
        pass  # the peer went away mid-body (CPython's IncompleteReadError is an EOFError)


async def _send(srv, writer, status, body, headers=()):
    await srv.send(writer, http.response(status, body, _JSON, headers))


# The relay NAME of /api/relays/NAME, URL-decoded (None for /api/config). Strict: a "%" must
# start an escape of two hex digits and the bytes must be UTF-8 (else 400); a NAME with a "/"
# left in it ("../config"), empty or longer than any relay's is no relay (404). A "/" that came
# escaped is part of the name: no name holds one, and the path is never looked up as a file.
def target(path):
    if path == "/api/config":
        return None
    raw = path[12:]
    if not raw or "/" in raw or len(raw) > MAX_NAME * 12:  # 4 UTF-8 bytes, each as %XX
        raise ApiError(404, "unknown_relay", "no such relay")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "%":
            h = raw[i + 1 : i + 3]
            if len(h) < 2 or h.strip("0123456789abcdefABCDEF"):
                raise ApiError(400, "bad_name", "bad %-escape in the relay name")
            out.append(int(h, 16))
            i += 3
        else:
            out += c.encode()
            i += 1
    if utf8_check(0, out, 0, len(out)):  # strict: MicroPython's str() takes overlong forms
        raise ApiError(400, "bad_name", "the relay name is not UTF-8")
    name = str(bytes(out), "utf-8")
    if len(name) > MAX_NAME:
        raise ApiError(404, "unknown_relay", "no such relay")
    return name


# What names a relay: its name, or its id for a NAME of digits that is no relay's name.
def _ref(bank, name):
    return int(name) if name.isdigit() and len(name) < 3 and bank.find(name) is None else name


# Origin, token and rate checks of every API request; raises ApiError.
def _admit(srv, req, peer):
    guard = srv.guard
    if not guard.origin_ok(req.header("origin", ""), req.header("host", "")):
        raise ApiError(403, "bad_origin", "origin not allowed")
    tok = auth.request_token(req)
    verdict = guard.check(tok, peer)
    if verdict != auth.OK:
        status, message, headers = auth.http_for(verdict, tok is not None)
        raise ApiError(status, "locked_out" if status == 429 else message.replace(" ", "_"), message, headers)
    rate = srv.limits["max_rate"]
    now = ticks_ms()
    b = _bucket
    gap = 1000 if b[1] is None else min(max(ticks_diff(now, b[1]), 0), 60000)
    b[0] = min(rate * 1000, b[0] + gap * rate)
    b[1] = now
    if b[0] < 1000:
        raise ApiError(429, "rate_limited", "more than %d requests a second" % rate, (("Retry-After", "1"),))
    b[0] -= 1000


# A relay command body into the command node.apply takes, for the relay named name.
def command(body, ref):
    try:
        cmd = commands.load(body)
    except commands.CommandError as e:
        raise ApiError(400, e.code, e.message)
    except MemoryError:
        raise ApiError(503, "no_memory", "not enough memory to read the command now", (("Retry-After", "5"),))
    if len(cmd) != 1:
        raise ApiError(400, "bad_command", _ONE_OF)
    if "on" in cmd:
        if not isinstance(cmd["on"], bool):
            raise ApiError(400, "bad_field", "'on' must be true or false")
        return {"type": "set", "relay": ref, "on": cmd["on"]}
    if "toggle" in cmd:
        if cmd["toggle"] is not True:
            raise ApiError(400, "bad_field", "'toggle' must be true")
        return {"type": "toggle", "relay": ref}
    if "pulse_ms" in cmd:
        ms = cmd["pulse_ms"]
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= commands.MAX_PULSE_MS:
            raise ApiError(400, "bad_field", "'pulse_ms' must be 1..%d" % commands.MAX_PULSE_MS)
        return {"type": "pulse", "relay": ref, "ms": ms}
    raise ApiError(400, "bad_command", _ONE_OF)


# Read a request body of at most limit bytes (Content-Length required) within the time a
# request head has, handing it to sink in pieces. ApiError 411 or 413 (nothing read), the
# wait_for's TimeoutError, or EOFError when the peer goes away.
async def body(srv, req, rest, reader, limit, sink):
    size = req.header("content-length", "")
    if "transfer-encoding" in req.headers or not size:
        raise ApiError(411, "length_required", "Content-Length required")
    size = int(size)  # digits only: http.parse_head checked
    if size > limit:
        raise ApiError(413, "too_large", "body larger than %d bytes" % limit)
    await wait_for_ms(read_body(reader, srv.buf, rest[:size], size, sink), srv.limits["handshake_timeout_ms"])
