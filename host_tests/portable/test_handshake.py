# Tests for the handshake helpers of firmware/websocket.py (RFC 6455 section 4.2):
# handshake_error() for every way an upgrade request can be wrong, and the bytes of the 101
# answer. Requests come from wire.handshake() and are parsed by firmware/http.py, as the
# server does.
# Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
import binascii

from firmware import websocket as ws
from firmware.http import parse_head
from host_tests.portable import wire

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # section 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# handshake_error for the request wire.handshake builds, with host relaynode.local and the
# given fields changed (None drops a header): method, http (the HTTP version), upgrade,
# connection, key (Sec-WebSocket-Key), version (Sec-WebSocket-Version).
def check(method="GET", http="HTTP/1.1", **changes):
    req = parse_head(wire.handshake("/ws", method=method, http=http, host="relaynode.local", **changes), 24, None, None)
    return ws.handshake_error(req.method, req.version, req.headers)


def b64(raw):
    return binascii.b2a_base64(raw)[:-1].decode()


def test_valid_handshake_passes():
    assert check() is None


def test_non_get_is_405_with_allow():
    for method in ("POST", "PUT", "HEAD", "get"):
        err = check(method)
        assert err[0] == 405, method
        assert err[2] == (("Allow", "GET"),)
        assert err[1]


def test_method_is_checked_first():
    assert check("POST", upgrade=None, connection=None, key=None)[0] == 405


def test_http_10_is_400():
    err = check(http="HTTP/1.0")
    assert err[0] == 400 and err[2] == ()


def test_without_upgrade_websocket_is_426():
    for upgrade in (None, "", "h2c", "websockets", "web socket"):
        err = check(upgrade=upgrade)
        assert err[0] == 426, upgrade
        assert err[2] == (("Upgrade", "websocket"), ("Connection", "Upgrade"))


def test_upgrade_is_a_case_insensitive_token_list():
    for upgrade in ("WebSocket", "WEBSOCKET", "h2c, websocket", "websocket ,foo"):
        assert check(upgrade=upgrade) is None, upgrade


def test_connection_without_upgrade_is_400():
    for connection in (None, "", "keep-alive", "close", "upgraded", "keep-alive upgrade"):
        err = check(connection=connection)
        assert err[0] == 400, connection
        assert err[2] == ()


def test_connection_is_a_case_insensitive_token_list():
    for connection in ("keep-alive, Upgrade", "UPGRADE", "upgrade,keep-alive", "keep-alive ,  upgrade "):
        assert check(connection=connection) is None, connection


def test_connection_split_over_repeated_headers_passes():
    head = (
        "GET /ws HTTP/1.1\r\nHost: n\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % RFC_KEY
    )
    req = parse_head(head.encode(), 24, None, None)
    assert ws.handshake_error(req.method, req.version, req.headers) is None


def test_other_versions_are_426_naming_13():
    for version in ("8", "7", "12", "14", "", None, "13.0"):
        err = check(version=version)
        assert err[0] == 426, version
        assert err[2] == (("Sec-WebSocket-Version", "13"),)


def test_bad_keys_are_400():
    bad = (
        None,
        "",
        RFC_KEY[:-1],  # 23 characters
        RFC_KEY + "A",  # 25 characters
        "dGhlIHNhbXBsZSBub25jZQ",  # padding left out
        "dGhlIHNhbXBsZSBub25j*Q==",  # not base64
        "dGhlIHNhbXBsZSBub2-_ZQ==",  # base64url alphabet
        "dGhlIHNhbXBsZSBub25jZ===",
        "dGhlIHNhbXBsZSBub25jZR==",  # the unused bits of the last character are not zero
        "dGhlIHNhbXBs ZSBub25jZQ==",
        b64(b"\x01" * 15),  # 15 bytes: 20 characters
        b64(b"\x01" * 17),  # 17 bytes: 24 characters, one "="
        b64(b"\x01" * 18),  # 18 bytes: 24 characters, no "="
        "\u00e9" * 22 + "==",
    )
    for key in bad:
        err = check(key=key)
        assert err is not None and err[0] == 400, key
        assert err[2] == ()


def test_good_keys_of_16_random_bytes_pass():
    for raw in (b"\x00" * 16, b"\xff" * 16, bytes(range(16)), bytes(range(240, 256))):
        key = b64(raw)
        assert len(key) == 24
        assert check(key=key) is None, key


def test_every_error_has_a_message_and_a_known_status():
    from firmware import http

    cases = (
        check("POST"),
        check(http="HTTP/1.0"),
        check(upgrade=None),
        check(connection=None),
        check(version="8"),
        check(key="x"),
    )
    assert [c[0] for c in cases] == [405, 400, 426, 400, 426, 400]
    for status, message, _extra in cases:
        assert isinstance(message, str) and message
        assert http.reason(status)


def test_handshake_response_rfc_example():
    assert ws.handshake_response(RFC_KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )


def test_handshake_response_strips_the_key():
    assert ws.handshake_response("  " + RFC_KEY + " ") == ws.handshake_response(RFC_KEY)


def test_handshake_response_for_another_key():
    # RFC 6455 section 4.1 example key; its accept value as every server computes it.
    resp = ws.handshake_response("x3JJHMbDL1EzLkh9GBhXDw==")
    assert resp.endswith(b"Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n")
