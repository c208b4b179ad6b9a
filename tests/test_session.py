"""The browser worker's Python side, run on CPython: same stories, errors as values."""

import pytest
from llama2np.runtime.checkpoint import Config
from llama2np.runtime.errors import Llama2npError
from llama2np.runtime.session import Session
from llama2np.runtime.tokenizer import Tokenizer
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.synthetic import synthetic_checkpoint
from support import GOLDEN_T1


def make_session(model_dir) -> Session:
    return Session(memoryview((model_dir / "stories260K.bin").read_bytes()),
                   (model_dir / "tok512.bin").read_bytes(), "stories260K.bin", "tok512.bin")


def test_sliced_story_is_run_c_s(model_dir, golden):
    session = make_session(model_dir)
    assert session.info()["config"]["seq_len"] == 512
    assert session.info()["parameters"] == 260_032  # as `llama2np validate` counts them
    assert session.start(prompt="", temperature=1.0, topp=0.9, seed=133742, steps=256) == {"prompt_text": "", "seed": 133742, "steps": 256}
    pieces = []
    while not session.done:
        pieces.append(session.advance(0.001))
    assert "".join(pieces) == golden(GOLDEN_T1)
    assert session.stats()["generated_tokens"] == 256  # run.c: one token per position


def test_bad_requests_come_back_as_sentences(model_dir):
    session = make_session(model_dir)
    assert "context is 512 tokens" in session.start(prompt="word " * 600, temperature=0.0, topp=0.9, seed=1, steps=512)["error"]
    assert "Temperature -1.0 is out of range" in session.start(prompt="", temperature=-1.0, topp=0.9, seed=1, steps=10)["error"]
    assert session.done and session.advance(0.01) == ""


def test_bench_measures_every_engine(model_dir):
    results = make_session(model_dir).bench(steps=8, prompt_tokens=4, repeats=1)
    assert set(results) == {"llama2np, plain", "llama2np, float32", "straightforward port"}
    assert all(r["decode_tokens_per_second"] > 0 for r in results.values())


def test_a_clock_seed_and_a_whole_context_length_are_reported(model_dir):
    started = make_session(model_dir).start(prompt="", temperature=1.0, topp=0.9, seed=0, steps=0)
    assert started["seed"] > 1_600_000_000 and started["steps"] == 512


def test_continue_and_probabilities_through_the_session(model_dir):
    session = make_session(model_dir)
    session.start(prompt="", temperature=1.0, topp=0.9, seed=12, steps=0, explain=True)
    longer = "".join(iter(lambda: session.advance(0.01), ""))
    session.start(prompt="", temperature=1.0, topp=0.9, seed=12, steps=30, explain=True)
    text = "".join(iter(lambda: session.advance(0.01), ""))
    assert session.ending() == {"ended": "length", "can_continue": True}
    assert len(session.explanations()) == 30 and session.explanations() == []
    assert session.extend(0) == {"steps": 512, "taken_back": 0}
    text += "".join(iter(lambda: session.advance(0.01), ""))
    assert text == longer and len(session.explanations()) == len(session.story.tokens) - 30
    assert "fills the model's context of 512 tokens" in session.extend(0)["error"]


def test_prompt_errors_use_the_page_s_words(model_dir):
    session = make_session(model_dir)
    message = session.start(prompt="a b c d e f g", temperature=0.0, topp=0.9, seed=1, steps=4)["error"]
    assert message == ("The start of the story is 7 tokens long, which fills the whole Length of "
                       "4 (Length counts its tokens too); raise Length (0 is the whole context) "
                       "or shorten the start.")
    message = session.start(prompt="word " * 600, temperature=0.0, topp=0.9, seed=1, steps=0)["error"]
    assert message == ("The start of the story is 1801 tokens long, but the model's context is "
                       "512 tokens; shorten it.")

    # A character the tokenizer cannot spell is the runtime's own sentence.
    config = Config(dim=8, hidden_dim=16, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=7,
                    seq_len=16)
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n", b"a", b"b", b" ", b"ab"]
    tokenizer = Tokenizer(pieces, [0.0] * 7, max(map(len, pieces))).to_bytes()
    small = Session(write_checkpoint(synthetic_checkpoint(config), 1), tokenizer)
    assert "can neither find nor spell" in small.start(prompt="a~", temperature=0.0, topp=0.9, seed=1, steps=8)["error"]
    assert session.start(prompt="", temperature=1.0, topp=0.9, seed=1, steps=8)["prompt_text"] == ""
    while not session.done:
        session.advance(0.01)
    assert session.extend(4)["error"].startswith("The story already has")


def test_a_broken_file_is_a_sentence_naming_it(model_dir):
    data = (model_dir / "stories260K.bin").read_bytes()
    with pytest.raises(Llama2npError, match=r"^mine\.bin is truncated"):
        Session(data[:1000], (model_dir / "tok512.bin").read_bytes(), "mine.bin", "tok512.bin")


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_story_written_without_probabilities_is_explained_afterwards(model_dir, temperature):
    session = make_session(model_dir)
    settings = dict(prompt="Lily saw", temperature=temperature, topp=0.9, seed=7, steps=60)
    session.start(**settings, explain=True)
    text = "".join(iter(lambda: session.advance(0.01), ""))
    recorded = session.explanations()
    session.start(**settings)
    assert "".join(iter(lambda: session.advance(0.01), "")) == text
    afterwards = session.explain_story()["tokens"]
    assert [t["token"] for t in afterwards] == [t["token"] for t in recorded]
    assert [t["text"] for t in afterwards] == [t["text"] for t in recorded]
    for late, live in zip(afterwards, recorded, strict=True):  # the float32 engine's pass
        assert late["p"] == pytest.approx(live["p"], abs=1e-4)
        assert [a["text"] for a in late["top"][:2]] == [a["text"] for a in live["top"][:2]] \
            or late["top"][1]["p"] == pytest.approx(late["top"][2]["p"], abs=1e-4)
    # The pass leaves the story's own model alone: it continues as a longer Length writes it.
    session.start(**{**settings, "steps": 0})
    longer = "".join(iter(lambda: session.advance(0.01), ""))
    session.start(**settings)
    "".join(iter(lambda: session.advance(0.01), ""))
    session.explain_story()
    session.extend(0)
    assert text + "".join(iter(lambda: session.advance(0.01), "")) == longer


def test_explaining_needs_a_story(model_dir):
    assert "write one first" in make_session(model_dir).explain_story()["error"]


def test_a_story_that_cannot_begin_leaves_the_last_one_explainable(model_dir):
    session = make_session(model_dir)
    session.start(prompt="Tom", temperature=0.0, topp=0.9, seed=1, steps=30)
    "".join(iter(lambda: session.advance(0.01), ""))
    assert "error" in session.start(prompt="word " * 600, temperature=0.0, topp=0.9, seed=1, steps=512)
    assert len(session.explain_story()["tokens"]) == 30 - len(session.story.prompt_tokens) + 1
