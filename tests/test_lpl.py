"""The latent perceptual loss (flowjax.losses.lpl): the outlier mask and its morphology against
scipy.ndimage, spikes removed, zero at the truth, scale invariance, no gradient into the target,
the time gate, and the tiny autoencoder's decoder as the feature map."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import ndimage

from flowjax.losses.lpl import T_MIN, feature_loss, layer_weights, lpl_loss, outlier_mask
from flowjax.models import load_autoencoder_kl

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "autoencoder_tiny")


def reference_mask(target: np.ndarray, closing: int, opening: int) -> np.ndarray:
    """The same mask with NumPy quantiles and scipy.ndimage's binary morphology."""
    out = np.zeros(target.shape, bool)
    for b in range(target.shape[0]):
        for c in range(target.shape[-1]):
            x = target[b, :, :, c]
            lo = np.quantile(x, 0.02) - 2 * x.std()
            hi = np.quantile(x, 0.98) + 2 * x.std()
            m = (x >= lo) & (x <= hi)
            square = lambda s: np.ones((s, s), bool)  # noqa: E731
            m = ndimage.binary_dilation(m, square(closing), border_value=0)
            m = ndimage.binary_erosion(m, square(closing), border_value=1)
            m = ndimage.binary_erosion(m, square(opening), border_value=1)
            out[b, :, :, c] = ndimage.binary_dilation(m, square(opening), border_value=0)
    return out


def spiky_features(key, shape=(2, 32, 32, 3), blobs=3, side=4):
    """Gaussian features with square patches of outliers (60.0, `side` wide; at most one per
    example and channel, 1.6% of its positions, rarer than the 2% quantile)."""
    x = np.asarray(jax.random.normal(key, shape), np.float64)
    rng = np.random.default_rng(0)
    where = []
    for b, c in [(0, 0), (1, 1), (0, 2)][:blobs]:
        h, w = rng.integers(0, shape[1] - side), rng.integers(0, shape[2] - side)
        x[b, h : h + side, w : w + side, c] = 60.0
        where.append((b, slice(h, h + side), slice(w, w + side), c))
    return x, where


def test_outlier_mask_equals_scipy_and_removes_spikes():
    target, spikes = spiky_features(jax.random.key(0))
    for closing, opening in ((3, 5), (1, 3), (5, 1)):
        got = np.asarray(outlier_mask(jnp.asarray(target, jnp.float32), closing=closing,
                                      opening=opening))
        np.testing.assert_array_equal(got.astype(bool), reference_mask(target, closing, opening))
    mask = np.asarray(outlier_mask(jnp.asarray(target, jnp.float32)))
    assert all(np.all(mask[w] == 0.0) for w in spikes) and mask.mean() > 0.9
    single = np.array(jax.random.normal(jax.random.key(9), (1, 16, 16, 1)))
    single[0, 8, 8, 0] = 60.0  # one isolated outlier: the closing keeps it (a hole of one pixel)
    assert float(outlier_mask(jnp.asarray(single, jnp.float32))[0, 8, 8, 0]) == 1.0


def test_loss_is_zero_at_the_truth_scale_invariant_and_gated():
    target, _ = spiky_features(jax.random.key(1), blobs=0)
    target = [jnp.asarray(target, jnp.float32), jnp.asarray(target[:, ::2, ::2], jnp.float32)]
    predicted = [t + 0.3 * jax.random.normal(jax.random.key(2 + i), t.shape)
                 for i, t in enumerate(target)]
    compiled_loss = jax.jit(feature_loss)  # one program for the three calls
    np.testing.assert_array_equal(compiled_loss(target, target), np.zeros(2))
    base = compiled_loss(predicted, target)
    assert np.all(np.asarray(base) > 0)
    scaled = compiled_loss([3.0 * p for p in predicted], [3.0 * t for t in target])
    np.testing.assert_allclose(scaled, base, rtol=1e-5)
    np.testing.assert_allclose(layer_weights(5), np.array([1, .5, .25, .125, .125]) / 2.0)

    features = lambda z: [z, z[:, ::2, ::2] ** 2]  # noqa: E731
    z = jax.random.normal(jax.random.key(3), (4, 8, 8, 4))
    z_hat = z + 0.1 * jax.random.normal(jax.random.key(4), z.shape)
    t = jnp.asarray([0.1, T_MIN - 1e-3, T_MIN, 0.95])

    @jax.jit
    def loss_and_gradients(z_hat, z):
        loss = lpl_loss(features, z_hat, z, t)
        grad_target = jax.grad(lambda z_: lpl_loss(features, z_hat, z_, t).sum())(z)
        grad_estimate = jax.grad(lambda zh: lpl_loss(features, zh, z, t).sum())(z_hat)
        return loss, grad_target, grad_estimate

    loss, grad_target, grad_estimate = loss_and_gradients(z_hat, z)
    assert np.all(np.asarray(loss[:2]) == 0.0) and np.all(np.asarray(loss[2:]) > 0.0)
    assert float(jnp.abs(grad_target).max()) == 0.0
    assert float(jnp.abs(grad_estimate[2:]).max()) > 0 and float(jnp.abs(grad_estimate[:2]).max()) == 0


def test_decoder_features_of_the_autoencoder_and_bad_input():
    model = load_autoencoder_kl(CHECKPOINT)
    z = jax.random.normal(jax.random.key(5), (2, 8, 8, 4))
    # One program: the loss of a perturbed latent, and at the truth (the same latent twice).
    losses = nnx.jit(lambda model, z: [lpl_loss(model.decoder_features, z_hat, z, jnp.ones(2))
                                       for z_hat in (z + 0.05, z)])
    loss, at_truth = losses(model, z)
    assert loss.shape == (2,) and np.all(np.asarray(loss) > 0)
    np.testing.assert_array_equal(at_truth, 0.0)
    with pytest.raises(ValueError, match="share a shape"):
        lpl_loss(model.decoder_features, z, z[:1], jnp.ones(2))
    with pytest.raises(ValueError, match="as many predicted as target"):
        feature_loss([z], [])
