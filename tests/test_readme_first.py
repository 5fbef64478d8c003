"""The README's first command is run by .ci/run as written, and tests/readme_first.py checks what it
made; here: that .ci/run holds the command verbatim, and that the check fails on a wrong output."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import make_video
from tests.readme_first import problems

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_first_command_and_checks_it() -> None:
    match = re.search(r"# 1\..*\n(.*)\n", (ROOT / "README.md").read_text())
    assert match is not None
    command = match.group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci
    assert "python -m tests.readme_first sintel_cartoon.mp4 ../shared/media/sintel_5s.mp4" in ci


def test_the_check_tells_a_complete_output_from_a_short_one(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", width=64, height=48, frames=24, rate=12, audio="aac")
    assert problems(src, src, max_side=64) == []
    short = make_video(tmp_path / "short.mp4", width=64, height=48, frames=12, rate=12, audio=None)
    found = " ".join(problems(short, src, max_side=64))
    assert "12 frames, the input has 24" in found and "0 audio tracks" in found
    assert "32x24" in " ".join(problems(src, src, max_side=32))  # the size is checked too
    assert problems(tmp_path / "missing.mp4", src, 64) == [f"{tmp_path / 'missing.mp4'} was not written"]
