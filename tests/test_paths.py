"""Schedulers, affine paths, conversions and the scale-time transform."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.paths import (
    AffineProbPath,
    CondOTProbPath,
    CondOTScheduler,
    CosineScheduler,
    GaussianMixture,
    LinearVPScheduler,
    PolynomialScheduler,
    ScheduleTransformedModel,
    VPScheduler,
    analytic,
)

SCHEDULERS = {
    "condot": CondOTScheduler(),
    "poly2": PolynomialScheduler(2),
    "poly3": PolynomialScheduler(3.0),
    "vp": VPScheduler(),
    "linear_vp": LinearVPScheduler(),
    "cosine": CosineScheduler(),
}
CONVEX = ("condot", "poly2", "poly3")
T_INTERIOR = np.linspace(0.05, 0.95, 19)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_boundary_values_and_derivatives(name, x64):
    sched = SCHEDULERS[name]
    t = jnp.asarray(T_INTERIOR)
    out = sched(t)
    # Derivatives agree with automatic differentiation of alpha and sigma.
    d_alpha = jax.vmap(jax.grad(lambda s: sched(s).alpha_t))(t)
    d_sigma = jax.vmap(jax.grad(lambda s: sched(s).sigma_t))(t)
    np.testing.assert_allclose(out.d_alpha_t, d_alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.d_sigma_t, d_sigma, rtol=1e-10, atol=1e-12)
    # alpha_1 = 1, sigma_1 = 0 (the data end); sigma_0 = 1 and alpha_0 = 0 except for VP,
    # whose alpha_0 = exp(-(beta_max + beta_min) / 4) is small but not zero.
    end = sched(jnp.asarray(1.0))
    np.testing.assert_allclose([end.alpha_t, end.sigma_t], [1.0, 0.0], atol=1e-12)
    start = sched(jnp.asarray(0.0))
    expected_alpha0 = np.exp(-0.25 * (20.0 + 0.1)) if name == "vp" else 0.0
    np.testing.assert_allclose([start.alpha_t], [expected_alpha0], atol=1e-12)
    np.testing.assert_allclose([start.sigma_t], [np.sqrt(1 - expected_alpha0**2)], atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_snr_inverse_inverts(name, x64):
    sched = SCHEDULERS[name]
    t = jnp.asarray(T_INTERIOR)
    out = sched(t)
    np.testing.assert_allclose(sched.snr_inverse(out.alpha_t / out.sigma_t), t, atol=1e-10)


@pytest.mark.parametrize("name", CONVEX)
def test_kappa_inverse_inverts(name, x64):
    sched = SCHEDULERS[name]
    t = jnp.asarray(T_INTERIOR)
    np.testing.assert_allclose(sched.kappa_inverse(sched(t).alpha_t), t, atol=1e-12)


def test_polynomial_exponent_must_be_positive():
    with pytest.raises(ValueError, match="n > 0"):
        PolynomialScheduler(0)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("event_shape", [(3,), (2, 3, 2)])
def test_sample_and_all_conversions_round_trip(name, event_shape, x64):
    path = AffineProbPath(SCHEDULERS[name])
    keys = jax.random.split(jax.random.key(0), 3)
    batch = 7
    x_0 = jax.random.normal(keys[0], (batch, *event_shape), jnp.float64)
    x_1 = jax.random.normal(keys[1], (batch, *event_shape), jnp.float64)
    t = jax.random.uniform(keys[2], (batch,), jnp.float64, 0.05, 0.95)
    s = path.sample(x_0, x_1, t)
    assert s.x_t.shape == s.dx_t.shape == (batch, *event_shape)
    a, sig, da, dsig = (v.reshape((batch,) + (1,) * len(event_shape)) for v in path.scheduler(t))
    np.testing.assert_allclose(s.x_t, a * x_1 + sig * x_0, rtol=1e-12)
    np.testing.assert_allclose(s.dx_t, da * x_1 + dsig * x_0, rtol=1e-12)
    # dx_t is the time derivative of x_t (checked by forward-mode differentiation in t).
    _, dxt_dt = jax.jvp(lambda tt: path.sample(x_0, x_1, tt).x_t, (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(s.dx_t, dxt_dt, rtol=1e-10, atol=1e-12)
    # Every conversion maps the true quantity to the true quantity, for (B,) and broadcast t.
    for tt in (t, t.reshape((batch,) + (1,) * len(event_shape))):
        x_t, v = s.x_t, s.dx_t
        np.testing.assert_allclose(path.target_to_velocity(x_1, x_t, tt), v, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.epsilon_to_velocity(x_0, x_t, tt), v, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.velocity_to_target(v, x_t, tt), x_1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.epsilon_to_target(x_0, x_t, tt), x_1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.velocity_to_epsilon(v, x_t, tt), x_0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.target_to_epsilon(x_1, x_t, tt), x_0, rtol=1e-9, atol=1e-9)


def test_path_is_jit_vmap_and_grad_safe():
    path = CondOTProbPath()
    x_0 = jnp.ones((4, 2))
    x_1 = 3.0 * jnp.ones((4, 2))
    t = jnp.linspace(0.0, 1.0, 4)
    jitted = jax.jit(path.sample)(x_0, x_1, t)
    np.testing.assert_allclose(jitted.x_t, 1.0 + 2.0 * t[:, None] * jnp.ones((4, 2)), rtol=1e-6)
    grad = jax.grad(lambda x1: path.sample(x_0, x1, t).x_t.sum())(x_1)
    np.testing.assert_allclose(grad, jnp.broadcast_to(t[:, None], (4, 2)), rtol=1e-6)
    per_sample = jax.vmap(lambda a, b, c: path.sample(a[None], b[None], c[None]).x_t[0])(
        x_0, x_1, t
    )
    np.testing.assert_allclose(per_sample, jitted.x_t, rtol=1e-6)


def test_path_rejects_bad_input():
    path = CondOTProbPath()
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="same shape"):
        path.sample(x, jnp.zeros((5, 2)), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(batch,\) = \(4,\)"):
        path.sample(x, x, jnp.zeros(5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(x, x, jnp.asarray([0.0, 0.5, 1.0, 1.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(x, x, jnp.asarray([-0.1, 0.5, 1.0, 0.5]))


MIXTURE_D = 2


def _mixture(dtype):
    covs = jnp.asarray([[[0.5, 0.2], [0.2, 0.3]], [[0.1, 0.0], [0.0, 0.4]]], dtype)
    return GaussianMixture(
        jnp.asarray([0.3, 0.7], dtype), jnp.asarray([[1.0, -2.0], [-1.5, 0.5]], dtype), covs
    )


@pytest.mark.parametrize("name", ["condot", "cosine", "vp", "poly2"])
def test_gaussian_mixture_marginal_satisfies_continuity_equation(name, x64):
    """d/dt p_t(x) + div(p_t u_t)(x) = 0 for the closed-form marginal velocity and density."""
    path = AffineProbPath(SCHEDULERS[name])
    mixture = _mixture(jnp.float64)
    x = jax.random.normal(jax.random.key(1), (16, MIXTURE_D), jnp.float64)
    for t in (0.2, 0.5, 0.8):
        t_b = jnp.full((16,), t)
        log_p = lambda xx, tt: analytic.marginal_log_prob(path, mixture, xx, tt)
        _, dlogp_dt = jax.jvp(lambda tt: log_p(x, tt), (t_b,), (jnp.ones_like(t_b),))
        u = analytic.marginal_velocity(path, mixture, x, t_b)
        grad_logp = jax.grad(lambda xx: log_p(xx, t_b).sum())(x)
        jac = jax.vmap(jax.jacfwd(lambda xb: analytic.marginal_velocity(path, mixture, xb[None], t)[0]))(x)
        div_u = jnp.trace(jac, axis1=1, axis2=2)
        # Continuity equation divided by p: d log p/dt + div u + u . grad log p = 0.
        residual = dlogp_dt + div_u + jnp.sum(u * grad_logp, axis=1)
        np.testing.assert_allclose(residual, 0.0, atol=1e-9)


@pytest.mark.parametrize(
    "original,new", [("condot", "cosine"), ("cosine", "condot"), ("vp", "condot"), ("condot", "poly2")]
)
def test_schedule_transform_maps_exact_velocity_to_exact_velocity(original, new, x64):
    """The transformed exact marginal velocity of one path is the exact velocity of the other."""
    mixture = _mixture(jnp.float64)
    path_a = AffineProbPath(SCHEDULERS[original])
    path_b = AffineProbPath(SCHEDULERS[new])
    u_a = lambda x, t: analytic.marginal_velocity(path_a, mixture, x, t)
    transformed = ScheduleTransformedModel(u_a, SCHEDULERS[original], SCHEDULERS[new])
    x = jax.random.normal(jax.random.key(2), (8, MIXTURE_D), jnp.float64)
    for r in (0.1, 0.4, 0.7, 0.9):
        expected = analytic.marginal_velocity(path_b, mixture, x, r)
        np.testing.assert_allclose(transformed(x, r), expected, rtol=1e-7, atol=1e-8)
        r_batch = jnp.full((8,), r)
        np.testing.assert_allclose(transformed(x, r_batch), expected, rtol=1e-7, atol=1e-8)
