"""Outputs that cannot be written are refused before any work, through the CLI, with one line:
also as root, whom permission bits do not stop (the folder is made read-only for root too)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import child_env

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = child_env(PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "cartoonize", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), result.stderr
    return lines[-1]


def _quiet(*command: str) -> bool:
    return (
        shutil.which(command[0]) is not None and subprocess.run(command, capture_output=True).returncode == 0
    )


@contextlib.contextmanager
def unwritable_folder(path: Path) -> Iterator[str]:
    """A folder this process cannot create files in; yields how it was made so."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield "mode 0500"
        finally:
            path.chmod(0o700)
        return
    # root ignores permission bits: a read-only mount, else the immutable attribute, stop root too
    if _quiet("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)):
        try:
            yield "read-only tmpfs mount"
        finally:
            _quiet("umount", str(path))
        return
    if _quiet("chattr", "+i", str(path)):
        try:
            yield "chattr +i"
        finally:
            _quiet("chattr", "-i", str(path))
        return
    pytest.skip(
        "root here, and neither a read-only tmpfs mount nor chattr +i works: no folder root cannot write"
    )


def test_unwritable_folder_is_refused_through_the_cli(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    with unwritable_folder(locked) as how:
        assert not os.access(locked, os.W_OK), how
        result = cli(
            "video", str(small_video), "locked/out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path
        )
        line = one_line_error(result)
        assert "locked" in line and "not writable" in line, (how, line)
        assert list(locked.iterdir()) == []


def test_a_file_where_the_folder_should_be(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder\n")
    result = cli(
        "video", str(small_video), "notes.txt/out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path
    )
    line = one_line_error(result)
    assert "notes.txt" in line and "not a folder" in line, line
    assert (tmp_path / "notes.txt").read_text() == "not a folder\n"


def test_check_output_refuses_each_case(tmp_path: Path) -> None:
    """The same checks in-process, one per refusal (what a mutation tool can see)."""
    from cartoonize.errors import CartoonizeError
    from cartoonize.media.files import check_output

    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    (tmp_path / "file").write_text("")
    cases = {
        "is the input": (tmp_path / "." / "in.mp4", True),
        "is a folder; give a file name": (tmp_path, True),
        "exists; pass --overwrite": (tmp_path / "file", False),
        "does not exist": (tmp_path / "missing" / "out.mp4", False),
        "is a file, not a folder": (tmp_path / "file" / "out.mp4", False),
    }
    for needle, (output, overwrite) in cases.items():
        with pytest.raises(CartoonizeError, match=needle):
            check_output(output, overwrite, (src,))
    check_output(src, overwrite=True)  # replacing an existing file that is not an input is fine
    check_output(tmp_path / "new.mp4", overwrite=False, inputs=(src,))
    with unwritable_folder(tmp_path / "locked") as how, pytest.raises(CartoonizeError, match="not writable"):
        check_output(tmp_path / "locked" / "out.mp4", overwrite=False)
        pytest.fail(how)


def test_long_names_that_fit_are_written_and_longer_ones_refused(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A 250-byte output name is legal: written, with its temporary name shortened to fit (it gave
    "File name too long", a traceback). One of 260 bytes cannot exist: one line says so."""
    from cartoonize.media.files import NAME_MAX, hidden_sibling, temporary_sibling

    fits = "a" * 246 + ".mp4"
    result = cli(
        "video", str(small_video), fits, "--model", str(tiny_checkpoint), "--frames", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / fits).is_file() and sorted(p.name for p in tmp_path.iterdir()) == [fits]
    line = one_line_error(
        cli("video", str(small_video), "b" * 256 + ".mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    )
    assert "file name too long (260 bytes; a file name may have 255)" in line, line
    japanese = Path("日本語のタイトル" * 11 + ".mp4")  # 268 bytes of stem: cut at a whole character
    for tail_of in (temporary_sibling(japanese), hidden_sibling(japanese, ".mp4.cartoonize-1.segments")):
        assert len(tail_of.name.encode()) <= NAME_MAX and tail_of.name.startswith(".日本語")
    assert temporary_sibling(japanese).suffix == ".mp4"
