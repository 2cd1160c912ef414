# Updates over Wi-Fi with rollback, on the pretend board (tools/pretend_board.py: the real
# MicroPython unix port, with a watchdog that resets it as machine.WDT does): tools/deploy.py
# --url against firmware/update.py, boot.py's swap and its rollback. Each test first puts the
# firmware on the board over its serial port (make flash PORT=), with an access token set, a
# wifi.json, and the Light relay on and saved; each ends checking that these survived.
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect

from host_tests.test_deploy import DEPLOY, ROOT, WAIT, deployed, node_config, pretend_board  # noqa: F401
from tools.harness import Node, parse_response, raw_request

pytestmark = pytest.mark.slow

TOKEN = "update-test-token"
WIFI = {"ssid": "home", "password": "secret123"}


def sha(data):
    return hashlib.sha256(data).hexdigest()


# One request to the node with the token; (status, body).
def call(port, method, path, body=b"", token=TOKEN, timeout=10.0):
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n" % (method, path, port, len(body))
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    status, _, data = parse_response(raw_request(port, (head + "\r\n").encode() + body, timeout))
    return status, data


def state(port):
    status, body = call(port, "GET", "/api/state")
    assert status == 200, body
    return json.loads(body)


# The node on the board serving (its "serving" line after mark), its state.
def serving(board, cfg, since=0, timeout=WAIT):
    board.wait_for(r"serving http://\S+:%d/" % cfg["http"]["port"], since, timeout)
    return state(cfg["http"]["port"])


# {path: bytes} of every file in the board's flash.
def snapshot(board):
    out = {}
    for top, _, names in os.walk(board.flash):
        for n in names:
            p = os.path.join(top, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, board.flash)] = f.read()
    return out


def firmware(snap):
    return {n: d for n, d in snap.items() if not n.startswith(("state/", ".previous/"))}


@pytest.fixture
def node(pretend_board, tmp_path):  # noqa: F811
    board = pretend_board(wifi=["home:secret123"])
    cfg = node_config(auth={"token": TOKEN})
    deployed(tmp_path, board.port, cfg, wifi=WIFI)
    st = serving(board, cfg)
    assert st["node"] == "deploytest"
    with connect("ws://127.0.0.1:%d/ws?token=%s" % (cfg["http"]["port"], TOKEN), open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "set", "relay": "Light", "on": True}))
        ws.recv(timeout=5)
    end = time.monotonic() + WAIT
    while b"true" not in (snapshot(board).get("state/state.json") or b""):
        assert time.monotonic() < end, "relay state never saved:\n" + board.console()
        time.sleep(0.05)
    board.cfg = cfg
    board.port_http = cfg["http"]["port"]
    board.saved = {n: snapshot(board)[n] for n in ("state/state.json", "wifi.json")}
    return board


# The relay state and wifi.json are what they were, and the node restored the Light.
def survived(board, st):
    assert {n: snapshot(board)[n] for n in board.saved} == board.saved
    assert json.loads(board.saved["wifi.json"]) == WIFI
    assert [(r["name"], r["on"]) for r in st["relays"]] == [("Light", True), ("Fan", False)]


def deploy_url(tmp_path, board, cfg, *args):
    path = tmp_path / "config-url.json"
    path.write_text(json.dumps(cfg))
    url = "http://127.0.0.1:%d/" % board.port_http
    cmd = [sys.executable, DEPLOY, "--url", url, "--config", str(path), "--wait", "60"] + list(args)
    env = dict(os.environ, RELAYNODE_TOKEN=TOKEN)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


# Upload one file and commit it, as tools/deploy.py --url does; the commit's journal.
def update(board, name, data):
    status, body = call(board.port_http, "PUT", "/api/update/%s?sha256=%s" % (name, sha(data)), data)
    assert status == 200, body
    status, body = call(board.port_http, "POST", "/api/update/commit", json.dumps({"files": [name]}).encode())
    assert status == 200, body
    return json.loads(body)


def test_an_update_that_changes_one_file_copies_one_file(node, tmp_path):
    before = snapshot(node)
    cfg = dict(node.cfg, name="renamed")
    p = deploy_url(tmp_path, node, cfg, "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.findall(r"^  upload (\S+)", p.stdout, re.M) == ["config.json"], p.stdout
    assert snapshot(node) == before  # a dry run changes nothing
    mark = node.mark()
    p = deploy_url(tmp_path, node, cfg)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.findall(r"^  upload (\S+)", p.stdout, re.M) == ["config.json"], p.stdout
    assert re.search(r"^1 to upload \(\d+ bytes\), \d+ unchanged, 0 to remove$", p.stdout, re.M), p.stdout
    assert "runs the new firmware" in p.stdout, p.stdout
    node.wait_for(r"update: new firmware installed", mark)
    node.wait_for(r"update: the new firmware serves", mark)
    st = state(node.port_http)
    assert st["node"] == "renamed"
    after = snapshot(node)
    changed = sorted(n for n in firmware(after) if firmware(before).get(n) != after[n])
    assert changed == ["config.json"]
    assert after[".previous/config.json"] == before["config.json"]  # the previous version, kept
    assert json.loads(after[".previous/.journal"]) == {"add": [], "replace": ["config.json"], "remove": []}
    assert not os.path.exists(node.path(".trial")) and not os.path.exists(node.path(".update"))
    survived(node, st)
    p = deploy_url(tmp_path, node, cfg)  # again: nothing to do
    assert p.returncode == 0 and "runs this firmware already" in p.stdout, p.stdout + p.stderr + node.console()


def test_wrong_hash_and_truncated_uploads_stage_nothing(node):
    before = snapshot(node)
    port = node.port_http
    data = b"print('not the firmware')\n"
    status, body = call(port, "PUT", "/api/update/main.py?sha256=%s" % sha(b"other"), data)
    assert status == 400 and b"SHA-256 mismatch" in body, body
    # Truncated: 1000 bytes announced, 300 sent, then the connection closes.
    head = "PUT /api/update/main.py?sha256=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (sha(data), TOKEN)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall((head + "Content-Length: 1000\r\n\r\n").encode() + b"x" * 300)
    time.sleep(0.5)
    status, body = call(port, "POST", "/api/update/commit", json.dumps({"files": ["main.py"]}).encode())
    assert status == 409 and b"not staged" in body, body
    assert firmware(snapshot(node)) == firmware(before)
    assert not [n for n in snapshot(node) if n.startswith(".update/")]
    assert "cut short, nothing staged" in node.console()
    survived(node, state(port))


def test_a_firmware_that_raises_at_import_is_rolled_back(node):
    before = snapshot(node)
    mark = node.mark()
    journal = update(node, "firmware/app.py", b"raise RuntimeError('broken firmware')\n")
    assert journal == {"add": ["firmware/app.py"], "replace": [], "remove": []}
    for boot in (1, 2, 3):
        node.wait_for(r"update: (new firmware installed; )?boot %d of 3" % boot, mark, 60)
    node.wait_for(r"RuntimeError: broken firmware", mark)
    node.wait_for(r"update: the new firmware did not reach serving within 3 boots", mark, 60)
    st = serving(node, node.cfg, mark, 60)
    assert "previous version was restored" in st["update"]["rolled_back"]
    assert firmware(snapshot(node)) == dict(firmware(before), **{".rolledback": snapshot(node)[".rolledback"]})
    survived(node, st)


def test_a_firmware_that_hangs_before_serving_is_reset_by_the_watchdog_and_rolled_back(node):
    before = snapshot(node)
    with open(os.path.join(ROOT, "firmware", "server.py"), "rb") as f:
        src = f.read()
    start = b"    async def start(self, host, port):\n"
    assert start in src
    hung = src.replace(start, start + b"        while True:\n            pass\n")
    mark = node.mark()
    update(node, "firmware/server.py", hung)
    node.wait_for(r"(?s)(watchdog reset.*){3}", mark, 90)
    node.wait_for(r"update: the new firmware did not reach serving within 3 boots", mark, 60)
    st = serving(node, node.cfg, mark, 60)
    assert "rolled_back" in st["update"]
    assert "serving" not in node.console(mark).split("did not reach serving")[0]
    assert firmware(snapshot(node)) == dict(firmware(before), **{".rolledback": snapshot(node)[".rolledback"]})
    survived(node, st)


# The pretend board's process (the "chip") and the pretend board itself (the "power").
def chip(board):
    with open("/proc/%d/task/%d/children" % (board.proc.pid, board.proc.pid)) as f:
        return int(f.read().split()[0])


def test_a_board_killed_in_the_middle_of_the_commit_ends_with_one_whole_version(node):
    before = snapshot(node)
    port = node.port_http
    new = {"config.json": json.dumps(dict(node.cfg, name="killed")).encode(), "main.py": before["main.py"] + b"\n"}
    for name, data in new.items():
        status, body = call(port, "PUT", "/api/update/%s?sha256=%s" % (name, sha(data)), data)
        assert status == 200, body
    # The power goes at the commit: the pretend board is held, its chip killed, and the flash
    # left as boot.py leaves it after the first rename of the swap (config.json moved out).
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        status, body = call(port, "POST", "/api/update/commit", json.dumps({"files": sorted(new)}).encode())
        assert status == 200, body
        os.kill(chip(node), signal.SIGKILL)
        os.rename(node.path("config.json"), node.path(".previous/config.json"))
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)
    mark = node.mark()
    st = serving(node, node.cfg, mark, 60)
    assert st["node"] == "killed"  # committed: the swap went on where it stopped
    after = snapshot(node)
    for name, data in new.items():
        assert after[name] == data and after[".previous/" + name] == before[name]
    assert {n: d for n, d in firmware(after).items() if n not in new} == {
        n: d for n, d in firmware(before).items() if n not in new
    }
    survived(node, st)


def test_make_flash_url(tmp_path):
    n = Node("cpython", auth={"token": TOKEN})
    try:
        n.start()
        url = "URL=http://127.0.0.1:%d/" % n.port
        env = {k: v for k, v in os.environ.items() if k not in ("RELAYNODE_TOKEN", "PORT", "MAKEFLAGS")}

        def make(*args):
            cmd = ["make", "--no-print-directory", "-C", ROOT, "flash", url] + list(args)
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)

        p = make("TOKEN=" + TOKEN, "FLASH_ARGS=--dry-run")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "  upload boot.py" in p.stdout and "dry run: nothing uploaded" in p.stdout, p.stdout
        p = make()
        assert p.returncode != 0 and "needs the node's access token" in p.stderr, p.stdout + p.stderr
        p = make("TOKEN=wrong")
        assert p.returncode != 0 and "401 bad token" in p.stderr, p.stdout + p.stderr
        assert sorted(os.listdir(n.state_dir)) == ["state.json"] or os.listdir(n.state_dir) == []
        assert n.running()
    finally:
        n.cleanup()


def test_an_update_that_changes_the_token_is_checked_with_the_new_one(node, tmp_path):
    cfg = dict(node.cfg, auth={"token": "the-next-token"})
    p = deploy_url(tmp_path, node, cfg)
    assert p.returncode == 0 and "runs the new firmware" in p.stdout, p.stdout + p.stderr
    status, _ = call(node.port_http, "GET", "/api/files", token="the-next-token")
    assert status == 200
    status, _ = call(node.port_http, "GET", "/api/state", token=TOKEN)
    assert status == 401


def test_make_flash_port_ends_a_trial(node, tmp_path):
    with open(os.path.join(ROOT, "firmware", "server.py"), "rb") as f:
        src = f.read()
    start = b"    async def start(self, host, port):\n"
    mark = node.mark()
    update(node, "firmware/server.py", src.replace(start, start + b"        while True:\n            pass\n"))
    node.wait_for(r"update: new firmware installed; boot 1 of 3", mark, 30)
    out = deployed(tmp_path, node.port, node.cfg, wifi=WIFI)  # by cable, while the new firmware hangs
    assert "end the trial of the firmware updated over Wi-Fi" in out, out
    assert "remove firmware/server.py" in out, out
    mark = node.mark()
    st = serving(node, node.cfg, mark, 30)
    assert not os.path.exists(node.path(".trial")) and not os.path.exists(node.path(".rolledback"))
    assert "update" not in st
    time.sleep(1)
    assert "update:" not in node.console(mark)  # no boot counted, nothing rolled back
    survived(node, st)


# Before the node starts its own watchdog (8 s), the one boot.py starts on trial (60 s) resets
# a firmware that hangs: its boots are counted all the same.
def test_a_firmware_that_hangs_at_import_is_reset_by_the_trial_watchdog(node):
    mark = node.mark()
    update(node, "firmware/app.py", b"while True:\n    pass\n")
    node.wait_for(r"update: new firmware installed; boot 1 of 3", mark, 30)
    node.wait_for(r"watchdog reset \(not fed for 60000 ms\)", mark, 90)
    node.wait_for(r"update: boot 2 of 3 on trial", mark, 30)
    assert "serving" not in node.console(mark)
