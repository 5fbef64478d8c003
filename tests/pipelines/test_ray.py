"""The same segments as Ray tasks on a local Ray cluster of 2 CPUs: equal to a single pass, a
killed Ray worker's task retried by Ray, and a one-line hint where Ray is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines import workers
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob
from cartoonize.pipelines.workers import Event, RayTasks, import_ray
from cartoonize.stages import StageChain, StageOptions, build_stages
from tests.pipelines.test_segments import LOSSLESS, PER_FRAME, assert_same_as_single_pass

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """A local Ray cluster of 2 CPUs for this module, small object store, no dashboard; its
    workers import this checkout (they start with the driver's environment)."""
    ray = pytest.importorskip("ray", reason="needs Ray (pip install 'cartoonize[ray]')")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             logging_level="WARNING")  # fmt: skip
    yield ray
    ray.shutdown()


def run_on_ray(src: Path, out: Path, checkpoint: Path, **kwargs):  # noqa: ANN003, ANN201
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_many([(src, out)], VideoJob(src, out, encoder=LOSSLESS, stages=PER_FRAME), request, RayTasks(), SplitOptions(4),
                           **kwargs)  # fmt: skip


def test_ray_segments_equal_a_single_pass(
    ray_cluster: object, long_clip: Path, tiny_checkpoint: Path, lossless_single_pass: Path, tmp_path: Path
) -> None:
    seen: list[Event] = []
    report = run_on_ray(long_clip, tmp_path / "joined.mkv", tiny_checkpoint, on_event=seen.append)
    assert report.of("done"), report.lines()
    assert report.executor == "Ray (local cluster)" and report.retries == []
    assert {e.index for e in seen if e.kind == "done"} == {0, 1, 2, 3}
    assert {e.pid for e in seen if e.kind == "start"} - {os.getpid()}  # ran in Ray's workers
    assert_same_as_single_pass(tmp_path / "joined.mkv", lossless_single_pass, lossless=True)
    assert [p.name for p in tmp_path.iterdir()] == ["joined.mkv"]


def test_cli_ray_joins_a_running_cluster(
    ray_cluster,  # noqa: ANN001
    long_clip: Path,
    tiny_checkpoint: Path,
    lossless_single_pass: Path,
    tmp_path: Path,
) -> None:
    """`cartoonize video ... --segments 4 --ray=ADDRESS`: a driver of its own on the test's cluster."""
    address = ray_cluster.get_runtime_context().gcs_address
    joined = tmp_path / "joined.mkv"
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", str(long_clip), str(joined), "--model", str(tiny_checkpoint),
         "--engine", "torch", "--device", "cpu", "--codec", "ffv1", "--segments", "4", "--ray", address, "--no-stabilize"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Ray ({address})" in result.stderr and "4 segments at keyframes" in result.stderr
    assert_same_as_single_pass(joined, lossless_single_pass, lossless=True)


class Slow:
    """A stage that takes 20 ms a frame: a segment lasts long enough to be killed in the middle."""

    name = "slow"

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        time.sleep(0.02)
        return cartoon

    def reset(self) -> None:
        pass


def slow_chain(options: StageOptions) -> StageChain:
    return StageChain([*build_stages(options).stages, Slow()])  # the job's own stages, slowed


@pytest.mark.slow  # the default run kills a local worker (tests/pipelines/test_segments.py)
def test_a_killed_ray_worker_is_retried(
    ray_cluster: object, long_clip: Path, tiny_checkpoint: Path, lossless_single_pass: Path, tmp_path: Path
) -> None:
    pids: dict[int, int] = {}
    killed: list[int] = []

    def kill_mid_segment(event: Event) -> None:
        if event.kind == "start":
            pids[event.index] = event.pid or 0
        if event.kind == "progress" and event.index == 1 and event.attempt == 1 and not killed:
            killed.append(pids[1])
            os.kill(pids[1], signal.SIGKILL)

    report = run_on_ray(long_clip, tmp_path / "joined.mkv", tiny_checkpoint, on_event=kill_mid_segment,
                        make_chain=slow_chain)  # fmt: skip
    assert killed and report.of("done"), report.lines()
    assert report.retries == [f"{long_clip} segment 2/4: Ray worker lost; retried (attempt 2)"]
    assert_same_as_single_pass(tmp_path / "joined.mkv", lossless_single_pass, lossless=True)


def test_without_ray_the_option_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(CartoonizeError, match=r"pip install 'cartoonize\[ray\]'"):
        import_ray()
    code = "import sys; sys.modules['ray'] = None; from cartoonize.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, "video", "in.mp4", "out.mp4", "--model", str(tiny_checkpoint), "--ray"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --ray needs Ray")


def test_ray_auto_without_a_cluster_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--ray=auto` joins a running cluster; with none running, ray.init's ConnectionError becomes
    one line saying what to do (it was a 55-line traceback). Ray's own answer is stood in for: this
    module's cluster is running, and a stale one's record would make a real `auto` wait on it."""

    class NoCluster:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**_: object) -> None:
            raise ConnectionError(
                "Could not find any running Ray instance. Please specify the one to connect to."
            )

    monkeypatch.setattr(workers, "import_ray", lambda: NoCluster)
    with pytest.raises(
        CartoonizeError, match=r"^--ray=auto: no Ray cluster to join \(Could not find any running"
    ):
        RayTasks(address="auto").run([], lambda _event: None)
