"""Progress bars for long work (rich), kept out of the library functions: they take callbacks."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text


class FpsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:5.1f} fps" if task.speed else "  ... fps", style="cyan")


@contextlib.contextmanager
def frame_progress(label: str, quiet: bool = False) -> Iterator[Callable[[int, int | None], None] | None]:
    """Yield `on_progress(done, total)` driving a bar with fps and ETA; where stderr is not a
    terminal (a log, a pipe, nohup, cron, a CI job), a plain line now and then instead
    (`log_lines`), as a bar's redraws would fill a log with escapes; None when quiet."""
    console = Console(stderr=True)
    if quiet:
        yield None
        return
    if not console.is_terminal:
        yield log_lines(label, lambda line: print(line, file=sys.stderr, flush=True))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), FpsColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True, speed_estimate_period=5) as bar:
        task = bar.add_task(escape(label), total=None)  # a file name is not markup

        def on_progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=max(total, done) if total else None)

        yield on_progress


LOG_EVERY_S = 60.0  # a line in a log this often while a long job runs


def log_lines(label: str, write: Callable[[str], None], every: float = LOG_EVERY_S,
              clock: Callable[[], float] = time.monotonic) -> Callable[[int, int | None], None]:  # fmt: skip
    """`on_progress(done, total)` that writes one plain line every `every` seconds: frames done (of
    how many, and the share), the rate since the first frames, and the time left at that rate.
    Nothing for a job shorter than `every`: its summary says it all."""
    started = clock()
    last = started
    first: tuple[int, float] | None = None  # (frames, time) of the first report: the engine is loaded

    def on_progress(done: int, total: int | None) -> None:
        nonlocal last, first
        now = clock()
        if first is None:
            first = (done, now)
        if now - last < every:
            return
        last = now
        frames, seconds = done - first[0], now - first[1]
        rate = frames / seconds if frames > 0 and seconds > 0 else None
        of = f"/{total} frames ({100 * done / total:.0f} %)" if total else " frames"
        line = f"{label}: {done}{of}"
        if rate:
            line += f", {rate:.3g} fps"
            if total and total > done:
                line += f", about {time_left((total - done) / rate)} to go"
        write(line)

    return on_progress


def pull_with_progress(name: str, force: bool = False, quiet: bool = False) -> Path:
    """Download a style with a byte progress bar (no bar when cached or quiet)."""
    from cartoonize.styles import LICENCE_NOTE, get_style, pull_style, style_cached, style_checkpoint_path

    style = get_style(name)
    if style_cached(style.name) and not force:  # (a damaged one is downloaded again, with a bar)
        return style_checkpoint_path(style.name)
    if quiet:
        return pull_style(style.name, force=force)
    console = Console(stderr=True)
    console.print(f"downloading style [bold]{style.name}[/] ({len(style.files)} files). {LICENCE_NOTE}")
    if not console.is_terminal:  # a log: no bar (it would leave an empty line)
        path = pull_style(style.name, force=force)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(style.name, total=45_000_000)  # ~44.5 MB of float32 weights
            path = pull_style(style.name, lambda _file, n: bar.advance(task, n), force=force)
    console.print(f"verified {len(style.files)} sha256 sums; saved {path}", markup=False)
    return path


# A job that will take longer than this at the rate measured gets one line on how to speed it up
SLOW_JOB_S = 600.0
RATE_AFTER_S = 15.0  # seconds of frames before the rate is trusted (the first batches warm up)

OnProgress = Callable[[int, int | None], None]


def with_slow_hint(
    on_progress: OnProgress | None,
    say: Callable[[str], None],
    hint: str,
    clock: Callable[[], float] | None = None,
) -> OnProgress:
    """`on_progress` (or nothing), and once, where the frames so far say the whole job will take
    longer than SLOW_JOB_S: `say` how long, and `hint` (a faster way, e.g. a smaller network)."""
    now = clock or time.monotonic
    first: tuple[int, float] | None = None  # (frames done, time) when the first frames came out
    said = False

    def update(done: int, total: int | None) -> None:
        nonlocal first, said
        if on_progress is not None:
            on_progress(done, total)
        if said or not total or done <= 0:
            return
        if first is None:
            first = (done, now())  # from here: the engine is loaded and running
            return
        frames, seconds = done - first[0], now() - first[1]
        if frames > 0 and seconds >= RATE_AFTER_S:
            left = (total - done) * seconds / frames
            if seconds + left > SLOW_JOB_S:
                said = True
                say(f"about {time_left(left)} to go at {frames / seconds:.2g} fps; {hint}")

    return update


def time_left(seconds: float) -> str:
    """A time to go in words a person reads at a glance: "7 min", "2 h 05 min"."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(1, minutes)} min"
