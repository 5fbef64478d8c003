"""`models add` into a cache on a full disk (a real one: a tmpfs, filled) says so in one line,
leaves no scratch folder, and works once there is room."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cartoonize.imported.store import models_dir
from tests.helpers import run_main as run
from tests.imported.test_models_cli import folder_is_empty, one_line_error
from tests.imported.tiny import mix_model
from tests.test_styles_full_disk import small_disk


def fill(disk: Path) -> Path:
    """Every block of `disk` taken by one file; return it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # unbuffered: nothing left to flush at the end
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def test_models_add_on_a_full_disk(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    source = mix_model(tmp_path / "mix.onnx", "nhwc")
    with small_disk(Path(os.environ["CARTOONIZE_CACHE"]), "256k") as disk:
        filler = fill(disk)
        code, _, err = run(["models", "add", str(source), "--name", "mix"], capsys)
        one_line_error(code, err, f"cannot write the cache folder {models_dir()} (No space left on device",
                       "free some space, or set CARTOONIZE_CACHE")  # fmt: skip
        folder_is_empty()
        filler.unlink()
        code, _, err = run(["models", "add", str(source), "--name", "mix"], capsys)
        assert code == 0, err
        assert (models_dir() / "mix" / "mix.onnx").is_file()
