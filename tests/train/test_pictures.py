"""Training pictures: transparency laid on white, sizes from headers, and what scaling costs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tests.train.conftest import TINY, tiny_args, write_images  # noqa: E402
from tests.train.test_cli import run_cli  # noqa: E402
from train.data import NATIVE, Item, LoadScale, UnpairedImages, read_rgb, scale_warnings  # noqa: E402
from train.edges import MANIFEST, prepare_edges  # noqa: E402
from train.pictures import has_alpha, image_size  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def cut_out(path: Path) -> None:
    """64x64 BGRA: an opaque red disc and a half-transparent green band on a transparent
    background whose stored colour is black, as an editor leaves it."""
    picture = np.zeros((64, 64, 4), np.uint8)
    picture[40:48, :] = (0, 255, 0, 128)
    cv2.circle(picture, (32, 20), 10, (0, 0, 255, 255), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_WEBP_QUALITY, 101] if path.suffix == ".webp" else [])


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_transparent_pictures_are_laid_on_white(tmp_path: Path, suffix: str) -> None:
    """OpenCV's colour read dropped the alpha: the transparent background trained as the black
    stored under it, in the photos, the cartoons and their edge-smoothed copies."""
    cartoons = tmp_path / "cartoons"
    path = cartoons / f"cut{suffix}"
    cut_out(path)
    assert has_alpha(path)
    rgb = read_rgb(path)
    assert rgb.shape == (64, 64, 3)
    assert (rgb[0, 0] == 255).all() and (rgb[63, 63] == 255).all()  # transparent: white
    assert tuple(rgb[20, 32]) == (255, 0, 0)  # opaque: its own colour (RGB)
    assert tuple(rgb[44, 2]) == pytest.approx((127, 255, 127), abs=1)  # half: halfway to white

    item = Item(photo=0, cartoon=0, seed=0)
    batch = UnpairedImages([path], [path], [path], size=64, scale=NATIVE)[item]  # native: as stored
    for name in ("photo", "cartoon", "smoothed"):  # corners (flipped or not): transparent, white
        assert (batch[name][:, [0, 63], [0, 63]] == 1.0).all(), name

    edges = prepare_edges(cartoons, tmp_path / "cache", threads=1, scale=LoadScale(64))
    for copy in (edges.scaled[0], edges.smoothed[0]):
        assert (cv2.imread(str(copy))[:4, :4] == 255).all(), copy

    # a cache made before (its copies black where transparent) is made again, for this file only
    manifest_path = tmp_path / "cache" / "64-stretch" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["entries"].values():
        del entry["background"]
    manifest_path.write_text(json.dumps(manifest))
    again = prepare_edges(cartoons, tmp_path / "cache", threads=1, scale=LoadScale(64))
    assert again.computed == 1


def test_opaque_pictures_read_as_before(tmp_path: Path) -> None:
    write_images(tmp_path, 3, seed=3)
    for path in sorted(tmp_path.rglob("*.*")):
        assert not has_alpha(path)
        assert (read_rgb(path) == cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)).all()


@pytest.mark.parametrize(
    ("suffix", "params"),
    [
        (".jpg", []),
        (".png", []),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: VP8
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
        (".bmp", []),
        (".tif", []),
    ],
)
def test_sizes_from_headers_are_the_decoded_ones(tmp_path: Path, suffix: str, params: list[int]) -> None:
    path = tmp_path / f"wide{suffix}"
    cv2.imwrite(str(path), np.full((37, 301, 3), 90, np.uint8), params)
    assert image_size(path) == (301, 37)
    cut = tmp_path / "cut.webp"  # with alpha: VP8X
    cut_out(cut)
    assert image_size(cut) == (64, 64)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert image_size(tmp_path / "broken.jpg") is None


def test_scale_warnings_count_upscaled_and_squashed_pictures(tmp_path: Path) -> None:
    write_images(tmp_path, 3, seed=3)  # 88x72: none of them
    photos = sorted(tmp_path.rglob("*.*"))
    pano = tmp_path / "pano.png"
    cv2.imwrite(str(pano), np.zeros((20, 400, 3), np.uint8))
    assert scale_warnings(photos, LoadScale(40), 32, "photos") == []
    assert scale_warnings(photos, NATIVE, 32, "photos") == []

    stretch = scale_warnings([*photos, pano], LoadScale(40), 32, "photos")
    assert len(stretch) == 2
    assert stretch[0].startswith(f"1 of 4 photos have a side below --load-size 40 (e.g. {pano}, 400x20)")
    assert stretch[1].startswith(f"1 of 4 photos are wider or taller than 2:1 (e.g. {pano}, 400x20)")
    assert "--load-fit short-side" in stretch[1]
    short_side = scale_warnings([*photos, pano], LoadScale(40, "short-side"), 32, "photos")
    assert len(short_side) == 1 and "below --load-size 40" in short_side[0]  # not squashed
    native = scale_warnings([*photos, pano], NATIVE, 16, "photos")
    assert native == []  # 20 px tall is not below a 16 px crop
    native = scale_warnings([*photos, pano], NATIVE, 32, "photos")
    assert len(native) == 1 and "below the 32 px crop" in native[0]


def test_a_run_says_once_how_many_pictures_scaling_costs(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """A panorama among the photos was squashed into a square (the default --load-fit stretch) and
    its 20 px height upscaled 2x, and a small cartoon upscaled, without a word."""
    photos, cartoons = folders
    cv2.imwrite(str(photos / "pano.jpg"), np.full((20, 400, 3), 100, np.uint8))
    cv2.imwrite(str(cartoons / "small.png"), np.full((30, 30, 3), 200, np.uint8))
    assert TINY["load_size"] == 40
    args = tiny_args(init_epochs=1, init_decay_epochs=0, adv_epochs=0, decay_epochs=0)
    code, text = run_cli(
        "--photos", str(photos), "--cartoons", str(cartoons), "--out", str(tmp_path / "r"), *args
    )
    assert code == 0, text
    lines = [line for line in text.splitlines() if line.startswith("warning: ") and " of 7 " in line]
    assert lines == [
        f"warning: 1 of 7 photos have a side below --load-size 40 (e.g. {photos / 'pano.jpg'}, 400x20): "
        "scaled up to it, they train blurry; leave them out or use larger ones",
        f"warning: 1 of 7 photos are wider or taller than 2:1 (e.g. {photos / 'pano.jpg'}, 400x20): "
        "--load-fit stretch squashes each into 40x40; --load-fit short-side keeps their aspect",
        f"warning: 1 of 7 cartoons have a side below --load-size 40 (e.g. {cartoons / 'small.png'}, 30x30): "
        "scaled up to it, they train blurry; leave them out or use larger ones",
    ], text
