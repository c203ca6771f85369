"""The CFM loss, classifier-free guidance and the MLP velocity field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.guidance import classifier_free_guidance, guided_velocity
from flowjax.losses import cfm_loss, cfm_loss_per_sample, sample_time
from flowjax.models import MLP, sinusoidal_embedding
from flowjax.paths import AffineProbPath, CondOTProbPath, CosineScheduler, GaussianMixture, analytic


def test_cfm_loss_value_and_prediction_targets():
    path = CondOTProbPath()
    x_0 = jnp.asarray([[0.0, 1.0], [2.0, -1.0]])
    x_1 = jnp.asarray([[1.0, 1.0], [0.0, 3.0]])
    t = jnp.asarray([0.25, 0.5])
    zero = lambda x, t: jnp.zeros_like(x)
    # Velocity target x_1 - x_0: squared norms 1 and 20 -> per-sample sums, mean per coordinate.
    np.testing.assert_allclose(cfm_loss_per_sample(zero, path, x_0, x_1, t), [1.0, 20.0])
    np.testing.assert_allclose(cfm_loss(zero, path, x_0, x_1, t), 21.0 / 4)
    np.testing.assert_allclose(cfm_loss(zero, path, x_0, x_1, t, prediction="target"), 11.0 / 4)
    np.testing.assert_allclose(cfm_loss(zero, path, x_0, x_1, t, prediction="epsilon"), 6.0 / 4)
    # The oracle that sees x_1 and x_0 through x_t's construction has zero loss.
    oracle = lambda x, tt: x_1 - x_0
    np.testing.assert_allclose(cfm_loss(oracle, path, x_0, x_1, t), 0.0)
    with pytest.raises(ValueError, match="Unknown prediction 'score'"):
        cfm_loss(zero, path, x_0, x_1, t, prediction="score")
    with pytest.raises(ValueError, match="shape of x_t"):
        cfm_loss(lambda x, t: x[:, :1], path, x_0, x_1, t)


def test_cfm_gradient_equals_marginal_fm_gradient():
    """Guide, theorem 4: grad CFM = grad FM. Checked for u_theta(x, t) = theta * x at fixed t."""
    path = AffineProbPath(CosineScheduler())
    mixture = GaussianMixture.isotropic([0.5, 0.5], [[2.0, 0.0], [-2.0, 1.0]], 0.3)
    n = 200_000
    k0, k1 = jax.random.split(jax.random.key(0))
    x_0 = jax.random.normal(k0, (n, 2))
    x_1 = mixture.sample(k1, n)
    t = jnp.full((n,), 0.6)
    x_t = path.sample(x_0, x_1, t).x_t
    u_marginal = analytic.marginal_velocity(path, mixture, x_t, t)

    def cfm(theta):
        return cfm_loss(lambda x, tt: theta * x, path, x_0, x_1, t)

    def fm(theta):
        return jnp.mean((theta * x_t - u_marginal) ** 2)

    for theta in (0.0, 0.7):
        np.testing.assert_allclose(jax.grad(cfm)(theta), jax.grad(fm)(theta), rtol=2e-2, atol=2e-2)


def test_sample_time_distributions():
    key = jax.random.key(1)
    u = sample_time(key, 100_000)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    np.testing.assert_allclose(u.mean(), 0.5, atol=5e-3)
    skewed = sample_time(key, 100_000, distribution="logit_normal", mean=-1.2, std=1.2)
    # Median of sigmoid(N(m, s)) is sigmoid(m).
    np.testing.assert_allclose(jnp.median(skewed), jax.nn.sigmoid(-1.2), atol=5e-3)
    capped = sample_time(key, 1000, t_max=0.999)
    assert float(capped.max()) < 0.999
    with pytest.raises(ValueError, match="Unknown time distribution"):
        sample_time(key, 4, distribution="beta")


def test_classifier_free_guidance_formula_and_wrapper():
    np.testing.assert_allclose(classifier_free_guidance(3.0, 1.0, 0.5), 1.5 * 3.0 - 0.5 * 1.0)
    model = MLP(2, hidden_dim=16, num_layers=2, num_classes=3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (5, 2))
    labels = jnp.asarray([0, 1, 2, 0, 1])
    w = 0.7
    guided = guided_velocity(model, w, null_label=3)
    expected = (1 + w) * model(x, 0.3, label=labels) - w * model(x, 0.3, label=jnp.full((5,), 3))
    np.testing.assert_allclose(guided(x, 0.3, label=labels), expected, rtol=1e-5, atol=1e-6)
    t_batch = jnp.linspace(0.1, 0.9, 5)
    expected = (1 + w) * model(x, t_batch, label=labels) - w * model(x, t_batch, label=jnp.full((5,), 3))
    np.testing.assert_allclose(guided(x, t_batch, label=labels), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        guided_velocity(model, 0.0, null_label=3)(x, 0.3, label=labels), model(x, 0.3, label=labels), rtol=1e-6
    )
    with pytest.raises(ValueError, match="keyword 'label'"):
        guided(x, 0.3)


def test_mlp_any_event_shape_time_forms_and_errors():
    model = MLP((2, 3), hidden_dim=16, num_layers=2, time_embedding="sinusoidal", time_embed_dim=8, rngs=nnx.Rngs(0))
    x = jnp.ones((4, 2, 3))
    out_scalar = model(x, 0.5)
    assert out_scalar.shape == (4, 2, 3)
    np.testing.assert_allclose(out_scalar, model(x, jnp.full((4,), 0.5)), rtol=1e-6)
    assert not np.allclose(model(x, 0.1), model(x, 0.9))
    with pytest.raises(ValueError, match=r"x of shape \(B, \*\(2, 3\)\)"):
        model(jnp.ones((4, 6)), 0.5)
    with pytest.raises(ValueError, match=r"scalar or of shape \(4,\)"):
        model(x, jnp.ones((3,)))
    with pytest.raises(ValueError, match="unconditional"):
        model(x, 0.5, label=jnp.zeros(4, jnp.int32))
    conditional = MLP(2, hidden_dim=8, num_layers=1, num_classes=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="class-conditional"):
        conditional(jnp.ones((2, 2)), 0.5)
    with pytest.raises(ValueError, match="Unknown activation"):
        MLP(2, activation="tanhh", rngs=nnx.Rngs(0))


def test_sinusoidal_embedding_values():
    emb = sinusoidal_embedding(jnp.asarray([0.0, 0.001]), 4, max_period=100.0, scale=1000.0)
    # Frequencies 1 and 100^(-1/2) = 0.1; angles 1000 t * w.
    expected = [[1, 1, 0, 0], [np.cos(1.0), np.cos(0.1), np.sin(1.0), np.sin(0.1)]]
    np.testing.assert_allclose(emb, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="must be even"):
        sinusoidal_embedding(jnp.zeros(2), 3)
