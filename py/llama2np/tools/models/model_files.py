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
from llama2np.tools.models.validation import other_format, read_any


def load_any_checkpoint(path: str | Path) -> Checkpoint:
    """A llama2.c .bin or a train.py .pt; any other file is named as what it is."""
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


def is_checkpoint(start: bytes, size: int) -> bool:
    """A llama2.c checkpoint: a consistent header that accounts for the file's size exactly."""
    try:
        header = read_header(start)
        check_size(header, size, "")
    except CheckpointError:
        return False
    return True
