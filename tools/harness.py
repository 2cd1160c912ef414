# The node as a subprocess, for the tests (host_tests/) and the benchmarks (tools/bench/): run it
# (tools/sim.py -> tools/mp/host_node.py) under CPython or the MicroPython unix port, on 127.0.0.1
# with a free port, a temporary config and a temporary state directory, and collect what it
# prints; plus small bounded HTTP and raw WebSocket helpers.
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
RUNTIMES = ("cpython", "micropython")
START_TIMEOUT = 20.0


class NodeError(Exception):
    pass


sys.path.insert(0, os.path.join(ROOT, "tools"))
from runtime import MISSING as MICROPYTHON_MISSING, find_micropython  # noqa: E402,F401


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def repo_config():
    with open(os.path.join(ROOT, "config.json")) as f:
        return json.load(f)


# Build a test config: the repo's config.json with name changed, relays[i] updated from
# relays[i] overrides (a list of dicts, or a dict name -> dict), limits merged, and any other
# top-level keys replaced.
def make_config(name="testnode", relays=None, limits=None, **top):
    cfg = repo_config()
    cfg["name"] = name
    if relays:
        if isinstance(relays, dict):
            for r in cfg["relays"]:
                r.update(relays.get(r["name"], {}))
        else:
            for r, o in zip(cfg["relays"], relays):
                r.update(o)
    if limits:
        cfg.setdefault("limits", {}).update(limits)
    cfg.update(copy.deepcopy(top))
    return cfg


class Node:
    # runtime: "cpython" or "micropython"; config: a whole config dict (default: make_config
    # with the remaining keyword arguments); workdir: where config and state go (default: a
    # new temporary directory, removed by cleanup()); romfs: MicroPython runs the firmware from a
    # ROMFS image mapped outside its heap (tools/sim.py --romfs); heap_log: the heap in each
    # client's open line (tools/sim.py --heap-log); sim_args: more tools/sim.py options;
    # micropython: the MicroPython binary to run (default: the one tools/runtime.py finds);
    # frozen: on our MicroPython build of `bits` with the firmware frozen in (tools/sim.py
    # --frozen --bits; build it first, see tools/mpbuild.py, or the start may time out); stdin:
    # the node's standard input is a pipe that pin() writes to (buttons), else nothing.
    def __init__(self, runtime="cpython", config=None, workdir=None, echo=False, max_message=None,
                 heapsize="128K", relays=None, limits=None, name="testnode", setup_mode=False, romfs=False,
                 heap_log=False, sim_args=(), micropython=None, frozen=False, bits=32, stdin=False, **top):
        if runtime not in RUNTIMES:
            raise ValueError("runtime must be one of %s" % (RUNTIMES,))
        self.runtime = runtime
        self.heapsize = heapsize
        self.echo = echo
        self.max_message = max_message
        self.setup_mode = setup_mode
        self.romfs = romfs
        self.heap_log = heap_log
        self.sim_args = list(sim_args)
        self.micropython = micropython
        self.frozen = frozen
        self.bits = bits
        self.stdin = stdin
        self.config = config if config is not None else make_config(name, relays, limits, **top)
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="relaynode-test-")
        self.config_path = os.path.join(self.workdir, "config.json")
        self.state_dir = os.path.join(self.workdir, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.lines = []  # output of the current run
        self.history = []  # output of earlier runs
        self._cond = threading.Condition()
        self._reader = None

    @property
    def url(self):
        return "http://%s:%d/" % (self.host, self.port)

    @property
    def ws_url(self):
        return "ws://%s:%d/ws" % (self.host, self.port)

    def command(self):
        cmd = [sys.executable, SIM, "--host", self.host, "--port", str(self.port), "--runtime", self.runtime,
               "--heapsize", self.heapsize, "--config", self.config_path, "--state-dir", self.state_dir]
        if self.echo:
            cmd.append("--echo")
        if self.max_message:
            cmd += ["--max-message", str(self.max_message)]
        if self.setup_mode:
            cmd.append("--setup-mode")
        if self.romfs:
            cmd.append("--romfs")
        if self.heap_log:
            cmd.append("--heap-log")
        if self.frozen:
            cmd += ["--frozen", "--bits", str(self.bits)]
        return cmd + self.sim_args

    # The environment the node runs in.
    def environ(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.micropython:
            env["MICROPYTHON"] = self.micropython
        return env

    # Start the node and wait until it serves; raises NodeError with its output otherwise.
    def start(self, timeout=START_TIMEOUT):
        if self.proc is not None:
            raise NodeError("node already running")
        mine = self.micropython is not None or self.frozen  # a binary of its own, not the one found
        if self.runtime == "micropython" and not mine and find_micropython() is None:
            raise NodeError(MICROPYTHON_MISSING)
        if self.port is None:
            self.port = free_port()
        with self._cond:
            self.lines = []
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.environ(), stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, bufsize=0,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        try:
            self.wait_for_line("serving http://", timeout)
        except NodeError:
            out = self.stop()
            raise NodeError("node (%s) did not start within %.0f s; output:\n%s" % (self.runtime, timeout, out))
        return self

    def _read(self, proc):
        buf = b""
        while True:
            try:
                chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            if done:
                with self._cond:
                    self.lines.extend(x.decode("utf-8", "replace").rstrip("\r") for x in done)
                    self._cond.notify_all()
        with self._cond:
            if buf:
                self.lines.append(buf.decode("utf-8", "replace"))
            self._cond.notify_all()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # Number of lines so far: pass it as since= to wait for a line printed after this point.
    def mark(self):
        with self._cond:
            return len(self.lines)

    def output(self, since=0):
        with self._cond:
            return "\n".join(self.lines[since:])

    # Lines (of this run, from index since) that contain substring.
    def matching(self, substring, since=0):
        with self._cond:
            return [x for x in self.lines[since:] if substring in x]

    # Wait for a line containing substring (from index since); returns it. Raises NodeError
    # after timeout seconds or when the node exits first.
    def wait_for_line(self, substring, timeout=5.0, since=0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    if substring in line:
                        return line
                left = deadline - time.monotonic()
                exited = self.proc is None or (self.proc.poll() is not None and not self._reader.is_alive())
                if left <= 0 or exited:
                    why = "exited (%s)" % (self.proc and self.proc.returncode) if exited else "timeout %.1f s" % timeout
                    raise NodeError("no line containing %r (%s, %s); output:\n%s" % (
                        substring, self.runtime, why, "\n".join(self.lines[-60:])))
                self._cond.wait(min(left, 0.2))

    # Set input GPIO gpio to level (0 or 1) through the simulator's standard input, as a button
    # would (a Node made with stdin=True); its interrupt handler fires.
    def pin(self, gpio, level):
        self.proc.stdin.write(b"pin %d %d\n" % (gpio, level))
        self.proc.stdin.flush()

    # Stop the node (SIGTERM, then SIGKILL); returns the output of this run.
    def stop(self, timeout=5.0):
        p = self.proc
        if p is None:
            return self.output()
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(timeout)
        for f in (p.stdout, p.stdin):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self.proc = None
        out = self.output()
        self.history.append(out)
        return out

    # Stop and start again on the same port with the same config and state directory.
    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        deadline = time.monotonic() + 5
        while True:  # the old listening socket may linger for a moment
            try:
                return self.start(timeout)
            except NodeError as e:
                if "Address already in use" not in str(e) and "EADDRINUSE" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


# ---- the small-heap case: many WebSocket clients plus page loads ----

# The node's /api/debug: {"heap", "free", "clients", "connections"}.
def debug(port, timeout=5.0):
    status, _, body = http_get(port, "/api/debug", timeout=timeout)
    if status != 200:
        raise AssertionError("/api/debug answered %s" % status)
    return json.loads(body)


# The limits that let `clients` WebSocket clients in, with room for page loads.
def client_limits(clients):
    return {"max_clients": clients, "max_connections": clients + 4}


# Start n (a Node made with client_limits(clients) and a small heap) and check that it serves
# `clients` WebSocket clients at once (each gets the state and every broadcast of a few toggles)
# plus two gzip page loads, and that once they have left its heap is back to where it was once
# ready (within 2 KB). what names the setup in failure messages ("ROMFS", "32-bit frozen");
# connect(n): a WebSocket client that has received its state message. Raises AssertionError with
# the step that failed and the node's output; returns (heap once ready, with every client in,
# after they left) in bytes. Stops n at the end.
def serve_clients_and_page_loads(n, clients, what, connect, timeout=5.0):
    page_path = os.path.join(ROOT, "firmware", "www", "index.html.gz")
    open_ = []
    step = "boot"
    try:
        try:
            n.start()
        except NodeError as e:
            raise AssertionError("no boot at %s, %s: %s" % (n.heapsize, what, e))
        with open(page_path, "rb") as f:
            page = f.read()
        on = False
        ready = {"heap": -1, "free": -1}  # not known yet: the first step asks for it
        try:
            step = "/api/debug once ready"
            ready = debug(n.port, timeout)
            for k in range(clients):
                step = "client %d connecting" % (k + 1)
                open_.append(connect(n))
            for sender in (0, clients // 2, clients - 1):  # a few toggles: every client gets each one
                on = not on
                step = "toggle %s from client %d" % (on, sender + 1)
                open_[sender].send(json.dumps({"type": "toggle", "relay": 0}))
                for c in open_:
                    msg = json.loads(c.recv(timeout=timeout))
                    want = {"type": "relay", "id": 0, "name": "Light", "on": on, "cause": "client"}
                    if msg != want:
                        raise AssertionError("got %r, not %r" % (msg, want))
            for i in range(2):
                step = "page load %d" % (i + 1)
                status, _, body = http_get(n.port, "/", headers=[("Accept-Encoding", "gzip")], timeout=timeout)
                if (status, body) != (200, page):
                    raise AssertionError("status %s, %d bytes" % (status, len(body)))
            step = "/api/debug with every client in"
            full = debug(n.port, timeout)
        except Exception as e:
            time.sleep(0.3)  # the node's traceback may still be on its way
            raise AssertionError(
                "at %s, %s: %d of %d clients in, failed at %s: %r\n"
                "heap once ready %d B (free %d B)\nnode output (end):\n%s"
                % (n.heapsize, what, len(open_), clients, step, e, ready["heap"], ready["free"],
                   "\n".join(n.output().splitlines()[-15:]))
            )
        if full["clients"] != clients:
            raise AssertionError("%d clients counted, not %d: %r" % (full["clients"], clients, full))
        if not n.running() or n.matching("MemoryError"):
            raise AssertionError("node stopped or ran out of memory:\n" + n.output())
        for c in open_:
            c.close()
        open_ = []
        deadline = time.monotonic() + 10
        while True:
            d = debug(n.port, timeout)
            if (d["clients"], d["connections"]) == (0, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if (d["clients"], d["connections"]) != (0, 1):
            raise AssertionError("clients did not leave: %r" % d)
        time.sleep(1.2)  # the relay state is saved (save_delay_ms 1000) and its buffers let go
        left = min(debug(n.port, timeout)["heap"], debug(n.port, timeout)["heap"])
        print("%s, %s: heap once ready %d B, with %d clients %d B, after they left %d B"
              % (n.heapsize, what, ready["heap"], clients, full["heap"], left))
        if left > ready["heap"] + 2048:
            raise AssertionError("heap not given back: ready %r, full %r, after %d B" % (ready, full, left))
        if n.matching("MemoryError"):
            raise AssertionError("MemoryError:\n" + n.output())
        return ready["heap"], full["heap"], left
    finally:
        for c in open_:
            try:
                c.close()
            except Exception:
                pass
        n.cleanup()


# ---- small bounded network helpers ----

# Send raw bytes to the node and read until the peer closes (or timeout); returns bytes.
def raw_request(port, data, timeout=5.0, host="127.0.0.1"):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


# Split a raw HTTP response into (status, headers dict lower-case, body).
def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def http_get(port, path, headers=(), method="GET", timeout=5.0):
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (method, path, port)
    for k, v in headers:
        req += "%s: %s\r\n" % (k, v)
    return parse_response(raw_request(port, (req + "\r\n").encode(), timeout))


def get_state(port, timeout=5.0):
    status, _, body = http_get(port, "/api/state", timeout=timeout)
    if status != 200:
        raise NodeError("/api/state answered %d" % status)
    return json.loads(body)


# ---- raw WebSocket pieces, for what a well-behaved client library will not send ----

def ws_handshake_request(port, path="/ws", key="dGhlIHNhbXBsZSBub25jZQ==", extra=()):
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, key))
    for k, v in extra:
        req += "%s: %s\r\n" % (k, v)
    return (req + "\r\n").encode()


# Open a WebSocket with a raw socket; returns (socket, bytes received after the 101 head).
def raw_ws_open(port, path="/ws", timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall(ws_handshake_request(port, path))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            s.close()
            raise NodeError("connection closed during handshake: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        raise NodeError("handshake refused: %r" % head)
    return s, rest


# Parse complete unmasked server frames from data: ([(opcode, payload)], leftover bytes).
def parse_frames(data):
    frames = []
    i = 0
    while len(data) - i >= 2:
        op = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            if len(data) - j < 2:
                break
            n = int.from_bytes(data[j:j + 2], "big")
            j += 2
        elif n == 127:
            if len(data) - j < 8:
                break
            n = int.from_bytes(data[j:j + 8], "big")
            j += 8
        if len(data) - j < n:
            break
        frames.append((op, bytes(data[j:j + n])))
        i = j + n
    return frames, data[i:]


# Read server frames from a raw socket until it closes (or timeout); returns [(opcode, payload)].
def read_frames_until_eof(s, data=b"", timeout=5.0):
    deadline = time.monotonic() + timeout
    s.settimeout(timeout)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return parse_frames(data)[0]


def masked_frame(opcode, payload, mask=b"\x11\x22\x33\x44", fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0xFE]) + n.to_bytes(2, "big")
    else:
        head += bytes([0xFF]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
