# Integration: the clock and schedules in the whole node (CPython and the MicroPython unix port),
# with the simulator's clock set by the test (tools/sim.py --clock, --clock-rate) so that a
# schedule, both summer-time transitions and a sunset fire within seconds; catch-up for
# power_on "schedule" after a restart; schedules added and removed over the WebSocket, kept in
# flash, and refused with the errors config gives. 127.0.0.1 only, every wait bounded.
import json
import os
import time

import pytest

from host_tests.pages import Page
from tools import harness as nh

pytestmark = pytest.mark.slow

T = 5.0  # bound on every wait for something that should happen
HEAP = "160K"  # MicroPython: checking a config with clock, schedules and inputs from .mpy files
BERLIN = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "", "lat": 52.52, "lon": 13.40}


# A node with the clock at `at` (UTC, "2026-03-29T00:59:30Z") running `rate` times faster;
# relays: names (GPIO 25, 26, 27, 32, ...) when given, else the repo's Light and Fan; top:
# more config sections.
def clock_node(node, schedules, at=None, rate=1, names=None, clock=BERLIN, **kw):
    args = ["--clock-rate", str(rate)] + (["--clock", at] if at else [])
    cfg = nh.make_config(clock=clock, schedules=schedules)
    if names:
        pins = (25, 26, 27, 32, 33)
        cfg["relays"] = [{"name": r, "pin": pins[i]} for i, r in enumerate(names)]
    cfg.update(kw.pop("top", {}))
    n = node(config=cfg, heapsize=HEAP, sim_args=args, **kw)
    if at:
        n.wait_for_line("clock: ", T)  # the time is known: the pages that join now have it
    return n


# Wait until the node's local time is at least iso ("2026-03-29T05:00"); returns the state.
def wait_local(n, iso, timeout=T * 3):
    deadline = time.monotonic() + timeout
    while True:
        st = nh.get_state(n.port)
        if st["clock"]["local"] and st["clock"]["local"] >= iso:
            return st
        if time.monotonic() > deadline:
            raise AssertionError("local time still %r, not %s:\n%s" % (st["clock"], iso, n.output()))
        time.sleep(0.1)


def changes(n, cause="schedule"):
    return [x for x in n.matching("(%s)" % cause) if x.startswith("relay ")]


def test_a_schedule_fires_within_seconds(node):
    n = clock_node(node, [{"relay": "Fan", "at": "03:00", "action": "on"}], "2026-03-29T00:59:30Z", 60)
    n.wait_for_line("clock: 2026-03-29T01:59 from ntp", T)
    n.wait_for_line("relay Fan -> on (schedule)", T)
    st = nh.get_state(n.port)
    assert st["relays"][1]["on"] is True
    assert st["clock"]["synced"] is True and st["clock"]["source"] == "ntp"
    assert st["clock"]["next"]["Fan"] == {"at": "2026-03-30T03:00", "action": "on"}
    assert st["schedules"] == [{"id": 1, "relay": "Fan", "at": "03:00", "days": "mon-sun", "action": "on"}]
    c = Page(n)  # a page that joins later sees the clock and the next event in its state
    try:
        assert c.state["clock"]["next"]["Fan"]["at"] == "2026-03-30T03:00"
    finally:
        c.close()


# Four relays toggled once each on a summer-time transition day: none twice, none skipped.
@pytest.mark.parametrize("start, end, times", [
    # spring: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 does not exist and fires at 03:30
    ("2026-03-28T23:40:00Z", "2026-03-29T05:00", ("01:59", "02:30", "03:00", "03:30")),
    # autumn: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:00 to 03:00 happens twice
    ("2026-10-24T23:30:00Z", "2026-10-25T04:30", ("01:59", "02:00", "02:30", "03:00")),
], ids=["spring", "autumn"])
def test_summer_time_transition_fires_each_event_once(node, start, end, times):
    names = ("R0", "R1", "R2", "R3")
    scheds = [{"relay": r, "at": t, "action": "toggle"} for r, t in zip(names, times)]
    n = clock_node(node, scheds, start, 1800, names=names)
    wait_local(n, end)
    got = changes(n)
    assert sorted(got) == ["relay %s -> on (schedule)" % r for r in names], n.output()


def test_a_sunset_event_fires(node):
    n = clock_node(node, [{"relay": "Fan", "at": "sunset", "action": "on"},
                          {"relay": "Light", "at": "sunset-30", "action": "off", "days": "sat"}],
                   "2026-06-21T19:20:00Z", 300, top={"relays": [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27}]})
    n.wait_for_line("clock: 2026-06-21T21:20 from ntp", T)
    st = nh.get_state(n.port)
    # Berlin's sunset on 21 June 2026 is at 21:33 CEST (NOAA); Light's is on Saturdays only
    assert st["clock"]["next"]["Fan"] == {"at": "2026-06-21T21:33", "action": "on"}, st["clock"]
    assert st["clock"]["next"]["Light"] == {"at": "2026-06-27T21:03", "action": "off"}, st["clock"]
    n.wait_for_line("relay Fan -> on (schedule)", T)
    st = wait_local(n, "2026-06-21T21:34")
    assert st["clock"]["next"]["Fan"]["at"] == "2026-06-22T21:33"
    assert changes(n) == ["relay Fan -> on (schedule)"]


def test_catch_up_after_restart_once_the_time_is_known(node):
    scheds = [{"relay": "Fan", "at": "06:00", "action": "on"}, {"relay": "Fan", "at": "22:00", "action": "off"}]
    relays = [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27, "power_on": "schedule"}]
    # 12:00 local: the 06:00 event left Fan on
    n = clock_node(node, scheds, "2026-06-01T10:00:00Z", top={"relays": relays})
    n.wait_for_line("relay Fan -> on (schedule)", T)
    assert nh.get_state(n.port)["relays"][1]["on"] is True
    # restarted at 07:00 the next day (after the 22:00 off and the 06:00 on): on again
    n.sim_args[n.sim_args.index("--clock") + 1] = "2026-06-02T05:00:00Z"
    n.restart()
    n.wait_for_line("relay Fan -> on (schedule)", T)
    # restarted with no clock: Fan stays off until a page gives the time (23:30 local)
    i = n.sim_args.index("--clock")
    del n.sim_args[i : i + 2]
    n.restart()
    st = nh.get_state(n.port)
    assert st["relays"][1]["on"] is False and st["clock"]["source"] == "none" and st["clock"]["synced"] is False
    time.sleep(1.0)
    assert not n.matching("(schedule)")
    c = Page(n)
    try:
        c.send({"type": "time", "utc_ms": "soon"})
        assert c.next("error")["code"] == "bad_field"
        c.send({"type": "time", "utc_ms": 1780349400000})  # 2026-06-01T21:30:00Z
        clock = c.next("clock")["clock"]
        assert clock["source"] == "page" and clock["local"] == "2026-06-01T23:30"
        time.sleep(1.0)
        assert not n.matching("(schedule)")  # the last event (22:00) left Fan off: nothing moves
        c.send({"type": "time", "utc_ms": 1780203600000})  # a second page's time changes nothing
        c.assert_quiet()
    finally:
        c.close()
    # a day later, given by a page at 06:30 local: the 06:00 event turned Fan on
    n.restart()
    c = Page(n)
    try:
        c.send({"type": "time", "utc_ms": 1780374600000})  # 2026-06-02T04:30:00Z
        msg = c.next("relay")
        assert (msg["name"], msg["on"], msg["cause"]) == ("Fan", True, "schedule")
    finally:
        c.close()


def test_schedules_edited_live_broadcast_saved_and_kept(node):
    n = clock_node(node, [{"relay": "Light", "at": "sunset-15", "action": "on"}], "2026-12-02T17:00:00Z")
    a, b = Page(n), Page(n)
    try:
        assert a.state["schedules"] == [{"id": 1, "relay": "Light", "at": "sunset-15", "days": "mon-sun",
                                         "action": "on"}]
        a.send({"type": "schedules"})
        assert a.next("schedules")["schedules"] == a.state["schedules"]
        b.assert_quiet()  # the list was for the asker only
        a.send({"type": "schedule_add", "relay": "fan", "at": "06:30", "days": "mon-fri", "action": "pulse",
                "ms": 600000})
        added = {"id": 2, "relay": "Fan", "at": "06:30", "days": ["mon", "tue", "wed", "thu", "fri"],
                 "action": "pulse", "ms": 600000}
        for c in (a, b):
            assert c.next("schedules")["schedules"] == a.state["schedules"] + [added]
            assert c.next("clock")["clock"]["next"]["Fan"] == {"at": "2026-12-03T06:30", "action": "pulse"}
        saved = os.path.join(n.state_dir, "schedules.json")
        with open(saved) as f:
            assert json.load(f) == a.state["schedules"] + [added]
        assert not os.path.exists(saved + ".tmp")
        a.send({"type": "schedule_remove", "id": 1})
        for c in (a, b):
            assert c.next("schedules")["schedules"] == [added]
    finally:
        a.close()
        b.close()
    n.restart()
    assert nh.get_state(n.port)["schedules"] == [added]
    c = Page(n)
    try:
        c.send({"type": "schedule_remove", "id": 2})
        assert c.next("schedules")["schedules"] == []
    finally:
        c.close()
    n.restart()
    assert nh.get_state(n.port)["schedules"] == []


# The errors a page gets for a bad schedule are those config gives for it; nothing changes.
def test_invalid_schedules_get_the_errors_of_config(node, runtime):
    bad = [
        {"relay": "Fan", "at": "25:00", "action": "on"},
        {"relay": "Fan", "at": "sunset+900", "action": "on"},
        {"relay": "Nope", "at": "06:00", "action": "on"},
        {"relay": "Fan", "at": "06:00", "days": "mon-funday", "action": "on"},
        {"relay": "Fan", "at": "06:00", "action": "explode"},
        {"relay": "Fan", "at": "06:00", "action": "pulse"},
        {"relay": "Fan", "at": "06:00", "action": "on", "ms": 5},
        {"relay": "Fan", "at": "06:00", "action": "on", "colour": "red"},
    ]
    config_errors = []
    for s in bad:
        n = nh.Node(runtime, heapsize=HEAP, clock=BERLIN, schedules=[s])
        try:
            with pytest.raises(nh.NodeError):
                n.start()
            line = [x for x in n.history[-1].splitlines() if x.startswith("config error:")]
            assert len(line) == 1, n.history[-1]
            field, _, msg = line[0][len("config error: "):].partition(": ")
            assert field.startswith("schedules[0].")
            config_errors.append((field[len("schedules[0]."):], msg))
        finally:
            n.cleanup()
    n = clock_node(node, [], "2026-12-02T17:00:00Z")
    a, b = Page(n), Page(n)
    try:
        for s, (field, msg) in zip(bad, config_errors):
            a.send(dict(s, type="schedule_add"))
            err = a.next("error")
            assert (err["code"], err["message"]) == ("bad_field", "schedule.%s: %s" % (field, msg))
        a.send({"type": "schedule_remove", "id": 7})
        assert a.next("error")["code"] == "unknown_schedule"
        a.send({"type": "schedule_remove", "id": True})
        assert a.next("error")["code"] == "unknown_schedule"
        b.assert_quiet()
        for k in range(16):
            a.send({"type": "schedule_add", "relay": "Fan", "at": "%02d:00" % k, "action": "off"})
            a.next("schedules")
        a.send({"type": "schedule_add", "relay": "Fan", "at": "17:00", "action": "on"})
        assert a.next("error")["code"] == "too_many"
        st = nh.get_state(n.port)
        assert len(st["schedules"]) == 16 and [r["on"] for r in st["relays"]] == [False, False]
        assert not n.matching("(schedule)") and not n.matching("Traceback")
    finally:
        a.close()
        b.close()


# The heap the clock, 16 schedules and 4 inputs cost, running, on the board-faithful build
# (32-bit, firmware frozen; tools/bench/clock.py, a row of `make bench`): within the 5 KB
# budget (bench.clock.BUDGET).
def test_heap_of_clock_schedules_and_inputs_on_the_32bit_frozen_build():
    from tools.bench import clock as bench_clock

    r = bench_clock.measure()
    assert "error" not in r, r["error"]
    print("32-bit frozen: heap in use %d B, with clock + 16 schedules + 4 inputs %d B: %d B"
          % (r["bare"], r["full"], r["cost"]))
    assert 0 < r["cost"] <= bench_clock.BUDGET, r
