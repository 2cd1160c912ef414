# Updates over Wi-Fi, the half that writes (firmware/update.py checks each request and
# loads this for uploads and the commit): a file into the staging folder, hashed as it streams
# in; the commit written down for boot.py, and the reset.
import asyncio
import binascii
import hashlib
import json
import os

from . import http
from .compat import wait_for_ms, sleep_ms
from .session import read_body
from .update import NEW, NOTE, OLD, TRIAL, allowed, exists, is_dir, path

MAX_FILE = 65536  # bytes one upload may have
MAX_COMMIT = 2048  # bytes of the commit's JSON body
RESERVE = 16384  # flash left free after an upload: relay state and wifi.json must still be writable
_HEX = "0123456789abcdef"
_JSON = "application/json"


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
    if is_dir(p):
        for e in os.listdir(p):
            remove_tree(p + "/" + e)
        os.rmdir(p)
    elif exists(p):
        os.remove(p)


def _write(p, text):
    with open(p + ".tmp", "w") as f:
        f.write(text)
    os.rename(p + ".tmp", p)


# Bytes free in the filesystem that holds root.
def _free(root):
    s = os.statvfs(root or "/")
    return s[0] * s[3]


# The body's length when it is acceptable: (None, size), else (refusal, 0).
def _length(req, limit):
    size = req.header("content-length", "")
    if "transfer-encoding" in req.headers or not size:
        return (411, "Content-Length required", ()), 0
    size = int(size)  # digits only: http.parse_head checked it
    if size > limit:
        return (413, "larger than %d bytes" % limit, ()), 0
    return None, size


# Read size bytes of body into sink(memoryview) (rest: what came with the head), within the
# connection's head timeout plus 2 ms a byte: a slow sender is dropped, not waited for.
async def _body(srv, rest, reader, size, sink):
    first = memoryview(rest)[:size]
    await wait_for_ms(read_body(reader, srv.buf, first, size, sink), srv.limits["handshake_timeout_ms"] + 2 * size)


# PUT /api/update/NAME?sha256=HEX (name: allowed()): the body into .update/NAME.
async def put(srv, req, rest, reader, writer, peer, root, name):
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
    except (OSError, MemoryError) as e:
        return _drop(part, 500, "cannot stage %s: %r" % (name, e))
    if binascii.hexlify(d.digest()).decode() != want:
        return _drop(part, 400, "SHA-256 mismatch: %s not staged" % name)
    if exists(staged):
        os.remove(staged)
    os.rename(part, staged)
    srv.node.log("update %s: staged %s (%d bytes)" % (peer, name, size))
    await srv.send(writer, http.response(200, json.dumps({"staged": name, "size": size}), _JSON, ()))


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


# POST /api/update/commit: {"files": [staged names], "remove": [names]}.
async def commit(srv, req, rest, reader, writer, peer):
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
        if data.count(b"[") + data.count(b"{") > 3:  # an object of two lists of names, no deeper
            raise ValueError("an object of two lists of names")
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
        if n == "boot.py":
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
    await srv.send(writer, http.response(200, json.dumps(journal), _JSON, ()))
    asyncio.create_task(_restart(srv, reset))


# A new boot.py must at least compile: one that does not is the one failure that cannot be
# rolled back (it never runs to count the boot; a main.py that fails is counted and rolled
# back like any other firmware). Without the heap to check it now, the commit waits: nothing
# unchecked goes in.
def _compiles(p, name):
    try:
        with open(p) as f:
            compile(f.read(), name, "exec")
    except SyntaxError as e:
        return 400, "%s does not compile: %s" % (name, e), ()
    except MemoryError:
        return 503, "not enough memory to check %s now: commit again" % name, (("Retry-After", "5"),)
    return None


async def _restart(srv, reset):
    await sleep_ms(500)  # the answer goes out first
    srv.save()  # a relay switched in the last moment
    reset()
