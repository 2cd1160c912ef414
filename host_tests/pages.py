# A page as the integration tests see it: a WebSocket client of the node (websockets, sync)
# that reads the node's JSON messages with bounded waits.
import json
import time

from websockets.sync.client import connect

T = 5.0  # bound on every wait for a message


class Page:
    def __init__(self, n):
        self.ws = connect(n.ws_url, open_timeout=T, close_timeout=2, legacy=True)
        self.state = self.recv()
        assert self.state["type"] == "state", self.state

    def send(self, obj):
        self.ws.send(json.dumps(obj))

    def recv(self, timeout=T):
        return json.loads(self.ws.recv(timeout=timeout))

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

    # Nothing comes for seconds.
    def assert_quiet(self, seconds=0.5):
        try:
            msg = self.ws.recv(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError("unexpected message: %r" % msg)

    def close(self):
        self.ws.close()
