"""Where a `cartoonize video` run's time goes, for the GPU check: torch.profiler over a window of
frames once the engine runs steadily, and a summary of the trace.

The 2026-12-04 H200 run left one question open: at 1080p `--raw` the engine thread spent ~20 ms a
frame in engine calls for 11.4 ms of GPU work, and the pipeline ran at 36.6 fps against 87 for the
runner alone. The summary answers it from one trace:
- how busy the GPU was in the window (the union of kernels and copies), and its idle gaps;
- the CUDA runtime calls by thread and name (a blocking copy or a synchronize shows as time);
- the host operations on the engine thread, per frame (the compiled call's launch cost, the
  pinned copies), with `record_function` ranges around the runner's submit and collect.

A synchronising call made by the pipeline's threads (`torch.cuda.set_sync_debug_mode`) is counted
by thread and place with `SyncCounter`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
GAP_MS = 0.5  # an idle stretch of the GPU longer than this is counted as a gap


class Window:
    """Profiles frames [skip, skip + active) of a run: `step()` is called once per frame done."""

    def __init__(self, out: Path, device: str, skip: int = 40, active: int = 60) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule

        self.out, self.active = out, active
        self.frames_seen = 0
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        config = None
        with contextlib.suppress(TypeError, AttributeError):  # newer torch: every thread's operations
            config = torch._C._profiler._ExperimentalConfig(
                profile_all_threads=True, enable_cuda_sync_events=True
            )
        self.trace = out / "trace.json.gz"
        self.profiler = profile(
            activities=activities,
            schedule=schedule(wait=max(0, skip - 2), warmup=2, active=active, repeat=1),
            on_trace_ready=lambda p: p.export_chrome_trace(str(self.trace)),
            **({"experimental_config": config} if config is not None else {}),
        )
        self.lock = threading.Lock()
        self.thread_names: dict[int, str] = {}  # system thread id -> Python thread name

    def __enter__(self) -> Window:
        self.out.mkdir(parents=True, exist_ok=True)
        self.profiler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.profiler.__exit__(*exc)

    def step(self) -> None:
        with self.lock:
            self.frames_seen += 1
            self.profiler.step()
            for thread in threading.enumerate():  # the trace names threads by system id only
                if thread.native_id is not None:
                    self.thread_names[thread.native_id] = thread.name


def ranges(runner: Any) -> Any:
    """The runner with its `submit` and the collect it returns wrapped in named profiler ranges."""
    from torch.profiler import record_function

    submit = runner.submit

    def traced_submit(frames: Any) -> Callable[[], Any]:
        with record_function("cartoonize.submit"):
            collect = submit(frames)

        def traced_collect() -> Any:
            with record_function("cartoonize.collect"):
                return collect()

        return traced_collect

    runner.submit = traced_submit
    return runner


def _union_ms(intervals: list[tuple[float, float]]) -> tuple[float, list[float]]:
    """Total covered time and the gaps between covered stretches (both in ms; input in µs)."""
    covered, gaps, end = 0.0, [], None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            if end is not None:
                gaps.append((start - end) / 1000)
            covered += stop - start
            end = stop
        elif stop > end:
            covered += stop - end
            end = stop
    return covered / 1000, gaps


def summarize(trace: Path, frames: int, thread_names: dict[int, str] | None = None) -> dict[str, Any]:
    """The trace's numbers per frame: GPU busy share and gaps, CUDA runtime calls by thread and
    name, and the host operations that took longest in total."""
    opener = gzip.open if trace.suffix == ".gz" else open
    with opener(trace, "rt") as f:
        events = [e for e in json.load(f).get("traceEvents", []) if e.get("ph") == "X" and "dur" in e]
    names = {}  # tid -> thread name, where the trace names it
    with opener(trace, "rt") as f:
        for e in json.load(f).get("traceEvents", []):
            if e.get("ph") == "M" and e.get("name") == "thread_name":
                names[e.get("tid")] = e.get("args", {}).get("name")
    names.update(thread_names or {})
    host = [e for e in events if e.get("cat") not in GPU_CATEGORIES]
    if not host:
        return {"error": "the trace holds no host events"}
    start = min(e["ts"] for e in host)
    stop = max(e["ts"] + e["dur"] for e in host)
    wall_ms = (stop - start) / 1000
    per = max(frames, 1)
    gpu = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in GPU_CATEGORIES]
    busy_ms, gaps = _union_ms(gpu)
    long_gaps = sorted((g for g in gaps if g > GAP_MS), reverse=True)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    copies = defaultdict(float)
    for e in events:
        if e.get("cat") == "gpu_memcpy":
            copies[e["name"]] += e["dur"] / 1000
    runtime: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") in ("cuda_runtime", "cuda_driver", "cuda_sync"):
            thread = str(names.get(e.get("tid"), e.get("tid")))
            runtime[(thread, e["name"])].append(e["dur"] / 1000)
    ops: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") in ("cpu_op", "user_annotation", "python_function") and not e["name"].startswith(
            "ProfilerStep"
        ):
            thread = str(names.get(e.get("tid"), e.get("tid")))
            ops[(thread, e["name"])].append(e["dur"] / 1000)

    def top(table: dict[tuple[str, str], list[float]], n: int) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: -sum(kv[1]))[:n]
        return [{"thread": t, "name": name[:90], "calls_per_frame": round(len(d) / per, 2),
                 "ms_per_frame": round(sum(d) / per, 3), "max_ms": round(max(d), 3)}
                for (t, name), d in rows]  # fmt: skip

    return {
        "frames": frames,
        "wall_ms_per_frame": round(wall_ms / per, 3),
        "fps_in_window": round(per / (wall_ms / 1000), 2) if wall_ms else 0.0,
        "gpu_busy_ms_per_frame": round(busy_ms / per, 3),
        "gpu_busy_share": round(busy_ms / wall_ms, 3) if wall_ms else 0.0,
        "kernels_per_frame": round(len(kernels) / per, 1),
        "copies_ms_per_frame": {k: round(v / per, 3) for k, v in copies.items()},
        f"gpu_gaps_over_{GAP_MS}ms": {
            "count": len(long_gaps),
            "ms_per_frame": round(sum(long_gaps) / per, 3),
            "longest_ms": [round(g, 2) for g in long_gaps[:8]],
        },  # fmt: skip
        "runtime_calls": top(runtime, 12),
        "ranges": top({k: v for k, v in ops.items() if k[1].startswith("cartoonize.")}, 8),
        "host_ops": top(ops, 16),
    }


def print_summary(summary: dict[str, Any]) -> None:
    if "error" in summary:
        print(f"profile: {summary['error']}")
        return
    gaps = summary[f"gpu_gaps_over_{GAP_MS}ms"]
    print(f"profile over {summary['frames']} frames: {summary['wall_ms_per_frame']} ms a frame "
          f"({summary['fps_in_window']} fps), GPU busy {summary['gpu_busy_ms_per_frame']} ms a frame "
          f"({100 * summary['gpu_busy_share']:.0f} %), {summary['kernels_per_frame']} kernels a frame, "
          f"{gaps['count']} gaps over {GAP_MS} ms ({gaps['ms_per_frame']} ms a frame)")  # fmt: skip
    for title, rows in (("engine calls", summary["ranges"]), ("CUDA runtime", summary["runtime_calls"]),
                        ("host", summary["host_ops"])):  # fmt: skip
        for row in rows[:8]:
            print(f"  {title:<12} {row['thread'][:16]:<16} {row['name'][:60]:<60} "
                  f"{row['ms_per_frame']:7.3f} ms/frame  {row['calls_per_frame']:6.1f} calls  max {row['max_ms']} ms")  # fmt: skip


class SyncCounter:
    """Counts the synchronising CUDA calls torch reports (`set_sync_debug_mode("warn")`), by
    thread and by the first frame of cartoonize code that made them."""

    def __init__(self) -> None:
        self.sites: Counter[tuple[str, str]] = Counter()

    @contextlib.contextmanager
    def watching(self) -> Iterator[SyncCounter]:
        import torch

        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
            if "synchronizing" not in str(message):
                return shown(message, category, filename, lineno, file, line)
            place = next(
                (f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(traceback.extract_stack())
                 if "cartoonize" in f.filename and "gpu_profile" not in f.filename),
                f"{Path(filename).name}:{lineno}",
            )  # fmt: skip
            self.sites[(threading.current_thread().name, place)] += 1
            return None

        cuda = torch.cuda.is_available()  # without CUDA nothing synchronises: the counter stays empty
        previous = torch.cuda.get_sync_debug_mode() if cuda else 0
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield self
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(previous)
                warnings.showwarning = shown

    def report(self, frames: int) -> list[dict[str, Any]]:
        return [{"thread": t, "where": w, "per_frame": round(n / max(frames, 1), 2)}
                for (t, w), n in self.sites.most_common(12)]  # fmt: skip
