# Load and validate config.json. Every error names the field at fault; everything left out
# gets a safe default.
import json

# ESP32 GPIOs: 6-11 drive the SPI flash, 34-39 are input-only.
FLASH_PINS = (6, 7, 8, 9, 10, 11)
MAX_GPIO = 33
POWER_ON = ("off", "on", "restore", "schedule")
NO_GPIO = (20, 24, 28, 29, 30, 31)  # numbers the ESP32 has no pad for

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


def err(field, msg):
    return ConfigError("%s: %s" % (field, msg))


def whole(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise err(field, "must be a whole number from %d to %d" % (lo, hi))
    return v


def string(v, field, max_len=32, empty=False):
    if not isinstance(v, str) or (not empty and not v.strip()) or len(v) > max_len:
        raise err(field, "must be a %sstring of at most %d characters" % ("" if empty else "non-empty ", max_len))
    return v


def boolean(v, field):
    if not isinstance(v, bool):
        raise err(field, "must be true or false")
    return v


# d, an object at field holding only fields named in keys (else the error names the field).
def fields(d, field, keys):
    if not isinstance(d, dict):
        raise err(field, "must be an object")
    for k in d:
        if k not in keys:
            raise err(field + "." + k, "unknown field")
    return d


# An optional sub-object (wifi, http, auth): {} when left out, unknown fields refused.
def _section(raw, field, keys):
    return fields(raw.get(field, {}), field, keys)


def _relay(i, r):
    f = "relays[%d]" % i
    fields(r, f, ("name", "pin", "active_low", "power_on", "group", "pulse_ms"))
    name = string(r.get("name"), f + ".name")
    if name.strip().lower() in ("on", "off") or name != name.strip():
        raise err(f + ".name", "must not be 'on'/'off' or start/end with spaces")
    pin = whole(r.get("pin"), f + ".pin", 0, 39)
    if pin in FLASH_PINS:
        raise err(f + ".pin", "GPIO %d drives the flash chip" % pin)
    if pin > MAX_GPIO:
        raise err(f + ".pin", "GPIO %d is input-only" % pin)
    power_on = r.get("power_on", "off")
    if power_on not in POWER_ON:
        raise err(f + ".power_on", "must be one of off, on, restore, schedule")
    group = r.get("group")
    if group is not None:
        string(group, f + ".group")
    return {
        "name": name,
        "pin": pin,
        "active_low": boolean(r.get("active_low", False), f + ".active_low"),
        "power_on": power_on,
        "group": group,
        "pulse_ms": whole(r.get("pulse_ms", 0), f + ".pulse_ms", 0, 3600000),
    }


_SECTIONS = (
    "name", "wifi", "relays", "http", "limits", "echo", "auth", "links", "clock", "schedules", "inputs", "mqtt"
)


# Validate a parsed config dict; returns a new dict with defaults filled in.
def validate(raw):
    if not isinstance(raw, dict):
        raise err("config", "must be a JSON object")
    for k in raw:
        if k not in _SECTIONS:
            raise err(k, "unknown field")
    cfg = {}
    cfg["name"] = string(raw.get("name", "relaynode"), "name")
    wifi = _section(raw, "wifi", ("ssid", "password", "ap_password", "ap_after_s"))
    ap_password = wifi.get("ap_password", "")
    if not isinstance(ap_password, str) or (
        ap_password and not (8 <= len(ap_password) <= 63 and all(" " <= c <= "~" for c in ap_password))
    ):
        raise err("wifi.ap_password", "must be 8 to 63 printable ASCII characters (WPA2), or empty (open)")
    cfg["wifi"] = {
        "ssid": string(wifi.get("ssid", ""), "wifi.ssid", 32, True),
        "password": string(wifi.get("password", ""), "wifi.password", 64, True),
        "ap_password": ap_password,
        "ap_after_s": whole(wifi.get("ap_after_s", 120), "wifi.ap_after_s", 1, 86400),
    }
    relays = raw.get("relays")
    if not isinstance(relays, list) or not 1 <= len(relays) <= 16:
        raise err("relays", "must be a list of 1 to 16 relays")
    cfg["relays"] = [_relay(i, r) for i, r in enumerate(relays)]
    names = [r["name"].lower() for r in cfg["relays"]]
    pins = [r["pin"] for r in cfg["relays"]]
    for i in range(len(names)):
        if names[i] in names[:i]:
            raise err("relays[%d].name" % i, "duplicate name %s" % cfg["relays"][i]["name"])
        if pins[i] in pins[:i]:
            raise err("relays[%d].pin" % i, "GPIO %d is used twice" % pins[i])
    http = _section(raw, "http", ("port",))
    cfg["http"] = {"port": whole(http.get("port", 80), "http.port", 1, 65535)}
    limits = raw.get("limits", {})
    if not isinstance(limits, dict):
        raise err("limits", "must be an object")
    cfg["limits"] = {}
    for k in limits:
        if k not in LIMITS:
            raise err("limits." + k, "unknown limit")
    for k, default in LIMITS.items():
        cfg["limits"][k] = whole(limits.get(k, default), "limits." + k, 1, 1 << 24)
    cfg["echo"] = boolean(raw.get("echo", False), "echo")
    auth = _section(raw, "auth", ("token", "origins"))
    origins = auth.get("origins", [])
    if not isinstance(origins, list):
        raise err("auth.origins", "must be a list of origins such as \"http://192.168.1.5:8080\"")
    for i, o in enumerate(origins):
        if not isinstance(o, str) or "://" not in o:
            raise err("auth.origins[%d]" % i, "must be an origin such as \"http://192.168.1.5:8080\"")
    cfg["auth"] = {"token": string(auth.get("token", ""), "auth.token", 128, True), "origins": origins}
    cfg["links"] = []
    # links, clock, schedules, inputs, mqtt: only present (and their checks, in configextra.py,
    # and their modules only loaded) when configured
    if raw.get("links", []) != []:
        cfg["links"] = _more().links(raw["links"], cfg["relays"])
    if "clock" in raw:
        cfg["clock"] = _more().clock(raw["clock"])
    if "schedules" in raw:
        cfg["schedules"] = _more().schedules(raw["schedules"], cfg["relays"], cfg.get("clock"))
        cfg["clock"]["schedules"] = cfg["schedules"]  # the clock's integration runs them
    for i, r in enumerate(cfg["relays"]):
        if r["power_on"] == "schedule" and "schedules" not in cfg:
            raise err("relays[%d].power_on" % i, '"schedule" needs a schedules section')
    if "inputs" in raw:
        cfg["inputs"] = _more().inputs(raw["inputs"], cfg["relays"])
    if "mqtt" in raw:
        cfg["mqtt"] = _more().mqtt(raw["mqtt"], cfg["name"], cfg["relays"])
    return cfg


def _more():
    from . import configextra

    return configextra


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
