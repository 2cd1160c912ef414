# The checks of the config sections only some nodes have (links, mqtt, clock, schedules,
# inputs), for config.validate: loaded only when a config has one of them, so that checking a
# config without them (at boot, or PUT /api/config) takes less heap.
import json

from .config import ConfigError, FLASH_PINS, MAX_GPIO, NO_GPIO, err, fields, whole, string, boolean

MAX_LINKS = 4
MAX_RULES = 8
DIRECTIONS = ("both", "to_remote", "from_remote")
ACTIONS = ("set_on", "set_off", "toggle", "pulse")


# Links to other nodes (firmware/links.py). Each rule is returned flat with its kind:
# {"kind": "mirror", "local", "remote", "direction"} or {"kind": "trigger", "local", "on",
# "remote", "action", "ms"}; local is the configured relay's own name.
def links(links, relays):
    if not isinstance(links, list) or len(links) > MAX_LINKS:
        raise err("links", "must be a list of at most %d links" % MAX_LINKS)
    if not links:
        return []  # and wsclient is not loaded: a node without links never needs it
    from .wsclient import parse_url

    names = _names(relays)
    out = []
    for i, link in enumerate(links):
        f = "links[%d]" % i
        fields(link, f, ("url", "token", "rules", "timeout_ms", "ping_ms"))
        url = string(link.get("url"), f + ".url", 128)
        try:
            parse_url(url)
        except ValueError as e:
            raise err(f + ".url", '%s (like "ws://node-b.local/ws")' % e)
        rules = link.get("rules")
        if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
            raise err(f + ".rules", "must be a list of 1 to %d rules" % MAX_RULES)
        out.append(
            {
                "url": url,
                "token": string(link.get("token", ""), f + ".token", 128, True),
                "timeout_ms": whole(link.get("timeout_ms", 5000), f + ".timeout_ms", 100, 60000),
                "ping_ms": whole(link.get("ping_ms", 15000), f + ".ping_ms", 100, 600000),
                "rules": [_rule("%s.rules[%d]" % (f, j), r, names) for j, r in enumerate(rules)],
            }
        )
    return out


def _rule(f, rule, names):
    if not isinstance(rule, dict) or len(rule) != 1 or list(rule)[0] not in ("mirror", "trigger"):
        raise err(f, 'must be {"mirror": {...}} or {"trigger": {...}}')
    kind = list(rule)[0]
    r = rule[kind]
    f += "." + kind
    keys = ("local", "remote", "direction") if kind == "mirror" else ("local", "on", "remote", "action", "ms")
    fields(r, f, keys)
    local = string(r.get("local"), f + ".local").strip().lower()
    if local not in names:
        raise err(f + ".local", "no relay named %s in relays" % json.dumps(r["local"]))
    out = {"kind": kind, "local": names[local], "remote": string(r.get("remote"), f + ".remote").strip()}
    if kind == "mirror":
        out["direction"] = r.get("direction", "both")
        if out["direction"] not in DIRECTIONS:
            raise err(f + ".direction", "must be one of " + ", ".join(DIRECTIONS))
        return out
    out["on"] = r.get("on", True)
    if not isinstance(out["on"], bool) and out["on"] != "change":
        raise err(f + ".on", 'must be true, false or "change"')
    out["action"] = r.get("action")
    if out["action"] not in ACTIONS:
        raise err(f + ".action", "must be one of " + ", ".join(ACTIONS))
    if out["action"] == "pulse":
        out["ms"] = whole(r.get("ms"), f + ".ms", 1, 3600000)
    elif "ms" in r:
        raise err(f + ".ms", "only for the action pulse")
    return out


# An MQTT topic (or its first levels) that we publish under: no wildcards, no NUL (4.7).
def _topic(t, field):
    string(t, field, 64)
    if "+" in t or "#" in t or "\x00" in t or t.endswith("/"):
        raise err(field, "%s must not contain + # or NUL nor end with /" % json.dumps(t))
    return t


_MQTT_KEYS = ("host", "port", "user", "password", "client_id", "topic", "discovery_prefix", "keepalive_s", "tls", "ca")


# The broker (firmware/mqttnode.py): only host is needed; client_id and topic default to the
# node name. Relays whose names give the same topic level (mqtt.slug) are refused.
def mqtt(m, name, relays):
    fields(m, "mqtt", _MQTT_KEYS)
    from .mqtt import slug

    slugs = []
    for i, r in enumerate(relays):
        s = slug(r["name"])
        if s in slugs:
            raise err("relays[%d].name" % i, "gives the MQTT topic level %s, as another relay does" % s)
        slugs.append(s)
    tls = boolean(m.get("tls", False), "mqtt.tls")
    out = {
        "host": string(m.get("host"), "mqtt.host", 64),
        "port": whole(m.get("port", 8883 if tls else 1883), "mqtt.port", 1, 65535),
        "user": string(m.get("user", ""), "mqtt.user", 64, True),
        "password": string(m.get("password", ""), "mqtt.password", 64, True),
        "client_id": string(m.get("client_id", name), "mqtt.client_id", 64),
        "topic": _topic(m.get("topic", "relaynode/" + name), "mqtt.topic"),
        "discovery_prefix": _topic(m.get("discovery_prefix", "homeassistant"), "mqtt.discovery_prefix"),
        "keepalive_s": whole(m.get("keepalive_s", 30), "mqtt.keepalive_s", 5, 3600),
        "tls": tls,
        "ca": m.get("ca"),
    }
    if out["password"] and not out["user"]:
        raise err("mqtt.password", "needs a user")  # MQTT 3.1.1 sends no password alone
    if out["ca"] is not None:
        string(out["ca"], "mqtt.ca", 64)
        if not tls:
            raise err("mqtt.ca", "only with \"tls\": true")
    return out


def _names(relays):
    names = {}
    for r in relays:
        names[r["name"].lower()] = r["name"]
    return names


def _num(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise err(field, "must be a number from %d to %d" % (lo, hi))
    return v


# {"tz": POSIX TZ string, "ntp": server ("" for none), "lat", "lon"}: lat/lon only for
# sunrise and sunset, both or neither.
def clock(c):
    fields(c, "clock", ("tz", "ntp", "lat", "lon"))
    from .clock import parse_tz

    tz = string(c.get("tz", "UTC0"), "clock.tz", 64)
    try:
        parse_tz(tz)
    except ValueError as e:
        raise err("clock.tz", str(e))
    if ("lat" in c) != ("lon" in c):
        raise err("clock.lat" if "lat" not in c else "clock.lon", "lat and lon go together")
    out = {"tz": tz, "ntp": string(c.get("ntp", "pool.ntp.org"), "clock.ntp", 64, True), "lat": None, "lon": None}
    if "lat" in c:
        out["lat"] = _num(c["lat"], "clock.lat", -90, 90)
        out["lon"] = _num(c["lon"], "clock.lon", -180, 180)
    return out


# A list of schedules (firmware/schedspec.py); kept as its compact tuples, ids 1, 2, ...
def schedules(specs, relays, clock):
    from .schedspec import parse
    from .schedules import MAX_SCHEDULES

    if not isinstance(specs, list) or len(specs) > MAX_SCHEDULES:
        raise err("schedules", "must be a list of at most %d schedules" % MAX_SCHEDULES)
    if clock is None:
        raise err("schedules", "need a clock section (at least its tz)")
    names = _names(relays)
    sun = clock["lat"] is not None
    try:
        return [parse(s, i + 1, names, sun, "schedules[%d]" % i) for i, s in enumerate(specs)]
    except ValueError as e:
        raise ConfigError(str(e))


MAX_INPUTS = 8
INPUT_MODES = ("toggle", "momentary", "follow", "pulse")


# Buttons and switches (firmware/inputs.py). Flash pins and missing pads are refused; GPIO
# 34-39 are input-only and have no internal pull resistors.
def inputs(specs, relays):
    if not isinstance(specs, list) or len(specs) > MAX_INPUTS:
        raise err("inputs", "must be a list of at most %d inputs" % MAX_INPUTS)
    names = _names(relays)
    used = [r["pin"] for r in relays]
    out = []
    for i, s in enumerate(specs):
        f = "inputs[%d]" % i
        fields(s, f, ("pin", "relay", "mode", "pull", "active_low", "debounce_ms", "long_ms", "long_action", "ms"))
        pin = whole(s.get("pin"), f + ".pin", 0, 39)
        if pin in FLASH_PINS:
            raise err(f + ".pin", "GPIO %d drives the flash chip" % pin)
        if pin in NO_GPIO:
            raise err(f + ".pin", "the ESP32 has no GPIO %d" % pin)
        if pin in used:
            raise err(f + ".pin", "GPIO %d is used twice" % pin)
        used.append(pin)
        relay = names.get(string(s.get("relay"), f + ".relay").strip().lower())
        if relay is None:
            raise err(f + ".relay", "no relay named %s in relays" % json.dumps(s["relay"]))
        mode = s.get("mode", "toggle")
        if mode not in INPUT_MODES:
            raise err(f + ".mode", "must be one of " + ", ".join(INPUT_MODES))
        pull = s.get("pull", "none" if pin > MAX_GPIO else "up")
        if pull not in ("up", "down", "none"):
            raise err(f + ".pull", "must be one of up, down, none")
        if pull != "none" and pin > MAX_GPIO:
            raise err(f + ".pull", 'GPIO 34-39 have no pull resistors: use "none" and one on the board')
        d = {
            "pin": pin,
            "relay": relay,
            "mode": mode,
            "pull": pull,
            "active_low": boolean(s.get("active_low", pull == "up"), f + ".active_low"),
            "debounce_ms": whole(s.get("debounce_ms", 40), f + ".debounce_ms", 0, 1000),
            "long_ms": whole(s.get("long_ms", 800), f + ".long_ms", 100, 60000),
        }
        if "long_action" in s:
            if mode not in ("toggle", "pulse"):
                raise err(f + ".long_action", "only for the modes toggle and pulse")
            if s["long_action"] not in ("on", "off", "toggle"):
                raise err(f + ".long_action", "must be one of on, off, toggle")
            d["long_action"] = s["long_action"]
        if mode == "pulse":
            d["ms"] = whole(s.get("ms"), f + ".ms", 1, 3600000)
        elif "ms" in s:
            raise err(f + ".ms", "only for the mode pulse")
        out.append(d)
    return out
