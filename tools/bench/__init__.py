# `make bench`: figures for relaynode next to a microdot reference on the same runtime.
# Modules: cli (options, the order of the runs, __main__), processes (the servers under test and
# every child process), loadgen (the WebSocket clients of the load generator), phases (each
# measurement), links (the device-to-device link figure), report (the table, targets, JSON),
# ref_microdot (the reference server, run as a script). BENCHMARKS.md explains every figure.
import os
import sys

# The bench imports the other tools (runtime, romfs, compile, harness) by name, as they do.
TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
