"""The story writer in other pages: the module llama2np.js and the <llama2np-story> element,
checked against `llama2np generate`, in the site's embed.html and in a page of another folder
that imports them from a sub-path."""

import json

import pytest
from llama2np.tools.bench.hosts import serving
from support import run_cli

LOAD_TIMEOUT_MS = 90_000
pytestmark = pytest.mark.e2e


def cli(model_dir, *flags: str) -> str:
    result = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin", *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


# In the page: the module's story for these settings, prompt included, with how it ended.
WRITE = """async ([prompt, settings]) => {
    const { load } = await import(new URL("llama2np.js", document.baseURI).href);
    const writer = await load();
    const story = writer.generate(prompt, settings);
    const { promptText } = await story.started;
    let text = promptText;
    const tokens = [];
    for await (const piece of story) {
        text += piece.text;
        tokens.push(...(piece.tokens ?? []).map((t) => [t.text, t.p]));
    }
    return { text, tokens, finished: await story.finished };
}"""


def embed_page(visit_with, site_url):
    visit = visit_with(site_url + "embed.html")
    visit.page.goto(visit.url)
    visit.page.wait_for_selector("#api-write:not([disabled])", timeout=LOAD_TIMEOUT_MS)
    return visit


def element_story(page, selector: str) -> str:
    """The story of a <llama2np-story> once it is written (its data-state says so)."""
    page.wait_for_function(f"() => ['done', 'error'].includes(document.querySelector('{selector}').dataset.state)",
                           timeout=LOAD_TIMEOUT_MS)
    assert page.eval_on_selector(selector, "e => e.dataset.state") == "done"
    return page.eval_on_selector(selector, "e => e.shadowRoot.querySelector('.story').textContent")


def test_the_module_writes_the_command_line_s_stories(visit_with, site_url, model_dir):
    visit = embed_page(visit_with, site_url)
    for prompt, flags, settings in [
        ("Lily", ["-t", "0.8", "-s", "7", "-n", "70"], {"temperature": 0.8, "seed": 7, "steps": 70}),
        ("", ["-t", "0", "-n", "256"], {"temperature": 0, "steps": 256}),
    ]:
        expected = cli(model_dir, *flags, *(["-i", prompt] if prompt else []))
        written = visit.page.evaluate(WRITE, [prompt, settings])
        assert written["text"] + "\n" == expected
        assert written["finished"]["stopped"] is False and written["tokens"] == []


def test_the_module_gives_the_probabilities_of_generate_probs(visit_with, site_url, model_dir):
    flags = ["-t", "0.8", "-p", "0.9", "-s", "7", "-n", "70", "-i", "Tom saw a 🐸"]
    lines = [json.loads(line) for line in cli(model_dir, *flags, "--probs").splitlines()]
    visit = embed_page(visit_with, site_url)
    written = visit.page.evaluate(WRITE, ["Tom saw a 🐸", {"temperature": 0.8, "topp": 0.9, "seed": 7,
                                                         "steps": 70, "probabilities": True}])
    assert written["text"] + "\n" == cli(model_dir, *flags)
    assert [text for text, _ in written["tokens"]] == [line["text"] for line in lines]
    for (_, p), line in zip(written["tokens"], lines, strict=True):
        assert p == pytest.approx(line["p"], rel=1e-5, abs=1e-7)


def test_an_abort_signal_stops_the_story_at_once(visit_with, site_url, model_dir):
    whole = cli(model_dir, "-t", "1.0", "-s", "12", "-n", "0")  # seed 12 fills the context
    visit = embed_page(visit_with, site_url)
    result = visit.page.evaluate("""async () => {
        const { load } = await import(new URL("llama2np.js", document.baseURI).href);
        const writer = await load();
        const abort = new AbortController();
        const story = writer.generate("", { temperature: 1, seed: 12, steps: 0, signal: abort.signal });
        let text = "", aborted = 0;
        for await (const { text: piece } of story) {
            text += piece;
            if (!aborted && text.length > 40) { aborted = performance.now(); abort.abort(); }
        }
        const finished = await story.finished;
        return { text, ms: performance.now() - aborted, stopped: finished.stopped, n: finished.stats.generated_tokens };
    }""")
    print(f"abort: the story ended {result['ms']:.1f} ms after abort(), at {result['n']} tokens")
    assert result["stopped"] is True and whole.startswith(result["text"]) and len(result["text"]) < len(whole) - 100
    assert result["ms"] < 100
    # The writer goes on writing whole stories after it.
    again = visit.page.evaluate(WRITE, ["", {"temperature": 1, "seed": 12, "steps": 0}])
    assert again["text"] + "\n" == whole


def test_two_elements_share_one_worker_and_write_the_command_line_s_stories(visit_with, site_url,
                                                                            model_dir):
    visit = embed_page(visit_with, site_url)
    # embed.html's element, and a second one added beside it, styled by a custom property.
    visit.page.evaluate("""() => {
        const second = document.createElement('llama2np-story');
        second.id = 'second';
        second.setAttribute('prompt', 'A bird');
        second.setAttribute('seed', '3');
        second.setAttribute('temperature', '0.5');
        second.setAttribute('steps', '60');
        second.style.setProperty('--llama2np-color', 'rgb(1, 2, 3)');
        document.querySelector('main').append(second);
    }""")
    first = element_story(visit.page, "#element-story")
    second = element_story(visit.page, "#second")
    assert first + "\n" == cli(model_dir, "-t", "0.8", "-s", "42", "-n", "120", "-i", "Once upon a time")
    assert second + "\n" == cli(model_dir, "-t", "0.5", "-s", "3", "-n", "60", "-i", "A bird")
    color = visit.page.eval_on_selector("#second", "e => getComputedStyle(e.shadowRoot.querySelector('.story')).color")
    assert color == "rgb(1, 2, 3)"
    assert len(visit.page.workers) == 1  # the page's module and both elements: one Python


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 800)])
def test_embed_html_fits_the_screen_and_is_accessible(visit_with, site_url, results_dir, width, height):
    from test_page_screens import serious_accessibility_problems

    visit = visit_with(site_url + "embed.html", viewport={"width": width, "height": height})
    visit.page.goto(visit.url)
    element_story(visit.page, "#element-story")
    assert visit.page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    assert serious_accessibility_problems(visit.page) == []
    visit.page.screenshot(path=str(results_dir / f"embed-{width}x{height}.png"), full_page=True)


EMBEDDING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A page of another folder</title>
<link rel="icon" href="data:,">
<script type="module" src="/demo/llama2np.js"></script>
<script type="module" src="page.js"></script></head>
<body><llama2np-story id="story" prompt="The sun" temperature="0" steps="80"></llama2np-story>
<p id="module-story"></p></body></html>
"""
EMBEDDING_SCRIPT = """import { load } from "/demo/llama2np.js";
const writer = await load();
let text = "";
for await (const piece of writer.generate("The moon", { temperature: 0, steps: 80 })) text += piece.text;
document.getElementById("module-story").textContent = text;
document.body.dataset.done = "yes";
"""


def test_a_page_in_another_folder_embeds_the_site_from_a_sub_path(visit_with, built_site, tmp_path,
                                                                  model_dir):
    root = tmp_path / "root"
    (root / "other").mkdir(parents=True)
    (root / "demo").symlink_to(built_site, target_is_directory=True)
    (root / "other" / "page.html").write_text(EMBEDDING_PAGE, encoding="utf-8")
    (root / "other" / "page.js").write_text(EMBEDDING_SCRIPT, encoding="utf-8")
    with serving(root, "http.server") as port:
        visit = visit_with(f"http://127.0.0.1:{port}/other/page.html")
        visit.page.goto(visit.url)
        visit.page.wait_for_function("() => document.body.dataset.done === 'yes'", timeout=LOAD_TIMEOUT_MS)
        module_story = visit.text("module-story")
        story = element_story(visit.page, "#story")
    assert "The moon" + module_story + "\n" == cli(model_dir, "-t", "0", "-n", "80", "-i", "The moon")
    assert story + "\n" == cli(model_dir, "-t", "0", "-n", "80", "-i", "The sun")


def test_bad_requests_are_sentences_and_the_writer_goes_on(visit_with, site_url, model_dir):
    visit = embed_page(visit_with, site_url)
    visit.expected_errors = True  # the failed load below logs its 404
    result = visit.page.evaluate("""async () => {
        const { load } = await import(new URL("llama2np.js", document.baseURI).href);
        const writer = await load();
        const said = [];
        const attempts = [
            [{ toString() { return "Hi"; } }, {}], [null, {}], ["Once", { seed: "abc" }],
            ["Once", { temperature: NaN }], ["Once", { steps: Infinity }], ["Once", { topp: 2 }],
            ["Once", { seed: 1.5 }],
        ];
        for (const [prompt, settings] of attempts) {
            try {
                for await (const piece of writer.generate(prompt, { ...settings, steps: settings.steps ?? 10 })) {}
                said.push("written");
            } catch (error) { said.push(error.message); }
        }
        let text = "";
        for await (const { text: piece } of writer.generate("", { temperature: 0, steps: 256 })) text += piece;
        writer.close();
        const again = await load(); // a closed writer is not handed out again
        let more = "";
        for await (const { text: piece } of again.generate("", { temperature: 0, steps: 256 })) more += piece;
        let failed = "";
        try { await load({ model: "missing/manifest.json" }); } catch (error) { failed = error.message; }
        return { said, text, more, failed };
    }""")
    assert all(s != "written" and s.endswith(".") and "Python" not in s for s in result["said"]), result["said"]
    assert "must be text" in result["said"][0] and "Seed abc" in result["said"][2]
    golden = cli(model_dir, "-t", "0")
    assert result["text"] + "\n" == golden and result["more"] + "\n" == golden
    assert result["failed"]
    visit.page.wait_for_timeout(200)
    assert len(visit.page.workers) <= 2  # the closed and the failed writers' workers are gone
