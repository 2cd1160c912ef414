# The bench's own parts (tools/bench/): the server's CPU time per command, the table's rows, the
# rows for another MicroPython binary, both ways to start it, and tools/ standing without the
# test suite. The figures themselves are measured by `make bench`, not tested.
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types

import pytest

from tools.bench import phases, processes, report
from tools.harness import MICROPYTHON_MISSING, ROOT, find_micropython

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < %s: pass\ntime.sleep(30)\n"


# Run code in a child; returns it (killed by the caller).
def child(code):
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


def test_proc_cpu_is_the_child_s_user_plus_system_time():
    busy, idle = child(BUSY % 0.5), child(BUSY % 0)
    try:
        deadline = time.monotonic() + 20
        cpu = 0.0
        while cpu < 0.45 and time.monotonic() < deadline:
            time.sleep(0.05)
            cpu = processes.proc_cpu(busy.pid)
        assert 0.45 <= cpu < 5
        # a child that sleeps uses next to no CPU time, and this process's own time is not in it
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        assert processes.proc_cpu(idle.pid) < 0.2
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait(5)
    assert processes.proc_cpu(busy.pid) is None  # gone: no figure rather than a wrong one


def test_clock_divides_the_server_cpu_time_by_the_commands():
    times = iter((2.0, 2.5))
    srv = types.SimpleNamespace(cpu=lambda: next(times))
    res = phases.Clock(srv).stop(1000)
    assert res["server_cpu_s"] == 0.5
    assert res["server_cpu_us_per_command"] == 500.0
    assert 0 < res["server_cpu_share"]  # 0.5 s of CPU in a few microseconds of wall time


def test_clock_without_proc_gives_no_cpu_figure():
    srv = types.SimpleNamespace(cpu=lambda: None)
    res = phases.Clock(srv).stop(1000)
    assert res["server_cpu_s"] is None and res["server_cpu_us_per_command"] is None


def row(text, label):
    for line in text.splitlines():
        if label in line:
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError("no row %r in\n%s" % (label, text))


def test_table_has_the_cpu_row_with_the_ratio_and_rows_for_another_interpreter():
    results = {
        "runs": {
            "micropython": {
                "ours": {"latency": {"clients": 8}, "throughput": {"server_cpu_us_per_command": 30.0}},
                "microdot": {"throughput": {"server_cpu_us_per_command": 120.0}},
                "interpreters": {
                    "32-bit frozen": {
                        "ours": {"boot_heap": 10000, "per_client_heap": 400},
                        "microdot": {"boot_heap": 20000, "per_client_heap": 2500},
                        "capacity": {"24K": {"ours": {"booted": True, "clients": 12}, "microdot": {"booted": False}}},
                        "heap_search": {"clients": 12, "ours": 24, "microdot": None},
                    }
                },
            }
        }
    }
    text = report.table(results)
    assert row(text, "server CPU per command to all 8 clients") == [
        "micropython", "server CPU per command to all 8 clients", "30.0 us", "120.0 us", "0.25"]
    assert row(text, "32-bit frozen: heap after boot")[2:] == ["10000 B", "20000 B", "0.50"]
    assert row(text, "32-bit frozen: heap per extra client")[2:] == ["400 B", "2500 B", "0.16"]
    assert row(text, "32-bit frozen: clients served at heapsize=24K")[2:] == ["12", "0 (no boot)", "n/a"]
    assert row(text, "32-bit frozen: smallest heap serving 12 clients")[2:] == ["24K", "n/a", "n/a"]


@pytest.mark.parametrize("how", (["-m", "tools.bench"], [os.path.join("tools", "bench")]))
def test_bench_starts_as_a_module_and_as_a_folder(how):
    r = subprocess.run([sys.executable] + how + ["--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--interpreter LABEL=BINARY" in r.stdout and "--quick" in r.stdout


def test_bench_refuses_an_interpreter_without_a_binary():
    r = subprocess.run([sys.executable, "-m", "tools.bench", "--interpreter", "x"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "LABEL=BINARY" in r.stderr


def test_tools_never_import_the_tests():
    found = []
    for d, _, files in os.walk(os.path.join(ROOT, "tools")):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(d, f)) as fh:
                    if re.search(r"^\s*(from|import)\s+host_tests", fh.read(), re.M):
                        found.append(os.path.join(d, f))
    assert found == []


# Both servers' heap and capacity figures on another binary: a wrapper around the unix port that
# notes each start, so the rows are shown to come from that binary for ours and microdot alike.
@pytest.mark.slow
def test_interpreter_figures_run_both_servers_on_the_given_binary():
    real = find_micropython()
    if real is None:
        pytest.fail(MICROPYTHON_MISSING)
    tmp = tempfile.mkdtemp(prefix="rnt")  # short: the unix port takes no argument of 256 bytes
    calls = os.path.join(tmp, "calls")
    binary = os.path.join(tmp, "mp")
    with open(binary, "w") as f:
        f.write('#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (calls, real))
    os.chmod(binary, 0o755)
    ctx = processes.Context(types.SimpleNamespace(perf_heapsize="256K", capacity_max=2), tmp)
    try:
        interp = processes.Interpreter("other", binary)
        res = phases.interpreter_figures(ctx, interp, ["128K"], 3, 0, lambda *a: None)
    finally:
        ctx.stop_all()
        with open(calls) as f:
            started = f.read()
        shutil.rmtree(tmp, ignore_errors=True)
    for kind in ("ours", "microdot"):
        assert res[kind]["boot_heap"] > 0
        assert len(res[kind]["client_heaps"]) == 3 and res[kind]["per_client_heap"] > 0
        assert res["capacity"]["128K"][kind]["clients"] == 2
    assert started.count("host_node.py") == 2  # ours: heap run and capacity run
    assert started.count("ref_microdot.py") == 2
    assert "heap_search" not in res


def board_results(passed=10, cost=5000):
    fig = {
        "ours": {"boot_heap": 19000, "first_client_heap": 448, "per_client_heap": 448},
        "microdot": {"boot_heap": 11000, "first_client_heap": 2200, "per_client_heap": 2550},
        "capacity": {},
        "heap_search": {"clients": 12, "ours": 28, "microdot": 60},
    }
    return {"runs": {"micropython": {"board": {
        "bits": 32,
        "interpreters": {"32-bit frozen": fig, "32-bit ROMFS": fig},
        "small_heap": {"runs": 10, "passed": passed, "clients": 12, "heapsize": "24K",
                       "failures": [] if passed == 10 else ["no boot ... MemoryError: allocating 296 bytes"]},
        "mqtt": {"with_median": 19000 + cost, "without_median": 19000, "cost": cost},
    }}}}


def test_board_table_leads_with_the_32_bit_rows_and_judges_their_targets():
    text = report.board_table(board_results())
    assert row(text, "32-bit frozen: heap after boot")[2:] == ["19000 B", "11000 B", "1.73"]
    assert row(text, "32-bit ROMFS: smallest heap serving 12 clients")[2:] == ["28K", "60K", "0.47"]
    assert row(text, "at heapsize=24K: runs passed")[2] == "10 of 10"
    assert row(text, "MQTT heap cost")[2] == "5000 B"
    met = {t: ok for t, _, ok in report.board_targets(board_results())}
    assert met == {
        "32-bit frozen: heap once ready <= 10 KB": False,
        "32-bit frozen: heap per extra client <= 0.4 KB": False,
        "32-bit frozen: 12 clients + 2 page loads + 1 link at heapsize=24K, ten runs of ten": True,
        "32-bit frozen: MQTT heap cost (connected, discovery done) <= 6 KB": True,
    }
    bad = {t: (m, ok) for t, m, ok in report.board_targets(board_results(passed=9, cost=7000))}
    assert bad["32-bit frozen: MQTT heap cost (connected, discovery done) <= 6 KB"][1] is False
    m, ok = bad["32-bit frozen: 12 clients + 2 page loads + 1 link at heapsize=24K, ten runs of ten"]
    assert not ok and m.startswith("9 of 10 passed; first failure: no boot")
    failing = board_results(passed=9)
    failing["runs"]["micropython"]["board"]["small_heap"]["smallest_kib"] = 32
    assert row(report.board_table(failing), "smallest heap for that case")[2] == "32K"
    assert report.board_table({"runs": {"micropython": {}}}) is None
    no_broker = board_results()
    no_broker["runs"]["micropython"]["board"]["mqtt"] = {"error": "mosquitto is not installed"}
    assert row(report.board_table(no_broker), "MQTT heap cost")[2] == "mosquitto is not installed"
    assert [(m, ok) for t, m, ok in report.board_targets(no_broker) if "MQTT" in t] == [
        ("not measured: mosquitto is not installed", False)]


# The board-faithful rows' three ways of running both servers on the 32-bit builds: each boots
# and serves clients, and where the code lives shows in the heap (frozen < ROMFS < .mpy files),
# for ours and for microdot alike.
@pytest.mark.slow
def test_32_bit_builds_run_both_servers_frozen_from_mpy_and_from_romfs():
    from tools.bench import board

    tmp = tempfile.mkdtemp(prefix="rnt")
    ctx = processes.Context(types.SimpleNamespace(perf_heapsize="256K"), tmp)
    try:
        boot = {}
        for interp in board.interpreters(ctx):
            for kind in ("ours", "microdot"):
                r = phases.heap_run(ctx, kind, "256K", 2, interp)
                assert r["boot_heap"] > 4096 and len(r["client_heaps"]) == 2 and r["first_client_heap"] > 0
                boot[interp.label.split()[-1], kind] = r["boot_heap"]
    finally:
        ctx.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    for kind in ("ours", "microdot"):
        assert boot["frozen", kind] < boot["ROMFS", kind] < boot[".mpy", kind], boot
