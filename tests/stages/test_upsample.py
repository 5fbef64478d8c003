"""Guided upsampling (`--infer-side`): the network's size, the stage's place in the chain, and what
it does to edges and flat shading compared with bicubic upscaling of the same small cartoon."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.stages import StageOptions, build_stages
from cartoonize.stages.upsample import (
    GuidedUpsample,
    bicubic_upsample,
    guided_upsample,
    network_frame,
    network_size,
)


@pytest.mark.parametrize(("size", "side", "expected"), [
    ((480, 854), 320, (180, 320)), ((1080, 1920), 256, (144, 256)), ((854, 480), 320, (320, 180)),
    ((480, 854), 854, (480, 854)), ((480, 854), None, (480, 854)), ((30, 40), 320, (30, 40)),
    ((37, 101), 50, (20, 48)),
])  # fmt: skip
def test_network_size_keeps_aspect_in_multiples_of_four(size, side, expected) -> None:
    assert network_size(*size, side) == expected


def test_network_frame_is_the_source_shrunk() -> None:
    rgb = np.full((48, 64, 3), 90, np.uint8)
    rgb[:, 32:] = 200
    small = network_frame(rgb, 32)
    assert small.shape == (24, 32, 3) and small.dtype == np.uint8
    assert (small[:, :15] == 90).all() and (small[:, 17:] == 200).all()
    assert network_frame(rgb, 64) is rgb


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A photo (two regions split by a slanted edge, fine texture on both) and the cartoon a
    network would draw of it at full size (the same edge, each region one flat colour)."""
    rng = np.random.default_rng(seed)
    h, w = 120, 200
    yy, xx = np.mgrid[0:h, 0:w]
    inside = xx > 70 + 0.4 * yy
    photo = np.where(inside[..., None], [170, 120, 60], [60, 90, 150]).astype(np.float64)
    photo += rng.normal(0, 12, (h, w, 1))  # texture the cartoon flattens
    cartoon = np.where(inside[..., None], [230, 150, 40], [40, 70, 190])
    return photo.clip(0, 255).astype(np.uint8), cartoon.astype(np.uint8)


def test_guided_beats_bicubic_at_the_edges_and_keeps_flat_shading_flat() -> None:
    photo, ideal = scene()
    small = network_frame(ideal, 50)  # what the network would give at a quarter of the size
    guided, bicubic = guided_upsample(photo, small), bicubic_upsample(photo, small)
    assert guided.shape == bicubic.shape == photo.shape

    def error(image: np.ndarray) -> float:
        return float(np.abs(image.astype(np.int16) - ideal).mean())

    assert error(guided) < 0.7 * error(bicubic), (error(guided), error(bicubic))
    flat = (slice(10, 40), slice(150, 190))  # inside one region, away from the edge
    assert guided[flat].std(axis=(0, 1)).max() < 0.25 * photo[flat].std(axis=(0, 1)).min()  # no texture back


def test_stage_passes_a_full_size_cartoon_through() -> None:
    photo, ideal = scene()
    stage = GuidedUpsample()
    assert stage(photo, ideal) is ideal
    assert stage(photo, network_frame(ideal, 100)).shape == photo.shape


def test_chain_upsamples_first_and_even_when_raw() -> None:
    assert "upsampling" not in build_stages(StageOptions()).describe()
    for raw in (False, True):
        chain = build_stages(StageOptions(raw=raw, infer_side=160))
        assert chain.stages and isinstance(chain.stages[0], GuidedUpsample)


def test_in_strips_as_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path works a strip of rows at a time; with strips of a few rows (boundaries falling
    anywhere against the small cartoon's rows and the area windows) it gives what the one-piece
    tensor path (the GPU's) gives, within a level of rounding."""
    import torch

    from cartoonize.stages import upsample
    from cartoonize.stages.upsample import guided_upsample_tensor

    photo, ideal = scene(3)
    small = network_frame(ideal, 56)
    whole = guided_upsample_tensor(torch.from_numpy(photo), torch.from_numpy(small))
    whole = whole.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    for rows in (1, 7, 50, 1000):
        monkeypatch.setattr(upsample, "STRIP_BYTES", rows * photo.shape[1] * upsample.FLOAT_BYTES_PER_PIXEL)
        strips = guided_upsample(photo, small)
        assert np.abs(strips.astype(int) - whole).max() <= 1, rows


def test_a_large_photo_needs_a_few_bytes_a_pixel() -> None:
    """A 24 MP photo from a 144 px cartoon: the full-resolution work in one piece took 68 bytes a
    pixel over the photo (1.6 GB; a 108 MP panorama peaked at 9.9 GB, which the memory guard did
    not count); in strips, the result (3 bytes a pixel) and a few strips' worth."""
    import subprocess
    import sys

    code = (
        "import numpy as np, torch\n"
        # this process's own peak: ru_maxrss also counts the pages of the test process it forked from
        "def peak(): return int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1]) * 1024\n"
        "from cartoonize.stages.upsample import guided_upsample\n"
        "src = np.empty((4000, 6000, 3), np.uint8)\n"
        "src[...] = (np.arange(6000, dtype=np.uint8)[None, :, None] * 7)\n"
        "small = np.random.default_rng(0).integers(0, 255, (96, 144, 3), dtype=np.uint8)\n"
        "with torch.inference_mode(): guided_upsample(src[:8, :8], small[:4, :4])\n"
        "before = peak()\n"
        "with torch.inference_mode(): out = guided_upsample(src, small)\n"
        "print((peak() - before) / src.shape[0] / src.shape[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    grown = float(done.stdout)
    assert grown < 16, grown  # bytes a pixel: the 3 of the result, strips of 48 MB (2 a pixel here)
