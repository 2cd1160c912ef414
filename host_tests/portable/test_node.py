# Tests for firmware/node.py: one way in (apply), one way out (publish to every listener).
# Portable: run by pytest on CPython and by host_tests/mp_run.py on the MicroPython unix port.
import json

from firmware.node import Listener, Node, safe_log
from firmware.relays import RelayBank
from host_tests.portable.fakes import FakeClock, FakePins


class Recorder(Listener):
    key = "rec"

    def __init__(self):
        self.changes = []
        self.messages = []
        self.ticks = 0

    def changed(self, changes, origin, hops, via):
        self.changes.append(([(r.name, r.on, cause) for r, cause in changes], origin, hops, via))

    def message(self, text):
        self.messages.append(text)

    def tick(self, now):
        self.ticks += 1

    def status(self):
        return {"n": len(self.changes)}


def make(lines=None):
    specs = [{"name": "Light", "pin": 26}, {"name": "Fan", "pin": 27, "group": "g"}, {"name": "Pump", "pin": 25, "group": "g"}]
    bank = RelayBank(specs, FakePins().make, FakeClock(0))
    log = (lines.append if lines is not None else (lambda s: None))
    node = Node({"name": "n1", "limits": {"save_delay_ms": 1000}}, bank, None, log)
    return node, node.listen(Recorder())


def test_apply_publishes_each_change_once_to_every_listener():
    lines = []
    node, rec = make(lines)
    other = node.listen(Recorder())
    assert node.apply({"type": "set", "relay": "light", "on": True}, "mqtt") is None
    assert rec.changes == other.changes == [([("Light", True, "mqtt")], None, 0, None)]
    assert lines == ["relay Light -> on (mqtt)"]  # the relay log is a listener too
    node.apply({"type": "set", "relay": "Fan", "on": True}, "button")
    node.apply({"type": "set", "relay": "Pump", "on": True}, "schedule", via=other)
    # interlock: Fan off first, then Pump on, in one publish, with the source that made it
    assert rec.changes[-1] == ([("Fan", False, "interlock"), ("Pump", True, "schedule")], None, 0, other)


def test_apply_returns_errors_as_data_and_moves_nothing():
    node, rec = make()
    assert node.apply({"type": "set", "relay": "Nope", "on": True}, "http") == ("unknown_relay", 'no relay "Nope"')
    assert node.apply({"type": "toggle", "relay": 7}, "http")[0] == "unknown_relay"
    assert rec.changes == [] and not any(r.on for r in node.bank.relays)
    # nothing to do is no change and no error
    assert node.apply({"type": "set", "relay": 0, "on": False}, "client") is None
    assert rec.changes == []


def test_a_change_that_began_here_is_not_applied_again():
    node, rec = make()
    assert node.apply({"type": "toggle", "relay": 0}, "link", "n1", 2) is None
    assert rec.changes == []
    node.apply({"type": "toggle", "relay": 0}, "link", "n2", 2)
    assert rec.changes == [([("Light", True, "link")], "n2", 2, None)]


def test_messages_status_and_notify_reach_every_listener():
    node, rec = make()
    node.message('{"type":"say","text":"hi"}')
    assert rec.messages == ['{"type":"say","text":"hi"}']
    state = json.loads(node.state_message())
    assert state["rec"] == {"n": 0} and [r["name"] for r in state["relays"]] == ["Light", "Fan", "Pump"]
    node.apply({"type": "toggle", "relay": 0}, "client")
    node.notify(rec)
    assert json.loads(rec.messages[-1]) == {"type": "rec", "rec": {"n": 1}}


def test_tick_ends_pulses_through_publish_and_ticks_every_listener():
    node, rec = make()
    node.apply({"type": "pulse", "relay": "Light", "ms": 100}, "http")
    node.bank.clock.advance(100)
    node.tick()
    assert rec.changes[-1] == ([("Light", False, "timer")], None, 0, None)
    assert rec.ticks == 1


def test_a_failing_log_never_raises_into_the_node():
    def bad(text):
        raise OSError("uart full")

    safe_log(bad)("x")  # nothing raised
    node, rec = make()
    node.log = safe_log(bad)
    node.relay_log.log = node.log
    assert node.apply({"type": "toggle", "relay": 0}, "client") is None
    assert rec.changes


# The timer task survives a listener that raises, a MemoryError included, and a log that
# fails as well: pulses still end afterwards.
def test_the_timer_task_survives_anything_one_round_does():
    import asyncio

    from firmware.compat import sleep_ms

    class Bad(Listener):
        def __init__(self):
            self.n = 0

        def tick(self, now):
            self.n += 1
            if self.n == 1:
                raise MemoryError("no heap")
            if self.n == 2:
                raise ValueError("bug")

    def failing_log(text):
        raise MemoryError("no heap for the line")

    async def main():
        node, rec = make()
        node.log = safe_log(failing_log)
        bad = node.listen(Bad())
        node.timers = asyncio.create_task(node._timers())
        node.bank.clock = lambda: 0  # pulses are timed on the bank's clock
        for _ in range(100):
            if bad.n >= 3:
                break
            await sleep_ms(20)
        node.apply({"type": "pulse", "relay": "Light", "ms": 10}, "client")
        node.bank.clock = lambda: 1000
        node.wake()
        for _ in range(100):
            if rec.changes[-1][0] == [("Light", False, "timer")]:
                break
            await sleep_ms(10)
        node.stop()
        return bad.n, rec.changes[-1][0]

    n, last = asyncio.run(main())
    assert n >= 3 and last == [("Light", False, "timer")], (n, last)
