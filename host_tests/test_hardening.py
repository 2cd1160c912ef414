# Hardening: the node under hostile or broken input, on both runtimes (CPython and the
# MicroPython unix port with a 128K heap), 127.0.0.1 only. Every case checks the exact HTTP
# status or close code, that no relay moved, and that a client already connected still works.
# Then tokens and Origin, floods, vanishing/slow/dead peers, a soak for heap leaks, power cuts
# while state is written, and property tests of the HTTP head and command parsers.
# Every loop is bounded in count and time.
import json
import os
import random
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tools import harness as nh
from host_tests.pages import Page
from host_tests.portable import wire

pytestmark = pytest.mark.slow

T = 5.0  # bound on every wait for something that should happen
TOKEN = "s3cret-Token_42"
ALLOWED = "http://allowed.example:8080"


# ---------------------------------------------------------------- helpers


# make(n, query="", origin=None, state=True): a page of node n (host_tests/pages.py).
@pytest.fixture
def clients(pages):
    return pages


# A raw upgrade request: (socket, status, headers, bytes after the head). The socket is
# closed unless the answer is 101.
def raw_upgrade(port, path="/ws", extra=(), host=None, key=wire.RFC_KEY, version="13"):
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    s.settimeout(T)
    s.sendall(wire.handshake(path, host=host or "127.0.0.1:%d" % port, key=key, version=version, extra=extra))
    data = b""
    deadline = time.monotonic() + T
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, headers, _ = nh.parse_response(head + b"\r\n\r\n")
    if status != 101:
        s.close()
    return s, status, headers, rest


# Open a control client on a raw socket; returns (socket, leftover bytes) after the state frame.
def raw_client(port, query=""):
    s, status, _, rest = raw_upgrade(port, "/ws" + query)
    assert status == 101, status
    deadline = time.monotonic() + T
    frames, rest = nh.parse_frames(rest)
    while not frames and time.monotonic() < deadline:
        rest += s.recv(4096)
        frames, rest = nh.parse_frames(rest)
    assert frames and frames[0][0] == 0x1 and json.loads(frames[0][1])["type"] == "state", frames
    return s, rest


# Read server frames until a close frame arrives (then close our side, as a client should)
# or the node ends TCP or time runs out: ([(opcode, payload)], saw a close frame).
def read_until_close(s, data=b"", timeout=T):
    deadline = time.monotonic() + timeout
    while True:
        frames, _ = nh.parse_frames(data)
        if any(op == 0x8 for op, _ in frames):
            s.close()
            return frames, True
        left = deadline - time.monotonic()
        if left <= 0:
            s.close()
            return frames, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout, OSError):
            chunk = b""
        if not chunk:
            s.close()
            return frames, False
        data += chunk


# (code, reason) of the first close frame among frames.
def close_of(frames):
    for op, payload in frames:
        if op == 0x8:
            assert len(payload) >= 2, payload
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")
    raise AssertionError("no close frame in %r" % (frames,))


def relays_on(n, **kw):
    return {r["name"]: r["on"] for r in get_state(n.port, **kw)["relays"]}


def get_state(port, headers=()):
    status, _, body = nh.http_get(port, "/api/state", headers)
    assert status == 200, status
    return json.loads(body)


def debug(port, headers=()):
    status, _, body = nh.http_get(port, "/api/debug", headers)
    assert status == 200, status
    return json.loads(body)


# (clients, connections) as /api/debug counts them (its own connection included).
def counts(n):
    d = debug(n.port)
    return d["clients"], d["connections"]


# Open connections as /api/debug counts them (its own included), or None while refused.
def connections(port, headers=()):
    status, _, body = nh.http_get(port, "/api/debug", headers)
    return json.loads(body)["connections"] if status == 200 else None


# Lines of the node's output that tell of an error in the node itself. Not counted: a client
# dropped because writing to it failed (it reset the connection), and CPython's asyncio
# warning "socket.send() raised exception." for frames sent to such a client before its
# reader noticed.
def trouble(n, since=0):
    words = ("Traceback", "Error", "rror:", "xception", "Task ")
    return [x for x in n.output(since).splitlines()
            if any(w in x for w in words) and x != "socket.send() raised exception." and ": dropped (" not in x]


def moves(n, since):
    return [x for x in n.output(since).splitlines() if x.startswith(("GPIO", "relay "))]


def relay_msg(rid, name, on, cause="client"):
    return {"type": "relay", "id": rid, "name": name, "on": on, "cause": cause}


# Wait until f() is true (polling, bounded); returns its last value.
def until(f, timeout=T, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = f()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


class Watch:
    """A client connected before a bad case: after it, no relay may have moved and this
    client must still switch one (and get the broadcast)."""

    def __init__(self, n, make, auth_headers=(), **kw):
        self.n = n
        self.c = make(n, **kw)
        self.auth = auth_headers
        self.state = relays_on(n, headers=auth_headers)
        self.mark = n.mark()

    def check(self, case):
        n = self.n
        assert n.running(), (case, n.output())
        assert relays_on(n, headers=self.auth) == self.state, case
        fan = not self.state["Fan"]
        self.c.send({"type": "toggle", "relay": "Fan"})
        assert self.c.recv() == relay_msg(1, "Fan", fan), case
        line = "relay Fan -> %s (client)" % ("on" if fan else "off")
        n.wait_for_line(line, T, since=self.mark)
        # the only moves since the last check: the watcher's own toggle (printed in order)
        assert moves(n, self.mark) == ["GPIO27 -> %d" % (0 if fan else 1), line], (case, n.output(self.mark))
        self.state["Fan"] = fan
        self.mark = n.mark()


# ---------------------------------------------------------------- 1. bad input battery

BAD_HTTP = [
    ("garbage", b"GARBAGE\r\n\r\n", 400),
    ("no version", b"GET /\r\n\r\n", 400),
    ("four parts", b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", 400),
    ("double space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("empty request line", b"\r\n\r\n", 400),
    ("bad method token", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("binary request line", b"\xff\xfe\x00 / HTTP/1.1\r\n\r\n", 400),
    ("absolute target with userinfo", b"GET http://u@127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("authority-form target", b"GET 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("relative target", b"GET api/state HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("not HTTP", b"GET / FTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("non-ASCII method", "GÉT / HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400),
    ("non-ASCII header name", "GET / HTTP/1.1\r\nHost: x\r\nĀ: 1\r\n\r\n".encode(), 400),
    ("bad %-escape in query", b"GET /api/state?token=%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("huge header", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n", 431),
    ("huge request line", b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    ("too many headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",
     431),
    ("unknown path", b"GET /config.json HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("dot-dot path", b"GET /../config.json HTTP/1.1\r\nHost: x\r\n\r\n", 404),
]
for _m in ("POST", "PUT", "DELETE", "PATCH"):
    for _p in ("/", "/api/state", "/ws"):
        BAD_HTTP.append(("%s %s" % (_m, _p), b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (_m.encode(), _p.encode()), 405))
BAD_HTTP.append(("POST with a body", b"POST /api/state HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n"
                 b'{"type":"toggle","relay":0}', 405))


def test_bad_http_requests(node, clients):
    n = node(limits={"handshake_timeout_ms": 300, "max_rate": 1000})
    w = Watch(n, clients)
    for case, data, status in BAD_HTTP:
        raw = nh.raw_request(n.port, data)
        assert raw.startswith(b"HTTP/1.1 "), (case, raw)
        got, headers, _ = nh.parse_response(raw)
        assert got == status, (case, raw)
        if status == 405:
            assert "GET" in headers["allow"], (case, headers)
        w.check(case)
    # Slowloris: a head that is never finished, sent whole or dripped a byte at a time,
    # gets 408 once handshake_timeout_ms (300 ms) has passed, not later and not sooner.
    for case, drip in (("slowloris", False), ("slowloris drip", True)):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=T)
        t0 = time.monotonic()
        try:
            head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Never-Ends: "
            if drip:
                for i in range(len(head)):
                    try:
                        s.sendall(head[i : i + 1])
                    except OSError:
                        break
                    if time.monotonic() - t0 > 2:
                        break
                    time.sleep(0.02)
            else:
                s.sendall(head)
            raw = b""
            s.settimeout(T)
            while time.monotonic() - t0 < T:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                raw += chunk
        finally:
            s.close()
        elapsed = time.monotonic() - t0
        assert nh.parse_response(raw)[0] == 408, (case, raw)
        assert 0.25 <= elapsed < 2.5, (case, elapsed)
        w.check(case)
    assert until(lambda: len(n.matching("408 request head timeout")) == 2), n.output()
    # Connections that end before or inside the head: nothing to answer, nothing breaks.
    for case, data in (("connect and close", b""), ("half a request line", b"GET /api/st"),
                       ("head without the blank line", b"GET / HTTP/1.1\r\nHost: x\r\n")):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=T)
        if data:
            s.sendall(data)
        s.close()
        w.check(case)
    assert not trouble(n), trouble(n)


def _upgrade_headers(**change):
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
         "Sec-WebSocket-Version": "13"}
    for k, v in change.items():
        k = k.replace("_", "-")
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return list(h.items())


BAD_HANDSHAKES = [
    ("missing key", _upgrade_headers(Sec_WebSocket_Key=None), 400, None),
    ("short key", _upgrade_headers(Sec_WebSocket_Key="c2hvcnQ="), 400, None),
    ("key of 17 bytes", _upgrade_headers(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAAAAA="), 400, None),
    ("key not base64", _upgrade_headers(Sec_WebSocket_Key="!!!!!!!!!!!!!!!!!!!!!!=="), 400, None),
    ("non-ASCII key", _upgrade_headers(Sec_WebSocket_Key="Ā" * 22 + "=="), 400, None),
    ("key with stray bits", _upgrade_headers(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAAAB=="), 400, None),
    ("version 8", _upgrade_headers(Sec_WebSocket_Version="8"), 426, "13"),
    ("version missing", _upgrade_headers(Sec_WebSocket_Version=None), 426, "13"),
    ("Connection keep-alive", _upgrade_headers(Connection="keep-alive"), 400, None),
    ("Connection missing", _upgrade_headers(Connection=None), 400, None),
    ("Upgrade missing", _upgrade_headers(Upgrade=None), 426, None),
    ("Upgrade h2c", _upgrade_headers(Upgrade="h2c"), 426, None),
]


def test_bad_handshakes(node, clients):
    n = node(limits={"max_rate": 1000})
    w = Watch(n, clients)
    for case, headers, status, version in BAD_HANDSHAKES:
        got, h, _ = nh.http_get(n.port, "/ws", headers)
        assert got == status, (case, got, h)
        if version:
            assert h["sec-websocket-version"] == version, (case, h)
        w.check(case)
    # HTTP/1.0 cannot upgrade; a case-insensitive, listed Connection token can.
    raw = nh.raw_request(n.port, b"GET /ws HTTP/1.0\r\nHost: x\r\n" + b"".join(
        b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in _upgrade_headers()) + b"\r\n")
    assert nh.parse_response(raw)[0] == 400, raw
    w.check("HTTP/1.0")
    s, status, h, _ = raw_upgrade(n.port, extra=(), key="dGhlIHNhbXBsZSBub25jZQ==")
    s.close()
    assert status == 101 and h["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", h
    with socket.create_connection(("127.0.0.1", n.port), timeout=T) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
                  b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = s.recv(4096)
            assert chunk, raw
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 101 "), raw
    w.check("good handshakes")
    # No refused handshake became a client: only the two good ones and the watcher opened.
    assert until(lambda: len(n.matching(": open (")) == 3), n.output()


# (case, bytes after the handshake, close code). The node must answer with a close frame
# with exactly this code (RFC 6455 section 7.4.1).
BIG = 300  # max_message for this test
BAD_FRAMES = [
    ("unmasked text", wire.frame(0x1, b"Light On", mask=None), 1002),
    ("unmasked ping", wire.frame(0x9, b"", mask=None), 1002),
    ("RSV1", wire.frame(0x1, "Light On", rsv=wire.RSV1), 1002),
    ("RSV2", wire.frame(0x1, "Light On", rsv=wire.RSV2), 1002),
    ("RSV3", wire.frame(0x1, "Light On", rsv=wire.RSV3), 1002),
    ("RSV on a ping", wire.frame(0x9, b"x", rsv=7), 1002),
    ("oversized 16-bit length, header only", wire.frame(0x1, length=BIG + 1)[:4] + b"\x01\x02\x03\x04", 1009),
    ("oversized 64-bit length, header only", wire.frame(0x2, length=1 << 40)[:10] + b"\x01\x02\x03\x04", 1009),
    ("64-bit length with the top bit set", b"\x81\xff\x80" + b"\x00" * 7 + b"\x01\x02\x03\x04", 1002),
    ("oversized across fragments", wire.frame(0x1, "x" * 200, fin=False) + wire.frame(0x0, b"y" * 200), 1009),
    ("fragmented ping", wire.frame(0x9, b"p", fin=False), 1002),
    ("fragmented close", wire.frame(0x8, b"\x03\xe8", fin=False), 1002),
    ("ping of 126 bytes", wire.frame(0x9, b"p" * 126), 1002),
    ("pong of 200 bytes", wire.frame(0xA, b"p" * 200), 1002),
    ("close of 126 bytes", wire.frame(0x8, b"\x03\xe8" + b"r" * 124), 1002),
    ("continuation without start", wire.frame(0x0, b"Light On"), 1002),
    ("text inside a fragmented text", wire.frame(0x1, "Light", fin=False) + wire.frame(0x1, " On"), 1002),
    ("binary inside a fragmented text", wire.frame(0x1, "Light", fin=False) + wire.frame(0x2, b"x"), 1002),
    ("invalid UTF-8", wire.frame(0x1, b"Light \xff On"), 1007),
    ("overlong UTF-8", wire.frame(0x1, b"\xc0\xaf"), 1007),
    ("UTF-16 surrogate", wire.frame(0x1, b"\xed\xa0\x80"), 1007),
    ("code point above U+10FFFF", wire.frame(0x1, b"\xf4\x90\x80\x80"), 1007),
    ("text ends inside a character", wire.frame(0x1, b"Light On \xe2\x82"), 1007),
    ("invalid UTF-8 split across fragments", wire.frame(0x1, b'{"type":"say","text":"\xe2\x82', fin=False)
     + wire.frame(0x0, b'("}'), 1007),
    ("text ends inside a character, fragmented",
     wire.frame(0x1, b"Light On \xf0\x9f", fin=False) + wire.frame(0x0, b"\x98"), 1007),
    ("one-byte close payload", wire.frame(0x8, b"\x03"), 1002),
    ("close code 1005", wire.frame(0x8, b"\x03\xed"), 1002),
    ("close code 999", wire.frame(0x8, b"\x03\xe7"), 1002),
    ("close code 2000", wire.frame(0x8, b"\x07\xd0"), 1002),
    ("invalid UTF-8 close reason", wire.frame(0x8, b"\x03\xe8\xff"), 1007),
]
for _op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    BAD_FRAMES.append(("opcode %d" % _op, wire.frame(_op, b"Light On" if _op < 8 else b""), 1002))
# The peer's own close is echoed with its code (these are not errors).
GOOD_CLOSES = [
    ("close 1000", wire.close_frame(1000, "bye"), 1000),
    ("close 1001 after a ping between fragments",
     wire.frame(0x1, "Li", fin=False) + wire.frame(0x9, b"x") + wire.close_frame(1001),
     1001),
    ("close 4000", wire.close_frame(4000), 4000),
    ("close without a code", wire.close_frame(), None),
]


def test_bad_frames(node, clients):
    n = node(limits={"max_message": BIG, "max_rate": 1000})
    w = Watch(n, clients)
    for case, data, code in BAD_FRAMES + GOOD_CLOSES:
        mark = n.mark()
        s, rest = raw_client(n.port)
        s.sendall(data)
        frames, closed = read_until_close(s, rest)
        assert closed, (case, frames)
        assert frames[-1][0] == 0x8, (case, frames)
        if code is None:
            assert frames[-1][1] == b"", case  # no status: echoed as an empty close
        else:
            got, reason = close_of(frames)  # a valid close payload with a UTF-8 reason
            assert got == code, (case, got, reason)
        if code not in (None, 1000, 1001, 4000):
            n.wait_for_line("protocol close %d" % code, T, since=mark)
        # only the state message came before the close (nothing was acted on)
        assert [op for op, _ in frames[:-1]] in ([], [0xA]), (case, frames)
        w.check(case)


def test_frames_the_node_must_survive(node, clients):
    n = node(limits={"max_message": BIG, "max_rate": 1000})
    w = Watch(n, clients)
    # A frame cut short, then EOF (FIN) or a reset: no close frame possible, nothing moves.
    for case, rst in (("truncated frame then EOF", False), ("truncated frame then reset", True)):
        mark = n.mark()
        s, _ = raw_client(n.port)
        whole = wire.frame(0x1, '{"type":"toggle","relay":"Light"}')
        s.sendall(whole[: len(whole) // 2])
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            s.shutdown(socket.SHUT_WR)
            frames, closed = read_until_close(s, b"", 2)
            assert not closed, (case, frames)  # the node just ends TCP
        s.close()
        n.wait_for_line(": closed 1006", T, since=mark)
        w.check(case)
    # A header that announces more than comes, then nothing: the node keeps waiting for the
    # rest (no timeout inside a frame is required), and the client can still leave.
    s, _ = raw_client(n.port)
    s.sendall(wire.frame(0x1, "x" * 100)[:20])
    time.sleep(0.1)
    s.close()
    w.check("announced length never sent")
    # Random bytes after the handshake: any close code or EOF, never a relay move.
    rng = random.Random(1234)
    for i in range(12):
        s, rest = raw_client(n.port)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))
        try:
            s.sendall(junk)
        except OSError:
            pass
        frames, closed = read_until_close(s, rest, 2)
        if closed:
            code, _ = close_of(frames)
            # a protocol error, or the peer's own close echoed: any code a close frame may carry
            assert 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999, (i, junk, code)
        w.check("random bytes %d" % i)
    # Unknown JSON commands and binary frames: an error to the sender, the connection stays.
    s, rest = raw_client(n.port)
    s.sendall(wire.frame(0x1, '{"type":"launch","relay":0}') + wire.frame(0x2, b"\x00Light On")
              + wire.frame(0x1, "Light Sideways") + wire.frame(0x1, '{"type":"toggle","relay":"Garage"}')
              + wire.frame(0x1, '{"type":"get"}'))
    got = []
    deadline = time.monotonic() + T
    while len(got) < 5 and time.monotonic() < deadline:
        frames, rest = nh.parse_frames(rest)
        got += [json.loads(p) for op, p in frames if op == 0x1]
        if len(got) < 5:
            rest += s.recv(4096)
    assert [m.get("code") for m in got[:4]] == ["unknown_type", "binary_unsupported", "bad_command", "unknown_relay"], got
    assert all(m["type"] == "error" and m["message"] for m in got[:4]), got
    assert got[4]["type"] == "state", got
    s.sendall(wire.frame(0x9, b"still there?"))
    frames = []
    while not frames and time.monotonic() < deadline:
        frames, rest = nh.parse_frames(rest + s.recv(4096))
    assert frames[0] == (0xA, b"still there?"), frames
    s.sendall(wire.close_frame(1000))
    frames, closed = read_until_close(s, rest)
    assert closed and close_of(frames)[0] == 1000
    w.check("errors keep the connection")
    # A UTF-8 character split across fragments is fine.
    s, rest = raw_client(n.port)
    msg = '{"type":"say","text":"3 € left"}'.encode()
    cut = msg.index(b"\xe2") + 1
    s.sendall(wire.frame(0x1, msg[:cut], fin=False) + wire.frame(0x9, b"") + wire.frame(0x0, msg[cut:]))
    assert w.c.recv() == {"type": "say", "text": "3 € left"}
    s.close()
    w.check("UTF-8 split across fragments")
    assert not trouble(n), trouble(n)


def test_deeply_nested_json_is_only_a_bad_command(node, clients):
    # As deep as max_message allows: CPython's json hits its recursion limit, MicroPython's
    # runs out of a 128K heap. Both must end as a bad_json error, not a dead connection.
    n = node(limits={"max_rate": 1000})
    w = Watch(n, clients)
    s, rest = raw_client(n.port)
    deep = ["{" + "[" * 1000, '{"type":' + "[" * 1000 + "]" * 10, "[" * 500 + "]" * 500, '{"type":"get","a":' + "{\"a\":" * 150]
    for m in deep:
        s.sendall(wire.frame(0x1, m))
    got = []
    deadline = time.monotonic() + T
    while len(got) < len(deep) and time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        frames, rest = nh.parse_frames(rest + chunk)
        got += [json.loads(p) for op, p in frames if op == 0x1]
    s.close()
    assert [m.get("code") for m in got] == ["bad_json", "bad_json", "bad_command", "bad_json"], got
    w.check("deep JSON")
    assert not trouble(n), trouble(n)


# A message under max_message that the heap left cannot hold (MicroPython with a 128K heap, the
# limit raised to 200000 bytes), in one frame or in fragments: the sender is closed with 1011
# and the MemoryError logged in one line (no traceback); nothing moves, the others get the
# whole state again, the heap goes back to where it was, and the node goes on serving the
# others, new clients and the page.
def test_message_bigger_than_the_heap_closes_1011(clients):
    n = nh.Node("micropython", heapsize="128K", max_message=200000, limits={"max_rate": 1000})
    try:
        n.start()
        w = Watch(n, clients)
        before = debug(n.port)["heap"]
        piece = b"x" * 30000
        cases = [
            ("one frame", [wire.frame(0x1, b"x" * 150000)]),
            ("fragments", [wire.frame(0x1, piece, fin=False)] + [wire.frame(0x0, piece, fin=False)] * 4
             + [wire.frame(0x0, b"x")]),
        ]
        for case, frames in cases:
            mark = n.mark()
            s, rest = raw_client(n.port)
            try:
                for f in frames:
                    s.sendall(f)
            except OSError:
                pass  # the node may close before it has read everything
            got, closed = read_until_close(s, rest)
            assert closed and close_of(got) == (1011, "out of memory"), (case, got, n.output(mark))
            n.wait_for_line(": MemoryError (heap ", T, since=mark)
            out = n.output(mark)
            assert "Traceback" not in out and "Task exception" not in out, (case, out)
            st = w.c.recv()  # the others get the whole state again, unchanged here
            assert st["type"] == "state" and {r["name"]: r["on"] for r in st["relays"]} == w.state, st
            w.check(case)
            assert until(lambda: debug(n.port)["clients"] == 1), (case, debug(n.port))
        status, _, _ = nh.http_get(n.port, "/", timeout=T)
        assert status == 200
        clients(n).close()  # a new client gets its state
        assert until(lambda: debug(n.port)["heap"] <= before + 2048), (before, debug(n.port))
    finally:
        n.cleanup()


# ---------------------------------------------------------------- 2. token and Origin

BEARER = (("Authorization", "Bearer " + TOKEN),)
LOCK_S = 0.25  # the first lock-out after a wrong token


def _ws_refused(n, query="", first=None):
    # A raw client: upgrade (with an optional ?token=), optionally send one first message,
    # and return the node's (code, reason) and the time it took.
    t0 = time.monotonic()
    s, status, _, rest = raw_upgrade(n.port, "/ws" + query)
    assert status == 101, status
    if first is not None:
        s.sendall(wire.frame(0x1, first))
    frames, closed = read_until_close(s, rest)
    assert closed and [op for op, _ in frames] == [0x8], frames  # no state: nothing leaked
    return close_of(frames), time.monotonic() - t0


# Wait out the lock-out after one wrong token, and reset it with the right one.
def unlock(n):
    time.sleep(LOCK_S + 0.1)
    assert nh.http_get(n.port, "/api/state", BEARER)[0] == 200


def test_token(node, clients):
    n = node(auth={"token": TOKEN}, limits={"handshake_timeout_ms": 400, "max_rate": 1000})
    w = Watch(n, clients, auth_headers=BEARER, query="?token=" + TOKEN)
    # HTTP API: no token 401, wrong 401 (which locks for 0.25 s), right 200 (header or query).
    status, h, _ = nh.http_get(n.port, "/api/state")
    assert status == 401 and h["www-authenticate"] == "Bearer"
    status, _, _ = nh.http_get(n.port, "/api/debug")
    assert status == 401
    assert nh.http_get(n.port, "/", ())[0] == 200  # the page itself is public: it asks for the token
    for headers, path in (((("Authorization", "Bearer wrong"),), "/api/state"), ((), "/api/state?token=wrong"),
                          ((("Authorization", "Bearer " + TOKEN[:-1]),), "/api/state"),
                          ((("Authorization", "Basic " + TOKEN),), "/api/state"),
                          ((), "/api/state?token=" + TOKEN + "x")):
        time.sleep(LOCK_S + 0.1)
        assert nh.http_get(n.port, path, headers)[0] == 401, (headers, path)
        time.sleep(LOCK_S + 0.1)
        assert nh.http_get(n.port, "/api/state", BEARER)[0] == 200  # resets the lock-out
    assert nh.http_get(n.port, "/api/state?token=" + TOKEN)[0] == 200
    assert nh.http_get(n.port, "/api/state?token=" + TOKEN.replace("_", "%5F"))[0] == 200
    assert nh.http_get(n.port, "/api/state", (("authorization", "bearer " + TOKEN),))[0] == 200
    assert nh.http_get(n.port, "/api/debug", BEARER)[0] == 200
    w.check("HTTP tokens")
    # WebSocket: ?token= right gives the state; wrong closes 1008 "bad token".
    c = clients(n, query="?token=" + TOKEN)
    assert c.state["node"] == "testnode"
    (code, reason), _ = _ws_refused(n, "?token=nope")
    assert (code, reason) == (1008, "bad token")
    unlock(n)
    # The first message: {"type":"auth","token":...}.
    c = clients(n, state=False)
    c.send({"type": "auth", "token": TOKEN})
    assert c.recv()["type"] == "state"
    c.send({"type": "toggle", "relay": "Light"})
    assert c.recv() == relay_msg(0, "Light", True)
    assert w.c.recv() == relay_msg(0, "Light", True)
    c.send({"type": "toggle", "relay": "Light"})
    assert c.recv() == relay_msg(0, "Light", False)
    assert w.c.recv() == relay_msg(0, "Light", False)
    n.wait_for_line("relay Light -> off (client)", T, since=w.mark)
    w.mark = n.mark()
    # Anything else first, a wrong token, or nothing at all within handshake_timeout_ms: 1008.
    (code, reason), _ = _ws_refused(n, first="Light On")
    assert (code, reason) == (1008, "token required")
    (code, reason), _ = _ws_refused(n, first=json.dumps({"type": "toggle", "relay": 0, "token": TOKEN}))
    assert (code, reason) == (1008, "token required")
    (code, reason), _ = _ws_refused(n, first=json.dumps({"type": "auth", "token": 42}))
    assert code == 1008
    time.sleep(LOCK_S + 0.1)
    (code, reason), _ = _ws_refused(n, first=json.dumps({"type": "auth", "token": "nope"}))
    assert (code, reason) == (1008, "bad token")
    unlock(n)
    (code, reason), took = _ws_refused(n)
    assert (code, reason) == (1008, "token required")
    assert 0.35 <= took < 2.5, took
    # A client refused with a token in the URL does not get a second chance by message.
    s, status, _, rest = raw_upgrade(n.port, "/ws?token=nope")
    s.sendall(wire.frame(0x1, json.dumps({"type": "auth", "token": TOKEN})))
    frames, closed = read_until_close(s, rest)
    assert closed and [op for op, _ in frames] == [0x8] and close_of(frames) == (1008, "bad token"), frames
    unlock(n)
    w.check("WebSocket tokens")
    assert not trouble(n), trouble(n)


def test_token_lock_out(node, clients):
    n = node(auth={"token": TOKEN}, limits={"max_rate": 1000})
    w = Watch(n, clients, auth_headers=BEARER, query="?token=" + TOKEN)
    # One wrong token: even the right one is refused for 0.25 s (HTTP 429, WebSocket 4429).
    assert nh.http_get(n.port, "/api/state?token=guess1")[0] == 401
    status, h, body = nh.http_get(n.port, "/api/state", BEARER)
    assert status == 429 and h["retry-after"] and b"too many wrong tokens" in body, (status, body)
    (code, reason), _ = _ws_refused(n, "?token=" + TOKEN)
    assert (code, reason) == (4429, "too many wrong tokens, wait")
    (code, reason), _ = _ws_refused(n, first=json.dumps({"type": "auth", "token": TOKEN}))
    assert (code, reason) == (4429, "too many wrong tokens, wait")
    time.sleep(LOCK_S + 0.1)
    assert nh.http_get(n.port, "/api/state", BEARER)[0] == 200
    # Two wrong tokens in a row (after the first lock-out ends): locked for 0.5 s.
    assert nh.http_get(n.port, "/api/state?token=guess2")[0] == 401
    time.sleep(LOCK_S + 0.1)
    assert nh.http_get(n.port, "/api/state?token=guess3")[0] == 401
    t0 = time.monotonic()
    assert nh.http_get(n.port, "/api/state", BEARER)[0] == 429
    time.sleep(max(0, t0 + 0.15 - time.monotonic()))
    assert nh.http_get(n.port, "/api/state", BEARER)[0] == 429  # past the first 0.25 s: still locked
    time.sleep(max(0, t0 + 0.6 - time.monotonic()))
    c = clients(n, query="?token=" + TOKEN)  # 0.6 s later: open, and the lock-out reset
    assert c.state["type"] == "state"
    assert nh.http_get(n.port, "/api/state?token=guess4")[0] == 401
    time.sleep(LOCK_S + 0.1)
    c = clients(n, state=False)
    c.send({"type": "auth", "token": TOKEN})
    assert c.recv()["type"] == "state"
    # Clients admitted before the lock-out are not affected by it.
    assert nh.http_get(n.port, "/api/state?token=guess5")[0] == 401
    c.send({"type": "get"})
    assert c.recv()["type"] == "state"
    time.sleep(LOCK_S + 0.1)
    assert until(lambda: len(n.matching(": wrong token (")) == 5), n.output()
    w.check("lock-out")


def test_origin(node, clients):
    n = node(auth={"origins": [ALLOWED]}, limits={"max_rate": 1000})
    w = Watch(n, clients)
    own = "http://127.0.0.1:%d" % n.port
    cases = [
        ("no Origin", (), None, 101),
        ("own origin", (("Origin", own),), None, 101),
        ("own origin, other case, trailing slash", (("Origin", own.upper() + "/"),), None, 101),
        ("allowlisted", (("Origin", ALLOWED),), None, 101),
        ("allowlisted, other case", (("Origin", ALLOWED.upper()),), None, 101),
        ("foreign", (("Origin", "http://evil.example"),), None, 403),
        ("foreign with our port", (("Origin", "http://evil.example:%d" % n.port),), None, 403),
        ("own host, other port", (("Origin", "http://127.0.0.1:1"),), None, 403),
        ("own host as a prefix", (("Origin", own + ".evil.example"),), None, 403),
        ("https variant of another host", (("Origin", "https://allowed.example"),), None, 403),
        ("null origin (sandboxed page, file://)", (("Origin", "null"),), None, 403),
        ("empty host", (("Origin", "http://"),), None, 403),
        # DNS rebinding: the attacker's name resolves to the node, so Origin and Host agree;
        # the Origin check lets it through (only the token stops it, see test_dns_rebinding).
        ("rebinding", (("Origin", "http://evil.example"),), "evil.example", 101),
    ]
    for case, extra, host, status in cases:
        s, got, h, rest = raw_upgrade(n.port, extra=extra, host=host)
        assert got == status, (case, got, h)
        if status == 101:
            frames, _ = nh.parse_frames(rest)
            while not frames:
                rest += s.recv(4096)
                frames, rest = nh.parse_frames(rest)
            assert json.loads(frames[0][1])["type"] == "state", case
            s.sendall(wire.close_frame(1000))
            read_until_close(s, rest)
        w.check(case)
    assert until(lambda: len(n.matching("-> 403 origin not allowed")) == len([c for c in cases if c[3] == 403]))
    # The websockets client sends an Origin when asked to.
    c = clients(n, origin=ALLOWED)
    assert c.state["type"] == "state"
    with pytest.raises(InvalidStatus) as exc:
        clients(n, origin="http://evil.example")
    assert exc.value.response.status_code == 403
    w.check("websockets client")


def test_dns_rebinding_is_stopped_by_the_token(node, clients):
    n = node(auth={"token": TOKEN}, limits={"handshake_timeout_ms": 400, "max_rate": 1000})
    w = Watch(n, clients, auth_headers=BEARER, query="?token=" + TOKEN)
    # A page on http://evil.example whose name now resolves to the node: same Host and
    # Origin, so the upgrade passes the Origin check, but without the token nothing moves.
    for first in ("Light On", None):
        s, status, _, rest = raw_upgrade(n.port, extra=(("Origin", "http://evil.example"),), host="evil.example")
        assert status == 101
        if first:
            s.sendall(wire.frame(0x1, first))
        frames, closed = read_until_close(s, rest)
        assert closed and [op for op, _ in frames] == [0x8] and close_of(frames) == (1008, "token required"), frames
    status, _, _ = nh.parse_response(nh.raw_request(n.port, b"GET /api/state HTTP/1.1\r\nHost: evil.example\r\n"
                                                             b"Origin: http://evil.example\r\n\r\n"))
    assert status == 401
    w.check("rebinding")


# ---------------------------------------------------------------- 3. floods


def test_connection_flood(node, clients):
    n = node(limits={"max_connections": 5, "max_clients": 8, "handshake_timeout_ms": 4000, "max_rate": 1000})
    w = Watch(n, clients)  # one connection
    held = [clients(n) for _ in range(4)]  # the other four: WebSocket clients, never shed
    # Every further connection (HTTP or WebSocket) gets 503 while those are held.
    for _ in range(6):
        raw = nh.raw_request(n.port, b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n")
        status, h, _ = nh.parse_response(raw)
        assert status == 503 and h["retry-after"], raw
    s, status, h, _ = raw_upgrade(n.port)
    assert status == 503, status
    assert until(lambda: len(n.matching("refused, 5 connections")) == 7), n.output()
    # The connected clients are not affected.
    w.c.send({"type": "get"})
    assert w.c.recv()["type"] == "state"
    for c in held:
        c.close()
    # Once the flood ends the node serves normally again.
    assert until(lambda: connections(n.port) == 2), connections(n.port)  # the watcher and this request
    w.check("after the connection flood")
    c = clients(n)
    assert c.state["type"] == "state"
    assert nh.http_get(n.port, "/")[0] == 200


# At the cap, a new connection takes the place of the oldest head still incomplete; with no
# head to shed (every connection a WebSocket client) it gets 503, as test_connection_flood shows.
def test_new_connection_sheds_the_oldest_incomplete_head(node, clients):
    n = node(limits={"max_connections": 5, "max_clients": 8, "handshake_timeout_ms": 4000, "max_rate": 1000})
    w = Watch(n, clients)
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", n.port), timeout=T)
            s.sendall(b"GET /api/state HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
            time.sleep(0.05)
        time.sleep(0.1)
        for i in range(2):  # each takes the place of the oldest held head, in order
            status, _, body = nh.http_get(n.port, "/api/state")
            assert status == 200 and json.loads(body)["type"] == "state", (status, body)
            held[i].settimeout(T)
            assert held[i].recv(100) == b"", i  # closed without an answer
            s = socket.create_connection(("127.0.0.1", n.port), timeout=T)  # the cap is full again
            s.sendall(b"GET /api/state HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        for s in held[2:]:
            s.settimeout(0.2)
            with pytest.raises(socket.timeout):
                s.recv(100)  # not shed: nobody needed their place
        assert until(lambda: len(n.matching("in place of the oldest incomplete head")) == 2), n.output()
        for s in held:
            s.close()
        held = []
    finally:
        for s in held:
            s.close()
    w.check("after shedding")
    assert not trouble(n), trouble(n)


# The slowloris shape: 50 connections that each send a byte a second and come back a second
# after they are dropped. A phone asking for the state every 0.3 s still gets in.
def test_phone_gets_in_past_slowloris(node, clients):
    n = node(limits={"max_rate": 1000})  # the default caps: 10 connections, heads within 5 s
    w = Watch(n, clients)
    stop = threading.Event()
    head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + b"X-Pad: " + b"a" * 200

    def attacker():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", n.port), timeout=1)
            except OSError:
                stop.wait(1)
                continue
            try:
                for i in range(len(head)):
                    if stop.is_set():
                        break
                    s.sendall(head[i : i + 1])
                    s.settimeout(1)
                    try:
                        if s.recv(100) == b"":
                            break  # shed
                        break  # answered (503 or 408)
                    except socket.timeout:
                        pass
            except OSError:
                pass
            finally:
                s.close()
            stop.wait(1)

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(50)]
    for t in threads:
        t.start()
    got = []
    try:
        time.sleep(2)  # the cap is full of incomplete heads by now
        for _ in range(16):
            try:
                got.append(nh.http_get(n.port, "/api/state", timeout=T)[0])
            except OSError as e:
                got.append(repr(e))
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(T)
    print("phone requests during the slowloris:", got)
    assert got.count(200) == len(got), got
    assert until(lambda: connections(n.port) == 2, timeout=8), connections(n.port)
    w.check("after the slowloris")


def test_client_flood(node, clients):
    n = node(limits={"max_clients": 3, "max_connections": 10, "max_rate": 1000})
    w = Watch(n, clients)
    others = [clients(n), clients(n)]
    n.wait_for_line("(3 clients", T)
    for _ in range(5):  # beyond max_clients: 503 before the upgrade
        s, status, h, _ = raw_upgrade(n.port)
        assert status == 503 and h["retry-after"], (status, h)
    with pytest.raises(InvalidStatus) as exc:
        Page(n)
    assert exc.value.response.status_code == 503
    assert until(lambda: len(n.matching("503 too many clients")) == 6), n.output()
    assert nh.get_state(n.port)["type"] == "state"  # plain HTTP still works
    w.check("during the client flood")
    for c in others:
        c.close()
    assert until(lambda: debug(n.port)["clients"] == 1), debug(n.port)
    w.check("after the client flood")
    others = [clients(n), clients(n)]
    others[1].send({"type": "say", "text": "back"})
    for c in [w.c] + others:
        assert c.recv() == {"type": "say", "text": "back"}


def test_command_flood(node, clients):
    rate = 10
    n = node(limits={"max_rate": rate})
    w = Watch(n, clients)
    other = clients(n)
    # 300 commands in one burst from one client: the first `rate` are served (the bucket
    # starts full), then one "rate_limited" error, then close 1008 "too many commands".
    s, rest = raw_client(n.port)
    mark = n.mark()
    s.sendall(b"".join(wire.frame(0x1, '{"type":"get"}') for _ in range(300)))
    frames, closed = read_until_close(s, rest)
    assert closed, frames
    kinds = [json.loads(p).get("code", json.loads(p)["type"]) if op == 0x1 else op for op, p in frames]
    assert kinds[:rate] == ["state"] * rate, kinds
    assert "rate_limited" in kinds and kinds[-1] == 0x8, kinds
    assert kinds.count("state") < 3 * rate, kinds  # refills at `rate`/s only
    assert close_of(frames) == (1008, "too many commands")
    n.wait_for_line("closing 1008 (too many commands)", T, since=mark)
    # A client that floods over time (faster than the rate) meets the same end.
    f = clients(n)
    t0 = time.monotonic()
    sent = 0
    try:
        while sent < 400 and time.monotonic() - t0 < T:
            f.send({"type": "say", "text": "spam %d" % sent})
            sent += 1
            time.sleep(0.002)
    except ConnectionClosed:
        pass
    got = []
    with pytest.raises(ConnectionClosed) as exc:
        while time.monotonic() - t0 < 2 * T:
            got.append(f.recv())
    assert exc.value.rcvd is not None and (exc.value.rcvd.code, exc.value.rcvd.reason) == (1008, "too many commands")
    errors = [m["code"] for m in got if m["type"] == "error"]
    assert errors and set(errors) == {"rate_limited"}, got
    assert sent < 400, sent
    # Everybody else keeps working (they got the flood's allowed "say" messages).
    for c in (w.c, other):
        said = c.drain()
        assert said and all(m["type"] == "say" for m in said) and len(said) < 3 * rate + 10, said
    w.check("after the command flood")
    assert other.recv()["name"] == "Fan"  # the watcher's toggle
    other.send({"type": "toggle", "relay": "Light"})
    assert other.recv() == relay_msg(0, "Light", True)
    assert w.c.drain()[-1] == relay_msg(0, "Light", True)


def test_command_budget_refills_with_time(node):
    rate = 5
    n = node(limits={"max_rate": rate})
    s, rest = raw_client(n.port)
    _, rest = nh.parse_frames(rest)  # the state message
    get = wire.frame(0x1, '{"type":"get"}')

    # The answers to `count` commands sent in one write: the kinds of the `want` frames that
    # come, then nothing more for 0.3 s.
    def burst(count, want):
        s.sendall(get * count)
        data, deadline = rest, time.monotonic() + T
        frames = []
        while time.monotonic() < deadline:
            frames, _ = nh.parse_frames(data)
            if len(frames) >= want:
                break
            s.settimeout(max(0.01, deadline - time.monotonic()))
            data += s.recv(4096)
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            extra = s.recv(4096)
            raise AssertionError("more than %d frames: %r" % (want, nh.parse_frames(data + extra)[0]))
        return [json.loads(p).get("code", json.loads(p)["type"]) if op == 0x1 else op for op, p in frames]

    # The budget starts full: `rate` commands at once, the next one refused with an error.
    assert burst(rate + 1, rate + 1) == ["state"] * rate + ["rate_limited"]
    # Time refills it, up to `rate` commands and no more: of seven, five are answered, the
    # sixth refused with an error, the seventh refused quietly (the client stays).
    time.sleep(1.5)
    assert burst(rate + 2, rate + 1) == ["state"] * rate + ["rate_limited"]
    s.close()


# ---------------------------------------------------------------- 4. vanishing, slow and dead peers


def test_clients_that_vanish_mid_frame(node, clients):
    n = node(limits={"max_rate": 1000})
    w = Watch(n, clients)
    whole = wire.frame(0x1, '{"type":"set","relay":"Light","on":true}')
    for case in ("half a frame, then reset", "half a frame, then FIN", "half a header, then reset",
                 "half a handshake, then reset", "handshake, then reset"):
        if "handshake" in case:
            s = socket.create_connection(("127.0.0.1", n.port), timeout=T)
            req = wire.handshake(host="127.0.0.1:%d" % n.port)
            s.sendall(req[: len(req) // 2] if case.startswith("half") else req)
            time.sleep(0.05)
        else:
            s, _ = raw_client(n.port)
            s.sendall(whole[:1] if "header" in case else whole[: len(whole) - 5])
        if "reset" in case:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        w.check(case)
    # All of them are gone: only the watcher is left (and the request asking).
    assert until(lambda: counts(n) == (1, 2)), counts(n)
    assert not trouble(n), trouble(n)


# TCP state of the node's side of a connection to our local port, from /proc/net/tcp
# (Linux); None when there is no such socket (anymore) or no /proc.
def node_side_state(node_port, peer_port):
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    for row in rows:
        f = row.split()
        if int(f[1].split(":")[1], 16) == node_port and int(f[2].split(":")[1], 16) == peer_port:
            return f[3]  # "01" established
    return None


def test_slow_reader_does_not_hold_up_the_others(node, clients):
    n = node(limits={"write_timeout_ms": 500, "client_queue": 4, "max_rate": 100000})
    # A client that stops reading: a tiny receive buffer and segment size, so the node's
    # socket to it backs up after some tens of KB instead of megabytes.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    if hasattr(socket, "TCP_MAXSEG"):
        stuck.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    stuck.settimeout(T)
    stuck.connect(("127.0.0.1", n.port))
    stuck.sendall(wire.handshake(host="127.0.0.1:%d" % n.port))
    stuck_port = stuck.getsockname()[1]
    b, c = clients(n), clients(n)
    n.wait_for_line("(3 clients", T)
    said = []
    want = {"Light": False, "Fan": False}
    t0 = time.monotonic()
    gone_at = None
    rounds = 0
    worst = 0.0
    while rounds < 400 and time.monotonic() - t0 < 20:
        batch = []
        for i in range(10):
            if i == 4 or i == 9:
                name = "Light" if i == 4 else "Fan"
                want[name] = not want[name]
                batch.append({"type": "toggle", "relay": name})
            else:
                batch.append({"type": "say", "text": "%d.%d " % (rounds, i) + "x" * 180})
        for m in batch:
            b.send(m)
        for m in batch:
            if m["type"] == "say":
                said.append(m["text"])
        for cl in (b, c):
            got = [cl.recv() for _ in batch]
            assert [m["text"] for m in got if m["type"] == "say"] == said[-8:], rounds
            assert [m["on"] for m in got if m["type"] == "relay"] == [want["Light"], want["Fan"]], got
        rounds += 1
        if rounds % 20 == 0:  # the node answers HTTP promptly all along
            t = time.monotonic()
            assert relays_on(n) == want
            worst = max(worst, time.monotonic() - t)
        if gone_at is None and (n.matching("closing 1013") or n.matching("dropped")):
            gone_at = rounds
        if gone_at is not None and rounds >= gone_at + 20:
            break
    assert gone_at is not None, "the stuck client was never closed after %d rounds:\n%s" % (rounds, n.output()[-2000:])
    assert worst < 1.0, worst
    assert relays_on(n) == want
    # Everybody else got every message, the last relay messages match the state.
    for cl in (b, c):
        cl.send({"type": "get"})
        st = cl.recv()
        assert {r["name"]: r["on"] for r in st["relays"]} == want
    # The stuck client is gone on the node's side: it reads what is left, then EOF (or a reset).
    assert until(lambda: node_side_state(n.port, stuck_port) != "01", 3), node_side_state(n.port, stuck_port)
    data = b""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        try:
            chunk = stuck.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    stuck.close()
    assert data.startswith(b"HTTP/1.1 101 "), data[:100]
    frames, _ = nh.parse_frames(data.partition(b"\r\n\r\n")[2])
    assert frames and json.loads(frames[0][1])["type"] == "state"
    if frames[-1][0] == 0x8:
        assert close_of(frames)[0] == 1013
    assert debug(n.port)["clients"] == 2
    assert not trouble(n), trouble(n)


def test_dead_peers_are_dropped(node, clients):
    n = node(limits={"ping_interval_ms": 300, "pong_timeout_ms": 300, "max_rate": 1000})
    w = Watch(n, clients)  # the websockets client answers pings by itself
    # A peer that reads but never answers a ping: dropped with "no pong" (close 1011).
    s, rest = raw_client(n.port)
    t0 = time.monotonic()
    mark = n.mark()
    frames, closed = read_until_close(s, rest, T)
    took = time.monotonic() - t0
    n.wait_for_line("dropped (no pong)", T, since=mark)
    assert frames and frames[0] == (0x9, b"rn"), frames
    if closed:
        assert close_of(frames) == (1011, "ping timeout")
    assert 0.3 < took < 3.0, took
    # The one that answers is still there after several ping rounds.
    time.sleep(1.0)
    assert len(n.matching("no pong")) == 1, n.output()
    w.check("after the dead peer")
    # An idle client (sends nothing, not even a pong) is closed 1001 after idle_timeout_ms.
    m = node(limits={"idle_timeout_ms": 700, "max_rate": 1000})
    s, rest = raw_client(m.port)
    t0 = time.monotonic()
    frames, closed = read_until_close(s, rest, T)
    assert closed and close_of(frames) == (1001, "idle"), frames
    assert 0.6 < time.monotonic() - t0 < 3.0
    m.wait_for_line("closing 1001 (idle)", T)


# ---------------------------------------------------------------- 5. soak: no leak under churn

COMMANDS = [
    '{"type":"toggle","relay":"Light"}', '{"type":"set","relay":1,"on":true}', "fan off", '{"type":"get"}',
    '{"type":"say","text":"soak ✓"}', '{"type":"pulse","relay":"Fan","ms":5}', "Light Maybe", '{"type":"fly"}',
    '{"type":"set","relay":"Garage","on":true}', "{broken",
]


# One short-lived client: connect, send `count` commands, end the way `how` says; returns the
# number of commands the node surely handled (those before a reset may be lost with it).
def churn_one(port, how, count, i):
    cmds = [COMMANDS[(i + k) % len(COMMANDS)] for k in range(count - 1)] + ['{"type":"get"}']
    if how == "websockets":
        ws = connect("ws://127.0.0.1:%d/ws" % port, open_timeout=T, close_timeout=2, legacy=True)
        try:
            assert json.loads(ws.recv(timeout=T))["type"] == "state"
            for m in cmds:
                ws.send(m)
            want = sum(1 for m in cmds if m == '{"type":"get"}')
            deadline = time.monotonic() + T
            while want and time.monotonic() < deadline:
                if json.loads(ws.recv(timeout=T))["type"] == "state":
                    want -= 1
            assert not want
        finally:
            ws.close()
        return count
    s, rest = raw_client(port)
    try:
        if how == "half frame":
            s.sendall(b"".join(wire.frame(0x1, m, mask=bytes([i & 255, 1, 2, 3])) for m in cmds[:-1]))
            s.sendall(wire.frame(0x1, cmds[-1])[:5])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return 0
        s.sendall(b"".join(wire.frame(0x1, m, mask=bytes([i & 255, 1, 2, 3])) for m in cmds))
        if how == "reset":  # gone without reading a thing
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return 0
        if how == "fin":  # gone without a close frame, after reading nothing
            s.shutdown(socket.SHUT_WR)
            read_until_close(s, rest, 2)
            return count
        s.sendall(wire.close_frame(1000))  # a proper close
        frames, closed = read_until_close(s, rest)
        assert closed and close_of(frames)[0] == 1000, frames
        return count
    finally:
        s.close()


HOWS = ("websockets", "close", "reset", "fin", "websockets", "half frame", "close")


def churn(port, clients_per_worker, workers=3, per_client=10, budget=60.0):
    sent = [0] * workers
    errors = []
    t0 = time.monotonic()

    def work(w):
        try:
            for i in range(clients_per_worker):
                if time.monotonic() - t0 > budget:
                    return
                sent[w] += churn_one(port, HOWS[(i + w) % len(HOWS)], per_client, i + 7 * w)
        except Exception as e:  # reported by the caller
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget + 10)
    assert not errors, errors
    return sum(sent)


# /api/debug once the node has forgotten every client: (heap, figures).
def settled(n):
    assert until(lambda: counts(n) == (0, 1), 10), counts(n)
    time.sleep(0.7)  # the pulse timers have ended (5 ms) and the state is saved (save_delay_ms)
    d = debug(n.port)
    return min(d["heap"], debug(n.port)["heap"]), d


def test_soak_no_leak(node, runtime):
    n = node(heapsize="128K", limits={"save_delay_ms": 200})
    churn(n.port, 10)  # warm-up: every code path has run, buffers have grown
    start, d0 = settled(n)
    t0 = time.monotonic()
    sent = churn(n.port, 150)
    took = time.monotonic() - t0
    end, d1 = settled(n)
    assert sent >= 3000, sent
    assert took < 60, took
    assert not trouble(n), trouble(n)[:20]
    assert d1["clients"] == 0 and d1["connections"] == 1
    if runtime == "micropython":
        assert start > 0 and d0["free"] > 0
        assert end <= start + 2048, (start, end, d0, d1)
    print("%s: %d commands from %d clients in %.1f s; heap %d -> %d" % (runtime, sent, 450, took, start, end))


# ---------------------------------------------------------------- 6. power cuts while state is written


# What StateStore.load() finds in a state directory (the file, else the temp file), or None.
def saved_state(state_dir):
    for name in ("state.json", "state.json.tmp"):
        try:
            with open(os.path.join(state_dir, name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and all(isinstance(v, bool) for v in data.values()):
            return data
    return None


# The relay states the boot's GPIO lines leave (both relays are active-low: 0 is on).
def booted_gpio(n):
    levels = {}
    for x in n.output().splitlines():
        if x.startswith("GPIO"):
            pin, _, level = x[4:].partition(" -> ")
            levels[int(pin)] = int(level)
        if "serving http://" in x:
            break
    return {"Light": levels[26] == 0, "Fan": levels[27] == 0}


def test_power_cuts_while_saving(node, runtime):
    rng = random.Random(20251125)
    n = node(relays={"Light": {"power_on": "restore"}, "Fan": {"power_on": "restore"}},
             limits={"save_delay_ms": 1, "max_rate": 100000})
    path = os.path.join(n.state_dir, "state.json")
    restored_on = 0
    for rnd in range(15):
        # Toggle as fast as the node answers (every change is saved 1 ms later), and cut the
        # power (SIGKILL) at a random moment.
        c = Page(n)
        kill_at = time.monotonic() + rng.uniform(0.02, 0.25)
        k = 0
        try:
            while time.monotonic() < kill_at and k < 2000:
                c.send({"type": "toggle", "relay": "Light" if k % 3 else "Fan"})
                if rng.random() < 0.8:
                    c.recv()
                k += 1
            n.proc.kill()  # mid-write, somewhere
        finally:
            c.ws.socket.close()
        n.proc.wait(T)
        left = saved_state(n.state_dir)
        if os.path.exists(path):  # the file itself is never half written
            with open(path) as f:
                data = json.load(f)
            assert set(data) == {"Light", "Fan"} and all(isinstance(v, bool) for v in data.values()), data
        # Power back: the node starts, finds a valid state, and drives the pins to it.
        n.restart()
        out = n.output()
        assert "corrupt" not in out and "wrong shape" not in out, out
        assert not trouble(n), trouble(n)
        want = {"Light": False, "Fan": False} if left is None else left
        assert booted_gpio(n) == want, (rnd, left, out)
        assert relays_on(n) == want, (rnd, left)
        restored_on += sum(want.values())
    assert restored_on > 0  # some rounds restored a relay that was on
    # A temp file left by a cut between write and rename is ignored while the file is good.
    with open(path + ".tmp", "w") as f:
        f.write('{"Light": tr')
    n.proc.kill()
    n.proc.wait(T)
    want = saved_state(n.state_dir)
    n.restart()
    assert booted_gpio(n) == want and relays_on(n) == want
    assert not n.matching("corrupt")


# A power cut can leave a state file of any length (on a file system without atomic rename):
# load() never raises and never returns anything but None or a dict of booleans.
def test_state_load_survives_truncation(tmp_path):
    from firmware.relays import StateStore

    good = json.dumps({"Light": True, "Fan": False, "Pump ✓": True}).encode()
    other = json.dumps({"Light": False, "Fan": True, "Pump ✓": False}).encode()
    logs = []
    for cut in range(len(good) + 1):
        for layout in ("file", "tmp", "file+good tmp", "good file+tmp", "both"):
            d = tmp_path / ("%d-%s" % (cut, layout.replace(" ", "_").replace("+", "_")))
            d.mkdir()
            part = good[:cut]
            if layout in ("file", "file+good tmp", "both"):
                (d / "state.json").write_bytes(part)
            if layout in ("tmp", "good file+tmp", "both"):
                (d / "state.json.tmp").write_bytes(part)
            if layout == "file+good tmp":
                (d / "state.json.tmp").write_bytes(other)
            if layout == "good file+tmp":
                (d / "state.json").write_bytes(other)
            store = StateStore(str(d), log=logs.append, name="state.json")
            got = store.load()
            assert got is None or (isinstance(got, dict) and all(isinstance(v, bool) for v in got.values())), got
            if cut == len(good):
                assert got in (json.loads(good), json.loads(other)), (layout, got)
            elif layout in ("file+good tmp", "good file+tmp"):
                assert got == json.loads(other), (cut, layout, got)  # the intact one wins
            else:
                assert got is None, (cut, layout, got)
            # and the node can save over whatever was there
            store.save({"Light": False, "Fan": False})
            assert StateStore(str(d), log=logs.append, name="state.json").load() == {"Light": False, "Fan": False}
    # Garbage of other kinds: bytes that are not UTF-8, JSON of the wrong shape.
    for junk in (b"\xff\xfe\x00", b"\x00" * 40, b"[true]", b"null", b'{"Light": 1}', b'{"Light": "on"}', b"{}" * 3):
        d = tmp_path / ("junk%d" % len(logs))
        d.mkdir()
        (d / "state.json").write_bytes(junk)
        got = StateStore(str(d), log=logs.append, name="state.json").load()
        assert got is None, (junk, got)
    assert any("corrupt" in x for x in logs) and any("wrong shape" in x for x in logs)


# ---------------------------------------------------------------- 7. parser properties

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_TOKENS = st.sampled_from(["GET", "POST", "HEAD", "G(T", "", "get", "\x00", "GET\t"])
_TARGETS = st.one_of(st.text(max_size=40), st.from_regex(r"/[a-z/]{0,10}(\?([a-z%0-9A-F+=&]|%[0-9a-fA-F]{0,2}){0,20})?",
                                                         fullmatch=True))
_VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.", "http/1.1", "", "HTTP/1.1 "])
_HEADER = st.tuples(st.text(max_size=12), st.sampled_from([":", ": ", "", " : ", "::"]), st.text(max_size=20))


@FUZZ
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=30))
def test_parse_head_raises_only_http_errors_on_bytes(data, max_headers):
    from firmware import http

    try:
        req = http.parse_head(data, max_headers, None, None)
    except http.HttpError as e:
        assert e.status in (400, 431, 505) and e.message
        return
    assert isinstance(req.path, str) and req.path.startswith("/")
    assert isinstance(req.query, dict) and isinstance(req.headers, dict)


@FUZZ
@given(_TOKENS, _TARGETS, _VERSIONS, st.lists(_HEADER, max_size=30), st.integers(min_value=1, max_value=24),
       st.sampled_from(["\r\n", "\n", "\r\n\r\n"]))
def test_parse_head_raises_only_http_errors_on_request_like_text(method, target, version, headers, max_headers, eol):
    from firmware import http

    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s%s%s%s" % (k, sep, v, eol) for k, sep, v in headers)
    data = (head + "\r\n").encode("utf-8", "surrogatepass")
    try:
        req = http.parse_head(data, max_headers, None, None)
    except http.HttpError as e:
        assert e.status in (400, 431, 505) and e.message
        return
    assert req.method == method and req.version == version
    assert len([k for k, sep, v in headers if k]) >= len(req.headers)
    for k in req.headers:
        assert k == k.lower()
    for k, v in req.query.items():
        assert isinstance(k, str) and isinstance(v, str)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
_KINDS = st.sampled_from(["set", "toggle", "pulse", "get", "say", "auth", "fly", "", None, 1, True])
_FIELDS = st.dictionaries(st.sampled_from(["relay", "on", "ms", "text", "token", "origin", "hops", "x"]),
                          _JSON | st.sampled_from([0, 1, -1, 7, "Light", "fan", " LIGHT ", True, False, 3600001]),
                          max_size=5)


def _bank():
    from firmware.compat import ticks_ms
    from firmware.relays import RelayBank

    class Pin:
        def value(self, v=None):
            return 0

    specs = [{"name": "Light", "pin": 26, "active_low": True}, {"name": "Fan", "pin": 27, "group": "g"}]
    return RelayBank(specs, lambda gpio, level: Pin(), clock=ticks_ms)


@FUZZ
@given(st.text(max_size=300))
def test_command_parse_raises_only_command_errors_on_text(s):
    from firmware import commands

    _parse_and_apply(commands, s)


@FUZZ
@given(_KINDS, _FIELDS, st.sampled_from(["", " ", "\n"]))
def test_command_parse_raises_only_command_errors_on_json(kind, fields, pad):
    from firmware import commands

    msg = dict(fields)
    if kind is not None:
        msg["type"] = kind
    _parse_and_apply(commands, pad + json.dumps(msg) + pad)


@FUZZ
@given(st.from_regex(r"\s*[A-Za-z ]{0,12} (on|off|ON|Off|oN|maybe)\s*", fullmatch=True))
def test_command_parse_plain_text(s):
    from firmware import commands

    _parse_and_apply(commands, s)


# parse() gives a command with a known type or raises CommandError; apply() moves a relay
# only for a valid set/toggle/pulse of a relay that exists, else raises CommandError.
def _parse_and_apply(commands, s):
    try:
        cmd = commands.parse(s)
    except commands.CommandError as e:
        assert e.code in ("bad_command", "bad_json", "bad_field", "unknown_type", "too_long") and e.message
        return
    assert isinstance(cmd, dict) and cmd["type"] in ("set", "toggle", "pulse", "get", "say", "auth"), cmd
    if cmd["type"] in ("set", "toggle", "pulse"):
        bank = _bank()
        try:
            changes = commands.apply(bank, cmd)
        except commands.CommandError as e:
            assert e.code == "unknown_relay", e.code
            assert not any(r.on for r in bank.relays)
            return
        assert all(r in bank.relays for r, _ in changes)


# ---------------------------------------------------------------- hub: one client closed mid-broadcast


# Closing or dropping a client removes it from hub.clients; a broadcast that does so on the
# way must still reach every other client (it used to skip the one after it).
def test_broadcast_reaches_the_others_when_one_is_closed_on_the_way():
    import asyncio

    from firmware.compat import ticks_add, ticks_ms
    from firmware.hub import Hub, Client

    class Writer:
        out_buf = b""  # nothing pending: every write is taken at once

        def __init__(self, fail=False):
            self.data = []
            self.fail = fail

        def write(self, b):
            if self.fail:
                raise OSError(104)
            self.data.append(bytes(b))

    class Task:
        def cancel(self):
            pass

    async def main():
        logs = []
        hub = Hub(max_clients=4, max_queue=2, log=logs.append, write_timeout_ms=5000)
        # a say message: the first client is stuck with a full queue, so it is closed (1013)
        cs = [Client(Writer(), Task(), max_message=1024) for i in range(3)]
        for c in cs:
            hub.add(c)
        cs[0].flush_at = ticks_add(ticks_ms(), -1000)
        cs[0].queue = [b"q1", b"q2"]
        hub.broadcast(b"say")
        assert hub.clients == cs[1:] and any("closing 1013" in x for x in logs), logs
        assert [c.writer.data for c in cs[1:]] == [[b"say"], [b"say"]]
        # a relay change: writing to the first client fails, so it is dropped
        ds = [Client(Writer(fail=i == 0), Task(), max_message=1024) for i in range(3)]
        hub.clients = []
        for c in ds:
            hub.add(c)
        hub.relay_changed(0, b"relay")
        assert hub.clients == ds[1:] and any("dropped" in x for x in logs), logs
        assert [c.writer.data for c in ds[1:]] == [[b"relay"], [b"relay"]]

    asyncio.run(main())
