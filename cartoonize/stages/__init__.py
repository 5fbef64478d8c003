"""Frame stages: what happens to a frame between the engine and the encoder (exposure, temporal
stability, upsampling, black bars). The video, image and webcam pipelines all run frames through one
`StageChain` built here from `StageOptions`, rather than each repeating the logic.

The contract (`stages.base.FrameStage`): a stage is called once per frame, in presentation order,
with the upright source frame and the cartoon so far, both uint8 (H, W, 3) RGB, and returns the new
cartoon. Temporal stages keep their state between calls; `reset()` forgets it (a seek, a new clip).
"""

from cartoonize.stages.base import FrameStage, StageChain, StageOptions, build_stages

__all__ = ["FrameStage", "StageChain", "StageOptions", "build_stages"]
