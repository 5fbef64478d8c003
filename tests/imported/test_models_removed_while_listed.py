"""A model removed by another process between the moment a listing (or a `--style` lookup) finds
its folder and the moment it reads its manifest is gone, not "damaged: remove it and add it again".
The race is made certain by removing the model (for real) just before its manifest is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.imported import store
from cartoonize.imported.store import (
    ModelManifest,
    WrapSpec,
    find_model,
    imported_models,
    remove_model,
    store_model,
)
from tests.helpers import run_main as run


@pytest.fixture
def removed_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models `a` and `b` (stored as an import stores them; the graph's bytes are not read here);
    `a` is removed the instant before its manifest is read."""
    spec = WrapSpec("nhwc", "float32", (-1.0, 1.0), "rgb", 1)
    for name in ("a", "b"):
        store_model(name, b"a graph", ModelManifest(name, f"{name}.onnx", "0" * 64, "", spec, {}, {}))
    load = store._load

    def removed_first(folder: Path):  # noqa: ANN202
        if folder.name == "a" and folder.is_dir():
            remove_model("a")
        return load(folder)

    monkeypatch.setattr(store, "_load", removed_first)


def test_a_listing_leaves_it_out(removed_when_read: None, capsys) -> None:  # noqa: ANN001
    assert [(m.name, m.problem) for m in imported_models()] == [("b", None)]


def test_models_list_shows_no_damage(removed_when_read: None, capsys) -> None:  # noqa: ANN001
    code, out, err = run(["models", "list"], capsys)
    assert code == 0, err
    assert "damaged" not in out and " b " in out and " a " not in out, out


def test_a_lookup_finds_no_model(removed_when_read: None) -> None:
    assert find_model("a") is None
