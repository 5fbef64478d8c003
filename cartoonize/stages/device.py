"""The frame stages on the runner's GPU: stabilization, exposure and bars as torch operations.

The numpy stages (`stages.stabilize`, `stages.exposure`, `stages.bars`) take about 110 ms per 720p
frame on one CPU core. On an H200 the compiled network takes 5 ms per 720p frame, and with those
stages `cartoonize video` ran at 6.6 fps (measured). So where the runner is on a GPU, the same
arithmetic runs here as tensor operations on that device: each frame passes the stages and comes
back once. From a TensorRunner the frame and its cartoon arrive still on the device
(`runners.base.DeviceFrame`: the stage's stream waits on the batch's CUDA event, nothing is copied);
numpy frames (other runners, `--infer-side`) are uploaded here.

- Same constants, same formulas. The shared constants and scalar rules are imported from the numpy
  modules, whose docstrings say why each is what it is. `tests/stages/test_device.py` runs these
  stages with torch on the CPU against the numpy chain.
- The optical flow stays OpenCV's DIS on the CPU at the flow's working size (`stages.flow`). It
  depends on the source alone, so the pipeline hands each decoded frame to `ahead()`, and the
  flow from the previous frame is computed on a few CPU threads while the network runs. Only
  what depends on the output runs in order, on the GPU: the flow scaled up to the frame, the
  warps, the scene-cut and agreement tests, and the blend.
- Differences from the numpy stages, all below a level: luma is kept in float (not rounded to
  uint8) for the agreement test; the warp is exact bilinear (OpenCV's remap rounds positions to
  1/32 pixel); the stabilized frame goes to exposure in float, without rounding in between.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from cartoonize.media.yuv import YuvSpec, planes_on_host
from cartoonize.runners.base import DeviceFrame
from cartoonize.stages.bars import extent_from, paste_bars
from cartoonize.stages.clock import FrameClock, kept
from cartoonize.stages.exposure import (
    _CB,
    _CR,
    _Y,
    MIN_STD,
    NORMAL_CONTRAST,
    RunningOffset,
    exposure_target,
)
from cartoonize.stages.flow import FlowEstimator, FlowPair, gray
from cartoonize.stages.stabilize import AGREE, CONTRAST_FLOOR, CUT_RESIDUAL, FLAT_JUMP, MEMORY
from cartoonize.stages.upsample import GuidedUpsample, guided_upsample_tensor

AHEAD_LIMIT = 256  # flows started ahead and not yet used; older ones are dropped (a frame skipped)

_pool: ThreadPoolExecutor | None = None  # one for the process: a job per file must not leak threads
_pool_lock = threading.Lock()


def flow_pool() -> ThreadPoolExecutor:
    """The CPU threads that compute flows ahead. DIS takes ~6 ms per direction at 360 px: a
    quarter of the cores (at most 4) keeps up with 150 fps and leaves the rest to the decoder and
    the encoder."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, min(4, (os.cpu_count() or 2) // 4)), thread_name_prefix="flow")
        return _pool


@functools.lru_cache(maxsize=8)
def _weights(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BT.601 luma and chroma weights on `device`, uploaded once (not three copies every frame)."""
    return tuple(torch.from_numpy(w).to(device) for w in (_Y, _CB, _CR))  # type: ignore[return-value]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` (H, W) or (H, W, C) sampled at x + flow(x), bilinear, the border repeated outside
    the frame: `stages.flow.warp` on the device."""
    h, w = flow.shape[:2]
    xs = torch.arange(w, device=flow.device, dtype=torch.float32)
    ys = torch.arange(h, device=flow.device, dtype=torch.float32)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    gx = (xs[None, :] + flow[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys[:, None] + flow[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    planes = image[None, None] if image.ndim == 2 else image.permute(2, 0, 1)[None]
    out = F.grid_sample(
        planes, torch.stack([gx, gy], -1)[None], mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[0, 0] if image.ndim == 2 else out[0].permute(1, 2, 0)


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy array on `device`, without the host waiting: on CUDA through pinned memory and an
    asynchronous copy on the current stream (a copy from pageable memory makes the host wait for
    the stream's queued work first)."""
    host = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _normalised(g: torch.Tensor) -> torch.Tensor:
    return (g - g.mean()) / g.std(correction=0).clamp(min=CONTRAST_FLOOR)


def _small(g: torch.Tensor, side: int = 64) -> torch.Tensor:
    h, w = g.shape
    scale = min(1.0, side / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(g[None, None], size=size, mode="area")[0, 0]


def _blur5(g: torch.Tensor) -> torch.Tensor:
    """A 5x5 box mean, the border mirrored without repeating the edge (OpenCV's `blur`)."""
    mode = "reflect" if min(g.shape) > 2 else "replicate"
    return F.avg_pool2d(F.pad(g[None, None], (2, 2, 2, 2), mode=mode), 5, stride=1)[0, 0]


class DeviceStabilize:
    """`stages.stabilize.Stabilize` with the per-pixel work on the device and the flow computed
    ahead on CPU threads."""

    name = "stabilize"

    def __init__(self, memory: float = MEMORY, flow_side: int = 360, preset: str = "medium") -> None:
        if not memory > 0.0:
            raise ValueError("memory must be a positive number of seconds")
        self.memory = memory
        self.flow_side, self.preset = flow_side, preset
        self._clock = FrameClock()
        self._local = threading.local()  # one DIS per thread: an OpenCV algorithm object is not shared
        self._lock = threading.Lock()
        self._ahead: OrderedDict[int, tuple[np.ndarray, np.ndarray, Future[FlowPair]]] = OrderedDict()
        self._last_ahead: np.ndarray | None = None
        self.used_ahead = 0  # frames whose flow was ready from `ahead` (for tests and reports)
        self.cuts = 0
        self.scene_cut = False
        self.reset()

    def reset(self) -> None:
        # source, luma, output, and the source's channel means and luma std (the flat-cut test)
        self._previous: tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None
        self._previous = None
        self._clock.reset()

    def _flow(self, previous: np.ndarray, current: np.ndarray) -> FlowPair:
        """The source-only part, at the flow's working size (any thread)."""
        estimator = getattr(self._local, "estimator", None)
        if estimator is None:
            estimator = self._local.estimator = FlowEstimator(self.preset, self.flow_side)
        return estimator.pair_small(estimator.small(gray(previous)), estimator.small(gray(current)))

    def ahead(self, source: np.ndarray) -> None:
        """Start the flow from the frame given last to this one. Called in presentation order as
        frames are decoded; a frame that then reaches the stage in another order, or never, costs
        nothing but the work: the stage computes what it does not find."""
        previous, self._last_ahead = self._last_ahead, source
        if previous is None or previous.shape != source.shape:
            return
        future = flow_pool().submit(self._flow, previous, source)
        with self._lock:
            self._ahead[id(source)] = (previous, source, future)
            while len(self._ahead) > AHEAD_LIMIT:
                self._ahead.popitem(last=False)

    def _pair(self, previous: np.ndarray, current: np.ndarray) -> FlowPair:
        with self._lock:
            entry = self._ahead.pop(id(current), None)
        # the objects themselves are compared: an id is only unique while its object lives
        if entry is not None and entry[0] is previous and entry[1] is current:
            self.used_ahead += 1
            return entry[2].result()
        return self._flow(previous, current)

    def __call__(
        self, source: np.ndarray, src: torch.Tensor, car: torch.Tensor, at: float | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """source: the numpy frame (for the flow); src, car: float (H, W, 3) on the device. Gives
        the stabilized frame and the scene-cut residual, both still on the device (None: no
        previous frame to compare with): where the residual is over `CUT_RESIDUAL` the frame is
        `car` itself, as the numpy stage returns it on a cut. The caller reads the residual with
        whatever else it reads from the device and tells `cut()`; nothing here waits for the GPU."""
        strength = kept(self._clock.tick(at), self.memory)
        g = src @ _weights(src.device)[0]
        means, std = src.mean((0, 1)), g.std(correction=0)
        self.scene_cut = False
        previous, self._previous = self._previous, None
        if previous is None or previous[0].shape != source.shape:
            self._previous = (source, g, car, means, std)
            return car, None
        prev_source, prev_g, prev_out, prev_means, prev_std = previous
        small = self._pair(prev_source, source)
        h, w = g.shape
        backward, trusted = upload(small.backward, g.device), upload(small.trusted, g.device)
        if backward.shape[:2] != (h, w):
            fy, fx = h / backward.shape[0], w / backward.shape[1]
            backward = F.interpolate(backward.permute(2, 0, 1)[None], size=(h, w), mode="bilinear")[0]
            backward = torch.stack([backward[0] * fx, backward[1] * fy], -1)
            trusted = F.interpolate(trusted[None, None].float(), size=(h, w), mode="nearest")[0, 0] > 0
        now, then = _normalised(g), _normalised(warp(prev_g, backward))
        residual = (_small(now) - _small(then)).abs().mean()
        # between two flat frames, a jump of a channel's mean (`stages.stabilize.flat_residual`)
        jump = (means - prev_means).abs().max() * (CUT_RESIDUAL / FLAT_JUMP)
        flat = torch.maximum(std, prev_std) < CONTRAST_FLOOR
        residual = torch.maximum(residual, torch.where(flat, jump, torch.zeros_like(jump)))
        agree = torch.exp(-((_blur5(now - then) / AGREE) ** 2))
        weight = (strength * agree * trusted)[..., None]
        out = car + weight * (warp(prev_out, backward) - car)
        out = torch.where(residual > CUT_RESIDUAL, car, out)  # a cut starts the new shot afresh
        # the output kept in float: the recursion does not accumulate rounding
        self._previous = (source, g, out, means, std)
        return out, residual

    def cut(self, residual: float) -> bool:
        """The frame's residual, read: whether it was a scene cut (counted, and `scene_cut`)."""
        self.scene_cut = residual > float(np.float32(CUT_RESIDUAL))  # as the device compared it
        self.cuts += self.scene_cut
        return self.scene_cut


class DeviceExposure:
    """`stages.exposure.Exposure` (temporal) on the device. The tone map needs six statistics on
    the host: `statistics` queues them, the caller reads them (with anything else it reads in the
    same synchronisation) and hands them to `__call__`."""

    name = "exposure"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._offset = RunningOffset()

    @staticmethod
    def statistics(src: torch.Tensor, car: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(6,) on the device: the cartoon's luma mean and spread, the source's, the chroma means;
        and the cartoon's Y, Cb and Cr planes, which the tone map then changes."""
        wy, wcb, wcr = _weights(src.device)
        y_src, y, cb, cr = src @ wy, car @ wy, car @ wcb, car @ wcr
        stats = torch.stack([y.mean(), y.std(correction=0), y_src.mean(), y_src.std(correction=0), cb.mean(),
                             cr.mean()])  # fmt: skip
        return stats, (y, cb, cr)

    def __call__(self, planes: tuple[torch.Tensor, ...], stats: list[float]) -> torch.Tensor:
        """The tone-mapped RGB frame from the cartoon's `planes` and the six `stats`, read."""
        y, cb, cr = planes
        mean_y, std_y, mean_s, std_s, mean_cb, mean_cr = stats
        mean_c = max(mean_y, MIN_STD)
        # the running brightness offset (`exposure.brightness_offset`, `Exposure.__call__`)
        floor_s = max(mean_s, MIN_STD)
        own = math.log(max(exposure_target(floor_s, mean_c), MIN_STD) / floor_s)
        # the tone map (`exposure.match_exposure` with normal_contrast)
        target = exposure_target(mean_s, floor_s * math.exp(self._offset(own)))
        room = target / mean_c if target < mean_c else (255.0 - target) / max(255.0 - mean_c, MIN_STD)
        stretch = min(1.0, std_s / NORMAL_CONTRAST)
        gain = min(stretch, room)
        cb = mean_cb + stretch * (cb - mean_cb)
        cr = mean_cr + stretch * (cr - mean_cr)
        y_new = target + gain * (y - mean_c)
        keep = ((y_new.clamp(min=0.0) + 0.5) / (y + 0.5)).clamp(max=1.0)
        cb, cr = cb * keep, cr * keep
        return torch.stack(
            [y_new + 1.402 * cr, y_new - 0.344136 * cb - 0.714136 * cr, y_new + 1.772 * cb], -1
        )


class DeviceBars:
    """`stages.bars.Bars` on the device: the row and column means come back to find the bars (the
    rows' with whatever else the caller reads at the same time, `row_means`)."""

    name = "bars"

    def reset(self) -> None:
        pass  # nothing is carried across frames

    @staticmethod
    def row_means(src: torch.Tensor) -> torch.Tensor:
        """(H,) on the device: each row's mean luma."""
        return src.mean(1) @ _weights(src.device)[0]

    def __call__(self, src: torch.Tensor, car: torch.Tensor, rows: np.ndarray | None = None) -> torch.Tensor:
        """`rows`: `row_means(src)` already read (else read here)."""
        wy = _weights(src.device)[0]
        rows = self.row_means(src).cpu().numpy() if rows is None else rows
        extent = extent_from(rows, lambda top, end: (src[top:end].mean(0) @ wy).cpu().numpy())
        if not any(extent):
            return car
        return paste_bars(car.clone(), src, extent)


class DeviceStages:
    """Guided upsampling, stabilization, exposure and bars (those asked for, in that order) as one
    frame stage on a torch device: numpy frames in and out, one upload each way. With `upsample`
    (`--infer-side`), a cartoon smaller than its source is brought to the source's size first, as
    `stages.upsample.GuidedUpsample` does on the CPU. A scene cut found by the stabilization
    restarts exposure's running average, as `StageChain` does for the numpy stages. On the GPU
    frame path, `planes` gives each finished frame as the encoder's 4:2:0 planes."""

    def __init__(self, device: str, stabilize: bool = True, exposure: bool = True, bars: bool = True,
                 upsample: bool = False) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.upsample = GuidedUpsample() if upsample else None  # its radius and eps; run here
        self.stabilize = DeviceStabilize() if stabilize else None
        self.exposure = DeviceExposure() if exposure else None
        self.bars = DeviceBars() if bars else None
        parts = [s.name for s in (self.upsample, self.stabilize, self.exposure, self.bars) if s is not None]
        self.name = f"{' + '.join(parts)} (on {self.device.type})"
        self.scene_cut = False

    def ahead(self, source: np.ndarray) -> None:
        if self.stabilize is not None:
            self.stabilize.ahead(source)

    takes_device_frames = True  # the engine's output may come as a DeviceFrame (runners.base)

    def __call__(
        self, source: np.ndarray, cartoon: np.ndarray | DeviceFrame, at: float | None = None
    ) -> np.ndarray:
        """`cartoon` as a numpy frame (uploaded here, with the source), or as the runner's
        `DeviceFrame`: the frame the network saw and its cartoon, already on this device."""
        with torch.inference_mode():
            return self._finished(source, cartoon, at).cpu().numpy()

    def planes(
        self, source: np.ndarray, cartoon: DeviceFrame, at: float | None, spec: YuvSpec
    ) -> tuple[np.ndarray, ...]:
        """The GPU frame path (`pipelines.video`): the finished frame as the encoder's 4:2:0 planes
        of `spec` (Y, U, V, even sides), converted here and brought to the host in one copy.
        `source` is then the decoder's luma, upright (`stages.flow.luma_of_plane`), for the flow;
        the RGB frame the network saw comes in the `DeviceFrame`."""
        with torch.inference_mode():
            return planes_on_host(self._finished(source, cartoon, at), spec)

    def _finished(
        self, source: np.ndarray, cartoon: np.ndarray | DeviceFrame, at: float | None
    ) -> torch.Tensor:
        """The stages on the device: the finished frame, uint8 (H, W, 3), still there."""
        if isinstance(cartoon, DeviceFrame):
            src_u8, car_u8 = cartoon.take()
            src, car = src_u8.float(), car_u8.float()
        else:
            src, car = upload(source, self.device).float(), upload(cartoon, self.device).float()
        if car.shape != src.shape:  # --infer-side: the network ran on the frame shrunk
            if self.upsample is None:
                raise ValueError(
                    f"a {tuple(car.shape)} cartoon of a {tuple(src.shape)} frame needs upsample=True"
                )
            up = guided_upsample_tensor(src, car, self.upsample.radius, self.upsample.eps)
            car = up.mul_(255.0).round_().clamp_(0, 255).permute(1, 2, 0)  # as GuidedUpsample rounds it
        self.scene_cut = False
        residual = None
        if self.stabilize is not None:
            car, residual = self.stabilize(source, src, car, at)
        # the cut test's residual, exposure's statistics and the bars' row means come back in one
        # synchronisation (in that order)
        pending = [] if residual is None else [residual.reshape(1)]
        if self.exposure is not None:
            stats, planes = DeviceExposure.statistics(src, car)
            pending.append(stats)
        if self.bars is not None:
            pending.append(DeviceBars.row_means(src))
        values = torch.cat(pending).tolist() if pending else []
        if residual is not None and self.stabilize is not None:
            self.scene_cut = self.stabilize.cut(values.pop(0))
            if self.scene_cut and self.exposure is not None:
                self.exposure.reset()
        if self.exposure is not None:
            car = self.exposure(planes, values[:6])
            values = values[6:]
        if self.bars is not None:
            car = self.bars(src, car, np.asarray(values, dtype=np.float32))
        return (car + 0.5).clamp(0, 255).to(torch.uint8)

    def reset(self) -> None:
        for stage in (self.stabilize, self.exposure, self.bars):
            if stage is not None:
                stage.reset()
