"""The four public CartoonGAN styles: where they live, how to fetch, verify and convert them.

The authors' generators are published as per-layer `.npy` files (the reference PyTorch port's
parameter names) in mnicnc404/CartoonGan-tensorflow at a pinned commit. `pull_style` downloads
every file into a scratch folder, checks each sha256 against the list shipped with this package,
maps the names onto `Generator`'s modules and writes one checkpoint into the cache. Nothing reaches
the cache unless every file verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cartoonize.errors import CartoonizeError

DEFAULT_WEIGHTS_URL = "https://raw.githubusercontent.com"
REPOSITORY = "mnicnc404/CartoonGan-tensorflow"
COMMIT = "2f26a525f8b604b8e98fb84ebad0af5aef727944"
WEIGHTS_DIR = "style_transfer/cartoongan/pretrained_weights"
LICENCE_NOTE = (
    "The CartoonGAN style weights are the paper authors' release (Chen et al., CVPR 2018), "
    "mirrored in mnicnc404/CartoonGan-tensorflow (Apache-2.0 code); the weights carry no stated "
    "licence: use them for research only."
)


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    files: dict[str, str]  # file name -> sha256
    channel_order: str = "BGR"  # the released generators take BGR input in [-1, 1]
    norm_eps: float = 1e-9  # the reference port's hand-written instance norm

    def url(self, base: str, file: str) -> str:
        return f"{base.rstrip('/')}/{REPOSITORY}/{COMMIT}/{WEIGHTS_DIR}/{self.name}/{file}"


_DESCRIPTIONS = {
    "hayao": "Hayao Miyazaki (Spirited Away): soft colours, painted skies",
    "hosoda": "Mamoru Hosoda (Wolf Children): clean lines, flat light",
    "paprika": "Satoshi Kon (Paprika): saturated, high contrast",
    "shinkai": "Makoto Shinkai (Your Name): bright, detailed backgrounds",
}


def _load_registry() -> dict[str, Style]:
    files: dict[str, dict[str, str]] = {name: {} for name in _DESCRIPTIONS}
    text = resources.files("cartoonize").joinpath("data/cartoongan_sha256sums.txt").read_text()
    for line in text.splitlines():
        digest, path = line.split(maxsplit=1)
        style, file = path.removeprefix(WEIGHTS_DIR + "/").split("/")
        files[style][file] = digest
    return {name: Style(name, _DESCRIPTIONS[name], files[name]) for name in _DESCRIPTIONS}


STYLES = _load_registry()
DEFAULT_STYLE = "hayao"  # what --style means when neither --style nor --model is given


def cache_dir() -> Path:
    env = os.environ.get("CARTOONIZE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cartoonize"))


def cache_folder(*parts: str) -> Path:
    """`cache_dir()/parts`, made where missing, for something about to be written there; a
    one-line error where it cannot be (a read-only home, a cache on a full disk). Reading the cache
    needs none of this: a read-only cache with the weights already in it works."""
    folder = cache_dir().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
        reason = "not writable"
    except OSError as exc:
        writable, reason = False, exc.strerror or type(exc).__name__
    if not writable:
        raise CartoonizeError(
            f"cannot write the cache folder {folder} ({reason}); set CARTOONIZE_CACHE to a writable folder"
        )
    return folder


def weights_url() -> str:
    """Where the style weights come from: CARTOONIZE_WEIGHTS_URL, a URL (https://..., file:///...)
    or a folder holding the mirror (a path, made a file:// URL), else GitHub."""
    value = os.environ.get("CARTOONIZE_WEIGHTS_URL", DEFAULT_WEIGHTS_URL)
    if "://" in value:
        return value
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise CartoonizeError(
            f"CARTOONIZE_WEIGHTS_URL={value} is neither a URL (https://..., file:///...) nor a folder here"
        )
    return folder.resolve().as_uri()


def get_style(name: str) -> Style:
    try:
        return STYLES[name.lower()]
    except KeyError:
        raise CartoonizeError(
            f"unknown style {name!r}; choose one of {', '.join(STYLES)} (`cartoonize styles list`)"
        ) from None


def style_checkpoint_path(name: str) -> Path:
    return cache_dir() / "styles" / f"{get_style(name).name}.pt"


def reference_to_generator_names(residual_blocks: int = 8) -> dict[str, str]:
    """Reference port layer name (`conv04_1`, `in04_1`, ...) -> `Generator` module path."""
    names = {
        "conv01_1": "flat.1", "in01_1": "flat.2",
        "conv02_1": "down.0", "conv02_2": "down.1", "in02_1": "down.2",
        "conv03_1": "down.4", "conv03_2": "down.5", "in03_1": "down.6",
        "deconv01_1": "up.0", "deconv01_2": "up.1", "in12_1": "up.2",
        "deconv02_1": "up.4", "deconv02_2": "up.5", "in13_1": "up.6",
        "deconv03_1": "out.1",
    }  # fmt: skip
    for i in range(residual_blocks):
        n = f"{i + 4:02d}"
        names |= {
            f"conv{n}_1": f"residual.{i}.body.1",
            f"in{n}_1": f"residual.{i}.body.2",
            f"conv{n}_2": f"residual.{i}.body.5",
            f"in{n}_2": f"residual.{i}.body.6",
        }
    return names


_PARAM_NAMES = {"weight": "weight", "bias": "bias", "scale": "weight", "shift": "bias"}


def checkpoint_from_npy_folder(style: Style, folder: Path):  # -> Checkpoint
    """Map the reference port's per-layer `.npy` files onto a `Generator` checkpoint."""
    import numpy as np
    import torch

    from cartoonize.model import Checkpoint, Generator, GeneratorConfig, ModelIO

    config = GeneratorConfig(norm_eps=style.norm_eps)
    modules = reference_to_generator_names(config.residual_blocks)
    state = {}
    for file in style.files:
        layer, param, _ = file.split(".")
        state[f"{modules[layer]}.{_PARAM_NAMES[param]}"] = torch.from_numpy(np.load(folder / file))
    expected = Generator(config).state_dict()
    if state.keys() != expected.keys():
        raise CartoonizeError(f"style {style.name}: the weight files do not cover the generator")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CartoonizeError(
                f"style {style.name}: {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    io = ModelIO(channel_order=style.channel_order, style=style.name, licence=LICENCE_NOTE)
    return Checkpoint(state, config, io, {"source": f"{REPOSITORY}@{COMMIT}/{WEIGHTS_DIR}/{style.name}"})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ProgressHook = Callable[[str, int], None]  # (file name, bytes just received)


def _download(url: str, dest: Path, on_bytes: ProgressHook) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            while block := response.read(1 << 16):
                out.write(block)
                on_bytes(dest.name, len(block))
    except urllib.error.HTTPError as exc:
        raise CartoonizeError(f"download failed: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CartoonizeError(f"download failed: {url} ({reason})") from None


def pull_style(name: str, on_bytes: ProgressHook | None = None, force: bool = False) -> Path:
    """Download, verify and convert one style into the cache; return the checkpoint's path."""
    style = get_style(name)
    target = style_checkpoint_path(style.name)
    if target.exists() and not force:
        return target
    cache_folder(target.parent.name)  # made, or one line saying why it cannot be
    base = weights_url()
    scratch = Path(tempfile.mkdtemp(prefix=f".{style.name}-", dir=target.parent))
    try:
        for file, digest in style.files.items():
            _download(style.url(base, file), scratch / file, on_bytes or (lambda _f, _n: None))
            actual = sha256_of(scratch / file)
            if actual != digest:
                raise CartoonizeError(
                    f"style {style.name}: {file} failed its sha256 check (got {actual[:12]}…, "
                    f"expected {digest[:12]}…); the source at {base} is corrupt or changed"
                )
        checkpoint_from_npy_folder(style, scratch).save(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def style_checkpoint(name: str, on_bytes: ProgressHook | None = None) -> Path:
    """The cached checkpoint of a style, pulled on first use."""
    return pull_style(name, on_bytes)
