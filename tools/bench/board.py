# The board-faithful figures of `make bench`: MicroPython built 32-bit (the ESP32's pointer and
# object sizes; tools/mpbuild.py) with the code where a board keeps it, for both servers:
#   frozen   ours: `make micropython BITS=32` (tools/sim.py --frozen); microdot: a build of its
#            own with microdot's package and ref_microdot.py frozen in
#   .mpy     a build with nothing but asyncio frozen, each server's .mpy files on the filesystem
#            (their bytecode is copied into the heap at import)
#   ROMFS    that build with each server's ROMFS image frozen in as a bytes constant (module
#            rom_node / rom_microdot, IMAGE): read-only data outside the heap, as a board's
#            romfs partition is, mounted with vfs.VfsRom and imported from in place
# For each: heap once ready and per extra client, and the smallest heap that serves 12 clients
# plus page loads. Then two figures of ours alone on the frozen build: the small-heap case (12
# clients, two page loads and one link at -X heapsize=24K) run again and again, how many runs
# pass (and when one fails, the smallest heap where it passes); and MQTT's heap cost (ready,
# connected to a local mosquitto, discovery done, minus the same node without "mqtt").
import contextlib
import os
import statistics
import sys
import time

import fleet
import harness
import mosquitto
import mpbuild
import romfs

from . import phases
from .processes import REF_APP, ROOT, BenchError, Interpreter

MICRODOT_FILES = ("__init__.py", "microdot.py", "websocket.py", "helpers.py")  # what the reference imports
ROM_DIR = os.path.join(ROOT, "build", "bench-rom")
SEARCH = (8, 256)  # KiB: where the smallest heaps are looked for on the 32-bit builds


# The unix port with microdot and the reference server frozen in; its path.
def microdot_binary(bits):
    import microdot

    pkg = os.path.dirname(microdot.__file__)
    lines = [
        "package(%r, files=%r, base_path=%r)" % ("microdot", list(MICRODOT_FILES), os.path.dirname(pkg)),
        "module(%r, base_path=%r)" % (os.path.basename(REF_APP), os.path.dirname(REF_APP)),
    ]
    files = [os.path.join(pkg, f) for f in MICRODOT_FILES] + [REF_APP]
    return mpbuild.build(bits, quiet=True, variant=("microdot", lines, files))


def _write(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, "w") as f:
        f.write(text)


# The unix port with only asyncio frozen, plus both servers' ROMFS images as modules rom_node
# and rom_microdot (IMAGE: the image's bytes); its path.
def rom_binary(ctx, bits):
    os.makedirs(ROM_DIR, exist_ok=True)
    images = (("rom_node", romfs.build_sim_image(os.path.join(ROM_DIR, "node.img"))),
              ("rom_microdot", ctx.microdot_image()))
    files = []
    for mod, img in images:
        with open(img, "rb") as f:
            data = f.read()
        path = os.path.join(ROM_DIR, mod + ".py")
        _write(path, "# Written by tools/bench/board.py: a ROMFS image, frozen as read-only data.\nIMAGE = %r\n" % data)
        files.append(path)
    lines = ["module(%r, base_path=%r)" % (os.path.basename(f), ROM_DIR) for f in files]
    return mpbuild.build(bits, quiet=True, variant=("rom", lines, files))


# The three ways of running both servers on the bits build (built first when needed).
def interpreters(ctx, bits=32):
    mpbuild.build(bits, quiet=True)  # ours frozen: built here, not inside a timed start
    plain = rom_binary(ctx, bits)
    return [
        Interpreter("%d-bit frozen" % bits, sim_args=("--frozen", "--bits", str(bits)),
                    microdot_binary=microdot_binary(bits), microdot_frozen=True),
        Interpreter("%d-bit .mpy" % bits, binary=plain),
        Interpreter("%d-bit ROMFS" % bits, binary=plain, rom_modules=("rom_node", "rom_microdot")),
    ]


def ws_connect(n, timeout=5.0):
    import json

    from websockets.sync.client import connect

    ws = connect(n.ws_url, open_timeout=timeout, close_timeout=2)
    state = json.loads(ws.recv(timeout=timeout))
    if state.get("type") != "state":
        ws.close()
        raise AssertionError("first message %r" % state)
    return ws


# Ours on the frozen build at heapsize, with a link to a peer node (peer, CPython) that mirrors
# Light: `clients` clients, toggles every client (and the peer, over the link) must see, two
# page loads, the heap given back (tools/harness.py serve_clients_and_page_loads), in a fresh
# process. (True, (heap ready, full, after)) or (False, why in one line).
def link_case(peer, heapsize, clients, bits):
    rules = [{"mirror": {"local": "Light", "remote": "Light", "direction": "to_remote"}}]
    n = harness.Node("micropython", heapsize=heapsize, frozen=True, bits=bits, name="A",
                     limits=harness.client_limits(clients),
                     links=[{"url": "ws://127.0.0.1:%d/ws" % peer.port, "rules": rules}])
    mark = peer.mark()
    up = []

    def connect(n):
        if not up:  # the link is up before the first client
            up.append(n.wait_for_line("up, peer B", 10))
        return ws_connect(n)

    try:
        with contextlib.redirect_stdout(sys.stderr):  # its heap line goes with the bench's progress lines
            heaps = harness.serve_clients_and_page_loads(n, clients, "%d-bit frozen, 1 link" % bits, connect)
        deadline = time.monotonic() + 5
        while len([x for x in peer.output(mark).splitlines() if x.startswith("relay Light")]) < 3:
            if time.monotonic() > deadline:
                raise AssertionError("the toggles did not reach the linked node:\n" + peer.output(mark))
            time.sleep(0.05)
    except (AssertionError, harness.NodeError) as e:
        lines = str(e).strip().splitlines()
        errors = [x for x in lines if "Error" in x]
        return False, (lines[0] + (" ... " + errors[-1] if errors else ""))[:400]
    return True, heaps


# link_case `runs` times in a row at heapsize: {"runs", "passed", "failures": [why], "heaps": [...]};
# when a run failed, "smallest_kib": the smallest heap (KiB, in steps of 2 up to 64) where one
# run passes, or None.
def small_heap_case(runs=10, heapsize="24K", clients=12, bits=32, log=print, search=True):
    peer = harness.Node("cpython", name="B", limits={"max_rate": 1000000})
    peer.start()
    res = {"runs": runs, "heapsize": heapsize, "clients": clients, "passed": 0, "failures": [], "heaps": []}
    what = "ours on micropython, %d-bit frozen: %d clients + 2 page loads + 1 link" % (bits, clients)
    try:
        for i in range(runs):
            log("bench: %s at heapsize=%s (%d of %d) ..." % (what, heapsize, i + 1, runs))
            ok, got = link_case(peer, heapsize, clients, bits)
            if ok:
                res["passed"] += 1
                res["heaps"].append(got)
            else:
                res["failures"].append(got)
        if res["failures"] and search:
            log("bench: %s: the smallest heap ..." % what)
            lo, hi = int(heapsize.rstrip("K")), 64
            if not link_case(peer, "%dK" % hi, clients, bits)[0]:
                hi = None
            while hi and hi - lo > 2:
                mid = (lo + hi) // 2 // 2 * 2
                if link_case(peer, "%dK" % mid, clients, bits)[0]:
                    hi = mid
                else:
                    lo = mid
            res["smallest_kib"] = hi
    finally:
        peer.cleanup()
    return res


# The heap in use now (the smaller of two reads of /api/debug: a collection may land between).
def _heap(n):
    return min(harness.debug(n.port)["heap"], harness.debug(n.port)["heap"])


# MQTT's heap cost on the frozen build: heap in use once ready with "mqtt" configured, connected
# to a local mosquitto and its discovery configs on the broker, minus the same without "mqtt";
# medians of `repeat` runs each, alternating.
def mqtt_heap(ctx, repeat=3, heapsize="64K", bits=32, log=print):
    broker = mosquitto.Broker(ctx.new_dir("mqtt")).start()
    res = {"heapsize": heapsize, "with": [], "without": []}
    try:
        for i in range(repeat):
            for key in ("without", "with"):
                log("bench: ours on micropython, %d-bit frozen: heap %s mqtt (%d of %d) ..."
                    % (bits, key, i + 1, repeat))
                top = {"mqtt": {"host": "127.0.0.1", "port": broker.port}} if key == "with" else {}
                n = harness.Node("micropython", heapsize=heapsize, frozen=True, bits=bits, name="bench", **top)
                w = None
                try:
                    n.start()
                    if key == "with":
                        slugs = [r["name"].lower() for r in n.config["relays"]]
                        topics = ["homeassistant/switch/bench/%s/config" % s for s in slugs]
                        topics.append("relaynode/bench/status")
                        w = fleet.Watcher(broker.port, topics, 10)
                        if not w.wait(lambda w=w, ts=topics: all(w.last.get(t, (None,))[0] for t in ts), 15):
                            raise BenchError("mqtt: discovery not seen on the broker:\n" + n.output())
                        time.sleep(0.5)  # its writer goes idle again
                        if not harness.get_state(n.port)["mqtt"]["up"]:
                            raise BenchError("mqtt: not up:\n" + n.output())
                    else:
                        time.sleep(0.5)
                    res[key].append(_heap(n))
                finally:
                    if w:
                        w.close()
                    n.cleanup()
    finally:
        broker.stop()
    res["with_median"] = statistics.median(res["with"])
    res["without_median"] = statistics.median(res["without"])
    res["cost"] = res["with_median"] - res["without_median"]
    return res


# Every board-faithful figure: {"interpreters": {label: figures}, "small_heap": ..., "mqtt": ...}.
def figures(ctx, log, bits=32):
    a = ctx.opts
    res = {"bits": bits, "interpreters": {}}
    log("bench: building the %d-bit interpreters (cached) ..." % bits)
    for interp in interpreters(ctx, bits):
        res["interpreters"][interp.label] = phases.interpreter_figures(
            ctx, interp, [], a.clients, a.search_clients, log, search=SEARCH, boot_search=False)
    res["small_heap"] = small_heap_case(1 if a.quick else a.small_heap_runs, "24K", 12, bits, log, not a.quick)
    try:
        res["mqtt"] = mqtt_heap(ctx, 1 if a.quick else 3, bits=bits, log=log)
    except mosquitto.BrokerError as e:  # no mosquitto here: the other figures still stand
        log("bench: MQTT's heap cost skipped: %s" % e)
        res["mqtt"] = {"error": str(e)}
    return res
