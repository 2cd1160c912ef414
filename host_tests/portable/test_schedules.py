# Tests for firmware/schedules.py and schedspec.py: spec validation with errors naming the field, the round
# trip to specs, due events fired exactly once across both DST transitions (a minute-by-minute
# walk over each transition day), next events per relay, and catch-up after a reset.
# Portable: run by pytest and by host_tests/mp_run.py.
from firmware import schedules
from firmware.clock import POLAR_NIGHT, days_of, local, parse_tz
from firmware.schedules import to_spec

BERLIN = parse_tz("CET-1CEST,M3.5.0,M10.5.0/3")
SYDNEY = parse_tz("AEST-10AEDT,M10.1.0,M4.1.0/3")
NAMES = {"light": "Light", "pump": "Pump"}


# The modules' functions take every argument; these give the tests' usual ones. schedspec is
# imported at each call: the node forgets it after each use (its dict emptied).
def parse(spec, sid=0, names=None, sun=True, prefix="schedule"):
    from firmware.schedspec import parse

    return parse(spec, sid, names, sun, prefix)


def due(s, last_utc, now_utc, tz, lat=0, lon=0):
    return schedules.due(s, last_utc, now_utc, tz, lat, lon)


def next_events(s, now_utc, tz, lat=0, lon=0):
    return schedules.next_events(s, now_utc, tz, lat, lon)


def catch_up(s, now_utc, tz, lat=0, lon=0):
    return schedules.catch_up(s, now_utc, tz, lat, lon)


def utc(y, mo, d, h=0, mi=0, s=0):
    return days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def field_of(spec, **kw):
    try:
        parse(spec, 1, NAMES, **kw)
    except ValueError as e:
        assert ": " in str(e), str(e)
        return str(e).split(": ")[0]
    assert False, "no error for %r" % (spec,)


def test_parse_examples_from_config():
    s = parse({"relay": "light", "at": "sunset-15", "days": "mon-sun", "action": "on"}, 3, NAMES)
    assert s == (3, "Light", schedules.SUNSET, -15, 127, "on")
    s = parse({"relay": "Pump", "at": "06:30", "days": "mon-fri", "action": "pulse", "ms": 600000}, 4, NAMES)
    assert s == (4, "Pump", schedules.CLOCK, 390, 31, 600000)  # a pulse's action is its length
    assert parse({"relay": "Pump", "at": "sunrise", "days": ["sat", "SUN"], "action": "off"})[2:5] == (1, 0, 96)
    assert parse({"relay": "Pump", "at": "sunrise+90", "days": "fri-mon", "action": "toggle"})[3:5] == (90, 0x71)
    assert parse({"relay": "Pump", "at": "23:59", "days": "wed", "action": "off"})[3:5] == (1439, 4)
    assert parse({"relay": "Pump", "at": "00:00", "action": "off", "type": "schedule_add"})[3:5] == (0, 127)


def test_parse_errors_name_the_field():
    ok = {"relay": "Light", "at": "06:30", "days": "mon-fri", "action": "on"}

    def spoil(**kw):
        d = dict(ok)
        d.update(kw)
        return d

    assert field_of("x") == "schedule"
    assert field_of(spoil(color="red")) == "schedule.color"
    assert field_of(spoil(relay="Nope")) == "schedule.relay"
    assert field_of(spoil(relay=3)) == "schedule.relay"
    for bad in ("6:30", "24:00", "12:60", "noon", "sunset+", "sunset*5", "sunrise-721", "", None, 630):
        assert field_of(spoil(at=bad)) == "schedule.at", bad
    assert field_of(spoil(at="sunset"), sun=False) == "schedule.at"
    for bad in ("mon-", "monday", "mon-fri-sat", [], ["xyz"], [1], 5):
        assert field_of(spoil(days=bad)) == "schedule.days", bad
    assert field_of(spoil(action="blink")) == "schedule.action"
    assert field_of(spoil(action="pulse")) == "schedule.ms"
    assert field_of(spoil(action="pulse", ms=0)) == "schedule.ms"
    assert field_of(spoil(action="pulse", ms=True)) == "schedule.ms"
    assert field_of(spoil(ms=5)) == "schedule.ms"
    try:
        parse(spoil(at="25:00"), prefix="schedules[2]")
        assert False, "no error"
    except ValueError as e:
        assert str(e).startswith("schedules[2].at: ")


def test_to_spec_round_trips():
    for spec in (
        {"id": 1, "relay": "Light", "at": "sunset-15", "days": "mon-sun", "action": "on"},
        {"id": 2, "relay": "Pump", "at": "06:30", "days": ["mon", "tue", "wed", "thu", "fri"], "action": "pulse", "ms": 5},
        {"id": 3, "relay": "Pump", "at": "sunrise+5", "days": ["sat"], "action": "toggle"},
        {"id": 4, "relay": "Pump", "at": "sunrise", "days": ["mon", "sun"], "action": "off"},
    ):
        s = parse(spec, spec["id"], NAMES)
        assert to_spec(s) == spec
        assert parse(to_spec(s), s[0], NAMES) == s
    assert schedules.new_id([]) == 1
    assert schedules.new_id([(4,), (2,)]) == 5


def test_commands():
    assert schedules.command(parse({"relay": "Light", "at": "01:00", "action": "on"}), None) == {"type": "set", "relay": "Light", "on": True}
    assert schedules.command(parse({"relay": "Light", "at": "01:00", "action": "off"}), None)["on"] is False
    assert schedules.command(parse({"relay": "Light", "at": "01:00", "action": "toggle"}), None) == {"type": "toggle", "relay": "Light"}
    p = parse({"relay": "Light", "at": "01:00", "action": "pulse", "ms": 900})
    assert schedules.command(p, None) == {"type": "pulse", "relay": "Light", "ms": 900}
    assert schedules.command(p, 300)["ms"] == 300


# Walk minute by minute from `start` for `hours`, calling due() like the node's task does;
# returns every fired (utc, id).
def walk(scheds, start, hours, tz, step=60):
    fired = []
    last = start
    for _ in range(hours * 3600 // step):
        now = last + step
        fired += [(t, s[0]) for t, s in due(scheds, last, now, tz, 52.52, 13.4)]
        last = now
    return fired


def test_due_spring_forward_fires_each_once():
    scheds = [
        parse({"relay": "Light", "at": "02:30", "action": "on"}, 1),
        parse({"relay": "Pump", "at": "01:59", "action": "on"}, 2),
        parse({"relay": "Pump", "at": "03:00", "action": "off"}, 3),
        parse({"relay": "Light", "at": "sunset", "action": "off"}, 4),
    ]
    fired = walk(scheds, utc(2026, 3, 28, 22), 25, BERLIN)
    # 02:30 does not exist on 2026-03-29: it fires once, at 03:30 CEST (01:30 UTC)
    assert [t for t, i in fired if i == 1] == [utc(2026, 3, 29, 1, 30)]
    assert [t for t, i in fired if i == 2] == [utc(2026, 3, 29, 0, 59)]
    assert [t for t, i in fired if i == 3] == [utc(2026, 3, 29, 1)]
    assert len([1 for t, i in fired if i == 4]) == 1
    assert [i for t, i in fired] == [2, 3, 1, 4]  # in time order
    # the day before and after at their normal local time
    before = walk(scheds[:1], utc(2026, 3, 27, 22), 24, BERLIN)
    after = walk(scheds[:1], utc(2026, 3, 29, 22), 24, BERLIN)
    assert before == [(utc(2026, 3, 28, 1, 30), 1)] and after == [(utc(2026, 3, 30, 0, 30), 1)]


def test_due_fall_back_fires_each_once():
    scheds = [
        parse({"relay": "Light", "at": "02:30", "action": "on"}, 1),
        parse({"relay": "Pump", "at": "03:00", "action": "off"}, 2),
    ]
    fired = walk(scheds, utc(2026, 10, 24, 20), 12, BERLIN)
    # 02:30 happens twice on 2026-10-25: the first one (CEST, 00:30 UTC) fires, once
    assert fired == [(utc(2026, 10, 25, 0, 30), 1), (utc(2026, 10, 25, 2), 2)]
    assert local(fired[0][0], BERLIN)[3:5] == (2, 30)


def test_due_southern_hemisphere_both_transitions():
    s = [parse({"relay": "Light", "at": "02:30", "action": "on"}, 1)]
    # Sydney: summer time ends 2026-04-05 03:00 AEDT (02:30 repeats), starts 2026-10-04 02:00
    assert walk(s, utc(2026, 4, 4, 10), 12, SYDNEY) == [(utc(2026, 4, 4, 15, 30), 1)]
    assert walk(s, utc(2026, 10, 3, 10), 12, SYDNEY) == [(utc(2026, 10, 3, 16, 30), 1)]


def test_due_in_big_steps_and_jumps():
    s = [parse({"relay": "Light", "at": "12:00", "days": "mon-fri", "action": "on"}, 1)]
    # ten-minute steps over a week: once on each weekday, never on the weekend (2026-11-30 is a Monday)
    fired = walk(s, utc(2026, 11, 29), 24 * 7, BERLIN, 600)
    assert [local(t, BERLIN)[2] for t, i in fired] == [30, 1, 2, 3, 4]
    assert due(s, utc(2026, 12, 1, 11, 59), utc(2026, 12, 1, 11, 0), BERLIN) == []  # clock went back
    assert due(s, utc(2026, 11, 20), utc(2026, 12, 1, 12), BERLIN) == []  # gap too long
    assert due(s, utc(2026, 12, 1, 10, 59), utc(2026, 12, 1, 11), BERLIN) == [(utc(2026, 12, 1, 11), s[0])]
    assert due(s, utc(2026, 12, 1, 11), utc(2026, 12, 1, 11, 1), BERLIN) == []


def test_next_events_per_relay():
    s = [
        parse({"relay": "Light", "at": "sunset-15", "action": "on"}, 1),
        parse({"relay": "Light", "at": "23:00", "action": "off"}, 2),
        parse({"relay": "Pump", "at": "06:30", "days": "mon-fri", "action": "pulse", "ms": 60000}, 3),
    ]
    now = utc(2026, 12, 4, 12)  # Friday 13:00 CET
    nxt = next_events(s, now, BERLIN, 52.52, 13.4)
    t, action = nxt["Light"]
    assert action == "on" and local(t, BERLIN)[2:4] == (4, 15)  # sunset in Berlin ~15:55
    assert nxt["Pump"] == (utc(2026, 12, 7, 5, 30), "pulse")  # Monday 06:30 CET
    late = next_events(s, utc(2026, 12, 4, 21), BERLIN, 52.52, 13.4)
    assert late["Light"] == (utc(2026, 12, 4, 22), "off")
    # Tromsø in December: the sun does not rise, and the state says why
    polar = next_events(s[:1], now, BERLIN, 69.65, 18.96)
    assert polar == {"Light": (None, POLAR_NIGHT)}
    assert next_events([], now, BERLIN) == {}


def test_catch_up_after_reset():
    s = [
        parse({"relay": "Light", "at": "07:00", "action": "on"}, 1),
        parse({"relay": "Light", "at": "22:00", "action": "off"}, 2),
        parse({"relay": "Pump", "at": "06:00", "action": "pulse", "ms": 3600000}, 3),
        parse({"relay": "Fan", "at": "05:00", "action": "toggle"}, 4),
        parse({"relay": "Heater", "at": "21:00", "days": ["wed"], "action": "on"}, 5),
    ]
    # Thursday 2026-12-03 05:20 CET: Light's last event was yesterday 22:00 (off); Pump's
    # pulse from yesterday 06:00 is long over; Heater was switched on Wednesday 21:00
    cmds = catch_up(s, utc(2026, 12, 3, 4, 20), BERLIN)
    by = {c["relay"]: c for c in cmds}
    assert by["Light"] == {"type": "set", "relay": "Light", "on": False}
    assert by["Pump"] == {"type": "set", "relay": "Pump", "on": False}
    assert by["Heater"] == {"type": "set", "relay": "Heater", "on": True}
    assert "Fan" not in by and len(cmds) == 3
    # 06:20: the hour's pulse that began at 06:00 runs on for its last 40 minutes
    by = {c["relay"]: c for c in catch_up(s, utc(2026, 12, 3, 5, 20), BERLIN)}
    assert by["Pump"] == {"type": "pulse", "relay": "Pump", "ms": 2400000}
    by = {c["relay"]: c for c in catch_up(s, utc(2026, 12, 3, 6, 0), BERLIN)}
    assert by["Light"]["on"] is True  # 07:00 today has passed
    # Saturday: the Wednesday event is more than a day back and says nothing any more
    assert "Heater" not in [c["relay"] for c in catch_up(s, utc(2026, 12, 5, 12), BERLIN)]
