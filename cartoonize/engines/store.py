"""The engine store: compiled engines with a sidecar manifest each, checked before every load.

An engine (a TensorRT plan, an AOTInductor `.pt2`) is valid for one backend version and one
device. Its name carries the key it was built for, and `<engine>.json` beside it records the rest:

    engines/hayao.aoti.fp16.720x1280.sm90.pt2        the engine, a plain .pt2 / .plan
    engines/hayao.aoti.fp16.720x1280.sm90.pt2.json   its manifest

`check_engine()` compares a manifest with this machine and a frame size and raises one
`CartoonizeError` naming the difference and the `cartoonize build-engine ...` command that fixes
it; `best_engine()` picks what `--engine auto` runs.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shlex
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cartoonize import __version__
from cartoonize.architecture import MIN_SIDE, SIZE_MULTIPLE, run_side
from cartoonize.errors import CartoonizeError

MANIFEST_FORMAT = "cartoonize-engine/1"
BACKENDS = ("tensorrt", "aoti")  # in --engine auto's order of preference
SUFFIXES = {"tensorrt": ".plan", "aoti": ".pt2"}
ENGINE_SUFFIXES = (".plan", ".engine", ".pt2")

# ---------------------------------------------------------------------------------------------
# shapes


def parse_shape(text: str) -> tuple[int, int]:
    """'720x1280' -> (720, 1280); sides must be multiples of 4 (the generator's stride) and at
    least MIN_SIDE: 4x4 passed, then bench refused it as "not a multiple of 4" and build-engine
    ended in a traceback from the instance norms (no frame runs below MIN_SIDE anyway)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise CartoonizeError(f"shape {text!r}: write it as HxW, e.g. 720x1280")
    h, w = int(match[1]), int(match[2])
    if min(h, w) < MIN_SIDE or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise CartoonizeError(
            f"shape {text!r}: height and width must be multiples of {SIZE_MULTIPLE} and at least "
            f"{MIN_SIDE} (frames are padded to that); use {run_side(h)}x{run_side(w)}"
        )
    return h, w


def padded(frame_size: tuple[int, int], multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """The size a frame is run at: H and W padded up to the model's multiple (4 for CartoonGAN)."""
    return run_side(frame_size[0], multiple), run_side(frame_size[1], multiple)


def size_multiple(manifest: Manifest) -> int:
    """The multiple an engine's frames are padded to: an imported model's own (recorded at build)."""
    return int(manifest.build_options.get("size_multiple", SIZE_MULTIPLE))


def shape_text(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


@dataclass(frozen=True)
class ShapeProfile:
    """The frame sizes an engine accepts: (H, W) from min to max; opt is what it is tuned for."""

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]

    @classmethod
    def static(cls, shape: tuple[int, int]) -> ShapeProfile:
        return cls(shape, shape, shape)

    def __post_init__(self) -> None:
        for i in (0, 1):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise CartoonizeError(
                    f"shape profile {self.describe()}: need min ≤ opt ≤ max in both height and width"
                )

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max

    def contains(self, shape: tuple[int, int]) -> bool:
        return all(self.min[i] <= shape[i] <= self.max[i] for i in (0, 1))

    def describe(self) -> str:
        """'720x1280' when static, else 'min-opt-max' ('360x640-720x1280-1088x1920')."""
        if self.is_static:
            return shape_text(self.opt)
        return "-".join(shape_text(s) for s in (self.min, self.opt, self.max))

    def cli_options(self) -> str:
        if self.is_static:
            return f"--shape {shape_text(self.opt)}"
        return " ".join(f"--{k}-shape {shape_text(getattr(self, k))}" for k in ("min", "opt", "max"))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShapeProfile:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# this machine


@dataclass(frozen=True)
class Machine:
    """What an engine must match: backend versions and the device it runs on."""

    torch: str
    tensorrt: str | None  # None where tensorrt does not import
    gpu: str | None  # "NVIDIA H200", None without a CUDA GPU
    capability: str | None  # "sm90"
    cpu: str  # "x86_64 avx512": the vector ISA AOTInductor compiled CPU code for

    def target(self, device: str) -> str:
        """The device part of an engine's name: 'sm90' or 'cpu'."""
        if device == "cuda":
            if self.capability is None:
                raise CartoonizeError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
            return self.capability
        return "cpu"

    def describe_device(self, device: str) -> dict[str, str | None]:
        if device == "cuda":
            return {"type": "cuda", "name": self.gpu, "capability": self.capability}
        return {"type": "cpu", "name": self.cpu, "capability": None}

    def backend_version(self, backend: str) -> str | None:
        return self.tensorrt if backend == "tensorrt" else self.torch


@functools.cache
def current_machine() -> Machine:
    import torch

    try:
        import tensorrt

        trt_version: str | None = tensorrt.__version__
    except ImportError:
        trt_version = None
    gpu = capability = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
        major, minor = torch.cuda.get_device_capability()
        capability = f"sm{major}{minor}"
    return Machine(torch.__version__, trt_version, gpu, capability, _cpu_description())


def _cpu_description() -> str:
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        isa = str(pick_vec_isa()) or "scalar"
    except Exception:  # the ISA probe compiles a test program; no compiler means no AOT CPU engines
        isa = "unknown"
    return f"{platform.machine()} {isa}"


# ---------------------------------------------------------------------------------------------
# what an engine was built from, and how to build it again


@dataclass(frozen=True)
class EngineSource:
    kind: str  # style | model | onnx
    name: str  # the style, or the checkpoint's / ONNX file's path
    sha256: str = ""  # of the checkpoint or ONNX file ('' for a style: its weights are pinned)

    def key(self) -> str:
        """The source part of an engine's name: 'hayao', or 'mymodel-1a2b3c4d'."""
        if self.kind == "style":
            return self.name
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(self.name).stem).strip("-") or self.kind
        return f"{stem}-{self.sha256[:8]}"

    def cli_option(self) -> str:
        return f"--{self.kind} {shlex.quote(self.name)}"  # pasted into a shell: "my model.pt" whole

    def describe(self) -> str:
        """'the style hayao', 'the checkpoint mine.pt (1a2b3c4d)', for a message."""
        if self.kind == "style":
            return f"the style {self.name}"
        what = "checkpoint" if self.kind == "model" else "ONNX file"
        return f"the {what} {Path(self.name).name} ({self.sha256[:8]})"


def source_from(style: str | None, model: Path | None, onnx: Path | None) -> EngineSource:
    from cartoonize.styles import get_style, sha256_of

    given = [x for x in (style, model, onnx) if x is not None]
    if len(given) > 1:
        raise CartoonizeError("give one of --style, --model or --onnx")
    for kind, path in (("model", model), ("onnx", onnx)):
        if path is not None:
            if not Path(path).is_file():
                raise CartoonizeError(f"--{kind} {path}: no such file")
            # the full path: a manifest read from another folder still finds the checkpoint (bench's baseline)
            return EngineSource(kind, str(Path(path).resolve()), sha256_of(Path(path)))
    from cartoonize.imported.store import find_model, unknown_style
    from cartoonize.styles import DEFAULT_STYLE, STYLES

    imported = find_model(style)
    if imported is not None:  # an imported model is built from its wrapped ONNX
        return EngineSource("onnx", str(imported.onnx_path), imported.manifest.wrapped_sha256)
    if style is not None and style.lower() not in STYLES:
        raise unknown_style(style)
    return EngineSource("style", get_style(style or DEFAULT_STYLE).name)


@dataclass(frozen=True)
class BuildSpec:
    """Everything `cartoonize build-engine` was asked for; the key of the engine it makes."""

    source: EngineSource
    backend: str  # tensorrt | aoti
    precision: str  # fp32 | fp16 | bf16 (CPU)
    device: str  # cuda | cpu
    profile: ShapeProfile
    batch: int = 1
    workspace_gib: float | None = None  # TensorRT only
    opt_level: int | None = None  # TensorRT builder optimization level 0-5
    max_autotune: bool = False  # AOTInductor only

    def file_name(self, target: str) -> str:
        batch = f".b{self.batch}" if self.batch != 1 else ""
        return (
            f"{self.source.key()}.{self.backend}.{self.precision}.{self.profile.describe()}"
            f".{target}{batch}{SUFFIXES[self.backend]}"
        )

    def command(self, profile: ShapeProfile | None = None) -> str:
        """The `cartoonize build-engine` line that builds this engine (for another profile)."""
        parts = ["cartoonize build-engine", self.source.cli_option(), f"--backend {self.backend}",
                 f"--precision {self.precision}", f"--device {self.device}",
                 (profile or self.profile).cli_options()]  # fmt: skip
        if self.batch != 1:
            parts.append(f"--batch {self.batch}")
        if self.workspace_gib is not None:
            parts.append(f"--workspace {self.workspace_gib:g}")
        if self.opt_level is not None:
            parts.append(f"--opt-level {self.opt_level}")
        if self.max_autotune:
            parts.append("--max-autotune")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profile"] = self.profile.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildSpec:
        d = dict(d)
        d["source"] = EngineSource(**d["source"])
        d["profile"] = ShapeProfile.from_dict(d["profile"])
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# the manifest


@dataclass
class Manifest:
    spec: BuildSpec
    backend_version: str  # tensorrt.__version__ or torch.__version__ at build time
    device: dict[str, str | None]  # {"type": "cuda", "name": "NVIDIA H200", "capability": "sm90"}
    engine_sha256: str
    build_seconds: float
    parity: dict[str, Any] = field(
        default_factory=dict
    )  # max_abs_diff, psnr_db, threshold_db, shape, reference
    build_options: dict[str, Any] = field(default_factory=dict)  # backend-specific settings actually used
    cartoonize_version: str = __version__
    style: str = ""  # the style label inside the checkpoint / ONNX metadata
    format: str = MANIFEST_FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The manifest in `text`; ValueError where it is not one, or a field is not of its type
        (valid JSON of another shape, an edit by hand: said here, not an AttributeError later)."""
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        _check_types(d, MANIFEST_TYPES, "")
        _check_types(d["spec"], SPEC_TYPES, "spec.")
        _check_types(d["spec"]["source"], SOURCE_TYPES, "spec.source.")
        if d["spec"]["backend"] not in BACKENDS:
            raise ValueError(f"spec.backend is {d['spec']['backend']!r}, not one of {', '.join(BACKENDS)}")
        for bound in ("min", "opt", "max"):
            shape = d["spec"]["profile"].get(bound)
            if not (isinstance(shape, list) and len(shape) == 2 and all(type(x) is int for x in shape)):
                raise ValueError(f"spec.profile.{bound} is {shape!r}, not [height, width]")
        d["spec"] = BuildSpec.from_dict(d["spec"])
        return cls(**d)


# each field a manifest must hold, and its JSON types (optional ones: None among them)
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "spec": (dict,), "backend_version": (str,), "device": (dict,), "engine_sha256": (str,),
    "build_seconds": (int, float), "parity": (dict,), "build_options": (dict,),
}  # fmt: skip
SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "source": (dict,), "backend": (str,), "precision": (str,), "device": (str,), "profile": (dict,),
    "batch": (int,), "workspace_gib": (int, float, type(None)), "opt_level": (int, type(None)),
    "max_autotune": (bool,),
}  # fmt: skip
SOURCE_TYPES: dict[str, tuple[type, ...]] = {"kind": (str,), "name": (str,), "sha256": (str,)}


def _check_types(d: Any, types: dict[str, tuple[type, ...]], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where.rstrip('.')} is not an object")
    for name, kinds in types.items():
        if name not in d and type(None) not in kinds:
            raise ValueError(f"{where}{name} is missing")
        value = d.get(name)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{where}{name} is {value!r}, not {' or '.join(k.__name__ for k in kinds)}")


def manifest_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def write_manifest(engine: Path, manifest: Manifest) -> Path:
    from cartoonize.media.files import write_atomic

    path = manifest_path(engine)
    write_atomic(path, manifest.to_json().encode())  # builds of one engine at once: each its own
    return path


def read_manifest(engine: Path) -> Manifest | None:
    """The manifest beside an engine, or None when there is none (or it is unreadable)."""
    path = manifest_path(engine)
    try:
        return Manifest.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as exc:  # a folder of that name, no permission to read it
        raise CartoonizeError(f"{path.name} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CartoonizeError(
            f"{path.name} is not a readable engine manifest ({exc}); rebuild the engine with "
            "`cartoonize build-engine`"
        ) from None


# ---------------------------------------------------------------------------------------------
# compatibility


def spec_from_name(engine: Path) -> BuildSpec | None:
    """Read the key back out of a store name (for the fix command when the manifest is gone)."""
    pattern = (
        r"(?P<source>[^.]+)\.(?P<backend>tensorrt|aoti)\.(?P<precision>fp32|fp16|bf16)\.(?P<shape>[0-9x-]+)"
        r"\.(?P<target>cpu|sm\d+)(?:\.b(?P<batch>\d+))?\.(?:pt2|plan|engine)"
    )
    m = re.fullmatch(pattern, engine.name)
    if not m:
        return None
    try:
        shapes = [parse_shape(s) for s in m["shape"].split("-")]
        profile = ShapeProfile.static(shapes[0]) if len(shapes) == 1 else ShapeProfile(*shapes)
    except (CartoonizeError, TypeError):
        return None
    source = EngineSource("style", m["source"]) if "-" not in m["source"] else EngineSource("model", "CKPT")
    device = "cpu" if m["target"] == "cpu" else "cuda"
    return BuildSpec(source, m["backend"], m["precision"], device, profile, int(m["batch"] or 1))


def _generic_command(engine: Path) -> str:
    backend = "aoti" if engine.suffix == ".pt2" else "tensorrt"
    return f"cartoonize build-engine --style STYLE --backend {backend} --shape HxW"


def compatibility_problems(
    engine: Path,
    manifest: Manifest,
    machine: Machine,
    frame_size: tuple[int, int] | None = None,
    check_hash: bool = True,
) -> list[tuple[str, ShapeProfile | None]]:
    """Why this engine cannot run here (empty when it can), each with the profile to rebuild for."""
    spec = manifest.spec
    problems: list[tuple[str, ShapeProfile | None]] = []
    here = machine.backend_version(spec.backend)
    label = {"tensorrt": "TensorRT", "aoti": "PyTorch"}[spec.backend]
    if here is None:
        problems.append((f"built for {label} {manifest.backend_version}, which is not installed here", None))
    elif here != manifest.backend_version:
        problems.append((f"built with {label} {manifest.backend_version}; this is {label} {here}", None))
    built_on = manifest.device
    if built_on.get("type") == "cuda":
        if machine.capability is None:
            problems.append((f"built for a CUDA GPU ({built_on.get('name')}, {built_on.get('capability')}); "
                             "there is none here", None))  # fmt: skip
        elif built_on.get("capability") != machine.capability or (
            spec.backend == "tensorrt" and built_on.get("name") != machine.gpu
        ):
            # an AOTInductor package holds code for an architecture; a TensorRT plan's kernels and
            # tactics were chosen on one GPU model ("engines are specific to the exact GPU model
            # they were built on", unless built hardware-compatible, which this is not)
            problems.append((f"built for {built_on.get('name')} ({built_on.get('capability')}); this GPU is "
                             f"{machine.gpu} ({machine.capability})", None))  # fmt: skip
    elif built_on.get("name") != machine.cpu:
        problems.append((f"built for a {built_on.get('name')} CPU; this one is {machine.cpu}", None))
    if frame_size is not None:
        size = padded(frame_size, size_multiple(manifest))
        if not spec.profile.contains(size):
            problems.append((
                f"frames of {shape_text(frame_size)} (run at {shape_text(size)}) are outside its shape "
                f"profile {spec.profile.describe()}", ShapeProfile.static(size),
            ))  # fmt: skip
    if check_hash:
        actual = _engine_sha256(engine)
        if actual != manifest.engine_sha256:
            problems.append((
                f"the file does not match its manifest (sha256 {actual[:12]}…, manifest says "
                f"{manifest.engine_sha256[:12]}…)", None,
            ))  # fmt: skip
    return problems


def _engine_sha256(engine: Path) -> str:
    """The engine file's sha256, hashed once a process while the file stays as it was (the same inode, size and time): `image
    --engine auto` asks the store once for each photo size, each time hashing every engine."""
    stat = engine.stat()
    return _sha256_of_version(engine, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of_version(engine: Path, _inode: int, _size: int, _mtime_ns: int) -> str:
    from cartoonize.styles import sha256_of

    return sha256_of(engine)


def check_engine(engine: Path, frame_size: tuple[int, int] | None = None) -> Manifest:
    """The engine's manifest, after checking it against this machine (and a frame size)."""
    engine = Path(engine)
    if not engine.is_file():
        raise CartoonizeError(f"engine file not found: {engine}")
    manifest = read_manifest(engine)
    if manifest is None:
        spec = spec_from_name(engine)
        fix = spec.command() if spec is not None else _generic_command(engine)
        raise CartoonizeError(
            f"{engine.name}: no manifest ({manifest_path(engine).name}) beside it, so nothing says "
            f"what it was built for; rebuild it: `{fix}`"
        )
    problems = compatibility_problems(engine, manifest, current_machine(), frame_size)
    if problems:
        text = "; ".join(p for p, _ in problems)
        profile = next((p for _, p in problems if p is not None), None)
        raise CartoonizeError(f"{engine.name}: {text}; rebuild it: `{manifest.spec.command(profile)}`")
    return manifest


# ---------------------------------------------------------------------------------------------
# the store


def _checkout_root() -> Path | None:
    """The source checkout this package runs from (cartoonize/engines/store.py: two folders up),
    or None for an installed package. (It looked one folder up, at cartoonize/, since this module
    moved into engines/: a checkout's engines went to the cache, not to its engines/ folder.)"""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return root
    return None


def store_dir() -> Path:
    """`$CARTOONIZE_ENGINES`, else `engines/` of a source checkout, else `$CARTOONIZE_CACHE/engines`."""
    env = os.environ.get("CARTOONIZE_ENGINES")
    if env:
        return Path(env).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / "engines"
    from cartoonize.styles import cache_dir

    return cache_dir() / "engines"


def stored_engines(folder: Path | None = None) -> Iterator[Path]:
    folder = folder or store_dir()
    if folder.is_dir():
        # hidden files are builds in progress (or that crashed before their parity gate)
        yield from sorted(
            p
            for p in folder.iterdir()
            if p.suffix in ENGINE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )


@dataclass(frozen=True)
class StoreEntry:
    path: Path
    manifest: Manifest | None
    problems: tuple[str, ...]  # why it cannot run here; empty when it can

    @property
    def usable(self) -> bool:
        return self.manifest is not None and not self.problems


def store_entries(
    folder: Path | None = None, check_hash: bool = True, machine: Machine | None = None
) -> list[StoreEntry]:
    """The engines in the store and why each cannot run on `machine` (default: this one)."""
    machine = machine or current_machine()
    entries = []
    for path in stored_engines(folder):
        try:
            manifest = read_manifest(path)
        except CartoonizeError as exc:
            entries.append(StoreEntry(path, None, (str(exc),)))
            continue
        if manifest is None:
            entries.append(StoreEntry(path, None, ("no manifest",)))
            continue
        problems = compatibility_problems(path, manifest, machine, check_hash=check_hash)
        entries.append(StoreEntry(path, manifest, tuple(p for p, _ in problems)))
    return entries


def stored_engine_named(name: str, folder: Path | None = None) -> Path:
    """The stored engine whose file name is `name` (as `engines list` shows it): only the store's
    own engines, never a path elsewhere."""
    folder = folder or store_dir()
    path = folder / name
    if Path(name).name != name or path not in stored_engines(folder):
        raise CartoonizeError(f"no engine called {name} in {folder} (`cartoonize engines list` names them)")
    return path


def remove_engine(name: str, folder: Path | None = None) -> Path:
    """Delete the stored engine called `name` and its manifest, damaged or not. The manifest goes
    first: stopped between the two, what is left is an engine without one, which nothing loads
    and `engines list` still shows, not a manifest that no listing shows."""
    folder = folder or store_dir()
    path = stored_engine_named(name, folder)
    try:
        manifest_path(path).unlink(missing_ok=True)
        path.unlink()
    except FileNotFoundError:  # another removal took it first
        raise CartoonizeError(f"no engine called {name} in {folder}") from None
    except OSError as exc:
        raise CartoonizeError(f"cannot remove {path} ({exc.strerror or type(exc).__name__})") from None
    return path


def best_engine(
    source: EngineSource,
    frame_size: tuple[int, int],
    device: str,
    precision: str | None,
    folder: Path | None = None,
    machine: Machine | None = None,
    backend: str | None = None,
) -> Path | None:
    """The stored engine `--engine auto` runs for this source, frame size, device and precision
    (None: any precision, fp16 preferred on CUDA): TensorRT before AOTInductor, an exact static
    shape before a range, the newest last. `backend` keeps only that backend's engines."""
    candidates = []
    for entry in store_entries(folder, machine=machine):
        if not entry.usable or entry.manifest is None:
            continue
        spec = entry.manifest.spec
        size = padded(frame_size, size_multiple(entry.manifest))
        if spec.device != device or not spec.profile.contains(size):
            continue
        if backend is not None and spec.backend != backend:
            continue
        if precision is not None and spec.precision != precision:
            continue
        if not same_source(spec.source, source):
            continue
        rank = (
            BACKENDS.index(spec.backend),
            0 if spec.precision == ("fp16" if device == "cuda" else "fp32") else 1,
            0 if spec.profile.is_static else 1,
            -entry.path.stat().st_mtime,
        )
        candidates.append((rank, entry.path))
    return min(candidates)[1] if candidates else None


def same_source(a: EngineSource, b: EngineSource) -> bool:
    """A style matches by name (its weights are pinned); a checkpoint or ONNX file by content."""
    if a.kind != b.kind:
        return False
    return a.name == b.name if a.kind == "style" else a.sha256 == b.sha256
