# Integration: nodes that drive each other over WebSocket links (firmware/links.py). Every
# node is a subprocess on 127.0.0.1 (CPython or the MicroPython unix port with a 160K heap),
# its config's "links" pointing at the other nodes' ports; browsers are `websockets` clients.
# Misbehaving peers are small socket servers in this file. Every wait is bounded.
import json
import time

import pytest

from firmware import websocket as ws
from tools import harness as nh
from host_tests.tcpserver import TcpServer

pytestmark = pytest.mark.slow

T = 10.0  # bound on every wait for something that should happen
SETTLE = 1.5  # seconds of quiet after which a mesh counts as settled

# The firmware's .mpy files from the filesystem on the 64-bit port keep their bytecode in the
# heap, and a node with links validates and loads more of it at boot than a plain one: 128K is
# no longer enough there. Heap figures that matter are make bench's, on the 32-bit build.
LINK_HEAP = "160K"


def url(port):
    return "ws://127.0.0.1:%d/ws" % port


def link(port, *rules, **kw):
    d = {"url": url(port), "rules": list(rules), "timeout_ms": 2000}
    d.update(kw)
    return d


def mirror(local="Light", remote="Light", direction="both"):
    return {"mirror": {"local": local, "remote": remote, "direction": direction}}


# A factory: make(name, **kw) -> a Node (not started) on a port chosen now, so other nodes'
# configs can point at it before it runs. All are stopped and removed afterwards.
@pytest.fixture
def nodes(runtime):
    made = []

    def make(name, port=None, **kw):
        kw.setdefault("relays", [{"power_on": "off"}, {"power_on": "off"}])
        n = nh.Node(runtime=runtime, heapsize=LINK_HEAP, name=name, **kw)
        n.port = port or nh.free_port()
        made.append(n)
        return n

    yield make
    for n in made:
        n.cleanup()


def start(*ns):
    for n in ns:
        try:
            n.start()
        except nh.NodeError as e:
            pytest.fail(str(e))


# make(n, count=1, token=None): count pages of node n (host_tests/pages.py), a list.
@pytest.fixture
def clients(pages):
    return lambda n, count=1, token=None: pages(n, count, query="?token=" + token if token else "")


# The relay messages each client got once the mesh has been quiet for SETTLE seconds.
def settle(*cs):
    time.sleep(SETTLE)
    return [c.relays(0.2) for c in cs]


def relay(rid, name, on, cause, origin=None, hops=None):
    m = {"type": "relay", "id": rid, "name": name, "on": on, "cause": cause}
    if origin:
        m["origin"] = origin
        m["hops"] = hops
    return m


def relays_on(n, token=None):
    if token is None:
        return {r["name"]: r["on"] for r in nh.get_state(n.port)["relays"]}
    status, _, body = nh.http_get(n.port, "/api/state", [("Authorization", "Bearer " + token)])
    assert status == 200, status
    return {r["name"]: r["on"] for r in json.loads(body)["relays"]}


def link_status(n, i=0):
    return nh.get_state(n.port)["links"][i]


# Poll n's /api/state until pred(status of link i) holds; returns that status.
def wait_link(n, pred, i=0, timeout=T):
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = link_status(n, i)
        if pred(st):
            return st
        time.sleep(0.1)
    raise AssertionError("link %d of %s never got there: %r\n%s" % (i, n.config["name"], st, n.output()))


def relay_lines(n, since=0):
    return [x for x in n.output(since).splitlines() if x.startswith("relay ")]


# ---- one link ----


def test_change_reaches_the_peer_and_all_its_clients(nodes, clients):
    b = nodes("B", auth={"token": "s3cret"})
    a = nodes("A", links=[link(b.port, mirror("Light", "Light", "to_remote"),
                               {"trigger": {"local": "Fan", "on": True, "remote": "Fan", "action": "pulse", "ms": 300}},
                               token="s3cret")])
    start(b, a)
    a.wait_for_line("up, peer B", T)
    (ca,) = clients(a)
    assert ca.state["links"] == [{"url": url(b.port), "peer": "B", "up": True, "error": "", "since": ca.state["links"][0]["since"]}]
    b1, b2 = clients(b, 2, "s3cret")
    ca.send({"type": "set", "relay": "Light", "on": True})
    assert ca.next("relay") == relay(0, "Light", True, "client")
    for c in (b1, b2):
        assert c.next("relay") == relay(0, "Light", True, "link", "A", 1)
    b.wait_for_line("GPIO26 -> 0", T)
    assert relays_on(b, "s3cret") == {"Light": True, "Fan": False}
    # trigger: A's Fan on pulses B's Fan
    t0 = time.monotonic()
    ca.send({"type": "set", "relay": "Fan", "on": True})
    for c in (b1, b2):
        assert c.next("relay") == relay(1, "Fan", True, "link", "A", 1)
    for c in (b1, b2):
        assert c.next("relay") == relay(1, "Fan", False, "timer")
    assert 0.25 <= time.monotonic() - t0 < 5
    # to_remote: B's own changes do not move A
    b1.send({"type": "set", "relay": "Light", "on": False})
    assert b1.next("relay") == relay(0, "Light", False, "client")
    assert [m for m in ca.relays(0.5) if m["name"] == "Light"] == []
    st = nh.get_state(a.port)["links"]
    assert len(st) == 1 and st[0]["up"] is True and st[0]["peer"] == "B" and st[0]["error"] == ""
    assert "links" not in nh.http_get(b.port, "/api/state", [("Authorization", "Bearer s3cret")])[2].decode()


def test_peer_restart_resyncs_without_replay(nodes, clients):
    b = nodes("B", relays=[{"power_on": "off"}, {"power_on": "on"}])
    a = nodes("A", links=[link(b.port, mirror("Light", "Light", "to_remote"), mirror("Fan", "Fan", "both"))])
    start(b, a)
    a.wait_for_line("up, peer B", T)
    a.wait_for_line("relay Fan -> on (link from B)", T)  # resync: A's Fan follows B's boot state
    (ca,) = clients(a)
    assert {r["name"]: r["on"] for r in ca.state["relays"]} == {"Light": False, "Fan": True}
    ca.send({"type": "set", "relay": "Light", "on": True})
    b.wait_for_line("relay Light -> on (link from A)", T)

    mark = a.mark()
    b.stop()
    a.wait_for_line("down (", T, since=mark)
    down = wait_link(a, lambda s: not s["up"])
    assert down["error"], down
    assert any(m["type"] == "links" and not m["links"][0]["up"] for m in ca.drain(0.3))
    # Changes while B is away: four toggles of Light (ending on), Fan off.
    for _ in range(4):
        ca.send({"type": "toggle", "relay": "Light"})
    ca.send({"type": "set", "relay": "Fan", "on": False})
    assert len(ca.relays(0.5)) == 5

    mark_a = a.mark()
    b.restart()  # Light off (power_on off), Fan on (power_on on)
    a.wait_for_line("up, peer B", T, since=mark_a)
    a.wait_for_line("relay Fan -> on (link from B)", T, since=mark_a)
    b.wait_for_line("relay Light -> on (link from A)", T)
    time.sleep(SETTLE)
    # B got the latest state once, not the four steps; A's Fan followed B's state.
    assert relay_lines(b) == ["relay Fan -> on (boot)", "relay Light -> on (link from A)"], b.output()
    assert [x for x in b.output().splitlines() if x.startswith("GPIO26")] == ["GPIO26 -> 1", "GPIO26 -> 0"]
    assert relays_on(a) == relays_on(b) == {"Light": True, "Fan": True}
    assert link_status(a)["up"] is True
    assert ca.relays(SETTLE) == [relay(1, "Fan", True, "link", "B", 1)]


# ---- loops and chains: every change settles after one message per node ----


def test_two_way_mirror_settles(nodes, clients):
    pa, pb = nh.free_port(), nh.free_port()
    a = nodes("A", pa, links=[link(pb, mirror())])
    b = nodes("B", pb, links=[link(pa, mirror())])
    start(a, b)
    a.wait_for_line("up, peer B", T)
    b.wait_for_line("up, peer A", T)
    ca, cb = clients(a)[0], clients(b)[0]
    ca.send({"type": "set", "relay": "Light", "on": True})
    assert settle(ca, cb) == [[relay(0, "Light", True, "client")], [relay(0, "Light", True, "link", "A", 1)]]
    cb.send({"type": "toggle", "relay": "Light"})
    assert settle(ca, cb) == [[relay(0, "Light", False, "link", "B", 1)], [relay(0, "Light", False, "client")]]
    # quick changes from both sides still end with both nodes agreeing
    for i in range(6):
        (ca if i % 2 else cb).send({"type": "toggle", "relay": "Light"})
        time.sleep(0.2)
    settle(ca, cb)
    assert relays_on(a) == relays_on(b) == {"Light": False, "Fan": False}
    assert len(relay_lines(a)) == len(relay_lines(b)) == 8


@pytest.mark.parametrize("shape", ["chain", "loop"])
def test_three_nodes_settle(nodes, clients, shape):
    ports = [nh.free_port() for _ in range(3)]
    names = "ABC"
    ns = []
    for i, name in enumerate(names):
        links = []
        if i < 2 or shape == "loop":  # A->B->C, and C->A for the loop
            links = [link(ports[(i + 1) % 3], mirror())]
        ns.append(nodes(name, ports[i], links=links))
    start(*ns)
    for i in range(3 if shape == "loop" else 2):
        ns[i].wait_for_line("up, peer " + names[(i + 1) % 3], T)
    cs = [clients(n)[0] for n in ns]
    for origin in range(3):
        on = origin % 2 == 0
        cs[origin].send({"type": "set", "relay": "Light", "on": on})
        for i, got in enumerate(settle(*cs)):
            if i == origin:
                assert got == [relay(0, "Light", on, "client")], (shape, origin, i, got)
            else:
                assert len(got) == 1 and got[0]["on"] is on and got[0]["origin"] == names[origin], (shape, origin, i, got)
        assert [relays_on(n)["Light"] for n in ns] == [on] * 3
    for n in ns:
        assert len(relay_lines(n)) == 3, n.output()


# ---- peers that misbehave ----


# A socket server that accepts WebSocket links and then stalls. mode "silent": never answers
# the handshake; "half": answers it, sends a state message, then never reads again (no pongs).
class StallingPeer(TcpServer):
    def __init__(self, mode):
        self.mode = mode
        super().__init__()

    def answer(self, c):
        if self.mode == "half":
            self._half(c)

    def _half(self, c):
        c.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                return
            data += chunk
        key = [x.split(":", 1)[1].strip() for x in data.decode().split("\r\n") if x.lower().startswith("sec-websocket-key:")][0]
        state = {"type": "state", "protocol": 1, "node": "half", "version": "0", "relays": [{"id": 0, "name": "Light", "on": False}]}
        c.sendall(ws.handshake_response(key) + ws.encode_frame(ws.OP_TEXT, json.dumps(state), True, None))


@pytest.fixture
def stalling():
    made = []

    def make(mode):
        p = StallingPeer(mode)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_stalled_peers_do_not_hurt_the_node(nodes, clients, stalling):
    silent, half = stalling("silent"), stalling("half")
    a = nodes("A", links=[link(silent.port, mirror("Light", "Light", "to_remote"), timeout_ms=1000),
                          link(half.port, mirror("Light", "Light", "to_remote"), timeout_ms=1000, ping_ms=500)])
    start(a)
    a.wait_for_line("up, peer half", T)
    a1, a2 = clients(a, 2)
    worst = 0.0
    for i in range(12):
        t0 = time.monotonic()
        a1.send({"type": "toggle", "relay": "Light"})
        for c in (a1, a2):
            assert c.next("relay", 2.0)["on"] is (i % 2 == 0)
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.15)
    assert worst < 0.5, worst  # the stalled links cost the browsers nothing
    st = wait_link(a, lambda s: not s["up"] and "handshake" in s["error"], 0)
    assert "timeout" in st["error"], st
    st = wait_link(a, lambda s: not s["up"] and "pong" in s["error"], 1)
    assert a.matching("pong timeout")
    deadline = time.monotonic() + T
    while len(silent.conns) < 2 and time.monotonic() < deadline:  # retried, with backoff
        time.sleep(0.1)
    assert len(silent.conns) >= 2 and len(half.conns) >= 1
    a1.send({"type": "say", "text": "still here"})
    for c in (a1, a2):
        m = c.recv()
        while m["type"] == "links":
            m = c.recv()
        assert m == {"type": "say", "text": "still here"}


def test_wrong_token_is_reported_and_not_retried_in_a_loop(nodes, clients):
    b = nodes("B", auth={"token": "right"})
    a = nodes("A", links=[link(b.port, mirror(), token="wrong")])
    start(b, a)
    line = a.wait_for_line("refused the token", T)
    assert "1008" in line, line
    st = wait_link(a, lambda s: "token" in s["error"])
    assert st["up"] is False and st["peer"] is None
    (ca,) = clients(a)
    assert "token" in ca.state["links"][0]["error"]
    time.sleep(3)
    assert len(b.matching("wrong token")) == 1, b.output()
    assert len(a.matching("down (")) == 1, a.output()
    # the node itself is fine
    ca.send({"type": "set", "relay": "Light", "on": True})
    assert ca.next("relay") == relay(0, "Light", True, "client")
