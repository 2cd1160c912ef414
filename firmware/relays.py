# The relay bank: pins come in from outside (machine.Pin on the board, fakes on the host),
# so this module runs anywhere. Safe level first, power-on policy, interlock groups, pulse
# timers, and state persistence that survives a power cut mid-write.
import json
import os

from .compat import ticks_diff, ticks_add
from .text import loads

MAX_STATE = 4096  # bytes in a state file: 16 relays with long non-ASCII names fit

# Causes carried by every change message.
CLIENT = "client"
TIMER = "timer"
INTERLOCK = "interlock"
RESTORE = "restore"
BOOT = "boot"
LINK = "link"  # made by a device-to-device link (firmware/links.py)
HTTP = "http"  # POST /api/relays/NAME (firmware/api.py)


class Relay:
    def __init__(self, rid, spec, pin):
        self.id = rid
        self.name = spec["name"]
        self.gpio = spec["pin"]
        self.active_low = spec.get("active_low", False)
        self.power_on = spec.get("power_on", "off")
        self.group = spec.get("group")
        self.pulse_ms = spec.get("pulse_ms", 0)
        self.pin = pin
        self.on = False
        self.off_at = None  # ticks_ms deadline of a running pulse

    # Drive the pin: an active-low board switches on at level 0.
    def drive(self, on):
        self.on = on
        self.pin.value(int(on != self.active_low))


class RelayBank:
    # specs: validated relay dicts from config; make_pin(gpio, level) returns an output pin
    # already at level (glitch-free: machine.Pin(n, Pin.OUT, value=level) on the board).
    def __init__(self, specs, make_pin, clock):
        self.clock = clock
        self.relays = []
        for i, spec in enumerate(specs):
            pin = make_pin(spec["pin"], 1 if spec.get("active_low", False) else 0)
            self.relays.append(Relay(i, spec, pin))

    # A relay by id (int) or name (case-insensitive str); None when there is no such relay.
    def find(self, ref):
        if isinstance(ref, bool):
            return None
        if isinstance(ref, int):
            return self.relays[ref] if 0 <= ref < len(self.relays) else None
        if isinstance(ref, str):
            low = ref.strip().lower()
            for r in self.relays:
                if r.name.lower() == low:
                    return r
        return None

    # Switch relay; returns the changes made as (relay, cause) in the order they happened.
    # Interlock: the others in its group go off first (break before make).
    def set(self, relay, on, cause=CLIENT, pulse_ms=None):
        changes = []
        if on and relay.group is not None:
            for r in self.relays:
                if r is not relay and r.on and r.group == relay.group:
                    r.drive(False)
                    r.off_at = None
                    changes.append((r, INTERLOCK))
        if relay.on != on:
            relay.drive(on)
            changes.append((relay, cause))
        ms = pulse_ms or relay.pulse_ms
        relay.off_at = ticks_add(self.clock(), ms) if on and ms else None
        return changes

    def toggle(self, relay, cause=CLIENT):
        return self.set(relay, not relay.on, cause)

    def pulse(self, relay, ms, cause=CLIENT):
        return self.set(relay, True, cause, ms)

    # Apply each relay's power-on policy once at boot; saved maps name -> on.
    def power_on(self, saved):
        changes = []
        for r in self.relays:
            if r.power_on == "on":
                changes += self.set(r, True, BOOT)
            elif r.power_on == "restore" and saved and saved.get(r.name) is True and not r.pulse_ms:
                changes += self.set(r, True, RESTORE)
        return changes

    # End pulses whose time is up.
    def expire(self, now):
        now = self.clock() if now is None else now
        changes = []
        for r in self.relays:
            if r.off_at is not None and ticks_diff(r.off_at, now) <= 0:
                r.off_at = None
                if r.on:
                    r.drive(False)
                    changes.append((r, TIMER))
        return changes

    # Milliseconds until the next pulse ends, or None.
    def next_due(self, now):
        now = self.clock() if now is None else now
        best = None
        for r in self.relays:
            if r.off_at is not None:
                d = max(0, ticks_diff(r.off_at, now))
                if best is None or d < best:
                    best = d
        return best

    # What to persist: name -> on; pulse relays and relays in a timed pulse always off, so a
    # power cut mid-pulse cannot leave them on for good after a restore.
    def snapshot(self):
        return {r.name: r.on and r.off_at is None and not r.pulse_ms for r in self.relays}


# Relay state in flash. Writes go to a temporary file that is then renamed over the old
# one, so a power cut leaves either the old or the new file, never half of one.
class StateStore:
    depth = 2  # the nesting the file may have (a subclass may store something deeper)
    keep = True  # keep what the file holds, to skip writes that change nothing

    def __init__(self, directory, log, name):
        self.path = directory + "/" + name
        self.tmp = self.path + ".tmp"
        self.log = log
        self.saved = None  # what the file holds, while keep

    # The saved state, or None when there is none or it cannot be read (logged, one line per
    # file). The file is bounded before it is parsed, and parsed strictly with its nesting
    # bounded (text.loads): a huge or deeply nested file cannot end the boot.
    def load(self):
        for path in (self.path, self.tmp):
            try:
                with open(path, "rb") as f:
                    size = f.seek(0, 2)  # the size first: a read(n) takes n bytes of heap at once
                    if size > MAX_STATE:
                        self.log("state: %s is larger than %d bytes, ignored" % (path, MAX_STATE))
                        continue
                    f.seek(0)
                    raw = f.read()
            except OSError:
                continue
            except MemoryError:
                self.log("state: %s cannot be read (no memory), ignored" % path)
                continue
            try:
                data = loads(raw, self.depth)
            except (ValueError, MemoryError):
                self.log("state: %s is corrupt, ignored" % path)
                continue
            if self.valid(data):
                if self.keep:
                    self.saved = data
                return data
            self.log("state: %s has the wrong shape, ignored" % path)
        return None

    # The shape the file must have: relay name -> on (a subclass may store something else).
    def valid(self, data):
        return isinstance(data, dict) and all(isinstance(v, bool) for v in data.values())

    # Write data unless the file is known to hold it already; True when written.
    def save(self, data):
        if data == self.saved:
            return False
        with open(self.tmp, "w") as f:
            f.write(json.dumps(data))
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            # FAT cannot rename over a file; load() falls back to the temp file meanwhile.
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(self.tmp, self.path)
        if self.keep:
            self.saved = data.copy()  # a copy: the caller may change its dict in place later
        return True
