"""Discrete paths: continuity equation, rate properties, kinetic-optimal velocities, sources.

Every path/velocity pair is checked on a small vocabulary in float64 against the Kolmogorov
forward equation pdot_t(x) = sum_z u_t(x, z) p_t(z), with pdot_t from forward-mode
differentiation of the path's p_t.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.paths import (
    CategoricalSource,
    CondOTScheduler,
    CosineScheduler,
    KineticOptimalScheduler,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    PolynomialScheduler,
    PowerBeta,
    TokenDistance,
    EmbeddingDistance,
    UniformSource,
    continuity_residual,
    divergence_free_velocity,
    kinetic_optimal_rates,
    kinetic_optimal_velocity,
)

V = 6
TIMES = (0.05, 0.37, 0.8)
PATHS = {
    "mask_poly2": MixtureDiscreteProbPath(PolynomialScheduler(2.0), MaskSource(V)),
    "mask_ko": MixtureDiscreteProbPath(KineticOptimalScheduler(0.0), MaskSource(V)),
    "uniform_ko": MixtureDiscreteProbPath(
        KineticOptimalScheduler.for_source(UniformSource(V)), UniformSource(V)
    ),
    "categorical_condot": MixtureDiscreteProbPath(
        CondOTScheduler(), CategoricalSource((0.1, 0.3, 0.05, 0.25, 0.2, 0.1))
    ),
    "metric": MetricInducedProbPath(
        V, TokenDistance(scale=0.5, power=1.5), PowerBeta(c=2.0, a=0.9)
    ),
    "metric_embedding": MetricInducedProbPath(
        V,
        EmbeddingDistance(np.random.default_rng(3).normal(size=(V, 4)), power=2.0),
        PowerBeta(c=2.0, a=0.9),
    ),
}
DATA_TOKENS = {name: V - 1 if name.startswith("mask") else V for name in PATHS}


def rate_matrix(velocity_fn, vocab: int) -> jnp.ndarray:
    """u[x, z] from a function z-tokens (V,) -> rates (V, V_y) (row z is the column u[:, z])."""
    return velocity_fn(jnp.arange(vocab)).T


def path_and_derivative(path, x_1, t):
    return jax.jvp(lambda s: path.probs(x_1, s), (t,), (jnp.ones_like(t),))


@functools.partial(jax.jit, static_argnames="name")
def conditional_velocities(name):
    """For every data token x_1 and time of TIMES: p, pdot, the path's rate matrix and the
    kinetic-optimal one of its p_t; arrays of shape (K, len(TIMES), ...)."""
    path = PATHS[name]

    def one(x_1, t):
        p, dp = path_and_derivative(path, x_1, t)
        u = rate_matrix(lambda z: path.conditional_velocity(z, jnp.full_like(z, x_1), t), V)
        u_ko = kinetic_optimal_velocity(lambda s: path.probs(x_1, s), t)
        return p, dp, u, u_ko

    return jax.vmap(jax.vmap(one, (None, 0)), (0, None))(
        jnp.arange(DATA_TOKENS[name]), jnp.asarray(TIMES)
    )


@pytest.mark.parametrize("name", list(PATHS))
def test_conditional_velocity_solves_the_continuity_equation(name, x64):
    p, dp, u, u_ko = conditional_velocities(name)
    assert np.max(np.abs(continuity_residual(u, p, dp))) < 1e-6
    off_diagonal = np.asarray(u)[..., ~np.eye(V, dtype=bool)]
    assert off_diagonal.min() >= 0.0
    np.testing.assert_allclose(np.asarray(u).sum(axis=-2), 0.0, atol=1e-12)
    # The kinetic-optimal velocity of the same p_t (weights tau = p) is this closed form; rates
    # out of empty states are not determined by the path.
    occupied = np.broadcast_to(np.asarray(p)[..., None, :] > 0, u.shape)
    np.testing.assert_allclose(np.asarray(u_ko)[occupied], np.asarray(u)[occupied], atol=1e-9)
    assert np.max(np.abs(continuity_residual(u_ko, p, dp))) < 1e-6


@jax.jit
def weighted_and_divergence_free_residuals():
    """Continuity residuals of: the kinetic-optimal rates with weights tau != p (against pdot),
    the rates v(x, z) = p(x), and every path's corrector (both against pdot = 0)."""
    path = PATHS["metric"]
    tau = jnp.asarray([0.5, 1.0, 2.0, 0.1, 1.5, 0.7])
    p, dp = path_and_derivative(path, jnp.asarray(2), jnp.asarray(0.4))
    u = kinetic_optimal_rates(p, dp, tau)
    v = divergence_free_velocity(p)
    residuals = {
        "weighted": continuity_residual(u, p, dp),
        "refresh": continuity_residual(v, p, 0 * p),
    }
    for name, other in PATHS.items():
        q = other.probs(jnp.asarray(1), 0.6)
        w = rate_matrix(lambda z: other.divergence_free_velocity(z, jnp.full_like(z, 1), 0.6), V)
        residuals[name] = continuity_residual(w, q, 0 * q)
    return residuals, u, v


def test_kinetic_optimal_velocity_with_other_weights_and_the_divergence_free_part(x64):
    """Any positive tau gives a velocity of the path; p-preserving rates (the refresh rates
    v(x, z) = p(x) and the paths' correctors) add nothing to pdot."""
    residuals, u, v = weighted_and_divergence_free_residuals()
    assert np.max(np.abs(residuals.pop("weighted"))) < 1e-6
    assert np.asarray(u)[~np.eye(V, dtype=bool)].min() >= 0
    for name, residual in residuals.items():
        assert np.max(np.abs(residual)) < 1e-12, name
    np.testing.assert_allclose(np.asarray(v).sum(axis=0), 0.0, atol=1e-12)


@functools.partial(jax.jit, static_argnames="name")
def marginal_velocities(name, q):
    """D = 1 with data q: the marginal p_t, pdot_t, and the rate matrices from the exact
    posterior through posterior_to_velocity and posterior_to_log_velocity, at every time."""
    path = PATHS[name]
    x_1, z = jnp.arange(q.shape[0]), jnp.arange(V)

    def one(t):
        p, dp = jax.jvp(lambda s: q @ path.probs(x_1, s), (t,), (jnp.ones_like(t),))
        joint = q[:, None] * path.probs(x_1, t)  # (K, V): q(x_1) p_t(z | x_1)
        posterior = (joint / joint.sum(axis=0, keepdims=True)).T  # (V, K) over x_1 given z
        logits = jnp.full((V, V), -jnp.inf).at[:, : q.shape[0]].set(jnp.log(posterior))
        times = jnp.full((V,), t)
        u = path.posterior_to_velocity(logits, z, times).T
        log_u = path.posterior_to_log_velocity(logits, z, times).T
        return p, dp, u, log_u

    return jax.vmap(one)(jnp.asarray(TIMES))


@pytest.mark.parametrize("name", list(PATHS))
def test_marginal_velocity_of_the_exact_posterior_solves_the_continuity_equation(name, x64):
    q = jnp.asarray(np.random.default_rng(0).dirichlet(np.ones(DATA_TOKENS[name])))
    p, dp, u, log_u = marginal_velocities(name, q)
    assert np.max(np.abs(continuity_residual(u, p, dp))) < 1e-6
    off = np.broadcast_to(~np.eye(V, dtype=bool), u.shape)
    assert np.asarray(u)[off].min() >= 0
    np.testing.assert_allclose(np.exp(np.asarray(log_u))[off], np.asarray(u)[off], atol=1e-12)


def test_metric_path_moves_mass_only_closer_to_the_data(x64):
    path = PATHS["metric"]
    d = np.abs(np.arange(V)[:, None] - np.arange(V)[None, :])
    for x_1 in range(V):
        u = np.asarray(
            rate_matrix(lambda z: path.conditional_velocity(z, jnp.full_like(z, x_1), 0.5), V)
        )
        farther_or_equal = d[:, x_1][:, None] >= d[:, x_1][None, :]  # d(x, x_1) >= d(z, x_1)
        assert np.all(u[farther_or_equal & ~np.eye(V, dtype=bool)] == 0.0)
    # Endpoints: uniform at t = 0, delta_{x_1} at t = 1.
    np.testing.assert_allclose(path.probs(jnp.asarray(2), 0.0), np.full(V, 1.0 / V))
    np.testing.assert_allclose(path.probs(jnp.asarray(2), 1.0), np.eye(V)[2])


def fisher_energy(path, t):
    """sum_x pdot_t(x)^2 / p_t(x) of p_t(. | x_1 = 0)."""
    p, dp = path_and_derivative(path, jnp.asarray(0), t)
    occupied = p > 0
    return jnp.sum(jnp.where(occupied, dp**2 / jnp.where(occupied, p, 1.0), 0.0))


def test_kinetic_optimal_scheduler_and_its_energy(x64):
    """kappa = sin^2(pi t / 2) for a mask source; sum pdot^2 / p = 4 W^2 at every t (pi^2 for the
    mask), below the energy of another smooth schedule with the same end points."""
    mask = KineticOptimalScheduler(0.0)
    t = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(mask(t).alpha_t, np.sin(np.pi * t / 2) ** 2, atol=1e-12)
    for scheduler in (mask, KineticOptimalScheduler(1.0 / 128)):
        out = scheduler(t)
        grad = jax.vmap(jax.grad(lambda s: scheduler(s).alpha_t))(t)
        np.testing.assert_allclose(out.d_alpha_t, grad, atol=1e-10)
        np.testing.assert_allclose(scheduler.kappa_inverse(out.alpha_t), t, atol=1e-7)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    times = 0.5 * (nodes + 1.0)
    for source, scheduler in ((MaskSource(V), mask), (UniformSource(V), None)):
        scheduler = scheduler or KineticOptimalScheduler.for_source(source)
        path = MixtureDiscreteProbPath(scheduler, source)
        energy = jax.jit(jax.vmap(lambda s: fisher_energy(path, s)))(jnp.asarray(times))
        np.testing.assert_allclose(energy, 4.0 * scheduler.angle**2, rtol=1e-9)
    assert 4.0 * mask.angle**2 == pytest.approx(math.pi**2)

    def smoothstep_energy(s):  # kappa = 3 s^2 - 2 s^3: kappa'^2 / (kappa (1 - kappa))
        kappa, d_kappa = 3 * s**2 - 2 * s**3, 6 * s * (1 - s)
        return d_kappa**2 / (kappa * (1 - kappa))

    assert 0.5 * np.sum(weights * smoothstep_energy(times)) > math.pi**2 + 0.01
    with pytest.raises(ValueError, match="per token"):
        KineticOptimalScheduler.for_source(CategoricalSource((0.5, 0.5)))


@pytest.mark.parametrize("name", list(PATHS))
def test_posterior_logits_follow_bayes_rule(name, x64):
    """D = 1, data q: the network's part of the posterior is log q, and posterior_logits adds
    log p_t(z | x_1), which gives the exact posterior p(x_1 | z) for every current token z."""
    path, k = PATHS[name], DATA_TOKENS[name]
    q = np.random.default_rng(3).dirichlet(np.ones(k))
    network = jnp.full((V, V), -jnp.inf).at[:, :k].set(jnp.log(q))
    t = 0.45
    logits = path.posterior_logits(network, jnp.arange(V), jnp.full((V,), t))
    joint = q[:, None] * np.asarray(path.probs(jnp.arange(k), t))  # (k, V): q(x_1) p_t(z | x_1)
    occupied = joint.sum(axis=0) > 0  # the current tokens z the path can produce
    exact = (joint / joint.sum(axis=0, keepdims=True)).T[occupied]
    np.testing.assert_allclose(jax.nn.softmax(logits)[occupied][:, :k], exact, atol=1e-12)
    if name.startswith("mask"):  # an unmasked token is final; the mask is never data
        np.testing.assert_array_equal(np.isfinite(logits[:k, :k]), np.eye(k, dtype=bool))
        assert np.all(np.asarray(logits[:, V - 1]) == -np.inf)


def test_mixture_path_sample_and_sources():
    key = jax.random.key(0)
    path = MixtureDiscreteProbPath(PolynomialScheduler(2.0), MaskSource(V))
    t = jnp.asarray([0.0, 0.3, 0.7, 1.0])
    x_0 = jnp.full((4, 20_000), V - 1)
    x_1 = jnp.zeros((4, 20_000), jnp.int32)
    x_t = jax.jit(lambda k: path.sample(k, x_0, x_1, t).x_t)(key)
    from_source = np.asarray(x_t == V - 1).mean(axis=1)
    np.testing.assert_allclose(from_source, 1.0 - np.asarray(t) ** 2, atol=0.015)
    assert from_source[0] == 1.0 and from_source[-1] == 0.0
    # Sources: draws and probabilities.
    assert np.all(np.asarray(MaskSource(V).sample(key, (3,))) == V - 1)
    np.testing.assert_allclose(MaskSource(V, mask_token=0).probs(), np.eye(V)[0])
    draws = np.asarray(
        jax.jit(lambda k: CategoricalSource((0.2, 0.0, 0.8)).sample(k, (20_000,)))(key)
    )
    np.testing.assert_allclose(
        np.bincount(draws, minlength=3) / 20_000, [0.2, 0.0, 0.8], atol=0.015
    )
    uniform = np.asarray(UniformSource(V).sample(key, (20_000,)))
    assert uniform.min() == 0 and uniform.max() == V - 1


def test_metric_path_sample_matches_its_probabilities():
    path = PATHS["metric"]
    x_1 = jnp.full((20_000,), 3)
    x_t = jax.jit(lambda k: path.sample(k, x_1, x_1, jnp.full((20_000,), 0.5)).x_t)(
        jax.random.key(1)
    )
    histogram = np.bincount(np.asarray(x_t), minlength=V) / 20_000
    assert 0.5 * np.abs(histogram - np.asarray(path.probs(jnp.asarray(3), 0.5))).sum() < 0.01


BAD_INPUTS = {
    "token outside the vocabulary": (
        lambda p: p.sample(
            jax.random.key(0), jnp.asarray([[V]]), jnp.asarray([[0]]), jnp.asarray([0.5])
        ),
        ValueError,
        r"x_0 holds token ids in \[6, 6\], outside the vocabulary \[0, 6\)",
    ),
    "negative token": (
        lambda p: p.sample(
            jax.random.key(0), jnp.asarray([[0]]), jnp.asarray([[-1]]), jnp.asarray([0.5])
        ),
        ValueError,
        "outside the vocabulary",
    ),
    "float tokens": (
        lambda p: p.sample(
            jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.asarray([0.5])
        ),
        TypeError,
        "integer token ids",
    ),
    "logits of the wrong vocabulary": (
        lambda p: p.posterior_to_velocity(
            jnp.zeros((1, 2, V + 1)), jnp.zeros((1, 2), jnp.int32), 0.5
        ),
        ValueError,
        r"logits must have shape x_t.shape \+ \(vocab,\) = \(1, 2\) \+ \(6,\), got \(1, 2, 7\)",
    ),
    "time outside [0, 1]": (
        lambda p: p.sample(
            jax.random.key(0),
            jnp.zeros((1, 2), jnp.int32),
            jnp.zeros((1, 2), jnp.int32),
            jnp.asarray([1.5]),
        ),
        ValueError,
        r"t must lie in \[0, 1\]",
    ),
}


@pytest.mark.parametrize("path_name", ["mask_poly2", "metric"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_are_refused(path_name, case):
    call, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        call(PATHS[path_name])


def test_bad_constructions_are_refused():
    with pytest.raises(TypeError, match="ConvexScheduler"):
        MixtureDiscreteProbPath(CosineScheduler(), MaskSource(V))
    with pytest.raises(ValueError, match="has no source"):
        MixtureDiscreteProbPath(PolynomialScheduler(1.0)).probs(jnp.asarray([0]), 0.5)
    with pytest.raises(ValueError, match="summing to 1"):
        CategoricalSource((0.5, 0.6))
    with pytest.raises(ValueError, match="mask_token"):
        MaskSource(4, mask_token=4)
    with pytest.raises(ValueError, match="target_source_prob"):
        KineticOptimalScheduler(1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        MetricInducedProbPath(1)
