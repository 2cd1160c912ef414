# Tests for firmware/dns.py, the captive portal's DNS responder, with literal packets: every
# A question gets the node's address, other types an empty answer, and anything malformed is
# ignored. Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
from firmware import dns

IP = b"\xc0\xa8\x04\x01"  # 192.168.4.1

# A standard query (ID 0x1234, RD set) for example.com, type A, class IN.
QUESTION = b"\x07example\x03com\x00\x00\x01\x00\x01"
QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + QUESTION


def query(name_bytes, qtype=b"\x00\x01", qclass=b"\x00\x01", head=b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"):
    return head + name_bytes + qtype + qclass


def test_ip_bytes():
    assert dns.ip_bytes("192.168.4.1") == IP
    assert dns.ip_bytes("127.0.0.1") == b"\x7f\x00\x00\x01"
    for bad in ("192.168.4", "1.2.3.4.5", "a.b.c.d", "1.2.3.256", ""):
        try:
            dns.ip_bytes(bad)
        except ValueError:
            continue
        assert False, bad


def test_an_a_query_is_answered_with_the_node_address():
    assert dns.answer(QUERY, IP) == (
        b"\x12\x34"  # the query's ID
        b"\x85\x00"  # a response, authoritative, RD copied; no error
        b"\x00\x01\x00\x01\x00\x00\x00\x00"  # one question, one answer
        + QUESTION
        + b"\xc0\x0c\x00\x01\x00\x01"  # the question's name, A, IN
        b"\x00\x00\x00\x3c\x00\x04"  # TTL 60 s, 4 bytes
        + IP
    )


def test_rd_bit_is_copied_and_the_id_kept():
    reply = dns.answer(b"\xff\x01\x00\x00" + QUERY[4:], IP)
    assert reply[:4] == b"\xff\x01\x84\x00"


def test_every_name_gets_the_same_address():
    names = (b"\x00", b"\x01a\x00", b"\x11connectivitycheck\x07gstatic\x03com\x00", b"\x07captive\x05apple\x03com\x00")
    for name in names:
        reply = dns.answer(query(name), IP)
        assert reply is not None, name
        assert reply[6:8] == b"\x00\x01" and reply.endswith(IP), name
        assert reply[12 : 12 + len(name) + 4] == name + b"\x00\x01\x00\x01"


def test_any_is_answered_like_a():
    reply = dns.answer(query(b"\x01x\x00", b"\x00\xff"), IP)
    assert reply[6:8] == b"\x00\x01" and reply.endswith(IP)


def test_other_types_and_classes_get_no_records():
    for qtype, qclass in ((b"\x00\x1c", b"\x00\x01"), (b"\x00\x10", b"\x00\x01"), (b"\x00\x01", b"\x00\x03")):
        q = query(b"\x01x\x00", qtype, qclass)
        reply = dns.answer(q, IP)
        # AAAA, TXT, class CH: no error, no answer; the question echoed
        assert reply == b"\xab\xcd\x85\x00\x00\x01\x00\x00\x00\x00\x00\x00" + q[12:], (qtype, qclass)


def test_an_edns_record_is_dropped_from_the_reply():
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # OPT, 1232-byte UDP payload
    q = query(QUESTION[:-4], head=b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01") + opt
    assert dns.answer(q, IP) == dns.answer(QUERY, IP)


def test_responses_and_other_opcodes_are_ignored():
    assert dns.answer(b"\x12\x34\x81\x00" + QUERY[4:], IP) is None  # QR set: a response
    assert dns.answer(b"\x12\x34\x85\x80" + QUERY[4:], IP) is None
    assert dns.answer(b"\x12\x34\x10\x00" + QUERY[4:], IP) is None  # opcode 2: STATUS
    assert dns.answer(b"\x12\x34\x28\x00" + QUERY[4:], IP) is None  # opcode 5: UPDATE


def test_not_exactly_one_question_is_ignored():
    for count in (b"\x00\x00", b"\x00\x02", b"\x01\x01"):
        assert dns.answer(QUERY[:4] + count + QUERY[6:], IP) is None, count


def test_every_truncation_is_ignored():
    for n in range(len(QUERY)):
        assert dns.answer(QUERY[:n], IP) is None, n


def test_compression_pointers_and_long_labels_are_ignored():
    assert dns.answer(query(b"\xc0\x0c"), IP) is None  # a pointer in the question
    assert dns.answer(query(b"\x01a\xc0\x0c"), IP) is None
    assert dns.answer(query(b"\x40" + b"a" * 64 + b"\x00"), IP) is None  # a 64-byte label
    assert dns.answer(query(b"\x80" + b"a" * 40 + b"\x00"), IP) is None  # reserved label type
    assert dns.answer(query(b"\x3f" + b"a" * 63 + b"\x00"), IP) is not None  # 63 is the longest


def test_names_up_to_255_bytes():
    label = b"\x3f" + b"a" * 63
    longest = label * 3 + b"\x3d" + b"b" * 61 + b"\x00"  # 255 bytes with the root label
    assert len(longest) == 255
    reply = dns.answer(query(longest), IP)
    assert reply is not None and reply.endswith(IP)
    too_long = label * 3 + b"\x3e" + b"b" * 62 + b"\x00"
    assert len(too_long) == 256
    assert dns.answer(query(too_long), IP) is None


def test_a_label_running_past_the_end_is_ignored():
    assert dns.answer(query(b"\x10abc")[:-4], IP) is None
    assert dns.answer(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabcd", IP) is None


def test_packets_over_512_bytes_are_ignored():
    pad = b"\x00" * (dns.MAX_PACKET - len(QUERY))
    assert dns.answer(QUERY + pad, IP) is not None  # trailing bytes within 512: the question counts
    assert dns.answer(QUERY + pad + b"\x00", IP) is None


def test_random_packets_never_raise():
    x = 12345
    for n in range(400):
        size = n % 60
        b = bytearray(size)
        for i in range(size):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            b[i] = x >> 16 & 255
        if size > 5 and n % 2:
            b[2] = b[2] & 1  # a standard query with one question: the name parser gets it
            b[4] = 0
            b[5] = 1
        reply = dns.answer(bytes(b), IP)
        assert reply is None or (reply[:2] == bytes(b[:2]) and reply[2] & 0x80)
    # a memoryview (what a socket buffer may be) is taken too
    assert dns.answer(memoryview(QUERY), IP) == dns.answer(QUERY, IP)
