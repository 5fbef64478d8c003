"""Unpaired training data: photos and cartoons (with their edge-smoothed copies), randomly cropped.

Every random choice is keyed by (seed, epoch, position in the epoch), never drawn from a global
generator, so the batches of an epoch are the same whichever process loads them, however many
workers there are, and after a `--resume` in the middle of an epoch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cartoonize.errors import CartoonizeError
from train.pictures import image_size, read_bgr

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".ppm", ".pgm"}
)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def write_image(path: Path, pixels: np.ndarray, params: Sequence[int] = ()) -> None:
    """Write a cached picture under this process's own temporary name, then rename it: a reader
    never sees half a picture, and runs filling one cache at once (a sweep on one cartoon folder)
    each write their own file (with one shared temporary name, the second rename found it gone: a
    traceback in 2 of 3 tries). The name keeps the suffix: OpenCV picks the encoder by it."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        if not cv2.imwrite(str(tmp), pixels, list(params)):
            raise CartoonizeError(f"cannot write {path}")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` holds a `cartoonize train` run: its config.toml beside its last.pt or its
    samples/ (the names train.run writes). The pictures a run writes are not training pictures."""
    return (folder / "config.toml").is_file() and (
        (folder / "last.pt").is_file() or (folder / "samples").is_dir()
    )


def _candidates(folder: Path, what: str, skip: Collection[Path]) -> list[Path]:
    """The files under `folder` named as images, sorted. Symlinked folders are followed, each real
    folder once (a link to a parent cannot loop); hidden files and folders are left out, and so are
    the folders in `skip` and those holding a run (warned: a user may wonder where they went)."""
    skipped_real = {os.path.realpath(path) for path in skip}
    visited: set[str] = set()
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:  # reached again through a link: a loop, or two links to one folder
            dirs.clear()
            continue
        visited.add(real)
        kept = []
        for name in sorted(dirs):
            path = Path(top, name)
            if name.startswith("."):
                continue
            if os.path.realpath(path) in skipped_real or is_run_folder(path):
                warn(f"skipping {path}: a cartoonize run's folder, not {what}")
                continue
            kept.append(name)
        dirs[:] = kept  # os.walk descends into these only, in this order
        found += [
            Path(top, name)
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)


def scan_images(folder: Path, what: str, skip: Collection[Path] = ()) -> tuple[list[Path], int]:
    """Image files under `folder` (recursive, sorted; see _candidates for what is left out) and the
    unreadable count. `skip`: folders whose pictures are not training data (the run's own --out)."""
    if not folder.exists():
        raise CartoonizeError(f"{what} folder not found: {folder}")
    if not folder.is_dir():
        raise CartoonizeError(f"{what} must be a folder of images, not a file: {folder}")
    found, skipped = [], 0
    for path in _candidates(folder, what, skip):
        if path.is_file() and cv2.haveImageReader(str(path)):  # reads the signature, not the pixels
            found.append(path)
        else:
            warn(f"skipping unreadable {what[:-1]} image {path}")
            skipped += 1
    if not found:
        extra = f" ({skipped} unreadable file(s) skipped)" if skipped else ""
        raise CartoonizeError(
            f"no images in the {what} folder {folder}{extra}; looked recursively for "
            f"{', '.join(sorted(s[1:] for s in ('.jpg', '.png', '.webp', '.bmp', '.tif')))}"
        )
    return found, skipped


def read_rgb(path: Path) -> np.ndarray:
    image = read_bgr(path)
    if image is None:
        raise CartoonizeError(f"cannot decode {path}: remove it or replace it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Scale up so the short side is at least `size` (a smaller image could not give a full crop)."""
    h, w = image.shape[:2]
    if min(h, w) >= size:
        return image
    scale = size / min(h, w)
    return cv2.resize(
        image, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_CUBIC
    )


@dataclass(frozen=True)
class LoadScale:
    """How an image is scaled before the random crop (the author's loadSize, then fineSize).

    size 0: native resolution (crops are windows of the full-size image). fit "stretch": the whole
    image to size x size, aspect distorted, as the author's `image.scale(input, loadSize, loadSize)`,
    so a 256 crop of a 256 load sees the whole frame. fit "short-side": the short side to size, the
    aspect kept; a crop sees the full height and a window of the width."""

    size: int = 256
    fit: str = "stretch"

    @property
    def key(self) -> str:
        """Names the training scale: the edge cache keeps one folder per key."""
        return "native" if self.size == 0 else f"{self.size}-{self.fit}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.size == 0:
            return image
        h, w = image.shape[:2]
        if self.fit == "stretch":
            target = (self.size, self.size)
        else:
            scale = self.size / min(h, w)
            target = (max(self.size, round(w * scale)), max(self.size, round(h * scale)))
        if target == (w, h):
            return image
        shrinking = target[0] * target[1] < w * h
        return cv2.resize(image, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


NATIVE = LoadScale(0)
SQUASHED = 2.0  # wider or taller than 2:1: a panorama (photos are 4:3, 3:2, 16:9), not a frame to stretch


def scale_warnings(paths: Sequence[Path], scale: LoadScale, crop: int, what: str) -> list[str]:
    """What `scale` does to these pictures that costs them quality, one line each with its count
    (none: empty), from their headers: scaled up (a side below the load size, or below the crop at
    native scale), and with fit "stretch", a panorama squashed into a square."""
    sizes = [(path, size) for path in paths if (size := image_size(path))]
    target = scale.size or crop
    lines = []
    small = [(path, size) for path, size in sizes if min(size) < target]
    if small:
        (path, (w, h)), limit = small[0], f"--load-size {target}" if scale.size else f"the {target} px crop"
        lines.append(
            f"{len(small)} of {len(paths)} {what} have a side below {limit} (e.g. {path}, {w}x{h}): "
            "scaled up to it, they train blurry; leave them out or use larger ones"
        )
    wide = [(path, size) for path, size in sizes if max(size) > SQUASHED * min(size)]
    if wide and scale.size and scale.fit == "stretch":
        (path, (w, h)), side = wide[0], scale.size
        lines.append(
            f"{len(wide)} of {len(paths)} {what} are wider or taller than 2:1 (e.g. {path}, {w}x{h}): "
            f"--load-fit stretch squashes each into {side}x{side}; --load-fit short-side keeps their aspect"
        )
    return lines


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    image = resize_short_side(image, size)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def random_crop_flip(images: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random crop and horizontal flip applied to aligned images (a cartoon and its copy)."""
    images = [resize_short_side(im, size) for im in images]
    h, w = images[0].shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    flip = bool(rng.integers(0, 2))
    crops = [im[top : top + size, left : left + size] for im in images]
    return [c[:, ::-1] if flip else c for c in crops]


@dataclass(frozen=True)
class Item:
    """What the sampler hands the dataset: which photo, which cartoon, and the seed of their crops."""

    photo: int
    cartoon: int
    seed: int


class UnpairedImages(Dataset):
    """Item -> {"photo", "cartoon", "smoothed"}: (3, S, S) tensors in [-1, 1], RGB."""

    def __init__(
        self,
        photos: list[Path],
        cartoons: list[Path],
        smoothed: list[Path],
        size: int,
        scale: LoadScale = NATIVE,
    ) -> None:
        """`cartoons` and `smoothed` are already at the training scale (the edge cache made them so);
        photos are scaled by `scale` as they are read."""
        assert len(cartoons) == len(smoothed)
        self.photos, self.cartoons, self.smoothed, self.size = photos, cartoons, smoothed, size
        self.scale = scale

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor | str]:
        """The tensors, and under "skipped" the files that failed to decode and were replaced by the
        next readable one (newline-separated; "" for none): a worker process cannot warn the main one
        otherwise, and a string survives the batch collation."""
        rng = np.random.default_rng(item.seed)
        skipped: list[Path] = []
        (photo,) = _first_readable(self.photos, item.photo, "photos", skipped)
        (photo,) = random_crop_flip([self.scale(photo)], self.size, rng)
        cartoon, smoothed = _first_readable(
            self.cartoons, item.cartoon, "cartoons", skipped, also=self.smoothed
        )
        cartoon, smoothed = random_crop_flip([cartoon, smoothed], self.size, rng)
        return {
            "photo": to_tensor(photo),
            "cartoon": to_tensor(cartoon),
            "smoothed": to_tensor(smoothed),
            "skipped": "\n".join(str(p) for p in skipped),
        }


def _first_readable(
    paths: list[Path], index: int, what: str, skipped: list[Path], also: list[Path] | None = None
) -> list[np.ndarray]:
    """The image at `index` (with its aligned copy in `also`), or, where a file fails to decode, the
    next readable one in order (wrapping around): a deterministic stand-in, so that a run with a
    corrupt file still repeats bit for bit. The undecodable files go to `skipped`; none readable at
    all is an error."""
    groups = [paths] if also is None else [paths, also]
    for k in range(len(paths)):
        i = (index + k) % len(paths)
        images = [read_bgr(group[i]) for group in groups]
        bad = [group[i] for group, image in zip(groups, images, strict=True) if image is None]
        if not bad:
            return [cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image in images]
        skipped += bad
    raise CartoonizeError(
        f"none of the {len(paths)} {what} can be decoded (e.g. {paths[index]}): remove or replace them"
    )


class EpochPlan(Sampler[list[Item]]):
    """The batches of one epoch, a pure function of (seed, epoch): photos in a fresh random order,
    cartoons in their own; `start` skips the batches already trained (a resume mid-epoch)."""

    def __init__(self, n_photos: int, n_cartoons: int, batch_size: int, steps: int, seed: int) -> None:
        self.n_photos, self.n_cartoons, self.batch_size, self.steps, self.seed = (
            n_photos,
            n_cartoons,
            batch_size,
            steps,
            seed,
        )
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self, n: int, stream: int, count: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, stream])
        passes = -(-count // n)  # enough shuffled passes to cover `count` draws
        return np.concatenate([rng.permutation(n) for _ in range(passes)])[:count]

    def batches(self) -> list[list[Item]]:
        count = self.steps * self.batch_size
        photos, cartoons = self._order(self.n_photos, 0, count), self._order(self.n_cartoons, 1, count)
        seeds = np.random.default_rng([self.seed, self.epoch, 2]).integers(0, 2**63, count)
        items = [Item(int(p), int(c), int(s)) for p, c, s in zip(photos, cartoons, seeds, strict=True)]
        return [items[i : i + self.batch_size] for i in range(0, count, self.batch_size)]

    def __iter__(self) -> Iterator[list[Item]]:
        yield from self.batches()[self.start :]

    def __len__(self) -> int:
        return self.steps - self.start
