"""The tokenizer against SentencePiece, round trips, streaming, and broken files."""

import pytest
import sentencepiece
from llama2np.runtime.errors import TokenizerError
from llama2np.runtime.tokenizer import BOS, TextStream, Tokenizer

TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Hello, world! How are you? (Fine; thanks...) -- 'quotes' & \"double\" {braces} [x] <y> @#$%^*",
    "The year 1984 had 365 days, 12 months and 3.14159 pies.",
    "Café, naïve, résumé, Ångström, Straße, żółć, Ελληνικά, Русский, 日本語のテキスト.",
    "Emoji: 😀🐶🚀 and flags 🇫🇷 and a family 👨‍👩‍👧 in one line.",
    "Tabs\tand\ttabs.",
    "Lines\nand more lines\nand a last one.",
    "a",
    "x" * 50,
    "Mixed\tall\nof it: 42 😀 ü!",
]


@pytest.fixture(scope="module")
def sentencepiece_model(model_dir):
    return sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "tok512.model"))


@pytest.mark.parametrize("text", TEXTS)
def test_encode_agrees_with_sentencepiece(tokenizer, sentencepiece_model, text):
    assert tokenizer.encode(text) == [BOS, *sentencepiece_model.encode(text)]


@pytest.mark.parametrize("text", TEXTS + ["  leading spaces", "trailing  ", ""])
def test_decode_of_encode_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_empty_text_has_no_dummy_prefix(tokenizer):
    assert tokenizer.encode("") == [BOS]
    assert tokenizer.encode("", bos=False) == []


def test_long_text_encodes_like_sentencepiece(tokenizer, sentencepiece_model):
    text = ("The little dog ran to the park and played with a red ball. " * 300).strip()
    assert tokenizer.encode(text) == [BOS, *sentencepiece_model.encode(text)]


def test_streaming_never_splits_a_character(tokenizer):
    text = "A 🐶 and a 🚀 went to Zürich."
    tokens = tokenizer.encode(text)
    assert any(3 <= t < 259 for t in tokens), "expected byte-fallback tokens"
    stream = TextStream(tokenizer)
    pieces = [stream.push(t) for t in tokens[1:]] + [stream.flush()]
    assert "".join(pieces) == text
    for piece in pieces:
        piece.encode("utf-8")  # every piece on its own is valid text
        assert "\ufffd" not in piece


def test_stray_bytes_decode_to_replacement_character(tokenizer):
    stray = 0xF0 + 3  # a 4-byte lead byte followed by an ordinary token
    stream = TextStream(tokenizer)
    text = stream.push(stray) + stream.push(tokenizer.encode("dog")[-1]) + stream.flush()
    assert text.startswith("\ufffd")


def test_piece_strips_the_space_after_bos(tokenizer):
    space_word = tokenizer.encode("Once")[1]
    assert tokenizer.vocab[space_word].startswith(b" ")
    assert tokenizer.piece(BOS, space_word) == tokenizer.vocab[space_word][1:]
    assert tokenizer.piece(space_word, space_word) == tokenizer.vocab[space_word]
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tokenizer.piece(BOS, 512)


@pytest.mark.parametrize(("data", "phrase"), [
    (b"", "not a llama2.c tokenizer"),
    (b"\xff\xff\xff\xff", "maximum token length of -1"),
])
def test_unreadable_tokenizer(data, phrase):
    with pytest.raises(TokenizerError, match=phrase):
        Tokenizer.from_bytes(data, 512, "tok.bin")


def test_tokenizer_with_corrupt_entry(model_dir):
    data = bytearray((model_dir / "tok512.bin").read_bytes())
    data[8:12] = (1000).to_bytes(4, "little")  # token 0's length, beyond max_token_length
    with pytest.raises(TokenizerError, match="corrupt after 0 of the model's 512"):
        Tokenizer.from_bytes(bytes(data), 512, "tok.bin")


def test_tokenizer_with_more_tokens_than_the_model(model_dir):
    with pytest.raises(TokenizerError, match="holds 512 tokens but the model's vocabulary has 500"):
        Tokenizer.from_bytes((model_dir / "tok512.bin").read_bytes(), 500, "tok.bin")


def small_tokenizer(ab_score: float) -> Tokenizer:
    return Tokenizer([b"<unk>", b"<s>", b"</s>", b" ", b"a", b"b", b"ab"],
                     [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, ab_score], 2)


def test_a_nan_score_never_merges_as_in_run_c():
    """run.c merges a pair only when its score beats the best so far, which NaN never does."""
    assert small_tokenizer(5.0).encode("ab", bos=False) == [3, 6]
    assert small_tokenizer(float("nan")).encode("ab", bos=False) == [3, 4, 5]


def test_a_character_without_a_token_or_byte_token_is_a_prompt_error():
    from llama2np.runtime.errors import PromptError

    with pytest.raises(PromptError, match="'~', which this tokenizer's 7 tokens can neither"):
        small_tokenizer(1.0).encode("ab~")


def test_only_the_model_s_tokens_are_kept_from_a_longer_file(model_dir):
    """A tokenizer with a million extra empty entries is refused with its exact count, having
    kept no more than the model's vocabulary in memory."""
    import tracemalloc

    data = (model_dir / "tok512.bin").read_bytes() + b"\0" * 8 * 10**6
    tracemalloc.start()
    with pytest.raises(TokenizerError, match="holds 1000512 tokens but the model's vocabulary"):
        Tokenizer.from_bytes(data, 512, "tok.bin")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * len(data) + (1 << 20), peak  # the file's copy, and the 512 tokens kept
