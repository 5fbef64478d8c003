"""Edge-promoting preprocessing: only the pixels near edges change; the cache is reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tests.train.conftest import REPO, write_images  # noqa: E402
from train.data import LoadScale  # noqa: E402
from train.edges import edge_mask, prepare_edges, smooth_edges  # noqa: E402


def shapes_image() -> np.ndarray:
    image = np.full((96, 128, 3), (40, 120, 200), np.uint8)  # flat background
    cv2.rectangle(image, (20, 20), (60, 70), (250, 250, 30), -1)
    cv2.circle(image, (95, 48), 20, (10, 10, 10), -1)
    return image


def test_only_pixels_within_the_dilated_edges_change() -> None:
    image = shapes_image()
    mask = edge_mask(image)
    smoothed = smooth_edges(image)
    changed = (smoothed != image).any(axis=2)
    assert changed.any(), "the blur must change the pixels along the edges"
    assert not (changed & ~mask).any(), "a pixel outside the dilated edges changed"
    # flat regions far from every edge are untouched, bit for bit
    assert (smoothed[80:, :] == image[80:, :]).all()
    assert (smoothed[:15, :] == image[:15, :]).all()
    assert (smoothed[30:60, 30:50] == image[30:60, 30:50]).all()  # inside the rectangle
    # and the band is what the recipe says: Canny edges dilated by 5x5
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 100, 200)
    assert (mask == (cv2.dilate(edges, np.ones((5, 5), np.uint8)) > 0)).all()
    blurred = cv2.GaussianBlur(image, (5, 5), 0)
    assert (smoothed[mask] == blurred[mask]).all()


def test_cache_is_reused_and_updated(tmp_path: Path) -> None:
    cartoons = tmp_path / "cartoons"
    write_images(cartoons, 5, seed=3)
    (cartoons / "notes.txt").write_text("not an image")
    (cartoons / "broken.png").write_bytes(b"not a png")
    cache = tmp_path / "cache"

    first = prepare_edges(cartoons, cache, threads=1)
    assert (first.computed, first.skipped, len(first.sources)) == (5, 1, 5)
    assert all(p.exists() for p in first.smoothed)
    source = cv2.imread(str(first.sources[0]))
    assert (cv2.imread(str(first.smoothed[0])) == smooth_edges(source)).all()  # PNG: lossless

    second = prepare_edges(cartoons, cache, threads=1)
    assert second.computed == 0 and second.smoothed == first.smoothed

    cv2.imwrite(str(first.sources[0]), np.zeros((40, 40, 3), np.uint8))  # a changed file is redone
    first.sources[1].unlink()  # a removed one is dropped from the cache
    third = prepare_edges(cartoons, cache, threads=1)
    assert third.computed == 1 and len(third.sources) == 4
    assert not first.smoothed[1].exists()


def test_load_scale_shapes() -> None:
    image = np.zeros((72, 88, 3), np.uint8)
    assert LoadScale(64, "stretch")(image).shape == (64, 64, 3)
    assert LoadScale(64, "short-side")(image).shape == (64, 78, 3)
    assert LoadScale(144, "short-side")(image).shape == (144, 176, 3)
    assert LoadScale(0)(image) is image


def test_smoothing_runs_at_the_training_scale_and_each_scale_has_its_cache(tmp_path: Path) -> None:
    cartoons, cache = tmp_path / "cartoons", tmp_path / "cache"
    write_images(cartoons, 3, seed=4, size=(120, 160))
    small = LoadScale(64, "stretch")
    first = prepare_edges(cartoons, cache, threads=1, scale=small)
    assert first.computed == 3 and all(
        p.parent == cache / "64-stretch" for p in first.smoothed + first.scaled
    )
    source = cv2.imread(str(first.sources[0]))
    scaled = cv2.resize(source, (64, 64), interpolation=cv2.INTER_AREA)
    assert (cv2.imread(str(first.scaled[0])) == scaled).all()
    assert (cv2.imread(str(first.smoothed[0])) == smooth_edges(scaled)).all()
    assert not (cv2.imread(str(first.smoothed[0])) == smooth_edges(source)[:64, :64]).all()

    native = prepare_edges(cartoons, cache, threads=1)  # another scale: its own folder
    assert native.computed == 3 and native.scaled == native.sources
    assert cv2.imread(str(native.smoothed[0])).shape == (120, 160, 3)
    again = prepare_edges(cartoons, cache, threads=1, scale=small)  # the first is still there
    assert again.computed == 0 and again.smoothed == first.smoothed


def test_runs_filling_one_cache_at_once_each_write_their_own_files(tmp_path: Path) -> None:
    """Two trainings (a sweep) or `train prepare`s on one cartoon folder write the same cached
    pictures at once: with one shared temporary name, one process's rename found the file gone
    (a traceback, 2 of 3 tries on 120 720p frames). Two processes writing one picture 300 times
    each, as fast as they can: both finish, and the picture is whole."""
    import subprocess
    import sys

    target = tmp_path / "cache" / "0123abcd.png"
    target.parent.mkdir()
    code = (
        "import sys, numpy as np; from pathlib import Path; from train.data import write_image\n"
        "for i in range(300): write_image(Path(sys.argv[1]), np.full((32, 48, 3), i % 256, np.uint8))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(target)], cwd=REPO, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in errors), errors
    assert cv2.imread(str(target)).shape == (32, 48, 3)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary left
