# Wi-Fi setup from a phone, while the board runs its own access point because it could not
# join a network: the form at GET /setup and the checks on what POST /setup sends. The server
# imports this only in that mode (board.main calls Server.offer_setup), so a node on Wi-Fi never
# has its code in RAM.
import asyncio
import json

from . import auth
from . import http
from .compat import wait_for_ms
from .http import HttpError, parse_query
from .session import linger, read_body

MAX_BODY = 512  # bytes of form data a POST may send (413 beyond)
_HTML = "text/html; charset=utf-8"

_HEAD = (
    '<!DOCTYPE html><html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1"><title>%s: Wi-Fi</title>'
    "<style>body{font:18px sans-serif;max-width:22em;margin:1em auto;padding:0 1em}"
    "label,input,button{display:block;width:100%%;box-sizing:border-box}"
    "input,button{font:inherit;padding:.5em;margin:.2em 0 1em}</style></head><body><h1>%s</h1>"
)


# Text safe inside HTML and in a quoted attribute (network names come from the air).
def _escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# The form. networks: names a scan found, offered as suggestions; token: ask for the node's
# access token too (auth.token is set).
def form(name, networks=(), token=False):
    n = _escape(name)
    out = _HEAD % (n, n)
    out += (
        '<form method="post" action="/setup"><label>Wi-Fi network'
        '<input name="ssid" list="nets" required maxlength="32" autocapitalize="none" autocorrect="off"></label>'
        '<datalist id="nets">'
    )
    for net in networks:
        out += '<option value="%s">' % _escape(net)
    out += (
        '</datalist><label>Password<input name="password" type="password" minlength="8" maxlength="63">'
        "</label>"
    )
    if token:
        out += '<label>Access token<input name="token" type="password" required></label>'
    return out + "<button>Save and restart</button></form></body></html>"


# The answer to a saved form.
def saved(name, ssid):
    n = _escape(name)
    return (_HEAD % (n, n)) + (
        "<p>Saved. The node restarts and joins %s; find it at http://%s.local/ or the address "
        "on the serial console.</p></body></html>"
    ) % (_escape(ssid), n)


# (ssid, password, token) from an application/x-www-form-urlencoded body (bytes-like); token is
# None when the form had none. HttpError(400) says what to fix: the network name must be 1 to 32
# bytes; a WPA2 password 8 to 63 printable ASCII characters, or empty for an open network.
def parse(body):
    try:
        q = parse_query(str(body, "utf-8"))
    except UnicodeError:
        raise HttpError(400, "form data is not UTF-8")
    ssid = q.get("ssid", "")
    password = q.get("password", "")
    if not 1 <= len(ssid.encode()) <= 32:
        raise HttpError(400, "Wi-Fi network: 1 to 32 bytes; go back and try again")
    if password and not (8 <= len(password) <= 63 and all(" " <= c <= "~" for c in password)):
        raise HttpError(400, "Password: 8 to 63 characters (no accents), or empty for an open network; go back")
    return ssid, password, q.get("token")


# Answer a request for /setup on srv (server.Server; its connection handler calls this in
# setup mode). GET: the form. POST: form data (Content-Length required, at most MAX_BODY
# bytes, read within handshake_timeout_ms), checked, the token too when one is set, then
# handed to srv.setup(ssid, password); the board writes wifi.json and resets a second later.
async def answer(srv, req, rest, reader, writer, peer):
    node = srv.node
    if req.method == "GET":
        page = form(node.name, srv.networks, srv.guard.required())
        return await srv.send(writer, http.response(200, page, _HTML, ()))
    if req.method != "POST":
        return await srv.refuse(writer, peer, req, 405, "use GET or POST", (("Allow", "GET, POST"),))
    size = req.header("content-length", "")
    chunked = "transfer-encoding" in req.headers
    if chunked or not size.isdigit() or int(size) > MAX_BODY:
        if chunked or not size:
            await srv.refuse(writer, peer, req, 411, "Content-Length required", ())
        elif size.isdigit():
            await srv.refuse(writer, peer, req, 413, "form data larger than %d bytes" % MAX_BODY, ())
        else:
            await srv.refuse(writer, peer, req, 400, "bad Content-Length", ())
        return await linger(reader, srv.buf)  # the body is not read: closing now could reset the answer away
    size = int(size)
    body = bytearray()
    try:
        read = read_body(reader, srv.buf, rest[:size], size, body.extend)
        await wait_for_ms(read, srv.limits["handshake_timeout_ms"])
        if not srv.guard.origin_ok(req.header("origin", ""), req.header("host", "")):
            raise HttpError(403, "origin not allowed")  # another web site's form
        ssid, password, token = parse(body)
    except asyncio.TimeoutError:
        return await srv.refuse(writer, peer, req, 408, "form data too slow", ())
    except EOFError:
        return  # the peer went away
    except HttpError as e:
        return await srv.refuse(writer, peer, req, e.status, e.message, ())
    if token is None:
        token = auth.request_token(req)
    verdict = srv.guard.check(token, peer)
    if verdict != auth.OK:
        return await srv.refuse(writer, peer, req, *auth.http_for(verdict, token is not None))
    try:
        srv.setup(ssid, password)
    except OSError as e:
        node.log("setup %s: cannot save: %r" % (peer, e))
        return await srv.send(writer, http.error_response(500, "could not save the settings", ()))
    node.log("setup %s: Wi-Fi network %s saved" % (peer, json.dumps(ssid)))
    await srv.send(writer, http.response(200, saved(node.name, ssid), _HTML, ()))
