# Tests for firmware/inputs.py: debouncing (a bounce storm is one press, or none), each mode,
# long presses, a held momentary, timing across the ticks_ms wrap, and next_ms().
# Portable: run by pytest and by host_tests/mp_run.py.
from firmware.inputs import Inputs

TOGGLE = {"type": "toggle", "relay": "Light"}


def spec(mode="toggle", active_low=True, debounce_ms=40, long_ms=800, **kw):
    d = {"pin": 32, "relay": "Light", "mode": mode, "pull": "up", "active_low": active_low}
    d.update(debounce_ms=debounce_ms, long_ms=long_ms, **kw)
    return d


# Drive one input through (ms, level) steps, calling tick() every 5 ms like a busy task;
# returns [(ms, cmd)] for every command produced. The level before the script is settled
# first (released, for active-low: level 1).
class Rig:
    def __init__(self, *specs, start=0, idle=1):
        self.inputs = Inputs(list(specs))
        self.now = start
        self.out = []
        for i in range(len(specs)):
            self.inputs.edge(i, idle, self.now)
        self.wait(100)
        assert self.out == [] or specs[0]["mode"] == "follow"

    def wait(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 5
            t = self.now & 0x3FFFFFFF  # what ticks_ms would say
            self.out += [(self.now, c) for c in self.inputs.tick(t)]

    def level(self, v, i=0):
        self.inputs.edge(i, v, self.now & 0x3FFFFFFF)

    # bounce: n edges 1 to 3 ms apart, ending at level end, ticking after each
    def storm(self, n, end):
        for k in range(n):
            self.level(end if (n - k) % 2 == 1 else 1 - end)
            self.now += 1 + k % 3
            self.out += [(self.now, c) for c in self.inputs.tick(self.now & 0x3FFFFFFF)]

    def cmds(self):
        return [c for _, c in self.out]


def test_clean_press_toggles_once_after_debounce():
    r = Rig(spec())
    r.level(0)
    r.wait(35)
    assert r.out == []  # not yet settled
    r.wait(10)
    assert r.cmds() == [TOGGLE]
    r.wait(200)
    r.level(1)
    r.wait(100)
    assert r.cmds() == [TOGGLE]  # release does nothing in toggle mode


def test_bounce_storm_is_one_press():
    r = Rig(spec())
    r.storm(17, 0)  # contacts chatter 17 times and come to rest closed
    r.wait(30)
    r.storm(6, 0)  # more chatter before it settles restarts the quiet time
    r.wait(100)
    assert r.cmds() == [TOGGLE]
    r.storm(11, 1)
    r.wait(100)
    r.storm(9, 0)
    r.wait(100)
    assert r.cmds() == [TOGGLE, TOGGLE]


def test_storm_ending_where_it_began_is_no_press():
    r = Rig(spec())
    r.storm(10, 1)  # even number of real flips: back at released
    r.wait(200)
    assert r.out == []
    r.level(0)
    r.wait(20)
    r.level(1)  # a 20 ms glitch, shorter than debounce_ms
    r.wait(200)
    assert r.out == []


def test_long_press_takes_long_action_once_and_short_press_toggles():
    r = Rig(spec(long_action="off"))
    r.level(0)
    r.wait(600)
    assert r.out == []  # with a long action, a press waits for release or long_ms
    r.level(1)
    r.wait(100)
    assert r.cmds() == [TOGGLE]
    t0 = r.now
    r.level(0)
    r.wait(2000)
    assert r.cmds() == [TOGGLE, {"type": "set", "relay": "Light", "on": False}]
    assert 800 <= r.out[1][0] - t0 <= 800 + 40 + 10  # held long_ms after the settled press
    r.level(1)
    r.wait(100)
    assert len(r.out) == 2  # release after a long press does nothing


def test_held_momentary_on_while_held():
    r = Rig(spec("momentary"))
    r.level(0)
    r.wait(5000)
    assert r.cmds() == [{"type": "set", "relay": "Light", "on": True}]
    r.storm(7, 1)
    r.wait(100)
    assert r.cmds()[1:] == [{"type": "set", "relay": "Light", "on": False}]


def test_follow_switch_and_boot_level():
    # a wall switch that is on at boot turns the relay on; held buttons at boot do nothing
    r = Rig(spec("follow", active_low=False), idle=1)
    assert r.cmds() == [{"type": "set", "relay": "Light", "on": True}]
    r.storm(5, 0)
    r.wait(100)
    assert r.cmds()[1:] == [{"type": "set", "relay": "Light", "on": False}]
    held = Rig(spec(), idle=0)
    held.wait(1000)
    assert held.out == []
    held.level(1)
    held.wait(100)
    assert held.out == []  # releasing the button held at boot is no press either
    held.level(0)
    held.wait(100)
    assert held.cmds() == [TOGGLE]


def test_pulse_mode_and_long_toggle():
    r = Rig(spec("pulse", ms=1500, long_action="toggle"))
    r.level(0)
    r.wait(100)
    r.level(1)
    r.wait(100)
    assert r.cmds() == [{"type": "pulse", "relay": "Light", "ms": 1500}]
    r.level(0)
    r.wait(1000)
    assert r.cmds()[1:] == [TOGGLE]


def test_two_inputs_and_the_ticks_wrap():
    a = spec()
    b = spec("momentary", active_low=False, debounce_ms=10)
    b["relay"] = "Fan"
    r = Rig(a, b, start=0x3FFFFFFF - 60, idle=0)  # idle 0: a is pressed at boot, b released
    r.level(1, 0)
    r.wait(200)  # across the wrap of ticks_ms
    r.level(1, 1)
    r.level(0, 0)
    r.wait(100)
    assert sorted(str(c) for c in r.cmds()) == sorted([str(TOGGLE), str({"type": "set", "relay": "Fan", "on": True})])


def test_next_ms_says_when_to_tick():
    ins = Inputs([spec(long_action="on")])
    assert ins.next_ms(0) is None
    ins.edge(0, 1, 0)
    assert ins.next_ms(10) == 30
    assert ins.tick(40) == [] and ins.next_ms(40) is None
    ins.edge(0, 0, 100)
    assert ins.next_ms(100) == 40
    assert ins.tick(140) == []
    assert ins.next_ms(140) == 800
    assert ins.next_ms(2000) == 0
    assert ins.tick(940) == [{"type": "set", "relay": "Light", "on": True}]
    assert ins.next_ms(941) is None
