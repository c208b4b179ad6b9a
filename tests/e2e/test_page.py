"""The demo in a real Chromium: run.c's stories, the controls, Stop, and failures shown as
sentences."""

import re

import pytest
from support import GOLDEN_T0, GOLDEN_T1, run_cli

pytestmark = pytest.mark.e2e


def shown(printed: str) -> str:
    """What the page shows of a story the command printed: all but the final newline."""
    assert printed.endswith("\n")
    return printed[:-1]


def test_greedy_story_is_run_c_s(visit, golden):
    visit.open()
    assert "stories260K" in visit.text("model")
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
    assert re.match(r"Wrote 256 tokens at [\d,]+ tokens/s, the first after \d+ ms\. ", visit.status())


def test_seeded_story_is_run_c_s(visit, golden):
    visit.open()
    text = visit.write(temperature=1.0, topp=0.9, seed=133742, steps=256)
    assert text == golden(GOLDEN_T1)


def test_stories_after_the_silent_warm_up_are_run_c_s(visit, golden):
    visit.open()
    visit.page.wait_for_timeout(1000)  # the worker writes a greedy story of its own meanwhile
    assert visit.output() == ""
    assert visit.write(temperature=1.0, topp=0.9, seed=133742, steps=256) == golden(GOLDEN_T1)
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def test_typed_prompt_gives_the_command_line_s_story(visit, model_dir):
    prompt = "Lily saw a café 🐱 and"
    visit.open()
    text = visit.write(prompt=prompt, temperature=0.8, topp=0.9, seed=7, steps=120)
    cli = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin",
                  "-t", "0.8", "-p", "0.9", "-s", "7", "-n", "120", "-i", prompt)
    assert cli.returncode == 0, cli.stderr
    assert text == shown(cli.stdout)
    # The prompt is set apart from what the model wrote.
    shown_prompt = visit.page.evaluate("() => document.querySelector('#output .prompt').textContent")
    assert shown_prompt == prompt


def test_temperature_slider_changes_the_story(visit):
    visit.open()
    visit.page.fill("#temperature", "0")
    assert visit.text("temperature-value") == "0 (greedy)"
    visit.page.focus("#temperature")
    visit.page.keyboard.press("ArrowRight")
    assert visit.text("temperature-value") == "0.05"
    greedy = [visit.write(temperature=0, steps=60) for _ in range(2)]
    assert greedy[0] == greedy[1]
    sampled = [visit.write(temperature=1.0, seed=seed, steps=60) for seed in (1, 2)]
    assert sampled[0] != sampled[1]
    assert greedy[0] not in sampled


def test_stop_ends_a_run_early_and_the_next_run_works(visit, golden, model_dir, results_dir):
    # Seed 12 writes through the whole context without a BOS, about a sixth of a second of work
    # here: Stop goes as soon as the first tokens show.
    flags = ["-t", "1.0", "-p", "0.9", "-s", "12", "-n", "512"]
    full = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin", *flags)
    assert full.returncode == 0, full.stderr
    full_story, full_tokens = shown(full.stdout), int(re.search(r"\((\d+) tokens", full.stderr)[1])
    visit.open()
    visit.set(temperature=1.0, seed=12, steps=512)
    visit.generate_and_stop()  # back to ready, within the bound of a whole run
    ended = visit.page.evaluate("() => performance.now() - window.stopPressed")
    print(f"Stop: ready within {ended:.0f} ms of the click")
    visit.page.screenshot(path=str(results_dir / "mid-story.png"))
    assert visit.page.evaluate("() => document.body.dataset.ended") == "stopped"
    assert "Stopped; Continue writes on." in visit.status()
    # What was written is the start of the full story, cut short.
    story = visit.output()
    assert full_story.startswith(story) and len(story) < len(full_story)
    written = visit.page.evaluate("() => window.llama2np.lastStats.generated_tokens")
    assert 0 < written < full_tokens
    assert visit.status().startswith(f"Wrote {written} tokens")
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def test_two_quick_clicks_give_one_clean_story(visit, golden):
    visit.open()
    visit.set(temperature=0, steps=256)
    visit.page.evaluate("() => { const b = document.getElementById('generate'); b.click(); b.click(); }")
    visit.wait_until_written()
    assert visit.output() == golden(GOLDEN_T0)


def test_keyboard_shortcut_generates(visit):
    visit.open()
    visit.set(prompt="The dog", temperature=0, steps=20)
    visit.page.focus("#prompt")
    visit.page.keyboard.press("Control+Enter")
    visit.wait_until_written()
    assert visit.output().startswith("The dog")


def test_a_prompt_longer_than_the_context_gets_a_message_and_stays(visit):
    visit.open()
    prompt = "Tom went to the park and played with his red ball. " * 60
    visit.set(prompt=prompt, temperature=0, steps=512)
    visit.page.click("#generate")
    visit.wait_until_written()
    assert "context is 512 tokens" in visit.status()
    assert "Traceback" not in visit.status()
    assert visit.page.input_value("#prompt") == prompt


def test_bad_length_gets_a_message(visit):
    visit.open()
    for steps in ("-1", "513", "2.5", ""):
        visit.page.fill("#steps", steps)
        visit.page.click("#generate")
        assert visit.state() == "ready"
        assert visit.status() == "Length must be a whole number from 0 (the whole context) to 512."


def test_a_missing_model_file_is_an_error_with_retry(visit):
    visit.expected_errors = True  # the browser logs the failed request itself
    context = visit.page.context
    context.route("**/model.bin", lambda route: route.fulfill(status=404, body="gone"))
    visit.open(state="error")
    assert "model.bin" in visit.status() and "404" in visit.status()
    assert "press Retry" in visit.status() and "Traceback" not in visit.status()
    assert visit.text("model") == "The model could not be loaded."
    context.unroute("**/model.bin")
    visit.page.click("#retry")
    from llama2np.tools.bench.chromium import wait_for_state

    assert wait_for_state(visit.page, ("ready", "error"), 90) == "ready"


def test_a_corrupted_model_file_is_refused(visit, model_dir):
    visit.expected_errors = True
    data = bytearray((model_dir / "stories260K.bin").read_bytes())
    data[5000] ^= 0xFF
    visit.page.context.route("**/model.bin",
                             lambda route: route.fulfill(status=200, body=bytes(data)))
    visit.open(state="error")
    assert "The file model.bin arrived damaged" in visit.status()


def test_a_first_visit_starts_python_afresh_and_keeps_a_snapshot_for_the_next(visit, golden):
    visit.open()
    assert visit.page.evaluate("() => window.llama2np.fromSnapshot") is False
    visit.page.wait_for_timeout(500)  # the snapshot is stored in the background
    visit.open()
    assert visit.page.evaluate("() => window.llama2np.fromSnapshot") is True
    assert visit.write(temperature=1.0, topp=0.9, seed=133742, steps=256) == golden(GOLDEN_T1)


def test_a_repeat_visit_after_the_browser_cache_was_emptied_still_loads(visit, golden):
    visit.open()  # the page now remembers that this browser holds the runtime
    visit.page.wait_for_timeout(500)
    visit.page.context.new_cdp_session(visit.page).send("Network.clearBrowserCache")
    visit.open()
    assert visit.page.evaluate("() => window.llama2np.fromSnapshot") is True
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def test_a_damaged_stored_snapshot_means_a_fresh_start(visit, golden):
    visit.open()
    visit.page.wait_for_timeout(500)  # the verified snapshot is stored in the background
    damaged = visit.page.evaluate("""async () => {
        const cache = await caches.open('llama2np-python-snapshot');
        const keys = await cache.keys();
        for (const key of keys) {
            const stored = await cache.match(key);
            const bytes = new Uint8Array(await stored.arrayBuffer());
            bytes[bytes.length >> 1] ^= 0xff;
            await cache.put(key, new Response(bytes, { headers: stored.headers }));
        }
        return keys.length;
    }""")
    assert damaged == 1
    visit.open()
    assert visit.page.evaluate("() => window.llama2np.fromSnapshot") is False
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
