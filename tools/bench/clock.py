# A benchmark figure for the clock, schedules and buttons (not a test): the heap once ready of
# a node on the board-faithful build (MicroPython, 32-bit, firmware frozen: tools/mpbuild.py)
# without them and with a clock (time known), 16 schedules and 4 inputs, and the difference.
# measure() gives the figures to `make bench`; on its own:
#   python -m tools.bench.clock [--heapsize 64K] [--json FILE]
import argparse
import json
import time

import harness as nh
import mpbuild

BUDGET = 5 * 1024  # bytes the clock, 16 schedules and 4 inputs may cost
CLOCK = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "", "lat": 52.52, "lon": 13.40}
_DAYS = ("mon-fri", "sat-sun", "mon-sun", ["mon", "wed", "fri"])


# The config sections of the full case: a clock with a location, 16 schedules (clock times and
# sun events, each action, day ranges and lists), 4 inputs (each mode, GPIO 34 and 35 among them).
def sections():
    scheds = []
    for i in range(16):
        at = ("sunset-%d" % (i + 1), "sunrise+%d" % i, "%02d:%02d" % (i, i * 3 % 60), "%02d:30" % i)[i % 4]
        action = ("on", "off", "toggle", "pulse")[i % 4]
        s = {"relay": ("Light", "Fan")[i % 2], "at": at, "days": _DAYS[i % 4], "action": action}
        if s["action"] == "pulse":
            s["ms"] = 60000
        scheds.append(s)
    inputs = [
        {"pin": 32, "relay": "Light", "mode": "toggle", "long_action": "off"},
        {"pin": 33, "relay": "Fan", "mode": "momentary"},
        {"pin": 34, "relay": "Light", "mode": "follow", "pull": "none", "active_low": True},
        {"pin": 35, "relay": "Fan", "mode": "pulse", "pull": "none", "ms": 2000},
    ]
    return {"clock": dict(CLOCK), "schedules": scheds, "inputs": inputs}


# The heap once ready (after a full collection, the lower of two readings) of a node made with
# sections top, at heapsize; with the simulator's clock set so that the time is known.
def heap_once_ready(top, heapsize="64K", interp=None):
    args = ["--clock", "2026-03-29T10:00:00Z"] if "clock" in top else []
    n = nh.Node("micropython", heapsize=heapsize, frozen=True, bits=32, sim_args=args, **top)
    try:
        n.start()
        if "clock" in top:
            n.wait_for_line("clock: ", 5)
            nh.get_state(n.port)  # the next events worked out, as for every page that joins
        time.sleep(1.0)
        return min(nh.debug(n.port)["heap"] for _ in range(2))
    finally:
        n.cleanup()


# The figures ({"error": ...} when the build or a node fails).
def measure(heapsize="64K"):
    try:
        mpbuild.build(32, quiet=True)
        bare = heap_once_ready({}, heapsize)
        full = heap_once_ready(sections(), heapsize)
    except (mpbuild.BuildError, nh.NodeError) as e:
        return {"error": str(e)}
    return {"heapsize": heapsize, "bare": bare, "full": full, "cost": full - bare, "budget": BUDGET}


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.clock",
        description="Heap once ready with and without a clock, 16 schedules and 4 inputs (32-bit frozen build).")
    p.add_argument("--heapsize", default="64K")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    a = p.parse_args(argv)
    r = measure(a.heapsize)
    if "error" in r:
        raise SystemExit(r["error"])
    print("heap once ready: %d B without, %d B with clock + 16 schedules + 4 inputs: %d B (budget %d B)"
          % (r["bare"], r["full"], r["cost"], r["budget"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
