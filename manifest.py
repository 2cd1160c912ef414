# Freeze relaynode into a custom MicroPython build: its bytecode then runs from flash and costs
# no heap. Add `include("/path/to/relaynode/manifest.py")` to your board's manifest and build.
# The control page (firmware/www/index.html) and config.json still go onto the filesystem.
metadata(description="relaynode: relays driven from phone browsers over WebSockets", version="0.1.0")
package("firmware", base_path=".", opt=3)
