# Put the node together: relays at their safe level first, then saved state, then the
# server. The board's main.py and the host simulator both call run().
import asyncio

from . import config as config_mod
from .relays import RelayBank, StateStore
from .server import Node, forever


# Build a Node from a validated config. make_pin(gpio, level) gives an output pin already at
# level; state_dir is where relay state lives in flash.
def build(cfg, make_pin, state_dir, page, log=print, echo=None, max_message=None):
    bank = RelayBank(cfg["relays"], make_pin)  # every relay at its safe (off) level
    store = StateStore(state_dir, log)
    changes = bank.power_on(store.load())
    if max_message:
        cfg["limits"]["max_message"] = max_message
    node = Node(cfg, bank, store, page, log, echo)
    node.publish(changes)
    return node


async def serve(node, host, port):
    await node.start(host, port)
    await forever()


# Load config_path and serve forever on host:port (port None: the config's http.port).
def run(config_path, make_pin, state_dir, page, host="0.0.0.0", port=None, log=print, echo=None, max_message=None):
    cfg = config_mod.load(config_path)
    node = build(cfg, make_pin, state_dir, page, log, echo, max_message)
    asyncio.run(serve(node, host, port or cfg["http"]["port"]))
