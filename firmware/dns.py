# A captive-portal DNS responder, sans-I/O: every standard query for an A record of any name
# gets the node's own address, so a phone on the node's access point opens the setup page by
# itself. Queries come in and answers go out as bytes (RFC 1035 section 4.1); anything that
# is not one well-formed standard query is ignored (None), never raised.
from .compat import const

MAX_PACKET = const(512)  # a DNS message over UDP (RFC 1035 section 2.3.4); longer ones are ignored
TTL = const(60)  # seconds a phone may keep the answer: short, the access point is temporary
_HEAD = const(12)
_MIN = const(17)  # header, the root name (1 byte), type and class
_MAX_NAME = const(255)  # bytes of an encoded name (RFC 1035 section 2.3.4)
_A = const(1)
_ANY = const(255)
_IN = const(1)
# The answer record: a pointer to the question's name at offset 12, type A, class IN, the TTL,
# then 4 bytes of address.
_RECORD = b"\xc0\x0c\x00\x01\x00\x01" + bytes((0, 0, TTL >> 8, TTL & 255)) + b"\x00\x04"


# "192.168.4.1" -> its 4 bytes, for answer(). ValueError for anything else.
def ip_bytes(ip):
    parts = ip.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %s" % ip)
    return bytes([int(p) for p in parts])  # int() > 255 raises ValueError in bytes()


# The reply to the query `packet` (bytes), answering with the address `ip` (4 bytes), or None
# when it is to be ignored: a response, an opcode other than QUERY, not exactly one question,
# a name with a compression pointer or a label over 63 bytes, a name over 255 bytes, a packet
# cut short or over 512 bytes. An A (or ANY) question of class IN gets one answer; any other
# type (AAAA, say) gets none, so the phone asks for A. The reply is authoritative, copies the
# ID and the RD bit, and carries no additional records (an EDNS OPT record is dropped).
def answer(packet, ip):
    n = len(packet)
    if n < _MIN or n > MAX_PACKET:
        return None
    flags = packet[2]
    if flags & 0xF8 or packet[4] or packet[5] != 1:  # QR, opcode; QDCOUNT must be 1
        return None
    i = _HEAD
    while True:  # the labels of the name: at most 128, one step each
        k = packet[i]
        if k == 0:
            break
        if k > 63:  # a compression pointer (0xC0) or a reserved label type
            return None
        i += k + 1
        if i >= n or i - _HEAD >= _MAX_NAME:
            return None
    end = i + 5  # the root label, type, class
    if end > n:
        return None
    qtype = packet[i + 1] << 8 | packet[i + 2]
    found = (packet[i + 3] << 8 | packet[i + 4]) == _IN and (qtype == _A or qtype == _ANY)
    head = bytes((packet[0], packet[1], 0x84 | (flags & 1), 0, 0, 1, 0, 1 if found else 0, 0, 0, 0, 0))
    if found:
        return head + bytes(packet[_HEAD:end]) + _RECORD + ip
    return head + bytes(packet[_HEAD:end])
