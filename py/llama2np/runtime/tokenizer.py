"""llama2.c's tokenizer: the `tok*.bin` format, run.c's encoder and decoder, and streaming decode.

Encoding follows run.c exactly: BOS, a dummy-prefix space when the text is non-empty, one token
per UTF-8 character (or its bytes + 3 when the character is not in the vocabulary), then
repeatedly merge the adjacent pair whose concatenation is the best-scoring vocabulary entry,
leftmost first among equals. run.c rescans every pair after each merge (quadratic); here a heap
gives the same merges in O(n log n), so long prompts stay fast.
"""

import codecs
import heapq
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from llama2np.runtime.checkpoint import MAX_SIZES
from llama2np.runtime.errors import PromptError, TokenizerError
from llama2np.runtime.files import read_file

BOS = 1
BYTE_FALLBACK_OFFSET = 3  # run.c: a byte b without a vocabulary entry becomes token b + 3
NO_MERGE_SCORE = -1e10  # run.c's starting best score: merges scoring at or below it never happen
BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{1,2})")  # what run.c's sscanf("<0x%02hhX>") accepts
MAX_TOKEN_LENGTH = 1 << 16  # far above any real piece; a larger header is not a tokenizer
# Tokens kept from a file read without a model's vocabulary size, the largest vocabulary a
# checkpoint may have: each costs ~200 bytes of Python objects, so memory is bounded whatever
# the file holds.
MAX_TOKENS = MAX_SIZES["vocab_size"]
# No llama2.c tokenizer comes near it (Llama 2's 32,000 pieces take 424 KB, a million pieces
# some 15 MB); a larger file is refused unread instead of read and counted entry by entry.
TOKENIZER_LIMIT = 64 << 20


class Tokenizer:
    """A vocabulary of byte strings with merge scores, as llama2.c's tokenizer.bin stores it."""

    def __init__(self, vocab: list[bytes], scores: list[float], max_token_length: int) -> None:
        self.vocab = vocab
        self.scores = scores
        self.max_token_length = max_token_length
        # run.c looks pieces up by binary search over a sorted copy; for duplicate pieces the
        # lowest id wins here.
        self.ids: dict[bytes, int] = {}
        for token_id, piece in enumerate(vocab):
            self.ids.setdefault(piece, token_id)
        self.pieces = [_byte_piece(piece) for piece in vocab]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, vocab_size: int | None, name: str = "tokenizer"
    ) -> "Tokenizer":
        """Parse a llama2.c tokenizer file holding exactly `vocab_size` tokens (None: any)."""
        data = bytes(data)
        if len(data) < 4:
            raise TokenizerError(f"{name} is {len(data)} bytes long; it is not a llama2.c tokenizer.")
        (max_token_length,) = struct.unpack_from("<i", data)
        if not 0 < max_token_length <= MAX_TOKEN_LENGTH:
            raise TokenizerError(
                f"{name} declares a maximum token length of {max_token_length}; "
                "it is not a llama2.c tokenizer."
            )
        # Only the tokens a model can use are kept; the rest are counted, for the sentence.
        keep = MAX_TOKENS if vocab_size is None else vocab_size
        vocab, scores, count, problem = _read_entries(data, max_token_length, keep)
        if vocab_size is None:
            if count > MAX_TOKENS:
                raise TokenizerError(
                    f"{name} holds {count:,} tokens, more than the {MAX_TOKENS:,} llama2np reads; "
                    "it is not a llama2.c tokenizer for a model it can run."
                )
            vocab_size = count if not problem else count + 1
        if problem and count < vocab_size:
            raise TokenizerError(
                f"{name} is {problem} after {count} of the model's {vocab_size} tokens; "
                "get an intact copy of the tokenizer."
            )
        if count != vocab_size:
            found = f"{count}" if not problem else f"more than {vocab_size}"
            raise TokenizerError(
                f"{name} holds {found} tokens but the model's vocabulary has {vocab_size}; "
                "use the tokenizer the model was trained with."
            )
        return cls(vocab, scores, max_token_length)

    @classmethod
    def load(cls, path: str | Path, vocab_size: int | None) -> "Tokenizer":
        data = read_file(path, "tokenizer", TokenizerError, TOKENIZER_LIMIT)
        return cls.from_bytes(data, vocab_size, str(path))

    def to_bytes(self) -> bytes:
        """The llama2.c tokenizer file of this vocabulary: the longest piece's length, then each
        piece's merge score, length and bytes (what `from_bytes` reads)."""
        entries = (struct.pack("<fi", score, len(piece)) + piece
                   for score, piece in zip(self.scores, self.vocab, strict=True))
        return struct.pack("<i", self.max_token_length) + b"".join(entries)

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of `text` as run.c's `encode` produces them."""
        raw = _utf8(text)
        tokens = [BOS] if bos else []
        if raw:
            tokens += self._lookup_or_bytes(b" ")  # the dummy prefix SentencePiece adds
        tokens += [t for char in _utf8_chars(raw) for t in self._lookup_or_bytes(char)]
        return self._merge(tokens)

    def _lookup_or_bytes(self, piece: bytes) -> list[int]:
        token_id = self.ids.get(piece)
        if token_id is not None:
            return [token_id]
        if max(piece) + BYTE_FALLBACK_OFFSET >= len(self.vocab):
            # run.c would read past its vocabulary here; a small vocabulary has no byte tokens.
            raise PromptError(
                f"the text holds {piece.decode('utf-8', 'replace')!r}, which this tokenizer's "
                f"{len(self.vocab)} tokens can neither find nor spell byte by byte; "
                "leave it out of the text."
            )
        return [byte + BYTE_FALLBACK_OFFSET for byte in piece]

    def _merge_candidate(self, left: int, right: int) -> tuple[float, int] | None:
        merged = self.ids.get(self.vocab[left] + self.vocab[right])
        # run.c merges only scores above its starting best, so a NaN score never merges.
        if merged is None or not self.scores[merged] > NO_MERGE_SCORE:
            return None
        return self.scores[merged], merged

    def _merge(self, tokens: list[int]) -> list[int]:
        """Apply run.c's greedy merges: best score first, leftmost among equal scores.

        Tokens live in a linked list indexed by their original position; positions keep their
        order under merging, so the leftmost pair is the one with the smallest position.
        """
        n = len(tokens)
        following = list(range(1, n + 1))  # n means "no next token"
        preceding = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[float, int, int, int, int]] = []

        def push(position: int) -> None:
            right = following[position]
            if right < n:
                candidate = self._merge_candidate(tokens[position], tokens[right])
                if candidate:
                    score, merged = candidate
                    heapq.heappush(heap, (-score, position, tokens[position], tokens[right], merged))

        for position in range(n - 1):
            push(position)
        while heap:
            _, position, left, right, merged = heapq.heappop(heap)
            nxt = following[position] if alive[position] else n
            if nxt >= n or tokens[position] != left or tokens[nxt] != right:
                continue  # stale: one side was merged into something else since
            tokens[position] = merged
            alive[nxt] = False
            following[position] = following[nxt]
            if following[nxt] < n:
                preceding[following[nxt]] = position
            push(position)
            if preceding[position] >= 0:
                push(preceding[position])
        return [token for token, live in zip(tokens, alive, strict=True) if live]

    # -- decoding ---------------------------------------------------------------------------

    def piece(self, previous: int, token: int) -> bytes:
        """The bytes run.c's `decode` prints for `token` following `previous`."""
        if not 0 <= token < len(self.vocab):
            raise TokenizerError(f"token id {token} is outside the vocabulary of {len(self.vocab)}.")
        piece = self.pieces[token]
        if previous == BOS and piece.startswith(b" "):
            piece = piece[1:]  # SentencePiece's dummy prefix is not part of the text
        return piece

    def decode(self, tokens: Iterable[int]) -> str:
        """The text of a token sequence as run.c prints it; a leading BOS only starts it."""
        tokens = list(tokens)
        if tokens[:1] == [BOS]:
            tokens = tokens[1:]
        stream = TextStream(self)
        text = "".join(stream.push(token) for token in tokens)
        return text + stream.flush()


class TextStream:
    """Decodes tokens one at a time into text that never splits a UTF-8 character.

    A character spanning several byte-fallback tokens is held back until its last byte arrives;
    bytes that can never form a character come out as U+FFFD.
    """

    def __init__(self, tokenizer: Tokenizer, previous: int = BOS) -> None:
        self.tokenizer = tokenizer
        self.previous = previous
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        piece = self.tokenizer.piece(self.previous, token)
        self.previous = token
        return self.utf8.decode(piece)

    def flush(self) -> str:
        return self.utf8.decode(b"", final=True)


def _read_entries(
    data: bytes, max_token_length: int, keep: int
) -> tuple[list[bytes], list[float], int, str]:
    """The first `keep` (score, length, bytes) entries after the header, how many entries there
    are, and what stopped the reading early: "" at a clean end of file, else "truncated" or
    "corrupt". Entries past `keep` are only counted, so memory follows what is kept."""
    vocab, scores, count, offset = [], [], 0, 4
    while offset < len(data):
        if offset + 8 > len(data):
            return vocab, scores, count, "truncated"
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if not 0 <= length <= max_token_length:
            return vocab, scores, count, "corrupt"
        if offset + length > len(data):
            return vocab, scores, count, "truncated"
        if count < keep:
            vocab.append(data[offset : offset + length])
            scores.append(score)
        count += 1
        offset += length
    return vocab, scores, count, ""


def _byte_piece(piece: bytes) -> bytes:
    """A `<0xHH>` vocabulary entry stands for that single raw byte."""
    match = BYTE_PIECE.match(piece)
    return bytes([int(match.group(1), 16)]) if match else piece


def _utf8(text: str) -> bytes:
    # surrogateescape recovers the raw bytes of a command-line argument that was not valid UTF-8.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _utf8_chars(raw: bytes) -> Iterable[bytes]:
    """Split bytes as run.c does: a lead byte plus up to three continuation bytes."""
    start = 0
    for i in range(1, len(raw) + 1):
        at_end = i == len(raw)
        if at_end or (raw[i] & 0xC0) != 0x80 or i - start >= 4:
            yield raw[start:i]
            start = i
