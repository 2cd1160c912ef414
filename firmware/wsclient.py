# The client side of the WebSocket opening handshake (RFC 6455 section 4.1), sans-I/O like
# websocket.py: build the request, check the answer. Only nodes with links load it, so a node
# without links keeps this code out of its heap.
import binascii

from .http import HttpError, parse_fields
from .websocket import accept_key, has_token

_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"


# (host, port, path) of a ws:// URL; ValueError says what is wrong. No TLS on the node, so
# wss:// is refused; no path means /ws (the node's endpoint); the token travels separately.
def parse_url(url):
    if not isinstance(url, str) or not url.startswith("ws://"):
        raise ValueError("must start with ws:// (wss:// is not supported)")
    rest = url[5:]
    i = rest.find("/")
    hostport, path = (rest, "/ws") if i < 0 else (rest[:i], rest[i:])
    if "?" in path or "#" in path:
        raise ValueError("must not have a query or fragment (the token is a field of its own)")
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, "80"
    if not host or [c for c in host if c not in _HOST_CHARS]:
        raise ValueError("needs a host name or IPv4 address")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("bad port")
    return host, int(port), path


# A fresh Sec-WebSocket-Key: 16 random bytes, base64 (section 4.1 item 7).
def new_key():
    import os

    return binascii.b2a_base64(os.urandom(16))[:-1].decode()


# The opening handshake a client sends (section 4.1): a GET of target (path and query) on
# host ("name" or "name:port"); extra holds more (name, value) header pairs. Returns
# (request bytes, key); check the answer with response_error(head, key).
def client_request(host, target, key=None, extra=()):
    key = key or new_key()
    req = (
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (target, host, key)
    )
    for name, value in extra:
        req += "%s: %s\r\n" % (name, value)
    return (req + "\r\n").encode(), key


# Check the server's answer to client_request (section 4.1, the client's checks): head is the
# response head up to and including its blank line. None when the connection is now a
# WebSocket, else (status, message); status is 0 when the answer is not HTTP at all.
def response_error(head, key):
    try:
        lines = str(head, "utf-8").split("\r\n")
    except UnicodeError:
        return 0, "answer is not HTTP"
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return 0, "answer is not HTTP"
    status = int(parts[1])
    if status != 101:
        return status, "HTTP %d %s" % (status, parts[2] if len(parts) > 2 else "")
    try:
        headers = parse_fields(lines[1:], 64, None)
    except HttpError as e:
        return status, "101 with a bad head: " + e.message
    if not has_token(headers.get("upgrade", ""), "websocket"):
        return status, "101 without Upgrade: websocket"
    if not has_token(headers.get("connection", ""), "upgrade"):
        return status, "101 without Connection: upgrade"
    if headers.get("sec-websocket-accept") != accept_key(key):
        return status, "wrong Sec-WebSocket-Accept"
    if "sec-websocket-extensions" in headers or "sec-websocket-protocol" in headers:
        return status, "server chose an extension or subprotocol we did not offer"
    return None
