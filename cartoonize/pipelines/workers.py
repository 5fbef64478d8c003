"""Where the pieces of video work run: this process, a pool of local processes (`--workers N`), or
Ray tasks on a cluster (`--ray [ADDRESS]`). A piece is one `cartoonize_video` call: a whole file,
or one segment of a long one (`pipelines.segments`). Each executor reports what happens as
`Event`s (started, progress, retried, done, failed) and returns one `Outcome` per piece.

A worker that dies in the middle of a piece (a crash, the OOM killer, a lost machine) has its
piece run again, a bounded number of times: locally the pool notices the process is gone and
starts a new one; on Ray the task's `max_retries` does it. An error in the input
(`CartoonizeError`) is not retried: it would fail the same way again. A piece that fails for good
stops the other pieces of its group (a film's segments) at once, running or waiting: the group's
output is lost anyway.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.imported.store import models_held
from cartoonize.pipelines.video import VideoJob, VideoReport, cartoonize_video
from cartoonize.stages import StageChain, StageOptions, build_stages

RETRIES = 2  # a piece whose worker dies is run at most 1 + RETRIES times
RAY_INSTALL = "--ray needs Ray, an optional extra: pip install 'cartoonize[ray]' (or pip install ray)"
RAY_ANSWER_SECONDS = 3.0  # for a cluster's address to take a TCP connection (ray.init retries for minutes)
RAY_CANCEL_SECONDS = 5.0  # for a stopped run's tasks to remove their folders, before they are killed


@dataclass(frozen=True)
class Piece:
    key: str  # names the piece in progress and errors: "clip.mp4", "film.mkv segment 3/8"
    job: VideoJob
    request: EngineRequest
    frames: int | None = None  # frames it will encode (the progress bar's total), when known
    preroll: int = 0  # frames it runs through the engine first and drops (see segments)
    make_chain: Callable[[StageOptions], StageChain] = build_stages  # picklable: a module-level name
    env: dict[str, str] = field(default_factory=dict)  # CARTOONIZE_* settings for a remote worker
    group: str = ""  # pieces of one output (a video's segments): one failing, the rest are not started


@dataclass(frozen=True)
class Event:
    kind: str  # start | progress | retry | done | failed
    index: int  # the piece's position in the list given to `run`
    pid: int | None = None  # the worker process (start)
    frames: int = 0  # frames the engine has done in this attempt (progress)
    attempt: int = 1
    message: str = ""


@dataclass
class Outcome:
    report: VideoReport | None = None
    data: bytes | None = None  # the output's bytes, from a worker that cannot write the caller's files
    error: str | None = None  # one line
    attempts: int = 1
    dropped: bool = False  # not run: another piece of its group failed


def drop_group(pieces: list[Piece], failed: int, waiting: deque[int], outcomes: list[Outcome | None]) -> None:
    """Piece `failed` failed for good: the pieces of its group still waiting are not started (its
    output is lost anyway; a film's other segments ran on for hours)."""
    group = pieces[failed].group
    if not group:
        return
    for j in [j for j in waiting if pieces[j].group == group]:
        waiting.remove(j)
        outcomes[j] = Outcome(error=f"not run: {pieces[failed].key} failed", dropped=True)


def siblings(pieces: list[Piece], failed: int, running: list[int]) -> list[int]:
    """The pieces of `running` in piece `failed`'s group: to be stopped, as its output is lost."""
    group = pieces[failed].group
    return [j for j in running if group and j != failed and pieces[j].group == group]


def stopped(pieces: list[Piece], failed: int) -> Outcome:
    return Outcome(error=f"stopped: {pieces[failed].key} failed", dropped=True)


Run = Callable[[Any, list[Piece], Callable[[Event], None]], list[Outcome]]  # an executor's `run`


def holding_models(run: Run) -> Run:
    """An executor's `run` that keeps the imported models its pieces use (`--style NAME`) as they
    are until the last piece is done: each piece loads the model anew, and one removed or replaced
    (`models remove`, `models add --force`) mid-run failed the later segments, or ran them on
    another network. Those commands refuse meanwhile, naming this process."""

    @functools.wraps(run)
    def holding(self: Any, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]:
        with models_held(p.request.style for p in pieces if p.request.model is None):
            return run(self, pieces, on_event)

    return holding


class Executor(Protocol):
    name: str

    def run(self, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]: ...


def pieces_env() -> dict[str, str]:
    """The settings a worker on another machine needs to find weights and caches as we do."""
    return {k: v for k, v in os.environ.items() if k.startswith("CARTOONIZE_")}


def run_piece(piece: Piece, on_frames: Callable[[int], None] | None = None,
              as_bytes: bool = False) -> tuple[VideoReport, bytes | None]:  # fmt: skip
    """Run one piece here. With `as_bytes` the output goes to a local temporary file whose bytes are
    returned (a worker whose file system the caller cannot see)."""
    os.environ.update(piece.env)
    job = piece.job
    # only where the bytes go back: a local worker writes its piece beside the output, and one
    # stopped by a kill (Ctrl-C) would leave this folder behind
    with (
        tempfile.TemporaryDirectory(prefix="cartoonize-piece-")
        if as_bytes
        else contextlib.nullcontext() as tmp
    ):
        if tmp is not None:
            job = replace(job, output=Path(tmp) / f"piece{job.output.suffix}", overwrite=True)
        report = cartoonize_video(
            job,
            lambda size: runner_for(piece.request, size),
            (lambda done, _total: on_frames(done)) if on_frames else None,
            piece.make_chain,
        )
        return report, job.output.read_bytes() if as_bytes else None


def one_line(exc: BaseException) -> str:
    if isinstance(exc, CartoonizeError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class InProcess:
    """One piece after the other in this process (the default, `--workers 1`)."""

    name = "this process"

    @holding_models
    def run(self, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(pieces)
        waiting = deque(range(len(pieces)))
        while waiting:
            i = waiting.popleft()
            piece = pieces[i]
            on_event(Event("start", i, os.getpid()))

            def progress(done: int, i: int = i) -> None:
                on_event(Event("progress", i, frames=done))

            try:
                report, _ = run_piece(piece, progress)
            except CartoonizeError as exc:
                outcomes[i] = Outcome(error=one_line(exc))
                on_event(Event("failed", i, message=one_line(exc)))
                drop_group(pieces, i, waiting, outcomes)
                continue
            outcomes[i] = Outcome(report=report)
            on_event(Event("done", i))
        return [o or Outcome(error="not run") for o in outcomes]


# --- local processes ----------------------------------------------------------------------------


def _serve(conn, gpu: str | None, threads: int) -> None:  # noqa: ANN001 - a multiprocessing Connection
    """A local worker: runs the pieces it is sent, one at a time, and reports on its own pipe (a
    worker killed mid-message breaks only its own pipe)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _end_with_parent()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # one GPU per worker, set before CUDA starts
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(EOFError, OSError):  # the driver is gone: so is the work
        while (piece := conn.recv()) is not None:
            conn.send(("start", os.getpid()))
            last = 0.0

            def progress(done: int) -> None:
                nonlocal last
                now = time.monotonic()
                if now - last > 0.1:
                    last = now
                    conn.send(("progress", done))

            try:
                report, _ = run_piece(piece, progress)
            except Exception as exc:
                conn.send(("failed", one_line(exc)))
                continue
            conn.send(("done", report))


def _end_with_parent() -> None:
    """End this worker the moment the driver ends, however it ends: a driver killed with SIGKILL
    (or by the OOM killer) runs no clean-up, and its workers cartoonized on for a job that was gone
    (one still loading the model for minutes), then printed a traceback for the broken pipe into
    the terminal. What the worker was writing lies in the driver's segments folder, which the next
    run of the output removes (`segments.make_parts_folder`)."""
    import multiprocessing
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="cartoonize-driver-watch", daemon=True).start()


@dataclass
class _Slot:
    process: Any
    conn: Any
    index: int | None = None  # the piece it is working on

    def stop(self) -> None:
        """End the worker now (it holds nothing but its piece's files, in the caller's folder)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class LocalProcesses:
    """`workers` local processes, each with its own runner; on a machine with several GPUs, one GPU
    per worker (round robin). A worker that dies is replaced and its piece run again."""

    def __init__(self, workers: int, retries: int = RETRIES, gpus: list[str] | None = None) -> None:
        self.workers, self.retries, self.gpus = workers, retries, gpus or []
        self.name = f"{workers} local processes"

    def _start(self, number: int) -> _Slot:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # never fork a process that may hold CUDA or OpenMP state
        ours, theirs = ctx.Pipe()
        gpu = self.gpus[number % len(self.gpus)] if self.gpus else None
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        process = ctx.Process(target=_serve, args=(theirs, gpu, threads), daemon=True,
                              name=f"cartoonize-worker-{number}")  # fmt: skip
        process.start()
        theirs.close()
        return _Slot(process, ours)

    @holding_models
    def run(self, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]:
        from multiprocessing.connection import wait

        outcomes: list[Outcome | None] = [None] * len(pieces)
        attempts = [0] * len(pieces)
        pending = deque(range(len(pieces)))
        slots = [self._start(n) for n in range(min(self.workers, len(pieces)))]

        def failed(i: int, error: str) -> None:
            """Piece `i` failed for good: its group's other pieces are not started, and those
            running are stopped now (their workers are replaced when there is more to do)."""
            outcomes[i] = Outcome(error=error, attempts=attempts[i])
            on_event(Event("failed", i, message=error))
            drop_group(pieces, i, pending, outcomes)
            for j in siblings(pieces, i, [s.index for s in slots if s.index is not None]):
                slot = next(s for s in slots if s.index == j)
                slot.stop()
                slot.index = None
                outcomes[j] = replace(stopped(pieces, i), attempts=attempts[j])

        try:
            while pending or any(s.index is not None for s in slots):
                for n, slot in enumerate(slots):
                    if slot.index is None and pending:
                        if not slot.process.is_alive():  # stopped above, or died between pieces
                            slot.stop()
                            slots[n] = slot = self._start(n)
                        slot.index = pending.popleft()
                        attempts[slot.index] += 1
                        slot.conn.send(pieces[slot.index])
                busy = [s for s in slots if s.index is not None]
                ready = set(wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=1))
                for n, slot in enumerate(slots):
                    if slot.index is None or not (slot.conn in ready or slot.process.sentinel in ready):
                        continue
                    i = slot.index
                    broken = False
                    try:
                        message = slot.conn.recv() if slot.conn.poll() else None
                    except (EOFError, OSError):
                        message, broken = None, True
                    if message is None:  # the pipe is empty and the process is gone, or broken
                        if slot.process.is_alive() and not broken:
                            continue
                        slot.process.join(timeout=5)
                        slot.stop()
                        reason = f"worker process died (exit code {slot.process.exitcode})"
                        slots[n] = self._start(n)  # the same GPU as the one it replaces
                        if attempts[i] <= self.retries:
                            pending.appendleft(i)
                            on_event(Event("retry", i, attempt=attempts[i] + 1, message=reason))
                        else:
                            failed(i, f"{reason}, {attempts[i]} attempts")
                        continue
                    kind, *rest = message
                    if kind == "start":
                        on_event(Event("start", i, pid=rest[0], attempt=attempts[i]))
                    elif kind == "progress":
                        on_event(Event("progress", i, frames=rest[0], attempt=attempts[i]))
                    elif kind == "done":
                        outcomes[i] = Outcome(report=rest[0], attempts=attempts[i])
                        slot.index = None
                        on_event(Event("done", i, attempt=attempts[i]))
                    else:
                        slot.index = None
                        failed(i, rest[0])
        finally:
            for slot in slots:
                if slot.process.is_alive() and slot.index is None:
                    try:
                        slot.conn.send(None)
                    except OSError:
                        pass
            for slot in slots:
                slot.process.join(timeout=1 if slot.index is None else 0)
                if slot.process.is_alive():  # slow to tear down, or interrupted mid-piece: it holds
                    slot.process.kill()  # nothing but temporary files, removed by the caller
                    slot.process.join()
        return [o or Outcome(error="not run") for o in outcomes]


# --- Ray ----------------------------------------------------------------------------------------


def import_ray():  # noqa: ANN201
    try:
        import ray
    except ImportError:
        raise CartoonizeError(RAY_INSTALL) from None
    return ray


def ray_endpoint(address: str) -> tuple[str, int]:
    """(host, port) of a cluster's address, HOST:PORT or ray://HOST:PORT ([::1]:6379 for IPv6)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CartoonizeError(
            f"--ray={address}: not a Ray address; give HOST:PORT (a head node's GCS port, 6379 by default), "
            "ray://HOST:PORT (Ray Client, 10001) or auto, or --ray alone for a local cluster started for this run"
        )
    return host, int(port)


def check_answers(address: str) -> None:
    """Stop at once where nothing takes a TCP connection at a cluster's address: `ray.init` would
    retry for more than 5 minutes before saying anything."""
    host, port = ray_endpoint(address)
    try:
        socket.create_connection((host, port), timeout=RAY_ANSWER_SECONDS).close()
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            why = f"unknown host {host}"
        elif isinstance(exc, TimeoutError):
            why = f"no answer in {RAY_ANSWER_SECONDS:g} s"
        else:
            why = (exc.strerror or type(exc).__name__).lower()  # connection refused, no route to host
        raise CartoonizeError(
            f"no Ray cluster answers at {address} ({why}); start one with `ray start --head`, "
            "or give --ray alone for a local one started for this run"
        ) from None


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """ray.init puts its own SIGTERM handler (sys.exit(15)), and then Ray's C++ crash report, in
    place of the caller's (the CLI's stops a run as Ctrl-C does, and exits 143): the caller's is put
    back, and a SIGTERM that came while Ray's was in place is handed to it."""
    import signal
    import threading

    caller = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or caller is None:
        yield
        return
    came = False
    try:
        yield
    except SystemExit as exc:
        came = exc.code == signal.SIGTERM
        raise
    finally:
        signal.signal(signal.SIGTERM, caller)
        if came and callable(caller):
            caller(signal.SIGTERM, None)


class _Board:
    """A Ray actor the tasks report to (started, progress); the driver drains it. Counting the
    starts of each piece is how a retry Ray made after a worker died becomes visible."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.starts: dict[int, set[str]] = {}

    def started(self, index: int, attempt_id: str, pid: int) -> int:
        self.starts.setdefault(index, set()).add(attempt_id)
        attempt = len(self.starts[index])
        self.events.append(("start", index, pid, attempt))
        return attempt

    def progress(self, index: int, attempt: int, frames: int) -> None:
        self.events.append(("progress", index, frames, attempt))

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events


def _ray_piece(piece: Piece, index: int, board) -> tuple[VideoReport, bytes | None]:  # noqa: ANN001
    """A Ray task: run the piece on this worker and hand back the encoded bytes (the worker may not
    share a file system with the driver)."""
    import ray

    attempt = ray.get(board.started.remote(index, uuid.uuid4().hex, os.getpid()))
    last = 0.0

    def progress(done: int) -> None:
        nonlocal last
        if time.monotonic() - last > 0.25:
            last = time.monotonic()
            board.progress.remote(index, attempt, done)

    return run_piece(piece, progress, as_bytes=True)


class RayTasks:
    """Each piece a Ray task declaring its CPU and GPU needs, retried by Ray when its worker dies.
    `address` None or "local" starts a local cluster for the run (`cpus` CPUs, default all);
    otherwise it joins that cluster ("auto", "HOST:PORT", "ray://HOST:PORT")."""

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = RETRIES,
                 gpus_per_task: float | None = None, cpus_per_task: float = 1) -> None:  # fmt: skip
        self.address = None if address in (None, "", "local") else address
        if self.address not in (None, "auto"):
            ray_endpoint(self.address)  # a malformed address is refused before any work
        self.workers, self.retries = workers, retries
        self.gpus_per_task, self.cpus_per_task = gpus_per_task, cpus_per_task
        self.name = f"Ray ({self.address or 'local cluster'})"

    def _connect(self):  # noqa: ANN202
        import logging

        ray = import_ray()
        if ray.is_initialized():  # the caller's own session (a notebook, a test): use it as it is
            return ray, False
        if self.address not in (None, "auto"):
            check_answers(self.address)
        local = {"num_cpus": self.workers or os.cpu_count(), "include_dashboard": False}
        with _sigterm_kept():  # (a SIGTERM it hands on is the caller's to raise, past this `try`)
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         **(local if self.address is None else {}))  # fmt: skip
            except ConnectionError as exc:  # --ray=auto with no cluster running
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
                raise CartoonizeError(
                    f"--ray={self.address}: no Ray cluster to join ({first}); start one (`ray start --head`) "
                    "or give --ray alone for a local one started for this run"
                ) from None
            except Exception as exc:  # noqa: BLE001 - Ray's own start failing (a GCS that never came up)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                where = (
                    "the local Ray cluster did not start" if self.address is None else "Ray did not connect"
                )
                raise CartoonizeError(f"--ray: {where} ({first})") from None
        return ray, True

    @holding_models
    def run(self, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]:
        ray, ours = self._connect()
        try:
            return self._run(ray, pieces, on_event)
        finally:
            if ours:
                ray.shutdown()

    def _run(self, ray, pieces: list[Piece], on_event: Callable[[Event], None]) -> list[Outcome]:  # noqa: ANN001
        gpus = self.gpus_per_task
        if gpus is None:  # a CUDA request takes one GPU per task; auto takes one where the cluster has any
            wants_gpu = {p.request.device for p in pieces} & {"cuda", "auto"}
            gpus = 1 if wants_gpu and ray.cluster_resources().get("GPU", 0) >= 1 else 0
            if "cuda" in {p.request.device for p in pieces} and not gpus:
                raise CartoonizeError("--device cuda, but the Ray cluster has no GPU")
        board = ray.remote(_Board).options(num_cpus=0).remote()
        task = ray.remote(_ray_piece).options(
            num_cpus=self.cpus_per_task, num_gpus=gpus, max_retries=self.retries, retry_exceptions=False
        )
        outcomes: list[Outcome | None] = [None] * len(pieces)
        attempts = [1] * len(pieces)
        waiting = deque(range(len(pieces)))
        running: dict[Any, int] = {}
        limit = self.workers or len(pieces)  # Ray's resources do the real scheduling

        def failed(i: int, error: str, attempt: int) -> None:
            """Piece `i` failed for good: its group's other pieces are not started, and those
            running are cancelled now."""
            outcomes[i] = Outcome(error=error, attempts=attempt)
            on_event(Event("failed", i, message=error))
            drop_group(pieces, i, waiting, outcomes)
            doomed = set(siblings(pieces, i, list(running.values())))
            stop = [ref for ref, j in running.items() if j in doomed]
            for ref in stop:
                outcomes[running.pop(ref)] = stopped(pieces, i)
            _cancel(ray, stop)

        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    i = waiting.popleft()
                    running[task.remote(pieces[i], i, board)] = i
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                for kind, i, value, attempt in ray.get(board.drain.remote()):
                    if kind == "start":
                        if attempt > attempts[i]:
                            attempts[i] = attempt
                            on_event(Event("retry", i, attempt=attempt, message="Ray worker lost"))
                        on_event(Event("start", i, pid=value, attempt=attempt))
                    elif attempt == attempts[i]:
                        on_event(Event("progress", i, frames=value, attempt=attempt))
                for ref in ready:
                    if ref not in running:  # cancelled: another piece of its group failed
                        continue
                    i = running.pop(ref)
                    try:
                        report, data = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the piece's own error, not retried
                        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                        failed(i, one_line(cause), attempts[i])
                        continue
                    except ray.exceptions.RayError as exc:  # workers lost more often than retried
                        error = f"{type(exc).__name__} after {self.retries + 1} attempts (Ray worker lost each time)"
                        failed(i, error, self.retries + 1)
                        continue
                    outcomes[i] = Outcome(report=report, data=data, attempts=attempts[i])
                    on_event(Event("done", i, attempt=attempts[i]))
        finally:
            _cancel(ray, list(running))
            ray.kill(board)
        return [o or Outcome(error="not run") for o in outcomes]


def _cancel(ray, refs: list) -> None:  # noqa: ANN001
    """Stop the tasks of an interrupted run. Cancelled, a task gets a KeyboardInterrupt and removes
    its temporary folder on the way out (a forced cancel kills its worker, which would leave the
    folder in that machine's temporary directory); one still running after RAY_CANCEL_SECONDS
    (inside a long native call) is killed after all."""
    for ref in refs:
        ray.cancel(ref)
    _, stuck = ray.wait(refs, num_returns=len(refs), timeout=RAY_CANCEL_SECONDS) if refs else ([], [])
    for ref in stuck:
        ray.cancel(ref, force=True)


# --- one progress bar over all pieces -----------------------------------------------------------


class Tally:
    """Frames encoded over all pieces, out of the frames expected, for one progress bar; notes of
    retries for the summary."""

    def __init__(self, pieces: list[Piece], on_progress: Callable[[int, int | None], None] | None,
                 on_event: Callable[[Event], None] | None = None) -> None:  # fmt: skip
        self.pieces = pieces
        self.done = [0] * len(pieces)
        known = [p.frames for p in pieces]
        self.total = sum(f for f in known if f is not None) if all(f is not None for f in known) else None
        self.on_progress, self.forward = on_progress, on_event
        self.retries: list[str] = []

    def __call__(self, event: Event) -> None:
        piece = self.pieces[event.index]
        if event.kind == "progress":
            self.done[event.index] = max(0, event.frames - piece.preroll)
        elif event.kind == "retry":
            self.done[event.index] = 0
            self.retries.append(f"{piece.key}: {event.message}; retried (attempt {event.attempt})")
        elif event.kind == "done" and piece.frames is not None:
            self.done[event.index] = piece.frames
        if self.on_progress and event.kind in ("progress", "retry", "done"):
            self.on_progress(sum(self.done), self.total)
        if self.forward:
            self.forward(event)
