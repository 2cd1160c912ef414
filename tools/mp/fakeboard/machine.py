# A fake `machine` for the pretend board (tools/pretend_board.py), MicroPython only. Pins print
# every level change ("GPIO26 -> 0") on the board's console, reset() resets the pretend board
# (its MicroPython process ends and the pretend board starts a new one), and the watchdog bites
# as the ESP32's does: each WDT() and feed() rewrites a small file (FAKEBOARD's "watchdog")
# with the timeout, and the pretend board resets the board when the file has not been written
# for that long.
import json
import os
import sys
import time

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_levels = {}  # GPIO number -> level last driven or set, shared by every Pin object of that GPIO
_irqs = {}  # GPIO number -> (pin, handler, trigger) of Pin.irq
_NO_GPIO = (6, 7, 8, 9, 10, 11, 20, 24, 28, 29, 30, 31)  # ESP32: the flash chip, or no pin at all


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    # Like the ESP32's Pin: GPIO 6-11 (flash) and the missing numbers are refused, 34-39 are
    # input-only.
    def __init__(self, id, mode=-1, pull=-1, value=None, drive=None):
        if not isinstance(id, int) or id < 0 or id > 39 or id in _NO_GPIO:
            raise ValueError("invalid pin")
        self.id = id
        self.mode = None
        self.pull = None
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, drive=None):
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.id >= 34:
                raise ValueError("pin can only be input")
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:  # an input nobody set is at its pull's level
            return _levels.get(self.id, 1 if self.pull == Pin.PULL_UP else 0)
        v = 1 if v else 0
        if _levels.get(self.id) != v:
            _levels[self.id] = v
            print("GPIO%d -> %d" % (self.id, v))

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    # The handler runs for each edge of trigger's kind, scheduled as the ESP32 runs a soft
    # IRQ's handler (micropython.schedule), with this pin as its argument.
    def irq(self, handler=None, trigger=3):
        _irqs[self.id] = (self, handler, trigger)
        _watch_pins()
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0 or timeout < 1000:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        _arm(timeout)

    def feed(self):
        _arm(self.timeout)


# The watchdog's file, opened now: once the flash folder is mounted as /, this computer's
# paths are out of reach.
_DOG = None
if os.getenv("FAKEBOARD"):
    _p = json.loads(os.getenv("FAKEBOARD")).get("watchdog")
    if _p:
        _DOG = open(_p, "w")


# The levels the pretend board set ("pin GPIO LEVEL" on its standard input), from its file,
# opened now for the same reason, at its end: earlier lines are the boot's "levels" already.
_PINS = None
_watching = []

def _open_pins():
    global _PINS
    o = json.loads(os.getenv("FAKEBOARD") or "{}")
    for g, v in (o.get("levels") or {}).items():
        _levels[int(g)] = v
    if o.get("pins"):
        _PINS = open(o["pins"])
        _PINS.seek(0, 2)


_open_pins()


# A thread that reads the pins file as it grows and fires the interrupts (started by the
# first Pin.irq).
def _watch_pins():
    if _PINS is None or _watching:
        return
    import _thread

    _watching.append(True)
    _thread.start_new_thread(_pin_lines, ())


def _pin_lines():
    import micropython

    held = ""
    while True:
        line = _PINS.readline()
        if not line:
            time.sleep_ms(5)
            continue
        held += line
        if not held.endswith("\n"):
            continue
        gpio, level = [int(w) for w in held.split()]
        held = ""
        irq = _irqs.get(gpio)
        before = irq[0].value() if irq else None
        _levels[gpio] = level
        if irq is None or irq[1] is None or before == level:
            continue
        if irq[2] & (Pin.IRQ_RISING if level else Pin.IRQ_FALLING):
            while True:
                try:
                    micropython.schedule(irq[1], irq[0])
                    break
                except RuntimeError:  # the schedule queue is full: as a burst of edges would
                    time.sleep_ms(1)


def _arm(timeout):
    if _DOG is not None:
        _DOG.seek(0)
        _DOG.write("%10d\n" % timeout)
        _DOG.flush()


def _opts():
    return json.loads(os.getenv("FAKEBOARD") or "{}")


# Reset like the reset line: the pretend board sees its MicroPython process killed and starts
# a new one (boot.py, then main.py). Nothing can catch this, as on the chip.
def reset():
    try:
        sys.stdout.flush()
    except AttributeError:
        pass
    os.system("kill -9 $PPID")
    while True:
        time.sleep(1)


def soft_reset():
    raise SystemExit


def reset_cause():
    mode = _opts().get("mode", "power")
    return PWRON_RESET if mode == "power" else HARD_RESET if mode == "hard" else SOFT_RESET


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(hz=None):
    return 160000000


def idle():
    time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
