"""A visitor's own model files in the page, told apart and sized from their first bytes before
either is read whole: what cannot fit in the page's memory is refused before a byte is copied.

The worker (web/worker.js) hands over each file's name, size and first HEADER_BYTES; the
checkpoint's header is read and checked by the very code that reads checkpoints everywhere.
"""

import math
import struct

from llama2np.runtime.checkpoint import MAGIC, check_size, float32_bytes, read_header
from llama2np.runtime.errors import Llama2npError
from llama2np.runtime.model import memory_needed
from llama2np.runtime.tokenizer import TOKENIZER_LIMIT


def plan_opening(names: list[str], sizes: list[int], starts: list[bytes], free: int,
                 limit: int) -> dict:
    """{"checkpoint": index of the checkpoint among the two files, "tokenizer": the other's} when
    they can be read into the `free` bytes of the page's memory (at most `limit`) that are
    left, else {"error": a sentence}."""
    try:
        if len(names) != 2:
            given = f"{len(names)} {'was' if len(names) == 1 else 'were'} given"
            raise Llama2npError(f"Open two files together: a llama2.c checkpoint and its "
                                f"tokenizer .bin ({given}).")
        starts = [bytes(start) for start in starts]
        for name, start in zip(names, starts, strict=True):
            if is_sentencepiece(start) and not looks_like_tokenizer(start, len(start)):
                raise Llama2npError(f"{name} looks like a SentencePiece model; the page takes "
                                    "llama2.c's tokenizer .bin (`llama2np export-tokenizer` "
                                    "makes one from it).")
        kinds = [looks_like_tokenizer(start, size) for start, size in zip(starts, sizes, strict=True)]
        if all(kinds):
            raise Llama2npError(f"{names[0]} and {names[1]} are both tokenizers; open a "
                                "checkpoint with its tokenizer.")
        if same_start(starts) and sizes[0] == sizes[1]:
            raise Llama2npError(f"{names[0]} and {names[1]} are the same file; open a checkpoint "
                                "with its tokenizer.")
        checkpoint = checkpoint_index(sizes, starts)
        tokenizer = 1 - checkpoint
        if sizes[tokenizer] > TOKENIZER_LIMIT:
            raise Llama2npError(f"{names[tokenizer]} is {megabytes(sizes[tokenizer])}, too large "
                                f"for a llama2.c tokenizer (at most {megabytes(TOKENIZER_LIMIT)}); "
                                "open the tokenizer .bin that belongs to the model.")
        need = model_memory(names[checkpoint], sizes[checkpoint], bytes(starts[checkpoint]))
        need += sizes[tokenizer]
        if need > free:
            raise Llama2npError(f"{names[checkpoint]} needs about {megabytes(need)} of memory, "
                                f"but this page has {megabytes(max(0, free))} left of the "
                                f"{megabytes(limit)} WebAssembly can address; use a smaller model, "
                                "or run it with `llama2np generate`.")
    except Llama2npError as error:
        return {"error": str(error)}
    return {"checkpoint": checkpoint, "tokenizer": tokenizer}


def checkpoint_index(sizes: list[int], starts: list[bytes]) -> int:
    """Which of two files is the checkpoint, from what their first bytes are: the other one when
    one of them reads as a llama2.c tokenizer and the other does not; else the one with
    llama2.c's export magic; else the larger, as weights outweigh any tokenizer. If the guess
    is wrong, reading the files says what does not fit, naming the file."""
    tokenizer = [looks_like_tokenizer(start, size) for start, size in zip(starts, sizes, strict=True)]
    if tokenizer[0] != tokenizer[1]:
        return tokenizer.index(False)
    magic = [len(start) >= 4 and struct.unpack_from("<I", start)[0] == MAGIC for start in starts]
    if magic[0] != magic[1]:
        return magic.index(True)
    return 0 if sizes[0] >= sizes[1] else 1


def is_sentencepiece(start: bytes) -> bool:
    """A SentencePiece model: a protobuf whose first field is a piece (field 1, a message)."""
    return start[:1] == b"\x0a" and len(start) > 2


def same_start(starts: list[bytes]) -> bool:
    return len(starts[0]) > 0 and starts[0] == starts[1]


def looks_like_tokenizer(start: bytes, size: int) -> bool:
    """Whether a file's first bytes read as a llama2.c tokenizer: max_token_length, then
    (score, length, piece) entries whose scores are finite and lengths within it, as far as
    the bytes go. A checkpoint's weights fail within a few entries: their bits as lengths are
    far beyond any piece."""
    if len(start) < 4:
        return False
    (max_length,) = struct.unpack_from("<i", start)
    if not 0 < max_length <= 1024:
        return False
    offset, entries = 4, 0
    while offset + 8 <= len(start):
        score, length = struct.unpack_from("<fi", start, offset)
        if not (math.isfinite(score) and 0 <= length <= max_length):
            return False
        offset += 8 + length
        entries += 1
    return entries >= min(3, (min(size, len(start)) - 4) // 8)


def model_memory(name: str, size: int, start: bytes) -> int:
    """What reading a checkpoint of `size` bytes that begins with `start` costs: the file, its
    weights as float32 when they are Q8_0, and the engine's own memory for a whole context.
    Raises CheckpointError for a header that is inconsistent or does not match the size."""
    header = read_header(start, name)
    check_size(header, size, name)
    return size + float32_bytes(header) + memory_needed(header.config)


def megabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
