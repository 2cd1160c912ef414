# Updates over Wi-Fi, the node's side (tools/deploy.py --url is the other). The server imports
# this only when an update request comes (Server.updates set, routes.UPDATE); the uploads and
# the commit are in upload.py, loaded for them:
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
import binascii
import hashlib
import os

from . import auth
from . import http
from .session import linger

NEW = ".update"  # the staging folder
OLD = ".previous"  # the files the last update replaced, and its journal
TRIAL = ".trial"  # "swap": installed at the next boot; then the count of boots on trial
NOTE = ".rolledback"  # why boot.py restored the previous version, for the state message
_FIXED = (
    "boot.py main.py config.json firmware/www/index.html firmware/www/index.html.gz www/index.html www/index.html.gz"
).split()
_STEM = "abcdefghijklmnopqrstuvwxyz0123456789_"
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


def is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def _hash(p, buf):
    return binascii.hexlify(http.file_digest(p, hashlib.sha256(), buf)).decode()


# The names of the firmware files in flash (those allowed()).
def names(root):
    out = [n for n in _FIXED if exists(path(root, n))]
    try:
        out += sorted(n for n in ("firmware/" + e for e in os.listdir(path(root, "firmware"))) if allowed(n))
    except OSError:
        pass
    return [n for n in out if not is_dir(path(root, n))]


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


# Why req may not use the update endpoints: (status, message, headers), or None.
def refusal(srv, req, peer):
    if not srv.guard.origin_ok(req.header("origin", ""), req.header("host", "")):
        return 403, "origin not allowed", ()
    if not srv.guard.required():
        return 403, "updates over Wi-Fi need an access token: set auth.token in config.json (README: Security)", ()
    h = req.header("authorization", "")
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


# This module and upload out of sys.modules once a request is done: their code is heap the
# node can use, and the next update request loads them again. Unlike firmware.forget, their
# dicts are not emptied: a request refused meanwhile ("another update request is in
# progress") may still be running this module's code.
def _forget():
    import sys

    pkg = __name__[: __name__.rfind(".")]
    for name in ("upload", "update"):
        sys.modules.pop(pkg + "." + name, None)
        if name in sys.modules[pkg].__dict__:
            delattr(sys.modules[pkg], name)


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
        from . import upload

        return await upload.commit(srv, req, rest, reader, writer, peer)
    name = p[12:] if p[:12] == "/api/update/" else ""
    if not allowed(name):
        return 404, "not a firmware file (boot.py, main.py, config.json, the page, firmware/MODULE.py or .mpy)", ()
    if req.method != "PUT":
        return 405, "use PUT", (("Allow", "PUT"),)
    from . import upload

    return await upload.put(srv, req, rest, reader, writer, peer, root, name)


