# Tests for the clock, schedules and inputs sections of firmware/config.py (apart from
# test_config.py so each file fits the MicroPython runner's 128K heap): absent sections load
# nothing; every bad field gives a ConfigError that names it.
# Portable: run by pytest and by host_tests/mp_run.py.
from firmware.config import validate
from host_tests.portable.fakes import base_config as base, with_relay, check_field


def with_(**sections):
    raw = base()
    raw.update(sections)
    return raw


CLOCK = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "pool.ntp.org", "lat": 52.52, "lon": 13.40}


def test_clock_schedules_inputs_absent_leave_nothing():
    cfg = validate(base())
    assert "clock" not in cfg and "schedules" not in cfg and "inputs" not in cfg


def test_clock_section():
    assert validate(with_(clock=CLOCK))["clock"] == CLOCK
    assert validate(with_(clock={}))["clock"] == {"tz": "UTC0", "ntp": "pool.ntp.org", "lat": None, "lon": None}
    assert validate(with_(clock={"ntp": ""}))["clock"]["ntp"] == ""
    assert "rules" in check_field(with_(clock={"tz": "CET-1CEST"}), "clock.tz")
    check_field(with_(clock={"tz": 1}), "clock.tz")
    check_field(with_(clock={"lat": 52.5}), "clock.lon")
    check_field(with_(clock={"lon": 13}), "clock.lat")
    check_field(with_(clock={"lat": 91, "lon": 0}), "clock.lat")
    check_field(with_(clock={"lat": 0, "lon": True}), "clock.lon")
    check_field(with_(clock={"zone": "x"}), "clock.zone")
    check_field(with_(clock=[]), "clock")


def test_schedules_section():
    specs = [
        {"relay": "light", "at": "sunset-15", "days": "mon-sun", "action": "on"},
        {"relay": "Fan", "at": "06:30", "days": "mon-fri", "action": "pulse", "ms": 600000},
    ]
    cfg = validate(with_(clock=CLOCK, schedules=specs))
    assert cfg["schedules"] == [(1, "Light", 2, -15, 127, "on"), (2, "Fan", 0, 390, 31, 600000)]
    check_field(with_(schedules=specs), "schedules")  # no clock
    check_field(with_(clock={}, schedules=specs), "schedules[0].at")  # sunset without lat/lon
    check_field(with_(clock=CLOCK, schedules=specs * 9), "schedules")
    bad = [dict(specs[1], relay="Pump")]
    assert "Pump" in check_field(with_(clock=CLOCK, schedules=bad), "schedules[0].relay")
    check_field(with_(clock=CLOCK, schedules=[specs[0], dict(specs[1], ms=None)]), "schedules[1].ms")
    raw = with_relay(0, power_on="schedule")
    check_field(raw, "relays[0].power_on")
    raw.update(clock=CLOCK, schedules=specs)
    assert validate(raw)["relays"][0]["power_on"] == "schedule"


def test_inputs_section():
    cfg = validate(with_(inputs=[{"pin": 32, "relay": "Light", "mode": "toggle", "pull": "up", "active_low": True,
                                  "debounce_ms": 40, "long_ms": 800, "long_action": "off"},
                                 {"pin": 34, "relay": "fan", "mode": "pulse", "ms": 500}]))
    assert cfg["inputs"][0] == {"pin": 32, "relay": "Light", "mode": "toggle", "pull": "up", "active_low": True,
                                "debounce_ms": 40, "long_ms": 800, "long_action": "off"}
    assert cfg["inputs"][1] == {"pin": 34, "relay": "Fan", "mode": "pulse", "pull": "none", "active_low": False,
                                "debounce_ms": 40, "long_ms": 800, "ms": 500}
    for pin in (39, 35, 0, 33):
        assert validate(with_(inputs=[{"pin": pin, "relay": "Fan", "pull": "none"}]))["inputs"][0]["pin"] == pin
    for pin, words in ((6, "flash"), (11, "flash"), (20, "no GPIO"), (26, "twice"), (40, "0 to 39"), (True, "whole")):
        assert words in check_field(with_(inputs=[{"pin": pin, "relay": "Fan"}]), "inputs[0].pin"), pin
    two = [{"pin": 32, "relay": "Fan"}, {"pin": 32, "relay": "Light"}]
    check_field(with_(inputs=two), "inputs[1].pin")
    check_field(with_(inputs=[{"pin": 36, "relay": "Fan", "pull": "up"}]), "inputs[0].pull")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "pull": "sideways"}]), "inputs[0].pull")
    check_field(with_(inputs=[{"pin": 32, "relay": "Pump"}]), "inputs[0].relay")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "mode": "hold"}]), "inputs[0].mode")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "mode": "follow", "long_action": "off"}]), "inputs[0].long_action")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "long_action": "pulse"}]), "inputs[0].long_action")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "mode": "pulse"}]), "inputs[0].ms")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "ms": 5}]), "inputs[0].ms")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "debounce_ms": 5000}]), "inputs[0].debounce_ms")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "active_low": 1}]), "inputs[0].active_low")
    check_field(with_(inputs=[{"pin": 32, "relay": "Fan", "colour": 1}]), "inputs[0].colour")
    check_field(with_(inputs=[{"pin": 32 + i, "relay": "Fan", "pull": "none"} for i in range(9)]), "inputs")
    check_field(with_(inputs=["x"]), "inputs[0]")
