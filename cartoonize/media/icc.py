"""A photo's embedded ICC profile applied: its colours converted to sRGB, which the network was
trained on and which an output without a profile is shown as.

Phones save photos in wider gamuts than sRGB (an iPhone's JPEG and HEIC carry Display P3; cameras
offer Adobe RGB). Read as sRGB, such a photo's colours are duller than it is shown (a P3 photo's
saturated red, 14 levels of green and blue too many), and the cartoon, written without a profile,
stays so. FFmpeg decodes the pixel values and does no colour management.

What is applied: matrix/TRC RGB profiles, the kind cameras and phones embed (Display P3, Adobe RGB,
ProPhoto, sRGB variants; ICC v2 and v4): each channel's tone curve (`curv` or `para`) to linear
light, the profile's matrix to the D50 connection space, sRGB's to sRGB, and sRGB's curve back;
colours outside sRGB are clipped (relative colorimetric, as browsers render). A profile that is
sRGB already, or grey, is left alone; one this cannot apply (lookup-table profiles, CMYK) is
named in a warning and its colours are read as sRGB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# sRGB's matrix in the D50 connection space, as the IEC 61966-2.1 profile stores it (columns: R, G, B)
SRGB_D50 = np.array(
    [[0.436065, 0.385147, 0.143066], [0.222488, 0.716873, 0.060608], [0.013916, 0.097076, 0.714096]]
)
SAME = 0.002  # matrix entries and tone curves this close to sRGB's: the photo is sRGB already


class Unsupported(ValueError):
    """A profile that is not a matrix/TRC RGB one (said in a warning, its colours read as sRGB)."""


@dataclass(frozen=True)
class Profile:
    """An RGB matrix/TRC profile: `matrix` (3×3, columns rXYZ gXYZ bXYZ, D50) and, per channel, its
    tone curve sampled at the 256 levels of an 8-bit picture (linear light, 0–1)."""

    matrix: np.ndarray
    curves: np.ndarray  # (3, 256)

    def is_srgb(self) -> bool:
        return bool(
            np.abs(self.matrix - SRGB_D50).max() < SAME
            and np.abs(self.curves - srgb_decode(LEVELS)).max() < SAME
        )


LEVELS = np.arange(256) / 255.0


def srgb_decode(code: np.ndarray) -> np.ndarray:
    return np.where(code <= 0.04045, code / 12.92, np.power((code + 0.055) / 1.055, 2.4))


def srgb_encode(light: np.ndarray) -> np.ndarray:
    return np.where(
        light <= 0.0031308, light * 12.92, 1.055 * np.power(np.maximum(light, 0.0031308), 1 / 2.4) - 0.055
    )


def parse(data: bytes) -> Profile | None:
    """The profile's matrix and curves; None for a grey one (nothing to convert); `Unsupported`
    for what this cannot apply; ValueError for bytes that are not a profile."""
    if len(data) < 132 or data[36:40] != b"acsp":
        raise ValueError("not an ICC profile")
    space = data[16:20]
    if space == b"GRAY":
        return None
    if space != b"RGB ":
        raise Unsupported(f"a {space.decode('latin-1').strip()} profile")
    (count,) = struct.unpack(">I", data[128:132])
    tags: dict[bytes, bytes] = {}
    for k in range(min(count, 256)):
        sig, offset, size = struct.unpack(">4sII", data[132 + 12 * k : 144 + 12 * k])
        tags[sig] = data[offset : offset + size]
    wanted = [b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"]
    if any(tag not in tags for tag in wanted):
        raise Unsupported("a lookup-table profile" if b"A2B0" in tags else "a profile without a matrix")
    matrix = np.stack([_xyz(tags[t]) for t in wanted[:3]], axis=1)
    curves = np.stack([_curve(tags[t]) for t in wanted[3:]])
    return Profile(matrix, curves)


def to_srgb(rgb: np.ndarray, profile: Profile) -> np.ndarray:
    """uint8 (..., 3) RGB in `profile`'s space to sRGB (a new array; the input is not changed)."""
    linear = np.stack([profile.curves[c][rgb[..., c]] for c in range(3)], axis=-1).astype(np.float32)
    convert = (np.linalg.inv(SRGB_D50) @ profile.matrix).astype(np.float32)
    srgb = np.clip(linear @ convert.T, 0.0, 1.0)
    steps = 16384  # light in steps a tenth of a level or finer, even on the curve's steep toe
    encode = np.round(srgb_encode(np.linspace(0.0, 1.0, steps + 1)) * 255).astype(np.uint8)
    return encode[np.round(srgb * steps).astype(np.int32)]


def _s15(data: bytes, at: int, n: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack(f">{n}i", data[at : at + 4 * n])]


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise Unsupported("a profile whose primaries are not XYZ values")
    return np.array(_s15(tag, 8, 3))


def _curve(tag: bytes) -> np.ndarray:
    """A tone curve (`curv`: identity, a gamma or a table; `para`: ICC's five parametric forms) at
    the 256 levels, clipped to 0–1."""
    x = LEVELS
    if tag[:4] == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if n == 0:
            return x.copy()
        if n == 1:
            return np.power(x, struct.unpack(">H", tag[12:14])[0] / 256.0)
        table = np.array(struct.unpack(f">{n}H", tag[12 : 12 + 2 * n])) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if tag[:4] == b"para":
        (kind,) = struct.unpack(">H", tag[8:10])
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(kind)
        if count is None:
            raise Unsupported(f"a parametric curve of type {kind}")
        g, a, b, c, d, e, f = [*_s15(tag, 12, count), 0, 0, 0, 0, 0, 0][:7]
        if kind == 0:
            y = np.power(x, g)
        elif kind == 1:
            y = np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g), 0.0)
        elif kind == 2:
            y = np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g) + c, c)
        elif kind == 3:
            y = np.where(x >= d, np.power(np.maximum(a * x + b, 0), g), c * x)
        else:
            y = np.where(x >= d, np.power(np.maximum(a * x + b, 0), g) + e, c * x + f)
        return np.clip(y, 0.0, 1.0)
    raise Unsupported("a tone curve that is neither a table nor parametric")
