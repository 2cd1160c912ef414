# The whole node with an "mqtt" section, as a subprocess on both runtimes, against a real
# mosquitto (the fixtures of test_mqtt_broker.py): pages follow MQTT commands (cause "mqtt"),
# MQTT follows the pages, and the broker's status reaches /api/state and every page.
import json


import pytest

from host_tests.pages import Page
from tools import harness as nh
from host_tests.test_mqtt_broker import PASSWORD, USER, Mosquitto, Watcher, make_certs, wait_for

T = 10.0


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(str(tmp_path), make_certs(str(tmp_path)))
    b.start()
    yield b
    b.stop()


def mqtt_config(port, **kw):
    m = {"host": "127.0.0.1", "port": port, "user": USER, "password": PASSWORD, "keepalive_s": 5}
    m.update(kw)
    return m


# MicroPython here runs the firmware's .mpy files from the filesystem on the 64-bit port, which
# copies their bytecode into the heap: the MQTT modules' code alone takes about 16 KB of it
# (frozen on a board, none). The board-faithful figure is make bench's, on the 32-bit build.
MQTT_HEAP = "192K"


def mqtt_status(n):
    return nh.get_state(n.port).get("mqtt")


def test_pages_follow_mqtt_and_mqtt_follows_pages(broker, node):
    n = node(mqtt=mqtt_config(broker.port), heapsize=MQTT_HEAP)
    st = wait_for(lambda: (lambda s: s and s["up"] and s)(mqtt_status(n)), 15, "mqtt up in /api/state")
    assert st["error"] == "" and st["since"] >= 0
    w = Watcher(broker.port)
    w.wait("relaynode/testnode/light/state", b"OFF")
    disc = "homeassistant/switch/testnode/light/config"
    wait_for(lambda: w.get(disc) is not None, 10, "the discovery config")  # its own topic: any order
    d = json.loads(w.get(disc))
    assert d["device"]["configuration_url"].startswith("http://")
    p1, p2 = Page(n), Page(n)
    assert p1.state["mqtt"]["up"] is True
    w.publish("relaynode/testnode/light/set", b"ON")
    for p in (p1, p2):
        m = p.next("relay")
        assert (m["name"], m["on"], m["cause"]) == ("Light", True, "mqtt")
    w.wait("relaynode/testnode/light/state", b"ON")
    p1.send({"type": "toggle", "relay": "Fan"})
    w.wait("relaynode/testnode/fan/state", b"ON")
    assert p2.next("relay")["cause"] == "client"
    # the node never publishes on a set topic: only the test's own command is there
    assert [t for t, _, _ in w.seen if t.endswith("/set")] == ["relaynode/testnode/light/set"]
    w.close()


def test_broker_status_reaches_every_page(broker, node):
    n = node(mqtt=mqtt_config(broker.port), heapsize=MQTT_HEAP)
    wait_for(lambda: (lambda s: s and s["up"])(mqtt_status(n)), 15, "mqtt up")
    p = Page(n)
    broker.stop()
    m = p.next("mqtt")
    assert m["mqtt"]["up"] is False and m["mqtt"]["error"]
    p.send({"type": "toggle", "relay": "Light"})  # the page and relays do not wait for MQTT
    assert p.next("relay", 2)["on"] is True
    broker.start()
    m = p.next("mqtt", 20)
    assert m["mqtt"] == {"up": True, "error": "", "since": m["mqtt"]["since"]}
    w = Watcher(broker.port)
    w.wait("relaynode/testnode/light/state", b"ON")
    w.close()


def test_no_mqtt_section_no_mqtt_status(node):
    n = node()
    assert "mqtt" not in nh.get_state(n.port)
    assert "mqtt" not in Page(n).state
