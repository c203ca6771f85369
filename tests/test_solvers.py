"""ODE sampling and likelihoods against closed forms, convergence orders and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.models import MLP
from flowjax.paths import CondOTProbPath, GaussianMixture, analytic
from flowjax.solvers import (
    exact_divergence,
    hutchinson_divergence,
    hutchinson_probes,
    ode_log_likelihood,
    ode_sample,
    ode_sample_with_log_likelihood,
    standard_normal_log_density,
)
from flowjax.solvers.integrate import step_nodes

PATH = CondOTProbPath()


def _gaussian(dtype):
    """Data N(mu, S) with a full covariance, as a one-component mixture."""
    cov = jnp.asarray([[0.6, 0.25, 0.0], [0.25, 0.4, -0.1], [0.0, -0.1, 0.9]], dtype)
    return GaussianMixture(jnp.ones((1,), dtype), jnp.asarray([[1.0, -0.5, 2.0]], dtype), cov[None])


def _exact_velocity(mixture):
    return lambda x, t: analytic.marginal_velocity(PATH, mixture, x, t)


def test_ode_sample_reaches_gaussian_data_exactly(x64):
    """Under CondOT the flow of N(0, I) to N(mu, S) is x_1 = mu + S^(1/2) x_0 (S^(1/2) symmetric)."""
    mixture = _gaussian(jnp.float64)
    x_0 = jax.random.normal(jax.random.key(0), (64, 3), jnp.float64)
    evals, evecs = np.linalg.eigh(np.asarray(mixture.covs[0]))
    sqrt_cov = evecs @ np.diag(np.sqrt(evals)) @ evecs.T
    expected = np.asarray(mixture.means[0]) + np.asarray(x_0) @ sqrt_cov
    rk4 = ode_sample(_exact_velocity(mixture), x_0, method="rk4", step_size=0.02)
    np.testing.assert_allclose(rk4, expected, atol=1e-7)
    dopri = ode_sample(_exact_velocity(mixture), x_0, method="dopri5", atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(dopri, expected, atol=1e-7)
    back = ode_sample(_exact_velocity(mixture), rk4, method="rk4", step_size=0.02, time_grid=(1.0, 0.0))
    np.testing.assert_allclose(back, x_0, atol=1e-7)


@pytest.mark.parametrize("method,step", [("rk4", 0.02), ("dopri5", None)])
def test_exact_log_likelihood_matches_analytic_density(method, step):
    mixture = _gaussian(jnp.float32)
    x_1 = mixture.sample(jax.random.key(1), 32)
    _, log_p1 = ode_log_likelihood(
        _exact_velocity(mixture), x_1, standard_normal_log_density, method=method, step_size=step
    )
    np.testing.assert_allclose(log_p1, mixture.log_prob(x_1), atol=1e-3)


def _fast_gaussian_velocity(mean, cov):
    """The CondOT marginal velocity for N(0, I) -> N(mean, cov), via cov's eigenbasis."""
    lam, q = (jnp.asarray(a, jnp.float32) for a in np.linalg.eigh(np.asarray(cov)))

    def velocity(x, t):
        gain = (t * lam - (1.0 - t)) / (t**2 * lam + (1.0 - t) ** 2)
        return mean + ((x - t * mean) @ q * gain) @ q.T

    return velocity


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_log_likelihood_is_unbiased_and_converges(probe):
    """Hutchinson's estimate scatters around the analytic density with standard error ~ 1/sqrt(K)."""
    mixture = _gaussian(jnp.float32)
    velocity = _fast_gaussian_velocity(mixture.means[0], mixture.covs[0])
    x_1 = mixture.sample(jax.random.key(1), 4)
    truth = mixture.log_prob(x_1)

    def estimate(key, num_probes):
        return ode_log_likelihood(
            velocity, x_1, standard_normal_log_density, method="rk4", step_size=0.05,
            exact_divergence=False, key=key, num_probes=num_probes, probe=probe,
        )[1]

    keys = jax.random.split(jax.random.key(3), 32)
    spread = {}
    for num_probes in (64, 1024):
        runs = jax.vmap(lambda k: estimate(k, num_probes))(keys)  # (32, 4)
        std_err = runs.std(axis=0) / np.sqrt(runs.shape[0])
        assert np.all(np.abs(runs.mean(axis=0) - truth) < 4.0 * std_err + 1e-4)
        spread[num_probes] = float(runs.std(axis=0).mean())
    # 16x the probes: the spread falls by about 4x.
    assert 0.15 < spread[1024] / spread[64] < 0.4
    # Enough probes reach the analytic density closely.
    np.testing.assert_allclose(estimate(jax.random.key(4), 2**18), truth, atol=1e-2)


def test_rademacher_hutchinson_is_exact_for_a_diagonal_jacobian():
    """With a diagonal Jacobian, z . (J z) = Tr J for every Rademacher z: one probe suffices."""
    cov = jnp.diag(jnp.asarray([0.6, 0.2, 1.5]))
    mixture = GaussianMixture(jnp.ones((1,)), jnp.asarray([[1.0, -0.5, 2.0]]), cov[None])
    x_1 = mixture.sample(jax.random.key(5), 16)
    _, log_p1 = ode_log_likelihood(
        _fast_gaussian_velocity(mixture.means[0], cov), x_1, standard_normal_log_density,
        method="rk4", step_size=0.05, exact_divergence=False, key=jax.random.key(6),
    )
    np.testing.assert_allclose(log_p1, mixture.log_prob(x_1), atol=1e-3)


def _nonlinear_field(event_shape, key):
    dim = int(np.prod(event_shape))
    w = jax.random.normal(key, (dim, dim)) / np.sqrt(dim)

    def field(x):
        flat = x.reshape(x.shape[0], -1)
        return jnp.tanh(flat @ w + 0.3 * flat**2).reshape(x.shape)

    return field


@pytest.mark.parametrize("event_shape", [(2,), (2, 3), (2, 2, 2), (3, 5, 5)])
def test_exact_divergence_any_event_shape(event_shape):
    """Trace of the per-sample Jacobian, for events of any rank (and D > chunk: (3, 5, 5))."""
    field = _nonlinear_field(event_shape, jax.random.key(4))
    x = jax.random.normal(jax.random.key(5), (3, *event_shape))
    value, div = exact_divergence(field, x)
    dim = int(np.prod(event_shape))
    jac = jax.vmap(jax.jacfwd(lambda xb: field(xb[None])[0].reshape(-1)))(x).reshape(3, dim, dim)
    np.testing.assert_allclose(value, field(x), rtol=1e-6)
    np.testing.assert_allclose(div, jnp.trace(jac, axis1=1, axis2=2), rtol=1e-5, atol=1e-5)
    probes = hutchinson_probes(jax.random.key(6), x.shape, 4096, "rademacher", x.dtype)
    _, est = hutchinson_divergence(field, x, probes)
    np.testing.assert_allclose(est, div, atol=0.1 * np.sqrt(dim))


def test_forward_and_backward_likelihoods_agree():
    model = MLP(2, hidden_dim=32, num_layers=2, rngs=nnx.Rngs(0))
    velocity = lambda x, t: model(x, t)
    x_0 = jax.random.normal(jax.random.key(7), (16, 2))
    x_1, log_p_forward = ode_sample_with_log_likelihood(
        velocity, x_0, standard_normal_log_density, method="dopri5", atol=1e-7, rtol=1e-7
    )
    np.testing.assert_allclose(x_1, ode_sample(velocity, x_0, method="dopri5", atol=1e-7, rtol=1e-7), atol=1e-5)
    x_0_back, log_p_backward = ode_log_likelihood(
        velocity, x_1, standard_normal_log_density, method="dopri5", atol=1e-7, rtol=1e-7
    )
    np.testing.assert_allclose(x_0_back, x_0, atol=1e-4)
    np.testing.assert_allclose(log_p_forward, log_p_backward, atol=1e-4)


def _linear_field(x, t):
    """dx/dt = A(t) x with a rotation-plus-decay A(t); solved in closed form below."""
    a = jnp.asarray([[-0.5, 2.0], [-2.0, -0.5]], x.dtype)
    return (1.0 + t) * (x @ a.T)


def _linear_solution(x0, t1):
    # A(t) = (1 + t) A commutes with itself, so x(t1) = expm(A (t1 + t1^2 / 2)) x0.
    a = np.asarray([[-0.5, 2.0], [-2.0, -0.5]])
    theta = t1 + 0.5 * t1**2
    from scipy.linalg import expm

    return np.asarray(x0) @ expm(a * theta).T


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_convergence_order(method, order, x64):
    x0 = jnp.asarray([[1.0, 0.5]], jnp.float64)
    exact = _linear_solution(x0, 1.0)
    errors = []
    for n in (20, 40, 80):
        x1 = ode_sample(_linear_field, x0, method=method, step_size=1.0 / n)
        errors.append(np.abs(np.asarray(x1) - exact).max())
    measured = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    np.testing.assert_allclose(measured, order, atol=0.15)


def test_time_grid_nodes_and_intermediates():
    nodes, index = step_nodes(np.asarray([0.0, 0.25, 1.0]), 0.1)
    np.testing.assert_allclose(
        nodes, [0.0, 0.1, 0.2, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0], atol=1e-12
    )
    np.testing.assert_array_equal(index, [0, 3, 11])
    nodes, _ = step_nodes(np.asarray([1.0, 0.0]), 0.05)
    assert len(nodes) == 21 and nodes[-1] == 0.0
    x0 = jnp.asarray([[1.0, 0.5], [0.2, -1.0]])
    grid = (0.0, 0.25, 0.6, 1.0)
    traj = ode_sample(_linear_field, x0, method="midpoint", step_size=0.1, time_grid=grid, return_intermediates=True)
    assert traj.shape == (4, 2, 2)
    np.testing.assert_allclose(traj[0], x0)
    # Each stored state equals a separate solve up to that time with the same steps.
    for i in range(1, 4):
        part = ode_sample(_linear_field, x0, method="midpoint", step_size=0.1, time_grid=grid[: i + 1])
        np.testing.assert_allclose(traj[i], part, rtol=1e-6)
    # Descending grids, fixed and adaptive.
    x1 = jnp.asarray(_linear_solution(x0, 1.0), jnp.float32)
    down = ode_sample(_linear_field, x1, method="rk4", step_size=0.01, time_grid=(1.0, 0.5, 0.0), return_intermediates=True)
    np.testing.assert_allclose(down[-1], x0, atol=1e-5)
    adaptive = ode_sample(_linear_field, x0, method="tsit5", time_grid=grid, return_intermediates=True, atol=1e-7, rtol=1e-7)
    np.testing.assert_allclose(adaptive[-1], _linear_solution(x0, 1.0), atol=1e-5)


def test_jit_and_model_kwargs():
    def field(x, t, scale):
        return scale * x

    x0 = jnp.ones((3, 2))
    sampler = jax.jit(lambda x, s: ode_sample(field, x, method="rk4", step_size=0.02, scale=s))
    np.testing.assert_allclose(sampler(x0, 2.0), np.exp(2.0) * np.ones((3, 2)), rtol=1e-5)


def test_maximum_likelihood_gradient_through_the_solver():
    """With u(x, t) = a x the flow is x_1 = e^a x_0; for data N(0, s^2) the MLE is a = log s.

    Gradient ascent on the log-likelihood computed by the solver recovers it, and the solver's
    gradient matches the analytic one."""
    s_true = 2.5
    x_1 = s_true * jax.random.normal(jax.random.key(8), (4096, 1))

    def mean_log_lik(a, exact):
        _, log_p = ode_log_likelihood(
            lambda x, t: a * x, x_1, standard_normal_log_density, method="midpoint",
            step_size=0.1, exact_divergence=exact, key=jax.random.key(9),
        )
        return jnp.mean(log_p)

    # Analytic: log p(x) = log N(x e^-a; 0, 1) - a, so d/da = mean(x^2) e^-2a - 1.
    a0 = 0.3
    analytic_grad = float(jnp.mean(x_1**2) * np.exp(-2 * a0) - 1.0)
    for exact in (True, False):
        grad = jax.grad(mean_log_lik)(a0, exact)
        np.testing.assert_allclose(grad, analytic_grad, rtol=1e-3)
    a = a0
    step = jax.jit(lambda a: a + 0.2 * jax.grad(mean_log_lik)(a, True))
    for _ in range(60):
        a = step(a)
    np.testing.assert_allclose(a, np.log(float(jnp.std(x_1))), atol=1e-3)


def test_bad_input_is_rejected_with_a_clear_message():
    f = lambda x, t: x
    x = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="Unknown ODE method 'rk45'"):
        ode_sample(f, x, method="rk45")
    with pytest.raises(ValueError, match="at least 2 times"):
        ode_sample(f, x, time_grid=(0.0,))
    with pytest.raises(ValueError, match="strictly ascending or descending"):
        ode_sample(f, x, time_grid=(0.0, 0.5, 0.2))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        ode_sample(f, x, time_grid=(0.0, 1.5))
    with pytest.raises(ValueError, match="known at trace time"):
        jax.jit(lambda g: ode_sample(f, x, time_grid=g))(jnp.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match="step_size must be positive"):
        ode_sample(f, x, step_size=-0.1)
    with pytest.raises(TypeError, match="floating point"):
        ode_sample(f, jnp.zeros((2, 2), jnp.int32))
    with pytest.raises(ValueError, match="time_grid must start at 1"):
        ode_log_likelihood(f, x, standard_normal_log_density, time_grid=(0.0, 1.0))
    with pytest.raises(ValueError, match="needs a `key`"):
        ode_log_likelihood(f, x, standard_normal_log_density, exact_divergence=False)
    with pytest.raises(ValueError, match="Unknown Hutchinson probe"):
        ode_log_likelihood(f, x, standard_normal_log_density, exact_divergence=False, key=jax.random.key(0), probe="sphere")
    with pytest.raises(ValueError, match="one log-density per sample"):
        ode_log_likelihood(f, x, lambda z: jnp.sum(z))
