# Tests for firmware/mqttnode.py without a broker: set payloads as commands, the discovery
# config, and the order and content of what the writer sends (nothing is queued per change:
# states are due bits, sent once each with the relay's state at sending time). Portable:
# run by pytest on CPython and by host_tests/mp_run.py on the MicroPython unix port.
import json

from firmware import VERSION, mqtt, mqttnode
from firmware.compat import ticks_ms
from firmware.relays import RelayBank
from host_tests.portable.fakes import FakePins, TempDir


class Node:
    name = "Node 1"
    url = "http://10.0.0.5/"
    state_dir = None

    def __init__(self, names=("Light", "Fan")):
        self.bank = RelayBank([{"name": n, "pin": 20 + i} for i, n in enumerate(names)], FakePins().make, clock=ticks_ms)
        self.listeners = []
        self.lines = []

    def listen(self, listener):
        self.listeners.append(listener)

    def log(self, text):
        self.lines.append(text)


def spec(**kw):
    s = {"host": "b", "port": 1883, "user": "", "password": "", "client_id": "c", "topic": "rn/n1",
         "discovery_prefix": "ha", "keepalive_s": 30, "tls": False, "ca": None}
    s.update(kw)
    return s


# What the writer would send now, decoded: [(topic, payload, retain)].
def drain(m):
    out = []
    while True:
        pkt = m._next()
        if pkt is None:
            return out
        p = mqtt.Parser(4096)
        p.receive_data(b"\x20\x02\x00\x00" + pkt)
        evs = p.take_events()
        assert p.error is None, p.error
        out += [(e[1], e[2], e[4]) for e in evs[1:]]


def test_command_words_any_case():
    assert mqttnode.command(b"ON", 3) == {"type": "set", "relay": 3, "on": True}
    assert mqttnode.command(b" off\n", 3) == {"type": "set", "relay": 3, "on": False}
    assert mqttnode.command(b"toggle", 0) == {"type": "toggle", "relay": 0}
    assert mqttnode.command(b"ToGgLe", 1) == {"type": "toggle", "relay": 1}


def test_command_json_with_the_relay_implied():
    assert mqttnode.command(b'{"type":"pulse","ms":500}', 1) == {"type": "pulse", "relay": 1, "ms": 500}
    assert mqttnode.command(b'{"type":"set","on":false}', 0) == {"type": "set", "relay": 0, "on": False}
    # another relay, origin and hops are not taken from the message
    cmd = mqttnode.command(b'{"type":"toggle","relay":"Fan","origin":"x","hops":3}', 0)
    assert cmd == {"type": "toggle", "relay": 0}


def test_command_anything_else_is_none():
    for p in (b"", b"1", b"true", b"on please", b"ONN", b"[1]", b"{", b'{"type":"say","text":"hi"}',
              b'{"type":"get"}', b'{"type":"set","on":1}', b'{"type":"pulse","ms":0}', b'{"on":true}',
              b"\xff\xfe", b"[" * 200):
        assert mqttnode.command(p, 0) is None, p


def test_attach_registers_the_listener():
    n = Node()
    m = mqttnode.attach(n, spec())
    assert n.listeners == [m] and m.key == "mqtt"
    st = m.status()
    assert st["up"] is False and st["error"] == "" and st["since"] >= 0


def test_discovery_config_payload():
    n = Node(("Light", "Hall Light 2"))
    m = mqttnode.Mqtt(n, spec())
    d = json.loads(mqttnode.config_payload(m, 1))
    assert d == {
        "name": "Hall Light 2",
        "unique_id": "relaynode_node_1_hall_light_2",
        "command_topic": "rn/n1/hall_light_2/set",
        "state_topic": "rn/n1/hall_light_2/state",
        "availability_topic": "rn/n1/status",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device": {
            "identifiers": ["relaynode_node_1"],
            "name": "Node 1",
            "model": "relaynode",
            "manufacturer": "relaynode",
            "sw_version": VERSION,
            "configuration_url": "http://10.0.0.5/",
        },
        "origin": {"name": "relaynode", "sw_version": VERSION},
    }
    assert mqttnode.config_topic(m.prefix, m.nslug, "hall_light_2") == "ha/switch/node_1/hall_light_2/config"
    n.url = None
    assert "configuration_url" not in json.loads(mqttnode.config_payload(m, 0))["device"]


def test_writer_order_at_connect_and_states_are_last_writer_wins():
    with TempDir() as d:
        n = Node(("Light", "Fan", "Pump"))
        n.state_dir = d.path
        d.write("mqtt.json", '["rn/n1", "ha", "node_1", "light", "old_one", "fan", "pump"]')
        m = mqttnode.Mqtt(n, spec())
        # what _session sets up once the broker accepted us
        m._out = bytearray(mqtt.publish("rn/n1/status", b"online", 0, True))
        m._disc = m._dirty = m.all
        m._stale = mqttnode.stale_topics(m, m.saved)
        m.writer = object()
        n.bank.set(n.bank.relays[2], True)
        sent = drain(m)
        assert [t for t, _, _ in sent] == [
            "rn/n1/status",
            "ha/switch/node_1/light/config",
            "ha/switch/node_1/fan/config",
            "ha/switch/node_1/pump/config",
            "ha/switch/node_1/old_one/config",
            "rn/n1/old_one/state",
            "rn/n1/light/state",
            "rn/n1/fan/state",
            "rn/n1/pump/state",
        ]
        assert all(r for _, _, r in sent)
        assert [p for t, p, _ in sent if "old_one" in t] == [b"", b""]
        assert [p for t, p, _ in sent if t.endswith("/state") and "old" not in t] == [b"OFF", b"OFF", b"ON"]
        assert json.loads(d.read("mqtt.json")) == ["rn/n1", "ha", "node_1", "light", "fan", "pump"]
        # three changes of one relay while the writer is busy: one state, the latest
        light = n.bank.relays[0]
        for on in (True, False, True):
            m.changed(n.bank.set(light, on))
        assert drain(m) == [("rn/n1/light/state", b"ON", 1)]
        assert drain(m) == []


def test_stale_topics_after_renames():
    m = mqttnode.Mqtt(Node(("Light", "Fan")), spec())
    assert mqttnode.stale_topics(m, m.saved) == []  # nothing announced before
    m.saved = ["rn/n1", "ha", "node_1", "light", "fan"]
    assert mqttnode.stale_topics(m, m.saved) == []
    m.saved = ["rn/n1", "ha", "node_1", "light", "fan", "pump"]
    assert mqttnode.stale_topics(m, m.saved) == ["ha/switch/node_1/pump/config", "rn/n1/pump/state"]
    m.saved = ["rn/old", "ha", "node_1", "light"]  # topic renamed: the old states and status go
    assert mqttnode.stale_topics(m, m.saved) == ["rn/old/light/state", "rn/old/status"]
    m.saved = ["rn/n1", "homeassistant", "old_node", "light"]  # prefix and node name changed
    assert mqttnode.stale_topics(m, m.saved) == ["homeassistant/switch/old_node/light/config"]
    m.saved = ["junk"]
    assert mqttnode.stale_topics(m, m.saved) == []


def test_commands_are_rate_limited():
    import time

    n = Node()
    applied = []
    n.apply = lambda cmd, cause, origin=None, hops=0, via=None: applied.append(cmd)
    m = mqttnode.Mqtt(n, spec())
    for _ in range(30):
        mqttnode._set_topic(m, "rn/n1/light/set", b"TOGGLE", 0)
    assert len(applied) == 20  # a burst of 20
    assert len([x for x in n.lines if "more than 20 commands a second" in x]) == 1
    time.sleep(0.11)  # one more each 50 ms
    for _ in range(5):
        mqttnode._set_topic(m, "rn/n1/light/set", b"TOGGLE", 0)
    assert 22 <= len(applied) <= 24, len(applied)


def test_small_packets_are_bounded():
    import asyncio

    async def idle():
        await asyncio.sleep(10)

    async def main():
        m = mqttnode.Mqtt(Node(), spec())
        m._out = bytearray()
        m.session = asyncio.create_task(idle())
        for i in range(128):  # a burst of QoS 1 commands: 128 PUBACKs of 4 bytes fit
            m._send(mqtt.puback(i + 1))
        assert len(m._out) == 512 and m.why is None
        assert m._next() == b"".join(mqtt.puback(i + 1) for i in range(128))  # one write for all
        assert m._out == b""
        for i in range(128):
            m._send(mqtt.puback(i + 1))
        m._send(mqtt.PING)  # more: the broker is not reading; the session is ended
        assert len(m._out) == 512 and m.why == "the broker does not read"
        try:
            await m.session
        except asyncio.CancelledError:
            return True

    assert asyncio.run(main())
