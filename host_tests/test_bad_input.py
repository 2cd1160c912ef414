# Bad input end to end, on both runtimes (CPython and the MicroPython unix port with a 128K
# heap), 127.0.0.1 only: what a client sends as JSON \u escapes reaches every page as valid
# UTF-8, a lone surrogate is a bad_field, JSON that RFC 8259 refuses is a bad_json on
# MicroPython too and moves nothing, and hostile HTTP heads get their exact status.
# Every wait is bounded.
import json
import socket
import time

import pytest

from tools import harness as nh

pytestmark = pytest.mark.slow

T = 5.0
PIZZA = "\U0001f355"


# make(n, count=1): count pages of node n (host_tests/pages.py), a list; a page checks that
# every message it reads is strict UTF-8.
@pytest.fixture
def clients(pages):
    return lambda n, count=1: pages(n, count, compression=None)


def relays_on(n):
    return {r["name"]: r["on"] for r in nh.get_state(n.port)["relays"]}


def moves(n, since):
    return [x for x in n.output(since).splitlines() if x.startswith(("GPIO", "relay "))]


def trouble(n):
    return [x for x in n.output().splitlines() if any(w in x for w in ("Traceback", "Error", "xception"))]


# Every client is still connected and served: a get brings each its state.
def all_alive(cs):
    for c in cs:
        c.send('{"type":"get"}')
        assert c.recv()["type"] == "state"


def test_say_with_escaped_emoji_reaches_every_client_as_utf8(node, clients):
    n = node(limits={"max_rate": 1000})
    cs = clients(n, 3)
    # what Python's json.dumps sends for an emoji: a surrogate pair as two \u escapes
    text = json.dumps({"type": "say", "text": "pizza " + PIZZA + " for all"})
    assert "\\ud83c\\udf55" in text
    cs[0].send(text)
    for c in cs:
        assert c.recv() == {"type": "say", "text": "pizza " + PIZZA + " for all"}
    # the same from the page (the character itself), mixed with other escapes
    cs[1].send('{"type":"say","text":"%s \\u00e9\\n\\"q\\" \\ud83d\\ude00"}' % PIZZA)
    for c in cs:
        assert c.recv()["text"] == PIZZA + ' \u00e9\n"q" \U0001f600'
    all_alive(cs)
    assert not trouble(n), trouble(n)


def test_lone_surrogate_is_bad_field_and_reaches_nobody(node, clients):
    n = node(limits={"max_rate": 1000})
    cs = clients(n, 2)
    before = relays_on(n)
    mark = n.mark()
    for text in ('{"type":"say","text":"pizza \\ud83c"}', '{"type":"say","text":"\\udf55 x"}',
                 '{"type":"toggle","relay":"Light\\ud83c"}', '{"type":"set","relay":"\\udc00","on":true}'):
        cs[0].send(text)
        msg = cs[0].recv()
        assert (msg["type"], msg["code"]) == ("error", "bad_field"), (text, msg)
    cs[1].assert_quiet(0.3)
    assert relays_on(n) == before
    assert moves(n, mark) == []
    all_alive(cs)
    assert not trouble(n), trouble(n)


def test_json_that_rfc_8259_refuses_is_bad_json_and_moves_nothing(node, clients):
    n = node(limits={"max_rate": 1000})
    cs = clients(n, 2)
    before = relays_on(n)
    mark = n.mark()
    for text in ('{"type":"toggle","relay":"Light",}', '{"type":"toggle" "relay":"Light"}',
                 '{"type" "toggle","relay":"Light"}', '{"type":"toggle",,"relay":"Light"}',
                 '{"type":"toggle","relay":00}', '{"type":"pulse","relay":0,"ms":0500}',
                 '{"type":"toggle","relay":"Li\nght"}', '{"type":"toggle","relay":"Light\t"}',
                 '{"type":"toggle","relay":"\\x4cight"}', '{"type":"set","relay":0,"on":true}\x00'):
        cs[0].send(text)
        msg = cs[0].recv()
        assert (msg["type"], msg["code"]) == ("error", "bad_json"), (text, msg)
    cs[1].assert_quiet(0.3)
    assert relays_on(n) == before
    assert moves(n, mark) == []
    # and the same commands written properly still work
    cs[0].send('{ "type" : "toggle" , "relay" : "\\u0046an" }')
    for c in cs:
        assert c.recv() == {"type": "relay", "id": 1, "name": "Fan", "on": not before["Fan"], "cause": "client"}
    assert not trouble(n), trouble(n)


def status(n, data):
    raw = nh.raw_request(n.port, data)
    assert raw.startswith(b"HTTP/1.1 "), raw
    return nh.parse_response(raw)


def test_hostile_http_heads_get_their_status(node, clients):
    n = node(limits={"max_rate": 1000, "handshake_timeout_ms": 3000})
    (c,) = clients(n)
    before = relays_on(n)
    host = "127.0.0.1:%d" % n.port
    cases = [
        ("bare LF in a value", b"GET /api/state HTTP/1.1\r\nHost: x\r\nX-A: 1\nGPIO26 -> 0\r\n\r\n", 400),
        ("bare LF in Host", b"GET / HTTP/1.1\r\nHost: x\nrelay Light -> on (client)\r\n\r\n", 400),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\r\n\r\n", 400),
        ("escape in Origin", b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://x\x1b[2J\r\n\r\n", 400),
        ("two Host fields", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        ("Content-Length -1", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("Content-Length abc", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        ("Content-Length 1,2", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,2\r\n\r\n", 400),
        ("Content-Length +5", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
        ("absolute target with userinfo", b"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]
    for case, data, want in cases:
        t0 = time.monotonic()
        got = status(n, data)[0]
        assert got == want, (case, got)
        assert time.monotonic() - t0 < 2, case  # answered at once, not at the head timeout
    # absolute form: its path is served
    got, _, body = status(n, ("GET http://%s/api/state?x=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)).encode())
    assert got == 200 and json.loads(body)["type"] == "state"
    assert status(n, ("GET HTTP://%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)).encode())[0] == 200
    assert relays_on(n) == before
    all_alive([c])
    assert not trouble(n), trouble(n)


# RFC 9112 3.2.2: the authority in an absolute-form target wins over Host, so the Origin check
# of a WebSocket upgrade is made against it.
def test_absolute_form_authority_is_checked_like_host(node):
    n = node(limits={"max_rate": 1000})
    own = "127.0.0.1:%d" % n.port
    up = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n")
    for target_host, host, origin, want in ((own, "evil.example", own, 101), ("evil.example", own, own, 403)):
        data = ("GET http://%s/ws HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\n%s\r\n" % (target_host, host, origin, up)).encode()
        with socket.create_connection(("127.0.0.1", n.port), timeout=T) as s:
            s.settimeout(T)
            s.sendall(data)
            raw = b""
            deadline = time.monotonic() + T
            while b"\r\n\r\n" not in raw and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                raw += chunk
        assert nh.parse_response(raw)[0] == want, (target_host, host, raw)
    assert not trouble(n), trouble(n)


# A head that can never be valid is answered 400 at its first read, not after the head
# timeout (408): bare-LF line endings, a TLS ClientHello, a method with other characters than
# a token's. A head that arrives a byte at a time is still served.
def test_hopeless_heads_get_400_at_once(node):
    n = node(limits={"handshake_timeout_ms": 3000})
    hopeless = (
        b"GET / HTTP/1.1\nHost: x\n",  # bare LF, and the blank line never comes
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS ClientHello
        b'{"type":"toggle"',  # JSON where a request line belongs
    )
    for data in hopeless:
        t0 = time.monotonic()
        raw = nh.raw_request(n.port, data, timeout=5.0)
        took = time.monotonic() - t0
        assert raw.startswith(b"HTTP/1.1 400 "), (data, raw[:60])
        assert took < 1.5, (data, took)
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    try:
        for b in b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n":
            s.sendall(bytes([b]))
            time.sleep(0.002)
        got = s.recv(64)
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200 "), got
    assert not any(relays_on(n).values())
    assert not trouble(n), trouble(n)
