# Load and validate config.json. Every error names the field at fault; everything left out
# gets a safe default.
import json

# ESP32 GPIOs: 6-11 drive the SPI flash, 34-39 are input-only.
_FLASH_PINS = (6, 7, 8, 9, 10, 11)
_MAX_GPIO = 33
POWER_ON = ("off", "on", "restore", "schedule")
_NO_GPIO = (20, 24, 28, 29, 30, 31)  # numbers the ESP32 has no pad for

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
        raise _err(f + ".power_on", "must be one of off, on, restore, schedule")
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


_SECTIONS = (
    "name", "wifi", "relays", "http", "limits", "echo", "auth", "links", "clock", "schedules", "inputs", "mqtt"
)


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
        if k not in _SECTIONS:
            raise _err(k, "unknown field")
    cfg = {}
    cfg["name"] = _str(raw.get("name", "relaynode"), "name")
    wifi = _section(raw, "wifi", ("ssid", "password", "ap_password", "ap_after_s"))
    ap_password = wifi.get("ap_password", "")
    if not isinstance(ap_password, str) or (
        ap_password and not (8 <= len(ap_password) <= 63 and all(" " <= c <= "~" for c in ap_password))
    ):
        raise _err("wifi.ap_password", "must be 8 to 63 printable ASCII characters (WPA2), or empty (open)")
    cfg["wifi"] = {
        "ssid": _str(wifi.get("ssid", ""), "wifi.ssid", 32, True),
        "password": _str(wifi.get("password", ""), "wifi.password", 64, True),
        "ap_password": ap_password,
        "ap_after_s": _int(wifi.get("ap_after_s", 120), "wifi.ap_after_s", 1, 86400),
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
    # clock, schedules and inputs: only present (and their modules only loaded) when configured
    if "clock" in raw:
        cfg["clock"] = _clock(raw["clock"])
    if "schedules" in raw:
        cfg["schedules"] = _schedules(raw["schedules"], cfg["relays"], cfg.get("clock"))
    for i, r in enumerate(cfg["relays"]):
        if r["power_on"] == "schedule" and "schedules" not in cfg:
            raise _err("relays[%d].power_on" % i, '"schedule" needs a schedules section')
    if "inputs" in raw:
        cfg["inputs"] = _inputs(raw["inputs"], cfg["relays"])
    if "mqtt" in raw:
        cfg["mqtt"] = _mqtt(raw["mqtt"], cfg["name"], cfg["relays"])
    return cfg


def _names(relays):
    names = {}
    for r in relays:
        names[r["name"].lower()] = r["name"]
    return names


def _num(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise _err(field, "must be a number from %d to %d" % (lo, hi))
    return v


# {"tz": POSIX TZ string, "ntp": server ("" for none), "lat", "lon"}: lat/lon only for
# sunrise and sunset, both or neither.
def _clock(c):
    if not isinstance(c, dict):
        raise _err("clock", "must be an object")
    for k in c:
        if k not in ("tz", "ntp", "lat", "lon"):
            raise _err("clock." + k, "unknown field")
    from .clock import parse_tz

    tz = _str(c.get("tz", "UTC0"), "clock.tz", 64)
    try:
        parse_tz(tz)
    except ValueError as e:
        raise _err("clock.tz", str(e))
    if ("lat" in c) != ("lon" in c):
        raise _err("clock.lat" if "lat" not in c else "clock.lon", "lat and lon go together")
    out = {"tz": tz, "ntp": _str(c.get("ntp", "pool.ntp.org"), "clock.ntp", 64, True), "lat": None, "lon": None}
    if "lat" in c:
        out["lat"] = _num(c["lat"], "clock.lat", -90, 90)
        out["lon"] = _num(c["lon"], "clock.lon", -180, 180)
    return out


# A list of schedules (firmware/schedules.py); kept as its compact tuples, ids 1, 2, ...
def _schedules(specs, relays, clock):
    from .schedules import MAX_SCHEDULES, parse

    if not isinstance(specs, list) or len(specs) > MAX_SCHEDULES:
        raise _err("schedules", "must be a list of at most %d schedules" % MAX_SCHEDULES)
    if clock is None:
        raise _err("schedules", "need a clock section (at least its tz)")
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
def _inputs(specs, relays):
    if not isinstance(specs, list) or len(specs) > MAX_INPUTS:
        raise _err("inputs", "must be a list of at most %d inputs" % MAX_INPUTS)
    names = _names(relays)
    used = [r["pin"] for r in relays]
    out = []
    for i, s in enumerate(specs):
        f = "inputs[%d]" % i
        if not isinstance(s, dict):
            raise _err(f, "must be an object")
        for k in s:
            if k not in ("pin", "relay", "mode", "pull", "active_low", "debounce_ms", "long_ms", "long_action", "ms"):
                raise _err(f + "." + k, "unknown field")
        pin = _int(s.get("pin"), f + ".pin", 0, 39)
        if pin in _FLASH_PINS:
            raise _err(f + ".pin", "GPIO %d drives the flash chip" % pin)
        if pin in _NO_GPIO:
            raise _err(f + ".pin", "the ESP32 has no GPIO %d" % pin)
        if pin in used:
            raise _err(f + ".pin", "GPIO %d is used twice" % pin)
        used.append(pin)
        relay = names.get(_str(s.get("relay"), f + ".relay").strip().lower())
        if relay is None:
            raise _err(f + ".relay", "no relay named %s in relays" % json.dumps(s["relay"]))
        mode = s.get("mode", "toggle")
        if mode not in INPUT_MODES:
            raise _err(f + ".mode", "must be one of " + ", ".join(INPUT_MODES))
        pull = s.get("pull", "none" if pin > _MAX_GPIO else "up")
        if pull not in ("up", "down", "none"):
            raise _err(f + ".pull", "must be one of up, down, none")
        if pull != "none" and pin > _MAX_GPIO:
            raise _err(f + ".pull", 'GPIO 34-39 have no pull resistors: use "none" and one on the board')
        d = {
            "pin": pin,
            "relay": relay,
            "mode": mode,
            "pull": pull,
            "active_low": _bool(s.get("active_low", pull == "up"), f + ".active_low"),
            "debounce_ms": _int(s.get("debounce_ms", 40), f + ".debounce_ms", 0, 1000),
            "long_ms": _int(s.get("long_ms", 800), f + ".long_ms", 100, 60000),
        }
        if "long_action" in s:
            if mode not in ("toggle", "pulse"):
                raise _err(f + ".long_action", "only for the modes toggle and pulse")
            if s["long_action"] not in ("on", "off", "toggle"):
                raise _err(f + ".long_action", "must be one of on, off, toggle")
            d["long_action"] = s["long_action"]
        if mode == "pulse":
            d["ms"] = _int(s.get("ms"), f + ".ms", 1, 3600000)
        elif "ms" in s:
            raise _err(f + ".ms", "only for the mode pulse")
        out.append(d)
    return out


MAX_CONFIG = 16384  # bytes in config.json: far more than every section filled needs


# Read and validate a config file; ConfigError names the problem.
def load(path):
    return check(read(path), path)


# The JSON value in the file at path, not checked yet; ConfigError names the file as name
# (path by default). It is parsed from the file as it is read: at boot, when every module's
# code is in the heap, the file's text in one block is what a small heap lacks first. Its size
# is bounded first; a file nested too deep for the parser (CPython: RecursionError) or the heap
# is a ConfigError too, not a traceback.
def read(path, name=None):
    name = name or path
    try:
        f = open(path)
    except OSError:
        raise ConfigError("%s: cannot be read" % name)
    try:
        f.seek(0, 2)
        size = f.tell()
        if size > MAX_CONFIG:
            raise ConfigError("%s: larger than %d bytes" % (name, MAX_CONFIG))
        f.seek(0)
        return json.load(f)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % name)
    except (RuntimeError, MemoryError):
        raise ConfigError("%s: nested too deep or too large to load" % name)
    except OSError:
        raise ConfigError("%s: cannot be read" % name)
    finally:
        f.close()


# validate(raw), with a value too deep to check or the heap running out a ConfigError too.
def check(raw, name):
    try:
        return validate(raw)
    except RuntimeError:
        raise ConfigError("%s: nested too deep or too large to load" % name)
    except MemoryError:
        raise ConfigError("%s: not enough memory to check it" % name)
