"""SetVAE (Kim et al., 2021) and the Set Transformer blocks: the encoder is permutation-
equivariant (its summaries invariant), the decoder maps a permuted initial set to the permuted
output (so, with i.i.d. initial elements, the generated set is exchangeable), padding changes
nothing, the closed-form KL of the residual posterior equals a Monte-Carlo estimate, and bad
input is refused before anything is compiled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.scipy.stats import norm

from flowjax.models import MultiheadAttentionBlock, SetVAE
from flowjax.models.setvae import residual_gaussian_kl

N, D = 12, 3


@pytest.fixture(scope="module")
def model():
    return SetVAE((N, D), hidden_dim=16, num_heads=2, latent_dim=4, inducing=(1, 2, 3),
                  init_dim=8, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def points():
    return jax.random.normal(jax.random.key(1), (3, N, D))


@pytest.mark.parametrize("slot_attention", [False, True])
def test_attention_block_is_permutation_equivariant_and_ignores_padding(slot_attention):
    block = MultiheadAttentionBlock(8, 8, 8, 2, slot_attention=slot_attention, rngs=nnx.Rngs(0))
    x, y = jax.random.normal(jax.random.key(0), (2, 5, 8)), jax.random.normal(jax.random.key(1),
                                                                              (2, 7, 8))
    out, _ = block(x, y)
    qperm, kperm = np.array([3, 0, 4, 1, 2]), np.array([6, 2, 0, 5, 1, 3, 4])
    np.testing.assert_allclose(block(x[:, qperm], y[:, kperm])[0], out[:, qperm], atol=1e-5)
    padded = jnp.concatenate([y, 100.0 * jnp.ones((2, 3, 8))], axis=1)
    mask = jnp.arange(10)[None, :].repeat(2, 0) < 7
    np.testing.assert_allclose(block(x, padded, None, mask)[0], out, atol=1e-5)


def test_encoder_is_equivariant_and_its_summaries_invariant(model, points):
    mask = jnp.ones((3, N), bool)
    features, summaries = model.bottom_up(points, mask)
    perm = np.random.default_rng(0).permutation(N)
    features_p, summaries_p = model.bottom_up(points[:, perm], mask)
    np.testing.assert_allclose(features_p, features[:, perm], atol=1e-5)
    for h, h_p in zip(summaries, summaries_p):
        np.testing.assert_allclose(h_p, h, atol=1e-5)


def test_decoder_permutes_with_its_initial_set(model, points):
    mask = jnp.ones((3, N), bool)
    seeds = jnp.arange(3, dtype=jnp.uint32)
    initial, noise = model.initial_set(seeds, N), model.latent_noise(seeds)
    _, summaries = model.bottom_up(points, mask)
    out, kl = model.top_down(initial, mask, noise, summaries)
    perm = np.random.default_rng(1).permutation(N)
    out_p, kl_p = model.top_down(initial[:, perm], mask, noise, summaries)
    np.testing.assert_allclose(out_p, out[:, perm], atol=1e-5)
    np.testing.assert_allclose(kl_p, kl, rtol=1e-5)
    assert np.all(np.asarray(kl) > 0)


def test_padding_changes_nothing(model, points):
    """A set of 8 points padded to 12 is encoded and decoded as the set of 8."""
    small = SetVAE((8, D), hidden_dim=16, num_heads=2, latent_dim=4, inducing=(1, 2, 3),
                   init_dim=8, rngs=nnx.Rngs(0))  # the same weights for 8-point sets
    seeds = jnp.arange(3, dtype=jnp.uint32)
    mask = jnp.arange(N)[None, :].repeat(3, 0) < 8
    junk = points.at[:, 8:].set(50.0)
    _, summaries = model.bottom_up(junk, mask)
    _, summaries_small = small.bottom_up(points[:, :8], jnp.ones((3, 8), bool))
    for h, h_small in zip(summaries, summaries_small):
        np.testing.assert_allclose(h, h_small, atol=1e-5)
    initial, noise = model.initial_set(seeds, N), model.latent_noise(seeds)
    out, kl = model.top_down(initial, mask, noise, summaries)
    out_small, kl_small = small.top_down(initial[:, :8], jnp.ones((3, 8), bool), noise,
                                         summaries_small)
    np.testing.assert_allclose(out[:, :8], out_small, atol=1e-5)
    np.testing.assert_allclose(kl, kl_small, rtol=1e-5)
    assert np.all(np.asarray(out[:, 8:]) == 0)


def test_residual_kl_equals_a_monte_carlo_estimate():
    key = jax.random.key(3)
    mean, logvar, d_mean, d_logvar = (0.5 * jax.random.normal(k, (4,))
                                      for k in jax.random.split(key, 4))
    std, q_std = jnp.exp(0.5 * logvar), jnp.exp(0.5 * (logvar + d_logvar))
    z = mean + d_mean + q_std * jax.random.normal(jax.random.key(4), (400_000, 4))
    log_ratio = norm.logpdf(z, mean + d_mean, q_std) - norm.logpdf(z, mean, std)
    estimate = np.asarray(jnp.mean(log_ratio, axis=0))
    stderr = np.asarray(jnp.std(log_ratio, axis=0)) / np.sqrt(400_000)
    closed = np.asarray(residual_gaussian_kl(logvar, d_mean, d_logvar))
    np.testing.assert_array_less(np.abs(estimate - closed), 5 * stderr + 1e-6)


def test_the_model_kl_is_the_sum_over_layers_of_the_closed_form(model, points):
    mask = jnp.ones((3, N), bool)
    seeds = jnp.arange(3, dtype=jnp.uint32)
    _, summaries = model.bottom_up(points, mask)
    o = jnp.where(mask[..., None], model.init_embed(model.initial_set(seeds, N)), 0.0)
    expected = np.zeros(3)
    for layer, eps, h_up in zip(model.decoder, model.latent_noise(seeds), summaries):
        h = layer.block.summarise(o, mask)
        _, logvar = layer.prior_of(h)
        d_mean, d_logvar = layer.posterior_of(h, h_up)
        expected += np.asarray(jnp.sum(residual_gaussian_kl(logvar, d_mean, d_logvar),
                                       axis=(1, 2)))
        o, _, _ = layer(o, mask, eps, h_up)
    np.testing.assert_allclose(model(points, mask, seeds)[1], expected, rtol=1e-5)


def test_bad_input_is_refused(model, points):
    seeds = jnp.arange(3, dtype=jnp.uint32)
    with pytest.raises(ValueError, match=r"sets of shape \(B, \*\(12, 3\)\)"):
        model(points[:, :10], jnp.ones((3, 10), bool), seeds)
    with pytest.raises(ValueError, match="takes a mask"):
        model(points, jnp.ones((3, N - 1), bool), seeds)
    with pytest.raises(ValueError, match="pad sets of different sizes"):
        model(points, None, seeds)
    with pytest.raises(ValueError, match="reads sets of points"):
        SetVAE((8, 8, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="inducing point counts"):
        SetVAE((N, D), inducing=(1, 0), rngs=nnx.Rngs(0))
