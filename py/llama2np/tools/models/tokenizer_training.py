"""A SentencePiece tokenizer trained on text (`llama2np train-tokenizer`).

Training uses SentencePiece's BPE with the settings llama2.c uses for its custom vocabularies:
byte fallback (any text encodes), digits split, no normalisation (the text is the text),
whitespace-only pieces allowed, full character coverage. Sentences stream from the input files;
when there are more than --max-sentences, a fixed-seed reservoir sample keeps memory bounded
and the result reproducible.

Both outputs, PREFIX.model and PREFIX.bin, are checked before any input is read (never an input
by any name, replaced only with --force) and written to unique temporary files that are renamed
into place together once training has succeeded: a failure or Ctrl+C leaves the folder as it was.
"""

import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import sentencepiece

from llama2np.runtime.errors import Llama2npError, UsageError
from llama2np.runtime.files import open_regular, read_file, require_regular_file
from llama2np.tools.models.tokenizer_export import parse_model, tokenizer_bin
from llama2np.tools.outputs import atomic_output, check_output, write_temporary

PROGRESS_EVERY = 100_000
SAMPLE_SEED = 42
# SentencePiece skips every sentence longer than its max_sentence_length (4192 bytes by
# default), so such a line is skipped while reading: it never takes a place in the sample, and
# a line is never read further than this, however long it is (one 200 MB line with no newline
# costs a few kilobytes, not 200 MB).
MAX_SENTENCE_BYTES = 4192
SKIP_CHUNK_CHARS = 1 << 16
# A JSON shard is parsed whole (json has no incremental reader in the standard library), which
# costs a few times its size; a TinyStories shard is a small fraction of this bound, and a larger
# file is refused unread rather than risk running the machine out of memory.
MAX_JSON_BYTES = 1 << 30


def output_paths(prefix: Path) -> tuple[Path, Path]:
    """PREFIX.model (SentencePiece) and PREFIX.bin (llama2.c), the two files training writes."""
    if prefix.name in ("", ".."):
        raise UsageError(f"--out {prefix} names a folder; give a file name prefix such as "
                         f"{prefix / 'tok'}.")
    return prefix.with_name(prefix.name + ".model"), prefix.with_name(prefix.name + ".bin")


def train_tokenizer(inputs: list[Path], vocab_size: int, prefix: Path, max_sentences: int = 2_000_000,
                    threads: int = 1, force: bool = False) -> tuple[Path, Path]:
    """Train on the inputs' sentences; returns the paths of PREFIX.model and PREFIX.bin."""
    outputs = output_paths(prefix)
    for output in outputs:
        check_output(output, inputs, force, "tokenizer output")
    for path in inputs:
        require_regular_file(path, "training input")
    # The temporary files exist from the start, so an unwritable folder is found before training.
    with atomic_output(outputs[0]) as model_file, atomic_output(outputs[1]) as bin_file:
        model = train(inputs, vocab_size, max_sentences, threads)
        write_temporary(model_file, model, outputs[0])
        write_temporary(bin_file, tokenizer_bin(parse_model(model, outputs[0])), outputs[1])
    return outputs


def train(inputs: list[Path], vocab_size: int, max_sentences: int, threads: int) -> bytes:
    """The trained SentencePiece model's bytes."""
    sentences = sample(read_sentences(inputs), max_sentences)
    if not sentences:
        raise Llama2npError("the input files hold no text to train on.")
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
            max_sentence_length=MAX_SENTENCE_BYTES,
            minloglevel=2,
        )
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1]
        raise Llama2npError(f"SentencePiece could not train the tokenizer: {message}") from None
    return model.getvalue()


def read_sentences(inputs: list[Path]) -> Iterator[str]:
    """Every non-empty line of text files and every story of JSON shards, in order, without
    those longer than SentencePiece trains on (counted on standard error)."""
    count = too_long = 0
    for path in inputs:
        for sentence in (read_json_stories(path) if path.suffix == ".json" else read_lines(path)):
            if sentence is None or len(sentence.encode("utf-8")) > MAX_SENTENCE_BYTES:
                too_long += 1
                continue
            count += 1
            if count % PROGRESS_EVERY == 0:
                print(f"  read {count:,} sentences ({path.name})", file=sys.stderr)
            yield sentence
    if too_long:
        print(f"  skipped {too_long:,} over-long sentences (more than {MAX_SENTENCE_BYTES:,} "
              "bytes, which SentencePiece would skip)", file=sys.stderr)


def read_lines(path: Path) -> Iterator[str | None]:
    """The file's non-empty lines; None for a line too long to train on, which is passed over
    in bounded pieces rather than read whole."""
    fd = open_regular(path, "training input")
    with open(fd, encoding="utf-8", errors="replace") as file:
        while line := file.readline(MAX_SENTENCE_BYTES + 1):
            if len(line) > MAX_SENTENCE_BYTES and not line.endswith("\n"):
                while (rest := file.readline(SKIP_CHUNK_CHARS)) and not rest.endswith("\n"):
                    pass
                yield None
            elif line.strip():
                yield line.rstrip("\n")


def read_json_stories(path: Path) -> Iterator[str]:
    data = read_file(path, "training input", Llama2npError, MAX_JSON_BYTES)
    try:
        shard = json.loads(data)
    except ValueError as error:  # bad JSON, bad UTF-8, or a number of thousands of digits
        raise Llama2npError(f"{path} is not valid JSON ({str(error)[:100]}).") from None
    except RecursionError:
        raise Llama2npError(f"{path} nests JSON too deeply to be a list of stories.") from None
    del data
    if not isinstance(shard, list):
        raise Llama2npError(f"{path} should hold a list of objects with a 'story' field.")
    for item in shard:
        story = item.get("story") if isinstance(item, dict) else None
        if isinstance(story, str) and story.strip():
            # JSON can spell lone surrogates (\ud800), which are not text SentencePiece takes.
            yield story.strip().encode("utf-8", "replace").decode("utf-8")


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
