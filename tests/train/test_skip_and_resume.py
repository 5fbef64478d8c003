"""A picture that passes the scan but fails to decode is skipped (and said once), also from a worker
process; `--resume` takes the run's own options, and refuses only those given that change the training."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from cartoonize.errors import CartoonizeError  # noqa: E402
from tests.train.test_bad_input import SMALL  # noqa: E402
from tests.train.test_cli import assert_one_line_error, run_cli  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.data import Item, UnpairedImages  # noqa: E402
from train.loop import TrainingInterrupted  # noqa: E402
from train.run import train  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def corrupt_copy(photos: Path, name: str) -> Path:
    """A file whose header is a PNG's (the scan takes it) and whose pixels are cut off."""
    bad = photos / name
    bad.write_bytes((photos / "002.png").read_bytes()[:200])
    return bad


def test_an_undecodable_image_stands_in_for_the_next(folders: tuple[Path, Path]) -> None:
    photos, cartoons = folders
    bad = corrupt_copy(photos, "002b.png")
    files = [photos / "000.jpg", bad, photos / "004.png"]
    data = UnpairedImages(files, [cartoons / "000.jpg"], [cartoons / "000.jpg"], 16)
    item = data[Item(photo=1, cartoon=0, seed=7)]
    assert item["skipped"] == str(bad)
    expected = UnpairedImages(files[2:], [cartoons / "000.jpg"], [cartoons / "000.jpg"], 16)
    assert torch.equal(item["photo"], expected[Item(photo=0, cartoon=0, seed=7)]["photo"])  # the next
    assert data[Item(photo=0, cartoon=0, seed=7)]["skipped"] == ""
    with pytest.raises(CartoonizeError, match="none of the 2 photos can be decoded"):
        UnpairedImages([bad, bad], [cartoons / "000.jpg"], [cartoons / "000.jpg"], 16)[Item(0, 0, 1)]


def test_a_corrupt_photo_is_skipped_during_training_and_warned_once(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """In a worker process (the default --workers 2 crashed mid-epoch), over two epochs that each draw
    every photo; named to sort first, it would be the sample grid's photo too."""
    photos, cartoons = folders
    bad = corrupt_copy(photos, "00.png")
    out = tmp_path / "r"
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out), *SMALL]
    code, text = run_cli(*args, "--steps-per-epoch", "4", "--workers", "1")
    assert code == 0 and "Traceback" not in text, text
    warnings = [line for line in text.splitlines() if "cannot be decoded" in line]
    assert (
        len(warnings) == 1
        and warnings[0] == f"warning: {bad} cannot be decoded: skipped, the next image stands in"
    )
    assert (out / "checkpoints" / "epoch_002.pt").is_file()


def test_an_error_in_a_worker_is_one_line(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(self: UnpairedImages, item: Item) -> None:
        raise CartoonizeError("cannot read the cartoons' cache")

    monkeypatch.setattr(UnpairedImages, "__getitem__", fails)  # forked workers inherit it
    photos, cartoons = folders
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(tmp_path / "r"), *SMALL]
    code, text = run_cli(*args, "--workers", "1")
    assert_one_line_error(code, text, "error: cannot read the cartoons' cache")
    assert "DataLoader" not in text, text


def test_resume_takes_the_runs_own_options(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with relative paths in one folder, resumed from another with --out alone."""
    photos, cartoons = folders
    monkeypatch.chdir(tmp_path)
    small = {k.lstrip("-").replace("-", "_"): v for k, v in zip(SMALL[::2], SMALL[1::2], strict=True)}
    values = {k: v if k in ("vgg", "device") else int(v) for k, v in small.items()}
    config = TrainConfig(photos=Path("photos"), cartoons=Path("cartoons"), out=Path("runs/x"), **values)
    with pytest.raises(TrainingInterrupted):
        train(config, should_stop=lambda position: position.step == 1)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = str(tmp_path / "runs" / "x")

    code, text = run_cli("--out", run, "--resume", "--image-size", "32", "--base-channels", "4")
    assert_one_line_error(code, text, "trained with image_size=16;", "leave them out")
    assert "base_channels" not in text, text  # given, but the same as the run's

    # those that leave the training as it is may differ
    code, text = run_cli("--out", run, "--resume", "--sample-every", "2", "--checkpoint-every", "2")
    assert code == 0 and "resuming" in text and "done:" in text, text
    assert (tmp_path / "runs" / "x" / "checkpoints" / "epoch_002.pt").is_file()
    assert not (tmp_path / "runs" / "x" / "samples" / "epoch_001.png").exists()  # sample_every 2


def test_resume_needs_a_run(tmp_path: Path) -> None:
    code, text = run_cli("--resume")
    assert_one_line_error(code, text, "--resume needs --out")
    code, text = run_cli("--out", str(tmp_path / "none"), "--resume")
    assert_one_line_error(code, text, "nothing to resume", "no last.pt")


def test_resume_with_other_photos(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """--photos may point elsewhere on --resume (the data moved). Photos that make epochs of
    another length are refused (a resumed epoch shorter than the step it stopped at logged a
    negative step count, and its batches were not the run's); another count of the same length
    is said, as the shuffles differ."""
    from tests.train.conftest import write_images

    photos, cartoons = folders  # 6 photos, batch 2: 3 steps an epoch
    small = {k.lstrip("-").replace("-", "_"): v for k, v in zip(SMALL[::2], SMALL[1::2], strict=True)}
    values = {k: v if k in ("vgg", "device") else int(v) for k, v in small.items()}
    values["steps_per_epoch"] = 0  # as many as the photos make
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(
            TrainConfig(photos=photos, cartoons=cartoons, out=out, **values),
            should_stop=lambda p: p.step == 1,
        )
    fewer, more = tmp_path / "fewer", tmp_path / "more"
    write_images(fewer, 2, seed=3)
    write_images(more, 7, seed=4)
    code, text = run_cli("--out", str(out), "--resume", "--photos", str(fewer))
    assert_one_line_error(code, text, "trained on 6 photos, 3 steps an epoch; these 2 photos make 1")
    code, text = run_cli("--out", str(out), "--resume", "--photos", str(more))
    said = " ".join(text.split())
    assert code == 0 and "warning: 7 photos (the run had 6)" in said and "done:" in said, text
