"""The README's commands stay true: every `cartoonize ...` line in it parses against the real CLI,
and its first two commands are the ones .ci/run and the Justfile use."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from cartoonize.cli import _load_plugins, app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    """Each `cartoonize ...` invocation in the README's shell blocks (after any `&&` or `|`)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part)
                while words and "=" in words[0]:  # VAR=value prefixes
                    words.pop(0)
                if words and words[0].endswith("cartoonize"):
                    commands.append(words[1:])
    return commands


COMMANDS = readme_commands()


def test_readme_has_commands() -> None:
    assert len(COMMANDS) >= 8


def parse(command, args: list[str], parent=None, name: str = "cartoonize") -> None:  # noqa: ANN001
    """Parse `args` against a (group) command the way a run would, without invoking anything."""
    ctx = command.make_context(name, list(args), parent=parent)
    rest = [*(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])), *ctx.args]
    if rest and hasattr(command, "get_command"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"no command {rest[0]!r}"
        parse(sub, rest[1:], ctx, rest[0])
    else:
        assert not rest, f"unexpected arguments {rest}"


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_readme_command_parses(args: list[str]) -> None:
    """Unknown commands, options or missing arguments fail here."""
    _load_plugins()
    parse(typer.main.get_command(app), args)


def test_a_wrong_command_would_fail() -> None:
    _load_plugins()
    with pytest.raises(Exception, match="--no-such-option"):
        parse(typer.main.get_command(app), ["video", "a.mp4", "b.mp4", "--no-such-option"])


def test_ci_runs_the_readme_test_command() -> None:
    match = re.search(r"# 2\..*\n(.*)\n", README)
    assert match is not None
    test_command = match.group(1).strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
