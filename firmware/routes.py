# The HTTP front door's decisions, with no I/O: what a request gets. route() returns the bytes
# of a whole response, PAGE for the control page (streamed from flash by the server), SETUP for
# the Wi-Fi setup form, API for the HTTP API, LINGER for a refusal put into out (a list) after which the server
# lingers, or (path, verdict) for a WebSocket upgrade whose 101 it has put into out. Refusals
# are logged here, once.
from . import auth
from . import http
from . import websocket as ws
from .text import printable

PAGE = 1
SETUP = 2
LINGER = 3
API = 4  # /api/config and /api/relays/NAME: firmware/api.py answers
UPDATE = 5  # an update over Wi-Fi: firmware/update.py answers it


# srv: the server (node, guard, pages, echo, setup); req: http.Request; peer: "ip:port".
def route(srv, req, peer, out):
    path = req.path
    method = req.method
    if method in ("GET", "HEAD") and (req.header("content-length", "0") != "0" or "transfer-encoding" in req.headers):
        # nothing here takes a body; the server lingers so that the answer is not reset away
        out.append(refuse(srv, req, peer, 413, "no request body accepted", ()))
        return LINGER
    if path == "/setup" and srv.setup is not None:
        return SETUP
    if srv.updates is not None and (path == "/api/files" or path[:11] == "/api/update"):
        return UPDATE
    if path in ("/", "/index.html"):
        if method not in ("GET", "HEAD"):
            return refuse(srv, req, peer, 405, "use GET", (("Allow", "GET, HEAD"),))
        return PAGE
    if path in ("/api/state", "/api/debug"):
        if method != "GET":
            return refuse(srv, req, peer, 405, "use GET", (("Allow", "GET"),))
        tok = auth.request_token(req)
        verdict = srv.guard.check(tok, peer)
        if verdict != auth.OK:
            return refuse(srv, req, peer, *auth.http_for(verdict, tok is not None))
        node = srv.node
        body = node.state_message() if path == "/api/state" else node.debug_message()
        return http.response(200, body, "application/json", ())
    if path == "/api/config" or path.startswith("/api/relays/"):
        return API
    if path == "/ws" or (path == "/echo" and srv.echo):
        err = ws.handshake_error(method, req.version, req.headers)
        if err:
            return refuse(srv, req, peer, err[0], err[1], err[2])
        if not srv.guard.origin_ok(req.header("origin", ""), req.header("host", "")):
            return refuse(srv, req, peer, 403, "origin not allowed", ())
        if path == "/ws" and srv.pages.hub.full():
            return refuse(srv, req, peer, 503, "too many clients", (("Retry-After", "5"),))
        out.append(ws.handshake_response(req.header("sec-websocket-key", "")))
        verdict = auth.OK
        if path == "/ws" and srv.guard.required():
            # the token comes as ?token= or, failing that, in the first message (None)
            tok = req.query.get("token")
            verdict = None if tok is None else srv.guard.check(tok, peer)
        return path, verdict
    if srv.setup is not None and method in ("GET", "HEAD"):
        # a phone that joined the access point checks an address of its own: it is sent to the
        # setup form, which its sign-in window then shows (every name resolves to the node)
        return http.response(302, "", headers=(("Location", "/setup"),), ctype="text/plain; charset=utf-8")
    return refuse(srv, req, peer, 404, "no such page", ())


# An error response, logged.
def refuse(srv, req, peer, status, message, headers):
    srv.node.log("http %s: %s %s -> %d %s" % (peer, req.method, printable(req.path, 80), status, message))
    return http.error_response(status, message, headers)
