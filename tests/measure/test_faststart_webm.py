"""The faststart benchmark on a clip whose packets an mp4 cannot hold as they are (a webm, VP8):
the cartoon is still remuxed and measured; the source's remux ended the run in a ValueError after
the whole job."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.measure.faststart import measure, mp4_refuses
from tests.helpers import make_video


def test_a_webm_source_leaves_out_only_its_own_remux(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webm = make_video(tmp_path / "clip.webm", frames=6, audio=None)
    mp4 = make_video(tmp_path / "clip.mp4", frames=6, audio=None)
    assert mp4_refuses(mp4) is None and "libvpx" in (mp4_refuses(webm) or "")
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu", precision="fp32")
    result = measure(webm, 1, None, request)
    assert list(result["remux"]) == ["cartoon"] and result["frames"] == 6
    assert result["remux"]["cartoon"]["plain_s"] > 0 and result["job_ratio"] >= 1.0
    assert "only the cartoon is remuxed" in capsys.readouterr().out
    assert list(measure(mp4, 1, None, request)["remux"]) == ["source", "cartoon"]
