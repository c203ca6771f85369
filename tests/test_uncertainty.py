"""Uncertainty Baselines models and corruptions: each method reduces exactly to the
deterministic network where it should (identical ensemble members, BatchEnsemble fast weights
of 1, MIMO with one member, MC dropout at rate 0, heteroscedastic without noise); the
random-feature GP approaches the exact RBF-kernel GP posterior as its features grow;
spectral normalisation bounds the largest singular value; corruptions grow with severity and
lower a fixed classifier's accuracy."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.data import corruptions
from flowjax.data.images import load_digits
from flowjax.models.batch_ensemble import BatchEnsembleConv, BatchEnsembleDense
from flowjax.models.heteroscedastic import HeteroscedasticHead
from flowjax.models.sngp import RandomFeatureGP, SpectralNormDense
from flowjax.models.uncertainty import small_classifier

SHAPE = (8, 8, 1)
TINY = dict(conv_channels=(3,), hidden_dim=6, num_classes=10)


def _inputs():
    x = jax.random.normal(jax.random.key(0), (5, *SHAPE))
    return x, jnp.arange(5) % 10


def _model(method, seed=0, **kw):
    return small_classifier(SHAPE, rngs=nnx.Rngs(seed), method=method, **TINY, **kw)


def test_ensemble_of_identical_members_is_the_deterministic_model():
    x, y = _inputs()
    det, ens = _model("deterministic"), _model("ensemble", seed=1, ensemble_size=3)
    nnx.update(ens.members, jax.tree.map(lambda a: jnp.stack([a] * 3), nnx.state(det.net)))
    log_p, labels = ens.train_log_probs(x, y, jax.random.key(2))
    expected, _ = det.train_log_probs(x, y, jax.random.key(2))
    assert log_p.shape == (3, 5, 10) and labels.shape == (3, 5)
    np.testing.assert_allclose(log_p, jnp.broadcast_to(expected, log_p.shape), atol=1e-6)
    np.testing.assert_allclose(ens.predict(x, jax.random.key(3)).mean(1),
                               det.predict(x, jax.random.key(3)).mean(1), atol=1e-6)


def test_batchensemble_with_unit_fast_weights_is_the_plain_layer():
    rngs = nnx.Rngs(0)
    dense, conv = BatchEnsembleDense(4, 3, 2, rngs=rngs), BatchEnsembleConv(2, 3, 3, 2, rngs=rngs)
    for layer in (dense, conv):
        layer.r[...] = jnp.ones_like(layer.r[...])
        layer.s[...] = jnp.ones_like(layer.s[...])
        layer.bias[...] = jnp.broadcast_to(jnp.arange(3.0), layer.bias[...].shape)
    v = jax.random.normal(jax.random.key(1), (6, 4))
    np.testing.assert_allclose(dense(v), v @ dense.layer.kernel[...] + jnp.arange(3.0),
                               atol=1e-5)
    img = jax.random.normal(jax.random.key(2), (6, 5, 5, 2))
    np.testing.assert_allclose(conv(img), conv.layer(img) + jnp.arange(3.0), atol=1e-5)


def test_mimo_with_one_member_is_a_plain_network():
    x, y = _inputs()
    det, mimo = _model("deterministic"), _model("mimo", ensemble_size=1)
    np.testing.assert_allclose(mimo.predict(x, jax.random.key(0)),
                               det.predict(x, jax.random.key(0)), atol=1e-6)
    log_p, labels = mimo.train_log_probs(x, y, jax.random.key(4))
    order = np.asarray([list(np.asarray(y)).index(v) for v in np.asarray(labels[0])])
    np.testing.assert_allclose(log_p[0], det.net(x[order], True, None), atol=1e-6)


def test_mc_dropout_at_rate_zero_is_deterministic():
    x, _ = _inputs()
    det, drop = _model("deterministic"), _model("dropout", dropout_rate=0.3, mc_samples=3)
    assert not np.allclose(drop.predict(x, jax.random.key(0))[:, 0],
                           drop.predict(x, jax.random.key(0))[:, 1])  # masks differ per pass
    drop.net.backbone.dropout_rate = 0.0
    np.testing.assert_allclose(drop.predict(x, jax.random.key(0)),
                               jnp.repeat(det.predict(x, jax.random.key(0)), 3, axis=1),
                               atol=1e-6)


def test_heteroscedastic_without_noise_is_the_softmax():
    head = HeteroscedasticHead(4, 5, num_factors=2, temperature=1.0, mc_samples=7,
                               rngs=nnx.Rngs(0))
    head.factors.kernel[...] = jnp.zeros_like(head.factors.kernel[...])
    head.diagonal.kernel[...] = jnp.zeros_like(head.diagonal.kernel[...])
    head.diagonal.bias[...] = jnp.full_like(head.diagonal.bias[...], -1e4)  # softplus -> 0
    h = jax.random.normal(jax.random.key(1), (3, 4))
    np.testing.assert_allclose(head.log_probs(h, jax.random.key(2)),
                               jax.nn.log_softmax(head.mean(h)), atol=1e-5)


def _gp_errors(num_features: int) -> tuple[float, float]:
    """Max errors of the random-feature GP's posterior mean and variance against the exact GP
    (RBF kernel, length scale 0.5, noise variance 0.1) on a 1-D regression."""
    ell, noise = 0.5, 0.1
    x = jnp.linspace(-2, 2, 12)[:, None]
    y = jnp.sin(2 * x[:, 0])
    test = jnp.linspace(-3, 3, 25)[:, None]
    gp = RandomFeatureGP(1, 1, num_features=num_features, projection_dim=0, length_scale=ell,
                         ridge=noise, normalize_input=False, mean_field_factor=math.pi / 8,
                         rngs=nnx.Rngs(0))
    phi, phi_test = gp.features(x), gp.features(test)
    gp.update_precision(phi)  # P = ridge I + Phi^T Phi
    beta = jnp.linalg.solve(gp.precision[...], phi.T @ y)  # the posterior mean of beta
    gp.output.kernel[...] = beta[:, None]
    mean, var = gp.output(phi_test)[:, 0], gp.variance(phi_test)
    np.testing.assert_allclose(gp(test)[:, 0], mean / jnp.sqrt(1 + math.pi / 8 * var),
                               rtol=1e-4, atol=1e-6)  # the mean-field logits

    def k(a, b):
        return jnp.exp(-jnp.square(a - b.T) / (2 * ell**2))

    solve = jnp.linalg.solve(k(x, x) + noise * jnp.eye(len(x)), jnp.concatenate(
        [y[:, None], k(x, test)], axis=1))
    exact_mean = k(test, x) @ solve[:, 0]
    exact_var = 1.0 - jnp.sum(k(x, test) * solve[:, 1:], axis=0)
    return float(jnp.max(jnp.abs(mean - exact_mean))), float(jnp.max(jnp.abs(var - exact_var)))


def test_random_feature_gp_converges_to_the_exact_gp_posterior():
    few, many = _gp_errors(16), _gp_errors(1024)
    assert many[0] < 0.15 and many[1] < 0.1, many
    assert many[0] < few[0] / 2 and many[1] < few[1] / 2, (few, many)


def test_spectral_normalisation_bounds_the_largest_singular_value():
    layer = SpectralNormDense(6, 4, bound=0.5, iterations=1, rngs=nnx.Rngs(0))
    sigma = float(jnp.linalg.svd(layer.kernel[...], compute_uv=False)[0])
    assert sigma > 0.5
    for _ in range(30):  # power iterations in training calls
        layer(jnp.ones((2, 6)), train=True)
    top = float(jnp.linalg.svd(layer.normalised_kernel(False), compute_uv=False)[0])
    assert 0.5 * 0.999 < top <= 0.5 * 1.0001
    loose = SpectralNormDense(6, 4, bound=10.0, iterations=1, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(loose.normalised_kernel(True), loose.kernel[...], rtol=1e-6)


def test_corruptions_grow_with_severity_and_lower_a_fixed_classifiers_accuracy():
    from sklearn.linear_model import LogisticRegression

    x_train, y_train = load_digits("train")
    x, y = load_digits("test")
    classifier = LogisticRegression(max_iter=300).fit(x_train.reshape(len(x_train), -1), y_train)
    clean = classifier.score(x.reshape(len(x), -1), y)
    accuracy = np.zeros(len(corruptions.SEVERITIES))
    for name in corruptions.CORRUPTIONS:
        change = []
        for i, severity in enumerate(corruptions.SEVERITIES):
            corrupted = corruptions.corrupt(x, name, severity, seed=0)
            np.testing.assert_array_equal(corrupted, corruptions.corrupt(x, name, severity, 0))
            change.append(np.mean(np.abs(corrupted - x)))
            accuracy[i] += classifier.score(corrupted.reshape(len(x), -1), y)
        assert np.all(np.diff(change) > 0), (name, change)
    accuracy /= len(corruptions.CORRUPTIONS)
    assert np.all(np.diff(accuracy) < 0) and accuracy[-1] < clean, (clean, accuracy)
    with pytest.raises(ValueError, match="severities"):
        corruptions.corrupt(x, "contrast", 6)
