# The servers under test and every other child process of the bench. Ours is started through the
# node harness (tools/harness.py: its config and tools/sim.py command line), microdot's reference
# (ref_microdot.py) directly. Each child runs in its own process group, its output goes to a file,
# and Context.stop_all() ends them all, also on errors and Ctrl-C.
import json
import os
import re
import signal
import subprocess
import sys
import time

import harness
import romfs
import runtime
from compile import mpy_cross

ROOT = runtime.ROOT
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")
REF_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref_microdot.py")
KINDS = ("ours", "microdot")
IO_TIMEOUT = 5.0  # seconds: any single wait of the load generator
BOOT_TIMEOUT = 20.0
READY_RE = re.compile(r"serving http://\S+ \(heap (\d+)\)")
OPEN_RE = re.compile(r"open \((\d+) clients(?:, heap (\d+))?\)")  # the heap with heap_log (Server)
# The relays of the bench config: relay 0 (Light) is toggled, 1-3 mark the ends of throughput bursts.
RELAYS = (("Light", 26), ("Fan", 27), ("Pump", 25), ("Gate", 33))


class BenchError(Exception):
    pass


# How the servers run under MicroPython. label: the prefix of this interpreter's rows and its
# key in the results; binary: the micropython executable (None: the one tools/runtime.py finds);
# romfs: each server's code in a ROMFS image mapped outside the heap (through tools/romfs.py's
# in-process launcher, so not with binary); sim_args: more tools/sim.py options for ours (e.g. a
# build with the firmware frozen in); microdot_binary: microdot's executable when it differs
# from binary; microdot_frozen: microdot and ref_microdot.py are built into that executable
# (nothing on sys.path); rom_modules: (ours, microdot's) names of modules frozen into binary whose
# IMAGE is each server's ROMFS image (tools/bench/board.py), mounted at /rom and imported from.
class Interpreter:
    def __init__(self, label, binary=None, romfs=False, sim_args=(), microdot_binary=None, microdot_frozen=False,
                 rom_modules=None):
        self.label = label
        self.binary = binary
        self.romfs = romfs
        self.sim_args = tuple(sim_args)
        self.microdot_binary = microdot_binary
        self.microdot_frozen = microdot_frozen
        self.rom_modules = rom_modules

    def __repr__(self):
        return "Interpreter(%r)" % self.label


FILESYSTEM = Interpreter("")  # the unix port from the venv, code imported from .mpy files
ROMFS = Interpreter("ROMFS", romfs=True)


# What one bench run shares: its options, a temporary folder, the child processes started, and
# microdot's package compiled once (.mpy files and a ROMFS image).
class Context:
    def __init__(self, opts, tmp):
        self.opts = opts
        self.tmp = tmp
        self.children = []
        self.dirs = 0
        self.microdot = {}

    # A new folder for one server. Short paths: the MicroPython unix port dies ("FATAL: uncaught
    # NLR") on a command-line argument of 256 bytes or more; the microdot reference takes its
    # options as one.
    def new_dir(self, kind):
        self.dirs += 1
        d = os.path.join(self.tmp, "%s%d" % (kind[0], self.dirs))
        os.mkdir(d)
        return d

    # Start cmd in its own process group; it is stopped by stop_all() at the latest.
    def spawn(self, cmd, stdout, cwd=None, env=None):
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=cwd, env=env,
        )
        self.children.append(proc)
        return proc

    def stop_all(self):
        for p in self.children:
            stop_child(p)

    # microdot's package compiled to .mpy (as our firmware is), so neither server pays for the
    # compiler at import; returns the folder to put on sys.path.
    def microdot_mpy(self):
        if "path" not in self.microdot:
            import microdot

            src = os.path.dirname(microdot.__file__)
            out = os.path.join(self.tmp, "md")
            os.makedirs(os.path.join(out, "microdot"), exist_ok=True)
            size = 0
            for name in ("__init__", "microdot", "websocket", "helpers"):
                dst = os.path.join(out, "microdot", name + ".mpy")
                subprocess.run([mpy_cross(), "-o", dst, os.path.join(src, name + ".py")], check=True)
                size += os.path.getsize(dst)
            self.microdot["path"] = out
            self.microdot["size"] = size
        return self.microdot["path"]

    # The total size of microdot's .mpy files.
    def microdot_size(self):
        self.microdot_mpy()
        return self.microdot["size"]

    # The same .mpy files as one ROMFS image (/microdot/*.mpy), built as our firmware's is.
    def microdot_image(self):
        if "image" not in self.microdot:
            pkg = os.path.join(self.microdot_mpy(), "microdot")
            tree = {"microdot": {f: os.path.join(pkg, f) for f in os.listdir(pkg) if f.endswith(".mpy")}}
            self.microdot["image"] = romfs.write_image(tree, os.path.join(self.tmp, "md.img"))
        return self.microdot["image"]


# The bench's config for our node: four relays, limits raised so that none caps a figure.
def node_config(max_clients):
    return {
        "name": "relaynode",
        "relays": [{"name": n, "pin": g} for n, g in RELAYS],
        "limits": {
            "max_clients": max_clients,
            "max_connections": max_clients + 4,
            "max_rate": 1000000,
            "ping_interval_ms": 600000,
            "idle_timeout_ms": 600000,
        },
    }


# The command line (and environment) that runs one server.
def server_command(ctx, kind, rt, heapsize, port, d, max_clients, interp, heap_log):
    if kind == "ours":
        node = harness.Node(
            rt, config=node_config(max_clients), workdir=d, heapsize=heapsize, romfs=interp.romfs,
            heap_log=heap_log, sim_args=interp.sim_args, micropython=interp.binary,
        )
        node.port = port
        if interp.rom_modules:
            return rom_node_command(node, interp.binary, interp.rom_modules[0])
        return node.command(), node.environ()
    opts = {"host": "127.0.0.1", "port": port, "page": PAGE, "heap_log": heap_log}
    if interp.rom_modules:
        env = runtime.board_env(dict(os.environ, RELAYNODE_ROMFS=interp.rom_modules[1]))
        return [interp.binary, "-X", "heapsize=" + heapsize, REF_APP, json.dumps(opts)], env
    if interp.romfs:  # the unix port in a Python process that maps microdot's image
        cmd = [sys.executable, os.path.join(ROOT, "tools", "romfs.py"), "run", ctx.microdot_image(), "--"]
        return cmd + ["-X", "heapsize=" + heapsize, REF_APP, json.dumps(opts)], None
    if rt == "micropython":
        binary = interp.microdot_binary or interp.binary or runtime.micropython()
        env = runtime.board_env()  # the heap placed as on a board, as for ours (tools/sim.py)
        if interp.microdot_frozen:
            return [binary, "-X", "heapsize=" + heapsize, "-c", "import ref_microdot", json.dumps(opts)], env
        opts["path"] = ctx.microdot_mpy()
        return [binary, "-X", "heapsize=" + heapsize, REF_APP, json.dumps(opts)], env
    return runtime.command(rt, REF_APP, heapsize) + [json.dumps(opts)], None


# Our node on binary with its ROMFS image frozen in as module's IMAGE: what tools/sim.py --romfs
# does with a mapped image (the same options for tools/mp/host_node.py, the same mount at /rom).
def rom_node_command(node, binary, module):
    opts = {
        "root": ROOT, "host": node.host, "port": node.port, "config": node.config_path, "state_dir": node.state_dir,
        "echo": False, "max_message": None, "setup_mode": False, "heap_log": node.heap_log,
    }
    boot = "import sys, vfs, %s\nvfs.mount(vfs.VfsRom(%s.IMAGE), '/rom')\nsys.path.insert(0, '/rom')\n" % (
        module, module)
    env = dict(os.environ, RELAYNODE_SIM=json.dumps(opts), RELAYNODE_ROMFS=module, PYTHONUNBUFFERED="1")
    env = runtime.board_env(env)
    return [binary, "-X", "heapsize=" + node.heapsize, "-c", boot + "del vfs, %s\nimport host_node" % module], env


class Server:
    """One server under test: a child process, its output in a file read as needed."""

    # interp: how it runs under MicroPython (default: FILESYSTEM). heap_log: each client's open
    # line gives the heap after a full collection; only for the heap figures, as the collection
    # delays the client's state message (connect_ms).
    def __init__(self, ctx, kind, rt, heapsize, max_clients=16, interp=None, heap_log=False):
        self.kind, self.rt, self.heapsize = kind, rt, heapsize
        self.interp = interp or FILESYSTEM
        self.port = harness.free_port()
        self.lines = []
        self._memory_error = False
        d = ctx.new_dir(kind)
        cmd, env = server_command(ctx, kind, rt, heapsize, self.port, d, max_clients, self.interp, heap_log)
        # Output goes to a file, not a pipe: the node prints a line or two per relay change, and
        # a pipe that the busy load generator drains late would block the server on its prints.
        log_path = os.path.join(d, "out.log")
        with open(log_path, "wb") as out:
            self.proc = ctx.spawn(cmd, out, cwd=d, env=env)
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
            # the node's own words for a MemoryError it caught (a config too big to check)
            if "MemoryError" in line or "not enough memory" in line:
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

    # CPU seconds the server process has used so far.
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


# CPU seconds (user + system: utime + stime in clock ticks) used so far by process pid, from
# /proc; None elsewhere.
def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
