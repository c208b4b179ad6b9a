"""What a visitor meets in the details: text direction, the probabilities of a story already
written, the shortcut from any field, and what Continue reports."""

import json

import pytest
from support import GOLDEN_T0, run_cli

pytestmark = pytest.mark.e2e


def cli(model_dir, *flags: str) -> str:
    result = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin", *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


# The first characters of the story's continuation on its first line, with where they are drawn.
CONTINUATION_LETTERS = """() => {
    const walker = document.createTreeWalker(document.querySelector('#output .continuation'), NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    const letters = [];
    for (let node = walker.nextNode(); node && letters.length < 12; node = walker.nextNode()) {
        for (let i = 0; i < node.length && letters.length < 12; i++) {
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const box = range.getBoundingClientRect();
            if (node.data[i].trim()) letters.push([node.data[i], box.left, box.top]);
        }
    }
    return letters;
}"""


def left_to_right(letters) -> bool:
    line = [x for _, x, top in letters if abs(top - letters[0][2]) < 2]
    return len(line) >= 4 and line == sorted(line)


def test_a_direction_override_in_the_start_does_not_mirror_the_story(visit, model_dir):
    visit.open()
    story = visit.write(prompt="Tom ran\u202e", temperature=0, steps=60)
    assert story + "\n" == cli(model_dir, "-t", "0", "-n", "60", "-i", "Tom ran\u202e")
    letters = visit.page.evaluate(CONTINUATION_LETTERS)
    assert left_to_right(letters), letters


def test_a_right_to_left_start_is_right_aligned_and_the_story_keeps_its_direction(visit):
    visit.open()
    visit.write(prompt="قطة صغيرة", temperature=0, steps=60)
    assert visit.page.eval_on_selector("#output", "e => getComputedStyle(e).direction") == "rtl"
    assert visit.page.eval_on_selector("#prompt", "e => getComputedStyle(e).direction") == "rtl"
    boxes = visit.page.evaluate("""() => ['#output', '#output .prompt'].map((s) =>
        document.querySelector(s).getBoundingClientRect().right)""")
    assert boxes[0] - boxes[1] < 40  # the start sits at the right, where Arabic begins
    assert left_to_right(visit.page.evaluate(CONTINUATION_LETTERS))


def test_why_this_word_after_a_story_explains_it_as_it_stands(visit, model_dir):
    flags = ["-t", "0.8", "-p", "0.9", "-s", "7", "-n", "70", "-i", "Tom saw a 🐸"]
    lines = [json.loads(line) for line in cli(model_dir, *flags, "--probs").splitlines()]
    visit.open()
    story = visit.write(prompt="Tom saw a 🐸", temperature=0.8, topp=0.9, seed=7, steps=70)
    stats = visit.page.evaluate("() => window.llama2np.lastStats")
    assert visit.page.evaluate("() => document.querySelectorAll('#output .token').length") == 0
    visit.page.check("#show-probabilities")
    visit.page.wait_for_selector("#output.explained .token")
    tokens = visit.page.evaluate("""() => [...document.querySelectorAll('#output .token')]
        .map(s => [s.textContent, Number(s.dataset.p)])""")
    assert [text for text, _ in tokens] == [line["text"] for line in lines]
    for (_, p), line in zip(tokens, lines, strict=True):  # worked out by the float32 engine
        assert p == pytest.approx(line["p"], abs=1e-4)
    # Nothing was written again: the same story, the same run.
    assert visit.output() == story and visit.page.evaluate("() => window.llama2np.lastStats") == stats
    visit.page.hover("#output .token >> nth=2")
    assert visit.text("why").count("%") == 6
    # The story's ending is still told, with Continue still on offer.
    status = visit.status()
    assert "to see why" in status and "Cut off at Length 70" in status and "Continue writes on" in status


def test_ctrl_enter_writes_from_a_slider(visit, golden):
    visit.open()
    visit.set(temperature=0, steps=256)
    visit.page.focus("#temperature")
    visit.page.keyboard.press("Control+Enter")
    visit.page.wait_for_function("() => document.body.dataset.ended")
    visit.wait_until_written()
    assert visit.output() == golden(GOLDEN_T0)


def test_continue_reports_what_it_wrote(visit):
    visit.open()
    visit.write(temperature=1.0, seed=12, steps=40)  # seed 12 writes the whole context
    assert visit.status().startswith("Wrote 40 tokens")
    visit.page.click("#continue")
    visit.wait_until_written()
    total = visit.page.evaluate("() => window.llama2np.lastStats.generated_tokens")
    assert total == 512 and visit.status().startswith(f"Wrote {total - 40} more tokens"), visit.status()


def test_the_first_tab_after_loading_reaches_the_start_of_the_story(visit):
    visit.open()
    visit.page.keyboard.press("Tab")
    assert visit.page.evaluate("() => document.activeElement.id") == "prompt"
