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

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()

    def describe(self) -> str:
        return " + ".join(stage.name for stage in self.stages) or "none"

    def __bool__(self) -> bool:
        return bool(self.stages)


def build_stages(options: StageOptions) -> StageChain:
    """The chain for these options, in the order the stages must run:

    1. upsampling (`infer_side`): the cartoon back to the output size, guided by the source; it
       runs even with `raw` (without it a low-resolution cartoon would not fit the output), and
       first, so every later stage (exposure, stabilization) works at the output resolution;
    2. the stages that change the look or carry state across frames, which `raw` turns off;
       the bars last, since exposure's tone map would lift a black bar again."""
    stages: list[FrameStage] = []
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
