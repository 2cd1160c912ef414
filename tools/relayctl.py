#!/usr/bin/env python3
# relayctl: a relaynode from the command line, for people and scripts (the HTTP API; `watch`
# over the WebSocket). Standard library only, plus the firmware's own sans-I/O WebSocket code.
#   relayctl [--token T] [--timeout S] http://NODE/ status | on NAME | off NAME | toggle NAME
#            | pulse NAME MS | watch | config get | config put FILE
# The token comes from --token or $RELAYNODE_TOKEN. Output: status prints "NAME<TAB>on|off" for
# each relay, on/off/toggle/pulse the relay's line after the change, watch one line per change
# "NAME<TAB>on|off<TAB>CAUSE" as it happens (until Ctrl-C, exit status 0), config get the
# config as JSON (without its secrets), config put "saved" (the node restarts to apply it).
# Exit status (EXIT below): 0 done; 1 a local problem (a config file that cannot be read or is
# not JSON); 2 bad usage; 3 the node cannot be reached, or the connection broke; 4 refused:
# token or Origin (401, 403, 429 locked out); 5 no such relay (404); 6 the node refused the
# request otherwise (400 bad command or config, 413, 429 rate limit, ...). Every failure prints
# one line on stderr: "relayctl: " and what went wrong (with the HTTP status and error code
# when the node answered).
import argparse
import http.client
import json
import os
import signal
import socket
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from firmware import websocket as ws  # noqa: E402
from firmware import wsclient  # noqa: E402

EXIT = {"local": 1, "usage": 2, "unreachable": 3, "refused": 4, "not_found": 5, "rejected": 6}


class Failure(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.code = EXIT[kind]
        self.message = message


# The node at url ("http://host[:port]/").
class Client:
    def __init__(self, url, token=None, timeout=5.0):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme != "http" or not u.hostname:
            raise Failure("usage", "the node's address must look like http://NODE/ (got %r)" % url)
        self.host = u.hostname
        try:
            self.port = u.port or 80
        except ValueError:
            raise Failure("usage", "bad port in %r" % url)
        self.token = token
        self.timeout = timeout

    # (status, parsed JSON body) of a request; Failure for no answer or an error status.
    def request(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, data, headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise Failure("unreachable", "%s:%d: %s" % (self.host, self.port, e or type(e).__name__))
        finally:
            conn.close()
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw.decode("utf-8", "replace").strip()
        if resp.status >= 400:
            raise _refusal(resp.status, value)
        if not isinstance(value, dict):
            raise Failure("unreachable", "%s:%d: the answer is not a JSON object" % (self.host, self.port))
        return value

    def relay(self, name, body=None):
        path = "/api/relays/" + urllib.parse.quote(name, safe="")
        return self.request("GET" if body is None else "POST", path, body)

    # Print each relay change as it happens, until interrupted (or the connection ends: Failure).
    def watch(self, out):
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise Failure("unreachable", "%s:%d: %s" % (self.host, self.port, e))
        try:
            self._watch(s, out)
        except OSError as e:
            raise Failure("unreachable", "connection lost: %s" % e)
        finally:
            s.close()

    def _watch(self, s, out):
        host = self.host if self.port == 80 else "%s:%d" % (self.host, self.port)
        req, key = wsclient.client_request(host, "/ws")
        s.sendall(req)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk or len(head) > 8192:
                raise Failure("unreachable", "no WebSocket answer")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        err = wsclient.response_error(head + b"\r\n\r\n", key)
        if err:
            kind = "refused" if err[0] in (401, 403, 429) else "unreachable" if err[0] == 0 else "rejected"
            raise Failure(kind, err[1].strip())
        conn = ws.Connection(1 << 20, client=True)
        if self.token:
            conn.send_text(json.dumps({"type": "auth", "token": self.token}))
            s.sendall(conn.data_to_send())
        s.settimeout(None)  # the node pings every 20 s; a change may be hours away
        data = rest
        while True:
            if data:
                conn.receive_data(data, False)
            for ev in conn.take_events():
                if ev[0] == ws.OP_TEXT:
                    _show(json.loads(ev[1]), out)
                elif ev[0] == ws.OP_CLOSE:
                    kind = "refused" if ev[1] in (1008, 4429) else "unreachable"
                    raise Failure(kind, "closed by the node: %d %s" % (ev[1], ev[2]))
            pending = conn.data_to_send()
            if pending:
                s.sendall(pending)
            data = s.recv(4096)
            if not data:
                raise Failure("unreachable", "connection closed by the node")


# A WebSocket message for watch: each relay change, one line.
def _show(msg, out):
    if msg.get("type") == "relay":
        out.write("%s\t%s\t%s\n" % (msg["name"], "on" if msg["on"] else "off", msg.get("cause", "")))
        out.flush()
    elif msg.get("type") == "error":
        raise Failure("refused", "%s: %s" % (msg.get("code"), msg.get("message")))


# The Failure for an HTTP error answer.
def _refusal(status, value):
    if isinstance(value, dict):
        text = "%d %s: %s" % (status, value.get("code", ""), value.get("message", ""))
    else:
        text = "%d %s" % (status, value)
    locked = isinstance(value, dict) and value.get("code") == "locked_out"
    if status in (401, 403) or locked:
        return Failure("refused", text)
    if status == 404:
        return Failure("not_found", text)
    return Failure("rejected", text)


def _line(relay):
    return "%s\t%s" % (relay["name"], "on" if relay["on"] else "off")


def run(a, out):
    c = Client(a.url, a.token, a.timeout)
    cmd, args = a.command, a.args
    want = {"status": 0, "on": 1, "off": 1, "toggle": 1, "pulse": 2, "watch": 0, "config": None}
    if cmd not in want:
        raise Failure("usage", "unknown command %r (status, on, off, toggle, pulse, watch, config)" % cmd)
    if want[cmd] is not None and len(args) != want[cmd]:
        raise Failure("usage", "%s takes %d argument%s" % (cmd, want[cmd], "" if want[cmd] == 1 else "s"))
    if cmd == "status":
        for r in c.request("GET", "/api/state")["relays"]:
            out.write(_line(r) + "\n")
    elif cmd in ("on", "off"):
        out.write(_line(c.relay(args[0], {"on": cmd == "on"})) + "\n")
    elif cmd == "toggle":
        out.write(_line(c.relay(args[0], {"toggle": True})) + "\n")
    elif cmd == "pulse":
        if not args[1].isdigit():
            raise Failure("usage", "pulse MS: a whole number of milliseconds")
        out.write(_line(c.relay(args[0], {"pulse_ms": int(args[1])})) + "\n")
    elif cmd == "watch":
        # Ctrl-C ends it, also where it was started with SIGINT ignored (a background job of a
        # shell without job control passes that on)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            c.watch(out)
        except KeyboardInterrupt:
            pass
    elif args == ["get"]:
        out.write(json.dumps(c.request("GET", "/api/config"), indent=2) + "\n")
    elif len(args) == 2 and args[0] == "put":
        try:
            with open(args[1], "rb") if args[1] != "-" else sys.stdin.buffer as f:
                cfg = json.loads(f.read())
        except OSError as e:
            raise Failure("local", "%s: %s" % (args[1], e.strerror))
        except ValueError:
            raise Failure("local", "%s: not valid JSON" % args[1])
        answer = c.request("PUT", "/api/config", cfg)
        out.write("saved; the node restarts\n" if answer.get("restart") else "saved\n")
    else:
        raise Failure("usage", "config get | config put FILE")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="relayctl",
        description="Switch and watch a relaynode's relays, back up and restore its config.",
        epilog="exit status: 0 done, 1 local file problem, 2 bad usage, 3 node unreachable, "
        "4 token or origin refused, 5 no such relay, 6 request refused by the node",
    )
    p.add_argument("--token", default=os.environ.get("RELAYNODE_TOKEN"), help="default: $RELAYNODE_TOKEN")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node (default 5)")
    p.add_argument("url", help="the node, http://NODE/")
    p.add_argument("command", help="status | on | off | toggle | pulse | watch | config")
    p.add_argument("args", nargs="*")
    a = p.parse_args(argv)
    try:
        run(a, sys.stdout)
    except Failure as e:
        sys.stderr.write("relayctl: %s\n" % e.message)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
