"""The content loss and the discriminator, by value: what VGG sees, which layer, omega, D's layers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from train.discriminator import Discriminator  # noqa: E402
from train.losses import ContentLoss  # noqa: E402
from train.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGContent, vgg19_features  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_vgg_sees_imagenet_normalised_rgb(vgg: VGGContent) -> None:
    """[-1, 1] RGB -> [0, 1] -> (x - mean) / std per channel, R first: what torchvision's VGG19 wants."""
    seen = []
    hook = vgg.features[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        x = torch.zeros(1, 3, 16, 16)
        x[:, 0], x[:, 1], x[:, 2] = -1.0, 0.0, 1.0  # red 0, green 0.5, blue 1 on [0, 1]
        vgg(x)
    finally:
        hook.remove()
    expected = [(v - m) / s for v, m, s in zip((0.0, 0.5, 1.0), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert [round(seen[0][0, c, 0, 0].item(), 5) for c in range(3)] == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx([-2.1179, 0.1964, 2.64], abs=1e-3)


def test_content_layer_is_conv4_4_before_its_relu(vgg: VGGContent) -> None:
    full = vgg19_features()
    full.load_state_dict(vgg.features.state_dict(), strict=False)  # the same weights, all 37 layers
    conv4_4 = full[25]
    assert isinstance(conv4_4, nn.Conv2d) and (conv4_4.in_channels, conv4_4.out_channels) == (512, 512)
    assert sum(isinstance(m, nn.Conv2d) for m in full[:26]) == 12  # conv1_1 .. conv4_4
    assert sum(isinstance(m, nn.MaxPool2d) for m in full[:26]) == 3
    x = images(1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    reference = ((x + 1) / 2 - mean) / std
    with torch.no_grad():
        for layer in full[:26]:
            reference = layer(reference)
        ours = vgg(x)
    assert ours.shape == (2, 512, 4, 4)
    assert (reference < 0).float().mean() > 0.2  # pre-ReLU features: plenty of negative values
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-5)


def test_a_bgr_generator_is_flipped_to_rgb_for_vgg(vgg: VGGContent) -> None:
    photo, generated = images(2), images(3)
    rgb = ContentLoss(vgg, 1.0, "RGB")
    bgr = ContentLoss(vgg, 1.0, "BGR")
    expected = rgb(photo, generated).item()
    assert bgr(photo.flip(1), generated.flip(1)).item() == pytest.approx(expected, rel=1e-5)
    unflipped = rgb(photo.flip(1), generated.flip(1)).item()
    assert abs(unflipped - expected) > 1e-3 * expected  # VGG does tell the orders apart


def content_gradient(content: ContentLoss, photo: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    generated = generated.clone().requires_grad_(True)
    content(photo, generated).backward()
    return generated.grad


def test_omega_scales_the_content_gradient(vgg: VGGContent) -> None:
    from tests.train.test_recipe import make_recipe

    photo, generated = images(4), images(5)
    one = make_recipe(vgg, content_weight=1.0).content
    ten = make_recipe(vgg, content_weight=10.0).content
    assert ten(photo, generated).item() == pytest.approx(10 * one(photo, generated).item(), rel=1e-5)
    g1, g10 = content_gradient(one, photo, generated), content_gradient(ten, photo, generated)
    assert g1.abs().sum() > 0
    assert ((g10 - 10 * g1).norm() / (10 * g1).norm()).item() < 1e-5


def test_discriminator_layers_are_the_authors() -> None:
    """defineD_n_layers(3, ndf=32, n_layers=3, kw=3): every conv, its stride, the norms, the slopes."""

    def describe(m: nn.Module) -> tuple:
        if isinstance(m, nn.Conv2d):
            return ("conv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
        if isinstance(m, nn.InstanceNorm2d):
            return ("in", m.num_features, m.affine)
        if isinstance(m, nn.LeakyReLU):
            return ("lrelu", m.negative_slope)
        return (type(m).__name__,)

    layers = [describe(m) for m in Discriminator().modules() if not list(m.children())]
    lrelu = ("lrelu", 0.2)
    assert layers == [
        ("conv", 3, 32, 3, 1, 1), lrelu,
        ("conv", 32, 64, 3, 2, 1), lrelu, ("conv", 64, 128, 3, 1, 1), ("in", 128, True), lrelu,
        ("conv", 128, 128, 3, 2, 1), lrelu, ("conv", 128, 256, 3, 1, 1), ("in", 256, True), lrelu,
        ("conv", 256, 256, 3, 1, 1), ("in", 256, True), lrelu,
        ("conv", 256, 1, 3, 1, 1),
    ]  # fmt: skip
