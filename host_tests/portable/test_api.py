# The HTTP API's decisions without sockets (firmware/api.py, apiconfig.py): the strict decoding
# of a relay NAME, the command bodies, and the config's secrets left out and kept.
# Portable: run by pytest and by host_tests/mp_run.py.
import json

from firmware import api
from firmware import apiconfig
from host_tests.portable.fakes import TempDir


def refused(f, *args):
    try:
        f(*args)
    except api.ApiError as e:
        return e.status, e.code
    raise AssertionError("not refused: %r" % (args,))


def test_names_are_decoded_strictly():
    assert api.target("/api/config") is None
    assert api.target("/api/relays/Light") == "Light"
    assert api.target("/api/relays/Living%20room") == "Living room"
    assert api.target("/api/relays/a+b") == "a+b"  # a path: + is a plus
    assert api.target("/api/relays/%C3%A9t%C3%A9") == "\u00e9t\u00e9"
    assert api.target("/api/relays/%2e%2e%2Fconfig") == "../config"  # a name, never a path
    assert api.target("/api/relays/" + "%C3%A9" * 32) == "\u00e9" * 32
    for path in ("/api/relays/", "/api/relays/../config", "/api/relays/a/b", "/api/relays/" + "x" * 33,
                 "/api/relays/" + "%41" * 33, "/api/relays/" + "%C3%A9" * 65):
        assert refused(api.target, path) == (404, "unknown_relay"), path
    for path in ("/api/relays/%", "/api/relays/%4", "/api/relays/%4g", "/api/relays/%-1", "/api/relays/% 1",
                 "/api/relays/%C0%AF", "/api/relays/%ED%A0%80", "/api/relays/%FF", "/api/relays/%C3",
                 "/api/relays/%F4%90%80%80"):
        assert refused(api.target, path) == (400, "bad_name"), path


def test_command_bodies():
    assert api.command(b'{"on": true}', "Light") == {"type": "set", "relay": "Light", "on": True}
    assert api.command(b'{"on":false}', 1) == {"type": "set", "relay": 1, "on": False}
    assert api.command(b'{"toggle": true}', "Fan") == {"type": "toggle", "relay": "Fan"}
    assert api.command(b'{"pulse_ms": 500}', "Fan") == {"type": "pulse", "relay": "Fan", "ms": 500}
    for body, code in ((b"", "bad_json"), (b"{", "bad_json"), (b"[1]", "bad_json"), (b"\xff", "bad_json"),
                       (b'{"on": "yes"}', "bad_field"), (b'{"on": 1}', "bad_field"),
                       (b'{"toggle": false}', "bad_field"), (b'{"pulse_ms": 0}', "bad_field"),
                       (b'{"pulse_ms": 3600001}', "bad_field"), (b'{"pulse_ms": true}', "bad_field"),
                       (b'{"pulse_ms": 1.5}', "bad_field"), (b"{}", "bad_command"),
                       (b'{"on": true, "toggle": true}', "bad_command"), (b'{"off": true}', "bad_command"),
                       (b'{"type": "set", "relay": 0, "on": true}', "bad_command")):
        assert refused(api.command, body, "Light") == (400, code), body


def config():
    return {
        "name": "n",
        "wifi": {"ssid": "home", "password": "w-secret", "ap_password": "ap-secret"},
        "relays": [{"name": "Light", "pin": 26}],
        "auth": {"token": "t-secret", "origins": []},
        "links": [{"url": "ws://a/ws", "token": "a-secret", "rules": []},
                  {"url": "ws://b/ws", "rules": []}],
        "mqtt": {"host": "broker", "user": "u", "password": "m-secret"},
    }


def test_public_config_has_no_secrets():
    with TempDir() as d:
        pub = apiconfig.public(d.write("config.json", json.dumps(config())))
    assert "secret" not in json.dumps(pub), pub
    assert pub["wifi"] == {"ssid": "home"} and pub["auth"] == {"origins": []}
    assert pub["mqtt"] == {"host": "broker", "user": "u"}
    assert pub["links"][0] == {"url": "ws://a/ws", "rules": []}


def test_secrets_left_out_are_kept():
    old = config()
    new = config()
    for section, field in (("wifi", "password"), ("wifi", "ap_password"), ("auth", "token"), ("mqtt", "password")):
        del new[section][field]
    del new["links"][0]["token"]
    new["links"].reverse()  # a link's token follows its url
    apiconfig.keep_secrets(new, old)
    new["links"].reverse()
    assert new == old
    # sent: taken, "" included; a section left out stays out
    new = config()
    new["auth"]["token"] = ""
    new["wifi"]["password"] = "other"
    del new["mqtt"]
    del new["links"][0]["token"]
    new["links"][0]["url"] = "ws://c/ws"
    apiconfig.keep_secrets(new, config())
    assert new["auth"]["token"] == "" and new["wifi"]["password"] == "other"
    assert "mqtt" not in new and "token" not in new["links"][0]
