# Schedule specs checked: a spec dict from config, a page's schedule_add or schedules.json
# becomes a schedule tuple (firmware/schedules.py), or a ValueError "field: what is wrong"
# like a config error. Loaded only while specs are checked (the config at boot, an edit, the
# saved list at start), then forgotten (firmware.forget): the running node keeps only the
# schedules' tuples and the code that fires them.
from .schedules import CLOCK, DAYS, SUN, SUNRISE, SUNSET

MAX_PULSE_MS = 3600000
ACTIONS = ("on", "off", "toggle", "pulse")
_KEYS = ("relay", "at", "days", "action", "ms", "id", "type")


# A field is at fault: a ValueError whose text is "field: what is wrong", like config errors.
def _error(field, msg):
    return ValueError("%s: %s" % (field, msg))


# Validate one spec dict ({"relay", "at", "days", "action", "ms"}; "id" and "type" are
# ignored) into a schedule tuple with id sid. relay: names maps lower-case names to the
# relays' own names (None: any non-empty name). sun: whether a location is configured.
# Raises ValueError ("field: what is wrong"); field is prefix + "." + the key.
def parse(spec, sid, names, sun, prefix):
    if not isinstance(spec, dict):
        raise _error(prefix, "must be an object")
    for k in spec:
        if k not in _KEYS:
            raise _error(prefix + "." + k, "unknown field")
    f = prefix + "."
    relay = spec.get("relay")
    if not isinstance(relay, str) or not relay.strip() or len(relay) > 32:
        raise _error(f + "relay", "must be a relay name")
    if names is not None:
        relay = names.get(relay.strip().lower())
        if relay is None:
            raise _error(f + "relay", "no relay named %s" % spec["relay"])
    kind, minutes = _at(spec.get("at"), f + "at")
    if kind and not sun:
        raise _error(f + "at", "sunrise and sunset need clock.lat and clock.lon")
    days = _days(spec.get("days", "mon-sun"), f + "days")
    action = spec.get("action")
    if action not in ACTIONS:
        raise _error(f + "action", "must be one of on, off, toggle, pulse")
    ms = spec.get("ms", 0)
    if action == "pulse":
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_PULSE_MS:
            raise _error(f + "ms", "must be a whole number from 1 to %d" % MAX_PULSE_MS)
    elif "ms" in spec:
        raise _error(f + "ms", "only for the action pulse")
    return (sid, relay, kind, minutes, days, ms if action == "pulse" else action)


# "HH:MM" | "sunrise" | "sunrise+MIN" | "sunset-MIN" -> (kind, minutes).
def _at(at, field):
    bad = _error(field, 'must be "HH:MM", "sunrise+MIN" or "sunset-MIN"')
    if not isinstance(at, str) or len(at) > 12:
        raise bad
    for kind in (SUNRISE, SUNSET):
        name = SUN[kind]
        if at.startswith(name):
            rest = at[len(name) :]
            if not rest:
                return kind, 0
            if rest[0] not in "+-" or not rest[1:].isdigit() or int(rest[1:]) > 720:
                raise _error(field, "the offset must be +MIN or -MIN, at most 720 minutes")
            return kind, int(rest)
    if len(at) != 5 or at[2] != ":" or not (at[:2] + at[3:]).isdigit():
        raise bad
    h, m = int(at[:2]), int(at[3:])
    if h > 23 or m > 59:
        raise bad
    return CLOCK, h * 60 + m


# "mon-fri" | "sat" | "fri-mon" | ["sat", "sun"] -> bit mask, bit 0 = Monday.
def _days(days, field):
    bad = _error(field, 'must be a range like "mon-fri" or a list like ["sat", "sun"]')
    if isinstance(days, str):
        ends = days.lower().split("-")
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise bad
        a, b = DAYS.index(ends[0]), DAYS.index(ends[-1])
        mask = 0
        while True:
            mask |= 1 << a
            if a == b:
                return mask
            a = (a + 1) % 7
    if not isinstance(days, list) or not days:
        raise bad
    mask = 0
    for d in days:
        if not isinstance(d, str) or d.lower() not in DAYS:
            raise bad
        mask |= 1 << DAYS.index(d.lower())
    return mask
