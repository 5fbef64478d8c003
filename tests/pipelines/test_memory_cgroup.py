"""In a container (`docker run -m 4g`, a Kubernetes pod) /proc/meminfo is the host's: the memory
a photo may have is what the container's control group leaves, or the kernel's OOM killer ends
the process at the limit without a word, as the memory check is there to prevent."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.pipelines import memory

GB = 10**9


def _meminfo(tmp_path: Path, available: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       64000000 kB\nMemAvailable:   {available // 1024} kB\n")
    return path


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_cgroup_v2_limit_is_what_is_left(tmp_path: Path) -> None:
    root = _files(tmp_path / "v2", {"memory.max": "4000000000\n", "memory.current": "1500000000\n",
                                    "memory.stat": "anon 1000000000\nfile 500000000\ninactive_file 300000000\n"})  # fmt: skip
    host = _meminfo(tmp_path, 60 * GB)
    assert memory.available_memory(host, root) == 4_000_000_000 - 1_500_000_000 + 300_000_000
    assert (
        memory.available_memory(_meminfo(tmp_path, 1 * GB), root) == 1 * GB // 1024 * 1024
    )  # the host's is less


def test_a_cgroup_v1_limit_is_what_is_left(tmp_path: Path) -> None:
    root = _files(tmp_path / "v1", {"memory/memory.limit_in_bytes": "2147483648\n",
                                    "memory/memory.usage_in_bytes": "1073741824\n",
                                    "memory/memory.stat": "cache 400000000\ninactive_file 1\ntotal_inactive_file 200000000\n"})  # fmt: skip
    assert memory.available_memory(_meminfo(tmp_path, 60 * GB), root) == 2147483648 - 1073741824 + 200_000_000


@pytest.mark.parametrize(
    "files",
    [
        {"memory.max": "max\n", "memory.current": "1000\n", "memory.stat": ""},  # v2: no limit
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/memory.usage_in_bytes": "1000\n",
            "memory/memory.stat": "",
        },  # v1: no limit  # fmt: skip
        {"memory.max": "4000000000\n"},  # unreadable usage: no guess
        {},  # no control group files (macOS, a host's root group)
    ],
)
def test_no_limit_leaves_the_kernels_figure(tmp_path: Path, files: dict[str, str]) -> None:
    root = _files(tmp_path / "cg", files)
    root.mkdir(exist_ok=True)
    assert memory.available_memory(_meminfo(tmp_path, 60 * GB), root) == 60 * GB // 1024 * 1024


def test_a_limit_is_known_without_meminfo(tmp_path: Path) -> None:
    root = _files(
        tmp_path / "v2", {"memory.max": "3000000000\n", "memory.current": "1000000000\n", "memory.stat": ""}
    )
    assert memory.available_memory(tmp_path / "none", root) == 2_000_000_000
