"""The torch YUV conversions against FFmpeg's own (`VideoFrame.reformat`, accurate rounding):
every matrix and range, 8-bit yuv420p and nv12, 10-bit yuv420p10le and p010le, odd sizes;
within 2 levels on a smooth picture (the chroma filters differ in detail, so noise would measure
the filters, not the conversion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cartoonize.media.files import pad_to_even
from cartoonize.media.yuv import YuvSpec, nv12_to_rgb, rgb_to_yuv420, yuv420_to_rgb

SIZES = [(48, 64), (37, 23), (9, 15)]  # even, odd, small and odd
CASES = [(matrix, full) for matrix in (6, 1) for full in (False, True)]  # BT.601, BT.709; limited, full
LOG: list[str] = []


def smooth(height: int, width: int) -> np.ndarray:
    """Saturated colours that change slowly: a few low-frequency waves per channel."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        127.5 + 110 * np.sin(2 * np.pi * (xx / 97 * (k + 1) + yy / 89 * (3 - k)) + k) for k in range(3)
    ]
    return np.clip(np.stack(channels, -1), 0, 255).round().astype(np.uint8)


def ffmpeg(frame, fmt: str, matrix: int, full: bool, to_rgb: bool):  # noqa: ANN001, ANN201
    from av.video.reformatter import ColorRange, Colorspace, Interpolation

    accurate = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    sws = Colorspace.ITU709 if matrix == 1 else Colorspace.ITU601
    rng = ColorRange.JPEG if full else ColorRange.MPEG
    if to_rgb:
        return frame.reformat(format=fmt, src_colorspace=sws, src_color_range=rng, interpolation=accurate)
    return frame.reformat(format=fmt, dst_colorspace=sws, dst_color_range=rng, interpolation=accurate)


def plane(frame, i: int, rows: int, cols: int, dtype: str = "u1") -> torch.Tensor:  # noqa: ANN001
    p = frame.planes[i]
    item = np.dtype(dtype).itemsize
    data = np.frombuffer(p, np.dtype(dtype)).reshape(-1, p.line_size // item)[:rows, :cols]
    return torch.from_numpy(data.astype(np.int32))


def rgb_of(frame) -> np.ndarray:  # noqa: ANN001
    return frame.to_ndarray().astype(int)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("matrix", "full"), CASES, ids=["601-limited", "601-full", "709-limited", "709-full"]
)
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv420p10le", "p010le"])
def test_yuv_to_rgb_matches_ffmpeg(fmt: str, matrix: int, full: bool, size: tuple[int, int]) -> None:
    import av

    h, w = size
    ch, cw = (h + 1) // 2, (w + 1) // 2
    bits = 10 if "10" in fmt else 8
    source = av.VideoFrame.from_ndarray(smooth(h, w), format="rgb24")
    yuv = ffmpeg(source, fmt, matrix, full, to_rgb=False)
    expected = rgb_of(ffmpeg(yuv, "rgb24", matrix, full, to_rgb=True))
    spec = YuvSpec(matrix, full, bits)
    dtype = "<u2" if bits > 8 else "u1"
    if fmt in ("nv12", "p010le"):
        got = nv12_to_rgb(plane(yuv, 0, h, w, dtype), plane(yuv, 1, ch, 2 * cw, dtype), spec)
    else:
        got = yuv420_to_rgb(
            plane(yuv, 0, h, w, dtype), plane(yuv, 1, ch, cw, dtype), plane(yuv, 2, ch, cw, dtype), spec
        )
    diff = np.abs(got.numpy().astype(int) - expected)
    LOG.append(
        f"{fmt} {matrix} {'full' if full else 'limited'} {h}x{w} -> rgb: max {diff.max()}, mean {diff.mean():.3f}"
    )
    assert got.shape == (h, w, 3) and diff.max() <= 2, LOG[-1]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("matrix", "full"), CASES, ids=["601-limited", "601-full", "709-limited", "709-full"]
)
def test_rgb_to_yuv420p_matches_ffmpeg(matrix: int, full: bool, size: tuple[int, int]) -> None:
    import av

    h, w = size
    ch, cw = (h + 1) // 2, (w + 1) // 2
    rgb = smooth(h, w)
    # an odd side: the pipeline repeats the last row/column for the encoder (pad_to_even), so
    # FFmpeg converts that frame; ours takes the odd frame and must give the same planes
    even = pad_to_even(rgb)
    expected = ffmpeg(av.VideoFrame.from_ndarray(even, format="rgb24"), "yuv420p", matrix, full, to_rgb=False)
    ours = rgb_to_yuv420(torch.from_numpy(rgb), YuvSpec(matrix, full))
    for i, (got, rows, cols) in enumerate(zip(ours, (h, ch, ch), (w, cw, cw), strict=True)):
        diff = (got.int() - plane(expected, i, rows, cols)).abs()
        LOG.append(f"rgb -> yuv420p {matrix} {'full' if full else 'limited'} {h}x{w} plane {'YUV'[i]}: "
                   f"max {int(diff.max())}, mean {float(diff.float().mean()):.3f}")  # fmt: skip
        assert got.shape == (rows, cols) and int(diff.max()) <= 2, LOG[-1]


def test_batches_and_flat_round_trip() -> None:
    """Leading batch dimensions give what one frame at a time gives; a flat colour survives
    RGB -> YUV -> RGB within a level (4:2:0 loses nothing where nothing changes)."""
    frames = torch.from_numpy(np.stack([smooth(37, 23), np.ascontiguousarray(smooth(37, 23)[::-1])]))
    spec = YuvSpec(1, False)
    planes = rgb_to_yuv420(frames, spec)
    for i in range(2):
        single = rgb_to_yuv420(frames[i], spec)
        assert all(torch.equal(p[i], q) for p, q in zip(planes, single, strict=True))
        assert torch.equal(yuv420_to_rgb(*planes, spec)[i], yuv420_to_rgb(*single, spec))
    flat = torch.tensor([200, 30, 90], dtype=torch.uint8).expand(9, 15, 3).contiguous()
    for matrix, full in CASES:
        back = yuv420_to_rgb(*rgb_to_yuv420(flat, YuvSpec(matrix, full)), YuvSpec(matrix, full))
        assert int((back.int() - flat.int()).abs().max()) <= 1


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_planes_for_the_encoder_have_even_sides_and_match_ffmpeg(size: tuple[int, int]) -> None:
    """`planes_on_host` (the device stages' output on the GPU frame path): the frame with its last
    row and column repeated to even sides, as `pad_to_even` gives the encoder on the host; the
    planes FFmpeg makes of that frame, within 2 levels; numpy, in one piece each."""
    import av

    from cartoonize.media.yuv import planes_on_host

    h, w = size
    rgb = smooth(h, w)
    even = pad_to_even(rgb)
    eh, ew = even.shape[:2]
    expected = ffmpeg(av.VideoFrame.from_ndarray(even, format="rgb24"), "yuv420p", 1, False, to_rgb=False)
    got = planes_on_host(torch.from_numpy(rgb), YuvSpec(1, False))
    assert [p.shape for p in got] == [(eh, ew), (eh // 2, ew // 2), (eh // 2, ew // 2)]
    assert all(isinstance(p, np.ndarray) and p.dtype == np.uint8 for p in got)
    for i, (ours, rows, cols) in enumerate(
        zip(got, (eh, eh // 2, eh // 2), (ew, ew // 2, ew // 2), strict=True)
    ):
        assert int(np.abs(ours.astype(int) - plane(expected, i, rows, cols).numpy()).max()) <= 2, "YUV"[i]
    same = rgb_to_yuv420(torch.from_numpy(even), YuvSpec(1, False))
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(got, same, strict=True))


def test_resized_for_max_side_matches_ffmpegs_scaler() -> None:
    """`resized` (--max-side on the GPU frame path) against FFmpeg's AREA scaler with the CPU
    path's flags: on these waves of fast-changing saturated colour the two filters differ by 1.5
    levels on average and 5 at most (on real footage, 0.03-1.7 on average); a flat colour stays
    exactly flat."""
    import av

    from cartoonize.media.files import _flags
    from cartoonize.media.yuv import resized

    rgb = smooth(96, 160)
    expected = av.VideoFrame.from_ndarray(rgb, format="rgb24").to_ndarray(
        format="rgb24", width=60, height=36, interpolation=_flags("AREA")
    )
    got = resized(torch.from_numpy(rgb)[None], 36, 60)[0].numpy()
    assert got.shape == (36, 60, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.mean() < 2.0 and diff.max() <= 6, (diff.mean(), diff.max())
    flat = torch.tensor([200, 30, 90], dtype=torch.uint8).expand(2, 37, 23, 3).contiguous()
    assert torch.equal(resized(flat, 10, 7), flat[:, :10, :7])


def test_print_the_errors() -> None:
    """Not a check: the measured errors, for the note (run with -s)."""
    for line in LOG:
        print(line)
