"""The known-style experiment runs end to end (a handful of steps; the real curve is in train/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")

from tests.train.conftest import shared_dir  # noqa: E402

pytestmark = [pytest.mark.shared, pytest.mark.slow, pytest.mark.filterwarnings("ignore:--vgg random")]


def test_known_style_prints_a_table_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = shared_dir() / "weights"
    if not weights.is_dir():
        pytest.skip(f"needs the shared weights at {weights}")
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", weights.absolute().as_uri())
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    from train.known_style import main

    args = ["--init-steps", "2", "--adv-steps", "2", "--every", "1", "--size", "32"]
    main([*args, "--json", str(tmp_path / "k.json"), "--sheet", str(tmp_path / "k.png")])
    result = json.loads((tmp_path / "k.json").read_text())
    assert [step for step, _ in result["init_curve"]] == [0, 1, 2]
    assert set(result["adversarial"]) == {"0.029", "10.0"}
    assert all(len(run["curve"]) == 3 for run in result["adversarial"].values())
    assert result["images"]["held_back"] >= 2 and (tmp_path / "k.png").exists()
    assert "omega=10.0" in capsys.readouterr().out
