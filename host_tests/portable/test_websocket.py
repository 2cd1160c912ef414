# Protocol tests for firmware/websocket.py (RFC 6455). Portable: plain functions and
# asserts, run by pytest on CPython and by host_tests/mp_run.py on the MicroPython unix port.
# Every wire example is fed whole, in 7-byte chunks and one byte at a time (see check()).
from firmware import websocket as ws
from firmware.websocket import (
    CLOSED,
    CLOSING,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OPEN,
)
from host_tests.portable import wire

MASK = b"\x37\xfa\x21\x3d"  # the mask of the RFC 6455 section 5.7 examples

# Close frames a server sends, without reason (section 5.5.1): 0x88, length, big-endian code.
CLOSE_1000 = b"\x88\x02\x03\xe8"
CLOSE_1002 = b"\x88\x02\x03\xea"
CLOSE_1007 = b"\x88\x02\x03\xef"
CLOSE_1009 = b"\x88\x02\x03\xf1"


# ---------------------------------------------------------------- helpers


# Reference decoder for frames we receive: list of (fin, opcode, payload), unmasking as
# needed; asserts the masking direction and that nothing is left over.
def decode(data, masked=False):
    frames = []
    p = 0
    while p < len(data):
        b0 = data[p]
        b1 = data[p + 1]
        assert bool(b1 & 0x80) == masked, "mask bit"
        n = b1 & 0x7F
        p += 2
        if n == 126:
            n = (data[p] << 8) | data[p + 1]
            p += 2
        elif n == 127:
            n = int.from_bytes(data[p:p + 8], "big")
            p += 8
        key = b"\x00\x00\x00\x00"
        if masked:
            key = data[p:p + 4]
            p += 4
        body = bytearray(data[p:p + n])
        assert len(body) == n, "truncated frame"
        for i in range(n):
            body[i] ^= key[i & 3]
        frames.append((bool(b0 & 0x80), b0 & 0x0F, bytes(body)))
        p += n
    return frames


# Feed the chunks to a fresh Connection; the observable result. Client output is masked
# with random keys, so it is compared decoded.
def run(chunks, max_message=4096, client=False):
    c = ws.Connection(max_message, client)
    events = []
    out = b""
    for chunk in chunks:
        c.receive_data(chunk, False)
        events += c.take_events()
        out += c.data_to_send()
    if client:
        out = decode(out, True)
    return events, out, c.state, c.close_code


# data in n-byte chunks (a generator: a list of 1-byte pieces would need much heap)
def pieces(data, n):
    for i in range(0, len(data), n):
        yield data[i:i + n]


# Feed data whole, in 7-byte chunks and byte by byte; all three must give the same result,
# which is returned as (events, out, state, close_code).
def check(data, max_message=4096, client=False):
    whole = run([data], max_message, client)
    assert run(pieces(data, 7), max_message, client) == whole, "7-byte chunks differ"
    assert run(pieces(data, 1), max_message, client) == whole, "byte by byte differs"
    return whole


# The close frame fail() sends: code plus the connection's reason.
def fail_frame(c, code):
    return wire.close_frame(code, c.close_reason, mask=None)


# Feed data whole and bytewise; assert the connection failed with code, sending a close frame
# that carries exactly that code.
def check_fail(data, code, max_message=4096, client=False):
    for chunks in ([data], pieces(data, 1)):
        c = ws.Connection(max_message, client)
        for chunk in chunks:
            c.receive_data(chunk, False)
        assert c.state == CLOSED, ("state", c.state)
        assert c.close_code == code, ("close code", c.close_code, code)
        out = c.data_to_send()
        if client:
            assert decode(out, True) == [(True, OP_CLOSE, decode(fail_frame(c, code))[0][2])]
        else:
            assert out == fail_frame(c, code), out
        assert c.take_events() == []


# Deterministic pseudo-random bytes (xorshift32), the same on both runtimes.
class Rand:
    def __init__(self, seed):
        self.x = seed or 1

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def bytes(self, n):
        b = bytearray(n)
        for i in range(n):
            b[i] = self.next() & 255
        return bytes(b)


# True when the runtime has room for a 64 KiB message several times over (CPython; the
# MicroPython unix port at 128K heap has not).
def roomy():
    import gc

    gc.collect()
    if not hasattr(gc, "mem_free"):
        return True
    return gc.mem_free() > 300000


# ---------------------------------------------------------------- handshake


def test_accept_key_rfc_example():
    # section 1.3
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_key():
    assert ws.valid_key("dGhlIHNhbXBsZSBub25jZQ==")
    assert ws.valid_key("AAAAAAAAAAAAAAAAAAAAAA==")
    assert ws.valid_key("/////////////////////w==")
    assert not ws.valid_key("")
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25jZQ=")  # too short
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25jZQ===")  # too long
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25jZQAA")  # no padding
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25jZR==")  # low bits of the last char set
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25j!Q==")
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25j\xe9Q==")
    assert not ws.valid_key("dGhlIHNhbXBsZSBub25jZQ=A")
    # the 22nd digit carries the 16th byte's last 2 bits and 4 bits of nothing: 0, 16, 32, 48
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for i, d in enumerate(b64):
        assert ws.valid_key("A" * 21 + d + "==") == (i % 16 == 0), d
        assert ws.valid_key(d * 21 + "A==")
    for c in " -_.=~\x00\x7f":
        assert not ws.valid_key(c + "A" * 20 + "Q==")


# ---------------------------------------------------------------- encoding


def test_encode_rfc_examples():
    # section 5.7
    assert ws.encode_frame(OP_TEXT, "Hello", True, None) == b"\x81\x05\x48\x65\x6c\x6c\x6f"
    assert ws.encode_frame(OP_TEXT, b"Hello", True, MASK) == (
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    )
    assert ws.encode_frame(OP_TEXT, "Hel", False, None) == b"\x01\x03\x48\x65\x6c"
    assert ws.encode_frame(OP_CONT, "lo", True, None) == b"\x80\x02\x6c\x6f"
    assert ws.encode_frame(OP_PING, "Hello", True, None) == b"\x89\x05\x48\x65\x6c\x6c\x6f"
    assert ws.encode_frame(OP_PONG, "Hello", True, MASK) == (
        b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    )
    assert ws.frame_head(OP_BINARY, 256, fin=True, mask=None) == b"\x82\x7e\x01\x00"
    assert ws.frame_head(OP_BINARY, 65536, fin=True, mask=None) == b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"


def test_frame_head_length_boundaries():
    assert ws.frame_head(OP_BINARY, 0, fin=True, mask=None) == b"\x82\x00"
    assert ws.frame_head(OP_BINARY, 125, fin=True, mask=None) == b"\x82\x7d"
    assert ws.frame_head(OP_BINARY, 126, fin=True, mask=None) == b"\x82\x7e\x00\x7e"
    assert ws.frame_head(OP_BINARY, 65535, fin=True, mask=None) == b"\x82\x7e\xff\xff"
    assert ws.frame_head(OP_BINARY, 65536, fin=True, mask=None) == b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
    assert ws.frame_head(OP_BINARY, 125, True, MASK) == b"\x82\xfd" + MASK
    assert ws.frame_head(OP_BINARY, 126, True, MASK) == b"\x82\xfe\x00\x7e" + MASK
    assert ws.frame_head(OP_BINARY, 65535, True, MASK) == b"\x82\xfe\xff\xff" + MASK
    assert ws.frame_head(OP_BINARY, 65536, True, MASK) == (
        b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00" + MASK
    )
    assert ws.frame_head(OP_TEXT, 5, False, mask=None) == b"\x01\x05"
    assert ws.frame_head(OP_CONT, 5, True, mask=None) == b"\x80\x05"


def test_encode_frame_matches_reference():
    for n in (0, 1, 3, 4, 5, 125, 126, 127, 1000):
        payload = Rand(n + 1).bytes(n)
        assert ws.encode_frame(OP_BINARY, payload, True, MASK) == wire.frame(OP_BINARY, payload)
        assert ws.encode_frame(OP_BINARY, payload, True, None) == wire.frame(OP_BINARY, payload, mask=None)
        assert decode(ws.encode_frame(OP_BINARY, payload, True, MASK), True) == [
            (True, OP_BINARY, payload)
        ]


def test_encode_frame_text_utf8():
    assert ws.encode_frame(OP_TEXT, "\u03ba\u1f79", True, None) == b"\x81\x05\xce\xba\xe1\xbd\xb9"


def test_encode_frame_does_not_change_payload():
    payload = bytearray(b"Hello")
    ws.encode_frame(OP_BINARY, payload, True, MASK)
    assert payload == b"Hello"


def test_close_payload():
    assert ws.close_payload(1000, reason="") == b"\x03\xe8"
    assert ws.close_payload(1002, "bad") == b"\x03\xeabad"
    assert ws.close_payload(None, reason="") == b""
    assert ws.close_payload(1005, reason="") == b""
    assert ws.close_payload(4999, "x" * 200) == b"\x13\x87" + b"x" * 123


def test_close_payload_cuts_reason_on_character_boundary():
    # a control payload is at most 125 bytes, and the reason must stay valid UTF-8
    for reason in ("\xe9" * 70, "a" + "\xe9" * 70, "\u20ac" * 50, "a" + "\U0001f600" * 40):
        p = ws.close_payload(1000, reason)
        assert 2 + 120 <= len(p) <= 125, len(p)
        assert ws.utf8_check(0, p, 2, len(p)) == 0, p
        assert reason.encode().startswith(p[2:])


def test_valid_close_code():
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                 3000, 3999, 4000, 4999):
        assert ws.valid_close_code(code), code
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        assert not ws.valid_close_code(code), code


# ---------------------------------------------------------------- unmasking


def test_unmask_implementations_agree():
    r = Rand(7)
    impls = (ws.unmask, ws._unmask_loop, ws._unmask_int)
    for n in (0, 1, 3, 4, 5, 15, 16, 17, 31, 64, 125, 126, 1000):
        data = r.bytes(n + 10)
        mask = r.bytes(4)
        for start in (0, 1, 3):
            end = start + n
            want = bytearray(data)
            for i in range(n):
                want[start + i] ^= mask[i & 3]
            for f in impls:
                buf = bytearray(data)
                f(buf, start, end, mask)
                assert buf == want, (f, n, start)
                f(buf, start, end, bytearray(mask))  # twice gives back the data
                assert buf == data, (f, n, start)


def test_unmask_rfc_example():
    for f in (ws.unmask, ws._unmask_loop, ws._unmask_int):
        buf = bytearray(b"\x7f\x9f\x4d\x51\x58")
        f(buf, 0, 5, MASK)
        assert buf == b"Hello"


# ---------------------------------------------------------------- UTF-8


VALID_UTF8 = (
    b"",
    b"Hello",
    b"\x7f",
    b"\xc2\x80",
    b"\xdf\xbf",
    b"\xe0\xa0\x80",
    b"\xed\x9f\xbf",  # U+D7FF, below the surrogates
    b"\xee\x80\x80",  # U+E000, above them
    b"\xef\xbf\xbf",
    b"\xf0\x90\x80\x80",
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  # "kosme"
)

INVALID_UTF8 = (
    b"\x80",  # lone continuation
    b"\xbf",
    b"\xc0\x80",  # overlong
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\x80",
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # surrogates
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc2\x41",  # missing continuation
    b"\xe2\x82\x41",
    b"a\xce\xbaz\xff",
)

TRUNCATED_UTF8 = (b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98", b"a\xf0")


def test_utf8_check_valid():
    for s in VALID_UTF8:
        assert ws.utf8_check(0, s, 0, len(s)) == 0, s


def test_utf8_check_invalid():
    for s in INVALID_UTF8:
        assert ws.utf8_check(0, s, 0, len(s)) == -1, s


def test_utf8_check_truncated_is_pending():
    for s in TRUNCATED_UTF8:
        assert ws.utf8_check(0, s, 0, len(s)) > 0, s


def test_utf8_check_every_split_point():
    for s in VALID_UTF8 + INVALID_UTF8 + TRUNCATED_UTF8:
        whole = ws.utf8_check(0, s, 0, len(s))
        for k in range(len(s) + 1):
            st = ws.utf8_check(0, s, 0, k)
            if st != -1:
                st = ws.utf8_check(st, s, k, len(s))
            assert st == whole, (s, k)


def test_utf8_check_range():
    assert ws.utf8_check(0, b"\xffabc\xff", 1, 4) == 0
    assert ws.utf8_check(0, b"ab\xe2\x82\xac", 0, 4) > 0


def test_utf8_check_rejects_invalid_prefix_at_once():
    # fail fast: the second byte already decides overlong, surrogate, too large
    for s in (b"\xe0\x80", b"\xed\xa0", b"\xf0\x80", b"\xf4\x90", b"\xc0", b"\xf5"):
        assert ws.utf8_check(0, s, 0, len(s)) == -1, s


# utf8_check (the C codec first on CPython) and the plain loop give the same verdicts, whole
# and split at every point.
def test_utf8_check_matches_loop():
    for s in VALID_UTF8 + INVALID_UTF8 + TRUNCATED_UTF8 + (b"ab\x80",):
        for k in range(len(s) + 1):
            fast = ws.utf8_check(0, s, 0, k)
            slow = ws._utf8_loop(0, s, 0, k)
            assert fast == slow, (s, k)
            if fast >= 0:
                assert ws.utf8_check(fast, s, k, len(s)) == ws._utf8_loop(slow, s, k, len(s)), (s, k)


# A text message is refused at the first fragment that cannot be UTF-8 (fail fast, 8.1),
# not at its end.
def test_invalid_utf8_fails_at_first_fragment():
    for s in (b"\xe0\x80", b"\xed\xa0", b"\xf0\x80", b"\xf4\x90", b"\xc0", b"\xf5", b"ab\x80"):
        c = ws.Connection(4096, False)
        c.receive_data(wire.frame(ws.OP_TEXT, s, fin=False), False)
        assert c.state == ws.CLOSED and c.close_code == ws.CLOSE_INVALID_DATA, s


# The UTF-8 state starts afresh with each message: a character cut at the end of one
# message is an error there and does not leak into the next.
def test_utf8_state_is_per_message():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(ws.OP_TEXT, b"\xe2\x82", fin=False) + wire.frame(ws.OP_CONT, b"\xac"), False)
    c.receive_data(wire.frame(ws.OP_TEXT, b"ok"), False)
    assert [e[1] for e in c.take_events()] == ["\u20ac", "ok"]
    c.receive_data(wire.frame(ws.OP_TEXT, b"\xe2\x82"), False)
    assert c.close_code == ws.CLOSE_INVALID_DATA


# ---------------------------------------------------------------- parsing: RFC examples


def test_rfc_masked_hello():
    data = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert check(data) == ([(OP_TEXT, "Hello")], b"", OPEN, None)


def test_rfc_unmasked_hello_client():
    data = b"\x81\x05\x48\x65\x6c\x6c\x6f"
    assert check(data, client=True) == ([(OP_TEXT, "Hello")], [], OPEN, None)


def test_rfc_fragmented_unmasked_client():
    data = b"\x01\x03\x48\x65\x6c" + b"\x80\x02\x6c\x6f"
    assert check(data, client=True) == ([(OP_TEXT, "Hello")], [], OPEN, None)


def test_rfc_fragmented_masked():
    data = wire.frame(OP_TEXT, "Hel", fin=False) + wire.frame(OP_CONT, "lo")
    assert check(data) == ([(OP_TEXT, "Hello")], b"", OPEN, None)


def test_rfc_unmasked_ping_client_answers_masked_pong():
    data = b"\x89\x05\x48\x65\x6c\x6c\x6f"
    assert check(data, client=True) == (
        [(OP_PING, b"Hello")], [(True, OP_PONG, b"Hello")], OPEN, None
    )


def test_rfc_masked_pong():
    data = b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert check(data) == ([(OP_PONG, b"Hello")], b"", OPEN, None)


def test_ping_answered_with_pong():
    assert check(wire.frame(OP_PING, "Hello")) == (
        [(OP_PING, b"Hello")], b"\x8a\x05Hello", OPEN, None
    )
    assert check(wire.frame(OP_PING)) == ([(OP_PING, b"")], b"\x8a\x00", OPEN, None)


def test_rfc_256_byte_binary_client():
    payload = Rand(3).bytes(256)
    data = b"\x82\x7e\x01\x00" + payload
    assert check(data, client=True) == ([(OP_BINARY, payload)], [], OPEN, None)


def test_rfc_64k_binary_header_client():
    # section 5.7: 0x82 0x7F 0x0000000000010000 [65536 bytes]
    head = b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
    # the length is read exactly: one byte over the limit fails at once, the limit itself waits
    check_fail(head, 1009, 65535, True)
    assert check(head, 65536, True) == ([], [], OPEN, None)
    if roomy():
        payload = bytes(range(256)) * 256
        data = head + payload
        assert check(data, 65536, True) == ([(OP_BINARY, payload)], [], OPEN, None)


# ---------------------------------------------------------------- length boundaries


def test_length_125_and_126():
    for n in (0, 1, 124, 125, 126, 127, 1000):
        payload = Rand(n + 5).bytes(n)
        assert check(wire.frame(OP_BINARY, payload)) == ([(OP_BINARY, payload)], b"", OPEN, None)
        text = "a\u20ac" * (n // 4) + "z" * (n % 4)
        assert check(wire.frame(OP_TEXT, text), 8192) == ([(OP_TEXT, text)], b"", OPEN, None)
        assert check(wire.frame(OP_BINARY, payload, mask=None), client=True) == (
            [(OP_BINARY, payload)], [], OPEN, None
        )


def test_length_126_uses_16_bit_field():
    frame = wire.frame(OP_BINARY, b"x" * 126)
    assert frame[:4] == b"\x82\xfe\x00\x7e"
    assert check(frame, 126) == ([(OP_BINARY, b"x" * 126)], b"", OPEN, None)
    check_fail(frame[:4], 1009, 125)


def test_length_65535_and_65536_headers():
    h65535 = b"\x82\xfe\xff\xff"
    h65536 = b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00"
    # the exact length is proven by the limit: n - 1 fails before any payload, n waits
    check_fail(h65535, 1009, 65534)
    assert check(h65535 + MASK, 65535) == ([], b"", OPEN, None)
    check_fail(h65536, 1009, 65535)
    assert check(h65536 + MASK, 65536) == ([], b"", OPEN, None)


def test_length_65535_and_65536_full():
    if not roomy():
        return
    for n in (65535, 65536):
        payload = bytes(range(251)) * (n // 251) + b"z" * (n % 251)
        frame = wire.frame(OP_BINARY, payload)
        assert frame[:2] == (b"\x82\xfe" if n < 65536 else b"\x82\xff")
        assert check(frame, n) == ([(OP_BINARY, payload)], b"", OPEN, None)
        assert ws.encode_frame(OP_BINARY, payload, True, MASK) == frame


def test_64_bit_length_with_top_bit_set():
    check_fail(b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x05", 1002)


def test_huge_64_bit_length_is_too_big():
    check_fail(b"\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 1009)
    check_fail(b"\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00", 1009)


# ---------------------------------------------------------------- many frames, chunking


def test_several_frames_in_one_chunk():
    data = wire.frame(OP_TEXT, "one") + wire.frame(OP_BINARY, b"two") + wire.frame(OP_PING, b"3")
    data += wire.frame(OP_TEXT, "") + wire.frame(OP_BINARY, b"")
    assert check(data) == (
        [(OP_TEXT, "one"), (OP_BINARY, b"two"), (OP_PING, b"3"), (OP_TEXT, ""),
         (OP_BINARY, b"")],
        b"\x8a\x013",
        OPEN,
        None,
    )


def test_event_types():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_TEXT, "t") + wire.frame(OP_BINARY, b"b") + wire.frame(OP_PING, b"p")
                   + wire.frame(OP_PONG, b"q"), False)
    ev = c.take_events()
    assert [type(e[1]) for e in ev] == [str, bytes, bytes, bytes]
    assert c.take_events() == []
    assert c.data_to_send() == b"\x8a\x01p"
    assert c.data_to_send() == b""


def test_partial_frame_waits():
    data = wire.frame(OP_TEXT, "Hello")
    c = ws.Connection(4096, False)
    for i in range(len(data) - 1):
        c.receive_data(data[i:i + 1], False)
        assert c.take_events() == [] and c.state == OPEN
    c.receive_data(data[-1:], False)
    assert c.take_events() == [(OP_TEXT, "Hello")]


def test_empty_input_does_nothing():
    c = ws.Connection(4096, False)
    c.receive_data(b"", False)
    assert (c.take_events(), c.data_to_send(), c.state) == ([], b"", OPEN)


def test_memoryview_and_bytearray_input():
    data = wire.frame(OP_TEXT, "Hello")
    c = ws.Connection(4096, False)
    c.receive_data(bytearray(data[:4]), False)
    c.receive_data(memoryview(data)[4:], False)
    assert c.take_events() == [(OP_TEXT, "Hello")]


# The server's reads: a view of one reused buffer, unmasked in place (scratch), overwritten
# after each call. A message in fragments, a ping between them, non-ASCII text, a frame cut
# anywhere: the same events and pongs as from bytes, and the buffer holds plain text after.
def test_scratch_input_is_unmasked_in_place():
    text = "caf\u00e9 \u20ac"
    data = (wire.frame(OP_TEXT, "Hel", fin=False) + wire.frame(OP_PING, "p") + wire.frame(OP_CONT, "lo")
            + wire.frame(OP_TEXT, text) + wire.frame(OP_BINARY, b"\x00\xff" * 70))
    want = [(OP_PING, b"p"), (OP_TEXT, "Hello"), (OP_TEXT, text), (OP_BINARY, b"\x00\xff" * 70)]
    for size in (len(data), 7, 1):
        c = ws.Connection(4096, False)
        rb = bytearray(size)
        events = []
        for i in range(0, len(data), size):
            chunk = data[i : i + size]
            rb[: len(chunk)] = chunk
            c.receive_data(memoryview(rb)[: len(chunk)], True)
            for k in range(len(rb)):
                rb[k] = 0xAA
            events += c.take_events()
        assert events == want, size
        assert c.data_to_send() == b"\x8a\x01p", size
    rb = bytearray(wire.frame(OP_TEXT, "Hello"))
    c = ws.Connection(4096, False)
    c.receive_data(memoryview(rb), True)
    assert c.take_events() == [(OP_TEXT, "Hello")]
    assert bytes(rb[-5:]) == b"Hello"  # unmasked where it lay


def test_non_ascii_text():
    text = "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001f600 \u20ac"
    assert check(wire.frame(OP_TEXT, text)) == ([(OP_TEXT, text)], b"", OPEN, None)


# ---------------------------------------------------------------- masking


def test_server_requires_masked_frames():
    check_fail(wire.frame(OP_TEXT, "Hello", mask=None), 1002)
    check_fail(wire.frame(OP_PING, "Hello", mask=None), 1002)
    check_fail(b"\x88\x00", 1002)


def test_client_requires_unmasked_frames():
    check_fail(wire.frame(OP_TEXT, "Hello"), 1002, client=True)
    check_fail(wire.frame(OP_PING), 1002, client=True)


def test_masking_error_after_good_frame():
    data = wire.frame(OP_TEXT, "ok") + wire.frame(OP_TEXT, "bad", mask=None)
    ev, out, state, code = check(data)
    assert (ev, state, code) == ([(OP_TEXT, "ok")], CLOSED, 1002)
    c = ws.Connection(4096, False)
    c.receive_data(data, False)
    assert out == fail_frame(c, 1002)


# ---------------------------------------------------------------- frame errors -> 1002


def test_rsv_bits_fail():
    for rsv in (wire.RSV1, wire.RSV2, wire.RSV3, 7):
        check_fail(wire.frame(OP_TEXT, "Hello", rsv=rsv), 1002)
        check_fail(wire.frame(OP_PING, "x", rsv=rsv), 1002)
        check_fail(wire.frame(OP_CONT, "x", rsv=rsv), 1002)


def test_unknown_opcodes_fail():
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        check_fail(wire.frame(op, "x"), 1002)
        check_fail(wire.frame(op, ""), 1002)
        check_fail(wire.frame(op, "x", mask=None), 1002, client=True)


def test_control_frame_limits():
    assert check(wire.frame(OP_PING, b"p" * 125))[0] == [(OP_PING, b"p" * 125)]
    for op in (OP_PING, OP_PONG, OP_CLOSE):
        check_fail(wire.frame(op, b"\x03\xe8" + b"p" * 124), 1002)  # 126 bytes
        check_fail(wire.frame(op, b"\x03\xe8", fin=False), 1002)  # fragmented
    check_fail(b"\x89\xfe", 1002)  # the header alone decides


def test_continuation_without_start():
    check_fail(wire.frame(OP_CONT, "lo"), 1002)
    check_fail(wire.frame(OP_CONT, "lo", fin=False), 1002)
    # after a complete message, too
    ev, out, state, code = check(wire.frame(OP_TEXT, "Hello") + wire.frame(OP_CONT, "x"))
    assert (ev, state, code) == ([(OP_TEXT, "Hello")], CLOSED, 1002)


def test_new_data_frame_inside_fragmented_message():
    for op in (OP_TEXT, OP_BINARY):
        for fin in (True, False):
            data = wire.frame(OP_TEXT, "Hel", fin=False) + wire.frame(op, "x", fin=fin)
            ev, out, state, code = check(data)
            assert (ev, state, code) == ([], CLOSED, 1002)


# ---------------------------------------------------------------- fragmentation


def test_fragmented_binary():
    data = (wire.frame(OP_BINARY, b"\x00\x01", fin=False) + wire.frame(OP_CONT, b"", fin=False)
            + wire.frame(OP_CONT, b"\x02", fin=False) + wire.frame(OP_CONT, b"\xff"))
    assert check(data) == ([(OP_BINARY, b"\x00\x01\x02\xff")], b"", OPEN, None)


def test_empty_fragments():
    data = wire.frame(OP_TEXT, "", fin=False) + wire.frame(OP_CONT, "")
    assert check(data) == ([(OP_TEXT, "")], b"", OPEN, None)


def test_control_frames_between_fragments():
    data = (wire.frame(OP_TEXT, "Hel", fin=False) + wire.frame(OP_PING, "x") + wire.frame(OP_CONT, "l", fin=False)
            + wire.frame(OP_PONG, "y") + wire.frame(OP_CONT, "o"))
    assert check(data) == (
        [(OP_PING, b"x"), (OP_PONG, b"y"), (OP_TEXT, "Hello")], b"\x8a\x01x", OPEN, None
    )


def test_ping_answered_while_message_assembles():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_BINARY, b"ab", fin=False), False)
    c.receive_data(wire.frame(OP_PING, b"?"), False)
    assert c.take_events() == [(OP_PING, b"?")]
    assert c.data_to_send() == b"\x8a\x01?"
    c.receive_data(wire.frame(OP_CONT, b"cd"), False)
    assert c.take_events() == [(OP_BINARY, b"abcd")]


def test_close_between_fragments():
    data = wire.frame(OP_TEXT, "Hel", fin=False) + wire.frame(OP_CLOSE, b"\x03\xe8")
    assert check(data) == ([(OP_CLOSE, 1000, "")], CLOSE_1000, CLOSED, 1000)


def test_messages_after_fragmented_one():
    data = (wire.frame(OP_TEXT, "a", fin=False) + wire.frame(OP_CONT, "b") + wire.frame(OP_BINARY, b"c", fin=False)
            + wire.frame(OP_CONT, b"d") + wire.frame(OP_TEXT, "e"))
    assert check(data)[0] == [(OP_TEXT, "ab"), (OP_BINARY, b"cd"), (OP_TEXT, "e")]


# ---------------------------------------------------------------- message size limit -> 1009


def test_message_limit_exact():
    assert check(wire.frame(OP_BINARY, b"x" * 100), 100)[0] == [(OP_BINARY, b"x" * 100)]
    check_fail(wire.frame(OP_BINARY, b"x" * 101), 1009, 100)
    check_fail(wire.frame(OP_TEXT, "x" * 101), 1009, 100)


def test_message_limit_checked_before_payload():
    # only the head of an oversized frame: closes at once, without waiting for mask or data
    c = ws.Connection(4096, False)
    c.receive_data(b"\x82\xfe\x10\x01", False)  # 4097 bytes announced
    assert (c.state, c.close_code) == (CLOSED, 1009)
    assert c.data_to_send() == fail_frame(c, 1009)
    check_fail(b"\x81\xfe\x10\x01", 1009)
    check_fail(b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00", 1009)
    # a 7-bit length over a tiny limit
    check_fail(b"\x82\x8b", 1009, 10)
    c = ws.Connection(4096, False)
    c.receive_data(b"\x82\xfe\x10\x00", False)  # 4096 announced: fine, waits
    assert (c.state, c.data_to_send()) == (OPEN, b"")


def test_fragmented_message_over_limit():
    ok = wire.frame(OP_BINARY, b"x" * 6, fin=False) + wire.frame(OP_CONT, b"y" * 4)
    assert check(ok, 10)[0] == [(OP_BINARY, b"xxxxxxyyyy")]
    bad = wire.frame(OP_BINARY, b"x" * 6, fin=False) + wire.frame(OP_CONT, b"y" * 5)
    ev, out, state, code = check(bad, 10)
    assert (ev, state, code) == ([], CLOSED, 1009)
    # closes at the head of the frame that crosses the limit
    c = ws.Connection(10, False)
    c.receive_data(wire.frame(OP_TEXT, "x" * 6, fin=False) + wire.frame(OP_CONT, "y" * 4, fin=False), False)
    assert c.state == OPEN
    c.receive_data(b"\x80\x81", False)
    assert (c.state, c.close_code) == (CLOSED, 1009)


def test_control_frames_not_counted_in_limit():
    data = wire.frame(OP_BINARY, b"x" * 8, fin=False) + wire.frame(OP_PING, b"p" * 100) + wire.frame(OP_CONT, b"yy")
    assert check(data, 10)[0] == [(OP_PING, b"p" * 100), (OP_BINARY, b"x" * 8 + b"yy")]


def test_limit_applies_per_message():
    data = wire.frame(OP_BINARY, b"x" * 10) + wire.frame(OP_BINARY, b"y" * 10)
    assert check(data, 10)[0] == [(OP_BINARY, b"x" * 10), (OP_BINARY, b"y" * 10)]


# ---------------------------------------------------------------- UTF-8 in messages -> 1007


def test_invalid_utf8_text_fails():
    for s in INVALID_UTF8 + TRUNCATED_UTF8:
        check_fail(wire.frame(OP_TEXT, s), 1007)


def test_invalid_utf8_in_binary_is_fine():
    assert check(wire.frame(OP_BINARY, b"\xff\xfe"))[0] == [(OP_BINARY, b"\xff\xfe")]


def test_valid_multibyte_split_across_fragments():
    for s in (b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"a\xce\xba\xe1\xbd\xb9"):
        for k in range(len(s) + 1):
            data = wire.frame(OP_TEXT, s[:k], fin=False) + wire.frame(OP_CONT, s[k:])
            assert check(data) == ([(OP_TEXT, s.decode())], b"", OPEN, None), (s, k)
        # one byte per fragment
        data = b"".join(wire.frame(OP_TEXT if i == 0 else OP_CONT, s[i:i + 1], fin=(i == len(s) - 1))
                        for i in range(len(s)))
        assert check(data)[0] == [(OP_TEXT, s.decode())]


def test_invalid_sequence_split_across_fragments():
    for s in (b"\xce\xff", b"\xe2\x82\x41", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
              b"\xe0\x80\x80"):
        for k in range(1, len(s)):
            data = wire.frame(OP_TEXT, s[:k], fin=False) + wire.frame(OP_CONT, s[k:])
            ev, out, state, code = check(data)
            assert (ev, state, code) == ([], CLOSED, 1007), (s, k)


def test_truncated_sequence_at_end_of_message():
    data = wire.frame(OP_TEXT, b"ok\xe2", fin=False) + wire.frame(OP_CONT, b"\x82")
    ev, out, state, code = check(data)
    assert (ev, state, code) == ([], CLOSED, 1007)
    # the next message does not complete the previous one's sequence
    data = wire.frame(OP_TEXT, b"\xe2\x82") + wire.frame(OP_TEXT, b"\xac")
    assert check(data)[2:] == (CLOSED, 1007)


def test_invalid_utf8_fails_fast():
    # the first fragment is already invalid: close before the final fragment arrives
    for bad in (b"\xff", b"ok\xc0", b"\xed\xa0", b"\xf4\x90", b"\xe0\x80", b"\xce\xba\x80"):
        c = ws.Connection(4096, False)
        c.receive_data(wire.frame(OP_TEXT, bad, fin=False), False)
        assert (c.state, c.close_code) == (CLOSED, 1007), bad
        assert c.data_to_send() == fail_frame(c, 1007)
        c.receive_data(wire.frame(OP_CONT, "more"), False)
        assert c.take_events() == [] and c.data_to_send() == b""


def test_invalid_utf8_second_fragment_fails_before_final():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_TEXT, "\u03ba", fin=False), False)
    assert c.state == OPEN
    c.receive_data(wire.frame(OP_CONT, b"\xce", fin=False), False)  # a valid prefix
    assert c.state == OPEN
    c.receive_data(wire.frame(OP_CONT, b"\xff", fin=False), False)
    assert (c.state, c.close_code) == (CLOSED, 1007)


def test_control_frame_between_text_fragments_keeps_utf8_state():
    data = wire.frame(OP_TEXT, b"\xe2", fin=False) + wire.frame(OP_PING, b"\xff") + wire.frame(OP_CONT, b"\x82\xac")
    assert check(data) == ([(OP_PING, b"\xff"), (OP_TEXT, "\u20ac")], b"\x8a\x01\xff", OPEN, None)


# ---------------------------------------------------------------- closing handshake


def test_close_echoes_code():
    for code in (1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999):
        payload = bytes([code >> 8, code & 255])
        want = b"\x88\x02" + payload
        assert check(wire.frame(OP_CLOSE, payload)) == ([(OP_CLOSE, code, "")], want, CLOSED, code)


def test_close_with_reason():
    data = wire.frame(OP_CLOSE, b"\x03\xe8bye \xe2\x82\xac")
    assert check(data) == ([(OP_CLOSE, 1000, "bye \u20ac")], CLOSE_1000, CLOSED, 1000)
    c = ws.Connection(4096, False)
    c.receive_data(data, False)
    assert c.close_reason == "bye \u20ac"


def test_close_with_longest_reason():
    data = wire.frame(OP_CLOSE, b"\x0b\xb8" + b"r" * 123)
    assert check(data) == ([(OP_CLOSE, 3000, "r" * 123)], b"\x88\x02\x0b\xb8", CLOSED, 3000)


def test_empty_close_echoes_empty():
    assert check(wire.frame(OP_CLOSE)) == ([(OP_CLOSE, 1005, "")], b"\x88\x00", CLOSED, 1005)


def test_close_one_byte_payload():
    check_fail(wire.frame(OP_CLOSE, b"\x03"), 1002)


def test_close_invalid_codes():
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        check_fail(wire.frame(OP_CLOSE, bytes([code >> 8, code & 255])), 1002)


def test_close_invalid_utf8_reason():
    for s in (b"\xff", b"ab\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"):
        check_fail(wire.frame(OP_CLOSE, b"\x03\xe8" + s), 1007)


def test_close_frame_bytes_from_send_close():
    c = ws.Connection(4096, False)
    c.send_close(1002, reason="")
    assert c.data_to_send() == CLOSE_1002
    c = ws.Connection(4096, False)
    c.send_close(1000, "bye")
    assert c.data_to_send() == b"\x88\x05\x03\xe8bye"
    c = ws.Connection(4096, False)
    c.send_close(code=1000, reason="")
    assert c.data_to_send() == CLOSE_1000
    c = ws.Connection(4096, False)
    c.send_close(1005, reason="")
    assert c.data_to_send() == b"\x88\x00"


def test_fail_sends_close_frame():
    c = ws.Connection(4096, False)
    c.fail(1002, reason="")
    assert c.data_to_send() == CLOSE_1002
    assert (c.state, c.close_code) == (CLOSED, 1002)
    c = ws.Connection(4096, False)
    c.fail(1007, reason="")
    assert c.data_to_send() == CLOSE_1007
    c = ws.Connection(4096, False)
    c.fail(1009, reason="")
    assert c.data_to_send() == CLOSE_1009
    c.fail(1002, reason="")  # once closed, nothing more
    assert c.data_to_send() == b"" and c.close_code == 1009


def test_send_close_then_peer_close():
    c = ws.Connection(4096, False)
    c.send_close(1000, "done")
    assert c.data_to_send() == b"\x88\x06\x03\xe8done"
    assert (c.state, c.close_code) == (CLOSING, 1000)
    c.send_text("late")  # no data after our close frame
    c.send_close(1001, reason="")
    assert c.data_to_send() == b""
    c.receive_data(wire.frame(OP_TEXT, "still"), False)  # the peer may send data before its close
    assert c.take_events() == [(OP_TEXT, "still")]
    c.receive_data(wire.frame(OP_CLOSE, b"\x03\xe8"), False)
    assert c.take_events() == [(OP_CLOSE, 1000, "")]
    assert (c.state, c.close_code) == (CLOSED, 1000)
    assert c.data_to_send() == b""  # the close is not echoed twice


def test_send_close_then_peer_close_bytewise():
    data = wire.frame(OP_CLOSE, b"\x03\xe9")
    c = ws.Connection(4096, False)
    c.send_close(1000, reason="")
    c.data_to_send()
    for i in range(len(data)):
        c.receive_data(data[i:i + 1], False)
    assert (c.state, c.close_code, c.take_events()) == (CLOSED, 1000, [(OP_CLOSE, 1001, "")])


def test_protocol_error_while_closing():
    c = ws.Connection(4096, False)
    c.send_close(1000, reason="")
    c.data_to_send()
    c.receive_data(wire.frame(OP_TEXT, "unmasked", mask=None), False)
    assert c.state == CLOSED
    assert c.data_to_send() == b""  # our close frame is already out


def test_after_closed_input_is_ignored():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_CLOSE, b"\x03\xe8") + wire.frame(OP_TEXT, "after"), False)
    assert c.take_events() == [(OP_CLOSE, 1000, "")]
    assert c.data_to_send() == CLOSE_1000
    c.receive_data(wire.frame(OP_TEXT, "more") + wire.frame(OP_PING, "p"), False)
    c.receive_data(b"\xff\xff\xff", False)
    assert (c.take_events(), c.data_to_send(), c.state, c.close_code) == ([], b"", CLOSED, 1000)
    c.send_text("x")
    c.send_ping(data=b"")
    c.send_close(code=1000, reason="")
    assert c.data_to_send() == b""


def test_after_failure_input_is_ignored():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_TEXT, "bad", mask=None) + wire.frame(OP_TEXT, "good"), False)
    assert c.take_events() == [] and c.state == CLOSED
    c.data_to_send()
    c.receive_data(wire.frame(OP_TEXT, "good"), False)
    assert (c.take_events(), c.data_to_send(), c.close_code) == ([], b"", 1002)


def test_receive_eof():
    c = ws.Connection(4096, False)
    c.receive_eof()
    assert (c.state, c.close_code, c.data_to_send()) == (CLOSED, 1006, b"")
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(OP_CLOSE, b"\x03\xe8"), False)
    c.receive_eof()
    assert (c.state, c.close_code) == (CLOSED, 1000)
    c = ws.Connection(4096, False)
    c.send_close(1001, reason="")
    c.receive_eof()
    assert (c.state, c.close_code) == (CLOSED, 1001)


# ---------------------------------------------------------------- sending


def test_server_sends_unmasked():
    c = ws.Connection(4096, False)
    c.send_text("Hello")
    c.send_binary(b"\x00\xff")
    c.send_ping(b"p")
    c.send_ping(data=b"")
    assert c.data_to_send() == (b"\x81\x05Hello" + b"\x82\x02\x00\xff" + b"\x89\x01p"
                                + b"\x89\x00")
    c.send_text("\u20ac")
    assert c.data_to_send() == b"\x81\x03\xe2\x82\xac"
    c.send_binary(b"x" * 126)
    assert c.data_to_send() == b"\x82\x7e\x00\x7e" + b"x" * 126


def test_client_masks_outgoing_frames():
    c = ws.Connection(client=True, max_message=4096)
    c.send_text("Hello")
    c.send_binary(b"\x00\x01\x02" * 50)
    c.send_ping(b"p")
    c.send_close(1000, "bye")
    out = c.data_to_send()
    assert decode(out, True) == [
        (True, OP_TEXT, b"Hello"),
        (True, OP_BINARY, b"\x00\x01\x02" * 50),
        (True, OP_PING, b"p"),
        (True, OP_CLOSE, b"\x03\xe8bye"),
    ]
    # a server Connection accepts every frame
    s = ws.Connection(4096, False)
    s.receive_data(out, False)
    assert s.take_events() == [
        (OP_TEXT, "Hello"),
        (OP_BINARY, b"\x00\x01\x02" * 50),
        (OP_PING, b"p"),
        (OP_CLOSE, 1000, "bye"),
    ]
    assert s.data_to_send() == b"\x8a\x01p" + CLOSE_1000
    c.receive_data(b"\x8a\x01p" + CLOSE_1000, False)
    assert c.take_events() == [(OP_PONG, b"p"), (OP_CLOSE, 1000, "")]
    assert (c.state, c.close_code) == (CLOSED, 1000)


def test_client_echoes_close_masked():
    c = ws.Connection(client=True, max_message=4096)
    c.receive_data(wire.frame(OP_CLOSE, b"\x0f\xa0", mask=None), False)
    s = ws.Connection(4096, False)
    s.receive_data(c.data_to_send(), False)
    assert s.take_events() == [(OP_CLOSE, 4000, "")]


def test_client_failure_sends_masked_close():
    c = ws.Connection(client=True, max_message=4096)
    c.receive_data(wire.frame(OP_TEXT, "masked"), False)
    assert (c.state, c.close_code) == (CLOSED, 1002)
    s = ws.Connection(4096, False)
    s.receive_data(c.data_to_send(), False)
    assert s.take_events() == [(OP_CLOSE, 1002, c.close_reason)]


def test_client_to_server_round_trip():
    c = ws.Connection(client=True, max_message=4096)
    s = ws.Connection(max_message=100000, client=False)
    msgs = ["", "x", "\U0001f600" * 40, "y" * 200]
    for m in msgs:
        c.send_text(m)
    c.send_binary(bytes(range(256)) * 4)
    out = c.data_to_send()
    for i in range(0, len(out), 13):
        s.receive_data(out[i:i + 13], False)
    want = [(OP_TEXT, m) for m in msgs] + [(OP_BINARY, bytes(range(256)) * 4)]
    assert s.take_events() == want


# ---------------------------------------------------------------- robustness


def test_no_exception_escapes_receive_data():
    r = Rand(12345)
    for trial in range(60):
        for client in (False, True):
            c = ws.Connection(64 + trial, client)
            data = r.bytes(r.next() % 200)
            if trial % 3 == 0:  # start with a plausible head so the parser gets deeper
                b1 = (0 if client else 0x80) | (r.next() % 128)
                data = bytes([0x80 | (r.next() % 11), b1]) + data
            i = 0
            while i < len(data):
                k = 1 + r.next() % 17
                c.receive_data(data[i:i + k], False)
                i += k
            assert c.state in (OPEN, CLOSING, CLOSED)
            if c.state == CLOSED:
                assert c.close_code is not None
            for e in c.take_events():
                assert e[0] in (OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE), e
            c.data_to_send()


def test_nasty_inputs_never_raise():
    inputs = (
        b"\xff" * 32,
        b"\x00" * 32,
        b"\x80" * 32,
        b"\x88\x81\x00\x00\x00\x00\x03",
        b"\x88\x83\x00\x00\x00\x00\x03\xe8\xff",
        b"\x88\xfd" + b"\x00" * 200,
        b"\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff",
        b"\x81\x84\x00\x00\x00\x00\xf4\x90\x80\x80",
        # text fragment "\xe2", empty ping, final fragment "A": invalid across a control frame
        b"\x01\x81\x00\x00\x00\x00\xe2" + b"\x89\x80\x00\x00\x00\x00"
        + b"\x80\x81\x00\x00\x00\x00\x41",
    )
    for data in inputs:
        for client in (False, True):
            for n in (1, 3, len(data)):
                c = ws.Connection(100, client)
                for chunk in pieces(data, n):
                    c.receive_data(chunk, False)
                c.take_events()
                c.data_to_send()
                assert c.state in (OPEN, CLOSING, CLOSED)


def test_buffer_is_consumed():
    c = ws.Connection(4096, False)
    data = wire.frame(OP_TEXT, "Hello")
    for i in range(200):
        c.receive_data(data[:3], False)
        c.receive_data(data[3:] + data[:i % 8], False)
        assert c.take_events() == [(OP_TEXT, "Hello")]
        c.receive_data(data[i % 8:], False)
        assert c.take_events() == [(OP_TEXT, "Hello")]
        assert len(c._buf) == 0


# unmask's answer: below 0x80 only when every byte it wrote is ASCII (the viper version says
# so, and lets an ASCII text message skip the UTF-8 check); 0x80 and above otherwise.
def test_unmask_answer_tells_ascii():
    for payload in (b"", b"hi", b'{"type":"toggle","relay":0}', b"caf\xc3\xa9", b"\xff" + b"a" * 40):
        buf = bytearray(payload[i] ^ MASK[i & 3] for i in range(len(payload)))
        o = ws.unmask(buf, 0, len(buf), MASK)
        assert bytes(buf) == payload
        if any(b >= 0x80 for b in payload):
            assert o >= 0x80, payload
        elif o < 0x80:
            assert all(b < 0x80 for b in payload)


# An ASCII text message and a non-ASCII one decode the same whichever way unmask answered.
def test_ascii_and_utf8_text_messages_decode():
    c = ws.Connection(4096, False)
    c.receive_data(wire.frame(ws.OP_TEXT, b"plain") + wire.frame(ws.OP_TEXT, "caf\u00e9".encode()), False)
    assert [e[1] for e in c.take_events()] == ["plain", "caf\u00e9"]
    c.receive_data(wire.frame(ws.OP_TEXT, b"ok\xc3"), False)
    assert c.close_code == ws.CLOSE_INVALID_DATA
