"""A last.pt that is not the run's own (a snapshot or a style copied over it, an older or foreign
file, a truncated one): `--resume` says so in one line naming the file and what to do, no traceback."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from tests.train.conftest import write_images  # noqa: E402
from tests.train.test_bad_input import SMALL  # noqa: E402
from tests.train.test_cli import assert_one_line_error, run_cli  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run (trained once for the module; each test resumes a copy)."""
    root = tmp_path_factory.mktemp("finished")
    write_images(root / "photos", 6, seed=1)
    write_images(root / "cartoons", 6, seed=2)
    out = root / "run"
    code, text = run_cli(
        "--photos", str(root / "photos"), "--cartoons", str(root / "cartoons"), "--out", str(out), *SMALL
    )
    assert code == 0, text
    return out


def without(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The run's own last.pt with one entry removed (`keys`: the path to it)."""

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        raw = copy.deepcopy(raw)
        entry = raw
        for key in keys[:-1]:
            entry = entry[key]
        del entry[keys[-1]]
        return raw

    return edit


def with_option(raw: dict[str, Any]) -> dict[str, Any]:
    """As a version of cartoonize with an option this one lacks would have written it."""
    raw = copy.deepcopy(raw)
    raw["training"]["config"]["retired_option"] = 1
    return raw


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        pytest.param(without("training", "state"), ["no training state"], id="snapshot-like"),
        pytest.param(without("training", "rng"), ["training.rng"], id="no-rng"),
        pytest.param(without("training", "position"), ["training.position"], id="no-position"),
        pytest.param(without("io"), ["'io'"], id="no-io"),
        pytest.param(without("model"), ["'model'"], id="no-model"),
        # found only once the recipe loads it, after the data is ready: still one line
        pytest.param(without("training", "state", "opt_d"), ["does not fit", "'opt_d'"], id="no-opt-d"),
        pytest.param(with_option, ["retired_option", "version"], id="newer-options"),
    ],
)
def test_a_last_pt_lacking_what_resume_reads(
    edit: Callable[[dict[str, Any]], dict[str, Any]], words: list[str], finished: Path, tmp_path: Path
) -> None:
    out = shutil.copytree(finished, tmp_path / "run")
    torch.save(edit(torch.load(out / "last.pt", weights_only=True)), out / "last.pt")
    code, text = run_cli("--out", str(out), "--resume")
    assert_one_line_error(code, text, f"cannot resume from {out / 'last.pt'}", *words)


def test_a_snapshot_copied_to_last_pt(finished: Path, tmp_path: Path) -> None:
    out = shutil.copytree(finished, tmp_path / "run")
    shutil.copy(out / "checkpoints" / "epoch_001.pt", out / "last.pt")
    code, text = run_cli("--out", str(out), "--resume")
    assert_one_line_error(code, text, str(out / "last.pt"), "no training state", "--overwrite")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"not a torch file", id="text"),
    ],
)
def test_a_last_pt_that_is_no_torch_file(
    damage: Callable[[bytes], bytes], finished: Path, tmp_path: Path
) -> None:
    out = shutil.copytree(finished, tmp_path / "run")
    (out / "last.pt").write_bytes(damage((out / "last.pt").read_bytes()))
    code, text = run_cli("--out", str(out), "--resume")
    assert_one_line_error(code, text, str(out / "last.pt"), "not a readable", "--overwrite")


def test_a_weights_only_last_pt(finished: Path, tmp_path: Path) -> None:
    """A bare state_dict (what many training scripts save) under the run's name."""
    out = shutil.copytree(finished, tmp_path / "run")
    torch.save(torch.load(out / "last.pt", weights_only=True)["model"], out / "last.pt")
    code, text = run_cli("--out", str(out), "--resume")
    assert_one_line_error(code, text, str(out / "last.pt"), "--overwrite")
