"""The user's imported models: `<cache>/models/<name>/` holds the wrapped `<name>.onnx` and its
`manifest.json`. A model folder appears whole (written under a hidden name, then renamed) or not
at all; hidden entries are imports in progress and never listed."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cartoonize import __version__
from cartoonize.errors import CartoonizeError
from cartoonize.styles import STYLES, cache_dir, cache_folder

MANIFEST_FORMAT = "cartoonize-imported-model/1"
MANIFEST_NAME = "manifest.json"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class WrapSpec:
    """How the raw network's I/O differs from the toolkit's uint8 (N, H, W, 3) RGB contract."""

    layout: str  # nhwc | nchw
    dtype: str  # float32 | float16 (of the network's input and output)
    value_range: tuple[float, float]  # of the network's input and output, e.g. (-1.0, 1.0)
    channels: str  # rgb | bgr
    multiple: int  # H and W must be multiples of this (1 for a fixed size)
    fixed_size: tuple[int, int] | None = None  # (H, W) when the graph fixes it
    fixed_batch: int | None = None  # N when the graph fixes it

    @property
    def precision(self) -> str:
        """What ONNX Runtime runs the graph in: its own dtype, whatever --precision says."""
        return "fp16" if self.dtype == "float16" else "fp32"

    def describe(self) -> str:
        lo, hi = self.value_range
        size = (
            f"fixed {self.fixed_size[0]}x{self.fixed_size[1]}"
            if self.fixed_size
            else f"H, W multiples of {self.multiple}"
        )
        return f"{self.layout.upper()} {self.dtype} {self.channels.upper()} in [{lo:g}, {hi:g}], {size}"


@dataclass
class ModelManifest:
    name: str
    source: str  # the file it was imported from
    source_sha256: str
    wrapped_sha256: str
    spec: WrapSpec
    detected: dict[str, Any]  # what the graph told: rank, channel axis, dtype, dynamic dims, multiple
    assumed: dict[str, str]  # option -> why it was assumed (not told by the graph or the user)
    check: dict[str, Any] = field(default_factory=dict)  # the photo check's figures
    licence: str = ""
    cartoonize_version: str = __version__
    format: str = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        d = json.loads(text)
        if d.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        spec = dict(d["spec"])
        spec["value_range"] = tuple(spec["value_range"])
        for key in ("fixed_size",):
            if spec.get(key) is not None:
                spec[key] = tuple(spec[key])
        d["spec"] = WrapSpec(**spec)
        return cls(**d)


@dataclass(frozen=True)
class ImportedModel:
    folder: Path
    manifest: ModelManifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def onnx_path(self) -> Path:
        return self.folder / f"{self.name}.onnx"


def models_dir() -> Path:
    return cache_dir() / "models"


def check_name(name: str) -> str:
    """A name usable as `--style NAME`: lower case letters, digits, '-' and '_', not a built-in style."""
    if not NAME_PATTERN.fullmatch(name):
        raise CartoonizeError(
            f"--name {name!r}: use lower-case letters, digits, '-' and '_', starting with a letter or "
            "digit, at most 64 (e.g. light-paprika)"
        )
    if name in STYLES:
        raise CartoonizeError(
            f"--name {name}: a built-in style has that name; choose another (e.g. {name}-onnx)"
        )
    return name


def _read(folder: Path) -> ImportedModel:
    path = folder / MANIFEST_NAME
    try:
        manifest = ModelManifest.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CartoonizeError(
            f"{path} is not a readable model manifest ({type(exc).__name__}); "
            f"`cartoonize models remove {folder.name}` and add the model again"
        ) from None
    return ImportedModel(folder, manifest)


def find_model(name: str | None) -> ImportedModel | None:
    """The imported model called `name`, or None (a built-in style name is never one)."""
    if not name or name.lower() in STYLES or not NAME_PATTERN.fullmatch(name.lower()):
        return None
    folder = models_dir() / name.lower()
    return _read(folder) if (folder / MANIFEST_NAME).is_file() else None


def imported_models() -> Iterator[ImportedModel]:
    folder = models_dir()
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and (child / MANIFEST_NAME).is_file():
                yield _read(child)


def unknown_style(name: str) -> CartoonizeError:
    """The error for a --style that is neither built in nor imported."""
    names = [*STYLES, *(m.name for m in imported_models())]
    return CartoonizeError(
        f"unknown style {name!r}; choose one of {', '.join(names)} (`cartoonize styles list`), "
        "or import an ONNX model (`cartoonize models add PATH --name NAME`)"
    )


def store_model(
    name: str, onnx_bytes: bytes, manifest: ModelManifest, replace: bool = False
) -> ImportedModel:
    """Write the wrapped model and its manifest under a hidden name, then rename the folder into
    place: an import that fails or is interrupted leaves nothing a --style could find."""
    root = models_dir()
    target = root / name
    if target.exists() and not replace:
        raise CartoonizeError(
            f"a model called {name} is already imported; `cartoonize models remove {name}` first, or add --force"
        )
    cache_folder(root.name)  # made, or one line saying why it cannot be
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        (scratch / f"{name}.onnx").write_bytes(onnx_bytes)
        (scratch / MANIFEST_NAME).write_text(manifest.to_json())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=root))
            target.replace(old / name)
            shutil.rmtree(old, ignore_errors=True)
        scratch.replace(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ImportedModel(target, manifest)


def remove_model(name: str) -> Path:
    model = find_model(name)
    if model is None:
        if name.lower() in STYLES:
            raise CartoonizeError(f"{name} is a built-in style, not an imported model; nothing to remove")
        raise CartoonizeError(f"no imported model called {name} (`cartoonize models list`)")
    shutil.rmtree(model.folder)
    return model.folder
