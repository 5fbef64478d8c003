"""The same segments as Ray tasks on a local Ray cluster of 2 CPUs: equal to a single pass, a
killed Ray worker's task retried by Ray, a one-line hint where Ray is not installed or no cluster
answers, and a run stopped by Ctrl-C or a `kill` that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines import workers
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob
from cartoonize.pipelines.workers import Event, RayTasks, import_ray
from cartoonize.stages import StageChain, StageOptions, build_stages
from tests.helpers import STOPS, child_env, interrupt, make_video, stoppable
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


def ray_stand_in(init: Callable[..., None]) -> SimpleNamespace:
    """Ray's module where no session is running in this process, its `init` as given."""
    return SimpleNamespace(is_initialized=lambda: False, init=init)


def test_ray_auto_without_a_cluster_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--ray=auto` joins a running cluster; with none running, ray.init's ConnectionError becomes
    one line saying what to do (it was a 55-line traceback). Ray's own answer is stood in for: this
    module's cluster is running, and a stale one's record would make a real `auto` wait on it."""

    def init(**_: object) -> None:
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to."
        )

    monkeypatch.setattr(workers, "import_ray", lambda: ray_stand_in(init))
    with pytest.raises(
        CartoonizeError, match=r"^--ray=auto: no Ray cluster to join \(Could not find any running"
    ):
        RayTasks(address="auto").run([], lambda _event: None)


def test_a_cluster_that_does_not_start_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's own start failing (its GCS server never wrote its port, seen here on a loaded
    machine) is one line, not Ray's traceback. Ray's failure is stood in for."""

    def init(**_: object) -> None:
        raise RuntimeError("Timed out waiting for file /tmp/ray/session_x/gcs_server_port_0\nmore")

    monkeypatch.setattr(workers, "import_ray", lambda: ray_stand_in(init))
    with pytest.raises(
        CartoonizeError,
        match=r"^--ray: the local Ray cluster did not start \(Timed out waiting for file [^\n]*\)$",
    ):
        RayTasks().run([], lambda _event: None)


def test_a_kill_while_the_cluster_starts_goes_to_the_callers_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """ray.init puts its own SIGTERM handler in place (sys.exit(15)) while a local cluster starts,
    for seconds: a `kill` then exited 15. It goes to the caller's handler (the CLI's stops the run
    as Ctrl-C does, exit 143), which is back in place afterwards. Ray's init is stood in for."""

    class Stopped(Exception):
        pass

    def callers(signum: int, frame: object) -> None:
        raise Stopped(signum)

    def init(**_: object) -> None:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init does
        signal.raise_signal(signal.SIGTERM)  # the `kill`, handled before this returns

    monkeypatch.setattr(workers, "import_ray", lambda: ray_stand_in(init))
    previous = signal.signal(signal.SIGTERM, callers)
    try:
        with pytest.raises(Stopped):
            RayTasks().run([], lambda _event: None)
        assert signal.getsignal(signal.SIGTERM) is callers
    finally:
        signal.signal(signal.SIGTERM, previous)


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens: bound to find a free one, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:{port} (connection refused); start one with `ray start --head`"),
        ("ray://127.0.0.1:{port}", "no Ray cluster answers at ray://127.0.0.1:{port} (connection refused)"),
        ("host:notaport", "--ray=host:notaport: not a Ray address; give HOST:PORT"),
    ],
    ids=["host-port", "ray-client", "malformed"],
)  # fmt: skip
def test_an_address_where_no_cluster_answers_is_one_line_at_once(
    address: str, says: str, long_clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """`--ray=HOST:PORT` where nothing listens: ray.init retried for more than 5 minutes before
    saying anything (ray://, 30 s); a TCP connect first answers in a moment. A malformed address
    is refused as plainly. Nothing is left beside the output."""
    port = closed_port()
    address, says = address.format(port=port), says.format(port=port)
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", str(long_clip), "out.mkv", "--model", str(tiny_checkpoint),
         "--engine", "torch", "--device", "cpu", "--segments", "4", f"--ray={address}"],
        cwd=tmp_path, env=child_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {says}"), result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of 320×240, a keyframe a second: four segments that keep Ray's workers busy for seconds."""
    path = tmp_path_factory.mktemp("busy") / "busy.mp4"
    return make_video(path, width=320, height=240, frames=200, rate=25, audio="aac", gop=25)


@pytest.mark.parametrize(("sent", "code"), STOPS[:2])
def test_a_stopped_ray_run_leaves_nothing(
    sent: signal.Signals, code: int, busy_clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Ctrl-C or a `kill` in the middle of `--ray` (a local cluster started for the run): the
    conventional exit code, no traceback, no output or segments folder, and none of the folders
    the tasks write their pieces in (`cartoonize-piece-*`). The tasks were killed, leaving their
    folders, and a `kill` exited 1 after Ray's C++ crash report."""
    out, temp = tmp_path / "out", tmp_path / "temp"
    out.mkdir()
    temp.mkdir()
    # the pieces go in the workers' TMPDIR, where Ray would put its sockets too (a path too long)
    env = child_env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TMPDIR=str(temp),
                    RAY_TMPDIR=os.environ.get("RAY_TMPDIR", tempfile.gettempdir()))  # fmt: skip
    proc = subprocess.Popen(stoppable(
        [sys.executable, "-m", "cartoonize", "video", str(busy_clip), str(out / "film.mkv"), "--model",
         str(tiny_checkpoint), "--engine", "torch", "--device", "cpu", "--segments", "4", "--no-stabilize", "--ray"]),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def pieces() -> list[Path]:
        return list(temp.glob("cartoonize-piece-*"))

    deadline = time.monotonic() + 120
    while not (running := pieces()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    text = interrupt(proc, sent)  # while a task writes its piece
    assert running, f"no Ray task started: {text[-800:]}"
    assert proc.returncode == code, text
    assert "Traceback" not in text and "SIGTERM received" not in text, text
    assert list(out.iterdir()) == []
    assert pieces() == []


def test_a_failing_segment_cancels_the_running_tasks(
    ray_cluster: object, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Segment 2 of 2 fails on its first frame while segment 1 runs in another task: that task is
    cancelled then, not left to run to its end for an output that is lost anyway."""
    from tests.pipelines.test_segment_failures import fails_mid_film

    clip = make_video(tmp_path / "ten.mp4", frames=120, rate=12, audio=None, gop=12)
    out = tmp_path / "out" / "film.mkv"
    events: list[tuple[float, Event]] = []
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(clip, out)], VideoJob(clip, out), request, RayTasks(), SplitOptions(2, preroll=0),
                             make_chain=fails_mid_film, on_event=lambda e: events.append((time.monotonic(), e)))  # fmt: skip
    ended = time.monotonic()
    failed = [at for at, e in events if e.kind == "failed"]
    assert [r.message for r in report.of("failed")] == ["segment 2/2: a bad frame at 5.0 s"], report.lines()
    assert [e.index for _, e in events if e.kind == "done"] == []
    assert failed and ended - failed[0] < 7, f"stopped {ended - failed[0]:.1f} s after the failure"
    assert not out.parent.exists()
