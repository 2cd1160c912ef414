# The control page in headless Chromium at a phone viewport, against the node on both
# runtimes: tap -> relay changes -> the other page updates; messages; reconnect after restart.
import json
import os

import pytest
from websockets.sync.client import connect


pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PHONE = dict(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True)
T = 10_000  # ms: bound on every wait in the page


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium not found at %s: apt-get install chromium (or `make browser-deps`), "
                    "or set CHROMIUM=/path/to/chromium" % CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make venv`")
    p = sync_playwright().start()
    try:
        b = p.chromium.launch(executable_path=CHROMIUM, timeout=30_000)
    except Exception:
        p.stop()
        raise
    yield b
    b.close()
    p.stop()


@pytest.fixture
def phones(browser):
    made = []

    def make(n):
        ctx = browser.new_context(**PHONE)
        ctx.set_default_timeout(T)
        made.append(ctx)
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors
        page.goto(n.url, timeout=T)
        return page

    yield make
    for ctx in made:
        ctx.close()


def test_two_phones(node, phones):
    from playwright.sync_api import expect

    n = node()
    a = phones(n)
    b = phones(n)
    for p in (a, b):
        expect(p.locator("#status")).to_have_attribute("data-state", "open")
        expect(p.locator("#node")).to_have_text("testnode")
    light_a = a.get_by_role("button", name="Light", exact=True)
    light_b = b.get_by_role("button", name="Light", exact=True)
    for btn in (light_a, light_b):  # the state message has arrived
        expect(btn).to_be_visible()
        expect(btn).to_be_enabled()
        expect(btn).to_have_attribute("aria-pressed", "false")

    # Tap on phone A: both phones show it on, the (active-low) pin goes to 0.
    mark = n.mark()
    light_a.tap()
    for btn in (light_a, light_b):
        expect(btn).to_have_attribute("aria-pressed", "true")
    n.wait_for_line("GPIO26 -> 0", 5, since=mark)
    n.wait_for_line("relay Light -> on (client)", 5, since=mark)
    expect(b.locator("#log")).to_contain_text("Light → ON (client)")

    # Tap on phone B: both off again.
    mark = n.mark()
    light_b.tap()
    for btn in (light_a, light_b):
        expect(btn).to_have_attribute("aria-pressed", "false")
    n.wait_for_line("GPIO26 -> 1", 5, since=mark)

    # A message typed on A shows in both logs.
    a.get_by_label("Message").fill("hello from phone A")
    a.get_by_role("button", name="Send").tap()
    for p in (a, b):
        expect(p.locator("#log")).to_contain_text("hello from phone A")
    expect(a.get_by_label("Message")).to_have_value("")

    # A change made by another kind of client shows on the pages.
    with connect(n.ws_url, open_timeout=5, close_timeout=2) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "set", "relay": "Fan", "on": True}))
        assert json.loads(ws.recv(timeout=5))["name"] == "Fan"
    for p in (a, b):
        expect(p.get_by_role("button", name="Fan", exact=True)).to_have_attribute("aria-pressed", "true")
        expect(p.locator("#log")).to_contain_text("Fan → ON (client)")

    # The node goes away: the pages say so and disable the buttons.
    n.stop()
    for p in (a, b):
        expect(p.locator("#status")).to_have_attribute("data-state", "closed")
        expect(p.get_by_role("button", name="Light", exact=True)).to_be_disabled()
    # It comes back (same port and state): the pages reconnect by themselves.
    n.restart()
    for p in (a, b):
        expect(p.locator("#status")).to_have_attribute("data-state", "open", timeout=15_000)
        expect(p.get_by_role("button", name="Fan", exact=True)).to_be_enabled()
    light_a.tap()
    expect(light_b).to_have_attribute("aria-pressed", "true")
    for p in (a, b):
        assert p.js_errors == []


def test_page_fits_a_phone(node, phones):
    from playwright.sync_api import expect

    n = node()
    p = phones(n)
    expect(p.locator("#status")).to_have_attribute("data-state", "open")
    expect(p.get_by_role("button", name="Light", exact=True)).to_be_visible()
    # No sideways scrolling at 390 px, and relay buttons big enough to tap.
    assert p.evaluate("document.documentElement.scrollWidth") <= 390
    box = p.get_by_role("button", name="Light", exact=True).bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44
