# The application protocol: parse what a client sends, validate it, apply it to the relay
# bank, and build the JSON messages the node sends. Nothing here moves a relay unless the
# whole command is valid. Commands are parsed by the strict text.loads on both runtimes, and
# every message built here encodes to valid UTF-8.
import json

from .relays import CLIENT
from .text import loads, utf8

PROTOCOL = 1
MAX_SAY = 200  # characters in a broadcast message
MAX_PULSE_MS = 3600000


class CommandError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _dumps(obj):
    return utf8(json.dumps(obj, separators=(",", ":")))


# Parse one text message into a dict with a valid "type" and its fields checked; raises
# CommandError. Plain text "<Name> On" / "<name> off" (any case) means set. known: more
# types the caller answers (node.handlers), passed as they are.
def parse(text, known=()):
    s = text if text.startswith("{") else text.strip()  # loads takes trailing blanks itself
    if not s.startswith("{"):
        i = s.rfind(" ")
        word = s[i + 1 :].lower() if i > 0 else ""
        if word in ("on", "off"):
            return {"type": "set", "relay": s[:i].strip(), "on": word == "on"}
        raise CommandError("bad_command", "expected JSON or '<relay> on|off'")
    cmd = load(s)
    kind = cmd.get("type")
    if kind in ("set", "toggle", "pulse"):
        ref = cmd.get("relay")
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise CommandError("bad_field", "'relay' must be an id or a name")
        if kind == "set" and not isinstance(cmd.get("on"), bool):
            raise CommandError("bad_field", "'on' must be true or false")
        if kind == "pulse":
            ms = cmd.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_PULSE_MS:
                raise CommandError("bad_field", "'ms' must be 1..%d" % MAX_PULSE_MS)
        # sent by a link (firmware/links.py): the node where the change began, and how many
        # links it has crossed; loops stop on both
        origin = cmd.get("origin")
        if origin is not None and (not isinstance(origin, str) or not 0 < len(origin) <= 32):
            raise CommandError("bad_field", "'origin' must be a node name")
        hops = cmd.get("hops", 1)
        if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 255:
            raise CommandError("bad_field", "'hops' must be 0..255")
    elif kind == "say":
        t = cmd.get("text")
        if not isinstance(t, str) or not t.strip():
            raise CommandError("bad_field", "'text' must be a non-empty string")
        if len(t) > MAX_SAY:
            raise CommandError("too_long", "'text' is longer than %d characters" % MAX_SAY)
    elif kind not in ("get", "auth") and not (isinstance(kind, str) and kind in known):
        raise CommandError("unknown_type", "unknown message type")
    return cmd


# The JSON object in s (str or bytes), parsed strictly; CommandError for anything else.
def load(s):
    try:
        cmd = loads(s, 8)
    except UnicodeError:  # valid JSON, but a \u escape of a lone surrogate: no character
        raise CommandError("bad_field", "a string holds a lone surrogate")
    except ValueError:  # nesting is bounded: no recursion. A MemoryError goes on to the caller.
        raise CommandError("bad_json", "message is not valid JSON")
    if not isinstance(cmd, dict):
        raise CommandError("bad_json", "message must be a JSON object")
    return cmd


# Apply a parsed set/toggle/pulse to the bank; returns the changes [(relay, cause)].
def apply(bank, cmd, cause=CLIENT):
    relay = bank.find(cmd["relay"])
    if relay is None:
        raise CommandError("unknown_relay", "no relay %s" % _dumps(cmd["relay"]))
    kind = cmd["type"]
    if kind == "set":
        return bank.set(relay, cmd["on"], cause)
    if kind == "toggle":
        return bank.toggle(relay, cause)
    return bank.pulse(relay, cmd["ms"], cause)


def relay_dict(r):
    return {"id": r.id, "name": r.name, "on": r.on}


# The full state, sent on connect and on "get"; extra adds fields (e.g. links).
def state_message(node, version, bank, extra):
    msg = {"type": "state", "protocol": PROTOCOL, "node": node, "version": version}
    msg["relays"] = [relay_dict(r) for r in bank.relays]
    if extra:
        msg.update(extra)
    return _dumps(msg)


# A relay change; origin (the node where a linked change began) and hops (links crossed)
# are only there for changes that came over a link.
def relay_message(relay, cause, origin, hops):
    return utf8('{"type":"relay","id":%d,"name":%s,"on":%s,"cause":"%s"%s}' % (
        relay.id,
        json.dumps(relay.name),  # a string: no separators to mind
        "true" if relay.on else "false",
        cause,
        ',"origin":%s,"hops":%d' % (json.dumps(origin), hops) if origin else "",
    ))


def say_message(text):
    return _dumps({"type": "say", "text": text})


def error_message(code, message):
    return _dumps({"type": "error", "code": code, "message": message})


# A command for another node, sent by a link: (kind, remote relay name, value) as
# linkrules makes them, with the change's origin and hops.
def link_command(kind, name, value, origin, hops):
    if kind == "set":
        extra = ',"on":' + ("true" if value else "false")
    elif kind == "pulse":
        extra = ',"ms":%d' % value
    else:
        extra = ""
    msg = '{"type":"%s","relay":%s%s,"origin":%s,"hops":%d}'
    return utf8(msg % (kind, json.dumps(name), extra, json.dumps(origin), hops))
