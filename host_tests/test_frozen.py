# The firmware frozen into our own MicroPython build (tools/mpbuild.py, `make micropython`): the
# build and its cache, the simulator on it (tools/sim.py --frozen), and the memory regression
# test: on the 32-bit build (the ESP32's pointer and object sizes) at -X heapsize=28K the node
# serves 12 WebSocket clients plus page loads and gives its heap back. The interpreter is built
# here when missing (about 40 s); without the MicroPython source (the snapshot beside the repo,
# or MPY_DIR) or without a compiler these tests fail with what is missing. 127.0.0.1 only.
import json
import os
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect

from tools import harness as nh

ROOT = nh.ROOT
MPBUILD = os.path.join(ROOT, "tools", "mpbuild.py")
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")
T = 5.0  # bound on every wait for something that should happen

sys.path.insert(0, os.path.join(ROOT, "tools"))
import mpbuild  # noqa: E402

pytestmark = pytest.mark.slow


# The 32-bit interpreter with the firmware frozen in, built when missing or out of date.
@pytest.fixture(scope="module")
def frozen32():
    try:
        return mpbuild.build(32, quiet=True)
    except mpbuild.BuildError as e:
        pytest.fail("cannot build MicroPython with the firmware frozen in: %s" % e)


def run(prog, code, cwd):
    p = subprocess.run([prog, "-c", code], capture_output=True, text=True, timeout=30, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_build_is_32_bit_with_firmware_and_asyncio_frozen(frozen32, tmp_path):
    out = run(
        frozen32,
        "import sys, firmware, asyncio\nfrom firmware import websocket\n"
        "print(sys.maxsize, firmware.__path__, asyncio.__file__, websocket.__name__, hasattr(websocket, '__version__'))",
        tmp_path,
    )
    # no __version__ global in the frozen modules (manifest.py has no version for the tools to add)
    assert out.split() == ["2147483647", ".frozen/firmware", "asyncio/__init__.py", "firmware.websocket", "False"]


# The heap of a 32-bit build that stands in for the board lies below 2 GB, as a board's does,
# where id() of an object is a small integer: asyncio keys every waiting socket by id(), and
# a long integer there would be a heap allocation the board never makes. glibc maps a 256K heap
# above 2 GB unless runtime.board_env() says otherwise (the first case shows the cost it avoids).
ID_COST = """import gc
o = object()
keep = [0] * 50
gc.collect()
a = gc.mem_alloc()
for i in range(50):
    keep[i] = id(o)
gc.collect()
print((gc.mem_alloc() - a) // 50)
"""


def test_board_env_places_the_heap_where_id_costs_nothing(frozen32, tmp_path):
    from tools import runtime

    def cost(env):
        p = subprocess.run([frozen32, "-X", "heapsize=256K", "-c", ID_COST], capture_output=True, text=True,
                           timeout=30, cwd=tmp_path, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        return int(p.stdout)

    plain = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert cost(plain) >= 16  # a long integer per id(): one heap block at least
    assert cost(runtime.board_env(plain)) == 0


def test_the_page_is_not_frozen(frozen32, tmp_path):
    # Only .py files are frozen: the page stays a file on the board's filesystem.
    p = subprocess.run(
        [frozen32, "-c", "import sys\nsys.path.clear()\nsys.path.append('.frozen')\nimport firmware.www"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert p.returncode != 0 and "ImportError" in p.stderr + p.stdout, (p.stdout, p.stderr)


def test_second_build_costs_nothing(frozen32):
    before = os.stat(frozen32).st_mtime_ns
    t = time.monotonic()
    p = subprocess.run([sys.executable, MPBUILD, "--bits", "32"], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t
    assert p.returncode == 0, p.stdout + p.stderr
    assert "building" not in p.stdout, p.stdout
    assert os.stat(frozen32).st_mtime_ns == before
    assert took < 5, took


def test_missing_source_is_one_clear_line(tmp_path):
    env = dict(os.environ, MPY_DIR=str(tmp_path / "nowhere"))
    p = subprocess.run([sys.executable, MPBUILD, "--bits", "32"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "no MicroPython source at" in lines[0] and "MPY_DIR" in lines[0], p.stderr


def test_a_folder_that_is_not_micropython_is_refused(tmp_path):
    env = dict(os.environ, MPY_DIR=str(tmp_path))
    p = subprocess.run([sys.executable, MPBUILD, "--bits", "64"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 1 and "is not a MicroPython checkout" in p.stderr, p.stderr


def test_missing_multilib_is_one_clear_line(tmp_path, frozen32):
    # A compiler that cannot build for -m32 (here: a gcc wrapper that refuses it).
    cc = tmp_path / "cc"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -m32 ] && { echo "no 32-bit libc" >&2; exit 1; }; done\nexec gcc "$@"\n')
    cc.chmod(0o755)
    old = os.environ.get("CC")
    os.environ["CC"] = str(cc)
    try:
        with pytest.raises(mpbuild.BuildError) as e:
            mpbuild.check_toolchain(32)
        mpbuild.check_toolchain(64)  # 64-bit builds need no multilib
    finally:
        if old is None:
            del os.environ["CC"]
        else:
            os.environ["CC"] = old
    assert "apt-get install gcc-multilib" in str(e.value) and "\n" not in str(e.value)


def ws_connect(n):
    ws = connect(n.ws_url, open_timeout=T, close_timeout=2, legacy=True)
    state = json.loads(ws.recv(timeout=T))
    assert state["type"] == "state", state
    return ws


def test_sim_frozen_is_not_shadowed_by_the_sources(frozen32):
    # The node starts in the repo (where firmware/ is), yet runs the frozen firmware: host_node.py
    # checks firmware.__path__ and stops otherwise; the page is read by path.
    with nh.Node("micropython", frozen=True, bits=32) as n:
        assert n.matching("relaynode simulator (micropython, 32-bit, firmware frozen)"), n.output()
        status, headers, body = nh.http_get(n.port, "/")
        with open(PAGE, "rb") as f:
            assert (status, body) == (200, f.read())
        ws = ws_connect(n)
        try:
            mark = n.mark()
            ws.send(json.dumps({"type": "toggle", "relay": "Light"}))
            msg = json.loads(ws.recv(timeout=T))
            assert msg == {"type": "relay", "id": 0, "name": "Light", "on": True, "cause": "client"}
            n.wait_for_line("GPIO26 -> 0", T, since=mark)
        finally:
            ws.close()
        assert not n.matching("Error"), n.output()


def test_sim_frozen_refuses_other_runtimes():
    sim = os.path.join(ROOT, "tools", "sim.py")
    for extra in (["--runtime", "cpython"], ["--source"], ["--romfs"]):
        p = subprocess.run([sys.executable, sim, "--frozen"] + extra, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "--frozen runs our MicroPython build" in p.stderr, (extra, p.stderr)


# The board-faithful memory case: 32-bit, firmware frozen, 28K heap, 12 clients plus two page
# loads. RELAYNODE_FROZEN_CASE="22K:12" runs another case.
def _cases():
    env = os.getenv("RELAYNODE_FROZEN_CASE")
    if env:
        h, k = env.split(":")
        return [(h, int(k))]
    return [("28K", 12)]


@pytest.mark.parametrize("heapsize, clients", _cases())
def test_small_heap_serves_clients_and_page_loads_frozen_32bit(frozen32, heapsize, clients):
    n = nh.Node("micropython", heapsize=heapsize, frozen=True, bits=32, limits=nh.client_limits(clients))
    nh.serve_clients_and_page_loads(n, clients, "32-bit frozen", ws_connect, T)


# tools/heapmap.py: every module the node keeps is a step of its own, and the heap it ends with
# (running) is the ready heap the node reports itself on the same build.
def test_heapmap_accounts_for_the_ready_heap(frozen32):
    modules = heapmap_modules()
    import heapmap

    rows, qstr, loaded = heapmap.measure(frozen32, os.path.join(ROOT, "config.json"))
    steps = [r[0] for r in rows]
    # what the running node keeps is what the map accounts for: the firmware modules it lists,
    # asyncio's core (not asyncio.stream: compat has its own connections) and nothing of boot's
    kept = [m for m in loaded if m.startswith("firmware") or m.startswith("asyncio")]
    assert sorted(kept) == sorted(modules + ("asyncio.core",)), loaded
    for m in modules:
        assert m in steps, steps
    assert steps[-2:] == ["listening, integrations started", heapmap.LAST]
    assert all(r[2] > 0 for r in rows if r[0].startswith("firmware.")), rows  # each import costs heap
    assert sum(r[2] for r in rows) == rows[-1][1]
    assert qstr and qstr.startswith("qstr pool"), qstr
    with nh.Node("micropython", heapsize="256K", frozen=True, bits=32) as n:
        ready = int(n.matching("serving http")[0].rsplit("(heap ", 1)[1].rstrip(")"))
    # the node's own figure counts the simulator's few objects too (its options, its fake pins)
    assert abs(rows[-1][1] - ready) < 2048, (rows[-1], ready)



def heapmap_modules():
    import importlib.util

    # the MicroPython side, under a name of its own (tools/heapmap.py is "heapmap"): importing
    # it runs nothing
    spec = importlib.util.spec_from_file_location("mp_heapmap", os.path.join(ROOT, "tools", "mp", "heapmap.py"))
    mp_side = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp_side)
    return mp_side.MODULES
