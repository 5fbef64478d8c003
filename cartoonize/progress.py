"""Progress bars for long work (rich), kept out of the library functions: they take callbacks."""

from __future__ import annotations

import contextlib
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
    """Yield `on_progress(done, total)` driving a bar with fps and ETA (None when quiet, or when
    stderr is not a terminal: a log or a pipe would get only an empty line from it)."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), FpsColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True, speed_estimate_period=5) as bar:
        task = bar.add_task(escape(label), total=None)  # a file name is not markup

        def on_progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=max(total, done) if total else None)

        yield on_progress


def pull_with_progress(name: str, force: bool = False, quiet: bool = False) -> Path:
    """Download a style with a byte progress bar (no bar when cached or quiet)."""
    from cartoonize.styles import LICENCE_NOTE, get_style, pull_style, style_checkpoint_path

    style = get_style(name)
    if style_checkpoint_path(style.name).exists() and not force:
        return style_checkpoint_path(style.name)
    if quiet:
        return pull_style(style.name, force=force)
    console = Console(stderr=True)
    console.print(f"downloading style [bold]{style.name}[/] ({len(style.files)} files). {LICENCE_NOTE}")
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(style.name, total=45_000_000)  # ~44.5 MB of float32 weights
        path = pull_style(style.name, lambda _file, n: bar.advance(task, n), force=force)
    console.print(f"verified {len(style.files)} sha256 sums; saved {path}", markup=False)
    return path
