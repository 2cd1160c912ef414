# Property tests for firmware/mqtt.py (CPython, hypothesis): the parser never raises, gives
# the same events and error however its input is cut, holds no more than one packet's worth
# of bytes, and every PUBLISH the encoder makes comes back unchanged.
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import mqtt
from firmware.mqtt import CONNACK, PUBLISH, Parser

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OK = b"\x20\x02\x00\x00"


# Feed data in pieces at the given cut points; (events, error). Checks the buffer bound.
def run(data, cuts, max_packet=256):
    p = Parser(max_packet)
    evs = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        p.receive_data(data[prev:c])
        prev = c
        evs += p.take_events()
        assert len(p._buf) < max_packet + 5  # an unfinished packet at most, header included
        assert p.error is None or isinstance(p.error, str)
    return evs, p.error


@FAST
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_raise_and_cutting_changes_nothing(data, cuts):
    cuts = [c for c in cuts if c < len(data)]
    assert run(data, cuts) == run(data, [])


@FAST
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_after_connack_never_raise(data, cuts):
    data = OK + data
    cuts = [c for c in cuts if c < len(data)]
    evs, err = run(data, cuts)
    assert (evs, err) == run(data, [])
    assert evs[0] == (CONNACK, 0)
    if err is None:  # all parsed: every event is well formed
        for ev in evs[1:]:
            assert ev[0] != CONNACK


topics = st.text(st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40)


@FAST
@given(
    st.lists(st.tuples(topics, st.binary(max_size=300), st.integers(0, 1), st.booleans(), st.integers(1, 65535)), max_size=6),
    st.lists(st.integers(0, 3000), max_size=30),
)
def test_publish_round_trip(msgs, cuts):
    data = OK + b"".join(mqtt.publish(t, pl, q, r, pid if q else 0) for t, pl, q, r, pid in msgs)
    cuts = [c for c in cuts if c < len(data)]
    evs, err = run(data, cuts, max_packet=1024)
    assert err is None
    want = [(PUBLISH, t, pl, q, int(r), pid if q else 0) for t, pl, q, r, pid in msgs]
    assert evs[1:] == want
