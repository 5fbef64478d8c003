"""`cartoonize video IN... OUT_DIR/`: folders of videos, the naming rule, failures on one line,
skipped outputs, the summary and the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines.batch import cartoonize_many, find_videos
from cartoonize.pipelines.video import VideoJob
from tests.helpers import make_video, read_video

ROOT = Path(__file__).resolve().parents[2]


def test_naming_rule_mirrors_the_tree(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    (clips / "day1" / ".hidden").mkdir(parents=True)
    for name in (
        "a.mp4",
        "day1/b.MOV",
        "day1/c.ts",
        "day1/.d.partial.mp4",
        "day1/.hidden/e.mp4",
        "notes.txt",
    ):
        (clips / name).write_bytes(b"x")
    single = tmp_path / "f.mkv"
    single.write_bytes(b"x")
    out = tmp_path / "out"
    pairs = find_videos([clips, single], out)
    assert [(s.relative_to(tmp_path), t.relative_to(tmp_path)) for s, t in pairs] == [
        (Path("clips/a.mp4"), Path("out/clips/a.mp4")),
        (Path("clips/day1/b.MOV"), Path("out/clips/day1/b.MOV")),
        (Path("clips/day1/c.ts"), Path("out/clips/day1/c.ts.mp4")),  # .ts cannot be written: + .mp4
        (Path("f.mkv"), Path("out/f.mkv")),
    ]
    other = tmp_path / "elsewhere" / "clips"
    other.mkdir(parents=True)
    (other / "a.mp4").write_bytes(b"x")
    with pytest.raises(CartoonizeError, match="would both be written to"):
        find_videos([clips, other], out)
    (out / "clips").mkdir(parents=True)
    (out / "clips" / "a.mp4").write_bytes(b"an earlier output")
    found = [s.relative_to(tmp_path) for s, _ in find_videos([tmp_path], out)]
    assert Path("out/clips/a.mp4") not in found and Path("clips/a.mp4") in found  # OUT inside IN is skipped
    # IN inside OUT (or OUT equal to IN): said so, where it was "no video files in clips"
    for folder in (clips, tmp_path):
        with pytest.raises(
            CartoonizeError, match=f"the output folder {folder} holds the input folder {clips}"
        ):
            find_videos([clips], folder)
    # a file given into its own folder: its cartoon would replace it. Before, it was "skipped
    # (output exists; --overwrite replaces it)", and --overwrite was then refused
    with pytest.raises(CartoonizeError, match=r"a\.mp4's cartoon would be written over it in .*clips; give"):
        find_videos([single, clips / "a.mp4"], clips)


def test_folder_with_a_corrupt_file_and_an_existing_output(tiny_checkpoint: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    (clips / "sub" / "deep").mkdir(parents=True)
    make_video(clips / "a.mp4", frames=6, audio="aac")
    make_video(clips / "sub" / "b.mkv", frames=5, audio=None)
    make_video(clips / "sub" / "deep" / "c.mov", frames=4, audio=None)
    (clips / "sub" / "broken.mp4").write_text("not a video\n" * 40)
    (clips / "readme.txt").write_text("not a video either, and not a video file name")
    out = tmp_path / "out"
    (out / "clips" / "sub").mkdir(parents=True)
    (out / "clips" / "sub" / "b.mkv").write_bytes(b"keep me")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", "clips", "out/", "--model", str(tiny_checkpoint),
         "--engine", "torch", "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("failed")] == [
        "failed   clips/sub/broken.mp4: clips/sub/broken.mp4 is not a readable video (Invalid data found when processing input)"
    ]
    assert "skipped  clips/sub/b.mkv: out/clips/sub/b.mkv exists" in lines
    assert any(line.startswith("done     clips/a.mp4 -> out/clips/a.mp4 (6 frames") for line in lines)
    assert any(
        line.startswith("done     clips/sub/deep/c.mov -> out/clips/sub/deep/c.mov (4 frames")
        for line in lines
    )
    assert lines[-2].startswith(
        "2 done, 1 skipped (output exists; --overwrite replaces it), 1 failed: 10 frames"
    )
    assert lines[-1] == "error: 1 of 4 videos failed (listed above)"
    assert len(read_video(out / "clips" / "a.mp4")[1]) == 6
    assert len(read_video(out / "clips" / "sub" / "deep" / "c.mov")[1]) == 4
    assert (out / "clips" / "sub" / "b.mkv").read_bytes() == b"keep me"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "clips/a.mp4",
        "clips/sub/b.mkv",
        "clips/sub/deep/c.mov",
    ]  # nothing partial, no broken.mp4


def test_a_failed_batch_leaves_no_empty_output_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The output tree is made as the batch goes; the folders that nothing was written into (their
    videos failed) are removed again, and those that were there before are kept."""
    clips = tmp_path / "clips"
    (clips / "bad" / "worse").mkdir(parents=True)
    (clips / "bad" / "worse" / "x.mp4").write_text("not a video\n" * 40)
    make_video(clips / "good.mp4", frames=3, audio=None)
    out = tmp_path / "out"
    (out / "clips" / "bad").mkdir(parents=True)  # there before: kept, even empty
    pairs = find_videos([clips], out)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many(pairs, VideoJob(clips, out), request)
    assert sorted(r.status for r in report.results) == ["done", "failed"]
    assert (out / "clips" / "bad").is_dir() and not (out / "clips" / "bad" / "worse").exists()
    fresh = tmp_path / "fresh"
    report = cartoonize_many(find_videos([clips / "bad"], fresh), VideoJob(clips, fresh), request)
    assert [r.status for r in report.results] == ["failed"]
    assert not fresh.exists()


def cli_in(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cartoonize", "video", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_one_video_into_a_folder_named_with_a_slash(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`cartoonize video clip.mp4 out/`: the slash says folder (a Path argument would drop it)."""
    make_video(tmp_path / "clip.mp4", frames=3, audio=None)
    result = cli_in(tmp_path, "clip.mp4", "out/", "--model", str(tiny_checkpoint), "--engine", "torch")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].startswith("1 done, 0 skipped, 0 failed: 3 frames")
    assert len(read_video(tmp_path / "out" / "clip.mp4")[1]) == 3


def test_several_videos_into_a_file_name_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Two inputs and `both.mp4`: a folder named like a video is not what anyone means."""
    for name in ("a.mp4", "b.mp4"):
        make_video(tmp_path / name, frames=2, audio=None)
    result = cli_in(tmp_path, "a.mp4", "b.mp4", "both.mp4", "--model", str(tiny_checkpoint))
    assert result.returncode == 1 and result.stderr.splitlines() == [
        "error: several videos go into a folder, and both.mp4 is named like a video file; give a folder "
        "(both/), or one input"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]
