"""Types for the sub-commands' numeric flags: a value out of range is refused while the command
line is parsed (a usage error, exit 2), before a model is read or any work starts."""

import argparse
import math
from collections.abc import Callable

SHOWN_CHARACTERS = 40  # of a bad value, repeated in the sentence (a value may be megabytes long)


def shown(text: str) -> str:
    """`text` as a sentence repeats it: cut short when long."""
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def whole_number(name: str, low: int, high: int | None = None, *,
                 advice: str) -> Callable[[str], int]:
    """An int flag from `low` to `high` (inclusive; None: no upper end); `advice` says what to
    use instead, as the end of the sentence."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not digits, or more digits than Python converts
            raise argparse.ArgumentTypeError(
                f"{name} {shown(text)} is not a whole number; {advice}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{name} {shown(text)} is out of range; {advice}")
        return value

    return parse


def real_number(name: str, low: float, high: float | None = None, *,
                advice: str) -> Callable[[str], float]:
    """A finite float flag from `low` to `high` (inclusive; None: no upper end); NaN and
    infinities are refused, as no sampler setting means them."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} {shown(text)} is not a number; {advice}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{name} {shown(text)} is out of range; {advice}")
        return value

    return parse
