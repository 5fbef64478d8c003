"""A photo too big for this machine's memory at the network (pipelines.memory): on the CPU the
network runs at the size that fits and the cartoon comes back at full size, with a line saying so;
before, the kernel killed the process (a 24 MP photo on a 24 GB machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError, CartoonizeWarning
from cartoonize.pipelines import image, memory
from cartoonize.pipelines.image import ImageJob, cartoonize_images, read_image, write_image
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions


class Seen(Runner):
    """Gives back its input, and keeps the sizes the network was asked to run at."""

    name, device, precision = "seen", "cpu", "fp32"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        self.sizes.append((frames.shape[1], frames.shape[2]))
        return frames


def test_the_memory_a_photo_needs_and_the_side_that_fits(tmp_path: Path) -> None:
    mp12 = (3000, 4000)
    assert 25e9 < memory.cpu_need(*mp12) < 28e9  # a 12 MP phone photo: about 26 GB
    assert memory.fitting_side(*mp12, available=64 * 10**9) is None
    assert memory.fitting_side(*mp12, available=None) is None  # not known: no guess
    side = memory.fitting_side(*mp12, available=16 * 10**9)
    assert side is not None and side % 8 == 0 and 2700 < side < 2800
    h, w = round(3000 * side / 4000), side
    assert memory.cpu_need(h, w) <= memory.HEADROOM * 16 * 10**9 < memory.cpu_need(h + 80, w + 80)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
    assert memory.available_memory(meminfo, cgroup=tmp_path) == 20000000 * 1024  # no control group's limit
    assert memory.available_memory(tmp_path / "none", cgroup=tmp_path) is None


def _photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    write_image(path, rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    return path


def test_a_photo_too_big_for_the_memory_runs_smaller_and_comes_back_whole(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(memory, "available_memory", lambda: 300 * 10**6)  # need: 0.46 GB
    runner = Seen()
    out = tmp_path / "cartoon.png"
    with pytest.warns(CartoonizeWarning, match=r"photo.png is 0.1 MP: .* it runs at 136 px and the cartoon is "
                                               r"brought back to 400×300"):  # fmt: skip
        cartoonize_images(ImageJob((_photo(tmp_path),), out), lambda: runner)
    assert runner.sizes == [(104, 136)]  # 152 px before the full-size share was held back
    assert read_image(out).shape == (300, 400, 3)


def test_where_it_fits_or_the_side_is_given_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = _photo(tmp_path)
    runner = Seen()
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 10**9)
    cartoonize_images(ImageJob((photo,), tmp_path / "a.png"), lambda: runner)
    # 0.4 GB: too little for the full size (0.46 GB), enough for the user's choice (0.28 GB), which
    # is kept (one that does not fit is refused: test_huge_photos)
    monkeypatch.setattr(memory, "available_memory", lambda: 400 * 10**6)
    job = ImageJob((photo,), tmp_path / "b.png", stages=StageOptions(infer_side=200))  # the user's choice
    cartoonize_images(job, lambda: runner)
    assert runner.sizes == [(300, 400), (152, 200)]


def test_the_full_size_share_is_held_back_and_a_photo_too_big_for_it_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a photo needs at its full size (the stages' planes, the JPEG encoder: about 90 bytes a
    pixel, 9 GB for 96 MP) comes out of the memory before the network is sized: a 48 MP photo with
    12 GB free had its network sized to fill 80% of it, and was killed at full size. Where even the
    full size does not fit, the photo is refused with the --max-side that fits, not killed."""
    monkeypatch.setattr(memory, "available_memory", lambda: 12 * 10**9)
    mp48 = (6000, 8000)
    with pytest.warns(CartoonizeWarning, match=r"p\.jpg is 48\.0 MP: .* it runs at"):
        side = image._side_that_fits(tmp_path / "p.jpg", *mp48)
    assert side is not None and side < memory.fitting_side(*mp48, available=12 * 10**9)  # type: ignore[operator]
    h, w = round(6000 * side / 8000), side
    assert memory.cpu_need(h, w) + image.FULL_SIZE_BYTES_PER_PIXEL * 48e6 <= 12e9
    monkeypatch.setattr(memory, "available_memory", lambda: 6 * 10**9)
    with pytest.raises(CartoonizeError, match=r"p\.jpg is 96 MP: at full size it needs about 8\.6 GB and 6\.0 GB is "
                                              r"free; --max-side 8\d\d\d makes it fit"):  # fmt: skip
        image._side_that_fits(tmp_path / "p.jpg", 8000, 12000)
