# Wi-Fi that recovers, on the pretend board (tools/pretend_board.py): a board that boots while
# its network is away runs its access point and keeps trying the network in the background;
# when the network comes into range (--wifi-after) it joins it, stops the access point and
# serves there; when the network goes (SIGUSR1 to the pretend board) the access point comes
# back after wifi.ap_after_s, and when it returns (SIGUSR2) the node joins it again. No reset
# in between: the same boot throughout. Everything listens on 127.0.0.1. A missing micropython
# or mpremote fails these tests.
import json
import re
import signal
import socket
import time

import pytest
from websockets.sync.client import connect

from tools import harness as nh
from host_tests.test_deploy import deployed, node_config, pretend_board, serving  # noqa: F401

pytestmark = pytest.mark.slow

T = 20.0  # bound on every wait for something that should happen
ARRIVES = 35  # seconds after the board starts: after its 20 s try at boot has given up


# A standard query for example.com, type A (ID 0x1234, recursion desired).
QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"


# The address the DNS on 127.0.0.1:port gives for example.com, or None without an answer.
def resolve(port, timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(QUERY, ("127.0.0.1", port))
        try:
            reply = s.recv(512)
        except socket.timeout:
            return None
    assert reply[:2] == b"\x12\x34" and reply[6:8] == b"\x00\x01", reply
    return socket.inet_ntoa(reply[-4:])


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_status(port):
    return nh.http_get(port, "/setup")[0]


def switch(port, on):
    with connect("ws://127.0.0.1:%d/ws" % port, open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": on}))
        msg = json.loads(ws.recv(timeout=5))
        assert (msg["type"], msg["name"], msg["on"]) == ("relay", "Light", on)


def test_the_node_finds_its_network_again_without_a_reset(pretend_board, tmp_path):  # noqa: F811
    wifi = {"ssid": "home", "password": "secret12", "ap_password": "ap-secret-1", "ap_after_s": 3}
    cfg = node_config(name="relaynode-wifi", wifi=wifi)
    port = cfg["http"]["port"]
    # Flash it on a board with no network at all, then start the board on that flash again
    # with "home" coming into range ARRIVES seconds later.
    first = pretend_board()
    deployed(tmp_path, first.port, cfg)
    first.stop()
    dns = free_udp_port()
    board = pretend_board(flash=first.flash, wifi_after=[(ARRIVES, "home:secret12")], dns_port=dns)
    start = time.monotonic()

    # Boot: the network is away, so after its try the board runs a protected access point.
    board.wait_for(r"pretend wifi: no network 'home' in range", timeout=T)
    board.wait_for(r"pretend wifi: access point 'relaynode-wifi' up \(WPA2\)", timeout=30)
    board.wait_for(r"no Wi-Fi: started the access point relaynode-wifi \(WPA2\)")
    assert serving(board, cfg)["node"] == "relaynode-wifi"
    assert setup_status(port) == 200  # the setup page while the access point is up
    board.wait_for(r"dns: every name is 127\.0\.0\.1 while the access point is up")
    assert resolve(dns) == "127.0.0.1"  # the captive portal
    board.wait_for(r"wifi: home not joined; next try in 10 s")
    assert time.monotonic() - start < ARRIVES, "the board booted too late for this test:\n" + board.console()

    # The network comes into range: the next try joins it and the access point stops.
    m = board.wait_for(r"pretend board: Wi-Fi in range: home", timeout=ARRIVES + 5)
    since = m.start()
    board.wait_for(r"pretend wifi: joined 'home' as 127\.0\.0\.1 \(hostname relaynode-wifi\)", since, T)
    board.wait_for(r"pretend wifi: access point 'relaynode-wifi' down", since)
    board.wait_for(r"wifi: access point relaynode-wifi stopped", since)
    board.wait_for(r"wifi: joined home; relaynode: open http://127\.0\.0\.1:%d/" % port, since)
    assert nh.get_state(port)["node"] == "relaynode-wifi"  # serving on the network
    assert setup_status(port) == 404  # on the network: no setup mode
    assert resolve(dns) is None  # and no DNS
    switch(port, True)

    # The network goes: tries at once, and the access point only after ap_after_s (3 s).
    mark = board.mark()
    board.proc.send_signal(signal.SIGUSR1)
    board.wait_for(r"pretend wifi: lost 'home' \(out of range\)", mark)
    board.wait_for(r"wifi: lost home; trying to join it again", mark)
    lost = time.monotonic()
    switch(port, False)  # the relays keep working without a network
    board.wait_for(r"wifi: no network for 3 s: started the access point relaynode-wifi at 127\.0\.0\.1", mark)
    up = time.monotonic()
    board.wait_for(r"pretend wifi: access point 'relaynode-wifi' up \(WPA2\)", mark)
    assert 1.5 < up - lost < 8, (up - lost, board.console(mark))
    assert setup_status(port) == 200
    board.wait_for(r"dns: every name is 127\.0\.0\.1", mark)
    assert resolve(dns) == "127.0.0.1"

    # It comes back: joined again within the try that is running, the access point stops.
    mark = board.mark()
    board.proc.send_signal(signal.SIGUSR2)
    board.wait_for(r"pretend board: Wi-Fi in range: home", mark)
    board.wait_for(r"pretend wifi: joined 'home'", mark)
    board.wait_for(r"wifi: access point relaynode-wifi stopped", mark)
    board.wait_for(r"wifi: joined home; relaynode: open http://127\.0\.0\.1:%d/" % port, mark)
    assert setup_status(port) == 404
    assert resolve(dns) is None
    assert nh.get_state(port)["relays"][0]["on"] is False

    # One boot throughout: the node recovered without a reset.
    out = board.console()
    assert "hard reset" not in out and len(re.findall(r"serving http://", out)) == 1, out
    assert "Traceback" not in out, out


def test_without_a_network_configured_the_node_only_waits_for_setup(pretend_board, tmp_path):  # noqa: F811
    board = pretend_board(wifi=["home:secret12"])
    cfg = node_config(name="relaynode-wait", wifi={"ap_after_s": 1})
    deployed(tmp_path, board.port, cfg)
    board.wait_for(r"pretend wifi: access point 'relaynode-wait' up \(open\)")
    serving(board, cfg)
    time.sleep(12)  # longer than the first pause between tries
    out = board.console()
    assert "pretend wifi: joined" not in out and "no network" not in out, out
    assert not re.search(r"^wifi: ", out, re.M), out
    assert setup_status(cfg["http"]["port"]) == 200
