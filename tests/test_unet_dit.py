"""The image networks (ADM UNet, DiT), the EDM time grid and the image recipe's checks.

Known answers: the EDM grid against Karras et al.'s formula written out independently; DiT
parameter counts against table 1 of Peebles & Xie (2023); zero-initialised outputs (exact
zeros); the adaLN-Zero identity at initialisation; per-example dropout masks (a batch's rows
equal the rows computed alone, which exact gradient accumulation needs) and their binomial
statistics; bfloat16 against float32 outputs; the fixed 2D position embedding at known points.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_testing import repo_config

from flowjax import solvers
from flowjax.models import DiT, UNet
from flowjax.models.dit import position_embedding_2d
from flowjax.models.layers import dropout
from flowjax.train import validate_config


TINY_UNET = dict(
    channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_factors=(2,), head_dim=8,
    norm_groups=8,
)
TINY_DIT = dict(size="S", patch_size=2, hidden_dim=32, depth=2, num_heads=2)


def randomise(model: nnx.Module, seed: int = 0, scale: float = 0.1) -> nnx.Module:
    """The model with every parameter replaced by N(0, scale^2) draws (so that the
    zero-initialised output layers do not hide the network); drawn with NumPy."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda p: jnp.asarray(scale * rng.standard_normal(p.shape), p.dtype), params
    )
    return nnx.merge(graphdef, params, rest)


class Compiled:
    """model(x, t, **kwargs) as one compiled call (eager NNX calls dispatch op by op), for any
    variables of the model's structure (`with_state`)."""

    def __init__(self, model: nnx.Module):
        self.graphdef, self.state = nnx.split(model)
        self.apply = jax.jit(
            lambda state, x, t, kwargs: nnx.merge(self.graphdef, state)(x, t, **kwargs)
        )

    def with_state(self, model: nnx.Module) -> Compiled:
        other = object.__new__(Compiled)
        other.graphdef, other.apply, other.state = self.graphdef, self.apply, nnx.state(model)
        return other

    def __call__(self, x, t, **kwargs):
        return self.apply(self.state, x, jnp.asarray(t, jnp.float32) * jnp.ones(x.shape[0]),
                          kwargs)


@pytest.fixture(scope="module")
def unet():
    """A compiled conditional UNet with dropout 0.3, with random parameters."""
    return Compiled(
        randomise(UNet((8, 8, 1), **TINY_UNET, dropout=0.3, num_classes=10, rngs=nnx.Rngs(0)))
    )


@pytest.fixture(scope="module")
def dit():
    """A compiled conditional DiT with random parameters."""
    return Compiled(randomise(DiT((8, 8, 1), **TINY_DIT, num_classes=10, rngs=nnx.Rngs(0))))


# EDM time grid -------------------------------------------------------------------------------


def test_edm_grid_is_the_karras_sigma_grid_in_flow_time():
    n, smin, smax, rho = 6, 0.002, 80.0, 7.0
    grid = np.asarray(solvers.edm_time_grid(n, sigma_min=smin, sigma_max=smax, rho=rho))
    assert grid.shape == (n + 1,) and grid[-1] == 1.0
    assert np.all(np.diff(grid) > 0)
    # Karras et al. (2022), eq. 5, term by term; flow time from the CondOT SNR t / (1 - t).
    expected_sigma = [
        (smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
        for i in range(n)
    ]
    np.testing.assert_allclose((1 - grid[:-1]) / grid[:-1], expected_sigma, rtol=1e-12)
    np.testing.assert_allclose(grid[0], 1 / 81, rtol=1e-12)
    # rho = 1: uniform in sigma.
    linear = np.asarray(solvers.edm_time_grid(5, rho=1.0))
    np.testing.assert_allclose(np.diff((1 - linear[:-1]) / linear[:-1]), -(80 - 0.002) / 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=4, sigma_min=1.0, sigma_max=0.5), "sigma_min < sigma_max"),
        (dict(num_steps=4, rho=0.0), "rho"),
    ],
)
def test_edm_grid_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solvers.edm_time_grid(**kwargs)


def test_heun_on_the_edm_grid_integrates_a_linear_field_exactly():
    """dx/dt = a x + b t has the closed-form flow; Heun (2nd order) on any grid is exact for
    a field linear in t along x = const, here u = 2t: x_1 = x_t0 + 1 - t0^2."""
    grid = solvers.edm_time_grid(5)
    x0 = jnp.arange(4.0)
    x1 = solvers.ode_sample(lambda x, t: 2 * t * jnp.ones_like(x), x0, method="heun",
                            time_grid=grid)
    np.testing.assert_allclose(x1, x0 + 1 - grid[0] ** 2, rtol=1e-6)


# Networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, params_m",
    [("S", 33), ("B", 130), pytest.param("XL", 675, marks=pytest.mark.slow)],
)
def test_dit_parameter_counts_match_the_paper(size, params_m):
    """Table 1 of Peebles & Xie (2023): DiT-*/2 on 32x32x4 latents with 1000 classes."""
    model = nnx.eval_shape(
        lambda: DiT((32, 32, 4), size=size, patch_size=2, num_classes=1000, rngs=nnx.Rngs(0))
    )
    _, params, _ = nnx.split(model, nnx.Param, ...)
    count = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
    assert abs(count / 1e6 - params_m) / params_m < 0.02, count


def test_fresh_networks_output_zero_and_dit_blocks_start_as_identity(unet, dit):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 8, 8, 1)), jnp.float32)
    label = jnp.arange(6)
    fresh_unet = UNet((8, 8, 1), **TINY_UNET, dropout=0.3, num_classes=10, rngs=nnx.Rngs(0))
    fresh_dit = DiT((8, 8, 1), **TINY_DIT, num_classes=10, rngs=nnx.Rngs(0))
    assert np.all(np.asarray(unet.with_state(fresh_unet)(x, 0.5, label=label)) == 0)
    assert np.all(np.asarray(dit.with_state(fresh_dit)(x, 0.5, label=label)) == 0)
    # adaLN-Zero: with zero modulation every block maps its tokens to themselves.
    tokens = jnp.asarray(np.random.default_rng(1).standard_normal((2, 16, 32)), jnp.float32)
    c = jnp.asarray(np.random.default_rng(2).standard_normal((2, 32)), jnp.float32)
    block = jax.jit(lambda tokens, c: fresh_dit.blocks[0](tokens, c))
    np.testing.assert_array_equal(block(tokens, c), tokens)


def test_position_embedding_at_known_points():
    emb = position_embedding_2d(4, 8)  # (16 tokens, 8): [sin row, cos row, sin col, cos col]
    np.testing.assert_allclose(emb[0], [0, 0, 1, 1, 0, 0, 1, 1], atol=1e-7)
    token = 1 * 4 + 3  # row 1, column 3; frequencies 1 and 1/100
    np.testing.assert_allclose(
        emb[token],
        [np.sin(1), np.sin(0.01), np.cos(1), np.cos(0.01),
         np.sin(3), np.sin(0.03), np.cos(3), np.cos(0.03)],
        rtol=1e-6,
    )


def test_unet_rows_and_dropout_masks_are_per_example(unet):
    """Row b of a batch depends only on example b, its label, time and dropout seed (here:
    permuting the batch permutes the rows), so a micro-batch computes exactly the rows of the
    large batch (gradient accumulation)."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((6, 8, 8, 1)), jnp.float32)
    t = jnp.linspace(0.1, 0.9, 6)
    label = jnp.array([0, 1, 2, 10, 4, 5])  # 10: the null label of guidance
    seeds = jnp.arange(6, dtype=jnp.uint32) * 7919
    f = unet
    full = f(x, t, label=label, dropout_seed=seeds)
    perm = np.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_allclose(
        f(x[perm], t[perm], label=label[perm], dropout_seed=seeds[perm]), full[perm],
        rtol=2e-5, atol=1e-6,
    )
    # Dropout is on with seeds (changes the output), off without.
    no_dropout = f(x, t, label=label)
    assert float(jnp.abs(full - no_dropout).max()) > 1e-3
    # The label matters.
    other = f(x, t, label=(label + 1) % 10)
    assert float(jnp.abs(other - no_dropout).max()) > 1e-4


def test_dropout_statistics():
    """Kept fraction ~ Binomial(n, 1 - rate) within 5 standard deviations; kept entries scaled
    by 1 / (1 - rate); masks differ between layers and between seeds."""
    rate, x = 0.3, jnp.ones((4, 50, 50))
    drop = jax.jit(dropout, static_argnums=(1, 3))
    out = np.asarray(drop(x, rate, jnp.arange(4, dtype=jnp.uint32), 0))
    n = out.size
    kept = np.count_nonzero(out)
    assert abs(kept - n * (1 - rate)) < 5 * math.sqrt(n * rate * (1 - rate))
    np.testing.assert_allclose(out[out != 0], 1 / (1 - rate), rtol=1e-6)
    other_layer = np.asarray(drop(x, rate, jnp.arange(4, dtype=jnp.uint32), 1))
    assert not np.array_equal(out != 0, other_layer != 0)
    assert not np.array_equal(out[0] != 0, out[1] != 0)
    np.testing.assert_array_equal(dropout(x, rate, None, layer=0), x)


@pytest.mark.parametrize("name", [pytest.param("unet", marks=pytest.mark.slow), "dit"])
def test_bfloat16_compute_tracks_float32(name, request):
    cls, kwargs = (UNet, TINY_UNET) if name == "unet" else (DiT, TINY_DIT)
    extra = dict(dropout=0.3) if name == "unet" else {}
    f32 = request.getfixturevalue(name)
    bf16 = Compiled(randomise(
        cls((8, 8, 1), **kwargs, **extra, num_classes=10, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    ))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((6, 8, 8, 1)), jnp.float32)
    label = jnp.arange(6)
    a, b = f32(x, 0.3, label=label), bf16(x, 0.3, label=label)
    assert b.dtype == jnp.float32  # outputs in the input's dtype
    relative = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    assert relative < 0.05, relative


# Bad input: clear errors before anything is compiled -----------------------------------------


def test_bad_inputs_raise_before_compilation(tmp_path):
    config = repo_config("configs/fm_guide/digits.py", "smoke")
    config.model.image_size = 16
    with pytest.raises(ValueError, match=r"image_size=16 does not match .* 8x8"):
        validate_config(config, str(tmp_path))
    config = repo_config("configs/fm_guide/digits.py", "smoke")
    config.sample.label = 10
    with pytest.raises(ValueError, match=r"sample.label=10 is out of range.*0\.\.9"):
        validate_config(config, str(tmp_path))
    config = repo_config("configs/fm_guide/digits.py", "dit_smoke")
    config.model.patch_size = 3
    with pytest.raises(ValueError, match="patch_size must be one of"):
        validate_config(config, str(tmp_path))
    config = repo_config("configs/fm_guide/cifar10.py", "smoke")
    config.data.data_dir = str(tmp_path / "no_such_dir")
    with pytest.raises(ValueError, match=r"(?s)no_such_dir.*'cifar10'.*tfds build"):
        validate_config(config, str(tmp_path))
    unet = nnx.eval_shape(lambda: UNet((8, 8, 1), **TINY_UNET, num_classes=10, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="class-conditional: pass `label`"):
        unet(jnp.zeros((2, 8, 8, 1)), 0.5)
    with pytest.raises(ValueError, match=r"images of shape \(B, \*\(8, 8, 1\)\)"):
        unet(jnp.zeros((2, 16, 16, 1)), 0.5, label=jnp.zeros(2, jnp.int32))


def test_paper_configs_describe_the_papers_networks():
    """The Guide's UNets (PAPERS.md section 1), built abstractly at their data's shapes."""
    cifar = repo_config("configs/fm_guide/cifar10.py")
    assert (cifar.model.channels, tuple(cifar.model.channel_mults)) == (128, (2, 2, 2))
    assert (cifar.model.num_res_blocks, tuple(cifar.model.attention_factors)) == (4, (2,))
    assert cifar.model.dropout == 0.3 and cifar.train.global_batch_size == 512
    assert (cifar.sample.method, cifar.sample.time_grid, cifar.sample.edm_steps) == (
        "heun", "edm", 25)
    for name in ("imagenet32", "imagenet64"):
        c = repo_config(f"configs/fm_guide/{name}.py")
        assert (c.model.channels, tuple(c.model.channel_mults)) == (192, (1, 2, 3, 4))
        assert (c.model.num_res_blocks, tuple(c.model.attention_factors)) == (3, (2, 4, 8))
        assert (c.loss.label_dropout, c.sample.guidance_scale) == (0.2, 0.2)
        assert (c.sample.method, c.sample.atol, c.sample.rtol) == ("dopri5", 1e-5, 1e-5)
    for c in (cifar, repo_config("configs/fm_guide/imagenet32.py")):
        assert (c.optim.name, c.optim.learning_rate, c.optim.b1, c.optim.b2) == (
            "adamw", 1e-4, 0.9, 0.95)
        assert (c.loss.time_distribution, c.loss.time_mean, c.loss.time_std) == (
            "logit_normal", -1.2, 1.2)
        assert c.optim.ema_decay == 0.999
