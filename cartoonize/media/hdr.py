"""HDR video (HLG and PQ, as phones and HDR cameras record it) to SDR BT.709 RGB at decode.

Why. The network was trained on SDR BT.709 pictures. Given HLG or PQ code values as if they were
SDR, it sees a grey, flat picture (PQ puts SDR white at 58 % of its range; a PQ clip's frame
spanned 60–145 of 255 where its SDR master spans 32–252), and the cartoon, written as 8 bits and
tagged HDR like the source, was shown by players over-saturated and clipped (mean saturation 0.80
against the SDR cartoon's 0.39). Everything after the decoder is 8-bit SDR, so the source is
brought to SDR where it is decoded, and the output is SDR BT.709, tagged so (`SDR`).

The mapping, in the practice of ITU-R BT.2408 and BT.2390:
1. code values to display light: PQ's EOTF (SMPTE ST 2084, absolute nits); HLG's inverse OETF
   and its OOTF for a 1000-nit display (BT.2100: γ = 1.2, on the scene's BT.2020 luminance);
2. the source's primaries (BT.2020, or Display P3 where it is tagged so) to BT.709, in linear
   light (for BT.2020 the matrix of BT.2087); colours outside BT.709 are clipped;
3. HDR reference white (203 nits, BT.2408: a sheet of paper, a face's highlight) becomes SDR
   white; above `KNEE` of it, the largest channel rolls off smoothly toward white (slope 1 at the
   knee, approaching 1.0), every channel scaled alike, so a highlight keeps its hue;
4. encoded for an SDR display (the inverse of BT.1886's gamma 2.4): an SDR screen shows the light
   computed. Near black its slope is steep: a dark saturated colour's darkest channel, which in
   BT.2020 is a small difference of larger values, comes out a few levels above 0 (10-bit PQ
   rounds those values to 1e-3 of white; the power makes that up to 10 levels). (Both FFmpeg's own colour management, scale's `out_transfer=bt709`, and zimg's convert
   display light so; BT.709's camera curve instead made the picture 16 levels darker than its SDR
   master on a clip made from one.)

FFmpeg does the work: its `scale` filter converts the frame to float RGB with the source's
matrix and range, at the output size, and `lut3d` applies the mapping, baked once into a
`LUT_SIZE`³ table (tetrahedral interpolation), before `format` gives packed 8-bit RGB. Against the
mapping computed directly, the table is within 2 levels on the grey scale and for 99 % of a sweep
of colours; near the edge of BT.709's gamut, where a channel is clipped at black and the curve is
steepest, it is off by up to 35 levels in that channel (a few pixels of the sweep's most saturated
colours). A 1080p
frame takes 24 ms on this 2-core CPU (the matrix alone, for SDR: 9 ms), and the table 0.4 s once;
swscale's own colour management (scale's `out_transfer`) took 300 ms for a 640×360 frame.
"""

from __future__ import annotations

import functools
import os
import tempfile
from fractions import Fraction
from typing import Any

import numpy as np

from cartoonize.media.files import BT709, LIMITED, Colour

PQ, HLG = 16, 18  # AVColorTransferCharacteristic: SMPTE ST 2084, ARIB STD-B67
TRANSFER_NAMES = {PQ: "PQ", HLG: "HLG"}
PRIMARY_NAMES = {9: "BT.2020", 1: "BT.709", 12: "P3-D65", 11: "DCI-P3"}
SDR = Colour(BT709, LIMITED, 1, 1)  # what the output is, and says it is

REFERENCE_WHITE = 203.0  # nits: HDR's diffuse white (BT.2408), SDR's 1.0
HLG_PEAK = 1000.0  # nits: the display HLG's OOTF is applied for (BT.2100's reference)
KNEE = 0.8  # of SDR white: where highlights begin to roll off (white itself comes out at 247 of 255)
LUT_SIZE = 65
BT2020 = 9  # AVColorPrimaries: HDR's own, and what a source tagged otherwise (or not) is read as
D65 = (0.3127, 0.3290)
# the primaries' chromaticities (x, y): red, green, blue, white. A PQ or HLG source may be graded
# in Display P3 (12) instead of BT.2020; read as BT.2020, its colours came out over-saturated.
# DCI-P3 (11, a cinema's white) is not among them: it is read as BT.2020, and the summary says so.
CHROMATICITIES = {
    1: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), D65),  # BT.709
    BT2020: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), D65),
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), D65),  # P3-D65 (SMPTE EG 432)
}


def rgb_to_xyz(primaries: int) -> np.ndarray:
    """Linear RGB in `primaries` (CHROMATICITIES; others: BT.2020) to CIE XYZ, white at Y = 1."""
    *rgb, white = CHROMATICITIES.get(primaries, CHROMATICITIES[BT2020])
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in (*rgb, white)])
    return xyz[:3].T * np.linalg.solve(xyz[:3].T, xyz[3])


def to_bt709(primaries: int) -> np.ndarray:
    """Linear RGB in `primaries` to linear BT.709 RGB, from the chromaticities (for BT.2020,
    ITU-R BT.2087's matrix to 6 digits: its 4-digit one is off by 1e-4, which the gamma's slope
    near black makes 5 levels)."""
    return np.linalg.solve(rgb_to_xyz(1), rgb_to_xyz(primaries))


def is_hdr(colour: Colour) -> bool:
    return colour.trc in TRANSFER_NAMES


def describe(colour: Colour) -> str:
    """The summary's line for an HDR source."""
    primaries = PRIMARY_NAMES.get(colour.primaries, f"primaries {colour.primaries}")
    if colour.primaries not in CHROMATICITIES and colour.primaries != 2:  # (2: untagged)
        primaries += " read as BT.2020"
    return (
        f"HDR source ({TRANSFER_NAMES[colour.trc]}, {primaries}) tone-mapped to SDR BT.709 "
        f"(white at {REFERENCE_WHITE:.0f} nits); the output is SDR"
    )


def pq_to_nits(code: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's EOTF: a PQ code value in [0, 1] to display light in nits."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    e = np.power(np.clip(code, 0.0, 1.0), 1 / m2)
    return 10000.0 * np.power(np.maximum(e - c1, 0.0) / (c2 - c3 * e), 1 / m1)


def hlg_to_nits(code: np.ndarray, primaries: int = BT2020) -> np.ndarray:
    """BT.2100 HLG: (..., 3) code values in [0, 1] to display light in nits on a `HLG_PEAK`
    display (the inverse OETF, then the OOTF on the scene's luminance in its `primaries`)."""
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    e = np.clip(code, 0.0, 1.0)
    scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)
    luminance = np.maximum(scene @ rgb_to_xyz(primaries)[1], 1e-12)[..., None]
    return HLG_PEAK * np.power(luminance, 1.2 - 1) * scene


def to_sdr(code: np.ndarray, trc: int, primaries: int = BT2020) -> np.ndarray:
    """(..., 3) R'G'B' code values in [0, 1] (PQ or HLG, in `primaries`: BT.2020 unless said) to
    BT.709 R'G'B' in [0, 1] for an SDR display: the mapping of this module's docstring."""
    nits = pq_to_nits(code) if trc == PQ else hlg_to_nits(code, primaries)
    light = np.clip((nits / REFERENCE_WHITE) @ to_bt709(primaries).T, 0.0, None)  # 1.0: SDR white
    peak = light.max(axis=-1, keepdims=True)
    rolled = KNEE + (1 - KNEE) * (1 - np.exp(-(peak - KNEE) / (1 - KNEE)))
    scale = np.where(peak > KNEE, rolled / np.maximum(peak, 1e-12), 1.0)
    return np.power(np.clip(light * scale, 0.0, 1.0), 1 / 2.4)


@functools.cache  # 0.4 s to make: once per transfer and primaries, not per video, segment or photo
def cube(trc: int, primaries: int = BT2020, size: int = LUT_SIZE) -> str:
    """The mapping as an Adobe/Resolve `.cube` 3D LUT (red varies fastest), as lut3d reads it."""
    axis = np.linspace(0.0, 1.0, size)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    table = to_sdr(np.stack([red, green, blue], axis=-1).reshape(-1, 3), trc, primaries)
    rows = ("%.5f %.5f %.5f\n" * len(table)) % tuple(table.ravel())  # 0.2 s; a loop over rows took 1.7
    return f"LUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n{rows}"


class ToneMap:
    """Decoded HDR frames to SDR BT.709 RGB (H, W, 3) uint8 at (width, height), through FFmpeg's
    filters; the graph is built at the first frame (its size, pixel format and primaries)."""

    def __init__(self, trc: int, width: int, height: int) -> None:
        self.trc, self.width, self.height = trc, width, height
        self._graph: Any = None  # an av.filter.Graph
        self._shape: tuple[int, int, str, int] | None = None

    def _build(self, frame) -> None:  # noqa: ANN001 - a decoded av.VideoFrame
        from av.filter import Graph

        graph = Graph()
        source = graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 1000)
        )
        scale = graph.add("scale", w=str(self.width), h=str(self.height),
                          flags="area+accurate_rnd+full_chroma_int")  # fmt: skip
        as_float = graph.add("format", pix_fmts="gbrpf32le")
        fd, path = tempfile.mkstemp(suffix=".cube", prefix="cartoonize-")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(cube(self.trc, _primaries(frame)))
            lut = graph.add("lut3d", file=path, interp="tetrahedral")  # read as the filter starts
        finally:
            os.unlink(path)
        packed = graph.add("format", pix_fmts="rgb24")
        sink = graph.add("buffersink")
        source.link_to(scale)
        scale.link_to(as_float)
        as_float.link_to(lut)
        lut.link_to(packed)
        packed.link_to(sink)
        graph.configure()
        self._graph = graph
        self._shape = _shape(frame)

    def __call__(self, frame) -> np.ndarray:  # noqa: ANN001 - a decoded av.VideoFrame
        if self._graph is None or self._shape != _shape(frame):
            self._build(frame)
        assert self._graph is not None
        pts = frame.pts
        frame.pts = None  # its own clock is not the graph's; one frame in, one out
        try:
            self._graph.push(frame)
            out = self._graph.pull()
        finally:
            frame.pts = pts
        rgb: np.ndarray = out.to_ndarray(format="rgb24")
        return rgb


def _primaries(frame) -> int:  # noqa: ANN001 - a decoded av.VideoFrame
    """The frame's own primaries (the decoder's, from the stream's tags); others: BT.2020."""
    return int(frame.color_primaries) if int(frame.color_primaries) in CHROMATICITIES else BT2020


def _shape(frame) -> tuple[int, int, str, int]:  # noqa: ANN001 - a decoded av.VideoFrame
    return (frame.width, frame.height, frame.format.name, _primaries(frame))
