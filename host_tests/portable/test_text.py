# Tests for firmware/text.py: the strict JSON parser (RFC 8259) that commands and state files
# go through on both runtimes, utf8() for the messages the node sends, and printable() for its
# log. Portable: run by pytest on CPython and by host_tests/mp_run.py on the MicroPython unix port.
import json

from firmware.text import loads, printable, utf8

PIZZA = "\U0001f355"


def refused(s):
    try:
        v = loads(s, depth=8)
    except UnicodeError:
        assert False, "%r: UnicodeError, expected a plain ValueError" % (s,)
    except ValueError:
        return
    assert False, "%r accepted as %r" % (s, v)


def surrogate(s):
    try:
        v = loads(s, depth=8)
    except UnicodeError:
        return
    except ValueError:
        assert False, "%r: plain ValueError, expected UnicodeError" % (s,)
    assert False, "%r accepted as %r" % (s, v)


# True when b (bytes) is UTF-8 as RFC 3629 has it: MicroPython's decoder lets encoded
# surrogates (ED A0..BF ..) through, so they are looked for by hand.
def is_utf8(b):
    try:
        str(b, "utf-8")
    except UnicodeError:
        return False
    i = b.find(b"\xed")
    while i >= 0:
        if b[i + 1] >= 0xA0:
            return False
        i = b.find(b"\xed", i + 1)
    return True


# A str holding the lone surrogate U+D83C, as the runtime's own json makes it.
def lone():
    return json.loads('"a\\ud83cb"')


# ---------------------------------------------------------------- what must be accepted


def test_commands_and_scalars():
    assert loads('{"type":"toggle","relay":"Light"}', depth=8) == {"type": "toggle", "relay": "Light"}
    assert loads('{"type":"set","relay":0,"on":true}', depth=8) == {"type": "set", "relay": 0, "on": True}
    assert loads('{"a":false,"b":null,"c":-12,"d":0}', depth=8) == {"a": False, "b": None, "c": -12, "d": 0}
    assert loads("{}", depth=8) == {} and loads("[]", depth=8) == [] and loads('""', depth=8) == ""
    for s, v in (("0", 0), ("-0", 0), ("7", 7), ("true", True), ("null", None), ('"x"', "x")):
        assert loads(s, depth=8) == v and type(loads(s, depth=8)) is type(v), s


def test_numbers_as_rfc_8259_has_them():
    for s, v in (("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0), ("1E+2", 100.0), ("2e-1", 0.2), ("0.0", 0.0), ("10", 10)):
        assert loads(s, depth=8) == v, s
        assert loads('{"n":%s}' % s, depth=8) == {"n": v}, s
    assert type(loads("1e3", depth=8)) is float and type(loads("1000", depth=8)) is int


def test_whitespace_everywhere_json_allows_it():
    s = ' \t\r\n{ "type" :\t"toggle" ,\n\r "relay"\n:\r\n1 , "x" : [ 1 , { } , [ ] ] }\n '
    assert loads(s, depth=8) == {"type": "toggle", "relay": 1, "x": [1, {}, []]}
    assert loads('{"a" : "b" , "c" : 2 }', depth=8) == {"a": "b", "c": 2}


def test_escapes():
    assert loads('"\\" \\\\ \\/ \\b \\f \\n \\r \\t"', depth=8) == '" \\ / \x08 \x0c \n \r \t'
    assert loads('"\\u0041\\u00e9\\u2603\\u00E9"', depth=8) == "A\u00e9\u2603\u00e9"
    assert loads('{"k\\"ey":"v\\"al"}', depth=8) == {'k"ey': 'v"al'}
    assert loads('["\\\\", "\\\\\\""]', depth=8) == ["\\", '\\"']


def test_surrogate_pair_escapes_become_one_character():
    v = loads('{"type":"say","text":"pizza \\ud83c\\udf55!"}', depth=8)["text"]
    assert v == "pizza " + PIZZA + "!"
    assert len(v) == 8
    assert v.encode() == b"pizza \xf0\x9f\x8d\x95!"
    assert loads('"\\uD83D\\uDE00"', depth=8) == "\U0001f600"


def test_raw_unicode_and_a_raw_delete_character_pass():
    assert loads('{"t":"caf\u00e9 \u2603 %s"}' % PIZZA, depth=8) == {"t": "caf\u00e9 \u2603 " + PIZZA}
    assert loads('"\x7f"', depth=8) == "\x7f"


def test_bytes_input():
    assert loads(b'{"a":[1,"\xc3\xa9"]}', depth=8) == {"a": [1, "\u00e9"]}
    refused(b'"\xff"')
    refused(b'"\xc3"')


def test_nesting_up_to_the_bound_and_duplicate_keys():
    assert loads("[" * 8 + "]" * 8, depth=8) == [[[[[[[[]]]]]]]]
    assert loads('{"a":{"b":{"c":[1,{"d":2}]}}}', depth=8) == {"a": {"b": {"c": [1, {"d": 2}]}}}
    assert loads("[[1]]", depth=2) == [[1]]
    assert loads('{"a":1,"a":2}', depth=8) == {"a": 2}  # the last one wins, as in CPython


def test_every_string_returned_is_valid_utf8():
    v = loads('["\\ud83c\\udf55", "\\u00ff", "\\uffff", "\\ud7ff\\ue000", "\\udbff\\udfff"]', depth=8)
    assert v == [PIZZA, "\u00ff", "\uffff", "\ud7ff\ue000", "\U0010ffff"]
    for s in v:
        assert is_utf8(s.encode()), s


def test_same_result_as_cpython_json_on_what_both_take():
    for s in ('{"a":[1,2,{"b":null}],"c":"d\\n"}', '[true,false,"\\u00e9",-3,0.5]', '{"x":{}}', '"\\/"'):
        assert loads(s, depth=8) == json.loads(s), s


# ---------------------------------------------------------------- what must be refused


def test_trailing_extra_and_missing_commas():
    for s in ('{"a":1,}', "[1,]", "[1,,2]", '{"a":1,,"b":2}', '{,"a":1}', "[,1]", '{"a":1 "b":2}', "[1 2]", '{"a":"b" "c":"d"}', '{"a":"b","c":"d",}', "[1}", '{"a":1]'):
        refused(s)


def test_missing_or_extra_colons_and_bad_keys():
    for s in ('{"a" 1}', '{"a"::1}', '{"a":}', '{"a"}', "{a:1}", "{1:2}", '{"a":1:2}', "{'a':1}", '{"a";1}', '{"a""b"}'):
        refused(s)


def test_leading_zeros_and_other_bad_numbers():
    for n in ("00", "01", "-01", "-00", "+1", "1.", ".5", "1.e3", "1e", "1e+", "--1", "0x10", "1.5.5", "1e5e5", "-", "NaN", "Infinity", "-Infinity", "1_000", "\u0661"):
        refused(n)
        refused('{"a":%s}' % n)


def test_raw_control_characters_in_strings():
    for c in range(32):
        refused('"a%sb"' % chr(c))
        refused('{"type":"say","text":"a%sb"}' % chr(c))


def test_bad_escapes_and_literals():
    for s in ('"\\x41"', '"\\a"', '"\\u12"', '"\\u12G4"', '"\\uZZZZ"', '"\\u+123"', '"\\u 123"', '"\\', '"abc', '"a\\"', "tru", "truex", "nul", "True", "None", "'a'"):
        refused(s)


def test_anything_after_the_value_or_nothing_at_all():
    for s in ('{"a":1}x', '{"a":1}}', '{"a":1}{"b":2}', '{"a":1}\x00', "1 2", "", " ", "\x0b{}", "{}\x0c", "\ufeff{}"):
        refused(s)


def test_unterminated_containers():
    for s in ("[", "{", '{"a"', '{"a":', '{"a":1', "[1,2", '["a"', "[[]"):
        refused(s)


def test_many_fields_go_past_the_fast_path_with_the_same_result():
    d = {}
    for i in range(40):
        d["k%d" % i] = "v%d" % i if i % 2 else i
    s = json.dumps(d)
    assert loads(s, depth=8) == d
    refused(s[:-1] + ",}")
    refused(s.replace(":", "", 1))


def test_deep_nesting_is_refused_without_recursion():
    refused("[" * 9 + "]" * 9)
    refused("[" * 1500)
    refused('{"a":' * 2000)
    refused("[" * 5000 + "]" * 5000)
    try:
        loads("[[[1]]]", depth=2)
        assert False, "depth 3 taken with depth=2"
    except ValueError:
        pass


def test_lone_surrogates_are_told_apart():
    for s in ('"\\ud83c"', '"\\udf55"', '"\\ud83cx"', '"\\ud83c\\u0041"', '"\\ud83c\\ud83c"', '"\\udf55\\ud83c"', '{"type":"say","text":"\\ud83c"}'):
        surrogate(s)
    # an encoded surrogate in the input itself (CPython cannot even encode it)
    surrogate(b'"\xed\xa0\xbc"')
    surrogate(lone())


# ---------------------------------------------------------------- utf8


def test_utf8_keeps_valid_text_as_it_is():
    for s in ("", "plain", "caf\u00e9 \u2603 " + PIZZA, "\ud7ff\ue000"):
        assert utf8(s) is s


def test_utf8_joins_pairs_and_replaces_lone_surrogates():
    pair = json.loads('"a\\ud83c\\udf55b"')  # MicroPython: two surrogates; CPython too
    assert utf8(pair).encode() == b"a\xf0\x9f\x8d\x95b"
    assert utf8(lone()).encode() == b"a\xef\xbf\xbdb"
    assert utf8(json.loads('"\\udf55\\ud83c"')) == "\ufffd\ufffd"
    assert utf8(json.loads('"\\ud83c"')) == "\ufffd"
    for s in (pair, lone(), json.loads('"x\\udfff\\ud800y\\ud800"')):
        assert is_utf8(utf8(s).encode())


# ---------------------------------------------------------------- printable


def test_printable_clean_text_is_the_same_object():
    for s in ("ws 127.0.0.1:5555: closed 1000 bye", "", "x" * 80, "a \"quoted\" 'text' {}[]()!#$%&*+;<=>?@^`|~"):
        assert printable(s, 80) is s


def test_printable_escapes_what_could_forge_a_line():
    assert printable("bye\nGPIO26 -> 0", 80) == "bye\\nGPIO26 -> 0"
    assert printable("a\r\nrelay Light -> on (client)", 80) == "a\\r\\nrelay Light -> on (client)"
    assert printable("nul\x00 tab\t bell\x07 del\x7f esc\x1b", 80) == "nul\\x00 tab\\t bell\\x07 del\\x7f esc\\x1b"
    assert printable("back\\slash", 80) == "back\\\\slash"


def test_printable_escapes_non_ascii():
    assert printable("caf\u00e9 \u2603 " + PIZZA, 80) == "caf\\u00e9 \\u2603 \\U0001f355"
    assert printable(lone(), 80) == "a\\xed\\xa0\\xbcb"


def test_printable_cuts_long_text_with_a_marker():
    r = printable("x" * 81, 80)
    assert r == "x" * 77 + "..."
    assert printable("y" * 500, 20) == "y" * 17 + "..."
    r = printable("\n" * 100, 80)
    assert len(r) == 80 and r.endswith("...") and r.startswith("\\n\\n")
    assert len(printable(PIZZA * 100, 40)) == 40


def test_printable_takes_bytes():
    assert printable(b"ok\n\xff", 80) == "ok\\n\\xff"
    assert printable(b"plain", 80) == "plain"


def test_printable_result_is_one_ascii_line():
    for s in ("a\nb", "\u2028\u2029\x85", PIZZA, "\x00" * 300, lone()):
        r = printable(s, 80)
        assert len(r) <= 80
        for c in r:
            assert " " <= c <= "~", (s, r)
