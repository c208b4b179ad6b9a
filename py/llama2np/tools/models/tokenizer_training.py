"""A SentencePiece tokenizer trained on text (`llama2np train-tokenizer`), as llama2.c's
`tinystories.py train_vocab` trains one: the same data, the same trainer options, the same
vocabulary.

train_vocab writes each story of its JSON shards, stripped, to tiny.txt and hands SentencePiece
that file, which reads it line by line: each line of a story is a sentence of its own. Here the
sentences reach SentencePiece the same way without the file: a JSON story's stripped lines, and
a text file's lines split at "\n" only, as SentencePiece splits them (a CR stays part of its
line, a whitespace-only line is a sentence, an empty one is not). The options are train_vocab's
(BPE, byte fallback, digits split, no normalisation, whitespace-only pieces, full coverage).

One departure, for memory: past --max-sentences (more than train_vocab's ten TinyStories shards
hold), a fixed-seed reservoir sample is trained on instead of everything. The inputs are read
once, into the training text; only a sample is held in memory, drawn from that text.

Both outputs, PREFIX.model and PREFIX.bin, are checked before any input is read (never an input
by any name, replaced only with --force) and written to unique temporary files that are renamed
into place together once training has succeeded: a failure or Ctrl+C leaves the folder as it was.
"""

import io
import json
import random
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import sentencepiece

from llama2np.runtime.errors import Llama2npError, UsageError
from llama2np.runtime.files import open_regular, read_file, require_regular_file
from llama2np.tools.models.tokenizer_export import parse_model, tokenizer_bin
from llama2np.tools.outputs import atomic_output, check_output, scratch_file, write_temporary

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


def train_tokenizer(inputs: list[Path], vocab_size: int, prefix: Path, max_sentences: int = 10_000_000,
                    threads: int = 1, force: bool = False) -> tuple[Path, Path]:
    """Train on the inputs' sentences; returns the paths of PREFIX.model and PREFIX.bin."""
    outputs = output_paths(prefix)
    for output in outputs:
        check_output(output, inputs, force, "tokenizer output")
    for path in inputs:
        require_regular_file(path, "training input")
    # The temporary files exist from the start, so an unwritable folder is found before training.
    with atomic_output(outputs[0], force) as model_file, atomic_output(outputs[1], force) as bin_file, \
            scratch_file(prefix) as scratch:
        model = train(inputs, vocab_size, max_sentences, threads, scratch)
        write_temporary(model_file, model, outputs[0])
        write_temporary(bin_file, tokenizer_bin(parse_model(model, outputs[0])), outputs[1])
    return outputs


def train(inputs: list[Path], vocab_size: int, max_sentences: int, threads: int,
          scratch: Path) -> bytes:
    """The trained SentencePiece model's bytes. The sentences reach SentencePiece as a file
    (`scratch`, one line each), which its own reader takes as it is: its Python iterator would
    drop a CR at a line's end."""
    count = 0
    try:
        with open(scratch, "w", encoding="utf-8", newline="") as out:
            for sentence in read_sentences(inputs):
                out.write(sentence + "\n")
                count += 1
        if count > max_sentences:  # a fixed-seed sample, read back from the file, not the inputs
            kept = sample(scratch_lines(scratch), max_sentences)
            with open(scratch, "w", encoding="utf-8", newline="") as out:
                out.writelines(sentence + "\n" for sentence in drain(kept))
            count = max_sentences
    except OSError as error:
        raise Llama2npError(f"cannot write the training text beside the tokenizer: "
                            f"{error.strerror}.") from None
    if not count:
        raise Llama2npError("the input files hold no text to train on.")
    print(f"Training a {vocab_size}-token BPE tokenizer on {count:,} sentences", file=sys.stderr)
    model = io.BytesIO()  # not a file name, which SentencePiece would record in the model
    options = dict(
        input=str(scratch),
        model_writer=model,
        # train_vocab's options, as it spells them
        model_type="bpe",
        vocab_size=vocab_size,
        self_test_sample_size=0,
        input_format="text",
        character_coverage=1.0,
        num_threads=threads,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        byte_fallback=True,
        unk_surface=r" \342\201\207 ",
        normalization_rule_name="identity",
        minloglevel=2,
    )
    try:
        in_background(lambda: sentencepiece.SentencePieceTrainer.Train(**options))
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1]
        raise Llama2npError(f"SentencePiece could not train the tokenizer: {message}") from None
    return without_input_names(model.getvalue())


def in_background(work: Callable[[], object]) -> None:
    """Run `work` (SentencePiece's training, which lets go of Python's lock) on a thread of its
    own while this one waits, so that a signal (Ctrl+C, SIGTERM) ends the command at once, its
    files removed, instead of after training has run its course; its exception is raised here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name="sentencepiece", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if failure:
        raise failure[0]


# A SentencePiece model is a protobuf ModelProto; its field 2 is the TrainerSpec, whose repeated
# field 1 names the input files.
TRAINER_SPEC, INPUT = 2, 1


def without_input_names(model: bytes) -> bytes:
    """The model without the name of the file it was trained from (a temporary file's, which
    would make every model differ and tell where it was made)."""
    out = bytearray()
    for number, value, raw in protobuf_fields(model):
        if number == TRAINER_SPEC:
            spec = b"".join(r for n, _, r in protobuf_fields(value) if n != INPUT)
            out += raw[:1] + varint(len(spec)) + spec
        else:
            out += raw
    return bytes(out)


def protobuf_fields(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(field number, length-delimited value or b"", the field's bytes) of a protobuf message
    that SentencePiece wrote (trusted: fields numbered below 16, known wire types)."""
    offset = 0
    while offset < len(data):
        start = offset
        key, offset = read_varint(data, offset)
        wire, value = key & 7, b""
        if wire == 0:
            _, offset = read_varint(data, offset)
        elif wire == 2:
            length, offset = read_varint(data, offset)
            value, offset = data[offset : offset + length], offset + length
        else:
            offset += 8 if wire == 1 else 4
        yield key >> 3, value, data[start:offset]


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def scratch_lines(scratch: Path) -> Iterator[str]:
    """The sentences of the training text, split at "\n" alone as they were written."""
    with open(scratch, "rb") as lines:
        for line in lines:
            yield line.removesuffix(b"\n").decode("utf-8")


def read_sentences(inputs: list[Path]) -> Iterator[str]:
    """The sentences SentencePiece would read, in order: each line of a text file, each line of
    each stripped story of a JSON shard; empty lines and lines longer than SentencePiece trains
    on are left out (counted on standard error)."""
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
    """The file's lines as SentencePiece reads them: split at "\n" alone (a CR stays in its
    line), empty ones left out; None for a line too long to train on, which is passed over in
    bounded pieces rather than read whole."""
    fd = open_regular(path, "training input")
    with open(fd, "rb") as file:
        while line := file.readline(MAX_SENTENCE_BYTES + 1):
            if len(line) > MAX_SENTENCE_BYTES and not line.endswith(b"\n"):
                while (rest := file.readline(SKIP_CHUNK_CHARS)) and not rest.endswith(b"\n"):
                    pass
                yield None
            elif line := line.removesuffix(b"\n"):
                yield line.decode("utf-8", "replace")


def read_json_stories(path: Path) -> Iterator[str]:
    """The lines of each story, stripped, as train_vocab writes the story to tiny.txt. The list
    is parsed an item at a time, so memory follows the file's size, not the number of items in
    it (sixteen million `{}` would otherwise take gigabytes as Python objects)."""
    data = read_file(path, "training input", Llama2npError, MAX_JSON_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Llama2npError(f"{path} is not valid JSON (not UTF-8 at byte {error.start:,}).") from None
    del data
    for item in json_list_items(text, path):
        story = item.get("story") if isinstance(item, dict) else None
        if isinstance(story, str):
            # JSON can spell lone surrogates (\ud800), which are not text SentencePiece takes.
            stripped = story.strip().encode("utf-8", "replace").decode("utf-8")
            yield from (line for line in stripped.split("\n") if line)


def json_list_items(text: str, path: Path) -> Iterator[object]:
    """The items of the JSON list that is `text`, decoded one at a time."""
    decoder = json.JSONDecoder()
    space = re.compile(r"[ \t\n\r]*")
    at = space.match(text).end()
    if text[at : at + 1] != "[":
        raise Llama2npError(f"{path} should hold a list of objects with a 'story' field.")
    at = space.match(text, at + 1).end()
    if text[at : at + 1] == "]":
        return
    while True:
        try:
            item, at = decoder.raw_decode(text, at)
        except ValueError as error:  # bad JSON, or a number of thousands of digits
            raise Llama2npError(f"{path} is not valid JSON ({str(error)[:100]}).") from None
        except RecursionError:
            raise Llama2npError(f"{path} nests JSON too deeply to be a list of stories.") from None
        yield item
        at = space.match(text, at).end()
        separator = text[at : at + 1]
        at = space.match(text, at + 1).end()
        if separator == "]":
            if at != len(text):
                raise Llama2npError(f"{path} is not valid JSON (text after the list).")
            return
        if separator != ",":
            raise Llama2npError(f"{path} is not valid JSON (expected ',' or ']' at character "
                                f"{at:,}).")


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
