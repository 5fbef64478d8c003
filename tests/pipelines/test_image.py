"""`cartoonize image`: files and folders of photos, through PyAV."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError, CartoonizeWarning
from cartoonize.media.files import BT709, LIMITED, SMPTE170M, Colour
from cartoonize.media.scheduling import open_encoder
from cartoonize.pipelines.image import (
    IMAGE_SUFFIXES,
    ImageJob,
    cartoonize_images,
    read_image,
    read_image_and_alpha,
    write_image,
)
from cartoonize.runners.base import Runner
from tests.helpers import BARS, colour_bars, pattern, untagged_video


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
    report = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert report.written == [tmp_path / "out" / "a.png", tmp_path / "out" / "sub" / "b.png"]
    assert report.skipped == [] and read_image(tmp_path / "out" / "sub" / "b.png").shape == (44, 20, 3)


def test_a_folder_keeps_its_subfolders_and_leaves_hidden_files(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Photos of one name in two subfolders (a camera numbers from IMG_0001 again) both come out,
    each in its subfolder; macOS's `._` files and hidden folders are not photos."""
    for folder in ("2023", "2024", ".thumbnails"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        write_image(tmp_path / "in" / folder / "IMG_0001.jpg", pattern(16, 12, int(folder[-1] == "4")))
    (tmp_path / "in" / "2024" / "._IMG_0001.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    report = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert report.written == [tmp_path / "out" / y / "IMG_0001.png" for y in ("2023", "2024")]
    first, second = (read_image(path) for path in report.written)
    assert first.shape == (12, 16, 3) and not np.array_equal(first, second)
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "2024").write_text("a file where a subfolder goes")
    with pytest.raises(CartoonizeError, match=r"out2/2024 is a file"):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out2"), no_inference)


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
            open_encoder(stream)  # (SVT-AV1 as root: media/scheduling)
            frame = av.VideoFrame.from_ndarray(pattern(32, 24, k), format="rgb24").reformat(format="yuv420p")
            frame.pts = 0
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
    return path


@pytest.mark.skipif(not AV1_ENCODERS, reason="this FFmpeg build has no AV1 encoder to make an AVIF with")
def test_an_avif_photo_in_a_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_heif(tmp_path / "in" / "phone.avif", 1, AV1_ENCODERS[0], "avif")
    written = cartoonize_images(
        ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint)
    ).written
    assert [p.name for p in written] == ["phone.png"] and read_image(written[0]).shape == (24, 32, 3)


def test_a_tiled_heif_photo_is_refused_not_read_as_one_tile(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = write_heif(tmp_path / "IMG_0001.heic", 4, "libx264", "mif1")
    with pytest.raises(CartoonizeError, match=r"IMG_0001\.heic is a tiled image \(4 tiles of 32×24, as phones save "
                                              r"HEIF photos\), and PyAV cannot join the tiles: convert it first "
                                              r"\(`heif-convert IMG_0001\.heic IMG_0001\.jpg`"):  # fmt: skip
        cartoonize_images(ImageJob((src,), tmp_path / "out.png"), make_runner(tiny_checkpoint))
    assert not (tmp_path / "out.png").exists()


COLOURS = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (30, 60, 200),
    (200, 120, 40),
    (255, 255, 255),
]


def colour_patches() -> np.ndarray:
    """16×16 patches of flat colour side by side: a channel swap or a wrong matrix shows at once."""
    return np.concatenate([np.full((16, 16, 3), c, np.uint8) for c in COLOURS], axis=1)


@pytest.mark.parametrize("suffix", sorted(IMAGE_SUFFIXES))
def test_every_output_type_keeps_its_colours(suffix: str, tmp_path: Path) -> None:
    """Each type the README lists as an output is written (the bmp encoder takes BGR, not RGB)
    and read back with the colours it was given, by this reader and by Pillow's."""
    path = tmp_path / f"p{suffix}"
    write_image(path, colour_patches())
    centres = [(8, 16 * i + 8) for i in range(len(COLOURS))]
    back = read_image(path)
    assert back.shape == (16, 16 * len(COLOURS), 3)
    for (y, x), colour in zip(centres, COLOURS, strict=True):
        assert np.abs(back[y, x].astype(int) - colour).max() <= 3, (suffix, colour, back[y, x])
    image_module = pytest.importorskip("PIL.Image")
    with image_module.open(path) as other:
        theirs = np.asarray(other.convert("RGB"))
    for (y, x), colour in zip(centres, COLOURS, strict=True):
        assert np.abs(theirs[y, x].astype(int) - colour).max() <= 3, (suffix, colour, theirs[y, x])


@pytest.mark.parametrize("name", ["x.gif", "x.avif", "x.heic", "x.mp4"])
def test_an_output_named_like_a_type_this_cannot_write_is_refused(
    name: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Not a folder named x.gif holding in.png: one line naming the types it writes."""
    write_image(tmp_path / "in.png", pattern(16, 12, 0))
    with pytest.raises(CartoonizeError, match=rf"^{name}: unsupported image type; use one of \.jpg, .*\.png"):
        cartoonize_images(
            ImageJob((tmp_path / "in.png",), tmp_path / "out" / name), make_runner(tiny_checkpoint)
        )
    assert not (tmp_path / "out").exists()


def test_a_folder_named_with_a_dot_is_still_a_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", pattern(16, 12, 0))
    report = cartoonize_images(
        ImageJob((tmp_path / "in.png",), tmp_path / "cartoons.2024"), make_runner(tiny_checkpoint)
    )
    assert report.written == [tmp_path / "cartoons.2024" / "in.png"]


def rotated_rgba_png(path: Path) -> np.ndarray:
    """A 40×24 RGBA PNG stored sideways (EXIF orientation 6: turn 90° clockwise to show it), with a
    transparent band along its stored top and a half-transparent one down its left; returns the
    alpha plane as it is shown (24 wide, 40 high)."""
    image_module = pytest.importorskip("PIL.Image")
    rgba = np.dstack([pattern(40, 24, 0), np.full((24, 40), 255, np.uint8)])
    rgba[:5, :, 3] = 0
    rgba[:, :3, 3] = 128
    exif = image_module.Exif()
    exif[0x0112] = 6
    image_module.fromarray(rgba, "RGBA").save(path, exif=exif)
    return np.ascontiguousarray(np.rot90(rgba[..., 3], -1))  # clockwise


def test_transparency_is_carried_onto_the_cartoon(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """PNG, WebP and TIFF keep the photo's alpha, turned upright and scaled as the picture is."""
    shown = rotated_rgba_png(tmp_path / "logo.png")
    rgb, alpha = read_image_and_alpha(tmp_path / "logo.png")
    assert rgb.shape == (40, 24, 3) and alpha is not None and np.array_equal(alpha, shown)
    for suffix in (".png", ".webp", ".tif"):
        out = tmp_path / f"cartoon{suffix}"
        cartoonize_images(ImageJob((tmp_path / "logo.png",), out), make_runner(tiny_checkpoint))
        cartoon, kept = read_image_and_alpha(out)
        assert cartoon.shape == (40, 24, 3) and kept is not None, suffix
        assert np.abs(kept.astype(int) - shown).max() <= 1, suffix  # WebP's alpha: within 1
    cartoonize_images(ImageJob((tmp_path / "logo.png",), tmp_path / "small.png", max_side=20),
                      make_runner(tiny_checkpoint))  # fmt: skip
    _, small = read_image_and_alpha(tmp_path / "small.png")
    assert small is not None and np.array_equal(small, read_image_and_alpha(tmp_path / "logo.png", 20)[1])
    assert small.shape == (20, 12)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_transparency_a_type_cannot_hold_is_a_warning(
    suffix: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    rotated_rgba_png(tmp_path / "logo.png")
    out = tmp_path / f"cartoon{suffix}"
    with pytest.warns(
        CartoonizeWarning, match=rf"logo\.png has transparency, which a \{suffix} file cannot hold"
    ):
        cartoonize_images(ImageJob((tmp_path / "logo.png",), out), make_runner(tiny_checkpoint))
    assert read_image_and_alpha(out)[0].shape == (40, 24, 3)


def test_transparent_parts_become_white_where_the_type_is_opaque(tmp_path: Path) -> None:
    """A logo whose transparent half hides black pixels (as editors leave them), written as JPEG:
    the network gets it as it is shown, on white; the hidden black came out in the cartoon."""
    from cartoonize.stages import StageOptions
    from tests.pipelines.test_yuv_frames import Identity

    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[:, :24] = (200, 30, 30, 255)  # opaque red, the right half transparent black
    rgba[:, 24:28] = (200, 30, 30, 128)  # and a half-transparent red seam
    write_image(tmp_path / "logo.png", rgba)
    out = tmp_path / "logo.jpg"
    with pytest.warns(CartoonizeWarning, match="its transparent parts white"):
        cartoonize_images(ImageJob((tmp_path / "logo.png",), out, stages=StageOptions(raw=True)), Identity)
    shown = read_image(out).astype(int)
    assert shown[:, 32:].min() >= 245 and np.abs(shown[:, :20] - (200, 30, 30)).max() <= 12
    assert np.abs(shown[8:24, 25] - (228, 143, 143)).max() <= 12  # half red, half white


def test_a_webp_alpha_reads_the_same_every_time(tmp_path: Path) -> None:
    """WebP decodes to yuva420p, which FFmpeg 8.1's swscale turns into RGBA differently now and
    then (a few pixels in about 1 read of 100): the alpha plane is read as it is instead."""
    rgba = np.dstack([pattern(24, 40, 0), np.full((40, 24), 255, np.uint8)])
    rgba[:, -5:, 3], rgba[:3, :, 3] = 0, 128
    write_image(tmp_path / "a.webp", rgba)
    reads = {b"".join(a.tobytes() for a in read_image_and_alpha(tmp_path / "a.webp")) for _ in range(600)}
    assert len(reads) == 1


def test_an_opaque_photo_has_no_alpha(tmp_path: Path) -> None:
    write_image(tmp_path / "opaque.png", np.dstack([pattern(16, 12, 0), np.full((12, 16), 255, np.uint8)]))
    assert read_image_and_alpha(tmp_path / "opaque.png")[1] is None


def cut_short(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_cut_short_jpeg_is_refused_not_smeared(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """FFmpeg's JPEG decoder fills a cut-short photo with grey and says nothing unless asked."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.jpg", pattern(96, 64, 0))
    write_image(tmp_path / "in" / "cut.jpg", pattern(96, 64, 1))
    cut_short(tmp_path / "in" / "cut.jpg")
    with pytest.raises(CartoonizeError, match=r"cut\.jpg is not a readable image \(Invalid data"):
        cartoonize_images(
            ImageJob((tmp_path / "in" / "cut.jpg",), tmp_path / "o.png"), make_runner(tiny_checkpoint)
        )
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(CartoonizeError, match=r"^1 of 2 images failed \(.*cut\.jpg is not a readable image"):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def no_inference() -> Runner:
    raise AssertionError("the runner was made: the output should have been refused before any work")


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", pattern(16, 12, 0))
    (tmp_path / "photos").mkdir()
    write_image(tmp_path / "photos" / "a.png", pattern(16, 12, 0))
    write_image(tmp_path / "photos" / "b.png", pattern(16, 12, 1))
    cases = [
        ((tmp_path / "in.png",), tmp_path / "in.png" / "x.png", r"output folder .*in\.png is a file, not a folder"),
        ((tmp_path / "photos",), tmp_path / "in.png" / "dir", r"output folder .*in\.png is a file, not a folder"),
    ]  # fmt: skip
    if Path("/proc/self").is_dir():  # nothing can be created there, also by root, whom os.access lets by
        cases.append(((tmp_path / "in.png",), Path("/proc/x.png"), r"output folder /proc is not writable"))
        cases.append(((tmp_path / "photos",), Path("/proc/new/out"), r"output folder /proc is not writable"))
    for inputs, output, message in cases:
        with pytest.raises(CartoonizeError, match=message):
            cartoonize_images(ImageJob(inputs, output), no_inference)


def test_a_folder_skips_outputs_that_exist(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """As `video` does with folders: an existing cartoon is skipped and counted, not a reason to
    refuse the batch; --overwrite replaces it."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", pattern(16, 12, 0))
    write_image(tmp_path / "in" / "b.jpg", pattern(16, 12, 1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"keep")
    report = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert report.written == [tmp_path / "out" / "b.png"] and report.skipped == [tmp_path / "out" / "a.png"]
    assert (tmp_path / "out" / "a.png").read_bytes() == b"keep"
    assert report.summary(tmp_path / "out").endswith("1 skipped (output exists; --overwrite replaces it)")
    again = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), no_inference)
    assert again.written == [] and len(again.skipped) == 2
    replaced = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out", overwrite=True),
                                 make_runner(tiny_checkpoint))  # fmt: skip
    assert len(replaced.written) == 2 and read_image(tmp_path / "out" / "a.png").shape == (12, 16, 3)


def test_two_photos_for_one_output_are_both_named(tmp_path: Path) -> None:
    (tmp_path / "in" / "x").mkdir(parents=True)
    for name in ("p.png", "p.jpg"):
        write_image(tmp_path / "in" / "x" / name, pattern(16, 12, 0))
    with pytest.raises(
        CartoonizeError, match=r"in/x/p\.jpg and .*in/x/p\.png would both be written to .*out/x/p\.png"
    ):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), no_inference)


def test_a_photo_given_twice_is_cartoonized_once(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named twice (a shell glob and the name again), or named and inside a folder given: one
    cartoon and a warning, where "rename one" was said of a single file, and two names of one photo
    for a file output were "2 images go into a folder"."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", pattern(16, 12, 0))
    write_image(tmp_path / "in" / "b.png", pattern(16, 12, 1))
    monkeypatch.chdir(tmp_path)
    once = r"in/a\.png is given more than once; it is cartoonized once"
    with pytest.warns(CartoonizeWarning, match=once):
        report = cartoonize_images(
            ImageJob((Path("in/a.png"), tmp_path / "in" / "a.png"), tmp_path / "a.jpg"),
            make_runner(tiny_checkpoint),
        )
    assert report.written == [tmp_path / "a.jpg"]
    with pytest.warns(CartoonizeWarning, match=once):
        report = cartoonize_images(
            ImageJob((Path("in"), Path("in/a.png")), tmp_path / "out"), make_runner(tiny_checkpoint)
        )
    assert sorted(p.name for p in report.written) == ["a.png", "b.png"]


def test_an_output_folder_inside_the_input_folder_is_not_read_back(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", pattern(16, 12, 0))
    write_image(tmp_path / "in" / "b.jpg", pattern(16, 12, 1))
    job = ImageJob((tmp_path / "in",), tmp_path / "in" / "cartoons")
    assert len(cartoonize_images(job, make_runner(tiny_checkpoint)).written) == 2
    rerun = cartoonize_images(job, no_inference)  # its cartoons are not photos to cartoonize
    assert rerun.written == [] and sorted(p.name for p in rerun.skipped) == ["a.png", "b.png"]
    with pytest.raises(CartoonizeError, match=r"--output .*in is the input folder; give another folder"):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "in"), no_inference)


def test_the_help_says_the_type_follows_the_suffix(capsys: pytest.CaptureFixture[str]) -> None:
    from cartoonize.cli import main

    with pytest.raises(SystemExit):
        main(["image", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "outputs are PNG" not in text
    assert "type follows its suffix" in text.replace("│ ", "")


def test_the_cli_refuses_a_bad_output_before_the_styles_first_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line, before the style is fetched (an empty cache, a mirror that is not there)."""
    from cartoonize.cli import main

    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", (tmp_path / "no-mirror").as_uri())
    write_image(tmp_path / "in.png", pattern(16, 12, 0))
    for output, message in (("in.png/x.png", "is a file, not a folder"), ("x.gif", "unsupported image type")):
        with pytest.raises(SystemExit) as exit_:
            main(["image", str(tmp_path / "in.png"), "-o", str(tmp_path / output), "--style", "hayao"])
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert message in " ".join(err.split()) and "Traceback" not in err, err
    assert not (tmp_path / "cache" / "styles" / "hayao.pt").exists()


def test_a_sized_engine_gets_one_runner_per_photo_size(tmp_path: Path) -> None:
    """`--engine aoti|tensorrt`: the stored engine for each photo's network size, opened once per size."""
    (tmp_path / "in").mkdir()
    for name, (w, h) in {"a": (40, 24), "b": (40, 24), "c": (36, 20)}.items():
        write_image(tmp_path / "in" / f"{name}.png", pattern(w, h, 0))
    opened: list[tuple[int, int]] = []

    class Sized(Runner):
        name = "sized"

        def load(self) -> None:
            pass

        def infer(self, frames: np.ndarray) -> np.ndarray:
            return frames

    def sized(size: tuple[int, int]) -> Runner:
        opened.append(size)
        return Sized()

    report = cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out"), None, sized_runner=sized)
    assert len(report.written) == 3 and sorted(opened) == [(20, 36), (24, 40)]

    # auto: a size with an engine stored for it runs on that engine, the others on the usual runner
    ran: list[str] = []

    class Named(Sized):
        def infer(self, frames: np.ndarray) -> np.ndarray:
            ran.append(self.name)
            return frames

    def stored(size: tuple[int, int]) -> Runner | None:
        return Named() if size == (24, 40) else None

    def usual() -> Runner:
        runner = Named()
        runner.name = "usual"
        return runner

    cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "auto"), usual, sized_runner=stored)
    assert ran == ["sized", "sized", "usual"]


def test_image_engine_aoti_says_which_size_has_no_engine(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    from tests.helpers import run_main

    write_image(tmp_path / "p.png", pattern(64, 48, 0))
    code, _, err = run_main(["image", str(tmp_path / "p.png"), "-o", str(tmp_path / "c.png"), "--engine", "aoti",
                             "--model", str(tiny_checkpoint), "--device", "cpu"], capsys)  # fmt: skip
    text = " ".join(err.split())
    assert code == 1 and "give --shape" not in text, text
    assert "no stored aoti engine fits 48x64" in text and "--shape 48x64" in text, text


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_an_animation_is_its_first_frame_with_a_warning(suffix: str, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    frames = [image_module.fromarray(pattern(32, 24, 0) // (1 + k)) for k in range(3)]
    frames[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], duration=100)
    with pytest.warns(
        CartoonizeWarning, match=r"anim\.\w+ has more than one frame; the cartoon is of the first"
    ):
        first = read_image(tmp_path / f"anim{suffix}")
    assert np.abs(first.astype(int) - pattern(32, 24, 0)).mean() < 8  # GIF: a palette of 256 colours
    frames[0].save(tmp_path / f"still{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(tmp_path / f"still{suffix}")


@pytest.mark.parametrize(("size", "matrix"), [((1280, 720), BT709), ((640, 480), SMPTE170M)])
def test_a_videos_first_frame_in_its_colours(size: tuple[int, int], matrix: int, tmp_path: Path) -> None:
    """A video given to `image` is read as `cartoonize video` reads it: an untagged HD one as
    BT.709 (swscale's default read it as BT.601: red came in at 232)."""
    bars = colour_bars(*size)
    untagged_video(tmp_path / "clip.mp4", bars, Colour(matrix, LIMITED, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CartoonizeWarning)  # more than one frame
        first = read_image(tmp_path / "clip.mp4")
    for i, colour in enumerate(BARS):
        got = first[size[1] // 2, (2 * i + 1) * size[0] // (2 * len(BARS))].astype(int)
        assert np.abs(got - colour).max() <= 4, (colour, got.tolist())


def test_an_animated_webp_is_refused_with_a_way_out(tmp_path: Path) -> None:
    """FFmpeg has no decoder for animated WebP: the error says what the file is and how to convert
    it, not "invalid data"."""
    image_module = pytest.importorskip("PIL.Image")
    frames = [image_module.fromarray(pattern(32, 24, k)) for k in range(3)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(CartoonizeError, match=r"anim\.webp is an animated WebP, which FFmpeg cannot decode"):
        read_image(tmp_path / "anim.webp")
    (tmp_path / "cut.webp").write_bytes((tmp_path / "anim.webp").read_bytes()[:15])
    with pytest.raises(CartoonizeError, match=r"cut\.webp is not a readable image"):
        read_image(tmp_path / "cut.webp")
