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
        page.node = n
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


# A node with a clock (no NTP: the page gives it the time) and two schedules.
CLOCK = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "ntp": "", "lat": 52.52, "lon": 13.40}
SCHEDULES = [{"relay": "Light", "at": "sunset-15", "days": "mon-fri", "action": "on"},
             {"relay": "Fan", "at": "06:30", "action": "pulse", "ms": 600000}]
# The firmware's .mpy files from the filesystem on the 64-bit port keep their bytecode in the
# heap: with the clock and schedules loaded, 128K is not enough there (as with links, see
# test_links.py). The heap figures that matter are make bench's, on the 32-bit build.
CLOCK_HEAP = "160K"


# A node with a clock section (CLOCK unless given) and the heap it needs.
def clock_node(node, clock=CLOCK, **kw):
    return node(clock=clock, heapsize=CLOCK_HEAP, **kw)


# Tab until the focus is on the first element matching selector; returns whether it got there.
def tab_to(page, selector, limit=40):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return True
    return False


# The page on a node with a clock and schedules, the schedule editor opened from the keyboard.
def schedule_editor(node, phones):
    from playwright.sync_api import expect

    p = phones(clock_node(node, schedules=SCHEDULES))
    expect(p.get_by_role("button", name="Light", exact=True)).to_be_enabled()
    expect(p.locator("#clock")).to_have_attribute("data-source", "page")
    assert tab_to(p, "summary")
    p.keyboard.press("Enter")
    expect(p.get_by_label("Relay")).to_be_visible()
    expect(p.locator("#slist li")).to_have_count(2)
    return p


# Every state the page can be in, each checked by every test below that takes `page_state`. A new
# part of the page is one more entry: a function that takes the page from connected(node,
# phones) (or a node of its own), brings it into that state, waits until it shows and returns it.
PAGE_STATES = {"connected": connected, "disconnected": disconnected, "asking_for_token": asking_for_token,
               "schedule_editor": schedule_editor}


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


# axe-core finds nothing on the page as it is now (what: the state, for the message), in both
# colour schemes: colour contrast is checked in each.
def assert_no_axe_violations(page, script, what):
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        # wait until the colours have finished their transition to the new scheme
        page.evaluate("Promise.all(document.getAnimations().filter(a => a instanceof CSSTransition).map(a => a.finished))")
        found = axe_violations(page, script)
        assert not found, "%s, %s colours: %d violations\n%s" % (what, scheme, len(found), "\n".join(found))


@pytest.mark.parametrize("page_state", sorted(PAGE_STATES))
def test_page_has_no_axe_violations(page_state, node, phones, axe_script):
    p = PAGE_STATES[page_state](node, phones)
    assert_no_axe_violations(p, axe_script, page_state)
    assert p.js_errors == []


# The controls the Tab key reaches, in order, as [tag, id or relay id or text]: Tab goes
# round (past the last control focus leaves the page, then comes back to the first) until a
# control comes again. A control with fields of its own (a time input's hours and minutes)
# keeps the focus for several Tabs.
def tab_through(page, limit=60):
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate("""() => { const e = document.activeElement;
            return e == document.body ? null : [e.tagName.toLowerCase(), e.id || e.dataset.relayId || e.textContent] }""")
        if seen and here == seen[-1]:
            continue
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


# ---- the clock and the schedule editor ----


def test_page_gives_the_node_its_time(node, phones):
    import calendar
    import re
    import time

    from playwright.sync_api import expect

    n = clock_node(node)
    a = phones(n)
    # The node has no NTP: the page sends its own time, the node takes it and says where from.
    expect(a.locator("#clock")).to_have_attribute("data-source", "page")
    line = n.wait_for_line(" from page", 5)
    found = re.search(r"clock: (\d{4}-\d\d-\d\dT\d\d:\d\d) from page", line)
    assert found, line
    # the node's local time is this computer's, in CET (+1 h) or CEST (+2 h)
    t = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%dT%H:%M"))
    assert any(abs(t - time.time() - offset) < 120 for offset in (3600, 7200)), line
    expect(a.locator("#clock")).to_contain_text(re.compile(r"Node time: \w{3}, \d\d \w{3} \d\d:\d\d \(from a phone\)"))
    # A second page finds the clock set and sends nothing: the node logs the time once.
    b = phones(n)
    expect(b.locator("#clock")).to_have_attribute("data-source", "page")
    expect(b.get_by_role("button", name="Light", exact=True)).to_be_enabled()
    assert len(n.matching(" from page")) == 1
    # The node stops: no schedule can be added meanwhile. It starts again and has forgotten the
    # time: the pages reconnect and tell it again.
    a.get_by_text("Schedules", exact=True).tap()
    expect(a.get_by_role("button", name="Add schedule")).to_be_enabled()
    n.stop()
    expect(a.get_by_role("button", name="Add schedule")).to_be_disabled()
    n.restart()
    n.wait_for_line(" from page", 15)
    for p in (a, b):
        expect(p.locator("#status")).to_have_attribute("data-state", "open", timeout=15_000)
        expect(p.locator("#clock")).to_have_attribute("data-source", "page")
    expect(a.get_by_role("button", name="Add schedule")).to_be_enabled()
    # The schedule editor is there only on a node with a clock.
    m = node()
    c = phones(m)
    expect(c.get_by_role("button", name="Light", exact=True)).to_be_enabled()
    expect(c.locator("#sched")).to_be_hidden()
    expect(c.locator("#clock")).to_be_hidden()
    for p in (a, b, c):
        assert p.js_errors == []


def test_schedule_added_on_one_page_shows_on_another_and_is_removed(node, phones):
    import re

    from playwright.sync_api import expect

    n = clock_node(node)
    a = phones(n)
    b = phones(n)
    for p in (a, b):
        expect(p.locator("#clock")).to_have_attribute("data-source", "page")
        expect(p.locator("#slist")).to_have_text("No schedules")
        p.get_by_text("Schedules", exact=True).tap()
    # Phone A adds "Fan off at 18:42 on weekdays".
    a.get_by_label("Relay").select_option("Fan")
    a.get_by_label("Action").select_option("off")
    a.get_by_label("Time").fill("18:42")
    for day in ("Sat", "Sun"):
        a.get_by_label(day, exact=True).uncheck()
    mark = n.mark()
    a.get_by_role("button", name="Add schedule").tap()
    entry = "Fan: off at 18:42, Mon–Fri"
    for p in (a, b):
        expect(p.locator("#slist li")).to_have_text([re.compile("^" + entry)])
        # the Fan tile shows (as its description) when it will switch next
        fan = p.get_by_role("button", name="Fan", exact=True)
        expect(fan).to_have_accessible_description(re.compile(r"^next: off (at|Mon|Tue|Wed|Thu|Fri) 18:42$"))
        expect(p.get_by_role("button", name="Light", exact=True)).to_have_accessible_description("")
    expect(a.locator("#smsg")).to_have_text("Schedule added")
    expect(b.locator("#smsg")).to_have_text("")
    saved = os.path.join(n.state_dir, "schedules.json")
    with open(saved) as f:
        assert json.load(f) == [{"id": 1, "relay": "Fan", "at": "18:42", "action": "off",
                                 "days": ["mon", "tue", "wed", "thu", "fri"]}]
    assert not n.matching("relay ", since=mark)  # adding a schedule moves no relay
    # Another kind of client sees it too.
    with connect(n.ws_url, open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "schedules"}))
        assert json.loads(ws.recv(timeout=5))["schedules"][0]["relay"] == "Fan"
    # A phone-sized editor: no sideways scrolling, buttons big enough to tap.
    for p in (a, b):
        assert p.evaluate("document.documentElement.scrollWidth") <= 390
    remove = b.get_by_role("button", name="Remove " + entry)
    box = remove.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44
    # Phone B removes it: gone from both pages, and from the Fan tile.
    remove.tap()
    for p in (a, b):
        expect(p.locator("#slist")).to_have_text("No schedules")
        expect(p.get_by_role("button", name="Fan", exact=True)).to_have_accessible_description("")
    expect(b.locator("#smsg")).to_have_text("Schedule removed")
    with open(saved) as f:
        assert json.load(f) == []
    for p in (a, b):
        assert p.js_errors == []


# The list comes anew whenever the node sends it (the answer to the page's own request when the
# editor opens, any page's edit): a keyboard user's focus stays on the Remove button it was on.
def test_schedule_list_coming_anew_keeps_the_focus(node, phones):
    from playwright.sync_api import expect

    p = schedule_editor(node, phones)
    first = p.get_by_label("Remove Light: on 15 min before sunset, Mon–Fri")
    assert tab_to(p, "#slist button")
    expect(first).to_be_focused()
    with connect(p.node.ws_url, open_timeout=5, close_timeout=2) as ws:  # another client adds one
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        ws.send(json.dumps({"type": "schedule_add", "relay": "Fan", "at": "21:00", "action": "off"}))
        expect(p.locator("#slist li")).to_have_count(3)
    expect(first).to_be_focused()
    p.keyboard.press("Tab")
    expect(p.get_by_label("Remove Fan: pulse 10 min at 06:30, every day")).to_be_focused()


def test_schedule_editor_from_the_keyboard(node, phones):
    from playwright.sync_api import expect

    p = schedule_editor(node, phones)
    # Relay, action, when, time, days, then Add: each by keyboard alone.
    p.keyboard.press("Tab")
    expect(p.get_by_label("Remove Light: on 15 min before sunset, Mon–Fri")).to_be_focused()
    p.keyboard.press("Tab")
    p.keyboard.press("Tab")
    expect(p.get_by_label("Relay")).to_be_focused()
    p.keyboard.type("Fan")
    p.keyboard.press("Tab")
    p.keyboard.type("toggle")
    p.keyboard.press("Tab")
    p.keyboard.type("sunrise")
    expect(p.get_by_label("Time")).to_be_hidden()
    p.keyboard.press("Tab")
    expect(p.get_by_label("Offset (minutes)")).to_be_focused()
    p.keyboard.press("Control+A")
    p.keyboard.type("30")
    p.keyboard.press("Tab")
    expect(p.get_by_label("Mon", exact=True)).to_be_focused()
    for _ in range(5):  # Mon-Fri off: weekends only
        p.keyboard.press("Space")
        p.keyboard.press("Tab")
    expect(p.get_by_label("Sat", exact=True)).to_be_focused()
    p.keyboard.press("Tab")
    p.keyboard.press("Tab")
    expect(p.get_by_role("button", name="Add schedule")).to_be_focused()
    p.keyboard.press("Enter")
    expect(p.locator("#slist li").nth(2)).to_contain_text("Fan: toggle 30 min after sunrise, Sat Sun")
    # The Remove buttons from the keyboard: the focus moves on to the next one.
    assert tab_to(p, "#slist button")
    p.keyboard.press("Enter")
    expect(p.locator("#slist li")).to_have_count(2)
    expect(p.get_by_label("Remove Fan: pulse 10 min at 06:30, every day")).to_be_focused()
    p.keyboard.press("Space")
    expect(p.locator("#slist li")).to_have_count(1)
    expect(p.get_by_label("Remove Fan: toggle 30 min after sunrise, Sat Sun")).to_be_focused()
    p.keyboard.press("Enter")
    expect(p.locator("#slist")).to_have_text("No schedules")
    expect(p.get_by_text("Schedules", exact=True)).to_be_focused()  # the last one gone: back to the top
    assert p.js_errors == []


def test_invalid_schedule_shows_the_nodes_error(node, phones, axe_script):
    from playwright.sync_api import expect

    n = clock_node(node, {"tz": "UTC0", "ntp": ""})  # no location: no sunrise or sunset
    p = phones(n)
    expect(p.locator("#clock")).to_have_attribute("data-source", "page")
    p.get_by_text("Schedules", exact=True).tap()
    p.get_by_label("When").select_option("sunset")
    p.get_by_label("Offset (minutes)").fill("-15")
    p.get_by_role("button", name="Add schedule").tap()
    msg = p.locator("#smsg")
    expect(msg).to_have_text("Not saved: schedule.at: sunrise and sunset need clock.lat and clock.lon")
    expect(msg).to_have_class("err")
    expect(msg).to_have_role("status")  # announced by screen readers
    assert_no_axe_violations(p, axe_script, "the node's error shown")
    # Not one day: the node's own check again.
    p.get_by_label("When").select_option("")
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        p.get_by_label(day, exact=True).uncheck()
    p.get_by_role("button", name="Add schedule").tap()
    expect(msg).to_contain_text("Not saved: schedule.days: must be a range")
    # A pulse longer than an hour.
    p.get_by_label("Sun", exact=True).check()
    p.get_by_label("Action").select_option("pulse")
    p.get_by_label("Pulse length (ms)").fill("3600001")
    p.get_by_role("button", name="Add schedule").tap()
    expect(msg).to_contain_text("Not saved: schedule.ms: must be a whole number from 1 to 3600000")
    expect(p.locator("#slist")).to_have_text("No schedules")
    expect(p.locator("#log")).not_to_contain_text("Error")  # next to the form, not in the log
    assert not n.matching("relay ")
    # A good one clears the error.
    p.get_by_label("Pulse length (ms)").fill("2000")
    p.get_by_role("button", name="Add schedule").tap()
    expect(msg).to_have_text("Schedule added")
    expect(p.locator("#slist li")).to_have_count(1)
    expect(p.locator("#slist li")).to_contain_text("Light: pulse 2 s at 18:00, Sun")
    assert p.js_errors == []


def test_schedule_firing_updates_the_tile(node, phones):
    import re

    from playwright.sync_api import expect

    # 2026-12-02 is a Wednesday; the node's clock starts at 17:55 UTC and runs 30 times faster:
    # 18:00 comes about 10 s after the start.
    n = clock_node(node, {"tz": "UTC0", "ntp": ""}, schedules=[{"relay": "Light", "at": "18:00", "action": "on"}],
             sim_args=["--clock", "2026-12-02T17:55:00Z", "--clock-rate", "30"])
    n.wait_for_line("clock: 2026-12-02T17:5", 5)  # from the simulator's NTP
    p = phones(n)
    light = p.get_by_role("button", name="Light", exact=True)
    expect(light).to_have_attribute("aria-pressed", "false")
    expect(light).to_have_accessible_description("next: on at 18:00")
    expect(p.locator("#clock")).to_have_attribute("data-source", "ntp")
    expect(p.locator("#clock")).to_contain_text(re.compile(r"Node time: Wed, 02 Dec 17:5\d \(from NTP\)"))
    expect(light).to_have_attribute("aria-pressed", "true", timeout=20_000)
    expect(p.locator("#log")).to_contain_text("Light → ON (schedule)")
    expect(light).to_have_accessible_description("next: on Thu 18:00")
    expect(p.locator("#clock")).to_contain_text("Node time: Wed, 02 Dec 18:0")
    n.wait_for_line("relay Light -> on (schedule)", 5)
    assert not n.matching(" from page")  # the node knew the time: the page sent none
    assert p.js_errors == []


def test_tile_says_when_the_sun_does_not_rise(node, phones):
    from playwright.sync_api import expect

    # Longyearbyen in December: polar night, no sunrise for weeks; the Fan's event is a time.
    n = clock_node(node, {"tz": "UTC0", "ntp": "", "lat": 78.22, "lon": 15.65},
                   schedules=[{"relay": "Light", "at": "sunrise+30", "action": "on"},
                              {"relay": "Fan", "at": "07:15", "days": ["sat"], "action": "off"}],
                   sim_args=["--clock", "2026-12-02T12:00:00Z"])
    n.wait_for_line("clock: 2026-12-02T12:00", 5)
    p = phones(n)
    expect(p.get_by_role("button", name="Light", exact=True)).to_have_accessible_description("next: none (polar night)")
    expect(p.get_by_role("button", name="Fan", exact=True)).to_have_accessible_description("next: off Sat 07:15")
    p.get_by_text("Schedules", exact=True).tap()
    expect(p.locator("#slist li span")).to_have_text(["Light: on 30 min after sunrise, every day", "Fan: off at 07:15, Sat"])
    assert p.js_errors == []
