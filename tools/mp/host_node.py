# Runs the unmodified firmware on a computer, under CPython or the MicroPython unix port,
# with fake pins that log every change ("GPIO26 -> 0"). Started by tools/sim.py, which
# passes its options as JSON in $RELAYNODE_SIM (MicroPython has no argparse).
import json
import os
import sys

# Pin lines not written yet. They go out with the node's next log line, in one write: the node
# logs every relay change once its clients have been written, so the simulator's pins cost the
# broadcast no system call (a board's pins print nothing at all).
_pins = []


class FakePin:
    def __init__(self, gpio, level):
        self.gpio = gpio
        self.level = None
        self.value(level)

    def value(self, v=None):
        if v is None:
            return self.level
        v = 1 if v else 0
        if v != self.level:
            self.level = v
            _pins.append("GPIO%d -> %d\n" % (self.gpio, v))


# The node's log: the pin lines held so far, then line.
def log(line):
    _pins.append(line + "\n")
    sys.stdout.write("".join(_pins))
    _pins.clear()


# Options come in the environment: the unix port cannot take a command-line argument of 256
# bytes or more, which a JSON of long paths easily is. They are read in here, so that none of
# them stays in the heap once the node runs (a board has no such options).
def main():
    opts = json.loads(os.getenv("RELAYNODE_SIM"))
    page = opts["root"] + "/firmware/www/index.html"
    if opts.get("frozen"):
        # The firmware frozen into this interpreter (tools/mpbuild.py): .frozen goes first and no
        # folder of the repo goes on the path, as a folder named firmware anywhere before .frozen
        # would be imported instead (even one holding only the page). The page is read by path.
        if ".frozen" in sys.path:
            sys.path.remove(".frozen")
        sys.path.insert(0, ".frozen")
    else:
        sys.path.insert(0, opts["root"])
    if opts.get("mpy"):
        sys.path.insert(0, opts["mpy"])  # the compiled firmware, as on the board
    # The firmware in a ROMFS image that tools/romfs.py mapped outside the heap, as a board maps
    # its flash: tools/mp/rom_boot.py mounted it at /rom and imported this module from it, and the
    # firmware comes from there too, so its bytecode runs in place instead of being copied into
    # the heap.
    if os.getenv("RELAYNODE_ROMFS"):
        sys.path.insert(0, "/rom")  # ahead of the sources: the image's firmware
        page = "/rom/firmware/www/index.html"
    if opts.get("frozen"):
        import firmware

        if not str(firmware.__path__).startswith(".frozen"):
            print("sim: the firmware was not imported frozen but from %s" % firmware.__path__)
            sys.exit(2)
        del firmware
    from firmware import server  # before config: the code that stays loads into a clean heap
    from firmware import app
    from firmware.config import ConfigError

    state_dir = opts["state_dir"]
    try:
        os.mkdir(state_dir)
    except OSError:
        pass
    try:
        node, port = app.load(
            opts["config"],
            FakePin,
            state_dir,
            page,
            opts["port"],
            log=log,
            echo=opts.get("echo") or None,
            max_message=opts.get("max_message"),
        )
    except ConfigError as e:
        print("config error:", e)
        sys.exit(2)
    app.forget()  # as on the board: the boot-only modules' code goes back to the heap
    if opts.get("heap_log"):
        node.pages.heap_log = True  # the heap in each client's open line (benchmarks)
    if opts.get("setup_mode"):
        # as a board without Wi-Fi: /setup saves wifi.json, here in the state directory (no reset)
        from firmware.relays import StateStore

        def save_wifi(ssid, password):
            StateStore(state_dir, print, "wifi.json").save({"ssid": ssid, "password": password})
            print("setup: saved wifi.json for %s" % ssid)

        node.offer_setup(save_wifi)
    # updates over Wi-Fi (firmware/update.py) into the state directory, the simulated flash; a
    # commit stops the simulator where a board would reset (it has no boot.py to install them)
    node.updates = (state_dir, _stop)
    return server.run, (node, opts["host"], port)


def _stop():
    print("sim: update committed; a board would reset now: stopping")
    sys.exit(0)


# Serve from here, not from inside main(): nothing on the stack still points at boot-only code.
run, args = main()
del main
run(*args)
