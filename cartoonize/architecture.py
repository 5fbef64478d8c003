"""Facts about the generator's shape that code without torch needs (the frame pipeline, engine
stores, a bad-input error before the heavy imports): `cartoonize.model` builds the network from
them, and a test checks that the network obeys them."""

from __future__ import annotations

SIZE_MULTIPLE = 4  # two stride-2 stages: H and W must divide by 4
