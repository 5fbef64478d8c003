"""Optical flow between consecutive source frames, and what it can be trusted for.

Both the stabilization stage and the quality benchmark's warping error need the same three
things: a dense flow from the current frame back to the previous one (OpenCV's DIS, Kroeger et al.
2016), the previous image warped along it onto the current frame, and a mask of the pixels where
the flow can be trusted. The mask is the forward-backward consistency check of Sundaram et al.
(2010), as used by Ruder et al. (2016) and Lai et al. (2018): following the backward flow and then
the forward flow must come back to the start, up to a tolerance that grows with the motion; pixels
that fail are occluded or disoccluded, and pixels whose match falls outside the frame are dropped.

OpenCV is imported lazily; where it is missing, `require_cv2()` says how to install it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from cartoonize.errors import CartoonizeError

PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


def require_cv2():  # -> the cv2 module
    try:
        import cv2
    except ImportError:
        raise CartoonizeError(
            "optical flow needs OpenCV (a dependency of cartoonize): pip install opencv-python-headless, "
            "or pass --no-stabilize / --raw"
        ) from None
    return cv2


def gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W) luma (BT.601) of a uint8 (H, W, 3) RGB frame, the flow's input. A frame that
    is luma already (H, W), `luma_of_plane`'s, is returned as it is."""
    if rgb.ndim == 2:
        return rgb
    cv2 = require_cv2()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=16)
def _luma_table(offset: float, scale: float, bits: int) -> np.ndarray:
    codes = np.arange(1 << bits, dtype=np.float64)
    return np.clip(np.round((codes - offset) * 255.0 / scale), 0, 255).astype(np.uint8)


def luma_of_plane(y: np.ndarray, offset: float, scale: float, bits: int = 8) -> np.ndarray:
    """uint8 (H, W) luma from a decoder's Y plane, code values (`bits` in the low bits) whose black
    is `offset` and whose white is `offset + scale` (16 and 219 in limited-range 8 bits): the flow's
    input on the GPU frame path, where no RGB frame is made on the host. It is the source matrix's
    luma (BT.709 for HD), not `gray`'s BT.601 weights of RGB. DIS's flow moves about as much
    between the two as between `gray` and `gray` with ±1 of noise (1.8 and 1.3 px mean on Big Buck
    Bunny at 720p, mostly in flat areas, where no motion is defined), and the stabilized
    cartoon's flicker is the same either way (README, "The GPU frame path")."""
    table = _luma_table(float(offset), float(scale), bits)
    if bits == 8 and y.dtype == np.uint8:
        return require_cv2().LUT(np.ascontiguousarray(y), table)  # ~5x numpy's take at 1080p
    return np.take(table, y)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    grid = np.empty((h, w, 2), np.float32)  # (x, y) of each pixel
    grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at x + flow(x): the previous frame brought onto the current one when `flow`
    maps the current frame to the previous. Bilinear; outside the frame repeats the border."""
    cv2 = require_cv2()
    where = _grid(*flow.shape[:2]) + flow
    return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class FlowPair:
    """Flow from the current frame back to the previous one, and where it is trustworthy."""

    backward: np.ndarray  # (H, W, 2) float32: current pixel x matches previous pixel x + backward(x)
    trusted: np.ndarray  # (H, W) bool: consistent forward-backward and inside the frame

    @property
    def trusted_share(self) -> float:
        return float(self.trusted.mean())


# DIS refuses images under about 12 px a side (8x8 and 16x4 raise), and crashes the process
# (a segmentation fault, OpenCV 5.1) on thin ones: 16x100 and 24x300 with every preset. Each
# side at least 32 ran with every preset from 32x32 to 32x8000 and 8000x32.
FLOW_MIN_SIDE = 32


class FlowEstimator:
    """DIS flow on (downscaled) luma frames. `side` bounds the longer side the flow is computed
    at (the flow is scaled back up to the frame size); None keeps the frame size."""

    def __init__(self, preset: str = "fast", side: int | None = None) -> None:
        cv2 = require_cv2()
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self.side = side

    def small(self, g: np.ndarray) -> np.ndarray:
        """`g` (uint8 luma) at the flow's working size: downscaled so its longer side is at most
        `side`, and each side at least FLOW_MIN_SIDE (DIS refuses smaller images: a 1-pixel-high
        video, or a very long and thin one, is stretched for the flow; the flow is scaled back)."""
        h, w = g.shape
        scale = self.side / max(h, w) if self.side is not None and max(h, w) > self.side else 1.0
        size = (max(FLOW_MIN_SIDE, round(w * scale)), max(FLOW_MIN_SIDE, round(h * scale)))
        if size == (w, h):
            return g
        shrinks = size[0] <= w and size[1] <= h
        return self._cv2.resize(
            g, size, interpolation=self._cv2.INTER_AREA if shrinks else self._cv2.INTER_LINEAR
        )

    def _up(self, flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        h, w = shape
        if flow.shape[:2] == (h, w):
            return flow
        fy, fx = h / flow.shape[0], w / flow.shape[1]
        up = self._cv2.resize(flow, (w, h), interpolation=self._cv2.INTER_LINEAR)
        up[..., 0] *= fx
        up[..., 1] *= fy
        return up

    def pair_small(self, previous_small: np.ndarray, current_small: np.ndarray) -> FlowPair:
        """The pair at the working size (`small()` of each luma frame): the part that needs only the
        source, which the GPU stages compute ahead on CPU threads (`stages.device`)."""
        backward = self._dis.calc(current_small, previous_small, None)
        forward = self._dis.calc(previous_small, current_small, None)
        h, w = current_small.shape
        # forward flow at the matched point of the previous frame should undo the backward flow
        forward_there = warp(forward, backward)
        loop = backward + forward_there
        magnitude = (backward**2).sum(-1) + (forward_there**2).sum(-1)
        consistent = (loop**2).sum(-1) <= 0.01 * magnitude + 0.5
        target = _grid(h, w) + backward
        inside = (target >= 0).all(-1) & (target[..., 0] <= w - 1) & (target[..., 1] <= h - 1)
        return FlowPair(backward, consistent & inside)

    def pair(self, previous_gray: np.ndarray, current_gray: np.ndarray) -> FlowPair:
        """Backward flow (current -> previous) with its forward-backward consistency mask."""
        small = self.pair_small(self.small(previous_gray), self.small(current_gray))
        shape = previous_gray.shape
        trusted = small.trusted
        if trusted.shape != shape:
            trusted = (
                self._cv2.resize(trusted.astype(np.uint8), shape[::-1], interpolation=self._cv2.INTER_NEAREST)
                > 0
            )
        return FlowPair(self._up(small.backward, shape), trusted)
