# Tests for firmware/setup.py: the Wi-Fi setup form and the checks on what it posts (network
# name 1-32 bytes, password empty or 8-63 printable ASCII characters), from literal form
# bodies. Portable: plain functions and asserts, run by pytest on CPython and by
# host_tests/mp_run.py on the MicroPython unix port.
from firmware import setup
from firmware.http import HttpError


# The HttpError status setup.parse(body) raises; fails the test when it raises nothing.
def status_of(body):
    try:
        got = setup.parse(body)
    except HttpError as e:
        assert e.message, body
        return e.status
    assert False, "no HttpError for %r (got %r)" % (body, got)


def test_parse_a_plain_form():
    assert setup.parse(b"ssid=home&password=secret12") == ("home", "secret12", None)


def test_parse_decodes_form_encoding():
    body = b"ssid=Caf%C3%A9+5G&password=p%40ss+w%26rd%3D1"
    assert setup.parse(body) == ("Caf\u00e9 5G", "p@ss w&rd=1", None)


def test_parse_returns_the_token_when_sent():
    assert setup.parse(b"ssid=home&password=&token=abc") == ("home", "", "abc")


def test_an_empty_password_is_an_open_network():
    assert setup.parse(b"ssid=cafe&password=") == ("cafe", "", None)
    assert setup.parse(b"ssid=cafe") == ("cafe", "", None)


def test_network_name_length_is_counted_in_bytes():
    assert setup.parse(b"ssid=" + b"n" * 32)[0] == "n" * 32
    assert setup.parse(b"ssid=" + b"%C3%A9" * 16)[0] == "\u00e9" * 16  # 32 bytes
    assert status_of(b"ssid=" + b"n" * 33) == 400
    assert status_of(b"ssid=" + b"%C3%A9" * 16 + b"n") == 400  # 17 characters, 33 bytes


def test_a_missing_or_empty_network_name_is_refused():
    assert status_of(b"ssid=&password=secret12") == 400
    assert status_of(b"password=secret12") == 400
    assert status_of(b"") == 400


def test_password_length_boundaries():
    assert setup.parse(b"ssid=a&password=" + b"p" * 8)[1] == "p" * 8
    assert setup.parse(b"ssid=a&password=" + b"p" * 63)[1] == "p" * 63
    assert status_of(b"ssid=a&password=" + b"p" * 7) == 400
    assert status_of(b"ssid=a&password=" + b"p" * 64) == 400


def test_password_must_be_printable_ascii():
    assert setup.parse(b"ssid=a&password=+~!%22%23%24%25%26%27()*")[1] == " ~!\"#$%&'()*"
    assert status_of(b"ssid=a&password=p%C3%A4sswort") == 400  # an accent
    assert status_of(b"ssid=a&password=password%09") == 400  # a tab


def test_bad_encodings_are_refused():
    assert status_of(b"ssid=%FF%FE&password=") == 400  # %-decoded bytes that are not UTF-8
    assert status_of(b"ssid=\xff&password=") == 400  # raw bytes that are not UTF-8


def test_the_form_has_its_fields_and_button():
    page = setup.form("porch")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>porch: Wi-Fi</title>" in page
    assert 'name="viewport"' in page
    assert '<form method="post" action="/setup">' in page
    assert "Wi-Fi network" in page and 'name="ssid"' in page
    assert "Password" in page and 'name="password" type="password"' in page
    assert "<button>Save and restart</button>" in page
    assert 'name="token"' not in page
    assert len(page.encode()) < 1024


def test_the_form_asks_for_the_token_when_one_is_set():
    assert 'name="token"' in setup.form("porch", token=True)


def test_scanned_networks_are_offered_escaped():
    page = setup.form("porch", ["home", 'a"<b>&c'])
    assert '<option value="home">' in page
    assert '<option value="a&quot;&lt;b&gt;&amp;c">' in page
    assert "<b>" not in page


def test_the_saved_page_names_the_network_and_the_node():
    page = setup.saved("porch", "<home>")
    assert "Saved. The node restarts and joins &lt;home&gt;" in page
    assert "http://porch.local/" in page
