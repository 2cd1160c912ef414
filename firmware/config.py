# Load and validate config.json. Every error names the field at fault; everything left out
# gets a safe default.
import json

# ESP32 GPIOs: 6-11 drive the SPI flash, 34-39 are input-only.
_FLASH_PINS = (6, 7, 8, 9, 10, 11)
_MAX_GPIO = 33
POWER_ON = ("off", "on", "restore")

# Limits and their defaults; each can be set under "limits" in config.json.
LIMITS = {
    "max_head": 2048,  # bytes in a request head
    "max_headers": 24,  # header fields in a request
    "max_message": 1024,  # bytes in one WebSocket message (after reassembly)
    "max_connections": 10,  # open TCP connections, HTTP and WebSocket together
    "max_clients": 8,  # open WebSocket clients
    "handshake_timeout_ms": 5000,  # to receive a whole request head
    "idle_timeout_ms": 120000,  # a WebSocket client that sends nothing for this long is closed
    "ping_interval_ms": 20000,  # server pings to every client
    "pong_timeout_ms": 10000,  # a client that does not answer a ping in time is dropped
    "client_queue": 8,  # messages waiting for one slow client before it is closed
    "write_timeout_ms": 5000,  # a write that stalls this long closes the client
    "save_delay_ms": 1000,  # relay state is written to flash at most this often
    "max_rate": 20,  # commands per second from one client (bursts up to this many)
}


class ConfigError(Exception):
    pass


def _err(field, msg):
    return ConfigError("%s: %s" % (field, msg))


def _int(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _err(field, "must be a whole number from %d to %d" % (lo, hi))
    return v


def _str(v, field, max_len=32, empty=False):
    if not isinstance(v, str) or (not empty and not v.strip()) or len(v) > max_len:
        raise _err(field, "must be a %sstring of at most %d characters" % ("" if empty else "non-empty ", max_len))
    return v


def _bool(v, field):
    if not isinstance(v, bool):
        raise _err(field, "must be true or false")
    return v


# An optional sub-object (wifi, http, auth): {} when left out, unknown fields refused.
def _section(raw, field, keys):
    d = raw.get(field, {})
    if not isinstance(d, dict):
        raise _err(field, "must be an object")
    for k in d:
        if k not in keys:
            raise _err(field + "." + k, "unknown field")
    return d


def _relay(i, r):
    f = "relays[%d]" % i
    if not isinstance(r, dict):
        raise _err(f, "must be an object")
    for k in r:
        if k not in ("name", "pin", "active_low", "power_on", "group", "pulse_ms"):
            raise _err(f + "." + k, "unknown field")
    name = _str(r.get("name"), f + ".name")
    if name.strip().lower() in ("on", "off") or name != name.strip():
        raise _err(f + ".name", "must not be 'on'/'off' or start/end with spaces")
    pin = _int(r.get("pin"), f + ".pin", 0, 39)
    if pin in _FLASH_PINS:
        raise _err(f + ".pin", "GPIO %d drives the flash chip" % pin)
    if pin > _MAX_GPIO:
        raise _err(f + ".pin", "GPIO %d is input-only" % pin)
    power_on = r.get("power_on", "off")
    if power_on not in POWER_ON:
        raise _err(f + ".power_on", "must be one of off, on, restore")
    group = r.get("group")
    if group is not None:
        _str(group, f + ".group")
    return {
        "name": name,
        "pin": pin,
        "active_low": _bool(r.get("active_low", False), f + ".active_low"),
        "power_on": power_on,
        "group": group,
        "pulse_ms": _int(r.get("pulse_ms", 0), f + ".pulse_ms", 0, 3600000),
    }


MAX_LINKS = 4
MAX_RULES = 8
DIRECTIONS = ("both", "to_remote", "from_remote")
ACTIONS = ("set_on", "set_off", "toggle", "pulse")


# Links to other nodes (firmware/links.py). Each rule is returned flat with its kind:
# {"kind": "mirror", "local", "remote", "direction"} or {"kind": "trigger", "local", "on",
# "remote", "action", "ms"}; local is the configured relay's own name.
def _links(links, relays):
    if not isinstance(links, list) or len(links) > MAX_LINKS:
        raise _err("links", "must be a list of at most %d links" % MAX_LINKS)
    if not links:
        return []  # and wsclient is not loaded: a node without links never needs it
    from .wsclient import parse_url

    names = {}
    for r in relays:
        names[r["name"].lower()] = r["name"]
    out = []
    for i, link in enumerate(links):
        f = "links[%d]" % i
        if not isinstance(link, dict):
            raise _err(f, "must be an object")
        for k in link:
            if k not in ("url", "token", "rules", "timeout_ms", "ping_ms"):
                raise _err(f + "." + k, "unknown field")
        url = _str(link.get("url"), f + ".url", 128)
        try:
            parse_url(url)
        except ValueError as e:
            raise _err(f + ".url", '%s (like "ws://node-b.local/ws")' % e)
        rules = link.get("rules")
        if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
            raise _err(f + ".rules", "must be a list of 1 to %d rules" % MAX_RULES)
        out.append(
            {
                "url": url,
                "token": _str(link.get("token", ""), f + ".token", 128, True),
                "timeout_ms": _int(link.get("timeout_ms", 5000), f + ".timeout_ms", 100, 60000),
                "ping_ms": _int(link.get("ping_ms", 15000), f + ".ping_ms", 100, 600000),
                "rules": [_rule("%s.rules[%d]" % (f, j), r, names) for j, r in enumerate(rules)],
            }
        )
    return out


def _rule(f, rule, names):
    if not isinstance(rule, dict) or len(rule) != 1 or list(rule)[0] not in ("mirror", "trigger"):
        raise _err(f, 'must be {"mirror": {...}} or {"trigger": {...}}')
    kind = list(rule)[0]
    r = rule[kind]
    f += "." + kind
    if not isinstance(r, dict):
        raise _err(f, "must be an object")
    keys = ("local", "remote", "direction") if kind == "mirror" else ("local", "on", "remote", "action", "ms")
    for k in r:
        if k not in keys:
            raise _err(f + "." + k, "unknown field")
    local = _str(r.get("local"), f + ".local").strip().lower()
    if local not in names:
        raise _err(f + ".local", "no relay named %s in relays" % json.dumps(r["local"]))
    out = {"kind": kind, "local": names[local], "remote": _str(r.get("remote"), f + ".remote").strip()}
    if kind == "mirror":
        out["direction"] = r.get("direction", "both")
        if out["direction"] not in DIRECTIONS:
            raise _err(f + ".direction", "must be one of " + ", ".join(DIRECTIONS))
        return out
    out["on"] = r.get("on", True)
    if not isinstance(out["on"], bool) and out["on"] != "change":
        raise _err(f + ".on", 'must be true, false or "change"')
    out["action"] = r.get("action")
    if out["action"] not in ACTIONS:
        raise _err(f + ".action", "must be one of " + ", ".join(ACTIONS))
    if out["action"] == "pulse":
        out["ms"] = _int(r.get("ms"), f + ".ms", 1, 3600000)
    elif "ms" in r:
        raise _err(f + ".ms", "only for the action pulse")
    return out


# An MQTT topic (or its first levels) that we publish under: no wildcards, no NUL (4.7).
def _topic(t, field):
    _str(t, field, 64)
    if "+" in t or "#" in t or "\x00" in t or t.endswith("/"):
        raise _err(field, "%s must not contain + # or NUL nor end with /" % json.dumps(t))
    return t


_MQTT_KEYS = ("host", "port", "user", "password", "client_id", "topic", "discovery_prefix", "keepalive_s", "tls", "ca")


# The broker (firmware/mqttnode.py): only host is needed; client_id and topic default to the
# node name. Relays whose names give the same topic level (mqtt.slug) are refused.
def _mqtt(m, name, relays):
    if not isinstance(m, dict):
        raise _err("mqtt", "must be an object")
    for k in m:
        if k not in _MQTT_KEYS:
            raise _err("mqtt." + k, "unknown field")
    from .mqtt import slug

    slugs = []
    for i, r in enumerate(relays):
        s = slug(r["name"])
        if s in slugs:
            raise _err("relays[%d].name" % i, "gives the MQTT topic level %s, as another relay does" % s)
        slugs.append(s)
    tls = _bool(m.get("tls", False), "mqtt.tls")
    out = {
        "host": _str(m.get("host"), "mqtt.host", 64),
        "port": _int(m.get("port", 8883 if tls else 1883), "mqtt.port", 1, 65535),
        "user": _str(m.get("user", ""), "mqtt.user", 64, True),
        "password": _str(m.get("password", ""), "mqtt.password", 64, True),
        "client_id": _str(m.get("client_id", name), "mqtt.client_id", 64),
        "topic": _topic(m.get("topic", "relaynode/" + name), "mqtt.topic"),
        "discovery_prefix": _topic(m.get("discovery_prefix", "homeassistant"), "mqtt.discovery_prefix"),
        "keepalive_s": _int(m.get("keepalive_s", 30), "mqtt.keepalive_s", 5, 3600),
        "tls": tls,
        "ca": m.get("ca"),
    }
    if out["password"] and not out["user"]:
        raise _err("mqtt.password", "needs a user")  # MQTT 3.1.1 sends no password alone
    if out["ca"] is not None:
        _str(out["ca"], "mqtt.ca", 64)
        if not tls:
            raise _err("mqtt.ca", "only with \"tls\": true")
    return out


# Validate a parsed config dict; returns a new dict with defaults filled in.
def validate(raw):
    if not isinstance(raw, dict):
        raise _err("config", "must be a JSON object")
    for k in raw:
        if k not in ("name", "wifi", "relays", "http", "limits", "echo", "auth", "links", "mqtt"):
            raise _err(k, "unknown field")
    cfg = {}
    cfg["name"] = _str(raw.get("name", "relaynode"), "name")
    wifi = _section(raw, "wifi", ("ssid", "password"))
    cfg["wifi"] = {
        "ssid": _str(wifi.get("ssid", ""), "wifi.ssid", 32, True),
        "password": _str(wifi.get("password", ""), "wifi.password", 64, True),
    }
    relays = raw.get("relays")
    if not isinstance(relays, list) or not 1 <= len(relays) <= 16:
        raise _err("relays", "must be a list of 1 to 16 relays")
    cfg["relays"] = [_relay(i, r) for i, r in enumerate(relays)]
    names = [r["name"].lower() for r in cfg["relays"]]
    pins = [r["pin"] for r in cfg["relays"]]
    for i in range(len(names)):
        if names[i] in names[:i]:
            raise _err("relays[%d].name" % i, "duplicate name %s" % cfg["relays"][i]["name"])
        if pins[i] in pins[:i]:
            raise _err("relays[%d].pin" % i, "GPIO %d is used twice" % pins[i])
    http = _section(raw, "http", ("port",))
    cfg["http"] = {"port": _int(http.get("port", 80), "http.port", 1, 65535)}
    limits = raw.get("limits", {})
    if not isinstance(limits, dict):
        raise _err("limits", "must be an object")
    cfg["limits"] = {}
    for k in limits:
        if k not in LIMITS:
            raise _err("limits." + k, "unknown limit")
    for k, default in LIMITS.items():
        cfg["limits"][k] = _int(limits.get(k, default), "limits." + k, 1, 1 << 24)
    cfg["echo"] = _bool(raw.get("echo", False), "echo")
    auth = _section(raw, "auth", ("token", "origins"))
    origins = auth.get("origins", [])
    if not isinstance(origins, list):
        raise _err("auth.origins", "must be a list of origins such as \"http://192.168.1.5:8080\"")
    for i, o in enumerate(origins):
        if not isinstance(o, str) or "://" not in o:
            raise _err("auth.origins[%d]" % i, "must be an origin such as \"http://192.168.1.5:8080\"")
    cfg["auth"] = {"token": _str(auth.get("token", ""), "auth.token", 128, True), "origins": origins}
    cfg["links"] = _links(raw.get("links", []), cfg["relays"])
    if "mqtt" in raw:
        cfg["mqtt"] = _mqtt(raw["mqtt"], cfg["name"], cfg["relays"])
    return cfg


# Read and validate a config file; ConfigError names the problem. The JSON is parsed from the
# file as it is read: at boot, when every module's code is in the heap, the file's text in one
# block is what a small heap lacks first.
def load(path):
    try:
        f = open(path)
    except OSError:
        raise ConfigError("%s: cannot be read" % path)
    try:
        raw = json.load(f)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % path)
    except OSError:
        raise ConfigError("%s: cannot be read" % path)
    finally:
        f.close()
    return validate(raw)
