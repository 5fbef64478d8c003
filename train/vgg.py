"""VGG19's convolutional stack, written out so that no torchvision import is needed to use it.

Layer indices match torchvision's `vgg19().features`, so its ImageNet state_dict loads as is. The
content loss reads conv4_4 before its ReLU: `features[:26]`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from cartoonize.errors import CartoonizeError

# torchvision's configuration "E": channels of each 3x3 conv, "M" a 2x2 max pool
VGG19_LAYOUT = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)
CONV4_4 = 25  # index of conv4_4 in `features`; 26 is its ReLU
IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WARNING = (
    "--vgg random: the content loss uses a RANDOMLY initialised VGG19. It exists for smoke tests "
    "only; a style trained this way is not a real CartoonGAN."
)
HOW_TO_GET = (
    "install torchvision and run once with internet access (the weights are cached by torch hub), "
    "or pass --vgg-weights PATH (a torchvision vgg19 state_dict .pth)"
)


def vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for spec in VGG19_LAYOUT:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, spec, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = spec
    return nn.Sequential(*layers)


class VGGContent(nn.Module):
    """(N, 3, H, W) RGB in [-1, 1] -> (N, 512, H/8, W/8) VGG19 conv4_4 features (pre-ReLU). Frozen."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features[: CONV4_4 + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGContent:
        return super().train(False)  # always a fixed feature extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x + 1) / 2 - self.mean) / self.std  # ImageNet normalization of the [0, 1] image
        return self.features(x)  # (N, 512, H/8, W/8)


def _random_init(features: nn.Sequential, seed: int) -> None:
    """A random VGG19 that keeps what it sees: "looks-linear" mirrored orthogonal weights, zero biases.

    Each conv's weight is [[W, -W], [-W, W]] (its first, [W; -W]) with W a random orthogonal 3x3
    conv, so ReLU(h), ReLU(-h) travel together and the next conv recombines them into W h: between
    max pools the stack is linear at this initialisation (Balduzzi et al. 2017, "The Shattered
    Gradients Problem"). torchvision's own random init (kaiming normal, fan_out) instead maps any two
    images to nearly parallel conv4_4 features (cosine ~0.89 on scikit-image photos, measured; this
    init: ~0.27) and its content-loss gradient hardly points towards the photo. Still only a stand-in
    for smoke tests; the seeded generator gives the same weights on every resume."""
    generator = torch.Generator().manual_seed(seed)
    for conv in (m for m in features if isinstance(m, nn.Conv2d)):
        out_ch, in_ch = conv.weight.shape[:2]
        half_in = in_ch if in_ch == 3 else in_ch // 2  # the image itself is not mirrored
        w = torch.empty(out_ch // 2, half_in, 3, 3)
        nn.init.orthogonal_(w, generator=generator)
        if in_ch != 3:
            w = torch.cat([w, -w], dim=1)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([w, -w], dim=0))
            conv.bias.zero_()


def _features_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision vgg19 state_dict ("features.0.weight", ...) or its features only."""
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    expected = vgg19_features().state_dict()
    if state.keys() != expected.keys() or any(state[k].shape != expected[k].shape for k in expected):
        raise CartoonizeError(f"{source} is not a torchvision vgg19 state_dict; {HOW_TO_GET}")
    return state


def _imagenet_state() -> dict[str, torch.Tensor]:
    try:
        from torchvision.models import VGG19_Weights, vgg19
    except Exception:  # absent, or broken beside this torch build
        vgg19 = None
    try:
        if vgg19 is not None:
            return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).state_dict()
        # the same file torchvision would fetch, through torch hub's cache
        return torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=True, check_hash=True)
    except Exception as exc:
        raise CartoonizeError(
            f"could not get the ImageNet VGG19 weights ({type(exc).__name__}); {HOW_TO_GET}"
        ) from None


def load_vgg_content(source: str = "imagenet", weights: Path | None = None, seed: int = 0) -> VGGContent:
    """The frozen content network: ImageNet weights (torchvision or `weights`), or random ones."""
    features = vgg19_features()
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CartoonizeError(f"VGG weights not found: {weights}") from None
        except Exception as exc:
            raise CartoonizeError(f"cannot read {weights} ({type(exc).__name__}); {HOW_TO_GET}") from None
        features.load_state_dict(_features_state(state, str(weights)))
    elif source == "imagenet":
        features.load_state_dict(_features_state(_imagenet_state(), "torchvision's VGG19"))
    elif source == "random":
        warnings.warn(RANDOM_WARNING, stacklevel=2)
        _random_init(features[: CONV4_4 + 1], seed)  # the layers after conv4_4 are never used
    else:
        raise CartoonizeError(f"unknown VGG source {source!r}: imagenet or random")
    return VGGContent(features)
