# Sans-I/O MQTT 3.1.1 for the client side (OASIS MQTT 3.1.1; sections cited as "3.3.1").
# Encoders return the bytes of one packet; Parser takes the broker's bytes in chunks of any
# size and turns them into events. No sockets, no asyncio: the same code runs on CPython and
# MicroPython. Anything malformed, unknown or too big sets Parser.error (why the connection
# must end) and stops parsing; nothing raises to the caller.
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:

    def const(x):
        return x


# Packet types (2.2.1); events start with the type of the packet they come from.
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBSCRIBE = const(8)
SUBACK = const(9)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

PING = b"\xc0\x00"  # PINGREQ (3.12)
BYE = b"\xe0\x00"  # DISCONNECT (3.14)

# CONNACK return codes 1..5 (3.2.2.3).
REFUSED = (
    "",
    "unacceptable protocol version",
    "client id rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


# A topic level from a name: lower case, every run of characters other than a-z and 0-9
# replaced by "_" ("Hall Light 2" -> "hall_light_2"). ASCII only, so both runtimes agree.
def slug(name):
    out = []
    run = False
    for c in name:
        if "A" <= c <= "Z":
            c = chr(ord(c) + 32)
        if "a" <= c <= "z" or "0" <= c <= "9":
            out.append(c)
            run = False
        elif not run:
            out.append("_")
            run = True
    return "".join(out)


# A UTF-8 string with its 2-byte length (1.5.3).
def _s(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


# A packet: fixed header (type and flags, remaining length as a varint, 2.2.3), then body.
def _packet(b0, body):
    n = len(body)
    head = bytearray((b0,))
    while True:
        b = n & 0x7F
        n >>= 7
        head.append(b | 0x80 if n else b)
        if not n:
            return bytes(head) + body


# CONNECT (3.1). A will is sent when will_topic is given; the password only with a user
# name (3.1.2.9).
def connect(client_id, keepalive_s, user="", password="", will_topic=None, will_payload=b"", will_retain=False,
            will_qos=0, clean=True):
    flags = 2 if clean else 0
    tail = b""
    if will_topic:
        flags |= 4 | (will_qos << 3) | (0x20 if will_retain else 0)
        tail = _s(will_topic) + _s(will_payload)
    if user:
        flags |= 0x80
        tail += _s(user)
        if password:
            flags |= 0x40
            tail += _s(password)
    body = b"\x00\x04MQTT\x04" + struct.pack("!BH", flags, keepalive_s) + _s(client_id) + tail
    return _packet(0x10, body)


# PUBLISH (3.3); pid only with QoS 1.
def publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return _packet(b0, _s(topic) + (struct.pack("!H", pid) if qos else b"") + payload)


# PUBACK (3.4): the answer to a QoS 1 PUBLISH.
def puback(pid):
    return struct.pack("!BBH", 0x40, 2, pid)


# SUBSCRIBE (3.8); topics: a list of (filter, qos).
def subscribe(pid, topics):
    body = struct.pack("!H", pid)
    for t, q in topics:
        body += _s(t) + bytes((q,))
    return _packet(0x82, body)


# The broker's side of a connection. Feed bytes with receive_data(); take events with
# take_events(). Events:
#   (CONNACK, return_code)  (PUBLISH, topic, payload, qos, retain, pid)  (PUBACK, pid)
#   (SUBACK, pid, granted_codes)  (PINGRESP,)
# A QoS 1 PUBLISH (pid > 0) must be answered with puback(pid) by the caller. When error is
# set, the connection must be closed (3.1.1 has no way to say why): parsing has stopped.
class Parser:
    error = None
    events = None
    connected = False  # CONNACK received: the first packet must be one, and only one
    _buf = b""  # the start of a packet whose rest has not arrived yet

    def __init__(self, max_packet=1024):
        self.max_packet = max_packet

    def receive_data(self, data):
        if self.error:
            return
        buf = self._buf
        if buf:
            buf += data  # a bytearray: grows in place
            data = buf
        p = 0
        while not self.error:
            q = self._parse(data, p)
            if not q:
                break
            p = q
        if p >= len(data) or self.error:
            if buf:
                self._buf = b""
        elif p or not buf:
            self._buf = bytearray(memoryview(data)[p:])

    # Events received so far, as a list; empties it.
    def take_events(self):
        ev = self.events
        self.events = None
        return ev or []

    def fail(self, why):
        self.error = why
        self._buf = b""
        return 0

    def _event(self, ev):
        if self.events is None:
            self.events = [ev]
        else:
            self.events.append(ev)

    # Parse the packet at data[p:]; the index just past it, or 0 when more bytes are needed or
    # the connection failed. Sizes and flags are checked before the body is waited for.
    def _parse(self, data, p):
        end = len(data)
        if p >= end:
            return 0
        b0 = data[p]
        kind = b0 >> 4
        if not self.connected and kind != CONNACK:
            return self.fail("expected CONNACK, got packet type %d" % kind)
        # fixed header flags (2.2.2): only PUBLISH has flags of its own
        if kind == PUBLISH:
            qos = (b0 >> 1) & 3
            if qos == 2 or qos == 3:  # we subscribe with QoS 1 at most (3.8.4)
                return self.fail("PUBLISH with QoS %d" % qos)
            if b0 & 8 and not qos:
                return self.fail("DUP set on a QoS 0 PUBLISH")  # 3.3.1.1
        elif kind not in (CONNACK, PUBACK, SUBACK, PINGRESP) or b0 & 15:
            return self.fail("unexpected packet 0x%02x" % b0)
        # remaining length: 1 to 4 bytes, 7 bits each (2.2.3)
        n = 0
        i = p + 1
        shift = 0
        while True:
            if i >= end:
                return 0
            b = data[i]
            n |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                break
            shift += 7
            if shift == 28:
                return self.fail("remaining length longer than 4 bytes")
        if i - p + n > self.max_packet:
            return self.fail("packet of %d bytes, limit %d" % (i - p + n, self.max_packet))
        if kind == PUBLISH:
            ok = n >= (4 if qos else 2)
        elif kind == SUBACK:
            ok = n >= 3
        else:
            ok = n == (0 if kind == PINGRESP else 2)
        if not ok:
            return self.fail("packet type %d with remaining length %d" % (kind, n))
        stop = i + n
        if stop > end:
            return 0
        if kind == PUBLISH:
            return self._publish(data, b0, i, stop)
        if kind == PINGRESP:
            self._event((PINGRESP,))
            return stop
        pid = (data[i] << 8) | data[i + 1]
        if kind == CONNACK:
            if self.connected:
                return self.fail("second CONNACK")
            # pid holds the acknowledge flags and the return code (3.2.2): session present
            # (bit 8) only with code 0, codes 0..5
            if pid > 5 and pid != 0x100:
                return self.fail("bad CONNACK 0x%04x" % pid)
            self.connected = True
            self._event((CONNACK, pid & 0xFF))
        elif kind == PUBACK:
            self._event((PUBACK, pid))
        else:
            codes = bytes(data[i + 2 : stop])
            if codes.strip(b"\x00\x01\x02\x80"):  # 3.9.3: the only allowed return codes
                return self.fail("bad SUBACK code")
            self._event((SUBACK, pid, codes))
        return stop

    def _publish(self, data, b0, i, stop):
        qos = (b0 >> 1) & 3
        j = i + 2 + ((data[i] << 8) | data[i + 1])
        if j + (2 if qos else 0) > stop:
            return self.fail("PUBLISH topic longer than the packet")
        try:
            topic = str(bytes(data[i + 2 : j]), "utf-8")
        except UnicodeError:
            return self.fail("PUBLISH topic not UTF-8")
        # 4.7.3, 3.3.2.1, 1.5.3: a name of at least one character, no wildcards, no U+0000
        if not topic or "+" in topic or "#" in topic or "\x00" in topic:
            return self.fail("bad PUBLISH topic")
        pid = 0
        if qos:
            pid = (data[j] << 8) | data[j + 1]
            if not pid:
                return self.fail("PUBLISH with packet id 0")  # 2.3.1
            j += 2
        self._event((PUBLISH, topic, bytes(data[j:stop]), qos, b0 & 1, pid))
        return stop
