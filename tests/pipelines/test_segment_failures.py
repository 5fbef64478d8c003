"""A long video's segments when something goes wrong: one segment failing stops the others at
once (they would run on for the rest of a film whose output is lost anyway), a killed `cartoonize`
leaves no worker running, and the segments folder that a killed run could not remove is removed
by the next run of the same output, never one that a running job is using."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import process_tag
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.segments import make_parts_folder, parts_folder
from cartoonize.pipelines.video import VideoJob
from cartoonize.pipelines.workers import Event, LocalProcesses, Outcome, Piece, run_piece
from cartoonize.stages import StageChain, StageOptions
from tests.helpers import child_env, make_video

ROOT = Path(__file__).resolve().parents[2]
FRAME_SECONDS = 0.2  # each frame's stage time: the first segment alone would take 12 s


class FailsMidFilm:
    """Slow on every frame; fails at once where its first frame is not the video's first (that
    is, in any segment but the first)."""

    name = "fails-mid-film"

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        if self.first is None:
            self.first = at or 0.0
        if self.first > 0:
            raise CartoonizeError(f"a bad frame at {at:.1f} s")
        time.sleep(FRAME_SECONDS)
        return cartoon

    def reset(self) -> None:
        pass


def fails_mid_film(options: StageOptions) -> StageChain:
    return StageChain([FailsMidFilm()])


@pytest.fixture(scope="module")
def ten_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 12 fps, a keyframe a second: two segments of about 60 frames."""
    path = tmp_path_factory.mktemp("ten") / "ten.mp4"
    return make_video(path, frames=120, rate=12, audio=None, gop=12)


def test_a_failing_segment_stops_the_running_ones(
    ten_seconds: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Segment 2 of 2 fails on its first frame while segment 1 runs on another worker: segment 1
    is stopped then, not run to its end (its output would be thrown away), the error is segment
    2's, on one line, and no worker is left running."""
    out = tmp_path / "film.mkv"
    events: list[tuple[float, Event]] = []
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(ten_seconds, out)], VideoJob(ten_seconds, out), request, LocalProcesses(2),
                             SplitOptions(2, preroll=0), make_chain=fails_mid_film,
                             on_event=lambda e: events.append((time.monotonic(), e)))  # fmt: skip
    ended = time.monotonic()
    failed = [at for at, e in events if e.kind == "failed"]
    assert [r.message for r in report.of("failed")] == ["segment 2/2: a bad frame at 5.0 s"], report.lines()
    assert [e.index for _, e in events if e.kind == "done"] == []
    assert failed and ended - failed[0] < 5, f"stopped {ended - failed[0]:.1f} s after the failure"
    assert list(tmp_path.iterdir()) == []
    for pid in {e.pid for _, e in events if e.kind == "start"}:
        assert not alive(pid)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a child of ours that ended but was not waited for yet is a zombie: gone for this purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


@pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="reads a process's children from Linux's /proc"
)
def test_a_killed_cli_leaves_no_worker_running(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`kill -9` of `cartoonize video --segments 2 --workers 2` (no clean-up can run): its workers
    stop too, at once, rather than cartoonizing on for a job that is gone (and then each printing
    a traceback for the broken pipe)."""
    clip = make_video(tmp_path / "busy.mp4", width=320, height=240, frames=240, rate=24, audio=None, gop=24)
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cartoonize", "video", str(clip), str(out), "--model", str(tiny_checkpoint),
         "--engine", "torch", "--device", "cpu", "--segments", "2", "--workers", "2", "--no-stabilize"],
        env=child_env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        parts: list[Path] = []
        while not parts and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            parts = [p for d in tmp_path.glob(".out*.segments") for p in d.iterdir()]
        assert parts, "no segment started"
        workers = children(proc.pid)  # and multiprocessing's resource tracker
        assert sum(b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes() for p in workers) == 2
        proc.kill()
        text = proc.communicate(timeout=30)[0]
        deadline = time.monotonic() + 5
        while {p for p in workers if alive(p)} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {p for p in workers if alive(p)} == set(), text
        print(text)
        assert "Traceback" not in text, text
    finally:
        proc.kill()
        for pid in children(proc.pid) if proc.poll() is None else ():
            os.kill(pid, signal.SIGKILL)


def ended_pid() -> int:
    """The process id of a process that has ended."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def leftover(output: Path, pid: int) -> Path:
    """A segments folder for `output` as a run with process id `pid` on this machine makes it,
    with a part in it."""
    folder = parts_folder(output, pid)
    folder.mkdir()
    (folder / f"00000{output.suffix}").write_bytes(b"a stale part")
    return folder


def test_a_killed_runs_segments_folder_is_removed_by_the_next(
    ten_seconds: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A run killed with SIGKILL (or a power cut) leaves its hidden segments folder beside the
    output, and its hidden partial output; the next run writing into that folder removes them,
    another output's too. Those of a job still running (the same output in another terminal) are
    left as they are."""
    out = tmp_path / "film.mkv"
    stale = leftover(out, ended_pid())
    partial = tmp_path / f".other.cartoonize-{process_tag(ended_pid())}.partial.mkv"
    partial.write_bytes(b"half a film")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        try:
            busy = leftover(out, running.pid)
            other = leftover(tmp_path / "other.mkv", ended_pid())
            writing = tmp_path / f".film.cartoonize-{process_tag(running.pid)}.partial.mkv"
            writing.write_bytes(b"a film being written")
            request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
            report = cartoonize_many([(ten_seconds, out)], VideoJob(ten_seconds, out), request,
                                     split=SplitOptions(2, preroll=0))  # fmt: skip
            assert report.of("done"), report.lines()
            assert not stale.exists() and not other.exists() and not partial.exists()
            assert sorted(tmp_path.iterdir()) == sorted([out, busy, writing])
            assert [p.name for p in busy.iterdir()] == ["00000.mkv"]
        finally:
            running.kill()


def test_a_segments_folder_of_another_machine_is_left(tmp_path: Path) -> None:
    """An output folder shared between machines: a process id names a process of the machine
    that made the folder, so another machine's folder is left, whatever runs here under that id."""
    out = tmp_path / "film.mkv"
    ours = parts_folder(out, ended_pid())
    theirs = ours.with_name(ours.name.replace(socket.gethostname(), "elsewhere"))
    theirs.mkdir()
    make_parts_folder(out)
    assert theirs.exists() and not ours.exists()


def test_a_worker_that_dies_between_segments_is_replaced(
    ten_seconds: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The one worker ends (the OOM killer, a `kill`) just after its first segment, before it is
    given the second: a new worker takes the second (the run stopped with a BrokenPipeError's
    traceback, sending the piece to the dead one)."""
    out = tmp_path / "film.mkv"
    killed: list[int] = []
    pids: dict[int, int] = {}

    def kill_when_idle(event: Event) -> None:
        if event.kind == "start":
            pids[event.index] = event.pid or 0
        if event.kind == "done" and not killed:
            killed.append(pids[event.index])
            os.kill(pids[event.index], signal.SIGKILL)
            while alive(pids[event.index]):  # (a zombie until the pool waits for it)
                time.sleep(0.01)

    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(ten_seconds, out)], VideoJob(ten_seconds, out), request, LocalProcesses(1),
                             SplitOptions(2, preroll=0), on_event=kill_when_idle)  # fmt: skip
    assert killed and report.of("done"), report.lines()
    assert len(set(pids.values())) == 2


class BytesBack:
    """Runs each piece here but, as Ray's tasks do, sends its output back as bytes for the driver
    to write."""

    name = "bytes back"

    def run(self, pieces: list[Piece], on_event: object) -> list[Outcome]:
        return [Outcome(*run_piece(piece, as_bytes=True)) for piece in pieces]


def test_a_full_disk_for_the_segments_sent_back_is_one_line(
    ten_seconds: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ray` onto a full disk: the driver cannot write a segment the workers sent back. The file
    fails on one line naming the output (the whole run stopped with an OSError's traceback)."""
    out = tmp_path / "film.mkv"
    write_bytes = Path.write_bytes

    def full_disk(path: Path, data: bytes) -> int:
        if path.parent.name.endswith(".segments"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(ten_seconds, out)], VideoJob(ten_seconds, out), request, BytesBack(),
                             SplitOptions(2, preroll=0))  # fmt: skip
    assert [r.message for r in report.of("failed")] == [
        f"cannot write {out} (No space left on device); free some space or write elsewhere"
    ]
    assert list(tmp_path.iterdir()) == []
