"""A style pulled into a cache on a disk that fills up says so in one line (not "download failed:
try again", not torch's "unexpected pos" traceback), leaves nothing behind, and works once there is
room. The disk is real: a small tmpfs mounted over the test's cache (root only; skipped elsewhere)."""

# ruff: noqa: F811 - the mirror fixture is imported from test_styles_download and taken as an argument
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cartoonize import styles
from cartoonize.errors import CartoonizeError
from cartoonize.styles import pull_style, style_checkpoint_path
from tests.test_styles_download import Mirror, cache_entries, cached_whole, mirror  # noqa: F401 - a fixture

FULL = r"cannot write the cache folder .*/styles \(No space left on device; this needs about 89\.2 MB\): free some space, or set CARTOONIZE_CACHE"  # fmt: skip


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's units: 64k, 1m) mounted over `folder`: a disk that really fills."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk is a small tmpfs, and mounting one needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def test_a_disk_that_fills_while_downloading(mirror: Mirror) -> None:
    with small_disk(Path(os.environ["CARTOONIZE_CACHE"]), "64k") as disk:  # b.npy is 300 kB
        with pytest.raises(CartoonizeError, match=FULL) as error:
            pull_style("tiny")
        assert "\n" not in str(error.value) and "download failed" not in str(error.value)
        assert cache_entries() == []
        resize(disk, "4m")
        assert pull_style("tiny") == style_checkpoint_path("tiny") and cached_whole()


def test_a_disk_that_fills_while_saving_the_checkpoint(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files fit (~310 kB), the checkpoint made from them (~730 kB) does not: torch.save fails
    with a RuntimeError of its zip writer, not an OSError."""
    from cartoonize.model import Checkpoint, Generator, GeneratorConfig, ModelIO

    config = GeneratorConfig(base_channels=16, residual_blocks=1)
    big = Checkpoint(Generator(config).state_dict(), config, ModelIO(style="tiny"))
    monkeypatch.setattr(styles, "checkpoint_from_npy_folder", lambda _style, _folder: big)
    with small_disk(Path(os.environ["CARTOONIZE_CACHE"]), "400k") as disk:
        with pytest.raises(CartoonizeError, match=FULL):
            pull_style("tiny")
        assert cache_entries() == []
        resize(disk, "4m")
        pull_style("tiny")
        assert cached_whole()
