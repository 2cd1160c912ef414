# Civil time without the runtime's help: POSIX TZ strings with their DST rules, local time
# from UTC and back, and sunrise/sunset (NOAA's solar equations). Every time here is Unix
# seconds (since 1970-01-01 UTC) on every runtime: the board's own epoch may be 2000, so
# the caller converts once where it reads the hardware clock. Dates are counted in days
# since 1970-01-01 by the functions below, so nothing depends on time.localtime (which uses
# the host's zone on the unix port). Weekdays are 0 = Monday .. 6 = Sunday.
import math

POLAR_DAY = "polar_day"  # the sun stays up all day: no sunrise, no sunset
POLAR_NIGHT = "polar_night"  # the sun stays down all day


# Days since 1970-01-01 of a proleptic Gregorian date (any year >= 1).
def days_of(y, mo, d):
    if mo < 3:
        y -= 1
        mo += 12
    # a year that starts on 1 March puts the leap day last
    return 365 * y + y // 4 - y // 100 + y // 400 + (153 * (mo - 3) + 2) // 5 + d - 719469


# (y, mo, d) of a day count since 1970-01-01.
def date_of(days):
    z = days + 719468  # days since 0000-03-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (mo <= 2), mo, d


def weekday(days):
    return (days + 3) % 7  # 1970-01-01 was a Thursday


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


# ---------------------------------------------------------------- POSIX TZ strings


# Parse a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3", "UTC0", "<+0330>-3:30") into
# (std_offset_s, dst_offset_s, start_rule, end_rule); offsets are seconds east of UTC (POSIX
# writes them west, hence the sign flip); a zone without DST has dst_offset_s None. A rule is
# (kind, a, b, c, time_s): kind "M" (month a, week b (5 = last), weekday c, 0 = Sunday),
# "J" (day a of 1..365, 29 February never counted) or "D" (day a of 0..365, counted);
# time_s is local time of day, standard time for the start and summer time for the end.
# Raises ValueError naming what is wrong.
def parse_tz(s):
    if not isinstance(s, str) or not 0 < len(s) <= 64:
        raise ValueError("must be a POSIX TZ string like CET-1CEST,M3.5.0,M10.5.0/3")
    i = _name(s, 0)
    std, i = _offset(s, i, False)
    if i == len(s):
        return (-std, None, None, None)
    i = _name(s, i)
    dst = std - 3600
    if i < len(s) and s[i] != ",":
        dst, i = _offset(s, i, False)
    if i == len(s):
        raise ValueError("summer time needs its rules, like ,M3.5.0,M10.5.0/3")
    start, i = _rule(s, i)
    end, i = _rule(s, i)
    if i != len(s):
        raise ValueError("unexpected %r at position %d" % (s[i:], i))
    return (-std, -dst, start, end)


# Skip a zone name: 3+ letters, or <...> with letters, digits, + and -.
def _name(s, i):
    if s[i : i + 1] == "<":
        j = s.find(">", i)
        if j < i + 4:
            raise ValueError("unterminated or short <name> at position %d" % i)
        return j + 1
    j = i
    while j < len(s) and s[j].isalpha():
        j += 1
    if j - i < 3:
        raise ValueError("expected a zone name of 3 or more letters at position %d" % i)
    return j


# [+-]hh[:mm[:ss]] -> (seconds, next index); rule times allow -167..167 hours.
def _offset(s, i, rule_time):
    sign = 1
    if s[i : i + 1] in ("+", "-"):
        sign = -1 if s[i] == "-" else 1
        i += 1
    total = 0
    for part in range(3):
        j = i
        while j < len(s) and s[j].isdigit():
            j += 1
        if j == i or j - i > 3:
            raise ValueError("expected a number at position %d" % i)
        n = int(s[i:j])
        if part and n > 59 or not part and n > (167 if rule_time else 24):
            raise ValueError("time out of range at position %d" % i)
        total += n * (3600, 60, 1)[part]
        i = j
        if s[i : i + 1] != ":":
            break
        i += 1
    return sign * total, i


# ",Mm.w.d[/time]" | ",Jn[/time]" | ",n[/time]" -> (rule, next index).
def _rule(s, i):
    if s[i : i + 1] != ",":
        raise ValueError("expected ',' and a rule at position %d" % i)
    i += 1
    kind = s[i : i + 1]
    if kind in ("M", "J"):
        i += 1
    else:
        kind = "D"
    j = i
    while j < len(s) and (s[j].isdigit() or s[j] == "."):
        j += 1
    try:
        nums = [int(x) for x in s[i:j].split(".")]
    except ValueError:
        nums = []
    if kind == "M":
        ok = len(nums) == 3 and 1 <= nums[0] <= 12 and 1 <= nums[1] <= 5 and nums[2] <= 6
    else:
        ok = len(nums) == 1 and (kind == "D" or nums[0] >= 1) and nums[0] <= 365
    if not ok:
        raise ValueError("bad rule %r at position %d" % (s[i:j], i))
    t = 7200
    if s[j : j + 1] == "/":
        t, j = _offset(s, j + 1, True)
    nums += [0, 0]
    return (kind, nums[0], nums[1], nums[2], t), j


# Days since 1970 of the day a rule picks in year y.
def _rule_day(rule, y):
    kind, a, b, c, _ = rule
    if kind == "M":
        first = days_of(y, a, 1)
        day = first + (c - (first + 4) % 7) % 7 + 7 * (b - 1)  # (first + 4) % 7: 0 = Sunday
        nxt = days_of(y + (a == 12), a % 12 + 1, 1)
        while day >= nxt:
            day -= 7
        return day
    base = days_of(y, 1, 1)
    if kind == "J":
        return base + a - 1 + (a >= 60 and _leap(y))
    return base + a


# UTC seconds of (DST start, DST end) in year y (local year).
def transitions(tz, y):
    std, dst, start, end = tz
    return (_rule_day(start, y) * 86400 + start[4] - std, _rule_day(end, y) * 86400 + end[4] - dst)


# Seconds east of UTC in force at utc_s, and whether that is summer time.
def offset(utc_s, tz):
    std, dst = tz[0], tz[1]
    if dst is None:
        return std, False
    y = date_of((utc_s + std) // 86400)[0]
    a, b = transitions(tz, y)
    on = a <= utc_s < b if a < b else not b <= utc_s < a
    return (dst if on else std), on


# Local time at utc_s: (y, mo, d, h, mi, s, weekday, offset_s, is_dst).
def local(utc_s, tz):
    off, on = offset(utc_s, tz)
    t = int(utc_s) + off
    days = t // 86400
    t -= days * 86400
    y, mo, d = date_of(days)
    return (y, mo, d, t // 3600, t // 60 % 60, t % 60, weekday(days), off, on)


# UTC seconds of a local wall-clock time, the date given as days since 1970 and the time as
# seconds since local midnight. A time that happens twice (the hour repeated when summer time
# ends) means its first occurrence. A time that does not exist (skipped when summer time
# starts) is read with the offset in force before the jump, so it lands as far after the jump
# as it was after the gap's start: 02:30 on the day CET jumps from 02:00 to 03:00 is 03:30.
def utc_of_local(days, secs, tz):
    t = days * 86400 + secs
    std, dst = tz[0], tz[1]
    if dst is None:
        return t - std
    best = None
    for o in (std, dst):
        u = t - o
        if offset(u, tz)[0] == o and (best is None or u < best):
            best = u
    if best is None:  # in the gap: offset before the jump is the one in force just before it
        best = t - offset(t - max(std, dst), tz)[0]
    return best


# "2026-12-02T18:30" for a local() tuple.
def iso_minute(lt):
    return "%04d-%02d-%02dT%02d:%02d" % lt[:5]


# ---------------------------------------------------------------- sunrise and sunset


# The sun on a day at an instant: (declination rad, equation of time in minutes), from NOAA's
# solar calculation equations. jd2000: days since 2000-01-01 12:00 UTC (kept small so 32-bit
# floats on the board stay precise to about a minute).
def _sun(jd2000):
    jc = jd2000 / 36525
    rad = math.radians
    l0 = rad((280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360)
    m = rad(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    c = math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc)) + math.sin(2 * m) * (0.019993 - 0.000101 * jc)
    c += math.sin(3 * m) * 0.000289
    om = rad(125.04 - 1934.136 * jc)
    lam = rad(math.degrees(l0) + c - 0.00569 - 0.00478 * math.sin(om))
    eps = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    eps = rad(eps + 0.00256 * math.cos(om))
    decl = math.asin(math.sin(eps) * math.sin(lam))
    y = math.tan(eps / 2) ** 2
    eqt = y * math.sin(2 * l0) - 2 * e * math.sin(m) + 4 * e * y * math.sin(m) * math.cos(2 * l0)
    eqt -= 0.5 * y * y * math.sin(4 * l0) + 1.25 * e * e * math.sin(2 * m)
    return decl, 4 * math.degrees(eqt)


# Sunrise (rising True) or sunset at lat/lon (degrees, east and north positive) on the date
# `days` (since 1970; the date is the one whose solar noon at lon is meant): UTC seconds, or
# POLAR_DAY / POLAR_NIGHT when the sun does not cross the horizon that day. The sun is placed
# at 90.833 degrees from the zenith (refraction and the disc's radius), as NOAA does.
def sun_event(days, lat, lon, rising):
    base = days - 10957  # days since 2000-01-01
    minutes = 720 - 4 * lon  # first guess: solar noon
    phi = math.radians(lat)
    for _ in range(3):  # recompute the sun at the event's own time
        decl, eqt = _sun(base + (minutes - 720) / 1440)
        x = math.cos(math.radians(90.833)) / (math.cos(phi) * math.cos(decl)) - math.tan(phi) * math.tan(decl)
        if x > 1:
            return POLAR_NIGHT
        if x < -1:
            return POLAR_DAY
        ha = math.degrees(math.acos(x))
        minutes = 720 - 4 * lon - eqt + (-4 * ha if rising else 4 * ha)
    return days * 86400 + int(minutes * 60 + 0.5)
