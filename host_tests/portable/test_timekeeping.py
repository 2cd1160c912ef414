# Tests for firmware/timekeeping.py with a fake node (the interface of /work/INTERFACE.md) and
# a fake ticks clock: time from a page, NTP with backoff and daily resync, schedules fired once
# through node.apply with cause "schedule" across a DST jump, catch-up for power_on
# "schedule", the page handlers and their errors, and schedules kept in flash.
# Portable: run by pytest and by host_tests/mp_run.py.
import json

from firmware import timekeeping
from firmware.clock import days_of
from firmware.compat import ticks_ms
from host_tests.portable.fakes import FakeClock, FakeNode, TempDir

CLOCK = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "", "lat": 52.52, "lon": 13.40}


def utc(y, mo, d, h=0, mi=0, s=0):
    return days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def rig(scheds=(), power_on="off", **kw):
    ticks = FakeClock(1000)
    node = FakeNode(ticks, power_on)
    names = {"light": "Light", "pump": "Pump"}
    from firmware.schedspec import parse

    tuples = [parse(s, i + 1, names, True, "schedule") for i, s in enumerate(scheds)]
    tk = timekeeping.attach(node, dict(CLOCK, schedules=tuples), ticks=ticks, **kw)
    return tk, node, ticks


def test_attach_registers_listeners_and_handlers():
    tk, node, _ = rig()
    assert node.listeners == [tk, tk.list]
    assert sorted(node.handlers) == ["schedule_add", "schedule_remove", "schedules", "time"]
    assert tk.status() == {"synced": False, "source": "none", "local": None, "next": {}}
    tk.tick(tk.ticks())
    assert node.applied == []  # nothing fires while the time is unknown


def test_no_ntptime_on_the_host_means_no_ntp():
    ticks = FakeClock(1000)
    node = FakeNode(ticks)
    tk = timekeeping.attach(node, dict(CLOCK, ntp="pool.ntp.org"), ticks=ticks)
    assert tk.ntp is None
    tk.tick(tk.ticks())
    assert tk.status()["source"] == "none" and node.logs == []


def test_time_from_a_page():
    tk, node, ticks = rig()
    assert node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 12, 2, 17, 30) * 1000 + 500}) is None
    st = tk.status()
    assert st["synced"] is True and st["source"] == "page" and st["local"] == "2026-12-02T18:30"
    assert node.notified[-1][0] == "clock" and node.notified[-1][1]["source"] == "page"
    ticks.advance(90 * 1000)
    assert tk.utc() == utc(2026, 12, 2, 17, 31, 30)
    assert tk.status()["local"] == "2026-12-02T18:31"
    for bad in ("soon", True, None, 5, 10**15):
        assert node.handlers["time"]({"type": "time", "utc_ms": bad})[0] == "bad_field"
    # a second page with another idea of the time changes nothing
    n = len(node.notified)
    assert node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 12, 2, 20) * 1000}) is None
    assert tk.utc() == utc(2026, 12, 2, 17, 31, 30) and len(node.notified) == n


def test_ntp_backoff_daily_resync_and_page_time_ignored_after():
    answers = [OSError(110), OSError(110), utc(2026, 12, 2, 12), utc(2026, 12, 3, 12, 0, 3)]
    calls = []

    def ntp():
        calls.append(1)
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    tk, node, ticks = rig(ntp=ntp)
    tk.tick(tk.ticks())
    assert len(calls) == 1 and tk.utc() is None and "NTP failed" in node.logs[-1]
    ticks.advance(14000)
    tk.tick(tk.ticks())
    assert len(calls) == 1  # first retry after 15 s
    ticks.advance(1000)
    tk.tick(tk.ticks())
    assert len(calls) == 2
    ticks.advance(29000)
    tk.tick(tk.ticks())
    assert len(calls) == 2  # then after 30 s
    ticks.advance(1000)
    tk.tick(tk.ticks())
    assert len(calls) == 3 and tk.utc() == utc(2026, 12, 2, 12) and tk.source == "ntp"
    node.handlers["time"]({"type": "time", "utc_ms": 1900000000000})
    assert tk.utc() == utc(2026, 12, 2, 12) and tk.source == "ntp"  # NTP's time stands
    ticks.advance(86399 * 1000)
    tk.tick(tk.ticks())
    assert len(calls) == 3
    ticks.advance(1000)
    tk.tick(tk.ticks())
    assert len(calls) == 4 and tk.utc() == utc(2026, 12, 3, 12, 0, 3)


def test_schedules_fire_once_with_cause_schedule_across_spring_forward():
    tk, node, ticks = rig(
        [
            {"relay": "Light", "at": "02:30", "action": "on"},
            {"relay": "Light", "at": "03:45", "action": "off"},
            {"relay": "Pump", "at": "03:00", "action": "pulse", "ms": 60000},
        ],
        rate=60,
    )
    node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 3, 29, 0, 59, 30) * 1000})
    tk.tick(tk.ticks())  # first round: catch-up only (power_on "off": nothing)
    assert node.applied == []
    for _ in range(180):  # three simulated hours, a step per simulated minute
        ticks.advance(1000)
        tk.tick(tk.ticks())
    assert node.applied == [
        ({"type": "pulse", "relay": "Pump", "ms": 60000}, "schedule"),  # 03:00 CEST = 01:00 UTC
        ({"type": "set", "relay": "Light", "on": True}, "schedule"),  # 02:30 skipped: at 03:30
        ({"type": "set", "relay": "Light", "on": False}, "schedule"),
    ]
    assert tk.status()["next"]["Light"] == {"at": "2026-03-30T02:30", "action": "on"}
    assert [k for k, _ in node.notified] == ["clock"] * 4  # the time set, then each firing round


def test_fall_back_fires_once():
    tk, node, ticks = rig([{"relay": "Light", "at": "02:30", "action": "toggle"}], rate=60)
    node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 10, 24, 23) * 1000})  # 01:00 CEST
    for _ in range(240):  # 02:30 CEST, 02:30 CET and beyond
        ticks.advance(1000)
        tk.tick(tk.ticks())
    assert node.applied == [({"type": "toggle", "relay": "Light"}, "schedule")]
    assert tk.status()["local"] == "2026-10-25T04:00"


def test_clock_set_back_fires_nothing_twice():
    tk, node, ticks = rig([{"relay": "Light", "at": "12:00", "action": "toggle"}])
    node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 12, 2, 10, 59) * 1000})
    tk.tick(tk.ticks())
    ticks.advance(120000)
    tk.tick(tk.ticks())
    assert len(node.applied) == 1
    tk.set_utc_ms(utc(2026, 12, 2, 10, 58) * 1000, "ntp")  # NTP corrects the page's time
    ticks.advance(120000)
    tk.tick(tk.ticks())
    assert len(node.applied) == 1
    ticks.advance(3600 * 1000)
    tk.tick(tk.ticks())
    assert len(node.applied) == 1
    # set back by more than an hour (the old time was wrong): the schedule runs from the new one
    tk.set_utc_ms(utc(2026, 12, 2, 10, 30) * 1000, "ntp")
    tk.tick(tk.ticks())
    ticks.advance(3600 * 1000)
    tk.tick(tk.ticks())
    assert len(node.applied) == 2


def test_catch_up_only_for_power_on_schedule():
    scheds = [{"relay": "Light", "at": "07:00", "action": "on"}, {"relay": "Pump", "at": "08:00", "action": "on"}]
    tk, node, _ = rig(scheds, power_on="schedule")
    node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 12, 2, 9) * 1000})
    tk.tick(tk.ticks())
    assert sorted(c["relay"] for c, cause in node.applied if cause == "schedule") == ["Light", "Pump"]
    assert all(r.on for r in node.bank.relays)
    tk2, node2, _ = rig(scheds)
    node2.handlers["time"]({"type": "time", "utc_ms": utc(2026, 12, 2, 9) * 1000})
    tk2.tick(tk2.ticks())
    assert node2.applied == []


def test_page_handlers_add_list_remove():
    tk, node, _ = rig()
    add = node.handlers["schedule_add"]
    assert add({"type": "schedule_add", "relay": "light", "at": "sunset-15", "days": "mon-fri", "action": "on"}) is None
    assert add({"type": "schedule_add", "relay": "Pump", "at": "06:30", "action": "pulse", "ms": 5000}) is None
    listed = json.loads(node.handlers["schedules"]({"type": "schedules"}))
    assert listed == {
        "type": "schedules",
        "schedules": [
            {"id": 1, "relay": "Light", "at": "sunset-15", "days": ["mon", "tue", "wed", "thu", "fri"], "action": "on"},
            {"id": 2, "relay": "Pump", "at": "06:30", "days": "mon-sun", "action": "pulse", "ms": 5000},
        ],
    }
    assert node.notified[-2] == ("schedules", listed["schedules"])  # broadcast to every page
    code, msg = add({"type": "schedule_add", "relay": "Nope", "at": "06:30", "action": "on"})
    assert code == "bad_field" and msg.startswith("schedule.relay: ")
    code, msg = add({"type": "schedule_add", "relay": "Pump", "at": "6:30", "action": "on"})
    assert code == "bad_field" and msg.startswith("schedule.at: ")
    assert node.handlers["schedule_remove"]({"type": "schedule_remove", "id": 1}) is None
    assert [s[0] for s in tk.schedules] == [2]
    assert node.handlers["schedule_remove"]({"type": "schedule_remove", "id": 1})[0] == "unknown_schedule"
    assert node.handlers["schedule_remove"]({"type": "schedule_remove", "id": True})[0] == "unknown_schedule"
    for _ in range(15):
        add({"type": "schedule_add", "relay": "Pump", "at": "06:30", "action": "off"})
    assert len(tk.schedules) == 16
    assert add({"type": "schedule_add", "relay": "Pump", "at": "06:30", "action": "off"})[0] == "too_many"


def test_schedules_kept_in_flash():
    with TempDir() as d:
        tk, node, _ = rig([{"relay": "Light", "at": "07:00", "action": "on"}], state_dir=d.path)
        assert [s[0] for s in tk.schedules] == [1]  # nothing saved yet: config's list
        node.handlers["schedule_add"]({"type": "schedule_add", "relay": "Pump", "at": "sunrise+5", "action": "off"})
        node.handlers["schedule_add"]({"type": "schedule_add", "relay": "Light", "at": "08:00", "days": ["sat", "sun"], "action": "on"})
        node.handlers["schedule_remove"]({"type": "schedule_remove", "id": 1})
        assert json.loads(d.read("schedules.json")) == [
            {"id": 2, "relay": "Pump", "at": "sunrise+5", "days": "mon-sun", "action": "off"},
            {"id": 3, "relay": "Light", "at": "08:00", "days": ["sat", "sun"], "action": "on"},
        ]
        tk2, node2, _ = rig([{"relay": "Light", "at": "07:00", "action": "on"}], state_dir=d.path)
        assert tk2.schedules == tk.schedules  # live edits win over config after a reset
        d.write("schedules.json", '[{"id": 4, "relay": "Gone", "at": "07:00", "action": "on"}, {"id": 4, "relay": "Pump", "at": "07:00", "action": "on"}]')
        tk3, node3, _ = rig(state_dir=d.path)
        assert [s[:2] for s in tk3.schedules] == [(4, "Pump")]
        assert any("Gone" in line for line in node3.logs)


def test_a_week_of_ticks_fires_each_event_once():
    tk, node, ticks = rig(
        [
            {"relay": "Pump", "at": "06:30", "days": "mon-fri", "action": "on"},
            {"relay": "Light", "at": "sunset-15", "action": "on"},
            {"relay": "Light", "at": "23:00", "action": "off"},
        ],
        rate=600,
    )
    node.handlers["time"]({"type": "time", "utc_ms": utc(2026, 11, 29, 23) * 1000})  # Monday 00:00 CET
    tk.tick(tk.ticks())
    for _ in range(7 * 24 * 6):  # a tick per ten simulated minutes
        ticks.advance(1000)
        tk.tick(tk.ticks())
        if len(node.applied) == 3 and len(tk.schedules) == 3:  # Monday's first three done: add one live
            node.handlers["schedule_add"]({"type": "schedule_add", "relay": "Pump", "at": "12:00", "days": ["sat"], "action": "off"})
    kinds = [(c["relay"], c["on"]) for c, cause in node.applied if cause == "schedule"]
    assert kinds.count(("Pump", True)) == 5
    assert kinds.count(("Light", True)) == 7 and kinds.count(("Light", False)) == 7
    assert kinds.count(("Pump", False)) == 1
    assert len(node.applied) == 20


# The real node (firmware/node.py): the state message carries "clock" and "schedules", a
# schedule's change is published with cause "schedule" to the listeners, notify() reaches pages.
def test_with_the_real_node():
    from firmware.node import Listener, Node
    from firmware.relays import RelayBank
    from host_tests.portable.fakes import FakePins

    class Page(Listener):
        def __init__(self):
            self.changes = []
            self.texts = []

        def changed(self, changes, origin, hops, via):
            self.changes += [(r.name, r.on, cause) for r, cause in changes]

        def message(self, text):
            self.texts.append(json.loads(text))

    ticks = FakeClock(1000)
    bank = RelayBank([{"name": "Light", "pin": 26}], FakePins().make, clock=ticks_ms)
    node = Node({"name": "n", "limits": {"save_delay_ms": 1000}, "links": []}, bank, None, lambda t: None)
    page = node.listen(Page())
    from firmware.schedspec import parse

    light = parse({"relay": "Light", "at": "18:00", "action": "on"}, 1, None, True, "schedule")
    tk = timekeeping.attach(node, dict(CLOCK, schedules=[light]), ticks=ticks)
    state = json.loads(node.state_message())
    assert state["clock"]["synced"] is False
    assert state["schedules"] == [{"id": 1, "relay": "Light", "at": "18:00", "days": "mon-sun", "action": "on"}]
    assert tk.on_page({"type": "time", "utc_ms": utc(2026, 12, 2, 16, 59, 59) * 1000}) is None
    assert page.texts[-1]["type"] == "clock" and page.texts[-1]["clock"]["source"] == "page"
    tk.tick(tk.ticks())
    ticks.advance(2000)
    tk.tick(tk.ticks())
    assert page.changes == [("Light", True, "schedule")]
    state = json.loads(node.state_message())
    assert state["clock"]["next"]["Light"] == {"at": "2026-12-03T18:00", "action": "on"}
    assert node.handlers["schedule_remove"]({"type": "schedule_remove", "id": 1}) is None
    assert {"type": "schedules", "schedules": []} in page.texts
