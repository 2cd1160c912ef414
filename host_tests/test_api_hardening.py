# Hardening of the HTTP API (firmware/api.py, apiconfig.py) on both runtimes: path tricks,
# oversized and slow bodies (the node keeps serving the others and drops the slow one on
# time), requests without the token, cross-origin posts. Each case checks the exact status, that
# no relay moved and the config file did not change, and that a page already open still works.
# Then the heap: the API costs nothing until it is used, and does not grow under these cases.
import json
import os
import socket
import threading
import time

import pytest

from tools import harness as nh
from host_tests.test_api import HEAP, TOKEN, api, page, states

pytestmark = pytest.mark.slow

T = 5.0
SLOW_MS = 1000  # handshake_timeout_ms of these nodes: the time a request head and body have


def guarded(node, **kw):
    kw.setdefault("limits", {"handshake_timeout_ms": SLOW_MS, "max_rate": 1000})
    kw.setdefault("heapsize", HEAP)
    return node(auth={"token": TOKEN, "origins": ["http://allowed.example"]}, **kw)


def config_bytes(n):
    with open(n.config_path, "rb") as f:
        return f.read()


def leftovers(n):
    return sorted(os.listdir(os.path.dirname(n.config_path)))


# A page open through the case: afterwards no relay has moved, the config is as it was, no
# temporary file is left, and the page still switches a relay and hears of it.
class Unchanged:
    def __init__(self, n):
        self.n = n
        self.ws = page(n)
        self.states = states(n)
        self.config = config_bytes(n)

    # uploading: a PUT of the config is still coming in (its body waits beside the config)
    def check(self, case, uploading=False):
        n = self.n
        assert n.running(), (case, n.output())
        assert states(n) == self.states, case
        files = ["config.json", "config.json.new", "state"] if uploading else ["config.json", "state"]
        assert config_bytes(n) == self.config and leftovers(n) == files, case
        want = not self.states["Fan"]
        self.ws.send(json.dumps({"type": "toggle", "relay": "Fan"}))
        msg = json.loads(self.ws.recv(timeout=T))
        assert msg == {"type": "relay", "id": 1, "name": "Fan", "on": want, "cause": "client"}, (case, msg)
        self.states["Fan"] = want


PATHS = [
    ("/api/relays/../config", 404),
    ("/api/relays/..%2fconfig", 404),
    ("/api/relays/%2e%2e%2Fconfig", 404),
    ("/api/relays/%2e%2e/config", 404),
    ("/api/relays/Light/../../config", 404),
    ("/api/relays/Light%2F..%2F..%2Fconfig", 404),
    ("/api/relays/Light/", 404),
    ("/api/relays/", 404),
    ("/api/relays", 404),
    ("/api/relays/%00", 404),
    ("/api/relays/" + "L" * 33, 404),
    ("/api/relays/" + "%41" * 33, 404),
    ("/api/relays/" + "x" * 400, 404),
    ("/api/relays/%zz", 400),
    ("/api/relays/%4", 400),
    ("/api/relays/Light%", 400),
    ("/api/relays/%C0%AF", 400),  # an overlong "/"
    ("/api/relays/%ED%A0%80", 400),  # a surrogate
    ("/api/relays/%FF", 400),
    ("/api/config/", 404),
    ("/api/config%00", 404),
    ("/api//config", 404),
    ("/API/config", 404),
]


def test_path_tricks(node):
    n = guarded(node)
    w = Unchanged(n)
    for path, status in PATHS:
        for method, body in (("GET", None), ("POST", {"on": True})):
            got = api(n.port, method, path, body)
            assert got[0] == status, (method, path, got)
            assert b"pin" not in json.dumps(got[2]).encode() if isinstance(got[2], dict) else b"pin" not in got[2]
            if path.startswith("/api/relays/"):  # the API's own answers: JSON errors
                assert got[2]["type"] == "error", (path, got)
        w.check(path)


def test_oversized_bodies(node):
    n = guarded(node)
    w = Unchanged(n)
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    for path, method, size in (("/api/relays/Light", b"POST", 257), ("/api/relays/Light", b"POST", 10 ** 9),
                               ("/api/config", b"PUT", 16385), ("/api/config", b"PUT", 10 ** 12)):
        head = b"%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (method, path.encode(), auth, size)
        t0 = time.monotonic()
        # only the head and a little of the body: the answer comes at once, not after the body
        status, _, body = nh.parse_response(nh.raw_request(n.port, head + b"{" * 100, T))
        assert status == 413 and json.loads(body)["code"] == "too_large", (path, size, status, body)
        assert time.monotonic() - t0 < 1.5 + SLOW_MS / 1000
        w.check("%s %d" % (path, size))
    for path, method in (("/api/relays/Light", b"POST"), ("/api/config", b"PUT")):
        chunked = b"%s %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        status, _, body = nh.parse_response(nh.raw_request(n.port, chunked % (method, path.encode(), auth), T))
        assert status == 411, (path, status, body)
        w.check("chunked " + path)
    # a body longer than Content-Length says: only Content-Length bytes are the body
    status, _, body = api(n.port, "POST", "/api/relays/Light", b'{"toggle": true}')
    assert status == 200
    w.states["Light"] = not w.states["Light"]
    w.ws.recv(timeout=T)
    w.check("after")


# Send head and then the body a byte at a time, slower than the node allows: it answers 408
# once SLOW_MS is up and closes. Meanwhile the others are served at once.
def slow_request(port, head, body, gap=0.15):
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    s.sendall(head)
    sent = 0
    answer = b""
    t0 = time.monotonic()
    try:
        while sent < len(body) and time.monotonic() - t0 < 3 * SLOW_MS / 1000:
            s.sendall(body[sent : sent + 1])
            sent += 1
            s.settimeout(gap)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            except socket.timeout:
                pass
        s.settimeout(T)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    return answer, sent, time.monotonic() - t0


def test_slow_bodies_are_dropped_on_time(node):
    n = guarded(node)
    w = Unchanged(n)
    cfg = json.dumps(api(n.port, "GET", "/api/config")[2]).encode()
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    for path, method, body in (("/api/relays/Light", b"POST", b'{"on": true}'), ("/api/config", b"PUT", cfg)):
        head = b"%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (method, path.encode(), auth, len(body))
        result = []
        t = threading.Thread(target=lambda r=result, h=head, b=body: r.append(slow_request(n.port, h, b)))
        t.start()
        time.sleep(0.3)
        # the others go on being served while the slow one trickles
        t0 = time.monotonic()
        assert api(n.port, "GET", "/api/relays/Fan")[0] == 200
        w.check("during slow " + path, path == "/api/config")
        assert time.monotonic() - t0 < 0.5 * SLOW_MS / 1000 + 0.5
        t.join(3 * SLOW_MS / 1000 + T)
        answer, sent, took = result[0]
        status, _, got = nh.parse_response(answer)
        assert status == 408 and json.loads(got)["code"] == "timeout", (path, answer)
        assert sent < len(body), sent
        assert SLOW_MS / 1000 - 0.1 < took < SLOW_MS / 1000 + 1.5, took
        w.check("after slow " + path)
    assert n.matching("408 body too slow")


def test_requests_without_the_token(node):
    n = guarded(node)
    w = Unchanged(n)
    cfg = api(n.port, "GET", "/api/config")[2]
    cases = [("GET", "/api/relays/Light", None), ("POST", "/api/relays/Light", {"on": True}),
             ("GET", "/api/config", None), ("PUT", "/api/config", dict(cfg, name="taken"))]
    for method, path, body in cases:
        got = api(n.port, method, path, body, token=None)
        assert got[0] == 401 and got[2]["code"] == "token_required", (method, path, got)
        assert got[1]["www-authenticate"] == "Bearer"
        assert "relays" not in got[2]
        w.check("no token %s %s" % (method, path))
        got = api(n.port, method, path, body, token="guess")
        assert got[0] == 401 and got[2]["code"] == "bad_token", (method, path, got)
        got = api(n.port, method, path, body)  # even the right token waits out the lock-out
        assert got[0] == 429 and got[2]["code"] == "locked_out" and got[1]["retry-after"] == "30", got
        time.sleep(0.3)
        w.check("wrong token %s %s" % (method, path))
    # the token in the query works too, as for the WebSocket
    assert api(n.port, "GET", "/api/relays/Light?token=" + TOKEN, token=None)[0] == 200


def test_cross_origin_posts_are_refused(node):
    n = guarded(node)
    w = Unchanged(n)
    cfg = api(n.port, "GET", "/api/config")[2]
    for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example:%d" % n.port,
                   "http://allowed.example.evil", "http://127.0.0.1:1"):
        for method, path, body in (("POST", "/api/relays/Light", {"on": True}),
                                   ("PUT", "/api/config", dict(cfg, name="taken")),
                                   ("GET", "/api/config", None)):
            got = api(n.port, method, path, body, headers=[("Origin", origin)])
            assert got[0] == 403 and got[2]["code"] == "bad_origin", (origin, method, got)
        # a browser's form post cannot send the token header: refused for the token too
        got = api(n.port, "POST", "/api/relays/Light", b"on=true", token=None,
                  headers=[("Origin", origin), ("Content-Type", "application/x-www-form-urlencoded")])
        assert got[0] == 403, got
        w.check(origin)
    # the allowlist and the node's own origin pass
    for origin in ("http://allowed.example", "http://127.0.0.1:%d" % n.port):
        got = api(n.port, "POST", "/api/relays/Light", {"toggle": True}, headers=[("Origin", origin)])
        assert got[0] == 200, (origin, got)
        w.states["Light"] = not w.states["Light"]
        w.ws.recv(timeout=T)
    w.check("allowed")


def debug(n):
    return api(n.port, "GET", "/api/debug")[2]


def settled_heap(n):
    time.sleep(0.5)
    return min(debug(n)["heap"], debug(n)["heap"])


# Every hostile case once (warm-up), then five times more: the heap once settled must not
# grow. And before any API request the node's heap is what it is without the API.
def test_heap_under_hostile_requests(node, runtime):
    n = guarded(node, limits={"handshake_timeout_ms": 300, "max_rate": 1000, "save_delay_ms": 100})
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    fresh = settled_heap(n)

    def round_():
        for path, _ in PATHS[:14]:
            api(n.port, "POST", path, {"on": False})
        nh.raw_request(n.port, b"POST /api/relays/Light HTTP/1.1\r\nHost: x\r\n%sContent-Length: 99999\r\n\r\n{" % auth)
        nh.raw_request(n.port, b"PUT /api/config HTTP/1.1\r\nHost: x\r\n%sContent-Length: 10\r\n\r\n{" % auth, T)
        api(n.port, "POST", "/api/relays/Light", {"on": True}, headers=[("Origin", "http://evil.example")])
        api(n.port, "POST", "/api/relays/Light", {"on": True}, token=None)
        api(n.port, "POST", "/api/relays/Light", {"pulse_ms": "x"})
        api(n.port, "POST", "/api/relays/Light", {"toggle": True})
        api(n.port, "GET", "/api/relays/Fan")

    round_()
    start = settled_heap(n)
    for _ in range(5):
        round_()
    end = settled_heap(n)
    assert not [x for x in n.output().splitlines() if "Traceback" in x or "MemoryError" in x], n.output()
    print("%s: heap %d before the API, %d after its first use, %d after 5 more rounds" % (runtime, fresh, start, end))
    if runtime == "micropython":
        assert 0 < start and end <= start + 1024, (fresh, start, end)
        # the API's code was not in the heap before its first request
        assert start > fresh + 2048, (fresh, start)
