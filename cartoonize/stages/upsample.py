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

The defaults (r = 4 at the inference size, ε = 1e-3) were chosen by `python -m
cartoonize.measure.upsampling` on frames of four clips: see that module and the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RADIUS = 4  # box radius at the inference resolution, in its pixels
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


def _box(x, radius: int):  # noqa: ANN001 - a torch tensor (h, w, C)
    """Mean over a (2r+1)² window, the window shrunk at the borders (no padding bias). Summed-area
    tables (in float64, so large sums keep their small differences): the cost does not grow with r."""
    import torch

    h, w = x.shape[:2]
    table = torch.zeros((h + 1, w + 1, x.shape[2]), dtype=torch.float64, device=x.device)
    table[1:, 1:] = x.double().cumsum(0).cumsum(1)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    y0 = (rows - radius).clamp(0, h)
    y1 = (rows + radius + 1).clamp(0, h)
    x0 = (cols - radius).clamp(0, w)
    x1 = (cols + radius + 1).clamp(0, w)
    rows_lo, rows_hi = table[y0], table[y1]  # (h, w + 1, C)
    total = rows_hi[:, x1] - rows_hi[:, x0] - rows_lo[:, x1] + rows_lo[:, x0]
    count = (y1 - y0)[:, None, None] * (x1 - x0)[None, :, None]
    return (total / count).to(x.dtype)


def _resize(x, size: tuple[int, int], mode: str):  # noqa: ANN001 - (h, w, C) -> (H, W, C)
    import torch.nn.functional as F

    corners = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(x.permute(2, 0, 1)[None], size=size, mode=mode, align_corners=corners)[0].permute(
        1, 2, 0
    )


# the full-resolution part runs in strips of rows of about this many bytes of float work (12
# coefficient planes, the source's 3, the result's 3, at 4 bytes): a 108 MP photo needed 9.9 GB
# in one piece (90 bytes a pixel), and the memory guard (pipelines.memory) counts the network only
STRIP_BYTES = 48 << 20
FLOAT_BYTES_PER_PIXEL = 4 * (12 + 3 + 3)


def guided_upsample(source: np.ndarray, cartoon: np.ndarray, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS) -> np.ndarray:  # fmt: skip
    """The cartoon (h, w, 3) brought to the size of `source` (H, W, 3), both uint8 RGB. On the
    CPU, in strips of rows: beside the source and the result, it needs a few bytes a pixel."""
    import torch

    height, width = source.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, STRIP_BYTES // (width * FLOAT_BYTES_PER_PIXEL))
    for top, q in _in_strips(torch.from_numpy(source), torch.from_numpy(cartoon), radius, eps, rows):
        q = q.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
        torch.from_numpy(out[top : top + q.shape[1]]).copy_(q.permute(1, 2, 0))
    return out


def guided_upsample_tensor(source, cartoon, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS):  # noqa: ANN001, ANN201
    """`guided_upsample` on tensors of any device (the stages on the GPU, `stages.device`): source
    (H, W, 3) and cartoon (h, w, 3), uint8 or float 0-255, on one device -> the upsampled cartoon,
    float32 (3, H, W) in [0, 1], not rounded. In one piece (a video frame on the GPU), by the
    same code as the strips, so the two agree bit for bit on the CPU."""
    return next(_in_strips(source, cartoon, radius, eps, source.shape[0]))[1]


def _in_strips(source, cartoon, radius: int, eps: float, rows: int):  # noqa: ANN001, ANN202 - torch tensors
    """(first row, q (3, rows, W) float in [0, 1]) for each strip of `rows` rows of the output:
    the maps computed once at the cartoon's size, then brought up and applied a strip at a time."""
    import torch.nn.functional as F

    height, width = source.shape[:2]
    h, w = cartoon.shape[:2]
    guide = _area_in_strips(source, (h, w), rows)
    smooth = _coefficients(guide, cartoon.float().div(255.0), radius, eps)
    wide = F.interpolate(smooth[None], size=(h, width), mode="bilinear", align_corners=False)[0]  # (12, h, W)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        yield top, _affine(_rows_bilinear(wide, top, bottom, height), _planes(source[top:bottom]))


def _planes(rows):  # noqa: ANN001, ANN202 - a (rows, W, 3) tensor, uint8 or float 0-255
    """The rows in planar float32 (3, rows, W) in [0, 1], a new tensor: contiguous planes make the
    bilinear upsampling and the affine map 2.5x faster than interleaved (rows, W, 3) views."""
    import torch

    planar = rows.permute(2, 0, 1)
    full = planar.to(torch.float32, memory_format=torch.contiguous_format)
    return full.div(255.0) if full.data_ptr() == planar.data_ptr() else full.div_(255.0)


def _coefficients(guide, p, radius: int, eps: float):  # noqa: ANN001, ANN202 - torch tensors
    """The local affine maps at the inference size, box-smoothed: (12, h, w), A (3×3, row-major:
    cartoon channel, guide channel) then b, from the guide (the source shrunk) and the cartoon p,
    both (h, w, 3) in [0, 1]."""
    import torch

    h, w = p.shape[:2]
    # the means of I, p, every product of two guide channels and of cartoon x guide channel, in one call
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]  # the 6 distinct entries of Σ
    planes = [guide[..., i] * guide[..., j] for i, j in pairs] + [
        p[..., c] * guide[..., j] for c in range(3) for j in range(3)
    ]
    means = _box(torch.cat([guide, p, torch.stack(planes, -1)], -1), radius)  # (h, w, 21)
    mean_i, mean_p = means[..., 0:3], means[..., 3:6]
    s = {
        pair: means[..., 6 + k] - mean_i[..., pair[0]] * mean_i[..., pair[1]] for k, pair in enumerate(pairs)
    }
    s[0, 0], s[1, 1], s[2, 2] = s[0, 0] + eps, s[1, 1] + eps, s[2, 2] + eps  # Σ + ε·1
    cov = means[..., 12:21].reshape(h, w, 3, 3) - mean_p[..., :, None] * mean_i[..., None, :]  # [c, j]

    # (Σ + ε·1)⁻¹ in closed form (symmetric 3×3: cofactors over the determinant), per pixel
    inv = {
        (0, 0): s[1, 1] * s[2, 2] - s[1, 2] ** 2, (0, 1): s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2],
        (0, 2): s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1], (1, 1): s[0, 0] * s[2, 2] - s[0, 2] ** 2,
        (1, 2): s[0, 1] * s[0, 2] - s[0, 0] * s[1, 2], (2, 2): s[0, 0] * s[1, 1] - s[0, 1] ** 2,
    }  # fmt: skip
    det = s[0, 0] * inv[0, 0] + s[0, 1] * inv[0, 1] + s[0, 2] * inv[0, 2]
    inverse = torch.stack([inv[min(i, j), max(i, j)] for i in range(3) for j in range(3)], -1).reshape(
        h, w, 3, 3
    )
    a = (cov @ inverse) / det[..., None, None]  # A = cov Σ'⁻¹: (h, w, 3 cartoon, 3 guide)
    b = mean_p - (a @ mean_i[..., None])[..., 0]  # b = mean(p) - A mean(I): (h, w, 3)
    return _box(torch.cat([a.reshape(h, w, 9), b], -1), radius).permute(2, 0, 1).contiguous()


def _affine(ab, full):  # noqa: ANN001, ANN202 - torch tensors
    """q = b + Σ_j A[:, j] I_j at full resolution: `ab` (12, H, W) the upsampled maps, `full`
    (3, H, W) the source in [0, 1] -> (3, H, W)."""
    height, width = full.shape[1:]
    a_up = ab[:9].view(3, 3, height, width)  # A[c, j]
    q = ab[9:].clone()  # b, then + Σ_j A[:, j] I_j: (3, H, W)
    for j in range(3):
        q.addcmul_(a_up[:, j], full[j])
    return q


def _area_in_strips(source, size: tuple[int, int], rows: int):  # noqa: ANN001, ANN202 - a (H, W, 3) tensor
    """The source shrunk to `size` (h, w) by area averaging, as `F.interpolate(mode="area")` does
    (adaptive average pooling), in [0, 1], (h, w, 3): the width first, `rows` rows at a time in
    float, then the height (a window's mean is the mean of its rows' means)."""
    import torch
    import torch.nn.functional as F

    height = source.shape[0]
    narrow = torch.cat([
        F.adaptive_avg_pool2d(source[top : top + rows].permute(2, 0, 1).float()[None], (min(rows, height - top), size[1]))[0]
        for top in range(0, height, rows)
    ], dim=1)  # fmt: skip
    return F.adaptive_avg_pool2d(narrow[None], size)[0].div_(255.0).permute(1, 2, 0)


def _rows_bilinear(wide, top: int, bottom: int, height: int):  # noqa: ANN001, ANN202 - (C, h, W) tensor
    """Rows top..bottom of `wide` (C, h, W) stretched to `height` rows, linearly, as
    `F.interpolate(mode="bilinear", align_corners=False)` places them (half-pixel centres, the
    first and last rows held at the edges): the same values, a strip at a time."""
    import torch

    h = wide.shape[1]
    at = ((torch.arange(top, bottom, dtype=torch.float64) + 0.5) * (h / height) - 0.5).clamp_(min=0)
    low = at.floor().long().clamp_(max=h - 1)
    high = (low + 1).clamp_(max=h - 1)
    weight = (at - low).to(wide.dtype)[None, :, None].expand(wide.shape[0], -1, wide.shape[2])
    return wide.index_select(1, low).lerp_(wide.index_select(1, high), weight)


def bicubic_upsample(source: np.ndarray, cartoon: np.ndarray) -> np.ndarray:
    """Plain bicubic upscaling of the cartoon to the size of `source` (the baseline)."""
    import torch

    q = _resize(torch.from_numpy(cartoon).float(), source.shape[:2], "bicubic")
    return q.round().clamp(0, 255).to(torch.uint8).contiguous().numpy()


@dataclass
class GuidedUpsample:
    """The frame stage: a cartoon smaller than its source comes back at the source's size. It runs
    first in the chain, so the stages after it work at the output resolution."""

    radius: int = DEFAULT_RADIUS
    eps: float = DEFAULT_EPS
    name: str = "guided upsampling"

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        if cartoon.shape == source.shape:
            return cartoon
        with _torch_no_grad():
            return guided_upsample(source, cartoon, self.radius, self.eps)

    def reset(self) -> None:
        pass  # no state across frames


def _torch_no_grad():  # noqa: ANN202
    import torch

    return torch.inference_mode()
