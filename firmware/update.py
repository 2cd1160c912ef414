# Updates over Wi-Fi, the node's side (tools/deploy.py --url is the other). The server imports
# this only when an update request comes (Server.updates set, routes.UPDATE):
#   GET  /api/files                    -> {name: SHA-256 hex} of the firmware files in flash
#   PUT  /api/update/NAME?sha256=HEX   -> the body into the staging folder .update/, hashed as it
#                                         streams in; kept only when the hash matches
#   POST /api/update/commit            -> {"files": [staged names], "remove": [names]}: the next
#                                         version is written down (.previous/.journal, .trial),
#                                         then the board resets and boot.py swaps it in with
#                                         renames, keeping the files it replaces in .previous/
# and boot.py puts them back when the new firmware does not reach serving within three boots.
# Every endpoint needs the access token in an Authorization header (a node with no token set
# refuses updates, saying so), and the Origin check applies: no web page can post firmware.
# NAME is checked against a fixed set (allowed()) before it is joined to any path.
import asyncio
import binascii
import hashlib
import json
import os

from . import auth
from . import http
from .compat import wait_for_ms, read_into, sleep_ms
from .session import linger

MAX_FILE = 65536  # bytes one upload may have
MAX_COMMIT = 2048  # bytes of the commit's JSON body
RESERVE = 16384  # flash left free after an upload: relay state and wifi.json must still be writable
NEW = ".update"  # the staging folder
OLD = ".previous"  # the files the last update replaced, and its journal
TRIAL = ".trial"  # "swap": installed at the next boot; then the count of boots on trial
NOTE = ".rolledback"  # why boot.py restored the previous version, for the state message
_FIXED = (
    "boot.py main.py config.json firmware/www/index.html firmware/www/index.html.gz www/index.html www/index.html.gz"
).split()
_STEM = "abcdefghijklmnopqrstuvwxyz0123456789_"
_HEX = "0123456789abcdef"
_JSON = "application/json"
_busy = [False]  # one update request at a time: each holds a file open and the shared buffer


# True when name may be written by an update: the entry files, the page, and firmware/NAME.py
# or .mpy with a lower-case module name. Nothing else, so no "..", "/" or "%" ever gets through.
def allowed(name):
    if name in _FIXED:
        return True
    if name[:9] != "firmware/":
        return False
    stem, dot, ext = name[9:].rpartition(".")
    return bool(dot) and ext in ("py", "mpy") and 0 < len(stem) <= 32 and not stem.strip(_STEM)


# The path of name in the flash whose root is root ("" on the board: its current folder, /).
def path(root, name):
    return root + "/" + name if root else name


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


# Make the folders above p (a file's path).
def makedirs(p):
    i = p.find("/", 1)
    while i > 0:
        try:
            os.mkdir(p[:i])
        except OSError:
            pass
        i = p.find("/", i + 1)


# Remove the file or folder p and everything in it; nothing when it is not there.
def remove_tree(p):
    if _is_dir(p):
        for e in os.listdir(p):
            remove_tree(p + "/" + e)
        os.rmdir(p)
    elif exists(p):
        os.remove(p)


def _write(p, text):
    with open(p + ".tmp", "w") as f:
        f.write(text)
    os.rename(p + ".tmp", p)


def _hash(p, buf):
    d = hashlib.sha256()
    mv = memoryview(buf)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            d.update(mv[:n])
    return binascii.hexlify(d.digest()).decode()


# The names of the firmware files in flash (those allowed()).
def names(root):
    out = [n for n in _FIXED if exists(path(root, n))]
    try:
        out += sorted(n for n in ("firmware/" + e for e in os.listdir(path(root, "firmware"))) if allowed(n))
    except OSError:
        pass
    return [n for n in out if not _is_dir(path(root, n))]


# GET /api/files: {name: SHA-256 hex} as JSON, written a file at a time (a dict and its JSON
# text of forty files would take heap the board may not have).
async def _files(srv, writer, root):
    todo = names(root)
    size = 2 + sum(len(n) + 70 for n in todo) - (1 if todo else 0)
    h = (("Content-Type", _JSON), ("Cache-Control", "no-store"), ("Connection", "close"))
    writer.write(http.response_head(200, h, size) + b"{")
    for i, n in enumerate(todo):
        writer.write(('%s"%s":"%s"' % ("," if i else "", n, _hash(path(root, n), srv.buf))).encode())
        await srv.drain(writer)
    await srv.send(writer, b"}")


# Bytes free in the filesystem that holds root.
def _free(root):
    s = os.statvfs(root or "/")
    return s[0] * s[3]


# Why req may not use the update endpoints: (status, message, headers), or None.
def refusal(srv, req, peer):
    if not srv.guard.origin_ok(req.header("origin"), req.header("host")):
        return 403, "origin not allowed", ()
    if not srv.guard.required():
        return 403, "updates over Wi-Fi need an access token: set auth.token in config.json (README: Access token)", ()
    h = req.header("authorization")
    tok = h[7:].strip() if h[:7].lower() == "bearer " else None  # never from the URL, where logs keep it
    verdict = srv.guard.check(tok, peer)
    if verdict != auth.OK:
        return auth.http_for(verdict, tok is not None)
    return None


# Answer an update request on srv (server.Server; srv.updates is (flash root, reset function)).
async def answer(srv, req, rest, reader, writer, peer):
    try:
        await _answer(srv, req, rest, reader, writer, peer)
    finally:
        if not _busy[0]:
            _forget()


async def _answer(srv, req, rest, reader, writer, peer):
    body = req.header("content-length", "0") != "0" or "transfer-encoding" in req.headers
    why = refusal(srv, req, peer)
    if why is None and _busy[0]:
        why = 503, "another update request is in progress", (("Retry-After", "5"),)
    if why is None:
        _busy[0] = True
        try:
            why = await _serve(srv, req, rest, reader, writer, peer)
        finally:
            _busy[0] = False
    if why is not None:
        await srv.refuse(writer, peer, req, *why)
        if body:
            await linger(reader, srv.buf)  # the body was not read: closing now could reset the answer away


# This module out of sys.modules once a request is done: its code is heap the node can use,
# and the next update request loads it again.
def _forget():
    import sys

    sys.modules.pop(__name__, None)
    pkg = sys.modules.get(__name__[: __name__.rfind(".")])
    if pkg is not None and "update" in pkg.__dict__:
        delattr(pkg, "update")


async def _serve(srv, req, rest, reader, writer, peer):
    root = srv.updates[0]
    p = req.path
    if p == "/api/files":
        if req.method != "GET":
            return 405, "use GET", (("Allow", "GET"),)
        return await _files(srv, writer, root)
    if p == "/api/update/commit":
        if req.method != "POST":
            return 405, "use POST", (("Allow", "POST"),)
        return await _commit(srv, req, rest, reader, writer, peer)
    name = p[12:] if p[:12] == "/api/update/" else ""
    if not allowed(name):
        return 404, "not a firmware file (boot.py, main.py, config.json, the page, firmware/MODULE.py or .mpy)", ()
    if req.method != "PUT":
        return 405, "use PUT", (("Allow", "PUT"),)
    return await _upload(srv, req, rest, reader, writer, peer, root, name)


# The body's length when it is acceptable: (None, size), else (refusal, 0).
def _length(req, limit):
    size = req.header("content-length")
    if "transfer-encoding" in req.headers or not size:
        return (411, "Content-Length required", ()), 0
    size = int(size)  # digits only: http.parse_head checked it
    if size > limit:
        return (413, "larger than %d bytes" % limit, ()), 0
    return None, size


# Read size bytes of body into sink(memoryview) (rest: what came with the head), within the
# connection's head timeout plus 2 ms a byte: a slow sender is dropped, not waited for.
async def _body(srv, rest, reader, size, sink):
    async def read():
        got = min(len(rest), size)
        if got:
            sink(memoryview(rest)[:got])
        while got < size:
            n = await read_into(reader, srv.buf)
            if n is None:
                continue
            if not n:
                raise EOFError
            n = min(n, size - got)
            sink(srv.mv[:n])
            got += n

    await wait_for_ms(read(), srv.limits["handshake_timeout_ms"] + 2 * size)


async def _upload(srv, req, rest, reader, writer, peer, root, name):
    want = req.query.get("sha256", "")
    if len(want) != 64 or want.strip(_HEX):
        return 400, "sha256=HEX required: the file's SHA-256, 64 lower-case hex digits", ()
    why, size = _length(req, MAX_FILE)
    if why:
        return why
    if size + RESERVE > _free(root):
        return 413, "no room in flash for %d bytes" % size, ()
    staged = path(root, NEW + "/" + name)
    part = staged + ".part"
    makedirs(part)
    d = hashlib.sha256()
    try:
        with open(part, "wb") as f:

            def sink(mv):
                f.write(mv)
                d.update(mv)

            await _body(srv, rest, reader, size, sink)
    except asyncio.TimeoutError:
        return _drop(part, 408, "upload too slow: nothing staged")
    except EOFError:
        _drop(part, 0, "")
        srv.node.log("update %s: %s cut short, nothing staged" % (peer, name))
        return None
    except OSError as e:
        return _drop(part, 500, "cannot write %s: %r" % (name, e))
    if binascii.hexlify(d.digest()).decode() != want:
        return _drop(part, 400, "SHA-256 mismatch: %s not staged" % name)
    if exists(staged):
        os.remove(staged)
    os.rename(part, staged)
    srv.node.log("update %s: staged %s (%d bytes)" % (peer, name, size))
    await srv.send(writer, http.response(200, json.dumps({"staged": name, "size": size}), _JSON))


# A failed upload leaves nothing behind: its file, and the staging folders it made if empty.
def _drop(part, status, message):
    try:
        os.remove(part)
        i = part.rfind("/")
        while i > 0 and part.find(NEW + "/") < i:  # a folder in .update/, or .update itself
            os.rmdir(part[:i])
            i = part.rfind("/", 0, i)
    except OSError:
        pass  # not empty: another staged file is in it
    return status, message, ()


# Names in a commit body's list key, each allowed(); raises ValueError.
def _names(body, key):
    names = body.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and allowed(n) for n in names):
        raise ValueError("%s: a list of firmware file names" % key)
    return names


async def _commit(srv, req, rest, reader, writer, peer):
    root, reset = srv.updates
    why, size = _length(req, MAX_COMMIT)
    if why:
        return why
    data = bytearray()
    try:
        await _body(srv, rest, reader, size, data.extend)
    except asyncio.TimeoutError:
        return 408, "commit body too slow", ()
    except EOFError:
        return None
    try:
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError("a JSON object")
        new = _names(body, "files")
        gone = [n for n in _names(body, "remove") if n not in new]
    except ValueError as e:
        return 400, "commit body: %s" % e, ()
    if not new and not gone:
        return 400, "nothing to commit", ()
    for n in new:
        if not exists(path(root, NEW + "/" + n)):
            return 409, "%s is not staged: upload it first" % n, ()
        if n in ("boot.py", "main.py"):
            why = _compiles(path(root, NEW + "/" + n), n)
            if why:
                return why
    journal = {
        "add": [n for n in new if not exists(path(root, n))],
        "replace": [n for n in new if exists(path(root, n))],
        "remove": [n for n in gone if exists(path(root, n))],
    }
    remove_tree(path(root, OLD))  # the version before the previous one goes
    os.mkdir(path(root, OLD))
    _write(path(root, OLD + "/.journal"), json.dumps(journal))
    remove_tree(path(root, NOTE))
    _write(path(root, TRIAL), "swap")  # the commit: from here on boot.py installs it
    srv.node.log("update %s: committed %d files, %d to remove; restarting" % (peer, len(new), len(journal["remove"])))
    srv.updates = None  # until the reset, update requests get 404: a client waits for the new node
    await srv.send(writer, http.response(200, json.dumps(journal), _JSON))
    asyncio.create_task(_restart(srv, reset))


# A new .py must at least compile: a boot.py that does not is the one failure boot.py cannot
# roll back (it never runs to count the boot).
def _compiles(p, name):
    try:
        with open(p) as f:
            compile(f.read(), name, "exec")
    except SyntaxError as e:
        return 400, "%s does not compile: %s" % (name, e), ()
    except MemoryError:
        pass  # too big to check here; the boots on trial will tell
    return None


async def _restart(srv, reset):
    await sleep_ms(500)  # the answer goes out first
    srv.save()  # a relay switched in the last moment
    reset()
