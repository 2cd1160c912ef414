# The reference for `make bench`: the relay node's job done with microdot 2.7.0 (PyPI) and its
# microdot.websocket extension, on the same runtime as our node (CPython or the MicroPython
# unix port). It serves the same pre-gzipped page at / and a WebSocket at /ws: on connect the
# state JSON; {"type":"toggle","relay":N} flips relay N and sends the relay message to every
# connected client, awaiting each send in turn. It prints a ready line and a line per client
# in the node's own format, with the heap (gc.mem_alloc() after gc.collect(); 0 on CPython) when
# "heap_log" is true, as the node does with tools/sim.py --heap-log, so the bench measures
# both servers the same way.
#   python tools/bench/ref_microdot.py '{"host": "127.0.0.1", "port": 8090, "path": DIR, "page": FILE,
#                                         "heap_log": true}'
# "path": a folder put first on sys.path (where the microdot package lives, compiled to .mpy
# under MicroPython); "page": index.html (index.html.gz beside it is what is sent). Started by
# `tools/romfs.py run IMAGE -- ...`, it imports microdot from that image instead (see ROMFS).
# Frozen into an interpreter with microdot (tools/bench/board.py), it runs as
# `micropython -c "import ref_microdot" OPTIONS`.
import gc
import json
import os
import sys

OPTS = json.loads(sys.argv[1])
if OPTS.get("path"):
    sys.path.insert(0, OPTS["path"])
# microdot in a ROMFS image that tools/romfs.py mapped outside the heap ("ADDRESS:LENGTH"),
# mounted at /rom and imported from there, as tools/mp/rom_boot.py does with our firmware. Or
# the name of a module frozen into the interpreter whose IMAGE (a bytes constant, in the
# binary's read-only data as flash is on a board) is the image (tools/bench/board.py).
ROMFS = os.getenv("RELAYNODE_ROMFS")
if ROMFS:
    import vfs

    if ":" in ROMFS:
        import uctypes

        _a, _n = ROMFS.split(":")
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(_a), int(_n))), "/rom")
        del _a, _n, uctypes
    else:
        vfs.mount(vfs.VfsRom(__import__(ROMFS).IMAGE), "/rom")
    sys.path.insert(0, "/rom")
    del vfs

import asyncio  # noqa: E402

from microdot import Microdot, send_file  # noqa: E402
from microdot.websocket import with_websocket  # noqa: E402

VERSION = "0.1.0"
# the relays of the node's bench config: Light is toggled, the others mark the end of a burst
NAMES = ("Light", "Fan", "Pump", "Gate")
RELAYS = [{"id": i, "name": n, "on": False} for i, n in enumerate(NAMES)]
clients = set()
app = Microdot()


def heap():
    gc.collect()
    try:
        return gc.mem_alloc()
    except AttributeError:
        return 0


def dumps(obj):
    try:
        return json.dumps(obj, separators=(",", ":"))
    except TypeError:  # a MicroPython without the separators argument
        return json.dumps(obj)


def state():
    return dumps({"type": "state", "protocol": 1, "node": "relaynode", "version": VERSION, "relays": RELAYS})


@app.route("/")
async def index(request):
    return send_file(OPTS["page"], content_type="text/html; charset=utf-8", compressed=True, file_extension=".gz")


@app.route("/ws")
@with_websocket
async def ws_handler(request, ws):
    clients.add(ws)
    print("ws open (%d clients%s)" % (len(clients), ", heap %d" % heap() if OPTS.get("heap_log") else ""))
    try:
        await ws.send(state())
        while True:
            msg = await ws.receive()
            try:
                cmd = json.loads(msg)
                r = RELAYS[int(cmd["relay"])]
            except Exception:
                await ws.send(dumps({"type": "error", "code": "bad_command"}))
                continue
            if cmd.get("type") != "toggle":
                continue
            r["on"] = not r["on"]
            # built by hand, as the node does: MicroPython dicts do not keep key order
            out = '{"type":"relay","id":%d,"name":%s,"on":%s,"cause":"client"}' % (
                r["id"],
                dumps(r["name"]),
                "true" if r["on"] else "false",
            )
            for c in list(clients):
                try:
                    await c.send(out)
                except Exception:
                    clients.discard(c)
    finally:
        clients.discard(ws)


async def main():
    task = asyncio.create_task(app.start_server(host=OPTS["host"], port=OPTS["port"]))
    for _ in range(200):  # until the listening socket exists (bounded)
        if getattr(app, "server", None) is not None:
            break
        await asyncio.sleep(0.01)
    print("microdot-ref serving http://%s:%d/ (heap %d)" % (OPTS["host"], OPTS["port"], heap()))
    await task


asyncio.run(main())
