"""Waiting on the child processes of the GPU check scripts."""

from __future__ import annotations

import subprocess


def wait_for(proc: subprocess.Popen[str], seconds: float) -> tuple[int | str, str]:
    """(exit code or "timeout", its combined output); a child past `seconds` is killed."""
    try:
        output, _ = proc.communicate(timeout=max(1.0, seconds))
        return proc.returncode, output or ""
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        return "timeout", output or ""
