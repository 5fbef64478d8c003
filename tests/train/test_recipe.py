"""The recipe's steps, by value: the pool, D before G, the author's init and biases, the schedule.

Each test states a number the first author's code gives (FlyingGoblin/CartoonGAN) and checks that
ours gives it too, so a change to the recipe fails here rather than in a week of GPU time.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from cartoonize.errors import CartoonizeError  # noqa: E402
from cartoonize.model import Generator, GeneratorConfig, ModelIO  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.discriminator import Discriminator  # noqa: E402
from train.losses import FakePool  # noqa: E402
from train.recipe import CartoonGAN, author_init  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")


def make_recipe(vgg, init: bool = True, **changes) -> CartoonGAN:
    config = TrainConfig(
        photos=Path("p"), cartoons=Path("c"), out=Path("o"), image_size=32, batch_size=2, **changes
    )
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=8, residual_blocks=1))
    discriminator = Discriminator()
    if init and config.weight_init == "author":
        author_init(generator)
        author_init(discriminator)
    return CartoonGAN(config, generator, discriminator, vgg, ModelIO(), torch.device("cpu"))


def make_batch(seed: int = 0, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, 32, 32, generator=g) * 2 - 1 for k in ("photo", "cartoon", "smoothed")}


# --- the pool


def test_pool_size_zero_trains_and_hands_back_detached_fakes(vgg) -> None:
    """The crash: with no pool, D's loss backpropagated through G's freed graph."""
    fake = torch.rand(2, 3, 8, 8, requires_grad=True) * 2
    assert not FakePool(0, seed=0).query(fake).requires_grad
    assert not FakePool(3, seed=0).query(fake).requires_grad
    for d_first in (True, False):
        recipe = make_recipe(vgg, pool_size=0, d_first=d_first)
        metrics = recipe.adversarial_step(make_batch())
        assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_negative_pool_size_is_refused() -> None:
    with pytest.raises(CartoonizeError, match="--pool-size must be 0"):
        TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("o"), pool_size=-1)


def test_pool_holds_whole_batches_as_the_author() -> None:
    pool = FakePool(3, seed=1, unit="batch")
    returned = []
    for i in range(40):  # batch i: every pixel of both images is i
        out = pool.query(torch.full((2, 3, 4, 4), float(i)))
        returned.append(out)
        assert out.shape == (2, 3, 4, 4)
        assert out.unique().numel() == 1, "a batch came back mixed from two batches"
    values = [int(out[0, 0, 0, 0]) for out in returned]
    assert values[:3] == [0, 1, 2]  # filling up: each batch comes back as is
    old = [i for i, v in enumerate(values) if v != i]
    assert 10 < len(old) < 30  # about half of the later batches are old ones
    assert all(values[i] < i for i in old)
    # per image (CycleGAN's PyTorch pool), images of different batches do mix
    pool = FakePool(3, seed=1, unit="image")
    mixed = [pool.query(torch.full((2, 3, 4, 4), float(i))).unique().numel() for i in range(40)]
    assert max(mixed) == 2


def test_pool_state_round_trips() -> None:
    a, b = FakePool(2, seed=3), FakePool(2, seed=99)
    for i in range(5):
        a.query(torch.full((2, 3, 4, 4), float(i)))
    b.load_state_dict(a.state_dict(), torch.device("cpu"))
    for i in range(5, 15):
        batch = torch.full((2, 3, 4, 4), float(i))
        assert torch.equal(a.query(batch), b.query(batch))


# --- D before G, the losses' targets


def lsgan(logits: torch.Tensor, target: float) -> float:
    return F.mse_loss(logits, torch.full_like(logits, target)).item()


@pytest.mark.parametrize("d_first", [True, False])
def test_adversarial_step_losses_and_order(vgg, d_first: bool) -> None:
    """d_real: D(cartoon) -> 1; d_edge: D(smoothed) -> 0; d_fake: D(G(photo)) -> 0; g_adv: D(G(photo))
    -> 1, through the D of that moment: already updated on this batch when D goes first."""
    recipe = make_recipe(vgg, pool_size=0, d_first=d_first, lr_d=1e-2, lr_g=1e-2)
    batch = make_batch(seed=4)
    G0, D0 = copy.deepcopy(recipe.generator), copy.deepcopy(recipe.discriminator)
    metrics = recipe.adversarial_step(batch)
    D1 = recipe.discriminator
    with torch.no_grad():
        fake0 = G0(batch["photo"])
        assert metrics["d_real"] == pytest.approx(lsgan(D0(batch["cartoon"]), 1.0), rel=1e-4)
        assert metrics["d_edge"] == pytest.approx(lsgan(D0(batch["smoothed"]), 0.0), rel=1e-4)
        assert metrics["d_fake"] == pytest.approx(lsgan(D0(fake0), 0.0), rel=1e-4)
        g_adv_d0, g_adv_d1 = lsgan(D0(fake0), 1.0), lsgan(D1(fake0), 1.0)
    assert abs(g_adv_d0 - g_adv_d1) > 1e-3  # D moved: the order shows
    assert metrics["g_adv"] == pytest.approx(g_adv_d1 if d_first else g_adv_d0, rel=1e-4)
    # the labels are distinct values, not a coincidence of this batch
    assert metrics["d_real"] != pytest.approx(lsgan(D0(batch["cartoon"]).detach(), 0.0), rel=1e-2)
    assert metrics["d_edge"] != pytest.approx(lsgan(D0(batch["smoothed"]).detach(), 1.0), rel=1e-2)


def test_generator_step_raises_d_of_its_fakes(vgg) -> None:
    """G's target is 'real': with D held still (lr 0) and no content loss, D(G(photo)) goes up."""
    recipe = make_recipe(vgg, pool_size=0, lr_d=0.0, lr_g=1e-3, content_weight=0.0, zero_bias=False)
    with torch.no_grad():  # D says 0.5 everywhere, give or take: towards 1 is up, towards 0 down
        recipe.discriminator.head.bias.fill_(0.5)
    batch = make_batch(seed=5)
    with torch.no_grad():
        before = recipe.discriminator(recipe.generator(batch["photo"])).mean().item()
    for _ in range(5):
        recipe.adversarial_step(batch)
    with torch.no_grad():
        after = recipe.discriminator(recipe.generator(batch["photo"])).mean().item()
    assert 0.4 < before < 0.6 and after > before + 1e-3, (before, after)


# --- the author's initialisation and biases


def test_author_init_values() -> None:
    torch.manual_seed(0)
    net = Generator(GeneratorConfig(base_channels=16, residual_blocks=2))
    author_init(net)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.mean().abs() < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs)
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    scale = torch.cat([m.weight for m in norms])
    assert 0 <= scale.min() and scale.max() <= 1 and scale.mean().item() == pytest.approx(0.5, abs=0.05)
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)
    default = Generator(GeneratorConfig(base_channels=16, residual_blocks=2))  # PyTorch's init
    assert torch.cat([m.weight for m in default.modules() if isinstance(m, nn.InstanceNorm2d)]).min() == 1


@pytest.mark.parametrize("zero_bias", [True, False])
def test_conv_biases_stay_zero(vgg, zero_bias: bool) -> None:
    recipe = make_recipe(vgg, zero_bias=zero_bias, lr_g=1e-3, lr_d=1e-3)
    recipe.init_step(make_batch())
    recipe.adversarial_step(make_batch(seed=1))
    biases = [
        m.bias
        for net in (recipe.generator, recipe.discriminator)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    nonzero = sum(int(torch.count_nonzero(b)) for b in biases)
    assert (nonzero == 0) == zero_bias


# --- the schedule


def lr_by_epoch(recipe: CartoonGAN) -> list[tuple[str, float, float]]:
    out = []
    for phase in recipe.phases(skip_init=False):
        for k in range(phase.epochs):
            phase.start_epoch(k)
            out.append(
                (phase.name, recipe.opt_init.param_groups[0]["lr"], recipe.opt_g.param_groups[0]["lr"])
            )
            if phase.name in ("adversarial", "decay"):
                assert recipe.opt_d.param_groups[0]["lr"] == out[-1][2]  # lr_d = lr_g, decayed alike
    return out


def test_default_schedule_is_the_authors(vgg) -> None:
    """init 10 epochs at 2e-4 + 10 decaying linearly to 0; GAN 100 at 1e-5 + 100 decaying to 0."""
    cfg = TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("o"))
    assert (cfg.init_lr, cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (2e-4, 1e-5, 1e-5, 0.5, 0.999)
    assert (cfg.init_epochs, cfg.init_decay_epochs, cfg.adv_epochs, cfg.decay_epochs) == (10, 10, 100, 100)
    assert (cfg.batch_size, cfg.pool_size, cfg.pool_unit, cfg.d_first) == (8, 50, "batch", True)
    assert (cfg.weight_init, cfg.zero_bias, cfg.shared_adam) == ("author", True, True)
    recipe = make_recipe(vgg)
    schedule = lr_by_epoch(recipe)
    assert [s[0] for s in schedule] == ["init"] * 10 + ["init_decay"] * 10 + ["adversarial"] * 100 + [
        "decay"
    ] * 100
    init = [s[1] for s in schedule[:20]]
    assert init == pytest.approx([2e-4] * 11 + [2e-4 * (10 - k) / 10 for k in range(1, 10)])
    gan = [s[2] for s in schedule[20:]]
    assert gan == pytest.approx([1e-5] * 101 + [1e-5 * (100 - k) / 100 for k in range(1, 100)])


def test_adam_state_carries_from_init_into_the_gan_phase(vgg) -> None:
    recipe = make_recipe(vgg, init_epochs=1, init_decay_epochs=0, adv_epochs=1, decay_epochs=0)
    phases = recipe.phases(skip_init=False)
    phases[0].start_epoch(0)
    for seed in range(3):
        recipe.init_step(make_batch(seed))
    phases[2].start_epoch(0)
    recipe.adversarial_step(make_batch(9))
    assert recipe.opt_g is recipe.opt_init
    weight = recipe.generator.flat[1].weight
    assert int(recipe.opt_g.state[weight]["step"]) == 4 and recipe.opt_g.param_groups[0]["lr"] == 1e-5
    separate = make_recipe(vgg, shared_adam=False)
    assert separate.opt_g is not separate.opt_init


def test_tensorboard_keeps_each_loss_one_curve_through_the_decays(vgg, tmp_path: Path) -> None:
    """The decays change only the learning rate: their losses were logged as sections of their own
    (`decay/g_adv` beside `adversarial/g_adv`, `init_decay/content`), each loss cut in two charts.
    Now one section per objective, content-only `init` and `adversarial`, and the rates outside."""
    from dataclasses import replace

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from train.loop import MetricLog, Trainer

    recipe = make_recipe(vgg)
    phases = [replace(phase, epochs=1) for phase in recipe.phases(skip_init=False)]
    log = MetricLog(tmp_path, list(CartoonGAN.METRICS))
    trainer = Trainer(phases, lambda epoch, first: [make_batch(epoch)], 1, log, print, print)
    trainer.console.quiet = True
    trainer.run()
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    adversarial = {
        f"adversarial/{name}": [3, 4] for name in ("content", "g_adv", "d_real", "d_edge", "d_fake")
    }
    assert steps == {"init/content": [1, 2], **adversarial, "lr_g": [1, 2, 3, 4], "lr_d": [3, 4]}
    with (tmp_path / "metrics.csv").open() as f:  # the CSV keeps each step's phase by its name
        assert [row.split(",")[2] for row in f.read().splitlines()[1:]] == [p.name for p in phases]
