"""A SentencePiece tokenizer trained on text (`llama2np train-tokenizer`).

Training uses SentencePiece's BPE with the settings llama2.c uses for its custom vocabularies:
byte fallback (any text encodes), digits split, no normalisation (the text is the text),
whitespace-only pieces allowed, full character coverage. Sentences stream from the input files;
when there are more than --max-sentences, a fixed-seed reservoir sample keeps memory bounded
and the result reproducible.
"""

import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import sentencepiece

from llama2np.errors import Llama2npError

PROGRESS_EVERY = 100_000
SAMPLE_SEED = 42


def train_tokenizer(inputs: list[Path], vocab_size: int, prefix: Path, max_sentences: int = 2_000_000,
                    threads: int = 1) -> Path:
    """Train on the inputs' sentences; returns PREFIX.model."""
    sentences = sample(read_sentences(inputs), max_sentences)
    if not sentences:
        raise Llama2npError("the input files hold no text to train on.")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    print(f"Training a {vocab_size}-token BPE tokenizer on {len(sentences):,} sentences", file=sys.stderr)
    model = io.BytesIO()  # not a file name, which SentencePiece would record in the model
    try:
        sentencepiece.SentencePieceTrainer.Train(
            sentence_iterator=drain(sentences),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=1.0,
            num_threads=threads,
            split_digits=True,
            add_dummy_prefix=True,  # run.c's encoder adds the same leading space
            allow_whitespace_only_pieces=True,
            byte_fallback=True,
            unk_surface=" \u2047 ",
            normalization_rule_name="identity",
            input_sentence_size=0,  # the sample above already bounds the input
            shuffle_input_sentence=False,
            minloglevel=2,
        )
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1]
        raise Llama2npError(f"SentencePiece could not train the tokenizer: {message}") from None
    path = prefix.with_name(prefix.name + ".model")
    path.write_bytes(model.getvalue())
    return path


def read_sentences(inputs: list[Path]) -> Iterator[str]:
    """Every non-empty line of text files and every story of JSON shards, in order."""
    count = 0
    for path in inputs:
        if not path.is_file():
            raise Llama2npError(f"input file {path} does not exist.")
        for sentence in (read_json_stories(path) if path.suffix == ".json" else read_lines(path)):
            count += 1
            if count % PROGRESS_EVERY == 0:
                print(f"  read {count:,} sentences ({path.name})", file=sys.stderr)
            yield sentence


def read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            if line.strip():
                yield line.rstrip("\n")


def read_json_stories(path: Path) -> Iterator[str]:
    try:
        shard = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Llama2npError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(shard, list):
        raise Llama2npError(f"{path} should hold a list of objects with a 'story' field.")
    for item in shard:
        story = item.get("story") if isinstance(item, dict) else None
        if isinstance(story, str) and story.strip():
            yield story.strip()


def drain(sentences: list[str]) -> Iterator[str]:
    """Hand the sentences over one by one, letting go of each: SentencePiece keeps its own copy,
    so the sample is held once, not twice, at the peak."""
    for index, sentence in enumerate(sentences):
        sentences[index] = None
        yield sentence


def sample(sentences: Iterator[str], limit: int) -> list[str]:
    """At most `limit` sentences: all of them, or a reservoir sample with a fixed seed."""
    rng = random.Random(SAMPLE_SEED)
    kept: list[str] = []
    for seen, sentence in enumerate(sentences):
        if seen < limit:
            kept.append(sentence)
        else:
            slot = rng.randrange(seen + 1)
            if slot < limit:
                kept[slot] = sentence
    return kept
