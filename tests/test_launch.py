"""A Ctrl-C while the command is still starting (importing Typer, Rich and the commands' options)
is one line and exit 130, as it is once a command runs: it printed a KeyboardInterrupt traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import ROOT
from tests.helpers import child_env

# the Ctrl-C arrives while the CLI module imports Typer: raised where Python would raise it
CTRL_C_WHILE_IMPORTING = """
import builtins, sys
real_import = builtins.__import__
def ctrl_c_at_typer(name, *args, **kwargs):
    if name == "typer":
        raise KeyboardInterrupt
    return real_import(name, *args, **kwargs)
builtins.__import__ = ctrl_c_at_typer
sys.argv = ["cartoonize", "--help"]
import runpy
runpy.run_module("cartoonize", run_name="__main__")
"""


def test_ctrl_c_while_starting_is_one_line_and_exit_130() -> None:
    result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING], env=child_env(PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 130, result.stderr
    assert result.stderr == "stopped (Ctrl-C) while starting\n", result.stderr


def test_the_command_starts_at_the_light_entry_point() -> None:
    """The `cartoonize` script (pyproject's entry point) is the one that says it, not the CLI
    module, whose import is the time a Ctrl-C must be caught in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["cartoonize"] == "cartoonize.launch:main"
