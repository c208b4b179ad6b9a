"""What the page does with a story: how it ended, Continue, the seed used, Share, Copy,
Download, the probability view (checked against `llama2np generate --probs`), and offline visits."""

import json
import re
import shutil
from contextlib import contextmanager

import pytest
from llama2np.tools.bench.chromium import wait_for_state
from llama2np.tools.site.serve import start_server
from support import GOLDEN_T0, run_cli
from test_page_screens import serious_accessibility_problems

pytestmark = pytest.mark.e2e

CLIPBOARD = ["clipboard-read", "clipboard-write"]


def cli(model_dir, *flags: str) -> str:
    result = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin", *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ended(visit) -> str | None:
    return visit.page.evaluate("() => document.body.dataset.ended ?? null")


def test_each_ending_is_told_and_a_cut_story_continues_as_a_longer_length(visit, model_dir):
    whole = cli(model_dir, "-t", "1.0", "-p", "0.9", "-s", "12", "-n", "0")[:-1]
    visit.open()
    cut = visit.write(temperature=1.0, topp=0.9, seed=12, steps=50)
    assert ended(visit) == "length" and "Cut off at Length 50" in visit.status()
    assert whole.startswith(cut) and len(cut) < len(whole)
    visit.page.click("#continue")
    visit.wait_until_written()
    assert visit.output() == whole  # seed 12 writes through the whole context
    assert ended(visit) == "length" and "The context is full." in visit.status()
    assert visit.page.is_disabled("#continue")
    assert visit.page.evaluate("() => document.activeElement.id") == "generate"
    visit.write(temperature=0, steps=0)  # Length 0 is the whole context, as in the command line
    assert ended(visit) == "end" and "The model ended the story." in visit.status()
    assert visit.page.is_disabled("#continue")


def test_a_stopped_story_continues_as_if_never_stopped(visit, model_dir):
    whole = cli(model_dir, "-t", "1.0", "-p", "0.9", "-s", "12", "-n", "512")[:-1]
    visit.open()
    visit.set(temperature=1.0, seed=12, steps=512)
    visit.generate_and_stop()
    assert ended(visit) == "stopped" and len(visit.output()) < len(whole)
    visit.page.click("#continue")
    visit.wait_until_written()
    assert visit.output() == whole


def test_errors_mark_the_old_story_and_speak_the_page_s_words(visit):
    visit.open()
    visit.write(prompt="Tom", temperature=0, steps=30)
    visit.set(prompt="Tom went to the park and played with his ball.", steps=5)
    visit.page.click("#generate")
    visit.wait_until_written()
    assert re.fullmatch(r"The start of the story is \d+ tokens long, which fills the whole Length "
                        r"of 5 \(Length counts its tokens too\); raise Length \(0 is the whole "
                        r"context\) or shorten the start\.", visit.status())
    assert visit.page.evaluate("() => document.getElementById('output').dataset.stale") == "true"
    assert ended(visit) is None
    visit.write(prompt="Tom", temperature=0, steps=30)
    assert visit.page.evaluate("() => document.getElementById('output').dataset.stale ?? null") is None


def test_top_p_at_its_ends_says_off(visit):
    visit.open()
    for value, shown in (("0", "off"), ("1", "off"), ("0.5", "0.50")):
        visit.page.fill("#topp", value)
        assert visit.text("topp-value") == shown


def test_a_shared_clock_seeded_story_is_written_again_in_a_fresh_browser(visit_with):
    first = visit_with(permissions=CLIPBOARD)
    first.open()
    story = first.write(prompt="A cat sat", temperature=0.9, topp=0.8, seed=0, steps=90)
    seed = int(re.fullmatch(r"· seed (\d+)", first.text("seed-used"))[1])
    assert seed > 1_600_000_000  # from the clock
    first.page.click("#share")
    url = first.page.eval_on_selector("#share", "e => e.dataset.url")
    assert first.page.url == url
    assert first.page.evaluate("() => navigator.clipboard.readText()") == url
    assert f"seed={seed}" in url and "steps=90" in url

    second = visit_with()  # a fresh context: nothing stored from the first
    second.page.goto(url)
    assert wait_for_state(second.page, ("ready", "error"), 90) == "ready", second.status()
    assert "The settings of a shared story are filled in" in second.status()
    assert second.page.input_value("#prompt") == "A cat sat"
    assert second.page.input_value("#seed") == str(seed)
    second.page.click("#generate")
    second.wait_until_written()
    assert second.output() == story


def test_a_link_s_malformed_settings_are_left_out(visit):
    visit.page.goto(visit.url + "#prompt=Hi%20there&temperature=9&topp=0.5&seed=-5&steps=1e9&junk=%ZZ")
    assert wait_for_state(visit.page, ("ready", "error"), 90) == "ready", visit.status()
    assert visit.page.input_value("#prompt") == "Hi there"
    assert visit.page.input_value("#topp") == "0.5"
    assert visit.page.input_value("#temperature") == "1"  # the page's own values stay
    assert visit.page.input_value("#seed") == "42"
    assert visit.page.input_value("#steps") == "256"
    # ...and the visitor is told which, in the field's own words.
    assert "The link's temperature, seed, and length are out of range, so those fields keep " \
        "their values." in visit.status()


def test_a_link_s_length_beyond_the_context_means_the_whole_context(visit, model_dir):
    """As run.c's -n: a link made on a model with a longer context still writes the story."""
    visit.page.goto(visit.url + "#prompt=&temperature=0&steps=99999")
    assert wait_for_state(visit.page, ("ready", "error"), 90) == "ready", visit.status()
    assert visit.page.input_value("#steps") == "512"
    assert "out of range" not in visit.status()
    visit.page.click("#generate")
    visit.wait_until_written()
    cli = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin",
                  "-t", "0", "-n", "99999")
    assert visit.output() + "\n" == cli.stdout


def test_copy_and_download_give_the_story_and_its_settings(visit_with):
    visit = visit_with(permissions=CLIPBOARD, accept_downloads=True)
    visit.open()
    story = visit.write(prompt="The sun", temperature=0.7, topp=0.9, seed=77, steps=80)
    visit.page.click("#copy")
    assert visit.page.evaluate("() => navigator.clipboard.readText()") == story
    with visit.page.expect_download() as download:
        visit.page.click("#download")
    assert download.value.suggested_filename == "llama2np-story-seed-77.txt"
    header, text = open(download.value.path(), encoding="utf-8").read().split("\n\n", 1)
    assert text == story + "\n"
    assert '# prompt: "The sun"' in header
    assert "# temperature: 0.7, top-p: 0.9, seed: 77, length: 80" in header
    assert "# model: stories260K" in header


def test_the_credits_link_the_source_this_site_runs(visit):
    visit.open()
    links = visit.page.evaluate(
        "() => [...document.querySelectorAll('footer a')].map((a) => a.textContent.trim())")
    for text in ("llama2.c", "TinyStories", "source code", "MIT licence"):
        assert text in links, links
    head = visit.page.evaluate("""async () => {
        const response = await fetch(document.getElementById("source-code").href);
        const bytes = new Uint8Array(await response.arrayBuffer());
        return [response.status, Array.from(bytes.slice(0, 4))];
    }""")
    assert head == [200, [0x50, 0x4B, 0x03, 0x04]]  # a zip archive


def test_why_this_word_agrees_with_the_command_line_and_changes_nothing(visit, model_dir,
                                                                        results_dir):
    flags = ["-t", "0.8", "-p", "0.9", "-s", "7", "-n", "70", "-i", "Tom saw a 🐸"]
    lines = [json.loads(line) for line in cli(model_dir, *flags, "--probs").splitlines()]
    plain = cli(model_dir, *flags)[:-1]
    visit.open()
    visit.page.check("#show-probabilities")
    story = visit.write(prompt="Tom saw a 🐸", temperature=0.8, topp=0.9, seed=7, steps=70)
    assert story == plain
    tokens = visit.page.evaluate("""() => [...document.querySelectorAll('#output .token')]
        .map(s => [s.textContent, Number(s.dataset.p)])""")
    assert [text for text, _ in tokens] == [line["text"] for line in lines]
    for (_, p), line in zip(tokens, lines, strict=True):
        assert p == pytest.approx(line["p"], rel=1e-5, abs=1e-7)
    visit.page.hover("#output .token >> nth=3")
    why = visit.text("why")
    assert why.startswith(json.dumps(lines[3]["text"], ensure_ascii=False) + ":")
    assert why.count("%") == 6  # the token's and its five alternatives'
    visit.page.screenshot(path=str(results_dir / "why-this-word.png"))
    assert serious_accessibility_problems(visit.page) == []
    # Off again, the next story is plain text, and the same.
    visit.page.uncheck("#show-probabilities")
    assert visit.write(prompt="Tom saw a 🐸", temperature=0.8, topp=0.9, seed=7, steps=70) == plain
    assert visit.page.evaluate("() => document.querySelectorAll('#output .token').length") == 0


@contextmanager
def visited_on_its_own_server(visit_with, site):
    """A visit to `site` served by a server of its own, which stops when the block ends; the
    visit has been told by the service worker that the site is kept for offline visits."""
    server, url = start_server(site)
    try:
        visit = visit_with(url)
        visit.open()
        for _ in range(200):
            if visit.page.evaluate("() => document.body.dataset.offline") == "ready":
                break
            visit.page.wait_for_timeout(50)
        assert visit.page.is_visible("#offline"), "the page does not say it works offline"
        yield visit
    finally:
        server.shutdown()
        server.server_close()


def test_a_new_version_of_the_site_is_taken_on_the_next_visit(visit_with, built_site, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    with visited_on_its_own_server(visit_with, site) as visit:
        page = (site / "index.html").read_text(encoding="utf-8")
        for packed in site.glob("index.html.*"):
            packed.unlink()
        (site / "index.html").write_text(page.replace("<h1>llama2np</h1>", "<h1>llama2np, new</h1>"),
                                         encoding="utf-8")
        visit.open()
        assert visit.page.text_content("h1") == "llama2np, new"


def test_the_page_works_offline_once_visited(visit_with, built_site, golden):
    with visited_on_its_own_server(visit_with, built_site) as visit:
        pass
    visit.page.context.set_offline(True)
    visit.open()
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
    # Every address of the page: its folder, and the folder's index.html.
    visit.page.goto(visit.url + "index.html")
    assert wait_for_state(visit.page, ("ready", "error"), 90) == "ready", visit.status()
    # The footer's source link works offline too.
    head = visit.page.evaluate("""async () => {
        const response = await fetch(document.getElementById("source-code").href);
        const bytes = new Uint8Array(await response.arrayBuffer());
        return [response.status, Array.from(bytes.slice(0, 4))];
    }""")
    assert head == [200, [0x50, 0x4B, 0x03, 0x04]]


def test_a_stopped_story_is_shared_at_the_length_it_reached(visit_with):
    visit = visit_with(permissions=CLIPBOARD)
    visit.open()
    visit.set(temperature=1.0, seed=12, steps=0)  # seed 12 writes the whole context
    visit.generate_and_stop(40)
    stopped = visit.output()
    stats = visit.page.evaluate("() => window.llama2np.lastStats")
    visit.page.click("#share")
    url = visit.page.eval_on_selector("#share", "e => e.dataset.url")
    assert f"steps={stats['prompt_tokens'] + stats['generated_tokens']}&" in url + "&"
    again = visit_with()
    again.page.goto(url)
    assert wait_for_state(again.page, ("ready", "error"), 90) == "ready", again.status()
    again.page.click("#generate")
    again.wait_until_written()
    assert again.output() == stopped
    assert again.page.evaluate("() => document.body.dataset.ended") == "length"


def test_settings_edited_after_a_share_survive_a_reload_and_a_new_link_is_taken(visit_with):
    visit = visit_with(permissions=CLIPBOARD)
    visit.open()
    visit.write(prompt="A dog", temperature=0.5, seed=9, steps=40)
    visit.page.click("#share")
    address = "() => location.href"
    assert "#" in visit.page.evaluate(address)
    visit.page.fill("#seed", "31")  # an edit: the address no longer names the story
    assert "#" not in visit.page.evaluate(address)
    visit.open()
    assert visit.page.input_value("#seed") == "31"
    # Another link opened in the same tab (only the fragment changes) fills its settings in.
    visit.page.evaluate("() => { location.hash = 'prompt=A%20bird&seed=5&steps=30'; }")
    for _ in range(100):
        if visit.page.input_value("#prompt") == "A bird":
            break
        visit.page.wait_for_timeout(20)
    assert visit.page.input_value("#prompt") == "A bird"
    assert visit.page.input_value("#seed") == "5" and visit.page.input_value("#steps") == "30"
    assert "The settings of a shared story are filled in" in visit.status()


def test_why_this_word_is_one_tab_stop_and_the_arrows_move_between_words(visit):
    visit.open()
    visit.page.check("#show-probabilities")
    visit.write(prompt="Tom", temperature=0.8, seed=3, steps=40)
    stops = visit.page.evaluate("() => [...document.querySelectorAll('#output .token')].map(s => s.tabIndex)")
    assert stops.count(0) == 1 and stops[0] == 0 and len(stops) > 10
    visit.page.focus("#output .token >> nth=0")
    visit.page.keyboard.press("ArrowRight")
    visit.page.keyboard.press("ArrowRight")
    focused = visit.page.evaluate("() => [...document.querySelectorAll('#output .token')].indexOf(document.activeElement)")
    assert focused == 2
    assert visit.page.is_visible("#why") and visit.text("why").count("%") == 6
    # The box is beside the word, on the screen.
    box = visit.page.eval_on_selector("#why", "e => e.getBoundingClientRect().toJSON()")
    word = visit.page.evaluate("() => document.activeElement.getBoundingClientRect().toJSON()")
    assert abs(box["top"] - word["bottom"]) < 12 or abs(box["bottom"] - word["top"]) < 12
    assert 0 <= box["top"] and box["bottom"] <= 800
    visit.page.keyboard.press("Escape")
    assert not visit.page.is_visible("#why")


def test_a_phone_s_word_box_closes_when_the_finger_goes_elsewhere(visit_with):
    phone = visit_with(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone.open()
    phone.page.check("#show-probabilities")
    phone.write(prompt="Tom", temperature=0.8, seed=3, steps=40)
    phone.page.tap("#output .token >> nth=3")
    assert phone.page.is_visible("#why")
    phone.page.tap("#copy")  # a button elsewhere: the box would cover the story as it scrolls
    assert not phone.page.is_visible("#why")

