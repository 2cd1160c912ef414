#!/usr/bin/env python3
# Where the node's heap goes on the board-faithful build: the MicroPython unix port with the
# firmware frozen in (tools/mpbuild.py; 32-bit by default, the ESP32's word size). Runs
# tools/mp/heapmap.py on it and prints, per step (each module imported, the node built, the
# server listening, running), the heap in use and what the step added, then the qstrs made at
# run time.
#   python tools/heapmap.py [--bits 32|64] [--config FILE] [--json FILE]
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpbuild  # noqa: E402
import runtime  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAST = "running (timers ticked, a page's state made)"  # the last step of tools/mp/heapmap.py


# [(step, bytes in use, bytes added)], the qstr_info line and the modules loaded once running,
# from one run of the interpreter.
def measure(binary, config, heapsize="256K", timeout=60):
    with tempfile.TemporaryDirectory() as state:
        env = runtime.board_env()
        page = os.path.join(ROOT, "firmware", "www", "index.html")
        env["RELAYNODE_HEAPMAP"] = json.dumps({"config": os.path.abspath(config), "state_dir": state, "page": page})
        p = subprocess.run(
            [binary, "-X", "heapsize=" + heapsize, os.path.join(ROOT, "tools", "mp", "heapmap.py")],
            cwd=state,  # nothing of the repository on the path: the frozen firmware is imported
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    steps, qstr, modules = [], None, None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            if "modules" in d:
                modules = d["modules"]
            else:
                steps.append((d["step"], d["bytes"]))
        elif line.startswith("qstr pool"):
            qstr = line.strip()
    if p.returncode != 0 or not steps or steps[-1][0] != LAST:
        raise RuntimeError("heapmap failed (exit %d): %s%s" % (p.returncode, p.stdout[-800:], p.stderr[-800:]))
    base = steps[0][1]
    out, prev = [], base
    for name, b in steps[1:]:
        out.append((name, b - base, b - prev))
        prev = b
    return out, qstr, modules


def table(rows, qstr, label):
    lines = ["heap on %s (bytes, after a full collection)" % label, "%-42s %8s %8s" % ("step", "in use", "added")]
    for name, total, added in rows:
        lines.append("%-42s %8d %+8d" % (name, total, added))
    if qstr:
        lines.append(qstr)
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description="Where the node's heap goes on the firmware-frozen MicroPython build.")
    p.add_argument("--bits", type=int, choices=(32, 64), default=32)
    p.add_argument("--config", default=os.path.join(ROOT, "config.json"))
    p.add_argument("--json", metavar="FILE", help="also write the steps as JSON")
    a = p.parse_args(argv)
    try:
        binary = mpbuild.interpreter(a.bits)
    except mpbuild.BuildError as e:
        print("heapmap: %s" % e, file=sys.stderr)
        return 2
    rows, qstr, _ = measure(binary, a.config)
    print(table(rows, qstr, "%d-bit MicroPython, firmware frozen, %s" % (a.bits, os.path.basename(a.config))))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bits": a.bits, "steps": rows, "qstr": qstr}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
