"""`cartoonize bench` on a CPU: the engine beside PyTorch eager, with numbers that follow from
each other (fps from the median, the speed-up from the two fps, FLOP from the network's shape)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cpu_auto

ROOT = Path(__file__).resolve().parents[2]


def generator_flop(c: int, blocks: int, h: int, w: int) -> float:
    """2 × multiply-adds of every convolution of the CartoonGAN generator with base width `c`,
    written out from its layer list (transposed convolutions counted at their output size)."""
    hw, q, s = h * w, h * w / 4, h * w / 16  # full, half and quarter resolution pixels
    macs = (
        hw * c * 3 * 49  # 7x7 flat conv, 3 -> c
        + q * 2 * c * c * 9 + q * 2 * c * 2 * c * 9  # down to H/2: stride-2 conv, conv
        + s * 4 * c * 2 * c * 9 + s * 4 * c * 4 * c * 9  # down to H/4
        + blocks * 2 * s * 4 * c * 4 * c * 9  # residual blocks, two 3x3 convs each
        + q * 2 * c * 4 * c * 9 + q * 2 * c * 2 * c * 9  # up to H/2: transposed conv, conv
        + hw * c * 2 * c * 9 + hw * c * c * 9  # up to H
        + hw * 3 * c * 49  # 7x7 conv to RGB
    )  # fmt: skip
    return 2 * macs


def test_flop_formula_is_the_papers_figure() -> None:
    assert generator_flop(64, 8, 100, 100) / 10 == pytest.approx(1.88e9, rel=0.01)  # per 1000 px


def test_bench_on_the_cpu(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    runner, precision = cpu_auto(tiny_checkpoint)  # measured and remembered before the child runs
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "bench", "--model", str(tiny_checkpoint), "--shape", "32x48",
         "--iters", "4", "--warmup", "1", "--peak-tflops", "0.5", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "speed-up over torch eager" in text and "fps" in text
    report = json.loads(out.read_text())
    assert (
        report["device"] == "cpu" and report["precision"] == precision and report["timing"] == "perf_counter"
    )
    assert report["engine"]["runner"].startswith(runner)  # auto on a CPU
    assert report["torch_eager"]["runner"].startswith("torch")
    flop = generator_flop(8, 1, 32, 48)
    assert report["gflop_per_frame"] == pytest.approx(flop / 1e9, abs=1e-3)
    assert report["floor_fps"] == pytest.approx(0.5e12 / flop, rel=1e-3)
    for r in (report["engine"], report["torch_eager"]):
        assert r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert r["fps"] == pytest.approx(1e3 / r["median_ms"], rel=1e-2)  # batch 1
        # the JSON rounds tflops to 1e-3 and the fraction to 1e-4: compare within that rounding
        assert r["tflops"] == pytest.approx(r["fps"] * flop / 1e12, rel=1e-2, abs=1e-3)
        assert r["fraction_of_peak"] == pytest.approx(r["fps"] * flop / 1e12 / 0.5, rel=1e-2, abs=2e-4)
    speedup = report["engine"]["fps"] / report["torch_eager"]["fps"]
    assert report["speedup_vs_eager"] == pytest.approx(speedup, rel=1e-2)
    # a tiny model's rate in a unit that shows it (it printed "0.00 TFLOP/s")
    assert f"{report['engine']['fps'] * report['gflop_per_frame']:.1f} GFLOP/s" in text
    assert "TFLOP/s" not in text


def test_the_flop_rate_is_printed_in_the_unit_that_shows_it() -> None:
    from cartoonize.measure.bench import _flop_rate

    assert _flop_rate(28.74) == "28.7 GFLOP/s" and _flop_rate(999.9) == "999.9 GFLOP/s"
    assert _flop_rate(1000.0) == "1.00 TFLOP/s" and _flop_rate(163_700.0) == "163.70 TFLOP/s"


def test_a_json_path_that_cannot_be_written_is_refused_before_the_benchmark(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cartoonize.cli import main

    def no_bench(*args: object) -> None:
        raise AssertionError("benchmarked before the --json path was checked")

    monkeypatch.setattr("cartoonize.measure.bench.bench", no_bench)
    (tmp_path / "file").write_text("")
    for json_path, message in ((tmp_path, "is a folder; give a file name"),
                               (tmp_path / "file" / "b.json", "is a file, not a folder")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(["bench", "--model", str(tiny_checkpoint), "--shape", "32x48", "--json", str(json_path)])
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert message in " ".join(err.split()) and "Traceback" not in err, err


def test_cpu_precision_table_follows_from_its_figures(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`measure.cpu_precision`: the three runners at each size, ratios that follow from the fps,
    bf16's parity, and the same choice as the one `auto` runs here."""
    from cartoonize.measure.cpu_precision import main

    out = tmp_path / "precision.json"
    report = main(
        ["--model", str(tiny_checkpoint), "--sizes", "32x48,48x64", "--iters", "2", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == report
    assert [row["shape"] for row in report["sizes"]] == [[32, 48], [48, 64]]
    for row in report["sizes"]:
        assert row["bf16_vs_torch_fp32"] == pytest.approx(
            row["torch_bf16_fps"] / row["torch_fp32_fps"], rel=1e-2
        )
        assert row["bf16_vs_onnxruntime"] == pytest.approx(
            row["torch_bf16_fps"] / row["onnxruntime_fp32_fps"], rel=1e-2
        )
        assert 30 < row["bf16_psnr_db"] < 100  # bf16 is close to fp32, not identical
    assert report["auto"]["precision"] == cpu_auto(tiny_checkpoint)[1]


def test_the_host_path_keeps_one_batch_in_flight() -> None:
    """`time_host_path` times the pipeline's numpy path with the next batch handed over before the
    last is collected: with an engine whose batches take 40 ms each on their own (a worker thread,
    as a GPU works beside the host) and 15 ms of host work to submit, a batch costs ~40 ms, not 55."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from cartoonize.measure.bench import time_host_path
    from cartoonize.runners.base import Runner

    class Beside(Runner):
        name, device, precision = "beside", "cpu", "fp32"
        pool = ThreadPoolExecutor(1)
        lock = threading.Lock()

        def load(self) -> None:
            pass

        def infer(self, frames: np.ndarray) -> np.ndarray:
            return frames

        def start(self, frames: np.ndarray):  # noqa: ANN201
            time.sleep(0.015)  # the host's share: copies, launches
            done = self.pool.submit(time.sleep, 0.04)  # the device's, queued behind the last batch
            return lambda: (done.result(), frames)[1]

    with Beside() as runner:
        seconds = time_host_path(runner, np.zeros((1, 8, 8, 3), np.uint8), iters=10, warmup=1)
    assert len(seconds) == 10
    assert 0.036 < float(np.median(seconds)) < 0.05, seconds  # one after the other: 55 ms


def test_an_unknown_engine_is_refused_before_any_work(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cartoonize.cli import main

    def no_bench(*args: object) -> None:
        raise AssertionError("benchmarked before the engine names were checked")

    monkeypatch.setattr("cartoonize.measure.bench.bench", no_bench)
    for engines, message in (("eager,bogus", "--engine 'bogus': use auto"),
                             ("eager,missing.onnx", "engine file not found: missing.onnx")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(["bench", "--model", str(tiny_checkpoint), "--shape", "32x48", "-e", engines])
        assert exit_.value.code == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines


def test_fp16_onnx_on_the_cpu_and_each_runners_speedup(tiny_checkpoint: Path) -> None:
    """An fp16 ONNX file runs on the CPU (ONNX Runtime) beside eager fp32, as PyTorch has no fp16
    there; with several runners the last line gives each one's own ratio and names the fastest."""
    from dataclasses import replace

    from cartoonize.choose import EngineRequest, cached_onnx
    from cartoonize.measure.bench import BenchJob, bench, format_report

    fp16 = cached_onnx(tiny_checkpoint, "fp16")
    job = BenchJob(EngineRequest(engine=str(fp16), model=tiny_checkpoint), (32, 48), iters=2, warmup=0)
    report = bench(job)
    assert (report["device"], report["precision"]) == ("cpu", "fp16")
    assert report["torch_eager"]["runner"] == "torch (cpu, fp32; PyTorch runs no fp16 on the CPU)"
    last = format_report(report)[-1]
    assert last.startswith(
        f"  speed-up over torch eager: onnxruntime (cpu, fp16) {report['speedup_vs_eager']:.2f}×"
    )

    report = bench(replace(job, request=replace(job.request, engine=f"eager,onnxruntime,{fp16}")))
    runners = report["runners"]
    assert [r["runner"] for r in runners] == [
        "torch (cpu, fp32)",
        "onnxruntime (cpu, fp32)",
        "onnxruntime (cpu, fp16)",
    ]
    fastest = max(runners[1:], key=lambda r: r["fps"])
    assert (
        report["fastest"] == fastest["runner"] and report["speedup_vs_eager"] == fastest["speedup_vs_eager"]
    )
    last = format_report(report)[-1]
    for r in runners[1:]:
        assert f"{r['runner']} {r['speedup_vs_eager']:.2f}×" in last, last
    assert last.endswith(f"; fastest: {fastest['runner']}") and "1.00×" not in last, last
