"""Imported models: detection, the wrap and its equality with the pre/post done by hand, per layout
× range × channel order and in float16; the runner pads to the model's own multiple."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.imported.add import AddJob, add_model
from cartoonize.imported.detect import RANGES, Options, detect, load_source
from cartoonize.runners.onnxruntime import OnnxRuntimeRunner
from tests.imported.tiny import by_hand, mix_model


def photo(h: int = 50, w: int = 70) -> np.ndarray:
    """A real photo at an odd size (not a multiple of anything)."""
    from cartoonize.export import reference_photo

    return reference_photo(h, w)


def imported(tmp_path: Path, name: str, raw: Path, **options: object):
    return add_model(AddJob(raw, name, Options(**options)))  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("value_range", list(RANGES))
@pytest.mark.parametrize("channels", ["rgb", "bgr"])
def test_wrapped_equals_the_network_with_pre_post_by_hand(tmp_path: Path, layout: str, value_range: str,
                                                          channels: str) -> None:  # fmt: skip
    raw = mix_model(tmp_path / "raw.onnx", layout)
    name = f"mix-{layout}-{value_range.replace(',', '_').replace('-', 'm')}-{channels}"
    result = imported(tmp_path, name, raw, value_range=value_range, channels=channels)
    spec = result.model.manifest.spec
    assert (spec.layout, spec.value_range, spec.channels, spec.dtype) == (
        layout,
        RANGES[value_range],
        channels,
        "float32",
    )
    frames = photo()
    with OnnxRuntimeRunner(result.model.onnx_path) as runner:
        out = runner(frames)
    expected = by_hand(raw, frames, layout, RANGES[value_range], channels)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.abs(out.astype(int) - frames).mean() > 5  # the mix did change the colours
    # the other channel order gives another picture: the option matters and was honoured
    other = by_hand(raw, frames, layout, RANGES[value_range], "bgr" if channels == "rgb" else "rgb")
    assert np.abs(out.astype(int) - other).max() > 10


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_float16_io(tmp_path: Path, layout: str) -> None:
    raw = mix_model(tmp_path / "raw16.onnx", layout, dtype="float16")
    result = imported(tmp_path, f"half-{layout}", raw, value_range="0,1")
    assert result.model.manifest.spec.dtype == "float16"
    assert "float16" in result.model.manifest.detected["input"]
    frames = photo()
    with OnnxRuntimeRunner(result.model.onnx_path) as runner:
        assert runner.precision == "fp16"
        out = runner(frames)
    expected = by_hand(raw, frames, layout, (0.0, 1.0), "rgb", dtype="float16")
    assert np.abs(out.astype(int) - expected).max() <= 1


@pytest.mark.parametrize(("ending", "layout", "told"), [("Tanh", "nhwc", "-1,1"), ("Sigmoid", "nchw", "0,1")])
def test_detection_reads_the_range_from_a_bounded_output(
    tmp_path: Path, ending: str, layout: str, told: str
) -> None:
    raw = mix_model(tmp_path / "ended.onnx", layout, ending=ending)
    detection = detect(load_source(raw), raw.name, Options())
    assert detection.spec.layout == layout and detection.spec.value_range == RANGES[told]
    assert detection.detected["layout"].startswith(layout)
    assert detection.detected["range"].startswith(told) and ending in detection.detected["range"]
    assert detection.detected["dynamic"] == "N,H,W"
    assert set(detection.assumed) == {"channels"}  # the one thing no graph tells
    assert "rgb" in detection.assumed["channels"] and "--channels bgr" in detection.assumed["channels"]


def test_detection_says_what_it_assumed(tmp_path: Path) -> None:
    raw = mix_model(tmp_path / "plain.onnx", "nchw")
    result = imported(tmp_path, "plain", raw)
    manifest = result.model.manifest
    assert set(manifest.assumed) == {"range", "channels"}
    assert manifest.assumed["range"].startswith("-1,1") and "--range 0,255" in manifest.assumed["range"]
    assert manifest.spec.value_range == (-1.0, 1.0) and manifest.spec.channels == "rgb"
    notes = " ".join(result.notes)
    assert "assumed range" in notes and "assumed channels" in notes and "detected:" in notes
    assert manifest.check["max_abs_diff_vs_numpy"] <= 1


def test_the_size_multiple_is_probed_and_the_runner_pads_to_it(tmp_path: Path) -> None:
    raw = mix_model(tmp_path / "mult8.onnx", "nchw", multiple=8)
    result = imported(tmp_path, "mult8", raw, value_range="0,1")
    assert result.model.manifest.spec.multiple == 8
    assert result.model.manifest.detected["multiple"].startswith("8 (probed")
    frames = photo(50, 70)  # neither side divides by 8 (nor by 4)
    with OnnxRuntimeRunner(result.model.onnx_path) as runner:
        assert runner.size_multiple == 8
        out = runner(frames)
    assert out.shape == frames.shape
    # inside the picture the padding changes nothing (a per-pixel network)
    expected = by_hand(
        raw, np.pad(frames, ((0, 0), (0, 6), (0, 2), (0, 0)), mode="reflect"), "nchw", (0.0, 1.0), "rgb"
    )
    assert np.abs(out.astype(int) - expected[:, :50, :70]).max() <= 1


def test_given_multiple_is_checked(tmp_path: Path) -> None:
    from cartoonize.errors import CartoonizeError

    raw = mix_model(tmp_path / "mult4.onnx", "nchw", multiple=4)
    with pytest.raises(CartoonizeError, match="--multiple 2: the model fails"):
        imported(tmp_path, "mult4", raw, multiple=2)
    assert imported(tmp_path, "mult4", raw, multiple=8).model.manifest.spec.multiple == 8


def test_fixed_size_pads_smaller_frames_up(tmp_path: Path) -> None:
    raw = mix_model(tmp_path / "fixed.onnx", "nchw", fixed=(64, 96))
    result = imported(tmp_path, "fixed", raw, value_range="0,1")
    assert result.model.manifest.spec.fixed_size == (64, 96)
    frames = photo(40, 90)
    with OnnxRuntimeRunner(result.model.onnx_path) as runner:
        assert runner.fixed_size == (64, 96)
        out = runner(frames)
    assert out.shape == frames.shape


@pytest.mark.parametrize("force", [False, True])
def test_an_import_of_the_same_name_that_lands_first(force: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `models add --name x` at once: the one that lands second is refused without --force
    (it silently replaced the first's model) and replaces it with --force (it was an OSError
    traceback, "Directory not empty")."""
    from cartoonize.errors import CartoonizeError
    from cartoonize.imported import store
    from cartoonize.imported.store import MANIFEST_NAME, ModelManifest, WrapSpec, models_dir, store_model

    spec = WrapSpec("nhwc", "float32", (0.0, 1.0), "rgb", 1)
    manifest = ModelManifest("x", "x.onnx", "0" * 64, "", spec, {}, {}, licence="")
    made = store._hidden_folder

    def the_other_lands(root: Path, prefix: str) -> Path:  # between our check and our rename
        folder = made(root, prefix)
        if not (root / "x").exists():
            (root / "x").mkdir()
            (root / "x" / "x.onnx").write_bytes(b"theirs")
            (root / "x" / MANIFEST_NAME).write_text(manifest.to_json())
        return folder

    monkeypatch.setattr(store, "_hidden_folder", the_other_lands)
    if force:
        store_model("x", b"ours", manifest, replace=True)
    else:
        with pytest.raises(CartoonizeError, match="a model called x is already imported"):
            store_model("x", b"ours", manifest)
    assert (models_dir() / "x" / "x.onnx").read_bytes() == (b"ours" if force else b"theirs")
    assert [p.name for p in models_dir().iterdir()] == ["x"]  # no hidden folder left


def test_an_import_killed_midway_leaves_nothing_after_the_next() -> None:
    """`models add` killed with SIGKILL between writing its hidden folder and renaming it left
    the folder (a whole model's worth) for ever; the next import removes it, not a running one's."""
    import os
    import subprocess
    import sys

    from cartoonize.imported.store import ModelManifest, WrapSpec, models_dir, store_model
    from cartoonize.media.files import process_tag

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    models_dir().mkdir(parents=True, exist_ok=True)
    killed = models_dir() / f".x.cartoonize-{process_tag(done.pid)}.partial-0badf00d"
    running = models_dir() / f".y.cartoonize-{process_tag(os.getppid())}.partial-0123abcd"
    for folder in (killed, running):
        folder.mkdir()
        (folder / "x.onnx").write_bytes(b"half a model")
    spec = WrapSpec("nhwc", "float32", (0.0, 1.0), "rgb", 1)
    store_model("z", b"ours", ModelManifest("z", "z.onnx", "0" * 64, "", spec, {}, {}, licence=""))
    assert sorted(p.name for p in models_dir().iterdir()) == sorted(["z", running.name])
