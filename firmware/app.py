# Put the node together: relays at their safe level first, then saved state, then the node
# and its server. The host simulator calls load(), the board load_config() then build(); both
# then forget() and server.run().
from . import forget as _forget
from .node import Node
from .compat import ticks_ms
from .relays import RelayBank, StateStore
from .server import Server


# Build a node and its server (returned) from a validated config. make_pin(gpio, level)
# gives an output pin already at level; state_dir is where relay state lives in flash; env:
# what else the board or host gives the integrations (see Node.env).
def build(cfg, make_pin, state_dir, page, log=print, echo=None, max_message=None, env=None):
    bank = RelayBank(cfg["relays"], make_pin, ticks_ms)  # every relay at its safe (off) level
    store = StateStore(state_dir, log, "state.json")
    changes = bank.power_on(store.load())
    if max_message:
        cfg["limits"]["max_message"] = max_message
    node = Node(cfg, bank, store, log)
    node.env = env or {}
    node.env["state_dir"] = state_dir
    srv = Server(node, cfg, page, echo)
    node.publish(changes)
    return srv


# Load and check the config file at path (config.ConfigError names the field at fault), then
# forget the config modules, loaded or not: their code is heap the node about to be built can
# use.
def load_config(path):
    from . import config

    try:
        return config.load(path)
    finally:
        del config
        _forget("config", "configextra", "schedspec")


# Load and check config_path, then build the node; returns (server, port) where port is the
# config's http.port unless given. Raises config.ConfigError with the field at fault.
def load(config_path, make_pin, state_dir, page, port=None, log=print, echo=None, max_message=None, env=None):
    cfg = load_config(config_path)
    srv = build(cfg, make_pin, state_dir, page, log, echo, max_message, env)
    srv.offer_config(config_path, None)
    return srv, port or cfg["http"]["port"]


# Forget the modules only needed at boot (this one and config's): their code is heap that the
# running node can use. Call it once load()/build() returned; nothing in app or config works
# afterwards (for app this is the last step: no global is looked up after it).
def forget():
    _forget("config", "configextra", "schedspec", "app")
