"""Prompt-lookup drafting: guess the next tokens by copying what followed the same n-gram before.

Stories repeat themselves ("Lily was sad. ... Lily was happy."), so the tokens that followed the
last occurrence of the current suffix are a cheap guess of what comes next. The guess is only
ever checked, never trusted: see `generate.generate_tokens`.
"""

MAX_NGRAM = 3  # longest suffix looked up; longer matches predict better but occur less
MIN_NGRAM = 2  # a single matching token predicts too poorly to pay for the longer forward pass


class Drafter:
    """The token history with an index from each n-gram to where it last ended."""

    def __init__(self, tokens: list[int], max_ngram: int = MAX_NGRAM) -> None:
        self.tokens: list[int] = []
        self.max_ngram = max_ngram
        # n-gram -> index of its last token, for n-grams ending before the newest token, so that
        # a lookup of the current suffix finds an earlier occurrence and not itself.
        self.last_end: dict[tuple[int, ...], int] = {}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        self.tokens.append(token)
        end = len(self.tokens) - 2  # index the n-grams of the previous token now
        for n in range(1, min(self.max_ngram, end + 1) + 1):
            self.last_end[tuple(self.tokens[end - n + 1 : end + 1])] = end

    def propose(self, max_tokens: int) -> list[int]:
        """Up to `max_tokens` tokens that followed the longest earlier match of the suffix."""
        tokens = self.tokens
        for n in range(min(self.max_ngram, len(tokens)), MIN_NGRAM - 1, -1):
            end = self.last_end.get(tuple(tokens[-n:]))
            if end is not None:
                return tokens[end + 1 : end + 1 + max_tokens]
        return []
