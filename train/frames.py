"""Training images from a video file: frames sampled at a chosen rate, cached beside a manifest.

`--photos clip.mp4` and `--cartoons episode.mkv` take a video where a folder is expected. Its frames
are decoded with PyAV, one every 1/rate seconds of the video's own timestamps, and written (JPEG,
quality 95) to a cache folder, `<video folder>/.cartoonize-frames/<video name>/` unless told
otherwise, beside a manifest. A second run with the same video (same size and modification time) and
the same sampling reuses them without decoding. Two kinds of frame are skipped:

- near-duplicates: a frame that hardly differs from the last one kept (anime holds drawings for
  many frames, and a still shot would otherwise fill the set with one picture);
- blends: the frames of a cross-fade (or a fade to black) between two shots, which are neither
  shot. A frame that is the average of its neighbours a few frames before and after, while those
  two differ clearly, is the middle of a linear mix; motion does not look like that (an average of
  two moved pictures shows both, a moving frame shows one).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.files import write_atomic
from train.config import check_frame_rate
from train.data import write_image

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv"}
)
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
THUMB = (96, 54)  # the grey thumbnail every comparison runs on: cheap, and blind to grain


@dataclass(frozen=True)
class FrameSampling:
    rate: float = 2.0  # frames per second of video: consecutive samples are far enough apart to differ
    duplicate: float = 2.5  # mean |difference| (grey levels, thumbnail) to the last kept frame below
    # which a frame is a near-duplicate: above video noise (~1), below a small motion (~5-10)
    blend_gap: int = 3  # neighbours this many frames before and after a frame judge whether it is a mix
    blend_change: float = 6.0  # ... and only when those two differ by at least this much
    blend_residual: float = 0.25  # a mix: |frame - mean(neighbours)| below this share of their difference

    def __post_init__(self) -> None:
        check_frame_rate(self.rate)  # the sampler steps by 1 / rate: 0 or less would never end


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class FrameSet:
    folder: Path  # the sampled frames, a folder of images like any other
    kept: int
    duplicates: int  # skipped as near-duplicates
    blends: int  # skipped as cross-fade frames
    decoded: bool  # False: reused from the cache


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def default_cache(video: Path) -> Path:
    return video.parent / ".cartoonize-frames" / video.name


def _thumb(frame) -> np.ndarray:
    return frame.to_ndarray(width=THUMB[0], height=THUMB[1], format="gray").astype(np.float32)


def _upright_rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB, turned upright by the display matrix (a phone's portrait clip)."""
    rgb = frame.to_ndarray(format="rgb24")
    k = int(round((frame.rotation or 0) / 90.0)) % 4  # degrees counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def is_blend(before: np.ndarray, frame: np.ndarray, after: np.ndarray, sampling: FrameSampling) -> bool:
    """True where `frame` is (close to) the average of `before` and `after`, which differ clearly."""
    change = float(np.abs(after - before).mean())
    if change < sampling.blend_change:
        return False
    residual = float(np.abs(frame - (before + after) / 2).mean())
    return residual < sampling.blend_residual * change


def sample_frames(
    video: Path,
    cache: Path | None = None,
    sampling: FrameSampling = FrameSampling(),
    progress: Callable[[float, float], None] | None = None,
) -> FrameSet:
    """Sample `video` into `cache` (or reuse it); `progress(seconds_done, seconds_total)`."""
    import av

    folder = cache or default_cache(video)
    manifest_path = folder / MANIFEST
    key = {"version": MANIFEST_VERSION, "source": _stamp(video), "sampling": asdict(sampling)}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            manifest = {}
        if {k: manifest.get(k) for k in key} == key and all(
            (folder / f["file"]).exists() for f in manifest["frames"]
        ):
            s = manifest["skipped"]
            return FrameSet(folder, len(manifest["frames"]), s["duplicates"], s["blends"], decoded=False)
    try:
        if folder.exists():  # an outdated sampling: only what we wrote goes
            for old in folder.glob("frame_*.jpg"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CartoonizeError(
            f"cannot write the frame cache {folder} ({exc.strerror}); pass --frame-cache DIR"
        ) from None

    try:
        container = av.open(str(video))
    except Exception as exc:  # PyAV's errors: not a video, damaged, unknown codec
        raise CartoonizeError(f"cannot open the video {video} ({type(exc).__name__}: {exc})") from None
    frames: list[dict] = []
    duplicates = blends = 0
    with container:
        if not container.streams.video:
            raise CartoonizeError(f"{video} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = (
            float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        )
        gap = sampling.blend_gap
        recent: deque[np.ndarray] = deque(maxlen=gap)  # thumbnails of the last `gap` frames
        pending: list[tuple[int, float, np.ndarray, np.ndarray, np.ndarray]] = []  # waiting for `after`
        last_kept: np.ndarray | None = None
        next_time: float | None = None

        def decide(time: float, image: np.ndarray, thumb: np.ndarray, before: np.ndarray | None,
                   after: np.ndarray | None) -> None:  # fmt: skip
            nonlocal duplicates, blends, last_kept
            if last_kept is not None and float(np.abs(thumb - last_kept).mean()) < sampling.duplicate:
                duplicates += 1
                return
            if before is not None and after is not None and is_blend(before, thumb, after, sampling):
                blends += 1
                return
            name = f"frame_{len(frames):06d}.jpg"
            write_image(folder / name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            frames.append({"file": name, "time": round(time, 4)})
            last_kept = thumb

        index = 0
        try:
            for frame in container.decode(stream):
                thumb = _thumb(frame)
                time = (
                    float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                )
                while pending and pending[0][0] + gap <= index:  # its `after` neighbour is this frame
                    _, t, image, th, before = pending.pop(0)
                    decide(t, image, th, before, thumb)
                if next_time is None:
                    next_time = time
                if time + 1e-6 >= next_time:
                    before = recent[0] if len(recent) == recent.maxlen else None
                    pending.append((index, time, _upright_rgb(frame), thumb, before))
                    while next_time <= time + 1e-6:
                        next_time += 1.0 / sampling.rate
                    if progress:
                        progress(time, total)
                recent.append(thumb)
                index += 1
        except av.error.FFmpegError as exc:
            if not index:
                raise CartoonizeError(f"cannot decode {video} ({exc})") from None
            # a damaged tail: keep what decoded
        for _, t, image, th, _before in pending:  # the last frames have no `after`: no blend test
            decide(t, image, th, None, None)
    if not frames:
        raise CartoonizeError(f"no frames could be sampled from {video}")
    manifest = {**key, "frames": frames, "skipped": {"duplicates": duplicates, "blends": blends}}
    write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    return FrameSet(folder, len(frames), duplicates, blends, decoded=True)
