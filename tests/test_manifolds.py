"""Manifolds: exp/log round trips, known distances, float32 safety near 0 and pi, projections,
base distributions, products, names and bad input.

Each check runs one jitted function (compiled once per manifold) rather than many small eager
operations, to keep the file fast.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.manifolds import (
    Euclidean,
    FlatTorus,
    Product,
    Sphere,
    check_points,
    parse_manifold,
)

TWO_PI = 2.0 * math.pi
S2 = Sphere(2)
PRODUCT = Product(S2, FlatTorus(1), Euclidean(2))
MANIFOLDS = {"T2": FlatTorus(2), "S2xT1xR2": PRODUCT}  # the product covers S^2 and R^2


@functools.partial(jax.jit, static_argnums=0)
def _geometry(manifold, key):
    """Every quantity the round-trip test looks at, for 64 random pairs of points."""
    kx, ky, kv = jax.random.split(key, 3)
    x, y = manifold.random_base(kx, (64,)), manifold.random_base(ky, (64,))
    u = manifold.logmap(x, y)
    # A tangent v shorter than the injectivity radius (pi for the sphere and the torus).
    v = manifold.proju(x, jax.random.normal(kv, x.shape))
    v = v * jnp.minimum(1.0, 2.5 / jnp.linalg.norm(v, axis=-1, keepdims=True))
    return dict(
        u=u,
        u_vmapped=jax.vmap(manifold.logmap)(x, y),
        u_projected=manifold.proju(x, u),
        u_norm=jnp.linalg.norm(u, axis=-1),
        dist=manifold.dist(x, y),
        dist_reversed=manifold.dist(y, x),
        exp_log_error=manifold.dist(manifold.expmap(x, u), y),
        v=v,
        log_exp=manifold.logmap(x, manifold.expmap(x, v)),
        x=x,
        y=y,
    )


@pytest.mark.parametrize("name", MANIFOLDS)
def test_exp_log_round_trip_and_distance(name):
    g = _geometry(MANIFOLDS[name], jax.random.key(0))
    np.testing.assert_allclose(g["u_projected"], g["u"], atol=1e-6)  # log_x(y) is tangent
    np.testing.assert_allclose(g["u_vmapped"], g["u"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g["u_norm"], g["dist"], rtol=1e-5)  # |log_x(y)| = d(x, y)
    np.testing.assert_allclose(g["dist"], g["dist_reversed"], rtol=1e-5, atol=1e-6)
    assert float(np.max(g["exp_log_error"])) < 2e-5  # exp_x(log_x(y)) = y
    np.testing.assert_allclose(g["log_exp"], g["v"], atol=2e-5)  # log_x(exp_x(v)) = v


def test_known_distances():
    e = jnp.eye(3)
    torus = FlatTorus(2)
    # Across the seam: 0.1 and 6.2 are 0.1 + (2 pi - 6.2) = 0.18319 apart, the short way round.
    x, y = jnp.asarray([0.1, 3.0]), jnp.asarray([6.2, 1.0])

    @jax.jit
    def known():
        return (
            S2.dist(e[0], e[1]),
            S2.dist(e[0], -e[0]),
            S2.logmap(e[0], e[1]),
            torus.logmap(x, y),
            torus.dist(x, y),
            torus.expmap(x, torus.logmap(x, y)),
        )

    quarter, half, log_sphere, log_torus, dist_torus, back = known()
    np.testing.assert_allclose([quarter, half], [math.pi / 2, math.pi], rtol=1e-7)
    np.testing.assert_allclose(log_sphere, [0.0, math.pi / 2, 0.0], atol=1e-7)
    np.testing.assert_allclose(log_torus, [6.2 - TWO_PI - 0.1, -2.0], rtol=1e-5)
    np.testing.assert_allclose(dist_torus, math.hypot(0.18318531, 2.0), rtol=1e-6)
    np.testing.assert_allclose(back, y, rtol=1e-6)


@jax.jit
def _sphere_pair(x, y):
    u = S2.logmap(x, y)
    return S2.dist(x, y), u, S2.expmap(x, u)


@pytest.mark.parametrize("angle", [1e-3, 1e-4, math.pi - 1e-3, math.pi - 1e-5])
def test_sphere_float32_small_and_near_antipodal_distances(angle):
    """Points at a given angle: dist and |log| get it to float32 precision, log is tangent, and
    exp(log) returns y."""
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((16, 3))
    x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
    tangent = rng.standard_normal((16, 3))
    tangent -= np.sum(tangent * x64, axis=1, keepdims=True) * x64
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    x = np.float32(x64)
    y = np.float32(np.cos(angle) * x64 + np.sin(angle) * tangent)
    truth = 2.0 * np.arctan2(  # the angle between the float32 points, in float64
        np.linalg.norm(np.float64(x) - np.float64(y), axis=1),
        np.linalg.norm(np.float64(x) + np.float64(y), axis=1),
    )
    dist, u, back = _sphere_pair(x, y)
    np.testing.assert_allclose(dist, truth, rtol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), truth, rtol=2e-6)
    np.testing.assert_allclose(np.sum(u * x, axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(back, y, atol=1e-6)


def test_sphere_exactly_antipodal_and_coincident_points():
    x = np.random.default_rng(3).standard_normal((16, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist, u, back = _sphere_pair(x, -x)
    np.testing.assert_allclose(dist, math.pi, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), math.pi, rtol=1e-6)
    np.testing.assert_allclose(np.sum(u * x, axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(back, -x, atol=1e-6)
    dist, u, back = _sphere_pair(x, x)
    np.testing.assert_array_equal(dist, 0.0)
    np.testing.assert_array_equal(u, 0.0)
    np.testing.assert_allclose(back, x, atol=1e-7)


def test_gradients_are_finite_at_zero_and_antipodal_distance():
    x = jnp.asarray([0.6, 0.0, 0.8])

    @jax.jit
    def grads(x, y):
        return jax.grad(lambda a, b: jnp.sum(S2.logmap(a, b)) + S2.dist(a, b), (0, 1))(x, y)

    for y in (x, -x):
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads(x, y))
    # d/du exp_x(u) at u = 0 is the tangent projection I - x x^T.
    jacobian = jax.jit(jax.jacfwd(lambda u: S2.expmap(x, u)))(jnp.zeros(3))
    np.testing.assert_allclose(jacobian, jnp.eye(3) - jnp.outer(x, x), atol=1e-6)


def test_projections():
    @jax.jit
    def project():
        x = S2.projx(jnp.asarray([[3.0, 0.0, 4.0]]))
        return (
            x,
            S2.projx(x),
            S2.proju(x, jnp.asarray([[1.0, 1.0, 1.0]])),
            FlatTorus(4).projx(jnp.asarray([-0.5, 7.0, -1e-9, TWO_PI])),
        )

    x, x_again, u, angles = project()
    np.testing.assert_allclose(x, [[0.6, 0.0, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(x_again, x)
    np.testing.assert_allclose(u, [[0.16, 1.0, -0.12]], atol=1e-6)
    np.testing.assert_allclose(angles, [TWO_PI - 0.5, 7.0 - TWO_PI, 0.0, 0.0], atol=1e-6)
    assert np.all((angles >= 0.0) & (angles < TWO_PI))


def test_base_distributions():
    @jax.jit
    def draw(key):
        s2 = S2.random_base(key, (4, 500))
        t2 = FlatTorus(2).random_base(key, (1000,))
        return s2, t2, S2.base_log_prob(s2), FlatTorus(2).base_log_prob(t2)

    s2, t2, log_s2, log_t2 = draw(jax.random.key(4))
    assert s2.shape == (4, 500, 3) and log_s2.shape == (4, 500)
    np.testing.assert_allclose(np.linalg.norm(s2, axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.mean(s2, axis=(0, 1)), 0.0, atol=0.05)  # uniform: mean 0
    assert np.all((t2 >= 0.0) & (t2 < TWO_PI))
    np.testing.assert_allclose(log_s2, -math.log(4 * math.pi), rtol=1e-6)  # -2.5310242
    np.testing.assert_allclose(log_t2, -2 * math.log(TWO_PI), rtol=1e-6)  # -3.6757541
    assert math.isclose(Sphere(3).log_volume, math.log(2 * math.pi**2), rel_tol=1e-12)
    assert math.isclose(Sphere(1).log_volume, math.log(TWO_PI), rel_tol=1e-12)


def test_product_acts_per_factor():
    assert (PRODUCT.dim, PRODUCT.ambient_dim) == (5, 6)
    g = _geometry(PRODUCT, jax.random.key(0))
    x, y = g["x"], g["y"]
    (sx, tx, rx), (sy, ty, ry) = PRODUCT.split(x), PRODUCT.split(y)
    sphere = _sphere_pair(sx, sy)
    torus_log = np.arctan2(np.sin(ty - tx), np.cos(ty - tx))
    np.testing.assert_allclose(
        g["u"], np.concatenate([sphere[1], torus_log, ry - rx], axis=-1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        g["dist"] ** 2,
        sphere[0] ** 2 + torus_log[:, 0] ** 2 + np.sum((ry - rx) ** 2, axis=-1),
        rtol=1e-5,
    )
    log_p = jax.jit(PRODUCT.base_log_prob)(x)
    gaussian = -0.5 * np.sum(rx**2, -1) - math.log(TWO_PI)  # N(0, I) on R^2
    expected = -math.log(4 * math.pi) - math.log(TWO_PI) + gaussian
    np.testing.assert_allclose(log_p, expected, rtol=1e-6)


def test_names():
    assert parse_manifold("S2") == Sphere(2)
    assert parse_manifold("T2") == FlatTorus(2)
    assert parse_manifold("S2 x T1 x R3") == Product(Sphere(2), FlatTorus(1), Euclidean(3))
    with pytest.raises(ValueError, match=r"S<d> \(sphere\)"):
        parse_manifold("H2")


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"lies 1 from it"):
        check_points(S2, np.asarray([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]), "x_1")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        check_points(S2, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        check_points(FlatTorus(2), np.asarray([[0.0, np.nan]]))
    check_points(FlatTorus(2), np.asarray([[-3.0, 9.0]]))  # any angle is a point of the torus
    for bad in (lambda: Sphere(0), lambda: FlatTorus(2.5), lambda: Euclidean(-1)):
        with pytest.raises(ValueError, match="integer dimension"):
            bad()
    with pytest.raises(ValueError, match="one or more Manifold factors"):
        Product()
