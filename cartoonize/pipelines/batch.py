"""`cartoonize video IN... OUT_DIR/`: many videos, and long videos in segments, on many workers.

Inputs are files and folders (searched recursively for video files). Output names follow one
rule, so they cannot clash and the tree mirrors the input:

    a file IN            -> OUT_DIR/<its name>
    a file under a folder IN -> OUT_DIR/<IN's name>/<its path below IN>

A name keeps its suffix where the output can be written in that container (.mp4 .m4v .mov .mkv
.webm .avi .gif) and gains `.mp4` where it cannot (clip.ts -> clip.ts.mp4). Two inputs that would
still land on one output are refused before any work.

Every file (or every segment, with `segments`) is a piece for one executor (`pipelines.workers`);
a file that fails is reported on one line and the others go on; an existing output is skipped
unless `overwrite`. Outputs appear under their names only when complete.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cartoonize.choose import EngineRequest
from cartoonize.errors import CartoonizeError
from cartoonize.media import captions
from cartoonize.media.files import (
    CONTAINERS,
    SQUARE_PIXELS,
    atomic_output,
    check_distinct_outputs,
    check_output,
    container_for,
    made_folders,
    once_each,
    remove_empty,
    write_failure,
)
from cartoonize.pipelines.segments import (
    TEMPORAL_PREROLL,
    SegmentPlan,
    join_segments,
    make_parts_folder,
    plan_segments,
)
from cartoonize.pipelines.video import VideoJob, damage_note, interlace_note, left_out_note, probe
from cartoonize.pipelines.workers import Event, Executor, InProcess, Piece, Tally, pieces_env
from cartoonize.stages import StageChain, StageOptions, build_stages

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg",
     ".flv", ".wmv", ".3gp", ".ogv", ".vob", ".mxf", ".gif"}
)  # fmt: skip


@dataclass(frozen=True)
class SplitOptions:
    """How one video becomes pieces: whole (the default), or `segments` / segments of about
    `segment_seconds` at keyframes, each with `preroll` frames first (None: TEMPORAL_PREROLL when
    the frame stages carry state across frames, else none)."""

    segments: int | None = None
    segment_seconds: float | None = None
    preroll: int | None = None

    @property
    def split(self) -> bool:
        return bool(self.segments and self.segments > 1) or bool(self.segment_seconds)


def frames_count(count: int) -> str:
    """'1 frame', '2 frames': a summary's count (a one-frame video's said "1 frames")."""
    return f"{count} frame" if count == 1 else f"{count} frames"


def output_name(name: str) -> str:
    return name if Path(name).suffix.lower() in CONTAINERS else f"{name}.mp4"


def find_videos(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs by the naming rule above; files inside `out_dir` are not inputs."""
    pairs: list[tuple[Path, Path]] = []
    out_resolved = out_dir.resolve()
    for given in inputs:
        if not given.exists():
            raise CartoonizeError(f"input {given} does not exist")
        if given.is_file():
            target = out_dir / output_name(given.name)
            if target.resolve() == given.resolve():  # not an output that exists: the input itself
                raise CartoonizeError(
                    f"{given}'s cartoon would be written over it in {out_dir}; give an output folder "
                    "other than the one it is in"
                )
            pairs.append((given, target))
            continue
        if given.resolve().is_relative_to(out_resolved):  # its videos would count as earlier outputs
            raise CartoonizeError(
                f"the output folder {out_dir} holds the input folder {given}; give an output folder outside it"
            )
        for path in sorted(given.rglob("*")):
            relative = path.relative_to(given)
            if (path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file()
                    or any(part.startswith(".") for part in relative.parts)
                    or path.resolve().is_relative_to(out_resolved)):  # fmt: skip
                continue
            name = given.resolve().name or "input"
            pairs.append((path, out_dir / name / relative.parent / output_name(path.name)))
    pairs = once_each(pairs)
    check_distinct_outputs(pairs)
    return pairs


@dataclass
class FileResult:
    input: Path
    output: Path
    status: str  # done | skipped | failed
    message: str = ""  # failed: why (one line); done: what was written
    frames: int = 0


@dataclass
class BatchReport:
    results: list[FileResult]
    seconds: float
    executor: str
    retries: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    driver_seconds: float = 0.0  # writing what workers sent back, and joining segments
    bytes_to_driver: int = 0  # encoded bytes workers sent back (Ray: no shared file system assumed)

    def of(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        done, skipped, failed = (len(self.of(s)) for s in ("done", "skipped", "failed"))
        why = " (output exists; --overwrite replaces it)" if skipped else ""
        return (f"{done} done, {skipped} skipped{why}, {failed} failed: "
                f"{frames_count(self.frames)} in {self.seconds:.1f} s ({self.fps:.1f} fps over {self.executor})")  # fmt: skip

    def lines(self) -> list[str]:
        """One line per file, the retries, then the summary."""
        lines = []
        for r in self.results:
            if r.status == "done":
                lines.append(f"done     {r.input} -> {r.output} ({frames_count(r.frames)}{r.message})")
            elif r.status == "skipped":
                lines.append(f"skipped  {r.input}: {r.output} exists")
            else:
                lines.append(f"failed   {r.input}: {r.message}")
        return [*lines, *(f"retried  {note}" for note in self.retries), self.summary()]


@dataclass
class _Work:
    """One file on its way: its pieces and, when split, the plan and the folder of segments."""

    result: FileResult
    pieces: list[int] = field(default_factory=list)  # indexes into the run's piece list
    plan: SegmentPlan | None = None
    parts: Path | None = None


def cartoonize_many(
    pairs: list[tuple[Path, Path]],
    job: VideoJob,
    request: EngineRequest,
    executor: Executor | None = None,
    split: SplitOptions | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    make_chain: Callable[[StageOptions], StageChain] = build_stages,
    on_event: Callable[[Event], None] | None = None,
) -> BatchReport:
    """Cartoonize each (input, output) pair with `job`'s settings, on `executor` (default: this
    process); `on_progress(frames, expected)` drives one bar over everything, `on_event` sees
    each piece start, progress, retry and end."""
    executor = executor or InProcess()
    split = split or SplitOptions()
    if split.split and job.max_frames is not None:
        raise CartoonizeError("--frames (a preview) runs in one pass; drop --segments")
    if split.split and any(container_for(target)[0] == "avi" for _, target in pairs):
        # its muxer writes a file's first frame at 0 whatever its time, so a segment's frames
        # cannot be put back at their time
        raise CartoonizeError("an .avi output runs in one pass (AVI counts frames from the file's start); "
                              "write .mkv or .mp4, or drop --segments")  # fmt: skip
    started = time.perf_counter()
    chain = make_chain(job.stages)
    preroll = split.preroll
    if preroll is None:
        preroll = TEMPORAL_PREROLL if chain and job.stages.temporal else 0
    env = pieces_env()
    pieces: list[Piece] = []
    works: list[_Work] = []
    width = height = 0
    made: list[Path] = []  # output folders this batch made, to remove if nothing lands in them
    outcomes: list = []
    try:
        for source, target in pairs:
            work = _Work(FileResult(source, target, "failed"))
            works.append(work)
            if target.exists() and not job.overwrite:
                work.result.status = "skipped"
                continue
            try:
                made += made_folders(target.parent)  # removed again below if left empty
                check_output(target, job.overwrite, (source,))
                name = container_for(target)[0]
                info = probe(source, job.max_side, name in SQUARE_PIXELS, even=name != "gif")
                width, height = info.width, info.height
                file_job = replace(job, input=source, output=target)
                if not split.split:
                    work.pieces.append(len(pieces))
                    pieces.append(
                        Piece(str(source), file_job, request, info.frames_estimate, 0, make_chain, env)
                    )
                    continue
                work.plan = plan_segments(source, split.segments, split.segment_seconds, preroll)
                work.parts = make_parts_folder(target)
                count = len(work.plan.segments)
                for k, segment in enumerate(work.plan.segments):
                    part_job = replace(file_job, output=work.parts / f"{k:05d}{target.suffix}", overwrite=True,
                                       window=segment.window)  # fmt: skip
                    work.pieces.append(len(pieces))
                    pieces.append(Piece(f"{source} segment {k + 1}/{count}", part_job, request, segment.frames,
                                        segment.preroll, make_chain, env, group=str(target)))  # fmt: skip
            except CartoonizeError as exc:
                work.result.message = str(exc)
                work.pieces = []
        tally = Tally(pieces, on_progress, on_event)
        outcomes = executor.run(pieces, tally) if pieces else []
        finishing = time.perf_counter()
        for work in works:
            if work.pieces:
                _finish(work, [outcomes[i] for i in work.pieces], job.overwrite)
        driver_seconds = time.perf_counter() - finishing
    finally:
        for work in works:
            if work.parts is not None:
                shutil.rmtree(work.parts, ignore_errors=True)
        remove_empty(made)
    results = [w.result for w in works]
    report = BatchReport(results, time.perf_counter() - started, executor.name, tally.retries)
    report.width, report.height, report.driver_seconds = width, height, driver_seconds
    report.bytes_to_driver = sum(len(o.data) for o in outcomes if o.data is not None)
    return report


def _taken_meanwhile(result: FileResult, overwrite: bool) -> bool:
    """Without --overwrite, an output that was not there when the batch was planned and is there
    now was written by another job (the same folder run in two terminals): this file is skipped,
    as it would have been had that job finished first, not failed."""
    if overwrite or not result.output.exists():
        return False
    result.status, result.message = "skipped", ""
    return True


def _finish(work: _Work, outcomes: list, overwrite: bool) -> None:  # noqa: ANN001 - workers.Outcome
    result = work.result
    for k, outcome in sorted(
        enumerate(outcomes), key=lambda ko: ko[1].dropped
    ):  # the failure, not a dropped one
        if outcome.error is not None:
            if _taken_meanwhile(result, overwrite):
                return
            where = f"segment {k + 1}/{len(outcomes)}: " if work.plan else ""
            result.message = f"{where}{outcome.error}"
            return
    damaged = sum(o.report.damaged for o in outcomes if o.report is not None)
    left_out = sum(o.report.left_out for o in outcomes if o.report is not None)  # GIF, AVI frames
    try:
        if work.plan is None:  # a whole file: the worker wrote it, or sent its bytes
            outcome = outcomes[0]
            if outcome.data is not None:
                with atomic_output(result.output, replace=overwrite) as tmp:
                    tmp.write_bytes(outcome.data)
            result.frames = outcome.report.frames
            if outcome.report.not_planes:  # --yuv-frames asked for and not taken: say why
                result.message = f"; --yuv-frames not used: {outcome.report.not_planes}"
        else:
            assert work.parts is not None
            parts = [work.parts / f"{k:05d}{result.output.suffix}" for k in range(len(outcomes))]
            for part, outcome in zip(parts, outcomes, strict=True):
                if outcome.data is not None:  # from a worker that does not share our files
                    try:
                        part.write_bytes(outcome.data)
                    except OSError as exc:  # a full disk: this file's one line, as in the join
                        if (failure := write_failure(result.output, part, exc)) is None:
                            raise
                        raise failure from None
            with atomic_output(result.output, replace=overwrite) as tmp:
                firsts = [o.report.first_written if o.report else None for o in outcomes]
                notes = join_segments(result.input, parts, work.plan, tmp, damaged, left_out, firsts)
            result.frames = work.plan.frames - damaged  # the frames the engine saw, as a single pass counts
            if left_out:
                notes.append(left_out_note(left_out, result.frames, container_for(result.output)[0]))
            result.message = f"; {work.plan.note}" + "".join(f"; {n}" for n in notes)
        reports = [o.report for o in outcomes if o.report is not None]
        if reports and reports[0].hdr:
            result.message += f"; {reports[0].hdr}"
        if any(r.captions for r in reports):
            result.message += f"; {captions.NOTE}"
        if interlaced := sum(r.interlaced for r in reports):
            result.message += f"; {interlace_note(interlaced, reports[0].deinterlaced)}"
        if damaged:
            result.message += f"; {damage_note(damaged)}"
    except CartoonizeError as exc:
        if not _taken_meanwhile(result, overwrite):
            result.message = str(exc)
        return
    result.status = "done"
