"""A SentencePiece model as llama2.c's tokenizer .bin, the file the runtime reads.

The .bin holds, after the longest piece's length (int32), every piece in id order as its score
(float32), its length (int32) and its UTF-8 bytes, with SentencePiece's word-start mark '▁'
turned into a space and BOS/EOS written as "\\n<s>\\n" and "\\n</s>\\n", as llama2.c does.
"""

import struct
from pathlib import Path

import sentencepiece

from llama2np.errors import TokenizerError

WORD_START = "\u2581"  # SentencePiece's mark for "a space precedes this piece"


def load_model(path: Path) -> sentencepiece.SentencePieceProcessor:
    if not Path(path).is_file():
        raise TokenizerError(f"tokenizer model {path} does not exist.")
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError):
        raise TokenizerError(f"{path} is not a SentencePiece model.") from None
    return processor


def tokenizer_bin(processor: sentencepiece.SentencePieceProcessor) -> bytes:
    """The llama2.c tokenizer file's bytes for a loaded SentencePiece model."""
    pieces = []
    for token in range(processor.GetPieceSize()):
        if token == processor.bos_id():
            text = "\n<s>\n"
        elif token == processor.eos_id():
            text = "\n</s>\n"
        else:
            text = processor.IdToPiece(token).replace(WORD_START, " ")
        pieces.append((processor.GetScore(token), text.encode("utf-8")))
    out = [struct.pack("<i", max(len(piece) for _, piece in pieces))]
    for score, piece in pieces:
        out.append(struct.pack("<fi", score, len(piece)))
        out.append(piece)
    return b"".join(out)


def export_tokenizer(model: Path, out: Path | None = None) -> Path:
    """Write MODEL's .bin beside it (or to `out`); returns the path written."""
    out = out or Path(model).with_suffix(".bin")
    out.write_bytes(tokenizer_bin(load_model(model)))
    return out
