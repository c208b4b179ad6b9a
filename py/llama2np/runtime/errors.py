"""Errors that carry one sentence a person can act on.

The command line prints `str(error)` and exits with `exit_status`; the browser worker sends it as
an `error` message. Nothing else is shown, so the sentence must name the file or value and say what
is wrong with it.
"""


class Llama2npError(Exception):
    """Bad data: a file that cannot be used, a prompt that does not fit, and so on."""

    exit_status = 1


class UsageError(Llama2npError):
    """A flag or argument out of its allowed range."""

    exit_status = 2


class CheckpointError(Llama2npError):
    """A model checkpoint that is missing, truncated or inconsistent."""


class TokenizerError(Llama2npError):
    """A tokenizer file that is unreadable or does not fit the model."""


class PromptError(Llama2npError):
    """A prompt that cannot be generated from, such as one the tokenizer cannot spell."""


class PromptTooLong(PromptError):
    """A prompt longer than the context, or filling `steps`. It carries the numbers, so that the
    page can say the same in its own words."""

    def __init__(self, sentence: str, prompt_tokens: int, steps: int, context: int) -> None:
        super().__init__(sentence)
        self.prompt_tokens, self.steps, self.context = prompt_tokens, steps, context

    @property
    def too_long_for_context(self) -> bool:
        return self.prompt_tokens + 1 > self.context  # BOS takes a position too


class OutputError(Llama2npError):
    """Output the user asked for that could not be written, such as a full or closed stdout."""
