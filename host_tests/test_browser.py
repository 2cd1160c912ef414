# The control page in headless Chromium at a phone viewport, against the node on both
# runtimes: tap -> relay changes -> the other page updates; messages; reconnect after restart;
# accessibility (axe-core, the keyboard, accessible names) in every state of the page.
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


# ---- accessibility: axe-core on the page in each of its states, and the keyboard ----

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXE = os.path.join(ROOT, "tools", "npm", "node_modules", "axe-core", "axe.min.js")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]
TOKEN = "a11y-token-42"


# The page in the state a case needs: each returns the page once it shows that state.
def connected(node, phones):
    from playwright.sync_api import expect

    p = phones(node())
    expect(p.locator("#status")).to_have_attribute("data-state", "open")
    expect(p.get_by_role("button", name="Light", exact=True)).to_be_enabled()
    return p


def disconnected(node, phones):
    from playwright.sync_api import expect

    n = node()
    p = phones(n)
    expect(p.get_by_role("button", name="Light", exact=True)).to_be_enabled()
    n.stop()
    expect(p.locator("#status")).to_have_attribute("data-state", "closed")
    expect(p.locator("#status")).to_contain_text("retrying")
    expect(p.get_by_role("button", name="Light", exact=True)).to_be_disabled()
    return p


def asking_for_token(node, phones):
    from playwright.sync_api import expect

    # With no token in the URL or storage the node waits handshake_timeout_ms for an auth
    # message, then closes with 1008 "token required".
    p = phones(node(auth={"token": TOKEN}, limits={"handshake_timeout_ms": 1000}))
    expect(p.locator("#status")).to_have_text("Token required", timeout=T)
    expect(p.get_by_label("Access token")).to_be_focused()
    return p


# Every state the page can be in, each checked by every test below that takes `page_state`. A new
# part of the page is one more entry: e.g. a schedule editor, a function that takes the page from
# connected(node, phones), opens the editor with the keyboard, waits until it shows and returns it.
PAGE_STATES = {"connected": connected, "disconnected": disconnected, "asking_for_token": asking_for_token}


# The path of axe.min.js; its absence fails the tests that need it.
@pytest.fixture(scope="module")
def axe_script():
    if not os.path.exists(AXE):
        pytest.fail("axe-core not found at %s: run `make npm-deps` (npm ci --prefix tools/npm)" % AXE)
    return AXE


# axe-core's violations on the page as it is now: per rule, its id, impact and elements.
def axe_violations(page, script):
    if not page.evaluate("typeof axe != 'undefined'"):
        page.add_script_tag(path=script)
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    return ["%s (%s): %s\n    %s" % (v["id"], v["impact"], v["help"], "\n    ".join(
        "%s: %s" % (" ".join(x["target"]), x["failureSummary"].replace("\n", " ")) for x in v["nodes"]))
        for v in found["violations"]]


@pytest.mark.parametrize("page_state", sorted(PAGE_STATES))
def test_page_has_no_axe_violations(page_state, node, phones, axe_script):
    p = PAGE_STATES[page_state](node, phones)
    for scheme in ("light", "dark"):  # colour contrast is checked in both colour schemes
        p.emulate_media(color_scheme=scheme)
        # wait until the colours have finished their transition to the new scheme
        p.evaluate("Promise.all(document.getAnimations().filter(a => a instanceof CSSTransition).map(a => a.finished))")
        found = axe_violations(p, axe_script)
        assert not found, "%s, %s colours: %d violations\n%s" % (page_state, scheme, len(found), "\n".join(found))
    assert p.js_errors == []


# The controls the Tab key reaches, in order, as [tag, id or relay id or text]: Tab goes
# round (past the last control focus leaves the page, then comes back to the first) until a
# control comes again.
def tab_through(page, limit=40):
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate("""() => { const e = document.activeElement;
            return e == document.body ? null : [e.tagName.toLowerCase(), e.id || e.dataset.relayId || e.textContent] }""")
        if here in seen:
            break
        if here is not None:
            seen.append(here)
    return seen


@pytest.mark.parametrize("page_state", sorted(PAGE_STATES))
def test_every_control_is_reachable_by_keyboard_and_named(page_state, node, phones):
    import re

    from playwright.sync_api import expect

    p = PAGE_STATES[page_state](node, phones)
    # Every visible, enabled control is in the Tab order, and each has an accessible name.
    controls = p.locator("button:visible:enabled, input:visible:enabled, a[href]:visible, select:visible, textarea:visible")
    assert controls.count() > 0
    reached = tab_through(p)
    for i in range(controls.count()):
        c = controls.nth(i)
        key = c.evaluate("e => [e.tagName.toLowerCase(), e.id || e.dataset.relayId || e.textContent]")
        assert key in reached, "%s is not reachable with Tab (reached: %s)" % (key, reached)
        expect(c).to_have_accessible_name(re.compile(r"\S"))


def test_relays_switch_from_the_keyboard(node, phones):
    from playwright.sync_api import expect

    n = node()
    p = phones(n)
    light = p.get_by_role("button", name="Light", exact=True)
    expect(light).to_be_enabled()
    for _ in range(20):  # Tab until the Light tile has the focus
        p.keyboard.press("Tab")
        if p.evaluate("document.activeElement.dataset.relayId") == "0":
            break
    expect(light).to_be_focused()
    expect(light).to_have_attribute("aria-pressed", "false")
    mark = n.mark()
    p.keyboard.press("Space")
    expect(light).to_have_attribute("aria-pressed", "true")
    n.wait_for_line("relay Light -> on (client)", 5, since=mark)
    mark = n.mark()
    p.keyboard.press("Enter")
    expect(light).to_have_attribute("aria-pressed", "false")
    n.wait_for_line("relay Light -> off (client)", 5, since=mark)
    expect(light).to_be_focused()  # the update keeps the focus where it was
    # Back to the tab: the page asks for the whole state and draws new tiles; the focus stays.
    light.evaluate("e => e.classList.add('drawn-before')")
    p.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(p.locator(".drawn-before")).to_have_count(0)
    expect(light).to_be_focused()
    # The next tile, and the message form, by keyboard alone.
    p.keyboard.press("Tab")
    fan = p.get_by_role("button", name="Fan", exact=True)
    expect(fan).to_be_focused()
    p.keyboard.press("Space")
    expect(fan).to_have_attribute("aria-pressed", "true")
    p.keyboard.press("Tab")
    expect(p.get_by_label("Message")).to_be_focused()
    p.keyboard.type("typed, not tapped")
    p.keyboard.press("Enter")
    expect(p.locator("#log")).to_contain_text("typed, not tapped")
    assert p.js_errors == []


def test_token_is_given_from_the_keyboard(node, phones):
    from playwright.sync_api import expect

    p = asking_for_token(node, phones)
    p.keyboard.type(TOKEN)
    p.keyboard.press("Enter")
    expect(p.locator("#status")).to_have_attribute("data-state", "open")
    light = p.get_by_role("button", name="Light", exact=True)
    expect(light).to_be_enabled()
    p.keyboard.press("Tab")
    expect(p.get_by_label("Access token")).to_be_hidden()
    assert p.js_errors == []
