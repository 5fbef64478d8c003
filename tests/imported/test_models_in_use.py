"""A model a running job holds (`models_held`) is neither removed nor replaced under it: another
process's `models remove` and `models add --force` refuse in one line naming the job's process,
and work again once the job has ended."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartoonize.imported.store import MANIFEST_NAME, models_dir
from tests.helpers import child_env
from tests.helpers import run_main as run
from tests.imported.test_models_cli import one_line_error
from tests.imported.tiny import mix_model

HOLD = """
import sys
from cartoonize.imported.store import models_held
with models_held(["mix", "hayao", "nothing-called-that"]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


@pytest.fixture
def source(tmp_path: Path, capsys) -> Path:  # noqa: ANN001
    path = mix_model(tmp_path / "mix.onnx", "nhwc")
    code, _, err = run(["models", "add", str(path), "--name", "mix"], capsys)
    assert code == 0, err
    return path


@pytest.fixture
def job(source: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the model, as a running job's driver does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=child_env())  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait()


def end(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_remove_refuses_while_a_job_holds_the_model(job: subprocess.Popen[str], capsys) -> None:  # noqa: ANN001
    code, _, err = run(["models", "remove", "mix"], capsys)
    one_line_error(code, err, "cannot remove the model mix", f"in use by a running job (PID {job.pid})")
    assert (models_dir() / "mix" / MANIFEST_NAME).is_file()
    end(job)
    code, _, err = run(["models", "remove", "mix"], capsys)
    assert code == 0 and not (models_dir() / "mix").exists(), err


def test_add_force_refuses_while_a_job_holds_the_model(
    job: subprocess.Popen[str],
    source: Path,
    tmp_path: Path,
    capsys,  # noqa: ANN001
) -> None:
    before = (models_dir() / "mix" / "mix.onnx").read_bytes()
    other = mix_model(tmp_path / "other.onnx", "nhwc", ending="Tanh")
    code, _, err = run(["models", "add", str(other), "--name", "mix", "--force"], capsys)
    one_line_error(code, err, "cannot replace the model mix", f"in use by a running job (PID {job.pid})")
    assert (models_dir() / "mix" / "mix.onnx").read_bytes() == before
    assert [p.name for p in models_dir().iterdir()] == ["mix"]  # no scratch folder left
    end(job)
    code, _, err = run(["models", "add", str(other), "--name", "mix", "--force"], capsys)
    assert code == 0, err
    assert (models_dir() / "mix" / "mix.onnx").read_bytes() != before


def test_a_job_that_starts_after_a_removal_holds_nothing(source: Path, capsys) -> None:  # noqa: ANN001
    """A model removed before the job took its lock is passed over (the runner then says
    "unknown style"), and so are built-in styles and unknown names; nothing waits."""
    from cartoonize.imported.store import models_held

    code, _, err = run(["models", "remove", "mix"], capsys)
    assert code == 0, err
    with models_held(["mix", "hayao", None, "Nothing"]):
        pass


def test_an_image_job_holds_its_model(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    """`cartoonize image` loads the model for each photo size it meets: a `models remove` from
    another process while it runs is refused, and every photo is cartoonized."""
    from cartoonize.pipelines import image
    from tests.helpers import pattern

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (w, h) in enumerate([(64, 48), (48, 64)]):
        image.write_image(photos / f"p{i}.png", pattern(w, h, i))
    removals: list[subprocess.CompletedProcess[str]] = []
    read = image.read_image_and_alpha

    def read_then_remove(path: Path, max_side: int | None = None):  # noqa: ANN202
        if path.name == "p1.png":  # mid-job, from another process
            removals.append(subprocess.run([sys.executable, "-m", "cartoonize", "models", "remove", "mix"],
                                           capture_output=True, text=True, env=child_env(), timeout=120))  # fmt: skip
        return read(path, max_side)

    monkeypatch.setattr(image, "read_image_and_alpha", read_then_remove)
    code, _, err = run(["image", str(photos), "-o", str(tmp_path / "out"), "--style", "mix"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png"]
    (removal,) = removals
    assert removal.returncode == 1 and "in use by a running job" in removal.stderr, removal.stderr
    assert (models_dir() / "mix" / MANIFEST_NAME).is_file()
