"""cuDNN's convolution algorithms, timed for the one size a job runs at.

PyTorch leaves `torch.backends.cudnn.benchmark` off: each convolution runs the algorithm cuDNN's
heuristics pick for its shape. With it on, the first call at a new shape times the candidate
algorithms and keeps the fastest for the rest of the process (PyTorch's performance tuning guide
recommends it for convolutional networks whose input size does not change; ONNX Runtime's CUDA
provider searches exhaustively by default). A video or a webcam runs one frame size for the whole
job, so the timing (a second or two the first time) is paid once; photos of many sizes would pay
it at each new size, so only jobs that give their frame size turn it on (`choose.runner_for`).
The eager and compiled engines (the compiled graph calls cuDNN for its convolutions) and the
AOTInductor engines all take it; TensorRT times its own tactics when it builds.

`CARTOONIZE_CUDNN_BENCHMARK=0` keeps the heuristics (to measure what the timing gives:
`python -m tests.gpu_check`, step `bench-1080x1920-heuristics`).
"""

from __future__ import annotations

import os

ENV = "CARTOONIZE_CUDNN_BENCHMARK"


def wanted() -> bool:
    return os.environ.get(ENV, "1") != "0"


def time_algorithms() -> bool:
    """Turn cuDNN's algorithm timing on for this process, unless `CARTOONIZE_CUDNN_BENCHMARK=0`
    says not to (then the setting is left as it is). Whether it is on."""
    import torch

    if wanted():
        torch.backends.cudnn.benchmark = True
    return bool(torch.backends.cudnn.benchmark)
