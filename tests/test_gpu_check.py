"""The GPU check's steps are command lines today's code accepts. A GPU run is rare and short, so a
renamed option, a removed engine or an Inductor setting that no longer exists must fail here, on
the CPU, and not cost the run its minutes (each step would end in a usage error there)."""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from pathlib import Path

import pytest
import typer

from tests.gpu_check import ROOT, plan


def parse_cartoonize(args: list[str]):  # noqa: ANN201
    """Parse a `cartoonize ...` command line as the CLI would (Typer's own parser, which turns a bad
    option into exit 2), without running the command; its context holds the parsed options."""
    from cartoonize.cli import _fill_optional_values, app

    command = typer.main.get_command(app)
    try:
        ctx = command.make_context("cartoonize", _fill_optional_values(args))
        while hasattr(command, "resolve_command"):  # a group: its subcommand is in the rest
            name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
            ctx = command.make_context(name, rest, parent=ctx)
    except Exception as exc:  # Typer's (vendored) click UsageError and BadParameter
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"cartoonize {' '.join(args)}: {exc.format_message()}")
    return ctx


def parse_module(module: str, args: list[str]):  # noqa: ANN201
    """Parse a `python -m tests.X ...` command line with that module's own parser."""
    parser = importlib.import_module(module).command_line()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"python -m {module} {' '.join(args)}: {errors.getvalue().strip()}")


def test_every_step_is_a_command_line_the_code_accepts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from torch._inductor import config as inductor
    from torch._inductor import list_mode_options

    from cartoonize.choose import RUNNERS_BY_NAME
    from cartoonize.engines.store import parse_shape
    from cartoonize.media.files import EncoderSettings
    from tests.aoti_matrix import write_variants

    steps = plan(tmp_path / "data", tmp_path / "out", tmp_path / "work")
    names = [name for step in steps for name in (step.name, *step.also)]
    assert len(set(names)) == len(names), names  # --only picks steps by name
    kinds = set()
    for step in steps:
        argv = step.argv
        if argv[0] != sys.executable:
            assert argv[0] == "nvidia-smi", step
            kinds.add("nvidia-smi")
            continue
        assert argv[1] == "-m", step
        module, args = argv[2], argv[3:]
        kinds.add(module)
        if module == "cartoonize":
            ctx = parse_cartoonize(args)
            params = ctx.params
            for engine in params.get("engine", "auto").split(","):
                assert engine in ("auto", *RUNNERS_BY_NAME), f"{step.name}: no engine {engine!r}"
            if params.get("shape"):
                parse_shape(params["shape"])
        elif module == "pytest":
            paths = [a for a in args if a.startswith("tests")]
            assert all((ROOT / path).exists() for path in paths), (step.name, paths)
            assert args[args.index("-m") + 1] == "gpu"
        else:
            parsed = parse_module(module, args)
            if module == "tests.gpu_video":
                assert parsed.clip.name in ("bbb_720p.mp4", "bbb_1080p.mp4"), step  # what --prepare writes
                from tests.gpu_video import runs

                try:  # each --also run's own flags, and the report it writes where the check reads it
                    reports = {report for _, _, report, _ in runs(parsed)[1:]}
                except SystemExit as exc:
                    pytest.fail(f"{step.name}: {exc}")
                assert reports == set(step.also.values()), (step.name, reports, step.also)
                for setting in parsed.inductor:  # an Inductor setting this torch still has
                    key = setting.partition("=")[0]
                    assert hasattr(inductor, key), f"{step.name}: torch._inductor.config has no {key!r}"
                if parsed.compile_mode:
                    assert parsed.compile_mode in list_mode_options(), step.name
                if parsed.engine:
                    assert parsed.engine in ("auto", *RUNNERS_BY_NAME), step.name
            if module == "tests.aoti_matrix":
                variants = {v.name for v in write_variants(tiny_checkpoint, tmp_path / "variants")}
                assert set(parsed.only.split(",")) <= variants, (step.name, variants)
            if module == "cartoonize.measure.handoffs":
                assert parsed.clip.name == "bbb_1080p.mp4" and parsed.preset == EncoderSettings().preset, step
            if module == "tests.compile_modes":
                for mode in parsed.modes.split(","):
                    assert mode == "default" or mode in list_mode_options(), step.name
    assert kinds == {"nvidia-smi", "pytest", "cartoonize", "tests.gpu_video", "tests.aoti_matrix",
                     "tests.compile_modes", "cartoonize.measure.handoffs"}  # fmt: skip


def test_a_renamed_option_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a step with an option the CLI does not have."""
    with pytest.raises(pytest.fail.Exception, match="--frames-per-call"):
        parse_cartoonize(["bench", "--shape", "720x1280", "--frames-per-call", "4"])
    with pytest.raises(pytest.fail.Exception, match="--batches"):
        parse_module("tests.gpu_video", ["a.mp4", "b.mp4", "r.json", "--batches", "4"])
