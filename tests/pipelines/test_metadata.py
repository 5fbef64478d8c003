"""What a source says of itself reaches the output (media.metadata): its title, artist, creation
time and place, and its chapters, in one pass, in segments and in a preview."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from cartoonize.media.metadata import chapters
from tests.conftest import SHARED_MEDIA
from tests.helpers import make_video
from tests.pipelines.conftest import cartoonize_in

TAGS = {"title": "Der kleine Film", "artist": "Someone", "creation_time": "2024-05-01T10:20:30.000000Z",
        "location": "+48.8584+002.2945/"}  # fmt: skip
NS = Fraction(1, 1_000_000_000)


def with_chapters(video: Path, path: Path, marks: list[tuple[float, float, str]]) -> Path:
    """`video` remuxed into `path` with TAGS and chapters (start s, end s, title), as a film's
    file has them; its own encoder tag stands for a source file's."""
    with av.open(str(video)) as src, av.open(str(path), "w") as out:
        streams = {s: out.add_stream_from_template(s) for s in src.streams}
        out.metadata.update(TAGS)
        out.set_chapters([{"id": i, "start": round(a / NS), "end": round(b / NS), "time_base": NS,
                           "metadata": {"title": title}} for i, (a, b, title) in enumerate(marks, 1)])  # fmt: skip
        for packet in src.demux():
            if packet.size:
                packet.stream = streams[packet.stream]
                out.mux(packet)
    return path


def marks_of(path: Path) -> tuple[dict[str, str], list[tuple[float, float, str]]]:
    """(global tags, chapters as (start s, end s, title)) of a file, as FFmpeg reads them back."""
    with av.open(str(path)) as container:
        found = [(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]), c["metadata"].get("title"))
                 for c in container.chapters()]  # fmt: skip
        return {k.lower(): v for k, v in container.metadata.items()}, found


MARKS = [(0.0, 1.0, "Anfang"), (1.0, 1.5, "Mitte"), (1.5, 2.0, "Ende")]


@pytest.fixture
def film(tmp_path: Path) -> Path:
    clip = make_video(tmp_path / "clip.mkv", width=64, height=48, frames=24, rate=12, gop=6)
    return with_chapters(clip, tmp_path / "film.mkv", MARKS)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov"])
@pytest.mark.parametrize("segments", [1, 3])
def test_tags_and_chapters_reach_the_output(film: Path, tmp_path: Path, tiny_checkpoint: Path, suffix: str,
                                            segments: int) -> None:  # fmt: skip
    out = tmp_path / f"out{suffix}"
    cartoonize_in(film, out, tiny_checkpoint, segments)
    tags, found = marks_of(out)
    assert found == MARKS, found
    assert tags["title"] == TAGS["title"] and tags["artist"] == TAGS["artist"], tags
    if suffix != ".mkv":  # MP4 and QuickTime keep the date and place in their own atoms
        assert tags["creation_time"] == TAGS["creation_time"] and tags["location"] == TAGS["location"], tags
    assert tags.get("encoder", "").startswith("Lavf")  # the output's own muxer's, not the source's


def test_a_preview_keeps_the_chapters_it_reaches(film: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video

    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    out = tmp_path / "preview.mkv"
    cartoonize_video(VideoJob(film, out, max_frames=15), lambda size: runner_for(request, size))  # 1.25 s
    assert marks_of(out)[1] == [(0.0, 1.0, "Anfang"), (1.0, 1.25, "Mitte")]


def test_chapters_move_with_the_output_clock(film: Path) -> None:
    """A transport stream's start is taken off every timestamp (media.clock): chapters move with
    them, and one that ends before the output's start is left out."""
    with av.open(str(film)) as container:
        moved = chapters(container, origin=Fraction(5, 4))
    assert [(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"])) for c in moved] == [
        (0.0, 0.25), (0.25, 0.75)]  # fmt: skip


@pytest.mark.shared
def test_a_phones_date_place_and_model_are_kept(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "phone.mov"
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video

    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    src = SHARED_MEDIA / "iphone_rotated.mov"
    cartoonize_video(VideoJob(src, out, max_side=96, max_frames=4), lambda size: runner_for(request, size))
    tags, _ = marks_of(out)
    assert tags["creation_time"] == "2013-12-22T20:54:41.000000Z", tags
    assert tags["location"].startswith("+40.7248-073.9883") and tags["model"] == "iPhone 4S", tags
    assert tags["make"] == "Apple" and tags["encoder"].startswith("Lavf"), tags
