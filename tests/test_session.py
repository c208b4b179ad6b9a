"""The browser worker's Python side, run on CPython: same stories, errors as values."""

from llama2np.session import Session
from support import GOLDEN_T1


def make_session(model_dir) -> Session:
    return Session(memoryview((model_dir / "stories260K.bin").read_bytes()),
                   (model_dir / "tok512.bin").read_bytes(), "stories260K.bin", "tok512.bin")


def test_sliced_story_is_run_c_s(model_dir, golden):
    session = make_session(model_dir)
    assert session.info()["config"]["seq_len"] == 512
    assert session.start("", 1.0, 0.9, 133742, 256) == {"prompt_text": ""}
    pieces = []
    while not session.done:
        pieces.append(session.advance(0.001))
    assert "".join(pieces) == golden(GOLDEN_T1)
    assert session.stats()["generated_tokens"] == 256  # run.c: one token per position


def test_bad_requests_come_back_as_sentences(model_dir):
    session = make_session(model_dir)
    assert "context is 512 tokens" in session.start("word " * 600, 0.0, 0.9, 1, 512)["error"]
    assert "temperature" in session.start("", -1.0, 0.9, 1, 10)["error"]
    assert session.done and session.advance(0.01) == ""


def test_bench_measures_every_engine(model_dir):
    results = make_session(model_dir).bench(steps=8, prompt_tokens=4, repeats=1)
    assert set(results) == {"llama2np, speculative", "llama2np, plain", "straightforward port"}
    assert all(r["decode_tokens_per_second"] > 0 for r in results.values())
