"""The throughput benchmark runs (on a CPU: its tiny configuration) and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from train.bench import main  # noqa: E402


def test_bench_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--steps", "1", "--json", str(tmp_path / "bench.json")])
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["adversarial_images_per_s"] > 0 and result["init_images_per_s"] > 0
    assert "images/s" in capsys.readouterr().out
