"""A small generic trainer: phases of epochs of steps, metrics, a progress bar, stop and resume.

It knows nothing about CartoonGAN. A `Phase` brings its step function (one batch -> metrics); the
caller brings the batches of each epoch and what to do at the end of an epoch or on a stop (save a
checkpoint, draw samples). Ctrl-C does not kill a step halfway: it asks the loop to stop after the
current step, which calls `on_stop` and raises `TrainingInterrupted`; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cartoonize.progress import time_left

Metrics = dict[str, float]


@dataclass
class Phase:
    name: str
    epochs: int
    step: Callable[[Any], Metrics]  # one optimisation step on one batch
    start_epoch: Callable[[int], None] = lambda k: None  # called with the epoch index within the phase
    # TensorBoard's section for its curves (its name where empty): a phase that only changes the
    # schedule names the one it continues, so that each loss stays one curve across them
    section: str = ""


@dataclass(frozen=True)
class Position:
    epoch: int = 0  # completed epochs
    batch: int = 0  # completed batches of the current epoch
    step: int = 0  # completed steps in all


# what stops training after a step, with a save: Ctrl-C, a `kill` or a scheduler, a closed terminal
STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class TrainingInterrupted(Exception):
    """A stop after a step, with the run saved: a signal (`by`: Ctrl-C, SIGTERM, SIGHUP) or `should_stop`."""

    def __init__(self, position: Position, checkpoint: Path | None, by: int | None = None) -> None:
        super().__init__(f"stopped at epoch {position.epoch + 1}, step {position.step}")
        self.position, self.checkpoint, self.by = position, checkpoint, by


class MetricLog:
    """One row per step to a CSV file and, when tensorboard is installed, to TensorBoard."""

    def __init__(self, folder: Path, columns: list[str], resume_step: int = 0) -> None:
        self.columns = ["step", "epoch", "phase", *columns]
        self.path = folder / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step and self.path.exists():  # drop rows logged after the checkpoint we resume from
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = self.path.open("w", newline="")
        self.csv = csv.DictWriter(self.file, self.columns)
        self.csv.writeheader()
        self.csv.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("warning: tensorboard is not installed: metrics go to metrics.csv only")
            self.tensorboard = None
        else:
            self.tensorboard = SummaryWriter(
                folder / "tensorboard", purge_step=resume_step + 1 if resume_step else None
            )

    def log(self, step: int, epoch: int, phase: str, metrics: Metrics, section: str = "") -> None:
        """One step's row; in TensorBoard, each metric under `section` (default: the phase), the
        learning rates outside any (one curve each through the whole run)."""
        self.csv.writerow(
            {"step": step, "epoch": epoch, "phase": phase, **{k: repr(v) for k, v in metrics.items()}}
        )
        if self.tensorboard:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(
                    f"{section or phase}/{name}" if not name.startswith("lr") else name, value, step
                )

    def image(self, tag: str, image_hwc: Any, step: int) -> None:
        if self.tensorboard:
            self.tensorboard.add_image(tag, image_hwc, step, dataformats="HWC")

    def flush(self) -> None:
        self.file.flush()
        if self.tensorboard:
            self.tensorboard.flush()

    def close(self) -> None:
        self.file.close()
        if self.tensorboard:
            self.tensorboard.close()


@dataclass
class Trainer:
    phases: list[Phase]
    batches: Callable[[int, int], Iterable[Any]]  # (epoch, first batch) -> the rest of that epoch
    steps_per_epoch: int
    log: MetricLog
    on_epoch_end: Callable[[Position, Phase], None]
    on_stop: Callable[[Position, Phase], Path | None]
    should_stop: Callable[[Position], bool] = lambda position: False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    _stop_requested: bool = False
    _stopped_by: int | None = None  # the signal that asked for the stop
    _pid: int | None = None  # the process whose run() handles the signals

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def phase_of(self, epoch: int) -> tuple[Phase, int]:
        for phase in self.phases:
            if epoch < phase.epochs:
                return phase, epoch
            epoch -= phase.epochs
        raise IndexError(epoch)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Ctrl-C, SIGTERM (a scheduler preempting the job, a container stopping: they send
        SIGKILL after a grace period, usually 30 s or more, longer than a step and a save) or SIGHUP
        (the terminal closed): stop after this step and save. A second Ctrl-C kills at once; a
        second SIGTERM or SIGHUP is ignored.

        A DataLoader worker is a fork of this process, with this handler, and a terminal sends its
        Ctrl-C to every process of the job: a worker ignores it (no second "stopping" line), keeps
        serving batches, and ends when the main process, stopping, shuts the loader down."""
        if os.getpid() != self._pid:
            return
        if self._stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self._stop_requested, self._stopped_by = True, signum
        if signum == signal.SIGINT:
            self.console.print(
                "[yellow]Ctrl-C: stopping after this step and saving (Ctrl-C again to kill)[/]"
            )
        else:
            self.console.print(
                f"[yellow]{signal.Signals(signum).name}: stopping after this step and saving[/]"
            )

    def run(self, start: Position = Position()) -> Position:
        position = start
        main_thread = threading.current_thread() is threading.main_thread()  # signals: main thread only
        self._pid = os.getpid()
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS} if main_thread else {}
        run_started, steps_here = time.perf_counter(), 0
        try:
            for epoch in range(start.epoch, self.total_epochs):
                phase, k = self.phase_of(epoch)
                phase.start_epoch(k)
                first = position.batch
                label = f"epoch {epoch + 1}/{self.total_epochs} {phase.name}"
                started, shown, sums = time.perf_counter(), "", dict[str, float]()
                with self._progress() as bar:
                    task = bar.add_task(
                        label, total=self.steps_per_epoch, completed=first, metrics="", run=""
                    )
                    for i, batch in enumerate(self.batches(epoch, first), start=first):
                        metrics = phase.step(batch)
                        position = Position(epoch, i + 1, position.step + 1)
                        self.log.log(position.step, epoch + 1, phase.name, metrics, phase.section)
                        steps_here += 1
                        shown = self._epoch_means(sums, metrics, i + 1 - first)
                        left = (self.total_epochs - epoch) * self.steps_per_epoch - (i + 1)
                        seconds_a_step = (time.perf_counter() - run_started) / steps_here
                        # the bar's time to go is the epoch's; the run's goes with the epoch's name
                        run = f"{label} (the run: {time_left(left * seconds_a_step)} to go)"
                        bar.update(task, advance=1, metrics=shown, description=run)
                        if self._stop_requested or self.should_stop(position):
                            self.log.flush()
                            checkpoint = self.on_stop(position, phase)
                            raise TrainingInterrupted(position, checkpoint, self._stopped_by)
                # a log: the epoch's line whole (the bar's last render is cut at 80 columns)
                if not self.console.is_terminal:
                    steps = self.steps_per_epoch - first
                    left = (self.total_epochs - epoch - 1) * self.steps_per_epoch
                    ahead = (
                        f"; the run about {time_left(left * (time.perf_counter() - run_started) / steps_here)} to go"
                        if left and steps_here
                        else ""
                    )
                    self.console.print(f"{label}: {steps} step{'' if steps == 1 else 's'} in "
                                       f"{time.perf_counter() - started:.0f} s; {shown or 'no step left in it'}{ahead}",
                                       markup=False, highlight=False, soft_wrap=True)  # fmt: skip
                position = Position(epoch + 1, 0, position.step)
                self.on_epoch_end(position, phase)
                self.log.flush()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return position

    @staticmethod
    def _epoch_means(sums: dict[str, float], metrics: dict[str, Any], steps: int) -> str:
        """The epoch's losses so far, each its mean over the epoch's `steps` (one batch's alone
        is noise, and the epoch's line read as the epoch's); the learning rates are left out."""
        for key, value in metrics.items():
            if not key.startswith("lr"):
                sums[key] = sums.get(key, 0.0) + float(value)
        return "  ".join(f"{key} {total / steps:.4g}" for key, total in sums.items())

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            disable=not self.console.is_terminal,  # a log gets one line an epoch instead (run)
        )
