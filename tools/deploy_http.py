# tools/deploy.py --url (make flash URL=http://NODE/ [TOKEN=...]): the firmware onto a running
# node over Wi-Fi, through its update endpoints (firmware/update.py). Asks the node for the
# SHA-256 of its files, uploads what differs into its staging folder (each checked there
# against its hash), commits (the files no longer part of the firmware are removed with it),
# then waits for the node to come back and checks that it runs exactly these files. The token
# goes in an Authorization header, never in the URL. wifi.json and the relay state stay the
# node's own.
import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse


class UpdateError(Exception):
    pass


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Node:
    def __init__(self, url, token, timeout):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme != "http" or not u.hostname:
            raise UpdateError("URL must look like http://NODE/ (http, the node's name or address), not %r" % url)
        self.url = "http://%s/" % u.netloc
        self.host = u.hostname
        self.port = u.port or 80
        self.token = token
        self.timeout = timeout

    # (status, body bytes) of one request; UpdateError when the node cannot be reached.
    def request(self, method, path, body=None, timeout=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        headers = {"Authorization": "Bearer " + self.token}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            raise UpdateError("cannot reach %s: %s" % (self.url, e or type(e).__name__))
        finally:
            conn.close()

    # The answer's JSON, or UpdateError with the node's own message. A GET or PUT is tried up to
    # three times: a node short of heap for a moment closes the connection unanswered. (Not
    # the commit: done twice it would fail the second time, once the node is restarting.) A 503
    # (too busy, or no heap to check a file now) did nothing on the node: any request is tried
    # again after a pause.
    def call(self, method, path, body=None):
        for attempt in (1, 2, 3):
            try:
                status, data = self.request(method, path, body)
            except UpdateError:
                if method == "POST" or attempt == 3:
                    raise
                time.sleep(1)
                continue
            if status != 503 or attempt == 3:
                break
            time.sleep(2)
        if status != 200:
            msg = data.decode("utf-8", "replace").strip() or "status %d" % status
            if status == 404 and path == "/api/files":
                msg = "no update endpoint (a firmware from before updates over Wi-Fi: flash it once with PORT=)"
            raise UpdateError("%s %s: %d %s" % (method, path, status, msg))
        return json.loads(data)

    def files(self):
        return self.call("GET", "/api/files")

    # The node's files once it answers again after its reset, or None after wait seconds. The
    # node answers update requests with 404 from its commit to its reset.
    # tokens: the new config's token, then the old one: a 401 switches to the other (a node that
    # rolled back runs its old config), after a pause past the lock-out the wrong one started.
    def back(self, wait, tokens):
        end = time.monotonic() + wait
        self.token = tokens[0]
        while time.monotonic() < end:
            try:
                status, data = self.request("GET", "/api/files", timeout=3)
                if status == 200:
                    return json.loads(data)
                if status == 401 and len(tokens) > 1:
                    tokens = tokens[1:] + tokens[:1]
                    self.token = tokens[0]
                    time.sleep(0.5)
            except (UpdateError, socket.timeout, ValueError):
                pass
            time.sleep(0.5)
        return None


# The update: files is {name on the node: local path}; plan(files, remote) -> (copy, stale, _).
def deploy(files, plan, url, token, timeout, dry_run, wait):
    try:
        with open(files["config.json"]) as f:
            next_token = json.load(f).get("auth", {}).get("token", "")
    except (OSError, ValueError, AttributeError):
        next_token = token  # the node refuses a broken config: it keeps the one it has
    if not token:
        raise UpdateError(
            "updating over Wi-Fi needs the node's access token: make flash URL=... TOKEN=... (or RELAYNODE_TOKEN); "
            "a node without one refuses updates: set auth.token in its config.json (README: Access token)"
        )
    node = Node(url, token, timeout)
    print("asking %s for its files..." % node.url)
    sys.stdout.flush()
    remote = node.files()
    if "www/index.html" in remote or "www/index.html.gz" in remote:
        raise UpdateError("the node's MicroPython has the firmware frozen in: update it with make flash PORT=")
    files = {r: p for r, p in files.items() if r != "wifi.json"}  # the node keeps its own network
    copy, stale, _ = plan(files, remote)
    size = sum(os.path.getsize(files[r]) for r in copy)
    for r in copy:
        print("  upload %-26s %6d bytes" % (r, os.path.getsize(files[r])))
    for r in stale:
        print("  remove %s (no longer part of the firmware)" % r)
    print("%d to upload (%d bytes), %d unchanged, %d to remove" % (len(copy), size, len(files) - len(copy), len(stale)))
    if dry_run:
        print("dry run: nothing uploaded; a real run uploads these, commits, and the node restarts")
        return
    if not copy and not stale:
        print("done; the node runs this firmware already")
        return
    for r in copy:
        with open(files[r], "rb") as f:
            data = f.read()
        node.call("PUT", "/api/update/%s?sha256=%s" % (r, hashlib.sha256(data).hexdigest()), data)
    node.call("POST", "/api/update/commit", json.dumps({"files": copy, "remove": stale}).encode())
    if not next_token:
        print(
            "done; the node restarts. Its new config.json has no auth.token: it refuses updates over Wi-Fi from "
            "now on, so this cannot check it (the console shows whether the new firmware serves)"
        )
        return
    print("committed; waiting for %s to restart..." % node.url)
    sys.stdout.flush()
    now = node.back(wait, [next_token] + ([token] if token != next_token else []))
    if now is None:
        raise UpdateError(
            "%s did not answer within %g s of the commit: see its console (mpremote connect PORT repl)"
            % (node.url, wait)
        )
    wrong = sorted(r for r in files if now.get(r) != sha256(files[r]))
    if wrong or any(r in now for r in stale):
        raise UpdateError(
            "the node came back without the new firmware (%s differ): it did not reach serving and the previous "
            "version was restored; its state message says why, and its console shows the error"
            % ", ".join(wrong or stale)
        )
    print("done; %s runs the new firmware" % node.url)
