"""Riemannian flow matching: the geodesic path, the manifold sampler and log-likelihood against
closed forms, the tangent model and the loss, bad input.

Every check runs jitted functions over small batches (one compilation each) to keep the file
fast; the training run against the true mixture density is marked slow.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flowjax import data
from flowjax.losses import riemannian_cfm_loss
from flowjax.manifolds import Euclidean, FlatTorus, Product, Sphere
from flowjax.models import ManifoldMLP
from flowjax.paths import CondOTScheduler, CosineScheduler, GeodesicProbPath, PolynomialScheduler
from flowjax.solvers import riemannian_log_likelihood, riemannian_sample

TWO_PI = 2.0 * math.pi
S2, T2 = Sphere(2), FlatTorus(2)
PRODUCT = Product(S2, FlatTorus(1), Euclidean(2))
POLE = jnp.asarray([0.0, 0.0, 1.0])


# Two flows with closed-form solutions and densities ------------------------------------------
#
# On S^2, u(x) = c (a - (a . x) x) pulls every point towards a along its great circle: the angle
# theta to a obeys d theta / dt = -c sin(theta), so tan(theta_t / 2) = tan(theta_0 / 2) e^{-c t}.
# Its Riemannian divergence is -2 c a . x, and from the uniform density
# log p_1(x) = -log 4 pi + 2 c + 2 log(1 + s^2) - 2 log(1 + s^2 e^{2c}),  s = tan(theta(x) / 2).
# On T^2, u(x) = sin(x) per angle: tan(x_t / 2) = tan(x_0 / 2) e^t, and from the uniform density
# log p_1(x) = -2 log 2 pi + sum_i [-1 + log(1 + s_i^2) - log(1 + s_i^2 e^{-2})], s = tan(x / 2).


def pull(x, t, c=1.0):
    return c * (POLE - (x @ POLE)[:, None] * x)


def pulled(x_0, dt, c=1.0):
    """The closed-form point of the pull flow after time dt (negative: backwards)."""
    cos_theta = x_0 @ POLE
    theta = 2.0 * np.arctan(np.tan(0.5 * np.arccos(cos_theta)) * np.exp(-c * dt))
    away = x_0 - cos_theta[:, None] * POLE
    away = away / np.linalg.norm(away, axis=1, keepdims=True)
    return np.cos(theta)[:, None] * POLE + np.sin(theta)[:, None] * away


def pull_log_density(x, c=1.0):
    s2 = jnp.tan(0.5 * jnp.arccos(x @ POLE)) ** 2
    return -math.log(4 * math.pi) + 2 * c + 2 * jnp.log1p(s2) - 2 * jnp.log1p(s2 * jnp.exp(2 * c))


def sine(x, t):
    return jnp.sin(x)


def sine_log_density(x):
    s2 = np.tan(0.5 * x) ** 2
    return -2 * math.log(TWO_PI) + np.sum(-1.0 + np.log1p(s2) - np.log1p(s2 * math.exp(-2)), 1)


def _sphere_points():
    x = np.asarray(jax.jit(S2.random_base, static_argnums=1)(jax.random.key(0), (24,)))
    return x[np.abs(x @ POLE) < 0.95][:16]  # away from the pull flow's fixed points


SPHERE_POINTS = _sphere_points()


# The geodesic path ---------------------------------------------------------------------------


def test_geodesic_path_known_values():
    e = jnp.eye(3)[None]
    half = jnp.full((1,), 0.5)

    @jax.jit
    def samples():
        return (
            GeodesicProbPath(CondOTScheduler(), S2).sample(e[:, 0], e[:, 1], half),
            GeodesicProbPath(PolynomialScheduler(2.0), S2).sample(e[:, 0], e[:, 1], half),
            GeodesicProbPath(CondOTScheduler(), T2).sample(
                jnp.asarray([[0.1, 3.0]]), jnp.asarray([[6.2, 1.0]]), half
            ),
        )

    cond_ot, squared, torus = samples()
    np.testing.assert_allclose(cond_ot.x_t, [[2**-0.5, 2**-0.5, 0.0]], atol=1e-6)
    np.testing.assert_allclose(cond_ot.dx_t, [[-math.pi / 2**1.5, math.pi / 2**1.5, 0]], atol=1e-6)
    # kappa = t^2: at t = 0.5 a quarter of the way (pi/8), at speed kappa' pi/2 = pi/2.
    a = math.pi / 8
    np.testing.assert_allclose(squared.x_t, [[math.cos(a), math.sin(a), 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        squared.dx_t, [[-math.sin(a) * math.pi / 2, math.cos(a) * math.pi / 2, 0.0]], atol=1e-6
    )
    # On the torus the path from 0.1 to 6.2 goes the short way, across the seam at 0 = 2 pi.
    step = 6.2 - TWO_PI - 0.1
    np.testing.assert_allclose(torus.dx_t, [[step, -2.0]], rtol=1e-5)
    np.testing.assert_allclose(torus.x_t, [[0.1 + 0.5 * step, 2.0]], rtol=1e-5)


@jax.jit
def _path_report(key):
    """The geodesic path on S^2 x T^1 x R^2 with kappa_t = t^2, for 32 random pairs."""
    path = GeodesicProbPath(PolynomialScheduler(2.0), PRODUCT)
    k0, k1, kt = jax.random.split(key, 3)
    x_0, x_1 = PRODUCT.random_base(k0, (32,)), PRODUCT.random_base(k1, (32,))
    t = jax.random.uniform(kt, (32,), minval=0.1, maxval=0.9)
    h = 1e-3  # for a central difference around x_t, taken on the manifold
    times = jnp.concatenate([t, jnp.zeros(32), jnp.ones(32), t + h, t - h])
    five = path.sample(jnp.tile(x_0, (5, 1)), jnp.tile(x_1, (5, 1)), times)
    s, at_0, at_1, ahead, behind = (
        jax.tree.map(lambda a, i=i: a[32 * i : 32 * (i + 1)], five) for i in range(5)
    )
    return dict(
        t=t,
        distance=PRODUCT.dist(x_0, x_1),
        at_0=PRODUCT.dist(at_0.x_t, x_0),
        at_1=PRODUCT.dist(at_1.x_t, x_1),
        travelled=PRODUCT.dist(x_0, s.x_t),
        off_manifold=PRODUCT.distance_to_manifold(s.x_t),
        dx_t=s.dx_t,
        dx_t_tangent=PRODUCT.proju(s.x_t, s.dx_t),
        difference=(PRODUCT.logmap(s.x_t, ahead.x_t) - PRODUCT.logmap(s.x_t, behind.x_t)) / (2 * h),
    )


def test_geodesic_path_hits_endpoints_at_constant_speed():
    r = _path_report(jax.random.key(0))
    t, distance = r["t"], r["distance"]
    assert float(np.max(r["at_0"])) < 2e-6 and float(np.max(r["at_1"])) < 2e-6
    assert float(np.max(r["off_manifold"])) < 1e-6
    np.testing.assert_allclose(r["travelled"], t**2 * distance, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["dx_t_tangent"], r["dx_t"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r["dx_t"], axis=1), 2 * t * distance, rtol=1e-4)
    # dx_t (forward mode) is the time derivative of x_t (a float32 central difference).
    np.testing.assert_allclose(r["dx_t"], r["difference"], rtol=2e-3, atol=2e-3)


def test_geodesic_path_bad_input():
    path = GeodesicProbPath(CondOTScheduler(), S2)
    x = np.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    off = np.asarray([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32)
    t = np.asarray([0.3, 0.6], np.float32)
    with pytest.raises(ValueError, match=r"x_1 has points off Sphere\(dim=2\)"):
        path.sample(x, off, t)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        path.sample(x[:, :2], x[:, :2], t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(x, x, np.asarray([0.5, 1.5]))
    with pytest.raises(ValueError, match="ConvexScheduler"):
        GeodesicProbPath(CosineScheduler(), S2)
    # Under jit values cannot be checked: the points are projected, onto the sphere and (angles
    # outside [0, 2 pi) are points of the torus) into [0, 2 pi).
    projected = jax.jit(path.sample)(x, off, t)
    np.testing.assert_allclose(np.linalg.norm(projected.x_1, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(projected.x_t, axis=1), 1.0, rtol=1e-6)
    wrapped = jax.jit(GeodesicProbPath(CondOTScheduler(), T2).sample)(
        np.asarray([[7.0, -0.5]]), np.asarray([[1.0, 1.0]]), np.zeros(1)
    )
    np.testing.assert_allclose(wrapped.x_0, [[7.0 - TWO_PI, TWO_PI - 0.5]], rtol=1e-6)


# The sampler ---------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(1, 2))
def _constant_velocities(x_init, method, update):
    """Rows 0-7 move at the constant ambient velocity (100, 100, 100), rows 8-15 at zero."""
    speed = jnp.repeat(jnp.asarray([100.0, 0.0]), 8)[:, None]
    return riemannian_sample(
        lambda x, t: jnp.broadcast_to(speed, x.shape), x_init, S2,
        method=method, step_size=0.01, update=update,
    )


@pytest.mark.parametrize(
    "method,update",
    [("euler", "project"), ("midpoint", "project"), ("rk4", "project"), ("euler", "expmap")],
)
def test_sampler_reference_expectations(method, update):
    """A constant ambient velocity of 100 drives every point to normalize([1, 1, 1]); zero
    velocity leaves the state where it is."""
    x_init = np.concatenate([SPHERE_POINTS[:8], SPHERE_POINTS[:8]])
    x = _constant_velocities(x_init, method, update)
    np.testing.assert_allclose(x[:8], np.full((8, 3), 3**-0.5), atol=1e-6)  # reference: 1e-3
    np.testing.assert_allclose(x[8:], x_init[8:], atol=1e-6)


def test_states_stay_on_the_manifold_at_every_step():
    """On S^2 x T^2: a pull with a large non-tangent part on the sphere, and a velocity that
    winds round the torus twice per unit time; 11 grid times, 2 steps between each."""
    manifold = Product(S2, T2)
    noise = np.random.default_rng(3).standard_normal((12, 3)).astype(np.float32)
    x_init = np.concatenate([SPHERE_POINTS[:12], np.linspace(0.0, 6.0, 24).reshape(12, 2)], 1)

    def velocity(x, t):
        sphere, _ = manifold.split(x)
        return jnp.concatenate([pull(sphere, t, c=3.0) + noise, jnp.full((12, 2), 4 * math.pi)], 1)

    trajectory = jax.jit(
        lambda x: riemannian_sample(
            velocity, x, manifold, method="midpoint", step_size=0.05,
            time_grid=np.linspace(0.0, 1.0, 11), return_intermediates=True,
        )
    )(x_init.astype(np.float32))
    assert trajectory.shape == (11, 12, 5)
    np.testing.assert_allclose(np.linalg.norm(trajectory[..., :3], axis=-1), 1.0, rtol=1e-6)
    angles = trajectory[..., 3:]
    assert np.all((angles >= 0.0) & (angles < TWO_PI))
    # The torus part is a pure translation, x_init + 4 pi t (mod 2 pi).
    offset = angles - x_init[:, 3:] - 4 * math.pi * np.linspace(0, 1, 11)[:, None, None]
    np.testing.assert_allclose(np.arctan2(np.sin(offset), np.cos(offset)), 0.0, atol=2e-5)


@functools.partial(jax.jit, static_argnums=1)
def _pull_on_grids(x_start, update):
    kwargs = dict(method="rk4", step_size=0.05, update=update)
    states = riemannian_sample(
        pull, x_start, S2, time_grid=(0.2, 0.5, 0.9), return_intermediates=True, **kwargs
    )
    back = riemannian_sample(pull, states[-1], S2, time_grid=(0.9, 0.2), **kwargs)
    return states, back


@pytest.mark.parametrize("update,atol", [("project", 2e-6), ("expmap", 6e-4)])
def test_sampler_matches_the_closed_form_flow_on_any_time_grid(update, atol):
    """Grid (0.2, 0.5, 0.9), then back from 0.9 to 0.2. The projected update keeps rk4's fourth
    order (error 3e-7 at step 0.05); the exponential-map update combines stage velocities from
    different tangent spaces, which costs the order (error 2.6e-4 at step 0.05)."""
    states, back = _pull_on_grids(SPHERE_POINTS, update)
    for state, time in zip(states, (0.2, 0.5, 0.9)):
        np.testing.assert_allclose(state, pulled(SPHERE_POINTS, time - 0.2), atol=atol)
    np.testing.assert_allclose(back, SPHERE_POINTS, atol=2 * atol)


def test_sampler_bad_input():
    with pytest.raises(ValueError, match="x_init has points off"):
        riemannian_sample(pull, 2.0 * SPHERE_POINTS, S2)
    with pytest.raises(ValueError, match="fixed-step method"):
        riemannian_sample(pull, SPHERE_POINTS, S2, method="dopri5")
    with pytest.raises(ValueError, match="Unknown manifold update"):
        riemannian_sample(pull, SPHERE_POINTS, S2, update="retract")


# The log-likelihood --------------------------------------------------------------------------


def test_likelihood_of_the_zero_field_on_the_torus_is_uniform():
    x_1 = np.asarray([[0.4, 5.6], [2.2, 4.1], [1.3, 0.9], [5.0, 2.7]], np.float32)
    x_0, log_p = jax.jit(
        lambda x: riemannian_log_likelihood(lambda y, t: jnp.zeros_like(y), x, T2, step_size=0.5)
    )(x_1)
    np.testing.assert_allclose(x_0, x_1, atol=1e-6)
    np.testing.assert_allclose(log_p, -2 * math.log(TWO_PI), rtol=1e-6)  # -3.6757541


def test_likelihood_matches_the_closed_form_on_the_sphere():
    """A flow with non-zero Riemannian divergence (-2 a . x on S^2)."""
    x_0, log_p = jax.jit(
        lambda x: riemannian_log_likelihood(pull, x, S2, method="rk4", step_size=0.05)
    )(SPHERE_POINTS)
    np.testing.assert_allclose(x_0, pulled(SPHERE_POINTS, -1.0), atol=1e-6)
    np.testing.assert_allclose(log_p, jax.jit(pull_log_density)(SPHERE_POINTS), atol=1e-5)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "hutchinson"])
def test_likelihood_on_the_torus(exact):
    """sin(x) has a diagonal Jacobian, so one Rademacher probe gives the exact trace too."""
    x_1 = np.asarray([[0.4, 5.6], [2.2, 4.1], [1.3, 0.9], [5.0, 2.7]], np.float32)
    _, log_p = jax.jit(
        lambda x: riemannian_log_likelihood(
            sine, x, T2, method="rk4", step_size=0.05, exact_divergence=exact,
            key=jax.random.key(0),
        )
    )(x_1)
    np.testing.assert_allclose(log_p, sine_log_density(x_1), atol=1e-5)


def test_likelihood_is_differentiable():
    x_1 = SPHERE_POINTS[:8]

    def mean_log_p(c):
        _, log_p = riemannian_log_likelihood(
            lambda x, t: pull(x, t, c), x_1, S2, method="midpoint", step_size=0.05
        )
        return log_p.mean()

    expected = jax.jit(jax.grad(lambda c: pull_log_density(x_1, c).mean()))(1.0)
    np.testing.assert_allclose(jax.jit(jax.grad(mean_log_p))(1.0), expected, rtol=2e-3)


# The model and the loss ----------------------------------------------------------------------


def test_manifold_mlp_is_tangent_and_periodic():
    model = nnx.jit(
        lambda: ManifoldMLP((4,), manifold="S2xT1", num_frequencies=3, hidden_dim=8,
                            num_layers=1, rngs=nnx.Rngs(0))
    )()
    point = np.concatenate([SPHERE_POINTS[:6], np.linspace(0.1, 6.2, 6)[:, None]], 1)
    point = point.astype(np.float32)
    turned = point + np.asarray([0.0, 0.0, 0.0, TWO_PI], np.float32)
    v, v_turned = nnx.jit(lambda m, x, y: (m(x, 0.3), m(y, 0.3)))(model, point, turned)
    np.testing.assert_allclose(np.sum(v[:, :3] * point[:, :3], axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(v_turned, v, atol=1e-5)  # a function on the torus
    with pytest.raises(ValueError, match=r"points of shape \(\.\.\., 3\)"):
        ManifoldMLP((2,), manifold=S2, rngs=nnx.Rngs(0))


def test_riemannian_loss_compares_tangent_vectors():
    """A zero model scores mean |dx_t|^2 / 3 = mean d(x_0, x_1)^2 / 3 under CondOT; a purely
    normal output (5 x) is projected away and scores the same."""
    path = GeodesicProbPath(CondOTScheduler(), S2)

    @jax.jit
    def losses(key):
        k0, k1, kt = jax.random.split(key, 3)
        x_0, x_1 = S2.random_base(k0, (64,)), S2.random_base(k1, (64,))
        t = jax.random.uniform(kt, (64,))
        return (
            jnp.mean(S2.dist(x_0, x_1) ** 2) / 3,
            riemannian_cfm_loss(lambda x, t: jnp.zeros_like(x), path, x_0, x_1, t),
            riemannian_cfm_loss(lambda x, t: 5.0 * x, path, x_0, x_1, t),
        )

    expected, zero, normal = losses(jax.random.key(9))
    np.testing.assert_allclose([zero, normal], expected, rtol=1e-5)


@pytest.mark.slow
def test_trained_model_log_likelihood_is_close_to_the_true_mixture():
    """RFM on the torus mixture: 3000 Adam steps of a small ManifoldMLP; the held-out NLL by
    the Riemannian likelihood is within 0.05 nats of the mixture's entropy."""
    path = GeodesicProbPath(CondOTScheduler(), T2)
    model = ManifoldMLP((2,), manifold=T2, num_frequencies=2, hidden_dim=128, num_layers=3,
                        rngs=nnx.Rngs(0))
    schedule = optax.cosine_decay_schedule(3e-3, 3000, alpha=0.05)
    optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x_1, key):
        k0, kt = jax.random.split(key)
        x_0 = T2.random_base(k0, x_1.shape[:1])
        t = jax.random.uniform(kt, x_1.shape[:1])
        loss, grads = nnx.value_and_grad(lambda m: riemannian_cfm_loss(m, path, x_0, x_1, t))(model)
        optimizer.update(model, grads)
        return loss

    for i in range(3000):
        x_1 = data.toy_batch("torus_gaussians", 512, seed=0, index=i)
        step(model, optimizer, x_1, jax.random.fold_in(jax.random.key(1), i))
    heldout = data.toy_batch("torus_gaussians", 2000, seed=1, index=0)
    _, log_p = nnx.jit(
        lambda m, x: riemannian_log_likelihood(m, x, T2, method="midpoint", step_size=0.05)
    )(model, heldout)
    model_nll = -float(np.mean(log_p))
    true_nll = -float(np.mean(data.log_density("torus_gaussians", heldout)))
    assert abs(model_nll - true_nll) < 0.05, (model_nll, true_nll)
