"""An output replaced (`--overwrite`) keeps what `cp` keeps; without `--overwrite`, a file that
another job wrote while this one ran is kept; jobs that first use a style at once all succeed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import atomic_output
from cartoonize.pipelines.batch import cartoonize_many
from cartoonize.pipelines.image import write_image
from cartoonize.pipelines.video import VideoJob
from tests.helpers import child_env, make_video, run_main

ROOT = Path(__file__).resolve().parents[2]


def photo(path: Path) -> Path:
    write_image(path, np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    return path


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_replaced_output_keeps_its_permissions(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    """A file made private (600) stays private when `-y` replaces it, as with `cp`: the new
    file was made with the umask's 644."""
    src, out = photo(tmp_path / "in.png"), tmp_path / "out.png"
    args = ["image", str(src), "-o", str(out), "-y", "--model", str(tiny_checkpoint)]
    assert run_main(args, capsys)[0] == 0
    out.chmod(0o600)
    before = out.read_bytes()
    out.write_bytes(b"old")
    assert run_main(args, capsys)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_bytes() == before


def test_a_link_named_as_the_output_stays_a_link(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    """`-o link.png` where link.png points to a file: that file is replaced (its mode kept), the
    link stays, as `cp` and `ffmpeg -y` do (the link became a file and its target went stale)."""
    src, target, link = photo(tmp_path / "in.png"), tmp_path / "real.png", tmp_path / "link.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link.symlink_to(target.name)
    code, _, err = run_main(
        ["image", str(src), "-o", str(link), "-y", "--model", str(tiny_checkpoint)], capsys
    )
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == "real.png"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert hidden(tmp_path) == []


def test_an_output_written_meanwhile_is_kept_without_overwrite(tmp_path: Path) -> None:
    """The check before the work cannot see a job that finishes first; the move into place does:
    the other job's file is kept, this one is an error, and nothing is left behind."""
    out = tmp_path / "out.mp4"
    with pytest.raises(CartoonizeError, match="written by another job while this one ran"):  # noqa: PT012
        with atomic_output(out, replace=False) as tmp:
            tmp.write_bytes(b"ours")
            out.write_bytes(b"theirs")  # the other job finishes first
    assert out.read_bytes() == b"theirs" and hidden(tmp_path) == []
    with atomic_output(out, replace=True) as tmp:  # --overwrite: the last one wins
        tmp.write_bytes(b"ours")
    assert out.read_bytes() == b"ours"
    fresh = tmp_path / "fresh.mp4"
    with atomic_output(fresh, replace=False) as tmp:
        tmp.write_bytes(b"new")
    assert fresh.read_bytes() == b"new" and fresh.stat().st_nlink == 1 and hidden(tmp_path) == []


def test_a_folder_run_twice_at_once_skips_what_the_other_wrote(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The same folder in two terminals: a file whose cartoon the other job wrote while this one
    worked on it is skipped, as it is when that cartoon is there at the start (it was "failed":
    output exists, or it silently replaced the other's)."""
    clips, out = tmp_path / "clips", tmp_path / "out"
    clips.mkdir()
    make_video(clips / "a.mp4", frames=6, audio=None)
    make_video(clips / "b.mp4", frames=6, audio=None)
    pairs = [(clips / "a.mp4", out / "a.mp4"), (clips / "b.mp4", out / "b.mp4")]

    def other_job(done: int, _total: int | None) -> None:
        if done == 1:  # while this job runs a.mp4, the other writes b.mp4's cartoon, then a.mp4's
            out.mkdir(exist_ok=True)
            (out / "b.mp4").write_bytes(b"the other job's")
            (out / "a.mp4").write_bytes(b"the other job's")

    request = EngineRequest(model=tiny_checkpoint, engine="torch", device="cpu")
    report = cartoonize_many(pairs, VideoJob(clips / "a.mp4", out / "a.mp4"), request, on_progress=other_job)
    assert [r.status for r in report.results] == ["skipped", "skipped"], report.lines()
    assert (out / "a.mp4").read_bytes() == (out / "b.mp4").read_bytes() == b"the other job's"
    assert hidden(out) == []


def test_a_photo_folder_run_twice_at_once_skips_what_the_other_wrote(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Photos likewise: one whose cartoon appeared since the plan is skipped, not redone (the
    other job's is kept), and one the other job wrote while this one worked on it too."""
    from cartoonize.choose import runner_for
    from cartoonize.pipelines.image import ImageJob, cartoonize_images

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        photo(photos / name)

    def other_job(done: int, _total: int) -> None:
        if done == 1:  # the other job's cartoons of b and c land while this one works on a
            for name in ("b.png", "c.png"):
                (out / name).write_bytes(b"the other job's")

    request = EngineRequest(model=tiny_checkpoint, engine="torch", device="cpu")
    report = cartoonize_images(ImageJob((photos,), out), lambda: runner_for(request), other_job)
    assert [p.name for p in report.written] == ["a.png"]
    assert sorted(p.name for p in report.skipped) == ["b.png", "c.png"]
    assert (out / "b.png").read_bytes() == b"the other job's"
    assert hidden(out) == []


SAVE_MANY = """
import sys, torch
from pathlib import Path
from cartoonize.model import Checkpoint, Generator, GeneratorConfig, ModelIO
config = GeneratorConfig(base_channels=8, residual_blocks=1)
checkpoint = Checkpoint(Generator(config).state_dict(), config, ModelIO(style="race"))
sys.stdin.readline()  # all start together
for _ in range(300):
    checkpoint.save(Path(sys.argv[1]))
"""


def test_processes_saving_one_checkpoint_at_once_all_succeed(tmp_path: Path) -> None:
    """Jobs that first use a style together each convert and save it to the same cache path; with
    one shared temporary name, one rename found the file the other had just moved (a traceback)."""
    path = tmp_path / "styles" / "race.pt"
    procs = [subprocess.Popen([sys.executable, "-c", SAVE_MANY, str(path)], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=child_env(PYTHONPATH=str(ROOT)))
             for _ in range(3)]  # fmt: skip
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    from cartoonize.model import load_checkpoint

    assert load_checkpoint(path).io.style == "race"
    assert hidden(path.parent) == []
