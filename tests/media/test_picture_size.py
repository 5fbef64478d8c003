"""The size a photo's header says, read before its picture (media.photo_file, media.tiff,
media.opencv_photo): what says that a photo is too large to decode, or how far a JPEG can be
decoded reduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.media import opencv_photo, photo_file, tiff
from cartoonize.pipelines.image import write_image


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".jpg"])
def test_every_type_says_its_size(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"photo{suffix}"
    write_image(path, np.zeros((37, 53, 3), np.uint8))
    found = {".png": photo_file.picture_size, ".webp": photo_file.picture_size, ".tif": tiff.size}
    if suffix == ".jpg":
        assert opencv_photo.jpeg_layout(path) == (53, 37, 1, 1)  # written 4:4:4
    else:
        assert found[suffix](path) == (53, 37)
    assert photo_file.picture_size(tmp_path / "none.png") is None


@pytest.mark.parametrize("quality", [80, 101])  # lossy (VP8), lossless (VP8L)
def test_a_simple_webp_says_its_size(quality: int, tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "photo.webp"
    assert cv2.imwrite(str(path), np.zeros((37, 53, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, quality])
    assert photo_file.picture_size(path) == (53, 37)


@pytest.mark.parametrize(("subsampling", "steps"), [(0, (1, 1)), (1, (2, 1)), (2, (2, 2))])
def test_a_jpegs_colour_sampling(subsampling: int, steps: tuple[int, int], tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(path, subsampling=subsampling)
    assert opencv_photo.jpeg_layout(path) == (53, 37, *steps)
    Image.fromarray(np.zeros((37, 53), np.uint8)).save(path)
    assert opencv_photo.jpeg_layout(path) == (53, 37, 1, 1)  # grey
