"""The four public CartoonGAN styles: where they live, how to fetch, verify and convert them.

The authors' generators are published as per-layer `.npy` files (the reference PyTorch port's
parameter names) in mnicnc404/CartoonGan-tensorflow at a pinned commit. `pull_style` downloads
every file into a scratch folder, checks each sha256 against the list shipped with this package,
maps the names onto `Generator`'s modules and writes one checkpoint into the cache. Nothing reaches
the cache unless every file verified.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
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


def no_room(exc: BaseException, folder: Path, needs: int) -> CartoonizeError | None:
    """The one-line error for a write into the cache folder `folder` that failed for want of room
    (a full disk, a quota) where the work `needs` that many bytes, or None where `exc` is something
    else. torch.save's zip writer says only "unexpected pos" (a RuntimeError): that is taken for a
    full disk where less than `needs` is left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = exc.strerror or os.strerror(exc.errno)
    elif isinstance(exc, RuntimeError) and _free(folder) < needs:
        reason = os.strerror(errno.ENOSPC)
    else:
        return None
    return CartoonizeError(
        f"cannot write the cache folder {folder} ({reason}; this needs about {_size(needs)}): free "
        "some space, or set CARTOONIZE_CACHE to a folder on a disk with room"
    )


def _free(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def weights_url() -> str:
    """Where the style weights come from: CARTOONIZE_WEIGHTS_URL, a URL (https://..., file:///...)
    or a folder holding the mirror (a path, made a file:// URL), else GitHub."""
    value = os.environ.get("CARTOONIZE_WEIGHTS_URL") or DEFAULT_WEIGHTS_URL  # set empty: unset
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
        close = difflib.get_close_matches(name.lower(), STYLES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CartoonizeError(
            f"unknown style {name!r}; {hint}choose one of {', '.join(STYLES)} (`cartoonize styles list`)"
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

STALL_TIMEOUT_S = 60.0  # a server that sends nothing for this long (connecting, or mid-file) has failed
# A server that sends a byte every few seconds never stalls that long, and kept a pull going for
# hours (a style is ~45 MB). Slower than MIN_RATE over the last RATE_WINDOW_S, the pull fails: at
# the floor a style takes about 75 min; the window is long enough that a minute's outage of an
# otherwise usable link is not taken for a trickle.
MIN_RATE = 10_000  # bytes/s
RATE_WINDOW_S = 120.0
STYLE_BYTES = 44_600_000  # a style's 94 files: 11,129,667 float32 parameters and the .npy headers


class _RateFloor:
    """The bytes of one pull over time; `slow()` says how slow, once the last RATE_WINDOW_S (the
    whole pull, across files: one file a minute of a few hundred bytes is a trickle too) brought
    less than MIN_RATE."""

    def __init__(self) -> None:
        self.min_rate, self.window = MIN_RATE, RATE_WINDOW_S  # as set now (a test sets them small)
        self.start = time.monotonic()
        self.total = 0
        self.marks: deque[tuple[float, int]] = deque([(self.start, 0)])  # (time, bytes so far)

    def slow(self, received: int) -> str | None:
        now = time.monotonic()
        self.total += received
        if now - self.marks[-1][0] < self.window / 64:  # a few dozen marks a window, however fast
            self.marks[-1] = (self.marks[-1][0], self.total)
        else:
            self.marks.append((now, self.total))
        while len(self.marks) > 1 and self.marks[1][0] <= now - self.window:
            self.marks.popleft()  # the first mark is the last one at or before the window's start
        if now - self.start < self.window:
            return None
        since = self.total - self.marks[0][1]
        if since >= self.min_rate * self.window:
            return None
        return (
            f"{_size(since)} in the last {self.window:g} s ({_size(since / self.window)}/s), under the "
            f"{_size(self.min_rate)}/s that brings a style's {_size(STYLE_BYTES)} within "
            f"{_duration(STYLE_BYTES / self.min_rate)}"
        )


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _size(n: float) -> str:
    """Bytes as people read them: '44.6 MB', '12.0 kB', '60 B', '0.5 B'."""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B" if n >= 10 else f"{n:.1f} B"


def _download(url: str, dest: Path, on_bytes: ProgressHook, floor: _RateFloor | None = None) -> None:
    """`url` into `dest`, or a one-line error naming the URL and what to do. A body shorter than
    its Content-Length (the connection closed early, cleanly) is an error here, not a sha256
    mismatch blamed on the source; so is a web page where a file was asked for (a captive portal,
    a proxy's login page), and a server slower than the pull's `floor` (a trickle)."""
    again = "try again, or set CARTOONIZE_WEIGHTS_URL to a mirror of the weights"
    floor = floor or _RateFloor()
    try:
        with urllib.request.urlopen(url, timeout=STALL_TIMEOUT_S) as response, dest.open("wb") as out:
            if response.headers.get_content_type() == "text/html":
                raise CartoonizeError(
                    f"download failed: {url} answered with a web page, not the file (a captive portal "
                    "or a proxy's login page?): log in to the network in a browser, or set "
                    "CARTOONIZE_WEIGHTS_URL to a mirror of the weights"
                )
            expected = response.headers.get("Content-Length")
            received = 0
            # read1: what has come, at once (read(n) waits for all n bytes: a trickle was never seen)
            read = getattr(response, "read1", response.read)
            slow = floor.slow(0)  # an answer that took minutes to start counts too
            while slow is None and (block := read(1 << 16)):
                out.write(block)
                received += len(block)
                on_bytes(dest.name, len(block))
                slow = floor.slow(len(block))
            if slow is not None:
                raise CartoonizeError(
                    f"download failed: {url} is too slow: {slow}; try again later, or set "
                    "CARTOONIZE_WEIGHTS_URL to another mirror, or to a folder of the weights fetched elsewhere"
                )
            if expected is not None and expected.isdigit() and received < int(expected):
                raise CartoonizeError(
                    f"download failed: {url} (the connection closed after {received} of {expected} bytes); {again}"
                )
    except urllib.error.HTTPError as exc:
        hint = (
            "the mirror does not have it: check CARTOONIZE_WEIGHTS_URL (it names the folder that holds "
            f"{REPOSITORY}/{COMMIT}/...)"
            if exc.code == 404
            else "the server failed: try again later, or set CARTOONIZE_WEIGHTS_URL to a mirror of the weights"
            if exc.code >= 500
            else again
        )
        raise CartoonizeError(f"download failed: {url} answered HTTP {exc.code}; {hint}") from None
    except TimeoutError:  # socket.timeout: the server stalled
        raise CartoonizeError(
            f"download failed: {url} (no data for {STALL_TIMEOUT_S:g} s); {again}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # writing it here failed, not downloading it
            raise
        reason = getattr(exc, "reason", None) or exc
        raise CartoonizeError(f"download failed: {url} ({reason}); {again}") from None
    except http.client.HTTPException as exc:  # IncompleteRead, a malformed answer: not OSErrors
        raise CartoonizeError(f"download failed: {url} ({type(exc).__name__}); {again}") from None


def _digest_path(checkpoint: Path) -> Path:
    """The sha256 of a cached checkpoint, recorded beside it when it was saved."""
    return checkpoint.with_name(checkpoint.name + ".sha256")


def style_cached(name: str) -> bool:
    """Whether the style is in the cache, whole (`styles list`; a pull that has nothing to do)."""
    return _intact(style_checkpoint_path(name))


def _intact(checkpoint: Path) -> bool:
    """Whether the cached checkpoint is there and has the bytes it was saved with (a bit flipped,
    a file cut short or emptied is not). One cached before digests were recorded is trusted."""
    if not checkpoint.is_file():
        return False
    try:
        recorded = _digest_path(checkpoint).read_text().strip()
    except FileNotFoundError:
        return True
    return recorded == sha256_of(checkpoint)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """`folder` held by one process at a time (on POSIX; the lock is on the folder itself, so it
    leaves no file behind): jobs that first use a style together download it once, the others
    wait and then find it cached."""
    try:
        import fcntl
    except ImportError:  # Windows: each downloads; the renames still leave one whole checkpoint
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def pull_style(name: str, on_bytes: ProgressHook | None = None, force: bool = False) -> Path:
    """Download, verify and convert one style into the cache; return the checkpoint's path. A
    cached one that no longer has the bytes it was saved with is downloaded again."""
    style = get_style(name)
    target = style_checkpoint_path(style.name)
    if not force and _intact(target):
        return target
    damaged = target.exists() and not force
    try:
        folder = cache_folder(target.parent.name)  # made, or one line saying why it cannot be
        with _locked(folder):
            if not force and _intact(target):  # another process pulled it while this one waited
                return target
            _fetch(style, target, on_bytes or (lambda _f, _n: None))
    except CartoonizeError as exc:
        if damaged:
            raise CartoonizeError(
                f"the cached {target} is damaged, and pulling it again failed: {exc}"
            ) from None
        raise
    return target


def _fetch(style: Style, target: Path, on_bytes: ProgressHook) -> None:
    """Every file of `style` into a scratch folder beside `target`, each checked, converted and
    saved there; then the digest and the checkpoint renamed into place. An error, Ctrl-C or a
    kill leaves nothing under the cache's names (a scratch folder a killed run left is swept by
    the next one, as output folders are)."""
    from cartoonize.media.files import process_tag, sweep_leftovers

    sweep_leftovers(target.parent)
    base = weights_url()
    tag = f".{style.name}.cartoonize-{process_tag()}.partial-"
    scratch = Path(tempfile.mkdtemp(prefix=tag, dir=target.parent))
    try:
        floor = _RateFloor()  # over the whole pull
        for file, digest in style.files.items():
            _download(style.url(base, file), scratch / file, on_bytes, floor)
            actual = sha256_of(scratch / file)
            if actual != digest:
                raise CartoonizeError(
                    f"style {style.name}: {file} failed its sha256 check (got {actual[:12]}…, "
                    f"expected {digest[:12]}…); the source at {base} is corrupt or changed: "
                    "try again, or set CARTOONIZE_WEIGHTS_URL to another mirror"
                )
        saved = scratch / target.name
        checkpoint_from_npy_folder(style, scratch).save(saved)
        (scratch / "sha256").write_text(sha256_of(saved) + "\n")
        (scratch / "sha256").replace(_digest_path(target))
        saved.replace(target)
    except (OSError, RuntimeError) as exc:  # the disk filled up: the files and the checkpoint take ~90 MB
        if (full := no_room(exc, target.parent, 2 * STYLE_BYTES)) is None:
            raise
        raise full from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def style_checkpoint(name: str, on_bytes: ProgressHook | None = None) -> Path:
    """The cached checkpoint of a style, pulled on first use."""
    return pull_style(name, on_bytes)
