"""media.deinterlace: bwdif on the frames the decoder flags as interlaced; progressive ones untouched."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.media.deinterlace import Deinterlacer
from tests.helpers import comb, make_interlaced, make_video, moving_bars


def _through(path: Path, enabled: bool = True) -> tuple[list, list, Deinterlacer]:
    """(the decoded frames, what the deinterlacer gave back, it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        deinterlacer = Deinterlacer(stream.time_base, enabled)
        decoded, out = [], []
        for frame in container.decode(stream):
            decoded.append(frame)
            out += deinterlacer.push(frame)
        out += deinterlacer.flush()
    return decoded, out, deinterlacer


def test_an_interlaced_clip_comes_out_whole_frames_at_its_own_times(tmp_path: Path) -> None:
    decoded, out, deinterlacer = _through(make_interlaced(tmp_path / "1080i.mp4", frames=12))
    assert all(frame.interlaced_frame for frame in decoded)
    # one frame for each, in order, at the timestamps they came in with (bwdif counts in half ticks)
    assert [f.pts for f in out] == [f.pts for f in decoded]
    assert all(deinterlacer.woven(f) for f in out)
    woven = np.mean([comb(f.to_ndarray(format="rgb24")) for f in decoded])
    whole = np.mean([comb(f.to_ndarray(format="rgb24")) for f in out])
    # one instant of the scene has next to no comb (its bars are vertical); woven, tens of levels
    assert comb(moving_bars(96, 64, 0)) < 0.5 and woven > 20, woven
    assert whole < min(1.5, woven / 20), f"still combed: {whole:.2f} levels (woven {woven:.2f})"


def test_the_first_field_is_the_picture_kept(tmp_path: Path) -> None:
    """A frame becomes its first field's instant (here the bottom field's, as the decoder flags
    it), the other field's lines filled in: not the second instant, nor a blend of the two."""
    _, out, _ = _through(make_interlaced(tmp_path / "tff.mp4", frames=8))
    for i in (2, 5):  # away from the ends, where bwdif has a frame either side
        got = out[i].to_ndarray(format="rgb24").astype(np.float64)
        first, second = moving_bars(96, 64, 2 * i).astype(np.float64), moving_bars(96, 64, 2 * i + 1)
        assert np.abs(got - first).mean() < 0.5 * np.abs(got - second).mean()


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_progressive_frames_pass_untouched(tmp_path: Path, codec: str) -> None:
    suffix = ".mp4" if codec == "libx264" else ".mkv"
    decoded, out, deinterlacer = _through(
        make_video(tmp_path / f"p{suffix}", frames=10, audio=None, codec=codec)
    )
    assert not any(frame.interlaced_frame for frame in decoded)
    assert len(out) == len(decoded) and all(
        a is b for a, b in zip(out, decoded, strict=True)
    )  # no filter at all
    assert not any(deinterlacer.woven(f) for f in out)


def test_turned_off_it_passes_every_frame_and_still_counts_them(tmp_path: Path) -> None:
    decoded, out, deinterlacer = _through(make_interlaced(tmp_path / "i.mp4", frames=6), enabled=False)
    assert all(a is b for a, b in zip(out, decoded, strict=True)) and len(out) == 6
    assert [deinterlacer.woven(f) for f in out] == [True] * 6
    assert not deinterlacer.woven(out[0])  # asked once for each
