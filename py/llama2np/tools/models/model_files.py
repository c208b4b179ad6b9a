"""A model as its maker names it on the command line, as llama2.c's sample.py and run.c take it:
the checkpoint a llama2.c .bin or a train.py .pt (read without running its pickle), the
tokenizer a llama2.c .bin or a SentencePiece .model (read with the tokenizer extra). A file of
another format is named as that format, rather than misread as a llama2.c header."""

from pathlib import Path

from llama2np.runtime.checkpoint import Checkpoint, check_size, read_header
from llama2np.runtime.errors import CheckpointError, TokenizerError
from llama2np.runtime.files import read_file, read_start, require_regular_file
from llama2np.runtime.own_files import is_sentencepiece, looks_like_tokenizer
from llama2np.runtime.tokenizer import TOKENIZER_LIMIT, Tokenizer
from llama2np.tools.models.validation import read_any

# Other formats a model file may come in, by their first bytes: what to call them.
FOREIGN = [
    (b"GGUF", "a GGUF file (llama.cpp's format)"),
    (b"\x80\x02", "a bare pickle (torch.save's format before 1.6)"),
    (b"\x89HDF", "an HDF5 file"),
]


def load_any_checkpoint(path: str | Path) -> Checkpoint:
    name = str(path)
    start = read_start(path, "checkpoint", 256, CheckpointError)
    size = require_regular_file(path, "checkpoint", CheckpointError)
    foreign = other_format(start)
    if foreign:
        raise CheckpointError(f"{name} is {foreign}; llama2np reads llama2.c checkpoints (.bin) "
                              "and llama2.c train.py checkpoints (.pt).")
    if looks_like_tokenizer(start, size) or is_sentencepiece(start):
        raise CheckpointError(f"{name} is a tokenizer, not a checkpoint; give it with -z, and "
                              "the model's .bin or .pt first.")
    checkpoint, _ = read_any(Path(path))
    return checkpoint


def load_any_tokenizer(path: str | Path, vocab_size: int) -> Tokenizer:
    name = str(path)
    start = read_start(path, "tokenizer", 256, TokenizerError)
    foreign = other_format(start) or (is_checkpoint(start, require_regular_file(
        path, "tokenizer", TokenizerError)) and "a llama2.c checkpoint, not a tokenizer")
    if foreign:
        raise TokenizerError(f"{name} is {foreign}; give -z a llama2.c tokenizer .bin or a "
                             "SentencePiece .model.")
    data = read_file(path, "tokenizer", TokenizerError, TOKENIZER_LIMIT)
    if looks_like_tokenizer(data[:256], len(data)) or not is_sentencepiece(data[:64]):
        return Tokenizer.from_bytes(data, vocab_size, name)
    from llama2np.tools.models.tokenizer_export import parse_model, tokenizer_bin

    return Tokenizer.from_bytes(tokenizer_bin(parse_model(data, name), name), vocab_size, name)


def other_format(start: bytes) -> str | None:
    for magic, what in FOREIGN:
        if start.startswith(magic):
            return what
    if start[8:10] == b'{"' and int.from_bytes(start[:8], "little") < 1 << 30:
        return "a safetensors file"
    return None


def is_checkpoint(start: bytes, size: int) -> bool:
    """A llama2.c checkpoint: a consistent header that accounts for the file's size exactly."""
    try:
        header = read_header(start)
        check_size(header, size, "")
    except CheckpointError:
        return False
    return True
