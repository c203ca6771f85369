"""The CTMC Euler sampler: it reproduces the path's marginals, samples q from its exact posterior,
guides, draws categoricals exactly, and refuses bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.guidance import guided_logits
from flowjax.paths import (
    KineticOptimalScheduler,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    PolynomialScheduler,
    PowerBeta,
    TokenDistance,
    UniformSource,
)
from flowjax.solvers import discrete_sample, sample_categorical

K = 5  # data tokens
PATHS = {
    "mask_linear": MixtureDiscreteProbPath(PolynomialScheduler(1.0), MaskSource(K + 1)),
    "uniform_ko": MixtureDiscreteProbPath(KineticOptimalScheduler(1.0 / K), UniformSource(K)),
    "metric": MetricInducedProbPath(K, TokenDistance(scale=0.5), PowerBeta(c=2.0, a=1.0)),
}


def total_variation(p, q) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def histogram(tokens: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(np.asarray(tokens).reshape(-1), minlength=size) / np.asarray(tokens).size


def delta_model(x_1: jnp.ndarray, vocab: int):
    """A posterior sure of x_1 (one target token per position), so the sampler simulates the
    conditional chain u_t(. | x_1)."""

    def logits(x, t):
        del t
        hit = jax.nn.one_hot(x_1, vocab, dtype=bool)
        return jnp.broadcast_to(jnp.where(hit, 0.0, -1e9), x.shape + (vocab,))

    return logits


@functools.partial(jax.jit, static_argnames=("name", "div_free", "n"))
def simulate_to_half(key, name, div_free, n):
    path = PATHS[name]
    x_1 = jnp.arange(K)  # one position per target token
    x_init = path.source.sample(jax.random.key(7), (n, K))
    return discrete_sample(
        key,
        delta_model(x_1, path.vocab_size),
        x_init,
        path,
        step_size=0.005,
        time_grid=(0.0, 0.5),
        div_free=div_free,
    )


@pytest.mark.parametrize(
    "name, div_free",
    [
        ("mask_linear", 2.0),  # the mask path's velocity plus its corrector (remasking)
        ("uniform_ko", 0.0),
        ("metric", 1.0),
        pytest.param("mask_linear", 0.0, marks=pytest.mark.slow),
        pytest.param("metric", 0.0, marks=pytest.mark.slow),
    ],
)
def test_ctmc_reproduces_the_conditional_path(name, div_free):
    """Simulating u_t(. | x_1) (+ the divergence-free corrector) from p_0 gives p_t(. | x_1)."""
    path = PATHS[name]
    x_t = np.asarray(simulate_to_half(jax.random.key(0), name, div_free, 20_000))
    expected = np.asarray(path.probs(jnp.arange(K), 0.5))
    tv = [total_variation(histogram(x_t[:, i], path.vocab_size), expected[i]) for i in range(K)]
    assert max(tv) < 0.02, tv


def table_posterior(path, q: np.ndarray):
    """The exact posterior logits p(x_1^i | x_t) of data q over K x K token pairs (D = 2)."""
    states = jnp.stack(jnp.meshgrid(jnp.arange(K), jnp.arange(K), indexing="ij"), -1).reshape(-1, 2)
    q_flat = jnp.asarray(q.reshape(-1))

    def logits(x, t):
        likelihood = path.probs(states, t).transpose(1, 2, 0)  # (2, V, S): p_t(z | x_1^i = s^i)
        joint = q_flat * jnp.prod(likelihood[jnp.arange(2), x], axis=1)  # (N, S)
        weights = joint / joint.sum(axis=-1, keepdims=True)
        posterior = jnp.einsum("ns,sik->nik", weights, jax.nn.one_hot(states, path.vocab_size))
        return jnp.log(posterior)

    return logits


@functools.partial(jax.jit, static_argnames=("name", "n"))
def sample_table(key, q, name, n):
    path = PATHS[name]
    x_init = path.source.sample(jax.random.key(3), (n, 2))
    return discrete_sample(key, table_posterior(path, q), x_init, path, step_size=0.01)


@pytest.mark.parametrize(
    "name", ["mask_linear", "uniform_ko", pytest.param("metric", marks=pytest.mark.slow)]
)
def test_exact_posterior_samples_match_q(name):
    q = np.random.default_rng(1).dirichlet(np.ones(K * K)).reshape(K, K)
    x = np.asarray(sample_table(jax.random.key(2), jnp.asarray(q), name, 40_000))
    counts = np.zeros((K, K))
    np.add.at(counts, (x[:, 0], x[:, 1]), 1.0)
    assert total_variation(counts / len(x), q) < 0.02


def test_one_step_and_intermediates():
    path = PATHS["mask_linear"]
    x_1 = jnp.asarray([3, 1, 4])
    x_init = jnp.full((8, 3), K)
    out = discrete_sample(jax.random.key(0), delta_model(x_1, K + 1), x_init, path)
    np.testing.assert_array_equal(out, np.broadcast_to(x_1, (8, 3)))  # one step ending at 1
    trajectory = discrete_sample(
        jax.random.key(0),
        delta_model(x_1, K + 1),
        x_init,
        path,
        step_size=0.1,
        time_grid=(0.0, 0.5, 1.0),
        return_intermediates=True,
    )
    assert trajectory.shape == (3, 8, 3) and trajectory.dtype == jnp.int32
    np.testing.assert_array_equal(trajectory[0], x_init)
    np.testing.assert_array_equal(trajectory[-1], np.broadcast_to(x_1, (8, 3)))
    # At t = 0.5 every token is still masked or already its target.
    assert np.all((trajectory[1] == K) | (trajectory[1] == x_1))


def test_classifier_free_guidance_of_a_discrete_model():
    """One step from t = 0: x = a draw of the guided posterior p_c^(1 + w) p_u^(-w)."""
    path = PATHS["uniform_ko"]
    table = jnp.log(
        jnp.asarray(
            [[0.5, 0.2, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.2, 0.5], [0.3, 0.15, 0.1, 0.15, 0.3]]
        )
    )  # label 0, label 1, null label 2

    def model(x, t, label):
        del t
        return jnp.broadcast_to(table[label][:, None, :], x.shape + (K,))

    w, n = 1.5, 40_000
    guided = guided_logits(model, w, null_label=2)
    x = discrete_sample(
        jax.random.key(4), guided, jnp.zeros((n, 1), jnp.int32), path, label=jnp.zeros(n, jnp.int32)
    )
    expected = jax.nn.softmax((1 + w) * table[0] - w * table[2])
    assert total_variation(histogram(x, K), expected) < 0.015


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_categorical_is_exact_and_never_draws_zero_weights(dtype):
    with jax.enable_x64(dtype == "float64"):
        weights = jnp.asarray([0.0, 3.0, 0.0, 1.0, 6.0, 0.0]) * 1e-3
        draws = sample_categorical(
            jax.random.key(0), jnp.broadcast_to(weights, (100_000, 6)), dtype
        )
        freq = histogram(draws, 6)
        assert freq[[0, 2, 5]].sum() == 0.0
        np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.01)
        # A float64 run of the sampler gives valid tokens.
        if dtype == "float64":
            out = discrete_sample(
                jax.random.key(1),
                delta_model(jnp.arange(3), K + 1),
                jnp.full((4, 3), K),
                PATHS["mask_linear"],
                step_size=0.25,
                dtype=jnp.float64,
            )
            np.testing.assert_array_equal(out, np.broadcast_to(np.arange(3), (4, 3)))


BAD_CALLS = {
    "token outside the vocabulary": (
        dict(x_init=jnp.full((2, 3), K + 1)),
        r"x_init holds token ids in \[6, 6\], outside",
    ),
    "logits of the wrong vocabulary": (
        dict(model_fn=lambda x, t: jnp.zeros(x.shape + (K,))),
        r"logits must have shape x.shape \+",
    ),
    "descending time grid": (dict(time_grid=(1.0, 0.0)), "must be ascending"),
    "negative corrector": (dict(div_free=-1.0), "div_free must be >= 0"),
    "float64 without x64": (dict(dtype=jnp.float64), "needs 64-bit JAX"),
    "path without a source": (
        dict(path=MixtureDiscreteProbPath(PolynomialScheduler(1.0))),
        "needs the path's vocabulary",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_is_refused_before_compiling(case):
    overrides, message = BAD_CALLS[case]
    kwargs = dict(
        model_fn=delta_model(jnp.arange(3), K + 1),
        x_init=jnp.full((2, 3), K),
        path=PATHS["mask_linear"],
    )
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=message):
        discrete_sample(jax.random.key(0), **kwargs)
