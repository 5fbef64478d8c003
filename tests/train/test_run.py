"""End-to-end runs of the training command on generated images, with a tiny generator."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")
from typer.testing import CliRunner  # noqa: E402

from cartoonize.model import load_checkpoint  # noqa: E402
from tests.helpers import STOPS, stoppable  # noqa: E402
from tests.train.conftest import REPO, TINY, tiny_args  # noqa: E402
from train.cli import app  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.loop import TrainingInterrupted  # noqa: E402
from train.run import train  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_a_usable_run(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos, cartoons = folders
    (photos / "broken.jpg").write_text("not a jpeg")  # skipped with a warning, counted
    out = tmp_path / "runs" / "smoke"
    started = time.perf_counter()
    result = CliRunner().invoke(
        app, ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out), *tiny_args()]
    )
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    print(f"smoke run (1 + 1 init and 1 + 1 adversarial epochs of 3 steps): {seconds:.1f} s")

    assert (out / "config.toml").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"epoch_00{i}.pt" for i in range(1, 5)]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"epoch_00{i}.png" for i in range(5)]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    logged = rows(out)
    assert [int(r["step"]) for r in logged] == list(range(1, 13))
    assert [r["phase"] for r in logged] == ["init"] * 3 + ["init_decay"] * 3 + ["adversarial"] * 3 + [
        "decay"
    ] * 3
    assert all(r["d_edge"] for r in logged[6:]) and not logged[0]["d_edge"]

    for path in (out / "last.pt", out / "checkpoints" / "epoch_004.pt"):
        checkpoint = load_checkpoint(path)  # the cartoonize format: export and video --model take it
        assert checkpoint.config.base_channels == 8 and checkpoint.io.channel_order == "RGB"
        with torch.no_grad():
            y = checkpoint.generator()(torch.rand(1, 3, 36, 44) * 2 - 1)
        assert y.shape == (1, 3, 36, 44) and y.abs().max() <= 1
    assert load_checkpoint(out / "last.pt").extra["training"]["position"] == {
        "epoch": 4,
        "batch": 0,
        "step": 12,
    }

    # the cartoon cache was made once; the sample grid is photos | outputs
    assert (cartoons / ".cartoonize-edges" / "40-stretch" / "manifest.json").exists()
    grid = __import__("cv2").imread(str(out / "samples" / "epoch_004.png"))
    assert grid.shape == (2 * 32, 2 * 32, 3)


def config(photos: Path, cartoons: Path, out: Path, **changes) -> TrainConfig:
    return TrainConfig(photos=photos, cartoons=cartoons, out=out, **{**TINY, "steps_per_epoch": 2, **changes})


def test_resume_reproduces_the_uninterrupted_run(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos, cartoons = folders
    whole = train(config(photos, cartoons, tmp_path / "whole"))
    assert whole.position.step == 8

    # stop in the middle of the first adversarial epoch, then at an epoch boundary
    split = tmp_path / "split"
    with pytest.raises(TrainingInterrupted) as stop:
        train(config(photos, cartoons, split), should_stop=lambda p: p.step == 5)
    assert stop.value.position.batch == 1 and stop.value.checkpoint == split / "last.pt"
    with pytest.raises(TrainingInterrupted):
        train(config(photos, cartoons, split, resume=True), should_stop=lambda p: p.step == 6)
    resumed = train(config(photos, cartoons, split, resume=True))
    assert resumed.position.step == 8

    expected, actual = rows(tmp_path / "whole"), rows(split)
    assert [r["step"] for r in actual] == [str(i) for i in range(1, 9)]
    assert actual == expected  # every loss, bit for bit (written with repr)
    a = load_checkpoint(tmp_path / "whole" / "last.pt").state_dict
    b = load_checkpoint(split / "last.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("sent", "code"), STOPS)
def test_interrupt_saves_and_exits(
    sent: signal.Signals, code: int, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """Ctrl-C, SIGTERM (a scheduler preempting the job) or SIGHUP (a closed terminal): the step
    ends, the run is saved where --resume finds it, and the exit code is the shell's for that signal."""
    photos, cartoons = folders
    out = tmp_path / "run"
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out)]
    # an epoch far longer than the signal takes to come (200 steps, 10 s, once ran out before it on CI)
    args += tiny_args(steps_per_epoch=5000, init_epochs=1, init_decay_epochs=0, adv_epochs=0, decay_epochs=0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        stoppable([sys.executable, "-m", "train", *args]),
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "samples" / "epoch_000.png").exists():  # training has started
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)
        process.send_signal(sent)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    position = load_checkpoint(out / "last.pt").extra["training"]["position"]
    assert 0 < position["step"] < 5000 and position["epoch"] == 0
