# The server's socket reads into its one shared buffer (compat.read_into): a reader woken with
# nothing to read (MicroPython's readinto gives None then) must go round again, never take the
# buffer's old bytes. The reads are scripted; CPython runs the node's coroutines directly.
import asyncio

from firmware import server


class Scripted:
    """A stand-in for compat.read_into: each call takes the next step (bytes, None or b"")."""

    def __init__(self, steps):
        self.steps = list(steps)

    async def __call__(self, reader, buf):
        step = self.steps.pop(0)
        if step is None:
            buf[:4] = b"JUNK"  # what an earlier read left in the shared buffer
            return None
        buf[: len(step)] = step
        return len(step)


class Bare:
    limits = {"max_head": 4096}

    def __init__(self, size=16):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)


def run(coro):
    return asyncio.run(coro)


def test_read_head_goes_round_again_on_none(monkeypatch):
    monkeypatch.setattr(server, "read_into", Scripted([None, b"GET / HTTP/1.1\r\n", None, b"Host: x\r\n\r\nab"]))
    head, rest = run(server.Node.read_head(Bare(), None))
    assert bytes(head) == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert bytes(rest) == b"ab"


# A head that came whole in one read is parsed where it lies in the shared buffer (no copy);
# one that took several reads is parsed from the bytes gathered. parse gets (data, end).
def test_read_head_parses_in_place_or_from_the_gathered_bytes(monkeypatch):
    node = Bare(64)
    seen = []

    def parse(data, end):
        seen.append((data is node.buf, bytes(data[:end])))
        return "request"

    monkeypatch.setattr(server, "read_into", Scripted([None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nab"]))
    assert run(server.Node.read_head(node, None, parse)) == ("request", b"ab")
    monkeypatch.setattr(server, "read_into", Scripted([b"GET / HTTP/1.1\r\n", None, b"Host: y\r\n\r\n"]))
    req, rest = run(server.Node.read_head(node, None, parse))
    assert (req, bytes(rest)) == ("request", b"")
    assert seen == [(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (False, b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")]


def test_read_head_none_then_eof(monkeypatch):
    monkeypatch.setattr(server, "read_into", Scripted([None, b""]))
    assert run(server.Node.read_head(Bare(), None)) == (None, None)


def test_discard_stops_at_eof_not_at_none(monkeypatch):
    steps = Scripted([b"x", None, b"yz", None, b""])
    monkeypatch.setattr(server, "read_into", steps)
    run(server.Node._discard(Bare(), None))
    assert steps.steps == []
