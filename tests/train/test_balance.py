"""The content/adversarial balance: the author's formulation by value, and the default derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from train.balance import CAFFE_BGR_MEAN, AuthorContent, measure  # noqa: E402
from train.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def images(seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_author_formulation_forward_and_its_backward(vgg) -> None:
    """Forward: 224x224, (x + 1) * 127.5 - Caffe's BGR mean; backward: 1/127.5^2 of the chain rule."""
    author, exact = AuthorContent(vgg), AuthorContent(vgg, exact=True)
    seen = []
    hook = author.features[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    x = torch.zeros(1, 3, 32, 32)
    author._vgg(x)
    hook.remove()
    assert seen[0].shape == (1, 3, 224, 224)
    assert [seen[0][0, c, 5, 5].item() for c in range(3)] == pytest.approx(
        [127.5 - m for m in CAFFE_BGR_MEAN]
    )
    photo, fake = images(1)[:1], images(2)[:1]  # one image each: VGG at 224 px is the test's cost
    grads, losses = [], []
    for content in (author, exact):
        y = fake.clone().requires_grad_(True)
        loss = content(photo, y)
        loss.backward()
        grads.append(y.grad)
        losses.append(loss.item())
    assert (grads[1].norm() / grads[0].norm()).item() == pytest.approx(127.5**2, rel=1e-4)
    assert losses[0] == pytest.approx(losses[1])  # the same loss value


@pytest.mark.slow
def test_default_content_weight_is_the_measured_balance() -> None:
    """Re-measures R at the default 256 px crop on two photos (one VGG/D pair): 10 / R is the default."""
    from train.balance import skimage_photos

    pytest.importorskip("skimage")
    photos = skimage_photos(256)[:2]
    fakes = (photos + torch.randn(photos.shape, generator=torch.Generator().manual_seed(0)) * 0.1).clamp(
        -1, 1
    )
    R = measure(photos, fakes, vgg_seed=0, d_seed=100)["R"]
    default = TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("o")).content_weight
    print(f"R = {R:.1f}; 10 / R = {10 / R:.4f}; default {default}")
    assert 10 / R == pytest.approx(default, rel=0.1)
