# Tests for device-to-device links without sockets: the client side of the WebSocket
# handshake (firmware/wsclient.py: parse_url, new_key, client_request, response_error), the
# "links" section of config.json (firmware/config.py), and the rules of firmware/links.py
# (resync, following the peer, what goes to the peer, the loop guards) against a fake node.
# Portable: plain functions and asserts, run by pytest on CPython and by host_tests/mp_run.py
# on the MicroPython unix port.
import binascii
import json

from firmware import links
from firmware import retry
from firmware import websocket as ws
from firmware import wsclient
from firmware.config import validate
from firmware.http import parse_head
from firmware.node import Listener, Node
from firmware.relays import LINK, RelayBank
from host_tests.portable.fakes import FakeClock, FakePins, check_field

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ---------------------------------------------------------------- client handshake


def test_new_key_is_base64_of_16_random_bytes():
    keys = [wsclient.new_key() for _ in range(8)]
    for k in keys:
        assert ws.valid_key(k), k
        assert len(binascii.a2b_base64(k)) == 16
    assert len(set(keys)) == 8


def test_client_request_bytes():
    req, key = wsclient.client_request("node-b.local:8080", "/ws?token=abc", RFC_KEY)
    assert key == RFC_KEY
    assert req == (
        b"GET /ws?token=abc HTTP/1.1\r\nHost: node-b.local:8080\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def test_client_request_passes_the_servers_own_checks():
    req, key = wsclient.client_request("10.0.0.2", "/ws", extra=(("Origin", "http://10.0.0.1"),))
    assert ws.valid_key(key)
    r = parse_head(req, 24, None, None)
    assert ws.handshake_error(r.method, r.version, r.headers) is None
    assert r.path == "/ws" and r.header("sec-websocket-key", "") == key and r.header("origin", "") == "http://10.0.0.1"


def test_a_fresh_key_each_request():
    assert wsclient.client_request("h", "/ws")[1] != wsclient.client_request("h", "/ws")[1]


def test_response_error_accepts_the_servers_101():
    assert ws.handshake_response(RFC_KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() + b"\r\n\r\n"
    )
    assert wsclient.response_error(ws.handshake_response(RFC_KEY), RFC_KEY) is None
    key = wsclient.new_key()
    assert wsclient.response_error(ws.handshake_response(key), key) is None


def head(*lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_response_error_header_names_and_tokens_any_case():
    h = head("HTTP/1.1 101 Whatever", "UPGRADE: WebSocket", "connection: keep-alive, Upgrade",
             "sec-websocket-accept:  " + RFC_ACCEPT + " ", "Server: x")
    assert wsclient.response_error(h, RFC_KEY) is None


def test_response_error_statuses():
    err = wsclient.response_error(head("HTTP/1.1 401 Unauthorized", "WWW-Authenticate: Bearer"), RFC_KEY)
    assert err == (401, "HTTP 401 Unauthorized"), err
    assert wsclient.response_error(head("HTTP/1.1 426 Upgrade Required"), RFC_KEY)[0] == 426
    assert wsclient.response_error(head("HTTP/1.1 503 Service Unavailable"), RFC_KEY)[0] == 503
    assert wsclient.response_error(head("HTTP/1.1 200 OK", "Content-Length: 0"), RFC_KEY)[0] == 200


def test_response_error_not_http():
    for h in (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\xff\xfe\r\n\r\n",
              b"HTTP/2 101\r\n\r\n"):
        err = wsclient.response_error(h, RFC_KEY)
        assert err is not None and err[0] == 0, (h, err)


def test_response_error_101_without_the_right_headers():
    good = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: " + RFC_ACCEPT]
    for i in range(3):
        lines = good[:i] + good[i + 1 :]
        err = wsclient.response_error(head("HTTP/1.1 101 Switching Protocols", *lines), RFC_KEY)
        assert err is not None and err[0] == 101, (i, err)
    for bad in ("Upgrade: h2c", "Connection: close", "Sec-WebSocket-Accept: " + RFC_ACCEPT[:-2] + "A=",
                "Sec-WebSocket-Accept: " + RFC_ACCEPT.lower()):
        name = bad.split(":")[0]
        lines = [x for x in good if not x.startswith(name)] + [bad]
        err = wsclient.response_error(head("HTTP/1.1 101 Switching Protocols", *lines), RFC_KEY)
        assert err is not None and err[0] == 101, (bad, err)
    # The accept key of another key (a replayed or cached answer).
    other = ws.accept_key(wsclient.new_key())
    err = wsclient.response_error(head("HTTP/1.1 101 S", good[0], good[1], "Sec-WebSocket-Accept: " + other), RFC_KEY)
    assert err == (101, "wrong Sec-WebSocket-Accept"), err


def test_response_error_refuses_extensions_not_offered():
    for extra in ("Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Protocol: chat"):
        h = head("HTTP/1.1 101 S", "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Accept: " + RFC_ACCEPT, extra)
        assert wsclient.response_error(h, RFC_KEY)[0] == 101, extra


def test_parse_url():
    assert wsclient.parse_url("ws://node-b.local/ws") == ("node-b.local", 80, "/ws")
    assert wsclient.parse_url("ws://192.168.1.23:8080/ws") == ("192.168.1.23", 8080, "/ws")
    assert wsclient.parse_url("ws://node-b") == ("node-b", 80, "/ws")
    assert wsclient.parse_url("ws://127.0.0.1:9/") == ("127.0.0.1", 9, "/")
    assert wsclient.parse_url("ws://h/a/b") == ("h", 80, "/a/b")


def test_parse_url_errors():
    for url in ("wss://node-b/ws", "http://node-b/ws", "node-b/ws", "ws://", "ws://:80/ws", "ws://h:0/ws",
                "ws://h:65536/ws", "ws://h:x/ws", "ws://h:/ws", "ws://h/ws?token=1", "ws://h/ws#x",
                "ws://user@h/ws", "ws://[::1]:80/ws", "ws://h h/ws", None, 5):
        try:
            wsclient.parse_url(url)
        except ValueError as e:
            assert str(e), url
            continue
        assert False, "no error for %r" % (url,)


def test_client_connection_masks_and_reads_unmasked():
    c = ws.Connection(4096, True)
    c.send_text("hi")
    out = c.data_to_send()
    assert out[0] == 0x81 and out[1] == 0x80 | 2 and len(out) == 2 + 4 + 2
    server = ws.Connection(4096, False)
    server.receive_data(out, False)
    assert server.take_events() == [(ws.OP_TEXT, "hi")]
    c.receive_data(ws.encode_frame(ws.OP_PING, b"p", True, None), False)
    assert c.take_events() == [(ws.OP_PING, b"p")]
    server.receive_data(c.data_to_send(), False)  # the automatic pong, masked
    assert server.take_events() == [(ws.OP_PONG, b"p")]
    c.receive_data(ws.encode_frame(ws.OP_TEXT, b"x", True, b"abcd"), False)  # a masked server frame
    assert c.state == ws.CLOSED and c.close_code == ws.CLOSE_PROTOCOL_ERROR


def test_quote():
    assert links.quote("abc-._~XYZ019") == "abc-._~XYZ019"
    assert links.quote("a b&c=d/é%") == "a%20b%26c%3Dd%2F%C3%A9%25"


def test_jitter_stays_within_a_quarter():
    for _ in range(50):
        assert 750 <= retry.jitter(1000) <= 1250


def test_backoff_doubles_up_to_its_cap_and_resets():
    b = retry.Backoff(500, 3000)
    waits = [b.next() for _ in range(6)]
    for w, base in zip(waits, (500, 1000, 2000, 3000, 3000, 3000)):
        assert base * 3 // 4 <= w <= base * 5 // 4, waits
    b.reset()
    assert 375 <= b.next() <= 625


# ---------------------------------------------------------------- config


def base(link_list):
    return {"name": "A", "relays": [{"name": "Light", "pin": 26}, {"name": "Button", "pin": 27}], "links": link_list}


def link(**kw):
    d = {"url": "ws://node-b.local/ws", "rules": [{"mirror": {"local": "Light", "remote": "Light"}}]}
    d.update(kw)
    return d


def test_config_without_links():
    assert validate({"relays": [{"name": "Light", "pin": 26}]})["links"] == []


def test_config_links_defaults_and_forms():
    rules = [
        {"mirror": {"local": "light", "remote": "Lamp"}},
        {"mirror": {"local": "Button", "remote": "Light", "direction": "to_remote"}},
        {"trigger": {"local": "BUTTON", "remote": "Bell", "action": "pulse", "ms": 500}},
        {"trigger": {"local": "Button", "on": "change", "remote": "Fan", "action": "toggle"}},
        {"trigger": {"local": "Button", "on": False, "remote": "Fan", "action": "set_off"}},
    ]
    cfg = validate(base([link(rules=rules, token="s3cret"), {"url": "ws://10.0.0.9:8080", "rules": rules[:1],
                                                             "timeout_ms": 1000, "ping_ms": 2000}]))
    a, b = cfg["links"]
    assert a["url"] == "ws://node-b.local/ws" and a["token"] == "s3cret"
    assert a["timeout_ms"] == 5000 and a["ping_ms"] == 15000
    assert b["token"] == "" and b["timeout_ms"] == 1000 and b["ping_ms"] == 2000
    assert a["rules"] == [
        {"kind": "mirror", "local": "Light", "remote": "Lamp", "direction": "both"},
        {"kind": "mirror", "local": "Button", "remote": "Light", "direction": "to_remote"},
        {"kind": "trigger", "local": "Button", "remote": "Bell", "on": True, "action": "pulse", "ms": 500},
        {"kind": "trigger", "local": "Button", "remote": "Fan", "on": "change", "action": "toggle"},
        {"kind": "trigger", "local": "Button", "remote": "Fan", "on": False, "action": "set_off"},
    ], a["rules"]


def test_config_link_errors_name_the_field():
    check_field(base({}), "links")
    check_field(base([link()] * 5), "links")
    check_field(base(["ws://x/ws"]), "links[0]")
    check_field(base([link(), link(colour="red")]), "links[1].colour")
    check_field(base([{"rules": link()["rules"]}]), "links[0].url")
    assert "wss" in check_field(base([link(url="wss://node-b/ws")]), "links[0].url")
    check_field(base([link(url="ws://node-b:99999/ws")]), "links[0].url")
    check_field(base([link(url="ws://node-b/ws?token=x")]), "links[0].url")
    check_field(base([link(token=5)]), "links[0].token")
    check_field(base([link(token="x" * 129)]), "links[0].token")
    check_field(base([link(timeout_ms=0)]), "links[0].timeout_ms")
    check_field(base([link(ping_ms=True)]), "links[0].ping_ms")
    check_field(base([link(rules=[])]), "links[0].rules")
    check_field(base([link(rules=None)]), "links[0].rules")
    check_field(base([link(rules=[link()["rules"][0]] * 9)]), "links[0].rules")


def rule_error(rule, field):
    return check_field(base([link(rules=[{"mirror": {"local": "Light", "remote": "Light"}}, rule])]),
                       "links[0].rules[1]" + field)


def test_config_rule_errors_name_the_field():
    rule_error("mirror", "")
    rule_error({}, "")
    rule_error({"copy": {}}, "")
    rule_error({"mirror": {"local": "Light", "remote": "Light"}, "trigger": {}}, "")
    rule_error({"mirror": ["Light"]}, ".mirror")
    assert "Garage" in rule_error({"mirror": {"local": "Garage", "remote": "Light"}}, ".mirror.local")
    rule_error({"mirror": {"remote": "Light"}}, ".mirror.local")
    rule_error({"mirror": {"local": "Light"}}, ".mirror.remote")
    rule_error({"mirror": {"local": "Light", "remote": ""}}, ".mirror.remote")
    rule_error({"mirror": {"local": "Light", "remote": "Light", "direction": "up"}}, ".mirror.direction")
    rule_error({"mirror": {"local": "Light", "remote": "Light", "on": True}}, ".mirror.on")
    t = {"local": "Button", "remote": "Bell", "action": "toggle"}

    def trig(**kw):
        d = dict(t)
        d.update(kw)
        return {"trigger": d}

    assert "Doorbell" in rule_error(trig(local="Doorbell"), ".trigger.local")
    rule_error(trig(on="yes"), ".trigger.on")
    rule_error(trig(on=1), ".trigger.on")
    rule_error(trig(action="ring"), ".trigger.action")
    rule_error({"trigger": {"local": "Button", "remote": "Bell"}}, ".trigger.action")
    rule_error(trig(action="pulse"), ".trigger.ms")
    rule_error(trig(action="pulse", ms=0), ".trigger.ms")
    rule_error(trig(ms=500), ".trigger.ms")
    rule_error(trig(direction="both"), ".trigger.direction")


# ---------------------------------------------------------------- link rules, no sockets


class FakeWriter:
    out_buf = b""  # compat.pending(): nothing waits

    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += data


# Records what the node hands its listeners.
class Recorder(Listener):
    def __init__(self):
        self.published = []  # (relay name, on, cause, origin, hops, via)
        self.messages = []

    def changed(self, changes, origin, hops, via):
        for r, cause in changes:
            self.published.append((r.name, r.on, cause, origin, hops, via))

    def message(self, text):
        self.messages.append(text)


# A real node (no server, no timer task) with its links attached and a recording listener;
# publish() is the node's own.
class FakeNode:
    def __init__(self, name="A", rules=(), spec_extra=None):
        specs = [{"name": n, "pin": p} for n, p in (("Light", 26), ("Fan", 27), ("Button", 25))]
        self.bank = RelayBank(specs, FakePins().make, FakeClock(0))
        self.lines = []
        self.node = Node({"name": name, "limits": {"save_delay_ms": 1000}}, self.bank, None, self.lines.append)
        self.rec = self.node.listen(Recorder())
        self.published = self.rec.published
        spec = {"url": "ws://127.0.0.1:9/ws", "token": "", "timeout_ms": 1000, "ping_ms": 5000, "rules": list(rules)}
        spec.update(spec_extra or {})
        self.link = links.attach(self.node, [spec]).links[0]
        self.publish = self.node.publish

    # The link as if connected; sent() decodes what it writes.
    def connect(self):
        self.link.conn = ws.Connection(4096, True)
        self.link.writer = self.writer = FakeWriter()
        self.server = ws.Connection(4096, False)

    def sent(self):
        self.server.receive_data(self.writer.data, False)
        self.writer.data = b""
        return [json.loads(ev[1]) for ev in self.server.take_events()]

    def peer_says(self, msg):
        self.link._receive(self.link.conn, ws.encode_frame(ws.OP_TEXT, json.dumps(msg), True, None))

    def relay(self, name):
        return self.bank.find(name)


def mirror(local, remote, direction="both"):
    return {"kind": "mirror", "local": local, "remote": remote, "direction": direction}


def trigger(local, remote, action, on=True, ms=0):
    return {"kind": "trigger", "local": local, "remote": remote, "on": on, "action": action, "ms": ms}


def state(node="B", light=False, fan=False, names=("Light", "Fan")):
    rs = [{"id": i, "name": n, "on": (light, fan, False)[i]} for i, n in enumerate(names)]
    return {"type": "state", "protocol": 1, "node": node, "version": "0.1.0", "relays": rs}


def cmd(kind, relay, origin, hops, **kw):
    d = {"type": kind, "relay": relay, "origin": origin, "hops": hops}
    d.update(kw)
    return d


def test_resync_follows_the_peer_and_pushes_to_it():
    n = FakeNode(rules=[mirror("Light", "Light"), mirror("Fan", "Fan", "from_remote"),
                        mirror("Button", "Light", "to_remote")])
    n.connect()
    n.relay("Button").on = True  # as if set while the link was down
    n.peer_says(state(light=True, fan=True))
    link = n.link
    assert link.up and link.peer == "B" and link.error == ""
    # local follows the peer for both and from_remote; the changes say where they came from
    assert n.published == [("Light", True, LINK, "B", 1, link), ("Fan", True, LINK, "B", 1, link)]
    # to_remote pushes our state; nothing of what the follows changed is sent back
    assert n.sent() == [cmd("set", "Light", "A", 1, on=True)]
    assert [x for x in n.lines if "up, peer B" in x]
    st = json.loads(n.rec.messages[-1])
    assert st["type"] == "links" and st["links"][0]["up"] is True and st["links"][0]["peer"] == "B"


def test_resync_with_a_missing_remote_relay_reports_it():
    n = FakeNode(rules=[mirror("Light", "Lamp"), mirror("Fan", "Fan", "to_remote")])
    n.connect()
    n.peer_says(state())
    assert n.link.up
    assert n.link.error == "peer B has no relay Lamp", n.link.error
    assert [x for x in n.lines if "no relay Lamp" in x]
    assert n.link.status()["error"] == n.link.error
    assert n.sent() == [cmd("set", "Fan", "A", 1, on=False)]
    # the broken rule stays quiet, the others work
    n.publish(n.bank.set(n.relay("Light"), True))
    n.publish(n.bank.set(n.relay("Fan"), True))
    assert n.sent() == [cmd("set", "Fan", "A", 1, on=True)]


def test_local_changes_go_to_the_peer_by_the_rules():
    n = FakeNode(rules=[mirror("Light", "Light"), mirror("Fan", "Fan", "from_remote"),
                        trigger("Button", "Bell", "pulse", True, 500), trigger("Button", "Fan", "toggle", "change"),
                        trigger("Button", "Light", "set_off", False)])
    n.connect()
    n.peer_says(state(names=("Light", "Fan", "Bell")))
    assert n.sent() == []
    n.publish(n.bank.set(n.relay("Light"), True))
    n.publish(n.bank.set(n.relay("Fan"), True))  # from_remote: not sent
    assert n.sent() == [cmd("set", "Light", "A", 1, on=True)]
    n.publish(n.bank.set(n.relay("Button"), True))
    assert n.sent() == [cmd("pulse", "Bell", "A", 1, ms=500), cmd("toggle", "Fan", "A", 1)]
    n.publish(n.bank.set(n.relay("Button"), False))
    assert n.sent() == [cmd("toggle", "Fan", "A", 1), cmd("set", "Light", "A", 1, on=False)]
    # a change that came from elsewhere keeps its origin and counts the hop
    n.publish(n.bank.set(n.relay("Light"), False, LINK), "C", 2)
    assert n.sent() == [cmd("set", "Light", "C", 3, on=False)]


def test_peer_changes_are_followed_and_never_sent_back():
    n = FakeNode(rules=[mirror("Light", "Light"), mirror("Fan", "Fan", "to_remote")])
    n.connect()
    n.peer_says(state())
    n.sent()
    n.peer_says({"type": "relay", "id": 0, "name": "light", "on": True, "cause": "client"})
    assert n.published == [("Light", True, LINK, "B", 1, n.link)]
    n.peer_says({"type": "relay", "id": 1, "name": "Fan", "on": True, "cause": "client"})  # to_remote only
    assert not n.relay("Fan").on
    assert n.sent() == []  # the followed change does not go back to B
    # a change that began at C reached us through B: followed, with C as its origin
    n.peer_says({"type": "relay", "id": 0, "name": "Light", "on": False, "cause": "link", "origin": "C", "hops": 2})
    assert n.published[-1] == ("Light", False, LINK, "C", 3, n.link)
    assert n.sent() == []


def test_own_changes_coming_back_are_ignored():
    n = FakeNode(rules=[mirror("Light", "Light")])
    n.connect()
    n.peer_says(state())
    n.peer_says({"type": "relay", "id": 0, "name": "Light", "on": True, "cause": "link", "origin": "A", "hops": 1})
    assert n.published == [] and not n.relay("Light").on


def test_changes_stop_after_max_hops():
    n = FakeNode(rules=[mirror("Light", "Light")])
    n.connect()
    n.peer_says(state())
    n.peer_says({"type": "relay", "id": 0, "name": "Light", "on": True, "cause": "link", "origin": "C", "hops": 8})
    assert n.published == []
    n.publish(n.bank.set(n.relay("Light"), True, LINK), "C", 8)
    assert n.sent() == []
    n.publish(n.bank.set(n.relay("Light"), False, LINK), "C", 7)
    assert n.sent() == [cmd("set", "Light", "C", 8, on=False)]


def test_changes_that_began_at_the_peer_are_not_sent_back():
    # B's own link made a change here (through our server, origin B): not sent to B again
    n = FakeNode(rules=[mirror("Light", "Light")])
    n.connect()
    n.peer_says(state())
    n.publish(n.bank.set(n.relay("Light"), True, LINK), "B", 1)
    assert n.sent() == []


def test_nothing_is_queued_while_down():
    n = FakeNode(rules=[mirror("Light", "Light", "to_remote")])
    n.publish(n.bank.set(n.relay("Light"), True))
    n.connect()
    n.publish(n.bank.set(n.relay("Light"), False))  # connected, but no state from the peer yet
    assert n.sent() == []
    n.peer_says(state(light=True))
    assert n.sent() == [cmd("set", "Light", "A", 1, on=False)]  # resync: the latest state only


def test_peer_close_and_errors():
    n = FakeNode(rules=[mirror("Light", "Light")])
    n.connect()
    try:
        n.link._receive(n.link.conn, ws.encode_frame(ws.OP_CLOSE, ws.close_payload(1008, "bad token"), True, None))
    except links.LinkDown as e:
        assert len(e.args) == 2 and "token" in e.args[0], e.args
    else:
        assert False, "no LinkDown"
    n.connect()
    try:
        n.link._receive(n.link.conn, ws.encode_frame(ws.OP_CLOSE, ws.close_payload(4429, "too many wrong tokens, wait"), True, None))
    except links.LinkDown as e:
        assert len(e.args) == 1  # another's wrong guesses locked the peer: retry as usual
    else:
        assert False, "no LinkDown"
    n.connect()
    n.peer_says(state())
    n.peer_says({"type": "error", "code": "rate_limited", "message": "more than 20 commands a second"})
    assert n.link.error == "peer: more than 20 commands a second"
    n.peer_says({"type": "say", "text": "hello"})  # other messages are ignored
    n.link._receive(n.link.conn, b"\x81\x03{{{")  # and so is broken JSON
    try:
        n.link._receive(n.link.conn, ws.encode_frame(ws.OP_CLOSE, ws.close_payload(1001, "bye"), True, None))
    except links.LinkDown as e:
        assert len(e.args) == 1 and "1001" in e.args[0]
    else:
        assert False, "no LinkDown"
