# Tests for firmware/relays.py: the relay bank (safe level, drive polarity, lookup, set and
# toggle, interlock groups, pulses, power-on policy, snapshot) and StateStore (atomic save,
# recovery after a power cut). Portable: plain functions and asserts, run by pytest on
# CPython and by host_tests/mp_run.py on the MicroPython unix port.
import json
import os

from firmware import relays
from firmware.relays import BOOT, CLIENT, INTERLOCK, RESTORE, TIMER, RelayBank, StateStore
from host_tests.portable.fakes import FakeClock, FakePins, TempDir


# A relay spec as config.validate() returns it.
def spec(name, pin, active_low=False, power_on="off", group=None, pulse_ms=0):
    return {
        "name": name,
        "pin": pin,
        "active_low": active_low,
        "power_on": power_on,
        "group": group,
        "pulse_ms": pulse_ms,
    }


def make_bank(specs, clock=None):
    pins = FakePins()
    clock = clock or FakeClock(1000)
    bank = RelayBank(specs, pins.make, clock)
    return bank, pins, clock


# [(name, cause)] of a change list, easy to compare.
def named(changes):
    return [(r.name, cause) for r, cause in changes]


def three():
    return [
        spec("Light", 26, active_low=True),
        spec("Fan", 27),
        spec("Garden pump", 25, active_low=True),
    ]


# ---------------------------------------------------------------- safe level, polarity


def test_pins_start_at_their_off_level_before_anything_else():
    bank, pins, _ = make_bank(three())
    assert pins.made == [26, 27, 25]
    assert pins[26].history == [1]  # active-low: off is high
    assert pins[27].history == [0]  # active-high: off is low
    assert pins[25].history == [1]
    assert pins.log == [(26, 1), (27, 0), (25, 1)]
    for r in bank.relays:
        assert r.on is False
        assert r.off_at is None


def test_safe_level_is_the_first_value_even_when_power_on_says_on():
    bank, pins, _ = make_bank([spec("Light", 26, active_low=True, power_on="on"), spec("Fan", 27, power_on="on")])
    assert pins[26].history == [1]
    assert pins[27].history == [0]
    bank.power_on(saved=None)
    assert pins[26].history == [1, 0]
    assert pins[27].history == [0, 1]


def test_drive_levels_active_low():
    bank, pins, _ = make_bank([spec("Light", 26, active_low=True)])
    light = bank.relays[0]
    bank.set(light, True)
    assert pins[26].level == 0
    bank.set(light, False)
    assert pins[26].level == 1
    assert pins[26].history == [1, 0, 1]


def test_drive_levels_active_high():
    bank, pins, _ = make_bank([spec("Fan", 27)])
    fan = bank.relays[0]
    bank.set(fan, True)
    assert pins[27].level == 1
    bank.set(fan, False)
    assert pins[27].level == 0
    assert pins[27].history == [0, 1, 0]


def test_active_low_defaults_to_false_when_left_out():
    pins = FakePins()
    bank = RelayBank([{"name": "Bare", "pin": 4}], pins.make, FakeClock())
    assert pins[4].history == [0]
    bank.set(bank.relays[0], True)
    assert pins[4].level == 1


def test_relay_attributes_come_from_the_spec():
    bank, _, _ = make_bank([spec("Door", 5, active_low=True, power_on="restore", group="g", pulse_ms=700)])
    r = bank.relays[0]
    assert (r.id, r.name, r.gpio, r.active_low, r.power_on, r.group, r.pulse_ms) == (
        0,
        "Door",
        5,
        True,
        "restore",
        "g",
        700,
    )


# ---------------------------------------------------------------- find


def test_find_by_id():
    bank, _, _ = make_bank(three())
    assert bank.find(0) is bank.relays[0]
    assert bank.find(2) is bank.relays[2]


def test_find_by_name_is_case_insensitive_and_ignores_outer_spaces():
    bank, _, _ = make_bank(three())
    assert bank.find("Light") is bank.relays[0]
    assert bank.find("light") is bank.relays[0]
    assert bank.find("LIGHT") is bank.relays[0]
    assert bank.find("  fAn ") is bank.relays[1]
    assert bank.find("garden PUMP") is bank.relays[2]


def test_find_bad_refs_give_none():
    bank, _, _ = make_bank(three())
    for ref in (True, False, -1, 3, 99, "", "Lamp", "Garden", "Light On", None, 1.0, [0], {"id": 0}, b"Light"):
        assert bank.find(ref) is None, ref


# ---------------------------------------------------------------- set, toggle


def test_set_reports_the_change_with_its_cause():
    bank, _, _ = make_bank(three())
    light = bank.relays[0]
    assert named(bank.set(light, True)) == [("Light", CLIENT)]
    assert light.on is True
    assert named(bank.set(light, False, TIMER)) == [("Light", TIMER)]
    assert light.on is False


def test_set_to_the_current_state_changes_nothing():
    bank, pins, _ = make_bank(three())
    fan = bank.relays[1]
    assert bank.set(fan, False) == []
    assert pins[27].history == [0]
    bank.set(fan, True)
    assert bank.set(fan, True) == []
    assert pins[27].history == [0, 1]


def test_toggle_flips_and_carries_the_cause():
    bank, pins, _ = make_bank(three())
    fan = bank.relays[1]
    assert named(bank.toggle(fan)) == [("Fan", CLIENT)]
    assert fan.on is True
    assert named(bank.toggle(fan, "button")) == [("Fan", "button")]
    assert fan.on is False
    assert pins[27].history == [0, 1, 0]


def test_set_touches_no_other_relay_without_a_group():
    bank, pins, _ = make_bank(three())
    bank.set(bank.relays[0], True)
    bank.set(bank.relays[1], True)
    bank.set(bank.relays[2], True)
    assert [r.on for r in bank.relays] == [True, True, True]
    assert pins.log[3:] == [(26, 0), (27, 1), (25, 0)]


# ---------------------------------------------------------------- interlock groups


def interlocked():
    return [
        spec("Up", 12, group="blind"),
        spec("Down", 13, active_low=True, group="blind"),
        spec("Stop", 14, group="blind"),
        spec("Lamp", 15),
        spec("Other", 16, group="other"),
    ]


def test_interlock_turns_the_others_off_first():
    bank, pins, _ = make_bank(interlocked())
    up, down, stop, lamp, other = bank.relays
    bank.set(lamp, True)
    bank.set(other, True)
    bank.set(up, True)
    del pins.log[:]
    changes = bank.set(down, True)
    assert named(changes) == [("Up", INTERLOCK), ("Down", CLIENT)]
    # break before make on the wires too: Up's pin goes low before Down's (active-low) goes low
    assert pins.log == [(12, 0), (13, 0)]
    assert [r.on for r in bank.relays] == [False, True, False, True, True]


def test_interlock_is_limited_to_the_group():
    bank, pins, _ = make_bank(interlocked())
    up, down, stop, lamp, other = bank.relays
    bank.set(up, True)
    bank.set(other, True)
    bank.set(lamp, True)
    assert up.on and other.on and lamp.on
    assert named(bank.set(stop, True, "button")) == [("Up", INTERLOCK), ("Stop", "button")]
    assert other.on and lamp.on


def test_interlock_turning_off_touches_nobody_else():
    bank, pins, _ = make_bank(interlocked())
    up, down, stop, lamp, other = bank.relays
    bank.set(up, True)
    n = len(pins.log)
    assert named(bank.set(down, False)) == []
    assert named(bank.set(up, False)) == [("Up", CLIENT)]
    assert pins.log[n:] == [(12, 0)]


def test_interlock_toggle_and_pulse_also_break_first():
    bank, pins, clock = make_bank(interlocked())
    up, down, stop, lamp, other = bank.relays
    bank.set(up, True)
    assert named(bank.toggle(down)) == [("Up", INTERLOCK), ("Down", CLIENT)]
    assert named(bank.pulse(stop, 300)) == [("Down", INTERLOCK), ("Stop", CLIENT)]
    assert [up.on, down.on, stop.on] == [False, False, True]


def test_interlock_cancels_the_pulse_of_the_relay_it_turns_off():
    bank, pins, clock = make_bank(interlocked())
    up, down, stop, lamp, other = bank.relays
    bank.pulse(up, 500)
    assert up.off_at is not None
    bank.set(down, True)
    assert up.off_at is None
    assert bank.next_due(now=None) is None
    clock.advance(1000)
    assert bank.expire(now=None) == []
    assert down.on is True


def test_setting_an_interlocked_relay_on_again_keeps_it_on():
    bank, pins, _ = make_bank(interlocked())
    up = bank.relays[0]
    bank.set(up, True)
    n = len(pins.log)
    assert bank.set(up, True) == []
    assert pins.log[n:] == []
    assert up.on is True


# ---------------------------------------------------------------- pulses


def test_pulse_with_explicit_ms_ends_on_time():
    clock = FakeClock(5000)
    bank, pins, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    assert bank.next_due(now=None) is None
    assert named(bank.pulse(fan, 300)) == [("Fan", CLIENT)]
    assert fan.on is True
    assert bank.next_due(now=None) == 300
    clock.advance(299)
    assert bank.next_due(now=None) == 1
    assert bank.expire(now=None) == []
    assert fan.on is True
    clock.advance(1)
    assert bank.next_due(now=None) == 0
    assert named(bank.expire(now=None)) == [("Fan", TIMER)]
    assert fan.on is False
    assert fan.off_at is None
    assert bank.next_due(now=None) is None
    assert bank.expire(now=None) == []
    assert pins[27].history == [0, 1, 0]


def test_expire_late_still_ends_the_pulse_and_next_due_is_never_negative():
    clock = FakeClock()
    bank, pins, _ = make_bank(three(), clock)
    light = bank.relays[0]
    bank.pulse(light, 100)
    clock.advance(5000)
    assert bank.next_due(now=None) == 0
    assert named(bank.expire(now=None)) == [("Light", TIMER)]
    assert pins[26].history == [1, 0, 1]


def test_expire_and_next_due_take_an_explicit_now():
    clock = FakeClock(100)
    bank, _, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    bank.pulse(fan, 50)
    assert bank.next_due(120) == 30
    assert bank.expire(149) == []
    assert named(bank.expire(150)) == [("Fan", TIMER)]


def test_per_relay_pulse_ms_applies_to_set_and_toggle():
    clock = FakeClock()
    bank, pins, _ = make_bank([spec("Door", 5, active_low=True, pulse_ms=800), spec("Lamp", 15)], clock)
    door, lamp = bank.relays
    bank.set(door, True)
    assert bank.next_due(now=None) == 800
    clock.advance(800)
    assert named(bank.expire(now=None)) == [("Door", TIMER)]
    bank.toggle(door)
    assert door.on is True
    assert bank.next_due(now=None) == 800
    clock.advance(400)
    assert bank.next_due(now=None) == 400
    clock.advance(400)
    assert named(bank.expire(now=None)) == [("Door", TIMER)]
    assert pins[5].history == [1, 0, 1, 0, 1]


def test_explicit_ms_overrides_the_relays_pulse_ms():
    clock = FakeClock()
    bank, _, _ = make_bank([spec("Door", 5, pulse_ms=800)], clock)
    door = bank.relays[0]
    bank.pulse(door, 50)
    assert bank.next_due(now=None) == 50


def test_next_due_is_the_earliest_of_several_pulses():
    clock = FakeClock()
    bank, _, _ = make_bank(three(), clock)
    light, fan, pump = bank.relays
    bank.pulse(light, 900)
    bank.pulse(fan, 200)
    bank.pulse(pump, 500)
    assert bank.next_due(now=None) == 200
    clock.advance(200)
    assert named(bank.expire(now=None)) == [("Fan", TIMER)]
    assert bank.next_due(now=None) == 300
    clock.advance(300)
    assert named(bank.expire(now=None)) == [("Garden pump", TIMER)]
    clock.advance(400)
    assert named(bank.expire(now=None)) == [("Light", TIMER)]
    assert bank.next_due(now=None) is None


def test_pulse_again_restarts_the_timer_without_a_change():
    clock = FakeClock()
    bank, pins, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    bank.pulse(fan, 300)
    clock.advance(200)
    assert bank.pulse(fan, 300) == []
    assert bank.next_due(now=None) == 300
    clock.advance(299)
    assert bank.expire(now=None) == []
    clock.advance(1)
    assert named(bank.expire(now=None)) == [("Fan", TIMER)]
    assert pins[27].history == [0, 1, 0]


def test_setting_off_cancels_a_pulse():
    clock = FakeClock()
    bank, pins, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    bank.pulse(fan, 300)
    assert named(bank.set(fan, False)) == [("Fan", CLIENT)]
    assert fan.off_at is None
    assert bank.next_due(now=None) is None
    clock.advance(1000)
    assert bank.expire(now=None) == []
    assert pins[27].history == [0, 1, 0]


def test_setting_on_without_ms_cancels_a_pulse_on_a_plain_relay():
    clock = FakeClock()
    bank, _, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    bank.pulse(fan, 300)
    assert bank.set(fan, True) == []
    assert bank.next_due(now=None) is None
    clock.advance(1000)
    assert bank.expire(now=None) == []
    assert fan.on is True


def test_pulse_timer_survives_the_tick_counter_wrapping():
    # ticks_add/ticks_diff are modular on MicroPython; start close to the top of the range.
    start = relays.ticks_add(0, -100)
    clock = FakeClock(start)
    bank, _, _ = make_bank(three(), clock)
    fan = bank.relays[1]
    bank.pulse(fan, 300)
    assert bank.next_due(now=None) == 300
    clock.now = relays.ticks_add(start, 299)
    assert bank.expire(now=None) == []
    clock.now = relays.ticks_add(start, 300)
    assert named(bank.expire(now=None)) == [("Fan", TIMER)]


# ---------------------------------------------------------------- power-on policy


def policies():
    return [
        spec("Off", 12, active_low=True, power_on="off"),
        spec("On", 13, active_low=True, power_on="on"),
        spec("Keep", 14, power_on="restore"),
        spec("KeepOff", 15, power_on="restore"),
        spec("Door", 16, power_on="restore", pulse_ms=500),
    ]


def test_power_on_without_saved_state():
    bank, pins, _ = make_bank(policies())
    changes = bank.power_on(None)
    assert named(changes) == [("On", BOOT)]
    assert [r.on for r in bank.relays] == [False, True, False, False, False]
    assert pins[13].history == [1, 0]
    assert pins[12].history == [1]
    assert pins[14].history == [0]


def test_power_on_restores_saved_state():
    bank, pins, _ = make_bank(policies())
    saved = {"Off": True, "On": False, "Keep": True, "KeepOff": False, "Door": True}
    changes = bank.power_on(saved)
    # "off" ignores saved state, "on" ignores it too, a pulse relay is never restored on
    assert named(changes) == [("On", BOOT), ("Keep", RESTORE)]
    assert [r.on for r in bank.relays] == [False, True, True, False, False]
    assert pins[16].history == [0]
    assert bank.next_due(now=None) is None


def test_power_on_restore_needs_a_true_bool():
    bank, _, _ = make_bank(policies())
    assert named(bank.power_on({"Keep": 1, "KeepOff": "yes"})) == [("On", BOOT)]
    bank2, _, _ = make_bank(policies())
    assert named(bank2.power_on({})) == [("On", BOOT)]
    bank3, _, _ = make_bank(policies())
    assert named(bank3.power_on({"keep": True})) == [("On", BOOT)]  # saved by exact name


def test_power_on_on_with_pulse_ms_starts_a_pulse():
    clock = FakeClock()
    bank, _, _ = make_bank([spec("Bell", 12, power_on="on", pulse_ms=250)], clock)
    assert named(bank.power_on(saved=None)) == [("Bell", BOOT)]
    assert bank.next_due(now=None) == 250
    clock.advance(250)
    assert named(bank.expire(now=None)) == [("Bell", TIMER)]


def test_power_on_respects_interlock_groups():
    bank, _, _ = make_bank(
        [
            spec("Up", 12, power_on="restore", group="blind"),
            spec("Down", 13, power_on="on", group="blind"),
        ]
    )
    changes = bank.power_on({"Up": True})
    assert named(changes) == [("Up", RESTORE), ("Up", INTERLOCK), ("Down", BOOT)]
    assert [r.on for r in bank.relays] == [False, True]


# ---------------------------------------------------------------- snapshot


def test_snapshot_maps_names_to_bools():
    bank, _, _ = make_bank(policies())
    snap = bank.snapshot()
    assert snap == {"Off": False, "On": False, "Keep": False, "KeepOff": False, "Door": False}
    bank.power_on({"Keep": True})
    snap = bank.snapshot()
    assert snap == {"Off": False, "On": True, "Keep": True, "KeepOff": False, "Door": False}
    for v in snap.values():
        assert v is True or v is False


def test_snapshot_saves_pulse_relays_as_off():
    bank, _, _ = make_bank(policies())
    door = bank.relays[4]
    bank.set(door, True)
    assert door.on is True
    assert bank.snapshot()["Door"] is False


def test_snapshot_saves_a_relay_in_a_timed_pulse_as_off():
    # A power cut during a one-off pulse must not leave the relay on for good after restore.
    clock = FakeClock()
    bank, _, _ = make_bank(policies(), clock)
    keep = bank.relays[2]
    bank.pulse(keep, 5000)
    assert keep.on is True
    assert bank.snapshot()["Keep"] is False
    bank.set(keep, True)  # on for good now
    assert bank.snapshot()["Keep"] is True


def test_snapshot_round_trips_through_power_on():
    bank, _, _ = make_bank(policies())
    bank.set(bank.relays[2], True)
    bank.set(bank.relays[0], True)
    snap = bank.snapshot()
    again, _, _ = make_bank(policies())
    again.power_on(snap)
    assert [r.on for r in again.relays] == [False, True, True, False, False]


# ---------------------------------------------------------------- StateStore


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, msg):
        self.lines.append(msg)


def test_store_load_without_files_gives_none_quietly():
    with TempDir() as d:
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() is None
        assert log.lines == []


def test_store_save_then_load_round_trip():
    with TempDir() as d:
        log = Log()
        data = {"Light": True, "Fan": False, "Garden pump": True}
        assert StateStore(d.path, log, name="state.json").save(data) is True
        assert d.listdir() == ["state.json"]
        assert json.loads(d.read("state.json")) == data
        assert StateStore(d.path, log, name="state.json").load() == data
        assert log.lines == []


def test_store_custom_file_name():
    with TempDir() as d:
        s = StateStore(d.path, Log(), "relays.json")
        s.save({"A": True})
        assert d.listdir() == ["relays.json"]
        assert StateStore(d.path, Log(), "relays.json").load() == {"A": True}


def test_store_skips_identical_writes():
    with TempDir() as d:
        s = StateStore(d.path, Log(), name="state.json")
        assert s.save({"Light": True, "Fan": False}) is True
        os.remove(d.join("state.json"))  # a second write would bring it back
        assert s.save({"Fan": False, "Light": True}) is False
        assert not d.exists("state.json")
        assert s.save({"Light": False, "Fan": False}) is True
        assert json.loads(d.read("state.json")) == {"Light": False, "Fan": False}


def test_store_skips_writing_what_it_just_loaded():
    with TempDir() as d:
        StateStore(d.path, Log(), name="state.json").save({"Light": True})
        s = StateStore(d.path, Log(), name="state.json")
        assert s.load() == {"Light": True}
        assert s.save({"Light": True}) is False
        assert s.save({"Light": False}) is True
        assert StateStore(d.path, Log(), name="state.json").load() == {"Light": False}


def test_store_save_overwrites_the_previous_state():
    with TempDir() as d:
        s = StateStore(d.path, Log(), name="state.json")
        for i in range(5):
            s.save({"Light": i % 2 == 0, "n%d" % i: True})
        assert d.listdir() == ["state.json"]
        assert StateStore(d.path, Log(), name="state.json").load() == {"Light": True, "n4": True}


def test_store_save_notices_a_dict_changed_in_place():
    with TempDir() as d:
        s = StateStore(d.path, Log(), name="state.json")
        data = {"Light": True}
        s.save(data)
        data["Light"] = False
        assert s.save(data) is True
        assert StateStore(d.path, Log(), name="state.json").load() == {"Light": False}


def test_store_corrupt_file_gives_none_and_is_logged():
    with TempDir() as d:
        d.write("state.json", '{"Light": tr')
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() is None
        assert len(log.lines) == 1
        assert "corrupt" in log.lines[0]
        assert d.join("state.json") in log.lines[0]


def test_store_empty_file_gives_none_and_is_logged():
    with TempDir() as d:
        d.write("state.json", "")
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() is None
        assert len(log.lines) == 1 and "corrupt" in log.lines[0]


def test_store_wrong_shape_gives_none_and_is_logged():
    for text in ('["Light", true]', '{"Light": 1}', '{"Light": "on"}', '{"Light": null}', "true", "3"):
        with TempDir() as d:
            d.write("state.json", text)
            log = Log()
            assert StateStore(d.path, log, name="state.json").load() is None, text
            assert len(log.lines) == 1, text
            assert "wrong shape" in log.lines[0], text


def test_store_leftover_tmp_is_loaded_when_the_main_file_is_missing():
    # Power cut after the new state was written to state.json.tmp but before the rename
    # (or, on FAT, after the old file was removed).
    with TempDir() as d:
        d.write("state.json.tmp", '{"Light": true, "Fan": false}')
        log = Log()
        s = StateStore(d.path, log, name="state.json")
        assert s.load() == {"Light": True, "Fan": False}
        assert log.lines == []
        # the next real change is saved normally and the leftover is gone
        assert s.save({"Light": False, "Fan": False}) is True
        assert d.listdir() == ["state.json"]
        assert StateStore(d.path, Log(), name="state.json").load() == {"Light": False, "Fan": False}


def test_store_half_written_tmp_is_ignored_when_the_main_file_is_valid():
    # Power cut in the middle of writing state.json.tmp: the old state.json still holds.
    with TempDir() as d:
        d.write("state.json", '{"Light": true}')
        d.write("state.json.tmp", '{"Light": fa')
        log = Log()
        s = StateStore(d.path, log, name="state.json")
        assert s.load() == {"Light": True}
        assert log.lines == []
        assert s.save({"Light": False}) is True
        assert d.listdir() == ["state.json"]
        assert StateStore(d.path, Log(), name="state.json").load() == {"Light": False}


def test_store_corrupt_main_falls_back_to_a_valid_tmp():
    with TempDir() as d:
        d.write("state.json", "\x00\x00\x00")
        d.write("state.json.tmp", '{"Fan": true}')
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() == {"Fan": True}
        assert len(log.lines) == 1 and "corrupt" in log.lines[0]


def test_store_both_files_bad_gives_none():
    with TempDir() as d:
        d.write("state.json", "{")
        d.write("state.json.tmp", "[]")
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() is None
        assert len(log.lines) == 2


def test_store_save_into_a_missing_folder_raises_oserror():
    with TempDir() as d:
        s = StateStore(d.join("nope"), Log(), name="state.json")
        try:
            s.save({"Light": True})
        except OSError:
            pass
        else:
            assert False, "expected OSError"
        # nothing was recorded as saved, so the next attempt tries again
        assert s.saved is None


def test_store_with_bank_snapshot_and_power_on():
    with TempDir() as d:
        bank, _, _ = make_bank(policies())
        bank.set(bank.relays[2], True)
        bank.set(bank.relays[4], True)
        StateStore(d.path, Log(), name="state.json").save(bank.snapshot())
        again, pins, _ = make_bank(policies())
        changes = again.power_on(StateStore(d.path, Log(), name="state.json").load())
        assert named(changes) == [("On", BOOT), ("Keep", RESTORE)]
        assert pins[14].history == [0, 1]
        assert pins[16].history == [0]


# os.rename as on FAT (the board's flash): renaming over an existing file fails.
class FatOs:
    def __init__(self, real):
        self.real = real
        self.calls = []

    def rename(self, a, b):
        self.calls.append(("rename", a, b))
        try:
            self.real.stat(b)
        except OSError:
            return self.real.rename(a, b)
        raise OSError(17)

    def remove(self, p):
        self.calls.append(("remove", p))
        return self.real.remove(p)


def test_store_save_works_where_rename_cannot_replace_a_file():
    real = relays.os
    fat = FatOs(real)
    relays.os = fat
    try:
        with TempDir() as d:
            s = StateStore(d.path, Log(), name="state.json")
            assert s.save({"Light": True}) is True
            assert s.save({"Light": False}) is True
            assert d.listdir() == ["state.json"]
            assert StateStore(d.path, Log(), name="state.json").load() == {"Light": False}
            main = d.join("state.json")
            tmp = d.join("state.json.tmp")
            assert fat.calls == [
                ("rename", tmp, main),
                ("rename", tmp, main),
                ("remove", main),
                ("rename", tmp, main),
            ]
    finally:
        relays.os = real


# ---------------------------------------------------------------- StateStore: hostile files


def store_verdict(text, tmp=None):
    with TempDir() as d:
        d.write("state.json", text)
        if tmp is not None:
            d.write("state.json.tmp", tmp)
        log = Log()
        got = StateStore(d.path, log, name="state.json").load()
        return got, log.lines


def test_store_deeply_nested_file_is_ignored_with_one_line():
    got, lines = store_verdict("[" * 1536)
    assert got is None and len(lines) == 1 and "corrupt" in lines[0], lines
    got, lines = store_verdict('{"Light":' + "[" * 1000 + "]" * 1000 + "}")
    assert got is None and len(lines) == 1 and "corrupt" in lines[0], lines


def test_store_file_larger_than_the_bound_is_ignored_with_one_line():
    # valid JSON of the right shape, but 40 KB: never read whole, never parsed
    with TempDir() as d:
        with open(d.join("state.json"), "w") as f:
            f.write("{")
            for i in range(2200):
                f.write('%s"relay %05d": true' % ("," if i else "", i))
            f.write("}")
        assert os.stat(d.join("state.json"))[6] > 40000
        log = Log()
        assert StateStore(d.path, log, name="state.json").load() is None
        assert len(log.lines) == 1, log.lines
        assert "larger than %d bytes" % relays.MAX_STATE in log.lines[0]


def test_store_file_at_the_bound_still_loads():
    # 16 relays with 32-character names, padded with blanks to exactly MAX_STATE bytes
    data = {}
    for i in range(16):
        data["relay %02d %s" % (i, "\u00e9" * 23)] = i % 2 == 0
    text = json.dumps(data)
    text = text[:-1] + " " * (relays.MAX_STATE - len(text.encode())) + "}"
    assert len(text.encode()) == relays.MAX_STATE
    got, lines = store_verdict(text)
    assert got == data and lines == []
    got, lines = store_verdict(text[:-1] + " }")
    assert got is None and len(lines) == 1 and "larger than" in lines[0]


def test_store_a_bad_main_file_falls_back_to_the_tmp_file():
    got, lines = store_verdict("[" * 1536, '{"Fan": true}')
    assert got == {"Fan": True} and len(lines) == 1


def test_store_lenient_json_is_corrupt_on_both_runtimes():
    for text in ('{"Light": true,}', '{"Light" true}', '{"Light": true "Fan": false}', '{"Light": tru}', '{"Li\nght": true}'):
        got, lines = store_verdict(text)
        assert got is None and len(lines) == 1 and "corrupt" in lines[0], text


def test_store_names_with_escaped_emoji_load_as_the_character():
    got, lines = store_verdict('{"Pizza \\ud83c\\udf55": true, "Lone \\ud83c": false}')
    assert got is None and len(lines) == 1  # a lone surrogate spoils the whole file
    got, lines = store_verdict('{"Pizza \\ud83c\\udf55": true}')
    assert got == {"Pizza \U0001f355": True} and lines == []


def test_store_wrong_shape_in_a_shallow_nest_is_still_one_line():
    for text in ('{"Light": [true]}', '[{"Light": true}]', '{"Light": {"on": true}}'):
        got, lines = store_verdict(text)
        assert got is None and len(lines) == 1, (text, lines)
