# Tests for firmware/routes.py, the HTTP front door's decisions, with no socket: what each
# request gets, byte for byte where it is an error. A real node and auth.Guard; the server is
# a plain object with what route() reads. Portable: pytest on CPython, mp_run.py on MicroPython.
import json

from firmware import auth, routes
from firmware import websocket as ws
from firmware.http import Request, parse_head
from firmware.node import Node
from firmware.relays import RelayBank
from host_tests.portable.fakes import FakeClock, FakePins

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13")


class Hub:
    def __init__(self, full=False):
        self.is_full = full

    def full(self):
        return self.is_full


class Pages:
    def __init__(self, full=False):
        self.hub = Hub(full)


class Srv:
    def __init__(self, token="", echo=False, full=False, setup=None, clock=None, updates=None):
        self.lines = []
        bank = RelayBank([{"name": "Light", "pin": 26}], FakePins().make, FakeClock(0))
        self.node = Node({"name": "n1", "limits": {"save_delay_ms": 1000}}, bank, None, self.lines.append)
        self.node.stats = lambda: {"clients": 0, "connections": 1}
        self.guard = auth.Guard(token, (), clock=clock or FakeClock(0), log=self.lines.append)
        self.echo = echo
        self.pages = Pages(full)
        self.setup = setup
        self.updates = updates


def req(line, *headers, host="n1.local"):
    head = [line] + (["Host: " + host] if host else []) + list(headers)
    return parse_head(("\r\n".join(head) + "\r\n\r\n").encode(), 24, None, None)


def route(srv, r):
    out = []
    res = routes.route(srv, r, "1.2.3.4:5", out)
    return res, out


def status_of(data):
    return int(data.split(b" ", 2)[1])


def test_the_page_for_get_and_head_405_otherwise():
    srv = Srv()
    for line in ("GET / HTTP/1.1", "HEAD /index.html HTTP/1.1"):
        assert route(srv, req(line)) == (routes.PAGE, [])
    res, _ = route(srv, req("POST / HTTP/1.1", "Content-Length: 0"))
    assert status_of(res) == 405 and b"\r\nAllow: GET, HEAD\r\n" in res
    assert srv.lines == ["http 1.2.3.4:5: POST / -> 405 use GET"]


def test_a_body_on_get_is_refused_and_the_server_lingers():
    res, out = route(Srv(), req("GET / HTTP/1.1", "Content-Length: 5"))
    assert res == routes.LINGER and status_of(out[0]) == 413
    res, out = route(Srv(), req("GET /api/state HTTP/1.1", "Transfer-Encoding: chunked"))
    assert res == routes.LINGER and status_of(out[0]) == 413


def test_api_state_and_debug():
    srv = Srv()
    res, _ = route(srv, req("GET /api/state HTTP/1.1"))
    assert status_of(res) == 200 and b"application/json" in res
    body = json.loads(res.split(b"\r\n\r\n", 1)[1])
    assert body["relays"] == [{"id": 0, "name": "Light", "on": False}]
    res, _ = route(srv, req("GET /api/debug HTTP/1.1"))
    assert json.loads(res.split(b"\r\n\r\n", 1)[1])["connections"] == 1
    res, _ = route(srv, req("PUT /api/state HTTP/1.1", "Content-Length: 0"))
    assert status_of(res) == 405 and b"Allow: GET\r\n" in res


def test_one_table_for_token_verdicts():
    clock = FakeClock(0)
    srv = Srv(token="s3cret", clock=clock)
    res, _ = route(srv, req("GET /api/state HTTP/1.1"))
    assert status_of(res) == 401 and b"WWW-Authenticate: Bearer\r\n" in res and b"token required" in res
    res, _ = route(srv, req("GET /api/state?token=nope HTTP/1.1"))
    assert status_of(res) == 401 and b"WWW-Authenticate: Bearer\r\n" in res and b"bad token" in res
    res, _ = route(srv, req("GET /api/state HTTP/1.1", "Authorization: Bearer s3cret"))
    assert status_of(res) == 429 and b"Retry-After: 30\r\n" in res  # locked after the wrong one
    clock.advance(300)
    res, _ = route(srv, req("GET /api/state HTTP/1.1", "Authorization: Bearer s3cret"))
    assert status_of(res) == 200
    assert auth.close_for(auth.LOCKED, True) == (auth.CLOSE_LOCKED, "too many wrong tokens, wait")
    assert auth.close_for(auth.BAD, False) == (1008, "token required")
    assert auth.close_for(auth.BAD, True) == (1008, "bad token")


def test_websocket_upgrade_writes_the_101_and_hands_over_the_verdict():
    srv = Srv()
    res, out = route(srv, req("GET /ws HTTP/1.1", *UPGRADE))
    assert res == ("/ws", auth.OK)
    assert out == [ws.handshake_response(KEY)]
    # with a token: from the URL (checked now) or from the first message (None)
    srv = Srv(token="s3cret")
    assert route(srv, req("GET /ws?token=s3cret HTTP/1.1", *UPGRADE))[0] == ("/ws", auth.OK)
    assert route(srv, req("GET /ws HTTP/1.1", *UPGRADE))[0] == ("/ws", None)


def test_websocket_refusals():
    res, out = route(Srv(), req("GET /ws HTTP/1.1", *UPGRADE[:3]))
    assert status_of(res) == 426 and out == []
    res, _ = route(Srv(), req("GET /ws HTTP/1.1", "Origin: http://evil.example", *UPGRADE))
    assert status_of(res) == 403
    assert route(Srv(), req("GET /ws HTTP/1.1", "Origin: http://n1.local", *UPGRADE))[0] == ("/ws", auth.OK)
    res, _ = route(Srv(full=True), req("GET /ws HTTP/1.1", *UPGRADE))
    assert status_of(res) == 503 and b"Retry-After: 5\r\n" in res
    res, _ = route(Srv(), req("GET /echo HTTP/1.1", *UPGRADE))
    assert status_of(res) == 404  # /echo only when turned on
    assert route(Srv(echo=True), req("GET /echo HTTP/1.1", *UPGRADE))[0] == ("/echo", auth.OK)


def test_setup_only_in_setup_mode_and_404_for_the_rest():
    res, _ = route(Srv(), req("GET /setup HTTP/1.1"))
    assert status_of(res) == 404
    assert route(Srv(setup=print), req("GET /setup HTTP/1.1"))[0] == routes.SETUP
    # captive portal: in setup mode a phone's own check address goes to the form
    res, _ = route(Srv(setup=print), req("GET /generate_204 HTTP/1.1", host="connectivitycheck.gstatic.com"))
    assert status_of(res) == 302 and b"\r\nLocation: /setup\r\n" in res
    res, _ = route(Srv(setup=print), req("POST /x HTTP/1.1", "Content-Length: 0"))
    assert status_of(res) == 404
    srv = Srv()
    # parse_head refuses controls in a target (400): made by hand, as a looser parser might
    r = Request("GET", "/caf\u00e9\x7f\x1b[2J", {}, "HTTP/1.1", {"host": "n1"})
    res, _ = route(srv, r)
    assert status_of(res) == 404
    line = srv.lines[-1]  # a path from the peer is escaped in the log
    assert all(32 <= ord(ch) < 127 for ch in line) and "\\x7f" in line and "\\x1b" in line, line


def test_updates_go_to_the_update_module_only_when_offered():
    for line in ("GET /api/files HTTP/1.1", "PUT /api/update/main.py HTTP/1.1", "POST /api/update/commit HTTP/1.1"):
        res, _ = route(Srv(), req(line, "Content-Length: 0"))
        assert status_of(res) == 404, line
        assert route(Srv(updates=("", print)), req(line, "Content-Length: 0"))[0] == routes.UPDATE, line
    res, _ = route(Srv(updates=("", print)), req("GET /api/state HTTP/1.1"))
    assert status_of(res) == 200
