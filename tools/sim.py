#!/usr/bin/env python3
# Run the unmodified firmware on this computer with fake pins: the host simulator.
#   python tools/sim.py [--host H] [--port P] [--runtime cpython|micropython] [--heapsize 128K]
#                       [--config FILE] [--state-dir DIR] [--echo] [--max-message BYTES] [--setup-mode]
#                       [--romfs] [--heap-log] [--frozen [--bits 32|64]]
#                       [--clock 2026-03-29T00:59:30Z] [--clock-rate 60]
# Standard input: a line "pin 32 0" sets input GPIO 32 to level 0 and fires its interrupt.
# After PUT /api/config, where a board resets, it exits with status 75 once the answer is out:
# run it again to start the node with the new config.
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpbuild  # noqa: E402
import romfs  # noqa: E402
import runtime  # noqa: E402
from compile import compile_firmware, OUT  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description="Run relaynode on this computer with fake pins.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: reachable from a phone)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="micropython")
    p.add_argument("--heapsize", default="128K", help="MicroPython heap, e.g. 96K (micropython runtime)")
    p.add_argument("--config", default=os.path.join(runtime.ROOT, "config.json"))
    p.add_argument("--state-dir", default=os.path.join(runtime.ROOT, ".sim-state"), help="the simulated flash")
    p.add_argument("--echo", action="store_true", help="enable the /echo endpoint (conformance suites)")
    p.add_argument("--source", action="store_true", help="micropython: run firmware/*.py instead of compiled .mpy")
    p.add_argument("--max-message", type=int, default=None, metavar="BYTES", help="WebSocket message limit")
    p.add_argument(
        "--setup-mode", action="store_true", help="serve the Wi-Fi setup form at /setup, as a board without Wi-Fi does"
    )
    p.add_argument(
        "--heap-log",
        action="store_true",
        help="log the heap in use (after a full collection) as each WebSocket client joins: for benchmarks, "
        "it delays every client's state message",
    )
    p.add_argument(
        "--romfs",
        action="store_true",
        help="micropython: run the compiled firmware from a ROMFS image mapped outside the heap, as from a "
        "board's romfs partition (tools/romfs.py)",
    )
    p.add_argument(
        "--frozen",
        action="store_true",
        help="run on our own MicroPython build with the firmware frozen in (tools/mpbuild.py, built when "
        "missing or out of date), as a board whose MicroPython has relaynode in its flash",
    )
    p.add_argument("--bits", type=int, choices=(32, 64), default=32, help="--frozen: the build's word size")
    p.add_argument(
        "--clock",
        type=_utc_ms,
        metavar="YYYY-MM-DDTHH:MM:SSZ",
        help="the node's clock starts at this UTC time, served as its NTP (needs a clock section)",
    )
    p.add_argument(
        "--clock-rate", type=int, default=1, metavar="N", help="the node's clock runs N times faster than real time"
    )
    a = p.parse_args(argv)
    if a.clock_rate < 1:
        p.error("--clock-rate must be 1 or more")
    if a.frozen and (a.runtime != "micropython" or a.source or a.romfs):
        p.error("--frozen runs our MicroPython build: not with --runtime cpython, --source or --romfs")
    if a.romfs and (a.runtime != "micropython" or a.source):
        p.error("--romfs runs the compiled firmware under MicroPython: not with --runtime cpython or --source")
    opts = {
        "root": runtime.ROOT,
        "host": a.host,
        "port": a.port,
        "config": os.path.abspath(a.config),
        "state_dir": os.path.abspath(a.state_dir),
        "echo": a.echo,
        "max_message": a.max_message,
        "setup_mode": a.setup_mode,
        "heap_log": a.heap_log,
        "clock_ms": a.clock,
        "clock_rate": a.clock_rate,
    }
    image = None
    interpreter = None
    if a.frozen:
        try:
            interpreter = mpbuild.build(a.bits, quiet=False)
        except mpbuild.BuildError as e:
            raise SystemExit("sim: %s" % e)
        opts["frozen"] = True
    elif a.romfs:
        try:
            romfs.check_launcher()
            image = romfs.build_sim_image()
        except romfs.RomfsError as e:
            raise SystemExit("sim: %s" % e)
    elif a.runtime == "micropython" and not a.source:
        compile_firmware()
        opts["mpy"] = OUT
    script = os.path.join(runtime.ROOT, "tools", "mp", "rom_boot.py" if image else "host_node.py")
    shown = "127.0.0.1" if a.host in ("0.0.0.0", "127.0.0.1") else a.host
    what = a.runtime + (", firmware in ROMFS" if image else "")
    if interpreter:
        what += ", %d-bit, firmware frozen" % a.bits
    print("relaynode simulator (%s): open http://%s:%d/" % (what, shown, a.port))
    if a.host == "0.0.0.0":
        print("from a phone on the same network: http://<this computer's IP>:%d/" % a.port)
    sys.stdout.flush()
    os.environ["RELAYNODE_SIM"] = json.dumps(opts)
    os.environ.update(runtime.board_env())  # the heap placed as on a board (see there)
    if image:
        # the unix port runs in this process, with the image mapped where its heap is not
        sys.exit(romfs.run(image, ["-X", "heapsize=" + a.heapsize, script]))
    if interpreter:
        # host_node is frozen into the build too (tools/mpbuild.py), as a board's start-up code
        # is: imported from .frozen, ahead of every folder on the path
        boot = "import sys\nsys.path.insert(0, '.frozen')\nimport host_node"
        cmd = [interpreter, "-X", "heapsize=" + a.heapsize, "-c", boot]
    else:
        cmd = runtime.command(a.runtime, script, a.heapsize)
    os.execv(cmd[0], cmd)


# "2026-03-29T00:59:30Z" (seconds optional) -> Unix milliseconds.
def _utc_ms(text):
    import calendar
    import time

    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"):
        try:
            return calendar.timegm(time.strptime(text, fmt)) * 1000
        except ValueError:
            pass
    raise argparse.ArgumentTypeError("expected a UTC time like 2026-03-29T00:59:30Z, not %r" % text)


if __name__ == "__main__":
    main()
