# Property tests for firmware/websocket.py (CPython, hypothesis): the parser never raises,
# always ends in a sane state, gives the same result however its input is cut, and every
# message encoded with any fragmentation and mask comes back unchanged.
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import websocket as ws
from firmware.websocket import (
    CLOSED,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OPEN,
)
from host_tests.portable import wire

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers


# Reference decoder for what a Connection sends: [(fin, opcode, payload)], unmasked.
def decode(data, masked):
    frames = []
    p = 0
    while p < len(data):
        b0, b1 = data[p], data[p + 1]
        assert b0 & 0x70 == 0, "RSV bits in our output"
        assert bool(b1 & 0x80) == masked, "mask bit"
        n = b1 & 0x7F
        p += 2
        if n == 126:
            n = int.from_bytes(data[p : p + 2], "big")
            p += 2
        elif n == 127:
            n = int.from_bytes(data[p : p + 8], "big")
            p += 8
        key = data[p : p + 4] if masked else b"\0\0\0\0"
        p += 4 if masked else 0
        body = bytes(c ^ key[i & 3] for i, c in enumerate(data[p : p + n]))
        assert len(body) == n, "truncated frame in our output"
        frames.append((bool(b0 & 0x80), b0 & 0x0F, body))
        p += n
    return frames


# data cut at the given positions
def cut(data, cuts):
    pts = sorted(set(c for c in cuts if 0 < c < len(data)))
    return [data[a:b] for a, b in zip([0] + pts, pts + [len(data)])]


# Feed chunks to a fresh Connection; everything observable about the result. scratch: each
# chunk goes in as the server's reads do, a view of one reused read buffer that the parser may
# unmask in place, and that is overwritten with junk after every call.
def run(chunks, max_message=4096, client=False, scratch=False):
    c = ws.Connection(max_message, client)
    events = []
    out = b""
    rb = bytearray(max([len(x) for x in chunks] + [1]))
    for chunk in chunks:
        if scratch:
            rb[: len(chunk)] = chunk
            c.receive_data(memoryview(rb)[: len(chunk)], True)
            rb[:] = b"\xaa" * len(rb)
        else:
            c.receive_data(chunk, False)
        events += c.take_events()
        out += c.data_to_send()
    out = decode(out, client)  # also proves our output is well formed
    return c, (events, out, c.state, c.close_code, c.close_reason)


masks = st.binary(min_size=4, max_size=4)

# frames that are often nearly right, so the parser gets past the first byte
frames = st.builds(
    wire.frame,
    opcode=st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15),
    payload=st.binary(max_size=140)
    | st.sampled_from([b"\x03\xe8", b"\x03\xe8ok", b"\x03", b"\x03\xed", b"\xe2\x82", b"\xff"]),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 0, 1, 2, 4]),
    mask=st.none() | masks,
    length_form=st.none() | st.sampled_from([7, 16, 64]),
)

# random bytes, or a stream of such frames with garbage mixed in
inputs = st.binary(max_size=400) | st.lists(frames | st.binary(max_size=12), max_size=8).map(
    b"".join
)

cuts = st.lists(st.integers(0, 2000), max_size=25)


def check_sane(c, result, max_message, client):
    events, out, state, code, reason = result
    assert state in (OPEN, CLOSED)  # CLOSING only follows our own send_close
    assert (code is None) == (state == OPEN)
    if state == CLOSED:
        assert isinstance(code, int) and isinstance(reason, str)
        assert len(c._buf) == 0
        # we always answer or fail with a close frame, and send nothing after it
        assert out and out[-1][1] == OP_CLOSE
        payload = out[-1][2]
        assert len(payload) != 1 and len(payload) <= 125
        if payload:
            assert ws.valid_close_code(int.from_bytes(payload[:2], "big"))
            payload[2:].decode("utf-8")
    for fin, op, payload in out[:-1] if state == CLOSED else out:
        assert fin and op == OP_PONG and len(payload) <= 125
    for i, e in enumerate(events):
        op = e[0]
        if op == OP_TEXT:
            assert isinstance(e[1], str) and len(e[1].encode()) <= max_message
        elif op == OP_BINARY:
            assert type(e[1]) is bytes and len(e[1]) <= max_message
        elif op in (OP_PING, OP_PONG):
            assert type(e[1]) is bytes and len(e[1]) <= 125
        else:
            assert op == OP_CLOSE and i == len(events) - 1  # nothing after a close
            assert isinstance(e[1], int) and isinstance(e[2], str)
            assert state == CLOSED and code is not None


# ---------------------------------------------------------------- properties


@FAST
@given(data=inputs, cuts=cuts, client=st.booleans(), max_message=st.integers(0, 300))
def test_random_input_never_raises_and_leaves_sane_state(data, cuts, client, max_message):
    c, result = run(cut(data, cuts), max_message, client)
    check_sane(c, result, max_message, client)
    # once closed, more input changes nothing
    if c.state == CLOSED:
        c.receive_data(data + b"\x81\x00", False)
        assert c.take_events() == [] and c.data_to_send() == b""


@FAST
@given(data=inputs, cuts=cuts, client=st.booleans(), max_message=st.integers(0, 300))
def test_result_independent_of_chunking(data, cuts, client, max_message):
    _, whole = run([data], max_message, client)
    _, split = run(cut(data, cuts), max_message, client)
    _, bytewise = run([data[i : i + 1] for i in range(len(data))], max_message, client)
    _, in_place = run(cut(data, cuts), max_message, client, scratch=True)
    assert split == whole
    assert bytewise == whole
    assert in_place == whole


text_payloads = st.text(max_size=120).map(str.encode)
binary_payloads = st.binary(max_size=300)

messages = st.lists(
    st.one_of(
        st.tuples(st.just(OP_TEXT), text_payloads, st.lists(st.integers(0, 400), max_size=4)),
        st.tuples(st.just(OP_BINARY), binary_payloads, st.lists(st.integers(0, 400), max_size=4)),
        st.tuples(st.just(OP_PING), st.binary(max_size=125), st.just([])),
        st.tuples(st.just(OP_PONG), st.binary(max_size=125), st.just([])),
    ),
    max_size=6,
)


@FAST
@given(
    msgs=messages,
    pings=st.lists(st.binary(max_size=20), max_size=3),
    client=st.booleans(),
    data=st.data(),
)
def test_round_trip_any_fragmentation_mask_and_chunking(msgs, pings, client, data):
    wire = []
    want = []
    pongs = []
    limit = 0
    for op, payload, frag_cuts in msgs:
        if op in (OP_PING, OP_PONG):
            wire.append((op, payload, True))
            want.append((op, payload))
            if op == OP_PING:
                pongs.append((True, OP_PONG, payload))
            continue
        parts = cut(payload, frag_cuts) or [b""]
        for i, part in enumerate(parts):
            wire.append((op if i == 0 else OP_CONT, part, i == len(parts) - 1))
            # a control frame may arrive between fragments
            if i < len(parts) - 1 and pings:
                p = pings[i % len(pings)]
                wire.append((OP_PING, p, True))
                want.append((OP_PING, p))
                pongs.append((True, OP_PONG, p))
        want.append((op, payload.decode() if op == OP_TEXT else payload))
        limit = max(limit, len(payload))
    encoded = b""
    for op, part, fin in wire:
        # a server receives masked frames (any key, all-zero included), a client unmasked ones
        mask = None if client else data.draw(masks)
        encoded += ws.encode_frame(op, part, fin, mask)
    chunks = cut(encoded, data.draw(cuts))
    for scratch in (False, True):
        c, (events, out, state, code, _) = run(chunks, limit, client, scratch)  # the limit is exactly met
        assert events == want
        assert out == pongs
        assert (state, code) == (OPEN, None)


@FAST
@given(
    msgs=st.lists(
        st.tuples(st.sampled_from(["text", "binary", "ping"]), st.binary(max_size=200)), max_size=6
    ),
    cuts=cuts,
)
def test_client_connection_to_server_connection(msgs, cuts):
    cl = ws.Connection(client=True, max_message=4096)
    want = []
    for kind, payload in msgs:
        if kind == "text":
            text = payload.decode("latin-1")
            cl.send_text(text)
            want.append((OP_TEXT, text))
        elif kind == "binary":
            cl.send_binary(payload)
            want.append((OP_BINARY, payload))
        else:
            cl.send_ping(payload[:125])
            want.append((OP_PING, payload[:125]))
    cl.send_close(1000, "bye")
    want.append((OP_CLOSE, 1000, "bye"))
    sv, (events, out, state, code, reason) = run(cut(cl.data_to_send(), cuts), 1000)
    assert events == want
    assert (state, code, reason) == (CLOSED, 1000, "bye")
    assert out[-1] == (True, OP_CLOSE, b"\x03\xe8")
    cl.receive_data(b"".join(ws.encode_frame(op, p, fin, None) for fin, op, p in out), False)
    assert cl.state == CLOSED and cl.close_code == 1000


@FAST
@given(data=st.binary(max_size=200), a=st.integers(0, 200), b=st.integers(0, 200), mask=masks)
def test_unmask_implementations_agree(data, a, b, mask):
    start, end = sorted((min(a, len(data)), min(b, len(data))))
    want = bytearray(data)
    for i in range(start, end):
        want[i] ^= mask[(i - start) & 3]
    for f in (ws.unmask, ws._unmask_loop, ws._unmask_int):
        buf = bytearray(data)
        f(buf, start, end, mask)
        assert buf == want, f


@FAST
@given(data=st.binary(max_size=40), cuts=cuts)
def test_utf8_check_matches_python_codec(data, cuts):
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    st_ = 0
    for part in cut(data, cuts):
        if st_ >= 0:
            st_ = ws.utf8_check(st_, part, 0, len(part))
    assert (st_ == 0) == valid
    st_ = 0
    for part in cut(data, cuts):  # the plain loop, which MicroPython runs, on its own
        if st_ >= 0:
            st_ = ws._utf8_loop(st_, part, 0, len(part))
    assert (st_ == 0) == valid


@FAST
@given(code=st.integers(1000, 4999), reason=st.text(max_size=80))
def test_close_payload_is_valid_close_frame(code, reason):
    p = ws.close_payload(code, reason)
    if code == 1005:
        assert p == b""
        return
    assert len(p) <= 125 and int.from_bytes(p[:2], "big") == code
    r = p[2:].decode("utf-8")  # never cut inside a character
    assert reason.startswith(r)
