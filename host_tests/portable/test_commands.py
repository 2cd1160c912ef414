# Tests for firmware/commands.py: parsing client messages (JSON and plain "<Name> On"),
# every error code, applying commands to a relay bank (nothing moves on an error), and the
# JSON messages the node sends. Portable: plain functions and asserts, run by pytest on
# CPython and by host_tests/mp_run.py on the MicroPython unix port.
import json

from firmware import commands
from firmware.commands import CommandError, apply, parse
from firmware.relays import CLIENT, INTERLOCK, TIMER, RelayBank
from host_tests.portable.fakes import FakeClock, FakePins


def spec(name, pin, active_low=False, group=None, pulse_ms=0):
    return {"name": name, "pin": pin, "active_low": active_low, "power_on": "off", "group": group, "pulse_ms": pulse_ms}


def make_bank(specs=None):
    if specs is None:
        specs = [spec("Light", 26, active_low=True), spec("Fan", 27), spec("Garden pump", 25)]
    pins = FakePins()
    clock = FakeClock(1000)
    return RelayBank(specs, pins.make, clock), pins, clock


def named(changes):
    return [(r.name, cause) for r, cause in changes]


# The CommandError that parse(text) raises; fails the test when it raises nothing.
def parse_error(text):
    try:
        cmd = parse(text)
    except CommandError as e:
        return e
    assert False, "no error for %r, got %r" % (text, cmd)


def check_error(text, code):
    e = parse_error(text)
    assert e.code == code, (text, e.code, code)
    assert isinstance(e.message, str) and e.message, text
    return e


# ---------------------------------------------------------------- JSON commands


def test_parse_set_by_id_and_by_name():
    assert parse('{"type":"set","relay":0,"on":true}') == {"type": "set", "relay": 0, "on": True}
    assert parse('{"type": "set", "relay": "Light", "on": false}') == {"type": "set", "relay": "Light", "on": False}


def test_parse_toggle():
    assert parse('{"type":"toggle","relay":"Fan"}') == {"type": "toggle", "relay": "Fan"}
    assert parse('{"type":"toggle","relay":2}') == {"type": "toggle", "relay": 2}


def test_parse_pulse_and_its_ms_bounds():
    assert parse('{"type":"pulse","relay":0,"ms":500}') == {"type": "pulse", "relay": 0, "ms": 500}
    assert parse('{"type":"pulse","relay":0,"ms":1}')["ms"] == 1
    assert parse('{"type":"pulse","relay":0,"ms":3600000}')["ms"] == commands.MAX_PULSE_MS == 3600000


def test_parse_get_and_say():
    assert parse('{"type":"get"}') == {"type": "get"}
    assert parse('{"type":"say","text":"Dinner is ready"}') == {"type": "say", "text": "Dinner is ready"}


def test_parse_auth_is_passed_through():
    assert parse('{"type":"auth","token":"s3cret"}') == {"type": "auth", "token": "s3cret"}


def test_parse_ignores_surrounding_whitespace_and_extra_fields():
    assert parse('  \n{"type":"get","extra":[1,2]}\r\n ') == {"type": "get", "extra": [1, 2]}


def test_parse_say_limit_counts_characters_not_bytes():
    text = "\u00e9" * commands.MAX_SAY  # 200 characters, 400 bytes of UTF-8
    assert parse(json.dumps({"type": "say", "text": text}))["text"] == text
    check_error(json.dumps({"type": "say", "text": text + "x"}), "too_long")


# ---------------------------------------------------------------- plain text


def test_parse_plain_text_any_case():
    assert parse("Light On") == {"type": "set", "relay": "Light", "on": True}
    assert parse("fan off") == {"type": "set", "relay": "fan", "on": False}
    assert parse("  LIGHT   ON ") == {"type": "set", "relay": "LIGHT", "on": True}
    assert parse("light oFf") == {"type": "set", "relay": "light", "on": False}
    assert parse("Fan ON\r\n") == {"type": "set", "relay": "Fan", "on": True}


def test_parse_plain_text_multi_word_names():
    assert parse("Garden pump on") == {"type": "set", "relay": "Garden pump", "on": True}
    assert parse("Garden  pump   OFF") == {"type": "set", "relay": "Garden  pump", "on": False}
    assert parse("Light on on") == {"type": "set", "relay": "Light on", "on": True}


def test_parse_plain_text_errors():
    for text in ("", "   ", "on", "OFF", " on ", "Light", "Light maybe", "Light onn", "Lighton", "Light\ton", "Light on!"):
        check_error(text, "bad_command")


def test_plain_text_applies_to_the_named_relay_case_insensitively():
    bank, pins, _ = make_bank()
    assert named(apply(bank, parse("  LIGHT   ON "))) == [("Light", CLIENT)]
    assert pins[26].level == 0
    assert named(apply(bank, parse("garden PUMP on"))) == [("Garden pump", CLIENT)]
    assert named(apply(bank, parse("light off"))) == [("Light", CLIENT)]
    assert pins[26].level == 1


# ---------------------------------------------------------------- errors


def test_bad_json():
    for text in ("{", '{"type":"get"', "{nope}", "{'type':'get'}", '{"type":"get"} x', '{"type":"get"}{"type":"get"}'):
        check_error(text, "bad_json")


def test_non_object_json_is_refused():
    # Only a JSON object is a command; anything else is taken for (bad) plain text.
    for text in ("[1,2]", '[{"type":"get"}]', "42", '"Light on"', "null", "true"):
        e = parse_error(text)
        assert e.code in ("bad_command", "bad_json"), (text, e.code)


def test_unknown_type():
    for text in ("{}", '{"type":"reboot"}', '{"type":5}', '{"type":null}', '{"type":["set"]}', '{"type":"SET","relay":0,"on":true}', '{"kind":"get"}'):
        check_error(text, "unknown_type")


def test_bad_field_relay():
    for rel in ("true", "false", "null", "1.5", "[0]", '{"id":0}'):
        for kind in ("set", "toggle", "pulse"):
            text = '{"type":"%s","relay":%s,"on":true,"ms":100}' % (kind, rel)
            e = check_error(text, "bad_field")
            assert "relay" in e.message
    for kind in ("set", "toggle", "pulse"):
        check_error('{"type":"%s","on":true,"ms":100}' % kind, "bad_field")


def test_bad_field_on():
    for on in ("1", "0", '"true"', "null", "[]"):
        e = check_error('{"type":"set","relay":0,"on":%s}' % on, "bad_field")
        assert "on" in e.message
    check_error('{"type":"set","relay":0}', "bad_field")


def test_bad_field_ms():
    for ms in ("0", "-1", "3600001", "1.5", '"500"', "true", "false", "null", "[500]"):
        e = check_error('{"type":"pulse","relay":0,"ms":%s}' % ms, "bad_field")
        assert "ms" in e.message
    check_error('{"type":"pulse","relay":0}', "bad_field")


def test_bad_field_say():
    for t in ('""', '"   "', "5", "null", "true", '["hi"]'):
        e = check_error('{"type":"say","text":%s}' % t, "bad_field")
        assert "text" in e.message
    check_error('{"type":"say"}', "bad_field")


def test_too_long_say():
    text = "x" * (commands.MAX_SAY + 1)
    check_error('{"type":"say","text":"%s"}' % text, "too_long")
    assert parse('{"type":"say","text":"%s"}' % text[:-1])["text"] == text[:-1]


def test_command_error_carries_code_and_message():
    e = CommandError("bad_field", "why")
    assert e.code == "bad_field"
    assert e.message == "why"
    assert str(e) == "why"
    assert isinstance(e, Exception)


# ---------------------------------------------------------------- apply


def test_apply_set_toggle_pulse():
    bank, pins, clock = make_bank()
    assert named(apply(bank, parse('{"type":"set","relay":"fan","on":true}'))) == [("Fan", CLIENT)]
    assert pins[27].level == 1
    assert named(apply(bank, parse('{"type":"toggle","relay":1}'), "button")) == [("Fan", "button")]
    assert pins[27].level == 0
    assert named(apply(bank, parse('{"type":"pulse","relay":"Light","ms":250}'))) == [("Light", CLIENT)]
    assert pins[26].level == 0
    assert bank.next_due(now=None) == 250
    clock.advance(250)
    assert named(bank.expire(now=None)) == [("Light", TIMER)]
    assert pins[26].level == 1


def test_apply_set_to_the_current_state_reports_nothing():
    bank, pins, _ = make_bank()
    assert apply(bank, parse("Fan off")) == []
    assert pins.log == [(26, 1), (27, 0), (25, 0)]


def test_apply_with_interlock():
    bank, pins, _ = make_bank([spec("Up", 12, group="b"), spec("Down", 13, group="b")])
    apply(bank, parse("Up on"))
    assert named(apply(bank, parse('{"type":"set","relay":"Down","on":true}'))) == [("Up", INTERLOCK), ("Down", CLIENT)]
    assert pins.log[-2:] == [(12, 0), (13, 1)]


def test_apply_unknown_relay_moves_no_pin():
    bank, pins, _ = make_bank()
    apply(bank, parse("Light on"))
    before = list(pins.log)
    for text in (
        "Heater on",
        "Garden off",
        '{"type":"set","relay":"Heater","on":true}',
        '{"type":"set","relay":3,"on":true}',
        '{"type":"toggle","relay":-1}',
        '{"type":"pulse","relay":99,"ms":100}',
        '{"type":"pulse","relay":"","ms":100}',
    ):
        try:
            apply(bank, parse(text))
        except CommandError as e:
            assert e.code == "unknown_relay", (text, e.code)
        else:
            assert False, "no error for " + text
    assert pins.log == before
    assert [r.on for r in bank.relays] == [True, False, False]
    assert bank.next_due(now=None) is None


def test_unknown_relay_message_names_the_relay_as_json():
    bank, _, _ = make_bank()
    try:
        apply(bank, parse('{"type":"set","relay":"He\\"ater","on":true}'))
    except CommandError as e:
        assert e.code == "unknown_relay"
        assert e.message == 'no relay "He\\"ater"'
    else:
        assert False
    try:
        apply(bank, parse('{"type":"toggle","relay":7}'))
    except CommandError as e:
        assert e.message == "no relay 7"
    else:
        assert False


def test_errors_in_parse_move_no_pin():
    bank, pins, _ = make_bank()
    before = list(pins.log)
    for text in ("Light", '{"type":"set","relay":0,"on":1}', '{"type":"pulse","relay":0,"ms":0}', "{", '{"type":"boom"}'):
        try:
            apply(bank, parse(text))
        except CommandError:
            pass
        else:
            assert False, text
    assert pins.log == before


# ---------------------------------------------------------------- messages


def test_state_message_shape():
    bank, _, _ = make_bank()
    bank.set(bank.relays[1], True)
    msg = json.loads(commands.state_message("relaynode", "0.1.0", bank, extra=None))
    assert msg == {
        "type": "state",
        "protocol": 1,
        "node": "relaynode",
        "version": "0.1.0",
        "relays": [
            {"id": 0, "name": "Light", "on": False},
            {"id": 1, "name": "Fan", "on": True},
            {"id": 2, "name": "Garden pump", "on": False},
        ],
    }
    assert commands.PROTOCOL == 1


def test_state_message_is_compact_and_takes_extra_fields():
    bank, _, _ = make_bank([spec("A", 4)])
    text = commands.state_message("n", "v", bank, {"links": [{"name": "x", "url": "/y"}]})
    assert ": " not in text and ", " not in text
    msg = json.loads(text)
    assert msg["links"] == [{"name": "x", "url": "/y"}]
    assert msg["relays"] == [{"id": 0, "name": "A", "on": False}]


def test_relay_message_shape():
    bank, _, _ = make_bank()
    bank.set(bank.relays[2], True)
    text = commands.relay_message(bank.relays[2], CLIENT, origin=None, hops=0)
    assert text == '{"type":"relay","id":2,"name":"Garden pump","on":true,"cause":"client"}'
    assert json.loads(commands.relay_message(bank.relays[0], TIMER, origin=None, hops=0)) == {
        "type": "relay",
        "id": 0,
        "name": "Light",
        "on": False,
        "cause": "timer",
    }


def test_say_and_error_message_shapes():
    assert json.loads(commands.say_message("Dinner is ready")) == {"type": "say", "text": "Dinner is ready"}
    assert json.loads(commands.error_message("unknown_relay", 'no relay "Heater"')) == {
        "type": "error",
        "code": "unknown_relay",
        "message": 'no relay "Heater"',
    }


def test_error_message_from_a_command_error():
    e = parse_error('{"type":"pulse","relay":0,"ms":0}')
    msg = json.loads(commands.error_message(e.code, e.message))
    assert msg["type"] == "error" and msg["code"] == "bad_field" and "ms" in msg["message"]


def test_names_and_texts_with_quotes_backslashes_and_unicode_escape_properly():
    name = 'Say "hi" \\ back\u00e9 \u2603\n\t'
    bank, _, _ = make_bank([spec(name, 4), spec("</script>", 5)])
    bank.set(bank.relays[0], True)
    state = json.loads(commands.state_message('node "x"', "1\\0", bank, extra=None))
    assert state["node"] == 'node "x"'
    assert state["version"] == "1\\0"
    assert state["relays"][0] == {"id": 0, "name": name, "on": True}
    assert state["relays"][1]["name"] == "</script>"
    relay = json.loads(commands.relay_message(bank.relays[0], CLIENT, origin=None, hops=0))
    assert relay["name"] == name and relay["on"] is True
    assert json.loads(commands.say_message(name)) == {"type": "say", "text": name}
    assert json.loads(commands.error_message("c", name))["message"] == name


def test_say_round_trip_through_parse():
    text = 'He said "ok" \\o/ \u00e9\u2603'
    cmd = parse(commands.say_message(text))
    assert cmd == {"type": "say", "text": text}


def test_relay_dict():
    bank, _, _ = make_bank()
    assert commands.relay_dict(bank.relays[1]) == {"id": 1, "name": "Fan", "on": False}


# ---------------------------------------------------------------- strict JSON, valid UTF-8


# True when the text encodes to UTF-8 as RFC 3629 has it (no encoded surrogates, which
# MicroPython's own decoder lets through).
def valid_utf8(text):
    b = text.encode()
    str(b, "utf-8")
    i = b.find(b"\xed")
    while i >= 0:
        if b[i + 1] >= 0xA0:
            return False
        i = b.find(b"\xed", i + 1)
    return True


def test_say_with_an_escaped_emoji_round_trips_as_the_real_character():
    cmd = parse('{"type":"say","text":"pizza \\ud83c\\udf55"}')
    assert cmd["text"] == "pizza \U0001f355"
    msg = commands.say_message(cmd["text"])
    assert valid_utf8(msg)
    assert json.loads(msg)["text"] == "pizza \U0001f355"
    assert parse(msg)["text"] == "pizza \U0001f355"  # and back through the node's own parser


def test_lone_surrogate_is_bad_field_and_nothing_moves():
    bank, pins, _ = make_bank()
    levels = [pins[26].level, pins[27].level, pins[25].level]
    for text in (
        '{"type":"say","text":"hi \\ud83c"}',
        '{"type":"say","text":"\\udf55"}',
        '{"type":"toggle","relay":"\\ud83c"}',
        '{"type":"set","relay":"Light\\udc00","on":true}',
        '{"type":"pulse","relay":"\\ud83cLight","ms":100}',
        '{"type":"toggle","relay":"Light","origin":"\\ud800"}',
    ):
        e = check_error(text, "bad_field")
        assert valid_utf8(commands.error_message(e.code, e.message))
    assert [pins[26].level, pins[27].level, pins[25].level] == levels
    assert not any(r.on for r in bank.relays)


def test_every_invalid_json_class_is_bad_json_and_moves_nothing():
    bank, pins, _ = make_bank()
    for text in (
        '{"type":"toggle","relay":"Light",}',  # trailing comma
        '{"type":"toggle",,"relay":"Light"}',  # double comma
        '{,"type":"toggle","relay":"Light"}',
        '{"type":"toggle" "relay":"Light"}',  # missing comma
        '{"type" "toggle","relay":"Light"}',  # missing colon
        '{"type"::"toggle","relay":"Light"}',
        '{"type":"toggle","relay":00}',  # leading zeros
        '{"type":"toggle","relay":01}',
        '{"type":"pulse","relay":0,"ms":0100}',
        '{"type":"set","relay":0,"on":true,"x":[1 2]}',
        '{"type":"toggle","relay":"Li\nght"}',  # raw control characters in strings
        '{"type":"toggle","relay":"Light\x00"}',
        '{"type":"say","text":"a\tb"}',
        '{"type":"toggle","relay":"\\x41"}',  # bad escape
        '{"type":"toggle","relay":"\\u00G1"}',
        '{"type":"set","relay":0,"on":tru}',
        '{"type":"pulse","relay":0,"ms":1.}',
        '{"type":"pulse","relay":0,"ms":NaN}',
        '{"type":"toggle","relay":0}\x00',  # something after the object
        '{"type":"toggle","relay":0}]',
        '{1:"toggle"}',
        '{"type":"get","x":' + "[" * 40 + "]" * 40 + "}",  # too deep
        "{" * 600,
    ):
        check_error(text, "bad_json")
    assert not any(r.on for r in bank.relays)
    assert pins[26].level == 1 and pins[27].level == 0


def test_valid_edge_cases_are_still_commands():
    assert parse(' {\n\t"type" : "toggle" ,\r\n "relay" : "Light"\n} ') == {"type": "toggle", "relay": "Light"}
    assert parse('{"type":"toggle","relay":"\\u004cight"}') == {"type": "toggle", "relay": "Light"}
    assert parse('{"type":"say","text":"\\"quoted\\" \\\\ \\/ \\n caf\\u00e9 \u2603"}')["text"] == '"quoted" \\ / \n caf\u00e9 \u2603'
    assert parse('{"type":"get","meta":{"a":[1,{"b":null}],"c":-1.5e2}}')["meta"] == {"a": [1, {"b": None}], "c": -150.0}
    assert parse('{"type":"pulse","relay":0,"ms":1000,"origin":"node-b","hops":0}')["hops"] == 0
    assert parse('{"type":"set","relay":0,"on":false}') == {"type": "set", "relay": 0, "on": False}


def test_messages_are_valid_utf8_whatever_they_are_given():
    # strings with lone surrogates, as the runtime's own json makes them from \u escapes
    bad = json.loads('"x\\ud83cy"')
    pair = json.loads('"x\\ud83c\\udf55y"')
    bank, _, _ = make_bank([spec(bad, 4), spec(pair, 5)])
    bank.set(bank.relays[0], True)
    msgs = [
        commands.say_message(bad),
        commands.say_message(pair),
        commands.error_message("unknown_relay", "no relay " + bad),
        commands.state_message(bad, pair, bank, extra=None),
        commands.relay_message(bank.relays[0], CLIENT, origin=None, hops=0),
        commands.relay_message(bank.relays[1], CLIENT, origin=bad, hops=2),
    ]
    for m in msgs:
        assert valid_utf8(m), m
        json.loads(m)
    assert json.loads(commands.say_message(pair))["text"] == "x\U0001f355y"


def test_types_the_caller_answers_pass():
    known = {"schedules": None, "time": None}
    assert parse('{"type":"time","utc_ms":5}', known) == {"type": "time", "utc_ms": 5}
    assert parse('{"type":"schedules"}', known) == {"type": "schedules"}
    for text in ('{"type":"reboot"}', '{"type":["time"]}', '{"type":{"a":1}}'):
        try:
            parse(text, known)
        except CommandError as e:
            assert e.code == "unknown_type"
        else:
            raise AssertionError(text)
