"""Edge-promoting preprocessing (CartoonGAN, section 3.2.2): cartoons with their clear edges blurred.

The discriminator learns that a cartoon whose edges were smoothed is *not* a cartoon, so the
generator is pushed to draw clear edges. Each cartoon's smoothed copy is computed once and cached
(PNG, lossless) beside a manifest, one subfolder per training scale (`--load-size`, `--load-fit`):
smoothing runs on the cartoon as training sees it, so the blurred band keeps its width next to the
line art. A second run, or `cartoonize train prepare`, reuses every entry whose source file is
unchanged (same size and modification time) and the same parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.files import write_atomic
from train.data import NATIVE, LoadScale, scan_images, warn, write_image
from train.pictures import has_alpha, read_bgr

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2


@dataclass(frozen=True)
class EdgeParams:
    canny_low: int = 100  # the author's Canny thresholds
    canny_high: int = 200
    dilate: int = 5  # dilation kernel: the band around each edge to smooth
    blur: int = 5  # Gaussian kernel of the blur that replaces that band


def edge_mask(image: np.ndarray, params: EdgeParams = EdgeParams()) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool: the dilated Canny edges."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(gray, params.canny_low, params.canny_high)
    kernel = np.ones((params.dilate, params.dilate), np.uint8)
    return cv2.dilate(edges, kernel) > 0


def smooth_edges(image: np.ndarray, params: EdgeParams = EdgeParams()) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image with the pixels near edges replaced by a Gaussian blur."""
    mask = edge_mask(image, params)
    blurred = cv2.GaussianBlur(image, (params.blur, params.blur), 0)
    return np.where(mask[..., None], blurred, image)


@dataclass(frozen=True)
class EdgeSet:
    """Cartoons and their smoothed copies, aligned: sources[i] goes with scaled[i] and smoothed[i]."""

    sources: list[Path]  # the user's files
    scaled: list[Path]  # the same at the training scale (the sources themselves at native scale)
    smoothed: list[Path]  # their edge-smoothed copies, at the training scale
    skipped: int  # unreadable files
    computed: int  # entries made this time (0 on a fully cached second run)


def _cache_name(relative: str, kind: str = "") -> str:
    return hashlib.sha1(relative.encode()).hexdigest()[:20] + kind + ".png"


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def prepare_edges(
    cartoons: Path,
    cache: Path | None = None,
    params: EdgeParams = EdgeParams(),
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
    scale: LoadScale = NATIVE,
) -> EdgeSet:
    """Make (or reuse) the edge-smoothed copy of every cartoon in `cartoons`; `progress(done, total)`.

    Smoothing runs at the training scale: each cartoon is scaled by `scale` first (and that copy
    kept too, so that training reads small files), in the cache's subfolder for that scale."""
    cache = (cache or cartoons / ".cartoonize-edges") / scale.key
    params_key = {**asdict(params), "scale": asdict(scale)}
    paths, skipped = scan_images(cartoons, "cartoons")
    manifest_path = cache / MANIFEST
    old: dict = {}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("version") == MANIFEST_VERSION and manifest.get("params") == params_key:
                old = manifest.get("entries", {})
        except (OSError, json.JSONDecodeError):
            old = {}  # a damaged manifest only costs a recomputation
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CartoonizeError(
            f"cannot write the edge cache {cache} ({exc.strerror}); pass --edge-cache DIR"
        ) from None

    entries: dict[str, dict] = {}
    todo: list[tuple[str, Path]] = []
    for path in paths:
        relative = path.relative_to(cartoons).as_posix()
        entry = {**_stamp(path), "smoothed": _cache_name(relative)}
        if has_alpha(path):  # its copies from before it was laid on white (black where transparent) go
            entry["background"] = "white"
        if scale.size:
            entry["scaled"] = _cache_name(relative, "-scaled")
        entries[relative] = entry
        outputs = [entry["smoothed"], *([entry["scaled"]] if scale.size else [])]
        if old.get(relative) != entry or not all((cache / name).exists() for name in outputs):
            todo.append((relative, path))

    def work(item: tuple[str, Path]) -> str | None:
        relative, path = item
        image = read_bgr(path)
        if image is None:
            return relative
        image = scale(image)
        writes = [("smoothed", smooth_edges(image, params))] + ([("scaled", image)] if scale.size else [])
        for kind, pixels in writes:
            write_image(cache / entries[relative][kind], pixels)
        return None

    unreadable: list[str] = []
    total = len(todo)
    if progress:
        progress(0, total)
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:  # OpenCV releases the GIL
        for done, failed in enumerate(pool.map(work, todo), start=1):
            if failed:
                unreadable.append(failed)
            if progress:
                progress(done, total)
    for relative in unreadable:
        warn(f"skipping unreadable cartoon {cartoons / relative}")
        del entries[relative]
    in_use = {entry.get(kind) for entry in entries.values() for kind in ("smoothed", "scaled")}
    for entry in old.values():  # drop the copies of cartoons that are gone
        for kind in ("smoothed", "scaled"):
            if entry.get(kind) and entry[kind] not in in_use:
                (cache / entry[kind]).unlink(missing_ok=True)

    manifest = {"version": MANIFEST_VERSION, "params": params_key, "entries": entries}
    write_atomic(
        manifest_path, json.dumps(manifest, indent=1).encode()
    )  # (this process's own temporary file)
    kept = sorted(entries)
    return EdgeSet(
        sources=[cartoons / r for r in kept],
        scaled=[cache / entries[r]["scaled"] if scale.size else cartoons / r for r in kept],
        smoothed=[cache / entries[r]["smoothed"] for r in kept],
        skipped=skipped + len(unreadable),
        computed=total - len(unreadable),
    )
