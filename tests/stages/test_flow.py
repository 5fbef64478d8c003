"""The flow's input (`stages.flow.gray`, `luma_of_plane`): on the GPU frame path the flow is
computed from the decoder's Y plane, stretched to the 0-255 luma that `gray` gives from RGB."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.media.yuv import YuvSpec
from cartoonize.stages.flow import FLOW_MIN_SIDE, FlowEstimator, gray, luma_of_plane


def test_a_luma_frame_is_the_flows_input_as_it_is() -> None:
    luma = np.arange(48, dtype=np.uint8).reshape(6, 8)
    assert gray(luma) is luma
    rgb = np.repeat(luma[..., None], 3, axis=2)
    assert np.array_equal(gray(rgb), luma)  # a grey picture's luma is its level


@pytest.mark.parametrize(("bits", "full"), [(8, False), (8, True), (10, False), (10, True)])
def test_luma_of_plane_maps_black_and_white_to_0_and_255(bits: int, full: bool) -> None:
    spec = YuvSpec(1, full, bits)
    black, span = spec.scales()[:2]
    codes = np.arange(1 << bits, dtype=np.uint8 if bits == 8 else np.uint16).reshape(
        -1, 4 if bits == 8 else 16
    )
    luma = luma_of_plane(codes, black, span, bits)
    assert luma.dtype == np.uint8 and luma.shape == codes.shape
    flat = luma.reshape(-1)
    assert flat[int(black)] == 0 and flat[int(black + span)] == 255
    assert np.all(np.diff(flat.astype(int)) >= 0)  # monotonic; clipped below black and above white
    # mid-grey: the same level whatever the depth and range
    mid = int(round(black + span * 128 / 255))
    assert abs(int(flat[mid]) - 128) <= 1


def test_luma_of_plane_is_the_luma_of_ffmpegs_rgb() -> None:
    """A decoded limited-range BT.709 frame: its Y plane through `luma_of_plane` against the
    BT.709 luma of the RGB FFmpeg makes of the same frame, within a level or two (rounding),
    and against `gray`'s BT.601 luma of that RGB within a few levels on smooth colour."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from cartoonize.media.files import Colour, to_rgb
    from cartoonize.media.yuv import frame_planes
    from tests.media.test_yuv import smooth

    rgb = smooth(48, 64)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
    )
    back = to_rgb(frame, Colour(matrix=1, range=1, primaries=1, trc=1, tagged=True))  # the pipeline's
    luma = luma_of_plane(frame_planes(frame)[0], 16, 219).astype(int)
    bt709 = np.round(back.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722]))
    assert np.abs(luma - bt709).max() <= 2
    assert np.abs(luma - gray(back).astype(int)).mean() < 12  # another matrix's weights, same picture


@pytest.mark.parametrize(
    ("shape", "side"),
    [
        ((1, 1), None),
        ((5, 300), None),
        ((16, 100), None),
        ((24, 300), None),
        ((2, 2000), 480),
        ((720, 1280), 320),
    ],
)
def test_the_flow_runs_at_any_frame_size(shape: tuple[int, int], side: int | None) -> None:
    """DIS refuses images under about 12 px a side, and crashes the process on thin ones (16x100,
    24x300): tiny or thin frames are stretched to at least FLOW_MIN_SIDE for it, big ones shrunk to
    `side`; the flow comes back at the frame's size. (A crash here is the whole test run's.)"""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    estimator = FlowEstimator("fast", side)
    small = estimator.small(a)
    assert min(small.shape) >= FLOW_MIN_SIDE and (
        side is None or max(small.shape) <= max(side, FLOW_MIN_SIDE)
    )
    pair = estimator.pair(a, np.roll(a, 1, axis=1))
    assert pair.backward.shape == (*shape, 2) and pair.trusted.shape == shape
