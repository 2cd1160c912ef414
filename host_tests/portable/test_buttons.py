# Tests for firmware/buttons.py: interrupts mark pins and wake the task, which debounces
# (firmware/inputs.py) and applies the commands with cause "button"; a bounce storm driven
# through the interrupt path in real time is one press, a held momentary is on until released.
# Portable: run by pytest and by host_tests/mp_run.py (asyncio on both runtimes).
import asyncio

from firmware import buttons
from host_tests.portable.fakes import FakeNode


class FakeInput:
    def __init__(self, gpio, pull, handler):
        self.gpio = gpio
        self.pull = pull
        self.handler = handler
        self.level = 1

    def value(self):
        return self.level

    # the simulator's "pin GPIO LEVEL": set the level, then the interrupt fires
    def set(self, level):
        self.level = level
        self.handler(self)


def spec(pin, mode, relay="Light", **kw):
    d = {"pin": pin, "relay": relay, "mode": mode, "pull": "up", "active_low": True, "debounce_ms": 20, "long_ms": 300}
    d.update(kw)
    return d


def make(specs):
    node = FakeNode(buttons.ticks_ms)
    made = {}

    def make_input(gpio, pull, handler):
        made[gpio] = FakeInput(gpio, pull, handler)
        return made[gpio]

    b = buttons.attach(node, specs, make_input)
    return b, node, made


async def storm(pin, n, end):
    for k in range(n):
        pin.set(end if (n - k) % 2 == 1 else 1 - end)
        await asyncio.sleep(0.002)


def test_bounce_storm_through_interrupts_is_one_press():
    b, node, pins = make([spec(32, "toggle")])
    assert node.listeners == [b] and pins[32].pull == "up"

    async def main():
        b.start()
        await asyncio.sleep(0.05)
        await storm(pins[32], 9, 0)
        await asyncio.sleep(0.1)
        await storm(pins[32], 7, 1)
        await asyncio.sleep(0.1)
        b.stop()

    asyncio.run(main())
    assert node.applied == [({"type": "toggle", "relay": "Light"}, "button")]
    assert node.bank.find("Light").on is True


def test_held_momentary_and_long_press_in_real_time():
    b, node, pins = make([spec(32, "momentary", "Pump"), spec(33, "toggle", long_action="off")])
    node.bank.set(node.bank.find("Light"), True)

    async def main():
        b.start()
        await asyncio.sleep(0.05)
        pins[32].set(0)
        pins[33].set(0)
        await asyncio.sleep(0.2)
        assert node.bank.find("Pump").on is True  # on while held
        await asyncio.sleep(0.3)  # the long press on 33 fires at 300 ms without another edge
        assert node.bank.find("Light").on is False
        pins[32].set(1)
        pins[33].set(1)
        await asyncio.sleep(0.1)
        b.stop()

    asyncio.run(main())
    assert node.applied == [
        ({"type": "set", "relay": "Pump", "on": True}, "button"),
        ({"type": "set", "relay": "Light", "on": False}, "button"),
        ({"type": "set", "relay": "Pump", "on": False}, "button"),
    ]
