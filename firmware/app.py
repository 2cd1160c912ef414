# Put the node together: relays at their safe level first, then saved state, then the
# server. The board's main.py and the host simulator both call load(), then forget(), then
# server.run().
from . import config as config_mod
from .relays import RelayBank, StateStore
from .server import Node


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


# Load and check config_path, then build the node; returns (node, port) where port is the
# config's http.port unless given. Raises config.ConfigError with the field at fault.
def load(config_path, make_pin, state_dir, page, port=None, log=print, echo=None, max_message=None):
    cfg = config_mod.load(config_path)
    return build(cfg, make_pin, state_dir, page, log, echo, max_message), port or cfg["http"]["port"]


# Drop the modules only needed at boot (this one and config): their code is heap that the
# running node can use. Call it once load()/build() returned; nothing in app or config works
# afterwards. Their dicts are emptied too, so a stale pointer left on the stack (MicroPython's
# GC is conservative) cannot keep the functions alive.
def forget():
    import sys
    import firmware

    for name in ("config", "app"):
        mod = sys.modules.pop("firmware." + name, None)
        if name in firmware.__dict__:
            delattr(firmware, name)
        if mod is not None:
            mod.__dict__.clear()  # the last step for app: no global is looked up after it
