"""Measurements that print numbers and JSON: `bench` (a runner's inference speed beside eager PyTorch,
`cartoonize bench`) and `benchmarks` (the README speed table, `python -m cartoonize.measure.benchmarks`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from cartoonize.errors import CartoonizeError


def positive_int(text: str) -> int:
    """An argparse type for a count that must be at least 1 (timed calls, repeats, frames): 0 would
    leave nothing to take the median of."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1")
    return value


def positive_ints(text: str) -> list[int]:
    """An argparse type for a comma-separated list of counts (worker counts, sides)."""
    return [positive_int(part) for part in text.split(",")]


def run_module(main: Callable[[], Any]) -> None:
    """`python -m cartoonize.measure.X`: a `CartoonizeError` (weights that cannot be fetched, a clip
    that is not there) is one line and exit 1, as in the CLI, not a traceback; an int from `main`
    is the exit status."""
    try:
        result = main()
    except CartoonizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
