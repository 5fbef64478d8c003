"""The generator's shape contract, size, and the checkpoint format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cartoonize.errors import CartoonizeError
from cartoonize.model import (
    Checkpoint,
    Generator,
    GeneratorConfig,
    ModelIO,
    count_parameters,
    load_checkpoint,
)
from tests.helpers import pattern, run_main
from tests.reference import reference_generator


def test_paper_generator_has_the_reference_parameter_count() -> None:
    assert count_parameters(Generator()) == 11_129_667


@pytest.mark.parametrize(("h", "w"), [(32, 32), (48, 64), (36, 20)])
def test_output_matches_input_size_and_the_reference(h: int, w: int) -> None:
    model = Generator(GeneratorConfig(base_channels=8, residual_blocks=1)).eval()
    x = torch.rand(2, 3, h, w) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, h, w)
    expected = reference_generator(model.state_dict(), model.config, x)  # values, not just |tanh| <= 1
    assert torch.allclose(y.double(), expected, atol=1e-4)


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    config = GeneratorConfig(base_channels=8, residual_blocks=2, norm_eps=1e-9)
    model = Generator(config)
    io = ModelIO(channel_order="BGR", style="mine", licence="research only")
    Checkpoint(model.state_dict(), config, io, {"epoch": 3}).save(tmp_path / "g.pt")
    loaded = load_checkpoint(tmp_path / "g.pt")
    assert loaded.config == config and loaded.io == io and loaded.extra == {"epoch": 3}
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.generator()(x), model.eval()(x))
    assert not list(tmp_path.glob(".*tmp"))


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CartoonizeError, match="not a cartoonize checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CartoonizeError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CartoonizeError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_damaged_checkpoint_is_one_line_naming_what_is_wrong(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A file with the format's mark but put together or edited by hand: an entry missing, an
    option this version does not know, weights that do not fit the config. Each was a KeyError,
    TypeError or load_state_dict traceback (`--model`, `--init-from`); now one line that says what."""
    from cartoonize.model import CHECKPOINT_FORMAT
    from cartoonize.pipelines.image import write_image

    config = GeneratorConfig(base_channels=8, residual_blocks=1)
    good = Checkpoint(Generator(config).state_dict(), config).to_dict()
    other = Generator(GeneratorConfig(base_channels=8, residual_blocks=2)).state_dict()
    cases = {
        "no_io": ({k: v for k, v in good.items() if k != "io"}, "no 'io' entry"),
        "no_model": ({"format": CHECKPOINT_FORMAT, "config": good["config"], "io": good["io"]}, "no 'model' entry"),
        "list_config": ({**good, "config": [8, 1]}, "its 'config' entry is not a mapping"),
        "new_option": ({**good, "config": {**good["config"], "attention": True}}, "unexpected keyword argument 'attention'"),
        "bad_order": ({**good, "io": {**good["io"], "channel_order": "YUV"}}, "channel_order must be RGB or BGR"),
        "bad_range": ({**good, "io": {**good["io"], "value_range": [0, 1, 2]}}, "is not (low, high)"),
        "other_depth": ({**good, "model": other}, "its weights do not fit its config"),
    }  # fmt: skip
    photo = tmp_path / "photo.png"
    write_image(photo, pattern(40, 48, 0))
    for name, (raw, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(raw, path)
        with pytest.raises(CartoonizeError, match="damaged cartoonize checkpoint") as caught:
            load_checkpoint(path)
        assert message in str(caught.value) and "\n" not in str(caught.value), (name, caught.value)
        code, _, err = run_main(
            ["image", str(photo), "-o", str(tmp_path / f"{name}.png"), "--model", str(path)], capsys
        )
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0], (name, lines)
    assert "unknown weights (first: residual.1." in str(caught.value), caught.value


def test_the_network_downsamples_by_the_size_multiple() -> None:
    """`cartoonize.architecture.SIZE_MULTIPLE` (what torch-free code pads to) is the product of the
    generator's strides."""
    import math

    from cartoonize.architecture import SIZE_MULTIPLE

    model = Generator(GeneratorConfig(base_channels=8, residual_blocks=1))
    strides = [m.stride[0] for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.stride[0] > 1]
    assert math.prod(strides) == SIZE_MULTIPLE
