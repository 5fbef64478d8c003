"""Whether a photo's network pass fits in this machine's memory on the CPU, and the network size
that does.

CartoonGAN keeps 64 to 256 channels of float activations for every pixel: on the CPU a photo
needs about 2.2 KB of memory per pixel at the network (measured with `cartoonize image`, ONNX
Runtime fp32, peak resident memory: 1.21 GB at 0.48 MP, 4.33 GB at 1.92 MP). A 12 MP phone photo
needs about 26 GB, and the kernel's OOM killer ended the process with no word (a 24 MP photo on a
24 GB machine, killed after 75 s). Where the photo would not fit, the network runs at the largest
size that does and the cartoon is brought back to the photo's full size, guided by the photo
(stages.upsample, as `--infer-side` does), and a line says so.
"""

from __future__ import annotations

import math
from pathlib import Path

CPU_BYTES_PER_PIXEL = 2200  # the slope of the two measurements above
CPU_BASE_BYTES = 200_000_000  # the runner and the interpreter, before the photo
HEADROOM = 0.8  # of the memory available: the photo, its cartoon and the upsampling need some too


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the kernel says a new allocation can have without swapping (Linux's MemAvailable);
    None where that is not known (another system: no guess is made)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_need(height: int, width: int) -> int:
    """Bytes the CPU runners need to cartoonize a (height, width) frame at the network."""
    return CPU_BASE_BYTES + CPU_BYTES_PER_PIXEL * height * width


def fitting_side(height: int, width: int, available: int | None) -> int | None:
    """None where a (height, width) photo fits in `available` bytes as it is (or nothing is
    known); else the longer side, a multiple of 8, that the network should run at."""
    if available is None or cpu_need(height, width) <= HEADROOM * available:
        return None
    pixels = max(0.0, HEADROOM * available - CPU_BASE_BYTES) / CPU_BYTES_PER_PIXEL
    scale = math.sqrt(pixels / (height * width))
    return max(64, int(max(height, width) * scale) // 8 * 8)


def shrink_note(path: Path, height: int, width: int, side: int, available: int) -> str:
    """The line that says a photo's network ran smaller to fit in memory."""
    gb = 1e9
    return (
        f"{path.name} is {height * width / 1e6:.1f} MP: the network at full size needs about "
        f"{cpu_need(height, width) / gb:.1f} GB and {available / gb:.1f} GB is free; it runs at {side} px "
        f"and the cartoon is brought back to {width}×{height} (as --infer-side {side} does; "
        "--max-side N makes the output smaller)"
    )
