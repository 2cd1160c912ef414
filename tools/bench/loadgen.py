# The load generator: WebSocket clients on raw sockets (masked frames out, a small frame parser
# in) read by one selector loop in the bench process, and page loads. The servers are other
# processes, so their CPU time (read from /proc) does not include the load generator's.
import base64
import contextlib
import json
import os
import re
import selectors
import socket
import time

from .processes import IO_TIMEOUT, BenchError

TOGGLE = b'{"type":"toggle","relay":%d}'
RELAY_PREFIX = b'{"type":"relay","id":'
NRELAYS = 4  # relay 0 is toggled; 1-3 mark the ends of throughput bursts
RELAY_PATTERNS = tuple(RELAY_PREFIX + b"%d," % i for i in range(NRELAYS))
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


class Peer:
    """A minimal WebSocket client on a raw socket: masked frames out, a small frame parser in."""

    MASK = os.urandom(4)

    def __init__(self, port, idx):
        self.idx = idx
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BenchError("connection closed during the handshake")
            head += chunk
            if len(head) > 8192:
                raise BenchError("handshake response too long")
        head, rest = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101") and not head.startswith(b"HTTP/1.0 101"):
            raise BenchError("handshake refused: %r" % head.split(b"\r\n")[0])
        self.buf = bytearray(rest)
        self.counts = [0] * NRELAYS  # relay messages received, by relay id
        self.last_on = [None] * NRELAYS
        self.t_last = 0.0  # when the last relay message came
        self.state = None
        self.errors = []
        self.closed = False
        self.frames = [self.frame(TOGGLE % r) for r in range(NRELAYS)]
        self.set_fast(False)

    def frame(self, payload, op=1):
        n = len(payload)
        head = bytes((0x80 | op, 0x80 | n)) if n < 126 else bytes((0x80 | op, 0xFE)) + n.to_bytes(2, "big")
        m = self.MASK
        return head + m + bytes(b ^ m[i & 3] for i, b in enumerate(payload))

    def send(self, data):
        self.sock.sendall(data)

    # Read what is there and handle every complete frame; t: the time of this read; quickack:
    # acknowledge at once (TCP_QUICKACK).
    def pump(self, t, quickack):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        if quickack:
            # ACK at once: with delayed ACKs (40 ms on Linux) a server whose socket has Nagle's
            # algorithm on stalls on its second small write, and the kernel timer is measured
            # instead of the server. Phones do delay ACKs: see the delayed-ACK figure.
            self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        if self.fast:
            self.count(data, t)
        else:
            self.feed(data, t)

    # Throughput mode: count relay messages in the byte stream (bytes.count runs in C), so the
    # load generator stays cheaper per message than the server. Only relay messages flow then.
    def count(self, data, t):
        s = self.tail + data
        for rid, pat in enumerate(RELAY_PATTERNS):
            n = s.count(pat)
            if n:
                self.counts[rid] += n
                self.t_last = t
        self.fast_errors += s.count(b'"type":"error"')
        self.tail = s[-(len(RELAY_PATTERNS[0]) - 1) :]

    def set_fast(self, on):
        self.fast = on
        self.tail = b""
        self.fast_errors = 0

    def feed(self, data, t):
        buf = self.buf
        buf += data
        i = 0
        n_buf = len(buf)
        while n_buf - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if n_buf - i < 4:
                    break
                n, h = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif n == 127:
                if n_buf - i < 10:
                    break
                n, h = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if b1 & 0x80:
                h += 4
            if n_buf - i < h + n:
                break
            self._frame(b0 & 0x0F, bytes(buf[i + h : i + h + n]), t)
            i += h + n
        del buf[:i]

    def _frame(self, op, payload, t):
        if op == 1 and payload.startswith(RELAY_PREFIX) and payload[22:23] == b",":
            # the relay message, compact JSON from both servers: no json.loads on the hot path
            rid = payload[21] - 48
            self.counts[rid] += 1
            self.last_on[rid] = b'"on":true' in payload
            self.t_last = t
        elif op == 1:
            msg = json.loads(payload)
            kind = msg.get("type")
            if kind == "relay":
                rid = msg["id"]
                self.counts[rid] += 1
                self.last_on[rid] = msg["on"]
                self.t_last = t
            elif kind == "state":
                self.state = msg
            else:
                self.errors.append(msg)
        elif op == 9:
            self.send(self.frame(payload, 10))
        elif op == 8:
            self.closed = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class LoadGen:
    """Clients of one server, read by one selector loop."""

    # quickack: acknowledge every read at once (Linux only), see Peer.pump.
    def __init__(self, port, quickack=QUICKACK is not None):
        self.port = port
        self.quickack = quickack and QUICKACK is not None
        self.peers = []
        self.sel = selectors.DefaultSelector()

    def connect(self):
        p = Peer(self.port, len(self.peers))
        self.peers.append(p)
        self.sel.register(p.sock, selectors.EVENT_READ, p)
        if p.buf:  # frames that came with the handshake response
            data, p.buf = bytes(p.buf), bytearray()
            p.feed(data, time.perf_counter())
        return p

    # Serve the sockets until done() is true; False on timeout or a closed peer.
    def run_until(self, done, timeout=IO_TIMEOUT):
        end = time.perf_counter() + timeout
        while not done():
            left = end - time.perf_counter()
            if left <= 0:
                return False
            for key, _ in self.sel.select(min(left, 0.5)):
                key.data.pump(time.perf_counter(), self.quickack)
            for p in self.peers:
                if p.closed:
                    return done()
        return True

    # Within the block the clients delay their ACKs as the kernel does by default (and phones do).
    @contextlib.contextmanager
    def delayed_acks(self):
        was, self.quickack = self.quickack, False
        try:
            yield self
        finally:
            self.quickack = was

    def close(self):
        for p in self.peers:
            try:
                self.sel.unregister(p.sock)
            except (KeyError, ValueError):
                pass
            p.close()
        self.peers = []
        self.sel.close()


# GET / as a phone would; returns the status, the header bytes, Content-Length, body bytes.
def get_page(port, gzip=True, timeout=IO_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        req = "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n" % (
            port,
            "Accept-Encoding: gzip, deflate\r\n" if gzip else "",
        )
        s.sendall(req.encode())
        data = b""
        length = None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if length is None and b"\r\n\r\n" in data:
                head = data.split(b"\r\n\r\n", 1)[0]
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else -1
            if length is not None and length >= 0 and len(data) >= data.index(b"\r\n\r\n") + 4 + length:
                break
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        enc = re.search(rb"(?i)\r\ncontent-encoding:\s*(\S+)", head)
        return {
            "status": status,
            "head_bytes": len(head) + 4,
            "content_length": length,
            "body_bytes": len(body),
            "wire_bytes": len(data),
            "encoding": enc.group(1).decode() if enc else None,
        }
    finally:
        s.close()
