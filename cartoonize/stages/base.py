"""The frame-stage contract and the chain the pipelines run (see `cartoonize.stages`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class FrameStage(Protocol):
    name: str  # short, for the summary line ("exposure", "stabilize", ...)

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        """source: the upright input frame at the output size; cartoon: the frame so far (the
        engine's output, or a previous stage's). Both uint8 (H, W, 3) RGB; returns the same.
        at: the frame's time in seconds (its presentation time in a video, its capture time from
        a camera; None where there is none, a photo): a stage that follows the picture over
        time (stabilization) keeps its memory in seconds, so it spans the same time at 10 fps,
        30 fps and with dropped frames (`stages.clock`)."""
        ...

    def reset(self) -> None:
        """Forget any state carried from earlier frames. (A stage that detects scene cuts sets
        `scene_cut` on the frame that starts one; the chain then resets the stages after it.)"""
        ...


@dataclass(frozen=True)
class StageOptions:
    """What the user asked for. `raw` turns every stage off: the network's per-frame output as is."""

    raw: bool = False
    temporal: bool = True  # stages that carry state across frames (video, webcam); off for photos
    exposure: bool = True  # give each frame the source's luma mean and contrast (stages.exposure)
    stabilize: bool = True  # blend along the source's optical flow (stages.stabilize); needs temporal
    bars: bool = True  # letterbox and pillarbox bars stay the source's black (stages.bars)
    infer_side: int | None = None  # the network runs at this longer side; upsampled back (stages.upsample)
    # where the runner runs: on "cuda", stabilization, exposure and bars run there too (stages.device)
    device: str = "cpu"


class StageChain:
    """Stages run in order on each frame; an empty chain returns the cartoon untouched."""

    def __init__(self, stages: list[FrameStage]) -> None:
        self.stages = list(stages)

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        for index, stage in enumerate(self.stages):
            cartoon = stage(source, cartoon, at)
            if getattr(stage, "scene_cut", False):  # a stage that sees cuts (stabilize) found one:
                for later in self.stages[index + 1 :]:  # the later ones start the new shot afresh
                    later.reset()
        return cartoon

    def ahead(self, source: np.ndarray) -> None:
        """A frame's source as soon as it is decoded, in presentation order, before the stages see
        it: a stage whose work on the source alone can start early (`stages.device`) starts it."""
        for stage in self.stages:
            early = getattr(stage, "ahead", None)
            if early is not None:
                early(source)

    def takes_device_frames(self, device: str) -> bool:
        """Whether the engine's output may reach this chain as `runners.base.DeviceFrame`s on
        `device`, left where the runner ran it: the chain's only stage runs on that device and
        takes them (`stages.device.DeviceStages` on the runner's GPU)."""
        if len(self.stages) != 1 or not getattr(self.stages[0], "takes_device_frames", False):
            return False
        import torch

        return getattr(self.stages[0], "device", None) == torch.device(device)

    def planes(
        self, source: np.ndarray, cartoon: object, at: float | None, spec: object
    ) -> tuple[np.ndarray, ...]:
        """The GPU frame path (`pipelines.video`): the chain's one stage, on the runner's device and
        taking its frames there (`takes_device_frames`), gives each finished frame as the encoder's
        4:2:0 planes of `spec` (a `media.yuv.YuvSpec`), converted on the device
        (`stages.device.DeviceStages.planes`). `source` is the decoder's upright luma, for the flow."""
        stage = self.stages[0] if len(self.stages) == 1 else None
        if stage is None or not getattr(stage, "takes_device_frames", False):
            raise TypeError(f"the chain {self.describe()} gives RGB frames, not planes")
        return stage.planes(source, cartoon, at, spec)  # type: ignore[attr-defined]

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()

    def describe(self) -> str:
        return " + ".join(stage.name for stage in self.stages) or "none"

    def __bool__(self) -> bool:
        return bool(self.stages)


def _on_gpu(device: str) -> bool:
    """Whether torch can run stages on `device` ("cuda", "cuda:1"; an onnxruntime runner on a GPU
    may come with a torch that has no CUDA, and the stages then stay on the CPU)."""
    if not device.startswith("cuda"):
        return False
    import torch

    return torch.cuda.is_available()


def build_stages(options: StageOptions) -> StageChain:
    """The chain for these options, in the order the stages must run:

    1. upsampling (`infer_side`): the cartoon back to the output size, guided by the source; it
       runs even with `raw` (without it a low-resolution cartoon would not fit the output), and
       first, so every later stage (exposure, stabilization) works at the output resolution;
    2. the stages that change the look or carry state across frames, which `raw` turns off;
       the bars last, since exposure's tone map would lift a black bar again. With a GPU
       `device` (video, webcam), all of them, the upsampling included, run there as one stage
       (`stages.device`)."""
    stages: list[FrameStage] = []
    if _on_gpu(options.device) and options.temporal:
        wanted = not options.raw and (options.stabilize or options.exposure or options.bars)
        if wanted or options.infer_side:
            from cartoonize.stages.device import DeviceStages

            # the same stages, in the same order, on the runner's GPU, where the engine leaves its
            # frames (runners.base.DeviceFrame): one download a frame; the upsampling there too
            stage = DeviceStages(options.device, wanted and options.stabilize, wanted and options.exposure,
                                 wanted and options.bars, upsample=bool(options.infer_side))  # fmt: skip
            return StageChain([stage])
    if options.infer_side:
        from cartoonize.stages.upsample import GuidedUpsample

        stages.append(GuidedUpsample())
    if options.raw:
        return StageChain(stages)
    if options.temporal and options.stabilize:
        from cartoonize.stages.stabilize import Stabilize

        stages.append(Stabilize())  # before exposure: the blend works on the norm-equalised output
    if options.exposure:
        from cartoonize.stages.exposure import Exposure

        stages.append(Exposure(temporal=options.temporal))
    if options.bars:
        from cartoonize.stages.bars import Bars

        stages.append(Bars())
    return StageChain(stages)
