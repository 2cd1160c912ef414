# Tests for firmware/config.py: the repository's config.json validates with defaults filled
# in; every bad field gives a ConfigError that names it; load() reports unreadable files.
# Portable: plain functions and asserts, run by pytest on CPython and by host_tests/mp_run.py
# on the MicroPython unix port.
import json
import os

from firmware import config
from firmware.config import ConfigError, validate
from host_tests.portable.fakes import base_config as base, with_relay, TempDir, check_field, repo_path


def without(d, key):
    d = dict(d)
    del d[key]
    return d


# ---------------------------------------------------------------- valid configs


def test_repo_config_json_is_valid_with_defaults_filled():
    cfg = config.load(repo_path("config.json"))
    with open(repo_path("config.json")) as f:
        raw = json.loads(f.read())
    assert validate(raw) == cfg
    assert cfg["name"] == raw["name"]
    assert len(cfg["relays"]) == len(raw["relays"])
    for r, given in zip(cfg["relays"], raw["relays"]):
        assert sorted(r.keys()) == ["active_low", "group", "name", "pin", "power_on", "pulse_ms"]
        assert r["name"] == given["name"] and r["pin"] == given["pin"]
        assert r["active_low"] == given.get("active_low", False)
        assert r["power_on"] == given.get("power_on", "off")
        assert r["group"] == given.get("group")
        assert r["pulse_ms"] == given.get("pulse_ms", 0)
    assert sorted(cfg["limits"].keys()) == sorted(config.LIMITS.keys())
    for k, v in config.LIMITS.items():
        assert cfg["limits"][k] == raw.get("limits", {}).get(k, v)
    assert cfg["http"]["port"] == raw.get("http", {}).get("port", 80)
    assert isinstance(cfg["echo"], bool)
    assert isinstance(cfg["auth"]["token"], str)
    assert set(cfg["wifi"].keys()) == set(["ssid", "password", "ap_password", "ap_after_s"])


def test_minimal_config_gets_every_default():
    cfg = validate({"relays": [{"name": "Only", "pin": 4}]})
    assert cfg == {
        "name": "relaynode",
        "wifi": {"ssid": "", "password": "", "ap_password": "", "ap_after_s": 120},
        "relays": [{"name": "Only", "pin": 4, "active_low": False, "power_on": "off", "group": None, "pulse_ms": 0}],
        "http": {"port": 80},
        "limits": config.LIMITS,
        "echo": False,
        "auth": {"token": "", "origins": []},
        "links": [],
    }
    assert cfg["limits"] is not config.LIMITS


def test_every_field_set_is_kept():
    raw = {
        "name": "barn",
        "wifi": {"ssid": "home", "password": "pw", "ap_password": "p" * 63, "ap_after_s": 86400},
        "relays": [
            {"name": "Up", "pin": 12, "active_low": True, "power_on": "on", "group": "blind", "pulse_ms": 0},
            {"name": "Down", "pin": 13, "power_on": "restore", "group": "blind"},
            {"name": "Door", "pin": 33, "pulse_ms": 3600000},
            {"name": "Zero", "pin": 0},
        ],
        "http": {"port": 8080},
        "limits": {"max_clients": 2, "max_head": 1 << 24},
        "echo": True,
        "auth": {"token": "t" * 128},
        "links": [{"url": "ws://x/ws", "token": "k", "rules": [{"mirror": {"local": "up", "remote": "Up"}}]}],
    }
    cfg = validate(raw)
    assert cfg["name"] == "barn"
    assert cfg["wifi"] == {"ssid": "home", "password": "pw", "ap_password": "p" * 63, "ap_after_s": 86400}
    assert [r["pin"] for r in cfg["relays"]] == [12, 13, 33, 0]
    assert cfg["relays"][0]["power_on"] == "on" and cfg["relays"][0]["active_low"] is True
    assert cfg["relays"][1]["group"] == "blind"
    assert cfg["relays"][2]["pulse_ms"] == 3600000
    assert cfg["http"]["port"] == 8080
    assert cfg["limits"]["max_clients"] == 2
    assert cfg["limits"]["max_head"] == 1 << 24
    assert cfg["limits"]["max_headers"] == config.LIMITS["max_headers"]
    assert cfg["echo"] is True
    assert cfg["auth"]["token"] == "t" * 128
    assert cfg["links"] == [{"url": "ws://x/ws", "token": "k", "timeout_ms": 5000, "ping_ms": 15000,
                             "rules": [{"kind": "mirror", "local": "Up", "remote": "Up", "direction": "both"}]}]


def test_sixteen_relays_are_allowed():
    pins = [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22]
    raw = {"relays": [{"name": "R%d" % i, "pin": p} for i, p in enumerate(pins)]}
    assert len(validate(raw)["relays"]) == 16


def test_validate_does_not_change_its_input():
    raw = base()
    before = json.dumps(raw)
    validate(raw)
    assert json.dumps(raw) == before


# ---------------------------------------------------------------- top level


def test_config_must_be_an_object():
    for raw in ([], "x", None, 5):
        check_field(raw, "config")


def test_unknown_top_level_key():
    raw = base()
    raw["relay"] = []
    check_field(raw, "relay")


def test_missing_or_bad_relays():
    check_field(without(base(), "relays"), "relays")
    for relays in ([], {}, "Light", None, [{"name": "R%d" % i, "pin": i} for i in range(17)]):
        raw = base()
        raw["relays"] = relays
        check_field(raw, "relays")


def test_bad_name():
    for name in ("", "   ", 5, None, True, "x" * 33):
        raw = base()
        raw["name"] = name
        check_field(raw, "name")


def test_bad_wifi():
    raw = base()
    raw["wifi"] = "home"
    check_field(raw, "wifi")
    raw["wifi"] = {"ssid": 5}
    check_field(raw, "wifi.ssid")
    raw["wifi"] = {"ssid": "s" * 33}
    check_field(raw, "wifi.ssid")
    raw["wifi"] = {"ssid": "home", "password": None}
    check_field(raw, "wifi.password")
    raw["wifi"] = {"ssid": "home", "password": "p" * 65}
    check_field(raw, "wifi.password")


def test_ap_password_is_empty_or_a_wpa2_passphrase():
    raw = base()
    for good in ("", "p" * 8, "p" * 63, " ~!\"#$%&'()*"):
        raw["wifi"] = {"ap_password": good}
        assert validate(raw)["wifi"]["ap_password"] == good
    for bad in ("p" * 7, "p" * 64, "p\u00e4sswort", "password\t", None, 12345678, ["password"]):
        raw["wifi"] = {"ap_password": bad}
        msg = check_field(raw, "wifi.ap_password")
        assert "8 to 63" in msg, msg


def test_ap_after_s():
    raw = base()
    raw["wifi"] = {"ap_after_s": 1}
    assert validate(raw)["wifi"]["ap_after_s"] == 1
    for bad in (0, -5, 86401, "120", 1.5, True, None):
        raw["wifi"] = {"ap_after_s": bad}
        check_field(raw, "wifi.ap_after_s")


def test_bad_http_port():
    for http, field in (("80", "http"), ({"port": 0}, "http.port"), ({"port": 65536}, "http.port"), ({"port": "80"}, "http.port"), ({"port": True}, "http.port"), ({"port": 80.0}, "http.port")):
        raw = base()
        raw["http"] = http
        check_field(raw, field)


def test_unknown_keys_in_sections_are_refused():
    # A misspelt "token" must not silently leave the node without its access token.
    for section, key in (("wifi", "SSID"), ("http", "prot"), ("auth", "tokn")):
        raw = base()
        raw[section] = {key: "x"}
        check_field(raw, section + "." + key)


def test_auth_origins():
    raw = base()
    raw["auth"] = {"origins": ["http://192.168.1.5:8080", "https://example.org"]}
    assert validate(raw)["auth"] == {"token": "", "origins": ["http://192.168.1.5:8080", "https://example.org"]}
    raw["auth"] = {"origins": "http://x"}
    check_field(raw, "auth.origins")
    raw["auth"] = {"origins": ["http://x", "example.org"]}
    check_field(raw, "auth.origins[1]")
    raw["auth"] = {"origins": [5]}
    check_field(raw, "auth.origins[0]")


def test_bad_echo_and_auth():
    raw = base()
    raw["echo"] = 1
    check_field(raw, "echo")
    raw = base()
    raw["auth"] = "token"
    check_field(raw, "auth")
    raw["auth"] = {"token": 5}
    check_field(raw, "auth.token")
    raw["auth"] = {"token": "t" * 129}
    check_field(raw, "auth.token")


# ---------------------------------------------------------------- relays


def test_relay_must_be_an_object():
    raw = base()
    raw["relays"][1] = ["Fan", 27]
    check_field(raw, "relays[1]")


def test_relay_unknown_key():
    check_field(with_relay(1, colour="red"), "relays[1].colour")


def test_relay_bad_name():
    raw = base()
    del raw["relays"][1]["name"]
    check_field(raw, "relays[1].name")
    for name in ("", "  ", 7, None, True, "n" * 33, "on", "OFF", " Fan", "Fan "):
        check_field(with_relay(1, name=name), "relays[1].name")


def test_relay_bad_pin_types():
    raw = base()
    del raw["relays"][1]["pin"]
    check_field(raw, "relays[1].pin")
    for pin in ("27", 27.0, None, True, False, [27]):
        check_field(with_relay(1, pin=pin), "relays[1].pin")


def test_relay_pin_out_of_range():
    for pin in (-1, 40, 100):
        check_field(with_relay(1, pin=pin), "relays[1].pin")


def test_relay_flash_pins_are_refused():
    for pin in (6, 7, 8, 9, 10, 11):
        msg = check_field(with_relay(1, pin=pin), "relays[1].pin")
        assert "flash" in msg
    for pin in (5, 12):
        validate(with_relay(1, pin=pin))


def test_relay_input_only_pins_are_refused():
    for pin in (34, 35, 36, 37, 38, 39):
        msg = check_field(with_relay(1, pin=pin), "relays[1].pin")
        assert "input-only" in msg
    validate(with_relay(1, pin=33))


def test_relay_bool_where_a_bool_is_expected():
    for v in (1, 0, "true", None):
        check_field(with_relay(0, active_low=v), "relays[0].active_low")


def test_relay_bad_power_on():
    for v in ("ON", "restored", "", None, True, 1, ["on"]):
        check_field(with_relay(1, power_on=v), "relays[1].power_on")
    for v in ("off", "on", "restore"):
        assert validate(with_relay(1, power_on=v))["relays"][1]["power_on"] == v


def test_relay_bad_group():
    for v in ("", "  ", 1, True, ["a"], "g" * 33):
        check_field(with_relay(1, group=v), "relays[1].group")
    assert validate(with_relay(1, group=None))["relays"][1]["group"] is None


def test_relay_bad_pulse_ms():
    for v in (-1, 3600001, 1.5, "500", True, None):
        check_field(with_relay(1, pulse_ms=v), "relays[1].pulse_ms")
    assert validate(with_relay(1, pulse_ms=0))["relays"][1]["pulse_ms"] == 0


def test_duplicate_names_case_insensitive():
    msg = check_field(with_relay(1, name="LIGHT"), "relays[1].name")
    assert "duplicate" in msg
    raw = base()
    raw["relays"].append({"name": "fan", "pin": 25})
    check_field(raw, "relays[2].name")


def test_duplicate_pins():
    msg = check_field(with_relay(1, pin=26), "relays[1].pin")
    assert "26" in msg
    raw = base()
    raw["relays"].append({"name": "Pump", "pin": 27})
    check_field(raw, "relays[2].pin")


def test_first_bad_relay_is_named():
    raw = base()
    raw["relays"][0]["pin"] = 6
    raw["relays"][1]["pin"] = 7
    check_field(raw, "relays[0].pin")


# ---------------------------------------------------------------- limits


def test_unknown_limit():
    raw = base()
    raw["limits"] = {"max_clients": 2, "max_cients": 3}
    check_field(raw, "limits.max_cients")


def test_bad_limits():
    for k in config.LIMITS:
        for v in (0, -1, (1 << 24) + 1, True, False, "10", 1.5, None):
            raw = base()
            raw["limits"] = {k: v}
            check_field(raw, "limits." + k)
    raw = base()
    raw["limits"] = [1]
    check_field(raw, "limits")


def test_limit_bounds_are_inclusive():
    raw = base()
    raw["limits"] = {"max_clients": 1, "max_message": 1 << 24}
    cfg = validate(raw)
    assert cfg["limits"]["max_clients"] == 1
    assert cfg["limits"]["max_message"] == 1 << 24


# ---------------------------------------------------------------- load


def test_load_missing_file():
    with TempDir() as d:
        path = d.join("config.json")
        try:
            config.load(path)
        except ConfigError as e:
            assert path in str(e)
        else:
            assert False


def test_load_invalid_json():
    with TempDir() as d:
        path = d.write("config.json", '{"relays": [')
        try:
            config.load(path)
        except ConfigError as e:
            assert path in str(e) and "JSON" in str(e)
        else:
            assert False


def test_load_validates():
    with TempDir() as d:
        raw = with_relay(1, pin=8)
        path = d.write("config.json", json.dumps(raw))
        try:
            config.load(path)
        except ConfigError as e:
            assert str(e).startswith("relays[1].pin:")
        else:
            assert False
        path = d.write("ok.json", json.dumps(base()))
        assert config.load(path)["relays"][1]["name"] == "Fan"


def test_config_error_is_an_exception():
    assert issubclass(ConfigError, Exception)


# The ConfigError that config.load(path) raises; fails the test when it raises nothing.
def load_error(path):
    try:
        cfg = config.load(path)
    except ConfigError as e:
        return str(e)
    assert False, "no error, got %r" % (cfg,)


# Write (text, times) pieces to path one after the other: big files without a big string.
def write_parts(path, parts):
    with open(path, "w") as f:
        for text, times in parts:
            for _ in range(times):
                f.write(text)
    return path


def test_load_deeply_nested_file_is_a_config_error():
    with TempDir() as d:
        path = d.join("config.json")
        for parts in (
            [("[", 1536)],
            [("[", 1536), ("]", 1536)],
            [('{"relays":', 1), ("[", 3000), ("]", 3000), ("}", 1)],
            [('{"name":', 1), ('{"a":', 2000), ("1", 1), ("}", 2001)],
        ):
            msg = load_error(write_parts(path, parts))
            assert msg.startswith(path + ":") or msg.startswith("config:"), msg
            assert "\n" not in msg


def test_load_huge_file_is_a_config_error_before_it_is_parsed():
    with TempDir() as d:
        path = d.join("config.json")
        # a field far too long, in a file far too big
        write_parts(path, [('{"name":"node","relays":[{"name":"Light","pin":26}],"wifi":{"ssid":"', 1), ("x" * 59, 700), ('"}}', 1)])
        msg = load_error(path)
        assert msg == "%s: larger than %d bytes" % (path, config.MAX_CONFIG), msg


def test_load_file_at_the_size_bound_is_read():
    with TempDir() as d:
        text = json.dumps(base())
        pad = config.MAX_CONFIG - len(text)
        path = write_parts(d.join("config.json"), [(text[:-1], 1), (" ", pad), ("}", 1)])
        assert os.stat(path)[6] == config.MAX_CONFIG
        assert config.load(path)["relays"][0]["name"] == "Light"


# ---------------------------------------------------------------- mqtt


def with_mqtt(**m):
    raw = base()
    raw["mqtt"] = m
    return raw


def test_no_mqtt_section_no_mqtt_key():
    assert "mqtt" not in validate(base())


def test_mqtt_only_host_gets_every_default():
    m = validate(with_mqtt(host="192.168.1.10"))["mqtt"]
    assert m == {
        "host": "192.168.1.10",
        "port": 1883,
        "user": "",
        "password": "",
        "client_id": "node",
        "topic": "relaynode/node",
        "discovery_prefix": "homeassistant",
        "keepalive_s": 30,
        "tls": False,
        "ca": None,
    }


def test_mqtt_tls_default_port_and_every_field_kept():
    assert validate(with_mqtt(host="b", tls=True))["mqtt"]["port"] == 8883
    full = {
        "host": "broker.lan",
        "port": 1884,
        "user": "u",
        "password": "p",
        "client_id": "cid",
        "topic": "house/relays",
        "discovery_prefix": "ha",
        "keepalive_s": 3600,
        "tls": True,
        "ca": "ca.pem",
    }
    assert validate(with_mqtt(**full))["mqtt"] == full


def test_mqtt_bad_fields_are_named():
    check_field(with_mqtt(), "mqtt.host")
    check_field(with_mqtt(host=""), "mqtt.host")
    check_field(with_mqtt(host=5), "mqtt.host")
    check_field(with_mqtt(host="b", port=0), "mqtt.port")
    check_field(with_mqtt(host="b", port=65536), "mqtt.port")
    check_field(with_mqtt(host="b", port="1883"), "mqtt.port")
    check_field(with_mqtt(host="b", user=1), "mqtt.user")
    check_field(with_mqtt(host="b", password="x"), "mqtt.password")  # no user
    check_field(with_mqtt(host="b", client_id=""), "mqtt.client_id")
    check_field(with_mqtt(host="b", keepalive_s=4), "mqtt.keepalive_s")
    check_field(with_mqtt(host="b", keepalive_s=3601), "mqtt.keepalive_s")
    check_field(with_mqtt(host="b", tls="yes"), "mqtt.tls")
    check_field(with_mqtt(host="b", ca="ca.pem"), "mqtt.ca")  # without tls
    check_field(with_mqtt(host="b", tls=True, ca=3), "mqtt.ca")
    check_field(with_mqtt(host="b", bogus=1), "mqtt.bogus")
    raw = base()
    raw["mqtt"] = "broker"
    check_field(raw, "mqtt")


def test_mqtt_topics_without_wildcards():
    for t in ("a/+/b", "a/#", "a/", "", "x\x00"):
        check_field(with_mqtt(host="b", topic=t), "mqtt.topic")
        check_field(with_mqtt(host="b", discovery_prefix=t), "mqtt.discovery_prefix")
    raw = with_mqtt(host="b")
    raw["name"] = "a+b"  # the default topic comes from the name
    assert "relaynode/a+b" in check_field(raw, "mqtt.topic")
    raw["mqtt"]["topic"] = "relaynode/ab"
    assert validate(raw)["mqtt"]["client_id"] == "a+b"


def test_mqtt_relays_with_the_same_slug_are_refused():
    raw = with_mqtt(host="b")
    raw["relays"][1]["name"] = "light!"  # slug "light_" differs from "light": fine
    validate(raw)
    raw["relays"][1]["name"] = "LIGHT."  # -> "light_"
    raw["relays"][0]["name"] = "Light?"
    msg = check_field(raw, "relays[1].name")
    assert "light_" in msg
    raw2 = base()
    raw2["relays"][0]["name"] = "Light?"
    raw2["relays"][1]["name"] = "light."
    validate(raw2)  # without mqtt the slugs do not matter
