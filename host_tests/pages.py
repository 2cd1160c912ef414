# A page as the integration tests see it: a WebSocket client of the node (websockets, sync)
# that reads the node's JSON messages with bounded waits, and the `pages` fixture
# (host_tests/conftest.py) that closes every page a test opened.
import json
import time

from websockets.sync.client import connect

T = 5.0  # bound on every wait for a message


class Page:
    # n: a harness Node. query: appended to the path ("?token=..."); path: "/ws", or another
    # one the node may refuse; origin: the Origin header to send; state: the node's state
    # message comes first (read into .state). Other keywords go to websockets' connect.
    def __init__(self, n, query="", path="/ws", origin=None, state=True, **kw):
        url = "ws://127.0.0.1:%d%s%s" % (n.port, path, query)
        self.ws = connect(url, open_timeout=T, close_timeout=2, origin=origin, legacy=True, **kw)
        self.state = self.recv() if state else None
        if state:
            assert self.state["type"] == "state", self.state

    # A str or bytes goes as it is; anything else as JSON.
    def send(self, obj):
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    # The next message, parsed; its bytes must be strict UTF-8.
    def recv(self, timeout=T):
        return json.loads(self.ws.recv(timeout=timeout, decode=False).decode("utf-8", "strict"))

    # The next n messages (the caller allows any order between them).
    def recv_n(self, n, timeout=T):
        return [self.recv(timeout) for _ in range(n)]

    # The next message of type kind (others are skipped).
    def next(self, kind, timeout=T):
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m["type"] == kind:
                return m

    # The next relay message as (name, on, cause).
    def change(self, timeout=T):
        m = self.next("relay", timeout)
        return m["name"], m["on"], m["cause"]

    # Every message until nothing came for `quiet` seconds (bounded by T).
    def drain(self, quiet=0.3):
        got = []
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            try:
                got.append(self.recv(quiet))
            except TimeoutError:
                return got
        raise AssertionError("never quiet: %r" % got[-10:])

    # The relay messages among drain(quiet).
    def relays(self, quiet=0.3):
        return [m for m in self.drain(quiet) if m["type"] == "relay"]

    # Nothing comes for seconds.
    def assert_quiet(self, seconds=0.5):
        try:
            msg = self.ws.recv(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError("unexpected message: %r" % msg)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
