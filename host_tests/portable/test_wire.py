# Tests for host_tests/portable/wire.py, the frame and upgrade-request builder the other tests
# trust: its bytes against the literal examples of RFC 6455 and hand-written headers.
# Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
from host_tests.portable import wire
from host_tests.portable.wire import RFC_MASK, RSV1, RSV2, RSV3, close_frame, frame, handshake


def raises_value_error(f, *args, **kw):
    try:
        f(*args, **kw)
    except ValueError:
        return True
    return False


def test_frame_rfc_examples():
    # section 5.7
    assert frame(0x1, "Hello", mask=None) == b"\x81\x05\x48\x65\x6c\x6c\x6f"
    assert frame(0x1, b"Hello") == b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert frame(0x1, "Hel", mask=None, fin=False) == b"\x01\x03\x48\x65\x6c"
    assert frame(0x0, "lo", mask=None) == b"\x80\x02\x6c\x6f"
    assert frame(0x9, "Hello", mask=None) == b"\x89\x05\x48\x65\x6c\x6c\x6f"
    assert frame(0xA, "Hello", mask=RFC_MASK) == b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert frame(0x2, b"\x00" * 256, mask=None)[:4] == b"\x82\x7e\x01\x00"
    # the 64K example by its announced length (a 64K payload and its copies overflow the heap
    # of the MicroPython run)
    assert frame(0x2, mask=None, length=65536) == b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"


def test_frame_masks_with_the_given_key():
    assert frame(0x2, b"\x00\x00\x00\x00\x00", mask=b"\x01\x02\x03\x04") == (
        b"\x82\x85\x01\x02\x03\x04\x01\x02\x03\x04\x01"
    )
    assert frame(0x1) == b"\x81\x80" + RFC_MASK
    assert frame(0x1, mask=None) == b"\x81\x00"


def test_rsv_is_a_three_bit_value_rsv1_highest():
    assert (RSV1, RSV2, RSV3) == (4, 2, 1)
    assert frame(0x1, "x", mask=None, rsv=RSV1)[0] == 0xC1
    assert frame(0x1, "x", mask=None, rsv=RSV2)[0] == 0xA1
    assert frame(0x1, "x", mask=None, rsv=RSV3)[0] == 0x91
    assert frame(0x9, "x", mask=None, rsv=7, fin=False)[0] == 0x79
    assert raises_value_error(frame, 0x1, "x", rsv=8)
    assert raises_value_error(frame, 0x1, "x", rsv=0x40)


def test_length_forms():
    assert frame(0x2, b"x" * 125, mask=None)[:2] == b"\x82\x7d"
    assert frame(0x2, b"x" * 126, mask=None)[:4] == b"\x82\x7e\x00\x7e"
    assert frame(0x2, mask=None, length=65535) == b"\x82\x7e\xff\xff"
    # non-minimal forms on request
    assert frame(0x2, b"x", mask=None, length_form=16) == b"\x82\x7e\x00\x01x"
    assert frame(0x2, b"x", mask=None, length_form=64) == b"\x82\x7f" + b"\x00" * 7 + b"\x01x"
    assert frame(0x2, b"x", length_form=16)[:8] == b"\x82\xfe\x00\x01" + RFC_MASK
    # a form too narrow for the length widens to the next that holds it
    assert frame(0x2, b"x" * 126, mask=None, length_form=7)[:4] == b"\x82\x7e\x00\x7e"
    assert raises_value_error(frame, 0x2, b"x", length_form=32)


def test_announced_length_may_differ_from_payload():
    assert frame(0x1, length=4097)[:8] == b"\x81\xfe\x10\x01" + RFC_MASK
    assert frame(0x2, mask=None, length=1 << 40) == b"\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00"
    assert frame(0x1, b"ab", mask=None, length=5) == b"\x81\x05ab"


def test_bad_arguments_are_value_errors():
    assert raises_value_error(frame, 16, b"")
    assert raises_value_error(frame, -1, b"")
    assert raises_value_error(frame, 0x1, b"", mask=b"abc")
    assert raises_value_error(close_frame, None, "why")


def test_close_frame():
    assert close_frame(1000, mask=None) == b"\x88\x02\x03\xe8"
    assert close_frame(1000, "bye", mask=None) == b"\x88\x05\x03\xe8bye"
    assert close_frame(4000, b"\xe2\x82\xac", mask=None) == b"\x88\x05\x0f\xa0\xe2\x82\xac"
    assert close_frame(mask=None) == b"\x88\x00"
    assert close_frame(1001) == frame(0x8, b"\x03\xe9")


def test_handshake_default_request():
    assert handshake() == (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert wire.RFC_KEY == "dGhlIHNhbXBsZSBub25jZQ=="


def test_handshake_fields_and_extra_headers():
    req = handshake("/ws?token=t", host="node:8080", key="abc", version="8",
                    extra=(("Origin", "http://x"), ("X-A", "1")))
    assert req == (
        b"GET /ws?token=t HTTP/1.1\r\nHost: node:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 8\r\nOrigin: http://x\r\nX-A: 1\r\n\r\n"
    )
    req = handshake("/echo", method="POST", http="HTTP/1.0", host=None, upgrade=None, connection="close",
                    key=None, version=None)
    assert req == b"POST /echo HTTP/1.0\r\nConnection: close\r\n\r\n"
