"""Which pictures a folder gives: symlinked subfolders are followed (without looping), and a run's
own folder inside the photos (`--out data/run1` with `--photos data`) is skipped, not trained on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.train.conftest import write_images
from tests.train.test_bad_input import SMALL
from tests.train.test_cli import run_cli
from train.data import scan_images

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def link(path: Path, target: Path) -> None:
    try:
        path.symlink_to(target, target_is_directory=True)
    except OSError as exc:  # Windows without the privilege
        pytest.skip(f"cannot make a symlink here: {exc}")


def test_symlinked_folders_are_followed_once_and_loops_end(tmp_path: Path) -> None:
    elsewhere, photos = tmp_path / "elsewhere", tmp_path / "photos"
    write_images(elsewhere, 2, seed=3)  # 000.jpg, part2/001.png
    write_images(photos, 1, seed=4)  # 000.jpg
    link(photos / "linked", elsewhere)
    link(photos / "again", elsewhere)  # a second way to the same pictures: taken once
    link(elsewhere / "up", photos)  # photos/linked/up -> photos: a loop
    found, skipped = scan_images(photos, "photos")
    assert skipped == 0
    assert [p.relative_to(photos).as_posix() for p in found] == [
        "000.jpg",
        "again/000.jpg",
        "again/part2/001.png",
    ]


def test_a_run_folder_among_the_photos_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = tmp_path / "photos"
    write_images(photos, 2, seed=3)
    out, other = photos / "run1", photos / "old_run"
    write_images(out / "samples", 1, seed=5)  # a run that has not written its config.toml yet
    (other / "samples").mkdir(parents=True)  # another run: recognised by its own files
    (other / "config.toml").write_text("# cartoonize training config\n")
    write_images(other / "samples", 1, seed=6)
    found, _ = scan_images(photos, "photos")
    assert [p.relative_to(photos).as_posix() for p in found] == [
        "000.jpg",
        "part2/001.png",
        "run1/samples/000.jpg",
    ]
    assert f"skipping {other}: a cartoonize run's folder, not photos" in capsys.readouterr().err
    found, _ = scan_images(photos, "photos", skip=(tmp_path / "photos" / "." / "run1",))  # the --out
    assert [p.relative_to(photos).as_posix() for p in found] == ["000.jpg", "part2/001.png"]
    assert f"skipping {out}: a cartoonize run's folder" in capsys.readouterr().err


def test_out_inside_photos_does_not_feed_the_runs_samples_back(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """The resumed run sees the photos the first one did, not its sample grids as well."""
    photos, cartoons = folders
    out = photos / "run1"
    code, text = run_cli("--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out), *SMALL)
    assert code == 0 and "photos: 6\n" in text, text
    assert len(list((out / "samples").glob("*.png"))) == 3
    code, text = run_cli("--out", str(out), "--resume")
    assert code == 0 and "photos: 6\n" in text, text
    assert f"skipping {out}" in " ".join(text.split())


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_training_reads_a_symlinked_subfolder(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos, cartoons = folders
    write_images(tmp_path / "more", 4, seed=7)
    link(photos / "more", tmp_path / "more")
    code, text = run_cli(
        "--photos", str(photos), "--cartoons", str(cartoons), "--out", str(tmp_path / "r"), *SMALL
    )
    assert code == 0 and "photos: 10\n" in text, text
