"""The page at a phone's, a tablet's and a desk's size, light and dark: the story in view, focus
on a live control, no layout jump, no serious accessibility problem, and screenshots of each.

The accessibility check is axe-core, from the pinned `axe-playwright-python` package: Playwright's
`evaluate` injects its script (the page's Content-Security-Policy refuses an added <script> tag,
and `evaluate` runs outside it, as the other tests' polling does)."""

import pytest
from llama2np.tools.bench.chromium import wait_for_state

pytestmark = pytest.mark.e2e

SCREENS = {"phone": (390, 844), "tablet": (820, 1180), "desktop": (1280, 800)}


def serious_accessibility_problems(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} elements)"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def box(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => e.getBoundingClientRect().toJSON()")


def end_visible_and_uncovered(page, selector: str) -> bool:
    """Whether the last line of the element's text is on the screen and not under the pinned bar."""
    return page.eval_on_selector(selector, """e => {
        const range = document.createRange();
        range.selectNodeContents(e);
        const rects = [...range.getClientRects()];
        const last = rects[rects.length - 1];
        if (!last) return false;
        const x = last.left + 2, y = (last.top + last.bottom) / 2;
        if (last.top < 0 || last.bottom > innerHeight || x > innerWidth) return false;
        const hit = document.elementFromPoint(x, y);
        return e === hit || e.contains(hit);
    }""")


def button_tops(page) -> list[float]:
    return page.evaluate("() => ['generate', 'stop'].map(id => document.getElementById(id).getBoundingClientRect().top)")


def visible_and_uncovered(page, selector: str) -> bool:
    """Whether the element's top-left corner is on the screen and not under the pinned bar."""
    return page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        const x = r.left + 8, y = r.top + 8;
        if (y < 0 || y > innerHeight || x > innerWidth) return false;
        const hit = document.elementFromPoint(x, y);
        return e === hit || e.contains(hit);
    }""")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", SCREENS)
def test_the_page_fits_the_screen(visit_with, results_dir, screen, scheme):
    width, height = SCREENS[screen]
    touch = {"has_touch": True} if screen == "phone" else {}
    visit = visit_with(viewport={"width": width, "height": height}, color_scheme=scheme, **touch)
    page = visit.page
    page.goto(visit.url)
    story_top_while_loading = box(page, ".story")["top"]
    assert wait_for_state(page, ("ready", "error"), 90) == "ready", visit.status()
    # Nothing moves when loading ends (by a whole pixel; text may round a fraction).
    assert abs(box(page, ".story")["top"] - story_top_while_loading) < 1
    assert serious_accessibility_problems(page) == []
    # No field alone on its row: two rows of two, or one row of four.
    tops = page.evaluate("() => [...document.querySelectorAll('.field')].map(f => f.getBoundingClientRect().top)")
    rows = [tops.count(top) for top in sorted(set(tops))]
    assert rows in ([2, 2], [4]), rows
    # Any seed fits its field.
    page.fill("#seed", "9007199254740991")
    widths = page.eval_on_selector("#seed", "e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], widths
    # Opening one's own model is one quiet line below the settings, not the first thing seen.
    own = box(page, ".own-model")
    assert own["top"] >= box(page, "#controls")["bottom"] and own["height"] < 40, own
    page.screenshot(path=str(results_dir / f"page-{screen}-{scheme}-ready.png"))
    ready_buttons = button_tops(page)

    # The line being written stays in view as the story grows, and so do Stop and the status;
    # the buttons stay where they were (the status may take one line or three).
    visit.set(prompt="Tom had a red ball", temperature=0.8, seed=9, steps=0)
    visit.focus_when_writing()
    page.click("#generate")
    assert visit.focused_while_writing() == "stop"
    for _ in range(40):
        page.wait_for_timeout(50)
        if visit.state() != "generating":
            break
        assert end_visible_and_uncovered(page, "#output"), "the story is written out of sight"
        assert visible_and_uncovered(page, "#status") and visible_and_uncovered(page, "#stop")
        if screen == "phone":
            assert button_tops(page) == ready_buttons
    visit.wait_until_written()
    assert end_visible_and_uncovered(page, "#output"), "the story's end is out of sight"
    assert page.evaluate("() => document.activeElement.id") == "generate"
    if screen == "phone":
        assert button_tops(page) == ready_buttons
    page.screenshot(path=str(results_dir / f"page-{screen}-{scheme}-story.png"))
    assert serious_accessibility_problems(page) == []


def test_the_keyboard_alone_writes_stops_and_writes_again(visit):
    visit.open()
    page = visit.page
    visit.set(temperature=1.0, seed=12, steps=512)
    page.focus("#generate")
    visit.focus_when_writing()
    # Escape the moment the story shows, from inside the page: a story this fast could end
    # before a key pressed from here arrived.
    page.evaluate("""() => {
        const output = document.getElementById("output");
        const watch = new MutationObserver(() => {
            if (!output.textContent) return;
            watch.disconnect();
            document.activeElement.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
        });
        watch.observe(output, { childList: true, subtree: true, characterData: true });
    }""")
    page.keyboard.press("Enter")
    assert visit.focused_while_writing() == "stop"
    visit.wait_until_written()
    assert page.evaluate("() => document.body.dataset.ended") == "stopped"
    # Focus never falls to <body>: Enter now continues or writes again.
    focused = page.evaluate("() => document.activeElement.id")
    assert focused in ("generate", "continue")
    page.keyboard.press("Enter")
    visit.wait_until_written()
    assert page.evaluate("() => document.activeElement.tagName") != "BODY"
    page.focus("#prompt")
    page.keyboard.press("Meta+Enter")  # a Mac's Cmd+Enter
    assert visit.state() == "generating"
    visit.wait_until_written()


def test_the_shortcut_hint_matches_the_device(visit_with):
    desk = visit_with()
    desk.open()
    assert "Ctrl+Enter writes, Esc stops" in desk.text("shortcut-hint")
    mac_agent = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
                 "Gecko) Chrome/156.0.0.0 Safari/537.36")
    mac = visit_with(user_agent=mac_agent)
    mac.open()
    assert "⌘+Return writes, Esc stops" in mac.text("shortcut-hint")
    phone = visit_with(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone.open()
    assert phone.text("shortcut-hint") == ""


def test_a_phone_shows_a_setting_s_hint_while_it_is_touched(visit_with):
    phone = visit_with(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone.open()
    width = "id => document.getElementById(id).getBoundingClientRect().width"
    assert phone.page.evaluate(width, "topp-hint") <= 1  # compact: read out, not shown
    phone.page.tap("#topp")
    assert phone.page.evaluate(width, "topp-hint") > 100
    assert phone.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    phone.page.tap("#seed")
    assert phone.page.evaluate(width, "topp-hint") <= 1 and phone.page.evaluate(width, "seed-hint") > 100


def test_one_load_bar_counts_the_bytes_on_the_wire_and_never_goes_back(visit):
    page = visit.page
    page.goto(visit.url)
    seen = []
    while visit.state() == "loading":
        seen.append(page.evaluate("() => [document.getElementById('progress').value,"
                                  " document.getElementById('progress-label').textContent]"))
        page.wait_for_timeout(10)
    assert visit.state() == "ready"
    values = [value for value, _ in seen]
    assert values == sorted(values), "the bar went back"
    labels = " ".join(label for _, label in seen)
    assert "Reading the model" in labels or "Installing" in labels
    # The total is what travels (about 10.6 MB, brotli), not the 45 MB the files unpack to.
    totals = {label.split(" of ")[1] for _, label in seen if " of " in label and "about" not in label}
    assert totals and all(float(t.split()[0]) < 15 for t in totals), totals
    assert page.eval_on_selector("#progress", "e => e.value") == 1
