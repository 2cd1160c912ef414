# Where the heap goes: each firmware module imported in dependency order on a MicroPython
# interpreter (by default the 32-bit build with the firmware frozen, `make micropython BITS=32`),
# with gc.collect() and gc.mem_alloc() around each import. A module's figure is what its import
# adds (from a frozen build: its module object, globals, functions and classes; the bytecode and
# the names stay in the binary); a module shared by several is counted at the first.
#   python -m tools.bench.modheap [--binary PATH] [--json FILE]
# The order: asyncio, then what the running node imports (the static closure of firmware.server,
# dependencies first), then app and config (boot only: app.forget() lets them go once the node
# is ready), then every other module (loaded only when configured or needed), except board.py
# (the ESP32's machine and network) and cpython.py.
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import mpbuild

from .processes import ROOT

FIRMWARE = os.path.join(ROOT, "firmware")
SKIP = ("__init__", "board", "cpython")  # the package itself; the ESP32's own; CPython's own
TOP = re.compile(r"^(?:from \.(\w*) import ([\w, ]+)|import (asyncio))", re.M)
SCRIPT = """import gc, json, sys
sys.path[:] = [".frozen"]
MODS = %r
out = [0] * len(MODS)
gc.collect()
prev = base = gc.mem_alloc()
for i in range(len(MODS)):
    __import__(MODS[i])
    gc.collect()
    a = gc.mem_alloc()
    out[i] = a - prev
    prev = a
print(json.dumps({"base": base, "heaps": out}))
"""


# {module: [modules it imports at its top level]}, firmware modules as "firmware.NAME".
def imports():
    names = {f[:-3] for f in os.listdir(FIRMWARE) if f.endswith(".py") and f[:-3] not in SKIP}
    deps = {}
    for name in sorted(names):
        with open(os.path.join(FIRMWARE, name + ".py")) as f:
            text = f.read()
        got = []
        for mod, what, aio in TOP.findall(text):
            if aio:
                got.append("asyncio")
            elif mod:
                got.append("firmware." + mod)
            else:
                words = [w.split()[0] for w in what.split(",") if w.strip()]  # "websocket as ws"
                got += ["firmware." + w for w in words if w in names]
        deps["firmware." + name] = got
    return deps


# Every module reachable from roots, dependencies first.
def closure(deps, roots, seen=None):
    seen = [] if seen is None else seen
    for r in roots:
        if r not in seen:
            closure(deps, deps.get(r, []), seen)
            seen.append(r)
    return seen


# [(module, bytes its import added, "node" | "boot" | "on demand")] and the heap before them.
def measure(binary=None, timeout=60):
    binary = binary or mpbuild.interpreter_path(32)
    deps = imports()
    node = closure(deps, ["asyncio", "firmware", "firmware.server"])
    boot = [m for m in closure(deps, ["firmware.app", "firmware.config"], list(node)) if m not in node]
    rest = [m for m in closure(deps, sorted(deps), node + boot) if m not in node + boot]
    mods = node + boot + rest
    with tempfile.TemporaryDirectory(prefix="rnm") as d:
        script = os.path.join(d, "m.py")
        with open(script, "w") as f:
            f.write(SCRIPT % mods)
        p = subprocess.run([binary, "-X", "heapsize=512K", script], capture_output=True, text=True,
                           timeout=timeout, cwd=d)
    if p.returncode != 0:
        raise RuntimeError("modheap: %s" % (p.stdout + p.stderr).strip()[-400:])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    where = ["node"] * len(node) + ["boot"] * len(boot) + ["on demand"] * len(rest)
    return {"base": r["base"], "modules": [list(x) for x in zip(mods, r["heaps"], where)]}


def table(res):
    rows = ["%-22s %7d B  %s" % (m, b, w) for m, b, w in res["modules"]]
    node = sum(b for _, b, w in res["modules"] if w == "node")
    rows.append("%-22s %7d B  (before the first import: %d B)" % ("running node's modules", node, res["base"]))
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.modheap", description="Heap per firmware module.")
    p.add_argument("--binary", help="a MicroPython with the firmware frozen (default: build/micropython-32)")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    if a.binary is None:
        mpbuild.build(32, quiet=True)
    res = measure(a.binary)
    print(table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
