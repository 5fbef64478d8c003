"""Names from the user's disk are printed as they are. Rich reads `[word]` as a markup tag and
drops it, and yt-dlp names every download `Title [id].ext`: the summary must show that name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_video

NAME = "Sintel [eRsGyueVLvQ]"  # yt-dlp's default template, with an id Rich would take for a tag


def cartoonize(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    from cartoonize.cli import main

    monkeypatch.setenv("COLUMNS", "400")  # one line each: the name is not wrapped
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 0, err
    return " ".join(err.split())


def test_a_video_with_brackets_in_its_name(tiny_checkpoint: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    src = make_video(tmp_path / f"{NAME}.mp4", frames=3, audio=None)
    out = tmp_path / f"{NAME} [bold].mp4"
    shown = cartoonize(["video", str(src), str(out), "--model", str(tiny_checkpoint), "--engine", "torch",
                        "--device", "cpu"], capsys, monkeypatch)  # fmt: skip
    assert out.exists()
    assert f"wrote {out}: 3 frames" in shown
    one = tmp_path / "one.mp4"
    shown = cartoonize(["video", str(make_video(tmp_path / "one_frame.mp4", frames=1, audio=None)), str(one),
                        "--model", str(tiny_checkpoint), "--engine", "torch", "--device", "cpu"], capsys, monkeypatch)  # fmt: skip
    assert f"wrote {one}: 1 frame " in shown  # not "1 frames"


def test_a_folder_of_videos_with_brackets_in_their_names(tiny_checkpoint: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    clips = tmp_path / "clips [red]"
    clips.mkdir()
    for k in range(2):
        make_video(clips / f"{NAME} {k}.mp4", frames=2, audio=None)
    out = tmp_path / "out [red]"
    shown = cartoonize(["video", str(clips), str(out), "--model", str(tiny_checkpoint), "--engine", "torch",
                        "--device", "cpu"], capsys, monkeypatch)  # fmt: skip
    for k in range(2):
        written = out / clips.name / f"{NAME} {k}.mp4"  # the folder keeps its name inside the output
        assert written.exists() and f"done {clips / written.name} -> {written} (2 frames)" in shown
