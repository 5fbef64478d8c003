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


def available_memory(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Bytes a new allocation can have without swapping or being killed: the less of what the
    kernel says (Linux's MemAvailable) and what the limit of this process's control group leaves
    (a container's `docker run -m 4g`, a Kubernetes pod's limit: there MemAvailable is the whole
    host's, and a photo sized to it was killed at the container's limit without a word); None
    where neither is known (another system: no guess is made)."""
    known = [left for left in (_mem_available(meminfo), _cgroup_left(cgroup)) if left is not None]
    return min(known) if known else None


def _mem_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# (limit, usage, statistics, the cache the kernel takes back before it kills) in cgroup v2, then v1
CGROUP_FILES = (
    ("memory.max", "memory.current", "memory.stat", "inactive_file"),
    (
        "memory/memory.limit_in_bytes",
        "memory/memory.usage_in_bytes",
        "memory/memory.stat",
        "total_inactive_file",
    ),
)
NO_LIMIT = 1 << 60  # cgroup v1 says "no limit" as the largest page-aligned 64-bit number


def _cgroup_left(root: Path) -> int | None:
    """Bytes the control group mounted at `root` (a container's own, as a container sees it) has
    left under its memory limit, its inactive file cache counted as free; None where it has no
    limit or none is readable."""
    for limit_file, usage_file, stat_file, reclaimable in CGROUP_FILES:
        try:
            limit_text = (root / limit_file).read_text().strip()
        except OSError:
            continue
        try:
            if limit_text == "max" or int(limit_text) >= NO_LIMIT:
                return None
            usage = int((root / usage_file).read_text())
            cache = 0
            for line in (root / stat_file).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == reclaimable:
                    cache = int(value)
        except (OSError, ValueError):
            return None
        return max(0, int(limit_text) - usage + cache)
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
