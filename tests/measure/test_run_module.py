"""`python -m cartoonize.measure.X` (the Justfile's bench recipes) says a user's problem in one
line, as the CLI does: weights that cannot be fetched ended `just bench` with a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import child_env

ROOT = Path(__file__).resolve().parents[2]


def test_weights_that_cannot_be_fetched_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()  # a weights mirror without the style's files
    env = child_env(PYTHONPATH=str(ROOT), CARTOONIZE_CACHE=str(tmp_path / "cache"),
                    CARTOONIZE_WEIGHTS_URL=str(tmp_path / "mirror"))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "cartoonize.measure.benchmarks", "--sizes", "32x32", "--engines",
                           "torch", "--iters", "1", "--frames", "1", "--no-scaling"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hayao" in lines[0].lower(), lines
