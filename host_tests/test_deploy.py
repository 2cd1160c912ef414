# `make flash` without hardware: tools/deploy.py against the pretend board (tools/pretend_board.py:
# the MicroPython unix port behind a pseudo-terminal, driven by mpremote as over USB serial).
# Everything listens on 127.0.0.1. A missing micropython or mpremote fails these tests.
import fcntl
import hashlib
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time

import pytest
from websockets.sync.client import connect

from tools.harness import MICROPYTHON_MISSING, find_micropython, free_port, get_state, http_get, make_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETEND = os.path.join(ROOT, "tools", "pretend_board.py")
DEPLOY = os.path.join(ROOT, "tools", "deploy.py")
MPY_BUILD = os.path.join(ROOT, "build", "mpy-xtensawin", "firmware")
WAIT = 20.0  # seconds for the board to print something it should

pytestmark = pytest.mark.slow


class PretendBoard:
    # romfs: the size of a romfs partition (e.g. "128K"), as a MicroPython built with one;
    # frozen: 32 or 64, our MicroPython build of that word size with the firmware frozen in;
    # wifi_after: (seconds, "SSID:PASSWORD") networks that come into range later; dns_port:
    # where the captive portal's DNS answers.
    def __init__(self, flash, wifi=(), heapsize=None, romfs=None, frozen=None, wifi_after=(), dns_port=None):
        self.flash = str(flash)
        cmd = [sys.executable, "-u", PRETEND, "--flash", self.flash]
        if frozen:
            cmd += ["--frozen", "--bits", str(frozen)]
        if heapsize:
            cmd += ["--heapsize", heapsize]
        if romfs:
            cmd += ["--romfs", romfs]
        for w in wifi:
            cmd += ["--wifi", w]
        for secs, w in wifi_after:
            cmd += ["--wifi-after", str(secs), w]
        if dns_port:
            cmd += ["--dns-port", str(dns_port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        self.out = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        m = self.wait_for(r"pretend board on (\S+)")
        self.port = m.group(1)

    def _read(self):
        while True:
            data = self.proc.stdout.read1(4096)
            if not data:
                return
            with self.lock:
                self.out += data

    def console(self, since=0):
        with self.lock:
            return self.out[since:].decode("utf-8", "replace").replace("\r\n", "\n")

    def mark(self):
        with self.lock:
            return len(self.out)

    # The first match of pattern in the console since `since`, waiting for it.
    def wait_for(self, pattern, since=0, timeout=WAIT):
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.console(since))
            if m:
                return m
            if time.monotonic() > end or self.proc.poll() is not None:
                pytest.fail("the pretend board did not print %r; its console:\n%s" % (pattern, self.console()))
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def path(self, name):
        return os.path.join(self.flash, name)

    # Set input GPIO gpio to level (a button or switch), through the pretend board's standard input.
    def pin(self, gpio, level):
        self.proc.stdin.write(b"pin %d %d\n" % (gpio, level))
        self.proc.stdin.flush()

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()


@pytest.fixture
def pretend_board(tmp_path):
    if find_micropython() is None:
        pytest.fail(MICROPYTHON_MISSING)
    try:
        import mpremote  # noqa: F401
    except ImportError:
        pytest.fail("mpremote is not installed: run `make venv`")
    boards = []

    # flash: the flash folder of an earlier board, to start another on it
    def start(flash=None, **kw):
        b = PretendBoard(flash or tmp_path / ("flash%d" % len(boards)), **kw)
        boards.append(b)
        return b

    yield start
    for b in boards:
        b.stop()


@pytest.fixture
def board(pretend_board):
    return pretend_board()


# A node config on a free port; relay state saved quickly so tests need not wait.
def node_config(name="deploytest", **kw):
    cfg = make_config(name=name, limits={"save_delay_ms": 50}, **kw)
    cfg["http"] = {"port": free_port()}
    return cfg


def deploy(tmp_path, port, cfg, *args, wifi=None, timeout=60):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    wifi_path = tmp_path / "wifi.json"
    if wifi is not None:
        wifi_path.write_text(json.dumps(wifi))
    elif wifi_path.exists():
        wifi_path.unlink()
    cmd = [sys.executable, DEPLOY, "--port", port, "--config", str(path), "--wifi", str(wifi_path)] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


def deployed(tmp_path, port, cfg, *args, **kw):
    p = deploy(tmp_path, port, cfg, *args, **kw)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def mpremote(port, *args, timeout=30):
    cmd = [sys.executable, "-m", "mpremote", "connect", port] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def serving(board, cfg, since=0):
    board.wait_for(r"serving http://\S+:%d/" % cfg["http"]["port"], since)
    return get_state(cfg["http"]["port"])


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_pretend_board_speaks_mpremote(board, tmp_path):
    p = mpremote(board.port, "exec", "print(1+1)")
    assert p.returncode == 0 and p.stdout.strip() == "2", p.stdout + p.stderr
    (tmp_path / "x.txt").write_text("hello")
    p = mpremote(board.port, "fs", "cp", str(tmp_path / "x.txt"), ":x.txt", "+", "fs", "ls")
    assert p.returncode == 0 and "x.txt" in p.stdout, p.stdout + p.stderr
    assert board.read("x.txt") == b"hello"  # the board's / is the flash folder
    assert mpremote(board.port, "exec", "y = 5").returncode == 0
    p = mpremote(board.port, "resume", "exec", "print(y)")  # no soft reset: globals stay
    assert p.stdout.strip() == "5", p.stdout + p.stderr
    mark = board.mark()
    p = mpremote(board.port, "soft-reset", "resume", "exec", "print(y)")
    assert p.returncode == 1 and "NameError" in p.stdout + p.stderr, p.stdout + p.stderr
    board.wait_for("MPY: soft reboot", mark)


def test_deploy_copies_everything_and_the_board_runs_the_node(board, tmp_path):
    cfg = node_config()
    out = deployed(tmp_path, board.port, cfg)
    assert "0 unchanged" in out, out
    # Every file is on the board, byte for byte; the firmware as .mpy only.
    for name in ("boot.py", "main.py", "firmware/www/index.html", "firmware/www/index.html.gz"):
        with open(os.path.join(ROOT, name), "rb") as f:
            assert board.read(name) == f.read(), name
    assert json.loads(board.read("config.json")) == cfg
    sources = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "firmware")) if n.endswith(".py"))
    assert sorted(n[:-4] for n in os.listdir(board.path("firmware")) if n.endswith(".mpy")) == sources
    assert not [n for n in os.listdir(board.path("firmware")) if n.endswith(".py")]
    for n in sources:
        with open(os.path.join(MPY_BUILD, n + ".mpy"), "rb") as f:
            assert board.read("firmware/%s.mpy" % n) == f.read(), n
    # The board resets and boots the node: relays off first, then the server on 127.0.0.1.
    board.wait_for(r"GPIO26 -> 1")
    state = serving(board, cfg)
    assert state["node"] == "deploytest"
    assert [(r["name"], r["on"]) for r in state["relays"]] == [("Light", False), ("Fan", False)]
    mark = board.mark()
    with connect("ws://127.0.0.1:%d/ws" % cfg["http"]["port"], open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        msg = json.loads(ws.recv(timeout=5))
        assert (msg["type"], msg["name"], msg["on"]) == ("relay", "Light", True)
    board.wait_for(r"GPIO26 -> 0", mark)  # active-low: on is 0 V


def test_second_deploy_copies_nothing(board, tmp_path):
    cfg = node_config()
    deployed(tmp_path, board.port, cfg)
    serving(board, cfg)
    stamps = {n: os.stat(board.path(n)).st_mtime_ns for n in ("boot.py", "config.json", "firmware/server.mpy")}
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg)
    assert re.search(r"^0 to copy \(0 bytes\), \d+ unchanged, 0 to remove$", out, re.M), out
    assert "  copy " not in out
    assert {n: os.stat(board.path(n)).st_mtime_ns for n in stamps} == stamps
    serving(board, cfg, mark)  # reset all the same: the node runs again


def test_a_changed_file_is_the_only_one_copied(board, tmp_path):
    cfg = node_config()
    deployed(tmp_path, board.port, cfg)
    serving(board, cfg)
    cfg["name"] = "renamed"
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg)
    assert re.findall(r"^  copy (\S+)", out, re.M) == ["config.json"], out
    assert re.search(r"^1 to copy", out, re.M), out
    assert serving(board, cfg, mark)["node"] == "renamed"


def test_saved_relay_state_survives_a_deploy(board, tmp_path):
    cfg = node_config()  # Light: power_on "restore" in the repo's config.json
    assert cfg["relays"][0]["power_on"] == "restore"
    deployed(tmp_path, board.port, cfg)
    serving(board, cfg)
    with connect("ws://127.0.0.1:%d/ws" % cfg["http"]["port"], open_timeout=5, close_timeout=2) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        ws.recv(timeout=5)
    end = time.monotonic() + WAIT
    while not os.path.exists(board.path("state/state.json")) or b"true" not in board.read("state/state.json"):
        assert time.monotonic() < end, "relay state never saved:\n" + board.console()
        time.sleep(0.05)
    saved = board.read("state/state.json")
    cfg["name"] = "after"  # something to copy
    mark = board.mark()
    deployed(tmp_path, board.port, cfg)
    assert board.read("state/state.json") == saved
    state = serving(board, cfg, mark)
    assert state["relays"][0]["on"] is True
    assert "relay Light -> on (restore)" in board.console(mark)


def test_bad_config_is_reported_and_relays_stay_off(board, tmp_path):
    cfg = node_config()
    cfg["relays"][1]["pin"] = 7  # drives the flash chip: refused
    mark = board.mark()
    p = deploy(tmp_path, board.port, cfg)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "warning: relays[1].pin: GPIO 7 drives the flash chip" in p.stdout
    board.wait_for(r"config error: relays\[1\]\.pin: GPIO 7 drives the flash chip", mark)
    board.wait_for(r"relays stay off", mark)
    boot = board.console(mark).split("hard reset", 1)[1]
    assert re.findall(r"GPIO(\d+) -> (\d)", boot) == [("26", "1")], boot  # Light off (active-low)
    assert "serving" not in boot


def test_dry_run_copies_nothing(board, tmp_path):
    p = deploy(tmp_path, board.port, node_config(), "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "copy boot.py" in p.stdout and "dry run: nothing copied" in p.stdout
    assert sorted(os.listdir(board.flash)) == []


def test_files_no_longer_in_the_firmware_are_removed(board, tmp_path):
    os.makedirs(board.path("firmware"))
    with open(board.path("firmware/server.py"), "w") as f:
        f.write("raise ImportError('an old source file that would shadow server.mpy')\n")
    with open(board.path("notes.txt"), "w") as f:
        f.write("mine")
    cfg = node_config()
    out = deployed(tmp_path, board.port, cfg)
    assert "remove firmware/server.py" in out, out
    assert not os.path.exists(board.path("firmware/server.py"))
    assert board.read("notes.txt") == b"mine"  # outside firmware/: not deploy's business
    serving(board, cfg)


def test_missing_port_is_a_clear_error(tmp_path):
    p = deploy(tmp_path, "/dev/relaynode-no-such-port", node_config())
    assert p.returncode == 1
    assert "no such port: /dev/relaynode-no-such-port" in p.stderr


def test_a_port_that_is_not_a_board_is_a_clear_error(tmp_path):
    master, slave = pty.openpty()  # a serial line nobody answers on
    try:
        start = time.monotonic()
        p = deploy(tmp_path, os.ttyname(slave), node_config(), "--timeout", "3")
        assert p.returncode == 1
        assert "did not answer like a MicroPython board" in p.stderr, p.stderr
        assert time.monotonic() - start < 30
    finally:
        os.close(master)
        os.close(slave)


def test_a_busy_port_is_a_clear_error(board, tmp_path):
    fd = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what mpremote and other serial tools take
        p = deploy(tmp_path, board.port, node_config())
        assert p.returncode == 1
        assert "in use by another program" in p.stderr, p.stderr
    finally:
        os.close(fd)


def test_wrong_wifi_password_starts_an_access_point(pretend_board, tmp_path):
    board = pretend_board(wifi=["home:secret"])
    cfg = node_config(name="relaynode-ap", wifi={"ssid": "home", "password": "wrong"})
    deployed(tmp_path, board.port, cfg)
    board.wait_for(r"pretend wifi: wrong password for 'home'")
    board.wait_for(r"pretend wifi: access point 'relaynode-ap' up")
    assert serving(board, cfg)["node"] == "relaynode-ap"


def test_wifi_json_joins_the_network(pretend_board, tmp_path):
    board = pretend_board(wifi=["home:secret"])
    cfg = node_config(name="relaynode-sta")
    deployed(tmp_path, board.port, cfg, wifi={"ssid": "home", "password": "secret"})
    assert json.loads(board.read("wifi.json")) == {"ssid": "home", "password": "secret"}
    board.wait_for(r"pretend wifi: joined 'home' as 127\.0\.0\.1 \(hostname relaynode-sta\)")
    assert "access point" not in board.console()
    serving(board, cfg)


# ---- make flash ROMFS=1: the firmware into the board's romfs partition (tools/deploy.py --romfs)
# The pretend board's partition and its vfs.rom_ioctl are stand-ins (tools/mp/fakeboard/startup.py):
# these tests show the deploy and the boot from /rom work as MicroPython's documentation says,
# not that an ESP32 build with a romfs partition behaves the same.

ROMFS_IMAGE = os.path.join(ROOT, "build", "romfs", "xtensawin.img")


def test_romfs_deploy_runs_the_firmware_from_rom(pretend_board, tmp_path):
    board = pretend_board(romfs="128K")
    cfg = node_config()
    deployed(tmp_path, board.port, cfg)  # first as before: the firmware in the flash filesystem
    serving(board, cfg)
    assert os.path.exists(board.path("firmware/server.mpy"))
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg, "--romfs")
    assert "  romfs build/romfs/xtensawin.img" in out, out
    assert "remove firmware/ from the flash filesystem" in out and "  copy " not in out, out
    # The flash filesystem keeps the rest; the firmware and its page are only in the partition.
    assert sorted(os.listdir(board.flash)) == ["boot.py", "config.json", "main.py", "state"]
    with open(ROMFS_IMAGE, "rb") as f:
        image = f.read()
    with open(board.flash + ".romfs", "rb") as f:
        assert f.read(len(image)) == image
    state = serving(board, cfg, mark)
    assert state["node"] == "deploytest"
    port = cfg["http"]["port"]
    status, _, body = http_get(port, "/", headers=[("Accept-Encoding", "gzip")])
    with open(os.path.join(ROOT, "firmware", "www", "index.html.gz"), "rb") as f:
        assert (status, body) == (200, f.read())  # board.PAGE found the page in /rom
    mark = board.mark()
    with connect("ws://127.0.0.1:%d/ws" % port, open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        msg = json.loads(ws.recv(timeout=5))
        assert (msg["type"], msg["name"], msg["on"]) == ("relay", "Light", True)
    board.wait_for(r"GPIO26 -> 0", mark)
    # Again: the partition holds that image already, and nothing else changed.
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg, "--romfs")
    assert "romfs: the board's partition holds this image already" in out, out
    assert re.search(r"^0 to copy \(0 bytes\), 3 unchanged, 0 to remove$", out, re.M), out
    serving(board, cfg, mark)


def test_romfs_deploy_is_refused_without_a_romfs_partition(board, tmp_path):
    cfg = node_config()
    deployed(tmp_path, board.port, cfg)
    serving(board, cfg)
    before = sorted(os.listdir(board.path("firmware")))
    mark = board.mark()
    p = deploy(tmp_path, board.port, cfg, "--romfs", "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "a real run stops here, before changing anything: the board's MicroPython has no romfs partition" in p.stdout
    steps = p.stdout.split("a real run does this in one mpremote session:\n", 1)[1].splitlines()
    assert steps == [
        "  mpremote romfs deploy " + ROMFS_IMAGE,
        "  mpremote exec <remove firmware/ from the flash filesystem>",
        "  mpremote reset",
    ], p.stdout
    serving(board, cfg, mark)  # reset after the dry run
    mark = board.mark()
    p = deploy(tmp_path, board.port, cfg, "--romfs")
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.strip().endswith("or deploy without ROMFS=1. Nothing on the board was changed."), p.stderr
    assert sorted(os.listdir(board.path("firmware"))) == before
    serving(board, cfg, mark)  # the node as it was, started again


# ---- a board whose MicroPython has the firmware frozen in (pretend board --frozen: our 32-bit
# build, tools/mpbuild.py; built here when missing, which fails with the reason when the
# MicroPython source or a compiler is missing).


@pytest.fixture
def frozen_board(pretend_board):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import mpbuild

    try:
        mpbuild.build(32, quiet=True)
    except mpbuild.BuildError as e:
        pytest.fail("cannot build MicroPython with the firmware frozen in: %s" % e)
    return pretend_board(frozen=32)


FROZEN_FILES = ["boot.py", "config.json", "main.py", "www/index.html", "www/index.html.gz"]


def test_deploy_to_a_frozen_board_copies_only_the_entry_files_and_the_page(frozen_board, tmp_path):
    board = frozen_board
    # A firmware/ left on the flash (here only a page) would be imported instead of the frozen
    # package: deploy removes it.
    os.makedirs(board.path("firmware/www"))
    with open(board.path("firmware/www/index.html"), "w") as f:
        f.write("old page")
    cfg = node_config()
    out = deployed(tmp_path, board.port, cfg)
    assert "the board's MicroPython has the firmware frozen in: copying only boot.py, main.py, config.json" in out
    assert sorted(re.findall(r"^  copy (\S+)", out, re.M)) == FROZEN_FILES, out
    assert "remove firmware/ from the flash filesystem (3 files and folders;" in out, out
    files = sorted(
        os.path.relpath(os.path.join(d, n), board.flash) for d, _, ns in os.walk(board.flash) for n in ns
    )
    assert [f for f in files if not f.startswith("state/")] == FROZEN_FILES
    for name in ("boot.py", "main.py"):
        with open(os.path.join(ROOT, name), "rb") as f:
            assert board.read(name) == f.read(), name
    for name in ("index.html", "index.html.gz"):
        with open(os.path.join(ROOT, "firmware", "www", name), "rb") as f:
            assert board.read("www/" + name) == f.read(), name
    # The board resets and runs the frozen firmware, which finds its page in /www/.
    state = serving(board, cfg)
    assert state["node"] == "deploytest"
    port = cfg["http"]["port"]
    status, _, body = http_get(port, "/", headers=[("Accept-Encoding", "gzip")])
    assert (status, body) == (200, board.read("www/index.html.gz"))
    mark = board.mark()
    with connect("ws://127.0.0.1:%d/ws" % port, open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        msg = json.loads(ws.recv(timeout=5))
        assert (msg["type"], msg["name"], msg["on"]) == ("relay", "Light", True)
    board.wait_for(r"GPIO26 -> 0", mark)
    # Its firmware is the frozen one: the package comes from .frozen.
    p = mpremote(board.port, "exec", "import firmware; print(firmware.__path__)")
    assert p.returncode == 0 and p.stdout.strip() == ".frozen/firmware", p.stdout + p.stderr


def test_second_deploy_to_a_frozen_board_copies_nothing(frozen_board, tmp_path):
    board = frozen_board
    cfg = node_config()
    deployed(tmp_path, board.port, cfg)
    serving(board, cfg)
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg, "--dry-run")
    assert "frozen in" in out and re.search(r"^0 to copy \(0 bytes\), 5 unchanged, 0 to remove$", out, re.M), out
    steps = out.split("a real run does this in one mpremote session:\n", 1)[1].splitlines()
    assert steps == ["  mpremote reset"], out
    serving(board, cfg, mark)
    cfg["name"] = "renamed"
    mark = board.mark()
    out = deployed(tmp_path, board.port, cfg)
    assert re.findall(r"^  copy (\S+)", out, re.M) == ["config.json"], out
    assert serving(board, cfg, mark)["node"] == "renamed"


def test_deploy_to_a_board_without_frozen_firmware_is_unchanged(board, tmp_path):
    # The PyPI unix port has no firmware frozen in: the firmware goes into firmware/ as .mpy.
    cfg = node_config()
    out = deployed(tmp_path, board.port, cfg, "--dry-run")
    assert "frozen in" not in out and "  copy firmware/server.mpy" in out, out
