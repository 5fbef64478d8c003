"""Backends behind one contract (`runners.base.Runner`): uint8 (N, H, W, 3) RGB frames in, the same
shape out. One module a backend: torch, onnxruntime, aoti (AOTInductor), tensorrt; `device` holds
what the CUDA-tensor runners share. Which runner serves a request is `cartoonize.choose`."""
