# The measurements: each phase takes the servers and load generator it needs, or a Context
# (processes.py) to start them, and returns its figures as a dict. Nothing here keeps state
# between phases.
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time

import runtime
from compile import compile_firmware, OUT as MPY_OUT

from .loadgen import NRELAYS, LoadGen, get_page
from .processes import (
    BOOT_TIMEOUT, IO_TIMEOUT, KINDS, OPEN_RE, PAGE, READY_RE, ROMFS, ROOT, BenchError, Server, stop_child,
)


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))  # nearest rank
    return v[k]


class Clock:
    """Wall time and this process's CPU time over a phase (and the server's, from /proc)."""

    def __init__(self, server):
        self.server = server
        self.w0, self.c0, self.s0 = time.perf_counter(), time.process_time(), server.cpu()

    # The figures of the phase; commands: how many it delivered to every client, for the
    # server's CPU time per command (its user + system time, in clock ticks of 10 ms on Linux:
    # a phase should last a second or more for a figure within a few per cent).
    def stop(self, commands=None):
        s1 = self.server.cpu()
        wall = time.perf_counter() - self.w0
        cpu = s1 - self.s0 if s1 is not None and self.s0 is not None else None
        res = {
            "wall_s": round(wall, 3),
            "loadgen_cpu_s": round(time.process_time() - self.c0, 3),
            "server_cpu_s": round(cpu, 3) if cpu is not None else None,
        }
        if commands:
            res["server_cpu_us_per_command"] = round(cpu * 1e6 / commands, 1) if cpu is not None else None
            res["server_cpu_share"] = round(cpu / wall, 3) if cpu is not None else None  # 1.0: always busy
        return res


# (c) connect n clients one by one: the server's heap for each (None without heap_log), and the
# time from TCP connect until its state message arrived.
def connect_clients(srv, lg, n):
    heaps = []
    times = []
    for k in range(1, n + 1):
        mark = srv.mark()
        t0 = time.perf_counter()
        try:
            p = lg.connect()
        except OSError as e:  # reset or refused during the handshake: the server is out of room
            raise BenchError("%s: client %d: %r during the handshake" % (srv.kind, k, e))
        if not lg.run_until(lambda p=p: p.state is not None):
            raise BenchError("%s: client %d got no state message" % (srv.kind, k))
        times.append((time.perf_counter() - t0) * 1000)
        m = srv.wait_line(OPEN_RE, mark, pred=lambda m, k=k: int(m.group(1)) == k)
        if m is None:
            raise BenchError("%s: no open line for client %d" % (srv.kind, k))
        heaps.append(int(m.group(2)) if m.group(2) else None)
    return heaps, times


# (e) what a phone opening the page waits for: GET / with gzip on a new connection, until the
# last byte of the page is in (the clients stay connected meanwhile); median and p90 of n.
def page_loads(srv, n=100, warmup=10):
    times = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        r = get_page(srv.port, True)
        t = (time.perf_counter() - t0) * 1000
        if r["status"] != 200 or not r["body_bytes"]:
            raise BenchError("%s: page load %d: %r" % (srv.kind, i, r))
        if i >= warmup:
            times.append(t)
    return {"loads": n, "p50_ms": round(pct(times, 50), 3), "p90_ms": round(pct(times, 90), 3)}


# (a) one client toggles relay 0; the time until every client has the relay message.
def latency(srv, lg, commands, warmup=20):
    sender = lg.peers[0]
    frame = sender.frames[0]
    lat = []
    clock = None
    for i in range(warmup + commands):
        if i == warmup:
            clock = Clock(srv)
        targets = [p.counts[0] + 1 for p in lg.peers]
        t0 = time.perf_counter()
        sender.send(frame)
        ok = lg.run_until(lambda targets=targets: all(p.counts[0] >= t for p, t in zip(lg.peers, targets)))
        if not ok:
            raise BenchError("%s: command %d did not reach every client in %ds" % (srv.kind, i, IO_TIMEOUT))
        if i >= warmup:
            lat.append((max(p.t_last for p in lg.peers) - t0) * 1000)
    res = {"commands": commands, "clients": len(lg.peers)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        res[name + "_ms"] = round(pct(lat, p), 3)
    res["mean_ms"] = round(statistics.mean(lat), 3)
    res.update(clock.stop(commands))
    return res


# (b) bursts of pipelined toggles of relay 0, each followed by one toggle of a marker relay
# (1, 2, 3 in turn); `window` bursts in flight (at most 3), so the server does not wait for
# the load generator.
# Once every client has a burst's marker message, every message of that burst is in (each
# server sends in order; ours sends the lowest relay id first), and a marker relay is used
# again only after its last burst is in, so even a server that coalesces relay messages
# (last-writer-wins) never merges two markers. Relay messages every client received per
# second, and commands applied per second.
def throughput(srv, lg, seconds, burst, window=2):
    sender = lg.peers[0]
    data = [sender.frames[0] * burst + sender.frames[m] for m in range(1, NRELAYS)]
    c0 = [list(p.counts) for p in lg.peers]
    for p in lg.peers:
        p.set_fast(True)
    clock = Clock(srv)
    t0 = time.perf_counter()
    pending = []  # (marker relay, [count each client must reach])
    sent = 0
    try:
        while True:
            more = time.perf_counter() - t0 < seconds
            if more and len(pending) < window:
                m = 1 + sent % (NRELAYS - 1)
                pending.append((m, [p.counts[m] + 1 for p in lg.peers]))
                sender.send(data[m - 1])
                sent += 1
                continue
            if not pending:
                break
            m, target = pending.pop(0)
            ok = lg.run_until(lambda m=m, target=target: all(p.counts[m] >= t for p, t in zip(lg.peers, target)))
            if not ok:
                raise BenchError("%s: burst %d did not reach every client in %ds" % (srv.kind, sent, IO_TIMEOUT))
        wall = max(p.t_last for p in lg.peers) - t0
        errors = sum(p.fast_errors for p in lg.peers)
    finally:
        for p in lg.peers:
            p.set_fast(False)
    got = [sum(p.counts) - sum(c) for p, c in zip(lg.peers, c0)]
    res = {
        "burst": burst + 1,
        "bursts": sent,
        "commands": sent * (burst + 1),
        "commands_per_s": round(sent * (burst + 1) / wall, 1),
        "broadcasts_per_s": round(min(got) / wall, 1),  # messages every client received, per second
        "messages_per_client_min": min(got),
        "messages_per_client_max": max(got),
        "errors": errors,
    }
    res.update(clock.stop(sent * (burst + 1)))
    return res


# (d) connect clients one by one, each followed by a page load and a toggle every client must
# see; the number served before the first failure (or MemoryError in the server's output).
def capacity(ctx, kind, rt, heapsize, limit, interp=None):
    srv = Server(ctx, kind, rt, heapsize, max_clients=limit + 1, interp=interp)
    lg = LoadGen(srv.port)
    res = {"heapsize": heapsize, "limit": limit, "clients": 0, "booted": False, "boot_heap": None}
    try:
        m = srv.wait_line(READY_RE, 0, BOOT_TIMEOUT)
        if m is None:
            res["stopped_by"] = "did not boot: " + " | ".join(srv.tail(3))
            res["memory_error"] = srv.memory_error
            return res
        res["booted"] = True
        res["boot_heap"] = int(m.group(1))
        for k in range(1, limit + 1):
            why = None
            try:
                p = lg.connect()
                if not lg.run_until(lambda p=p: p.state is not None, 3):
                    why = "client %d: no state message" % k
                elif get_page(srv.port, timeout=3)["status"] != 200:
                    why = "page load %d failed" % k
                else:
                    targets = [q.counts[0] + 1 for q in lg.peers]
                    lg.peers[0].send(lg.peers[0].frames[0])
                    if not lg.run_until(lambda t=targets: all(q.counts[0] >= n for q, n in zip(lg.peers, t)), 3):
                        why = "toggle %d did not reach all clients" % k
            except (OSError, BenchError) as e:
                why = "client %d: %s" % (k, e)
            if why is None and srv.memory_error:
                why = "MemoryError in the server output"
            if why is None and not srv.alive():
                why = "server exited"
            if why:
                time.sleep(0.2)  # the server's traceback may still be on its way
                res["memory_error"] = me = srv.memory_error
                if me and "MemoryError" not in why:
                    why += " (MemoryError in the server output)"
                res["stopped_by"] = why
                break
            res["clients"] = k
        else:
            res["stopped_by"] = "reached the limit of %d" % limit
        return res
    finally:
        lg.close()
        srv.stop()


# Smallest heap (KiB, to step) at which a server boots and serves `clients` clients; None
# when even hi is not enough. A boot failing other than by MemoryError is an error, not a figure.
def heap_search(ctx, kind, rt, clients, lo=32, hi=512, step=4, interp=None):
    def ok(kb):
        r = capacity(ctx, kind, rt, "%dK" % kb, clients, interp)
        if not r["booted"] and not r.get("memory_error"):
            raise BenchError("%s at heapsize=%dK: %s" % (kind, kb, r.get("stopped_by")))
        return r["booted"] and r["clients"] >= clients

    if not ok(hi):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# Several runs of the same phase: the median of every number, the first of anything else.
def merge_runs(runs):
    first = runs[0]
    if isinstance(first, dict):
        return {k: merge_runs([r[k] for r in runs if isinstance(r, dict) and k in r]) for k in first}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in runs):
        m = statistics.median(runs)
        return round(m, 3) if isinstance(m, float) else m
    if all(isinstance(v, bool) for v in runs):
        return any(runs)
    return first


# A server started and its load generator, both stopped afterwards: yields (srv, lg, the heap
# of its ready line). room: clients it must be able to take; quickack: see LoadGen.
@contextlib.contextmanager
def started(ctx, kind, rt, heapsize, room, interp=None, heap_log=False, quickack=True):
    srv = Server(ctx, kind, rt, heapsize, max_clients=max(16, room + 1), interp=interp, heap_log=heap_log)
    lg = LoadGen(srv.port, quickack)
    try:
        m = srv.wait_line(READY_RE, 0, BOOT_TIMEOUT)
        if m is None:
            label = srv.interp.label
            where = "%s%s, %s" % (rt, ", " + label if label else "", heapsize) if rt == "micropython" else rt
            raise BenchError("%s (%s) did not start: %s" % (kind, where, " | ".join(srv.tail())))
        yield srv, lg, int(m.group(1)) or None
    finally:
        lg.close()
        srv.stop()


# Heap after each of the clients connected, and the steps: first client, median of the others.
def client_heaps(res, heaps):
    steps = [b - x for x, b in zip([res["boot_heap"]] + heaps, heaps)]
    res["client_heaps"] = heaps
    res["first_client_heap"] = steps[0]
    res["per_client_heap"] = statistics.median(steps[1:]) if len(steps) > 1 else None


# (c) heap after boot and as n clients connect, at heapsize, on a MicroPython interpreter.
def heap_run(ctx, kind, heapsize, n, interp):
    with started(ctx, kind, "micropython", heapsize, n, interp, heap_log=True) as (srv, lg, boot):
        res = {"heapsize": heapsize, "boot_heap": boot}
        heaps, _ = connect_clients(srv, lg, n)
        client_heaps(res, heaps)
        return res


# Ours at the capacity heap (--heapsize, 64K) with its code in ROMFS, as on a board: the
# latency with the collections a heap under 128 KB gets (compat.collect_often), next to the
# 256K figures. microdot serves too few clients at 64K to do the same.
def small_heap_latency(ctx, interp=ROMFS):
    a = ctx.opts
    with started(ctx, "ours", "micropython", a.heapsize, a.clients, interp) as (srv, lg, _):
        connect_clients(srv, lg, a.clients)
        res = latency(srv, lg, a.commands)
        res["heapsize"] = a.heapsize
        if srv.memory_error:
            res["memory_error"] = True
        return res


# (a), (b), (e) and the connect time, in one server process on runtime rt.
def perf_run(ctx, kind, rt):
    a = ctx.opts
    # CPython's asyncio sets TCP_NODELAY on its sockets; MicroPython's keep Nagle on (see loadgen.Peer.pump)
    with started(ctx, kind, rt, a.perf_heapsize, a.clients, quickack=rt == "micropython") as (srv, lg, boot):
        res = {"heapsize": a.perf_heapsize if rt == "micropython" else None, "boot_heap": boot}
        _, times = connect_clients(srv, lg, a.clients)
        res["connect_ms"] = round(statistics.median(times), 3)  # TCP connect to state message
        res["latency"] = latency(srv, lg, a.commands)
        res["throughput"] = throughput(srv, lg, a.duration, a.burst, a.window)
        res["page_load"] = page_loads(srv, 30 if a.quick else 100)
        if lg.quickack:
            # One burst in flight and delayed ACKs, as phones do: a server socket with Nagle's
            # algorithm on (MicroPython's) holds its second small write until the client's
            # delayed ACK (40 ms on Linux) instead of sending it at once.
            with lg.delayed_acks():
                res["throughput_delayed_ack"] = throughput(srv, lg, min(1.0, a.duration), a.burst, 1)
        if kind == "ours":
            res["page_gzip"] = get_page(srv.port, True)
            res["page_plain"] = get_page(srv.port, False)
        if srv.memory_error:
            res["memory_error"] = True
        return res


UNMASK_SCRIPT = r"""
import sys, json
sys.path.insert(0, sys.argv[-1])
try:
    from time import ticks_us, ticks_diff
except ImportError:
    from time import perf_counter
    def ticks_us():
        return int(perf_counter() * 1000000)
    def ticks_diff(a, b):
        return a - b
from firmware import websocket as w

N = 65536
mask = bytearray(b"\x37\xfa\x21\x3d")
ref = bytearray(N)
w._unmask_loop(ref, 0, N, mask)

def t(f, reps):
    out = []
    for _ in range(reps):
        buf = bytearray(N)
        t0 = ticks_us()
        f(buf, 0, N, mask)
        out.append(ticks_diff(ticks_us(), t0))
        if buf != ref:
            raise SystemExit("wrong result from %r" % f)
    out.sort()
    return out[len(out) // 2]

res = {"bytes": N, "unmask_is_viper": w.unmask is not w._unmask_int,
       "unmask_us": t(w.unmask, REPS), "int_us": t(w._unmask_int, REPS), "loop_us": t(w._unmask_loop, LOOP_REPS)}
print(json.dumps(res))
"""


# (g) median time to unmask 64 KiB with each implementation.
def unmask_bench(ctx, rt, reps, loop_reps):
    path = os.path.join(ctx.tmp, "unmask_bench.py")
    with open(path, "w") as f:
        f.write(UNMASK_SCRIPT.replace("LOOP_REPS", str(loop_reps)).replace("REPS", str(reps)))
    if rt == "micropython":
        cmd = [runtime.micropython(), "-X", "heapsize=4M", path, MPY_OUT]
    else:
        cmd = [sys.executable, path, ROOT]
    proc = ctx.spawn(cmd, subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop_child(proc)
        raise BenchError("unmask benchmark timed out")
    lines = out.decode().strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError("unmask benchmark failed: %s" % out.decode()[-500:])
    res["reps"] = reps
    res["loop_reps"] = loop_reps
    res["speedup_vs_loop"] = round(res["loop_us"] / max(1, res["unmask_us"]), 1)
    res["speedup_int_vs_loop"] = round(res["loop_us"] / max(1, res["int_us"]), 1)
    return res


def mpy_sizes():
    files = compile_firmware()
    sizes = {os.path.basename(f): os.path.getsize(f) for f in files}
    page_gz = PAGE + ".gz"
    return {
        "total": sum(sizes.values()),
        "files": sizes,
        "page_gz": os.path.getsize(page_gz) if os.path.exists(page_gz) else None,
    }



# The heap and capacity figures of both servers on one MicroPython interpreter: heap after boot
# and per client (at the perf heap, with clients_n clients), clients served at each heap of
# heaps, and unless search_clients is 0 the smallest heaps that boot and that serve
# search_clients clients. log(message) is told what runs. search: (lowest, highest) heap in KiB
# the searches look between; boot_search: False skips the smallest heap that boots.
def interpreter_figures(ctx, interp, heaps, clients_n, search_clients, log, search=(32, 512), boot_search=True):
    rt = "micropython"

    def where(kind):
        return "%s on %s%s" % (kind, rt, ", " + interp.label if interp.label else "")

    res = {"capacity": {}}
    for kind in KINDS:
        log("bench: %s: heap after boot and per client ..." % where(kind))
        res[kind] = heap_run(ctx, kind, ctx.opts.perf_heapsize, clients_n, interp)
    for hs in heaps:
        cap = res["capacity"][hs] = {}
        for kind in KINDS:
            log("bench: %s: clients within heapsize=%s ..." % (where(kind), hs))
            cap[kind] = capacity(ctx, kind, rt, hs, ctx.opts.capacity_max, interp)
    if search_clients:
        boot = res["heap_boot"] = {} if boot_search else None
        found = res["heap_search"] = {"clients": search_clients}
        lo, hi = search
        for kind in KINDS:
            if boot_search:
                log("bench: %s: smallest heap to boot ..." % where(kind))
                boot[kind] = heap_search(ctx, kind, rt, 0, lo, hi, interp=interp)
            log("bench: %s: smallest heap for %d clients ..." % (where(kind), search_clients))
            found[kind] = heap_search(ctx, kind, rt, search_clients, lo, hi, interp=interp)
        if not boot_search:
            del res["heap_boot"]
    return res
