"""Outputs checked by players that did not write them: FFmpeg's command-line tools (ffmpeg decodes
every stream without an error, ffprobe reports frames, times, codecs, pixel format and colour tags)
and headless Chromium (a `<video>` element loading the output over HTTP plays it to the end).
Each skips with a reason where its Debian package (ffmpeg, chromium) is absent; .ci/run installs them."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.video import VideoJob, VideoReport, cartoonize_video
from tests.conftest import SHARED_MEDIA
from tests.helpers import make_video
from tests.players import (
    GIF_PAGE,
    chromium_missing,
    colour_tags_as_pyav_reads_them,
    colour_tags_ffprobe,
    ffmpeg_decode,
    ffmpeg_missing,
    ffprobe,
    ffprobe_video_times,
    play_in_chromium,
)

needs_ffmpeg = pytest.mark.skipif(ffmpeg_missing() is not None, reason=ffmpeg_missing() or "")
needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")

# what each output container gets (the README's table): video codec, audio codecs it may hold
VIDEO_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp9"}
AUDIO_OF_AAC = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "opus"}  # from an AAC source
WEB_AUDIO = {".mp4": {"aac", "mp3"}, ".webm": {"opus", "vorbis"}}
SOURCE_FRAMES, SOURCE_RATE = 24, 12  # the `small_video` fixture: 64×48, 2 s, AAC stereo
FRAME = 1 / SOURCE_RATE

MakeOutput = Callable[[str], tuple[Path, VideoReport]]


@pytest.fixture(scope="module")
def output_of(
    small_video: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> MakeOutput:
    """`cartoonize video` of the small clip into a container (by suffix), made once per module."""
    folder = tmp_path_factory.mktemp("players")
    made: dict[str, tuple[Path, VideoReport]] = {}
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")

    def make(suffix: str) -> tuple[Path, VideoReport]:
        if suffix not in made:
            out = folder / f"cartoon{suffix}"
            made[suffix] = out, cartoonize_video(VideoJob(small_video, out), lambda s: runner_for(request, s))
        return made[suffix]

    return make


def streams_of(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def check_with_ffmpeg(out: Path, source_times: list[float], width: int, height: int, suffix: str) -> dict:
    """The FFmpeg CLI's view of `out`, asserted against what the project claims; returns ffprobe's
    video stream."""
    assert ffmpeg_decode(out) == (0, ""), f"ffmpeg could not decode {out.name} cleanly"
    info = ffprobe(out)
    [video] = streams_of(info, "video")
    assert video["codec_name"] == VIDEO_CODEC[suffix]
    assert video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (width, height)
    assert int(video["nb_read_frames"]) == len(source_times)
    times, source = np.array(ffprobe_video_times(out)), np.array(source_times)
    tick = 1e-3 if suffix in (".mkv", ".webm") else 1e-6  # Matroska stores milliseconds
    assert np.abs((times - times[0]) - (source - source[0])).max() <= tick + 1e-9  # every frame's time
    # the whole file may start later by less than a frame: Matroska has no edit list to hide AAC's
    # priming samples (1024 = 21 ms), so the muxer shifts every stream by that, keeping A/V sync
    assert abs(times[0] - source[0]) < np.median(np.diff(source))
    # the colour tags ffprobe reports are the ones the writer's library reads back (none today
    # but what an encoder writes on its own, e.g. VP9's range bit; tagged outputs keep them)
    assert colour_tags_ffprobe(video) == colour_tags_as_pyav_reads_them(out)
    return video


def video_times(path: Path, limit: int | None = None) -> list[float]:
    """Presentation times (s) of the first `limit` video frames, as PyAV decodes them."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        times: list[float] = []
        for frame in c.decode(stream):
            if limit is not None and len(times) == limit:
                break
            times.append(float(frame.pts * stream.time_base))
        return times


def decoded_png(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov"])
def test_ffmpeg_cli_decodes_and_probes(suffix: str, output_of: MakeOutput, small_video: Path) -> None:
    out, report = output_of(suffix)
    check_with_ffmpeg(out, video_times(small_video), report.width, report.height, suffix)
    info = ffprobe(out)
    assert abs(float(info["format"]["duration"]) - SOURCE_FRAMES / SOURCE_RATE) <= FRAME
    [audio] = streams_of(info, "audio")
    assert audio["codec_name"] == AUDIO_OF_AAC[suffix]
    assert int(audio["nb_read_frames"]) > 0 and audio["channels"] == 2


def test_webm_takes_audio_opus_cannot_store_at_its_rate(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Most MP3/AAC/Vorbis tracks are 44.1 kHz; Opus takes 48 kHz: the audio is resampled, not refused."""
    src = make_video(tmp_path / "cd.mp4", frames=6, audio="aac", audio_rate=44100)
    out = tmp_path / "out.webm"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    assert report.streams == [
        "audio #1 aac: re-encoded to libopus (webm cannot store aac), resampled 44100 -> 48000 Hz"
    ]
    with av.open(str(out)) as c:
        [audio] = c.streams.audio
        assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("opus", 48000)
        seconds = sum(f.samples for f in c.decode(audio)) / 48000
    assert abs(seconds - 6 / 12) < 0.05  # as long as the video, not sped up or cut


SHARED_CLIPS = sorted(p.name for p in SHARED_MEDIA.glob("*") if p.suffix in (".mp4", ".mov", ".webm", ".mkv"))
PREVIEW_FRAMES = 8  # the check is on the container and codecs: a few frames of each clip


@pytest.mark.shared
@needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
@pytest.mark.parametrize("clip", SHARED_CLIPS or ["(no clips)"])
def test_ffmpeg_cli_on_every_real_clip(clip: str, suffix: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = SHARED_MEDIA / clip
    out = tmp_path / f"{src.stem}{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(src, out, max_side=96, max_frames=PREVIEW_FRAMES)
    report = cartoonize_video(job, lambda size: runner_for(request, size))
    assert report.frames == PREVIEW_FRAMES
    check_with_ffmpeg(out, video_times(src, PREVIEW_FRAMES), report.width, report.height, suffix)
    with av.open(str(src)) as c:
        source_audio = [s.codec_context.codec.canonical_name for s in c.streams.audio]
    audio = [s["codec_name"] for s in streams_of(ffprobe(out), "audio")]
    assert len(audio) == len(source_audio) >= 1
    allowed = WEB_AUDIO.get(suffix, set(source_audio))  # .mkv keeps the source's audio as it is
    assert set(audio) <= allowed, f"{suffix} holds {audio}"


def check_in_chromium(out: Path, report: VideoReport, duration: float, frame: float) -> dict:
    """Play `out` in headless Chromium and assert what a viewer needs: metadata, the picture size,
    the duration within one frame of `duration`, playback that advances to the end, every frame
    decoded, the audio decoded, and a painted frame that is one of the output's frames."""
    seen = play_in_chromium(out, limit_ms=15_000)
    log = seen.pop("chromium_log")
    snapshot = seen.pop("snapshot", None)
    print(f"chromium {out.name}: {seen}")  # what the browser saw, for the record (pytest -s, -rA)
    assert "timeout" not in seen, f"{seen['timeout']}; Chromium said:\n{log}"
    assert "error" not in seen, f"the video element failed: {seen['error']}"
    meta, final = seen["metadata"], seen["final"]
    assert meta["readyState"] >= 1  # HAVE_METADATA at loadedmetadata
    assert final["readyState"] >= 2  # HAVE_CURRENT_DATA (or more) once played
    assert (meta["videoWidth"], meta["videoHeight"]) == (report.width, report.height)
    assert abs(meta["duration"] - duration) <= frame
    times = [t for _, t in seen["samples"]]
    assert times == sorted(times) and times[-1] > times[0], f"playback did not advance: {times}"
    assert final["ended"] and abs(final["currentTime"] - meta["duration"]) <= frame
    assert seen["quality"]["totalVideoFrames"] == report.frames
    assert seen["decodedBytes"]["audio"] > 0  # the audio track decoded too
    assert all(status in (200, 206) for _, _, status in seen["requests"])
    # the frame Chromium painted is one of the output's frames as PyAV decodes them
    assert snapshot is not None, "no frame was drawn past the middle"
    painted = decoded_png(base64.b64decode(snapshot["png"].split(",", 1)[1])).astype(int)
    with av.open(str(out)) as c:
        frames = [(float(f.time), f.to_ndarray(format="rgb24").astype(int)) for f in c.decode(video=0)]
    differences = [np.abs(rgb - painted).mean() for _, rgb in frames]
    best = int(np.argmin(differences))
    assert differences[best] < 4, (
        f"no output frame looks like Chromium's (closest differs by {differences[best]:.1f})"
    )
    assert abs(frames[best][0] - snapshot["at"]) <= 2 * frame
    return seen


@needs_chromium
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_chromium_plays_the_output(suffix: str, output_of: MakeOutput) -> None:
    """.mp4: H.264 + AAC; .webm: VP9 + Opus (re-encoded from the AAC source)."""
    out, report = output_of(suffix)
    check_in_chromium(out, report, SOURCE_FRAMES / SOURCE_RATE, FRAME)


@pytest.mark.shared
@needs_chromium
@pytest.mark.parametrize(
    ("clip", "suffix", "audio"),
    [("big_buck_bunny_1s.webm", ".webm", "vorbis"), ("big_buck_bunny_1s.webm", ".mp4", "aac"),
     ("sintel_5s.mp4", ".mp4", "mp3")],
)  # fmt: skip
def test_chromium_plays_real_clip_outputs(
    clip: str, suffix: str, audio: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The other audio our outputs carry: VP9 + Vorbis (copied into .webm), H.264 + AAC re-encoded
    from Vorbis, H.264 + MP3 (copied into .mp4)."""
    src, out = SHARED_MEDIA / clip, tmp_path / f"{Path(clip).stem}{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out, max_side=128), lambda size: runner_for(request, size))
    with av.open(str(out)) as c:
        assert [s.codec_context.codec.canonical_name for s in c.streams.audio] == [audio]
    with av.open(str(src)) as c:
        duration = c.duration / 1_000_000
        frame = 1 / float(c.streams.video[0].average_rate)
    check_in_chromium(out, report, duration, frame)


@needs_ffmpeg
def test_ffmpeg_cli_decodes_the_gif(output_of: MakeOutput, small_video: Path) -> None:
    out, report = output_of(".gif")
    assert ffmpeg_decode(out) == (0, ""), f"ffmpeg could not decode {out.name} cleanly"
    info = ffprobe(out)
    [video] = streams_of(info, "video")
    assert video["codec_name"] == "gif" and streams_of(info, "audio") == []
    assert (video["width"], video["height"]) == (report.width, report.height)
    assert int(video["nb_read_frames"]) == SOURCE_FRAMES
    times, source = np.array(ffprobe_video_times(out)), np.array(video_times(small_video))
    assert np.abs(times - source).max() <= 0.01  # a GIF counts hundredths of a second


def gif_in_chromium(out: Path) -> dict:
    seen = play_in_chromium(out, page=GIF_PAGE)
    log = seen.pop("chromium_log")
    print(f"chromium {out.name}: { {k: v for k, v in seen.items() if k != 'snapshot'} }")
    assert "timeout" not in seen, f"{seen['timeout']}; Chromium said:\n{log}"
    assert "error" not in seen, f"Chromium's image decoder failed: {seen['error']}"
    assert seen["supported"] and seen["animated"]
    return seen


@needs_chromium
def test_chromium_decodes_the_gif(output_of: MakeOutput) -> None:
    """Every frame, for as long as the source showed it, looping forever (`repetitionCount` is
    Infinity, which JSON sends as null); the middle frame as PyAV decodes it."""
    out, report = output_of(".gif")
    seen = gif_in_chromium(out)
    assert seen["frameCount"] == report.frames == SOURCE_FRAMES
    assert (seen["width"], seen["height"]) == (report.width, report.height)
    assert seen["repetitionCount"] is None
    durations = np.array(seen["durations"]) / 1e6
    assert np.abs(durations - FRAME).max() <= 0.01 and abs(durations.sum() - SOURCE_FRAMES * FRAME) <= 0.01
    painted = decoded_png(base64.b64decode(seen["snapshot"]["png"].split(",", 1)[1])).astype(int)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert np.abs(frames[seen["snapshot"]["index"]] - painted).mean() < 1


@needs_chromium
def test_no_gif_frame_is_short_enough_for_the_browser_to_slow_it(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Why a GIF keeps at most one frame per 2/100 s (`media.gif.MIN_DELAY`): Chromium and Firefox
    show a frame whose delay is 10 ms or less for 100 ms (their image code says so, and
    biphelps.com/blog/The-Fastest-GIF-Does-Not-Exist shows it). Chromium's own decoder reads the
    delays: the cartoon of a 60 fps clip has none that short and lasts as long as the clip; the
    same frames written one by one at 60 fps have 10 ms ones."""
    src = make_video(tmp_path / "fast.mp4", frames=24, rate=60, audio=None)
    out = tmp_path / "out.gif"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(VideoJob(src, out), lambda s: runner_for(request, s))
    kept = np.array(gif_in_chromium(out)["durations"]) / 1e6
    assert len(kept) == 12 and kept.min() > 0.010 and abs(kept.sum() - 24 / 60) <= 0.02
    every = tmp_path / "every.gif"
    with av.open(str(src)) as c, av.open(str(every), "w") as o:
        stream = o.add_stream("gif", rate=60)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb8"
        for frame in c.decode(video=0):
            o.mux(stream.encode(frame.reformat(format="rgb8")))
        o.mux(stream.encode(None))
    written = np.array(gif_in_chromium(every)["durations"]) / 1e6
    assert len(written) == 24 and written.min() <= 0.010  # each of these plays for 100 ms
