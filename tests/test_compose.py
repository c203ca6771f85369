"""The objective "compose" (flowjax.train.objectives.compose): slot mixing, the SDS gradient, the
frozen decoder of the composition path, DDPM noising in closed form, bad settings; a CLI smoke
run (slow)."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.train import load_config_file
from flowjax.train.config import ConfigError, validate_config
from flowjax.train.objectives import build_objective
from flowjax.train.objectives.compose import (
    composition_loss,
    ddpm_alpha_bar,
    ddpm_noise,
    denoised_estimate,
    mix_slots,
    sds_weight,
)
from flowjax.train.registry import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(REPO, "configs", "compose", "scenes.py")


def test_mixing_takes_each_slot_index_from_exactly_one_image():
    b, k, s = 6, 5, 3
    slots = jnp.arange(b * k * s, dtype=jnp.float32).reshape(b, k, s)  # all slots distinct
    coin = jax.random.bernoulli(jax.random.key(0), 0.5, (b, k))
    mixed = mix_slots(slots, coin)
    for i in range(b):
        partner = (i + b // 2) % b
        for j in range(k):
            own = bool(jnp.all(mixed[i, j] == slots[i, j]))
            other = bool(jnp.all(mixed[i, j] == slots[partner, j]))
            assert own != other and own == bool(coin[i, j])


def test_sds_gradient_is_weighted_difference():
    composite = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
    x0_hat = jax.random.normal(jax.random.key(1), (3, 4, 4, 2))
    alpha_bar = jnp.asarray([0.9, 0.5, 0.2])
    w = sds_weight(alpha_bar)
    np.testing.assert_allclose(w, 0.5 * np.sqrt([0.9 * 0.1, 0.25, 0.2 * 0.8]), rtol=1e-6)
    grad = jax.grad(composition_loss)(composite, x0_hat, w)
    expected = w[:, None, None, None] * 2 * (composite - x0_hat) / (3 * 32)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)
    # x0_hat is a stop-gradient target.
    assert not np.any(jax.grad(composition_loss, argnums=1)(composite, x0_hat, w))


def test_ddpm_noising_matches_closed_form():
    alpha_bar = ddpm_alpha_bar("linear", 0.00085, 0.012)
    betas = np.linspace(0.00085, 0.012, 1000)
    assert alpha_bar.shape == (1000,)
    np.testing.assert_allclose(alpha_bar[[0, 499, 999]],
                               [np.prod(1 - betas[: k + 1]) for k in (0, 499, 999)], rtol=1e-12)
    cosine = ddpm_alpha_bar("cosine")
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(cosine[:500], f(np.arange(1, 501)) / f(0), rtol=1e-9)
    x0 = jax.random.normal(jax.random.key(0), (2, 3))
    eps = jax.random.normal(jax.random.key(1), (2, 3))
    a = jnp.asarray(alpha_bar[[10, 700]], jnp.float32)
    x_k = ddpm_noise(x0, eps, a)
    np.testing.assert_allclose(x_k, np.sqrt(a)[:, None] * x0 + np.sqrt(1 - a)[:, None] * eps,
                               rtol=1e-6)
    np.testing.assert_allclose(denoised_estimate(x_k, eps, a), x0, atol=1e-5)


@pytest.fixture(scope="module")
def smoke():
    config = load_config_file(SCENES, "smoke")
    objective = build_objective(config)
    model = objective.model_fn(lambda rngs: build_model(
        config.model, objective.spec.event_shape, None, rngs, **objective.model_kwargs()))(
        nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
    batch = objective.draw_step_noise(jax.random.key(1), {"x": x})
    return objective, model, batch


def test_composition_path_leaves_the_decoder_untouched(smoke):
    objective, model, batch = smoke
    np.testing.assert_array_equal(batch["slot_noise"][:2], batch["slot_noise"][2:])

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def composition_terms(p):
        terms = objective.loss_terms(nnx.merge(graphdef, p, rest), batch)
        return terms["composition"] + terms["mask"]

    grads = jax.jit(jax.grad(composition_terms))(params)  # one compiled function: faster
    decoder = jax.tree.leaves(grads.decoder)
    prior = jax.tree.leaves(grads.prior)
    assert decoder and all(not np.any(g) for g in decoder)
    assert all(not np.any(g) for g in prior)  # x0_hat is a stop-gradient target
    assert any(np.any(g) for g in jax.tree.leaves(grads.slot_attention))
    assert any(np.any(g) for g in jax.tree.leaves(grads.encoder))


@pytest.mark.parametrize("change, message", [
    (dict(model=dict(num_slots=0)), "num_slots must be a positive integer"),
    (dict(data=dict(image_size=18)), "multiples of 4"),
    (dict(train=dict(global_batch_size=6, grad_accum_steps=2)), "divisible by"),
    (dict(loss=dict(sds_min_step=500, sds_max_step=20)), "sds_min_step"),
])
def test_bad_settings_are_rejected_before_compiling(tmp_path, change, message):
    config = load_config_file(SCENES, "smoke")
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, str(tmp_path))


@pytest.mark.slow
def test_cli_smoke_trains_samples_and_evaluates(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flowjax.main", f"--config={SCENES}:smoke",
         f"--workdir={tmp_path}", "--mode=train"],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    for key in ("fg_ari", "miou", "fg_ari_decoder", "miou_decoder", "oneshot_mse"):
        assert np.isfinite(metrics[key])
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (8, 16, 16, 3 + 2 * 3)
    np.testing.assert_allclose(samples[..., 3:6].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(samples[..., 6:].sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_latent_space_with_a_frozen_autoencoder(tmp_path):
    from flowjax.models.autoencoder import autoencoder_for_images
    from flowjax.models.convert_autoencoder import save_autoencoder_kl

    autoencoder = autoencoder_for_images(
        (16, 16, 3), block_out_channels=(8, 8), layers_per_block=1, latent_channels=4,
        norm_num_groups=4, scaling_factor=0.5, rngs=nnx.Rngs(0))
    save_autoencoder_kl(autoencoder, tmp_path / "vae", scaling_factor=0.5)
    config = load_config_file(SCENES, "smoke")
    config.loss.autoencoder = str(tmp_path / "vae")
    config.model.update(decoder_upsamples=1, prior_patch_size=2)
    validate_config(config, str(tmp_path / "run"))
    objective = build_objective(config)
    assert objective.target_shape == (8, 8, 4)
    model = objective.model_fn(lambda rngs: build_model(
        config.model, objective.spec.event_shape, None, rngs, **objective.model_kwargs()))(
        nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
    batch = objective.draw_step_noise(jax.random.key(1), {"x": x})
    latents = model.autoencoder.latents(x)
    reconstruction, _, _ = model.net.decode(model.net.encode(x, batch["slot_noise"])[0])
    terms = objective.loss_terms(model, batch)
    np.testing.assert_allclose(terms["oneshot"], jnp.mean(jnp.square(reconstruction - latents)),
                               rtol=1e-5)
    grads = nnx.grad(lambda m: objective.loss(m, batch))(model)
    assert "autoencoder" not in nnx.to_pure_dict(grads)  # frozen: no parameter, no gradient
    assert any(np.any(g) for g in jax.tree.leaves(grads))
    assert objective.sampler()(model, batch, None).shape == (4, 16, 16, 3 + 2 * 3)
