# The node in this process (CPython), on 127.0.0.1, for what a subprocess cannot be made to do:
# run out of memory at a chosen moment. On CPython the session (firmware/session.py) takes a
# MemoryError as on MicroPython (a 1011 close for that client alone, one log line, the
# whole state sent again to the others); the MicroPython side is tested by running out of a
# real 128K heap in test_hardening.py.
import asyncio
import json

from websockets.asyncio.client import connect

from firmware import commands, config, server, session
from firmware.compat import ticks_ms
from firmware.node import Node
from firmware.relays import RelayBank, StateStore
from tools.harness import ROOT

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
    bank = RelayBank(cfg["relays"], Pin, clock=ticks_ms)
    return server.Server(Node(cfg, bank, store, log=lines.append), cfg, PAGE, echo=None)


# Start node on 127.0.0.1, run body(url of its /ws), stop it; returns what asyncio reported
# as unhandled (a task that ended with an exception nobody retrieved, ...): should be nothing.
def serve(node, body):
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        await node.start("127.0.0.1", 0)
        try:
            await body("ws://127.0.0.1:%d/ws" % node.server.sockets[0].getsockname()[1])
        finally:
            await node.stop()

    asyncio.run(main())
    return errors


# commands.relay_message, raising MemoryError at the calls for which fail(cause) is true.
def failing_relay_message(monkeypatch, fail):
    real = commands.relay_message

    def relay_message(relay, cause, *a):
        if fail(cause):
            raise MemoryError("allocating 200 bytes")
        return real(relay, cause, *a)

    monkeypatch.setattr(commands, "relay_message", relay_message)


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
    real = session.Pages.command

    def command(self, c, text):
        if text == "boom":
            raise MemoryError("allocating 9999 bytes")
        return real(self, c, text)

    monkeypatch.setattr(session.Pages, "command", command)

    async def body(url):
        async with connect(url) as a, connect(url) as b:
            for c in (a, b):
                assert (await first(c))["type"] == "state"
            await b.send("boom")
            assert await closed(b) == (1011, "out of memory")
            assert (await first(a))["type"] == "state"  # sent again to everybody left
            await a.send(TOGGLE)  # the other client goes on
            assert (await first(a))["on"] is True
            async with connect(url) as c:  # and new clients get in
                assert (await first(c))["type"] == "state"

    assert serve(node, body) == []
    oom = [x for x in lines if "MemoryError" in x]
    assert len(oom) == 1 and oom[0].startswith("ws 127.0.0.1:"), lines
    assert oom[0].endswith(": MemoryError (heap 0)"), lines  # CPython has no gc.mem_alloc()
    assert any(x.endswith(": closing 1011 (out of memory)") for x in lines), lines


# The heap runs out after the relay moved and before its message was made: the sender is
# closed with 1011, and the others learn the change from the whole state sent again; the
# change is saved all the same.
def test_memory_error_after_a_relay_moved_sends_the_state_again_and_saves_it(monkeypatch, tmp_path):
    lines = []
    store = StateStore(str(tmp_path), lines.append, name="state.json")
    node = make_node(lines, store)
    once = [True]
    failing_relay_message(monkeypatch, lambda cause: once and once.pop())

    async def body(url):
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

    assert serve(node, body) == []
    assert len([x for x in lines if ": MemoryError (heap " in x]) == 1, lines


# The heap runs out in the timer task as a pulse ends (the relay is off, its message not
# made): the timers go on, the clients get the whole state again, and the next pulse ends as
# usual.
def test_memory_error_in_the_timer_task_sends_the_state_again(monkeypatch):
    lines = []
    node = make_node(lines)
    timer_calls = []

    def first_pulse_end(cause):
        if cause == "timer":
            timer_calls.append(cause)
        return timer_calls == ["timer"] and cause == "timer"

    failing_relay_message(monkeypatch, first_pulse_end)

    async def body(url):
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

    assert serve(node, body) == []
    assert [x for x in lines if "MemoryError" in x] == ["timers: MemoryError (heap 0)"], lines


# The heap runs out while a plain HTTP request is parsed: that connection is closed without
# an answer and logged in one line; the next request is answered as usual.
def test_memory_error_while_answering_http_is_one_log_line(monkeypatch):
    from firmware import http

    lines = []
    node = make_node(lines)
    real = http.parse_head
    once = [True]

    def parse_head(*a):
        if once and once.pop():
            raise MemoryError("allocating 300 bytes")
        return real(*a)

    monkeypatch.setattr(http, "parse_head", parse_head)

    async def get(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 5)  # until the node closes
        w.close()
        return data

    async def body(url):
        port = int(url.split(":")[2].split("/")[0])
        assert await get(port) == b""
        assert (await get(port)).startswith(b"HTTP/1.1 200 ")

    assert serve(node, body) == []
    assert [x for x in lines if "MemoryError" in x] == ["http: MemoryError, connection closed (heap 0)"], lines
