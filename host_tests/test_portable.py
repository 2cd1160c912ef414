# The portable test modules (host_tests/portable/) under the MicroPython unix port, through
# host_tests/mp_run.py. pytest also collects those modules directly under CPython.
import os
import subprocess

import pytest

from tools.harness import MICROPYTHON_MISSING, find_micropython

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PORTABLE = os.path.join(HERE, "portable")
RUNNER = os.path.join(HERE, "mp_run.py")
# The tests compile the firmware from source, in the heap, on the 64-bit port: a test module
# that loads the node with its links needs more than the board's firmware does frozen.
HEAPSIZE = "192K"


def portable_files():
    return sorted(
        os.path.join(PORTABLE, f)
        for f in os.listdir(PORTABLE)
        if f.startswith("test_") and f.endswith(".py")
    )


def test_portable_suite_under_micropython():
    mp = find_micropython()
    if mp is None:
        pytest.fail(MICROPYTHON_MISSING)
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
