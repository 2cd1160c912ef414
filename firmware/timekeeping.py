# The node's clock and schedules at work: keeps UTC (from NTP on the board, re-synced daily
# with backoff, or from the first page that sends {"type":"time","utc_ms":...}), fires the
# schedules that fall due through node.apply(cmd, "schedule"), puts relays with power_on
# "schedule" where their last event left them once the time is known, and serves the
# schedule list to pages ("schedules", "schedule_add", "schedule_remove"), kept in flash.
# Status: "clock" -> {"synced", "source", "local", "next"} and "schedules" -> the list.
import json
import time

from . import forget
from . import schedules as sch
from .clock import iso_minute, local, parse_tz
from .compat import const, ticks_add, ticks_diff, ticks_ms
from .node import Listener
from .relays import StateStore

SCHEDULE = "schedule"
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0  # the board's epoch may be 2000
_NTP_RETRY_S = const(15)  # first retry after a failed NTP query; doubles up to _NTP_MAX_S
_NTP_MAX_S = const(3600)
_NTP_EVERY_S = const(86400)
_AHEAD_S = const(21600)  # how far ahead the next event is looked for
_BACK_S = const(3600)  # a clock set back by up to this much fires nothing twice; more starts over


# Schedules in flash: a list of specs (schedules.to_spec), written atomically. What the file
# holds is not kept: sixteen specs as dicts would hold more heap than the tuples they come
# from, and every write here is an edit that changes the list.
class _Store(StateStore):
    depth = 3  # [{"days": [...]}]
    keep = False

    def valid(self, data):
        return isinstance(data, list) and all(isinstance(d, dict) for d in data)


# The NTP query of the board: Unix seconds, or OSError. None where there is no ntptime.
def _ntp_query(host):
    try:
        import ntptime  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None

    def query():
        import network  # pyright: ignore[reportMissingImports]

        # not without a network to ask: the DNS lookup alone could hold the timers for seconds
        if not network.WLAN(network.STA_IF).isconnected():
            raise OSError("no network")
        ntptime.host = host
        ntptime.timeout = 1
        return ntptime.time() + _EPOCH

    return query


# The node's timer task calls tick() about twice a second; the NTP query blocks it for up to
# a second (ntptime's socket is blocking), once a day or on a retry.
class Timekeeper(Listener):
    key = "clock"

    # spec: the validated "clock" section; scheds: schedule tuples from config; state_dir:
    # where schedules.json keeps live edits (None: not kept); ntp: a function returning Unix
    # seconds or raising OSError (default: ntptime on the board, none on the host); ticks:
    # a ticks_ms clock; rate: how many times faster than ticks the clock runs (simulator).
    def __init__(self, node, spec, scheds, state_dir, ntp, ticks, rate):
        self.node = node
        self.tz = parse_tz(spec["tz"])
        self.lat = spec.get("lat")
        self.lon = spec.get("lon")
        self.schedules = list(scheds)
        self.ticks = ticks
        self.rate = rate
        self.ntp = ntp if ntp is not None else (_ntp_query(spec["ntp"]) if spec.get("ntp") else None)
        self.ntp_at = ticks()
        self.ntp_wait = _NTP_RETRY_S
        self.source = "none"
        self.base = None  # (utc_ms, ticks) when the time was last known
        self.last = None  # UTC seconds up to which schedules have been fired
        self.nexts = None  # next_events() cache, None when it must be recomputed
        self.wake_at = None  # UTC of the next event (or of the end of the span looked at)
        # what a page sees as "schedules"; notify() on it broadcasts the list to every page
        self.list = Listener()
        self.list.key = "schedules"  # pyright: ignore[reportAttributeAccessIssue]
        self.list.status = self.specs  # pyright: ignore[reportAttributeAccessIssue]
        self.store = _Store(state_dir, node.log, "schedules.json") if state_dir else None
        if self.store:
            saved = self.store.load()
            if saved is not None:
                self.schedules = self._parse_saved(saved)

    # The saved list back as tuples; entries that no longer validate (a relay renamed in
    # config, say) are logged and left out.
    def _parse_saved(self, saved):
        from .schedspec import parse

        out = []
        names = self._names()
        try:
            for d in saved[: sch.MAX_SCHEDULES]:
                try:
                    s = parse(d, 0, names, self.lat is not None, "schedule")
                except ValueError as e:
                    self.node.log("schedules.json: %s, skipped" % e)
                    continue
                sid = d.get("id")
                if isinstance(sid, bool) or not isinstance(sid, int) or sid in [x[0] for x in out]:
                    sid = sch.new_id(out)
                out.append((sid,) + s[1:])
        finally:
            forget("schedspec")
        return out

    # The schedules as specs, as pages see them and the store keeps them.
    def specs(self):
        return [sch.to_spec(s) for s in self.schedules]

    def _names(self):
        names = {}
        for r in self.node.bank.relays:
            names[r.name.lower()] = r.name
        return names

    # UTC now in whole seconds, or None while the time is unknown.
    def utc(self):
        if self.base is None:
            return None
        ms, t = self.base
        return (ms + ticks_diff(self.ticks(), t) * self.rate) // 1000

    # Set the time (Unix milliseconds) from source "ntp" or "page".
    def set_utc_ms(self, ms, source):
        first = self.base is None
        self.base = (int(ms), self.ticks())
        self.nexts = self.wake_at = None
        if first or source != self.source:
            self.source = source
            self.node.log("clock: %s from %s" % (iso_minute(local(self.utc(), self.tz)), source))
        self.node.notify(self)

    def status(self):
        now = self.utc()
        d = {"synced": now is not None, "source": self.source, "local": None, "next": {}}
        if now is None:
            return d
        d["local"] = iso_minute(local(now, self.tz))
        for relay, (t, what) in self._nexts(now).items():
            d["next"][relay] = {"at": iso_minute(local(t, self.tz)), "action": what} if t else {"skip": what}
        return d

    # The next event of each relay; recomputed when one has passed or anything changed.
    def _nexts(self, now):
        n = self.nexts
        if n is None or any(t is not None and t <= now for t, _ in n.values()):
            n = self.nexts = sch.next_events(self.schedules, now, self.tz, self.lat or 0, self.lon or 0)
        return n

    # One round at ticks now: NTP when due, then the schedules that fell due since the last.
    def tick(self, now):
        if self.ntp is not None and ticks_diff(now, self.ntp_at) >= 0:
            self._sync(now)
        base = self.base
        if base is None:
            return
        ms = base[0] + ticks_diff(now, base[1]) * self.rate
        if ms - base[0] > 86400000:  # re-based daily: ticks_ms wraps
            self.base = (ms, now)
        utc = ms // 1000
        last = self.last
        if last is not None and last - _BACK_S <= utc <= last:
            return  # set back a little: wait until the time fired up to comes again
        if last is None:
            self._catch_up(utc)
        elif utc < last - _BACK_S or utc - last > sch.MAX_GAP_S:
            self.wake_at = None  # the old time was far off: carry on from the new one
        else:
            self._fire(last, utc)
        self.last = utc

    # Fire the events in (last, utc], oldest first. Between events a tick only compares utc
    # with wake_at; the next event is looked for _AHEAD_S ahead.
    def _fire(self, last, utc):
        if self.wake_at is not None and utc < self.wake_at:
            return
        tz, lat, lon = self.tz, self.lat or 0, self.lon or 0
        fired = sch.due(self.schedules, last, utc, tz, lat, lon)
        for _, s in fired:
            err = self.node.apply(sch.command(s, None), SCHEDULE)
            if err:
                self.node.log("schedule %d: %s" % (s[0], err[1]))
        ahead = sch.due(self.schedules, utc, utc + _AHEAD_S, tz, lat, lon)
        self.wake_at = ahead[0][0] if ahead else utc + _AHEAD_S
        if fired:
            self.nexts = None
            self.node.notify(self)

    def _sync(self, now):
        ntp = self.ntp
        if ntp is None:
            return
        try:
            utc = ntp()
        except (OSError, OverflowError, IndexError) as e:
            self.node.log("clock: NTP failed (%r), next try in %d s" % (e, self.ntp_wait))
            self.ntp_at = ticks_add(now, self.ntp_wait * 1000)
            self.ntp_wait = min(self.ntp_wait * 2, _NTP_MAX_S)
            return
        if utc is None:  # no NTP client on this runtime
            self.ntp = None
            return
        self.ntp_wait = _NTP_RETRY_S
        self.ntp_at = ticks_add(now, _NTP_EVERY_S * 1000)
        self.set_utc_ms(utc * 1000, "ntp")

    # Relays with power_on "schedule" take the state their last event gave them.
    def _catch_up(self, utc):
        for cmd in sch.catch_up(self.schedules, utc, self.tz, self.lat or 0, self.lon or 0):
            relay = self.node.bank.find(cmd["relay"])
            if relay is not None and relay.power_on == SCHEDULE:
                self.node.apply(cmd, SCHEDULE)

    # The pages' messages (one handler for the four types: one method and one bound method
    # instead of four of each). {"type":"time","utc_ms":N}: the first page's time is taken
    # while nothing else has set the clock; later pages (whose clocks may be off) change
    # nothing. "schedules" lists them; "schedule_add" and "schedule_remove" edit the list.
    def on_page(self, cmd):
        t = cmd["type"]
        if t == "time":
            ms = cmd.get("utc_ms")
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 946684800000 <= ms < 4102444800000:
                return ("bad_field", "'utc_ms' must be Unix milliseconds")
            if self.base is None:
                self.set_utc_ms(ms, "page")
            return None
        if t == "schedules":
            return json.dumps({"type": "schedules", "schedules": self.specs()})
        if t == "schedule_remove":
            sid = cmd.get("id")
            for s in self.schedules:
                if s[0] == sid and not isinstance(sid, bool):
                    self.schedules.remove(s)
                    return self._changed()
            return ("unknown_schedule", "no schedule with id %s" % json.dumps(sid))
        if len(self.schedules) >= sch.MAX_SCHEDULES:
            return ("too_many", "at most %d schedules" % sch.MAX_SCHEDULES)
        from .schedspec import parse

        try:
            s = parse(cmd, sch.new_id(self.schedules), self._names(), self.lat is not None, "schedule")
        except ValueError as e:
            return ("bad_field", str(e))
        finally:
            forget("schedspec")
        self.schedules.append(s)
        return self._changed()

    def _changed(self):
        self.nexts = self.wake_at = None
        if self.store:
            try:
                self.store.save(self.specs())
            except OSError as e:
                self.node.log("schedules: not saved (%r)" % e)
        self.node.notify(self.list)
        self.node.notify(self)
        return None


# Build the timekeeper for the validated "clock" section (its "schedules": those of the
# config), register its listeners and page handlers; returns it. From node.env: "state_dir"
# (schedules.json is kept there), and the simulator's "ntp" and "clock_rate". kw: Timekeeper's
# own (tests), ahead of node.env.
def attach(node, spec, **kw):
    env = node.env
    state_dir = kw.get("state_dir", env.get("state_dir"))
    ntp = kw.get("ntp", env.get("ntp"))
    rate = kw.get("rate", env.get("clock_rate", 1))
    tk = Timekeeper(node, spec, spec.get("schedules", ()), state_dir, ntp, kw.get("ticks", ticks_ms), rate)
    node.listen(tk)
    node.listen(tk.list)
    h = node.handlers
    h["time"] = h["schedules"] = h["schedule_add"] = h["schedule_remove"] = tk.on_page
    return tk
