"""Frame stages: what happens to a frame between the engine and the encoder (exposure, temporal
stability, upsampling). The video, image and webcam pipelines all run frames through them here,
rather than each repeating the logic."""
