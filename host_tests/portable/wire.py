# Wire bytes for tests: WebSocket frames and upgrade requests (RFC 6455), built here without
# the code under test, so that tests can compare the firmware's output with them and feed it
# what a well-behaved client never sends (reserved bits, unmasked frames, lengths that lie).
# Portable: runs under CPython and the MicroPython unix port (host_tests/mp_run.py). Tests
# outside portable/ import it as host_tests.portable.wire.
#
#   frame(OP, payload)                   a client's frame, masked with RFC_MASK
#   frame(OP, payload, mask=None)        a server's frame, unmasked
#   frame(OP, payload, rsv=RSV1)         reserved bits as one 3-bit value (RSV1 = 4, RSV3 = 1)
#   close_frame(1000, "bye")             a close frame with code and reason
#   handshake("/ws", host="h:80")        the bytes of an upgrade request

RFC_MASK = b"\x37\xfa\x21\x3d"  # the masking key of the section 5.7 examples
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the Sec-WebSocket-Key of section 1.3

# The reserved bits of a frame's first byte (section 5.2) as frame() takes them: rsv is a
# 3-bit value 0..7 whose high bit is RSV1, so RSV1 | RSV2 | RSV3 == 7 sets all three.
RSV1 = 4
RSV2 = 2
RSV3 = 1

# The length forms of section 5.2: a 7-bit length, or 126/127 and a 16/64-bit length.
_FORMS = (7, 16, 64)


# payload as bytes: str is sent as UTF-8.
def _bytes(payload):
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytes):
        return payload
    return bytes(payload)


# The length field (after the mask bit) announcing n in the narrowest form that is at least
# `form` bits wide and holds n.
def _length(n, form, mbit):
    if form not in _FORMS:
        raise ValueError("length_form must be None, 7, 16 or 64")
    if form == 7 and n < 126:
        return bytes([mbit | n])
    if form != 64 and n < 65536:
        return bytes([mbit | 126]) + n.to_bytes(2, "big")
    return bytes([mbit | 127]) + n.to_bytes(8, "big")


# One frame (section 5.2), valid or not.
# opcode: 0..15. payload: bytes, or str sent as UTF-8. mask: a 4-byte masking key (a client's
# frame: mask bit set, payload masked) or None (a server's frame: no mask bit, no key).
# fin: the FIN bit. rsv: the three reserved bits as one value 0..7 (RSV1 = 4, RSV2 = 2,
# RSV3 = 1). length: the payload length to announce when it should differ from the payload
# sent (a frame that promises more than it carries). length_form: 7, 16 or 64 to announce the
# length in at least that form (16 and 64 give the non-minimal encodings); None picks the
# shortest form.
def frame(opcode, payload=b"", *, mask=RFC_MASK, fin=True, rsv=0, length=None, length_form=None):
    if not 0 <= opcode <= 15:
        raise ValueError("opcode must be 0..15")
    if not 0 <= rsv <= 7:
        raise ValueError("rsv must be 0..7 (RSV1 = 4, RSV2 = 2, RSV3 = 1)")
    if mask is not None and len(mask) != 4:
        raise ValueError("mask must be 4 bytes or None")
    payload = _bytes(payload)
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    head += _length(n, length_form or 7, 0 if mask is None else 0x80)
    if mask is None:
        return head + payload
    body = bytearray(payload)
    for i in range(len(body)):
        body[i] ^= mask[i & 3]
    return head + bytes(mask) + bytes(body)


# A close frame (section 5.5.1): the 2-byte code and the reason as UTF-8; no code, no payload.
# mask as for frame().
def close_frame(code=None, reason="", *, mask=RFC_MASK):
    reason = _bytes(reason)
    if code is None:
        if reason:
            raise ValueError("a close reason needs a code")
        return frame(0x8, b"", mask=mask)
    return frame(0x8, code.to_bytes(2, "big") + reason, mask=mask)


# The bytes of an upgrade request (section 4.1): request line, then Host, Upgrade, Connection,
# Sec-WebSocket-Key and Sec-WebSocket-Version in that order, then the (name, value) pairs of
# extra, then the empty line. None for host, upgrade, connection, key or version leaves that
# header out. method and http set the request line's method and HTTP version.
def handshake(path="/ws", *, host="127.0.0.1", key=RFC_KEY, version="13", extra=(),
              upgrade="websocket", connection="Upgrade", method="GET", http="HTTP/1.1"):
    head = "%s %s %s\r\n" % (method, path, http)
    for name, value in (("Host", host), ("Upgrade", upgrade), ("Connection", connection),
                        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)):
        if value is not None:
            head += "%s: %s\r\n" % (name, value)
    for name, value in extra:
        head += "%s: %s\r\n" % (name, value)
    return (head + "\r\n").encode()
