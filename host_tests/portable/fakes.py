# Fakes for the portable tests: pins, a clock and a scratch folder. Plain Python that runs
# on CPython and on the MicroPython unix port alike (no tempfile, no shutil).
import binascii
import json
import os


# An output pin that remembers every level written to it. The level it was created at is
# the first entry of history, so a test can prove the safe level came before anything else.
class FakePin:
    def __init__(self, gpio=None, level=None, log=None):
        self.gpio = gpio
        self.history = []
        self.level = None
        self.log = log  # a shared list of (gpio, level) across pins, in write order
        if level is not None:
            self._write(level)

    def _write(self, v):
        v = 1 if v else 0
        self.level = v
        self.history.append(v)
        if self.log is not None:
            self.log.append((self.gpio, v))

    # machine.Pin.value(): read with no argument, write with one.
    def value(self, v=None):
        if v is None:
            return self.level
        self._write(v)

    def on(self):
        self._write(1)

    def off(self):
        self._write(0)


# make_pin(gpio, level) for RelayBank: hands out FakePins that share one write log, so the
# order of writes across pins (break before make) can be checked. pins[gpio] is the pin.
class FakePins:
    def __init__(self):
        self.pins = {}
        self.log = []
        self.made = []  # gpio numbers in the order their pins were made

    def make(self, gpio, level):
        pin = FakePin(gpio, level, self.log)
        self.pins[gpio] = pin
        self.made.append(gpio)
        return pin

    def __getitem__(self, gpio):
        return self.pins[gpio]


# A millisecond clock that only moves when told to; call it like ticks_ms().
class FakeClock:
    def __init__(self, start=0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms
        return self.now


def _is_dir(path):
    return os.stat(path)[0] & 0x4000 != 0


# A fresh folder under /tmp; use as `with TempDir() as d:` or call cleanup() yourself.
class TempDir:
    def __init__(self, prefix="relaynode-test-"):
        suffix = binascii.hexlify(os.urandom(6)).decode()
        self.path = "/tmp/" + prefix + suffix
        os.mkdir(self.path)

    def join(self, name):
        return self.path + "/" + name

    def write(self, name, data):
        with open(self.join(name), "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
            f.write(data)
        return self.join(name)

    def read(self, name):
        with open(self.join(name)) as f:
            return f.read()

    def exists(self, name):
        try:
            os.stat(self.join(name))
        except OSError:
            return False
        return True

    def listdir(self):
        return sorted(os.listdir(self.path))

    def cleanup(self):
        remove_tree(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


# Remove a file or a folder with everything in it; a missing path is fine.
def remove_tree(path):
    try:
        is_dir = _is_dir(path)
    except OSError:
        return
    if is_dir:
        for name in os.listdir(path):
            remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _parent(path):
    i = path.rstrip("/").rfind("/")
    if i < 0:
        return "."
    return path[:i] or "/"


# The repository root (the folder holding firmware/ and config.json), found from this file.
REPO = _parent(_parent(_parent(__file__)))


def repo_path(name):
    return REPO + "/" + name


# A small valid config (two relays, Light and Fan), fresh each time so tests can spoil it.
def base_config():
    return {
        "name": "node",
        "relays": [
            {"name": "Light", "pin": 26, "active_low": True, "power_on": "restore"},
            {"name": "Fan", "pin": 27},
        ],
    }


# base_config() with relay i changed.
def with_relay(i, **changes):
    raw = base_config()
    raw["relays"][i].update(changes)
    return raw


# The message of the ConfigError that config.validate(raw) raises; fails when it raises nothing.
def error_of(raw):
    from firmware.config import ConfigError, validate

    try:
        validate(raw)
    except ConfigError as e:
        return str(e)
    assert False, "no ConfigError for %r" % (raw,)


# The error names field, at the start of the message ("relays[1].pin: ...").
def check_field(raw, field):
    msg = error_of(raw)
    assert msg.startswith(field + ":"), (field, msg)
    return msg


# A node as /work/INTERFACE.md describes it, for integrations: relays Light and Pump (GPIO 26,
# 27) on fake pins; apply() runs commands.apply and records (cmd, cause); notify() records
# (key, status) as the pages would get it.
class FakeNode:
    def __init__(self, ticks, power_on="off"):
        from firmware.relays import RelayBank

        specs = [{"name": "Light", "pin": 26, "power_on": power_on}, {"name": "Pump", "pin": 27, "power_on": power_on}]
        self.bank = RelayBank(specs, FakePins().make, ticks)
        self.name = "node"
        self.logs = []
        self.applied = []  # (cmd, cause)
        self.listeners = []
        self.notified = []  # (key, status) as sent to pages
        self.handlers = {}
        self.env = {}  # what the board or host gives integrations (Node.env)

    def log(self, text):
        self.logs.append(text)

    def apply(self, cmd, cause, origin=None, hops=0, via=None):
        from firmware import commands

        self.applied.append((cmd, cause))
        try:
            commands.apply(self.bank, cmd, cause)
        except commands.CommandError as e:
            return (e.code, e.message)
        return None

    def listen(self, listener):
        self.listeners.append(listener)

    def notify(self, listener):
        self.notified.append((listener.key, json.loads(json.dumps(listener.status()))))


# A network.WLAN stand-in for firmware/wifi.py: a station or access point whose "air" (the
# networks in range, {ssid: password}, shared with the test) says what can be joined. Like the
# ESP32's, a station that tries a network out of range keeps trying (status CONNECTING) and
# joins it once it comes into range; a wrong password is final (WRONG_PASSWORD); a joined
# network that leaves the air is lost. calls records (time, what) with what the station was
# told: "connect SSID", "disconnect".
class FakeWlan:
    CONNECTING = 1001
    GOT_IP = 1010
    WRONG_PASSWORD = 202
    IDLE = 1000

    def __init__(self, air=None, ip="192.168.1.50", clock=None):
        self.air = air if air is not None else {}
        self.ip = ip
        self.clock = clock
        self.on = False
        self.target = None  # (ssid, password) being joined or joined
        self.joined = False
        self.wrong = False
        self.calls = []
        self.settings = {}

    def _note(self, what):
        self.calls.append((self.clock() if self.clock else None, what))

    def active(self, on=None):
        if on is None:
            return self.on
        self.on = bool(on)
        if not on:
            self.target = None
            self.joined = False

    def connect(self, ssid, password):
        if not self.on:
            raise OSError("Wifi Not Started")
        self._note("connect " + ssid)
        self.target = (ssid, password)
        self.joined = False
        self.wrong = ssid in self.air and self.air[ssid] != password

    def disconnect(self):
        self._note("disconnect")
        self.target = None
        self.joined = False

    def _look(self):
        t = self.target
        in_range = t is not None and self.air.get(t[0]) == t[1]
        self.joined = self.on and in_range and not self.wrong

    def isconnected(self):
        self._look()
        return self.joined

    def status(self):
        self._look()
        if self.joined:
            return self.GOT_IP
        if self.wrong:
            return self.WRONG_PASSWORD
        return self.CONNECTING if self.target else self.IDLE

    def ifconfig(self):
        return (self.ip, "255.255.255.0", self.ip, self.ip) if self.on else ("0.0.0.0",) * 4

    def config(self, **kw):
        self.settings.update(kw)
