# The HTTP API (firmware/api.py, apiconfig.py) and relayctl (tools/relayctl.py) against the
# node as a subprocess on both runtimes: every endpoint, every error status with its JSON body,
# the broadcast to an open page with cause "http", the config's backup and restore with the
# restart, a bad config refused with nothing changed. Hostile input: test_api_hardening.py.
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect

from tools import harness as nh
from host_tests.test_deploy import deployed, node_config, pretend_board  # noqa: F401

pytestmark = pytest.mark.slow

T = 5.0
# The 64-bit unix port loading .mpy files takes the API's code into the heap next to the
# node's, textslow's and the config checks' (PUT): 160K, as for links and the clock; the
# board-faithful builds are measured in make bench.
HEAP = "160K"
TOKEN = "api-Token_7"
RELAYCTL = os.path.join(nh.ROOT, "tools", "relayctl.py")
SECRETS = {"wifi": {"ssid": "home", "password": "wifi-secret", "ap_password": "ap-secret-1"},
           "auth": {"token": TOKEN, "origins": []}}


# (status, headers, JSON body) of one request; body: a dict (sent as JSON) or bytes.
def api(port, method, path, body=None, token=TOKEN, headers=()):
    data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (method, path, port)
    if token:
        req += "Authorization: Bearer %s\r\n" % token
    for k, v in headers:
        req += "%s: %s\r\n" % (k, v)
    if body is not None:
        req += "Content-Length: %d\r\n" % len(data)
    status, h, raw = nh.parse_response(nh.raw_request(port, (req + "\r\n").encode() + data, T))
    return status, h, json.loads(raw) if h.get("content-type") == "application/json" else raw


def page(n, token=TOKEN):
    ws = connect("ws://127.0.0.1:%d/ws?token=%s" % (n.port, token), open_timeout=T, close_timeout=2, legacy=True)
    assert json.loads(ws.recv(timeout=T))["type"] == "state"
    return ws


def states(n):
    status, _, body = api(n.port, "GET", "/api/state")
    assert status == 200, status
    return {r["name"]: r["on"] for r in body["relays"]}


def error(status, code, got):
    assert got[0] == status, got
    assert got[2]["type"] == "error" and got[2]["code"] == code and got[2]["message"], got


def test_relay_endpoints_and_their_errors(node):
    n = node(heapsize=HEAP, **SECRETS)
    ws = page(n)
    port = n.port
    assert api(port, "GET", "/api/relays/Light")[2] == {"id": 0, "name": "Light", "on": False}
    assert api(port, "GET", "/api/relays/1")[2] == {"id": 1, "name": "Fan", "on": False}  # by id
    cases = [("Light", {"on": True}, True), ("light", {"on": False}, False), ("Fan", {"toggle": True}, True),
             ("Fan%20", {"toggle": True}, False)]
    for name, body, on in cases:
        mark = n.mark()
        status, h, got = api(port, "POST", "/api/relays/" + name, body)
        assert status == 200 and h["content-type"] == "application/json", (name, status, got)
        assert got["on"] is on and got["name"] in ("Light", "Fan"), got
        msg = json.loads(ws.recv(timeout=T))
        assert msg == {"type": "relay", "id": got["id"], "name": got["name"], "on": on, "cause": "http"}, msg
        n.wait_for_line("relay %s -> %s (http)" % (got["name"], "on" if on else "off"), T, since=mark)
    mark = n.mark()
    status, _, got = api(port, "POST", "/api/relays/Light", {"pulse_ms": 300})
    assert status == 200 and got["on"] is True
    assert json.loads(ws.recv(timeout=T))["cause"] == "http"
    off = json.loads(ws.recv(timeout=T))  # the pulse's end
    assert off["on"] is False and off["cause"] == "timer", off
    n.wait_for_line("relay Light -> off (timer)", T, since=mark)  # logged after the pages are written

    before = states(n)
    mark = n.mark()
    error(400, "bad_json", api(port, "POST", "/api/relays/Light", b"{on: true}"))
    error(400, "bad_json", api(port, "POST", "/api/relays/Light", b"[true]"))
    error(400, "bad_field", api(port, "POST", "/api/relays/Light", {"on": 1}))
    error(400, "bad_field", api(port, "POST", "/api/relays/Light", {"toggle": False}))
    error(400, "bad_field", api(port, "POST", "/api/relays/Light", {"pulse_ms": 0}))
    error(400, "bad_field", api(port, "POST", "/api/relays/Light", {"pulse_ms": 3600001}))
    error(400, "bad_command", api(port, "POST", "/api/relays/Light", {"on": True, "toggle": True}))
    error(400, "bad_command", api(port, "POST", "/api/relays/Light", {"type": "set", "on": True}))
    error(400, "bad_command", api(port, "POST", "/api/relays/Light", {}))
    error(404, "unknown_relay", api(port, "POST", "/api/relays/Heater", {"on": True}))
    error(404, "unknown_relay", api(port, "GET", "/api/relays/7"))
    got = api(port, "PUT", "/api/relays/Light", {"on": True})
    error(405, "bad_method", got)
    assert got[1]["allow"] == "GET, POST"
    got = api(port, "DELETE", "/api/config")
    error(405, "bad_method", got)
    assert got[1]["allow"] == "GET, PUT"
    got = nh.parse_response(nh.raw_request(port, b"POST /api/relays/Light HTTP/1.1\r\nHost: x\r\n"
                                           b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n", T))
    assert got[0] == 411 and json.loads(got[2])["code"] == "length_required", got
    error(413, "too_large", api(port, "POST", "/api/relays/Light", b'{"on": true, "x": "' + b"a" * 300 + b'"}'))
    got = api(port, "POST", "/api/relays/Light", {"on": True}, token=None)
    error(401, "token_required", got)
    assert got[1]["www-authenticate"] == "Bearer"
    error(401, "bad_token", api(port, "POST", "/api/relays/Light", {"on": True}, token="wrong"))
    error(429, "locked_out", api(port, "POST", "/api/relays/Light", {"on": True}))  # locked 0.25 s
    time.sleep(0.3)
    error(403, "bad_origin", api(port, "POST", "/api/relays/Light", {"on": True},
                                 headers=[("Origin", "http://evil.example")]))
    assert states(n) == before  # no error moved a relay
    assert not [x for x in n.output(mark).splitlines() if x.startswith(("GPIO", "relay "))]
    assert not [x for x in n.output().splitlines() if "Traceback" in x or "rror:" in x]
    ws.close()


def test_rate_limit(node):
    n = node(heapsize=HEAP, limits={"max_rate": 3})
    got = [api(n.port, "POST", "/api/relays/Fan", {"toggle": True}, token=None) for _ in range(6)]
    assert [g[0] for g in got[:3]] == [200] * 3, got
    assert 429 in [g[0] for g in got[3:]], got
    limited = [g for g in got if g[0] == 429][0]
    error(429, "rate_limited", limited)
    assert limited[1]["retry-after"] == "1"
    time.sleep(1.1)
    assert api(n.port, "GET", "/api/relays/Fan", token=None)[0] == 200  # refilled


def config_file(n):
    with open(n.config_path) as f:
        return json.load(f)


# Wait for the node to exit for its restart (status 75), then start it again.
def restarted(n):
    deadline = time.monotonic() + T
    while n.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert n.proc.poll() == 75, n.output()
    n.restart()


def test_config_round_trip_with_restart(node):
    n = node(heapsize=HEAP, **SECRETS)
    status, _, cfg = api(n.port, "GET", "/api/config")
    assert status == 200
    assert cfg["wifi"] == {"ssid": "home"} and cfg["auth"] == {"origins": []}, cfg  # no secrets
    assert "wifi-secret" not in json.dumps(cfg) and TOKEN not in json.dumps(cfg)
    assert cfg["relays"] == config_file(n)["relays"]
    cfg["name"] = "renamed"
    cfg["relays"][1]["name"] = "Pump"
    status, _, got = api(n.port, "PUT", "/api/config", cfg)
    assert (status, got) == (200, {"saved": True, "restart": True}), got
    restarted(n)
    on_disk = config_file(n)
    assert on_disk["name"] == "renamed" and on_disk["relays"][1]["name"] == "Pump"
    assert on_disk["wifi"] == SECRETS["wifi"] and on_disk["auth"]["token"] == TOKEN  # secrets kept
    assert not os.path.exists(n.config_path + ".new") and not os.path.exists(n.config_path + ".tmp")
    assert api(n.port, "GET", "/api/state")[2]["node"] == "renamed"
    assert api(n.port, "GET", "/api/relays/Pump")[0] == 200
    assert api(n.port, "GET", "/api/relays/Pump", token=None)[0] == 401  # the token still holds
    # a secret sent is taken: here a new token
    cfg["auth"]["token"] = "new-token"
    assert api(n.port, "PUT", "/api/config", cfg)[0] == 200
    restarted(n)
    assert api(n.port, "GET", "/api/relays/Pump", token="new-token")[0] == 200


BAD_CONFIGS = [
    (lambda c: c["relays"][0].update(pin=6), "relays[0].pin"),
    (lambda c: c["relays"].append(dict(c["relays"][0])), "relays[2].name"),
    (lambda c: c.update(colour="red"), "colour"),
    (lambda c: c["wifi"].update(ap_password="short"), "wifi.ap_password"),
    (lambda c: c.update(relays=[]), "relays"),
]


def test_bad_config_is_refused_and_nothing_changes(node):
    n = node(heapsize=HEAP, **SECRETS)
    with open(n.config_path, "rb") as f:
        before = f.read()
    cfg = api(n.port, "GET", "/api/config")[2]
    for change, field in BAD_CONFIGS:
        bad = json.loads(json.dumps(cfg))
        change(bad)
        status, _, got = api(n.port, "PUT", "/api/config", bad)
        assert status == 400 and got["code"] == "bad_config" and got["field"] == field, (field, got)
        assert got["message"].startswith(field + ": "), got
    error(400, "bad_config", api(n.port, "PUT", "/api/config", b'{"name": '))
    assert api(n.port, "PUT", "/api/config", b"[1]")[2]["field"] == "config"
    error(401, "token_required", api(n.port, "PUT", "/api/config", cfg, token=None))
    time.sleep(0.5)
    assert n.running()
    with open(n.config_path, "rb") as f:
        assert f.read() == before
    assert sorted(os.listdir(os.path.dirname(n.config_path))) == ["config.json", "state"]
    assert api(n.port, "GET", "/api/config")[2] == cfg


def relayctl(n, *args, token=TOKEN, timeout=15):
    env = dict(os.environ)
    env.pop("RELAYNODE_TOKEN", None)
    if token:
        env["RELAYNODE_TOKEN"] = token
    return subprocess.run([sys.executable, RELAYCTL, n.url] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_relayctl(node, tmp_path):
    n = node(heapsize=HEAP, **SECRETS)
    r = relayctl(n, "status")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Light\toff\nFan\toff\n", "")
    watch = subprocess.Popen([sys.executable, RELAYCTL, "--token", TOKEN, n.url, "watch"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # watch has its state
        assert (relayctl(n, "on", "Light").stdout, relayctl(n, "toggle", "fan").stdout) == ("Light\ton\n", "Fan\ton\n")
        assert relayctl(n, "off", "Light").stdout == "Light\toff\n"
        r = relayctl(n, "pulse", "Light", "200")
        assert (r.returncode, r.stdout) == (0, "Light\ton\n")
        time.sleep(0.8)
    finally:
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=T)
    assert watch.returncode == 0, err
    assert out.splitlines() == ["Light\ton\thttp", "Fan\ton\thttp", "Light\toff\thttp", "Light\ton\thttp",
                                "Light\toff\ttimer"], out
    # failures: exit status and one line on stderr
    for args, token, code, text in [
        (("on", "Heater"), TOKEN, 5, "relayctl: 404 unknown_relay: "),
        (("on", "Light"), None, 4, "relayctl: 401 token_required: "),
        (("status",), "wrong", 4, "relayctl: 401 "),
        (("pulse", "Fan", "0"), TOKEN, 6, "relayctl: 400 bad_field: "),
        (("pulse", "Fan", "x"), TOKEN, 2, "relayctl: "),
        (("fly",), TOKEN, 2, "relayctl: unknown command"),
        (("watch",), "wrong", 4, "relayctl: closed by the node: 1008 bad token"),
        (("config", "put", str(tmp_path / "missing.json")), TOKEN, 1, "relayctl: "),
    ]:
        time.sleep(0.3)  # past the lock-out of the wrong token
        r = relayctl(n, *args, token=token)
        assert r.returncode == code and r.stderr.startswith(text) and r.stderr.count("\n") == 1, (args, r)
        assert r.stdout == ""
    # config: get, a bad put refused (nothing changes), a good put, the restart
    r = relayctl(n, "config", "get")
    assert r.returncode == 0
    cfg = json.loads(r.stdout)
    assert "password" not in cfg["wifi"] and "token" not in cfg["auth"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(cfg, relays=[dict(cfg["relays"][0], pin=40)])))
    r = relayctl(n, "config", "put", str(bad))
    assert r.returncode == 6 and r.stderr.startswith("relayctl: 400 bad_config: relays[0].pin: "), r
    assert n.running()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(cfg, name="viactl")))
    r = relayctl(n, "config", "put", str(good))
    assert (r.returncode, r.stdout, r.stderr) == (0, "saved; the node restarts\n", "")
    restarted(n)
    assert json.loads(relayctl(n, "config", "get").stdout) == dict(cfg, name="viactl")
    n.stop()
    r = relayctl(n, "status")
    assert r.returncode == 3 and r.stderr.startswith("relayctl: 127.0.0.1:%d: " % n.port), r


# On the pretend board (tools/pretend_board.py, MicroPython): PUT /api/config writes
# config.json in its flash and the board resets (machine.reset) once the answer is out, then
# boots with the new config, its secrets kept.
def test_config_put_resets_the_board(pretend_board, tmp_path):  # noqa: F811
    board = pretend_board()
    cfg = node_config(name="boardapi", auth={"token": TOKEN, "origins": []})
    port = cfg["http"]["port"]
    deployed(tmp_path, board.port, cfg)
    board.wait_for(r"serving http://\S+:%d/" % port)
    status, _, public = api(port, "GET", "/api/config")
    assert status == 200 and "token" not in public["auth"], public
    mark = board.mark()
    status, _, got = api(port, "PUT", "/api/config", dict(public, name="renamed"))
    assert (status, got) == (200, {"saved": True, "restart": True})
    board.wait_for(r"config: config\.json saved by 127\.0\.0\.1:\d+, restarting", mark)
    board.wait_for(r"hard reset", mark)
    board.wait_for(r"serving http://\S+:%d/" % port, mark)
    on_flash = json.loads(board.read("config.json"))
    assert on_flash == dict(cfg, name="renamed"), on_flash
    assert not os.path.exists(board.path("config.json.new")) and not os.path.exists(board.path("config.json.tmp"))
    assert api(port, "GET", "/api/state")[2]["node"] == "renamed"
    # a bad one: refused, no reset, the flash unchanged
    mark = board.mark()
    status, _, got = api(port, "PUT", "/api/config", dict(public, relays=[dict(public["relays"][0], pin=7)]))
    assert status == 400 and got["field"] == "relays[0].pin", got
    time.sleep(1.5)
    assert "hard reset" not in board.console(mark)
    assert json.loads(board.read("config.json")) == on_flash
