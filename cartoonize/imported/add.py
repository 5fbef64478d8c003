"""`cartoonize models add`: detect, wrap, check on a real photo, store. Nothing is written until
the wrapped model has passed its check."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.imported.detect import (
    RANGES,
    Detection,
    Options,
    detect,
    load_source,
    probe_multiple,
    range_text,
    session_from_bytes,
)
from cartoonize.imported.store import (
    ImportedModel,
    ModelManifest,
    WrapSpec,
    check_name,
    model_exists,
    refuse_if_in_use,
    store_model,
)
from cartoonize.imported.wrap import numpy_post, numpy_pre, wrap, wrap_metadata

CLIPPED_LIMIT = 0.5  # more of the output at 0 or 255 than this: the range is wrong
FLAT_LIMIT = 1.0  # an output whose std is under one level is constant
SAME_LIMIT = 1.0  # mean |output - photo| under one level: the network did nothing
HALF = 127  # an assumed range whose output never goes under this: the lower half is never used


@dataclass(frozen=True)
class AddJob:
    source: Path
    name: str
    options: Options
    licence: str = ""
    force: bool = False  # replace an imported model of that name


@dataclass(frozen=True)
class AddResult:
    model: ImportedModel
    notes: list[str]


def check_photo(spec: WrapSpec) -> np.ndarray:
    """The check's photo (scikit-image's astronaut), at the model's fixed size or 128×192 (multiples of every probed multiple)."""
    from cartoonize.export import reference_photo

    photo = reference_photo(*(spec.fixed_size or (128, 192)))
    return np.repeat(photo, spec.fixed_batch or 1, axis=0)


def _photo_name() -> str:
    import importlib.util

    has_skimage = importlib.util.find_spec("skimage") is not None
    return "scikit-image astronaut" if has_skimage else "a synthetic scene (scikit-image is not installed)"


def _run(session: Any, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _problem(out: np.ndarray, photo: np.ndarray, range_assumed: bool = False) -> str | None:
    """What is wrong with a cartoon of `photo` that a wrong range or order would explain."""
    clipped = float(np.mean((out == 0) | (out == 255)))
    if out.std() < FLAT_LIMIT:
        return f"the output is constant (every pixel {int(np.median(out))})"
    if clipped > CLIPPED_LIMIT:
        return f"{100 * clipped:.0f} % of the output is clipped to 0 or 255"
    if float(np.mean(np.abs(out.astype(np.int16) - photo))) < SAME_LIMIT:
        return "the output equals the input"
    if range_assumed and int(out.min()) >= HALF:  # a [0, 1] output read as [-1, 1]: a washed-out picture
        return f"no output level is under {HALF} (a photo with black in it comes out washed out)"
    return None


def _suggestions(raw: Any, spec: WrapSpec, photo: np.ndarray) -> list[str]:
    """Other ranges (the one option a check can catch) that give a sane cartoon."""
    good = []
    for text, value_range in RANGES.items():
        if value_range == spec.value_range:
            continue
        other = replace(spec, value_range=value_range)
        if _problem(numpy_post(_run(raw, numpy_pre(photo, other)), other), photo, range_assumed=True) is None:
            good.append(f"--range {text}")
    return good


def check_wrapped(raw: Any, wrapped: Any, spec: WrapSpec, assumed: dict[str, str]) -> dict[str, Any]:
    """The wrapped model on a real photo: same size, not constant, not clipped, not the input, and
    equal to the raw network with the pre/post done in numpy within 1 level."""
    photo = check_photo(spec)
    out = _run(wrapped, photo)
    if out.shape != photo.shape or out.dtype != np.uint8:
        raise CartoonizeError(
            f"the wrapped model gives {out.dtype} {out.shape} for a photo of {photo.shape}; the "
            "network changes the size (give --multiple, or check --layout)"
        )
    expected = numpy_post(_run(raw, numpy_pre(photo, spec)), spec)
    diff = int(np.abs(out.astype(np.int16) - expected).max())
    if diff > 1:
        raise CartoonizeError(
            f"the wrapped graph differs from the network with the pre/post done in numpy by {diff} "
            "levels (more than 1); please report this with the model"
        )
    problem = _problem(out, photo, range_assumed="range" in assumed)
    if problem is not None:
        if spec.dtype == "uint8":  # frames in and out already: no option of the import changes them
            raise CartoonizeError(
                f"the check on a photo fails: {problem}; the graph takes and gives uint8 frames itself, "
                "so check the checkpoint it was exported from (`cartoonize image --model CKPT`)"
            )
        how = "assumed" if "range" in assumed else "given or detected"
        try_these = _suggestions(raw, spec, photo)
        hint = (f"try {' or '.join(try_these)}" if try_these
                else "no other --range helps; check --layout and --channels")  # fmt: skip
        raise CartoonizeError(
            f"the check on a photo fails: {problem} with range {range_text(spec.value_range)} ({how}); {hint}"
        )
    clipped = float(np.mean((out == 0) | (out == 255)))
    return {"photo": f"{_photo_name()} {photo.shape[1]}x{photo.shape[2]}",
            "max_abs_diff_vs_numpy": diff, "output_std": round(float(out.std()), 2),
            "mean_abs_change": round(float(np.mean(np.abs(out.astype(np.int16) - photo))), 2),
            "clipped_fraction": round(clipped, 4)}  # fmt: skip


def add_model(job: AddJob, step: Callable[[str], None] | None = None) -> AddResult:
    """Import `job.source` as `job.name`: detect, probe, wrap, check; store only when all pass."""
    step = step or (lambda _s: None)
    name = check_name(job.name)
    if model_exists(name) and not job.force:
        raise CartoonizeError(
            f"a model called {name} is already imported; `cartoonize models remove {name}` first, or add --force"
        )
    refuse_if_in_use(name, "replace")  # --force: before the import's work, not after it
    step("reading the graph")
    model = load_source(job.source)  # a missing or non-ONNX file stops here; external data is in it
    source_bytes = Path(job.source).read_bytes()
    detection: Detection = detect(model, Path(job.source).name, job.options)
    step("probing the size multiple with ONNX Runtime")
    raw = session_from_bytes(model.SerializeToString())  # the file's bytes would look for its data in the cwd
    multiple, how = probe_multiple(raw, detection.spec, job.options.multiple, "layout" in detection.assumed)
    spec = replace(detection.spec, multiple=multiple)
    detection.detected["multiple"] = how
    sha = hashlib.sha256(source_bytes).hexdigest()
    licence = job.licence or "not given (check the licence of the model's source before sharing outputs)"
    step("wrapping and checking on a photo")
    wrapped = wrap(model, spec, wrap_metadata(name, spec, sha, licence))
    wrapped_bytes = wrapped.SerializeToString()
    check = check_wrapped(raw, session_from_bytes(wrapped_bytes), spec, detection.assumed)
    manifest = ModelManifest(
        name, str(Path(job.source).resolve()), sha, hashlib.sha256(wrapped_bytes).hexdigest(), spec,
        detection.detected, detection.assumed, check, licence,
    )  # fmt: skip
    stored = store_model(name, wrapped_bytes, manifest, replace=job.force)
    wrapped_note = ("taken as it is: uint8 (N, H, W, 3) RGB in and out" if spec.dtype == "uint8"
                    else f"wrapped: {spec.describe()} -> uint8 (N, H, W, 3) RGB in and out")  # fmt: skip
    notes = [*detection.notes(), wrapped_note,
             f"check passed on a photo: max |diff| vs numpy {check['max_abs_diff_vs_numpy']}, "
             f"mean change {check['mean_abs_change']} levels, {100 * check['clipped_fraction']:.1f} % clipped"]  # fmt: skip
    return AddResult(stored, notes)
