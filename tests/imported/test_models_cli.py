"""`cartoonize models add|list|remove` and `styles list`; every bad model gives one line, exit 1,
and leaves nothing in the model folder; where an imported model cannot go, the error says what can."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.imported.store import models_dir
from tests.helpers import run_main as run
from tests.imported.tiny import classifier, mix_model, typed_identity


def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def folder_is_empty() -> None:
    folder = models_dir()
    assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())


def not_onnx(path: Path) -> Path:
    path.write_text("this is a text file, not a protobuf\n")
    return path


def four_channels(path: Path) -> Path:
    return mix_model(path, "nhwc", channels=4)


def one_channel(path: Path) -> Path:
    return mix_model(path, "nchw", channels=1)


@pytest.mark.parametrize(
    ("make", "name", "needles"),
    [
        (classifier, "cls", ["rank 2", "classifier", "rank-4"]),
        (one_channel, "gray", ["grayscale (1-channel)", "3-channel"]),
        (four_channels, "rgba", ["4-channel (RGBA)", "3-channel"]),
        (lambda p: typed_identity(p, "float64"), "dbl", ["float64", "float32 or float16"]),
        (lambda p: typed_identity(p, "int64"), "ints", ["int64", "float32 or float16"]),
        (lambda p: typed_identity(p, "uint8"), "bytes", ["uint8", "frames in, cartoon out", "cartoonize export"]),
        (not_onnx, "text", ["is not an ONNX model"]),
        (lambda p: mix_model(p, "nchw"), "hayao", ["a built-in style has that name"]),
        (lambda p: mix_model(p, "nchw"), "-x", ["starting with a letter or digit"]),
        (lambda p: mix_model(p, "nchw", scale_to_255=True), "wrong-range", ["check on a photo fails", "(assumed)", "try --range 0,255"]),
    ],
    ids=["classifier", "1-channel", "4-channel", "float64", "int64", "uint8-not-frames", "not-onnx", "name-clash", "dash-first", "clipped-range"],
)  # fmt: skip
def test_bad_models(tmp_path: Path, capsys, make, name: str, needles: list[str]) -> None:
    path = make(tmp_path / "bad.onnx")
    code, _, err = run(["models", "add", str(path), "--name", name], capsys)
    one_line_error(code, err, *needles)
    folder_is_empty()


@pytest.mark.parametrize(("layout", "wrong"), [("nchw", "nhwc"), ("nhwc", "nchw")])
def test_a_wrong_layout_names_the_layout_the_model_has(
    tmp_path: Path, capsys, layout: str, wrong: str
) -> None:
    """(?, 3, ?, ?) given --layout nhwc would read as H fixed at 3 and W dynamic: the error names
    the layout the channels say, as it does for a fixed-size model."""
    path = mix_model(tmp_path / f"{layout}.onnx", layout)
    code, _, err = run(["models", "add", str(path), "--name", "wl3", "--layout", wrong], capsys)
    one_line_error(code, err, f"looks {layout.upper()}", "drop --layout", f"--layout {layout}")
    assert "fixes one of H and W" not in err
    folder_is_empty()


def test_a_wrong_range_caught_by_the_check_passes_with_the_range_it_names(tmp_path: Path, capsys) -> None:
    path = mix_model(tmp_path / "net255.onnx", "nchw", scale_to_255=True)
    code, _, err = run(["models", "add", str(path), "--name", "net255", "--range", "0,255"], capsys)
    assert code == 0, err
    assert "imported net255" in " ".join(err.split())


def test_fixed_size_frames_that_do_not_fit_say_the_size_and_max_side(tmp_path: Path, capsys) -> None:
    from cartoonize.pipelines.image import write_image

    path = mix_model(tmp_path / "fixed.onnx", "nchw", fixed=(64, 64))
    assert run(["models", "add", str(path), "--name", "fixed64", "--range", "0,1"], capsys)[0] == 0
    big = tmp_path / "big.png"
    write_image(big, np.full((90, 120, 3), 128, np.uint8))
    out = tmp_path / "out.png"
    code, _, err = run(["image", str(big), "-o", str(out), "--style", "fixed64"], capsys)
    one_line_error(code, err, "fixed64", "64x64", "these are 90x120", "--max-side 64")
    assert not out.exists()
    assert sorted(p.name for p in models_dir().iterdir()) == ["fixed64"]  # nothing else left behind
    code, _, err = run(["image", str(big), "-o", str(out), "--style", "fixed64", "--max-side", "64"], capsys)
    assert code == 0, err
    assert out.exists()


def test_list_remove_and_styles_list(tmp_path: Path, capsys) -> None:
    path = mix_model(tmp_path / "mix.onnx", "nhwc", ending="Tanh")
    code, _, err = run(["models", "add", str(path), "--name", "mixer", "--licence", "CC0 test model"], capsys)
    assert code == 0, err
    text = " ".join(err.split())
    assert "layout nhwc" in text and "range -1,1" in text and "assumed channels: rgb" in text
    code, out, err = run(["models", "list"], capsys)
    listed = " ".join((out + err).split())
    assert code == 0 and "mixer" in listed and "CC0 test model" in listed
    code, out, err = run(["styles", "list"], capsys)
    listed = " ".join((out + err).split())
    assert (
        code == 0
        and "hayao" in listed
        and "built-in" in listed
        and "mixer" in listed
        and "imported" in listed
    )
    # a second add under the same name is refused; --force replaces it
    code, _, err = run(["models", "add", str(path), "--name", "mixer"], capsys)
    one_line_error(code, err, "already imported", "models remove mixer", "--force")
    assert run(["models", "add", str(path), "--name", "mixer", "--force"], capsys)[0] == 0
    assert sorted(p.name for p in models_dir().iterdir()) == ["mixer"]
    code, _, err = run(["models", "remove", "mixer"], capsys)
    assert code == 0, err
    folder_is_empty()
    one_line_error(*run(["models", "remove", "mixer"], capsys)[::2], "no imported model called mixer")
    one_line_error(*run(["models", "remove", "hayao"], capsys)[::2], "built-in style")


def test_where_an_imported_model_cannot_go_the_error_says_what_can(tmp_path: Path, capsys) -> None:
    from cartoonize.pipelines.image import write_image

    path = mix_model(tmp_path / "mix.onnx", "nchw")
    assert run(["models", "add", str(path), "--name", "mix2"], capsys)[0] == 0
    pic = tmp_path / "p.png"
    write_image(pic, np.full((16, 16, 3), 90, np.uint8))
    # every runner that needs the PyTorch module is refused (they ran ONNX Runtime without a word)
    for engine in ("torch", "eager", "compile", "aoti"):
        code, _, err = run(
            ["image", str(pic), "-o", str(tmp_path / "o.png"), "--style", "mix2", "--engine", engine], capsys
        )
        one_line_error(code, err, f"--engine {engine}: mix2 is an imported ONNX model", "--engine auto or onnxruntime",
                       "--backend tensorrt")  # fmt: skip
    # TensorRT: only a stored engine built from it, on an NVIDIA GPU, which there is none of here
    code, _, err = run(
        ["image", str(pic), "-o", str(tmp_path / "o.png"), "--style", "mix2", "--engine", "tensorrt"], capsys
    )
    one_line_error(code, err, "--engine tensorrt runs on an NVIDIA GPU with CUDA")
    assert not (tmp_path / "o.png").exists()
    code, _, err = run(["build-engine", "--style", "mix2", "--backend", "aoti", "--shape", "64x64"], capsys)
    one_line_error(
        code, err, "AOTInductor compiles a PyTorch model", "--backend tensorrt", "--engine onnxruntime"
    )
    code, _, err = run(["export", "--style", "mix2", "-o", str(tmp_path / "x.onnx")], capsys)
    one_line_error(code, err, "imported ONNX model")
    code, _, err = run(["image", str(pic), "-o", str(tmp_path / "o.png"), "--style", "nosuch"], capsys)
    one_line_error(code, err, "unknown style 'nosuch'", "mix2", "models add")
    # a raw third-party ONNX given as an engine: say how to import it
    code, _, err = run(["image", str(pic), "-o", str(tmp_path / "o.png"), "--engine", str(path)], capsys)
    one_line_error(code, err, "not a cartoonize model", "models add")
    # and where it can go, it runs: --engine onnxruntime and auto
    for engine in ("onnxruntime", "auto"):
        out = tmp_path / f"o-{engine}.png"
        code, _, err = run(["image", str(pic), "-o", str(out), "--style", "mix2", "--engine", engine], capsys)
        assert code == 0 and out.exists(), err


@pytest.mark.shared
@pytest.mark.slow  # pulls and converts the Hayao weights into this test's own cache
def test_bench_with_an_imported_style(tmp_path: Path, capsys) -> None:
    """No eager baseline: the imported network has no PyTorch module, and another network's eager
    run would give a meaningless ratio; the report says so. No FLOP figures either."""
    import json

    path = mix_model(tmp_path / "mix.onnx", "nchw")
    assert run(["models", "add", str(path), "--name", "mix3"], capsys)[0] == 0
    report = tmp_path / "bench.json"
    args = [
        "bench",
        "--shape",
        "32x32",
        "--style",
        "mix3",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--json",
        str(report),
    ]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert (
        "mix3 (imported)" in out and "FLOP not known" in out and "hayao" not in out and "× eager" not in out
    )
    assert "speed-up over torch eager: none (mix3 is an imported ONNX model" in " ".join(out.split())
    figures = json.loads(report.read_text())
    assert figures["engine"]["fps"] > 0 and figures["gflop_per_frame"] is None
    assert figures["torch_eager"] is None and figures["speedup_vs_eager"] is None
    assert "speedup_vs_eager" not in figures["engine"] and "mix3" in figures["no_baseline"]


@pytest.mark.parametrize(
    ("dtype", "runs", "other"), [("float32", "fp32", "fp16"), ("float16", "fp16", "fp32")]
)
def test_a_precision_the_imported_model_is_not_in_is_refused(
    tmp_path: Path, capsys, dtype: str, runs: str, other: str
) -> None:
    """ONNX Runtime runs an imported graph in its own precision: a --precision that differs is one
    line, not a silent run in the precision of the graph; its own precision runs."""
    from cartoonize.pipelines.image import write_image

    path = mix_model(tmp_path / "mix.onnx", "nchw", dtype=dtype)
    assert run(["models", "add", str(path), "--name", "mixp", "--range", "0,1"], capsys)[0] == 0
    pic = tmp_path / "p.png"
    write_image(pic, np.full((16, 16, 3), 90, np.uint8))
    for asked in ("bf16", other):
        out = tmp_path / f"o-{asked}.png"
        code, _, err = run(
            ["image", str(pic), "-o", str(out), "--style", "mixp", "--precision", asked], capsys
        )
        line = one_line_error(
            code, err, f"--precision {asked}", f"mixp runs {runs} on ONNX Runtime", "drop --precision"
        )
        assert ("PyTorch" in line) == (asked == "bf16"), line
        assert not out.exists()
    out = tmp_path / f"o-{runs}.png"
    code, _, err = run(["image", str(pic), "-o", str(out), "--style", "mixp", "--precision", runs], capsys)
    assert code == 0 and out.exists(), err


def _edit(change):  # noqa: ANN001, ANN202 - a function of the manifest's dict
    def damage(path: Path) -> None:
        import json

        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return damage


DAMAGES = {
    "not-json": lambda p: p.write_text("{broken\n"),
    "not-utf8": lambda p: p.write_bytes(b"\xff\xfe{}"),
    "not-an-object": lambda p: p.write_text("[]\n"),
    "missing": lambda p: p.unlink(),
    "no-spec": _edit(lambda m: m.pop("spec")),
    "no-name": _edit(lambda m: m.pop("name")),
    "layout-a-number": _edit(lambda m: m["spec"].update(layout=3)),
    "multiple-a-string": _edit(lambda m: m["spec"].update(multiple="8")),
    "range-of-one": _edit(lambda m: m["spec"].update(value_range=[1])),
    "spec-a-list": _edit(lambda m: m.update(spec=[1, 2])),
    "sha-a-number": _edit(lambda m: m.update(source_sha256=5)),
    "assumed-a-string": _edit(lambda m: m.update(assumed="range")),
    "unknown-key": _edit(lambda m: m.update(colour="blue")),
    "another-name": _edit(lambda m: m.update(name="other")),
}


@pytest.mark.parametrize("damage", list(DAMAGES.values()), ids=list(DAMAGES))
def test_a_damaged_manifest_breaks_no_other_command(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, damage
) -> None:  # noqa: ANN001
    """One model whose manifest cannot be read (not JSON, or JSON without a key or with a value of
    the wrong type) is listed as damaged among the others; `--style` of another name works and
    says what it always says; its own name gives the one line with the way out, and the way out
    (`models remove`, or `models add --force`) works without a readable manifest."""
    from cartoonize.imported.store import find_model
    from cartoonize.pipelines.image import write_image

    monkeypatch.setenv("COLUMNS", "400")  # a table row on one line, not wrapped in its cells
    path = mix_model(tmp_path / "fixed.onnx", "nchw", fixed=(32, 48))
    for name in ("dmg", "good"):
        code, _, err = run(["models", "add", str(path), "--name", name, "--range", "0,1"], capsys)
        assert code == 0, err
    model = find_model("good")
    assert model is not None and model.manifest.spec.fixed_size == (32, 48)  # read back as written
    damage(models_dir() / "dmg" / "manifest.json")
    hint = "`cartoonize models remove dmg` and add the model again"
    for command in (["models", "list"], ["styles", "list"]):
        code, out, err = run(command, capsys)
        listed = " ".join((out + err).split())
        assert code == 0 and "Traceback" not in err, err
        assert "good" in listed and "damaged: manifest.json is not a readable model manifest" in listed, (
            listed
        )
        assert "NCHW float32" in listed, listed  # the good one's I/O
        assert any("damaged:" in row and hint in row for row in (out + err).splitlines()), out + err
    pic = tmp_path / "p.png"
    write_image(pic, np.full((16, 16, 3), 90, np.uint8))
    out = tmp_path / "o.png"
    line = one_line_error(*run(["image", str(pic), "-o", str(out), "--style", "nosuch"], capsys)[::2],
                          "unknown style 'nosuch'", "good")  # fmt: skip
    assert "dmg" not in line  # not offered: it cannot run
    one_line_error(*run(["image", str(pic), "-o", str(out), "--style", "dmg"], capsys)[::2],
                   "manifest.json is not a readable model manifest", hint)  # fmt: skip
    assert not out.exists()
    code, _, err = run(["image", str(pic), "-o", str(out), "--style", "good"], capsys)
    assert code == 0 and out.exists(), err
    # the way out: add again over it with --force (refused without), or remove it
    one_line_error(*run(["models", "add", str(path), "--name", "dmg", "--range", "0,1"], capsys)[::2],
                   "already imported", "--force")  # fmt: skip
    code, _, err = run(["models", "add", str(path), "--name", "dmg", "--range", "0,1", "--force"], capsys)
    assert code == 0, err
    assert find_model("dmg") is not None
    damage(models_dir() / "dmg" / "manifest.json")
    code, _, err = run(["models", "remove", "DMG"], capsys)
    assert code == 0 and "removed DMG" in err, err
    assert sorted(p.name for p in models_dir().iterdir()) == ["good"]
    one_line_error(*run(["models", "remove", "dmg"], capsys)[::2], "no imported model called dmg")


@pytest.mark.parametrize("name", ["../models", "hayao", ".dmg", "Bad Name"])
def test_remove_touches_nothing_but_a_model_folder(tmp_path: Path, capsys, name: str) -> None:
    """Removing needs no manifest, so the name alone says which folder: only a model's own."""
    folder = models_dir()
    (folder / ".dmg").mkdir(parents=True)
    code, _, err = run(["models", "remove", name], capsys)
    one_line_error(code, err, "built-in style" if name == "hayao" else f"no imported model called {name}")
    assert folder.is_dir() and (folder / ".dmg").is_dir()


@pytest.mark.parametrize("location", ["model.onnx.data", "weights/net.bin"])
def test_external_data_is_found_beside_the_model_and_stored_in_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    """The data file is looked for in the .onnx file's own folder, not the current one, and the
    imported model holds the weights itself: it runs once the source is gone."""
    import shutil

    import onnx

    from cartoonize.pipelines.image import read_image, write_image
    from tests.imported.tiny import by_hand

    raw = mix_model(tmp_path / "raw.onnx", "nchw", ending="Tanh")
    source = tmp_path / "source"
    (source / location).parent.mkdir(parents=True)
    onnx.save(onnx.load(raw), source / "model.onnx", save_as_external_data=True, location=location,
              size_threshold=0)  # fmt: skip
    assert (source / location).is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run(["models", "add", str(source / "model.onnx"), "--name", "ext"], capsys)
    assert code == 0, err
    shutil.rmtree(source)
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    frames = np.random.default_rng(0).integers(0, 256, (1, 24, 32, 3), np.uint8)
    write_image(photo, frames[0])
    code, _, err = run(["image", str(photo), "-o", str(out), "--style", "ext"], capsys)
    assert code == 0, err
    expected = by_hand(raw, frames, "nchw", (-1.0, 1.0), "rgb")[0]
    assert np.abs(read_image(out).astype(int) - expected).max() <= 1


def test_missing_external_data_names_the_file(tmp_path: Path, capsys) -> None:
    import onnx

    raw = mix_model(tmp_path / "raw.onnx", "nchw", ending="Tanh")
    onnx.save(onnx.load(raw), tmp_path / "model.onnx", save_as_external_data=True, location="gone.bin",
              size_threshold=0)  # fmt: skip
    (tmp_path / "gone.bin").unlink()
    code, _, err = run(["models", "add", str(tmp_path / "model.onnx"), "--name", "gone"], capsys)
    one_line_error(code, err, "keeps its weights in gone.bin", "beside the .onnx file")
    folder_is_empty()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_model_folder_follows_the_umask(tmp_path: Path, capsys, umask: int) -> None:
    import os

    path = mix_model(tmp_path / "mix.onnx", "nchw", ending="Tanh")
    old = os.umask(umask)
    try:
        code, _, err = run(["models", "add", str(path), "--name", "perm"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    folder = models_dir() / "perm"
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert all(f.stat().st_mode & 0o777 == 0o666 & ~umask for f in folder.iterdir())
