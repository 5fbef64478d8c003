"""The scaling row without Ray installed (it is an extra): the rows measured still get their
speed-ups, and `benchmarks` prints them; it ended in a KeyError after the whole measurement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.measure.scaling import scaling


def test_rows_keep_their_speedups_when_ray_is_missing(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when not installed
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu", precision="fp32")
    rows = scaling(request, (32, 48), 6, [1], 1, ("one", "ray"))
    assert [row["run"] for row in rows] == ["one pass"]
    assert rows[0]["speedup_vs_one_pass"] == 1.0 and rows[0]["speedup_vs_1_worker"] == 1.0
    assert "Ray is not installed" in capsys.readouterr().out
