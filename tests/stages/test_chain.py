"""The frame-stage seam: stages run in order, reset reaches each, an empty chain is the identity."""

from __future__ import annotations

import numpy as np

from cartoonize.stages import StageChain, StageOptions, build_stages


class _Add:
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value, self.resets = name, value, 0

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        return (cartoon.astype(np.int16) * 2 + self.value).clip(0, 255).astype(np.uint8)

    def reset(self) -> None:
        self.resets += 1


def test_stages_run_in_order_and_reset() -> None:
    first, second = _Add("a", 1), _Add("b", 3)
    chain = StageChain([first, second])
    frame = np.full((2, 2, 3), 10, np.uint8)
    assert (chain(frame, frame) == (10 * 2 + 1) * 2 + 3).all()  # a then b, not b then a (59)
    chain.reset()
    assert (first.resets, second.resets) == (1, 1)
    assert chain.describe() == "a + b"


def test_raw_is_the_identity() -> None:
    chain = build_stages(StageOptions(raw=True))
    frame = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert not chain and chain.describe() == "none"
    assert chain(frame, frame[::-1]) is not None and (chain(frame, frame[::-1]) == frame[::-1]).all()
