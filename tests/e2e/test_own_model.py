"""The visitor's own model in the page: checkpoint and tokenizer files opened with "Open model
files" (or dropped on the page) write the story `llama2np generate` writes from the same files,
in every checkpoint version including Q8_0; files that cannot be used are answered with a sentence
and the page keeps its model. Q8_0 also works built into a site."""

import base64
import time
from pathlib import Path

import pytest
from llama2np.runtime.checkpoint import (
    EXPORT_PREFIX,
    HEADER_BYTES,
    MAGIC,
    Config,
    parameter_count,
    read_header,
)
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.synthetic import synthetic_checkpoint, synthetic_tokenizer_bytes
from llama2np.tools.site.serve import start_server
from support import GOLDEN_T0, run_cli

pytestmark = pytest.mark.e2e

# The 32,000 pieces of Llama 2's vocabulary, at a small width so the files stay a few MB.
WIDE = Config(dim=64, hidden_dim=192, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=32000,
              seq_len=128)
# Small enough to hand to the page through evaluate, for the drop.
TINY = Config(dim=32, hidden_dim=64, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=512, seq_len=64)
OPEN_TIMEOUT = 60
MB = 2**20


def write_model(folder: Path, config: Config, version: int) -> tuple[Path, Path]:
    checkpoint = folder / f"own-v{version}-{config.dim}.bin"
    checkpoint.write_bytes(write_checkpoint(synthetic_checkpoint(config), version))
    tokenizer = folder / f"tok{config.vocab_size}.bin"
    tokenizer.write_bytes(synthetic_tokenizer_bytes(config.vocab_size))
    return checkpoint, tokenizer


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("own-model")


def cli_story(checkpoint: Path, tokenizer: Path, *flags: str) -> str:
    result = run_cli("generate", checkpoint, "-z", tokenizer, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    return result.stdout[:-1]


def wait_until_opened(visit) -> None:
    """Until the page has read the files (or refused them) and is ready again."""
    deadline = time.monotonic() + OPEN_TIMEOUT
    while visit.state() != "ready" or visit.status().startswith("Reading"):
        assert visit.state() != "error", visit.status()
        assert time.monotonic() < deadline, f"the files were not read: {visit.status()!r}"
        time.sleep(0.02)


def open_files(visit, *paths: Path) -> None:
    visit.page.set_input_files("#open-model", [str(p) for p in paths])
    wait_until_opened(visit)


def error_shown(visit) -> str:
    assert visit.page.evaluate("() => document.getElementById('status').dataset.kind") == "error"
    return visit.status()


def assert_writes_like_the_cli(visit, checkpoint: Path, tokenizer: Path) -> None:
    assert visit.write(temperature=0, steps=60) == cli_story(checkpoint, tokenizer, "-t", "0", "-n", "60")
    seeded = ["-t", "1.0", "-p", "0.9", "-s", "7", "-n", "100", "-i", "Once upon a time"]
    page = visit.write(prompt="Once upon a time", temperature=1.0, topp=0.9, seed=7, steps=100)
    assert page == cli_story(checkpoint, tokenizer, *seeded)


def assert_memory_bound(visit, config: Config) -> None:
    """The WebAssembly heap grew by at most 1.5x the float32 weights + 100 MB."""
    heap = visit.page.evaluate("() => window.llama2np.openedHeap")
    float32 = 4 * parameter_count(synthetic_checkpoint(config))
    grown = heap["after"] - heap["before"]
    print(f"heap grew {grown / MB:.1f} MiB for {float32 / MB:.1f} MiB of float32 weights")
    assert grown <= 1.5 * float32 + 100 * MB


@pytest.mark.parametrize("version", [0, 1, 2])
def test_own_model_writes_the_command_line_s_story(visit, files, version):
    checkpoint, tokenizer = write_model(files, WIDE, version)
    visit.open()
    open_files(visit, tokenizer, checkpoint)  # in any order
    assert visit.status().startswith(f"{checkpoint.name} is ready"), visit.status()
    card = visit.text("model")
    millions = parameter_count(synthetic_checkpoint(WIDE)) / 1e6
    assert card == f"{checkpoint.name}: {millions:.1f}M parameters, {(checkpoint.stat().st_size + tokenizer.stat().st_size) / 1e6:.1f} MB, context of 128 tokens."
    assert visit.page.evaluate("() => document.getElementById('steps').max") == "128"
    # The footer's words stay true: no TinyStories credit, and no promise to keep the files.
    assert visit.text("footer-model") == checkpoint.name and visit.page.is_hidden("#footer-data")
    assert "your own model's files are not" in visit.text("offline")
    assert_writes_like_the_cli(visit, checkpoint, tokenizer)
    assert_memory_bound(visit, WIDE)


def test_a_15m_shaped_q8_0_model_stays_within_the_memory_bound(visit, files):
    from llama2np.tools.models.synthetic import SHAPES

    checkpoint, tokenizer = write_model(files, SHAPES["15M"], 2)
    visit.open()
    started = time.monotonic()
    open_files(visit, checkpoint, tokenizer)
    print(f"15M Q8_0 ({checkpoint.stat().st_size / MB:.1f} MiB) opened in {time.monotonic() - started:.1f} s")
    assert visit.status().startswith(f"{checkpoint.name} is ready"), visit.status()
    assert_memory_bound(visit, SHAPES["15M"])
    story = visit.write(temperature=0, steps=40)
    assert story == cli_story(checkpoint, tokenizer, "-t", "0", "-n", "40")
    print(visit.status())


def test_dropped_files_are_opened(visit, files):
    checkpoint, tokenizer = write_model(files, TINY, 1)
    visit.open()
    visit.page.evaluate(
        """([files]) => {
            const transfer = new DataTransfer();
            for (const [name, data] of files) {
              const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
              transfer.items.add(new File([bytes], name));
            }
            document.getElementById('output').dispatchEvent(
              new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [[[p.name, base64.b64encode(p.read_bytes()).decode()] for p in (checkpoint, tokenizer)]],
    )
    wait_until_opened(visit)
    assert visit.text("model").startswith(f"{checkpoint.name}:"), visit.status()
    assert visit.write(temperature=0, steps=40) == cli_story(checkpoint, tokenizer, "-t", "0", "-n", "40")


def still_the_demo(visit, golden) -> None:
    assert visit.text("model").startswith("stories260K"), visit.text("model")
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def test_damaged_files_get_a_sentence_and_the_page_keeps_its_model(visit, files, golden):
    checkpoint, tokenizer = write_model(files, TINY, 1)
    data = checkpoint.read_bytes()
    truncated = files / "truncated.bin"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    wrong_version = files / "version9.bin"
    wrong_version.write_bytes(data[:4] + (9).to_bytes(4, "little") + data[8:])
    garbage = files / "garbage.bin"  # no magic: a legacy header of nonsense
    garbage.write_bytes(b"\xff\xff\xff\x7f" * 7 + data[28:])
    visit.open()
    expected = {
        truncated: ["truncated.bin", "version 1"],
        wrong_version: ["version9.bin", "version 9"],
        garbage: ["garbage.bin"],
    }
    for path, words in expected.items():
        open_files(visit, path, tokenizer)
        message = error_shown(visit)
        assert all(word in message for word in words), message
        assert "Traceback" not in message and message.endswith("."), message
    open_files(visit, checkpoint)
    assert "two files" in error_shown(visit)
    wrong_tokenizer = files / "tok-short.bin"  # a tokenizer with fewer pieces than the model
    wrong_tokenizer.write_bytes(synthetic_tokenizer_bytes(300))
    open_files(visit, checkpoint, wrong_tokenizer)
    assert "tok-short.bin" in error_shown(visit)
    still_the_demo(visit, golden)


def test_a_truncated_checkpoint_beside_a_larger_tokenizer_is_named_as_truncated(visit, files,
                                                                                model_dir):
    cut = files / "cut-stories260K.bin"
    cut.write_bytes((model_dir / "stories260K.bin").read_bytes()[:200_000])
    tokenizer = files / "tokenizer32k.bin"  # larger than what is left of the checkpoint
    tokenizer.write_bytes(synthetic_tokenizer_bytes(32000))
    assert tokenizer.stat().st_size > cut.stat().st_size
    visit.open()
    for pair in [(cut, tokenizer), (tokenizer, cut)]:
        open_files(visit, *pair)
        message = error_shown(visit)
        assert message.startswith("cut-stories260K.bin is truncated"), message
    text = files / "notes.txt"
    text.write_text("Once upon a time, a note. " * 2000)
    open_files(visit, text, model_dir / "tok512.bin")
    assert error_shown(visit).startswith("notes.txt "), error_shown(visit)


def test_an_oversized_file_is_refused_before_it_is_read(visit, files, golden):
    """Files too large for the page, or whose size their header contradicts, are refused from
    their first bytes; sparse files make them gigabytes on paper and nothing on disk."""
    checkpoint, tokenizer = write_model(files, TINY, 1)
    big = Config(dim=2048, hidden_dim=5632, n_layers=28, n_heads=32, n_kv_heads=4,
                 vocab_size=32000, seq_len=2048)  # 1.3B parameters: 5.2 GB of float32
    header = EXPORT_PREFIX.pack(MAGIC, 1, *vars(big).values(), 1).ljust(HEADER_BYTES, b"\0")
    huge = files / "huge.bin"
    with huge.open("wb") as out:
        out.write(header)
        out.truncate(read_header(header).size)
    visit.open()
    open_files(visit, huge, tokenizer)
    message = error_shown(visit)
    assert "huge.bin needs about" in message and "WebAssembly" in message, message
    lying = files / "lying.bin"  # the tiny model's header on 5 GB
    with lying.open("wb") as out:
        out.write(checkpoint.read_bytes()[:HEADER_BYTES])
        out.truncate(5 * 10**9)
    open_files(visit, lying, tokenizer)
    assert "lying.bin has 4,999,892,864 bytes more than" in error_shown(visit)
    huge_tokenizer = files / "huge-tok.bin"
    with huge_tokenizer.open("wb") as out:
        out.truncate(100 * MB)
    open_files(visit, checkpoint, huge_tokenizer)
    assert "too large for a llama2.c tokenizer" in error_shown(visit)
    still_the_demo(visit, golden)


def test_a_q8_0_model_built_into_a_site(visit_with, files, tmp_path):
    from llama2np.tools.site.build import build_site

    checkpoint, tokenizer = write_model(files, WIDE, 2)
    site = build_site(tmp_path / "dist", checkpoint, tokenizer, log=lambda *_: None)
    server, url = start_server(site)
    try:
        visit = visit_with(url)
        visit.open()
        millions = parameter_count(synthetic_checkpoint(WIDE)) / 1e6
        assert visit.text("model").startswith(f"{checkpoint.stem}: {millions:.1f}M parameters,")
        assert visit.page.evaluate("() => window.llama2np.model.version") == 2
        assert_writes_like_the_cli(visit, checkpoint, tokenizer)
    finally:
        server.shutdown()
