"""Training and exporting tokenizers: llama2.c's format, agreement with SentencePiece."""

import json
import os

import pytest
import sentencepiece
from llama2np.runtime.generate import Story
from llama2np.runtime.tokenizer import Tokenizer
from support import run_cli

HELD_OUT = [
    "Tom and Lily went to the big park. They saw a dog!",
    "Mia had 12 red apples and 3 green ones; she gave 7 to Ben.",
    "\"Can we play?\" asked the little bird.\tThe sun was warm.",
    "The café was full of happy people 😀 and one sad cat.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, checkpoint, tokenizer):
    """Stories written by stories260K itself: the project makes its own training text."""
    from llama2np.runtime.model import make_model

    model = make_model(checkpoint)
    folder = tmp_path_factory.mktemp("corpus")
    stories = [Story(model, tokenizer, "", temperature=1.0, seed=seed, steps=200).text()
               for seed in range(1, 121)]
    (folder / "stories.txt").write_text("".join(s.replace("\n", " ") + "\n" for s in stories[:80]))
    (folder / "shard.json").write_text(json.dumps([{"story": s} for s in stories[80:]]))
    (folder / "stories.jsonl").write_text("".join(json.dumps({"story": s}) + "\n" for s in stories))
    return folder


def train(folder, inputs, prefix="tok", vocab=400):
    result = run_cli("train-tokenizer", "--input", *inputs, "--vocab-size", str(vocab),
                     "--out", folder / prefix)
    assert result.returncode == 0, result.stderr
    return folder / f"{prefix}.model", folder / f"{prefix}.bin"


def train_vocab(folder, tiny_txt, vocab):
    """llama2.c's tinystories.py train_vocab: SentencePiece trained on its tiny.txt with its call."""
    sentencepiece.SentencePieceTrainer.train(
        input=str(tiny_txt), model_prefix=str(folder / "reference"), model_type="bpe",
        vocab_size=vocab, self_test_sample_size=0, input_format="text", character_coverage=1.0,
        num_threads=os.cpu_count(), split_digits=True, allow_whitespace_only_pieces=True,
        byte_fallback=True, unk_surface=r" \342\201\207 ", normalization_rule_name="identity",
        minloglevel=2)
    return folder / "reference.model"


def pieces(model) -> list[tuple[str, float]]:
    processor = sentencepiece.SentencePieceProcessor()
    processor.Load(str(model))
    return [(processor.IdToPiece(i), processor.GetScore(i)) for i in range(processor.GetPieceSize())]


def test_json_shards_give_train_vocab_s_vocabulary(corpus, tmp_path, tokenizer):
    """Stories of several lines (as TinyStories' are), some with blank lines and spaces around
    them: train_vocab writes each stripped story to tiny.txt, and SentencePiece reads it by line."""
    stories = [json.loads(line)["story"] for line in (corpus / "stories.jsonl").read_text().splitlines()]
    stories = [s if i % 3 else f"  {s}\n\n" for i, s in enumerate(stories)]
    shard = tmp_path / "data00.json"
    shard.write_text(json.dumps([{"story": s} for s in stories]))
    tiny = tmp_path / "tiny.txt"
    with open(tiny, "w") as out:  # train_vocab's loop
        for story in json.loads(shard.read_text()):
            out.write(story["story"].strip() + "\n")
    assert "\n" in "".join(stories).strip() and not any("\n" in p for p, _ in pieces(train_vocab(tmp_path, tiny, 400)))
    ours, _ = train(tmp_path, [shard], vocab=400)
    assert pieces(ours) == pieces(tmp_path / "reference.model")


def test_plain_text_reaches_sentencepiece_as_its_own_reader_sees_it(corpus, tmp_path):
    """CRLF line ends, a lone CR and whitespace-only lines are SentencePiece's to judge."""
    lines = (corpus / "stories.txt").read_text().splitlines()
    text = "".join(line + ("\r\n" if i % 2 else "\n") + ("   \n" if i % 5 == 0 else "")
                   + ("\t\r\n" if i % 7 == 0 else "") for i, line in enumerate(lines))
    plain = tmp_path / "plain.txt"
    plain.write_bytes(text.replace("\n", "\r", 3).encode())
    reference = train_vocab(tmp_path, plain, 400)
    ours, _ = train(tmp_path, [plain], vocab=400)
    assert pieces(ours) == pieces(reference)


def test_export_of_tok512_model_is_llama2c_s_tok512_bin(model_dir, tmp_path):
    out = tmp_path / "tok512.bin"
    result = run_cli("export-tokenizer", model_dir / "tok512.model", "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (model_dir / "tok512.bin").read_bytes()


def test_trained_tokenizer_encodes_as_sentencepiece_does(corpus, tmp_path):
    model, binary = train(tmp_path, [corpus / "stories.txt", corpus / "shard.json"])
    processor = sentencepiece.SentencePieceProcessor()
    processor.Load(str(model))
    assert processor.GetPieceSize() == 400
    ours = Tokenizer.load(binary, 400)
    for text in HELD_OUT:
        expected = [1, *processor.encode(text)]
        result = run_cli("encode", "-z", binary, text)
        assert result.returncode == 0, result.stderr
        assert [int(t) for t in result.stdout.split()] == expected, text
        assert ours.decode(ours.encode(text)) == text


def test_training_is_reproducible(corpus, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = train(tmp_path / "a", [corpus / "stories.txt"], vocab=350)
    second = train(tmp_path / "b", [corpus / "stories.txt"], vocab=350)
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[1].read_bytes() == second[1].read_bytes()


def test_sampling_keeps_training_bounded(corpus, tmp_path):
    result = run_cli("train-tokenizer", "--input", corpus / "stories.txt", "--vocab-size", "350",
                     "--max-sentences", "40", "--out", tmp_path / "small")
    assert result.returncode == 0, result.stderr
    assert "on 40 sentences" in result.stderr


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--vocab-size", "100"], 2, "too small"),  # a flag out of range: bad usage
    (["--vocab-size", "400", "--input", "missing.txt"], 1, "does not exist"),  # bad data
])
def test_bad_training_requests_are_sentences(corpus, tmp_path, args, status, message):
    base = ["train-tokenizer", "--out", tmp_path / "x"]
    if "--input" not in args:
        base += ["--input", corpus / "stories.txt"]
    result = run_cli(*base, *[str(tmp_path / a) if a.endswith(".txt") else a for a in args])
    assert result.returncode == status and message in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_a_shard_that_is_not_a_list_is_refused(tmp_path):
    shard = tmp_path / "bad.json"
    shard.write_text('{"story": "one"}')
    result = run_cli("train-tokenizer", "--input", shard, "--vocab-size", "300", "--out", tmp_path / "x")
    assert result.returncode == 1 and "list of objects with a 'story' field" in result.stderr


def test_a_story_with_a_lone_surrogate_is_trained_on(corpus, tmp_path):
    shard = tmp_path / "odd.json"
    shard.write_text('[{"story": "a lone \\ud800 surrogate, as JSON can spell it"}]')
    result = run_cli("train-tokenizer", "--input", corpus / "stories.txt", shard,
                     "--vocab-size", "350", "--out", tmp_path / "x")
    assert result.returncode == 0, result.stderr
    assert "on 81 sentences" in result.stderr


def test_export_of_a_non_model_is_a_sentence(tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    result = run_cli("export-tokenizer", junk)
    assert result.returncode == 1 and "is not a SentencePiece model" in result.stderr
