"""Facts about the generator's shape that code without torch needs (the frame pipeline, engine
stores, a bad-input error before the heavy imports): `cartoonize.model` builds the network from
them, and a test checks that the network obeys them."""

from __future__ import annotations

SIZE_MULTIPLE = 4  # two stride-2 stages: H and W must divide by 4
# the smallest side it runs on: after the two stride-2 stages a side of 8 is 2, the least that the
# residual blocks' 1-pixel reflect padding and instance norm take (4 would leave 1: both fail)
MIN_SIDE = 8


def run_side(side: int, multiple: int = SIZE_MULTIPLE) -> int:
    """The side a frame's side runs at: reflect-padded up to the multiple, and to MIN_SIDE (a
    1-pixel-high video runs at 8; the padding is cropped off again)."""
    return -(-max(side, MIN_SIDE) // multiple) * multiple
