"""What a source holds besides its video, audio and subtitles: a cover picture, a second video,
a timecode track, attached files (an ASS subtitle's fonts). Each is carried where the output can
hold it, and otherwise named in the summary as left out: nothing disappears without a word."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from av.stream import Disposition

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import ATTACHED_PIC
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video, with_subtitles
from tests.pipelines.conftest import cartoonize_in

FONT = bytes(range(256)) * 40  # the bytes of an attached file, carried as they are


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def with_extras(clip: Path, path: Path) -> Path:
    """`clip` remuxed into a .mkv with a second video stream, a font and a cover picture."""
    with av.open(str(clip)) as src, av.open(str(path), "w") as out:
        main = out.add_stream_from_template(src.streams.video[0])
        second = out.add_stream_from_template(src.streams.video[0])
        out.add_attachment("Subs.ttf", "application/x-truetype-font", FONT)
        out.add_attachment("cover.png", "image/png", png_bytes())  # read back as a cover picture
        for packet in src.demux(src.streams.video[0]):
            if not packet.size:  # the demuxer's end-of-stream marker
                continue
            for stream in (main, second):
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts, copy.time_base, copy.is_keyframe = (
                    packet.pts,
                    packet.dts,
                    packet.time_base,
                    packet.is_keyframe,
                )
                copy.stream = stream
                out.mux(copy)
    return path


def with_timecode(path: Path, frames: int = 12) -> Path:
    """A .mov whose video starts at timecode 01:02:03:04 (FFmpeg writes it as a tmcd track)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 4
        stream.metadata["timecode"] = "01:02:03:04"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def run(src: Path, out: Path, checkpoint: Path) -> list[str]:
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size)).streams


def test_the_source_is_as_the_test_means(tmp_path: Path) -> None:
    src = with_extras(make_video(tmp_path / "clip.mkv", frames=4, audio=None), tmp_path / "extras.mkv")
    with av.open(str(src)) as c:
        kinds = [(s.type, int(s.disposition) & 0x400 != 0) for s in c.streams]
    assert kinds == [("video", False), ("video", False), ("attachment", False), ("video", True)]
    with av.open(str(with_timecode(tmp_path / "tc.mov"))) as c:
        assert [s.type for s in c.streams] == ["video", "data"]


def test_fonts_kept_in_mkv_and_each_other_stream_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = with_extras(make_video(tmp_path / "clip.mkv", frames=4, audio=None), tmp_path / "extras.mkv")
    notes = run(src, tmp_path / "out.mkv", tiny_checkpoint)
    assert notes == [
        "video #1 h264: left out (one video is cartoonized)",
        "attachment #2 Subs.ttf: copied",
        "video #3 png: left out (a cover picture)",
    ]
    with av.open(str(tmp_path / "out.mkv")) as c:
        (font,) = [s for s in c.streams if s.type == "attachment"]
        assert (font.name, font.mimetype, font.data) == ("Subs.ttf", "application/x-truetype-font", FONT)
        assert len(c.streams.video) == 1 and sum(1 for _ in c.decode(video=0)) == 4
    notes = run(src, tmp_path / "out.mp4", tiny_checkpoint)
    assert "attachment #2 Subs.ttf: left out (mp4 holds no attached files; use .mkv)" in notes


@pytest.mark.parametrize(("suffix", "kept"), [(".mov", True), (".mkv", True), (".webm", False)])
def test_the_timecode_is_kept(suffix: str, kept: bool, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / f"out{suffix}"
    notes = run(with_timecode(tmp_path / "tc.mov"), out, tiny_checkpoint)
    assert notes == [
        f"data #1 (timecode 01:02:03:04): {'kept, as the video' + chr(39) + 's timecode' if kept else 'left out'}"
    ]
    with av.open(str(out)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert tags.get("timecode") == ("01:02:03:04" if kept else None)


def test_a_matroska_timecode_goes_on_to_the_next_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Matroska names the tag TIMECODE: a .mkv cartoon, cartoonized again into a .mov, keeps it."""
    first, second = tmp_path / "first.mkv", tmp_path / "second.mov"
    run(with_timecode(tmp_path / "tc.mov"), first, tiny_checkpoint)
    run(first, second, tiny_checkpoint)
    with av.open(str(second)) as c:
        assert c.streams.video[0].metadata.get("timecode") == "01:02:03:04"


def test_segments_keep_the_timecode_and_the_fonts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    src = with_timecode(tmp_path / "tc.mov")
    out = tmp_path / "joined.mov"
    report = cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(3))
    assert [r.status for r in report.results] == ["done"] and "3 segments" in report.results[0].message
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("timecode") == "01:02:03:04"
    src = with_extras(make_video(tmp_path / "clip.mkv", frames=12, audio=None, gop=4), tmp_path / "x.mkv")
    out = tmp_path / "joined.mkv"
    report = cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(3))
    assert [r.status for r in report.results] == ["done"] and "Subs.ttf: copied" in report.results[0].message


def labelled(tmp_path: Path) -> Path:
    """A .mkv with an English and a French audio track (the French one titled and not the
    default) and a forced German subtitle, as a film's release has them."""
    plain = with_subtitles(make_video(tmp_path / "clip.mp4", frames=12, rate=12), [(0.1, 0.8, "Halt!")],
                           tmp_path / "plain.mkv")  # fmt: skip
    path = tmp_path / "labelled.mkv"
    with av.open(str(plain)) as src, av.open(str(path), "w") as out:
        video, audio, subtitle = src.streams.video[0], src.streams.audio[0], src.streams.subtitles[0]
        streams = {s: [out.add_stream_from_template(s)] for s in (video, audio)}
        streams[audio].append(out.add_stream_from_template(audio))
        streams[subtitle] = [out.add_stream_from_template(subtitle)]
        labels = [("eng", None, Disposition.default), ("eng", None, Disposition.default),
                  ("fra", "Commentaire", Disposition(0)), ("ger", None, Disposition.forced)]  # fmt: skip
        for stream, (language, title, disposition) in zip(out.streams, labels, strict=True):
            stream.metadata["language"] = language
            if title:
                stream.metadata["title"] = title
            stream.disposition = disposition
        for packet in src.demux():
            if packet.size:
                for target in streams[packet.stream]:
                    packet.stream = target
                    out.mux(packet)
    return path


def labels(path: Path) -> list[tuple[str, str, str | None, bool, bool]]:
    with av.open(str(path)) as c:
        return [
            (s.type, s.metadata.get("language", "und"), s.metadata.get("title"),
             bool(s.disposition & Disposition.default), bool(s.disposition & Disposition.forced))
            for s in c.streams
        ]  # fmt: skip


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
@pytest.mark.parametrize("segments", [1, 2])
def test_languages_titles_and_flags_are_kept(
    suffix: str, segments: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A player picks the audio and subtitles by their language and flags: each track keeps its
    language, title (where the container stores one) and default and forced flags (all were
    lost: every track came out "und", and a forced subtitle stopped showing)."""
    src = labelled(tmp_path)
    assert labels(src)[2] == ("audio", "fra", "Commentaire", False, False)
    out = tmp_path / f"out{suffix}"
    cartoonize_in(src, out, tiny_checkpoint, segments)
    got = labels(out)
    if suffix == ".mp4":  # MP4 keeps no track titles (the ffmpeg tool's .mp4 neither)
        expected = [("video", "eng", None, True, False), ("audio", "eng", None, True, False),
                    ("audio", "fra", None, False, False), ("subtitle", "ger", None, True, True)]  # fmt: skip
        # (MP4's muxer marks the first track of each kind the default)
    else:
        expected = [("video", "eng", None, True, False), ("audio", "eng", None, True, False),
                    ("audio", "fra", "Commentaire", False, False), ("subtitle", "ger", None, False, True)]  # fmt: skip
    assert got == expected


def test_a_forced_subtitle_in_mov_is_said_to_lose_its_flag(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """QuickTime's muxer writes no forced flag: the subtitle is there but shows only when picked,
    and the summary says so (it said "converted" and nothing else)."""
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video

    out = tmp_path / "out.mov"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(labelled(tmp_path), out), lambda size: runner_for(request, size))
    note = next(n for n in report.streams if n.startswith("subtitle"))
    assert note.endswith("not marked forced (QuickTime's muxer writes no such flag; .mp4 and .mkv do)"), note
    assert labels(out)[-1][0] == "subtitle" and labels(out)[-1][-1] is False  # (what the note says)


def test_the_film_is_cartoonized_not_a_still_before_it(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A one-frame picture stored as the first video stream (a title card, a thumbnail): the film
    after it is the one cartoonized, as the ffmpeg tool picks it (the still was, and the film was
    left out; without --frames the run failed as "truncated")."""
    clip = make_video(tmp_path / "clip.mp4", frames=24, rate=12)
    src = tmp_path / "in.mkv"
    with av.open(str(clip)) as inp, av.open(str(src), "w") as out:
        still = out.add_stream("mjpeg", rate=1)
        still.width, still.height, still.pix_fmt = 16, 16, "yuvj420p"
        streams = {s: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
        frame.pts = 0
        for packet in [*still.encode(frame), *still.encode(None)]:
            out.mux(packet)
        for packet in inp.demux(*streams):
            if packet.size:
                packet.stream = streams[packet.stream]
                out.mux(packet)
    out = tmp_path / "out.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    assert report.frames == 24 and (report.width, report.height) == (64, 48)
    assert report.streams == ["video #0 mjpeg: left out (one video is cartoonized)", "audio #2 aac: copied"]


def test_an_audio_file_with_cover_art_has_no_video(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A song with its album art: one line saying so (it was "truncated: it declares 2.0 s but
    video stops at 0.0 s")."""
    clip = make_video(tmp_path / "clip.mp4", frames=24, rate=12)
    song = tmp_path / "song.mp4"
    with av.open(str(clip)) as inp, av.open(str(song), "w") as out:
        audio = out.add_stream_from_template(inp.streams.audio[0])
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        cover.disposition = Disposition.attached_pic
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
        frame.pts = 0
        for packet in [*cover.encode(frame), *cover.encode(None)]:
            out.mux(packet)
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.size:
                packet.stream = audio
                out.mux(packet)
    with av.open(str(song)) as c:
        assert [int(s.disposition) & ATTACHED_PIC for s in c.streams.video] == [ATTACHED_PIC]
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    with pytest.raises(CartoonizeError, match=r"song\.mp4 has no video stream \(only a cover picture\)$"):
        cartoonize_video(VideoJob(song, tmp_path / "out.mp4"), lambda size: runner_for(request, size))


def test_what_matroska_refuses_is_converted_not_a_traceback(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Matroska takes nearly any codec as it is, but not QuickTime's mov_text subtitles nor an IP
    camera's A-law sound: the subtitles become SubRip with the same cues, the sound FLAC with the
    same samples (it stopped with FFmpeg's "format does not support codec", a traceback)."""
    from tests.helpers import _write_sine, read_subtitles

    cues = [(0.25, 0.75, "first line"), (1.0, 1.5, "second line")]
    subbed = with_subtitles(
        make_video(tmp_path / "clip.mkv", frames=24, audio=None), cues, tmp_path / "subs.mkv"
    )
    assert "converted to mov_text" in " ".join(run(subbed, tmp_path / "movtext.mp4", tiny_checkpoint))
    notes = run(tmp_path / "movtext.mp4", tmp_path / "back.mkv", tiny_checkpoint)
    assert "subtitle #1 mov_text: converted to subrip (matroska cannot store mov_text)" in notes
    assert read_subtitles(tmp_path / "back.mkv") == cues

    camera = tmp_path / "camera.mov"
    with (
        av.open(str(make_video(tmp_path / "silent.mov", frames=24, audio=None))) as src,
        av.open(str(camera), "w") as out,
    ):
        video = out.add_stream_from_template(src.streams.video[0])
        sound = out.add_stream("pcm_alaw", rate=8000)
        sound.layout = "mono"
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        _write_sine(out, sound, 2.0, 8000)
    notes = run(camera, tmp_path / "camera.mkv", tiny_checkpoint)
    assert "audio #1 pcm_alaw: re-encoded to flac (matroska cannot store pcm_alaw)" in notes

    def samples(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])

    source, kept = samples(camera), samples(tmp_path / "camera.mkv")
    assert len(kept) == len(source) and np.array_equal(kept.astype(np.int32), source.astype(np.int32))
