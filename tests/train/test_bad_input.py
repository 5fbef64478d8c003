"""Bad input: a one-line error before anything is written or removed; --overwrite removes only the run's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.errors import CartoonizeError
from tests.train.test_cli import assert_one_line_error, run_cli
from train.config import TrainConfig
from train.frames import FrameSampling

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")

# the smallest run there is: 2 steps of a 4-channel generator on 16 px crops
SMALL = (
    "--image-size 16 --load-size 32 --batch-size 2 --steps-per-epoch 1 --base-channels 4 "
    "--residual-blocks 1 --vgg random --init-epochs 1 --init-decay-epochs 0 --adv-epochs 1 "
    "--decay-epochs 0 --workers 0 --device cpu --sample-count 1"
).split()

OLD_RUN = {  # what an earlier run left, as its own names
    "config.toml": "old",
    "last.pt": "old",
    "metrics.csv": "old",
    "checkpoints/epoch_007.pt": "old",
    "checkpoints/.epoch_008.pt.tmp": "old",
    "checkpoints/.epoch_009.pt.4321.tmp": "old",  # Checkpoint.save's, process 4321's
    ".last.pt.4321.tmp": "old",
    "samples/epoch_007.png": "old",
    "tensorboard/events.out.tfevents.1.host.1.0": "old",
}
USERS = {  # the user's own files in the same folder: no run wrote them
    "checkpoints/my_other_model.pt": "mine",
    "samples/mine.jpg": "mine",
    "notes.txt": "mine",
}


def fill(out: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)


def contents(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def base(folders: tuple[Path, Path]) -> list[str]:
    photos, cartoons = folders
    return ["--photos", str(photos), "--cartoons", str(cartoons), *SMALL]


def test_overwrite_replaces_the_run_and_keeps_the_users_files(base: list[str], tmp_path: Path) -> None:
    out = tmp_path / "proj"
    fill(out, OLD_RUN | USERS)
    code, text = run_cli(*base, "--out", str(out), "--overwrite")
    assert code == 0, text
    after = contents(out)
    assert {k: after.get(k) for k in USERS} == {k: v.encode() for k, v in USERS.items()}  # untouched
    for name in ("checkpoints/epoch_007.pt", "checkpoints/.epoch_008.pt.tmp", "checkpoints/.epoch_009.pt.4321.tmp",
                 ".last.pt.4321.tmp", "samples/epoch_007.png"):  # fmt: skip
        assert name not in after  # the old run's, gone
    assert "tensorboard/events.out.tfevents.1.host.1.0" not in after
    assert after["config.toml"] != b"old" and after["last.pt"] != b"old"
    assert "samples/epoch_000.png" in after and "checkpoints/epoch_001.pt" in after
    assert "kept 2 file(s)" in " ".join(text.split())


def test_only_user_files_is_not_a_run(base: list[str], tmp_path: Path) -> None:
    out = tmp_path / "proj"
    fill(out, USERS)
    code, text = run_cli(*base, "--out", str(out))
    assert code == 0, text
    assert {k: contents(out).get(k) for k in USERS} == {k: v.encode() for k, v in USERS.items()}


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--photos", "{tmp}/photoz"], ["photos folder not found"]),
        (["--cartoons", "{tmp}/empty"], ["no images in the cartoons folder"]),
        (["--device", "gpu"], ["--device", "cpu, cuda, cuda:N"]),
        (["--beta1", "2"], ["--beta1", "below 1"]),
        (["--beta2", "-0.1"], ["--beta2", "at least 0"]),
        (["--lr-g", "-1"], ["--lr-g", "negative"]),
        (["--workers", "-1"], ["--workers", "0"]),
        (["--init-from", "{tmp}/missing.pt"], ["checkpoint not found"]),
    ],
)
def test_overwrite_with_bad_input_removes_nothing(
    base: list[str], tmp_path: Path, flags: list[str], words: list[str]
) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "runs" / "a"
    fill(out, OLD_RUN | USERS)
    before = contents(out)
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    code, text = run_cli(*base, *flags, "--out", str(out), "--overwrite")
    assert_one_line_error(code, text, *words)
    assert contents(out) == before


def test_bad_options_leave_no_run_folder(base: list[str], tmp_path: Path) -> None:
    """Checked before config.toml is written: no half-made run that neither --resume nor a rerun takes."""
    out = tmp_path / "r"
    for flags in (["--workers", "-1"], ["--device", "gpu"], ["--beta1", "2"]):
        code, text = run_cli(*base, *flags, "--out", str(out))
        assert code == 1 and "Traceback" not in text, text
        assert not out.exists()


def test_out_that_is_a_file_fails_before_edge_smoothing(
    base: list[str], folders: tuple[Path, Path], tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "sub"):
        code, text = run_cli(*base, "--out", str(out))
        assert_one_line_error(code, text, "--out must be a folder", "is a file")
    assert afile.read_text() == "not a folder"
    assert not (folders[1] / ".cartoonize-edges").exists()  # failed before any work


@pytest.mark.parametrize("problem", ["missing", "unreadable", "offline"])
def test_vgg_weights_are_checked_before_the_data_is_prepared(
    base: list[str],
    folders: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    problem: str,
) -> None:
    """A missing or unreadable --vgg-weights, or ImageNet weights that cannot be fetched, was said
    only after the photos were scanned and the cartoons edge-smoothed (minutes on a real set)."""
    import urllib.error

    import torch

    weights = tmp_path / "vgg19.pth"
    flags = ["--vgg", "imagenet", "--vgg-weights", str(weights)]
    words = {"missing": "VGG weights not found", "unreadable": "cannot read", "offline": "could not get"}
    if problem == "unreadable":
        weights.write_bytes(b"not a state_dict")
    if problem == "offline":
        flags = flags[:2]

        def offline(*args: object, **kwargs: object) -> None:
            raise urllib.error.URLError("no network")

        monkeypatch.setitem(__import__("sys").modules, "torchvision", None)  # the torch hub path
        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    code, text = run_cli(*base, *flags, "--out", str(tmp_path / "r"))
    assert_one_line_error(code, text, words[problem], "--vgg-weights PATH" if problem != "missing" else "")
    assert "photos:" not in text and not (folders[1] / ".cartoonize-edges").exists()  # before any of it
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--frame-rate", "-1"], ["--frame-rate", "above 0"]),
        (["--frame-rate", "0"], ["--frame-rate", "above 0"]),
        (["--frame-rate", "inf"], ["--frame-rate", "above 0"]),
        (["--load-size", "-5"], ["--load-size cannot be negative"]),
    ],
)
def test_prepare_checks_its_options(folders: tuple[Path, Path], flags: list[str], words: list[str]) -> None:
    code, text = run_cli("prepare", str(folders[1]), *flags)
    assert_one_line_error(code, text, *words)
    assert not (folders[1] / ".cartoonize-edges").exists()


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_frame_sampling_refuses_a_rate_that_never_advances(rate: float) -> None:
    with pytest.raises(CartoonizeError, match="--frame-rate"):
        FrameSampling(rate=rate)  # sample_frames would divide by zero or loop forever


def write_config(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'cartoons = "cartoons"\nout = "r"\n{line}\n')
    return path


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('image_size = "16"', "image_size must be an integer, not '16'"),
        ("image_size = 16.0", "image_size must be an integer, not 16.0"),
        ("batch_size = true", "batch_size must be an integer, not true"),
        ('batch_size = "2"', "batch_size must be an integer"),
        ('frame_rate = "2"', "frame_rate must be a number"),
        ("sample_every = [1]", "sample_every must be an integer, not a list"),
        ("photos = 5", "photos must be a string, not 5"),
        ('zero_bias = "false"', "zero_bias must be true or false, not 'false'"),
        ('bf16 = "no"', "bf16 must be true or false"),
        ("device = 0", "device must be a string"),
        ("[data]\nimage_size = 16", "unknown training option(s): data"),
    ],
)
def test_config_values_of_the_wrong_type(tmp_path: Path, line: str, words: str) -> None:
    path = write_config(tmp_path, f"{line}" if line.startswith("photos") else f'photos = "p"\n{line}')
    with pytest.raises(CartoonizeError) as error:
        TrainConfig.from_toml(path)
    assert words in str(error.value)
    if "unknown" not in words:
        assert str(path) in str(error.value)


def test_config_numbers_of_the_right_type(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'photos = "p"\nframe_rate = 3\nzero_bias = false\nimage_size = 32')
    cfg = TrainConfig.from_toml(path)
    assert cfg.frame_rate == 3.0 and isinstance(cfg.frame_rate, float)
    assert cfg.zero_bias is False and cfg.image_size == 32


def test_config_files_that_cannot_be_read(base: list[str], tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    code, text = run_cli("--config", str(binary))
    assert_one_line_error(code, text, "not a TOML file")
    code, text = run_cli("--config", str(tmp_path))
    assert_one_line_error(code, text, "--config must be a TOML file, not a folder")
    path = write_config(tmp_path, 'photos = "p"\nzero_bias = "false"')
    code, text = run_cli("--config", str(path))
    assert_one_line_error(code, text, "zero_bias must be true or false")


def test_a_log_gets_each_epochs_line_whole(base: list[str], tmp_path: Path) -> None:
    """Without a terminal (`> train.log 2>&1`) each epoch is one line with every metric: the bar's
    last render was cut at 80 columns ("d_real 1.559  d_edge 0.1599  d_fak…")."""
    code, text = run_cli(*base, "--out", str(tmp_path / "run"))
    assert code == 0, text
    lines = text.splitlines()
    adversarial = [line for line in lines if line.startswith("epoch 2/2 adversarial: 1 step in ")]
    assert len(adversarial) == 1, text
    for metric in ("content", "g_adv", "d_real", "d_edge", "d_fake"):
        assert f"  {metric} " in adversarial[0] or f"; {metric} " in adversarial[0], adversarial[0]
    assert not any("…" in line for line in lines if line.startswith("epoch")), text
    # the whole run's time to go after each epoch but the last (the bar's was the epoch's alone)
    first = next(line for line in lines if line.startswith("epoch 1/2"))
    assert first.endswith(" to go") and "; the run about " in first, first
    assert "to go" not in adversarial[0]


def test_an_epochs_losses_are_its_means() -> None:
    """The epoch's line (and the bar) showed its last batch's losses, read as the epoch's."""
    from train.loop import Trainer

    sums: dict[str, float] = {}
    Trainer._epoch_means(sums, {"content": 1.0, "g_adv": 0.5, "lr_g": 1e-5}, 1)
    shown = Trainer._epoch_means(sums, {"content": 3.0, "g_adv": 1.5, "lr_g": 1e-5}, 2)
    assert shown == "content 2  g_adv 1"
