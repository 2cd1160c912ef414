# A fake `network` for the pretend board (tools/pretend_board.py), MicroPython only. The
# networks in range and their passwords come from the FAKEBOARD environment variable (JSON, set
# by the pretend board: {"networks": {"home": "secret"}, "ip": "127.0.0.1", "air": PATH}), and
# then from the file at "air", which the pretend board rewrites as networks come into range or
# leave it. Joining succeeds only with the right name and password; like the ESP32, a wrong
# password is final (STAT_WRONG_PASSWORD) while a network out of range keeps "connecting" and
# is joined once it comes into range, and a joined network that leaves is lost (the station
# keeps trying to get it back). Both interfaces report the pretend board's address, so the node
# it runs is reachable from this computer.
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
_air = [_OPTS.get("networks", {})]
_AIR = None
if _OPTS.get("air"):
    # opened now, while / is still this computer's: the flash folder is mounted there later
    try:
        _AIR = open(_OPTS["air"])
    except OSError:
        pass
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


# The networks in range now ({ssid: password}); the last good read when the file is being
# rewritten.
def _in_range():
    if _AIR is not None:
        try:
            _AIR.seek(0)
            _air[0] = json.loads(_AIR.read())
        except (OSError, ValueError):
            pass
    return _air[0]


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
        self._key = ""
        self._said = False  # the access point's "up" line was printed
        self._config = {"essid": "", "password": "", "authmode": AUTH_OPEN, "channel": 1, "mac": _MAC}

    def _announce(self):
        if self._if == AP_IF and self._active and self._config["essid"] and not self._said:
            auth = "open" if self._config["authmode"] == AUTH_OPEN else "WPA2"
            _log("access point %r up (%s) at %s" % (self._config["essid"], auth, _IP))
            self._said = True

    def active(self, on=None):
        if on is None:
            return self._active
        if self._if == AP_IF and self._active and not on:
            _log("access point %r down" % self._config["essid"])
        self._active = bool(on)
        if not on:
            self._status = STAT_IDLE
            self._said = False
        else:
            self._announce()

    def connect(self, ssid=None, key=None, bssid=None):
        if self._if != STA_IF:
            raise OSError("AP interface cannot connect")
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid or ""
        self._key = key or ""
        self._status = STAT_CONNECTING
        if not self._look():
            _log("no network %r in range" % ssid)

    # A station that is joining or joined: join the network once it is in range, lose it once
    # it is gone. True when it is in range.
    def _look(self):
        air = _in_range()
        ssid = self._ssid
        if self._status == STAT_CONNECTING and ssid in air:
            if air[ssid] != self._key:
                self._status = STAT_WRONG_PASSWORD
                _log("wrong password for %r" % ssid)
            else:
                self._status = STAT_GOT_IP
                _log("joined %r as %s (hostname %s)" % (ssid, _IP, _hostname[0]))
        elif self._status == STAT_GOT_IP and ssid not in air:
            self._status = STAT_CONNECTING  # the ESP32 reconnects by itself
            _log("lost %r (out of range)" % ssid)
        return ssid in air

    def disconnect(self):
        self._status = STAT_IDLE

    def isconnected(self):
        if self._if == AP_IF:
            return self._active
        if self._active:
            self._look()
        return self._active and self._status == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -50
        if self._if == STA_IF and self._active:
            self._look()
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
        return [(name.encode(), b"\x00\x11\x22\x33\x44\x55", 6, -50, AUTH_WPA2_PSK, False) for name in _in_range()]
