"""The engine store, manifests, compatibility checks, selection and the AOTInductor CPU engine.

One tiny AOTInductor engine (32×32, the 8-channel test generator) is built once through the CLI
and copied for each compatibility case; the real Hayao 128×128 build is `shared` and `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cartoonize.engines.store import (
    BuildSpec,
    EngineSource,
    Manifest,
    ShapeProfile,
    best_engine,
    check_engine,
    manifest_path,
    parse_shape,
    read_manifest,
    source_from,
    spec_from_name,
    store_entries,
)
from cartoonize.errors import CartoonizeError
from tests.helpers import cpu_auto, make_video
from tests.reference import reference_frames

SIZE = 32


def run_cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; (exit code, stderr + stdout) with a CartoonizeError as exit 1."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from cartoonize.cli import main

    out = io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(out):
        try:
            main([*args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, " ".join(out.getvalue().split())  # rich wraps lines; compare with spaces joined


@pytest.fixture(scope="module")
def tiny_engine(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cartoonize build-engine --model tiny.pt --backend aoti --shape 32x32` into its own store."""
    store = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARTOONIZE_ENGINES", str(store))
        code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti",
                             "--shape", f"{SIZE}x{SIZE}")  # fmt: skip
    assert code == 0, text
    assert "built" in text and "parity vs torch fp32" in text
    (engine,) = store.glob("*.pt2")
    return engine


@pytest.fixture
def engine_copy(tiny_engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the tiny engine and its manifest, in a store of its own."""
    store = tmp_path / "engines"
    store.mkdir()
    copy = store / tiny_engine.name
    shutil.copy(tiny_engine, copy)
    shutil.copy(manifest_path(tiny_engine), manifest_path(copy))
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(store))
    return copy


def edit_manifest(engine: Path, **changes: object) -> None:
    path = manifest_path(engine)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# names, shapes, manifests (no build)


def test_parse_shape_wants_multiples_of_4() -> None:
    assert parse_shape("720x1280") == (720, 1280)
    with pytest.raises(CartoonizeError, match="use 1080x1920"):
        parse_shape("1078x1920")
    with pytest.raises(CartoonizeError, match="HxW"):
        parse_shape("720")


def test_names_carry_the_key_and_read_back() -> None:
    spec = BuildSpec(EngineSource("style", "hayao"), "aoti", "fp16", "cuda", ShapeProfile.static((720, 1280)))
    assert spec.file_name("sm90") == "hayao.aoti.fp16.720x1280.sm90.pt2"
    ranged = replace(
        spec, backend="tensorrt", profile=ShapeProfile((360, 640), (720, 1280), (1088, 1920)), batch=4
    )
    name = ranged.file_name("sm90")
    assert name == "hayao.tensorrt.fp16.360x640-720x1280-1088x1920.sm90.b4.plan"
    assert spec_from_name(Path(name)) == ranged
    assert ranged.command() == (
        "cartoonize build-engine --style hayao --backend tensorrt --precision fp16 --device cuda "
        "--min-shape 360x640 --opt-shape 720x1280 --max-shape 1088x1920 --batch 4"
    )
    model = EngineSource("model", "/x/my model.pt", "1a2b3c4d" * 8)
    assert replace(spec, source=model).file_name("cpu") == "my-model-1a2b3c4d.aoti.fp16.720x1280.cpu.pt2"
    # a command to paste into a shell: the name quoted (it split at the space)
    assert (
        replace(spec, source=model).command().startswith("cartoonize build-engine --model '/x/my model.pt' ")
    )


def test_a_source_checkout_keeps_its_engines_in_its_engines_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """engines/README.md's promise; since store.py moved into cartoonize/engines/, the checkout was
    looked for at cartoonize/ and never found: a checkout's engines went to the cache."""
    from cartoonize.engines.store import _checkout_root, store_dir

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not run from a git checkout")
    monkeypatch.delenv("CARTOONIZE_ENGINES")
    assert _checkout_root() == root and store_dir() == root / "engines"


def test_build_engine_into_a_store_that_cannot_be_a_folder_is_one_line_up_front(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a NotADirectoryError traceback after the export, from the cleanup of its temporary file."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "file" / "engines"))
    code, text = run_cli(
        "build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti", "--shape", "32x32"
    )
    assert (
        code == 1
        and "output folder" in text
        and "is a file, not a folder" in text
        and "Traceback" not in text
    )


def test_profile_bounds() -> None:
    profile = ShapeProfile((360, 640), (720, 1280), (1088, 1920))
    assert profile.contains((720, 1280)) and profile.contains((360, 1920))
    assert not profile.contains((1092, 1920)) and not ShapeProfile.static((32, 32)).contains((32, 36))
    with pytest.raises(CartoonizeError, match="min ≤ opt ≤ max"):
        ShapeProfile((64, 64), (32, 32), (128, 128))


def test_build_options_are_checked() -> None:
    from cartoonize.pipelines.build import spec_from_options

    args = {"style": "hayao", "model": None, "onnx": None, "backend": "aoti", "precision": "auto",
            "device": "cpu", "shape": None, "min_shape": None, "opt_shape": None, "max_shape": None}  # fmt: skip
    with pytest.raises(CartoonizeError, match="give --shape"):
        spec_from_options(**args)
    with pytest.raises(CartoonizeError, match="TensorRT options"):
        spec_from_options(**{**args, "shape": "64x64"}, opt_level=5)
    spec = spec_from_options(**{**args, "min_shape": "32x32", "opt_shape": "64x64", "max_shape": "128x128"})
    assert spec.precision == "fp32" and not spec.profile.is_static


def test_dynamic_export_shapes() -> None:
    from cartoonize.engines.aoti import dynamic_shapes

    assert dynamic_shapes(ShapeProfile.static((64, 64))) is None
    dims = dynamic_shapes(ShapeProfile((64, 64), (64, 96), (64, 128)))
    assert dims is not None and list(dims["frames"]) == [2]  # H fixed, W = 4 × a symbol


def test_flop_count_matches_the_paper_network() -> None:
    from cartoonize.choose import EngineRequest
    from cartoonize.measure.bench import generator_flop_per_frame

    per_1000_px = generator_flop_per_frame(EngineRequest(), (100, 100)) / 10
    assert per_1000_px == pytest.approx(1.88e9, rel=0.01)
    assert generator_flop_per_frame(EngineRequest(), (1080, 1920)) == pytest.approx(3.9e12, rel=0.01)


def test_fixed_batch_pads_and_chunks() -> None:
    import torch

    from cartoonize.runners.device import run_fixed_batch

    calls = []

    def run(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x + 1

    frames = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 4, 4, 3)
    out = run_fixed_batch(frames, 2, run)
    assert calls == [2, 2, 2] and out.shape == frames.shape
    assert torch.equal(out[:, 0, 0, 0], torch.arange(1, 6, dtype=torch.uint8))


def test_onnx_precision_for_each_tensorrt() -> None:
    from cartoonize.engines.tensorrt import onnx_precision_for

    assert onnx_precision_for("fp16", "10.13.0") == "fp32"  # the FP16 builder flag
    assert onnx_precision_for("fp16", "11.4.0") == "fp16"  # strongly typed: the fp16 graph
    assert onnx_precision_for("fp32", "11.4.0") == "fp32"


# ---------------------------------------------------------------------------------------------
# the tiny AOTInductor CPU engine


def test_build_writes_engine_and_manifest(tiny_engine: Path, tiny_checkpoint: Path) -> None:
    from cartoonize.styles import sha256_of

    digest = sha256_of(tiny_checkpoint)
    assert tiny_engine.name == f"tiny-{digest[:8]}.aoti.fp32.{SIZE}x{SIZE}.cpu.pt2"
    manifest = read_manifest(tiny_engine)
    assert manifest is not None
    assert manifest.spec.source == EngineSource("model", str(tiny_checkpoint), digest)
    assert manifest.spec.profile == ShapeProfile.static((SIZE, SIZE))
    assert manifest.backend_version.startswith("2.") and manifest.device["type"] == "cpu"
    assert manifest.engine_sha256 == sha256_of(tiny_engine) and manifest.build_seconds > 0
    assert manifest.parity["psnr_db"] is None or manifest.parity["psnr_db"] >= 45
    assert manifest.parity["shape"] == [1, SIZE, SIZE, 3] and manifest.parity["threshold_db"] == 45.0
    raw = json.loads(manifest_path(tiny_engine).read_text())
    assert {"cartoonize_version", "build_options", "build_seconds", "engine_sha256"} <= raw.keys()
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_engine_matches_torch(engine_copy: Path, tiny_checkpoint: Path) -> None:
    from cartoonize.choose import runner_from_path
    from cartoonize.export import reference_photo
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    frames = np.concatenate([reference_photo(SIZE, SIZE), reference_photo(SIZE, SIZE)[:, ::-1]])
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref, runner_from_path(engine_copy) as engine:
        assert engine.name == "aoti"
        check = parity(ref(frames), engine(frames))  # batch 2 through a batch-1 engine
        correct = parity(reference_frames(load_checkpoint(tiny_checkpoint), frames), engine(frames))
    assert check.passes("fp32"), check.describe()
    assert correct.passes("fp32"), correct.describe()  # and what the network computes (tests/reference.py)


def test_auto_picks_the_stored_engine(engine_copy: Path, tiny_checkpoint: Path) -> None:
    from cartoonize.choose import EngineRequest, runner_for

    request = EngineRequest(engine="auto", model=tiny_checkpoint, device="cpu")
    assert runner_for(request, (SIZE, SIZE)).name == "aoti"
    assert runner_for(request, (SIZE - 2, SIZE - 3)).name == "aoti"  # padded to 32×32
    fallback, _ = cpu_auto(tiny_checkpoint)  # ONNX Runtime, or PyTorch bf16 where measured faster
    assert runner_for(request, (2 * SIZE, 2 * SIZE)).name == fallback  # no engine for 64×64
    assert runner_for(request).name == fallback  # no frame size: no fixed-shape engine
    other = EngineSource("model", "other.pt", "f" * 64)
    assert best_engine(other, (SIZE, SIZE), "cpu", None) is None
    assert best_engine(source_from(None, tiny_checkpoint, None), (SIZE, SIZE), "cpu", "fp16") is None


def test_auto_runs_a_stored_bf16_engine_only_where_bf16_measured_faster(
    engine_copy: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bf16 engine was auto's choice on any CPU with no fp32 one beside it, on CPUs where bf16
    is emulated (about 10x slower) too; now only where `cpu_choice` measured bf16 faster."""
    import cartoonize.choose
    from cartoonize.choose import CpuChoice, EngineRequest, stored_engine_for

    data = read_manifest(engine_copy).spec.to_dict()  # type: ignore[union-attr]
    edit_manifest(engine_copy, spec={**data, "precision": "bf16"})
    request = EngineRequest(model=tiny_checkpoint, device="cpu", frame_size=(SIZE, SIZE))
    for measured, chosen in (("fp32", None), ("bf16", engine_copy)):
        monkeypatch.setattr(cartoonize.choose, "cpu_choice", lambda _r, m=measured: CpuChoice(m, "measured"))
        assert stored_engine_for(request) == chosen, measured
    assert stored_engine_for(replace(request, precision="bf16")) == engine_copy  # asked for: run


def test_video_auto_uses_the_engine(engine_copy: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=SIZE, height=SIZE, frames=6, rate=12, audio=None)
    out = tmp_path / "out.mp4"
    code, text = run_cli("video", str(clip), str(out), "--model", str(tiny_checkpoint), "--engine", "auto",
                         "--device", "cpu")  # fmt: skip
    assert code == 0, text
    assert f"aoti {engine_copy.name}" in text and out.exists()


def test_engine_path_runs_the_given_file(engine_copy: Path, tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    from cartoonize.export import reference_photo

    photo = tmp_path / "photo.png"
    image.fromarray(reference_photo(SIZE, SIZE)[0]).save(photo)
    code, text = run_cli("image", str(photo), "-o", str(tmp_path / "out.png"), "--engine", str(engine_copy))
    assert code == 0, text


def test_image_auto_uses_the_engine_stored_for_a_photos_size(
    engine_copy: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`image --engine auto` never used a stored engine (it asked for one without a frame size):
    now each photo size with an engine stored for it runs on that engine."""
    image = pytest.importorskip("PIL.Image")
    import cartoonize.choose
    from cartoonize.choose import EngineRequest, stored_runner_for
    from cartoonize.export import reference_photo

    request = EngineRequest(model=tiny_checkpoint, device="cpu")
    with stored_runner_for(request, (SIZE, SIZE)) as runner:  # type: ignore[union-attr]
        assert runner.name == "aoti"
    assert stored_runner_for(request, (2 * SIZE, 2 * SIZE)) is None
    opened: list[str | None] = []

    def spy(request: EngineRequest, size: tuple[int, int]):  # noqa: ANN202
        runner = stored_runner_for(request, size)
        opened.append(runner.name if runner is not None else None)
        return runner

    monkeypatch.setattr(cartoonize.choose, "stored_runner_for", spy)
    (tmp_path / "in").mkdir()
    for side in (SIZE, 2 * SIZE):
        image.fromarray(reference_photo(side, side)[0]).save(tmp_path / "in" / f"{side}.png")
    code, text = run_cli("image", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                         "--device", "cpu")  # fmt: skip
    assert code == 0, text
    assert (
        len(opened) == 2
        and set(opened) == {"aoti", None}
        and len(list((tmp_path / "out").glob("*.png"))) == 2
    )


def test_an_engine_file_with_another_network_asked_is_refused(
    engine_copy: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """`--engine x.pt2 --style shinkai` ran the network x.pt2 was built from (the tiny one here)
    and wrote a cartoon of another style, silently; the same network asked twice still runs. (An
    ONNX file or a checkpoint has no manifest: a --style or --model beside it names the network it
    holds, bench's baseline.)"""
    from cartoonize.choose import EngineRequest, runner_for

    clip = make_video(tmp_path / "clip.mp4", width=SIZE, height=SIZE, frames=2, rate=12, audio=None)
    code, text = run_cli("video", str(clip), str(tmp_path / "out.mp4"), "--engine", str(engine_copy),
                         "--style", "shinkai")  # fmt: skip
    assert code == 1 and not (tmp_path / "out.mp4").exists()
    assert f"{engine_copy.name} was built from the checkpoint {tiny_checkpoint.name}" in text, text
    assert (
        "not the style shinkai; drop --style or build one: `cartoonize build-engine --style shinkai" in text
    )
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_checkpoint.read_bytes() + b"\0")  # another file: compared by content
    with pytest.raises(CartoonizeError, match="not the checkpoint other.pt .*drop --model"):
        runner_for(EngineRequest(engine=str(engine_copy), model=other), (SIZE, SIZE))
    assert (
        runner_for(EngineRequest(engine=str(engine_copy), model=tiny_checkpoint), (SIZE, SIZE)).name == "aoti"
    )


def test_engines_list_says_what_runs_here(engine_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a terminal (here a StringIO) every cell is whole, whatever COLUMNS says: an engine's
    file name was cut to `tiny-…` at rich's 80 columns, and the reason it cannot run with it."""
    monkeypatch.setenv("COLUMNS", "80")
    edit_manifest(engine_copy, backend_version="2.0.0")
    broken = engine_copy.with_name(engine_copy.name.replace(".pt2", ".b2.pt2"))
    shutil.copy(engine_copy, broken)
    code, text = run_cli("engines", "list")
    assert code == 0, text
    assert "built with PyTorch 2.0.0" in text and "no manifest" in text
    assert engine_copy.name in text and broken.name in text and "…" not in text


# ---------------------------------------------------------------------------------------------
# every compatibility error: one line, the difference, and the command that fixes it


def _fix(engine: Path, shape: int = SIZE) -> str:
    manifest = read_manifest(engine)
    assert manifest is not None
    return (
        f"`cartoonize build-engine --model {manifest.spec.source.name} --backend aoti --precision fp32 "
        f"--device cpu --shape {shape}x{shape}`"
    )


def _error(engine: Path, frame_size: tuple[int, int] | None = None) -> str:
    from cartoonize.choose import EngineRequest, runner_for

    with pytest.raises(CartoonizeError) as info:
        runner_for(EngineRequest(engine=str(engine)), frame_size)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_other_torch_version(engine_copy: Path) -> None:
    fix = _fix(engine_copy)
    edit_manifest(engine_copy, backend_version="2.99.0+cu130")
    message = _error(engine_copy)
    assert "built with PyTorch 2.99.0+cu130; this is PyTorch" in message and message.endswith(fix)


def test_other_gpu(engine_copy: Path) -> None:
    fix = _fix(engine_copy)
    edit_manifest(engine_copy, device={"type": "cuda", "name": "NVIDIA A100", "capability": "sm80"})
    message = _error(engine_copy)
    assert "built for a CUDA GPU (NVIDIA A100, sm80)" in message and message.endswith(fix)


def test_other_gpu_architecture_reads_both(engine_copy: Path) -> None:
    from cartoonize.engines.store import Machine, compatibility_problems

    manifest = read_manifest(engine_copy)
    assert manifest is not None
    manifest.device = {"type": "cuda", "name": "NVIDIA A100", "capability": "sm80"}
    h200 = Machine(manifest.backend_version, None, "NVIDIA H200", "sm90", "x86_64 avx512")
    (problem,) = compatibility_problems(engine_copy, manifest, h200, check_hash=False)
    assert problem[0] == "built for NVIDIA A100 (sm80); this GPU is NVIDIA H200 (sm90)"


def test_other_cpu(engine_copy: Path) -> None:
    fix = _fix(engine_copy)
    edit_manifest(engine_copy, device={"type": "cpu", "name": "aarch64 neon", "capability": None})
    message = _error(engine_copy)
    assert "built for a aarch64 neon CPU; this one is" in message and message.endswith(fix)


def test_shape_outside_the_profile(engine_copy: Path) -> None:
    message = _error(engine_copy, (48, 62))
    assert "frames of 48x62 (run at 48x64) are outside its shape profile 32x32" in message
    fix = _fix(engine_copy).replace(f"--shape {SIZE}x{SIZE}", "--shape 48x64")
    assert message.endswith(fix)


def test_hash_mismatch(engine_copy: Path) -> None:
    with engine_copy.open("ab") as f:
        f.write(b"\0")
    message = _error(engine_copy)
    assert "the file does not match its manifest (sha256" in message and message.endswith(_fix(engine_copy))


def test_missing_manifest(engine_copy: Path) -> None:
    manifest_path(engine_copy).unlink()
    message = _error(engine_copy)
    assert f"{engine_copy.name}: no manifest ({engine_copy.name}.json) beside it" in message
    assert message.endswith(
        f"`cartoonize build-engine --model CKPT --backend aoti --precision fp32 --device cpu --shape {SIZE}x{SIZE}`"
    )


def test_cli_prints_one_line_with_the_fix(engine_copy: Path, tmp_path: Path) -> None:
    edit_manifest(engine_copy, backend_version="1.0")
    clip = make_video(tmp_path / "clip.mp4", width=SIZE, height=SIZE, frames=2, rate=12, audio=None)
    code, text = run_cli("video", str(clip), str(tmp_path / "o.mp4"), "--engine", str(engine_copy))
    assert code == 1 and text.startswith("error:") and "cartoonize build-engine --model" in text


def test_unusable_engines_are_passed_over(engine_copy: Path, tiny_checkpoint: Path) -> None:
    edit_manifest(engine_copy, backend_version="1.0")
    (entry,) = store_entries()
    assert not entry.usable and "built with PyTorch 1.0" in entry.problems[0]
    assert best_engine(source_from(None, tiny_checkpoint, None), (SIZE, SIZE), "cpu", None) is None


@pytest.mark.parametrize(
    "change",
    ["[]", "spec", "device", "backend", "profile", "batch", "folder"],
)
def test_a_manifest_of_another_shape_is_said_not_a_crash(
    change: str, engine_copy: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Valid JSON of another shape (an edit by hand, another tool's file) crashed `engines list`
    and every `--engine auto` run with an AttributeError or KeyError; now the engine is listed as
    unusable, with the field, auto passes it over, and running it by path is one line."""
    from cartoonize.choose import EngineRequest, runner_for

    path = manifest_path(engine_copy)
    data = json.loads(path.read_text())
    if change == "[]":
        path.write_text("[]")
    elif change == "folder":
        path.unlink()
        path.mkdir()
    else:
        if change == "spec":
            data["spec"] = "hayao"
        elif change == "device":
            data["device"] = ["cpu"]
        elif change == "backend":
            data["spec"]["backend"] = "onnx"
        elif change == "profile":
            data["spec"]["profile"]["max"] = [32]
        elif change == "batch":
            data["spec"]["batch"] = "1"
        path.write_text(json.dumps(data))
    code, text = run_cli("engines", "list")
    assert code == 0 and "Traceback" not in text, text
    assert "is not a readable engine manifest" in text or "cannot be read" in text, text
    request = EngineRequest(model=tiny_checkpoint, device="cpu")
    with runner_for(request, (SIZE, SIZE)) as runner:
        assert runner.name != "aoti"
    with pytest.raises(CartoonizeError, match=r"readable engine manifest|cannot be read"):
        runner_for(EngineRequest(engine=str(engine_copy), device="cpu"), (SIZE, SIZE))


def test_check_engine_returns_the_manifest(engine_copy: Path) -> None:
    assert check_engine(engine_copy, (SIZE, SIZE)).spec.profile.is_static


def test_help_imports_no_heavy_module() -> None:
    code = "import sys, cartoonize.cli; print(sorted(m for m in ('torch', 'tensorrt', 'av', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})  # fmt: skip
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# the issue's own command, on the real Hayao weights


@pytest.mark.shared
@pytest.mark.slow
def test_hayao_128_build_and_video_auto(tmp_path: Path) -> None:
    code, text = run_cli("build-engine", "--style", "hayao", "--backend", "aoti", "--shape", "128x128")
    assert code == 0, text
    (engine,) = Path(os.environ["CARTOONIZE_ENGINES"]).glob("hayao.aoti.fp32.128x128.cpu.pt2")
    manifest = read_manifest(engine)
    assert manifest is not None and manifest.parity["psnr_db"] >= 45
    clip = make_video(tmp_path / "clip.mp4", width=128, height=128, frames=3, rate=12, audio=None)
    code, text = run_cli(
        "video", str(clip), str(tmp_path / "out.mp4"), "--engine", "auto", "--style", "hayao"
    )
    assert code == 0, text
    assert f"aoti {engine.name}" in text


def test_engine_crash_in_the_gate_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that dies natively while loading (seen: AOTInductor CUDA on an H200) must not take
    the build down silently: the gate runs the engine in a child process."""
    import signal
    import sys

    import numpy as np

    import cartoonize.pipelines.build as build
    from cartoonize.errors import CartoonizeError

    crash = [sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})"]
    monkeypatch.setattr(build, "_child_argv", lambda *_: crash)
    with pytest.raises(CartoonizeError, match=r"crashed \(SIGSEGV\).*nothing was kept"):
        build.run_isolated(tmp_path / "x.pt2", np.zeros((1, 8, 8, 3), np.uint8))


def test_unloadable_engine_in_the_gate_is_reported(tmp_path: Path) -> None:
    import numpy as np

    from cartoonize.errors import CartoonizeError
    from cartoonize.pipelines.build import run_isolated

    (tmp_path / "broken.pt2").write_bytes(b"not a package")
    with pytest.raises(
        CartoonizeError, match="broken.pt2 failed when run for the parity gate: error: broken.pt2"
    ):
        run_isolated(tmp_path / "broken.pt2", np.zeros((1, 8, 8, 3), np.uint8))


def test_gate_names_where_a_real_segfault_happened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child runs with faulthandler: a real segfault (ctypes reading address 0) is reported with
    the innermost Python frame, and the full report is kept for a bug report."""
    import cartoonize.pipelines.build as build

    crash = [sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"]
    monkeypatch.setattr(build, "_child_argv", lambda *_: crash)
    with pytest.raises(build.EngineCrashed, match=r"crashed \(SIGSEGV in string_at \(.*ctypes.*\)\)") as info:
        build.run_isolated(tmp_path / "x.pt2", np.zeros((1, 8, 8, 3), np.uint8))
    assert info.value.log is not None and "Segmentation fault" in info.value.log.read_text()


def test_an_engine_that_hangs_in_the_gate_is_ended_and_located(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's real child (`python -m cartoonize.pipelines.build`), with loading the engine
    replaced by a wait that never ends (as the Hayao AOTInductor package's load on an H200 seemed
    to, 2026-12-04): after CARTOONIZE_GATE_TIMEOUT its faulthandler says where it was, the child
    ends, and the build hears a clear EngineCrashed (so it can try the next recipe)."""
    import time

    import cartoonize.pipelines.build as build

    child = build._child_argv  # the real argv, run through a wrapper that makes the loader hang
    hang = ("import runpy, sys, threading, cartoonize.choose as c\n"
            "def load_forever(path):\n    threading.Event().wait()\n"
            "c.runner_from_path = load_forever\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_module('cartoonize.pipelines.build', run_name='__main__')\n")  # fmt: skip
    monkeypatch.setattr(build, "_child_argv", lambda *a: [sys.executable, "-X", "faulthandler", "-c", hang,
                                                          *child(*a)[4:]])  # fmt: skip
    monkeypatch.setenv("CARTOONIZE_GATE_TIMEOUT", "3")
    started = time.monotonic()
    with pytest.raises(
        build.EngineCrashed, match=r"gave no result within 3 s .*\(stuck in (wait|load_forever)"
    ) as info:
        build.run_isolated(tmp_path / "x.pt2", np.zeros((1, 8, 8, 3), np.uint8))
    assert time.monotonic() - started < 30
    assert info.value.signal_name == "no result in 3 s"
    assert info.value.log is not None and "load_forever" in info.value.log.read_text()


def test_innermost_frame_reads_faulthandler() -> None:
    from cartoonize.pipelines.build import innermost_frame

    report = """Fatal Python error: Segmentation fault

Thread 0x00007f (most recent call first):
  File "/usr/lib/python3.12/threading.py", line 359 in wait

Current thread 0x00007efd8f5c8b80 (most recent call first):
  File "/x/site-packages/torch/export/pt2_archive/_package.py", line 1068 in _load_aoti
  File "/x/site-packages/torch/export/pt2_archive/_package.py", line 1195 in load_pt2
"""
    # the first thread listed is another one: its frame is what faulthandler printed first
    assert innermost_frame(report) == "wait (lib/python3.12/threading.py:359)"
    assert innermost_frame(report.split("\n\n", 2)[0] + "\n\n" + report.split("\n\n", 2)[2]) == (
        "_load_aoti (export/pt2_archive/_package.py:1068)"
    )
    assert innermost_frame("no report at all") == ""


def test_recipes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cartoonize.engines.aoti import FALLBACK_ORDER, RECIPES_ENV, aoti_recipes

    monkeypatch.delenv(RECIPES_ENV, raising=False)
    assert [r.name for r in aoti_recipes()] == list(FALLBACK_ORDER)
    monkeypatch.setenv(RECIPES_ENV, "nchw, plain-constants")
    assert [r.name for r in aoti_recipes()] == ["nchw", "plain-constants"]
    monkeypatch.setenv(RECIPES_ENV, "fastest")
    with pytest.raises(
        CartoonizeError, match="unknown AOTInductor recipe 'fastest'; known: default, weights-beside"
    ):
        aoti_recipes()


def _crash_first_gate(monkeypatch: pytest.MonkeyPatch, crashes: int) -> list[str]:
    """Make the first `crashes` gate children die with a real segfault; later ones run the engine."""
    import cartoonize.pipelines.build as build

    real = build._child_argv
    seen: list[str] = []

    def child(engine: Path, inputs: Path, outputs: Path) -> list[str]:
        seen.append(engine.name)
        if len(seen) <= crashes:
            return [sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"]
        return real(engine, inputs, outputs)

    monkeypatch.setattr(build, "_child_argv", child)
    return seen


@pytest.mark.slow
def test_a_crashing_engine_is_rebuilt_with_the_next_recipe(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real builds: the first engine 'crashes' in the gate, the second (weights stored beside
    the library, loaded by the runner) passes, runs, and its manifest says what happened."""
    from cartoonize.choose import runner_from_path
    from cartoonize.engines.aoti import RECIPES_ENV
    from cartoonize.export import reference_photo
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "store"))
    monkeypatch.setenv(RECIPES_ENV, "default,weights-beside")
    seen = _crash_first_gate(monkeypatch, crashes=1)
    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti",
                         "--shape", f"{SIZE}x{SIZE}")  # fmt: skip
    assert code == 0, text
    assert len(seen) == 2 and "rebuilding with recipe weights-beside" in text
    (engine,) = (tmp_path / "store").glob("*.pt2")
    manifest = read_manifest(engine)
    assert manifest is not None and manifest.build_options["recipe"] == "weights-beside"
    assert manifest.build_options["crashed_recipes"][0].startswith("default: SIGSEGV in string_at")
    assert manifest.build_options["aot_inductor.package_constants_in_so"] is False
    frames = reference_photo(SIZE, SIZE)
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref, runner_from_path(engine) as run:
        assert parity(ref(frames), run(frames)).passes("fp32")


def test_when_every_recipe_crashes_nothing_is_kept(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry loop alone: the compiler is replaced by a writer of a dummy package (the real
    compiler is exercised by the builds above), every gate child segfaults for real."""
    import cartoonize.pipelines.build as build
    from cartoonize.engines.aoti import RECIPES_ENV

    store = tmp_path / "store"
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(store))
    monkeypatch.setenv(RECIPES_ENV, "default,nchw,plain-constants")
    built: list[str] = []

    def dummy(spec: BuildSpec, output: Path, step: object, recipe: object) -> dict[str, object]:
        built.append(recipe.name)  # type: ignore[attr-defined]
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"not a package")
        return {"recipe": recipe.name}  # type: ignore[attr-defined]

    monkeypatch.setitem(build.BUILDERS, "aoti", dummy)
    seen = _crash_first_gate(monkeypatch, crashes=99)
    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti",
                         "--shape", f"{SIZE}x{SIZE}")  # fmt: skip
    assert code == 1 and built == ["default", "nchw", "plain-constants"] and len(seen) == 3
    assert "every AOTInductor recipe crashed when loaded and run (default: SIGSEGV in string_at" in text
    assert "nchw: SIGSEGV" in text and "--engine torch" in text and "Traceback" not in text
    assert not store.exists() or not any(store.iterdir())


def test_a_crashing_tensorrt_engine_is_not_rebuilt(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recipes are AOTInductor's: a TensorRT plan that crashes in the gate ends the build at once.
    (TensorRT is not installed here: its builder is replaced by a writer of a dummy plan.)"""
    import cartoonize.pipelines.build as build

    built: list[object] = []

    def dummy(spec: BuildSpec, output: Path, step: object, recipe: object) -> dict[str, object]:
        built.append(recipe)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"not a plan")
        return {}

    monkeypatch.setitem(build.BUILDERS, "tensorrt", dummy)
    _crash_first_gate(monkeypatch, crashes=99)
    spec = build.spec_from_options(
        None, tiny_checkpoint, None, "tensorrt", "fp32", "cpu", "32x32", None, None, None
    )
    with pytest.raises(build.EngineCrashed, match=r"crashed \(SIGSEGV in string_at"):
        build.build_engine(spec, tmp_path / "x.plan")
    assert built == [None] and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# what a build leaves where one was already: replaced only by a complete, gated engine


def _builder_copying(engine: Path, built: list[str]) -> object:
    """A builder that writes a copy of `engine` (a real package: the gate loads and runs it)."""

    def copy(spec: BuildSpec, output: Path, step: object, recipe: object) -> dict[str, object]:
        built.append(output.name)
        shutil.copy(engine, output)
        return {"recipe": "copied"}

    return copy


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_output_of_another_suffix_is_refused_before_any_work(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o victim.txt` built for 40 s, failed in the gate (no runner opens a .txt) and deleted the
    file. Now an existing file is kept unless --overwrite, as every command does, and a name the
    backend does not write is one line before anything is built."""
    import cartoonize.pipelines.build as build

    built: list[str] = []
    monkeypatch.setitem(build.BUILDERS, "aoti", lambda *args: built.append("built"))
    (tmp_path / "victim.txt").write_text("precious")
    argv = ["build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti", "--shape", f"{SIZE}x{SIZE}"]
    code, text = run_cli(*argv, "-o", str(tmp_path / "victim.txt"))
    assert (code, text) == (
        1,
        f"error: output {tmp_path / 'victim.txt'} exists; pass --overwrite to replace it",
    )
    code, text = run_cli(*argv, "-o", str(tmp_path / "victim.txt"), "--overwrite")
    assert code == 1 and text == (
        f"error: --output {tmp_path / 'victim.txt'}: a --backend aoti engine is a .pt2 file (the suffix "
        f"says how it loads); use {tmp_path / 'victim.pt2'}"
    )
    code, text = run_cli(*argv, "-o", str(tmp_path / "new.plan"))
    assert code == 1 and "a --backend aoti engine is a .pt2 file" in text
    assert built == [] and _files(tmp_path) == {"victim.txt": b"precious"}
    spec = build.spec_from_options(
        None, tiny_checkpoint, None, "tensorrt", "fp32", "cuda", "32x32", None, None, None
    )
    for name in ("x.plan", "x.engine", "X.PLAN"):
        build.check_engine_output(spec, tmp_path / name)
    with pytest.raises(CartoonizeError, match=r"a --backend tensorrt engine is a \.plan or \.engine file"):
        build.check_engine_output(spec, tmp_path / "x.pt2")


def test_a_failed_rebuild_leaves_the_stored_engine_as_it_was(
    engine_copy: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild into the store whose new engine fails the gate (here: it does not load) leaves
    the working engine and its manifest byte for byte, and no temporary file beside them."""
    import cartoonize.pipelines.build as build

    def broken(spec: BuildSpec, output: Path, step: object, recipe: object) -> dict[str, object]:
        output.write_bytes(b"not a package")
        return {}

    monkeypatch.setitem(build.BUILDERS, "aoti", broken)
    monkeypatch.setenv("CARTOONIZE_AOTI_RECIPES", "default")
    before = _files(engine_copy.parent)
    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti",
                         "--shape", f"{SIZE}x{SIZE}")  # fmt: skip
    assert code == 1 and "failed when run for the parity gate" in text, text
    assert _files(engine_copy.parent) == before


def test_a_rebuild_replaces_the_engine_and_its_manifest_together(
    engine_copy: Path,
    tiny_engine: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild that passes the gate replaces the stored engine and its manifest (the store's
    own engine needs no --overwrite: rebuilding is the point); an explicit -o file needs it."""
    import cartoonize.pipelines.build as build

    built: list[str] = []
    monkeypatch.setitem(build.BUILDERS, "aoti", _builder_copying(tiny_engine, built))
    monkeypatch.setenv("CARTOONIZE_AOTI_RECIPES", "default")
    argv = ["build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti", "--shape", f"{SIZE}x{SIZE}"]
    from cartoonize.media.files import process_tag

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    killed = engine_copy.with_name(f".{engine_copy.stem}.cartoonize-{process_tag(done.pid)}.partial.pt2")
    killed.write_bytes(b"a build killed outright")  # (SIGKILL: no clean-up ran) goes with the next build
    manifest_path(killed).write_text("{}")
    code, text = run_cli(*argv)
    assert code == 0 and "built" in text, text
    assert sorted(_files(engine_copy.parent)) == [engine_copy.name, manifest_path(engine_copy).name]
    manifest = check_engine(engine_copy)  # the new manifest, and it matches the engine beside it
    assert manifest.build_options == {"recipe": "copied"} and manifest.parity["threshold_db"] == 45.0
    mine = tmp_path / "mine.pt2"
    mine.write_bytes(b"an engine of mine")
    code, text = run_cli(*argv, "-o", str(mine))
    assert code == 1 and "exists; pass --overwrite" in text and mine.read_bytes() == b"an engine of mine"
    code, text = run_cli(*argv, "-o", str(mine), "-y")
    assert code == 0 and check_engine(mine).build_options == {"recipe": "copied"}, text
    assert mine.read_bytes() == tiny_engine.read_bytes() and len(built) == 2

    # -o a link (engines kept on another disk, linked in): the file it points to is replaced and
    # the link stays, as every other output does (the link was replaced by a plain file)
    (tmp_path / "disk").mkdir()
    real, link = tmp_path / "disk" / "real.pt2", tmp_path / "linked.pt2"
    real.write_bytes(b"an older engine")
    link.symlink_to(real)
    code, text = run_cli(*argv, "-o", str(link), "-y")
    assert code == 0, text
    assert link.is_symlink() and real.read_bytes() == tiny_engine.read_bytes()
    assert check_engine(link).build_options == {"recipe": "copied"}  # its manifest beside the link
    assert sorted(_files(tmp_path / "disk")) == ["real.pt2"]  # nothing left beside the file


def test_a_rebuild_stopped_by_sigterm_leaves_the_stored_engine(
    engine_copy: Path, tiny_checkpoint: Path
) -> None:
    """A real `kill` in the middle of a real rebuild (the compiler running): exit 143, no
    traceback, and the engine built before, its manifest, and nothing else in the store."""
    import signal
    import time

    from tests.helpers import child_env, stoppable

    store = engine_copy.parent
    before = _files(store)
    started = store.parent / "started"
    # the real CLI, with a mark on disk when the builder begins
    marked = ("import pathlib, sys, cartoonize.pipelines.build as b\n"
              "real = b.BUILDERS['aoti']\n"
              "def marked(*args):\n    pathlib.Path(sys.argv[1]).touch()\n    return real(*args)\n"
              "b.BUILDERS['aoti'] = marked\n"
              "from cartoonize.cli import main\nmain(sys.argv[2:])\n")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = child_env(PYTHONPATH=str(root), CARTOONIZE_AOTI_RECIPES="default")
    proc = subprocess.Popen(stoppable([sys.executable, "-c", marked, str(started), "build-engine", "--model",
                                       str(tiny_checkpoint), "--backend", "aoti", "--shape", f"{SIZE}x{SIZE}"]),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # into torch.export and Inductor
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert started.exists() and proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert _files(store) == before


def test_bench_times_runners_side_by_side(tiny_checkpoint: Path, engine_copy: Path, tmp_path: Path) -> None:
    """`--engine eager,onnxruntime,aoti`: each timed in one run beside one eager baseline (the
    eager runner listed is the baseline, not timed twice); `aoti` is the stored engine."""
    out = tmp_path / "bench.json"
    code, text = run_cli("bench", "--engine", "eager,onnxruntime,aoti", "--model", str(tiny_checkpoint),
                         "--device", "cpu", "--shape", f"{SIZE}x{SIZE}", "--iters", "3", "--warmup", "1",
                         "--json", str(out))  # fmt: skip
    assert code == 0, text
    report = json.loads(out.read_text())
    names = [r["runner"].split()[0] for r in report["runners"]]
    assert names == ["torch", "onnxruntime", "aoti"], names
    assert report["torch_eager"] == {k: v for k, v in report["runners"][0].items() if k != "speedup_vs_eager"}
    assert all(r["fps"] > 0 and r["speedup_vs_eager"] > 0 for r in report["runners"])
    assert "× eager" in text and "onnxruntime" in text


def test_bench_of_an_engine_file_times_its_own_network_or_says_why_not(
    tiny_checkpoint: Path, engine_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eager baseline of `bench --engine x.pt2` is the checkpoint x.pt2 was built from. Its
    manifest kept the path as given, so from another folder (or once the file changed) the
    baseline was the default style's network, another architecture: a wrong ratio, silently."""
    monkeypatch.chdir(tiny_checkpoint.parent)
    assert source_from(None, Path(tiny_checkpoint.name), None).name == str(tiny_checkpoint)  # kept whole

    def bench(engine: Path) -> tuple[dict, str]:
        out = tmp_path / "bench.json"
        code, text = run_cli("bench", "--engine", str(engine), "--device", "cpu", "--shape", f"{SIZE}x{SIZE}",
                             "--iters", "2", "--warmup", "0", "--json", str(out))  # fmt: skip
        assert code == 0, text
        return json.loads(out.read_text()), text

    report, _ = bench(engine_copy)
    assert (
        report["torch_eager"]["runner"].startswith("torch") and report["gflop_per_frame"] < 1
    )  # the tiny network
    source = read_manifest(engine_copy).spec.source  # type: ignore[union-attr]
    edit_manifest(engine_copy, spec={**read_manifest(engine_copy).spec.to_dict(),  # type: ignore[union-attr]
                                     "source": {**source.__dict__, "name": "elsewhere/tiny.pt"}})  # fmt: skip
    report, text = bench(engine_copy)
    assert report["torch_eager"] is None and report["gflop_per_frame"] is None
    assert "none (the checkpoint it was built from, elsewhere/tiny.pt, is not there or has changed)" in text


def test_named_stored_engine_says_how_to_build_one(tiny_checkpoint: Path) -> None:
    from cartoonize.choose import EngineRequest, runner_for

    with pytest.raises(
        CartoonizeError, match=r"no stored aoti engine fits .*; build one: `cartoonize build-engine"
    ):
        runner_for(EngineRequest(engine="aoti", model=tiny_checkpoint, device="cpu"), (48, 48))
    # TensorRT has nothing to build on a CPU: said so, not a build-engine command that cannot run
    with pytest.raises(
        CartoonizeError,
        match=r"^--engine tensorrt runs on an NVIDIA GPU with CUDA, not with --device cpu; leave",
    ):
        runner_for(EngineRequest(engine="tensorrt", model=tiny_checkpoint, device="cpu"), (48, 48))


def test_a_stored_engine_of_another_precision_is_named_with_its_precision(
    engine_copy: Path, tiny_checkpoint: Path
) -> None:
    """`--engine aoti --precision bf16` beside a stored fp32 engine said "no stored aoti engine
    fits 32x32 (… the stored ones take 32x32)": the size was not what was missing."""
    from cartoonize.choose import EngineRequest, runner_for

    request = EngineRequest(engine="aoti", model=tiny_checkpoint, device="cpu", precision="bf16")
    with pytest.raises(CartoonizeError) as error:
        runner_for(request, (SIZE, SIZE))
    assert (
        f"no stored aoti bf16 engine fits {SIZE}x{SIZE} (HxW) on cpu (the stored ones take {SIZE}x{SIZE} fp32)"
        in str(error.value)
    )
    assert "--precision bf16" in str(error.value)


def test_bench_reports_a_runner_that_cannot_run_and_times_the_rest(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    code, text = run_cli("bench", "--engine", "eager,aoti", "--model", str(tiny_checkpoint), "--device", "cpu",
                         "--shape", "16x16", "--iters", "2", "--warmup", "0", "--json", str(out))  # fmt: skip
    assert code == 0, text
    eager, aoti = json.loads(out.read_text())["runners"]
    assert eager["fps"] > 0 and aoti["runner"] == "aoti" and "no stored aoti engine" in aoti["error"]
    assert "aoti: not run (no stored aoti engine" in text


def test_engines_list_of_an_empty_or_missing_folder(tmp_path: Path) -> None:
    code, text = run_cli("engines", "list", "--folder", str(tmp_path))
    assert code == 0 and f"no engines in {tmp_path}" in text and "build-engine" in text
    code, text = run_cli("engines", "list", "--folder", str(tmp_path / "typo"))
    assert code == 1 and text == f"error: engine folder {tmp_path / 'typo'} does not exist"
    (tmp_path / "notes.txt").write_text("not a folder")
    code, text = run_cli("engines", "list", "--folder", str(tmp_path / "notes.txt"))
    assert code == 1 and text == f"error: engine folder {tmp_path / 'notes.txt'} is a file, not a folder"


def test_engines_list_says_identical_for_a_bit_exact_engine() -> None:
    """A build that matched its reference bit for bit has an infinite PSNR, stored as null (JSON
    has no infinity): the listing said "None dB"."""
    from cartoonize.cli import _parity_cell

    assert _parity_cell({"psnr_db": 51.23, "max_abs_diff": 3}) == "51.23 dB"
    assert _parity_cell({"psnr_db": None, "max_abs_diff": 0}) == "identical"
    assert _parity_cell({}) == "not recorded"
