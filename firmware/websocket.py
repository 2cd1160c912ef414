# Sans-I/O WebSocket protocol (RFC 6455) for the server side and, with client=True, the
# client side. Bytes in (receive_data), events out (events), bytes out (data_to_send).
# No sockets, no asyncio: the same code runs on CPython and MicroPython.
import binascii
import hashlib
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:

    def const(x):
        return x


# Opcodes (RFC 6455 section 5.2).
OP_CONT = const(0)
OP_TEXT = const(1)
OP_BINARY = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)

# Close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL_ERROR = const(1002)
CLOSE_UNSUPPORTED = const(1003)
CLOSE_NO_STATUS = const(1005)
CLOSE_ABNORMAL = const(1006)
CLOSE_INVALID_DATA = const(1007)
CLOSE_POLICY = const(1008)
CLOSE_TOO_BIG = const(1009)
CLOSE_INTERNAL = const(1011)
CLOSE_TRY_AGAIN = const(1013)

# Connection states.
OPEN = const(1)
CLOSING = const(2)  # we sent a close frame and wait for the peer's
CLOSED = const(3)  # close handshake done or connection failed: flush, then drop TCP

_GUID = const(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
_B64 = const("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


# Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (section 4.2.2 step 5.4).
def accept_key(key):
    if isinstance(key, str):
        key = key.encode()
    return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest())[:-1].decode()


# True when key is base64 of exactly 16 bytes (section 4.1: 24 characters, "==" padded).
# strip() leaves nothing of the first 22 only when all are base64 digits (http._is_token).
def valid_key(key):
    if len(key) != 24 or key[22:] != "==" or key[:22].strip(_B64):
        return False
    return key[21] in "AQgw"  # the 16th byte ends on the last 4 bits: they are zero (digits 0, 16, 32, 48)


# The head of a frame; mask is 4 bytes or None (section 5.2).
def frame_head(opcode, n, fin, mask):
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    return head + mask if mask else head


# A whole frame. Server frames are unmasked; a client passes a fresh 4-byte mask.
def encode_frame(opcode, payload, fin, mask):
    if isinstance(payload, str):
        payload = payload.encode()
    head = frame_head(opcode, len(payload), fin, mask)
    if mask:
        payload = bytearray(payload)
        unmask(payload, 0, len(payload), mask)
    return head + payload


# Payload of a close frame: 2-byte code plus UTF-8 reason, at most 125 bytes (section 5.5.1).
def close_payload(code, reason):
    if code is None or code == CLOSE_NO_STATUS:
        return b""
    r = reason.encode()
    if len(r) > 123:
        n = 123
        while r[n] & 0xC0 == 0x80:  # cut before a whole character: the reason stays UTF-8
            n -= 1
        r = r[:n]
    return struct.pack("!H", code) + r


# Close codes a peer may send (section 7.4): registered ones and 3000-4999.
def valid_close_code(code):
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


# XOR buf[start:end] in place with the 4-byte mask (section 5.3). Three versions: viper
# machine code where the runtime can compile it, big-int XOR on CPython (runs in C), and a
# portable per-byte loop. The viper one returns the OR of the bytes it wrote: below 0x80 the
# payload is ASCII, which is valid UTF-8 without a check; the others return 0x80 (not known).
def _unmask_loop(buf, start, end, mask):
    j = 0
    for i in range(start, end):
        buf[i] ^= mask[j & 3]
        j += 1
    return 0x80


def _unmask_int(buf, start, end, mask):
    n = end - start
    if n < 16:
        return _unmask_loop(buf, start, end, mask)
    reps = bytes(mask) * ((n >> 2) + 1)
    x = int.from_bytes(buf[start:end], "little") ^ int.from_bytes(reps[:n], "little")
    buf[start:end] = x.to_bytes(n, "little")
    return 0x80


# Compiled on the device by its own compiler, so one .mpy serves every architecture; a
# runtime without the native emitter keeps the fallback.
_VIPER = const("""
@micropython.viper
def unmask(buf: ptr8, start: int, end: int, mask: ptr8) -> int:
    i = start
    j = 0
    o = 0
    while i < end:
        b = buf[i] ^ mask[j & 3]
        buf[i] = b
        o |= b
        i += 1
        j += 1
    return o
""")

_CPY = False
try:
    import micropython

    _g = {}
    _g["micropython"] = micropython
    exec(_VIPER, _g)
    unmask = _g["unmask"]
    del _g, micropython
except Exception as e:
    _CPY = isinstance(e, ImportError)
    unmask = _unmask_int


# Incremental UTF-8 check (RFC 3629, the strict rules of RFC 6455 section 8.1): rejects
# overlong forms, surrogates and code points above U+10FFFF. state 0 means "at a character
# boundary"; -1 means invalid; anything else packs (bytes still needed, next-byte range).
# On CPython a chunk that starts and ends on character boundaries is judged by the C codec,
# which is as strict; MicroPython's str() is not, so there the loop decides.
def utf8_check(state, data, i, end):
    if _CPY and not state:
        try:
            str(data[i:end], "utf-8")
            return 0
        except UnicodeError:
            pass  # invalid, or a character cut at the end: the loop tells which
    return _utf8_loop(state, data, i, end)


def _utf8_loop(state, data, i, end):
    need = state & 3
    lo = (state >> 2) & 0xFF
    hi = (state >> 10) & 0xFF
    while i < end:
        b = data[i]
        i += 1
        if need:
            if b < lo or b > hi:
                return -1
            need -= 1
            lo = 0x80
            hi = 0xBF
        elif b < 0x80:
            continue
        elif b < 0xC2:
            return -1
        else:
            lo = 0x80
            hi = 0xBF
            if b < 0xE0:
                need = 1
            elif b < 0xF0:
                need = 2
                if b == 0xE0:
                    lo = 0xA0
                elif b == 0xED:
                    hi = 0x9F
            elif b < 0xF5:
                need = 3
                if b == 0xF0:
                    lo = 0x90
                elif b == 0xF4:
                    hi = 0x8F
            else:
                return -1
    return need | (lo << 2) | (hi << 10) if need else 0


# One WebSocket connection. Feed bytes with receive_data(); read events (tuples) from
# .events; send what data_to_send() returns. Events:
#   (OP_TEXT, str) (OP_BINARY, bytes) (OP_PING, bytes) (OP_PONG, bytes) (OP_CLOSE, code, reason)
# Protocol errors never raise: they queue a close frame and set state to CLOSED.
class Connection:
    # Immutable defaults live on the class: an instance stores only what it changes, which
    # keeps its attribute table (and the per-connection heap) small on MicroPython.
    client = False
    state = OPEN
    close_code = None  # the code that ended the connection, ours or the peer's
    close_reason = ""
    _buf = b""  # the start of a frame whose rest has not arrived yet
    _msg = None  # fragments of a message in progress
    _msg_op = OP_TEXT  # opcode of the message in progress
    _u8 = 0  # utf8_check state of the text message in progress
    max_message = 1024
    events = None  # received events (a list once there is one)
    _out = None  # frames to send (a list once there is one)

    def __init__(self, max_message, client):
        if max_message != self.max_message:
            self.max_message = max_message
        if client:
            self.client = True

    # Feed bytes as they arrive, in chunks of any size. Whole frames are parsed straight out
    # of data; only the start of an unfinished frame is kept for the next call. scratch: data
    # is a writable buffer the caller needs no more (a read buffer), so payloads are unmasked
    # where they lie instead of in a copy.
    def receive_data(self, data, scratch):
        if self.state == CLOSED:
            return
        buf = self._buf
        if buf:
            buf += data  # a bytearray: grows in place
            data = buf
            scratch = True  # our own
        p = 0
        while self.state != CLOSED:
            q = self._parse(data, p, scratch)
            if not q:
                break
            p = q
        if p >= len(data) or self.state == CLOSED:
            if buf:
                self._buf = b""
        elif p or not buf:
            self._buf = bytearray(memoryview(data)[p:])

    # The peer closed TCP; without a close frame that is an abnormal closure (section 7.1.5).
    def receive_eof(self):
        if self.state != CLOSED:
            self.state = CLOSED
            if self.close_code is None:
                self.close_code = CLOSE_ABNORMAL

    # Bytes to write, joined; empties the queue.
    def data_to_send(self):
        out = self._out
        if not out:
            return b""
        self._out = None
        return out[0] if len(out) == 1 else b"".join(out)

    # Events received so far, as a list; empties it.
    def take_events(self):
        ev = self.events
        if ev is None:
            return []
        self.events = None
        return ev

    # The lists are made on first use: an idle connection holds none.
    def _event(self, ev):
        if self.events is None:
            self.events = [ev]
        else:
            self.events.append(ev)

    # Queue a frame to send; a client masks it with a fresh key (RFC 6455 5.3).
    def _queue(self, op, payload):
        import os

        frame = encode_frame(op, payload, True, os.urandom(4) if self.client else None)
        if self._out is None:
            self._out = [frame]
        else:
            self._out.append(frame)

    def send_text(self, text):
        self._send(OP_TEXT, text)

    def send_binary(self, data):
        self._send(OP_BINARY, data)

    def send_ping(self, data):
        self._send(OP_PING, data)

    def _send(self, op, data):
        if self.state == OPEN:
            self._queue(op, data)

    # Start the closing handshake (section 7.1.2).
    def send_close(self, code, reason):
        if self.state == OPEN:
            self._queue(OP_CLOSE, close_payload(code, reason))
            self.state = CLOSING
            self.close_code = code
            self.close_reason = reason

    # _Fail the WebSocket Connection_ (section 7.1.7): send a close frame, stop reading. A
    # frame or message in progress is dropped: nothing more is parsed.
    def fail(self, code, reason):
        if self.state == OPEN:
            self._queue(OP_CLOSE, close_payload(code, reason))
        if self.state != CLOSED:
            self.close_code = code
            self.close_reason = reason
        self.state = CLOSED
        if self._buf:
            self._buf = b""
        if self._msg is not None:
            self._msg = None

    # Parse the frame at buf[p:]; the index just past it, or 0 when more bytes are needed or
    # the connection failed. scratch: buf may be unmasked in place (receive_data).
    def _parse(self, buf, p, scratch):
        avail = len(buf) - p
        if avail < 2:
            return 0
        b0 = buf[p]
        b1 = buf[p + 1]
        fin = b0 & 0x80
        op = b0 & 0x0F
        n = b1 & 0x7F
        if b0 & 0x70:
            return self.fail(CLOSE_PROTOCOL_ERROR, "reserved bits set")  # 5.2, no extension
        if bool(b1 & 0x80) == self.client:
            # 5.1: clients must mask, servers must not
            return self.fail(CLOSE_PROTOCOL_ERROR, "frame masking wrong")
        if op >= 8:
            if op > OP_PONG:
                return self.fail(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            if not fin or n > 125:  # 5.5: control frames are short and unfragmented
                return self.fail(CLOSE_PROTOCOL_ERROR, "bad control frame")
        elif op > OP_BINARY:
            return self.fail(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        elif op == OP_CONT:
            if self._msg is None:
                return self.fail(CLOSE_PROTOCOL_ERROR, "continuation without start")
        elif self._msg is not None:
            return self.fail(CLOSE_PROTOCOL_ERROR, "new message inside fragmented one")
        h = 2
        if n == 126:
            if avail < 4:
                return 0
            n = (buf[p + 2] << 8) | buf[p + 3]
            h = 4
        elif n == 127:
            if avail < 10:
                return 0
            if buf[p + 2] & 0x80:  # 5.2: the most significant bit must be 0
                return self.fail(CLOSE_PROTOCOL_ERROR, "bad length")
            n = struct.unpack_from("!Q", buf, p + 2)[0]
            h = 10
        if op < 8:
            have = len(self._msg) if self._msg is not None else 0
            if have + n > self.max_message:  # 10.4: checked before the payload is read
                return self.fail(CLOSE_TOO_BIG, "message too big")
        m = 4 if b1 & 0x80 else 0
        start = p + h + m
        end = start + n
        if len(buf) < end:
            return 0
        o = 0x80
        if scratch:  # the payload unmasked where it lies, and a view of it: no copy
            if m:
                o = unmask(buf, start, end, buf[start - 4 : start])
            data = (buf if isinstance(buf, memoryview) else memoryview(buf))[start:end]
        else:  # a copy of the payload, unmasked in place
            data = bytearray(memoryview(buf)[start:end])
            if m:
                o = unmask(data, 0, n, buf[start - 4 : start])
        if op >= 8:
            self._control(op, data)
            return end
        if fin and op == OP_TEXT and (o < 0x80 or _CPY):
            # a whole text message in one frame: ASCII needs no check, and CPython's codec is
            # as strict as section 8.1 asks, so one decode both checks and converts
            try:
                self._event((OP_TEXT, str(data, "utf-8")))
            except UnicodeError:
                return self.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            return end
        # (attributes are written only when they change: each one stored costs heap per client)
        if op != OP_CONT:
            if op != self._msg_op:
                self._msg_op = op
            if self._u8:
                self._u8 = 0
        if self._msg_op == OP_TEXT and (o >= 0x80 or self._u8):  # all ASCII: nothing to check
            u = utf8_check(self._u8, data, 0, n)
            if u < 0:
                return self.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            if u != self._u8:
                self._u8 = u
        if not fin or self._msg is not None:
            if self._msg is None:
                # a copy of its own, not a view into the reader's buffer (scratch), reused next
                self._msg = data if isinstance(data, bytearray) else bytearray(data)
            else:
                self._msg += data
            if not fin:
                return end
            data = self._msg
            self._msg = None
        if self._msg_op == OP_TEXT:
            if self._u8:
                return self.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            self._event((OP_TEXT, str(data, "utf-8")))
        else:
            self._event((OP_BINARY, bytes(data)))
        return end

    def _control(self, op, data):
        data = bytes(data)
        if op == OP_PING:
            if self.state == OPEN:
                self._queue(OP_PONG, data)
            self._event((OP_PING, data))
        elif op == OP_PONG:
            self._event((OP_PONG, data))
        else:
            n = len(data)
            code = CLOSE_NO_STATUS
            reason = ""
            if n == 1:
                return self.fail(CLOSE_PROTOCOL_ERROR, "bad close payload")
            if n:
                code = (data[0] << 8) | data[1]
                if not valid_close_code(code):
                    return self.fail(CLOSE_PROTOCOL_ERROR, "bad close code")
                if utf8_check(0, data, 2, n) != 0:
                    return self.fail(CLOSE_INVALID_DATA, "invalid UTF-8 in close reason")
                reason = str(data[2:], "utf-8")
            if self.state == OPEN:
                # 5.5.1: echo the peer's status code
                self._queue(OP_CLOSE, close_payload(code, ""))
                self.close_code = code
                self.close_reason = reason
            elif self.close_code is None:
                self.close_code = code
            self.state = CLOSED
            self._event((OP_CLOSE, code, reason))


# True when a comma-separated header value holds token (case-insensitive), as in
# "Connection: keep-alive, Upgrade".
def has_token(value, token):
    for t in value.split(","):
        if t.strip().lower() == token:
            return True
    return False


# Check an upgrade request (RFC 6455 section 4.2.1). headers maps lower-case names to values.
# Returns None when it is a valid handshake, else (status, message, extra response headers).
def handshake_error(method, version, headers):
    if method != "GET":
        return 405, "WebSocket needs GET", (("Allow", "GET"),)
    if version != "HTTP/1.1":
        return 400, "WebSocket needs HTTP/1.1", ()
    if not has_token(headers.get("upgrade", ""), "websocket"):
        return 426, "this URL speaks WebSocket", (("Upgrade", "websocket"), ("Connection", "Upgrade"))
    if not has_token(headers.get("connection", ""), "upgrade"):
        return 400, "Connection header must contain upgrade", ()
    if headers.get("sec-websocket-version", "").strip() != "13":
        return 426, "unsupported WebSocket version", (("Sec-WebSocket-Version", "13"),)
    if not valid_key(headers.get("sec-websocket-key", "").strip()):
        return 400, "bad Sec-WebSocket-Key", ()
    return None


# The 101 response that completes a server handshake (section 4.2.2).
def handshake_response(key):
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key.strip())
    ).encode()
