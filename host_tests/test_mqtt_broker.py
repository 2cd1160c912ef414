# firmware/mqttnode.py against a real broker (Debian's mosquitto, started here on free
# loopback ports with a password file, plus a TLS listener with a CA and certificate made by
# openssl) and against fake brokers that misbehave, on both runtimes. The listener runs in
# host_tests/mqtt_node.py (a stand-in node with fake pins and a control port) under CPython
# or the MicroPython unix port; an independent client (paho-mqtt) checks what reaches the
# broker. A missing mosquitto, openssl or MicroPython is a failure, not a skip.
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest

from tools.harness import find_micropython, free_port
from host_tests.tcpserver import TcpServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPT = os.path.join(HERE, "mqtt_node.py")
USER, PASSWORD = "node", "s3cret"
TESTER, TESTER_PW = "tester", "pw"
RELAYS = ["Light", "Fan", "Hall Light 2"]
SLUGS = ["light", "fan", "hall_light_2"]


def need(cmd):
    path = shutil.which(cmd) or (os.path.exists("/usr/sbin/" + cmd) and "/usr/sbin/" + cmd)
    if not path:
        pytest.fail("%s is not installed (Debian: apt-get install mosquitto mosquitto-clients openssl)" % cmd)
    return path


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + (what() if callable(what) else what))
        time.sleep(0.05)


# ---------------------------------------------------------------- the broker


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


# Two CAs and a certificate for localhost and 127.0.0.1 signed by the first, in folder d.
def make_certs(d):
    ssl = need("openssl")

    def run(*args):
        subprocess.run([ssl] + list(args), cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=relaynode test " + ca)
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return d


class Mosquitto:
    def __init__(self, folder, certs):
        self.dir = folder
        self.port = free_port()
        self.tls_port = free_port()
        self.proc = None
        pw = os.path.join(folder, "passwd")
        open(pw, "w").close()
        for u, p in ((USER, PASSWORD), (TESTER, TESTER_PW)):
            subprocess.run([need("mosquitto_passwd"), "-b", pw, u, p], check=True, capture_output=True, timeout=20)
        self.conf = os.path.join(folder, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(
                # run as root, mosquitto would switch to its own user, who cannot read the test's folder
                "user %s\npersistence false\nallow_anonymous false\npassword_file %s\nlog_type all\n"
                "listener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\ncafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server.key\n"
                % (getpass.getuser(), pw, self.port, self.tls_port, certs, certs, certs)
            )
        self.log = os.path.join(folder, "mosquitto.log")

    def start(self):
        self.out = open(self.log, "a")
        self.proc = subprocess.Popen([need("mosquitto"), "-c", self.conf], stdout=self.out, stderr=subprocess.STDOUT)
        wait_for(self._listening, 10, "mosquitto to listen")

    def _listening(self):
        assert self.proc.poll() is None, open(self.log).read()
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self.out.close()

    def connections(self):
        with open(self.log) as f:
            return f.read().count("New connection from")


@pytest.fixture
def broker(tmp_path, certs):
    b = Mosquitto(str(tmp_path), certs)
    b.start()
    yield b
    b.stop()


# An independent client that records everything published on the broker: msgs[topic] is the
# last (payload, retain) seen, seen the whole list of (topic, payload, retain).
class Watcher:
    def __init__(self, port, topic="#"):
        self.msgs = {}
        self.seen = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watcher-%d" % free_port())
        c.username_pw_set(TESTER, TESTER_PW)
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.connect("127.0.0.1", port)
        c.subscribe(topic, 1)
        c.loop_start()
        assert self.subscribed.wait(5), "watcher could not subscribe"

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.msgs[msg.topic] = (msg.payload, bool(msg.retain))
            self.seen.append((msg.topic, msg.payload, bool(msg.retain)))

    def get(self, topic):
        with self.lock:
            return self.msgs.get(topic, (None, None))[0]

    def wait(self, topic, payload, timeout=10.0):
        wait_for(lambda: self.get(topic) == payload, timeout, "%s = %r (have %r)" % (topic, payload, self.get(topic)))

    def publish(self, topic, payload, retain=False):
        self.c.publish(topic, payload, 1, retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


# ---------------------------------------------------------------- the node


def spec(port, **kw):
    s = {
        "host": "127.0.0.1",
        "port": port,
        "user": USER,
        "password": PASSWORD,
        "client_id": "n1",
        "topic": "relaynode/n1",
        "discovery_prefix": "homeassistant",
        "keepalive_s": 5,
        "tls": False,
        "ca": None,
    }
    s.update(kw)
    return s


class NodeProc:
    def __init__(self, runtime, mqtt_spec, state_dir, relays=RELAYS, timeout_ms=None):
        if runtime == "micropython":
            cmd = [find_micropython(), "-X", "heapsize=128K", SCRIPT]
        else:
            cmd = [sys.executable, SCRIPT]
        self.ctrl = free_port()
        env = dict(os.environ)
        env.update(
            MQTT_SPEC=json.dumps(mqtt_spec),
            NODE_NAME="n1",
            RELAYS=json.dumps(relays),
            STATE_DIR=state_dir,
            NODE_URL="http://192.168.1.50/",
            CTRL_PORT=str(self.ctrl),
            TIMEOUT_MS=str(timeout_ms or ""),
        )
        self.lines = []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.proc.stdout.readline()
        assert first.strip() == "READY", first + self.proc.stdout.read()

    # One control request; its JSON answer. Asserts the node answered within limit seconds.
    def cmd(self, line, limit=2.0):
        t = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.ctrl), 5) as s:
            s.settimeout(5)
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                assert chunk, "node closed the control connection"
                buf += chunk
        took = time.monotonic() - t
        assert took < limit, "node took %.2f s to answer %r" % (took, line)
        return json.loads(buf)

    def status(self):
        return self.cmd("status")

    def log(self):
        self.lines += self.cmd("log")
        return self.lines

    def wait_up(self, up=True, timeout=15.0):
        return wait_for(lambda: self.status()["mqtt"]["up"] == up and self.status(), timeout, "mqtt up=%s" % up)

    def wait_error(self, text, timeout=15.0):
        return wait_for(lambda: text in self.status()["mqtt"]["error"] and self.status(), timeout,
                        lambda: "error %r (status %r, log %r)" % (text, self.status(), self.log()))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("stop")
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self):
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def nodes(runtime):
    started = []

    def start(*a, **kw):
        n = NodeProc(runtime, *a, **kw)
        started.append(n)
        return n

    yield start
    for n in started:
        if n.proc.poll() is None:
            n.kill()
        n.proc.stdout.close()


def config_topic(s):
    return "homeassistant/switch/n1/%s/config" % s


def check_discovery(payload, name, s):
    d = json.loads(payload)
    assert d == {
        "name": name,
        "unique_id": "relaynode_n1_" + s,
        "command_topic": "relaynode/n1/%s/set" % s,
        "state_topic": "relaynode/n1/%s/state" % s,
        "availability_topic": "relaynode/n1/status",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device": {
            "identifiers": ["relaynode_n1"],
            "name": "n1",
            "model": "relaynode",
            "manufacturer": "relaynode",
            "sw_version": d["device"]["sw_version"],
            "configuration_url": "http://192.168.1.50/",
        },
        "origin": {"name": "relaynode", "sw_version": d["device"]["sw_version"]},
    }
    from firmware import VERSION

    assert d["device"]["sw_version"] == VERSION


# Every retained topic of the node, as a fresh subscriber gets them: what the broker held when
# it subscribed. A message the node publishes while the watcher listens comes without the retain
# flag (MQTT 3.1.1, 3.3.1.3) and is left out, also when it repeats a retained topic: the last
# message of a topic would drop that topic from the snapshot.
def retained(port):
    w = Watcher(port)
    time.sleep(0.5)
    w.close()
    with w.lock:
        return {t: p for t, p, r in w.seen if r}


def expect_all_published(port, on=(False, False, False)):
    want = {"relaynode/n1/status": b"online"}
    for s, o in zip(SLUGS, on):
        want["relaynode/n1/%s/state" % s] = b"ON" if o else b"OFF"
    got = wait_for(lambda: (lambda r: all(r.get(k) == v for k, v in want.items()) and r)(retained(port)), 15,
                   "availability, states and discovery")
    for name, s in zip(RELAYS, SLUGS):
        check_discovery(got[config_topic(s)], name, s)
    return got


# ---------------------------------------------------------------- tests with mosquitto


def test_discovery_availability_and_states_retained(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    st = n.wait_up()
    assert st["mqtt"]["error"] == "" and st["mqtt"]["since"] >= 0
    got = expect_all_published(broker.port)
    assert sorted(t for t in got if t.startswith("homeassistant/")) == sorted(config_topic(s) for s in SLUGS)
    assert json.load(open(tmp_path / "mqtt.json")) == ["relaynode/n1", "homeassistant", "n1"] + SLUGS
    # stop: "offline" at once; a node that dies: the broker sends its will, "offline" too
    w = Watcher(broker.port)
    w.wait("relaynode/n1/status", b"online")
    n.stop()
    w.wait("relaynode/n1/status", b"offline", 5)
    n2 = nodes(spec(broker.port), str(tmp_path))
    w.wait("relaynode/n1/status", b"online")
    n2.kill()
    w.wait("relaynode/n1/status", b"offline", 5)
    assert retained(broker.port)["relaynode/n1/status"] == b"offline"
    w.close()


def test_set_topic_commands_move_relays(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    n.wait_up()
    w = Watcher(broker.port)
    w.wait("relaynode/n1/light/state", b"OFF")
    steps = [
        ("light", b"ON", [True, False, False]),
        ("light", b"off", [False, False, False]),
        ("fan", b"Toggle", [False, True, False]),
        ("fan", b"TOGGLE", [False, False, False]),
        ("hall_light_2", b'{"type":"set","on":true}', [False, False, True]),
        ("hall_light_2", b'{"type":"toggle","relay":"Light"}', [False, False, False]),  # relay implied
        ("light", b' {"type": "pulse", "ms": 600000} ', [True, False, False]),
    ]
    for s, payload, on in steps:
        w.publish("relaynode/n1/%s/set" % s, payload)
        wait_for(lambda on=on: n.status()["on"] == on, 5, "%s %r -> %r" % (s, payload, on))
        for s2, o in zip(SLUGS, on):
            w.wait("relaynode/n1/%s/state" % s2, b"ON" if o else b"OFF")
    applied = n.cmd("applied")
    assert [c for _, c in applied] == ["mqtt"] * len(steps)
    assert applied[-1][0] == {"type": "pulse", "relay": 0, "ms": 600000}
    # nothing else moves anything, and each bad message is logged once
    before = n.status()["on"]
    for payload in (b"on please", b"", b'{"type":"say","text":"x"}', b'{"type":"pulse","ms":0}', b"[1]", b"\xff"):
        w.publish("relaynode/n1/fan/set", payload)
    w.publish("relaynode/n1/nosuch/set", b"ON")
    time.sleep(1.0)
    assert n.status()["on"] == before
    assert len(n.cmd("applied")) == len(steps)
    log = [line for line in n.log() if "ignored" in line]
    assert len(log) == 2, log  # fan (the first bad one only), nosuch
    assert "relaynode/n1/fan/set" in log[0] and "not ON, OFF, TOGGLE" in log[0]
    assert "nosuch" in log[1] and "no such relay" in log[1]
    # a retained command is a command when it is sent (the broker passes it on with the
    # retain flag clear), and old news when the broker replays it at the next connect
    w.publish("relaynode/n1/fan/set", b"ON", retain=True)
    wait_for(lambda: n.status()["on"][1], 5, "fan on")
    n.stop()
    n2 = nodes(spec(broker.port), str(tmp_path))
    n2.wait_up()
    wait_for(lambda: [line for line in n2.log() if "retained message" in line], 5, "the retained command ignored")
    assert n2.status()["on"] == [False, False, False] and n2.cmd("applied") == []
    w.publish("relaynode/n1/fan/set", b"", retain=True)
    # the node never published to a set topic (no echo): what is there is what the test sent
    sent = len(steps) + 6 + 1 + 2
    wait_for(lambda: len([t for t, _, _ in w.seen if t.endswith("/set")]) == sent, 5, "the test's own commands")
    time.sleep(0.5)
    assert len([t for t, _, _ in w.seen if t.endswith("/set")]) == sent
    w.close()


def test_a_burst_of_qos1_commands_and_a_flood(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    n.wait_up()
    w = Watcher(broker.port)
    w.wait("relaynode/n1/fan/state", b"OFF")
    infos = [w.c.publish("relaynode/n1/fan/set", b"TOGGLE", 1) for _ in range(19)]
    for i in infos:
        i.wait_for_publish(5)  # each one acknowledged by the broker
    wait_for(lambda: len(n.cmd("applied")) == 19, 10, "19 toggles applied")
    assert n.status()["on"] == [False, True, False]
    w.wait("relaynode/n1/fan/state", b"ON")
    # a runaway automation: 200 commands at once; the relay does not chatter (20 a second,
    # in bursts of 20), the rest are dropped with one log line, and the connection stays
    time.sleep(1.1)
    infos = [w.c.publish("relaynode/n1/light/set", b"TOGGLE", 1) for _ in range(200)]
    for i in infos:
        i.wait_for_publish(5)
    time.sleep(0.5)
    got = len(n.cmd("applied")) - 19
    assert 20 <= got < 60, got
    on = n.status()["on"][0]
    w.wait("relaynode/n1/light/state", b"ON" if on else b"OFF")
    assert len([line for line in n.log() if "more than 20 commands a second" in line]) == 1
    assert n.status()["mqtt"]["up"] and not [line for line in n.lines if "down" in line]
    w.close()


def test_changes_from_other_sources_are_published(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    n.wait_up()
    w = Watcher(broker.port)
    w.wait("relaynode/n1/fan/state", b"OFF")
    n.cmd("set 1 1")
    w.wait("relaynode/n1/fan/state", b"ON", 5)
    n.cmd("set 2 1")
    n.cmd("set 1 0")
    w.wait("relaynode/n1/hall_light_2/state", b"ON", 5)
    w.wait("relaynode/n1/fan/state", b"OFF", 5)
    assert not [t for t, _, _ in w.seen if t.endswith("/set")]  # states only, never a command
    w.close()


def test_broker_restart_brings_everything_back(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    n.wait_up()
    expect_all_published(broker.port)
    broker.stop()
    st = n.wait_up(False)
    assert st["mqtt"]["error"]
    n.cmd("set 0 1")  # changed while the broker is away
    broker.start()  # persistence false: the broker starts empty
    n.wait_up(True, 20)
    expect_all_published(broker.port, on=(True, False, False))


def test_home_assistant_restart_gets_discovery_again(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path))
    n.wait_up()
    w = Watcher(broker.port, "homeassistant/#")
    wait_for(lambda: len([t for t, _, _ in w.seen if t.endswith("/config")]) == 3, 10, "discovery")
    del w.seen[:]
    w.publish("homeassistant/status", b"offline")
    w.publish("homeassistant/status", b"online")
    wait_for(lambda: sorted(t for t, _, _ in w.seen if t.endswith("/config")) == sorted(config_topic(s) for s in SLUGS),
             10, "discovery again")
    for t, p, _ in w.seen:
        if t.endswith("/config"):
            check_discovery(p, RELAYS[SLUGS.index(t.split("/")[3])], t.split("/")[3])
    # a retained "online" (old news) at the next connect does not trigger it twice: only the
    # connect's own discovery comes
    w.close()


def test_removed_relay_has_its_topics_cleared(broker, nodes, tmp_path):
    n = nodes(spec(broker.port), str(tmp_path), relays=RELAYS + ["Old Pump"])
    n.wait_up()
    wait_for(lambda: config_topic("old_pump") in retained(broker.port), 10, "old_pump discovery")
    n.stop()
    n2 = nodes(spec(broker.port), str(tmp_path))
    n2.wait_up()
    got = wait_for(lambda: (lambda r: config_topic("old_pump") not in r and r)(retained(broker.port)), 10,
                   "old_pump cleared")
    assert "relaynode/n1/old_pump/state" not in got
    assert config_topic("light") in got
    assert json.load(open(tmp_path / "mqtt.json")) == ["relaynode/n1", "homeassistant", "n1"] + SLUGS


def test_renamed_topic_has_the_old_topics_cleared(broker, nodes, tmp_path):
    n = nodes(spec(broker.port, topic="house/old"), str(tmp_path))
    n.wait_up()
    wait_for(lambda: retained(broker.port).get("house/old/status") == b"online", 10, "house/old announced")
    n.stop()
    n2 = nodes(spec(broker.port), str(tmp_path))
    n2.wait_up()
    got = wait_for(lambda: (lambda r: not [t for t in r if t.startswith("house/")] and r)(retained(broker.port)), 10,
                   "house/old cleared")
    # the discovery topics stay (same node and relays: they now name the new topics)
    expect_all_published(broker.port)
    assert json.loads(got[config_topic("fan")])["state_topic"] == "relaynode/n1/fan/state"


def test_wrong_password_is_reported_and_backs_off(broker, nodes, tmp_path):
    n = nodes(spec(broker.port, password="wrong"), str(tmp_path))
    st = n.wait_error("broker refused: ")
    # mosquitto answers a wrong password with code 5; other brokers use 4
    assert st["mqtt"]["error"] in ("broker refused: not authorized", "broker refused: bad user name or password"), st
    assert st["mqtt"]["up"] is False
    retry = [line for line in n.log() if "retry in" in line]
    assert len(retry) == 1 and int(retry[0].split("retry in ")[1].split()[0]) >= 45000, retry
    before = broker.connections()
    for _ in range(10):  # the node answers at once meanwhile, and does not try again soon
        n.status()
        time.sleep(0.2)
    assert broker.connections() == before


def test_tls_verified_against_the_ca(broker, nodes, tmp_path, certs):
    n = nodes(spec(broker.tls_port, host="localhost", tls=True, ca=os.path.join(certs, "ca.pem")), str(tmp_path))
    n.wait_up(True, 20)
    expect_all_published(broker.port)


def test_tls_with_a_certificate_from_another_ca_fails(broker, nodes, tmp_path, certs):
    n = nodes(spec(broker.tls_port, host="localhost", tls=True, ca=os.path.join(certs, "other-ca.pem")), str(tmp_path))
    st = wait_for(lambda: (lambda s: s["mqtt"]["error"] and s)(n.status()), 20, "a TLS error")
    assert st["mqtt"]["up"] is False
    err = st["mqtt"]["error"]
    assert "CERTIFICATE_VERIFY_FAILED" in err or "TLS: The certificate is not correctly signed" in err, err
    time.sleep(1)
    assert n.status()["mqtt"]["up"] is False
    assert "relaynode/n1/status" not in retained(broker.port)


def test_tls_missing_ca_file_is_reported(broker, nodes, tmp_path):
    n = nodes(spec(broker.tls_port, host="localhost", tls=True, ca=str(tmp_path / "nosuch.pem")), str(tmp_path))
    n.wait_error("cannot load CA " + str(tmp_path / "nosuch.pem"))


def test_tls_without_ca_is_encrypted_unverified(broker, nodes, tmp_path):
    n = nodes(spec(broker.tls_port, host="localhost", tls=True), str(tmp_path))
    n.wait_up(True, 20)
    assert retained(broker.port)["relaynode/n1/status"] == b"online"


# ---------------------------------------------------------------- fake brokers that misbehave


class FakeBroker(TcpServer):
    # mode: "garbage" answers CONNECT with bytes that are no MQTT; "oversized" sends CONNACK,
    # then announces a 100 KB packet; "silent" never answers; "deaf" sends CONNACK and then
    # never reads again.
    def __init__(self, mode):
        self.mode = mode
        super().__init__()

    def answer(self, c):
        c.settimeout(2)
        if self.mode != "deaf":
            c.recv(1024)  # the CONNECT
        if self.mode == "garbage":
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(range(256)))
        elif self.mode == "oversized":
            c.sendall(b"\x20\x02\x00\x00\x30\xa0\x8d\x06\x00\x01t" + b"x" * 2000)
        elif self.mode == "deaf":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"\x20\x02\x00\x00")


@pytest.mark.parametrize(
    "mode,error",
    [
        ("garbage", "bad packet from the broker: expected CONNACK"),
        ("oversized", "bad packet from the broker: packet of 100004 bytes, limit 1024"),
        ("silent", "no CONNACK from the broker in 1500 ms"),
        ("deaf", "no ping answer from the broker in 1500 ms"),
    ],
)
def test_hostile_broker_never_blocks_the_node(mode, error, nodes, tmp_path):
    fb = FakeBroker(mode)
    try:
        n = nodes(spec(fb.port), str(tmp_path), timeout_ms=1500)
        t0 = time.monotonic()
        backoff = {}  # failures so far -> heap in use seen while waiting to retry (MicroPython)
        while time.monotonic() - t0 < 30 and fb.accepted < 4:
            n.cmd("set 0 %d" % (len(n.lines) % 2), 1.0)  # relays keep working while MQTT fails
            accepted = fb.accepted
            downs = len([line for line in n.log() if line.startswith("mqtt: down")])
            st = n.cmd("status", 1.0)  # answered within a second all along (cmd() asserts it)
            if downs == accepted == fb.accepted:
                backoff.setdefault(downs, []).append(st["heap"])
            time.sleep(0.1)
        st = n.wait_error(error, 5)
        assert st["mqtt"]["up"] is False
        assert fb.accepted >= 3, "no reconnects: %s" % st
        downs = [line for line in n.lines if line.startswith("mqtt: down (" + error)]
        assert len(downs) >= 2, n.lines
        # failed connections leave nothing behind: while the node waits to retry, the heap in
        # use after one of the second and third failures is where it was after the one before.
        # Not both: on a loaded machine the heap has stepped up once after the third failure
        # (0.8 KB, then flat through the sixth; 4.3 KB in one CI run), as a table that grows
        # once and stays would; something each failure left behind would grow at every one.
        if st["heap"] >= 0:
            steps = [min(backoff[k + 1]) - min(backoff[k]) for k in (1, 2)]
            assert min(steps) < 1024, backoff
    finally:
        fb.close()


# A TLS handshake that the other end never answers: bounded like every other step.
def test_tls_handshake_that_never_ends(nodes, tmp_path):
    fb = FakeBroker("silent")
    try:
        n = nodes(spec(fb.port, tls=True), str(tmp_path), timeout_ms=1500)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8 and fb.accepted < 3:
            n.cmd("set 1 %d" % (fb.accepted % 2), 1.0)
            n.cmd("status", 1.0)
            time.sleep(0.1)
        st = n.status()
        assert fb.accepted >= 2 and st["mqtt"]["up"] is False
        # CPython shakes hands inside open_connection, MicroPython on the first write
        assert st["mqtt"]["error"] in ("cannot connect (timeout)", "no CONNACK from the broker in 1500 ms"), st
    finally:
        fb.close()
