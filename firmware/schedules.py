# Schedules: validate specs, and turn them into UTC instants with firmware/clock.py. A
# schedule is kept as one tuple (id, relay, kind, minutes, days, action, ms): kind CLOCK
# (minutes after local midnight), SUNRISE or SUNSET (minutes after the sun event, may be
# negative); days a bit mask, bit 0 = Monday; action "on" | "off" | "toggle" | "pulse".
# Each (schedule, local date) gives exactly one instant, so a caller that fires the events in
# (last, now] fires each once, also on the days summer time starts and ends: a time skipped
# by the jump forward fires as far after it as it was after the gap's start (02:30 -> 03:30),
# a time that happens twice fires the first time. A sun event that does not happen (polar day
# or night) is skipped.
from .clock import offset, sun_event, utc_of_local, weekday

MAX_SCHEDULES = 16
MAX_PULSE_MS = 3600000
MAX_GAP_S = 172800  # due() looks back at most this far; a longer gap is catch_up()'s job
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ACTIONS = ("on", "off", "toggle", "pulse")
CLOCK = 0
SUNRISE = 1
SUNSET = 2
_SUN = ("", "sunrise", "sunset")
_KEYS = ("relay", "at", "days", "action", "ms", "id", "type")


# A field is at fault: str(e) is "field: what is wrong", like config errors.
class ScheduleError(ValueError):
    def __init__(self, field, msg):
        super().__init__("%s: %s" % (field, msg))
        self.field = field


# Validate one spec dict ({"relay", "at", "days", "action", "ms"}; "id" and "type" are
# ignored) into a schedule tuple with id sid. relay: names maps lower-case names to the
# relays' own names (None: any non-empty name). sun: whether a location is configured.
# Raises ScheduleError; field is prefix + "." + the key.
def parse(spec, sid=0, names=None, sun=True, prefix="schedule"):
    if not isinstance(spec, dict):
        raise ScheduleError(prefix, "must be an object")
    for k in spec:
        if k not in _KEYS:
            raise ScheduleError(prefix + "." + k, "unknown field")
    f = prefix + "."
    relay = spec.get("relay")
    if not isinstance(relay, str) or not relay.strip() or len(relay) > 32:
        raise ScheduleError(f + "relay", "must be a relay name")
    if names is not None:
        relay = names.get(relay.strip().lower())
        if relay is None:
            raise ScheduleError(f + "relay", "no relay named %s" % spec["relay"])
    kind, minutes = _at(spec.get("at"), f + "at")
    if kind and not sun:
        raise ScheduleError(f + "at", "sunrise and sunset need clock.lat and clock.lon")
    days = _days(spec.get("days", "mon-sun"), f + "days")
    action = spec.get("action")
    if action not in ACTIONS:
        raise ScheduleError(f + "action", "must be one of on, off, toggle, pulse")
    ms = spec.get("ms", 0)
    if action == "pulse":
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_PULSE_MS:
            raise ScheduleError(f + "ms", "must be a whole number from 1 to %d" % MAX_PULSE_MS)
    elif "ms" in spec:
        raise ScheduleError(f + "ms", "only for the action pulse")
    return (sid, relay, kind, minutes, days, action, ms)


# "HH:MM" | "sunrise" | "sunrise+MIN" | "sunset-MIN" -> (kind, minutes).
def _at(at, field):
    bad = ScheduleError(field, 'must be "HH:MM", "sunrise+MIN" or "sunset-MIN"')
    if not isinstance(at, str) or len(at) > 12:
        raise bad
    for kind in (SUNRISE, SUNSET):
        name = _SUN[kind]
        if at.startswith(name):
            rest = at[len(name) :]
            if not rest:
                return kind, 0
            if rest[0] not in "+-" or not rest[1:].isdigit() or int(rest[1:]) > 720:
                raise ScheduleError(field, "the offset must be +MIN or -MIN, at most 720 minutes")
            return kind, int(rest)
    if len(at) != 5 or at[2] != ":" or not (at[:2] + at[3:]).isdigit():
        raise bad
    h, m = int(at[:2]), int(at[3:])
    if h > 23 or m > 59:
        raise bad
    return CLOCK, h * 60 + m


# "mon-fri" | "sat" | "fri-mon" | ["sat", "sun"] -> bit mask, bit 0 = Monday.
def _days(days, field):
    bad = ScheduleError(field, 'must be a range like "mon-fri" or a list like ["sat", "sun"]')
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


# A schedule tuple back as the JSON-able dict pages see and the store keeps.
def to_spec(s):
    sid, relay, kind, minutes, days, action, ms = s
    if kind == CLOCK:
        at = "%02d:%02d" % (minutes // 60, minutes % 60)
    else:
        at = _SUN[kind] + ("%+d" % minutes if minutes else "")
    d = {"id": sid, "relay": relay, "at": at, "action": action}
    d["days"] = "mon-sun" if days == 127 else [DAYS[i] for i in range(7) if days >> i & 1]
    if action == "pulse":
        d["ms"] = ms
    return d


# The command node.apply takes for a schedule (ms: the pulse's length, if not its own).
def command(s, ms=None):
    relay, action = s[1], s[5]
    if action == "pulse":
        return {"type": "pulse", "relay": relay, "ms": ms or s[6]}
    if action == "toggle":
        return {"type": "toggle", "relay": relay}
    return {"type": "set", "relay": relay, "on": action == "on"}


# Local date (days since 1970) at utc_s.
def local_day(utc_s, tz):
    return (utc_s + offset(utc_s, tz)[0]) // 86400


# When schedule s fires on local date `day`: UTC seconds, None when not on that weekday, or
# clock.POLAR_DAY / POLAR_NIGHT when its sun event does not happen. sun caches sun events.
def at(s, day, tz, lat, lon, sun=None):
    if not s[4] >> weekday(day) & 1:
        return None
    kind = s[2]
    if kind == CLOCK:
        return utc_of_local(day, s[3] * 60, tz)
    key = day * 2 + kind
    t = sun.get(key) if sun is not None else None
    if t is None:
        t = sun_event(day, lat, lon, kind == SUNRISE)
        if sun is not None:
            sun[key] = t
    return t if isinstance(t, str) else t + s[3] * 60


# Every (utc, schedule) on local dates first..last with lo < utc <= hi, sorted by time.
def _between(schedules, first, last, lo, hi, tz, lat, lon):
    out = []
    sun = {}
    for day in range(first, last + 1):
        for s in schedules:
            t = at(s, day, tz, lat, lon, sun)
            if isinstance(t, int) and lo < t <= hi:
                out.append((t, s))
    out.sort(key=lambda e: e[0])
    return out


# The events that fell due in (last_utc, now_utc], oldest first, as (utc, schedule); a caller
# that passes its previous now as last fires each exactly once. Empty when the clock went
# back or the gap is longer than MAX_GAP_S (after a clock jump: use catch_up()).
def due(schedules, last_utc, now_utc, tz, lat=0, lon=0):
    if not schedules or now_utc <= last_utc or now_utc - last_utc > MAX_GAP_S:
        return []
    a, b = local_day(last_utc, tz), local_day(now_utc, tz)
    return _between(schedules, a - 1, b + 1, last_utc, now_utc, tz, lat, lon)


# Per relay its next event after now_utc within a week: {relay: (utc, action)}; a relay whose
# only events are sun events that do not happen gets (None, POLAR_DAY or POLAR_NIGHT).
def next_events(schedules, now_utc, tz, lat=0, lon=0):
    out = {}
    today = local_day(now_utc, tz)
    sun = {}
    for day in range(today - 1, today + 9):
        for s in schedules:
            t = at(s, day, tz, lat, lon, sun)
            if t is None:
                continue
            old = out.get(s[1])
            if isinstance(t, str):
                if old is None:
                    out[s[1]] = (None, t)
            elif t > now_utc and (old is None or old[0] is None or t < old[0]):
                out[s[1]] = (t, s[5])
    return out


# The commands that put each relay where its last scheduled event before now_utc (today's or
# yesterday's, local time) left it: on/off as they are, a pulse still running for the rest of
# its time, an ended pulse as off. Toggles say nothing about the state and are passed over.
def catch_up(schedules, now_utc, tz, lat=0, lon=0):
    today = local_day(now_utc, tz)
    last = {}
    for t, s in _between(schedules, today - 1, today, now_utc - MAX_GAP_S, now_utc, tz, lat, lon):
        if s[5] != "toggle":
            last[s[1]] = (t, s)
    cmds = []
    for t, s in last.values():
        left = t * 1000 + s[6] - now_utc * 1000
        if s[5] == "pulse" and left <= 0:
            cmds.append({"type": "set", "relay": s[1], "on": False})
        else:
            cmds.append(command(s, left if s[5] == "pulse" else None))
    return cmds


# A free id for a new schedule.
def new_id(schedules):
    return max([s[0] for s in schedules] + [0]) + 1
