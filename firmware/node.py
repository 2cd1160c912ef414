# The node: the relay bank, its saved state and its timers, with one way in and one way out.
# Every source of a change (a page, a link, and any integration) hands a command to apply();
# every change and every node message leaves through publish() / message() to the listeners
# (the pages, each link, the relay log, integrations). A listener never calls back into the
# node's internals, and a new integration is one more listener.
import asyncio
import gc
import json

from . import VERSION
from . import commands
from .compat import ticks_ms, ticks_diff, sleep_ms, cancelled_wake

# Config section -> the module that serves it, imported only when the section is set. The
# module's attach(node, spec) makes its listener and adds it with node.listen(); what it needs
# from the board or the host (pins, the flash) it finds in node.env.
INTEGRATIONS = (("links", "links"), ("mqtt", "mqttnode"), ("clock", "timekeeping"), ("inputs", "buttons"))


# A listener's answer to what it does not care about.
def _ignore(*args):
    return None


# What every listener may be told; a subclass overrides what it needs (the rest share one
# function, which keeps a listener's cost on the heap small):
# - changed(changes, origin, hops, via): changes is [(relay, cause)] in the order they
#   happened; origin, hops: where a linked change began and the links it crossed; via: the
#   source that made it (not to be echoed back).
# - message(text): a node message (JSON text) for every page.
# - tick(now): from the timer task, about twice a second and sooner after a change.
# - status(): what the state message carries under key (when key is set).
# - start(), stop(): its tasks, once the server listens and when it stops.
class Listener:
    key = None
    changed = message = tick = status = start = stop = _ignore


# The relay log: one line per change. While the pages' writes are held (one read's worth of
# commands, see hold()), the lines wait: the clients first, then the log (a print is a syscall).
class RelayLog(Listener):
    def __init__(self, log):
        self.log = log
        self.held = None  # a list while held

    def changed(self, changes, origin, hops, via):
        for r, cause in changes:
            line = (r.name, "on" if r.on else "off", cause + " from " + origin if origin else cause)
            if self.held is None:
                self.log("relay %s -> %s (%s)" % line)
            else:
                self.held.append(line)

    def hold(self):
        self.held = []

    def release(self):
        held = self.held
        self.held = None
        for line in held or ():
            self.log("relay %s -> %s (%s)" % line)


class Node:
    # cfg: validated config; bank: RelayBank; store: StateStore or None; log: a print-like
    # function (it must not raise: see safe_log).
    def __init__(self, cfg, bank, store, log=print):
        self.limits = cfg["limits"]  # of cfg only what is used is kept: the rest is heap
        # the integrations the config names, loaded by start(): (module, its config section)
        self.specs = [(m, cfg[k]) for k, m in INTEGRATIONS if cfg.get(k)]
        self.name = cfg["name"]
        self.bank = bank
        self.store = store
        self.log = safe_log(log)
        self.relay_log = RelayLog(self.log)
        self.listeners = [self.relay_log]
        self.handlers = {}  # message type -> fn(cmd): messages integrations answer
        self.dirty_at = None  # when relay state last changed without being saved
        self.timers = None  # the timer task
        self.sleeping = False  # it sleeps and may be woken early: see wake()
        self.stopped = False
        self.on_tick = _nothing  # called by the timer task (the board feeds its watchdog there)
        self.url = ""  # the page's address, for integrations that link to it (set at start)
        self.stats = _nothing  # -> dict of the server's figures for debug_message
        # what the board or host gives integrations (app.build sets it): "state_dir" (the
        # flash), "make_input" (buttons' pins), and on the simulator "ntp" and "clock_rate"
        self.env = {}

    def listen(self, listener):
        self.listeners.append(listener)
        return listener

    # The one entrance for a change: cmd as commands.parse gives it (set, toggle, pulse).
    # None when applied (or nothing to do), else the error as data: (code, message).
    def apply(self, cmd, cause, origin=None, hops=0, via=None):
        if origin is not None and origin == self.name:
            return None  # our own change came back around a loop of links
        try:
            changes = commands.apply(self.bank, cmd, cause)
        except commands.CommandError as e:
            return e.code, e.message
        self.publish(changes, origin, hops, via)
        return None

    # The one way out for relay changes: saved later, pulses timed, every listener told.
    def publish(self, changes, origin=None, hops=0, via=None):
        if not changes:
            return
        # first what must not be lost if the heap runs out below: the save, the pulse's end
        if self.dirty_at is None:
            self.dirty_at = ticks_ms()
            self.wake()  # the timer task must wake in time for the save
        for r, _ in changes:
            if r.off_at is not None:
                self.wake()  # a pulse started: the timer task must wake for its end
        for lst in self.listeners:
            lst.changed(changes, origin, hops, via)

    # A node message (JSON text) to every listener: a "say", a status, the whole state.
    def message(self, text):
        for lst in self.listeners:
            lst.message(text)

    # A listener's status changed: every page hears of it.
    def notify(self, listener):
        k = listener.key
        self.message(json.dumps({"type": k, k: listener.status()}))

    # Hold the listeners' output while one read's worth of commands is handled (see hub.py).
    def hold(self):
        self.relay_log.hold()

    def release(self):
        self.relay_log.release()

    def state_message(self):
        extra = None
        for lst in self.listeners:
            if lst.key is not None:
                if extra is None:
                    extra = {}
                extra[lst.key] = lst.status()
        return commands.state_message(self.name, VERSION, self.bank, extra)

    # Heap and connection figures for benchmarks and soak tests (GET /api/debug).
    def debug_message(self):
        d = {"heap": heap()}
        try:
            d["free"] = gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue]
        except AttributeError:
            d["free"] = 0
        d.update(self.stats() or {})
        return json.dumps(d)

    # A MemoryError in who's work (a relay may have moved with its message sent to some pages
    # only): logged, and everybody gets the whole state again.
    # Never raises: it runs in the timer task's and the sessions' last resort.
    def recover(self, who):
        try:
            self.log("%s: MemoryError (heap %d)" % (who, heap()))
            self.message(self.state_message())
        except Exception:
            self.log("node: MemoryError, state not sent again")

    # Persist relay state now if it changed (also called at shutdown).
    def save(self):
        self.dirty_at = None
        if self.store is not None:
            try:
                self.store.save(self.bank.snapshot())
            except OSError as e:
                self.log("state: save failed: %r" % e)

    # Wake the timer task now if it sleeps (it works out its next wake-up again). A cancelled
    # sleep does it: an asyncio.Event would cost its module's heap for this one use.
    def wake(self):
        if self.sleeping:
            self.sleeping = False
            self.timers.cancel()  # pyright: ignore[reportOptionalMemberAccess]

    # Start the timers and every integration the config names (imported only then, once the
    # boot-only modules are gone).
    def start(self):
        self.timers = asyncio.create_task(self._timers())
        pkg = __name__[: __name__.rfind(".")]
        for module, spec in self.specs:
            __import__(pkg + "." + module, None, None, ("attach",)).attach(self, spec)
        self.specs = ()
        for lst in self.listeners:
            lst.start()

    def stop(self):
        for lst in self.listeners:
            lst.stop()
        if self.timers is not None:
            self.stopped = True
            self.timers.cancel()
        self.save()

    # One round of the timers: pulse ends, the save, then every listener's tick.
    def tick(self):
        self.publish(self.bank.expire(None))
        now = ticks_ms()
        if self.dirty_at is not None and ticks_diff(now, self.dirty_at) >= self.limits["save_delay_ms"]:
            self.save()
        for lst in self.listeners:
            lst.tick(now)

    # Milliseconds until the timer task must run again (at most 500).
    def next_wait(self):
        due = self.bank.next_due(None)
        wait = 500 if due is None else min(500, due)
        if self.dirty_at is not None:
            left = self.limits["save_delay_ms"] - ticks_diff(ticks_ms(), self.dirty_at)
            wait = max(0, min(wait, left))
        return wait


    # One task for every timer of the node; it survives anything one round does.
    async def _timers(self):
        while True:
            try:
                wait = self.next_wait()
                if wait > 0:
                    self.sleeping = True
                    try:
                        await sleep_ms(wait)
                    except asyncio.CancelledError:
                        if self.sleeping or self.stopped:
                            raise  # not wake(): the task is being stopped
                        cancelled_wake(self.timers)
                    self.sleeping = False
                self.tick()
                self.on_tick()
            except MemoryError:  # a pulse's end may have reached some pages only
                self.recover("timers")
            except Exception as e:  # keep the timers alive whatever one of them does
                try:
                    self.log("timers: %r" % e)
                except Exception:
                    pass


def _nothing():
    pass


# log, made safe to call from anywhere: a failing log (a full UART, no heap for the line)
# never raises into the node.
def safe_log(log):
    def out(text):
        try:
            log(text)
        except Exception:
            pass

    return out


# Bytes of heap in use after a collection (gc.mem_alloc), for the logs and benchmarks.
def heap():
    gc.collect()
    try:
        return gc.mem_alloc()  # pyright: ignore[reportAttributeAccessIssue]
    except AttributeError:
        return 0
