"""The quality benchmark's figures on clips with known answers: a still clip, a shifted pattern, a
fade, a cut, a known PSNR; and the command on real files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cartoonize.measure.quality import measure_frames

pytest.importorskip("cv2", reason="the quality benchmark's optical flow needs OpenCV")

H, W = 72, 96


def texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth random picture (blurred noise, full range): something optical flow can follow."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (h // 4, w // 4, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (40 + 180 * smooth).astype(np.uint8)


def noisy(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).round().astype(np.uint8)


def test_still_clip_ratio_is_the_ratio_of_the_noise_variances() -> None:
    rng = np.random.default_rng(1)
    scene, cartoon = texture(0), 255 - texture(0)
    sources = [noisy(scene, 2.0, rng) for _ in range(8)]
    outputs = [noisy(cartoon, 6.0, rng) for _ in range(8)]
    q = measure_frames(sources, outputs)
    assert q.pairs == 7 and q.cuts == 0
    assert q.warp_error_ratio == pytest.approx(9.0, rel=0.2)  # (6 / 2) ** 2
    steady = measure_frames(sources, [cartoon] * 8)
    assert steady.warp_error_ratio < 0.05  # a cartoon stiller than its source


def test_shifted_pattern_is_followed_by_the_flow() -> None:
    big = texture(2, H, W + 40)
    sources = [np.ascontiguousarray(big[:, 3 * t : 3 * t + W]) for t in range(8)]  # 3 px a frame
    q = measure_frames(sources, [255 - s for s in sources])  # any pointwise map moves with its source
    assert q.warp_error_ratio == pytest.approx(1.0, abs=0.05)
    plain = (
        np.mean([((a.astype(float) - b) / 255) ** 2 for a, b in zip(sources[1:], sources[:-1], strict=True)])
        * 3
    )
    assert q.warp_error_source < 0.1 * plain  # the flow really brought one frame onto the next
    frozen = measure_frames(sources, [255 - sources[0]] * 8)  # a cartoon that does not move
    assert frozen.warp_error_ratio > 5


def test_fade_luma_curves_and_dark_lift() -> None:
    scene = texture(3).astype(np.float32)
    gains = np.linspace(0.05, 1.0, 10)
    sources = [(scene * g).round().astype(np.uint8) for g in gains]
    tracking = measure_frames(sources, sources)
    assert tracking.luma_correlation == pytest.approx(1.0, abs=1e-6)
    assert tracking.output_luma_std == pytest.approx(tracking.source_luma_std)
    luma = scene @ np.array([0.299, 0.587, 0.114], np.float32)
    assert tracking.source_luma_std == pytest.approx(float(np.std(gains * luma.mean())), rel=0.01)
    assert tracking.cuts == 0  # a fade is not a cut
    lifted = measure_frames(sources, [s + np.uint8(20) for s in sources])  # all below 235: no wrap
    dark = (gains * luma.mean() < 40).sum()
    assert lifted.dark_frames == dark > 0
    assert lifted.dark_lift_mean == pytest.approx(20, abs=0.01) and lifted.dark_lift_worst == pytest.approx(
        20, abs=0.01
    )
    flat = measure_frames(sources, [np.full_like(scene, 128, np.uint8)] * 10)  # a fade that does not fade
    assert flat.luma_correlation is None and flat.output_luma_std == 0


def test_cut_is_left_out_and_psnr_is_known() -> None:
    a, b = texture(4), texture(5)
    sources = [a] * 4 + [b] * 4
    q = measure_frames(
        sources, sources, [np.clip(s.astype(int) + 10, 0, 255).astype(np.uint8) for s in sources]
    )
    assert q.cuts == 1 and q.pairs == 6
    assert q.psnr_all == pytest.approx(20 * math.log10(255 / 10), abs=0.05)  # a 10-level offset: 28.13 dB
    assert q.well_exposed_frames == 8 and q.psnr_well_exposed == pytest.approx(q.psnr_all)


def test_command_on_files_writes_json(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mkv"
    frames = [texture(6)] * 3 + [texture(7)] * 3
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=12)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode(None))
    report = tmp_path / "q.json"
    cmd = [sys.executable, "-m", "cartoonize.measure.quality", str(path), str(path), "--against", str(path)]
    done = subprocess.run([*cmd, "--json", str(report)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warping error" in done.stdout and "cuts left out" in done.stdout
    data = json.loads(report.read_text())
    assert data["frames"] == 6 and data["cuts"] == 1 and data["pairs"] == 4
    assert (
        data["warp_error_source"] == 0 and data["warp_error_ratio"] is None
    )  # still and noiseless: no ratio
    assert data["psnr_all"] == math.inf  # identical files
    missing = subprocess.run(
        [*cmd[:3], str(tmp_path / "nope.mp4"), str(path)], capture_output=True, text=True
    )
    assert (
        missing.returncode == 1 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    )
