# Who may switch the relays: the optional access token (compared in constant time, with a
# growing lock-out after wrong guesses) and the Origin check that stops other web sites from
# driving the relays through a visitor's browser (cross-site WebSocket hijacking).
from .compat import ticks_diff

OK = 0
BAD = 1
LOCKED = 2
_MAX_LOCK_MS = 30000
# The WebSocket close code of the lock-out (a private code, RFC 6455 7.4.2): a link that is
# refused with it retries as after any failure, since the wrong guesses were someone else's.
CLOSE_LOCKED = 4429


# What a refused verdict means on the wire, for every endpoint. given: a token came (a wrong
# one), else none did.
# HTTP: (status, message, extra headers).
def http_for(verdict, given):
    if verdict == LOCKED:
        return 429, "too many wrong tokens", (("Retry-After", "30"),)
    return 401, "bad token" if given else "token required", (("WWW-Authenticate", "Bearer"),)


# WebSocket: (close code, reason).
def close_for(verdict, given):
    if verdict == LOCKED:
        return CLOSE_LOCKED, "too many wrong tokens, wait"
    return 1008, "bad token" if given else "token required"


# a == b for strings, in a time that does not depend on where they differ.
def same(a, b):
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    diff = len(a) ^ len(b)
    n = len(b)
    for i in range(len(a)):
        diff |= a[i] ^ (b[i % n] if n else 0)
    return diff == 0


# The token a request carries: "Authorization: Bearer T" or the query parameter token=T.
def request_token(req):
    h = req.header("authorization", "")
    if h[:7].lower() == "bearer ":
        return h[7:].strip()
    return req.query.get("token")


# "host[:port]" of an Origin value such as "http://relaynode.local:8080", or None.
def origin_host(origin):
    i = origin.find("://")
    if i < 0:
        return None
    return origin[i + 3 :].rstrip("/").lower()


class Guard:
    def __init__(self, token, origins, clock, log):
        self.token = token
        self.origins = [o.rstrip("/").lower() for o in origins]
        self.clock = clock
        self.log = log
        self.failures = 0
        self.locked_until = None

    def required(self):
        return bool(self.token)

    # OK, BAD or LOCKED for a presented token (None: none presented). After each wrong token
    # every attempt is refused for a while: 0.25 s, doubling to 30 s; a right one resets it.
    # (One lock for all peers: it costs no memory per address, and slows a guesser who
    # changes address just as much.)
    def check(self, given, who):
        if not self.token:
            return OK
        now = self.clock()
        if self.locked_until is not None and ticks_diff(self.locked_until, now) > 0:
            self.log("auth %s: refused, locked out after %d wrong tokens" % (who, self.failures))
            return LOCKED
        if given is None:
            return BAD  # no guess was made: nothing to lock out
        if same(given, self.token):
            self.failures = 0
            self.locked_until = None
            return OK
        self.failures += 1
        lock = min(_MAX_LOCK_MS, 250 << min(self.failures - 1, 8))
        self.locked_until = now + lock
        self.log("auth %s: wrong token (%d in a row)" % (who, self.failures))
        return BAD

    # True when a WebSocket upgrade may proceed: no Origin (not a browser), the node's own
    # origin (same Host), or one in the allowlist.
    def origin_ok(self, origin, host):
        if not origin:
            return True
        o = origin.rstrip("/").lower()
        if o in self.origins:
            return True
        oh = origin_host(o)
        return oh is not None and oh == host.strip().lower()
