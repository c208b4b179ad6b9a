"""A SentencePiece model as llama2.c's tokenizer .bin, the file the runtime reads.

The .bin holds, after the longest piece's length (int32), every piece in id order as its score
(float32), its length (int32) and its UTF-8 bytes, with SentencePiece's word-start mark '▁'
turned into a space and BOS/EOS written as "\\n<s>\\n" and "\\n</s>\\n", as llama2.c does.
"""

from pathlib import Path

import sentencepiece

from llama2np.runtime.errors import TokenizerError
from llama2np.runtime.files import read_file, require_regular_file
from llama2np.runtime.tokenizer import Tokenizer
from llama2np.tools.outputs import check_output, write_atomic

WORD_START = "\u2581"  # SentencePiece's mark for "a space precedes this piece"
# Llama 2's 32,000-piece model is 500 KB and a 256,000-piece one a few MB; anything near this
# bound is not a tokenizer, and refusing it unread keeps memory to what a model can need.
MAX_MODEL_BYTES = 256 << 20


def load_model(path: Path) -> sentencepiece.SentencePieceProcessor:
    """The SentencePiece model in `path`, read by this process (a regular file, bounded in size)
    and parsed from its bytes, so SentencePiece never opens a name that could be a FIFO."""
    return parse_model(read_file(path, "tokenizer model", TokenizerError, MAX_MODEL_BYTES), path)


def parse_model(data: bytes, name: object) -> sentencepiece.SentencePieceProcessor:
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(data)
    except (OSError, RuntimeError):
        raise TokenizerError(f"{name} is not a SentencePiece model.") from None
    if processor.GetPieceSize() == 0:
        raise TokenizerError(f"{name} is a SentencePiece model without pieces.")
    return processor


def piece_text(processor: sentencepiece.SentencePieceProcessor, token: int, name: object) -> str:
    try:
        return processor.IdToPiece(token)
    except UnicodeDecodeError:
        raise TokenizerError(f"{name}: piece {token} is not valid UTF-8, which "
                             "SentencePiece never writes: the file is damaged; train or fetch "
                             "it again.") from None


def tokenizer_bin(processor: sentencepiece.SentencePieceProcessor,
                  name: object = "the tokenizer model") -> bytes:
    """The llama2.c tokenizer file's bytes for a loaded SentencePiece model."""
    pieces, scores = [], []
    for token in range(processor.GetPieceSize()):
        if token == processor.bos_id():
            text = "\n<s>\n"
        elif token == processor.eos_id():
            text = "\n</s>\n"
        else:
            text = piece_text(processor, token, name).replace(WORD_START, " ")
        pieces.append(text.encode("utf-8"))
        scores.append(processor.GetScore(token))
    return Tokenizer(pieces, scores, max(map(len, pieces))).to_bytes()


def export_tokenizer(model: Path, out: Path | None = None, force: bool = False) -> Path:
    """Write MODEL's .bin beside it (or to `out`); returns the path written. The output is never
    the model itself and replaces an existing file only with `force`; it is written atomically."""
    require_regular_file(model, "tokenizer model", TokenizerError)  # a name to derive `out` from
    out = out or Path(model).with_suffix(".bin")
    check_output(out, [model], force, "tokenizer output")
    write_atomic(out, tokenizer_bin(load_model(model), model), replace=force)
    return out
