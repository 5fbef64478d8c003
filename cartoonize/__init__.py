"""cartoonize: photos, videos and a live webcam into cartoons, on NVIDIA GPUs or a laptop CPU."""

import os

__version__ = "0.1.0"

# ONNX Runtime 1.29 and later send usage telemetry to Microsoft from Linux and macOS too, and write
# a device identifier under ~/.cache/Microsoft when it is imported (where that cannot be written,
# a coloured warning in every log, `-q` or not). cartoonize runs ONNX Runtime on the user's frames
# on the user's machine: nothing is sent unless the user says so (ORT_DISABLE_TELEMETRY=0). It has
# to be set before onnxruntime is imported, as ONNX Runtime reads it once, at its first use.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
