"""`cartoonize engines remove`: stored engines go with their manifests, by name or because they
cannot run here; nothing outside the store, and nothing at all when one name is wrong.

The engines are stand-in files with true manifests for this machine (removal never loads one), so
no engine is built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.engines.store import (
    BuildSpec,
    EngineSource,
    Manifest,
    ShapeProfile,
    current_machine,
    manifest_path,
    store_entries,
    write_manifest,
)
from cartoonize.styles import sha256_of
from tests.helpers import run_main


def stand_in(store: Path, style: str, usable: bool = True) -> Path:
    """A stored 'engine' of `style` with the manifest a build here would write (or, not usable,
    one whose file no longer matches it)."""
    spec = BuildSpec(EngineSource("style", style), "aoti", "fp32", "cpu", ShapeProfile.static((32, 32)))
    machine = current_machine()
    engine = store / spec.file_name(machine.target("cpu"))
    engine.write_bytes(style.encode())
    manifest = Manifest(
        spec, machine.torch, machine.describe_device("cpu"), sha256_of(engine), 1.0, style=style
    )
    write_manifest(engine, manifest)
    if not usable:
        engine.write_bytes(b"truncated")
    return engine


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "engines"
    folder.mkdir()
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(folder))
    return folder


def test_an_engine_named_goes_with_its_manifest(store: Path, capsys) -> None:  # noqa: ANN001
    hayao, paprika = stand_in(store, "hayao"), stand_in(store, "paprika")
    assert [e.usable for e in store_entries()] == [True, True]
    code, out, err = run_main(["engines", "remove", hayao.name], capsys)
    assert code == 0, err
    assert hayao.name in out
    assert sorted(p.name for p in store.iterdir()) == [paprika.name, manifest_path(paprika).name]


def test_unusable_engines_go_and_the_others_stay(store: Path, capsys) -> None:  # noqa: ANN001
    good = stand_in(store, "hayao")
    damaged = stand_in(store, "paprika", usable=False)
    bare = store / "shinkai.aoti.fp32.32x32.cpu.pt2"  # no manifest beside it
    bare.write_bytes(b"x")
    code, out, err = run_main(["engines", "remove", "--unusable"], capsys)
    assert code == 0, err
    assert damaged.name in out and bare.name in out and good.name not in out
    assert sorted(p.name for p in store.iterdir()) == [good.name, manifest_path(good).name]


@pytest.mark.parametrize(
    "wrong", ["nothere.aoti.fp32.32x32.cpu.pt2", "../outside.pt2", "hayao.aoti.fp32.32x32.cpu.pt2.json"]
)
def test_a_wrong_name_removes_nothing(wrong: str, store: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    engine = stand_in(store, "hayao")
    (tmp_path / "outside.pt2").write_bytes(b"a user's own engine")
    code, _, err = run_main(["engines", "remove", engine.name, wrong], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and f"no engine called {wrong}" in lines[0], err
    assert engine.is_file() and manifest_path(engine).is_file() and (tmp_path / "outside.pt2").is_file()


def test_remove_without_names_says_what_to_give(store: Path, capsys) -> None:  # noqa: ANN001
    stand_in(store, "hayao")
    code, _, err = run_main(["engines", "remove"], capsys)
    assert code == 1 and "--unusable" in err
    assert len(list(store.iterdir())) == 2
