# A benchmark figure for the clock, schedules and buttons (not a test): the heap in use on the
# board-faithful build (MicroPython, 32-bit, firmware frozen: tools/mpbuild.py) by a node
# without them and by one with a clock (its time set by NTP), 16 schedules and 4 inputs, both
# running (timers ticked, a page's state made), and the difference. Measured in one process
# by tools/heapmap.py, whose input pins exist before the node, as the board's are ROM objects
# that cost no heap; the simulator would count its own fake pins and its standard-input reader.
# measure() gives the figures to `make bench`; on its own:
#   python -m tools.bench.clock [--json FILE]
import argparse
import json
import os
import tempfile

import heapmap
import mpbuild

BUDGET = 5 * 1024  # bytes the clock, 16 schedules and 4 inputs may cost
CLOCK = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "pool.ntp.org", "lat": 52.52, "lon": 13.40}
RELAYS = [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27}]
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


# The heap in use, running, of a node with the config sections top and two relays.
def heap_running(binary, top):
    cfg = {"relays": RELAYS}
    cfg.update(top)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        rows = heapmap.measure(binary, path)[0]
    return rows[-1][1]


# The figures ({"error": ...} when the build or a node fails).
def measure():
    try:
        binary = mpbuild.build(32, quiet=True)
        bare = heap_running(binary, {})
        full = heap_running(binary, sections())
    except (mpbuild.BuildError, RuntimeError) as e:
        return {"error": str(e)}
    return {"bare": bare, "full": full, "cost": full - bare, "budget": BUDGET}


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.clock",
        description="Heap in use with and without a clock, 16 schedules and 4 inputs (32-bit frozen build).")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    a = p.parse_args(argv)
    r = measure()
    if "error" in r:
        raise SystemExit(r["error"])
    print("heap in use, running: %d B without, %d B with clock + 16 schedules + 4 inputs: %d B (budget %d B)"
          % (r["bare"], r["full"], r["cost"], r["budget"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
