"""The toolkit's own export (`cartoonize export`: uint8 RGB frames in and out) imports as it is:
`--style NAME` then gives the checkpoint's frames, within the export's parity tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.export import PSNR_THRESHOLDS, reference_photo
from cartoonize.imported.store import find_model
from cartoonize.parity import parity
from cartoonize.pipelines.image import read_image, write_image
from tests.helpers import run_main as run
from tests.imported.test_models_cli import folder_is_empty, one_line_error


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_an_export_imports_and_runs_as_its_checkpoint(
    tmp_path: Path, capsys, tiny_checkpoint: Path, precision: str
) -> None:
    exported = tmp_path / "mine.onnx"
    args = ["export", "--model", str(tiny_checkpoint), "-o", str(exported), "--precision", precision]
    code, _, err = run(args, capsys)
    assert code == 0, err
    # no import option applies to frames in and out: one is refused, not quietly dropped
    code, _, err = run(["models", "add", str(exported), "--name", "mine", "--channels", "bgr"], capsys)
    one_line_error(code, err, "already takes and gives uint8 RGB frames", "drop --channels")
    folder_is_empty()

    code, _, err = run(["models", "add", str(exported), "--name", "mine"], capsys)
    assert code == 0, err
    assert "nothing to wrap" in " ".join(err.split())
    model = find_model("mine")
    assert model is not None
    assert model.manifest.spec.multiple == 4 and model.manifest.spec.precision == precision
    assert model.manifest.assumed == {}

    photo = tmp_path / "photo.png"
    write_image(photo, reference_photo(50, 70)[0])  # an odd size: padded to the multiple and back
    imported, reference = tmp_path / "imported.png", tmp_path / "reference.png"
    code, _, err = run(["image", str(photo), "-o", str(imported), "--style", "mine"], capsys)
    assert code == 0, err
    code, _, err = run(["image", str(photo), "-o", str(reference), "--model", str(tiny_checkpoint),
                        "--engine", "torch", "--device", "cpu", "--precision", "fp32"], capsys)  # fmt: skip
    assert code == 0, err
    check = parity(read_image(reference), read_image(imported))
    assert check.passes(precision), f"{check.describe()}, needs {PSNR_THRESHOLDS[precision]} dB"
    assert check.shape == (50, 70, 3)
