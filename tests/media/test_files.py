"""The media plumbing's small decisions, each against the FFmpeg build's own answer (the mutation
run over `media/files.py` found these undefended: issue 14)."""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.media.files import (
    BT470BG,
    BT709,
    BT2020_NCL,
    FULL,
    LIMITED,
    MUXER_OPTIONS,
    SMPTE170M,
    UNSPECIFIED,
    Colour,
    EncoderSettings,
    atomic_output,
    check_inputs,
    codec_name,
    container_for,
    default_colour,
    encodable_rate,
    ends_mid_packet,
    fit_within,
    muxer_options,
    open_video_encoder,
    pad_to_even,
    process_tag,
    source_colour,
    subtitle_copyable,
    to_rgb,
    to_yuv,
    write_failure,
)
from tests.helpers import make_video, with_subtitles


@pytest.mark.parametrize(
    ("encoder", "rate", "expected"),
    [
        ("libopus", 48000, 48000),  # taken as it is
        ("libopus", 16000, 16000),
        ("libopus", 44100, 48000),  # the lowest rate above it, not the highest or the nearest
        ("libopus", 22050, 24000),
        ("libopus", 11025, 12000),
        ("libopus", 96000, 48000),  # none above: the highest it takes
        ("aac", 44100, 44100),
        ("aac", 50000, 64000),
        ("aac", 100000, 96000),
        ("pcm_s16le", 12345, 12345),  # no rate list: anything goes
    ],
)
def test_encodable_rate_is_the_lowest_taken_rate_at_or_above(encoder: str, rate: int, expected: int) -> None:
    assert expected in (av.Codec(encoder, "w").audio_rates or [expected])  # the build agrees
    assert encodable_rate(encoder, rate) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("clip.mp4", ("mp4", "h264")), ("CLIP.MP4", ("mp4", "h264")), ("a.b.Mov", ("mov", "h264")),
     ("x.mkv", ("matroska", "h264")), ("x.webm", ("webm", "vp9")), ("x.m4v", ("mp4", "h264"))],
)  # fmt: skip
def test_container_for_reads_the_suffix_in_any_case(name: str, expected: tuple[str, str]) -> None:
    assert container_for(Path(name)) == expected


def test_container_for_refuses_an_unknown_suffix_and_lists_the_known_ones() -> None:
    with pytest.raises(CartoonizeError) as caught:
        container_for(Path("folder/clip.ts"))
    message = str(caught.value)
    assert message.startswith("clip.ts: unsupported output type; use one of .mp4, .m4v, .mov")
    assert ".webm" in message and "folder" not in message


def test_muxer_options_are_a_copy_with_faststart_for_the_mov_family() -> None:
    assert muxer_options("mp4") == {"movflags": "+faststart"} == muxer_options("mov")
    assert muxer_options("matroska") == {} == muxer_options("webm")
    options = muxer_options("mp4")
    options["movflags"] = "changed"
    assert MUXER_OPTIONS["mp4"] == {"movflags": "+faststart"}  # the table is not the caller's to edit


def test_codec_name_is_the_family_not_the_decoder(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "mp3.mkv", frames=4, audio="libmp3lame")
    with av.open(str(clip)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.codec.name != "mp3"  # FFmpeg decodes it with mp3float
        assert codec_name(audio) == "mp3"
        assert codec_name(container.streams.video[0]) == "h264"


def test_subtitles_are_copied_only_where_the_container_stores_them(tmp_path: Path) -> None:
    clip = with_subtitles(make_video(tmp_path / "v.mp4", frames=4), [(0.0, 0.2, "hi")], tmp_path / "s.mkv")
    with av.open(str(clip)) as container:
        subrip = container.streams.subtitles[0]
        assert codec_name(subrip) == "subrip"
        assert subtitle_copyable("matroska", subrip)  # takes anything
        assert not subtitle_copyable("mp4", subrip)  # mov_text only
        assert not subtitle_copyable("webm", subrip)  # webvtt only
        assert not subtitle_copyable("avi", subrip)  # none at all


def test_open_video_encoder_sets_what_the_frames_need(tmp_path: Path) -> None:
    settings = EncoderSettings(crf=23, preset="faster", pix_fmt="yuv444p")
    tb = Fraction(1, 90000)
    with av.open(str(tmp_path / "out.mkv"), "w") as output:
        stream = open_video_encoder(output, settings, "h264", 96, 64, Fraction(30000, 1001), tb)
        assert stream.codec_context.name in ("h264_nvenc", "libx264")  # NVENC first, where the GPU has it
        assert (stream.width, stream.height, stream.pix_fmt) == (96, 64, "yuv444p")
        assert stream.time_base == tb and stream.codec_context.time_base == tb
        assert stream.average_rate == Fraction(30000, 1001)
        if stream.codec_context.name == "libx264":
            assert stream.options == {"crf": "23", "preset": "faster"}
        assert getattr(stream.thread_type, "name", stream.thread_type) == "AUTO"
    with av.open(str(tmp_path / "named.webm"), "w") as output:
        stream = open_video_encoder(output, EncoderSettings(codec="vp9"), "h264", 64, 64, None, tb)
        assert stream.codec_context.name == "libvpx-vp9"  # --codec wins over the container's default


def test_open_video_encoder_names_every_encoder_it_tried(tmp_path: Path) -> None:
    with av.open(str(tmp_path / "out.mkv"), "w") as output, pytest.raises(CartoonizeError) as caught:
        open_video_encoder(
            output, EncoderSettings(codec="no_such_codec"), "h264", 64, 64, None, Fraction(1, 25)
        )
    assert (
        str(caught.value)
        == "no no_such_codec encoder could be opened here (no_such_codec: not in this FFmpeg build)"
    )


@pytest.mark.parametrize(("h", "w"), [(4, 4), (3, 4), (9, 4), (4, 5), (4, 9), (5, 5), (3, 3), (1, 2), (2, 1)])
def test_pad_to_even_repeats_only_the_last_row_and_column(h: int, w: int) -> None:
    import numpy as np

    frame = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    padded = pad_to_even(frame)
    assert padded.shape == (h + h % 2, w + w % 2, 3)
    assert np.array_equal(padded[:h, :w], frame)  # the original pixels untouched
    if h % 2:
        assert np.array_equal(padded[h, :w], frame[h - 1])
    if w % 2:
        assert np.array_equal(padded[:, w], padded[:, w - 1])


def test_fit_within_scales_down_only_and_keeps_sides_even_for_video() -> None:
    assert fit_within(65, 49, None) == (65, 49)  # no limit
    assert fit_within(65, 49, 65) == (65, 49)  # at the limit: untouched, odd sides too
    assert fit_within(100, 70, 50) == (50, 36)  # even by default (4:2:0 video): 35 -> 36
    assert fit_within(100, 70, 50, even=False) == (50, 35)  # photos keep the exact aspect
    assert fit_within(70, 100, 50) == (36, 50)
    assert fit_within(1000, 10, 50) == (50, 2)  # never below one step
    assert fit_within(1000, 10, 50, even=False) == (50, 1)
    assert fit_within(64, 48, 31) == (30, 22)  # an odd limit: even sides below it (it gave 32x24)
    assert fit_within(64, 48, 31, even=False) == (31, 23)


@pytest.mark.parametrize(
    ("size", "matrix", "primaries", "trc"),
    [((1920, 1080), BT709, 1, 1), ((1025, 400), BT709, 1, 1), ((720, 577), BT709, 1, 1),  # HD by either side
     ((1024, 576), BT470BG, 5, 6), ((352, 288), BT470BG, 5, 6),  # 625-line SD
     ((1024, 480), SMPTE170M, 6, 6), ((720, 480), SMPTE170M, 6, 6), ((64, 48), SMPTE170M, 6, 6)],  # 525-line SD
)  # fmt: skip
def test_untagged_video_gets_the_size_based_default_players_use(
    size, matrix: int, primaries: int, trc: int
) -> None:  # noqa: ANN001
    colour = default_colour(*size)
    assert (colour.matrix, colour.range, colour.primaries, colour.trc, colour.tagged) == (
        matrix,
        LIMITED,
        primaries,
        trc,
        False,
    )


def test_colour_describes_itself_for_the_report() -> None:
    assert Colour(BT709, LIMITED, 1, 1).describe() == "BT.709 limited range"
    assert Colour(SMPTE170M, FULL, 6, 6).describe() == "BT.601 (525) full range"
    assert Colour(3, LIMITED, 2, 2).describe() == "matrix 3 limited range"
    assert (
        default_colour(720, 576).describe()
        == "BT.601 (625) limited range (untagged source: the size-based default)"
    )


def frame_tagged(width: int, height: int, fmt: str = "yuv420p", **tags: int) -> av.VideoFrame:
    """A real decoded-frame object with the given colour tags (colorspace, color_range, ...)."""
    frame = av.VideoFrame(width, height, fmt)
    for name, value in tags.items():
        setattr(frame, name, value)
    return frame


@pytest.mark.parametrize(
    ("tags", "expected"),
    [({"colorspace": BT709, "color_range": FULL, "color_primaries": 1, "color_trc": 1}, (BT709, FULL, 1, 1, True)),
     ({"colorspace": BT2020_NCL, "color_range": LIMITED, "color_primaries": 9, "color_trc": 16},
      (BT2020_NCL, LIMITED, 9, 16, True)),
     ({"colorspace": BT470BG, "color_primaries": 5, "color_trc": 6}, (BT470BG, LIMITED, 5, 6, True)),  # no range: limited
     ({}, (SMPTE170M, LIMITED, 6, 6, False)),  # nothing said: the SD default, untagged
     ({"colorspace": UNSPECIFIED, "color_range": FULL, "color_primaries": UNSPECIFIED, "color_trc": UNSPECIFIED},
      (SMPTE170M, FULL, 6, 6, False)),  # a range alone is kept
     ({"colorspace": 3, "color_primaries": 0, "color_trc": 0}, (SMPTE170M, LIMITED, 6, 6, False)),  # reserved codes
     ({"colorspace": 0, "color_range": 0}, (SMPTE170M, LIMITED, 6, 6, False)),  # RGB's code: no YUV matrix
     ({"colorspace": BT709, "color_primaries": 4, "color_trc": 8}, (BT709, LIMITED, 4, 8, True))],  # each tag its own
)  # fmt: skip
def test_source_colour_keeps_each_tag_and_fills_the_missing_ones(tags: dict, expected: tuple) -> None:
    colour = source_colour(frame_tagged(64, 48, **tags))
    assert (colour.matrix, colour.range, colour.primaries, colour.trc, colour.tagged) == expected


def test_source_colour_fills_from_the_frames_own_size() -> None:
    hd = source_colour(frame_tagged(1280, 720, color_primaries=9))
    assert (hd.matrix, hd.primaries, hd.trc, hd.tagged) == (BT709, 9, 1, False)  # HD default, the tag kept
    pal = source_colour(frame_tagged(720, 576, colorspace=UNSPECIFIED))
    assert (pal.matrix, pal.primaries, pal.trc) == (BT470BG, 5, 6)


def test_a_jpeg_format_frame_is_full_range_whatever_its_tag() -> None:
    assert source_colour(frame_tagged(64, 48, "yuvj420p", color_range=LIMITED)).range == FULL
    assert source_colour(frame_tagged(64, 48, "yuv420p", color_range=LIMITED)).range == LIMITED


def test_check_inputs_refuses_the_first_missing_input(tmp_path: Path) -> None:
    here = tmp_path / "here.mp4"
    here.write_bytes(b"x")
    check_inputs([here, tmp_path])  # a file and a folder exist
    with pytest.raises(CartoonizeError, match=r"^input .*gone\.mp4 does not exist$"):
        check_inputs([here, tmp_path / "gone.mp4", tmp_path / "other.mp4"])


# BT.601, BT.709, BT.2020: (Kr, Kb) of each matrix's luma
KR_KB = {
    SMPTE170M: (0.299, 0.114),
    BT470BG: (0.299, 0.114),
    BT709: (0.2126, 0.0722),
    BT2020_NCL: (0.2627, 0.0593),
}
SATURATED = [
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
    (230, 40, 90),
]


def ycbcr(rgb: tuple[int, int, int], matrix: int, full: bool) -> tuple[float, float, float]:
    """Y, Cb, Cr of an 8-bit RGB colour by the matrix's own formula (ITU-R BT.601/709/2020)."""
    kr, kb = KR_KB[matrix]
    r, g, b = (c / 255 for c in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if full:
        return 255 * y, 128 + 255 * cb, 128 + 255 * cr
    return 16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr


def yuv_frame(y: float, cb: float, cr: float, size: int = 16) -> av.VideoFrame:
    planes = np.empty((size * 3 // 2, size), np.uint8)
    planes[:size] = round(y)
    planes[size : size + size // 4] = round(cb)
    planes[size + size // 4 :] = round(cr)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("matrix", [SMPTE170M, BT709, BT2020_NCL])
def test_to_yuv_uses_the_colours_matrix_and_range(matrix: int, full: bool) -> None:
    colour = Colour(matrix, FULL if full else LIMITED, 1, 1)
    for rgb in SATURATED:
        frame = to_yuv(np.full((16, 16, 3), rgb, np.uint8), colour)
        planes = frame.to_ndarray()
        got = planes[:16].mean(), planes[16:20].mean(), planes[20:].mean()
        assert np.allclose(got, ycbcr(rgb, matrix, full), atol=1.5), (
            rgb,
            got,
        )  # swscale rounds full-range chroma so
        assert (frame.colorspace, frame.color_range) == (matrix, colour.range)  # tagged as converted


@pytest.mark.parametrize("size", [(48, 64), (38, 54)])  # even: the pipeline pads to even first
def test_to_yuv_reads_a_cropped_view_in_place_as_it_would_a_copy(size: tuple[int, int]) -> None:
    """A cartoon cropped out of a padded batch is a view whose rows are longer than the frame: it is
    converted from its own memory, giving exactly what a contiguous copy gives."""
    h, w = size
    batch = np.random.default_rng(3).integers(0, 256, (2, h + 3, w + 5, 3), dtype=np.uint8)
    view = batch[1, :h, :w]
    assert not view.flags.c_contiguous
    colour = Colour(BT709, LIMITED, 1, 1)
    copied = av.VideoFrame.from_ndarray(np.ascontiguousarray(view), format="rgb24").reformat(
        format="yuv420p", dst_colorspace=BT709, dst_color_range=LIMITED
    )
    before = batch.copy()
    assert np.array_equal(to_yuv(view, colour).to_ndarray(), copied.to_ndarray())
    assert np.array_equal(batch, before)  # and left untouched


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("matrix", [SMPTE170M, BT709, BT2020_NCL])
def test_to_rgb_decodes_with_the_colours_matrix_and_range_accurately(matrix: int, full: bool) -> None:
    """Within 1 level of the exact inverse: swscale's fast path is off by up to 3 on these."""
    colour = Colour(matrix, FULL if full else LIMITED, 1, 1)
    for rgb in SATURATED:
        y, cb, cr = ycbcr(rgb, matrix, full)
        got = to_rgb(yuv_frame(y, cb, cr), colour).reshape(-1, 3)
        exact = np.array(rgb, np.float64)  # the YUV was rounded: compare with what it decodes to exactly
        kr, kb = KR_KB[matrix]
        yy, pb, pr = (
            (round(y) - (0 if full else 16)) / (255 if full else 219),
            *((round(c) - 128) / (255 if full else 224) for c in (cb, cr)),
        )
        r, b = yy + 2 * (1 - kr) * pr, yy + 2 * (1 - kb) * pb
        exact = 255 * np.clip([r, (yy - kr * r - kb * b) / (1 - kr - kb), b], 0, 1)
        assert np.abs(got - exact).max() <= 1.0, (rgb, got[0], exact)


def test_to_rgb_with_another_matrix_or_range_gives_other_colours() -> None:
    y, cb, cr = ycbcr((191, 0, 0), BT709, False)
    frame = yuv_frame(y, cb, cr)
    right = to_rgb(frame, Colour(BT709, LIMITED, 1, 1))[0, 0].astype(int)
    assert np.abs(to_rgb(frame, Colour(SMPTE170M, LIMITED, 6, 6))[0, 0] - right).max() > 8
    assert np.abs(to_rgb(frame, Colour(BT709, FULL, 1, 1))[0, 0] - right).max() > 8
    assert np.array_equal(
        to_rgb(frame, Colour(3, LIMITED, 2, 2)), to_rgb(frame, Colour(SMPTE170M, LIMITED, 6, 6))
    )


def test_to_rgb_scales_with_the_interpolation_asked_for() -> None:
    """AREA halves 2x2 blocks of one colour to that colour; the default bicubic rings at their edges."""
    rng = np.random.default_rng(3)
    luma = np.repeat(np.repeat(rng.integers(16, 236, (8, 8)), 2, 0), 2, 1).astype(np.uint8)
    planes = np.concatenate([luma, np.full((8, 16), 128, np.uint8)])  # grey: Cb = Cr = 128
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    colour = Colour(SMPTE170M, LIMITED, 6, 6)
    full = to_rgb(frame, colour)
    half = to_rgb(frame, colour, 8, 8, "AREA")
    assert half.shape == (8, 8, 3)
    assert np.abs(half.astype(int) - full[::2, ::2]).max() <= 1
    assert np.abs(to_rgb(frame, colour, 8, 8, "BICUBIC").astype(int) - full[::2, ::2]).max() > 4


@pytest.mark.parametrize(
    ("encoder", "expected"),
    [("libx264", {"crf": "23", "preset": "fast"}), ("libx265", {"crf": "23", "preset": "fast", "x265-params": "log-level=error"}),
     ("h264_nvenc", {"preset": "p4", "rc": "vbr", "cq": "23"}), ("hevc_nvenc", {"preset": "p4", "rc": "vbr", "cq": "23"}),
     ("libvpx-vp9", {"crf": "35", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}),
     ("libvpx", {"crf": "35", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}),
     ("libsvtav1", {"crf": "35"}), ("mpeg4", {"qscale": "3"}), ("libopenh264", {}), ("nvenc_h264x", {})],
)  # fmt: skip
def test_each_encoder_family_gets_its_own_quality_options(encoder: str, expected: dict[str, str]) -> None:
    """x264/x265 take the CRF and preset; NVENC the CRF as its constant quality; libvpx a CRF on
    its own scale (12 more), and SVT-AV1 on AV1's, the same; an encoder we have no settings for gets
    its defaults."""
    from cartoonize.media.files import _encoder_options

    assert _encoder_options(encoder, EncoderSettings(crf=23, preset="fast")) == expected


def test_encoder_problem_says_why_an_encoder_cannot_encode_here() -> None:
    from cartoonize.media.files import encoder_problem

    assert encoder_problem("libx264") is None and encoder_problem("libx264", 64, 48) is None
    assert encoder_problem("no_such_encoder") == "not in this FFmpeg build"
    assert encoder_problem("aac") == "not a video encoder"
    for size in ((255, 256), (256, 255)):  # 4:2:0 needs even sides: FFmpeg's own message
        assert "avcodec_open2" in (encoder_problem("libx264", *size) or "")


@pytest.mark.parametrize("size", [(255, 256), (256, 255)])
def test_open_video_encoder_probes_at_the_size_it_will_encode(tmp_path: Path, size: tuple[int, int]) -> None:
    """An odd side (the callers pad to even first) makes every H.264 encoder fail its probe, and
    the error names each with FFmpeg's reason, separated by '; '."""
    with av.open(str(tmp_path / "out.mkv"), "w") as output, pytest.raises(CartoonizeError) as caught:
        open_video_encoder(output, EncoderSettings(), "h264", *size, None, Fraction(1, 25))
    text = str(caught.value)
    assert text.startswith("no h264 encoder could be opened here (h264_nvenc: ")
    assert "; libx264: " in text and "avcodec_open2" in text.split("; libx264: ")[1]


def test_write_failures_are_one_line_about_the_output(tmp_path: Path) -> None:
    """A full disk while the hidden temporary file is written becomes one line naming the output;
    an error about another file (an input that could not be read) passes through as it is."""
    out = tmp_path / "out.mp4"
    with pytest.raises(CartoonizeError, match=r"^cannot write .*out\.mp4 \(No space left on device\); free"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert list(tmp_path.iterdir()) == []
    tmp = tmp_path / ".out.cartoonize-1.partial.mp4"
    assert write_failure(out, tmp, OSError(errno.EDQUOT, "Disk quota exceeded")) is not None  # no file named
    assert write_failure(out, tmp, OSError(errno.EIO, "Input/output error", str(tmp))) is not None
    assert write_failure(out, tmp, OSError(errno.EIO, "Input/output error", "/media/in.mp4")) is None
    assert write_failure(out, tmp, OSError(errno.ENOSPC, "No space left", "/tmp/cache/x")) is None
    assert write_failure(out, tmp, OSError(errno.ENOENT, "No such file", str(tmp))) is None
    with pytest.raises(FileNotFoundError):
        with atomic_output(out):
            raise FileNotFoundError(errno.ENOENT, "No such file", "/media/in.mp4")


@pytest.mark.parametrize("m2ts", [False, True], ids=["ts", "m2ts"])
def test_a_transport_stream_cut_mid_packet(m2ts: bool, tmp_path: Path) -> None:
    """Whole 188-byte packets (192 in M2TS, its time code first) are a whole file; a file that
    stops partway through one was cut short. A cut on a packet's boundary cannot be told."""
    from tests.pipelines.test_transport_streams import transport_stream

    src = transport_stream(tmp_path, {"mpegts_m2ts_mode": "1"} if m2ts else None)
    whole = src.read_bytes()
    packet = 192 if m2ts else 188
    assert len(whole) % packet == 0
    for kept, cut_short in [(len(whole), False), (len(whole) - 1, True), (len(whole) - 5000, True),
                            (len(whole) - 10 * packet, False), (100 * packet + 37, True)]:  # fmt: skip
        src.write_bytes(whole[:kept])
        with av.open(str(src)) as container:
            assert ends_mid_packet(container, src) == cut_short, kept


def test_a_killed_runs_hidden_partial_is_removed_by_the_next_write_there(tmp_path: Path) -> None:
    """A run killed with SIGKILL (the OOM killer, a power cut) leaves its hidden partial output, a
    whole video's worth of disk, under a name no later run uses: the next write into that folder
    removes it. A running process's, another machine's (a shared folder) and a user's files stay."""
    import subprocess
    import sys

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    dead = tmp_path / f".film.cartoonize-{process_tag(done.pid)}.partial.mp4"
    live = tmp_path / f".clip.cartoonize-{process_tag(os.getppid())}.partial.mkv"
    elsewhere = tmp_path / f".film.cartoonize-elsewhere-{done.pid}.partial.mp4"
    mine = tmp_path / ".film.cartoonize-notes.partial.txt"
    for path in (dead, live, elsewhere, mine):
        path.write_bytes(b"x")
    with atomic_output(tmp_path / "out.mp4") as tmp:
        assert tmp.name == f".out.cartoonize-{process_tag()}.partial.mp4"
        tmp.write_bytes(b"a cartoon")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, mine.name, "out.mp4"]
    )
