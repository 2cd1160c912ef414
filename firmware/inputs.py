# Buttons and switches without I/O: fed the level each input has after an edge and the time,
# it debounces, times long presses and hands back the commands for node.apply (cause
# "button"). A level counts once it has held for debounce_ms with no edge in between, so a
# bounce storm is one press (or none, when it ends where it began). Modes: toggle (each
# press), momentary (on while held), follow (a wall switch: the relay follows the level),
# pulse (each press pulses the relay for ms). toggle and pulse can have a long_action (on,
# off or toggle) taken once the input has been held for long_ms; the press then does nothing
# on release. Times are ticks_ms values (wrapping like MicroPython's).
from .compat import const

# Each input's state is five items of one flat list (a list each would cost more heap),
# input i's at i * _N + these offsets:
_RAW = const(0)  # active (True/False) after the latest edge
_STABLE = const(1)  # debounced active, None until the first level has settled
_EDGE = const(2)  # ticks of the latest edge
_PRESS = const(3)  # ticks the debounced press began, None when released
_LONG = const(4)  # the long action was taken for this press
_N = const(5)


# a - b for ticks_ms values that wrap at 2**30 (MicroPython); exact for |a - b| < 2**29.
def _diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


# The inputs' specs are one flat tuple too, input i's seven fields from i * _F: relay, mode,
# active_low, debounce_ms, long_ms, long_action, ms.
_F = const(7)


class Inputs:
    # specs: validated input dicts from config (pin, relay, mode, active_low, debounce_ms,
    # long_ms, long_action, ms).
    def __init__(self, specs):
        f = []
        for s in specs:
            f += (s["relay"], s["mode"], s["active_low"], s["debounce_ms"], s["long_ms"])
            f += (s.get("long_action"), s.get("ms"))
        self.specs = tuple(f)
        self.state = [None, None, 0, None, False] * len(specs)

    # Input i is at level (the pin's 0/1) after an edge at now; every edge restarts the
    # quiet time, even one that left the level where it was.
    def edge(self, i, level, now):
        st, b = self.state, i * _N
        st[b + _RAW] = bool(level) != self.specs[i * _F + 2]
        st[b + _EDGE] = now

    # The commands due at now: settled levels and long presses.
    def tick(self, now):
        out = []
        st = self.state
        for i in range(len(st) // _N):
            relay, mode, _, debounce, long_ms, long_action, _ = self.specs[i * _F : i * _F + _F]
            b = i * _N
            raw = st[b + _RAW]
            if raw is not None and raw != st[b + _STABLE] and _diff(now, st[b + _EDGE]) >= debounce:
                first = st[b + _STABLE] is None
                st[b + _STABLE] = raw
                if mode == "follow" or (mode == "momentary" and not first):
                    out.append({"type": "set", "relay": relay, "on": raw})
                elif first:
                    pass  # held at boot is not a press
                elif raw:
                    st[b + _PRESS] = now
                    st[b + _LONG] = False
                    if long_action is None:
                        out.append(self._short(i))
                else:
                    if long_action is not None and st[b + _PRESS] is not None and not st[b + _LONG]:
                        out.append(self._short(i))
                    st[b + _PRESS] = None
            if long_action is not None and st[b + _PRESS] is not None and not st[b + _LONG]:
                if _diff(now, st[b + _PRESS]) >= long_ms:
                    st[b + _LONG] = True
                    if long_action == "toggle":
                        out.append({"type": "toggle", "relay": relay})
                    else:
                        out.append({"type": "set", "relay": relay, "on": long_action == "on"})
        return out

    # What a short press of input i does.
    def _short(self, i):
        k = i * _F
        relay, mode, ms = self.specs[k], self.specs[k + 1], self.specs[k + 6]
        if mode == "pulse":
            return {"type": "pulse", "relay": relay, "ms": ms}
        return {"type": "toggle", "relay": relay}

    # Milliseconds from now until tick() has something to decide, or None when nothing waits
    # (then only an edge can change anything).
    def next_ms(self, now):
        best = None
        st, sp = self.state, self.specs
        for i in range(len(st) // _N):
            b, k = i * _N, i * _F
            if st[b + _RAW] is not None and st[b + _RAW] != st[b + _STABLE]:
                d = sp[k + 3] - _diff(now, st[b + _EDGE])
            elif sp[k + 5] is not None and st[b + _PRESS] is not None and not st[b + _LONG]:
                d = sp[k + 4] - _diff(now, st[b + _PRESS])
            else:
                continue
            d = max(0, d)
            if best is None or d < best:
                best = d
        return best
