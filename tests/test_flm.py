"""FLM / FMLM: the argmax time, the sampler against an exact posterior, the flow map's identity and
semigroup, and bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, paths, solvers
from flowjax.solvers import FlowDivergenceSampler

V, L = 3, 2
SEQUENCES = np.array(list(itertools.product(range(V), repeat=L)))  # (9, 2)
DATA = np.array([0.30, 0.02, 0.08, 0.05, 0.25, 0.05, 0.10, 0.05, 0.10])  # p(sequence)
TIME = paths.ArgmaxTime(V)


# The argmax time ---------------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [8, 1000])
def test_alpha_is_the_rescaled_probability_that_the_argmax_is_right(vocab):
    g = np.linspace(0.0, 1.0, 201)
    alpha = paths.argmax_probability(g, vocab)
    assert alpha[0] == 0.0 and alpha[-1] == 1.0 and np.all(np.diff(alpha) >= 0)
    rng = np.random.default_rng(0)
    n = 40_000 if vocab == 8 else 4_000
    for gg in (0.4, 0.7, 0.85):
        x = (1 - gg) * rng.standard_normal((n, vocab))
        x[:, 0] += gg
        p = (x.argmax(1) == 0).mean()
        monte_carlo = vocab / (vocab - 1) * (p - 1 / vocab)
        stderr = vocab / (vocab - 1) * np.sqrt(p * (1 - p) / n)
        exact = paths.argmax_probability(np.array(gg), vocab)
        assert abs(monte_carlo - exact) < 4 * stderr + 1e-3, (gg, monte_carlo, exact)


def test_tables_round_trip_and_stay_monotone():
    time = paths.ArgmaxTime(50_257)
    alpha = jnp.linspace(0.0, 1.0, 2001)
    g = time.alpha_to_g(alpha)
    assert float(g[0]) == 0.0 and float(g[-1]) == 1.0 and bool(jnp.all(jnp.diff(g) >= 0))
    assert float(jnp.abs(time.g_to_alpha(g) - alpha).max()) < 1e-5
    # g -> alpha -> g where alpha still moves (below g = 0.85 for this vocabulary)
    g = jnp.linspace(0.05, 0.85, 161)
    assert float(jnp.abs(time.alpha_to_g(time.g_to_alpha(g)) - g).max()) < 1e-4
    np.testing.assert_allclose(
        np.asarray(time.g_to_alpha(g), np.float64),
        paths.argmax_probability(np.asarray(g, np.float64), 50_257),
        atol=2e-6,
    )


# The sampler against an exact posterior ------------------------------------------------------


def exact_probs(x, g):
    """p_hat (B, L, V) of the data DATA at x_g = x: the posterior over the 9 sequences is
    softmax(log p(y) + g / (1 - g)^2 sum_l x_{l, y_l})."""
    g = jnp.asarray(g).reshape(-1, 1)
    scores = jnp.einsum("blv,slv->bs", x, jax.nn.one_hot(SEQUENCES, V))
    posterior = jax.nn.softmax(jnp.log(DATA) + g / (1 - g) ** 2 * scores, axis=-1)
    return jnp.einsum("bs,slv->blv", posterior, jax.nn.one_hot(SEQUENCES, V))


def probs_at_alpha(x, alpha):
    return exact_probs(x, TIME.alpha_to_g(alpha))


def total_variation(tokens: np.ndarray) -> float:
    index = tokens[:, 0] * V + tokens[:, 1]
    counts = np.bincount(index, minlength=V**L) / len(index)
    return 0.5 * float(np.abs(counts - DATA).sum())


@pytest.fixture(scope="module")
def noise():
    return jax.random.normal(jax.random.key(0), (20_000, L, V))


def test_many_step_sampler_reproduces_the_data_and_one_step_does_not(noise):
    sample = jax.jit(lambda x: solvers.flm_sample(probs_at_alpha, x, TIME, 128))
    assert total_variation(np.asarray(sample(noise))) < 0.02
    # one step: the argmax of the first x-prediction, the same sequence for every noise
    one = np.asarray(jax.jit(lambda x: solvers.flm_sample(probs_at_alpha, x, TIME, 1))(noise))
    assert len(np.unique(one, axis=0)) == 1 and total_variation(one) > 0.6
    # the last Euler step returns p_hat itself: a point of the simplex
    state = solvers.flm_sample(probs_at_alpha, noise[:64], TIME, 8, return_state=True)
    np.testing.assert_allclose(np.asarray(state.sum(-1)), 1.0, atol=1e-5)
    assert float(state.min()) >= -1e-6


def test_the_flow_divergence_sampler_refines_it_unchanged(noise):
    """FDS on the FLM ODE in g: it moves states towards less ambiguous regions, so the samples
    gain fidelity (mean data log-probability; the plain sampler's is -1.89 nats) at some cost in
    coverage; with scale 0 it is the plain sampler."""
    refiner = FlowDivergenceSampler(scale=0.02, stop_time=0.9, exact_divergence=True)
    refine = jax.jit(
        lambda x, k: solvers.flm_sample(probs_at_alpha, x, TIME, 32, refiner=refiner, key=k)
    )
    refined = np.asarray(refine(noise[:4000], jax.random.key(1)))
    plain = np.asarray(solvers.flm_sample(probs_at_alpha, noise[:4000], TIME, 32))
    log_p = lambda tokens: np.log(DATA)[tokens[:, 0] * V + tokens[:, 1]].mean()  # noqa: E731
    assert (refined != plain).any(axis=1).mean() > 0.05  # it moved states
    assert log_p(refined) > log_p(plain) + 0.05  # towards likelier sequences
    off = FlowDivergenceSampler(scale=0.0, exact_divergence=True)
    same = solvers.flm_sample(probs_at_alpha, noise[:256], TIME, 8, refiner=off, key=jax.random.key(1))
    plain_8 = solvers.flm_sample(probs_at_alpha, noise[:256], TIME, 8)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(plain_8))


def test_trajectory_times_return_the_argmax_at_each(noise):
    x = noise[:8]
    tokens = solvers.flm_sample(probs_at_alpha, x, TIME, 16, times=(0.0, 0.5, 1.0))
    assert tokens.shape == (8, 3, L)
    np.testing.assert_array_equal(np.asarray(tokens[:, 0]), np.asarray(jnp.argmax(x, -1)))


# The flow map -----------------------------------------------------------------------------


def exact_map(x, g_s, g_t, steps=400):
    """X_{s,t}(x) of the exact flow by RK4 in g (per example)."""
    h = (g_t - g_s) / steps

    def velocity(y, g):
        return paths.one_hot_velocity(exact_probs(y, g), y, g)

    def step(i, y):
        g = g_s + i * h
        hh = h.reshape(-1, 1, 1)
        k1 = velocity(y, g)
        k2 = velocity(y + hh / 2 * k1, g + h / 2)
        k3 = velocity(y + hh / 2 * k2, g + h / 2)
        k4 = velocity(y + hh * k3, g + h)
        return y + hh / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return jax.lax.fori_loop(0, steps, step, x)


def exact_correction(x, alpha_s, alpha_t):
    """g_theta of the exact map: X = x + D v_s + D^2/2 g."""
    g_s, g_t = TIME.alpha_to_g(alpha_s), TIME.alpha_to_g(alpha_t)
    step = (g_t - g_s).reshape(-1, 1, 1)
    euler = solvers.euler_map(x, exact_probs(x, g_s), g_s, g_t)
    return 2 * (exact_map(x, g_s, g_t) - euler) / step**2


def test_flow_map_is_the_identity_at_s_equal_t():
    x = jax.random.normal(jax.random.key(3), (4, L, V))
    p, c = jax.nn.softmax(x), jax.random.normal(jax.random.key(4), x.shape)
    g = jnp.array([0.0, 0.3, 0.6, 0.9])
    np.testing.assert_array_equal(np.asarray(solvers.taylor_map(x, p, c, g, g)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(solvers.euler_map(x, p, g, g)), np.asarray(x))


def test_semigroup_target_is_matched_by_the_exact_map():
    key_s, key_d, key_x = jax.random.split(jax.random.key(5), 3)
    d = jax.random.uniform(key_d, (6,), minval=0.2, maxval=0.7)
    alpha_s = jax.random.uniform(key_s, (6,)) * (0.95 - d)
    alpha_t = alpha_s + d
    x_1 = jnp.asarray(SEQUENCES[[0, 4, 6, 8, 2, 0]])
    eps = jax.random.normal(key_x, (6, L, V))
    x_s = paths.OneHotGaussianPath(V, TIME).sample(x_1, TIME.alpha_to_g(alpha_s), eps)
    teacher = lambda x, a: probs_at_alpha(x, a)  # noqa: E731
    loss = lambda student: losses.flow_map_loss(student, teacher, TIME, x_s, alpha_s, alpha_t)  # noqa: E731
    exact = float(jax.jit(lambda: loss(exact_correction))())
    zero = float(loss(lambda x, a, b: jnp.zeros_like(x)))
    assert zero > 1e-3 and exact < 1e-4 * zero, (exact, zero)
    # stage two: a student whose Euler map is the map's has zero loss
    target_probs = lambda x, a, b: (  # noqa: E731
        exact_map(x, TIME.alpha_to_g(a), TIME.alpha_to_g(b)) - x
    ) * (1 - TIME.alpha_to_g(a)).reshape(-1, 1, 1) / (
        TIME.alpha_to_g(b) - TIME.alpha_to_g(a)
    ).reshape(-1, 1, 1) + x
    stage_one = lambda x, a, b, g_s, g_t: exact_map(x, g_s, g_t)  # noqa: E731
    two = losses.one_call_loss(target_probs, stage_one, TIME, x_s, alpha_s, alpha_t)
    assert float(two) < 1e-8


# Bad input ---------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_error():
    x = jnp.zeros((2, L, V + 1))
    with pytest.raises(ValueError, match="vocab_size=3"):
        solvers.flm_sample(probs_at_alpha, x, TIME, 4)
    with pytest.raises(ValueError, match="times must ascend from 0 to 1"):
        solvers.flm_sample(probs_at_alpha, x[..., :V], TIME, 4, times=(0.0, 0.7, 0.5, 1.0))
    path = paths.OneHotGaussianPath(V, TIME)
    with pytest.raises(ValueError, match="outside"):
        path.sample(jnp.array([[0, 5]]), jnp.array([0.5]), jnp.zeros((1, L, V)))
    x_s = jnp.zeros((2, L, V))
    with pytest.raises(ValueError, match="s > t"):
        losses.flow_map_loss(
            lambda x, a, b: x, probs_at_alpha, TIME, x_s, jnp.array([0.5, 0.2]), jnp.array([0.4, 0.3])
        )
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2"):
        paths.ArgmaxTime(1)
