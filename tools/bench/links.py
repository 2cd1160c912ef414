# A benchmark figure for device-to-device links (not a test): node A links to node B with a
# mirror rule; one client of A toggles the relay, and the time until every client of B has
# B's relay message is the latency A's command -> B's relay -> B's browsers (p50/p99).
# measure() gives the figure to `make bench`; on its own:
#   python -m tools.bench.links [--runtime cpython|micropython|both] [--clients 4]
#                               [--commands 300] [--heapsize 160K] [--json FILE]
import argparse
import asyncio
import json
import statistics
import time

import harness as nh

from .phases import pct

TIMEOUT = 5.0  # seconds: any single wait


async def _run(a, b, clients, commands, warmup):
    from websockets.asyncio.client import connect

    sender = await connect(a.ws_url, open_timeout=TIMEOUT)
    await asyncio.wait_for(sender.recv(), TIMEOUT)
    receivers = [await connect(b.ws_url, open_timeout=TIMEOUT) for _ in range(clients)]
    for r in receivers:
        await asyncio.wait_for(r.recv(), TIMEOUT)

    async def relay_message(ws):
        while True:
            m = json.loads(await ws.recv())
            if m.get("type") == "relay":
                return time.perf_counter()

    lat = []
    try:
        for i in range(warmup + commands):
            t0 = time.perf_counter()
            await sender.send('{"type":"toggle","relay":"Light"}')
            done = await asyncio.wait_for(asyncio.gather(*[relay_message(r) for r in receivers]), TIMEOUT)
            await asyncio.wait_for(relay_message(sender), TIMEOUT)  # A's own echo, so A is idle again
            if i >= warmup:
                lat.append((max(done) - t0) * 1000)
    finally:
        for w in [sender] + receivers:
            await w.close()
    return lat


# Start B and A (A linked to B) on runtime; the latency figures in ms. 160K: on the 64-bit port
# from PyPI a node with links does not fit 128K with its code from .mpy files.
def measure(runtime="micropython", clients=4, commands=300, warmup=20, heapsize="160K"):
    b = nh.Node(runtime, name="B", heapsize=heapsize, limits={"max_rate": 1000})  # the link is one of B's clients
    b.port = nh.free_port()
    rules = [{"mirror": {"local": "Light", "remote": "Light", "direction": "to_remote"}}]
    a = nh.Node(runtime, name="A", heapsize=heapsize, links=[{"url": "ws://127.0.0.1:%d/ws" % b.port, "rules": rules}],
                limits={"max_rate": 1000})
    try:
        b.start()
        a.start()
        a.wait_for_line("up, peer B", 10)
        lat = asyncio.run(_run(a, b, clients, commands, warmup))
    finally:
        a.cleanup()
        b.cleanup()
    res = {"runtime": runtime, "clients_of_b": clients, "commands": commands}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        res[name + "_ms"] = round(pct(lat, p), 3)
    res["mean_ms"] = round(statistics.mean(lat), 3)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.links", description="Latency A's command -> B's relay -> B's clients over a link.")
    p.add_argument("--runtime", choices=("cpython", "micropython", "both"), default="both")
    p.add_argument("--clients", type=int, default=4, help="clients of B that must all get the change")
    p.add_argument("--commands", type=int, default=300)
    p.add_argument("--heapsize", default="160K", help="micropython heap of both nodes")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    a = p.parse_args(argv)
    rts = ("cpython", "micropython") if a.runtime == "both" else (a.runtime,)
    results = []
    print("%-12s %8s %8s %8s %8s   (ms, A's command -> every client of B)" % ("runtime", "p50", "p90", "p99", "max"))
    for rt in rts:
        r = measure(rt, a.clients, a.commands, heapsize=a.heapsize)
        results.append(r)
        print("%-12s %8.2f %8.2f %8.2f %8.2f" % (rt, r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
