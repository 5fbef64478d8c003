"""Every command has `--help`, through the main CLI (plugins such as `train` included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from cartoonize.cli import _load_plugins, app

ROOT = Path(__file__).resolve().parents[1]
# the commands the README shows
README_COMMANDS = ["video", "image", "webcam", "styles list", "styles pull", "export", "build-engine",
                   "engines list", "bench", "train"]  # fmt: skip


def all_commands() -> list[str]:
    _load_plugins()
    found = []

    def walk(command: Any, prefix: list[str]) -> None:  # a click command or group
        if prefix:
            found.append(" ".join(prefix))  # a group (`styles`, `train`) has its own help too
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return sorted(found)


def test_every_readme_command_exists() -> None:
    assert set(README_COMMANDS) <= set(all_commands())


@pytest.mark.parametrize("command", sorted(set(README_COMMANDS) | set(all_commands())))
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from cartoonize.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "Usage:" in text and f"{command.split()[-1]}" in text and "--help" in text


def test_train_help_through_the_installed_cli() -> None:
    """`train` is a plugin found through its entry point: the main CLI in a fresh process shows it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "cartoonize", "train", "--help"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "--photos" in result.stdout


@pytest.mark.parametrize("group", ["", "styles", "engines", "models", "train"])
def test_each_command_is_one_line_in_its_groups_list(group: str, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Rich keeps a docstring's line breaks in the list of commands, where they fall mid-line; on a
    terminal wide enough, each summary is one line of the list."""
    import inspect

    from cartoonize.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        main([*group.split(), "--help"])
    lines = capsys.readouterr().out.splitlines()
    command = typer.main.get_command(app)
    for name in group.split():
        command = command.commands[name]  # type: ignore[attr-defined]
    listed = command.commands.values()  # type: ignore[attr-defined]
    assert listed
    for sub in listed:
        summary = " ".join(inspect.cleandoc(sub.short_help or sub.help).split("\n\n")[0].split())
        assert any(summary in line for line in lines), (sub.name, summary)


@pytest.mark.parametrize("command", sorted(set(all_commands())))
def test_bracketed_help_text_is_shown(command: str, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Rich reads `[default: hayao]` in a help text as a markup tag and drops it: every bracketed
    part of an option's help (and of the command's own) is on the screen, as written."""
    import re

    from cartoonize.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    click_command = typer.main.get_command(app)
    for name in command.split():
        click_command = click_command.commands[name]  # type: ignore[attr-defined]
    texts = [click_command.help or ""] + [getattr(p, "help", None) or "" for p in click_command.params]
    for text in texts:
        for part in re.findall(r"\[[^\]\n]*\]", text.replace("\\[", "[")):
            assert " ".join(part.split()) in shown, (command, part)


def test_build_engine_help_says_what_precision_auto_builds(
    tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-engine shared the runners' --precision help, which says auto may be bf16 on the CPU
    (measured): a build never measures; auto builds fp32 there."""
    from cartoonize.cli import main
    from cartoonize.pipelines.build import spec_from_options

    monkeypatch.setenv("COLUMNS", "400")  # the help cell on one line
    with pytest.raises(SystemExit):
        main(["build-engine", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "auto: fp16 on CUDA, fp32 on the CPU" in text and "measures faster" not in text, text
    spec = spec_from_options(None, tiny_checkpoint, None, "aoti", "auto", "cpu", "32x32", None, None, None)
    assert spec.precision == "fp32"
