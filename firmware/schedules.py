# Schedules turned into UTC instants with firmware/clock.py (firmware/schedspec.py checks
# their specs and makes the tuples). A schedule is kept as one tuple (id, relay, kind,
# minutes, days, action): kind CLOCK (minutes after local midnight), SUNRISE or SUNSET
# (minutes after the sun event, may be negative); days a bit mask, bit 0 = Monday; action
# "on" | "off" | "toggle", or for a pulse its length in ms (an int: six items fit the heap's
# 32-byte blocks on the board, seven do not).
# Each (schedule, local date) gives exactly one instant, so a caller that fires the events in
# (last, now] fires each once, also on the days summer time starts and ends: a time skipped
# by the jump forward fires as far after it as it was after the gap's start (02:30 -> 03:30),
# a time that happens twice fires the first time. A sun event that does not happen (polar day
# or night) is skipped.
from .clock import offset, sun_event, utc_of_local, weekday

MAX_SCHEDULES = 16
MAX_GAP_S = 172800  # due() looks back at most this far; a longer gap is catch_up()'s job
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = 0
SUNRISE = 1
SUNSET = 2
SUN = ("", "sunrise", "sunset")  # the names of the kinds in "at"


# A schedule tuple back as the JSON-able dict pages see and the store keeps.
def to_spec(s):
    sid, relay, kind, minutes, days, action = s
    if kind == CLOCK:
        at = "%02d:%02d" % (minutes // 60, minutes % 60)
    else:
        at = SUN[kind] + ("%+d" % minutes if minutes else "")
    d = {"id": sid, "relay": relay, "at": at, "action": action}
    d["days"] = "mon-sun" if days == 127 else [DAYS[i] for i in range(7) if days >> i & 1]
    if isinstance(action, int):
        d["action"] = "pulse"
        d["ms"] = action
    return d


# The command node.apply takes for a schedule (ms: the pulse's length; None: its own).
def command(s, ms):
    relay, action = s[1], s[5]
    if isinstance(action, int):
        return {"type": "pulse", "relay": relay, "ms": ms or action}
    if action == "toggle":
        return {"type": "toggle", "relay": relay}
    return {"type": "set", "relay": relay, "on": action == "on"}


# Local date (days since 1970) at utc_s.
def local_day(utc_s, tz):
    return (utc_s + offset(utc_s, tz)[0]) // 86400


# When schedule s fires on local date `day`: UTC seconds, None when not on that weekday, or
# clock.POLAR_DAY / POLAR_NIGHT when its sun event does not happen. sun: a dict that caches
# sun events (by day and kind).
def at(s, day, tz, lat, lon, sun):
    if not s[4] >> weekday(day) & 1:
        return None
    kind = s[2]
    if kind == CLOCK:
        return utc_of_local(day, s[3] * 60, tz)
    key = day * 2 + kind
    t = sun.get(key)
    if t is None:
        t = sun[key] = sun_event(day, lat, lon, kind == SUNRISE)
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
def due(schedules, last_utc, now_utc, tz, lat, lon):
    if not schedules or now_utc <= last_utc or now_utc - last_utc > MAX_GAP_S:
        return []
    a, b = local_day(last_utc, tz), local_day(now_utc, tz)
    return _between(schedules, a - 1, b + 1, last_utc, now_utc, tz, lat, lon)


# Per relay its next event after now_utc within a week: {relay: (utc, action)}; a relay whose
# only events are sun events that do not happen gets (None, POLAR_DAY or POLAR_NIGHT).
def next_events(schedules, now_utc, tz, lat, lon):
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
                out[s[1]] = (t, "pulse" if isinstance(s[5], int) else s[5])
    return out


# The commands that put each relay where its last scheduled event before now_utc (today's or
# yesterday's, local time) left it: on/off as they are, a pulse still running for the rest of
# its time, an ended pulse as off. Toggles say nothing about the state and are passed over.
def catch_up(schedules, now_utc, tz, lat, lon):
    today = local_day(now_utc, tz)
    last = {}
    for t, s in _between(schedules, today - 1, today, now_utc - MAX_GAP_S, now_utc, tz, lat, lon):
        if s[5] != "toggle":
            last[s[1]] = (t, s)
    cmds = []
    for t, s in last.values():
        pulse = isinstance(s[5], int)
        left = t * 1000 + s[5] - now_utc * 1000 if pulse else 0
        if pulse and left <= 0:
            cmds.append({"type": "set", "relay": s[1], "on": False})
        else:
            cmds.append(command(s, left if pulse else None))
    return cmds


# A free id for a new schedule.
def new_id(schedules):
    return max([s[0] for s in schedules] + [0]) + 1
