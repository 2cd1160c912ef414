# `make bench`: figures for relaynode next to a microdot reference on the same runtime.
# Benchmarks only (nothing here is a pass/fail test): command->all-clients latency,
# sustained broadcasts, the server's CPU time per command, heap after boot and per client,
# clients served within a small heap, page bytes on the wire, .mpy size, and the speed of
# WebSocket unmasking. Under MicroPython the heap and capacity figures are taken twice: with each
# server's code imported from the filesystem (copied into the heap), and from a ROMFS image
# mapped outside the heap, where it runs in place as on a board with a romfs partition
# (tools/romfs.py; --no-romfs skips these); --interpreter adds them for another binary.
#
#   python -m tools.bench [--runtime cpython|micropython|both] [--clients 8] [--commands 1000]
#                         [--heapsize 64K] [--perf-heapsize 256K] [--repeat 5] [--quick] [--json FILE]
#   (python tools/bench works too; --help lists the rest; BENCHMARKS.md explains every figure)
#
# Both servers are child processes on 127.0.0.1; the load generator is this process (loadgen.py;
# its own CPU time is reported next to the wall time, so you can see it is not the bottleneck).
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import romfs

from . import board, clock, links, phases, report
from .processes import FILESYSTEM, KINDS, ROMFS, BenchError, Context, Interpreter


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tools.bench", description="relaynode benchmarks next to a microdot reference.")
    p.add_argument("--runtime", choices=("cpython", "micropython", "both"), default="both")
    p.add_argument("--clients", type=int, default=8, help="clients for latency and throughput")
    p.add_argument("--commands", type=int, default=1000, help="commands timed for latency (at least 200)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of the throughput phase")
    p.add_argument("--burst", type=int, default=32, help="pipelined toggles per throughput burst")
    p.add_argument("--window", type=int, default=3, choices=(1, 2, 3), help="throughput bursts in flight")
    p.add_argument("--heapsize", default="64K", help="micropython heap for the capacity figure")
    p.add_argument("--perf-heapsize", default="256K", help="micropython heap for latency/throughput/heap figures")
    p.add_argument("--capacity-max", type=int, default=32, help="stop the capacity count here")
    p.add_argument("--capacity-heaps", default="128K", help="more heap sizes to count clients at (comma list)")
    p.add_argument(
        "--search-clients", type=int, default=12, help="find the smallest heap serving this many clients (0: skip)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of latency/throughput/heap per server, fresh process each; medians reported",
    )
    p.add_argument("--quick", action="store_true", help="a short run (one repeat, fewer commands, no heap search)")
    p.add_argument("--no-romfs", action="store_true", help="skip the figures with the code in ROMFS (micropython)")
    p.add_argument(
        "--interpreter",
        action="append",
        default=[],
        metavar="LABEL=BINARY",
        help="heap and capacity figures of both servers on another MicroPython unix port binary too, in rows "
        "labelled LABEL (repeatable)",
    )
    p.add_argument("--no-board", action="store_true",
                   help="skip the board-faithful figures (32-bit builds: frozen, .mpy, ROMFS; board.py)")
    p.add_argument("--small-heap-runs", type=int, default=10,
                   help="runs of the 24K case (12 clients, 2 page loads, 1 link) on the 32-bit frozen build")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON here")
    a = p.parse_args(argv)
    for spec in a.interpreter:
        label, _, binary = spec.partition("=")
        if not label or not binary:
            p.error("--interpreter takes LABEL=BINARY, not %r" % spec)
    if a.quick:
        a.commands, a.duration, a.capacity_max, a.search_clients = min(a.commands, 200), 1.0, 14, 0
        a.repeat = 1
    return a


# The heap sizes the capacity figure counts clients at: --heapsize first, then --capacity-heaps.
def capacity_heaps(a):
    return [a.heapsize] + [h for h in a.capacity_heaps.split(",") if h and h != a.heapsize]


# The heap and capacity figures on interpreter interp, for the rows labelled interp.label.
def interpreter_figures(ctx, interp):
    a = ctx.opts
    return phases.interpreter_figures(ctx, interp, capacity_heaps(a), a.clients, a.search_clients, log)


# The ROMFS figures: those of interpreter_figures with each server's code in a ROMFS image, and
# our node's latency at the capacity heap (--heapsize) with the collections a small heap gets.
def romfs_figures(ctx):
    try:
        romfs.check_launcher()
    except romfs.RomfsError as e:
        log("bench: ROMFS figures skipped: %s" % e)
        return {"skipped": str(e)}
    res = interpreter_figures(ctx, ROMFS)
    log("bench: ours on micropython, ROMFS: latency at heapsize=%s ..." % ctx.opts.heapsize)
    try:
        res["small_heap_latency"] = phases.small_heap_latency(ctx, ROMFS)
    except BenchError as e:
        res["small_heap_latency"] = {"error": str(e)}
    return res


# Every figure on runtime rt, into r (results["runs"][rt]).
def run_runtime(ctx, rt, r, results):
    a = ctx.opts
    runs = {kind: [] for kind in KINDS}
    for i in range(a.repeat):  # interleaved, so a busy moment on the machine hits both
        for kind in KINDS:
            log("bench: %s on %s: latency, throughput, heap (run %d of %d) ..." % (kind, rt, i + 1, a.repeat))
            runs[kind].append(phases.perf_run(ctx, kind, rt))
    for kind in KINDS:
        r[kind] = phases.merge_runs(runs[kind])
        if a.repeat > 1:
            r[kind]["runs"] = runs[kind]
    if rt == "micropython" and not a.no_board:
        try:
            r["board"] = board.figures(ctx, log)
        except (BenchError, board.mpbuild.BuildError, board.mosquitto.BrokerError) as e:
            log("bench: board-faithful figures failed: %s" % e)
            r["board"] = {"error": str(e)}
    if rt == "micropython":
        # heap per client in runs of their own: the heap lines cost each connection a collection
        fig = interpreter_figures(ctx, FILESYSTEM)
        for kind in KINDS:
            for key in ("client_heaps", "first_client_heap", "per_client_heap"):
                r[kind][key] = fig[kind][key]
        for key in ("capacity", "heap_boot", "heap_search"):
            if key in fig:
                r[key] = fig[key]
        if not a.no_romfs:
            r["romfs"] = romfs_figures(ctx)
        for spec in a.interpreter:
            label, _, binary = spec.partition("=")
            r.setdefault("interpreters", {})[label] = interpreter_figures(ctx, Interpreter(label, binary))
    if rt == "micropython":
        log("bench: heap of the clock, 16 schedules and 4 inputs (32-bit frozen) ...")
        r["clock_heap"] = clock.measure()
    log("bench: link A -> B -> B's clients on %s ..." % rt)
    r["link_latency"] = links.measure(rt, commands=100 if a.quick else 300)
    log("bench: unmask on %s ..." % rt)
    results.setdefault("unmask", {})[rt] = phases.unmask_bench(
        ctx, rt, 9 if rt == "micropython" else 15, 3 if a.quick else 5
    )
    o = r["ours"]
    if "page_gzip" in o:
        results["page"] = {"gzip": o.pop("page_gzip"), "plain": o.pop("page_plain")}


# Run the whole bench with options a; returns the results (what --json writes).
def run(a, cmdline):
    rts = ("cpython", "micropython") if a.runtime == "both" else (a.runtime,)
    results = {"machine": report.machine(), "command": cmdline.strip(), "options": vars(a), "runs": {}}
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="rnb", dir="/tmp" if os.path.isdir("/tmp") else None)
    ctx = Context(a, tmp)

    def on_signal(signum, frame):
        ctx.stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        results["mpy"] = phases.mpy_sizes()
        for rt in rts:
            run_runtime(ctx, rt, results["runs"].setdefault(rt, {}), results)
        if "micropython" in rts:
            results["mpy"]["microdot_total"] = ctx.microdot_size()
    except KeyboardInterrupt:
        ctx.stop_all()
        raise SystemExit(130)
    finally:
        ctx.stop_all()
        subprocess.run(["rm", "-rf", tmp])
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    if hasattr(os, "getloadavg"):
        results["machine"]["loadavg_end"] = os.getloadavg()
    results["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in report.targets(results)]
    return results


def main(argv=None):
    a = parse(argv)
    cmdline = "python -m tools.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    results = run(a, cmdline)
    report.print_report(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
        print("\nwrote %s" % a.json)
