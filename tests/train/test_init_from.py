"""Fine-tuning a released style: it starts exactly from that style and keeps its boundary (BGR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
from typer.testing import CliRunner  # noqa: E402

from cartoonize.model import load_checkpoint  # noqa: E402
from tests.train.conftest import shared_dir, tiny_args  # noqa: E402
from train.cli import app  # noqa: E402
from train.data import center_crop, read_rgb, scan_images, to_tensor  # noqa: E402

pytestmark = [pytest.mark.shared, pytest.mark.filterwarnings("ignore:--vgg random")]


@pytest.fixture
def shared_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    weights = shared_dir() / "weights"
    if not weights.is_dir():
        pytest.skip(f"needs the shared weights at {weights}")
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", weights.absolute().as_uri())
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    return weights


def test_init_from_hayao_starts_from_hayao(
    shared_weights: Path, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    from cartoonize.styles import style_checkpoint

    photos, cartoons = folders
    out = tmp_path / "hayao-tuned"
    args = tiny_args(
        image_size=32, load_size=0, batch_size=1, steps_per_epoch=1, adv_epochs=1, decay_epochs=0
    )
    result = CliRunner().invoke(
        app,
        [
            "--photos",
            str(photos),
            "--cartoons",
            str(cartoons),
            "--out",
            str(out),
            "--init-from",
            "hayao",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    # tiny_args' --base-channels 8 is not Hayao's: said, not ignored without a word
    assert "warning: --base-channels 8 is ignored: --init-from's network has 64" in " ".join(
        result.output.split()
    )

    # the first grid (epoch 000, before any step) is exactly the Hayao output
    hayao = load_checkpoint(style_checkpoint("hayao"))
    generator = hayao.generator()
    rows = []
    for path in scan_images(photos, "photos")[0][:2]:
        photo = to_tensor(center_crop(read_rgb(path), 32))[None]  # RGB in [-1, 1]
        with torch.no_grad():
            cartoon = generator(photo.flip(1)).flip(1)  # the released weights take and give BGR
        pair = torch.cat([photo, cartoon], dim=3)[0]
        rows.append(((pair + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    expected = np.concatenate(rows)
    grid = cv2.cvtColor(cv2.imread(str(out / "samples" / "epoch_000.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(grid, expected)

    tuned = load_checkpoint(out / "last.pt")
    assert tuned.io.channel_order == "BGR" and tuned.config.norm_eps == 1e-9
    assert tuned.config == hayao.config and "hayao" in tuned.io.style and tuned.io.licence == hayao.io.licence
    assert [row["phase"] for row in __import__("csv").DictReader((out / "metrics.csv").open())] == [
        "adversarial"
    ]
    assert any(not torch.equal(tuned.state_dict[k], hayao.state_dict[k]) for k in hayao.state_dict)
