"""`cartoonize image`: files and folders of photos, through PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines.image import ImageJob, cartoonize_images, read_image, write_image
from tests.helpers import pattern


def make_runner(checkpoint: Path):
    return lambda: runner_for(EngineRequest(engine="torch", model=checkpoint, device="cpu"))


def test_png_round_trip_is_lossless(tmp_path: Path) -> None:
    image = pattern(37, 29, 0)
    write_image(tmp_path / "p.png", image)
    assert np.array_equal(read_image(tmp_path / "p.png"), image)


def test_jpeg_and_max_side(tmp_path: Path) -> None:
    write_image(tmp_path / "p.jpg", pattern(200, 100, 0))
    assert read_image(tmp_path / "p.jpg").shape == (100, 200, 3)
    assert read_image(tmp_path / "p.jpg", max_side=50).shape == (25, 50, 3)


def test_one_photo_to_a_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", pattern(40, 30, 0))
    cartoonize_images(ImageJob((tmp_path / "in.png",), tmp_path / "out.jpg"), make_runner(tiny_checkpoint))
    assert read_image(tmp_path / "out.jpg").shape == (30, 40, 3)


def test_folder_to_folder_recursive(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_image(tmp_path / "in" / "a.png", pattern(32, 24, 0))
    write_image(tmp_path / "in" / "sub" / "b.jpg", pattern(20, 44, 1))
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    written = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert sorted(p.name for p in written) == ["a.png", "b.png"]
    assert read_image(tmp_path / "out" / "b.png").shape == (44, 20, 3)


def test_bad_inputs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CartoonizeError, match="does not exist"):
        cartoonize_images(
            ImageJob((tmp_path / "missing.png",), tmp_path / "o.png"), make_runner(tiny_checkpoint)
        )
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(
        CartoonizeError,
        match=r"fake\.png is not a readable image \(Invalid data found when processing input\)$",
    ):
        cartoonize_images(
            ImageJob((tmp_path / "fake.png",), tmp_path / "o.png"), make_runner(tiny_checkpoint)
        )
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(CartoonizeError, match="not a readable image"):  # into a folder not made yet
        cartoonize_images(
            ImageJob((tmp_path / "fake.png",), tmp_path / "new" / "o"), make_runner(tiny_checkpoint)
        )
    assert not (tmp_path / "new").exists()  # a failed job leaves no empty folder behind
    write_image(tmp_path / "in.png", pattern(16, 16, 0))
    with pytest.raises(CartoonizeError, match="is the input"):
        cartoonize_images(
            ImageJob((tmp_path / "in.png",), tmp_path / "in.png", overwrite=True),
            make_runner(tiny_checkpoint),
        )
    (tmp_path / "taken.png").write_bytes(b"keep")
    with pytest.raises(CartoonizeError, match="--overwrite"):
        cartoonize_images(
            ImageJob((tmp_path / "in.png",), tmp_path / "taken.png"), make_runner(tiny_checkpoint)
        )
    assert (tmp_path / "taken.png").read_bytes() == b"keep"


def test_infer_side_writes_the_photo_at_its_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from cartoonize.stages import StageOptions

    write_image(tmp_path / "in.png", pattern(120, 80, 0))
    job = ImageJob((tmp_path / "in.png",), tmp_path / "out.png", stages=StageOptions(infer_side=40))
    cartoonize_images(job, make_runner(tiny_checkpoint))
    assert read_image(tmp_path / "out.png").shape == (80, 120, 3)


def test_raw_is_the_network_output_exactly_and_exposure_is_on_by_default(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from cartoonize.stages import StageOptions

    photo = (pattern(64, 48, 0) // 4).astype(np.uint8)  # a dim photo: exposure has work to do
    src = tmp_path / "dim.png"
    write_image(src, photo)
    raw_out, default_out = tmp_path / "raw.png", tmp_path / "default.png"
    cartoonize_images(ImageJob((src,), raw_out, stages=StageOptions(raw=True)), make_runner(tiny_checkpoint))
    cartoonize_images(ImageJob((src,), default_out), make_runner(tiny_checkpoint))
    with make_runner(tiny_checkpoint)() as runner:
        network = runner(photo[None])[0]
    assert np.array_equal(read_image(raw_out), network)  # today's output, bit for bit
    brightness = [float(read_image(p).mean()) for p in (src, raw_out, default_out)]
    assert abs(brightness[2] - brightness[0]) < abs(brightness[1] - brightness[0])  # closer to the photo's


def test_a_bad_photo_in_a_folder_does_not_stop_the_others(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """As with folders of videos: every readable photo is cartoonized, and then one line says how
    many failed, the first one's reason, and where the others went (exit 1 from the CLI)."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", pattern(16, 12, 0))
    (tmp_path / "in" / "b.png").write_text("not a png")
    write_image(tmp_path / "in" / "c.jpg", pattern(20, 8, 1))
    with pytest.raises(
        CartoonizeError, match=r"^1 of 3 images failed \(.*b\.png is not a readable image.*\); the other 2"
    ):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_several_photos_into_a_file_name_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, pattern(16, 12, 0))
    job = ImageJob((tmp_path / "a.png", tmp_path / "b.png"), tmp_path / "both.png")
    with pytest.raises(CartoonizeError, match=r"^2 images go into a folder, and --output .*both\.png is named like "
                                              r"an image; give a folder \(.*both/\)$"):  # fmt: skip
        cartoonize_images(job, make_runner(tiny_checkpoint))
    assert not (tmp_path / "both.png").exists()


AV1_ENCODERS = [
    name for name in ("libsvtav1", "libaom-av1", "librav1e") if name in __import__("av").codecs_available
]


def write_heif(path: Path, tiles: int, codec: str, brand: str) -> Path:
    """A HEIF-branded file holding `tiles` 32×24 pictures, each its own stream, as FFmpeg shows a
    tiled phone photo (and, with one, a plain AVIF image)."""
    import av

    options = {"brand": brand} if brand != "avif" else {}
    with av.open(str(path), "w", format="avif" if brand == "avif" else "mp4", options=options) as out:
        streams = [out.add_stream(codec, rate=1) for _ in range(tiles)]
        for stream in streams:
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for k, stream in enumerate(streams):
            frame = av.VideoFrame.from_ndarray(pattern(32, 24, k), format="rgb24").reformat(format="yuv420p")
            frame.pts = 0
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
    return path


@pytest.mark.skipif(not AV1_ENCODERS, reason="this FFmpeg build has no AV1 encoder to make an AVIF with")
def test_an_avif_photo_in_a_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_heif(tmp_path / "in" / "phone.avif", 1, AV1_ENCODERS[0], "avif")
    written = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert [p.name for p in written] == ["phone.png"] and read_image(written[0]).shape == (24, 32, 3)


def test_a_tiled_heif_photo_is_refused_not_read_as_one_tile(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = write_heif(tmp_path / "IMG_0001.heic", 4, "libx264", "mif1")
    with pytest.raises(CartoonizeError, match=r"IMG_0001\.heic is a tiled image \(4 tiles of 32×24, as phones save "
                                              r"HEIF photos\), and PyAV cannot join the tiles: convert it first "
                                              r"\(`heif-convert IMG_0001\.heic IMG_0001\.jpg`"):  # fmt: skip
        cartoonize_images(ImageJob((src,), tmp_path / "out.png"), make_runner(tiny_checkpoint))
    assert not (tmp_path / "out.png").exists()
