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
    """A prompt that cannot be generated from, such as one longer than the context."""


class OutputError(Llama2npError):
    """Output the user asked for that could not be written, such as a full or closed stdout."""
