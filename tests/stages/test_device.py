"""The stages on the runner's device (`stages.device`) compute what the numpy stages compute: the
same torch code runs here on the CPU, and on CUDA in the `gpu` test."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.stages import StageChain, StageOptions, build_stages
from cartoonize.stages.device import DeviceStages
from tests.stages.media import texture, with_noise

FH, FW = 270, 480  # longer than the flow's 360 px: the flow is computed small and scaled up


def scene(frames: int = 24) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A panned texture between black letterbox bars that fades down, then a cut to another shot;
    and a 'cartoon' of each frame (colours changed, brighter, noisy: exposure and the blend act)."""
    rng = np.random.default_rng(7)
    shots = [texture(1, FH, FW + 64, cells=32), texture(2, FH, FW + 64, cells=32)]
    sources, cartoons = [], []
    for t in range(frames):
        shot = shots[0] if t < frames * 2 // 3 else shots[1]
        x = round(1.5 * t)
        frame = shot[:, x : x + FW].astype(np.float32) * (1.0 - 0.02 * t)
        if shot is shots[0]:
            frame[:20] = frame[-20:] = 0  # the first shot is letterboxed
        sources.append(with_noise(frame, 2.0, rng))
        cartoon = np.clip(frame[..., [1, 2, 0]] * 1.2 + 25, 0, 255)
        cartoons.append(with_noise(cartoon, 12.0, rng))
    return sources, cartoons


def run(chain, sources: list[np.ndarray], cartoons: list[np.ndarray], ahead: bool = False) -> np.ndarray:  # noqa: ANN001
    if ahead:
        for source in sources:
            chain.ahead(source)
    return np.stack([chain(s, c, t / 24) for t, (s, c) in enumerate(zip(sources, cartoons, strict=True))])


def test_the_device_stages_match_the_numpy_stages() -> None:
    sources, cartoons = scene()
    expected = run(build_stages(StageOptions()), sources, cartoons)
    stages = DeviceStages("cpu")
    got = run(stages, sources, cartoons)
    diff = np.abs(got.astype(np.int16) - expected)
    assert stages.stabilize is not None and stages.stabilize.cuts == 1  # the cut is found, once
    assert diff.mean() < 0.25 and diff.max() <= 2, (diff.mean(), diff.max())  # float vs uint8 between stages
    # and the stages did act: the bars are the source's black, the blend smoothed the noise
    bars = np.stack(sources[:16])
    assert (got[:16, :20] == bars[:, :20]).all() and (got[:16, -20:] == bars[:, -20:]).all()
    assert (
        np.abs(np.diff(got[:12, 40:-40].astype(np.float32), axis=0)).mean()
        < 0.6 * np.abs(np.diff(np.stack(cartoons[:12])[:, 40:-40].astype(np.float32), axis=0)).mean()
    )


def test_each_stage_alone_matches_its_numpy_stage() -> None:
    sources, cartoons = scene(10)
    for name in ("stabilize", "exposure", "bars"):
        options = StageOptions(**{n: n == name for n in ("stabilize", "exposure", "bars")})
        expected = run(build_stages(options), sources, cartoons)
        got = run(
            DeviceStages("cpu", **{n: n == name for n in ("stabilize", "exposure", "bars")}),
            sources,
            cartoons,
        )
        diff = np.abs(got.astype(np.int16) - expected)
        assert diff.mean() < 0.25 and diff.max() <= 2, (name, diff.mean(), diff.max())


def test_flows_started_ahead_are_used_and_change_nothing() -> None:
    sources, cartoons = scene(12)
    inline = run(DeviceStages("cpu"), sources, cartoons)
    stages = DeviceStages("cpu")
    assert run(stages, sources, cartoons, ahead=True).tolist() == inline.tolist()
    assert stages.stabilize is not None and stages.stabilize.used_ahead == len(sources) - 1
    # a frame that never reaches the stages (and one that was never announced) is computed in place
    stages = DeviceStages("cpu")
    for source in sources:
        stages.ahead(source)
    kept = [0, 1, 2, 4, 5]  # frame 3 dropped: the flow 2 -> 4 was not started ahead
    got = np.stack([stages(sources[i], cartoons[i], i / 24) for i in kept])
    fresh = DeviceStages("cpu")
    assert got.tolist() == np.stack([fresh(sources[i], cartoons[i], i / 24) for i in kept]).tolist()
    assert stages.stabilize is not None and stages.stabilize.used_ahead == 3  # 0->1, 1->2, 4->5


def test_the_chain_uses_the_device_stages_only_where_torch_has_that_gpu() -> None:
    import torch

    chain = build_stages(StageOptions(device="cuda"))
    on_gpu = torch.cuda.is_available()
    assert [type(s).__name__ for s in chain.stages] == (
        ["DeviceStages"] if on_gpu else ["Stabilize", "Exposure", "Bars"]
    )
    assert build_stages(StageOptions(device="cuda", raw=True)).describe() == "none"
    photo = build_stages(StageOptions(device="cuda", temporal=False))  # photos keep the numpy stages
    assert [type(s).__name__ for s in photo.stages] == ["Exposure", "Bars"]


def test_upsampling_on_the_device_matches_the_numpy_chain() -> None:
    """--infer-side with the stages on the device: the guided upsampling runs there first (the
    same torch code as `GuidedUpsample`; alone, bit for bit on the CPU), then the other stages;
    within the device stages' usual tolerance of the numpy chain."""
    from cartoonize.stages.upsample import GuidedUpsample, network_frame

    sources, cartoons = scene(5)
    smalls = [network_frame(c, 160) for c in cartoons]  # the network's output at a third of the size
    alone = run(DeviceStages("cpu", False, False, False, upsample=True), sources, smalls)
    assert alone.tolist() == run(StageChain([GuidedUpsample()]), sources, smalls).tolist()
    expected = run(build_stages(StageOptions(infer_side=160)), sources, smalls)
    stages = DeviceStages("cpu", upsample=True)
    assert stages.name == "guided upsampling + stabilize + exposure + bars (on cpu)"
    diff = np.abs(run(stages, sources, smalls).astype(np.int16) - expected)
    assert diff.mean() < 0.25 and diff.max() <= 2, (diff.mean(), diff.max())
    with pytest.raises(ValueError, match="upsample=True"):
        DeviceStages("cpu")(sources[0], smalls[0])


def test_the_chain_upsamples_on_the_gpu_with_the_other_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU, --infer-side puts the upsampling into the one device stage (with --raw, alone);
    photos keep the numpy chain. (`_on_gpu` is answered here: the chain is built, not run.)"""
    import cartoonize.stages.base as base

    monkeypatch.setattr(base, "_on_gpu", lambda device: True)
    chain = build_stages(StageOptions(device="cpu", infer_side=256))
    assert (
        chain.describe() == "guided upsampling + stabilize + exposure + bars (on cpu)"
        and len(chain.stages) == 1
    )
    raw = build_stages(StageOptions(device="cpu", infer_side=256, raw=True))
    assert raw.describe() == "guided upsampling (on cpu)"
    assert build_stages(StageOptions(device="cpu", raw=True)).describe() == "none"
    photo = build_stages(StageOptions(device="cpu", infer_side=256, temporal=False))
    assert [type(s).__name__ for s in photo.stages] == ["GuidedUpsample", "Exposure", "Bars"]


@pytest.mark.gpu
def test_the_stages_on_cuda_match_the_numpy_stages() -> None:
    sources, cartoons = scene()
    expected = run(build_stages(StageOptions()), sources, cartoons)
    chain = build_stages(StageOptions(device="cuda"))
    assert chain.describe() == "stabilize + exposure + bars (on cuda)"
    diff = np.abs(run(chain, sources, cartoons, ahead=True).astype(np.int16) - expected)
    assert diff.mean() < 0.25 and diff.max() <= 3, (diff.mean(), diff.max())


def test_the_stages_read_from_the_device_three_times_a_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read of a device value makes the host wait for the GPU (and take the GIL back after):
    the cut test, exposure's statistics and the bars' row means share one, the bars' columns
    (between the rows found) take one, and the frame itself one. Counted here by the torch calls
    that read, on the CPU."""
    import torch

    reads: list[str] = []
    for name in ("tolist", "item", "cpu", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    sources, cartoons = scene(8)
    stages = DeviceStages("cpu")
    per_frame = []
    for t, (s, c) in enumerate(zip(sources, cartoons, strict=True)):
        reads.clear()
        stages(s, c, t / 24)
        per_frame.append(sorted(reads))
    assert per_frame[1:] == [["cpu", "cpu", "tolist"]] * 7, per_frame  # after the first frame


@pytest.mark.gpu
def test_upsampling_on_cuda_matches_the_numpy_chain() -> None:
    from cartoonize.stages.upsample import network_frame

    sources, cartoons = scene(5)
    smalls = [network_frame(c, 160) for c in cartoons]
    expected = run(build_stages(StageOptions(infer_side=160)), sources, smalls)
    chain = build_stages(StageOptions(device="cuda", infer_side=160))
    assert chain.describe() == "guided upsampling + stabilize + exposure + bars (on cuda)"
    diff = np.abs(run(chain, sources, smalls, ahead=True).astype(np.int16) - expected)
    assert diff.mean() < 0.25 and diff.max() <= 3, (diff.mean(), diff.max())
