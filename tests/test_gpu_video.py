"""tests/gpu_video.py's `--also` runs: several `cartoonize video` runs in one process share one
loaded engine (on the H200 a warm load of the compiled engine is 10-12 s of a ~25 s step)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cartoonize.runners.torch import TorchRunner
from tests.gpu_video import command_line, main, runs
from tests.helpers import make_video


def test_also_runs_share_one_loaded_engine(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads, closes = [], []

    def load(self, _load=TorchRunner.load) -> None:  # noqa: ANN001
        loads.append(1)
        time.sleep(0.05)  # a load long enough to show in the report's two decimals
        _load(self)

    monkeypatch.setattr(TorchRunner, "load", load)
    monkeypatch.setattr(
        TorchRunner, "close", lambda self, _close=TorchRunner.close: (closes.append(1), _close(self))[1]
    )
    clip = make_video(tmp_path / "in.mp4", frames=12, width=64, height=48)
    out, report = tmp_path / "out.mp4", tmp_path / "video.json"
    argv = [str(clip), str(out), str(report), "--engine", "torch", "--device", "cpu", "--model", str(tiny_checkpoint),
            "--also", "raw:--raw", "--also", "raw-5ms:--raw --switch-interval 0"]  # fmt: skip
    assert main(argv) == 0
    assert len(loads) == 1 and len(closes) == 1  # loaded once for the three runs, closed at the end
    first, raw, slow = (json.loads(p.read_text()) for p in
                        (report, tmp_path / "video-raw.json", tmp_path / "video-raw-5ms.json"))  # fmt: skip
    assert (tmp_path / "out-raw.mp4").exists() and (tmp_path / "out-raw-5ms.mp4").exists()
    assert all(r["frames"] == 12 and r["shared_engine"] for r in (first, raw, slow))
    assert first["stages"] != "none" and raw["stages"] == slow["stages"] == "none"
    assert first["load_s"] > 0 and raw["load_s"] == slow["load_s"] == 0  # the load is the first run's
    assert raw["switch_interval"] == pytest.approx(0.0005, abs=2e-6) and slow[
        "switch_interval"
    ] == pytest.approx(0.005)


def test_also_names_its_files_and_refuses_what_it_cannot_share(tmp_path: Path) -> None:
    args = command_line().parse_args(["c.mp4", str(tmp_path / "o.mp4"), str(tmp_path / "r.json"),
                                      "--also", "yuv:--raw --yuv-frames"])  # fmt: skip
    [(_, out0, rep0, _), (tag, out1, rep1, opts)] = runs(args)
    assert (out0.name, rep0.name, tag, out1.name, rep1.name) == (
        "o.mp4",
        "r.json",
        "yuv",
        "o-yuv.mp4",
        "r-yuv.json",
    )
    assert opts.raw and opts.yuv_frames and not opts.round_trip
    with pytest.raises(SystemExit):
        runs(command_line().parse_args(["c.mp4", "o.mp4", "r.json", "--also", "x:--batch 4"]))  # the engine's
    with pytest.raises(SystemExit, match="--profile"):
        main(["c.mp4", "o.mp4", "r.json", "--sync-debug", "--also", "raw:--raw"])
