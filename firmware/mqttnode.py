# The node on an MQTT broker ("mqtt" in config.json), with Home Assistant discovery. One task
# reconnects forever with backoff; per connection a reader (commands from set topics, pings)
# and a writer task. The writer sends what is due, one packet at a time, each bounded by a
# timeout: PUBACKs and pings first, then discovery, then relay states. Due work is kept as bit
# masks of relays, not as queued packets, so a slow or absent broker holds no backlog: states
# are last-writer-wins and all are sent again at every connect. A broker that does not answer,
# sends garbage or stops reading is dropped and retried; the node never waits for it.
# Topics (TOPIC = spec["topic"], SLUG = mqtt.slug(relay name)):
#   TOPIC/status        online / offline (retained; offline is the last will)
#   TOPIC/SLUG/state    ON / OFF (retained), at connect and on every change
#   TOPIC/SLUG/set      ON, OFF, TOGGLE (any case) or a JSON command with the relay implied
#   DISCOVERY/switch/NODE/SLUG/config   Home Assistant discovery (retained)
# Imported only when configured; kept short because its code is heap on the board.
import asyncio
import json

from . import VERSION, commands, mqtt
from .compat import const, ticks_ms, ticks_diff, sleep_ms, wait_for_ms, close_stream, prepare_writer, open_connection
from .node import Listener
from .retry import Backoff

_MIN_BACKOFF = const(1000)  # first retry after a failure, doubling each time...
_MAX_BACKOFF = const(60000)  # ...up to this
_AUTH_BACKOFF = const(60000)  # refused credentials: doubling up to 10 minutes
_MAX_AUTH_BACKOFF = const(600000)
_STABLE_MS = const(10000)  # up this long: the next failure retries fast again
_MAX_PACKET = const(1024)  # bytes in one packet from the broker
_COST_MS = const(50)  # commands from MQTT: 20 a second...
_BURST_MS = const(1000)  # ...in bursts of up to 20
_MAX_OUT = const(512)  # bytes of PUBACKs and pings waiting: more means the broker does not read


class Down(Exception):
    pass


# Build the listener, register it with the node and return it (start() comes later).
def attach(node, spec):
    m = Mqtt(node, spec)
    node.listen(m)
    return m


# A set payload as a node command for relay rid, or None when it is not one.
def command(payload, rid):
    w = payload.strip().upper()
    if w == b"ON" or w == b"OFF":
        return {"type": "set", "relay": rid, "on": w == b"ON"}
    if w == b"TOGGLE":
        return {"type": "toggle", "relay": rid}
    try:
        d = json.loads(payload)
        cmd = {"type": d["type"], "relay": rid}  # origin, hops and other relays are not taken
        for k in ("on", "ms"):
            if k in d:
                cmd[k] = d[k]
        if cmd["type"] in ("set", "toggle", "pulse"):
            return commands.parse(json.dumps(cmd))
    except Exception:
        pass
    return None


# The CA certificate in file path as DER: the first certificate of a PEM file (MicroPython's
# TLS may be built without a PEM parser), or the file as it is.
def ca_der(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        import binascii

        data = binascii.a2b_base64(data.split(b"-----")[2].replace(b"\r", b"").replace(b"\n", b""))
    return data


# A connection to m's broker, TLS when configured: (reader, writer, tls); Down when none.
async def _connect(m):
    spec = m.spec
    if m.addr is None:
        import socket

        try:
            a = socket.getaddrinfo(m.host, spec["port"])[0][-1]
        except OSError as e:
            raise Down("cannot resolve %s (%s)" % (m.host, e))
        # a (host, port) tuple on CPython and the ESP32, a raw sockaddr on the unix port
        m.addr = a[0] if isinstance(a, tuple) else "%d.%d.%d.%d" % (a[4], a[5], a[6], a[7])
    kw = {}
    if spec["tls"]:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if spec.get("ca"):
            ctx.verify_mode = ssl.CERT_REQUIRED
            try:
                ctx.load_verify_locations(cadata=ca_der(spec["ca"]))
            except (OSError, ValueError) as e:
                raise Down("cannot load CA %s (%s)" % (spec["ca"], e))
        else:  # encrypted, not verified: there is no store of trusted CAs on the board
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        kw["ssl"] = ctx
        kw["server_hostname"] = m.host
    try:
        # with TLS asyncio's own, which wraps the socket; else the node's lighter one
        opener = asyncio.open_connection if kw else open_connection
        reader, writer = await wait_for_ms(opener(str(m.addr), spec["port"], **kw), m.timeout)
    except (OSError, asyncio.TimeoutError) as e:
        m.addr = None
        raise Down("cannot connect (%s)" % ("timeout" if isinstance(e, asyncio.TimeoutError) else e))
    return reader, writer, bool(kw)


# Read what the broker sends within wait ms into the parser p; False when nothing came in
# time and timeouts are tolerated (strict=False).
async def _read(reader, p, wait, strict=True):
    if wait <= 0:
        raise asyncio.TimeoutError
    try:
        data = await wait_for_ms(reader.read(512), wait)
    except asyncio.TimeoutError:
        if strict:
            raise
        return False
    if not data:
        raise Down("broker closed the connection")
    p.receive_data(data)
    if p.error and strict:
        raise Down("bad packet from the broker: " + p.error)
    return True


# CONNECT, with the last will, and wait for the broker's CONNACK; the events that came with it.
async def _login(m, reader, writer, p):
    s = m.spec
    t = m.timeout
    will = m.topic + "/status"
    writer.write(mqtt.connect(s["client_id"], s["keepalive_s"], s["user"], s["password"], will, b"offline", True, 1))
    await wait_for_ms(writer.drain(), t)
    start = ticks_ms()
    while not p.connected:
        await _read(reader, p, t - ticks_diff(ticks_ms(), start))
    evs = p.take_events()
    rc = evs[0][1]
    if rc:
        raise Down("broker refused: " + mqtt.REFUSED[rc], rc > 3)
    return evs


# What was announced last ([topic, prefix, node slug, relay slugs...]) from the file at path,
# or None.
def _load_saved(path):
    try:
        with open(path) as f:  # pyright: ignore[reportArgumentType]
            s = json.loads(f.read())
        if isinstance(s, list):
            return [x for x in s if isinstance(x, str)]
    except Exception:
        pass
    return None


# Keep what m has announced now in its file, so that what it stops announcing is cleared later.
def _remember(m):
    now = [m.topic, m.prefix, m.nslug] + m.slugs
    if m.file and m.saved != now:
        m.saved = now
        try:
            with open(m.file, "w") as f:
                f.write(json.dumps(now))
        except OSError as e:
            m.node.log("mqtt: cannot write %s (%s)" % (m.file, e))


# Rate limit for commands, as for a page: a budget of milliseconds that refills with time,
# at most _BURST_MS; each command costs _COST_MS. Relays are not made to chatter by a
# runaway automation.
def _allow(m):
    now = ticks_ms()
    d = ticks_diff(now, m.budget_at)
    if not 0 <= d < _BURST_MS:  # long ago (or so long ago that the ticks wrapped)
        d = _BURST_MS
    b = min(_BURST_MS, m.budget + d)
    if b == _BURST_MS and m.flooding:
        m.flooding = False
    m.budget_at = now
    ok = b >= _COST_MS
    m.budget = b - _COST_MS if ok else b
    return ok


# A message on a set topic: a command for the relay it names, through the node's one entrance;
# anything else is logged once (per topic, until a command there works) and moves nothing.
def _set_topic(m, topic, payload, retain):
    pre = m.topic + "/"
    s = topic[len(pre) : -4] if topic.startswith(pre) and topic.endswith("/set") else None
    why = "no such relay"
    if s in m.slugs:
        relay = m.node.bank.relays[m.slugs.index(s)]
        cmd = command(payload, relay.id)
        if retain:  # stored on the broker by someone: replayed at every connect, not a command now
            why = "retained message"
        elif cmd is None:
            why = "not ON, OFF, TOGGLE or a JSON command"
        elif not _allow(m):
            if m.flooding:  # logged once a flood, not once a command
                return
            m.flooding = True
            m.quiet = None
            why = "more than %d commands a second" % (1000 // _COST_MS)
        else:
            err = m.node.apply(cmd, "mqtt", via=m)
            if not err:
                m.quiet = None
                return
            why = err[1]
    if topic != m.quiet:
        m.quiet = topic
        m.node.log("mqtt: %s %r ignored: %s" % (topic, payload[:40], why))


class Mqtt(Listener):
    key = "mqtt"  # the state message carries status() under this key
    timeout = 10000  # ms for each step: connect, CONNACK, one write, a ping's answer
    up = False
    error = ""
    up_at = 0
    task = None  # reconnects forever
    session = None  # the current connection's reader task
    writer = None  # the stream while connected
    addr = None  # the broker's IP address, resolved once (MicroPython's DNS lookup blocks)
    why = None  # why the session was cancelled from outside
    stopped = False
    ping_at = None  # when our unanswered ping went out
    quiet = None  # the set topic whose bad message was logged: not logged again meanwhile
    _disc = 0  # bit i: relay i's discovery config is due
    _dirty = 0  # bit i: relay i's state is due
    _stale = None  # retained topics of an earlier configuration, to clear; None once done
    saved = None  # [topic, discovery prefix, node slug, relay slugs...] as last announced
    _out = None  # small packets due first, in one buffer (PUBACKs, pings, subscribe, online)
    budget = _BURST_MS  # see _allow()
    budget_at = 0  # (far enough from any ticks_ms: the first command finds a full budget)
    flooding = False  # commands were dropped and the budget has not been full since

    def __init__(self, node, spec):
        self.node = node
        self.spec = spec
        self.host = spec["host"]
        self.topic = spec["topic"]
        self.prefix = spec["discovery_prefix"]
        self.nslug = mqtt.slug(node.name)
        self.slugs = [mqtt.slug(r.name) for r in node.bank.relays]
        self.all = (1 << len(self.slugs)) - 1
        self.since = ticks_ms()
        self.wake = asyncio.Event()
        # what was announced, kept in the state folder (self.saved), so that topics of relays
        # (or of a topic, prefix or node name) no longer configured are cleared at connect
        d = getattr(node, "state_dir", None)
        if d is None and getattr(node, "store", None):
            d = node.store.path[: node.store.path.rfind("/")]
        self.file = d + "/mqtt.json" if d else None
        self.saved = _load_saved(self.file)

    def start(self):
        self.task = asyncio.create_task(self._run())

    # Stop for good; the broker hears "offline" now rather than from the will later.
    def stop(self):
        self.stopped = True
        w = self.writer
        if w:
            try:
                w.write(mqtt.publish(self.topic + "/status", b"offline", 0, True) + mqtt.BYE)
            except Exception:
                pass
        for t in (self.session, self.task):
            if t:
                t.cancel()

    def status(self):
        return {"up": self.up, "error": self.error, "since": ticks_diff(ticks_ms(), self.since) // 1000}

    def _set(self, up, error):
        if up != self.up or error != self.error:
            if up != self.up:
                self.up = up
                self.since = ticks_ms()
            self.error = error
            n = getattr(self.node, "notify", None)
            if n:
                n(self)

    # Called by the node for every change, whatever its cause: the states are due. Never waits.
    def changed(self, changes, origin=None, hops=0, via=None):
        for r, _ in changes:
            self._dirty |= 1 << r.id
        if self.writer:
            self.wake.set()

    def message(self, text):
        pass

    # Connect, serve until the connection fails, wait, again; forever.
    async def _run(self):
        retry = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        auth_retry = Backoff(_AUTH_BACKOFF, _MAX_AUTH_BACKOFF)
        while True:
            auth = False
            self.why = None
            self.session = asyncio.create_task(self._session())
            try:
                await self.session
            except Down as e:
                why = e.args[0]
                auth = len(e.args) > 1
            except asyncio.CancelledError:
                if self.stopped:
                    raise
                why = self.why
            except OSError as e:
                why = "network error %s" % e
            except ValueError as e:  # MicroPython's TLS: a certificate it does not trust
                why = "TLS: %s" % str(e).strip()
            except Exception as e:  # a bug must not end MQTT for good
                why = "error %r" % e
            self.session = None
            if self.up:
                auth_retry.reset()
                if ticks_diff(ticks_ms(), self.up_at) >= _STABLE_MS:
                    retry.reset()
            wait = auth_retry.next() if auth else retry.next()
            self.node.log("mqtt: down (%s), retry in %d ms" % (why, wait))
            self._set(False, why)
            await sleep_ms(wait)

    async def _session(self):
        t = self.timeout
        spec = self.spec
        reader, writer, tls = await _connect(self)
        p = mqtt.Parser(_MAX_PACKET)
        top = self.topic
        wt = None
        what = "CONNACK"
        try:
            if not tls:  # CPython's TLS transport never resumes a drain() held at a zero limit
                prepare_writer(writer)
            evs = await _login(self, reader, writer, p)
            will = top + "/status"
            self._out = bytearray(mqtt.subscribe(1, [(top + "/+/set", 1), (self.prefix + "/status", 0)]))
            self._out += mqtt.publish(will, b"online", 0, True)
            self._disc = self._dirty = self.all
            self._stale = stale_topics(self, self.saved)
            self.writer = writer
            self.wake.set()
            wt = asyncio.create_task(self._write(writer))
            self.up_at = last = ticks_ms()
            self.ping_at = None
            self.node.log("mqtt: connected to %s:%d" % (self.host, spec["port"]))
            self._set(True, "")
            for ev in evs[1:]:
                self._event(ev)
            keep = spec["keepalive_s"] * 500  # a ping each half keepalive
            while True:
                now = ticks_ms()
                if self.ping_at is None:
                    wait = keep - ticks_diff(now, last)
                    if wait <= 0:
                        self.ping_at = last = now
                        self._send(mqtt.PING)
                        continue
                else:
                    what = "ping answer"
                    wait = min(t, keep) - ticks_diff(now, self.ping_at)
                    if wait <= 0:
                        raise asyncio.TimeoutError
                if await _read(reader, p, wait, False):
                    for ev in p.take_events():
                        self._event(ev)
                    if p.error:
                        raise Down("bad packet from the broker: " + p.error)
        except asyncio.TimeoutError:
            raise Down("no %s from the broker in %d ms" % (what, t))
        finally:
            self.writer = self._out = self.ping_at = None
            if wt:
                wt.cancel()
            tr = getattr(writer, "transport", None)
            if tr and not self.stopped:
                tr.abort()  # CPython: do not wait to flush to a broker that may never read
            try:
                await wait_for_ms(close_stream(writer), 1000)
            except Exception:
                pass

    def _event(self, ev):
        kind = ev[0]
        if kind == mqtt.PINGRESP:
            self.ping_at = None
        elif kind == mqtt.SUBACK:
            if b"\x80" in ev[2]:
                self.node.log("mqtt: the broker refused a subscription")
                self._set(True, "broker refused the subscription to set topics")
        elif kind == mqtt.PUBLISH:
            topic, payload, retain, pid = ev[1], ev[2], ev[4], ev[5]
            if pid:
                self._send(mqtt.puback(pid))
            if topic == self.prefix + "/status":
                # live news of Home Assistant (re)starting; a retained one is old news
                if payload == b"online" and not retain:
                    self._disc = self.all
                    self.wake.set()
            else:
                _set_topic(self, topic, payload, retain)

    # Queue a small packet for the writer.
    def _send(self, pkt):
        out = self._out
        if out is None:
            return
        if len(out) + len(pkt) > _MAX_OUT:
            return self._kill("the broker does not read")
        out += pkt
        self.wake.set()

    # The next packet due, or None.
    def _next(self):
        out = self._out
        if out:
            self._out = bytearray()
            return out
        if self._disc:
            i = _low(self._disc)
            self._disc &= ~(1 << i)
            return mqtt.publish(config_topic(self.prefix, self.nslug, self.slugs[i]), config_payload(self, i), 0, True)
        if self._stale:  # cleared once the configured relays are announced
            return mqtt.publish(self._stale.pop(0), b"", 0, True)
        if self._stale is not None:  # all announced, nothing stale left: remember it
            self._stale = None
            _remember(self)
        if self._dirty:
            i = _low(self._dirty)
            self._dirty &= ~(1 << i)
            r = self.node.bank.relays[i]
            return mqtt.publish("%s/%s/state" % (self.topic, self.slugs[i]), b"ON" if r.on else b"OFF", 0, True)
        return None

    # The writer task of one connection: one packet at a time, each write bounded.
    async def _write(self, w):
        try:
            while True:
                pkt = self._next()
                if pkt is None:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                w.write(pkt)
                await wait_for_ms(w.drain(), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if w is self.writer:
                self._kill("write stalled" if isinstance(e, asyncio.TimeoutError) else "write failed (%s)" % e)

    # End the current connection from outside its task (inside it: raise Down).
    def _kill(self, why):
        s = self.session
        if s:
            if s is asyncio.current_task():
                raise Down(why)
            self.why = why
            s.cancel()


# Home Assistant's discovery topic of relay slug s.
def config_topic(prefix, nslug, s):
    return "%s/switch/%s/%s/config" % (prefix, nslug, s)


# The retained topics announced under an earlier configuration (saved: [topic, prefix, node
# slug, relay slugs...]) and not under this one (m's).
def stale_topics(m, saved):
    out = []
    if saved and len(saved) > 2:
        t, p, n = saved[:3]
        for s in saved[3:]:
            gone = s not in m.slugs
            if gone or p != m.prefix or n != m.nslug:
                out.append(config_topic(p, n, s))
            if gone or t != m.topic:
                out.append("%s/%s/state" % (t, s))
        if t != m.topic:
            out.append(t + "/status")
    return out


# Home Assistant's discovery config of m's relay i (an MQTT switch with its device).
def config_payload(m, i):
    node = m.node
    s = m.slugs[i]
    t = "%s/%s/" % (m.topic, s)
    url = getattr(node, "url", None) or m.spec.get("url")
    d = json.dumps
    return (
        '{"name":%s,"unique_id":"relaynode_%s_%s","command_topic":%s,"state_topic":%s,'
        '"availability_topic":%s,"payload_on":"ON","payload_off":"OFF","device":{'
        '"identifiers":["relaynode_%s"],"name":%s,"model":"relaynode","manufacturer":"relaynode",'
        '"sw_version":"%s"%s},"origin":{"name":"relaynode","sw_version":"%s"}}'
    ) % (
        d(node.bank.relays[i].name),
        m.nslug,
        s,
        d(t + "set"),
        d(t + "state"),
        d(m.topic + "/status"),
        m.nslug,
        d(node.name),
        VERSION,
        ',"configuration_url":' + d(url) if url else "",
        VERSION,
    )


def _low(bits):
    i = 0
    while not bits & (1 << i):
        i += 1
    return i
