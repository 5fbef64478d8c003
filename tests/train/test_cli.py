"""The command line: light to import, one-line errors for bad input, TOML configs, `prepare`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.train.conftest import REPO, tiny_args, write_images
from train.cli import app
from train.config import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = "import sys, train.cli; print(sorted({'torch', 'cv2', 'numpy', 'tensorboard'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_training_options_and_prepare() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for word in ("--photos", "--cartoons", "--resume", "--init-from", "--vgg-weights", "prepare"):
        assert word in result.output


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, *words: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in " ".join(output.split()), output


@pytest.fixture
def base(folders: tuple[Path, Path], tmp_path: Path) -> list[str]:
    photos, cartoons = folders
    return ["--photos", str(photos), "--cartoons", str(cartoons), *tiny_args()]


def test_missing_folder(base: list[str], tmp_path: Path) -> None:
    code, out = run_cli(*base, "--photos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "photos folder not found")


def test_empty_folder(base: list[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    code, out = run_cli(*base, "--cartoons", str(empty), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "no images in the cartoons folder")


def test_fewer_images_than_a_batch(base: list[str], tmp_path: Path) -> None:
    few = tmp_path / "few"
    write_images(few, 3, seed=5)
    code, out = run_cli(*base, "--photos", str(few), "--batch-size", "4", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "only 3 photo(s)", "--batch-size")


def test_out_folder_holding_another_run(base: list[str], tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "last.pt").write_bytes(b"a previous run")
    code, text = run_cli(*base, "--out", str(out))
    assert_one_line_error(code, text, "already holds a run", "--resume", "--overwrite")
    assert (out / "last.pt").read_bytes() == b"a previous run"  # untouched


def test_a_run_that_stopped_before_its_first_save_is_started_over(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run stopped (or failed) before its first last.pt leaves its config.toml, metrics.csv and
    first samples: a new run was refused ("already holds a run") and --resume too ("nothing to
    resume"), each sending the user to the other. A new run now starts over there; a folder with
    a snapshot is still a run to keep."""
    photos, cartoons = folders
    out = tmp_path / "r"
    (out / "samples").mkdir(parents=True)
    (out / "config.toml").write_text("# the stopped run's\n")
    (out / "metrics.csv").write_text("epoch,step,phase\n")
    (out / "samples" / "epoch_000.png").write_bytes(b"grid")
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out)]
    code, text = run_cli(*args, *tiny_args(init_epochs=1, init_decay_epochs=0, adv_epochs=0, decay_epochs=0))
    assert code == 0, text
    assert "stopped before its first save; starting over" in " ".join(text.split())
    assert (out / "last.pt").exists() and "stopped run" not in (out / "config.toml").read_text()

    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "config.toml").write_text("# a run with a snapshot\n")
    (kept / "checkpoints" / "epoch_001.pt").write_bytes(b"weights")
    code, text = run_cli(*args[:-1], str(kept), *tiny_args())
    assert_one_line_error(code, text, "already holds a run")


def test_resume_without_a_run_and_contradictions(base: list[str], tmp_path: Path) -> None:
    code, out = run_cli(*base, "--out", str(tmp_path / "new"), "--resume")
    assert_one_line_error(code, out, "nothing to resume")
    code, out = run_cli(*base, "--out", str(tmp_path / "new"), "--resume", "--overwrite")
    assert_one_line_error(code, out, "contradict")
    code, out = run_cli(*base, "--out", str(tmp_path / "new"), "--image-size", "30")
    assert_one_line_error(code, out, "multiple of 4")
    code, out = run_cli(*base, "--out", str(tmp_path / "new"), "--pool-size", "-1")
    assert_one_line_error(code, out, "--pool-size must be 0")


def test_offline_without_vgg_weights_says_both_ways_out(base: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "vgg19.pth"
    code, out = run_cli(
        *base, "--out", str(tmp_path / "r"), "--vgg", "imagenet", "--vgg-weights", str(missing)
    )
    assert_one_line_error(code, out, "VGG weights not found")
    bad = tmp_path / "bad.pth"
    __import__("torch").save({"nope": __import__("torch").zeros(1)}, bad)
    code, out = run_cli(*base, "--out", str(tmp_path / "r2"), "--vgg", "imagenet", "--vgg-weights", str(bad))
    assert_one_line_error(code, out, "torchvision", "--vgg-weights PATH")
    # --vgg random beside weights: the weights are used, and that is said (it was silent)
    code, out = run_cli(*base, "--out", str(tmp_path / "r3"), "--vgg", "random", "--vgg-weights", str(bad))
    assert_one_line_error(code, out, "torchvision")
    assert f"warning: --vgg random is ignored: the content loss uses {bad}" in out, out


def test_interrupt_exits_130(base: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import train.run
    from train.loop import Position, TrainingInterrupted

    def stopped(config: TrainConfig) -> None:
        raise TrainingInterrupted(Position(1, 2, 5), config.out / "last.pt")

    monkeypatch.setattr(train.run, "train", stopped)
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "r")])
    assert result.exit_code == 130 and "--resume" in result.output


def test_toml_config_and_flags_on_top(tmp_path: Path) -> None:
    cfg = TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("runs/x"), batch_size=4, init_lr=3e-4)
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert TrainConfig.from_toml(path).located() == cfg.located()  # the file names the paths absolute
    assert TrainConfig.from_toml(path, batch_size=2).batch_size == 2
    path.write_text('photos = "p"\ncartoons = "c"\nout = "o"\nbatchsize = 3\n')
    with pytest.raises(Exception, match="unknown training option"):
        TrainConfig.from_toml(path)


def test_relative_paths_in_a_config_file_are_read_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --config project/cfg.toml` run from another folder reads `photos = "photos"` as
    project/photos (it looked for ./photos: "photos folder not found: photos"); a path given as a
    flag stays relative to the current folder, an absolute one and a style name stay as they are."""
    import train.run

    project = tmp_path / "project"
    project.mkdir()
    (project / "cfg.toml").write_text(
        'photos = "photos"\ncartoons = "data/cartoons"\nout = "runs/x"\nvgg_weights = "vgg19.pth"\n'
        f'edge_cache = "{tmp_path / "edges"}"\ninit_from = "runs/a/last.pt"\n'
    )
    seen: list[TrainConfig] = []

    def run_training(config: TrainConfig) -> SimpleNamespace:
        seen.append(config)
        return SimpleNamespace(last=config.out / "last.pt")

    monkeypatch.setattr(train.run, "train", run_training)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--config", "project/cfg.toml", "--cartoons", "flagged"])
    assert result.exit_code == 0 and len(seen) == 1, result.output
    config = seen[0]
    assert (config.photos, config.cartoons, config.out, config.vgg_weights, config.edge_cache) == (
        Path("project/photos"), Path("flagged"), Path("project/runs/x"), Path("project/vgg19.pth"), tmp_path / "edges"
    )  # fmt: skip
    assert config.init_from == str(Path("project/runs/a/last.pt"))
    (project / "cfg.toml").write_text('photos = "p"\ncartoons = "c"\nout = "o"\ninit_from = "hayao"\n')
    assert TrainConfig.from_toml(Path("project/cfg.toml")).init_from == "hayao"  # a style, not a file


def test_a_runs_config_toml_repeats_it_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config.toml a run writes names its paths absolute, so relative paths given as flags still
    name the same folders when it is read from its own folder, or with the current folder elsewhere;
    --resume with it takes a relative checkpoint --init-from given before as the same one."""
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("runs/x"), init_from="runs/a/last.pt")
    saved = tmp_path / "runs" / "x" / "config.toml"
    saved.parent.mkdir(parents=True)
    saved.write_text(cfg.to_toml())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = TrainConfig.from_toml(saved)
    assert (again.photos, again.cartoons, again.out) == (tmp_path / "p", tmp_path / "c", tmp_path / "runs/x")
    assert again.init_from == str(tmp_path / "runs/a/last.pt")
    monkeypatch.chdir(tmp_path)
    assert again.differences(cfg) == []


def test_the_config_option_says_where_relative_paths_are_read_from() -> None:
    import typer

    (option,) = [p for p in typer.main.get_command(app).params if p.name == "config"]
    assert "Relative paths in the file are read from the file's folder" in (option.help or "")  # type: ignore[attr-defined]
    assert "those given as flags, from the current folder" in (option.help or "")  # type: ignore[attr-defined]


def test_prepare_command(tmp_path: Path) -> None:
    cartoons = tmp_path / "cartoons"
    write_images(cartoons, 4, seed=7)
    code, out = run_cli("prepare", str(cartoons))
    assert code == 0, out
    assert "4 smoothed now" in out
    code, out = run_cli("prepare", str(cartoons))
    assert "0 smoothed now, 4 from the cache" in out
    code, out = run_cli("prepare", str(tmp_path / "nowhere"))
    assert_one_line_error(code, out, "cartoons folder not found")


def test_mounted_under_the_main_cli(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """How `cartoonize` mounts the plugin (entry point group cartoonize.commands, name train)."""
    import typer

    main = typer.Typer()

    @main.command()
    def version() -> None:  # a second command, so `train` is a real subcommand group
        pass

    main.add_typer(app, name="train")
    photos, cartoons = folders
    code = CliRunner().invoke(main, ["train", "prepare", str(cartoons)]).exit_code
    assert code == 0
    args = ["train", "--photos", str(photos), "--cartoons", str(cartoons), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(
        main, [*args, *tiny_args(init_epochs=1, init_decay_epochs=0, adv_epochs=0, decay_epochs=0)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "last.pt").exists()
