#!/usr/bin/env python3
# `make fleet N=50`: a house of N nodes on one broker, measured. Starts a mosquitto on a free
# 127.0.0.1 port (tools/mosquitto.py) and N simulated nodes on it (tools/harness.py: the
# MicroPython unix port, by default our 32-bit build with the firmware frozen, a small heap; each
# with its own name, HTTP port and state folder), then measures, watching the broker with a
# plain MQTT client (paho-mqtt):
#   discovery   the time until every relay of every node has its Home Assistant discovery config
#               (from the first node's start, and from each node's ready line)
#   round trip  a command on NODE's set topic until its new state is on the state topic, one node
#               at a time, alternating ON and OFF: p50 / p99 over all nodes
#   restart     the broker stopped and started again on its port: the time until all N have
#               published "online" again, and their discovery configs are all back
#   memory      per node: heap in use (GET /api/debug) and the process's resident size (VmRSS)
#   python tools/fleet.py [--nodes 50] [--heapsize 48K] [--rounds 4] [--bits 32 | --pypi]
#                         [--json FILE] [--timeout 120]
# Every wait is bounded; everything it started is stopped on any exit (an error, Ctrl-C, SIGTERM).
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import harness  # noqa: E402
import mosquitto  # noqa: E402
import mpbuild  # noqa: E402

RELAYS = [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27}]
SLUGS = ["light", "fan"]
PREFIX = "homeassistant"
PACE_S = 0.06  # at least this long between two commands to one node


class FleetError(Exception):
    pass


def log(*a):
    print("fleet:", *a, file=sys.stderr, flush=True)


def pct(values, p):
    v = sorted(values)
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))] if v else None


class Watcher:
    """A plain MQTT client on the broker: every message's last payload, count and arrival time."""

    def __init__(self, port, topics, timeout):
        import paho.mqtt.client as paho

        self.cond = threading.Condition()
        self.last = {}  # topic -> (payload, count, arrival time)
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet-watcher-%d" % harness.free_port())
        self.c.on_message = self._message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.subscribe([(t, 0) for t in topics])
        self.c.loop_start()
        if not subscribed.wait(timeout):
            self.close()
            raise FleetError("the watcher could not subscribe on the broker")

    def _message(self, client, userdata, msg):
        t = time.monotonic()
        with self.cond:
            n = self.last.get(msg.topic, (None, 0, 0))[1]
            self.last[msg.topic] = (msg.payload, n + 1, t)
            self.cond.notify_all()

    def get(self, topic):
        with self.cond:
            return self.last.get(topic, (None, 0, 0))

    # Wait until pred() (called under the lock) is true; False after timeout seconds.
    def wait(self, pred, timeout):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=0)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Fleet:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="fleet")
        self.broker = None
        self.nodes = []
        self.watchers = []
        self.results = {"nodes": a.nodes, "heapsize": a.heapsize, "relays_per_node": len(RELAYS)}

    def names(self):
        return ["node%02d" % (i + 1) for i in range(self.a.nodes)]

    def config_topics(self):
        return ["%s/switch/%s/%s/config" % (PREFIX, n, s) for n in self.names() for s in SLUGS]

    def watcher(self, topics):
        w = Watcher(self.broker.port, topics, self.a.io_timeout)
        self.watchers.append(w)
        return w

    def node(self, name):
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        mqtt = {"host": "127.0.0.1", "port": self.broker.port, "keepalive_s": 30}
        if self.a.pypi:
            return harness.Node("micropython", workdir=d, heapsize=self.a.heapsize,
                                config=harness.make_config(name, mqtt=mqtt, relays=RELAYS))
        return harness.Node("micropython", workdir=d, heapsize=self.a.heapsize, frozen=True, bits=self.a.bits,
                            config=harness.make_config(name, mqtt=mqtt, relays=RELAYS))

    def stop(self):
        for w in self.watchers:
            try:
                w.close()
            except Exception:
                pass
        self.watchers = []
        for n in self.nodes:
            n.cleanup()
        if self.broker:
            self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # Wait until every topic of topics has a non-empty payload (first=False) or equals payload.
    def wait_all(self, w, topics, timeout, payload=None):
        def done():
            for t in topics:
                p = w.last.get(t, (None,))[0]
                if not p or (payload is not None and p != payload):
                    return False
            return True

        if not w.wait(done, timeout):
            missing = [t for t in topics if not w.get(t)[0] or (payload is not None and w.get(t)[0] != payload)]
            raise FleetError("%d of %d topics never came (first: %s)" % (len(missing), len(topics), missing[:3]))
        return max(w.get(t)[2] for t in topics)

    def run(self):
        a = self.a
        r = self.results
        if not a.pypi:
            log("building (or finding) the %d-bit interpreter with the firmware frozen ..." % a.bits)
            mpbuild.build(a.bits, quiet=True)
        self.broker = mosquitto.Broker(self.tmp).start()
        r["broker_port"] = self.broker.port
        # not the set topics: the broker (Nagle's algorithm on, mosquitto's default) would hold a
        # state message behind the echo of the watcher's own command until its delayed ACK
        w = self.watcher(["%s/switch/+/+/config" % PREFIX, "relaynode/+/status", "relaynode/+/+/state"])
        t0 = time.monotonic()
        log("starting %d nodes (heapsize %s) on the broker at 127.0.0.1:%d ..." % (a.nodes, a.heapsize,
                                                                                     self.broker.port))
        made = [self.node(name) for name in self.names()]
        self.nodes = made
        def start(n):
            n.start(a.io_timeout)
            return time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            ready = [f.result() for f in [pool.submit(start, n) for n in made]]
        r["start_s"] = round(time.monotonic() - t0, 2)
        log("all %d serving after %.1f s; waiting for discovery ..." % (a.nodes, r["start_s"]))
        topics = self.config_topics()
        last = self.wait_all(w, topics, a.timeout)
        r["discovery_configs"] = sum(1 for t in topics if w.get(t)[0])
        r["discovered_nodes"] = len({t.split("/")[2] for t in topics if w.get(t)[0]})
        for t in topics[:1]:
            d = json.loads(w.get(t)[0])
            r["discovery_sample"] = {k: d.get(k) for k in ("name", "unique_id", "command_topic", "state_topic")}
        r["discovery_s"] = round(last - t0, 2)
        # each node's own: from its ready line until its last discovery config is on the broker
        own = [max(w.get(t)[2] for t in topics[i * len(SLUGS):(i + 1) * len(SLUGS)]) - ready[i]
               for i in range(a.nodes)]
        r["discovery_after_ready_ms"] = {"p50": round(pct(own, 50) * 1000, 1), "max": round(max(own) * 1000, 1)}
        status = ["relaynode/%s/status" % n for n in self.names()]
        self.wait_all(w, status, a.timeout, b"online")
        self.round_trips(w)
        self.memory()
        self.restart(status, topics)
        return r

    # A command on each node's set topic until its state topic has the new state, node after node.
    def round_trips(self, w):
        a = self.a
        times = []
        sent = {}  # node -> when it last got a command
        log("round trips: %d rounds over %d nodes ..." % (a.rounds, a.nodes))
        for _ in range(a.rounds):
            for name in self.names():
                st = "relaynode/%s/light/state" % name
                payload, count, _ = w.get(st)
                want = b"OFF" if payload == b"ON" else b"ON"
                # a node takes 20 commands a second from MQTT (more are dropped): a small fleet
                # waits here, outside the timed part
                time.sleep(max(0.0, sent.get(name, 0) + PACE_S - time.monotonic()))
                t0 = sent[name] = time.monotonic()
                w.publish("relaynode/%s/light/set" % name, want)
                if not w.wait(lambda st=st, count=count, want=want: w.last.get(st, (None, 0))[1] > count
                              and w.last[st][0] == want, a.io_timeout):
                    raise FleetError("%s: no state %s within %.0f s of the command" % (name, want, a.io_timeout))
                times.append((w.get(st)[2] - t0) * 1000)
        self.results["round_trip"] = {
            "samples": len(times),
            "p50_ms": round(pct(times, 50), 2),
            "p99_ms": round(pct(times, 99), 2),
            "max_ms": round(max(times), 2),
        }

    def memory(self):
        heaps, rss = [], []
        for n in self.nodes:
            heaps.append(harness.debug(n.port, self.a.io_timeout)["heap"])
            rss.append(vm_rss(n.proc.pid))
        m = self.results["memory"] = {"heap_bytes": heaps, "rss_kib": rss}
        m["heap_median"], m["heap_max"] = statistics.median(heaps), max(heaps)
        known = [x for x in rss if x]
        m["rss_kib_median"] = statistics.median(known) if known else None
        m["rss_kib_max"] = max(known) if known else None

    # Stop the broker, start it again on its port, and time every node's way back.
    def restart(self, status, topics):
        a = self.a
        log("broker restart ...")
        for x in self.watchers:
            x.close()
        self.watchers = []
        self.broker.stop()
        # the nodes notice the closed connection and retry with backoff; the broker comes back at once
        time.sleep(a.down_s)
        self.broker.start()
        t0 = time.monotonic()
        w = self.watcher(["%s/switch/+/+/config" % PREFIX, "relaynode/+/status"])
        online = self.wait_all(w, status, a.timeout, b"online")
        disc = self.wait_all(w, topics, a.timeout)
        self.results["restart"] = {
            "broker_down_s": a.down_s,
            "all_online_s": round(online - t0, 2),
            "all_discovery_s": round(disc - t0, 2),
            "online": sum(1 for t in status if w.get(t)[0] == b"online"),
        }
        for n in self.nodes:
            if not n.running():
                raise FleetError("a node stopped:\n" + n.output()[-2000:])
            if n.matching("MemoryError"):
                raise FleetError("MemoryError on %s:\n%s" % (n.config["name"], n.output()[-2000:]))


# The resident size of process pid in KiB (VmRSS), or None.
def vm_rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def table(r):
    rt, mem, rs = r["round_trip"], r["memory"], r["restart"]
    rows = [
        ("nodes on the broker (relays each)", "%d (%d)" % (r["nodes"], r["relays_per_node"])),
        ("nodes discovered (discovery configs seen)", "%d (%d)" % (r["discovered_nodes"], r["discovery_configs"])),
        ("start of the first node -> every discovery config", "%.2f s" % r["discovery_s"]),
        ("a node ready -> its discovery configs, p50 / max", "%.1f / %.1f ms" % (
            r["discovery_after_ready_ms"]["p50"], r["discovery_after_ready_ms"]["max"])),
        ("command -> state through the broker, p50 / p99 (%d)" % rt["samples"],
         "%.2f / %.2f ms" % (rt["p50_ms"], rt["p99_ms"])),
        ("broker restart -> all %d online" % rs["online"], "%.2f s" % rs["all_online_s"]),
        ("broker restart -> every discovery config again", "%.2f s" % rs["all_discovery_s"]),
        ("heap in use per node, median / max (heapsize %s)" % r["heapsize"],
         "%d / %d B" % (mem["heap_median"], mem["heap_max"])),
        ("RSS per node, median / max", "%s / %s KiB" % (mem["rss_kib_median"], mem["rss_kib_max"])),
    ]
    w = max(len(x) for x, _ in rows)
    return "\n".join("%s  %s" % (x.ljust(w), y) for x, y in rows)


def parse(argv=None):
    p = argparse.ArgumentParser(prog="tools/fleet.py", description="N simulated nodes on one mosquitto, measured.")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--heapsize", help="each node's MicroPython heap (48K; 192K with --pypi)")
    p.add_argument("--bits", type=int, choices=(32, 64), default=32, help="our build with the firmware frozen")
    p.add_argument("--pypi", action="store_true", help="the PyPI unix port (64-bit, firmware .mpy) instead")
    p.add_argument("--rounds", type=int, default=4, help="commands per node for the round trip")
    p.add_argument("--down-s", type=float, default=1.0, help="seconds the broker stays down at the restart")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on discovery and on the restart")
    p.add_argument("--io-timeout", type=float, default=30.0, help="bound on a node's start and one round trip")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    if a.nodes < 1 or a.rounds < 1:
        p.error("--nodes and --rounds must be at least 1")
    if a.heapsize is None:  # the PyPI port copies the firmware's bytecode into its (64-bit) heap
        a.heapsize = "192K" if a.pypi else "48K"
    return a


def main(argv=None):
    a = parse(argv)
    fleet = Fleet(a)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    try:
        r = fleet.run()
    except (FleetError, harness.NodeError, mosquitto.BrokerError, mpbuild.BuildError) as e:
        print("fleet: %s" % e, file=sys.stderr)
        return 1
    finally:
        fleet.stop()
    r["elapsed_s"] = round(time.monotonic() - t0, 1)
    r["nproc"] = os.cpu_count()
    print("fleet of %d nodes on one mosquitto (%s, heapsize %s), %.0f s in all" % (
        a.nodes, "PyPI unix port" if a.pypi else "%d-bit build, firmware frozen" % a.bits, a.heapsize, r["elapsed_s"]))
    print(table(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
        print("wrote %s" % a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
