# Starts the simulator from its ROMFS image (tools/sim.py --romfs, tools/romfs.py): mounts the
# image at /rom, as a board with a romfs partition does at start-up, and imports host_node from
# it, so neither the firmware's code nor the simulator's own takes heap. Kept tiny: this file
# is compiled from source, and its bytecode stays in the heap while the node runs.
import os
import sys
import uctypes  # pyright: ignore[reportMissingImports]
import vfs  # pyright: ignore[reportMissingImports]

a, n = os.getenv("RELAYNODE_ROMFS").split(":")
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), "/rom")
sys.path.insert(0, "/rom")
del a, n
import host_node  # noqa: E402,F401  # runs the node
