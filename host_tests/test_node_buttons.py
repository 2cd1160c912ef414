# Integration: buttons and switches in the whole node (CPython and the MicroPython unix port),
# pressed through the simulator's standard input ("pin 32 0"): a bounce storm is one press, a
# long press takes its long action, a held momentary while a page toggles the same relay,
# a wall switch in follow mode; input pins allowed and refused by config; a soak under
# MicroPython with schedules and buttons firing while clients come and go; and buttons on the
# pretend board, through the board's own start-up (machine.Pin, Pin.irq, soft interrupts).
import os
import sys
import time

import pytest

from host_tests.pages import Page
from host_tests.test_deploy import deployed, node_config, pretend_board, serving  # noqa: F401
from tools import harness as nh

sys.path.insert(0, os.path.join(nh.ROOT, "tools"))
import mpbuild  # noqa: E402

pytestmark = pytest.mark.slow

T = 5.0
HEAP = "160K"  # MicroPython: checking a config with clock, schedules and inputs from .mpy files
RELAYS = [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27}]  # active high: GPIO level = on


def config(inputs, **top):
    cfg = nh.make_config(inputs=inputs, **top)
    cfg["relays"] = [dict(r) for r in RELAYS]
    return cfg


def button_node(node, inputs):
    return node(config=config(inputs), heapsize=HEAP, stdin=True)


# Levels written to the pin in quick succession (a contact bouncing), ending at end.
def bounce(n, gpio, end, edges=9):
    for k in range(edges):
        n.pin(gpio, end if (edges - k) % 2 == 1 else 1 - end)
        time.sleep(0.003)


def test_a_bounce_storm_is_one_press(node):
    n = button_node(node, [{"pin": 32, "relay": "Fan", "mode": "toggle", "debounce_ms": 40}])
    c = Page(n)
    try:
        bounce(n, 32, 0)  # pressed, bouncing
        assert c.change() == ("Fan", True, "button")
        time.sleep(0.1)
        bounce(n, 32, 1)  # released, bouncing
        c.assert_quiet()
        bounce(n, 32, 0, 6)  # a storm that ends where it began (released): no press at all
        bounce(n, 32, 1, 5)
        c.assert_quiet()
        bounce(n, 32, 0)
        assert c.change() == ("Fan", False, "button")
        n.pin(32, 1)
        c.assert_quiet()
        assert len(n.matching("(button)")) == 2 and n.matching("GPIO27 -> 0")
    finally:
        c.close()


def test_long_press_takes_the_long_action(node):
    n = button_node(node, [{"pin": 33, "relay": "Light", "long_ms": 300, "long_action": "on", "debounce_ms": 20}])
    c = Page(n)
    try:
        n.pin(33, 0)
        c.assert_quiet(0.15)  # a press with a long action waits for its release or its time
        assert c.change() == ("Light", True, "button")  # held: the long action
        time.sleep(0.2)
        n.pin(33, 1)
        c.assert_quiet()  # its release does nothing more
        n.pin(33, 0)
        time.sleep(0.1)
        n.pin(33, 1)
        assert c.change() == ("Light", False, "button")  # a short press: toggle, on release
    finally:
        c.close()


def test_momentary_held_while_a_page_toggles_the_same_relay(node):
    n = button_node(node, [{"pin": 35, "relay": "Fan", "mode": "momentary", "pull": "none", "active_low": True,
                            "debounce_ms": 20}])
    a, b = Page(n), Page(n)
    try:
        n.pin(35, 0)  # held
        for c in (a, b):
            assert c.change() == ("Fan", True, "button")
        a.send({"type": "toggle", "relay": "Fan"})  # the page turns it off while held
        for c in (a, b):
            assert c.change() == ("Fan", False, "client")
        n.pin(35, 1)  # released: off, as it already is
        a.assert_quiet()
        b.assert_quiet(0.1)
        n.pin(35, 0)
        assert a.change() == ("Fan", True, "button")
        a.send({"type": "set", "relay": "Fan", "on": True})  # a page agrees: nothing to do
        n.pin(35, 1)
        assert a.change() == ("Fan", False, "button")
        try:
            st = nh.get_state(n.port)
        except Exception as e:
            raise AssertionError("%r\n%s" % (e, n.output()))
        assert st["relays"][1]["on"] is False
    finally:
        a.close()
        b.close()


def test_a_wall_switch_in_follow_mode(node):
    n = button_node(node, [{"pin": 34, "relay": "Light", "mode": "follow", "pull": "none", "active_low": True}])
    c = Page(n)
    try:
        bounce(n, 34, 0)
        assert c.change() == ("Light", True, "button")
        c.send({"type": "set", "relay": "Light", "on": False})  # a page may still switch it
        assert c.change() == ("Light", False, "client")
        bounce(n, 34, 1)  # the switch flipped back to off: already off
        c.assert_quiet()
        bounce(n, 34, 0)
        assert c.change() == ("Light", True, "button")
        n.wait_for_line("GPIO26 -> 1", T)
    finally:
        c.close()


def test_bad_lines_on_standard_input_move_nothing(node):
    n = button_node(node, [{"pin": 32, "relay": "Fan"}])
    c = Page(n)
    try:
        for line in (b"pin 99 0\n", b"pin 32 2\n", b"pin 27 1\n", b"press 32\n", b"pin 32\n", b"\xff\xfe\n"):
            mark = n.mark()
            n.proc.stdin.write(line)
            n.proc.stdin.flush()
            n.wait_for_line("sim: ", T, since=mark)  # "expected 'pin GPIO 0|1'", or not UTF-8
        c.assert_quiet()
        assert [r["on"] for r in nh.get_state(n.port)["relays"]] == [False, False]
        n.pin(32, 0)
        assert c.change() == ("Fan", True, "button")
    finally:
        c.close()


@pytest.mark.parametrize("inp, error", [
    ({"pin": 6, "relay": "Fan"}, "inputs[0].pin: GPIO 6 drives the flash chip"),
    ({"pin": 11, "relay": "Fan"}, "inputs[0].pin: GPIO 11 drives the flash chip"),
    ({"pin": 36, "relay": "Fan", "pull": "up"}, "inputs[0].pull: GPIO 34-39 have no pull resistors"),
    ({"pin": 27, "relay": "Fan"}, "inputs[0].pin: GPIO 27 is used twice"),
    ({"pin": 32, "relay": "Fan", "mode": "hold"}, "inputs[0].mode: must be one of"),
])
def test_input_pins_refused_by_config(runtime, inp, error):
    n = nh.Node(runtime, config=config([inp]), heapsize=HEAP)
    try:
        with pytest.raises(nh.NodeError):
            n.start()
        out = n.history[-1]
        assert ("config error: " + error) in out, out
        assert "GPIO26 -> 1" not in out and "GPIO27 -> 1" not in out  # no relay moved
    finally:
        n.cleanup()


def test_input_only_pins_34_to_39_are_allowed(node):
    inputs = [{"pin": p, "relay": ("Light", "Fan")[p % 2], "mode": "follow", "pull": "none", "active_low": True}
              for p in range(34, 40)]
    n = button_node(node, inputs)
    c = Page(n)
    try:
        n.pin(39, 0)
        assert c.change() == ("Fan", True, "button")
        n.pin(36, 0)
        assert c.change() == ("Light", True, "button")
    finally:
        c.close()


# On the board-faithful build (MicroPython, 32-bit, firmware frozen: the heap holds what a
# board's does): schedules firing every few seconds (the clock 7200 times faster) and buttons
# pressed while clients come and go; the heap is back where it started once they have left.
def test_soak_schedules_and_buttons_while_clients_come_and_go():
    try:
        mpbuild.build(32, quiet=True)
    except mpbuild.BuildError as e:
        pytest.fail("cannot build MicroPython with the firmware frozen in: %s" % e)
    scheds = [{"relay": ("Light", "Fan")[k % 2], "at": "%02d:%02d" % (k * 3 // 2, k * 37 % 60), "action": "toggle"}
              for k in range(16)]
    inputs = [{"pin": 32, "relay": "Fan"}, {"pin": 33, "relay": "Light", "long_ms": 200, "long_action": "off"},
              {"pin": 34, "relay": "Light", "mode": "follow", "pull": "none"},
              {"pin": 35, "relay": "Fan", "mode": "momentary", "pull": "none", "active_low": True}]
    clock = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "", "lat": 52.52, "lon": 13.40}
    n = nh.Node("micropython", config=config(inputs, clock=clock, schedules=scheds), heapsize="64K", stdin=True,
                frozen=True, bits=32, sim_args=["--clock", "2026-03-28T12:00:00Z", "--clock-rate", "7200"])
    try:
        n.start()
        n.wait_for_line("clock: ", T)

        def round_(k):
            try:
                clients(k)
            except Exception as e:
                time.sleep(0.3)
                raise AssertionError("%r (exit %s)\n%s" % (e, n.proc.poll(), n.output()[-3000:]))

        def clients(k):
            cs = [Page(n) for _ in range(3)]
            for gpio in (32, 33, 34, 35):
                n.pin(gpio, k % 2)
            cs[k % 3].send({"type": "toggle", "relay": k % 2})
            cs[0].send({"type": "schedules"})
            time.sleep(0.15)
            for c in cs:
                c.close()

        for k in range(4):  # warm up: every path once
            round_(k)
        time.sleep(1.5)
        start = min(nh.debug(n.port)["heap"] for _ in range(2))
        fired = len(n.matching("(schedule)"))
        t_end = time.monotonic() + 20
        k = 0
        while time.monotonic() < t_end:
            round_(k)
            k += 1
        deadline = time.monotonic() + 10
        while nh.debug(n.port)["clients"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the relay state saved, the buffers let go
        end = min(nh.debug(n.port)["heap"] for _ in range(2))
        scheduled = len(n.matching("(schedule)")) - fired
        pressed = len(n.matching("(button)"))
        print("soak: %d rounds, %d scheduled changes, %d button changes, heap %d -> %d B"
              % (k, scheduled, pressed, start, end))
        assert scheduled >= 20 and pressed >= 20 and k >= 20, n.output()[-3000:]
        assert end <= start + 2048, (start, end)
        assert not n.matching("MemoryError") and not n.matching("Traceback"), n.output()
    finally:
        n.cleanup()


# On the pretend board (tools/pretend_board.py, "pin GPIO LEVEL" on its standard input): the
# board's make_input (machine.Pin with its pull, Pin.irq on both edges), whose handler runs
# as a scheduled soft interrupt outside every task and wakes the buttons' task through its
# flag. A bounce storm is one press; a wall switch on input-only GPIO 34 is followed.
def test_buttons_on_the_pretend_board(pretend_board, tmp_path):  # noqa: F811
    inputs = [
        {"pin": 32, "relay": "Light", "mode": "toggle", "pull": "up", "debounce_ms": 40},
        {"pin": 34, "relay": "Fan", "mode": "follow", "pull": "none", "active_low": False},
    ]
    cfg = node_config(inputs=inputs)
    board = pretend_board()
    deployed(tmp_path, board.port, cfg)
    assert [r["on"] for r in serving(board, cfg)["relays"]] == [False, False]
    mark = board.mark()
    for k in range(9):  # pressed (to 0: pulled up), bouncing
        board.pin(32, k % 2)
        time.sleep(0.003)
    board.wait_for(r"relay Light -> on \(button\)", mark, T)
    time.sleep(0.3)
    board.pin(32, 1)  # released
    board.pin(34, 1)  # the wall switch on
    board.wait_for(r"relay Fan -> on \(button\)", mark, T)
    time.sleep(0.3)
    out = board.console(mark)
    assert out.count("(button)") == 2, out
    assert [r["on"] for r in nh.get_state(cfg["http"]["port"])["relays"]] == [True, True]
    board.pin(34, 0)
    board.wait_for(r"relay Fan -> off \(button\)", mark, T)
    assert "Traceback" not in board.console(), board.console()
