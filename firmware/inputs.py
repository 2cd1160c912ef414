# Buttons and switches without I/O: fed the level each input has after an edge and the time,
# it debounces, times long presses and hands back the commands for node.apply (cause
# "button"). A level counts once it has held for debounce_ms with no edge in between, so a
# bounce storm is one press (or none, when it ends where it began). Modes: toggle (each
# press), momentary (on while held), follow (a wall switch: the relay follows the level),
# pulse (each press pulses the relay for ms). toggle and pulse can have a long_action (on,
# off or toggle) taken once the input has been held for long_ms; the press then does nothing
# on release. Times are ticks_ms values (wrapping like MicroPython's).
from .compat import const

_RAW = const(0)  # active (True/False) after the latest edge
_STABLE = const(1)  # debounced active, None until the first level has settled
_EDGE = const(2)  # ticks of the latest edge
_PRESS = const(3)  # ticks the debounced press began, None when released
_LONG = const(4)  # the long action was taken for this press


# a - b for ticks_ms values that wrap at 2**30 (MicroPython); exact for |a - b| < 2**29.
def _diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


class Inputs:
    # specs: validated input dicts from config (pin, relay, mode, active_low, debounce_ms,
    # long_ms, long_action, ms).
    def __init__(self, specs):
        self.specs = [
            (s["relay"], s["mode"], s["active_low"], s["debounce_ms"], s["long_ms"], s.get("long_action"), s.get("ms"))
            for s in specs
        ]
        self.state = [[None, None, 0, None, False] for _ in specs]

    # Input i is at level (the pin's 0/1) after an edge at now; every edge restarts the
    # quiet time, even one that left the level where it was.
    def edge(self, i, level, now):
        st = self.state[i]
        st[_RAW] = bool(level) != self.specs[i][2]
        st[_EDGE] = now

    # The commands due at now: settled levels and long presses.
    def tick(self, now):
        out = []
        for i, st in enumerate(self.state):
            relay, mode, _, debounce, long_ms, long_action, ms = self.specs[i]
            if st[_RAW] is not None and st[_RAW] != st[_STABLE] and _diff(now, st[_EDGE]) >= debounce:
                first = st[_STABLE] is None
                on = st[_STABLE] = st[_RAW]
                if mode == "follow" or (mode == "momentary" and not first):
                    out.append({"type": "set", "relay": relay, "on": on})
                elif first:
                    pass  # held at boot is not a press
                elif on:
                    st[_PRESS] = now
                    st[_LONG] = False
                    if long_action is None:
                        out.append(self._short(i))
                else:
                    if long_action is not None and st[_PRESS] is not None and not st[_LONG]:
                        out.append(self._short(i))
                    st[_PRESS] = None
            if long_action is not None and st[_PRESS] is not None and not st[_LONG]:
                if _diff(now, st[_PRESS]) >= long_ms:
                    st[_LONG] = True
                    if long_action == "toggle":
                        out.append({"type": "toggle", "relay": relay})
                    else:
                        out.append({"type": "set", "relay": relay, "on": long_action == "on"})
        return out

    # What a short press of input i does.
    def _short(self, i):
        relay, mode, ms = self.specs[i][0], self.specs[i][1], self.specs[i][6]
        if mode == "pulse":
            return {"type": "pulse", "relay": relay, "ms": ms}
        return {"type": "toggle", "relay": relay}

    # Milliseconds from now until tick() has something to decide, or None when nothing waits
    # (then only an edge can change anything).
    def next_ms(self, now):
        best = None
        for i, st in enumerate(self.state):
            spec = self.specs[i]
            if st[_RAW] is not None and st[_RAW] != st[_STABLE]:
                d = spec[3] - _diff(now, st[_EDGE])
            elif spec[5] is not None and st[_PRESS] is not None and not st[_LONG]:
                d = spec[4] - _diff(now, st[_PRESS])
            else:
                continue
            d = max(0, d)
            if best is None or d < best:
                best = d
        return best
