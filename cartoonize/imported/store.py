"""The user's imported models: `<cache>/models/<name>/` holds the wrapped `<name>.onnx` and its
`manifest.json`. A model folder appears whole (written under a hidden name, then renamed) or not
at all; hidden entries are imports in progress and never listed. A job whose pieces each load the
model (`--segments`, `--workers`) holds a shared lock on its folder while it runs (`models_held`);
`models remove` and `models add --force` need it alone, and refuse while a job holds it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cartoonize import __version__
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import process_tag, sweep_leftovers
from cartoonize.styles import STYLES, cache_dir, cache_folder, no_room

MANIFEST_FORMAT = "cartoonize-imported-model/1"
MANIFEST_NAME = "manifest.json"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class WrapSpec:
    """How the raw network's I/O differs from the toolkit's uint8 (N, H, W, 3) RGB contract."""

    layout: str  # nhwc | nchw
    dtype: str  # float32 | float16 | uint8 (of the network's input and output; uint8: the contract's own)
    value_range: tuple[float, float]  # of the network's input and output, e.g. (-1.0, 1.0)
    channels: str  # rgb | bgr
    multiple: int  # H and W must be multiples of this (1 for a fixed size)
    fixed_size: tuple[int, int] | None = None  # (H, W) when the graph fixes it
    fixed_batch: int | None = None  # N when the graph fixes it
    inner_precision: str = ""  # a uint8 graph's (`cartoonize export`): fp32 | fp16, from its metadata

    @property
    def precision(self) -> str:
        """What ONNX Runtime runs the graph in: its own dtype (a uint8 graph's says it in its
        metadata), whatever --precision says."""
        return self.inner_precision or ("fp16" if self.dtype == "float16" else "fp32")

    def describe(self) -> str:
        lo, hi = self.value_range
        size = (
            f"fixed {self.fixed_size[0]}x{self.fixed_size[1]}"
            if self.fixed_size
            else f"H, W multiples of {self.multiple}"
        )
        inside = f" ({self.inner_precision} inside)" if self.inner_precision else ""
        return (
            f"{self.layout.upper()} {self.dtype}{inside} {self.channels.upper()} in [{lo:g}, {hi:g}], {size}"
        )


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
        """The manifest in `text`; a ValueError (a ManifestError saying what is wrong where the
        JSON itself reads) for anything else, a missing key or a value of the wrong type included."""
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ManifestError("not a JSON object")
        if d.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"not a {MANIFEST_FORMAT} manifest")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ManifestError(f"unknown key {sorted(unknown)[0]!r}")
        for key in ("name", "source", "source_sha256", "wrapped_sha256", "licence", "cartoonize_version"):
            _need(d, key, str, "a string", optional=key in ("licence", "cartoonize_version"))
        for key in ("detected", "assumed", "check"):
            _need(d, key, dict, "an object", optional=key == "check")
        return cls(**{**d, "spec": _spec_from(d.get("spec"))})


class ManifestError(ValueError):
    """A manifest that is JSON but not a model manifest: what is missing or of the wrong type."""


_SPEC_CHOICES = {
    "layout": ("nhwc", "nchw"),
    "dtype": ("float32", "float16", "uint8"),
    "channels": ("rgb", "bgr"),
}


def _need(d: dict[str, Any], key: str, kind: type, what: str, optional: bool = False) -> None:
    if key not in d and optional:
        return
    if not isinstance(d.get(key), kind):
        raise ManifestError(f"{key} is missing or not {what}")


def _whole(x: Any) -> bool:
    """A whole number of at least 1 (JSON's true is no number)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _spec_from(d: Any) -> WrapSpec:
    if not isinstance(d, dict):
        raise ManifestError("spec is missing or not an object")
    unknown = set(d) - {f.name for f in fields(WrapSpec)}
    if unknown:
        raise ManifestError(f"unknown key 'spec.{sorted(unknown)[0]}'")
    for key, allowed in _SPEC_CHOICES.items():
        if d.get(key) not in allowed:
            raise ManifestError(f"spec.{key} is missing or not one of {', '.join(allowed)}")
    lo_hi = d.get("value_range")
    if not (isinstance(lo_hi, list) and len(lo_hi) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in lo_hi)):  # fmt: skip
        raise ManifestError("spec.value_range is missing or not two numbers")
    if not _whole(d.get("multiple")):
        raise ManifestError("spec.multiple is missing or not a whole number of at least 1")
    size, batch = d.get("fixed_size"), d.get("fixed_batch")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(map(_whole, size))):
        raise ManifestError("spec.fixed_size is not null or two whole numbers (H, W)")
    if batch is not None and not _whole(batch):
        raise ManifestError("spec.fixed_batch is not null or a whole number")
    inner = d.get("inner_precision", "")  # absent from the manifests of float networks stored before it
    if inner not in ("", "fp32", "fp16"):
        raise ManifestError("spec.inner_precision is not one of fp32, fp16")
    return WrapSpec(d["layout"], d["dtype"], (float(lo_hi[0]), float(lo_hi[1])), d["channels"], d["multiple"],
                    (size[0], size[1]) if size is not None else None, batch, inner)  # fmt: skip


@dataclass(frozen=True)
class DamagedSpec(WrapSpec):
    """In place of the spec of a model whose manifest cannot be read: `describe()` says so."""

    problem: str = ""

    def describe(self) -> str:
        return self.problem


@dataclass(frozen=True)
class ImportedModel:
    folder: Path
    manifest: ModelManifest
    problem: str | None = None  # why its manifest cannot be read: listed as damaged, never run

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
    if name.lower() in STYLES:  # `--style Hayao` is hayao: the built-in would always win
        raise CartoonizeError(
            f"--name {name}: a built-in style has that name; choose another (e.g. {name.lower()}-onnx)"
        )
    if not NAME_PATTERN.fullmatch(name):
        example = name.lower() if NAME_PATTERN.fullmatch(name.lower()) else "light-paprika"
        raise CartoonizeError(
            f"--name {name!r}: use lower-case letters, digits, '-' and '_', starting with a letter or "
            f"digit, at most 64 (e.g. {example})"
        )
    return name


def _is_model_name(name: str) -> bool:
    """A name the store can hold (what check_name lets in): no path, no hidden entry, no built-in."""
    return NAME_PATTERN.fullmatch(name) is not None and name not in STYLES


def _folder(name: str | None) -> Path | None:
    """The folder of the model called `name`, readable or not, or None (there is none)."""
    if not name or not _is_model_name(name.lower()):
        return None
    folder = models_dir() / name.lower()
    return folder if folder.is_dir() else None


def _load(folder: Path) -> ModelManifest | str:
    """The model's manifest, or why it cannot be read."""
    try:
        manifest = ModelManifest.from_json((folder / MANIFEST_NAME).read_text())
        if manifest.name != folder.name:
            raise ManifestError(f"it names the model {manifest.name!r}")
    except ManifestError as exc:
        return str(exc)
    except (OSError, ValueError, RecursionError) as exc:  # missing, not UTF-8, not JSON, nested past reason
        return type(exc).__name__
    return manifest


def _unreadable(what: object, folder: Path, why: str) -> str:
    return (
        f"{what} is not a readable model manifest ({why}); "
        f"`cartoonize models remove {folder.name}` and add the model again"
    )


def _read(folder: Path) -> ImportedModel | None:
    manifest = _load(folder)
    if isinstance(manifest, str):
        if _gone(folder):
            return None
        raise CartoonizeError(_unreadable(folder / MANIFEST_NAME, folder, manifest))
    return ImportedModel(folder, manifest)


def _gone(folder: Path) -> bool:
    """Whether `folder` was removed (`models remove` in another process) after it was found: its
    manifest is then missing because the model is, which is no damage to report."""
    return not folder.is_dir()


def _damaged(folder: Path, why: str) -> ImportedModel:
    """A model whose manifest cannot be read, as `models list` and `styles list` show it."""
    problem = _unreadable(MANIFEST_NAME, folder, why)
    spec = DamagedSpec("?", "?", (0.0, 0.0), "?", 1, problem=f"damaged: {problem}")
    manifest = ModelManifest(folder.name, "unknown", "unknown", "", spec, {}, {}, licence="")
    return ImportedModel(folder, manifest, problem)


def find_model(name: str | None) -> ImportedModel | None:
    """The imported model called `name`, or None (a built-in style name is never one); a one-line
    error where its folder is there but its manifest cannot be read."""
    folder = _folder(name)
    return _read(folder) if folder is not None else None


def model_exists(name: str) -> bool:
    """Whether a model called `name` is imported, readable or damaged."""
    return _folder(name) is not None


def imported_models() -> Iterator[ImportedModel]:
    """Every imported model, a damaged one (`problem` set) among them: one model whose manifest
    cannot be read does not hide the others."""
    folder = models_dir()
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and _is_model_name(child.name):
                manifest = _load(child)
                if isinstance(manifest, str) and _gone(child):
                    continue
                yield (
                    _damaged(child, manifest) if isinstance(manifest, str) else ImportedModel(child, manifest)
                )


def unknown_style(name: str) -> CartoonizeError:
    """The error for a --style that is neither built in nor imported."""
    names = [*STYLES, *(m.name for m in imported_models() if m.problem is None)]
    return CartoonizeError(
        f"unknown style {name!r}; choose one of {', '.join(names)} (`cartoonize styles list`), "
        "or import an ONNX model (`cartoonize models add PATH --name NAME`)"
    )


def store_model(
    name: str, onnx_bytes: bytes, manifest: ModelManifest, replace: bool = False
) -> ImportedModel:
    """Write the wrapped model and its manifest under a hidden name, then rename the folder into
    place: an import that fails or is interrupted leaves nothing a --style could find. The rename
    cannot replace a model's folder (it is not empty): an import of the same name by another
    process that lands first is kept without `replace`, and moved aside again with it."""
    root = models_dir()
    target = root / name
    taken = CartoonizeError(
        f"a model called {name} is already imported; `cartoonize models remove {name}` first, or add --force"
    )
    if target.exists() and not replace:
        raise taken
    cache_folder(root.name)  # made, or one line saying why it cannot be
    sweep_leftovers(root)  # what killed imports left (SIGKILL: no clean-up ran)
    scratch = _hidden_folder(root, f".{name}.")
    try:
        (scratch / f"{name}.onnx").write_bytes(onnx_bytes)
        (scratch / MANIFEST_NAME).write_text(manifest.to_json())
        for _ in range(3):
            if replace and target.exists():
                old = _hidden_folder(root, f".{name}.")
                try:
                    with contextlib.suppress(FileNotFoundError), _alone(target, "replace"):
                        target.replace(old / name)  # FileNotFoundError: another import moved it first
                finally:
                    shutil.rmtree(old, ignore_errors=True)
            try:
                scratch.replace(target)
                break
            except OSError as exc:  # ENOTEMPTY, EEXIST: another import put its folder there meanwhile
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                if not replace:
                    raise taken from None
        else:
            raise CartoonizeError(f"other imports of {name} kept landing at the same time; run it again")
    except OSError as exc:  # a full disk: one line, and nothing left behind
        if (full := no_room(exc, root, len(onnx_bytes))) is None:
            raise
        raise full from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ImportedModel(target, manifest)


def _hidden_folder(root: Path, prefix: str) -> Path:
    """A new folder `<prefix>cartoonize-<machine>-<process>.partial-<random>` under `root`, made
    with the mode the umask gives any folder (tempfile.mkdtemp's is 0700 whatever the umask, and
    the model's folder is this one renamed); named so that a later import removes it where this
    process was killed before it could (`sweep_leftovers`)."""
    while True:
        folder = root / f"{prefix}cartoonize-{process_tag()}.partial-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def remove_model(name: str) -> Path:
    """Delete the folder of the model called `name`, damaged or not: the folder is the store's own
    (a valid model name under models/), so no manifest is needed to know it may go. It is first
    renamed to a hidden name, so no one sees a half-deleted model."""
    folder = _folder(name)
    if folder is None:
        if name.lower() in STYLES:
            raise CartoonizeError(f"{name} is a built-in style, not an imported model; nothing to remove")
        raise CartoonizeError(f"no imported model called {name} (`cartoonize models list`)")
    old = None
    try:
        with _alone(folder, "remove"):
            old = _hidden_folder(folder.parent, f".{folder.name}.")
            folder.replace(old / folder.name)
    except FileNotFoundError:  # another `models remove` took it first
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise CartoonizeError(f"no imported model called {name} (`cartoonize models list`)") from None
    except OSError as exc:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise CartoonizeError(f"cannot remove {folder} ({exc.strerror or type(exc).__name__})") from None
    shutil.rmtree(old, ignore_errors=True)
    return folder


# --- a model in use -------------------------------------------------------------------------------


@contextlib.contextmanager
def models_held(names: Iterable[str | None]) -> Iterator[None]:
    """The imported models among `names` kept as they are for as long as this is held: a shared
    lock on each one's folder (POSIX flock; another process's `models remove` or `models add
    --force` of it is refused meanwhile). A job whose pieces each load the model holds it from
    before its first piece to after its last: one removed mid-job failed every later segment
    ("unknown style"). A built-in style, or a name no model has (any more), is passed over: the
    job's runner says what is wrong with it."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; a removal mid-job fails that job's later pieces
        yield
        return
    fds: list[int] = []
    try:
        for name in sorted({n.lower() for n in names if n}):
            while (folder := _folder(name)) is not None:
                try:
                    fd = os.open(folder, os.O_RDONLY)
                except FileNotFoundError:  # removed this moment
                    continue
                fcntl.flock(fd, fcntl.LOCK_SH)  # waits only for a removal or a replacement under way
                if _same_folder(fd, folder):
                    fds.append(fd)
                    break
                os.close(fd)  # it was removed or replaced while this waited: look again
        yield
    finally:
        for fd in fds:
            os.close(fd)  # and its lock with it


def refuse_if_in_use(name: str, action: str) -> None:
    """The one-line refusal `models remove` or `models add --force` would give at the end, given
    at the start where a running job holds the model (an import runs for seconds before it)."""
    folder = _folder(name)
    if folder is not None:
        with contextlib.suppress(FileNotFoundError), _alone(folder, action):
            pass


def _same_folder(fd: int, folder: Path) -> bool:
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _alone(folder: Path, action: str) -> Iterator[None]:
    """`folder` locked for this process alone while it is removed or replaced; a one-line refusal,
    at once, where a running job holds it (`models_held`). FileNotFoundError where it is gone."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = _lock_holders(os.fstat(fd))
            by = f" (PID {', '.join(map(str, pids))})" if pids else ""
            raise CartoonizeError(
                f"cannot {action} the model {folder.name}: it is in use by a running job{by}; "
                f"stop the job, or {action} it when the job has ended"
            ) from None
        yield
    finally:
        os.close(fd)


def _lock_holders(st: os.stat_result) -> list[int]:
    """The processes holding a flock on the file `st` describes, from /proc/locks (Linux); [] where
    that cannot be read."""
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields_ = line.split()  # 1: FLOCK  ADVISORY  READ 12345 fe:00:2162975 0 EOF
                if len(fields_) >= 6 and fields_[1] == "FLOCK" and fields_[5] == key:
                    pids.add(int(fields_[4]))
    except (OSError, ValueError):
        return []
    pids.discard(os.getpid())
    return sorted(pids)
