"""Measurements that print numbers and JSON: `bench` (a runner's inference speed beside eager PyTorch,
`cartoonize bench`) and `benchmarks` (the README speed table, `python -m cartoonize.measure.benchmarks`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from cartoonize.errors import CartoonizeError


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
