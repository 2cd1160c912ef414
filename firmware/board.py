# The ESP32 side: the only firmware module that imports machine and network. Safe pins at
# boot, Wi-Fi (station, access-point fallback, then firmware/wifi.py keeps it: tries again in
# the background, the captive portal), watchdog, and restart on a crash.
import json
import time

import machine
import network

WIFI_FILE = "wifi.json"  # credentials kept on the board only, never in git
CONFIG_FILE = "config.json"
STATE_DIR = "/state"
# The page: /rom/firmware/www/ when the firmware runs from a ROMFS partition (make flash
# ROMFS=1); /www/ when it is frozen into the board's MicroPython, as a /firmware folder on the
# flash would be imported instead of the frozen package ('' comes before .frozen on sys.path);
# else /firmware/www/ in the flash filesystem.
from . import __path__ as _home  # noqa: E402

if str(_home)[:7] == ".frozen":
    PAGE = "/www/index.html"
else:
    PAGE = ("/rom" if __file__[:4] == "/rom" else "") + "/firmware/www/index.html"
del _home
WDT_MS = 8000  # the server loop feeds the watchdog every 0.5 s; a hang resets the board
WDT_REPL_MS = 3600000  # after Ctrl-C: time at the REPL (or for make flash) before a reset
DNS_PORT = 53  # the captive portal's DNS, on the access point's address while it is up
TRIAL = ".trial"  # a new firmware on trial: boot.py counts its boots until the node serves
ROLLED_BACK = ".rolledback"  # boot.py's note that it put the previous version back


def make_pin(gpio, level):
    return machine.Pin(gpio, machine.Pin.OUT, value=level)


# A button's or switch's pin (firmware/buttons.py): an input with its pull resistor ("up",
# "down" or "none"), handler called from the interrupt on either edge.
def make_input(gpio, pull, handler):
    P = machine.Pin
    res = P.PULL_UP if pull == "up" else P.PULL_DOWN if pull == "down" else None  # None: no pull
    pin = P(gpio, P.IN, res)  # pyright: ignore[reportArgumentType]
    pin.irq(handler, P.IRQ_RISING | P.IRQ_FALLING)
    return pin


# Drive every relay pin named in the config to its off level, before the config is even
# validated: whatever else fails later, the relays stay off.
def safe_pins(path=CONFIG_FILE):
    try:
        with open(path) as f:
            relays = json.load(f).get("relays", [])
    except Exception as e:
        print("boot: no relay pins set:", e)
        return
    for r in relays:
        try:
            make_pin(r["pin"], 1 if r.get("active_low") else 0)
        except Exception as e:
            print("boot: pin", r, e)


# The network to join: wifi.json (or the temporary file of a write that a power cut cut short,
# see save_wifi), else the config's.
def _credentials(cfg):
    for path in (WIFI_FILE, WIFI_FILE + ".tmp"):
        try:
            with open(path) as f:
                w = json.load(f)
            return w.get("ssid", ""), w.get("password", "")
        except (OSError, ValueError, AttributeError):
            pass
    return cfg["wifi"]["ssid"], cfg["wifi"]["password"]


# The station statuses that end a try to join at once (a final answer, not "still looking").
def _failed():
    return tuple(getattr(network, s) for s in ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND") if hasattr(network, s))


# Join the configured network; the IP address, or None after `tries` seconds or as soon as the
# ESP32 gives up (a wrong password is final; a network out of range keeps it trying).
def connect_station(ssid, password, name, tries=20):
    if not ssid:
        return None
    try:
        network.hostname(name)
    except Exception:
        pass
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    sta.connect(ssid, password)
    failed = _failed()
    for _ in range(tries):
        if sta.isconnected():
            return sta.ifconfig()[0]
        if sta.status() in failed:
            print("wifi: cannot join %s (status %d)" % (ssid, sta.status()))
            break
        time.sleep(1)
    sta.active(False)
    return None


# Names of the networks in range, strongest first: suggestions for the setup form. Scanned
# before the access point starts; the station is switched off again, as its attempts to
# reconnect would take the radio away from the access point.
def scan_networks(limit=10):
    names = []
    sta = network.WLAN(network.STA_IF)
    try:
        sta.active(True)
        found = sta.scan()
    except Exception as e:
        print("wifi: scan failed:", e)
        found = []
    sta.active(False)
    found.sort(key=lambda n: -n[3])  # (ssid, bssid, channel, RSSI, security, hidden)
    for n in found:
        try:
            name = n[0].decode()
        except UnicodeError:
            continue
        if name and name not in names and len(names) < limit:
            names.append(name)
    return names


# Wi-Fi setup from a phone (POST /setup, firmware/setup.py): keep the network in wifi.json,
# written aside and renamed as the relay state is, then reset a second later, once the answer
# is out, to join it.
def save_wifi(node, ssid, password):
    from .relays import StateStore

    StateStore("", print, WIFI_FILE).save({"ssid": ssid, "password": password})
    print("setup: saved %s for %s; restarting" % (WIFI_FILE, ssid))
    restart_later(node)


# Reset a second from now, once the answer in hand is out (also after PUT /api/config).
def restart_later(node):
    import asyncio

    asyncio.create_task(_restart(node))


async def _restart(node):
    import asyncio

    await asyncio.sleep(1)
    node.save()  # a relay switched in the last second
    machine.reset()


# The Wi-Fi keeper (firmware/wifi.py) for the network boot tried: setup mode on the page while
# the access point is up, off while the node is on the network.
def _keeper(node, cfg, ssid, password, networks):
    from .wifi import Keeper
    from .compat import ticks_ms

    def save(ssid, password):
        save_wifi(node, ssid, password)

    def changed(ap_up):
        node.offer_setup(save if ap_up else None, networks)

    sta = network.WLAN(network.STA_IF)
    keeper = Keeper(sta, network.WLAN(network.AP_IF), cfg, ssid, password, ticks_ms(), _failed())
    keeper.changed = changed
    if keeper.ap:
        changed(True)
    return keeper


# The node's server and the Wi-Fi keeper, side by side on one event loop.
async def _serve(node, port, keeper):
    import asyncio
    from .wifi import keep

    asyncio.create_task(keep(keeper, DNS_PORT))
    await node.start("0.0.0.0", port)
    _serving(node)
    while True:
        await asyncio.sleep(3600)


# The node serves: a new firmware on trial has made it, and boot.py stops counting.
def _serving(node):
    import os

    try:
        os.remove(TRIAL)
    except OSError:
        return
    node.node.log("update: the new firmware serves; the files it replaced stay in /.previous")


# boot.py's note that an update was rolled back: on the console, and in the state message as
# "update": {"rolled_back": why}, until the next update is committed.
def _rollback_note(node):
    try:
        with open(ROLLED_BACK) as f:
            why = f.read()
    except OSError:
        return
    from .node import Listener

    class Note(Listener):
        key = "update"

        def status(self):
            return {"rolled_back": why}

    print("update: " + why)
    node.node.listen(Note())


def main():
    from . import app
    from .config import ConfigError

    try:
        cfg = app.load_config(CONFIG_FILE)  # and config's code is dropped again
    except ConfigError as e:
        print("config error:", e)
        print("relays stay off; fix config.json and reset the board")
        return
    del ConfigError
    networks = None  # a list once no network could be joined: the node offers Wi-Fi setup
    ssid, password = _credentials(cfg)
    ip = connect_station(ssid, password, cfg["name"])
    if ip is None:
        from .wifi import start_ap

        networks = scan_networks()
        secret = cfg["wifi"]["ap_password"]
        ip = start_ap(network.WLAN(network.AP_IF), cfg["name"], secret)
        print("no Wi-Fi: started the access point %s (%s)" % (cfg["name"], "WPA2" if secret else "open"))
    port = cfg["http"]["port"]
    host = ip + ("" if port == 80 else ":%d" % port)
    print("relaynode: open http://%s/  (or http://%s.local/)" % (host, cfg["name"]))
    if networks is not None:
        print("relaynode: set up Wi-Fi at http://%s/setup" % host)
    try:
        import os

        os.mkdir(STATE_DIR)
    except OSError:
        pass
    wdt = machine.WDT(timeout=WDT_MS)
    node = app.build(cfg, make_pin, STATE_DIR, PAGE, env={"make_input": make_input})
    node.on_tick = wdt.feed
    node.offer_config(CONFIG_FILE, lambda: restart_later(node))
    node.node.url = "http://%s.local%s/" % (cfg["name"], "" if port == 80 else ":%d" % port)
    keeper = _keeper(node, cfg, ssid, password, networks or [])
    node.updates = ("", machine.reset)  # pyright: ignore[reportAttributeAccessIssue]  (see Server.updates)
    _rollback_note(node)
    app.forget()  # the node is built: app's code goes back to the heap too
    del app
    try:
        import asyncio

        asyncio.run(_serve(node, port, keeper))
    except KeyboardInterrupt:
        # Ctrl-C (a person at the REPL, or mpremote taking over to copy files): a running
        # watchdog cannot be stopped on the ESP32, so give the REPL an hour before it bites.
        machine.WDT(timeout=WDT_REPL_MS)
        print("relaynode: stopped; watchdog set to %d s, reset to start again" % (WDT_REPL_MS // 1000))
    except Exception as e:
        import sys

        sys.print_exception(e)  # pyright: ignore[reportAttributeAccessIssue]
        print("relaynode: crashed, restarting")
        time.sleep(1)
        machine.reset()
