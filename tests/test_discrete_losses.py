"""Generalized KL, cross-entropy and the ELBO of discrete flows; the discrete posterior MLP."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.losses import (
    cross_entropy,
    discrete_elbo,
    discrete_loss,
    elbo_bits_per_token,
    generalized_kl,
)
from flowjax.models import DiscreteMLP
from flowjax.paths import (
    KineticOptimalScheduler,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    PolynomialScheduler,
    TokenDistance,
    UniformSource,
)

V = 7
MIXTURES = {
    "mask_poly2": MixtureDiscreteProbPath(PolynomialScheduler(2.0), MaskSource(V)),
    "uniform_ko": MixtureDiscreteProbPath(KineticOptimalScheduler(1.0 / V), UniformSource(V)),
}
METRIC = MetricInducedProbPath(V, TokenDistance(scale=0.4))


def random_inputs(seed: int, shape=(6, 3)):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(3.0 * rng.standard_normal(shape + (V,)))
    x_1 = jnp.asarray(rng.integers(0, V - 1, shape))
    x_t = jnp.asarray(np.where(rng.random(shape) < 0.5, x_1, rng.integers(0, V, shape)))
    t = jnp.asarray(rng.uniform(0.05, 0.95, shape[0]))
    return logits, x_1, x_t, t


@pytest.mark.parametrize("name", list(MIXTURES))
def test_generalized_kl_on_mixture_paths_is_the_closed_form(name, x64):
    """-kappa'/(1 - kappa) [p(x_t) - delta + (1 - delta) log p(x_1)] (the Guide's loss)."""
    path = MIXTURES[name]
    logits, x_1, x_t, t = random_inputs(0)
    out = path.scheduler(t[:, None])
    rate = out.d_alpha_t / (1.0 - out.alpha_t)
    log_p = jax.nn.log_softmax(logits)
    p_xt = jnp.take_along_axis(jnp.exp(log_p), x_t[..., None], -1)[..., 0]
    log_p_x1 = jnp.take_along_axis(log_p, x_1[..., None], -1)[..., 0]
    delta = (x_t == x_1).astype(jnp.float64)
    expected = -rate * (p_xt - delta + (1 - delta) * log_p_x1)
    np.testing.assert_allclose(
        generalized_kl(path, logits, x_1, x_t, t), expected, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", ["mask_poly2", "uniform_ko", "metric"])
def test_generalized_kl_is_nonnegative_zero_at_the_truth_and_differentiable(name, x64):
    path = METRIC if name == "metric" else MIXTURES[name]
    logits, x_1, x_t, t = random_inputs(1)
    # A posterior sure of x_1 makes the model's velocity the conditional one: zero divergence.
    sure = jnp.where(jax.nn.one_hot(x_1, V, dtype=bool), 0.0, -1e3)

    @jax.jit
    def divergences_and_gradient(logits, sure):
        def loss(values):
            return generalized_kl(path, values, x_1, x_t, t)

        return loss(logits), loss(sure), jax.grad(lambda values: loss(values).sum())(logits)

    divergence, at_truth, grad = divergences_and_gradient(logits, sure)
    assert np.asarray(divergence).min() >= -1e-12
    np.testing.assert_allclose(at_truth, 0.0, atol=1e-9)
    # Finite gradients, also where x_t = x_1 (no conditional rate; on the metric path every
    # log-rate is then -inf).
    assert np.all(np.isfinite(grad))


def test_mask_elbo_with_the_exact_posterior_is_minus_log_q(x64):
    """D = 1, mask source: -ELBO(x_1) = -log q(x_1) for every x_1, with the time integral done by
    Gauss-Legendre quadrature and x_t ~ p_t(. | x_1) enumerated ({mask, x_1})."""
    q = jnp.asarray(np.random.default_rng(2).dirichlet(np.ones(V - 1)))
    mask = V - 1
    exact_logits = jnp.concatenate([jnp.log(q), jnp.asarray([-jnp.inf])])  # given x_t = mask
    nodes, weights = np.polynomial.legendre.leggauss(48)
    times, weights = 0.5 * (nodes + 1.0), 0.5 * weights
    t = jnp.asarray(times)
    x_1 = jnp.broadcast_to(jnp.arange(V - 1), (len(times), V - 1))  # every data token at once
    masked = jnp.full_like(x_1, mask)
    masked_logits = jnp.broadcast_to(exact_logits, x_1.shape + (V,))
    clean_logits = jnp.where(jax.nn.one_hot(x_1, V, dtype=bool), 0.0, -jnp.inf)
    for scheduler in (PolynomialScheduler(2.0), KineticOptimalScheduler(0.0)):
        path = MixtureDiscreteProbPath(scheduler, MaskSource(V))
        kappa = np.asarray(scheduler(t).alpha_t)[:, None]
        d_masked = np.asarray(generalized_kl(path, masked_logits, x_1, masked, t))
        d_clean = np.asarray(generalized_kl(path, clean_logits, x_1, x_1, t))
        integrand = (1.0 - kappa) * d_masked + kappa * d_clean
        np.testing.assert_allclose(weights @ integrand, -np.log(q), rtol=1e-6)


def test_elbo_estimator_is_unbiased_for_the_exact_posterior():
    """discrete_elbo with the exact posterior (D = 1, mask) averages to log q(x_1)."""
    q = jnp.asarray([0.1, 0.2, 0.3, 0.15, 0.15, 0.1])
    mask = V - 1
    path = MixtureDiscreteProbPath(KineticOptimalScheduler(0.0), MaskSource(V))

    def exact(x, t):
        del t
        masked_logits = jnp.concatenate([jnp.log(q), jnp.asarray([-jnp.inf])])
        clean = jnp.where(jax.nn.one_hot(x, V, dtype=bool), 0.0, -jnp.inf)
        return jnp.where((x == mask)[..., None], masked_logits, clean)

    x_1 = jnp.repeat(jnp.arange(V - 1), 2000)[:, None]
    elbo = np.asarray(
        jax.jit(lambda k: discrete_elbo(k, exact, path, x_1, num_time_samples=4))(jax.random.key(0))
    )
    for token in range(V - 1):
        values = elbo[np.asarray(x_1[:, 0]) == token]
        stderr = values.std() / np.sqrt(len(values))
        assert abs(values.mean() - math.log(q[token])) < 4 * stderr + 1e-3
    bits = elbo_bits_per_token(jnp.asarray([-2.0 * math.log(2.0)]), 2)
    np.testing.assert_allclose(bits, [1.0])


def test_cross_entropy_and_loss_names():
    logits = jnp.log(jnp.asarray([[[0.5, 0.25, 0.25, 0, 0, 0, 0]]]) + 1e-30)
    np.testing.assert_allclose(
        cross_entropy(logits, jnp.asarray([[1]])), [[math.log(4.0)]], rtol=1e-6
    )
    model = lambda x, t: jnp.broadcast_to(logits, x.shape + (V,))
    x = jnp.asarray([[1]])
    np.testing.assert_allclose(
        discrete_loss(model, METRIC, x, x, jnp.asarray([0.5]), loss="cross_entropy"),
        math.log(4.0),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="Unknown discrete loss 'mse'"):
        discrete_loss(model, METRIC, x, x, jnp.asarray([0.5]), loss="mse")
    with pytest.raises(ValueError, match="has no source"):
        generalized_kl(
            MixtureDiscreteProbPath(PolynomialScheduler(1.0)), logits, x, x, jnp.asarray([0.5])
        )
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 7\)"):
        cross_entropy(logits, jnp.asarray([[7]]))


def test_discrete_mlp_shapes_labels_and_errors():
    def build():
        return DiscreteMLP(
            (2,),
            vocab_size=V,
            hidden_dim=16,
            token_embed_dim=4,
            num_layers=2,
            num_classes=3,
            rngs=nnx.Rngs(0),
        )

    x, labels = jnp.asarray([[0, 6], [3, 2]]), jnp.asarray([0, 3])

    @jax.jit
    def outputs(t_a, t_b):
        model = build()
        return model(x, t_a, label=labels), model(x, t_b, label=labels)

    out, later = outputs(0.3, 0.7)
    assert out.shape == (2, 2, V)
    assert not np.allclose(out, later)  # depends on t
    # Bad inputs are refused while tracing (nothing is computed).
    with pytest.raises(ValueError, match="integer tokens of shape"):
        jax.eval_shape(lambda: build()(jnp.zeros((2, 2)), 0.3, label=labels))
    with pytest.raises(ValueError, match="class-conditional"):
        jax.eval_shape(lambda: build()(x, 0.3))
