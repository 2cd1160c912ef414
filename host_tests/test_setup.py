# Wi-Fi setup from a phone: the node a board starts when it cannot join a network serves a form
# at /setup and saves what it posts. First the server side, in the simulator on both runtimes
# (tools/sim.py --setup-mode: wifi.json lands in the state directory, no reset); then the whole
# flow on the pretend board (tools/pretend_board.py): no network, the access point, the form
# posted, a reset, the network joined, and joined again after a further reset. Everything
# listens on 127.0.0.1. A missing micropython or mpremote fails these tests.
import json
import os
import socket
import time
from urllib.parse import urlencode

import pytest
from websockets.sync.client import connect

from tools import harness as nh
from host_tests.test_deploy import deployed, mpremote, node_config, pretend_board, serving  # noqa: F401

pytestmark = pytest.mark.slow

T = 5.0  # bound on every wait for something that should happen


def post(port, body, headers=None, path="/setup", timeout=T):
    if isinstance(body, dict):
        body = urlencode(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
    h.update(headers or {})
    req = "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (path, port)
    req += "".join("%s: %s\r\n" % (k, v) for k, v in h.items() if v is not None)
    return nh.parse_response(nh.raw_request(port, req.encode() + b"\r\n" + body, timeout))


def wifi_json(n):
    path = os.path.join(n.state_dir, "wifi.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- the server, in the simulator


def test_setup_form_is_served_in_setup_mode(node):
    n = node(setup_mode=True)
    status, headers, body = nh.http_get(n.port, "/setup")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert '<form method="post" action="/setup">' in page
    for text in ("Wi-Fi network", 'name="ssid"', "Password", 'name="password"', "Save and restart"):
        assert text in page, text
    assert 'name="token"' not in page
    assert nh.http_get(n.port, "/setup", method="PUT")[0] == 405


def test_posted_credentials_are_saved(node):
    n = node(setup_mode=True)
    mark = n.mark()
    status, headers, body = post(n.port, {"ssid": "Caf\u00e9 5G", "password": "p@ss w&rd=1"})
    assert status == 200, body
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "Saved. The node restarts and joins Caf\u00e9 5G" in body.decode()
    assert "http://testnode.local/" in body.decode()
    assert wifi_json(n) == {"ssid": "Caf\u00e9 5G", "password": "p@ss w&rd=1"}
    n.wait_for_line("setup: saved wifi.json for Caf\u00e9 5G", T, mark)
    assert "p@ss" not in n.output()  # the password is never logged
    assert not os.path.exists(os.path.join(n.state_dir, "wifi.json.tmp"))
    # an open network: no password
    assert post(n.port, "ssid=cafe&password=")[0] == 200
    assert wifi_json(n) == {"ssid": "cafe", "password": ""}


def test_bad_credentials_are_refused_and_nothing_is_saved(node):
    n = node(setup_mode=True)
    bad = [
        {"ssid": "", "password": "secret12"},  # no network name
        {"password": "secret12"},
        {"ssid": "n" * 33, "password": "secret12"},  # longer than 32 bytes
        {"ssid": "\u00e9" * 17, "password": "secret12"},  # 17 characters, 34 bytes
        {"ssid": "home", "password": "short12"},  # 7 characters
        {"ssid": "home", "password": "p" * 64},
        {"ssid": "home", "password": "p\u00e4sswort"},  # not ASCII
        "ssid=%FF&password=secret12",  # not UTF-8
    ]
    for body in bad:
        status, _, text = post(n.port, body)
        assert status == 400, (body, status, text)
        assert wifi_json(n) is None, body
    assert post(n.port, "ssid=home", {"Content-Length": "x1"})[0] == 400
    assert post(n.port, "ssid=home", {"Content-Length": "-9"})[0] == 400
    assert not n.matching("setup: saved")
    assert nh.get_state(n.port)["node"] == "testnode"  # still serving


def test_post_without_content_length_is_411(node):
    n = node(setup_mode=True)
    assert post(n.port, "ssid=home&password=secret12", {"Content-Length": None})[0] == 411
    chunked = {"Content-Length": None, "Transfer-Encoding": "chunked"}
    assert post(n.port, "1c\r\nssid=home&password=secret12\r\n0\r\n\r\n", chunked)[0] == 411
    assert wifi_json(n) is None


def test_oversized_form_is_413(node):
    n = node(setup_mode=True)
    body = urlencode({"ssid": "home", "password": "secret12", "pad": "x" * 500})
    assert len(body) > 512
    status, _, text = post(n.port, body)
    assert status == 413, text
    assert wifi_json(n) is None
    # the limit is 512 bytes of form data: exactly that is read
    body = urlencode({"ssid": "home", "password": "secret12"})
    body += "&pad=" + "x" * (512 - len(body) - 5)
    assert len(body) == 512
    assert post(n.port, body)[0] == 200
    assert wifi_json(n) == {"ssid": "home", "password": "secret12"}


def test_a_form_that_never_arrives_is_408(node):
    n = node(setup_mode=True, limits={"handshake_timeout_ms": 500})
    head = b"POST /setup HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nssid=home"
    start = time.monotonic()
    status, _, _ = nh.parse_response(nh.raw_request(n.port, head, timeout=T))
    assert status == 408
    assert time.monotonic() - start < 3
    assert wifi_json(n) is None
    # a client that goes away halfway costs nothing either
    with socket.create_connection(("127.0.0.1", n.port), timeout=T) as s:
        s.sendall(head)
    assert nh.get_state(n.port)["node"] == "testnode"


def test_setup_needs_the_token_when_one_is_set(node):
    n = node(setup_mode=True, auth={"token": "tok-123", "origins": []})
    assert 'name="token"' in nh.http_get(n.port, "/setup")[2].decode()
    creds = {"ssid": "home", "password": "secret12"}
    assert post(n.port, creds)[0] == 401
    assert post(n.port, dict(creds, token="wrong"))[0] == 401
    time.sleep(0.3)  # the lock-out after one wrong token
    assert wifi_json(n) is None
    assert post(n.port, dict(creds, token="tok-123"))[0] == 200
    assert wifi_json(n) == creds


def test_setup_from_another_site_is_refused(node):
    n = node(setup_mode=True)
    creds = {"ssid": "home", "password": "secret12"}
    assert post(n.port, creds, {"Origin": "http://evil.example"})[0] == 403
    assert wifi_json(n) is None
    assert post(n.port, creds, {"Origin": "http://127.0.0.1:%d" % n.port})[0] == 200


def test_the_control_page_and_websocket_keep_working_in_setup_mode(node):
    n = node(setup_mode=True)
    assert nh.http_get(n.port, "/")[0] == 200
    with connect(n.ws_url, open_timeout=T, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=T))["type"] == "state"
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        msg = json.loads(ws.recv(timeout=T))
        assert (msg["type"], msg["name"], msg["on"]) == ("relay", "Light", True)
        assert post(n.port, {"ssid": "home", "password": "secret12"})[0] == 200
    assert nh.get_state(n.port)["relays"][0]["on"] is True


def test_setup_is_404_outside_setup_mode(node):
    n = node()
    assert nh.http_get(n.port, "/setup")[0] == 404
    assert post(n.port, {"ssid": "home", "password": "secret12"})[0] == 404
    assert wifi_json(n) is None
    assert not n.matching("setup:")


# ---------------------------------------------------------------- the whole flow, on the pretend board


def board_post(board, cfg, creds):
    status, _, body = post(cfg["http"]["port"], creds)
    assert status == 200, body
    return body.decode()


def test_wifi_set_up_from_a_phone_survives_resets(pretend_board, tmp_path):  # noqa: F811
    board = pretend_board(wifi=["home:secret12", "office:other-pass"])
    cfg = node_config(name="relaynode-setup")
    assert not cfg["wifi"]["ssid"]
    port = cfg["http"]["port"]
    deployed(tmp_path, board.port, cfg)  # no wifi.json: nothing to join
    board.wait_for(r"pretend wifi: access point 'relaynode-setup' up")
    board.wait_for(r"relaynode: set up Wi-Fi at http://127\.0\.0\.1:%d/setup" % port)
    serving(board, cfg)
    assert not os.path.exists(board.path("wifi.json"))
    status, _, form = nh.http_get(port, "/setup")
    assert status == 200 and "Save and restart" in form.decode()
    # the networks the board found in range are offered
    assert '<option value="home">' in form.decode() and '<option value="office">' in form.decode()

    # A wrong password is saved all the same (the form cannot know), and the board comes back
    # as the access point with the form.
    mark = board.mark()
    assert "joins home" in board_post(board, cfg, {"ssid": "home", "password": "wrong-pass"})
    board.wait_for(r"setup: saved wifi\.json for home; restarting", mark)
    board.wait_for(r"hard reset", mark)
    board.wait_for(r"pretend wifi: wrong password for 'home'", mark)
    board.wait_for(r"pretend wifi: access point 'relaynode-setup' up", mark)
    serving(board, cfg, mark)

    # The right one: the board resets and joins the network.
    mark = board.mark()
    page = board_post(board, cfg, {"ssid": "home", "password": "secret12"})
    assert "Saved. The node restarts and joins home; find it at http://relaynode-setup.local/" in page
    board.wait_for(r"setup: saved wifi\.json for home; restarting", mark)
    board.wait_for(r"hard reset", mark)
    board.wait_for(r"pretend wifi: joined 'home' as 127\.0\.0\.1 \(hostname relaynode-setup\)", mark)
    state = serving(board, cfg, mark)
    assert state["node"] == "relaynode-setup"
    assert "access point" not in board.console(mark)
    assert json.loads(board.read("wifi.json")) == {"ssid": "home", "password": "secret12"}
    assert not os.path.exists(board.path("wifi.json.tmp"))
    assert nh.http_get(port, "/setup")[0] == 404  # on Wi-Fi: no setup mode

    # A further reset joins it again: the credentials are kept in flash.
    mark = board.mark()
    p = mpremote(board.port, "reset")
    assert p.returncode == 0, p.stdout + p.stderr
    board.wait_for(r"hard reset", mark)
    board.wait_for(r"pretend wifi: joined 'home'", mark)
    serving(board, cfg, mark)
    assert "access point" not in board.console(mark)
