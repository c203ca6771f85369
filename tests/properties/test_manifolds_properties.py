"""Properties of the manifolds: the maps keep points on the manifold, logmap inverts expmap,
the projections project, the base distribution samples points that pass the manifold's own
check in every floating dtype, and malformed coordinates are refused."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.manifolds import (
    Euclidean,
    FlatTorus,
    Product,
    Sphere,
    check_points,
    parse_manifold,
)

from .strategies import (
    arrays,
    assert_finite,
    fewer_examples,
    float32s,
    float_dtypes,
    raises_naming,
    seeds,
    typed_key,
)

MANIFOLDS = {
    "S1": Sphere(1),
    "S2": Sphere(2),
    "T2": FlatTorus(2),
    "R2": Euclidean(2),
    "S2xT1xR1": Product(Sphere(2), FlatTorus(1), Euclidean(1)),
}
manifolds = st.sampled_from(tuple(MANIFOLDS))
point_shapes = st.sampled_from(((0,), (3,), (2, 1)))


def _points(manifold, seed, shape):
    return manifold.random_base(typed_key(seed), shape)


@functools.partial(jax.jit, static_argnums=0)
def _projections(m, x):
    on = m.projx(x)
    return on, m.distance_to_manifold(on), m.projx(on)


@given(name=manifolds, shape=point_shapes, data=st.data())
def test_projx_lands_on_the_manifold_and_is_idempotent(name, shape, data):
    """Any finite ambient point (zero and huge vectors included) is mapped onto the manifold,
    and a point of the manifold stays where it is."""
    m = MANIFOLDS[name]
    elements = st.one_of(st.just(0.0), float32s(-1e4, 1e4))
    x = jnp.asarray(data.draw(arrays((*shape, m.ambient_dim), elements=elements)))
    on, off, again = _projections(m, x)
    assert on.shape == x.shape
    assert_finite(on)
    assert np.all(np.asarray(off) < 1e-5)
    np.testing.assert_allclose(again, on, atol=1e-5)


def _maps(m, key, v):
    """The maps of the manifold between two base points (eagerly: the sphere's maps compile
    faster op by op, and the ops are shared between the manifolds)."""
    k_x, k_y = jax.random.split(key)
    x, y = m.random_base(k_x, v.shape[:-1]), m.random_base(k_y, v.shape[:-1])
    u = m.logmap(x, y)
    moved = m.expmap(x, m.proju(x, v))
    return dict(
        u=u,
        tangent_u=m.proju(x, u),
        round_trip=m.dist(m.expmap(x, u), y),
        d=m.dist(x, y),
        d_reverse=m.dist(y, x),
        moved=moved,
        moved_off=m.distance_to_manifold(moved),
    )


@given(name=st.sampled_from(("S2", "T2", "S2xT1xR1")), seed=seeds, data=st.data())
def test_expmap_and_logmap_are_inverse(name, seed, data):
    """exp_x(log_x(y)) = y, log_x(y) is tangent at x with norm d(x, y) = d(y, x) >= 0, and
    exp_x of any projected vector stays on the manifold."""
    m = MANIFOLDS[name]
    v = jnp.asarray(data.draw(arrays((3, m.ambient_dim), -5.0, 5.0)))
    out = {k: np.asarray(a) for k, a in _maps(m, typed_key(seed), v).items()}
    np.testing.assert_allclose(out["tangent_u"], out["u"], atol=1e-5)
    assert np.all(out["round_trip"] < 1e-4)
    assert np.all(out["d"] >= 0.0)
    np.testing.assert_allclose(out["d"], out["d_reverse"], atol=1e-5)
    np.testing.assert_allclose(out["d"], np.linalg.norm(out["u"], axis=-1), atol=1e-4)
    assert_finite(out["moved"])
    assert np.all(out["moved_off"] < 1e-5)


@given(name=manifolds, shape=st.sampled_from(((0,), (3,))), seed=seeds, data=st.data())
def test_proju_is_a_projection_onto_the_tangent_space(name, shape, seed, data):
    m = MANIFOLDS[name]
    u = jnp.asarray(data.draw(arrays((*shape, m.ambient_dim))))
    x = m.random_base(typed_key(seed), shape)
    tangent = m.proju(x, u)
    np.testing.assert_allclose(m.proju(x, tangent), tangent, atol=1e-5)
    # The tangent part is the closest tangent vector: the rest is orthogonal to it.
    np.testing.assert_allclose(
        np.sum(np.asarray(tangent) * np.asarray(u - tangent), -1), 0.0, atol=1e-4
    )


@fewer_examples(2)
@given(name=manifolds, shape=st.sampled_from(((0,), (2, 1))), dtype=float_dtypes, seed=seeds)
def test_random_base_points_pass_check_points_in_every_dtype(name, shape, dtype, seed):
    """The base distribution's samples are points of the manifold in the sample dtype, and
    check_points (the check of the geodesic path and the Riemannian solvers) accepts them."""
    m = MANIFOLDS[name]
    x = m.random_base(typed_key(seed), shape, dtype)
    assert x.shape == (*shape, m.ambient_dim) and x.dtype == dtype
    assert_finite(x)
    check_points(m, x)
    log_p = m.base_log_prob(x)
    assert log_p.shape == shape
    assert_finite(log_p)


@given(
    scale=st.one_of(float32s(0.0, 0.95), float32s(1.05, 5.0)), seed=seeds, index=st.integers(0, 2)
)
def test_check_points_refuses_points_off_the_sphere(scale, seed, index):
    sphere = Sphere(2)
    x = np.array(sphere.random_base(typed_key(seed), (3,)))
    x[index] *= scale
    with raises_naming(ValueError, "x_1", "off"):
        check_points(sphere, x, "x_1")


@given(name=manifolds, bad=st.sampled_from((np.nan, np.inf, -np.inf)), seed=seeds)
def test_check_points_refuses_non_finite_coordinates(name, bad, seed):
    m = MANIFOLDS[name]
    x = np.array(_points(m, seed, (2,)))
    x[1, 0] = bad
    with raises_naming(ValueError, "x_0", "non-finite"):
        check_points(m, x, "x_0")


@given(
    name=manifolds,
    method=st.sampled_from(
        ("expmap", "logmap", "proju", "dist", "projx", "distance_to_manifold", "base_log_prob")
    ),
    extra=st.sampled_from((-1, 1)),
    bad_second=st.booleans(),
)
def test_coordinates_of_the_wrong_size_are_refused(name, method, extra, bad_second):
    """Every method refuses points (or tangent vectors) whose last axis is not the manifold's
    ambient dimension, naming the argument, instead of broadcasting them silently."""
    m = MANIFOLDS[name]
    good = np.zeros((3, m.ambient_dim), np.float32)
    bad = np.zeros((3, m.ambient_dim + extra), np.float32)
    binary = {"expmap": "u", "logmap": "y", "proju": "u", "dist": "y"}
    if method in binary:
        first, second = (good, bad) if bad_second else (bad, good)
        argument = binary[method] if bad_second else "x"
        with raises_naming(ValueError, argument, str(m.ambient_dim)):
            getattr(m, method)(first, second)
    else:
        with raises_naming(ValueError, "x", str(m.ambient_dim)):
            getattr(m, method)(bad)


@given(
    name=manifolds,
    batch=st.sampled_from((2, 4)),
    method=st.sampled_from(("expmap", "logmap", "proju", "dist")),
)
def test_binary_maps_refuse_leading_axes_that_do_not_broadcast(name, batch, method):
    m = MANIFOLDS[name]
    x = np.zeros((3, m.ambient_dim), np.float32)
    other = np.zeros((batch, m.ambient_dim), np.float32)
    with raises_naming(ValueError, "x", "broadcast"):
        getattr(m, method)(x, other)


factors = st.lists(st.tuples(st.sampled_from("STR"), st.integers(1, 3)), min_size=1, max_size=3)


@given(parts=factors)
def test_parse_manifold_reads_its_names(parts):
    name = "x".join(f"{kind}{dim}" for kind, dim in parts)
    manifold = parse_manifold(name)
    expected = sum(dim + 1 if kind == "S" else dim for kind, dim in parts)
    assert manifold.ambient_dim == expected
    assert manifold.dim == sum(dim for _, dim in parts)


@given(
    name=st.one_of(
        st.text(max_size=6), st.sampled_from(("S0", "R-1", "S2x", "xT1", "S2.5", None, 3))
    )
)
def test_parse_manifold_refuses_other_names(name):
    parts = [p.strip() for p in name.split("x")] if isinstance(name, str) else [""]
    valid = all(
        len(p) > 1 and p[0] in "STR" and p[1:].isascii() and p[1:].isdigit() and int(p[1:]) >= 1
        for p in parts
    )
    if valid:
        parse_manifold(name)
    else:
        with raises_naming(ValueError, "manifold"):
            parse_manifold(name)


@given(
    name=manifolds,
    defect=st.sampled_from(("integer dtype", "shape as int", "float key")),
)
def test_random_base_checks_its_input(name, defect):
    m = MANIFOLDS[name]
    key, shape, dtype = typed_key(0), (2,), jnp.float32
    exception, argument = (
        TypeError,
        {"integer dtype": "dtype", "shape as int": "shape", "float key": "key"}[defect],
    )
    if defect == "integer dtype":
        dtype = jnp.int32
    elif defect == "shape as int":
        shape = 2
    else:
        key = jnp.zeros((2,), jnp.float32)
    with raises_naming(exception, argument):
        m.random_base(key, shape, dtype)
