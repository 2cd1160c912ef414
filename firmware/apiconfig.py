# GET and PUT /api/config (firmware/api.py answers them): the config file without its secrets,
# and a new one, checked as at boot and written atomically. Loaded on the first such request.
import json
import os
import sys

from . import forget
from .api import ApiError, body
from .relays import StateStore

# The fields GET /api/config leaves out, and that a PUT without them keeps from the file:
# "section.field", and the token of every link.
SECRETS = ("wifi.password", "wifi.ap_password", "auth.token", "mqtt.password")
MAX_BODY = 16384  # bytes: config.MAX_CONFIG, which config.read holds the file to as well


# The config file as it is, without its secrets (SECRETS, the links' tokens).
def public(path):
    with open(path) as f:
        raw = json.load(f)
    for _, holder, field in _secrets(raw):
        del holder[field]
    return raw


# (key, the object holding it, its field) for each secret of a checked raw config; key is the
# section's name, or for a link's token its url.
def _secrets(raw):
    found = []
    for s in SECRETS:
        part, field = s.split(".")
        sec = raw.get(part)
        if isinstance(sec, dict) and field in sec:
            found.append((part, sec, field))
    for link in raw.get("links") or ():
        if "token" in link:
            found.append((link["url"], link, "token"))
    return found


# PUT /api/config: read the body into a file beside the config, check it as the boot does, fill
# in the secrets it leaves out from the config in use (and check it again: a kept password may
# now lack its user), and write it over the config atomically (StateStore: a temporary file,
# then a rename). A bad one raises ApiError 400 naming the field, and the config file is left
# as it was. The checks' code is loaded only once the whole body is in: a slow upload does not
# hold it in the heap.
async def put(srv, req, rest, reader):
    path = srv.config_path
    new = path + ".new"
    loaded = "firmware.config" in sys.modules
    try:
        with open(new, "wb") as f:
            await body(srv, req, rest, reader, MAX_BODY, f.write)
        from . import config  # boot-only code: here for this one request, dropped after it

        try:
            raw = config.read(new, "config")
            config.check(raw, "config")
            keep_secrets(raw, config.read(path))
            config.check(raw, "config")
        except config.ConfigError as e:
            msg = str(e)
            raise ApiError(400, "bad_config", msg, field=msg.split(":", 1)[0])
    except MemoryError:
        raise ApiError(503, "no_memory", "not enough memory to check a config now", (("Retry-After", "5"),))
    finally:
        _remove(new)
        if not loaded:
            forget("config", "configextra", "schedspec")
    slash = path.rfind("/")
    StateStore(path[:slash] if slash >= 0 else "", srv.node.log, path[slash + 1 :]).save(raw)


# Each secret of the config in use (old) that raw leaves out is put back into raw, where raw
# has the section (or the link with that url) still.
def keep_secrets(raw, old):
    if not isinstance(old, dict):
        return
    for key, holder, field in _secrets(old):
        if key in ("wifi", "auth", "mqtt"):
            places = [raw[key]] if key in raw else []
        else:
            places = [link for link in raw.get("links") or () if link["url"] == key]
        for d in places:
            if field not in d:
                d[field] = holder[field]


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
