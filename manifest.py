# Freeze relaynode into a custom MicroPython build: its bytecode then runs from flash and costs
# no heap. Add `include("/path/to/relaynode/manifest.py")` to your board's manifest and build.
# The control page (firmware/www/index.html) and config.json still go onto the filesystem.
# No version= here: MicroPython would append `__version__ = ...` to every frozen module, a
# global each in the heap; the version is firmware.VERSION.
metadata(description="relaynode: relays driven from phone browsers over WebSockets")
package("firmware", base_path=".", opt=3)
