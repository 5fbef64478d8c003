"""Shared fixtures: tiny models, generated media, the real data in ../shared, the GPU markers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartoonize.media.scheduling import put_back, realtime_threads
from tests import watchdog
from tests.helpers import make_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CARTOONIZE_SHARED", ROOT.parent / "shared"))
SHARED_WEIGHTS = SHARED / "weights"
SHARED_MEDIA = SHARED / "media"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return _has_cuda()


def pytest_addoption(parser: pytest.Parser) -> None:
    watchdog.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(watchdog, "cartoonize-watchdog")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "gpu": (_has_cuda, "needs an NVIDIA GPU with CUDA (none here)"),
        "tensorrt": (_has_tensorrt, "needs the tensorrt package and a CUDA GPU (not installed here)"),
        "shared": (SHARED_WEIGHTS.is_dir, f"needs the shared weights and clips at {SHARED}"),
    }
    verdicts: dict[str, bool] = {}
    for item in items:
        for marker, (check, reason) in skips.items():
            if marker in item.keywords:
                if marker not in verdicts:
                    verdicts[marker] = check()
                if not verdicts[marker]:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own cache and engine store (never the checkout's engines/), and
    weights come from ../shared, never the network."""
    cache = tmp_path_factory.getbasetemp() / "cartoonize-cache"
    monkeypatch.setenv("CARTOONIZE_CACHE", str(cache))
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(cache / "engines"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", SHARED_WEIGHTS.absolute().as_uri())


@pytest.fixture(autouse=True)
def _no_thread_left_real_time() -> Iterator[None]:
    """A test that leaves a thread of this process in a real-time scheduling class fails, and the
    thread is put back. SVT-AV1 opened as root made the test's thread SCHED_FIFO 99, and every
    thread started after it in the suite inherited that: ONNX Runtime's spinning workers then held
    both cores, and a signal test a hundred tests later failed (media/scheduling.py)."""
    before = realtime_threads()
    yield
    left = realtime_threads() - before
    if left:
        put_back(left)
        pytest.fail(f"{len(left)} thread(s) left in a real-time scheduling class: open encoders with "
                    "cartoonize.media.scheduling.open_encoder, or within its kept()")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random generator (8 base channels, 1 residual block) saved as a checkpoint."""
    import torch

    from cartoonize.model import Checkpoint, Generator, GeneratorConfig, ModelIO

    torch.manual_seed(0)
    config = GeneratorConfig(base_channels=8, residual_blocks=1)
    generator = Generator(config)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    Checkpoint(generator.state_dict(), config, ModelIO(style="tiny-test")).save(path)
    return path


@pytest.fixture(scope="session")
def hayao_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Hayao style, converted from ../shared, or the checkpoint named by
    CARTOONIZE_TEST_HAYAO (how the GPU check carries it to a machine without ../shared)."""
    carried = os.environ.get("CARTOONIZE_TEST_HAYAO")
    if carried and Path(carried).is_file():
        return Path(carried)
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"needs the shared weights at {SHARED_WEIGHTS}")
    from cartoonize.styles import checkpoint_from_npy_folder, get_style

    style = get_style("hayao")
    folder = next(SHARED_WEIGHTS.rglob("pretrained_weights/hayao"))
    path = tmp_path_factory.mktemp("styles") / "hayao.pt"
    checkpoint_from_npy_folder(style, folder).save(path)
    return path


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of 64×48 at 12 fps with a stereo AAC sine track, as mp4."""
    path = tmp_path_factory.mktemp("media") / "small.mp4"
    make_video(path, width=64, height=48, frames=24, rate=12, audio="aac")
    return path


@pytest.fixture(scope="session")
def tiny_bgr_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seeded generator that expects BGR, as the released styles do (so the export
    wrapper's channel swap runs), with random norm scales and shifts and eps 1e-9."""
    from tests.reference import seeded_checkpoint

    path = tmp_path_factory.mktemp("models") / "tiny_bgr.pt"
    seeded_checkpoint("BGR", seed=1, norm_eps=1e-9).save(path)
    return path
