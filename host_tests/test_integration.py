# Integration: the whole node as a subprocess (CPython and the MicroPython unix port), driven
# over real sockets on 127.0.0.1 by the `websockets` client and by raw sockets.
import gzip
import json
import os
import socket
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tools import harness as nh
from host_tests.portable import wire

pytestmark = pytest.mark.slow

PAGE = os.path.join(nh.ROOT, "firmware", "www", "index.html")
QUIET = 0.5  # seconds of silence that count as "received nothing"
T = 5.0  # bound on every wait for something that should happen


@pytest.fixture(scope="module", autouse=True)
def gzipped_page():
    # The node serves index.html.gz when it exists; make sure it exists and matches the page.
    gz = PAGE + ".gz"
    if not os.path.exists(gz) or os.path.getmtime(gz) < os.path.getmtime(PAGE):
        import importlib.util

        spec = importlib.util.spec_from_file_location("build_page", os.path.join(nh.ROOT, "tools", "build_page.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.build()


# make(n, count=1, path="/ws"): count pages of node n (host_tests/pages.py), a list.
@pytest.fixture
def clients(pages):
    return lambda n, count=1, path="/ws": pages(n, count, path=path, state=path == "/ws")


def relay(rid, name, on, cause):
    return {"type": "relay", "id": rid, "name": name, "on": on, "cause": cause}


def relays_on(n):
    return {r["name"]: r["on"] for r in nh.get_state(n.port)["relays"]}


# ---- application protocol ----


def test_state_on_connect(node, clients):
    n = node()
    assert n.matching("GPIO26 -> 1") and n.matching("GPIO27 -> 1")  # active-low relays start off
    (c,) = clients(n)
    s = c.state
    assert s["protocol"] == 1 and s["node"] == "testnode" and s["version"]
    assert s["relays"] == [{"id": 0, "name": "Light", "on": False}, {"id": 1, "name": "Fan", "on": False}]
    n.wait_for_line("ws 127.0.0.1:", T)
    c.send({"type": "get"})
    assert c.recv() == s


# A client's open line gives the heap only when asked (tools/sim.py --heap-log, for benchmarks):
# the full collection it needs would otherwise delay every client's state message.
def test_heap_in_open_line_only_with_heap_log(node, clients, runtime):
    plain = node()
    clients(plain)
    line = plain.wait_for_line(": open (", T)
    assert line.endswith(": open (1 clients)"), line
    n = node(heap_log=True)
    clients(n, 2)
    heaps = []
    for k in (1, 2):
        line = n.wait_for_line(": open (%d clients, heap " % k, T)
        heaps.append(int(line.rsplit(" ", 1)[1].rstrip(")")))
    if runtime == "micropython":  # gc.mem_alloc(): the second client's objects are in it
        assert 0 < heaps[0] < heaps[1], heaps
    else:
        assert heaps == [0, 0], heaps  # CPython has no gc.mem_alloc()


def test_broadcast_to_all_clients(node, clients):
    n = node()
    cs = clients(n, 3)
    n.wait_for_line("(3 clients", T)
    steps = [
        (0, {"type": "set", "relay": 0, "on": True}, relay(0, "Light", True, "client"), "GPIO26 -> 0"),
        (1, {"type": "set", "relay": "fan", "on": True}, relay(1, "Fan", True, "client"), "GPIO27 -> 0"),
        (2, {"type": "toggle", "relay": "Light"}, relay(0, "Light", False, "client"), "GPIO26 -> 1"),
        (0, {"type": "toggle", "relay": 1}, relay(1, "Fan", False, "client"), "GPIO27 -> 1"),
        (1, {"type": "set", "relay": "LIGHT", "on": True}, relay(0, "Light", True, "client"), "GPIO26 -> 0"),
    ]
    for sender, cmd, expect, gpio in steps:
        mark = n.mark()
        cs[sender].send(cmd)
        for c in cs:
            assert c.recv() == expect, cmd
        n.wait_for_line(gpio, T, since=mark)
    # Setting a relay to the state it already has changes nothing and sends nothing.
    cs[0].send({"type": "set", "relay": "Light", "on": True})
    for c in cs:
        c.assert_quiet()
    assert relays_on(n) == {"Light": True, "Fan": False}
    cs[2].send({"type": "say", "text": "hello, everybody ✓"})
    for c in cs:
        assert c.recv() == {"type": "say", "text": "hello, everybody ✓"}


def test_plain_text_commands(node, clients):
    n = node()
    a, b = clients(n, 2)
    mark = n.mark()
    a.send("Light On")
    for c in (a, b):
        assert c.recv() == relay(0, "Light", True, "client")
    n.wait_for_line("GPIO26 -> 0", T, since=mark)
    b.send("  fan ON ")
    for c in (a, b):
        assert c.recv() == relay(1, "Fan", True, "client")
    a.send("LIGHT off")
    for c in (a, b):
        assert c.recv() == relay(0, "Light", False, "client")
    n.wait_for_line("relay Light -> off (client)", T, since=mark)
    assert relays_on(n) == {"Light": False, "Fan": True}


def test_interlock(node, clients):
    n = node(relays=[{"group": "g"}, {"group": "g"}])
    a, b = clients(n, 2)
    a.send({"type": "set", "relay": "Light", "on": True})
    for c in (a, b):
        assert c.recv() == relay(0, "Light", True, "client")
    mark = n.mark()
    b.send({"type": "set", "relay": "Fan", "on": True})
    want = [relay(0, "Light", False, "interlock"), relay(1, "Fan", True, "client")]
    for c in (a, b):
        got = c.recv_n(2)
        assert sorted(got, key=lambda m: m["id"]) == want
    n.wait_for_line("GPIO26 -> 1", T, since=mark)
    n.wait_for_line("GPIO27 -> 0", T, since=mark)
    # Break before make: the other relay's pin goes off before this one's goes on.
    lines = n.output(mark).splitlines()
    assert lines.index("GPIO26 -> 1") < lines.index("GPIO27 -> 0"), lines
    n.wait_for_line("relay Light -> off (interlock)", T, since=mark)  # logged after the clients are written
    assert relays_on(n) == {"Light": False, "Fan": True}
    a.send({"type": "toggle", "relay": 0})
    want = [relay(0, "Light", True, "client"), relay(1, "Fan", False, "interlock")]
    for c in (a, b):
        assert sorted(c.recv_n(2), key=lambda m: m["id"]) == want
    assert relays_on(n) == {"Light": True, "Fan": False}


def test_pulse(node, clients):
    n = node(relays=[{}, {"pulse_ms": 300}])
    a, b = clients(n, 2)
    # A pulse command: on now, off by the timer after ms.
    mark = n.mark()
    t0 = time.monotonic()
    a.send({"type": "pulse", "relay": "Light", "ms": 400})
    for c in (a, b):
        assert c.recv() == relay(0, "Light", True, "client")
    for c in (a, b):
        assert c.recv(timeout=3) == relay(0, "Light", False, "timer")
    elapsed = time.monotonic() - t0
    assert 0.35 <= elapsed < 3, elapsed
    n.wait_for_line("relay Light -> off (timer)", T, since=mark)
    assert [x for x in n.output(mark).splitlines() if x.startswith("GPIO")] == ["GPIO26 -> 0", "GPIO26 -> 1"]
    # A relay with pulse_ms in its config switches itself off after any "on".
    t0 = time.monotonic()
    b.send({"type": "set", "relay": "Fan", "on": True})
    for c in (a, b):
        assert c.recv() == relay(1, "Fan", True, "client")
    for c in (a, b):
        assert c.recv(timeout=3) == relay(1, "Fan", False, "timer")
    assert 0.25 <= time.monotonic() - t0 < 3
    assert relays_on(n) == {"Light": False, "Fan": False}


BAD = [
    ("Light maybe", "bad_command"),
    ("Garage On", "unknown_relay"),
    ("[1, 2]", "bad_command"),
    ("{not json", "bad_json"),
    ('{"type": "fly"}', "unknown_type"),
    ('{"relay": 0, "on": true}', "unknown_type"),
    ('{"type": "set", "relay": "Garage", "on": true}', "unknown_relay"),
    ('{"type": "set", "relay": 7, "on": true}', "unknown_relay"),
    ('{"type": "set", "relay": -1, "on": true}', "unknown_relay"),
    ('{"type": "set", "relay": 0, "on": "yes"}', "bad_field"),
    ('{"type": "set", "relay": 0}', "bad_field"),
    ('{"type": "set", "relay": true, "on": true}', "bad_field"),
    ('{"type": "toggle", "relay": null}', "bad_field"),
    ('{"type": "pulse", "relay": 0, "ms": 0}', "bad_field"),
    ('{"type": "pulse", "relay": 0, "ms": "100"}', "bad_field"),
    ('{"type": "say", "text": ""}', "bad_field"),
    (json.dumps({"type": "say", "text": "x" * 201}), "too_long"),
    (b"\x01\x02", "binary_unsupported"),
]


def test_errors_go_to_sender_only_and_move_nothing(node, clients):
    n = node()
    a, b = clients(n, 2)
    before = relays_on(n)
    mark = n.mark()
    for msg, _ in BAD:
        a.send(msg)
    for msg, code in BAD:
        e = a.recv()
        assert e["type"] == "error" and e["code"] == code, (msg, e)
        assert isinstance(e["message"], str) and e["message"]
    b.assert_quiet()
    assert relays_on(n) == before
    moved = [x for x in n.output(mark).splitlines() if x.startswith(("GPIO", "relay "))]
    assert moved == [], moved
    assert len(n.matching(": error ", mark)) == len(BAD)
    # The sender's connection still works.
    a.send("Light On")
    for c in (a, b):
        assert c.recv() == relay(0, "Light", True, "client")


def test_restore_after_restart(node, clients):
    n = node(relays={"Light": {"power_on": "restore"}, "Fan": {"power_on": "off"}}, limits={"save_delay_ms": 100})
    (a,) = clients(n)
    a.send({"type": "set", "relay": "Light", "on": True})
    assert a.recv() == relay(0, "Light", True, "client")
    a.send({"type": "set", "relay": "Fan", "on": True})  # power_on "off": not restored
    assert a.recv() == relay(1, "Fan", True, "client")
    path = os.path.join(n.state_dir, "state.json")
    deadline = time.monotonic() + T
    saved = None
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                saved = json.load(f)
            if saved.get("Light") is True and saved.get("Fan") is True:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    assert saved == {"Light": True, "Fan": True}, saved
    a.close()
    n.restart()
    n.wait_for_line("relay Light -> on (restore)", T)
    lines = n.output().splitlines()
    gpio = [x for x in lines if x.startswith("GPIO")]
    # Safe level first (both off), then the restored relay on.
    assert gpio == ["GPIO26 -> 1", "GPIO27 -> 1", "GPIO26 -> 0"], lines
    assert not n.matching("relay Fan")
    assert relays_on(n) == {"Light": True, "Fan": False}
    (b,) = clients(n)
    assert b.state["relays"] == [{"id": 0, "name": "Light", "on": True}, {"id": 1, "name": "Fan", "on": False}]


# ---- HTTP ----


def test_http_page_and_state(node):
    n = node()
    with open(PAGE, "rb") as f:
        html = f.read()
    status, h, body = nh.http_get(n.port, "/")
    assert status == 200
    assert "content-encoding" not in h
    assert h["content-type"].startswith("text/html")
    assert int(h["content-length"]) == len(body)
    assert body == html
    etag = h["etag"]
    status, hz, bodyz = nh.http_get(n.port, "/", [("Accept-Encoding", "gzip, deflate, br")])
    assert status == 200
    assert hz["content-encoding"] == "gzip"
    assert "accept-encoding" in hz.get("vary", "").lower()
    assert int(hz["content-length"]) == len(bodyz) < len(body)
    assert gzip.decompress(bodyz) == html
    assert hz["etag"] != etag
    # Conditional requests: the matching ETag gives 304 without a body.
    status, h304, b304 = nh.http_get(n.port, "/", [("If-None-Match", etag)])
    assert status == 304 and b304 == b"" and h304["etag"] == etag
    status, h304, b304 = nh.http_get(n.port, "/", [("Accept-Encoding", "gzip"), ("If-None-Match", hz["etag"])])
    assert status == 304 and b304 == b""
    status, _, _ = nh.http_get(n.port, "/", [("If-None-Match", '"stale"')])
    assert status == 200
    status, h, b = nh.http_get(n.port, "/", method="HEAD")
    assert status == 200 and b == b"" and int(h["content-length"]) == len(html)
    status, h, body = nh.http_get(n.port, "/api/state")
    assert status == 200 and h["content-type"].startswith("application/json")
    s = json.loads(body)
    assert s["type"] == "state" and s["node"] == "testnode" and [r["name"] for r in s["relays"]] == ["Light", "Fan"]


def test_http_errors(node):
    n = node()
    port = n.port
    status, _, body = nh.http_get(port, "/nope")
    assert status == 404 and body
    status, _, _ = nh.http_get(port, "/../config.json")
    assert status in (400, 404)
    status, _, _ = nh.http_get(port, "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                               ("Sec-WebSocket-Version", "13")])
    assert status == 404  # no --echo
    status, h, _ = nh.http_get(port, "/", method="POST")
    assert status == 405 and "GET" in h["allow"]
    status, _, _ = nh.http_get(port, "/api/state", method="DELETE")
    assert status == 405
    # A GET that announces a body: nothing takes one (413), even when the body never comes.
    for extra in (b"Content-Length: 100000\r\n", b"Transfer-Encoding: chunked\r\n"):
        raw = nh.raw_request(port, b"GET /api/state HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
        assert nh.parse_response(raw)[0] == 413, raw
    # A head over max_head (2048), sent whole so the node has read it all when it answers.
    raw = nh.raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2100 + b"\r\n\r\n")
    assert nh.parse_response(raw)[0] == 431
    # More header fields than max_headers (24).
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(30)) + b"\r\n"
    assert nh.parse_response(nh.raw_request(port, head))[0] == 431
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /\r\n\r\n", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
                    b"\xff\xfe / HTTP/1.1\r\n\r\n"):
        raw = nh.raw_request(port, garbage)
        assert nh.parse_response(raw)[0] == 400, (garbage, raw)
    # /ws without an upgrade: 426.
    status, h, _ = nh.http_get(port, "/ws")
    assert status == 426 and h["upgrade"].lower() == "websocket"
    # An unsupported WebSocket version: 426 naming the supported one.
    status, h, _ = nh.http_get(port, "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                             ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                             ("Sec-WebSocket-Version", "8")])
    assert status == 426 and h["sec-websocket-version"] == "13"
    status, _, _ = nh.http_get(port, "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                             ("Sec-WebSocket-Key", "short"), ("Sec-WebSocket-Version", "13")])
    assert status == 400
    # After all that the node still serves.
    assert nh.get_state(port)["node"] == "testnode"
    assert n.running()


# ---- WebSocket limits and misbehaving peers ----


def test_echo_endpoint(node):
    n = node(echo=True)
    with connect("ws://127.0.0.1:%d/echo" % n.port, open_timeout=T, close_timeout=2) as ws:
        for msg in ("hello", "ünïcødé ✓", "x" * 1000, b"\x00\x01\xfe\xff", bytes(range(256)) * 3):
            ws.send(msg)
            assert ws.recv(timeout=T) == msg
        ws.ping(b"p").wait(T)
    assert nh.get_state(n.port)["node"] == "testnode"


def test_message_over_limit_closes_1009(node, clients):
    n = node(max_message=100)
    (other,) = clients(n)
    ws = connect("ws://127.0.0.1:%d/ws" % n.port, open_timeout=T, close_timeout=2, legacy=True)
    try:
        json.loads(ws.recv(timeout=T))
        ws.send(json.dumps({"type": "say", "text": "x" * 60}))  # within the limit
        assert json.loads(ws.recv(timeout=T))["type"] == "say"
        ws.send(json.dumps({"type": "say", "text": "x" * 150}))
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv(timeout=T)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009
    finally:
        ws.close()
    assert other.recv()["text"] == "x" * 60
    other.assert_quiet(0.2)
    other.send("Light On")
    assert other.recv() == relay(0, "Light", True, "client")


def test_unmasked_frame_closes_1002(node, clients):
    n = node()
    (other,) = clients(n)
    s, rest = nh.raw_ws_open(n.port)
    try:
        s.sendall(b"\x81\x05hello")  # a client frame without a mask
        frames = nh.read_frames_until_eof(s, rest, T)
    finally:
        s.close()
    assert frames[0][0] == 0x1 and json.loads(frames[0][1])["type"] == "state"
    assert frames[-1][0] == 0x8, frames
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1002
    n.wait_for_line("protocol close 1002", T)
    # The node keeps serving the others.
    other.send({"type": "toggle", "relay": "Fan"})
    assert other.recv() == relay(1, "Fan", True, "client")
    (late,) = clients(n)
    assert late.state["relays"][1]["on"] is True


def test_vanishing_clients_do_not_break_broadcast(node, clients):
    n = node()
    a, b = clients(n, 2)
    # One that completes the handshake and then resets the connection, one that closes
    # without a close frame, one that connects and never finishes its request.
    s1, _ = nh.raw_ws_open(n.port)
    s1.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s2, _ = nh.raw_ws_open(n.port)
    s3 = socket.create_connection(("127.0.0.1", n.port), timeout=T)
    s3.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    n.wait_for_line("(4 clients", T)
    s1.close()
    s2.close()
    s3.close()
    mark = n.mark()
    a.send({"type": "set", "relay": "Light", "on": True})
    for c in (a, b):
        assert c.recv() == relay(0, "Light", True, "client")
    b.send({"type": "say", "text": "still here"})
    for c in (a, b):
        assert c.recv() == {"type": "say", "text": "still here"}
    # The node notices both vanished WebSocket clients.
    deadline = time.monotonic() + T
    while time.monotonic() < deadline and len([x for x in n.matching(": closed") if x.startswith("ws ")]) < 2:
        time.sleep(0.05)
    assert len([x for x in n.matching(": closed") if x.startswith("ws ")]) >= 2, n.output()
    # A newcomer is counted without the vanished ones.
    mark = n.mark()
    (c,) = clients(n)
    assert n.wait_for_line("(3 clients", T, since=mark)
    assert c.state["relays"][0]["on"] is True


def test_burst_from_one_client_reaches_everybody(node, clients):
    # Many commands in one TCP segment: every reply and broadcast must arrive, and nobody is
    # closed as "too slow" just because its writer had not had its turn yet.
    n = node(limits={"max_rate": 1000})
    a, b, c = clients(n, 3)
    burst = [json.dumps({"type": "say", "text": "burst %d" % i}) for i in range(15)]
    a.ws.socket.sendall(b"".join(wire.frame(0x1, m) for m in burst))
    for cl in (a, b, c):
        assert [cl.recv()["text"] for _ in burst] == ["burst %d" % i for i in range(15)]
    assert not n.matching("too slow")
    bad = [wire.frame(0x1, b'{"type":"fly"}') for _ in range(12)]
    a.ws.socket.sendall(b"".join(bad))
    assert [a.recv()["code"] for _ in bad] == ["unknown_type"] * 12
    b.assert_quiet(0.3)
    assert not n.matching("too slow")



# The unix port cannot take a command-line argument of 256 bytes or more: long paths to the
# config and state must still start the node (the simulator passes options in the environment).
def test_long_paths_start_the_node(node, tmp_path):
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    n = node(workdir=str(deep))
    assert len(n.state_dir) > 256
    assert [r["name"] for r in nh.get_state(n.port)["relays"]] == ["Light", "Fan"]
