"""The `cartoonize` command's entry point, kept light: the CLI imports Typer, Rich and its commands'
options first (a few tenths of a second, seconds on a loaded machine), and a Ctrl-C in that time
ended in a KeyboardInterrupt traceback. Here it is one line and exit 130, as a Ctrl-C later is."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from cartoonize.cli import main as run

        run()
    except KeyboardInterrupt:  # only before the CLI handles Ctrl-C itself (its commands say more)
        sys.stderr.write("stopped (Ctrl-C) while starting\n")
        raise SystemExit(130) from None
