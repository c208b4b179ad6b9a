"""Several models in one site (`llama2np build --model ...`) and large models loading well: the
picker lists the site's models and switches in the same Python, and a model the browser kept
is used again without a download, after its sha256 is checked."""

import json
import time
from pathlib import Path

import pytest
from llama2np.runtime.checkpoint import Config
from llama2np.tools.bench.chromium import wait_for_state
from llama2np.tools.models.synthetic import synthetic_tokenizer_bytes, write_synthetic_checkpoint
from llama2np.tools.site.serve import SiteHandler, start_server
from support import GOLDEN_T0, run_cli

pytestmark = pytest.mark.e2e

# A small model with Llama 2's vocabulary size: the shape of a larger model's files and
# tokenizer at a fraction of their size.
SMALL_32K = Config(dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=32000,
                   seq_len=128)
SEEDED = {"temperature": 1.0, "topp": 0.9, "seed": 7, "steps": 60}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("small32k")
    checkpoint = write_synthetic_checkpoint(folder / "small32k.bin", SMALL_32K)
    tokenizer = folder / "tok32000.bin"
    tokenizer.write_bytes(synthetic_tokenizer_bytes(SMALL_32K.vocab_size))
    return checkpoint, tokenizer


@pytest.fixture(scope="module")
def two_model_site(tmp_path_factory, model_dir, small_model) -> Path:
    """The only extra site the tests build: stories260K (the default) and the small model."""
    from llama2np.tools.site.build import build_site

    return build_site(tmp_path_factory.mktemp("two") / "dist", model_dir / "stories260K.bin",
                      model_dir / "tok512.bin", models=[small_model], log=lambda *_: None)


@pytest.fixture
def served(two_model_site):
    server, url = start_server(two_model_site)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def requested(monkeypatch) -> list[str]:
    """The paths every server of this test was asked for (responses sent with a body)."""
    paths: list[str] = []
    send_head = SiteHandler.send_head

    def recording(handler: SiteHandler) -> object:
        body = send_head(handler)
        if body is not None:
            paths.append(handler.path)
        return body

    monkeypatch.setattr(SiteHandler, "send_head", recording)
    return paths


def choose(visit, index: int) -> None:
    visit.page.select_option("#model-select", str(index))
    visit.page.wait_for_timeout(50)  # the change handler runs; then the load is polled
    deadline = time.monotonic() + 90
    while visit.state() != "ready":
        assert visit.state() != "error", visit.status()
        assert time.monotonic() < deadline, "the other model did not load"
        time.sleep(0.02)


def generate_cli(checkpoint: Path, tokenizer: Path) -> str:
    result = run_cli("generate", checkpoint, "-z", tokenizer, "-t", str(SEEDED["temperature"]),
                     "-p", str(SEEDED["topp"]), "-s", str(SEEDED["seed"]), "-n", str(SEEDED["steps"]))
    assert result.returncode == 0, result.stderr
    return result.stdout[:-1]


def test_the_site_lists_its_models_and_switches_between_them_in_one_python(
        visit_with, served, two_model_site, small_model, golden):
    listed = json.loads(next(two_model_site.glob("models-*/models.json")).read_text())["models"]
    assert [m["name"] for m in listed] == ["stories260K", "small32k"]
    visit = visit_with(served)
    visit.open()
    options = visit.page.evaluate("""() => [...document.querySelectorAll('#model-select option')]
        .map(o => o.textContent)""")
    assert len(options) == 2
    assert options[0].startswith("stories260K · 260K parameters · ") and options[0].endswith(" MB")
    megabytes = f"{listed[1]['bytes'] / 1e6:.1f} MB"
    assert options[1].startswith("small32k · ") and options[1].endswith(megabytes)
    assert f"{listed[1]['parameters'] / 1e6:.1f}M parameters" in options[1]  # 1,045,xxx
    assert visit.page.input_value("#model-select") == "0"
    assert visit.page.evaluate("() => window.llama2np.model.name") == "stories260K"

    python = visit.page.evaluate("() => window.llama2np.readyMs")
    choose(visit, 1)
    assert visit.page.evaluate("() => window.llama2np.model.config.vocab_size") == 32000
    assert visit.page.evaluate("() => window.llama2np.model.name") == "small32k"
    assert visit.text("model").startswith("small32k: ")
    assert f", {megabytes}, " in visit.text("model")  # the option's size, the model line's size
    assert visit.write(**SEEDED) == generate_cli(*small_model)
    # The same Python read it: the snapshot-restored interpreter was not started again.
    assert visit.page.evaluate("() => window.llama2np.loadStages.python") is None
    assert visit.page.evaluate("() => window.llama2np.readyMs") > python

    visit.page.click("#share")
    link = visit.page.get_attribute("#share", "data-url")
    assert "model=small32k" in link

    choose(visit, 0)
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)

    # The shared link opens the page with the model it names.
    shared = visit_with(served)
    shared.page.goto(link)
    assert wait_for_state(shared.page, ("ready", "error"), 90) == "ready", shared.status()
    assert shared.page.input_value("#model-select") == "1"
    assert shared.page.evaluate("() => window.llama2np.model.name") == "small32k"


def test_a_site_with_one_model_has_no_picker(visit):
    visit.open()
    assert visit.page.query_selector("#model-select") is None


def kept_offline(visit) -> None:
    for _ in range(200):
        if visit.page.evaluate("() => document.body.dataset.offline") == "ready":
            return
        visit.page.wait_for_timeout(50)
    raise AssertionError("the service worker did not keep the site")


def test_a_kept_model_is_not_downloaded_again_and_a_damaged_one_is(visit_with, served, requested,
                                                                    golden):
    checkpoint = [path for path in requested if path.endswith("model.bin")]
    visit = visit_with(served)
    visit.open()
    kept_offline(visit)
    first = len([p for p in requested if p.endswith("model.bin")])
    assert first >= 1

    visit.open()  # a repeat visit: the model comes from the browser, checked by its sha256
    checkpoint = [p for p in requested if p.endswith("model.bin")]
    assert len(checkpoint) == first

    # The kept copy is damaged (same size, one byte changed): detected, downloaded again, and
    # the good copy replaces it.
    damaged = visit.page.evaluate("""async () => {
        const store = await caches.open("llama2np-offline");
        for (const request of await store.keys()) {
            if (!request.url.endsWith("/model.bin")) continue;
            const bytes = new Uint8Array(await (await store.match(request)).arrayBuffer());
            bytes[bytes.length - 5] ^= 0xff;
            await store.put(request, new Response(bytes));
            return request.url;
        }
        return null;
    }""")
    assert damaged, "the model was not kept in Cache Storage"
    visit.open()
    assert len([p for p in requested if p.endswith("model.bin")]) == first + 1
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
    visit.open()
    assert len([p for p in requested if p.endswith("model.bin")]) == first + 1


def test_a_model_the_picker_cannot_fetch_is_a_sentence_and_the_one_before_stays(visit_with, served,
                                                                                 two_model_site, golden):
    visit = visit_with(served)
    visit.expected_errors = True  # the browser logs the failed request itself
    context = visit.page.context
    listed = json.loads(next(two_model_site.glob("models-*/models.json")).read_text())["models"]
    small = f"**/{listed[1]['manifest'].split('/')[0]}/model.bin"  # the small model's checkpoint
    context.route(small, lambda route: route.fulfill(status=404, body="gone"))
    visit.open()
    visit.page.select_option("#model-select", "1")
    deadline = time.monotonic() + 60
    while "model.bin" not in visit.status():
        assert time.monotonic() < deadline, visit.status()
        time.sleep(0.02)
    assert "404" in visit.status() and "Traceback" not in visit.status()
    assert visit.state() == "ready"
    assert visit.page.input_value("#model-select") == "0"
    assert visit.page.evaluate("() => window.llama2np.model.name") == "stories260K"
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
    context.unroute(small)
    choose(visit, 1)  # and once the file is there, it loads
    assert visit.page.evaluate("() => window.llama2np.model.name") == "small32k"
