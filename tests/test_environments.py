"""The CLI outside an interactive terminal: listings on stdout, any output encoding, a deleted
current folder, logs, names that are not UTF-8, and no telemetry from ONNX Runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import child_env, make_video, run_main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cartoonize", *args], cwd=cwd, capture_output=True, text=True,
                          env=child_env(PYTHONPATH=str(ROOT), **env), timeout=300)  # fmt: skip


@pytest.mark.parametrize("command", [["styles", "list"], ["engines", "list"], ["models", "list"]])
def test_a_listing_is_the_commands_output_on_stdout(command: list[str], capsys, tmp_path: Path) -> None:
    """`cartoonize styles list | grep hayao` finds it: the listing is on stdout, not stderr."""
    code, out, err = run_main([*command, *(["--folder", str(tmp_path)] if command[0] == "engines" else [])],
                              capsys)  # fmt: skip
    assert code == 0 and err == "", err
    expected = {"styles": "hayao", "engines": "no engines in", "models": "no imported models in"}[command[0]]
    assert expected in out  # none yet: a line that says so and how to make one, not an empty table


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_help_prints_on_any_encoding(encoding: str) -> None:
    """rich cuts a long cell with `…`, which an ascii stdout cannot hold: it was a traceback."""
    for command in (["video", "--help"], ["build-engine", "--help"], ["--help"]):
        result = cli(*command, PYTHONIOENCODING=encoding, COLUMNS="80")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "Usage" in result.stdout


def test_a_deleted_current_folder_is_one_line(
    tmp_path: Path, small_video: Path, tiny_checkpoint: Path
) -> None:
    """Importing torch there ends the process with oneMKL's "Cannot load libtorch_cpu.so"."""
    gone = tmp_path / "gone"
    gone.mkdir()
    # the child's folder is removed before it starts: a shell left in a folder someone deleted
    code = (
        "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "sys.argv = ['cartoonize', *sys.argv[2:]]; runpy.run_module('cartoonize', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(gone), "video", str(small_video), "out.mp4", "--model", str(tiny_checkpoint)],
        capture_output=True, text=True, env=child_env(PYTHONPATH=str(ROOT)), timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the current folder no longer exists (deleted after this shell entered it); "
        "cd to a folder that exists and run again"
    ]


def test_names_that_are_not_utf8(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    """A file system name is bytes: `\\xff.mp4` (a name from an old Latin-1 system) is written like
    any other, alone and in folders (it was a UnicodeEncodeError traceback that ended a batch)."""
    video = tmp_path / "in.mp4"
    make_video(video)
    odd = os.fsdecode(b"o_\xff.mp4")
    code, _, err = run_main(
        ["video", str(video), str(tmp_path / odd), "--model", str(tiny_checkpoint)], capsys
    )
    assert code == 0, err
    assert (tmp_path / odd).is_file()
    photo = write_photo(tmp_path / "in.png")
    code, _, err = run_main(["image", str(photo), "-o", str(tmp_path / os.fsdecode(b"p\xff.png")),
                             "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (b"a.png", b"\xfe.png"):
        write_photo(folder / os.fsdecode(name))
    code, _, err = run_main(["image", str(folder), "-o", str(tmp_path / "out") + "/", "--model",
                             str(tiny_checkpoint)], capsys)  # fmt: skip
    assert code == 0, err
    assert sorted(os.listdir(os.fsencode(tmp_path / "out"))) == [b"a.png", b"\xfe.png"]


def write_photo(path: Path) -> Path:
    from cartoonize.pipelines.image import write_image

    write_image(path, np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    return path


def test_a_long_name_is_shortened_between_characters() -> None:
    """The hidden temporary name of a 255-byte output is cut to fit, at a character's edge."""
    from cartoonize.media.files import NAME_MAX, temporary_sibling

    for stem in ("é" * 125, "日本" * 41, os.fsdecode(b"\xff" * 250)):
        tmp = temporary_sibling(Path("/x") / f"{stem}.mp4")
        raw = os.fsencode(tmp.name)
        assert len(raw) <= NAME_MAX and tmp.name.endswith(".mp4")
        raw.decode("utf-8", "surrogateescape")  # whole characters (or the name's own odd bytes)
        assert "\ufffd" not in tmp.name


def test_onnx_runtime_sends_nothing(tmp_path: Path) -> None:
    """ONNX Runtime (1.29 and later) writes a device identifier under ~/.cache/Microsoft on
    import and sends usage telemetry; with cartoonize it does neither unless the user says so."""
    code = "import cartoonize, onnxruntime, sys; sys.stdout.write(onnxruntime.__version__)"

    def cache_after(**env: str) -> list[str]:
        cache = tmp_path / "cache" / str(len(env))
        cache.mkdir(parents=True)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                env=child_env(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(cache), **env))  # fmt: skip
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))

    assert cache_after() == []
    if not cache_after(ORT_DISABLE_TELEMETRY="0"):  # the user's choice is theirs
        pytest.skip("this onnxruntime writes no telemetry identifier: nothing to turn off")


def test_a_log_gets_a_line_now_and_then() -> None:
    """No terminal (nohup, cron, CI): a plain line every minute with the count, rate and time
    left; nothing for a short job (its summary says it all)."""
    from cartoonize.progress import log_lines

    now, lines = [0.0], []
    progress = log_lines("cartoonizing film.mp4", lines.append, every=60.0, clock=lambda: now[0])
    for done in range(0, 601, 6):
        now[0] = done / 2  # 2 fps
        progress(done, 600)
    assert len(lines) == 5  # at 60, 120, 180, 240 and 300 s
    assert lines[0] == "cartoonizing film.mp4: 120/600 frames (20 %), 2 fps, about 4 min to go"
    short: list[str] = []
    quick = log_lines("photos", short.append, every=60.0, clock=lambda: now[0])
    for done in range(10):
        now[0] = done
        quick(done, None)
    assert short == []
