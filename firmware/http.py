# Sans-I/O HTTP/1.1 pieces: request-head parsing with hard limits, response heads, and
# static files from flash with gzip, ETag and 304. No sockets here.
import hashlib
import binascii
import os
import re

from .compat import const

# Reason phrases: one string costs far less heap than a dict of them. (The strings here are
# const(): frozen, each is a constant of the code that uses it, not a global in the heap.)
_REASONS = const(
    "\n101Switching Protocols\n200OK\n204No Content\n302Found\n304Not Modified\n400Bad Request"
    "\n401Unauthorized\n403Forbidden\n404Not Found\n405Method Not Allowed\n406Not Acceptable"
    "\n408Request Timeout\n411Length Required\n413Content Too Large\n426Upgrade Required"
    "\n429Too Many Requests\n431Request Header Fields Too Large\n500Internal Server Error"
    "\n501Not Implemented\n503Service Unavailable\n505HTTP Version Not Supported\n"
)


# The reason phrase of an HTTP status ("" for one this server never sends).
def reason(status):
    i = _REASONS.find("\n%d" % status) if 99 < status < 1000 else -1
    return _REASONS[i + 4 : _REASONS.find("\n", i + 1)] if i >= 0 else ""


_TCHAR = const("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX = const("0123456789ABCDEFabcdef")
# Control characters a field value must not hold (RFC 9110 5.5): all but HTAB. The request
# line and the values kept are searched with it; NUL, CR and LF are looked for in the whole
# head with find() and count() (a regex cannot hold NUL, and it is slower per character).
_CTL = re.compile("[\x01-\x08\x0a-\x1f\x7f]")


# A request that cannot be served; status is the HTTP answer.
class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message or reason(status)


class Request:
    def __init__(self, method, path, query, version, headers):
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        # lower-case name -> value; repeated fields joined with ", ". "host" holds the
        # authority of an absolute-form target when there is one (RFC 9112 3.2.2).
        self.headers = headers

    def header(self, name, default):
        return self.headers.get(name, default)


# Index just past the blank line that ends the head in data, or -1.
def head_end(data):
    i = data.find(b"\r\n\r\n")
    return -1 if i < 0 else i + 4


# Raises HttpError(400) when data[:n], the first bytes of a connection (as much of the head
# as has come), can never begin a valid request head: a method with a character that is not
# a token character (a TLS ClientHello starts 16 03), or a line that ends in a bare LF. The
# server calls it after each read that did not complete the head, so such a peer gets its 400
# at once instead of a 408 when the head timeout runs out.
def check_start(data, n):
    sp = data.find(b" ", 0, n)
    method = _text(memoryview(data)[: n if sp < 0 else sp])
    if sp == 0 or method.strip(_TCHAR) or data.count(b"\n", 0, n) != data.count(b"\r\n", 0, n):
        raise HttpError(400, "not an HTTP/1.1 request head")


# True when s is an RFC 9110 token. strip() takes the token characters off both ends in C:
# nothing is left only when every character is one (no Python loop over the characters).
def _is_token(s):
    return bool(s) and not s.strip(_TCHAR)


# Decode %XX and + in a query component.
def unquote(s):
    if "%" not in s and "+" not in s:
        return s
    s = s.replace("+", " ")
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        # exactly two hex digits; int() alone would also take "4" at the end, " 4" or "-1"
        if c == "%" and i + 2 < n and s[i + 1] in _HEX and s[i + 2] in _HEX:
            out.append(int(s[i + 1 : i + 3], 16))
            i += 3
            continue
        out += c.encode()
        i += 1
    try:
        return str(bytes(out), "utf-8")
    except UnicodeError:
        raise HttpError(400, "bad query encoding")


def parse_query(qs):
    q = {}
    for part in qs.split("&"):
        if part:
            k, _, v = part.partition("=")
            q[unquote(k)] = unquote(v)
    return q


# Header field lines (after the start line) into a dict: lower-case name -> value, repeated
# fields joined with ", ". HttpError 400 for a malformed line, 431 past max_headers. With
# keep (lower-case names, each between spaces: " host origin "), only the fields named there
# are kept (all are checked): a phone's User-Agent and friends take no heap.
def parse_fields(lines, max_headers, keep):
    headers = {}
    count = 0
    for line in lines:
        if not line:
            continue
        count += 1
        if count > max_headers:
            raise HttpError(431, "too many header fields")
        name, sep, value = line.partition(":")
        if not sep or not _is_token(name):  # also rejects obs-fold and "Name :" (RFC 9112 5.1)
            raise HttpError(400, "bad header field")
        name = name.lower()
        if keep is not None and (" %s " % name) not in keep:
            continue
        if _CTL.search(value):
            raise HttpError(400, "control character in a header field")
        value = value.strip(" \t")
        if name in headers:
            if name == "host":  # RFC 9112 3.2: exactly one
                raise HttpError(400, "more than one Host")
            headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value
    return headers


# Parse a request head (everything up to and including the blank line) into a Request.
# data: bytes or a bytearray that starts with the head; end: where the head ends in it (just
# past the blank line; all of data by default), so a head can be parsed where it was read;
# keep: the header fields to keep (parse_fields), all by default.
# Each line is decoded on its own: no copy of the whole head is made, and small allocations
# are what a fragmented heap still has room for. Raises HttpError with the status to answer:
# 400 malformed, 431 too many header fields, 505 unsupported version.
def parse_head(data, max_headers, end, keep):
    if end is None:
        end = len(data)
    i = data.find(b"\r\n", 0, end)
    if i < 0:
        i = end
    line = _text(memoryview(data)[:i])
    parts = line.split(" ")
    if len(parts) != 3 or not _is_token(parts[0]) or _CTL.search(line):
        raise HttpError(400, "bad request line")
    crlf = data.count(b"\r\n", 0, end)
    if data.count(b"\n", 0, end) != crlf or data.count(b"\r", 0, end) != crlf or data.find(b"\x00", 0, end) >= 0:
        raise HttpError(400, "bare CR, LF or NUL in the head")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        if version.startswith("HTTP/"):
            raise HttpError(505, "only HTTP/1.x")
        raise HttpError(400, "bad request line")
    authority = None
    if not target.startswith("/"):
        authority, target = _absolute(target)
    path, _, qs = target.partition("?")
    headers = parse_fields(_lines(data, i + 2, end), max_headers, keep)
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(400, "missing Host")
    if authority is not None:
        headers["host"] = authority  # what the target names wins over Host
    cl = headers.get("content-length")
    if cl is not None and (not cl or cl.strip("0123456789")):  # 1*DIGIT (RFC 9110 8.6)
        raise HttpError(400, "bad Content-Length")
    return Request(method, path, parse_query(qs), version, headers)


# (authority, path and query) of an absolute-form target "http://host:port/path?q" (RFC 9112
# 3.2.2); HttpError(400) for any other form, or with a userinfo part ("http://user@host/").
def _absolute(target):
    t = target[7:]
    host = t.split("/", 1)[0].split("?", 1)[0]
    if target[:7].lower() != "http://" or not host or "@" in host:
        raise HttpError(400, "bad request target")
    t = t[len(host) :]  # "http://host" and "http://host?q" mean the path "/"
    return host, t if t.startswith("/") else "/" + t


# The lines of data[i:end] as text, one at a time.
def _lines(data, i, end):
    mv = memoryview(data)
    while i < end:
        j = data.find(b"\r\n", i, end)
        if j < 0:
            j = end
        yield _text(mv[i:j])
        i = j + 2


def _text(b):
    try:
        return str(b, "utf-8")
    except UnicodeError:
        raise HttpError(400, "head is not UTF-8")


# The lines of a response head as bytes, one object each; headers is a sequence of (name,
# value) pairs. Small objects only: a heap kept busy by many clients has holes for them where
# one string of a whole head, and then its bytes, may find none.
def _head_lines(status, headers, length):
    out = [("HTTP/1.1 %d %s\r\n" % (status, reason(status))).encode()]
    for h in headers:
        out.append(("%s: %s\r\n" % h).encode())
    out.append(b"\r\n" if length is None else ("Content-Length: %d\r\n\r\n" % length).encode())
    return out


# The head of a response.
def response_head(status, headers, length):
    return b"".join(_head_lines(status, headers, length))


# The head of a response written into buf, a bytearray at least as long as it (the server's
# read buffer, for a page load: no block the size of the head is allocated); its length.
def head_into(buf, status, headers, length):
    n = 0
    for b in _head_lines(status, headers, length):
        if n + len(b) > len(buf):
            raise ValueError("response head longer than %d bytes" % len(buf))
        buf[n : n + len(b)] = b
        n += len(b)
    return n


# A whole small response with a body, in one bytes object; the connection closes after it.
def response(status, body, ctype, headers):
    if isinstance(body, str):
        body = body.encode()
    h = [("Content-Type", ctype), ("Cache-Control", "no-store"), ("Connection", "close")]
    h.extend(headers)
    out = _head_lines(status, h, len(body))
    out.append(body)
    return b"".join(out)


# An error answer with the reason as text.
def error_response(status, message, headers):
    return response(status, (message or reason(status)) + "\n", headers=headers, ctype="text/plain; charset=utf-8")


# A file in flash served as-is, or its pre-gzipped twin (name + ".gz") when the client
# accepts gzip. The ETag is a hash of the bytes, computed once at start-up in small reads.
# The digest of the file at path by hasher h (hashlib's), read through buf: no allocation per
# read, whatever the file's size.
def file_digest(path, h, buf):
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.digest()


class StaticFile:
    def __init__(self, path, ctype, buf):
        self.ctype = ctype
        self.variants = []  # (path, size, etag, gzip)
        for p, gz in ((path + ".gz", True), (path, False)):
            try:
                size = os.stat(p)[6]
            except OSError:
                continue
            self.variants.append((p, size, self._etag(p, buf, gz), gz))
        if not self.variants:
            raise OSError("missing " + path)

    @staticmethod
    def _etag(path, buf, gz):
        tag = binascii.hexlify(file_digest(path, hashlib.sha1(), buf)[:8]).decode()
        return '"%s%s"' % (tag, "-gz" if gz else "")

    # The variant for a request: (path, size, etag, gzip).
    def choose(self, req):
        accepts_gz = "gzip" in req.header("accept-encoding", "").lower()
        for v in self.variants:
            if accepts_gz or not v[3]:
                return v
        return None

    # The response for req up to its body, written into buf (the server's read buffer): its
    # length, and the file path to stream after it (None for 304 and 406). Made for each
    # request: heads kept for every variant would hold their bytes for good.
    def head_for(self, req, buf):
        v = self.choose(req)
        if v is None:
            e = error_response(406, "gzip required", ())
            buf[: len(e)] = e
            return len(e), None
        h = [("ETag", v[2]), ("Cache-Control", "no-cache"), ("Vary", "Accept-Encoding"), ("Connection", "close")]
        inm = req.header("if-none-match", "")
        if inm and (inm.strip() == "*" or v[2] in [t.strip() for t in inm.split(",")]):
            return head_into(buf, 304, h, None), None
        h.append(("Content-Type", self.ctype))
        if v[3]:
            h.append(("Content-Encoding", "gzip"))
        return head_into(buf, 200, h, v[1]), v[0]
