# A fake `network` for the pretend board (tools/pretend_board.py), MicroPython only. The
# networks in range and their passwords come from the FAKEBOARD environment variable (JSON, set
# by the pretend board: {"networks": {"home": "secret"}, "ip": "127.0.0.1"}). Joining succeeds
# only with the right name and password; like the ESP32, a wrong password is final
# (STAT_WRONG_PASSWORD) while a network out of range keeps "connecting". Both interfaces report
# the pretend board's address, so the node it runs is reachable from this computer.
import json
import os

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_OPTS = json.loads(os.getenv("FAKEBOARD") or "{}")
_NETWORKS = _OPTS.get("networks", {})
_IP = _OPTS.get("ip", "127.0.0.1")
_MAC = b"\x24\x0a\xc4\x00\x00\x01"
_hostname = ["espressif"]
_interfaces = {}


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = name


def _log(msg):
    print("pretend wifi: " + msg)


# The interface object (one per interface, as on the ESP32).
def WLAN(interface=STA_IF):
    if interface not in _interfaces:
        _interfaces[interface] = _WLAN(interface)
    return _interfaces[interface]


class _WLAN:
    def __init__(self, interface):
        self._if = interface
        self._active = False
        self._status = STAT_IDLE
        self._ssid = ""
        self._config = {"essid": "", "password": "", "authmode": AUTH_OPEN, "channel": 1, "mac": _MAC}

    def _announce(self):
        if self._if == AP_IF and self._active and self._config["essid"]:
            auth = "WPA2" if self._config["password"] else "open"
            _log("access point %r up (%s) at %s" % (self._config["essid"], auth, _IP))

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._status = STAT_IDLE
        else:
            self._announce()

    def connect(self, ssid=None, key=None, bssid=None):
        if self._if != STA_IF:
            raise OSError("AP interface cannot connect")
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid or ""
        if ssid not in _NETWORKS:
            self._status = STAT_CONNECTING  # the ESP32 keeps looking for it
            _log("no network %r in range" % ssid)
        elif _NETWORKS[ssid] != (key or ""):
            self._status = STAT_WRONG_PASSWORD
            _log("wrong password for %r" % ssid)
        else:
            self._status = STAT_GOT_IP
            _log("joined %r as %s (hostname %s)" % (ssid, _IP, _hostname[0]))

    def disconnect(self):
        self._status = STAT_IDLE

    def isconnected(self):
        if self._if == AP_IF:
            return self._active
        return self._active and self._status == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -50
        return self._status

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        if self._if == AP_IF or self.isconnected():
            return (_IP, "255.255.255.0", _IP, _IP)
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if args:
            key = args[0]
            if key == "essid" and self._if == STA_IF:
                return self._ssid
            return self._config[key]
        for key in kw:
            if key == "ssid":
                self._config["essid"] = kw[key]
            else:
                self._config[key] = kw[key]
        if "essid" in kw or "ssid" in kw:
            self._announce()

    def scan(self):
        return [(name.encode(), b"\x00\x11\x22\x33\x44\x55", 6, -50, AUTH_WPA2_PSK, False) for name in _NETWORKS]
