# Runs the unmodified firmware on a computer, under CPython or the MicroPython unix port,
# with fake pins that log every change ("GPIO26 -> 0"). Started by tools/sim.py, which
# passes its options as JSON in $RELAYNODE_SIM (MicroPython has no argparse).
import asyncio
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


# Input pins (buttons and switches), by GPIO: their level is set from the simulator's
# standard input, a line "pin GPIO LEVEL", which then calls the pin's interrupt handler.
_inputs = {}


class FakeInput:
    def __init__(self, gpio, pull, handler):
        self.gpio = gpio
        self.handler = handler
        self.level = 0 if pull == "down" else 1  # a released button at its pull's level

    def value(self):
        return self.level


# make_input for firmware/buttons.py: the first pin made starts reading standard input.
def make_input(gpio, pull, handler):
    if not _inputs:
        _read_stdin()
    pin = _inputs[gpio] = FakeInput(gpio, pull, handler)
    return pin


# One line of standard input: "pin GPIO LEVEL" sets the level and fires the handler.
def _line(text):
    words = text.split()
    if not words:
        return
    pin = None
    if len(words) == 3 and words[0] == "pin" and words[1].isdigit() and words[2] in ("0", "1"):
        pin = _inputs.get(int(words[1]))
    if pin is None:
        log("sim: expected 'pin GPIO 0|1' for an input pin (%s), not %r" % (sorted(_inputs), text.strip()))
        return
    pin.level = int(words[2])
    pin.handler(pin)


# Standard input, line by line, as the event loop runs. MicroPython: a task looks every 20 ms
# with a poll object of its own and reads what is there a byte at a time (standard input in
# the event loop's own poller has crashed the unix port); CPython: the loop watches its file
# descriptor.
def _read_stdin():
    import asyncio

    if sys.implementation.name == "micropython":
        import select

        async def lines():
            poll = select.poll()
            poll.register(0, select.POLLIN)
            held = b""
            while True:
                ready = poll.poll(0)
                if not ready:
                    await asyncio.sleep_ms(20)  # pyright: ignore[reportAttributeAccessIssue]
                    continue
                c = sys.stdin.buffer.read(1) if ready[0][1] & select.POLLIN else b""
                if not c:
                    return  # end of input
                if c != b"\n":
                    held += c
                    continue
                try:
                    _line(held.decode())
                except Exception as e:  # not UTF-8: the next line may be
                    log("sim: standard input: %r" % e)
                held = b""

        asyncio.create_task(lines())
        return
    loop = asyncio.get_event_loop()
    held = [b""]

    def readable():
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
        *done, held[0] = (held[0] + data).split(b"\n")
        for line in done:
            _line(line.decode("utf-8", "replace"))

    loop.add_reader(0, readable)


# The simulator's clock (--clock, --clock-rate): the time it started at runs rate times faster
# than the computer's, served to the node as its NTP would be (Unix seconds).
def sim_env(opts):
    env = {"make_input": make_input}
    rate = opts.get("clock_rate") or 1
    if rate != 1:
        env["clock_rate"] = rate
    start = opts.get("clock_ms")
    if start is not None:
        from firmware.compat import ticks_ms, ticks_diff

        t0 = []  # the time starts at the node's first question

        def ntp():
            if not t0:
                t0.append(ticks_ms())
            return (start + ticks_diff(ticks_ms(), t0[0]) * rate) // 1000

        env["ntp"] = ntp
    return env


# The node's log: the pin lines held so far, then line.
def log(line):
    _pins.append(line + "\n")
    sys.stdout.write("".join(_pins))
    _pins.clear()


RESTART = 75  # the exit status that asks for a restart


async def _exit_for_restart(srv):
    from firmware.compat import sleep_ms

    await sleep_ms(200)
    srv.node.save()
    log("relaynode: exiting with status %d to restart with the new config" % RESTART)
    sys.stdout.flush()
    getattr(os, "_exit", sys.exit)(RESTART)  # CPython: no SystemExit out of a task to complain about


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
            env=sim_env(opts),
        )
    except ConfigError as e:
        print("config error:", e)
        sys.exit(2)
    app.forget()  # as on the board: the boot-only modules' code goes back to the heap
    # PUT /api/config: where a board resets, the simulator exits with RESTART once the answer is
    # out; run it again (the harness does) to apply the new config
    node.offer_config(opts["config"], lambda: asyncio.create_task(_exit_for_restart(node)))
    if opts.get("heap_log"):
        node.pages.heap_log = True  # the heap in each client's open line (benchmarks)
    if opts.get("setup_mode"):
        # as a board without Wi-Fi: /setup saves wifi.json, here in the state directory (no reset)
        from firmware.relays import StateStore

        def save_wifi(ssid, password):
            StateStore(state_dir, print, "wifi.json").save({"ssid": ssid, "password": password})
            print("setup: saved wifi.json for %s" % ssid)

        node.offer_setup(save_wifi, ())
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
