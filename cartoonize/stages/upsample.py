"""Full-resolution output from low-resolution inference (`--infer-side N`).

The network runs on the frame shrunk so its longer side is N (`network_frame`); this stage brings
the cartoon back to the source's size with the fast guided filter of He & Sun (2015, "Fast Guided
Filter", after He, Sun & Tang's guided filter), guided by the full-resolution source frame:

    at the inference size:   I = the source shrunk, p = the cartoon, both in [0, 1]
        Σ = cov(I, I) (3×3 per pixel), c = cov(I, p) (3×3)  over a (2r+1)² box
        A = c (Σ + ε·1)⁻¹,  b = mean(p) - A·mean(I)          a local affine map colour -> cartoon
        Ā, b̄ = box means of A and b
    at the output size:      q = up(Ā)·I_full + up(b̄)      (up: bilinear)

Where the source has an edge the cartoon also has, the map is steep there and the upsampled edge
follows the full-resolution source. Where the patch's colour varies less than ε (texture, noise)
A is near 0 and q is near the cartoon's own local mean: the flat shading stays flat and the
photo's texture does not come back. Vectorised in torch (CPU or GPU tensors), one batched 3×3 solve
per low-resolution pixel; nothing runs at full resolution except two bilinear upsamplings and the
affine map.

The defaults (r = 1 at the inference size, ε = 1e-3) were chosen by `python -m
cartoonize.measure.upsampling` on frames of four clips: see that module and the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RADIUS = 1  # box radius at the inference resolution, in its pixels
DEFAULT_EPS = 1e-3  # regularisation on colour variance, [0, 1] scale


def network_size(height: int, width: int, infer_side: int | None) -> tuple[int, int]:
    """(H, W) the network runs at for a frame of (height, width): the longer side at most
    `infer_side`, aspect kept, each side a multiple of 4 (no padding, so no wasted work)."""
    if not infer_side or max(height, width) <= infer_side:
        return height, width
    scale = infer_side / max(height, width)
    return max(4, round(height * scale / 4) * 4), max(4, round(width * scale / 4) * 4)


def network_frame(rgb: np.ndarray, infer_side: int | None) -> np.ndarray:
    """The frame the network sees: `rgb` (H, W, 3) uint8 itself, or shrunk (area average)."""
    size = network_size(rgb.shape[0], rgb.shape[1], infer_side)
    if size == rgb.shape[:2]:
        return rgb
    import torch

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    small = torch.nn.functional.interpolate(x, size=size, mode="area")
    return small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).contiguous().numpy()


def _box(x, radius: int):  # noqa: ANN001 - torch tensors (N, C, H, W)
    """Mean over a (2r+1)² window, the window shrunk at the borders (no padding bias)."""
    import torch.nn.functional as F

    k = 2 * radius + 1
    return F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=False)


def guided_upsample(source: np.ndarray, cartoon: np.ndarray, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS) -> np.ndarray:  # fmt: skip
    """The cartoon (h, w, 3) brought to the size of `source` (H, W, 3), both uint8 RGB."""
    import torch
    import torch.nn.functional as F

    big = torch.from_numpy(source).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
    p = torch.from_numpy(cartoon).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, h, w)
    h, w = cartoon.shape[:2]
    guide = F.interpolate(big, size=(h, w), mode="area")  # (1, 3, h, w)

    mean_i, mean_p = _box(guide, radius), _box(p, radius)
    # every product of two guide channels and of cartoon x guide channel, box-averaged in one call
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]  # the 6 distinct entries of Σ
    products = [guide[:, i] * guide[:, j] for i, j in pairs] + [
        p[:, c] * guide[:, j] for c in range(3) for j in range(3)
    ]
    means = _box(torch.stack(products, 1), radius)[0]  # (15, h, w)
    s = {pair: means[k] - mean_i[0, pair[0]] * mean_i[0, pair[1]] for k, pair in enumerate(pairs)}
    s[0, 0], s[1, 1], s[2, 2] = s[0, 0] + eps, s[1, 1] + eps, s[2, 2] + eps  # Σ + ε·1
    cov = means[6:].view(3, 3, h, w) - mean_p[0, :, None] * mean_i[0, None]  # [c, j]: cov(p_c, I_j)

    # (Σ + ε·1)⁻¹ in closed form (symmetric 3×3: cofactors over the determinant), per pixel
    inv = {
        (0, 0): s[1, 1] * s[2, 2] - s[1, 2] ** 2, (0, 1): s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2],
        (0, 2): s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1], (1, 1): s[0, 0] * s[2, 2] - s[0, 2] ** 2,
        (1, 2): s[0, 1] * s[0, 2] - s[0, 0] * s[1, 2], (2, 2): s[0, 0] * s[1, 1] - s[0, 1] ** 2,
    }  # fmt: skip
    det = s[0, 0] * inv[0, 0] + s[0, 1] * inv[0, 1] + s[0, 2] * inv[0, 2]
    inv_at = lambda i, j: inv[min(i, j), max(i, j)]  # noqa: E731
    # A = cov Σ'⁻¹ (3 cartoon channels x 3 guide channels), b = mean(p) - A mean(I)
    a = torch.stack(
        [sum(cov[c, k] * inv_at(k, j) for k in range(3)) / det for c in range(3) for j in range(3)]
    )
    b = mean_p[0] - (a.view(3, 3, h, w) * mean_i[0, None]).sum(1)  # (3, h, w)

    size = source.shape[:2]
    ab = F.interpolate(
        _box(torch.cat([a, b])[None], radius), size=size, mode="bilinear", align_corners=False
    )[0]
    q = ab[9:].clone()  # b, then + A I: (3, H, W)
    for j in range(3):
        q.addcmul_(ab[j:9:3], big[0, j])
    return (q * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def bicubic_upsample(source: np.ndarray, cartoon: np.ndarray) -> np.ndarray:
    """Plain bicubic upscaling of the cartoon to the size of `source` (the baseline)."""
    import torch
    import torch.nn.functional as F

    p = torch.from_numpy(cartoon).permute(2, 0, 1)[None].float()
    q = F.interpolate(p, size=source.shape[:2], mode="bicubic", align_corners=False)
    return q[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


@dataclass
class GuidedUpsample:
    """The frame stage: a cartoon smaller than its source comes back at the source's size. It runs
    first in the chain, so the stages after it work at the output resolution."""

    radius: int = DEFAULT_RADIUS
    eps: float = DEFAULT_EPS
    name: str = "guided upsampling"

    def __call__(self, source: np.ndarray, cartoon: np.ndarray) -> np.ndarray:
        if cartoon.shape == source.shape:
            return cartoon
        with _torch_no_grad():
            return guided_upsample(source, cartoon, self.radius, self.eps)

    def reset(self) -> None:
        pass  # no state across frames


def _torch_no_grad():  # noqa: ANN202
    import torch

    return torch.inference_mode()
