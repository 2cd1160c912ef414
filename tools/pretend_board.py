#!/usr/bin/env python3
# A pretend ESP32 on a serial port: the MicroPython unix port behind a pseudo-terminal, so
# mpremote (and tools/deploy.py, and `make flash`) talk to it as to a board on USB serial.
#   python tools/pretend_board.py [--flash DIR] [--heapsize 176K] [--ip 127.0.0.1]
#                                 [--wifi SSID:PASSWORD ...] [--wifi-after SECONDS SSID:PASSWORD ...]
#                                 [--dns-port PORT] [--quiet] [--show-raw] [--romfs SIZE]
#                                 [--frozen [--bits 32|64]]
# It prints "pretend board on /dev/pts/N"; then `mpremote connect /dev/pts/N ...` works: raw
# REPL, raw-paste, friendly REPL, Ctrl-C, soft reset, machine.reset(). Its flash is the folder
# DIR, mounted as the board's /. After every reset it runs boot.py, then main.py, with fake
# machine and network modules (tools/mp/fakeboard/): pins print "GPIO26 -> 0", Wi-Fi joins only
# the --wifi networks, and the node it starts listens on --ip. A --wifi-after network comes
# into range SECONDS after the pretend board starts; SIGUSR1 takes every network out of range
# (the router switched off), SIGUSR2 brings them back. The networks in range are a small JSON
# file this program rewrites and the fake network module reads (FAKEBOARD's "air"). The
# captive portal's DNS, port 53 on a board, answers on --dns-port here (none without it).
# Its watchdog bites as the ESP32's does: a machine.WDT not fed for its timeout resets the
# board (the fake WDT rewrites a small file at every feed; this program watches its age).
# Everything the board prints is also copied to this program's output, like a serial monitor.
# With --romfs it also has a romfs partition of SIZE bytes (the file DIR.romfs), as a
# MicroPython built with one (see startup.py): `mpremote romfs deploy` and `make flash ROMFS=1`
# write to it, and the image there is mounted at /rom at every boot. That needs the PyPI unix
# port, which tools/romfs.py runs in-process.
# With --frozen it runs our own MicroPython build with the firmware frozen in (tools/mpbuild.py,
# built when missing or out of date), as a board whose MicroPython was built with relaynode's
# manifest.py: `make flash` then copies only boot.py, main.py, config.json and the page.
#
# How: this process owns the "USB serial" pty. Each boot of the board is a new process,
# `micropython -i tools/mp/fakeboard/startup.py`, whose controlling terminal is a second pty: the
# unix port's own REPL runs there (it has the raw REPL and raw-paste mode), and the kernel turns
# Ctrl-C into SIGINT while Python code runs, as a board's UART interrupt does. When that process
# ends (Ctrl-D at the REPL, sys.exit(), machine.reset(), a crash) a new one starts: the reset.
import argparse
import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import termios
import time
import tty

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
STARTUP = os.path.join(TOOLS, "mp", "fakeboard", "startup.py")
sys.path.insert(0, TOOLS)
import runtime  # noqa: E402

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PROMPT = b">>> "
_HELD_MAX = 65536  # bytes kept for a board that is starting (a UART buffer, not a disk)


# The simulator's 128K plus what only the pretend board holds: the fake machine and network
# modules (about 10 KB of bytecode in the heap, measured; a real board has them in ROM), the
# REPL it keeps loaded, and about 7 KB that its first WebSocket client leaves allocated (seen
# on the pretend board only, not in the simulator: not yet explained). At 144K the heap was
# fragmented enough for a 640-byte allocation to fail with 50 KB free now and then; at 160K,
# once the fake input pins' code was added, a board serving its access point's setup page ran
# out.
HEAPSIZE = "176K"

class PretendBoard:
    # later: [(seconds, ssid, password)], networks that come into range that long after start.
    # frozen: None (the PyPI unix port), or 32 or 64: our build of that word size with the
    # firmware frozen in.
    def __init__(
        self, flash, heapsize=HEAPSIZE, ip="127.0.0.1", networks=None, console=None, show_raw=False, romfs=0,
        frozen=None,
        later=(),
        dns_port=0,
    ):
        self.flash = os.path.abspath(flash)
        self.romfs = None  # the romfs partition's file
        if romfs and frozen:
            raise SystemExit("pretend board: --romfs needs the PyPI unix port, not --frozen")
        if romfs:
            import romfs as romfs_tool

            try:
                romfs_tool.check_launcher()
            except romfs_tool.RomfsError as e:
                raise SystemExit("pretend board: --romfs: %s" % e)
            self.romfs = self.flash.rstrip("/") + ".romfs"
            if not os.path.exists(self.romfs) or os.path.getsize(self.romfs) != romfs:
                with open(self.romfs, "wb") as f:
                    f.write(b"\xff" * romfs)  # erased flash
        self.heapsize = heapsize
        self.ip = ip
        self.networks = networks or {}
        self.later = sorted(later)
        self.dns_port = dns_port
        self.started = time.monotonic()
        self.dropped = False  # SIGUSR1: every network out of range until SIGUSR2
        fd, self.air_path = tempfile.mkstemp(prefix="pretend-board-air-", suffix=".json")
        os.close(fd)
        # the board's watchdog: its timeout in ms, rewritten at every feed (fakeboard/machine.py)
        fd, self.dog_path = tempfile.mkstemp(prefix="pretend-board-wdt-")
        os.close(fd)
        # input pins (buttons, switches): a line "pin GPIO LEVEL" on standard input sets a level;
        # it goes to the board through this file, which fakeboard/machine.py reads as it grows
        fd, self.pins_path = tempfile.mkstemp(prefix="pretend-board-pins-")
        os.close(fd)
        self.levels = {}  # GPIO -> level set so far: a new boot starts with them
        self.stdin_open = True
        self.stdin_held = b""
        self.air = None  # the networks in range, as last written to air_path
        # signals only set a flag; their wake-up byte (signal.set_wakeup_fd) ends the select
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.console = console  # a binary stream that gets a copy of the board's output
        self.show_raw = show_raw
        if frozen:
            import mpbuild

            try:
                self.micropython = mpbuild.build(frozen, quiet=False)
            except mpbuild.BuildError as e:
                raise SystemExit("pretend board: --frozen: %s" % e)
        else:
            self.micropython = runtime.micropython()
        # The "USB serial" side. We keep the slave open too, so the line stays up while no
        # program has the port open; what the board prints then is dropped once the pty is full.
        self.host, self.host_slave = os.openpty()
        tty.setraw(self.host_slave)  # raw, echo off: \r\n stays \r\n
        os.set_blocking(self.host, False)
        self.path = os.ttyname(self.host_slave)
        self.proc = None
        self.board = None  # our end of the running MicroPython process's terminal
        self.to_board = bytearray()
        self.stopping = False

    # Start MicroPython for one boot. mode: power, hard, soft, raw (see startup.py).
    def boot(self, mode):
        fd, slave = os.openpty()
        tty.setraw(slave)
        attr = termios.tcgetattr(slave)
        # Ctrl-C raises SIGINT while Python runs (the REPL turns this off while it reads);
        # no other signal characters, and keep the input when it fires.
        attr[3] |= termios.ISIG | termios.NOFLSH
        attr[6][termios.VINTR] = b"\x03"
        attr[6][termios.VQUIT] = attr[6][termios.VSUSP] = b"\x00"
        termios.tcsetattr(slave, termios.TCSANOW, attr)
        env = runtime.board_env()  # its heap placed as on a board (see there)
        self.update_air()
        opts = {"mode": mode, "flash": self.flash, "ip": self.ip, "networks": self.air, "air": self.air_path}
        opts["dns_port"] = self.dns_port
        with open(self.dog_path, "w"):
            pass  # a reset stops the watchdog
        opts["watchdog"] = self.dog_path
        opts["pins"] = self.pins_path
        opts["levels"] = dict((str(g), v) for g, v in self.levels.items())
        env["FAKEBOARD"] = json.dumps(opts)
        cmd = [self.micropython, "-X", "heapsize=" + self.heapsize, "-i", STARTUP]
        if self.romfs:  # the unix port in a Python process that maps the partition
            cmd = [sys.executable, os.path.join(TOOLS, "romfs.py"), "run", "--writable", self.romfs, "--"] + cmd[1:]
        try:
            io = {"stdin": slave, "stdout": slave, "stderr": slave}
            self.proc = subprocess.Popen(cmd, env=env, preexec_fn=_own_terminal, **io)
        except OSError as e:
            raise SystemExit("pretend board: cannot start %s: %s" % (self.micropython, e))
        finally:
            os.close(slave)
        os.set_blocking(fd, False)
        self.board = fd
        self.mode = mode
        self.ready = False  # until it prints: input waits, so a Ctrl-C cannot arrive too early
        self.held = bytearray()
        self.raw = mode == "raw"  # which REPL it is in, from what it prints
        self.tail = b""
        self.last_cr = False
        self.in_raw = False  # the console copy is inside a raw REPL session
        # After a soft reset in the raw REPL the board comes back in the raw REPL.
        self.to_board = bytearray(b"\x01" if mode == "raw" else b"")

    # The networks in range now: --wifi, the --wifi-after ones that are due, none after SIGUSR1.
    # Written in place (the board keeps the file open and reads it again), with a console note
    # on every change.
    def update_air(self):
        air = {}
        if not self.dropped:
            air.update(self.networks)
            since = time.monotonic() - self.started
            for secs, ssid, password in self.later:
                if since >= secs:
                    air[ssid] = password
        if air == self.air:
            return
        if self.air is not None:
            gone = sorted(set(self.air) - set(air))
            new = sorted(set(air) - set(self.air))
            if gone:
                self._note("Wi-Fi out of range: %s" % ", ".join(gone))
            if new:
                self._note("Wi-Fi in range: %s" % ", ".join(new))
        self.air = air
        with open(self.air_path, "w") as f:
            f.write(json.dumps(air))

    # SIGUSR1 (True) and SIGUSR2 (False): a flag, applied by run() (a signal handler must not
    # write to the console, which may be in the middle of a write).
    def drop_networks(self, dropped):
        self.dropped = dropped

    # A line of the pretend board's own on its console copy only (the serial line may be
    # mpremote's raw REPL).
    def _note(self, msg):
        if self.console is not None:
            self.console.write(b"\r\npretend board: %s\r\n" % msg.encode())
            self.console.flush()

    def run(self):
        self.boot("power")
        while not self.stopping:
            self.update_air()
            self.watchdog()
            rd = [self.host, self.board, self.wake_r] + ([0] if self.stdin_open else [])
            wr = [self.board] if self.to_board else []
            try:
                r, w, _ = select.select(rd, wr, [], 0.25)
            except InterruptedError:
                continue
            if self.wake_r in r:
                try:
                    os.read(self.wake_r, 64)
                except BlockingIOError:
                    pass
                continue  # update_air() first
            if 0 in r:
                self._from_stdin()
            if self.host in r:
                self._from_host()
            if self.board in w:
                self._flush_to_board()
            if self.board in r:
                if not self._from_board():
                    self._restart()
            elif self.proc.poll() is not None:  # ended, and its terminal has nothing left
                self._restart()

    # The watchdog bites: the board has not fed it for its timeout, so it is reset (killed, as
    # machine.reset() does it; the next boot is a hard reset).
    def watchdog(self):
        try:
            with open(self.dog_path) as f:
                timeout = int(f.read().strip() or 0)
            since = time.time() - os.stat(self.dog_path).st_mtime
        except (OSError, ValueError):
            return
        if timeout and since * 1000 > timeout and self.proc.poll() is None:
            self._say(b"\r\npretend board: watchdog reset (not fed for %d ms)\r\n" % timeout)
            with open(self.dog_path, "w"):
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        for p in (self.air_path, self.dog_path, self.pins_path):
            try:
                os.remove(p)
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()

    # Lines on standard input: "pin GPIO LEVEL" sets an input pin's level (the board's pin
    # interrupt fires for the edge); anything else is answered with what is expected.
    def _from_stdin(self):
        try:
            data = os.read(0, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self.stdin_open = False
            return
        *lines, self.stdin_held = (self.stdin_held + data).split(b"\n")
        for line in lines:
            words = line.decode("utf-8", "replace").split()
            if not words:
                continue
            if len(words) == 3 and words[0] == "pin" and words[1].isdigit() and words[2] in ("0", "1"):
                gpio, level = int(words[1]), int(words[2])
                self.levels[gpio] = level
                with open(self.pins_path, "a") as f:
                    f.write("%d %d\n" % (gpio, level))
            else:
                self._note("expected 'pin GPIO 0|1' on standard input, not %r" % line.decode("utf-8", "replace"))

    def _from_host(self):
        try:
            data = os.read(self.host, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not self.ready:
            # A board that is resetting loses what arrives meanwhile; during a soft reboot the
            # UART keeps it.
            if self.mode in ("soft", "raw") and len(self.held) + len(data) <= _HELD_MAX:
                self.held += data
            return
        self.to_board += data
        self._flush_to_board()

    def _flush_to_board(self):
        try:
            n = os.write(self.board, self.to_board)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the process is ending
            self.to_board = bytearray()
            return
        del self.to_board[:n]
        if len(self.to_board) > _HELD_MAX:  # nobody reads: drop, as a full UART buffer does
            self.to_board = bytearray()

    # Pass on what the board prints; False once its process has ended.
    def _from_board(self):
        try:
            data = os.read(self.board, 4096)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        if not self.ready:
            self.ready = True
            self.to_board += self.held
            self.held = bytearray()
        self._track_repl(data)
        out = self._crlf(data)
        try:
            os.write(self.host, out)
        except (BlockingIOError, InterruptedError):
            pass  # nobody is reading the port: the output is lost, as on a UART
        except OSError:
            pass
        if self.console is not None:
            self._mirror(out)
        return True

    # The console copy leaves out raw REPL sessions (mpremote's traffic) unless --show-raw.
    def _mirror(self, out):
        if not self.show_raw:
            shown = bytearray()
            while out:
                if not self.in_raw:
                    i = out.find(RAW_BANNER)
                    if i < 0:
                        shown += out
                        break
                    shown += out[:i] + b"[raw REPL: mpremote at work]\r\n"
                    out = out[i + len(RAW_BANNER) :]
                    self.in_raw = True
                else:
                    j = out.find(PROMPT)
                    if j < 0:
                        break
                    out = out[j:]
                    self.in_raw = False
            out = bytes(shown)
        self.console.write(out)
        self.console.flush()

    # Which REPL the board is in: the last banner or prompt it printed.
    def _track_repl(self, data):
        buf = self.tail + data
        i, j = buf.rfind(RAW_BANNER), buf.rfind(PROMPT)
        if i >= 0 or j >= 0:
            self.raw = i > j
        self.tail = buf[-32:]

    # Print "\n" as "\r\n", as the board's stdout does (the unix port's print does not).
    def _crlf(self, data):
        lead = b""
        if self.last_cr and data[:1] == b"\n":
            lead = b"\n"  # the end of a "\r\n" split between two reads
        self.last_cr = data[-1:] == b"\r"
        return lead + data[len(lead) :].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def _restart(self):
        os.close(self.board)
        rc = self.proc.wait()
        if self.stopping:
            return
        if rc == -signal.SIGUSR1:  # startup.py could not make the flash folder the board's /
            self._say(b"\r\npretend board: cannot start MicroPython with flash %s\r\n" % self.flash.encode())
            raise SystemExit(1)
        if rc == -signal.SIGKILL:  # machine.reset(): the reset line
            mode = "hard"
        elif rc in (0, -signal.SIGTERM):  # Ctrl-D at the REPL, sys.exit(): a soft reset
            mode = "raw" if self.raw else "soft"
        else:
            msg = "\r\npretend board: MicroPython stopped (exit status %s); resetting\r\n" % rc
            self._say(msg.encode())
            time.sleep(1)  # no tight loop when it cannot start at all
            mode = "hard"
        self.boot(mode)

    def _say(self, data):
        try:
            os.write(self.host, data)
        except OSError:
            pass
        if self.console is not None:
            self.console.write(data)
            self.console.flush()


# In the child: a new session whose controlling terminal is the board pty, so Ctrl-C there
# becomes SIGINT; ignored until MicroPython installs its own handler at start.
def _own_terminal():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv=None):
    p = argparse.ArgumentParser(description="A pretend ESP32 on a pseudo-terminal, for mpremote and make flash.")
    p.add_argument("--flash", default=os.path.join(ROOT, ".pretend-flash"), help="folder that is the board's flash (/)")
    p.add_argument("--heapsize", default=HEAPSIZE, help="MicroPython heap, e.g. 160K")
    p.add_argument("--ip", default="127.0.0.1", help="the board's address: where the node listens")
    p.add_argument("--wifi", action="append", default=[], metavar="SSID:PASSWORD", help="a network in range (repeat)")
    p.add_argument(
        "--wifi-after",
        nargs=2,
        action="append",
        default=[],
        metavar=("SECONDS", "SSID:PASSWORD"),
        help="a network that comes into range SECONDS after start (repeat); SIGUSR1 takes every network "
        "out of range, SIGUSR2 brings them back",
    )
    p.add_argument(
        "--dns-port", type=int, default=0, help="where the captive portal's DNS answers (53 on a board); none: 0"
    )
    p.add_argument("--quiet", action="store_true", help="do not copy the board's output here")
    p.add_argument("--show-raw", action="store_true", help="copy raw REPL sessions (mpremote's traffic) here too")
    p.add_argument(
        "--romfs",
        metavar="SIZE",
        help="a romfs partition of SIZE bytes, e.g. 128K (the file FLASH.romfs), for make flash ROMFS=1",
    )
    p.add_argument(
        "--frozen",
        action="store_true",
        help="run our MicroPython build with the firmware frozen in (tools/mpbuild.py), as a board built with it",
    )
    p.add_argument("--bits", type=int, choices=(32, 64), default=32, help="--frozen: the build's word size")
    a = p.parse_args(argv)
    if a.frozen and a.romfs:
        p.error("--romfs needs the PyPI unix port: not with --frozen")
    networks = {}
    for w in a.wifi:
        ssid, _, password = w.partition(":")
        networks[ssid] = password
    later = []
    for secs, w in a.wifi_after:
        try:
            secs = float(secs)
        except ValueError:
            p.error("--wifi-after: SECONDS must be a number, not %r" % secs)
        ssid, _, password = w.partition(":")
        later.append((secs, ssid, password))
    os.makedirs(a.flash, exist_ok=True)
    romfs = 0
    if a.romfs:
        romfs = int(a.romfs.upper().rstrip("K")) * (1024 if a.romfs.upper().endswith("K") else 1)
    console = None if a.quiet else sys.stdout.buffer
    frozen = a.bits if a.frozen else None
    board = PretendBoard(a.flash, a.heapsize, a.ip, networks, console, a.show_raw, romfs, frozen, later, a.dns_port)
    print("pretend board on %s (flash: %s)" % (board.path, board.flash))
    print("flash it from another terminal: make flash PORT=%s" % board.path)
    sys.stdout.flush()

    def stop(signum, frame):
        board.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    signal.set_wakeup_fd(board.wake_w)
    signal.signal(signal.SIGUSR1, lambda signum, frame: board.drop_networks(True))
    signal.signal(signal.SIGUSR2, lambda signum, frame: board.drop_networks(False))
    board.run()


if __name__ == "__main__":
    main()
