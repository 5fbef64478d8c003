"""YUV <-> RGB in torch, for the GPU frame path: the decoder's own planes in, planes for the
encoder out, the conversion on whatever device the tensors are on (the same code runs on the CPU,
where the tests compare it with FFmpeg's `VideoFrame.reformat`).

Layouts (tensors as the planes come from FFmpeg, any leading batch dimensions):
- `yuv420p` / `yuv420p10le`: Y (H, W), U and V (ceil(H/2), ceil(W/2)); 10-bit in the low bits;
- `nv12` / `p010le`: Y (H, W) and interleaved UV (ceil(H/2), 2·ceil(W/2)); P010 in the high bits.

Matrices BT.601 and BT.709 (and FCC, SMPTE 240M and BT.2020, as swscale has them), limited
(16-235 / 16-240, times 4 at 10 bits) or full range. Chroma is treated as swscale treats it in its unscaled 4:2:0
conversions, which are what FFmpeg's `reformat` does: made by averaging each 2×2 block, so sited
at the block's centre, and interpolated linearly from those centres on the way back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Kr, Kb of each matrix FFmpeg's path converts with (`media.files._SWS_MATRIX`; AVColorSpace codes:
# 1 BT.709, 4 FCC, 5/6 BT.601, 7 SMPTE 240M, 9 BT.2020 NCL, 10 BT.2020 CL, which swscale takes
# as NCL). A tagged 240M clip read as BT.601 came out with its greens 34 levels dark.
KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
         7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # fmt: skip


@dataclass(frozen=True)
class YuvSpec:
    matrix: int = 1  # AVColorSpace: a key of KR_KB (1 BT.709, 5 or 6 BT.601, ...)
    full_range: bool = False
    bits: int = 8

    def coefficients(self) -> tuple[float, float, float]:
        kr, kb = KR_KB.get(self.matrix, KR_KB[6])
        return kr, 1.0 - kr - kb, kb

    def scales(self) -> tuple[float, float, float, float]:
        """(luma offset, luma scale, chroma offset, chroma scale) in code values."""
        s = float(1 << (self.bits - 8))
        top = float((1 << self.bits) - 1)
        mid = float(1 << (self.bits - 1))
        if self.full_range:
            return 0.0, top, mid, top
        return 16.0 * s, 219.0 * s, mid, 224.0 * s


@functools.lru_cache(maxsize=32)
def _taps(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For `size` output samples from `n` input ones: the lower and upper input index of each and
    the upper one's weight. They depend on the sizes alone, so a video makes them once, not in ten
    small kernels per side and plane every frame."""
    pos = ((torch.arange(size, device=device, dtype=torch.float32) + 0.5) * n / size - 0.5).clamp(0, n - 1)
    lo = pos.floor().long()
    return lo, (lo + 1).clamp(max=n - 1), pos - lo


def _upsample_chroma(c: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., ceil(H/2), ceil(W/2)) -> (..., H, W), linear, as swscale scales a chroma plane: an
    output sample's centre maps to (x + 0.5)·n/size - 0.5 in the n input samples (edges held).
    For even sides that is 3/4 of the sample's own chroma and 1/4 of its neighbour's; for odd
    ones the ratio is ceil(W/2)/W, not 1/2, and swscale follows it."""

    def along(c: torch.Tensor, dim: int, size: int) -> torch.Tensor:  # dim: -1 (columns) or -2 (rows)
        lo, hi, frac = _taps(c.shape[dim], size, c.device)
        frac = frac.view(size, 1) if dim == -2 else frac
        low = c.index_select(dim, lo)
        return low + (c.index_select(dim, hi) - low) * frac

    return along(along(c, -1, width), -2, height)


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spec: YuvSpec) -> torch.Tensor:
    """Planes (integer code values, `spec.bits` in the low bits) -> uint8 RGB (..., H, W, 3)."""
    height, width = y.shape[-2:]
    y0, ys, c0, cs = spec.scales()
    luma = (y.float() - y0) / ys
    cb = (_upsample_chroma(u.float(), height, width) - c0) / cs
    cr = (_upsample_chroma(v.float(), height, width) - c0) / cs
    kr, kg, kb = spec.coefficients()
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    rgb = torch.stack([r, g, b], dim=-1)
    return (rgb * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, spec: YuvSpec) -> torch.Tensor:
    """NV12 / P010 planes -> uint8 RGB. P010 keeps its 10 bits in the high bits of each 16."""
    if spec.bits > 8:
        y, uv = y >> (16 - spec.bits), uv >> (16 - spec.bits)
    return yuv420_to_rgb(y, uv[..., 0::2], uv[..., 1::2], spec)


def rgb_to_yuv420(rgb: torch.Tensor, spec: YuvSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 RGB (..., H, W, 3) -> Y (H, W), U, V (ceil(H/2), ceil(W/2)): uint8 at 8 bits, int16
    code values (low bits) above. Chroma is the mean of each 2×2 block; an odd side has its last
    row or column repeated first, as the video pipeline pads frames for 4:2:0 encoders."""
    x = rgb.float() / 255.0
    r, g, b = x.unbind(-1)
    kr, kg, kb = spec.coefficients()
    luma = kr * r + kg * g + kb * b
    cb = (b - luma) / (2 * (1 - kb))
    cr = (r - luma) / (2 * (1 - kr))
    height, width = luma.shape[-2:]
    pad = (0, width % 2, 0, height % 2)

    def half(c: torch.Tensor) -> torch.Tensor:
        flat = c.reshape(-1, 1, height, width)
        flat = F.pad(flat, pad, mode="replicate") if any(pad) else flat
        out = F.avg_pool2d(flat, 2)
        return out.reshape(*c.shape[:-2], *out.shape[-2:])

    y0, ys, c0, cs = spec.scales()
    if spec.full_range:
        c0 -= 0.5  # swscale's full-range chroma comes out half a level lower (measured: 98, not 99, for red)
    top = (1 << spec.bits) - 1
    dtype = torch.uint8 if spec.bits == 8 else torch.int16

    def code(t: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        return (offset + scale * t).round_().clamp_(0, top).to(dtype)

    return code(luma, y0, ys), code(half(cb), c0, cs), code(half(cr), c0, cs)


def resized(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) scaled down to (N, height, width, 3) for `--max-side`, antialiased
    bicubic. Of torch's area, bilinear and bicubic filters it came closest to FFmpeg's AREA scaler,
    which the CPU path uses: 0.03-0.08 levels apart on average on Big Buck Bunny (1080p to 720p and
    144p), 1.0-1.7 on sharp, textured footage (the shared street and Chaplin clips, 3-4.5x down),
    where area was 1.7-2.2 apart."""
    x = rgb.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def even_sides(rgb: torch.Tensor) -> torch.Tensor:
    """(..., H, W, C) with the last row and column repeated to even sides, as 4:2:0 encoders
    want them (`media.files.pad_to_even` on the host); unchanged where both are even."""
    height, width = rgb.shape[-3:-1]
    if height % 2:
        rgb = torch.cat([rgb, rgb[..., -1:, :, :]], dim=-3)
    if width % 2:
        rgb = torch.cat([rgb, rgb[..., :, -1:, :]], dim=-2)
    return rgb


def planes_on_host(rgb: torch.Tensor, spec: YuvSpec) -> tuple:
    """One uint8 RGB frame (H, W, 3) on any device -> its 4:2:0 planes (numpy, even sides) for the
    encoder: converted where the frame is, and brought to the host in one copy (one wait for the
    device, not three)."""
    planes = rgb_to_yuv420(even_sides(rgb), spec)
    flat = torch.cat([p.reshape(-1) for p in planes]).cpu().numpy()
    out, start = [], 0
    for p in planes:
        out.append(flat[start : start + p.numel()].reshape(p.shape))
        start += p.numel()
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# planes out of and into PyAV frames (numpy; no conversion)

PLANE_FORMATS = {"yuv420p": 8, "yuvj420p": 8, "nv12": 8, "yuv420p10le": 10, "p010le": 10}


def frame_planes(frame, size: tuple[int, int] | None = None, using=None) -> tuple:  # noqa: ANN001
    """(Y, U, V) numpy planes of a decoded frame (an av.VideoFrame in one of PLANE_FORMATS), code
    values in the low bits (NV12 and P010 deinterleaved and shifted here, on the host: a strided
    copy, no arithmetic on the picture). `size` (width, height): the size the stream opened with;
    a frame of another (a stream that switches quality, two clips joined) is scaled to it first,
    in its own format, by `using` (a `media.files.converter()`) where given, as the RGB path
    scales each frame to the size it opened with: a batch's planes must stack, and the encoder
    and the stages were opened for that size."""
    import numpy as np

    if size is not None and (frame.width, frame.height) != size:
        from av.video.reformatter import Interpolation

        flags = Interpolation.AREA | Interpolation.ACCURATE_RND  # the RGB path's scaler (`files.to_rgb`)
        options = {"width": size[0], "height": size[1], "format": frame.format.name, "interpolation": flags}
        frame = using.reformat(frame, **options) if using is not None else frame.reformat(**options)
    name = frame.format.name
    bits = PLANE_FORMATS[name]
    dtype = np.dtype("<u2") if bits > 8 else np.dtype("u1")
    h, w = frame.height, frame.width
    ch, cw = (h + 1) // 2, (w + 1) // 2

    def plane(i: int, rows: int, cols: int) -> np.ndarray:
        p = frame.planes[i]
        return np.frombuffer(p, dtype).reshape(-1, p.line_size // dtype.itemsize)[:rows, :cols]

    if name in ("nv12", "p010le"):
        y, uv = plane(0, h, w), plane(1, ch, 2 * cw)
        shift = 16 - bits if bits > 8 else 0
        return tuple(np.ascontiguousarray(p >> shift if shift else p) for p in (y, uv[:, 0::2], uv[:, 1::2]))
    return tuple(
        np.ascontiguousarray(plane(i, r, c)) for i, (r, c) in enumerate(((h, w), (ch, cw), (ch, cw)))
    )


def frame_from_planes(y, u, v):  # noqa: ANN001, ANN201 - numpy uint8 planes -> an av.VideoFrame (yuv420p)
    """A yuv420p frame holding these planes (rows padded to the frame's line size)."""
    import av
    import numpy as np

    frame = av.VideoFrame(y.shape[1], y.shape[0], "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v), strict=True):
        rows, cols = data.shape
        if plane.line_size != cols:
            padded = np.zeros((rows, plane.line_size), np.uint8)
            padded[:, :cols] = data
            data = padded
        plane.update(np.ascontiguousarray(data))
    return frame
