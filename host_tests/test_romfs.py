# The firmware in ROMFS (tools/romfs.py): what the images hold, imports from an image mapped
# outside the heap, board.PAGE beside the firmware, the launcher's refusals, the board side of
# `make flash ROMFS=1` (tools/deploy.py), the simulator with --romfs, and the memory regression
# test: under `micropython -X heapsize=...` with the firmware in ROMFS, the node boots
# and serves its clients plus page loads. 127.0.0.1 only; a missing MicroPython fails.
import hashlib
import json
import os
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from tools import harness as nh

ROOT = nh.ROOT
TOOLS = os.path.join(ROOT, "tools")
ROMFS_TOOL = os.path.join(TOOLS, "romfs.py")
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")
T = 5.0  # bound on every wait for something that should happen

sys.path.insert(0, TOOLS)
import compile as compile_tool  # noqa: E402
import deploy  # noqa: E402
import romfs  # noqa: E402


@pytest.fixture(autouse=True)
def micropython():
    found = nh.find_micropython()
    if found is None:
        pytest.fail(nh.MICROPYTHON_MISSING)
    try:
        romfs.check_launcher()
    except romfs.RomfsError as e:
        pytest.fail(str(e))
    return found


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Run a MicroPython script: with the image at `image` mapped and mounted at /rom (the launcher),
# or plainly; its stdout, after checking it ran to the end.
def run_mp(script, tmp_path, image=None, heapsize="256K", cwd=None):
    path = tmp_path / "script.py"
    mount = (
        "import os, sys, vfs, uctypes\n"
        "a, n = os.getenv('RELAYNODE_ROMFS').split(':')\n"
        "vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), '/rom')\n"
        "sys.path.insert(0, '/rom')\n"
    )
    path.write_text((mount if image else "") + script + "\nprint('done')\n")
    args = ["-X", "heapsize=" + heapsize, str(path)]
    if image:
        cmd = [sys.executable, ROMFS_TOOL, "run", image, "--"] + args
    else:
        cmd = [nh.find_micropython()] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd or ROOT)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and p.stdout.rstrip().endswith("done"), out
    return p.stdout


# ---- the images


@pytest.mark.parametrize("arch", [None, "xtensawin"])
def test_image_holds_the_compiled_firmware_and_the_page(arch):
    image = romfs.build_firmware_image(arch)
    assert image == os.path.join(ROOT, "build", "romfs", (arch or "bytecode") + ".img")
    out = os.path.join(ROOT, "build", "mpy-" + arch) if arch else compile_tool.OUT
    want = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "firmware"))):
        if name.endswith(".py"):
            mpy = os.path.join(out, "firmware", name[:-3] + ".mpy")
            want["firmware/" + name[:-3] + ".mpy"] = (os.path.getsize(mpy), digest(mpy))
    for name in ("index.html", "index.html.gz"):
        path = os.path.join(os.path.dirname(PAGE), name)
        want["firmware/www/" + name] = (os.path.getsize(path), digest(path))
    # as MicroPython's own VfsRom reads it
    assert romfs.list_image(image) == want


def test_image_is_rebuilt_only_when_something_changed(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("one")
    img = str(tmp_path / "x.img")
    romfs.write_image({"d": {"a.txt": str(a)}}, img)
    first = os.stat(img).st_ino
    romfs.write_image({"d": {"a.txt": str(a)}}, img)
    assert os.stat(img).st_ino == first  # unchanged: not written
    a.write_text("two")
    romfs.write_image({"d": {"a.txt": str(a)}}, img)
    assert os.stat(img).st_ino != first  # a new file renamed over: a mapped old image stays intact
    assert romfs.list_image(img) == {"d/a.txt": (3, hashlib.sha256(b"two").hexdigest())}


# ---- imports from the image


IMPORT_SERVER = """
import gc
gc.collect()
before = gc.mem_alloc()
from firmware import server
gc.collect()
print('heap', gc.mem_alloc() - before, server.__file__)
"""


def test_imports_from_romfs_run_in_place_and_cost_less_heap(tmp_path):
    image = romfs.build_firmware_image()
    rom = run_mp(IMPORT_SERVER, tmp_path, image).split()
    compile_tool.compile_firmware()
    fs = run_mp("import sys\nsys.path.insert(0, %r)\n" % compile_tool.OUT + IMPORT_SERVER, tmp_path).split()
    assert rom[2] == "/rom/firmware/server.mpy", rom
    assert fs[2].startswith(compile_tool.OUT), fs
    rom_heap, fs_heap = int(rom[1]), int(fs[1])
    print("heap for firmware.server and its imports: %d B from ROMFS, %d B from the filesystem" % (rom_heap, fs_heap))
    assert rom_heap <= 0.8 * fs_heap, (rom_heap, fs_heap)


BOARD_PAGE = """
import os, sys
sys.path.insert(1, %r)  # the pretend board's fake machine and network
from firmware import board
print('page', board.PAGE, os.stat(board.PAGE)[6] if board.PAGE.startswith('/rom') else '-')
"""


def test_board_page_is_beside_the_firmware(tmp_path):
    fake = os.path.join(TOOLS, "mp", "fakeboard")
    out = run_mp(BOARD_PAGE % fake, tmp_path, romfs.build_firmware_image()).split()
    assert out[:3] == ["page", "/rom/firmware/www/index.html", str(os.path.getsize(PAGE))], out
    # from the flash filesystem: imported through '' on sys.path, as on the board
    compile_tool.compile_firmware()
    script = "import sys\nsys.path.insert(0, '')\n" + BOARD_PAGE % fake
    out = run_mp(script, tmp_path, cwd=compile_tool.OUT).split()
    assert out[:3] == ["page", "/firmware/www/index.html", "-"], out


# ---- the launcher


@pytest.fixture
def other_micropython(tmp_path):
    fake = tmp_path / "micropython"
    fake.write_text("#!/bin/sh\necho 'a MicroPython that is not the PyPI one'\n")
    fake.chmod(0o755)
    return str(fake)


def test_launcher_refuses_a_micropython_that_is_not_the_pypi_one(other_micropython):
    env = dict(os.environ, MICROPYTHON=other_micropython)
    image = romfs.build_firmware_image()
    p = subprocess.run([sys.executable, ROMFS_TOOL, "run", image, "--", "-c", "print(1)"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    assert "another MicroPython" in p.stderr and other_micropython in p.stderr, p.stderr
    sim = [sys.executable, os.path.join(TOOLS, "sim.py"), "--romfs", "--port", str(nh.free_port())]
    p = subprocess.run(sim, env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "another MicroPython" in p.stderr, p.stdout + p.stderr


def test_sim_romfs_only_under_micropython():
    sim = [sys.executable, os.path.join(TOOLS, "sim.py"), "--romfs", "--runtime", "cpython"]
    p = subprocess.run(sim, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--romfs runs the compiled firmware under MicroPython" in p.stderr, p.stderr


def test_launcher_refuses_a_file_that_is_not_an_image(tmp_path):
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"not an image")
    p = subprocess.run([sys.executable, ROMFS_TOOL, "run", str(bad), "--", "-c", "print(1)"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "is not a ROMFS image" in p.stderr, p.stdout + p.stderr


# ---- the board side of make flash ROMFS=1 (tools/deploy.py)


def test_hash_script_reports_the_image_in_the_romfs_partition(tmp_path):
    image = romfs.build_firmware_image("xtensawin")
    part = tmp_path / "part.bin"
    with open(image, "rb") as f:
        part.write_bytes(f.read() + b"\xff" * 4096)  # the rest of the partition: erased flash
    script = deploy.HASH_SCRIPT.replace("vfs.rom_ioctl(2, 0)", "open(%r, 'rb').read()" % str(part))
    assert script != deploy.HASH_SCRIPT
    out = run_mp(script, tmp_path, cwd=str(tmp_path))
    line = [x for x in out.splitlines() if x.startswith(deploy.MARK)][0]
    report = json.loads(line[len(deploy.MARK):])
    assert report[":romfs"] == [os.path.getsize(image) + 4096, digest(image)], report
    part.write_bytes(b"\xff" * 8192)  # an erased partition: its size, no image
    out = run_mp(script, tmp_path, cwd=str(tmp_path))
    report = json.loads([x for x in out.splitlines() if x.startswith(deploy.MARK)][0][len(deploy.MARK):])
    assert report[":romfs"] == [8192, None], report
    assert ":rom_first" not in report  # nothing at /rom


def test_hash_script_says_whether_rom_firmware_comes_first(tmp_path):
    # With a firmware/ in /rom: is it imported before one in the flash ('' on sys.path)?
    image = romfs.build_firmware_image()
    for prelude, first in (("", True), ("sys.path.insert(0, '')\n", False)):
        out = run_mp("import sys\n" + prelude + deploy.HASH_SCRIPT, tmp_path, image, cwd=str(tmp_path))
        report = json.loads([x for x in out.splitlines() if x.startswith(deploy.MARK)][0][len(deploy.MARK):])
        assert report[":rom_first"] is first, (prelude, report)


def test_romfs_plan(tmp_path):
    image = romfs.build_firmware_image("xtensawin")
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    files = deploy.entry_files(str(cfg), None)
    remote = {"boot.py": deploy.sha256(files["boot.py"]), "firmware/": None, "firmware/www/": None,
              "firmware/a.mpy": "x", "firmware/www/index.html": "y", "notes.txt": "z",
              ":romfs": [131072, None]}
    copy, img, gone, problem = deploy.romfs_plan(files, remote, image)
    assert copy == ["config.json", "main.py"] and img == image and problem is None
    assert gone == ["firmware/a.mpy", "firmware/www/index.html", "firmware/www/", "firmware/"]
    args = deploy.session_args(files, copy, deploy.remove_script(gone), img)
    assert deploy.describe(args, "remove") == [
        "romfs deploy " + image,
        "exec <remove>",
        "fs cp -f --no-verbose %s :config.json" % files["config.json"],
        "fs cp -f --no-verbose %s :main.py" % files["main.py"],
        "reset",
    ]
    assert args[args.index("exec") + 1] == (
        "import os\nfor f in ['firmware/a.mpy', 'firmware/www/index.html']:\n os.remove(f)\n"
        "for d in ['firmware/www', 'firmware']:\n os.rmdir(d)\n"
    )
    # the image is there already: not deployed again
    remote[":romfs"] = [131072, deploy.sha256(image)]
    assert deploy.romfs_plan(files, remote, image)[1] is None
    # no partition, or too small a one: refused, with the reason
    del remote[":romfs"]
    assert "has no romfs partition" in deploy.romfs_plan(files, remote, image)[3]
    remote[":romfs"] = [4096, None]
    assert "does not fit the board's romfs partition (4096 bytes)" in deploy.romfs_plan(files, remote, image)[3]


# ---- the simulator with --romfs


def ws_connect(n):
    ws = connect(n.ws_url, open_timeout=T, close_timeout=2, legacy=True)
    state = json.loads(ws.recv(timeout=T))
    assert state["type"] == "state", state
    return ws, state


@pytest.mark.slow
def test_sim_romfs_serves_the_page_and_switches_a_relay():
    with nh.Node("micropython", romfs=True) as n:
        assert n.matching("relaynode simulator (micropython, firmware in ROMFS)"), n.output()
        status, headers, body = nh.http_get(n.port, "/", headers=[("Accept-Encoding", "gzip")])
        with open(PAGE + ".gz", "rb") as f:
            assert (status, headers.get("content-encoding"), body) == (200, "gzip", f.read())
        status, headers, body = nh.http_get(n.port, "/")
        with open(PAGE, "rb") as f:
            assert (status, body) == (200, f.read())
        ws, state = ws_connect(n)
        try:
            assert [r["on"] for r in state["relays"]] == [False, False]
            mark = n.mark()
            ws.send(json.dumps({"type": "toggle", "relay": "Light"}))
            msg = json.loads(ws.recv(timeout=T))
            assert msg == {"type": "relay", "id": 0, "name": "Light", "on": True, "cause": "client"}
            n.wait_for_line("GPIO26 -> 0", T, since=mark)  # active-low: on is 0
        finally:
            ws.close()
        assert not n.matching("Error"), n.output()


# ---- a small heap, firmware in ROMFS, clients plus page loads: at -X heapsize=80K (64-bit
# unix port) the node serves 12 WebSocket clients (the ESP32's cap on active TCP connections)
# plus page loads. RELAYNODE_HEAP_CASE="64K:12" runs another case.


def _cases():
    env = os.getenv("RELAYNODE_HEAP_CASE")
    if env:
        h, n = env.split(":")
        return [(h, int(n))]
    return [("80K", 12)]


@pytest.mark.slow
@pytest.mark.parametrize("heapsize, clients", _cases())
def test_small_heap_serves_clients_and_page_loads_from_romfs(heapsize, clients):
    n = nh.Node("micropython", heapsize=heapsize, romfs=True, limits=nh.client_limits(clients))
    nh.serve_clients_and_page_loads(n, clients, "ROMFS", lambda n: ws_connect(n)[0], T)
