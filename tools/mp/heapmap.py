# Where the node's heap goes, step by step, under MicroPython: each firmware module as it is
# imported (its globals, functions and classes: the bytecode of a frozen module stays in ROM),
# then the node built from a config, then the server listening, then running (its timers
# ticked: a clock set, schedules looked at; a page's state message made). The input pins a
# config names are made before the first step, as the board's pins are ROM objects that cost
# no heap; the clock's NTP answers at once. Prints one JSON line per step,
# {"step": NAME, "bytes": heap in use after a full collection}, after the last one
# {"modules": the names in sys.modules}, then MicroPython's qstr_info line. Run by
# tools/heapmap.py on a build with the firmware frozen in, which passes the config path, the
# page and a state folder in $RELAYNODE_HEAPMAP.
import gc
import json
import os

MODULES = (
    "asyncio",
    "firmware",
    "firmware.compat",
    "firmware.text",
    "firmware.http",
    "firmware.websocket",
    "firmware.relays",
    "firmware.commands",
    "firmware.node",
    "firmware.auth",
    "firmware.hub",
    "firmware.session",
    "firmware.routes",
    "firmware.server",
)


NTP_UTC = 1774778400  # what the clock's NTP query answers: 2026-03-29T10:00:00Z


class Pin:
    def __init__(self, gpio, level):
        self.level = level

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, handler, trigger):
        self.handler = handler


def step(name):
    gc.collect()
    print(json.dumps({"step": name, "bytes": gc.mem_alloc()}))  # pyright: ignore[reportAttributeAccessIssue]


def main():
    opts = json.loads(os.getenv("RELAYNODE_HEAPMAP"))
    with open(opts["config"]) as f:
        gpios = [i["pin"] for i in json.load(f).get("inputs") or ()]
    pins = {}
    for g in gpios:
        pins[g] = Pin(g, 1)
        pins[g].handler = None

    def make_input(gpio, pull, handler):
        pins[gpio].irq(handler, 3)
        return pins[gpio]

    env = {"make_input": make_input, "ntp": lambda: NTP_UTC}
    step("start")
    for m in MODULES:
        __import__(m)
        step(m)
    from firmware import app

    step("firmware.app (boot only)")
    try:
        os.mkdir(opts["state_dir"])
    except OSError:
        pass
    node, port = app.load(opts["config"], Pin, opts["state_dir"], opts["page"], 0, log=lambda s: None, env=env)
    step("node and server built (config parsed)")
    app.forget()
    step("boot-only modules forgotten")
    return node


def serve(node):
    import asyncio

    async def up():
        await node.start("127.0.0.1", 0)
        await asyncio.sleep_ms(50)  # pyright: ignore[reportAttributeAccessIssue]
        step("listening, integrations started")
        await asyncio.sleep_ms(700)  # pyright: ignore[reportAttributeAccessIssue]
        node.node.state_message()
        step("running (timers ticked, a page's state made)")
        import sys

        print(json.dumps({"modules": sorted(sys.modules)}))
        import micropython  # pyright: ignore[reportMissingImports]

        micropython.qstr_info()  # the qstrs made at run time: in the heap, not in ROM
        await node.stop()

    asyncio.run(up())


if __name__ == "__main__":
    serve(main())
