"""cartoonize: photos, videos and a live webcam into cartoons, on NVIDIA GPUs or a laptop CPU."""

__version__ = "0.1.0"
