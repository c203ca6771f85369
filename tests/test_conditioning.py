"""Disentangled conditioning (Berrada et al., 2024): the control strength's ends and per-sample
application, two-scale guidance (both scales 1: the fully conditional model), the resolution
shift of the noise schedule, the DiT's conditioning pathways (label through attention, control
metadata with the cosine strength, interpolated positions), the control embedding and noisy
replicate padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

from flowjax import paths
from flowjax.guidance import two_scale_guidance, two_scale_guided_velocity
from flowjax.models import DiT, control_strength
from flowjax.models.conditioning import ControlEmbedding, noisy_replicate_padding
from flowjax.models.dit import position_embedding_2d


def test_control_strength_ramps_from_noise_to_data_per_sample():
    t = jnp.asarray([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(control_strength(t), [0.0, (1 - np.cos(np.pi / 4)) / 2, 0.5, 1.0],
                               atol=1e-7)
    assert bool(jnp.all(jnp.diff(control_strength(jnp.linspace(0, 1, 50))) > 0))
    with pytest.raises(ValueError, match="one time per sample"):
        control_strength(jnp.asarray(0.5))


def test_two_scale_guidance_limits():
    keys = jax.random.split(jax.random.key(0), 3)
    none, semantic, full = (jax.random.normal(k, (4, 3)) for k in keys)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 1.0, 1.0), full, atol=1e-6)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 1.0, 0.0), semantic,
                               atol=1e-6)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 0.0, 0.0), none, atol=1e-6)
    guided = two_scale_guidance(none, semantic, full, 3.0, 2.0)
    np.testing.assert_allclose(guided, none + 3 * (semantic - none) + 2 * (full - semantic),
                               atol=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        two_scale_guidance(none, semantic, full[:2], 1.0, 1.0)


# --- the resolution shift of the noise schedule --------------------------------------------


@pytest.mark.parametrize("base", [paths.CondOTScheduler(), paths.PolynomialScheduler(n=2.0)])
def test_resolution_shift_divides_the_snr_and_keeps_the_ends(base):
    shift = paths.resolution_shift(512, 256)
    assert shift == 2.0
    shifted = paths.ShiftedScheduler(base, shift)
    t = jnp.linspace(0.05, 0.95, 19)
    a, s, da, ds = shifted(t)
    a0, s0, _, _ = base(t)
    np.testing.assert_allclose((a / s) ** 2, (a0 / s0) ** 2 / shift**2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(shifted(jnp.asarray([0.0, 1.0])).alpha_t), [0.0, 1.0])
    derivative = jax.vmap(jax.grad(lambda u: shifted(u).alpha_t))(t)
    np.testing.assert_allclose(da, derivative, rtol=1e-5)
    np.testing.assert_allclose(ds, -da)
    np.testing.assert_allclose(shifted.kappa_inverse(a), t, rtol=1e-5)
    np.testing.assert_allclose(paths.ShiftedScheduler(base, 1.0)(t).alpha_t, a0, rtol=1e-6)
    if isinstance(base, paths.CondOTScheduler):  # the closed form t / (t + s (1 - t))
        np.testing.assert_allclose(a, t / (t + shift * (1 - t)), rtol=1e-6)


def test_resolution_shift_refuses_what_it_cannot_shift():
    with pytest.raises(ValueError, match="convex scheduler"):
        paths.ShiftedScheduler(paths.CosineScheduler(), 2.0)
    with pytest.raises(ValueError, match="> 0"):
        paths.ShiftedScheduler(paths.CondOTScheduler(), 0.0)


# --- the DiT's conditioning pathways -------------------------------------------------------


def test_interpolated_positions_agree_with_the_base_grid_where_they_meet():
    base = position_embedding_2d(4, 16)
    fine = position_embedding_2d(8, 16, base_grid=4).reshape(8, 8, 16)
    np.testing.assert_allclose(fine[::2, ::2].reshape(16, 16), base, atol=1e-6)
    np.testing.assert_allclose(position_embedding_2d(4, 16, base_grid=4), base)


def randomized(model, seed=0):
    """The model with every parameter redrawn (its zero-initialised output layers included), from
    NumPy (no compiled initialisers): `model` may be abstract (`nnx.eval_shape`)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(0.3 * rng.standard_normal(x.shape), x.dtype) for x in leaves]
    return nnx.merge(graphdef, jax.tree.unflatten(tree, leaves), rest)


def tiny_dit(**kwargs):
    settings = dict(patch_size=1, hidden_dim=32, depth=2, num_heads=2, num_classes=10)
    # Every parameter is redrawn: only the shapes of the initialised model are needed.
    return randomized(nnx.eval_shape(lambda: DiT((4, 4, 2), **settings, **kwargs,
                                                 rngs=nnx.Rngs(0))))


# The model's forward pass, compiled once per model structure and input signature.
call = nnx.jit(lambda model, x, t, label, **inputs: model(x, t, label, **inputs))


def test_control_enters_with_the_cosine_strength_and_nan_is_no_control():
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
    label = jnp.asarray([3, 7])
    flips = [jnp.zeros((2, 1)), jnp.ones((2, 1))]
    for conditioning in ("adaln", "attention"):
        cosine = tiny_dit(conditioning=conditioning, control_dim=1)
        constant = tiny_dit(conditioning=conditioning, control_dim=1, control_schedule="constant")
        at = lambda m, t, c: call(m, x, jnp.full((2,), t), label, control=c)  # noqa: E731
        # At the noise end the cosine strength is 0: control has no effect at all.
        np.testing.assert_array_equal(at(cosine, 0.0, flips[0]), at(cosine, 0.0, flips[1]))
        assert float(jnp.max(jnp.abs(at(cosine, 1.0, flips[0]) - at(cosine, 1.0, flips[1])))) > 1e-3
        assert float(jnp.max(jnp.abs(at(constant, 0.0, flips[0]) - at(constant, 0.0, flips[1])))) > 1e-3
        # Per sample: times (0, 1) in one batch match the single-time calls.
        mixed = call(cosine, x, jnp.asarray([0.0, 1.0]), label, control=flips[1])
        np.testing.assert_allclose(mixed[1], at(cosine, 1.0, flips[1])[1], atol=1e-5)
        np.testing.assert_allclose(mixed[0], at(cosine, 0.0, flips[0])[0], atol=1e-5)
        # The null control: a NaN row, or no control at all.
        null = jnp.full((2, 1), jnp.nan)
        with_null = call(cosine, x, 0.7, label, control=null)
        np.testing.assert_array_equal(with_null, call(cosine, x, 0.7, label))
        assert bool(jnp.all(jnp.isfinite(with_null)))


def test_attention_conditioning_reads_the_label_as_a_token_not_through_adaln():
    model = tiny_dit(conditioning="attention")
    assert not hasattr(model.embed, "label_embed")  # c carries time only
    x = jax.random.normal(jax.random.key(2), (2, 4, 4, 2))
    a, b = call(model, x, 0.5, jnp.asarray([1, 1])), call(model, x, 0.5, jnp.asarray([1, 2]))
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # per example
    assert float(jnp.max(jnp.abs(a[1] - b[1]))) > 1e-3
    # Text embeddings as more attention tokens.
    text = tiny_dit(conditioning="attention", context_dim=6)
    context = jax.random.normal(jax.random.key(3), (2, 5, 6))
    out = call(text, x, 0.5, jnp.asarray([1, 2]), context=context)
    assert out.shape == x.shape
    doubled = call(text, x, 0.5, jnp.asarray([1, 2]), context=2 * context)
    assert float(jnp.max(jnp.abs(out - doubled))) > 1e-3
    with pytest.raises(ValueError, match="context"):
        text(x, 0.5, jnp.asarray([1, 2]))
    with pytest.raises(ValueError, match="conditioning='attention'"):
        DiT((4, 4, 2), patch_size=1, hidden_dim=32, depth=1, num_heads=2, context_dim=6,
            rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="control_dim=0"):
        tiny_dit()(x, 0.5, jnp.asarray([1, 2]), control=jnp.zeros((2, 1)))


def test_control_embedding_and_noisy_replicate_padding():
    embed = nnx.jit(lambda: ControlEmbedding(2, 8, rngs=nnx.Rngs(0)))()  # compiled, not op by op
    rows = jnp.asarray([[0.0, 1.0], [jnp.nan, jnp.nan]])
    out = np.asarray(nnx.jit(lambda embed, rows: embed(rows))(embed, rows))
    np.testing.assert_array_equal(out[1], np.zeros(8))
    assert float(np.max(np.abs(out[0]))) > 0
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        embed(jnp.zeros((2, 3)))
    tokens = jax.random.normal(jax.random.key(4), (2, 7, 3))
    lengths = jnp.asarray([3, 7])
    padding = jax.jit(noisy_replicate_padding, static_argnums=3)  # one program per noise_std
    exact = np.asarray(padding(jax.random.key(5), tokens, lengths, 0.0))
    noisy = np.asarray(padding(jax.random.key(5), tokens, lengths, 0.1))
    tokens = np.asarray(tokens)
    np.testing.assert_array_equal(exact[1], tokens[1])  # nothing to pad
    np.testing.assert_array_equal(exact[0], tokens[0, np.arange(7) % 3])
    np.testing.assert_array_equal(noisy[0, :3], tokens[0, :3])  # valid tokens untouched
    residual = np.asarray(noisy[0, 3:] - exact[0, 3:])
    assert 0.0 < residual.std() < 0.3


def test_two_scale_guided_velocity_combines_three_evaluations_of_one_call():
    calls = []

    def model(x, t, label, control):
        calls.append(x.shape[0])
        c = jnp.nan_to_num(control, nan=0.0)
        return x * (1.0 + label[:, None]) + 2.0 * c + t

    x = jnp.asarray([[1.0], [2.0]])
    label, control = jnp.asarray([1, 2]), jnp.asarray([[1.0], [0.5]])
    guided = two_scale_guided_velocity(model, 3.0, 2.0, null_label=0)
    out = guided(x, 0.5, label=label, control=control)
    none = model(x, 0.5, jnp.zeros(2, int), jnp.full((2, 1), jnp.nan))
    semantic = model(x, 0.5, label, jnp.full((2, 1), jnp.nan))
    full = model(x, 0.5, label, control)
    np.testing.assert_allclose(out, none + 3 * (semantic - none) + 2 * (full - semantic))
    np.testing.assert_allclose(
        two_scale_guided_velocity(model, 1.0, 1.0, null_label=0)(x, 0.5, label=label,
                                                                   control=control), full)
    assert calls[0] == 6  # one call on the tripled batch
    with pytest.raises(ValueError, match="control"):
        guided(x, 0.5, label=label)


# --- control metadata in the trainer -------------------------------------------------------


def test_flip_control_records_each_flip():
    from flowjax import data

    config = dict(source="digits", shuffle=False, random_flip=True, flip_control=True)
    batch = next(data.build_dataset(config, global_batch_size=64, seed=3))
    plain = next(data.build_dataset(dict(source="digits", shuffle=False), global_batch_size=64,
                                    seed=3))
    flipped = batch["control"][:, 0] == 1.0
    assert batch["control"].shape == (64, 1) and 10 < flipped.sum() < 54
    np.testing.assert_array_equal(batch["x"][flipped], plain["x"][flipped][:, :, ::-1])
    np.testing.assert_array_equal(batch["x"][~flipped], plain["x"][~flipped])
    assert data.control_dim(config) == 1
    with pytest.raises(ValueError, match="random_flip=True"):
        data.parse_config(dict(source="digits", flip_control=True))


def control_config(**model):
    from flowjax.train import default_config, registry

    config = default_config()
    config.data = dict(source="digits", random_flip=True, flip_control=True)
    config.model = registry.model_defaults("dit")
    config.model.update(patch_size=2, hidden_dim=32, depth=1, num_heads=2,
                        conditioning="attention", control_dim=1, **model)
    config.train.update(num_steps=2, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 1000
    config.evaluate.after_training = False
    config.sample.update(num_samples=4, batch_size=4, step_size=0.5, method="euler")
    config.loss.update(label_dropout=0.2, control_dropout=0.2)
    return config


def test_control_runs_train_and_sample_with_two_guidance_scales(tmp_path):
    from flowjax.train import sample, train

    config = control_config()
    config.sample.update(control=(1.0,), guidance_scale=1.0, control_guidance_scale=0.5, label=4)
    train(config, str(tmp_path))
    result = sample(config, str(tmp_path))
    samples = result["samples"]
    assert samples.shape == (4, 8, 8, 1) and np.all(np.isfinite(samples))


def test_bad_control_settings_are_refused():
    from flowjax.train import ConfigError, validate_config

    config = control_config()
    config.model.control_dim = 0
    with pytest.raises(ConfigError, match="model.control_dim"):
        validate_config(config)
    config = control_config()
    config.sample.control = (1.0, 0.0)
    with pytest.raises(ConfigError, match="sample.control"):
        validate_config(config)
    config = control_config()
    config.data = dict(source="digits")
    config.model.control_dim = 0
    config.sample.control_guidance_scale = 1.0
    with pytest.raises(ConfigError, match="flip_control"):
        validate_config(config)
