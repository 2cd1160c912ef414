# The node in this process (CPython), on 127.0.0.1, for what a subprocess cannot be made to do:
# run out of memory at a chosen moment. CPython's client loop (firmware/cpython.py) takes a
# MemoryError as MicroPython's does (a 1011 close for that client alone, one log line); the
# MicroPython side is tested by running out of a real 128K heap in test_hardening.py.
import asyncio
import json

from websockets.asyncio.client import connect

from firmware import commands, config, server
from firmware.relays import RelayBank, StateStore
from host_tests.node import ROOT

PAGE = ROOT + "/firmware/www/index.html"

TOGGLE = json.dumps({"type": "toggle", "relay": 0})


class Pin:
    def __init__(self, gpio, level):
        self.level = level

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v


def make_node(lines, store=None):
    limits = {"max_rate": 1000, "save_delay_ms": 50}
    cfg = config.validate({"name": "inproc", "relays": [{"name": "Light", "pin": 26}], "limits": limits})
    bank = RelayBank(cfg["relays"], Pin)
    return server.Node(cfg, bank, store, PAGE, log=lines.append)


async def first(c):
    return json.loads(await asyncio.wait_for(c.recv(), 5))


async def closed(c):
    try:
        while True:
            await asyncio.wait_for(c.recv(), 5)
    except Exception:
        pass
    return c.close_code, c.close_reason


def test_memory_error_while_handling_a_message_closes_that_client_with_1011(monkeypatch):
    lines = []
    node = make_node(lines)
    real = server.Node._command

    def command(self, c, text):
        if text == "boom":
            raise MemoryError("allocating 9999 bytes")
        return real(self, c, text)

    monkeypatch.setattr(server.Node, "_command", command)

    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        await node.start("127.0.0.1", 0)
        port = node.server.sockets[0].getsockname()[1]
        url = "ws://127.0.0.1:%d/ws" % port
        try:
            async with connect(url) as a, connect(url) as b:
                for c in (a, b):
                    assert json.loads(await asyncio.wait_for(c.recv(), 5))["type"] == "state"
                await b.send("boom")
                try:
                    while True:
                        await asyncio.wait_for(b.recv(), 5)
                except Exception:
                    pass
                assert (b.close_code, b.close_reason) == (1011, "out of memory")
                assert (await first(a))["type"] == "state"  # sent again to everybody left
                await a.send(TOGGLE)  # the other client goes on
                assert (await first(a))["on"] is True
                async with connect(url) as c:  # and new clients get in
                    assert json.loads(await asyncio.wait_for(c.recv(), 5))["type"] == "state"
        finally:
            await node.stop()

    asyncio.run(main())
    oom = [x for x in lines if "MemoryError" in x]
    assert len(oom) == 1 and oom[0].startswith("ws 127.0.0.1:"), lines
    assert oom[0].endswith(": MemoryError (heap 0)"), lines  # CPython has no gc.mem_alloc()
    assert any(x.endswith(": closing 1011 (out of memory)") for x in lines), lines
    assert errors == [], errors  # no task ended with an exception nobody retrieved


# The heap runs out after the relay moved and before its message was made: the sender is
# closed with 1011, and the others learn the change from the whole state sent again; the
# change is saved all the same.
def test_memory_error_after_a_relay_moved_sends_the_state_again_and_saves_it(monkeypatch, tmp_path):
    lines = []
    store = StateStore(str(tmp_path), lines.append)
    node = make_node(lines, store)
    real = commands.relay_message
    fail = [True]

    def relay_message(*a):
        if fail.pop() if fail else False:
            raise MemoryError("allocating 200 bytes")
        return real(*a)

    monkeypatch.setattr(commands, "relay_message", relay_message)
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        await node.start("127.0.0.1", 0)
        url = "ws://127.0.0.1:%d/ws" % node.server.sockets[0].getsockname()[1]
        try:
            async with connect(url) as a, connect(url) as b:
                for c in (a, b):
                    assert (await first(c))["relays"][0]["on"] is False
                await b.send(TOGGLE)
                assert await closed(b) == (1011, "out of memory")
                state = await first(a)
                assert state["type"] == "state" and state["relays"][0]["on"] is True, state
                for _ in range(100):  # saved within save_delay_ms (50)
                    if store.saved is not None:
                        break
                    await asyncio.sleep(0.02)
                assert store.saved == {"Light": True}, lines
                with open(store.path) as f:
                    assert json.load(f) == {"Light": True}
                await a.send(TOGGLE)  # and the next change is sent as usual
                assert await first(a) == {"type": "relay", "id": 0, "name": "Light", "on": False, "cause": "client"}
        finally:
            await node.stop()

    asyncio.run(main())
    assert len([x for x in lines if ": MemoryError (heap " in x]) == 1, lines
    assert errors == [], errors


# The heap runs out in the timer task as a pulse ends (the relay is off, its message not
# made): the timers go on, the clients get the whole state again, and the next pulse ends as
# usual.
def test_memory_error_in_the_timer_task_sends_the_state_again(monkeypatch):
    lines = []
    node = make_node(lines)
    real = commands.relay_message
    calls = []

    def relay_message(relay, cause, *a):
        calls.append(cause)
        if cause == "timer" and calls.count("timer") == 1:
            raise MemoryError("allocating 200 bytes")
        return real(relay, cause, *a)

    monkeypatch.setattr(commands, "relay_message", relay_message)
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        await node.start("127.0.0.1", 0)
        url = "ws://127.0.0.1:%d/ws" % node.server.sockets[0].getsockname()[1]
        try:
            async with connect(url) as a:
                await first(a)
                pulse = json.dumps({"type": "pulse", "relay": 0, "ms": 50})
                await a.send(pulse)
                assert (await first(a))["on"] is True
                state = await first(a)  # the pulse's end: its message failed, the state instead
                assert state["type"] == "state" and state["relays"][0]["on"] is False, state
                await a.send(pulse)
                assert (await first(a))["on"] is True
                assert await first(a) == {"type": "relay", "id": 0, "name": "Light", "on": False, "cause": "timer"}
        finally:
            await node.stop()

    asyncio.run(main())
    assert [x for x in lines if "MemoryError" in x] == ["timers: MemoryError (heap 0)"], lines
    assert errors == [], errors
