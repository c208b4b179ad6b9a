"""A visitor's own files in the page: told apart by what they are, the wrong one named."""

import pytest
from llama2np.runtime.own_files import looks_like_tokenizer, plan_opening

GB = 1 << 30


def plan(*files: tuple[str, bytes]) -> dict:
    names = [name for name, _ in files]
    data = [content for _, content in files]
    return plan_opening(names, [len(d) for d in data], [d[:256] for d in data], GB, 4 * GB)


@pytest.fixture
def demo(model_dir) -> tuple[bytes, bytes]:
    return (model_dir / "stories260K.bin").read_bytes(), (model_dir / "tok512.bin").read_bytes()


def test_tokenizers_are_told_from_checkpoints_and_text(demo):
    checkpoint, tokenizer = demo
    assert looks_like_tokenizer(tokenizer[:256], len(tokenizer))
    assert not looks_like_tokenizer(checkpoint[:256], len(checkpoint))
    assert not looks_like_tokenizer(b"Once upon a time " * 20, 340)


@pytest.mark.parametrize("order", [0, 1])
def test_a_truncated_checkpoint_is_named_even_beside_a_larger_tokenizer(demo, order):
    checkpoint, tokenizer = demo
    cut = checkpoint[: len(tokenizer) // 2]  # smaller than its tokenizer
    files = [("model.bin", cut), ("tokenizer.bin", tokenizer)]
    message = plan(*(files if order == 0 else files[::-1]))["error"]
    assert message.startswith("model.bin is truncated"), message


def test_a_text_file_beside_a_tokenizer_is_the_file_named(demo):
    _, tokenizer = demo
    message = plan(("tokenizer.bin", tokenizer), ("notes.txt", b"Once upon a time " * 10_000))["error"]
    assert message.startswith("notes.txt ") and "not a valid llama2.c checkpoint" in message


def test_the_demo_s_files_are_planned_in_either_order(demo):
    checkpoint, tokenizer = demo
    assert plan(("a.bin", tokenizer), ("b.bin", checkpoint)) == {"checkpoint": 1, "tokenizer": 0}
    assert plan(("b.bin", checkpoint), ("a.bin", tokenizer)) == {"checkpoint": 0, "tokenizer": 1}


@pytest.mark.parametrize("pair", ["checkpoints", "tokenizers", "sentencepiece"])
def test_two_of_a_kind_or_a_sentencepiece_model_are_named(demo, model_dir, pair):
    checkpoint, tokenizer = demo
    files = {
        "checkpoints": [("a.bin", checkpoint), ("b.bin", checkpoint)],
        "tokenizers": [("a.bin", tokenizer), ("b.bin", tokenizer)],
        "sentencepiece": [("model.bin", checkpoint), ("tok.model", (model_dir / "tok512.model").read_bytes())],
    }[pair]
    message = plan(*files)["error"]
    expected = {"checkpoints": "are the same file", "tokenizers": "are both tokenizers",
                "sentencepiece": "tok.model looks like a SentencePiece model"}[pair]
    assert expected in message, message
