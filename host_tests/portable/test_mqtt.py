# Protocol tests for firmware/mqtt.py (MQTT 3.1.1, client side). Portable: plain functions
# and asserts, run by pytest on CPython and by host_tests/mp_run.py on the MicroPython unix
# port. Wire bytes are written out literally; everything the parser gets is fed whole, in
# 3-byte chunks and one byte at a time (see feed()), and must give the same result each way.
from firmware import mqtt
from firmware.mqtt import CONNACK, PINGRESP, PUBACK, PUBLISH, SUBACK, Parser

OK = b"\x20\x02\x00\x00"  # CONNACK, accepted


# Feed data to fresh parsers whole, in 3-byte pieces and byte by byte; all three must agree.
# Returns (events, error).
def feed(data, max_packet=1024, connected=True):
    results = []
    for step in (len(data) or 1, 3, 1):
        p = Parser(max_packet)
        if connected:
            p.receive_data(OK)
            assert p.take_events() == [(CONNACK, 0)]
        evs = []
        for i in range(0, len(data), step):
            p.receive_data(data[i : i + step])
            evs += p.take_events()
        results.append((evs, p.error))
    assert results[0] == results[1] == results[2], results
    return results[0]


def events(data, **kw):
    evs, err = feed(data, **kw)
    assert err is None, err
    return evs


def error(data, **kw):
    evs, err = feed(data, **kw)
    assert err, "no error for %r" % (data,)
    return err


# ---------------------------------------------------------------- encoders


def test_connect_minimal_clean_session():
    assert mqtt.connect("ab", 30) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02ab"


def test_connect_with_will_user_and_password():
    got = mqtt.connect("n1", 60, "u", "pw", "t/status", b"offline", True, 1)
    # flags: user 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04, clean 0x02
    body = b"\x00\x04MQTT\x04\xee\x00\x3c\x00\x02n1\x00\x08t/status\x00\x07offline\x00\x01u\x00\x02pw"
    assert got == b"\x10" + bytes([len(body)]) + body


def test_connect_password_needs_user_and_clean_can_be_off():
    got = mqtt.connect("c", 5, "", "secret", clean=False)
    assert got == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x05\x00\x01c"


def test_publish_qos0_retain_and_qos1_with_packet_id():
    assert mqtt.publish("a/b", b"ON", retain=True) == b"\x31\x07\x00\x03a/bON"
    assert mqtt.publish("a/b", "OFF", 1, False, 0x1234) == b"\x32\x0a\x00\x03a/b\x12\x34OFF"
    assert mqtt.publish("a", b"", 1, True, 7, dup=True) == b"\x3b\x05\x00\x01a\x00\x07"


def test_publish_remaining_length_boundaries():
    # body = 3 (topic "t" with length) + payload; the varint grows at 128 and 16384
    for n, head in ((127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01")):
        pkt = mqtt.publish("t", b"x" * (n - 3))
        assert pkt[1 : 1 + len(head)] == head, (n, pkt[:5])
        assert len(pkt) == 1 + len(head) + n


def test_puback_subscribe_ping_disconnect():
    assert mqtt.puback(0x0102) == b"\x40\x02\x01\x02"
    assert mqtt.subscribe(1, [("n/+/set", 1), ("ha/status", 0)]) == (
        b"\x82\x18\x00\x01\x00\x07n/+/set\x01\x00\x09ha/status\x00"
    )
    assert mqtt.PING == b"\xc0\x00"
    assert mqtt.BYE == b"\xe0\x00"


def test_slug():
    assert mqtt.slug("Light") == "light"
    assert mqtt.slug("Hall Light 2") == "hall_light_2"
    assert mqtt.slug("  Fan--Big!!") == "_fan_big_"
    assert mqtt.slug("Küche") == "k_che"
    assert mqtt.slug("ABCxyz019") == "abcxyz019"


# ---------------------------------------------------------------- parser: good packets


def test_connack_codes():
    for rc in range(6):
        evs, err = feed(b"\x20\x02\x00" + bytes([rc]), connected=False)
        assert err is None and evs == [(CONNACK, rc)]
    evs, err = feed(b"\x20\x02\x01\x00", connected=False)  # session present
    assert err is None and evs == [(CONNACK, 0)]


def test_publish_qos0_and_qos1_retained():
    assert events(b"\x30\x07\x00\x03a/bON") == [(PUBLISH, "a/b", b"ON", 0, 0, 0)]
    assert events(b"\x33\x0b\x00\x03a/b\x00\x05TRUE") == [(PUBLISH, "a/b", b"TRUE", 1, 1, 5)]
    assert events(b"\x31\x05\x00\x03a/b") == [(PUBLISH, "a/b", b"", 0, 1, 0)]  # a cleared retained topic


def test_publish_with_two_byte_length_and_utf8_topic():
    payload = b"p" * 200
    topic = "n/k\xfcche/set"
    tb = topic.encode()
    body = bytes([0, len(tb)]) + tb + payload
    pkt = b"\x30" + bytes([(len(body) & 0x7F) | 0x80, len(body) >> 7]) + body
    assert events(pkt) == [(PUBLISH, topic, payload, 0, 0, 0)]


def test_puback_suback_pingresp_and_several_packets_in_one_chunk():
    data = b"\x40\x02\x00\x09" + b"\x90\x04\x00\x01\x01\x80" + b"\xd0\x00" + b"\x30\x03\x00\x01x"
    assert events(data) == [
        (PUBACK, 9),
        (SUBACK, 1, b"\x01\x80"),
        (PINGRESP,),
        (PUBLISH, "x", b"", 0, 0, 0),
    ]


def test_packet_exactly_at_the_size_limit():
    pkt = b"\x30\x0a\x00\x01t" + b"1234567"  # 12 bytes in all
    assert events(pkt, max_packet=12) == [(PUBLISH, "t", b"1234567", 0, 0, 0)]
    assert "limit 11" in error(pkt, max_packet=11)


def test_take_events_empties():
    p = Parser()
    p.receive_data(OK + b"\xd0")
    assert p.take_events() == [(CONNACK, 0)]
    assert p.take_events() == []
    p.receive_data(b"\x00")
    assert p.take_events() == [(PINGRESP,)]


# ---------------------------------------------------------------- parser: errors


def test_first_packet_must_be_connack():
    assert "expected CONNACK" in error(b"\xd0\x00", connected=False)
    assert "expected CONNACK" in error(b"HTTP/1.1 400 Bad Request\r\n", connected=False)


def test_bad_connack():
    assert "second CONNACK" in error(OK)
    for body in (b"\x00\x06", b"\x02\x00", b"\x01\x04", b"\xff\xff"):
        assert "bad CONNACK" in error(b"\x20\x02" + body, connected=False), body
    assert "remaining length 3" in error(b"\x20\x03\x00\x00\x00", connected=False)
    assert "unexpected packet" in error(b"\x21\x02\x00\x00", connected=False)


def test_unexpected_packet_types_and_flags():
    for b0 in (0x00, 0x10, 0x50, 0x62, 0x70, 0x82, 0xA2, 0xB0, 0xC0, 0xE0, 0xF0, 0x41, 0x91, 0x92, 0xD1):
        assert "unexpected packet" in error(bytes([b0, 0])), hex(b0)


def test_wrong_remaining_lengths():
    assert "remaining length 1" in error(b"\xd0\x01\x00")
    assert "remaining length 3" in error(b"\x40\x03\x00\x01\x00")
    assert "remaining length 2" in error(b"\x90\x02\x00\x01")
    assert "remaining length 1" in error(b"\x30\x01\x00")
    assert "remaining length 3" in error(b"\x32\x03\x00\x01t")


def test_remaining_length_over_four_bytes():
    assert "4 bytes" in error(b"\x30\xff\xff\xff\xff\x01", max_packet=1 << 30)


def test_oversized_packet_refused_before_its_body():
    p = Parser(100)
    p.receive_data(OK + b"\x30\x80\x01")  # 128 bytes announced, none sent yet
    assert p.error == "packet of 131 bytes, limit 100"
    assert p.take_events() == [(CONNACK, 0)]
    p.receive_data(b"\x00" * 200)  # nothing more is parsed
    assert p.take_events() == []
    assert "limit 1024" in error(b"\x30\xff\xff\xff\x7f")


def test_bad_publish():
    assert "QoS 3" in error(b"\x36\x05\x00\x01t\x00\x01")
    assert "QoS 2" in error(b"\x34\x05\x00\x01t\x00\x01")
    assert "DUP" in error(b"\x38\x03\x00\x01t")
    assert "packet id 0" in error(b"\x32\x05\x00\x01t\x00\x00")
    assert "longer than the packet" in error(b"\x30\x03\x00\x05t")
    assert "longer than the packet" in error(b"\x32\x04\x00\x01tx")  # no room for the packet id
    for topic in (b"", b"a/+", b"a/#", b"a\x00b"):
        assert "bad PUBLISH topic" in error(b"\x30" + bytes([2 + len(topic), 0, len(topic)]) + topic), topic
    assert "not UTF-8" in error(b"\x30\x04\x00\x02\xff\xfe")


def test_bad_suback_code():
    assert "bad SUBACK" in error(b"\x90\x03\x00\x01\x03")


def test_after_an_error_nothing_more_is_parsed():
    p = Parser()
    p.receive_data(OK + b"\xd0\x00\x00\x00\xd0\x00")  # PINGRESP, garbage, PINGRESP
    assert p.take_events() == [(CONNACK, 0), (PINGRESP,)]
    assert "unexpected packet 0x00" == p.error
    p.receive_data(b"\xd0\x00")
    assert p.take_events() == []


def test_fail_keeps_the_first_reason():
    p = Parser()
    p.fail("mine")
    p.receive_data(OK)
    assert p.error == "mine" and p.take_events() == []
