# A stand-in node around firmware/mqttnode.py, for host_tests/test_mqtt_broker.py: the same
# file runs under CPython and the MicroPython unix port. It has the node interface mqttnode
# uses (name, bank, log, apply, listen, notify, url, state_dir) over fake pins, and a control
# port on 127.0.0.1 for the test, one line per request, one JSON line back:
#   status         {"mqtt": listener.status(), "on": [relay states], "heap": bytes in use or -1}
#   set I 0|1      a change from another source (cause "client"): mqtt must publish it
#   log            the log lines since the last "log"
#   applied        [[command, cause], ...] applied so far, except the control port's
#   down_heaps     the heap in use (-1 on CPython) each time the listener reported a failure
#   stop           listener.stop(), then exit
# Settings come from the environment (long arguments kill the unix port): MQTT_SPEC (the
# validated mqtt section as JSON), NODE_NAME, RELAYS (JSON list of names), STATE_DIR,
# NODE_URL, TIMEOUT_MS (the listener's step timeout). It prints "READY <port>" when serving.
import asyncio
import gc
import json
import os
import sys

sys.path.insert(0, __file__[: __file__.rfind("/")] + "/..")

from firmware import commands, mqttnode  # noqa: E402
from firmware.compat import ticks_ms  # noqa: E402
from firmware.relays import RelayBank  # noqa: E402


class _Pin:
    def value(self, v=None):
        return 0


class FakeNode:
    def __init__(self, name, relays, state_dir, url):
        self.name = name
        self.bank = RelayBank([{"name": n, "pin": 20 + i} for i, n in enumerate(relays)], lambda g, lv: _Pin(), clock=ticks_ms)
        self.state_dir = state_dir
        self.url = url
        self.listeners = []
        self.lines = []
        self.applied = []
        self.notified = 0
        self.down_heaps = []

    # A failure is logged once each: the heap in use then is noted (MicroPython), as failed
    # connections must leave nothing behind.
    def log(self, text):
        self.lines.append(text)
        if text.startswith("mqtt: down"):
            self.down_heaps.append(heap())

    def listen(self, listener):
        self.listeners.append(listener)

    def notify(self, listener):
        self.notified += 1

    def apply(self, cmd, cause, origin=None, hops=0, via=None):
        try:
            changes = commands.apply(self.bank, cmd, cause)
        except commands.CommandError as e:
            return (e.code, e.message)
        if cause != "client":  # the test's own changes are not kept: it watches the heap
            self.applied.append([cmd, cause])
        if changes:
            for lst in self.listeners:
                lst.changed(changes, origin, hops, via)
        return None


def heap():
    gc.collect()
    try:
        return gc.mem_alloc()  # pyright: ignore[reportAttributeAccessIssue]
    except AttributeError:
        return -1


async def main():
    env = os.getenv
    node = FakeNode(env("NODE_NAME"), json.loads(env("RELAYS")), env("STATE_DIR"), env("NODE_URL") or None)
    m = mqttnode.attach(node, json.loads(env("MQTT_SPEC")))
    if env("TIMEOUT_MS"):
        m.timeout = int(env("TIMEOUT_MS"))
    done = asyncio.Event()

    async def serve(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            words = line.decode().split()
            out = None
            if words[0] == "status":
                out = {"mqtt": m.status(), "on": [r.on for r in node.bank.relays], "heap": heap()}
            elif words[0] == "set":
                out = node.apply({"type": "set", "relay": int(words[1]), "on": words[2] == "1"}, "client")
            elif words[0] == "log":
                out = node.lines
                node.lines = []
            elif words[0] == "applied":
                out = node.applied
            elif words[0] == "down_heaps":
                out = node.down_heaps
            elif words[0] == "stop":
                m.stop()
                done.set()
            writer.write((json.dumps(out) + "\n").encode())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", int(env("CTRL_PORT")))
    m.start()
    print("READY")
    await done.wait()
    await asyncio.sleep(0.2)
    server.close()


asyncio.run(main())
