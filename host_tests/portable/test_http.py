# Tests for firmware/http.py: request-head parsing from literal bytes (limits, statuses),
# query decoding, response heads byte for byte, and static files with gzip, ETag and 304.
# Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
import binascii
import hashlib

from firmware import http
from firmware import websocket as ws
from firmware.http import HttpError, StaticFile, parse_head
from host_tests.portable.fakes import TempDir


# The HttpError status parse_head(data) raises; fails the test when it raises nothing.
def status_of(data, max_headers=24, keep=None):
    try:
        req = parse_head(data, max_headers, None, keep)
    except HttpError as e:
        assert e.message, data
        return e.status
    assert False, "no HttpError for %r (got %r)" % (data, req.headers)


def get(target="/", headers="Host: node\r\n", version="HTTP/1.1"):
    return ("GET %s %s\r\n%s\r\n" % (target, version, headers)).encode()


# ---------------------------------------------------------------- parse_head


def test_parse_simple_get():
    req = parse_head(b"GET / HTTP/1.1\r\nHost: relaynode.local\r\n\r\n", 24, None, None)
    assert req.method == "GET"
    assert req.path == "/"
    assert req.query == {}
    assert req.version == "HTTP/1.1"
    assert req.headers == {"host": "relaynode.local"}


def test_parse_query_with_percent_encoding():
    req = parse_head(get("/ws?token=a%20b%2Bc&x=1+2&flag&name=%C3%A9t%c3%a9&=v&empty="), 24, None, None)
    assert req.path == "/ws"
    assert req.query == {"token": "a b+c", "x": "1 2", "flag": "", "name": "\u00e9t\u00e9", "": "v", "empty": ""}


def test_parse_query_repeated_key_keeps_the_last():
    assert parse_head(get("/?a=1&a=2&&b=3"), 24, None, None).query == {"a": "2", "b": "3"}


def test_parse_path_is_not_decoded():
    req = parse_head(get("/a%20b/c?q=1?2"), 24, None, None)
    assert req.path == "/a%20b/c"
    assert req.query == {"q": "1?2"}


def test_parse_header_names_are_case_insensitive_and_values_trimmed():
    req = parse_head(b"GET / HTTP/1.1\r\nhOsT:   node:8080  \r\nSEC-WebSocket-KEY:x\r\nX-Empty:\r\n\r\n", 24, None, None)
    assert req.headers == {"host": "node:8080", "sec-websocket-key": "x", "x-empty": ""}
    assert req.header("host", "") == "node:8080"
    assert req.header("missing", "") == ""
    assert req.header("missing", None) is None


def test_parse_repeated_headers_are_joined():
    req = parse_head(b"GET / HTTP/1.1\r\nHost: n\r\nConnection: keep-alive\r\nconnection: Upgrade\r\nX: 1\r\nX: 2\r\nx: 3\r\n\r\n", 24, None, None)
    assert req.header("connection", "") == "keep-alive, Upgrade"
    assert req.header("x", "") == "1, 2, 3"


def test_parse_other_methods_and_http_10():
    req = parse_head(b"POST /api HTTP/1.0\r\n\r\n", 24, None, None)  # HTTP/1.0 needs no Host
    assert (req.method, req.path, req.version, req.headers) == ("POST", "/api", "HTTP/1.0", {})
    assert parse_head(b"HEAD / HTTP/1.1\r\nHost: n\r\n\r\n", 24, None, None).method == "HEAD"


def test_parse_missing_host_on_http_11_is_400():
    assert status_of(b"GET / HTTP/1.1\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHostname: x\r\n\r\n") == 400


def test_parse_bad_request_line_is_400():
    for line in (
        b"GET /",
        b"GET",
        b"",
        b"GET  / HTTP/1.1",
        b"GET / HTTP/1.1 extra",
        b" GET / HTTP/1.1",
        b"G(T / HTTP/1.1",
        b"GET / http/1.1",
        b"GET / FTP/1.1",
        b"GET / 1.1",
    ):
        assert status_of(line + b"\r\nHost: n\r\n\r\n") == 400, line


def test_parse_bare_newlines_are_400():
    assert status_of(b"GET / HTTP/1.1\nHost: n\n\n") == 400


def test_parse_other_http_versions_are_505():
    for version in ("HTTP/2.0", "HTTP/2", "HTTP/3", "HTTP/0.9"):
        assert status_of(get(version=version)) == 505, version


def test_parse_target_must_be_origin_or_absolute_form():
    for target in ("*", "index.html", "?q=1", "node/", "https://node/", "ftp://node/", "http:/node/", "http://", "http:///x"):
        assert status_of(get(target)) == 400, target


def test_parse_obs_fold_and_space_before_colon_are_400():
    assert status_of(b"GET / HTTP/1.1\r\nHost: n\r\nX-Long: a\r\n b\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: n\r\nX-Long: a\r\n\tb: c\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost : n\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost\t: n\r\n\r\n") == 400


def test_parse_bad_header_fields_are_400():
    for field in (b"NoColon", b": empty-name", b"Bad Name: x", b"Bad(Name): x", b"\xc3\xa9: x"):
        assert status_of(b"GET / HTTP/1.1\r\nHost: n\r\n" + field + b"\r\n\r\n") == 400, field


def test_parse_too_many_headers_is_431():
    head = b"GET / HTTP/1.1\r\nHost: n\r\nA: 1\r\nB: 2\r\n\r\n"
    assert parse_head(head, max_headers=3, end=None, keep=None).header("b", "") == "2"
    assert status_of(head, max_headers=2) == 431
    many = b"GET / HTTP/1.1\r\nHost: n\r\n" + "".join("X-%d: v\r\n" % i for i in range(23)).encode() + b"\r\n"
    assert len(parse_head(many, 24, None, None).headers) == 24  # the default limit: 24 fields
    more = b"GET / HTTP/1.1\r\nHost: n\r\n" + "".join("X-%d: v\r\n" % i for i in range(24)).encode() + b"\r\n"
    assert status_of(more) == 431


def test_parse_repeated_headers_count_against_the_limit():
    head = b"GET / HTTP/1.1\r\nHost: n\r\n" + b"X: v\r\n" * 5 + b"\r\n"
    assert status_of(head, max_headers=5) == 431


def test_parse_non_utf8_head_is_400():
    assert status_of(b"GET /\xff HTTP/1.1\r\nHost: n\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: n\r\nX: \xc3\x28\r\n\r\n") == 400


def test_parse_utf8_header_value_is_kept():
    assert parse_head(b"GET / HTTP/1.1\r\nHost: n\r\nX: caf\xc3\xa9\r\n\r\n", 24, None, None).header("x", "") == "caf\u00e9"


# The server parses a head where it lies in its read buffer: data[:end] is the head, and
# whatever follows end (the next request, the first WebSocket frame) is not looked at.
def test_parse_head_in_place_stops_at_end():
    head = get("/a?x=1", "Host: node\r\nOrigin: http://node\r\n")
    buf = bytearray(head + b"\x81\x85garbage\r\nNot: a header\r\n\r\n")
    req = parse_head(buf, end=len(head), max_headers=24, keep=None)
    assert (req.method, req.path, req.query) == ("GET", "/a", {"x": "1"})
    assert req.headers == {"host": "node", "origin": "http://node"}


# keep: only the named fields are kept, but every field is still checked and counted.
def test_parse_keep_drops_other_fields_but_checks_them():
    keep = " host upgrade "
    h = "Host: node\r\nUser-Agent: Mozilla/5.0 (Linux; Android 14)\r\nUpgrade: websocket\r\n"
    req = parse_head(get("/", h), keep=keep, max_headers=24, end=None)
    assert req.headers == {"host": "node", "upgrade": "websocket"}
    assert status_of(get("/", "Host: node\r\nBad Name: x\r\n"), keep=keep) == 400
    many = "Host: node\r\n" + "".join("X-%d: y\r\n" % i for i in range(30))
    assert status_of(get("/", many), keep=keep, max_headers=24) == 431
    # a name is kept only whole: "host" does not keep "x-host" or "hos"
    req = parse_head(get("/", "Host: node\r\nX-Host: a\r\nHos: b\r\n"), keep=keep, max_headers=24, end=None)
    assert req.headers == {"host": "node"}


def test_parse_bad_percent_encoding_in_query():
    assert status_of(get("/?q=%FF")) == 400  # not UTF-8 once decoded
    assert status_of(get("/?%C3=1")) == 400


def test_unquote():
    assert http.unquote("") == ""
    assert http.unquote("plain") == "plain"
    assert http.unquote("a+b%20c") == "a b c"
    assert http.unquote("%41%62%2b") == "Ab+"
    assert http.unquote("%e2%98%83") == "\u2603"


def test_unquote_keeps_malformed_escapes_literally():
    assert http.unquote("100%") == "100%"
    assert http.unquote("%zz") == "%zz"
    assert http.unquote("%4") == "%4"
    assert http.unquote("a%4") == "a%4"
    assert http.unquote("%-1") == "%-1"
    assert http.unquote("%+1") == "% 1"
    assert http.unquote("% 1") == "% 1"
    assert http.unquote("%%41") == "%A"


def test_parse_query_function():
    assert http.parse_query("") == {}
    assert http.parse_query("a=1&b") == {"a": "1", "b": ""}
    assert http.parse_query("k=v=w") == {"k": "v=w"}


def test_http_error_default_message_is_the_reason():
    e = HttpError(431, message="")
    assert e.status == 431
    assert e.message == "Request Header Fields Too Large"
    assert HttpError(400, "why").message == "why"


# Field names and methods are RFC 9110 tokens: each of the 77 token characters passes, alone
# and inside a name; every other character (controls, separators, space, DEL, non-ASCII) fails
# a name wherever it stands in it.
def test_token_characters_in_field_names():
    tchar = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for c in tchar:
        for name in (c, "X" + c, c + "-A"):
            req = parse_head(get(headers="Host: n\r\n%s: v\r\n" % name), 24, None, None)
            assert req.headers[name.lower()] == "v", name
    others = [chr(i) for i in range(1, 128) if chr(i) not in tchar and chr(i) not in "\r\n:"]
    assert len(others) == 127 - 77 - 3
    for c in others + ["\u00e9", "\u20ac", "\U0001f600"]:
        for name in (c, "X" + c, c + "X", "A" + c + "B"):
            assert status_of(get(headers="Host: n\r\n%s: v\r\n" % name)) == 400, repr(name)
    assert status_of(b"G\x7fT / HTTP/1.1\r\nHost: n\r\n\r\n") == 400


# ---------------------------------------------------------------- has_token, head_end


def test_has_token():
    req = parse_head(b"GET / HTTP/1.1\r\nHost: n\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n", 24, None, None)
    assert ws.has_token(req.header("connection", ""), "upgrade")
    assert ws.has_token(req.header("connection", ""), "keep-alive")
    assert ws.has_token(req.header("upgrade", ""), "websocket")
    assert not ws.has_token(req.header("connection", ""), "close")
    assert not ws.has_token(req.header("missing", ""), "upgrade")
    req = parse_head(b"GET / HTTP/1.1\r\nHost: n\r\nConnection: upgrade-insecure,keepalive\r\n\r\n", 24, None, None)
    assert not ws.has_token(req.header("connection", ""), "upgrade")
    assert not ws.has_token(req.header("connection", ""), "keep")


def test_head_end():
    assert http.head_end(b"GET / HTTP/1.1\r\nHost: n\r\n\r\n") == 27
    assert http.head_end(b"GET / HTTP/1.1\r\nHost: n\r\n\r\nbody\r\n\r\n") == 27
    assert http.head_end(b"GET / HTTP/1.1\r\nHost: n\r\n\r") == -1
    assert http.head_end(b"GET / HTTP/1.1\n\n") == -1
    assert http.head_end(b"") == -1
    assert http.head_end(b"\r\n\r\n") == 4
    assert http.head_end(bytearray(b"X\r\n\r\n")) == 5


# ---------------------------------------------------------------- responses


def test_response_head_exact_bytes():
    assert http.response_head(200, headers=(), length=None) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert http.response_head(204, (("A", "b"), ("C", "d e")), 0) == b"HTTP/1.1 204 No Content\r\nA: b\r\nC: d e\r\nContent-Length: 0\r\n\r\n"
    assert http.response_head(101, [("Upgrade", "websocket")], length=None) == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


# head_into writes what response_head returns, into a buffer, and refuses a head longer than
# the buffer without growing it.
def test_head_into_writes_the_same_bytes_as_response_head():
    for status, headers, length in ((200, (), None), (204, (("A", "b"), ("C", "d e")), 0), (304, [("ETag", '"x"')], None)):
        buf = bytearray(64)
        n = http.head_into(buf, status, headers, length)
        assert bytes(buf[:n]) == http.response_head(status, headers, length), status
    buf = bytearray(20)
    try:
        http.head_into(buf, 200, (("Cache-Control", "no-cache"),), 5)
        raise AssertionError("no error for a head longer than the buffer")
    except ValueError:
        pass
    assert len(buf) == 20


def test_response_exact_bytes():
    assert http.response(200, "hi", "text/plain; charset=utf-8", ()) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Cache-Control: no-store\r\n"
        b"Connection: close\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n"
        b"hi"
    )
    assert http.response(200, b'{"a":1}', "application/json", (("X-A", "1"),)) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Cache-Control: no-store\r\n"
        b"Connection: close\r\n"
        b"X-A: 1\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
        b'{"a":1}'
    )


def test_response_length_counts_bytes():
    r = http.response(200, "\u00e9\u2603", "text/plain; charset=utf-8", ())
    assert b"Content-Length: 5\r\n" in r
    assert r.endswith(b"\r\n\r\n\xc3\xa9\xe2\x98\x83")


def test_error_response_exact_bytes():
    assert http.error_response(404, "", ()) == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Cache-Control: no-store\r\n"
        b"Connection: close\r\n"
        b"Content-Length: 10\r\n"
        b"\r\n"
        b"Not Found\n"
    )
    assert http.error_response(503, "too many connections", (("Retry-After", "5"),)) == (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Cache-Control: no-store\r\n"
        b"Connection: close\r\n"
        b"Retry-After: 5\r\n"
        b"Content-Length: 21\r\n"
        b"\r\n"
        b"too many connections\n"
    )


def test_every_status_used_has_a_reason():
    for status in (101, 200, 204, 304, 400, 401, 403, 404, 405, 406, 408, 413, 426, 429, 431, 500, 501, 503, 505):
        assert http.reason(status)


# ---------------------------------------------------------------- StaticFile

PAGE = b"<!doctype html><p>hi</p>\n"
# gzip.compress(PAGE, mtime=0) made once on CPython; StaticFile never decompresses it.
PAGE_GZ = (
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xb3QL\xc9O.\xa9,HU\xc8(\xc9\xcd\xb1\xb3)\xb0\xcb"
    b"\xc8\xb4\xd1/\xb0\xe3\x02\x00\xcd\x88\x05\xda\x19\x00\x00\x00"
)
HTML = "text/html; charset=utf-8"


def etag_of(data, gz):
    tag = binascii.hexlify(hashlib.sha1(data).digest()[:8]).decode()
    return '"%s%s"' % (tag, "-gz" if gz else "")


def request(accept=None, inm=None):
    head = "GET / HTTP/1.1\r\nHost: n\r\n"
    if accept is not None:
        head += "Accept-Encoding: %s\r\n" % accept
    if inm is not None:
        head += "If-None-Match: %s\r\n" % inm
    return parse_head((head + "\r\n").encode(), 24, None, None)


def page_dir(plain=PAGE, gz=PAGE_GZ):
    d = TempDir()
    if plain is not None:
        d.write("index.html", plain)
    if gz is not None:
        d.write("index.html.gz", gz)
    return d


def test_static_variants_sizes_and_etags():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(7))  # small buffer: many reads
        assert f.ctype == HTML
        assert f.variants == [
            (d.join("index.html.gz"), len(PAGE_GZ), etag_of(PAGE_GZ, True), True),
            (d.join("index.html"), len(PAGE), etag_of(PAGE, False), False),
        ]


def test_static_etag_differs_between_variants_even_for_the_same_bytes():
    with page_dir(PAGE, PAGE) as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(64))
        gz_tag = f.variants[0][2]
        plain_tag = f.variants[1][2]
        assert gz_tag != plain_tag
        assert gz_tag == plain_tag[:-1] + '-gz"'


def test_static_etag_does_not_depend_on_the_buffer_size():
    with page_dir() as d:
        tags = [StaticFile(d.join("index.html"), HTML, bytearray(n)).variants for n in (1, 3, 512)]
        assert tags[0] == tags[1] == tags[2]


# StaticFile.head_for's answer: (the bytes it wrote, the file to stream), and that it wrote
# them into the buffer it was given, from the start.
def head_of(f, req):
    buf = bytearray(512)
    n, path = f.head_for(req, buf)
    assert 0 < n <= len(buf) and not any(buf[n:]), n
    return bytes(buf[:n]), path


def test_static_gzip_only_when_accepted():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        for accept in ("gzip", "gzip, deflate, br", "br;q=1.0, GZIP;q=0.8", "x-gzip"):
            assert f.choose(request(accept))[3] is True, accept
        for accept in (None, "", "deflate", "br, identity"):
            assert f.choose(request(accept))[3] is False, accept


def test_static_200_head_exact_bytes_gzip():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        head, path = head_of(f, request("gzip, deflate"))
        assert path == d.join("index.html.gz")
        assert head == (
            "HTTP/1.1 200 OK\r\n"
            "ETag: %s\r\n"
            "Cache-Control: no-cache\r\n"
            "Vary: Accept-Encoding\r\n"
            "Connection: close\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Encoding: gzip\r\n"
            "Content-Length: %d\r\n"
            "\r\n" % (etag_of(PAGE_GZ, True), len(PAGE_GZ))
        ).encode()


def test_static_200_head_exact_bytes_plain():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        head, path = head_of(f, request())
        assert path == d.join("index.html")
        assert head == (
            "HTTP/1.1 200 OK\r\n"
            "ETag: %s\r\n"
            "Cache-Control: no-cache\r\n"
            "Vary: Accept-Encoding\r\n"
            "Connection: close\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Length: %d\r\n"
            "\r\n" % (etag_of(PAGE, False), len(PAGE))
        ).encode()
        assert b"Content-Encoding" not in head


def test_static_if_none_match_gives_304_without_a_body():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        tag = etag_of(PAGE_GZ, True)
        head, path = head_of(f, request("gzip", tag))
        assert path is None
        assert head == (
            "HTTP/1.1 304 Not Modified\r\n"
            "ETag: %s\r\n"
            "Cache-Control: no-cache\r\n"
            "Vary: Accept-Encoding\r\n"
            "Connection: close\r\n"
            "\r\n" % tag
        ).encode()
        # in a list of tags, with spaces
        head, path = head_of(f, request("gzip", '"stale", %s ,"other"' % tag))
        assert path is None and head.startswith(b"HTTP/1.1 304 ")
        # plain variant revalidated by a client without gzip
        head, path = head_of(f, request(None, etag_of(PAGE, False)))
        assert path is None and head.startswith(b"HTTP/1.1 304 ")


def test_static_if_none_match_wildcard():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        for accept in ("gzip", None):
            head, path = head_of(f, request(accept, " * "))
            assert path is None and head.startswith(b"HTTP/1.1 304 ")


def test_static_stale_etag_gives_200():
    with page_dir() as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        for inm in ('"0123456789abcdef"', etag_of(PAGE, False), etag_of(PAGE_GZ, False), etag_of(PAGE_GZ, True)[1:-1]):
            head, path = head_of(f, request("gzip", inm))
            assert head.startswith(b"HTTP/1.1 200 OK\r\n"), inm
            assert path == d.join("index.html.gz")
        # the gzip tag does not validate the plain variant
        head, path = head_of(f, request(None, etag_of(PAGE_GZ, True)))
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and path == d.join("index.html")


def test_static_etag_changes_with_the_content():
    with page_dir() as d:
        old = StaticFile(d.join("index.html"), HTML, bytearray(16)).variants[1][2]
        d.write("index.html", PAGE + b"<p>more</p>")
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        assert f.variants[1][2] != old
        head, path = head_of(f, request(None, old))
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")


def test_static_only_plain_file():
    with page_dir(gz=None) as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        assert len(f.variants) == 1
        head, path = head_of(f, request("gzip"))
        assert path == d.join("index.html")
        assert b"Content-Encoding" not in head


def test_static_only_gzip_file_needs_gzip():
    with page_dir(plain=None) as d:
        f = StaticFile(d.join("index.html"), HTML, bytearray(16))
        head, path = head_of(f, request("gzip"))
        assert path == d.join("index.html.gz")
        head, path = head_of(f, request("identity"))
        assert path is None
        assert head.startswith(b"HTTP/1.1 406 Not Acceptable\r\n")
        assert head.endswith(b"\r\n\r\ngzip required\n")


def test_static_missing_file_raises_oserror():
    with TempDir() as d:
        try:
            StaticFile(d.join("index.html"), HTML, bytearray(16))
        except OSError:
            pass
        else:
            assert False


def test_reason_phrases():
    assert http.reason(200) == "OK"
    assert http.reason(101) == "Switching Protocols"
    assert http.reason(505) == "HTTP Version Not Supported"
    assert http.reason(431) == "Request Header Fields Too Large"
    assert http.reason(299) == "" and http.reason(1) == ""


# ---------------------------------------------------------------- hostile heads


def head_with(name, value):
    return b"GET / HTTP/1.1\r\n" + (b"" if name == b"Host" else b"Host: n\r\n") + name + b": " + value + b"\r\n\r\n"


def test_parse_bare_lf_cr_or_nul_in_any_header_value_is_400():
    for value in (b"a\nb", b"a\rb", b"a\x00b", b"\x00", b"a\nGPIO26 -> 0", b"\n", b"a\r"):
        for name in (b"Host", b"Origin", b"X-Other"):
            assert status_of(head_with(name, value)) == 400, (name, value)
            assert status_of(head_with(name, value), keep=" host origin ") == 400, (name, value)


def test_parse_other_controls_in_a_kept_header_value_are_400():
    for value in (b"a\x01b", b"a\x1bb", b"a\x7fb", b"a\x0bb", b"a\x0cb", b"\x08"):
        for name in (b"Host", b"Origin", b"X-Other"):
            assert status_of(head_with(name, value)) == 400, (name, value)
        assert status_of(head_with(b"Origin", value), keep=" host origin ") == 400, value
        # a field not kept is dropped unread, as RFC 9110 5.5 allows for other controls
        assert parse_head(head_with(b"X-Other", value), keep=" host ", max_headers=24, end=None).headers == {"host": "n"}


def test_parse_bare_lf_or_control_in_the_request_line_is_400():
    for line in (b"GET /a\nb HTTP/1.1", b"GET /a\x00 HTTP/1.1", b"GET /\x7f HTTP/1.1", b"GET /a\rb HTTP/1.1", b"GET\t/ HTTP/1.1"):
        assert status_of(line + b"\r\nHost: n\r\n\r\n") == 400, line


def test_parse_tab_and_non_ascii_in_values_are_kept():
    req = parse_head(b"GET / HTTP/1.1\r\nHost: n\r\nX: a\tb\r\nY:\t c\xc3\xa9 \t\r\n\r\n", 24, None, None)
    assert req.header("x", "") == "a\tb"
    assert req.header("y", "") == "c\u00e9"


def test_parse_two_host_fields_are_400():
    for hosts in (b"Host: a\r\nHost: a\r\n", b"Host: a\r\nhost: b\r\n", b"HOST: a\r\nX: 1\r\nHost: a\r\n"):
        head = b"GET / HTTP/1.1\r\n" + hosts + b"\r\n"
        assert status_of(head) == 400, hosts
        assert status_of(head, keep=" host ") == 400, hosts


def test_parse_absolute_form_target():
    req = parse_head(b"GET http://node.local:8080/ws?token=a%20b&x HTTP/1.1\r\nHost: node.local:8080\r\n\r\n", 24, None, None)
    assert (req.method, req.path, req.query) == ("GET", "/ws", {"token": "a b", "x": ""})
    assert req.header("host", "") == "node.local:8080"
    # the target's authority wins over Host (RFC 9112 3.2.2): Origin is checked against it
    req = parse_head(b"GET HTTP://192.168.1.5/api/state HTTP/1.1\r\nHost: evil.example\r\n\r\n", keep=" host ", max_headers=24, end=None)
    assert (req.path, req.headers) == ("/api/state", {"host": "192.168.1.5"})
    for target, path, query in (("http://n", "/", {}), ("http://n?a=1", "/", {"a": "1"}), ("http://[::1]:80/x/y", "/x/y", {})):
        req = parse_head(get(target), 24, None, None)
        assert (req.path, req.query) == (path, query), target
    assert parse_head(get("http://[::1]:80/x"), 24, None, None).header("host", "") == "[::1]:80"


def test_parse_absolute_form_still_needs_host_and_an_authority():
    assert status_of(b"GET http://n/ HTTP/1.1\r\n\r\n") == 400  # RFC 9112 3.2: Host is a must
    assert parse_head(b"GET http://n/ HTTP/1.0\r\n\r\n", 24, None, None).header("host", "") == "n"
    for target in ("http://user@n/", "http://u:p@n/", "http://@n/", "http:///x", "http://?q", "http://", "https://n/"):
        assert status_of(get(target)) == 400, target
    # the authority is taken as a Host value would be: controls refused, the rest compared as is
    assert status_of(get("http://n\x01/")) == 400


def test_parse_content_length_must_be_digits():
    for cl in (b"-1", b"abc", b"1,2", b"1, 1", b"+5", b"5 5", b"0x10", b"", b"1.0", b"\xd9\xa1"):
        head = b"POST / HTTP/1.1\r\nHost: n\r\nContent-Length: " + cl + b"\r\n\r\n"
        assert status_of(head) == 400, cl
        assert status_of(head, keep=" host content-length ") == 400, cl
    for cl in (b"0", b"5", b"007", b"99999999999999999999"):
        req = parse_head(b"POST / HTTP/1.1\r\nHost: n\r\nContent-Length: " + cl + b"\r\n\r\n", 24, None, None)
        assert req.header("content-length", "") == cl.decode()


def test_hostile_heads_get_exact_400_responses():
    for head in (b"GET / HTTP/1.1\r\nHost: n\r\nX: a\nb\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET / HTTP/1.1\r\nHost: n\r\nContent-Length: -1\r\n\r\n"):
        try:
            parse_head(head, 24, None, None)
        except HttpError as e:
            body = (e.message + "\n").encode()
            assert http.error_response(e.status, e.message, ()) == (
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
        else:
            assert False, head


# ---------------------------------------------------------------- check_start


def start_status(data, n=None):
    buf = bytearray(data + b"\xaa" * 8)  # stale bytes past n are not looked at
    try:
        http.check_start(buf, len(data) if n is None else n)
    except HttpError as e:
        assert e.message
        return e.status
    return None


def test_check_start_passes_what_may_become_a_valid_head():
    for data in (b"G", b"GET", b"GET ", b"GET /ws HTT", b"GET / HTTP/1.1\r", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: n\r\nUser-Agent: x",
                 b"PROPFIND /x", b"M-SEARCH * HTTP/1.1\r\n", b"GET /caf\xc3\xa9 HTTP/1.1\r\n"):
        assert start_status(data) is None, data


def test_check_start_refuses_a_tls_client_hello():
    hello = bytes.fromhex("16030100f2010000ee0303") + b"\x00" * 32
    assert start_status(hello) == 400
    assert start_status(hello[:2]) == 400
    assert start_status(b"\x16") == 400


def test_check_start_refuses_bare_lf_line_endings():
    for data in (b"GET / HTTP/1.1\nHost: n\n", b"GET / HTTP/1.1\n", b"GET / HTTP/1.1\r\nHost: n\nX: y", b"\n"):
        assert start_status(data) == 400, data


def test_check_start_refuses_a_method_that_is_no_token():
    for data in (b" GET / HTTP/1.1", b"G(T / H", b"GE\x00T", b"\r\nGET / HTTP/1.1\r\n", b"{\"type\":\"get\"}", b"\xff\xfe", b"GET\t/"):
        assert start_status(data) == 400, data


def test_check_start_looks_only_at_the_first_n_bytes():
    assert start_status(b"GET / HTTP/1.1\nX", 3) is None
    assert start_status(b"GET / HTTP/1.1\nX", 15) == 400
