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


# ---------------------------------------------------------------------------------------------
# Code points (H.273: a HEIF/AVIF `nclx`, a PNG `cICP`, a video's tags) for the wide gamuts a photo
# comes in without a profile: the same conversion, with the matrix made from the primaries.

# AVCOL_PRI code -> (R, G, B, white) as CIE xy chromaticities
WIDE_PRIMARIES = {
    9: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),  # BT.2020
    11: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351)),  # DCI-P3 (SMPTE 431-2)
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),  # Display P3 (SMPTE 432-1)
}
D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def from_code_points(primaries: int, transfer: int) -> Profile | None:
    """The profile a picture tagged with these H.273 code points is in, where they name a gamut
    wider than sRGB (Display P3, DCI-P3, BT.2020) and an SDR transfer; None otherwise (sRGB, BT.709,
    unspecified: read as sRGB, as before; PQ and HLG are media.hdr's). The transfer: sRGB's
    curve for sRGB (13) or unspecified, BT.1886's gamma 2.4 for the BT.709 family (1, 6, 14, 15),
    linear for 8."""
    if primaries not in WIDE_PRIMARIES:
        return None
    if transfer in (2, 13):
        curve = srgb_decode(LEVELS)
    elif transfer in (1, 6, 14, 15):
        curve = np.power(LEVELS, 2.4)
    elif transfer == 8:
        curve = LEVELS.copy()
    else:
        return None
    return Profile(d50_matrix(*WIDE_PRIMARIES[primaries]), np.stack([curve] * 3))


def d50_matrix(*xy: tuple[float, float]) -> np.ndarray:
    """RGB to XYZ for primaries R, G, B and a white point (xy), adapted to D50 with the Bradford
    transform, as an ICC profile stores its matrix (columns: rXYZ, gXYZ, bXYZ)."""

    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])

    primaries = np.stack([xyz(*p) for p in xy[:3]], axis=1)
    white = xyz(*xy[3])
    to_white = primaries * np.linalg.solve(primaries, white)  # each column scaled: R+G+B = white
    cone = BRADFORD @ D50 / (BRADFORD @ white)
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone) @ BRADFORD
    return adapt @ to_white
