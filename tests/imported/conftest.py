"""Each test here gets its own model folder: what one test imports, the next does not see."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_models_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "cache" / "engines"))
