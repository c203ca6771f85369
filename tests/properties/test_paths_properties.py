"""Properties of the continuous probability paths: affine paths and their schedulers, the
parameterisation conversions, the scale-time transform, geodesic paths on manifolds, the
closed-form Gaussian-mixture marginals and the CondOT jump model."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.manifolds import Euclidean, FlatTorus, Product, Sphere
from flowjax.paths import (
    AffineProbPath,
    CondOTProbPath,
    CondOTScheduler,
    CosineScheduler,
    GaussianMixture,
    GeodesicProbPath,
    KineticOptimalScheduler,
    LinearVPScheduler,
    MaskedDiffusionScheduler,
    MixtureJumpGenerator,
    PolynomialScheduler,
    ScheduleTransformedModel,
    VPScheduler,
    analytic,
    jump,
)

from .strategies import (
    arrays,
    assert_finite,
    batch_sizes,
    below_one_floats,
    event_shapes,
    fewer_examples,
    float_dtypes,
    interior_floats,
    outside_unit_floats,
    raises_naming,
    seeds,
    times,
    typed_key,
    unit_floats,
)

SCHEDULERS = {
    "condot": CondOTScheduler(),
    "poly2": PolynomialScheduler(2.0),
    "poly_half": PolynomialScheduler(0.5),
    "vp": VPScheduler(),
    "linear_vp": LinearVPScheduler(),
    "cosine": CosineScheduler(),
    "masked_cosine": MaskedDiffusionScheduler("cosine", 1e-3, 1e-3),
    "kinetic": KineticOptimalScheduler(0.25),
}
REGULAR = ("condot", "poly2", "cosine", "masked_cosine", "kinetic")
"""Schedulers whose alpha, sigma and derivatives are finite on all of [0, 1]."""
ENDS = {  # (alpha_0, sigma_0, alpha_1, sigma_1) where the scheduler reaches them exactly
    "condot": (0.0, 1.0, 1.0, 0.0),
    "poly2": (0.0, 1.0, 1.0, 0.0),
    "poly_half": (0.0, 1.0, 1.0, 0.0),
    "linear_vp": (0.0, 1.0, 1.0, 0.0),
    "cosine": (0.0, 1.0, 1.0, 0.0),
    "masked_cosine": (1e-3, 1.0 - 1e-3, 1.0 - 1e-3, 1e-3),
    "kinetic": (0.0, 1.0, 1.0, 0.0),
}
CONVERSIONS = {  # name: (the PathSample field it reads, the field it returns)
    "target_to_velocity": ("x_1", "dx_t"),
    "epsilon_to_velocity": ("x_0", "dx_t"),
    "velocity_to_target": ("dx_t", "x_1"),
    "epsilon_to_target": ("x_0", "x_1"),
    "velocity_to_epsilon": ("dx_t", "x_0"),
    "target_to_epsilon": ("x_1", "x_0"),
}
MANIFOLDS = {"S2": Sphere(2), "T2": FlatTorus(2), "S1xR2": Product(Sphere(1), Euclidean(2))}


@functools.partial(jax.jit, static_argnums=0)
def _affine_sample(scheduler, x_0, x_1, t):
    return AffineProbPath(scheduler).sample(x_0, x_1, t)


def _schedule_is_finite(scheduler, t) -> bool:
    return all(np.all(np.isfinite(np.asarray(v))) for v in scheduler(jnp.asarray(t)))


@fewer_examples(2)
@given(
    name=st.sampled_from(REGULAR),
    batch=batch_sizes,
    event=event_shapes,
    dtype=float_dtypes,
    data=st.data(),
)
def test_affine_sample_values_shapes_and_dtypes(name, batch, event, dtype, data):
    """x_t = alpha_t x_1 + sigma_t x_0 and dx_t, finite, of the shape of x and of the promoted
    dtype of x and t, for every t in [0, 1] (endpoints included)."""
    shape = (batch, *event)
    x_0 = jnp.asarray(data.draw(arrays(shape)), dtype)
    x_1 = jnp.asarray(data.draw(arrays(shape)), dtype)
    t = jnp.asarray(data.draw(times(batch)))
    sample = _affine_sample(SCHEDULERS[name], x_0, x_1, t)
    dtype_out = jnp.result_type(x_0, x_1, t)
    assert sample.x_t.shape == sample.dx_t.shape == shape
    assert sample.x_t.dtype == sample.dx_t.dtype == dtype_out
    assert_finite(sample.x_t, sample.dx_t)
    a, s, da, ds = (
        np.asarray(v).reshape((batch,) + (1,) * len(event)) for v in SCHEDULERS[name](t)
    )
    x_0, x_1 = np.asarray(x_0, np.float32), np.asarray(x_1, np.float32)
    np.testing.assert_allclose(sample.x_t, a * x_1 + s * x_0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sample.dx_t, da * x_1 + ds * x_0, rtol=1e-5, atol=1e-5)


@given(name=st.sampled_from(tuple(SCHEDULERS)), data=st.data())
def test_affine_sample_is_finite_or_refuses_a_singular_time(name, data):
    """At every concrete t in [0, 1] the sample is finite, or the call raises a ValueError
    naming t where the scheduler itself is singular (e.g. VP's sigma'_t at t = 1)."""
    scheduler = SCHEDULERS[name]
    t = data.draw(times(3, st.one_of(st.sampled_from((0.0, 1.0)), unit_floats)))
    x_0, x_1 = np.ones((3, 2), np.float32), np.full((3, 2), -0.5, np.float32)
    try:
        sample = AffineProbPath(scheduler).sample(x_0, x_1, t)
    except ValueError as error:
        assert "t" in str(error) and not _schedule_is_finite(scheduler, t), str(error)
    else:
        assert_finite(sample.x_t, sample.dx_t)


@given(data=st.data(), traced=st.booleans())
def test_affine_sample_with_t_outside_the_unit_interval(data, traced):
    """A concrete t outside [0, 1] (or NaN) is refused naming t; a traced one runs (unchecked)
    and returns arrays of the documented shape."""
    bad = st.one_of(outside_unit_floats, st.sampled_from((np.nan, np.inf, -np.inf)))
    t = data.draw(times(3, bad))
    x = np.ones((3, 2), np.float32)
    if traced:
        sample = _affine_sample(CondOTScheduler(), x, x, t)
        assert sample.x_t.shape == sample.dx_t.shape == (3, 2)
    else:
        with raises_naming(ValueError, "t"):
            CondOTProbPath().sample(x, x, t)


@given(
    defect=st.sampled_from(
        ("x_1 shape", "t scalar", "t too long", "t of x's shape", "integer x_0", "integer x_1")
    ),
    batch=st.sampled_from((1, 3)),
)
def test_affine_sample_rejects_bad_input(defect, batch):
    x = np.zeros((batch, 2), np.float32)
    t = np.full((batch,), 0.5, np.float32)
    arguments = {"x_0": x, "x_1": x, "t": t}
    expected = {
        "x_1 shape": (ValueError, "x_1", np.zeros((batch, 3), np.float32)),
        "t scalar": (ValueError, "t", np.float32(0.5)),
        "t too long": (ValueError, "t", np.full((batch + 1,), 0.5, np.float32)),
        "t of x's shape": (ValueError, "t", np.full((batch, 2), 0.5, np.float32)),
        "integer x_0": (TypeError, "x_0", np.zeros((batch, 2), np.int32)),
        "integer x_1": (TypeError, "x_1", np.zeros((batch, 2), np.int32)),
    }[defect]
    exception, argument, value = expected
    arguments[argument] = value
    with raises_naming(exception, argument):
        CondOTProbPath().sample(**arguments)


@fewer_examples(2)
@given(
    name=st.sampled_from(tuple(SCHEDULERS)),
    event=event_shapes,
    broadcast=st.booleans(),
    data=st.data(),
)
def test_conversions_round_trip(name, event, broadcast, data):
    """velocity <-> target <-> epsilon: each conversion maps the true quantity of a path sample
    to the true quantity, for t of shape (B,) or already broadcast against x."""
    with jax.enable_x64(True):
        path = AffineProbPath(SCHEDULERS[name])
        x_0 = jnp.asarray(data.draw(arrays((3, *event))), jnp.float64)
        x_1 = jnp.asarray(data.draw(arrays((3, *event))), jnp.float64)
        t = jnp.asarray(data.draw(times(3, interior_floats)), jnp.float64)
        sample = path.sample(x_0, x_1, t)
        t_arg = t.reshape((3,) + (1,) * len(event)) if broadcast else t
        for conversion, (source, target) in CONVERSIONS.items():
            out = getattr(path, conversion)(getattr(sample, source), sample.x_t, t_arg)
            assert out.shape == sample.x_t.shape and out.dtype == jnp.float64
            np.testing.assert_allclose(out, getattr(sample, target), rtol=1e-7, atol=1e-7)


@given(
    name=st.sampled_from(tuple(SCHEDULERS)),
    conversion=st.sampled_from(tuple(CONVERSIONS)),
    data=st.data(),
)
def test_conversions_are_finite_or_refuse_a_singular_time(name, conversion, data):
    """A conversion divides by a combination of alpha, sigma and their derivatives that vanishes
    at some end of [0, 1] (target_to_velocity at t = 1, epsilon_to_velocity at t = 0 for
    CondOT). There a concrete t raises a ValueError naming t; everywhere else the result is
    finite."""
    t = data.draw(times(3, st.one_of(st.sampled_from((0.0, 1.0)), unit_floats)))
    x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
    try:
        out = getattr(AffineProbPath(SCHEDULERS[name]), conversion)(x, x[::-1], t)
    except ValueError as error:
        assert "t" in str(error) and np.any((t == 0.0) | (t == 1.0)), str(error)
    else:
        assert_finite(out)


@given(name=st.sampled_from(tuple(SCHEDULERS)), t=interior_floats)
def test_scheduler_inverses_and_end_values(name, t):
    """snr_inverse(alpha_t / sigma_t) = t, kappa_inverse(kappa_t) = t for convex schedulers, and
    the documented values at t = 0 and t = 1."""
    scheduler = SCHEDULERS[name]
    with jax.enable_x64(True):
        out = scheduler(jnp.asarray(t, jnp.float64))
        np.testing.assert_allclose(scheduler.snr_inverse(out.alpha_t / out.sigma_t), t, atol=1e-9)
        if hasattr(scheduler, "kappa_inverse"):
            np.testing.assert_allclose(scheduler.kappa_inverse(out.alpha_t), t, atol=1e-9)
        if name in ENDS:
            ends = scheduler(jnp.asarray([0.0, 1.0], jnp.float64))
            got = (ends.alpha_t[0], ends.sigma_t[0], ends.alpha_t[1], ends.sigma_t[1])
            np.testing.assert_allclose(got, ENDS[name], atol=1e-12)


def _velocity(x, t):
    return jnp.sin(x) * (1.0 + jnp.reshape(t, jnp.shape(t) + (1,) * (x.ndim - jnp.ndim(t))))


@fewer_examples(2)
@given(
    original=st.sampled_from(REGULAR),
    new=st.sampled_from(tuple(SCHEDULERS)),
    per_sample=st.booleans(),
    data=st.data(),
)
def test_schedule_transform(original, new, per_sample, data):
    """Transformed to its own scheduler a velocity field is unchanged; transformed to another
    one it stays finite inside (0, 1), for a scalar t and for t of shape (B,)."""
    with jax.enable_x64(True):
        x = jnp.asarray(data.draw(arrays((3, 2))), jnp.float64)
        t = jnp.asarray(data.draw(times(3, interior_floats)), jnp.float64)
        t = t if per_sample else t[0]
        same = ScheduleTransformedModel(_velocity, SCHEDULERS[original], SCHEDULERS[original])
        np.testing.assert_allclose(same(x, t), _velocity(x, t), rtol=1e-9, atol=1e-9)
        other = ScheduleTransformedModel(_velocity, SCHEDULERS[original], SCHEDULERS[new])
        out = other(x, t)
        assert out.shape == x.shape
        assert_finite(out)


@functools.partial(jax.jit, static_argnums=0)
def _geodesic_checks(path, key, t):
    """A geodesic sample between two base points and its distances: off the manifold, of dx_t
    from the tangent space, and of the ends at t = 0 and t = 1 from x_0 and x_1."""
    m = path.manifold
    k_0, k_1 = jax.random.split(key)
    x_0, x_1 = m.random_base(k_0, t.shape), m.random_base(k_1, t.shape)
    # One call on the batch three times over: at t, at t = 0 and at t = 1.
    tile = lambda x: jnp.concatenate([x, x, x])
    times_and_ends = jnp.concatenate([t, jnp.zeros_like(t), jnp.ones_like(t)])
    everything = path.sample(tile(x_0), tile(x_1), times_and_ends)
    sample, start, end = (
        jax.tree.map(lambda v, i=i: jnp.split(v, 3)[i], everything) for i in range(3)
    )
    tangent_error = jnp.abs(m.proju(sample.x_t, sample.dx_t) - sample.dx_t)
    off = m.distance_to_manifold(sample.x_t)
    return sample, off, tangent_error, m.dist(start.x_t, x_0), m.dist(end.x_t, x_1)


@fewer_examples(2)
@given(
    manifold=st.sampled_from(tuple(MANIFOLDS)),
    batch=st.sampled_from((0, 3)),
    seed=seeds,
    data=st.data(),
)
def test_geodesic_path_stays_on_the_manifold(manifold, batch, seed, data):
    """x_t lies on the manifold with dx_t in its tangent space; x_0 at t = 0 and x_1 at
    t = 1."""
    m = MANIFOLDS[manifold]
    t = jnp.asarray(data.draw(times(batch)))
    path = GeodesicProbPath(CondOTScheduler(), m)
    sample, off, tangent_error, start_error, end_error = _geodesic_checks(path, typed_key(seed), t)
    assert sample.x_t.shape == sample.dx_t.shape == (batch, m.ambient_dim)
    assert_finite(sample.x_t, sample.dx_t)
    assert np.all(np.asarray(off) < 1e-5)
    assert np.all(np.asarray(tangent_error) < 1e-4)
    assert np.all(np.asarray(start_error) < 1e-4)
    assert np.all(np.asarray(end_error) < 1e-3)


@given(scale=st.floats(1.01, 3.0), which=st.sampled_from(("x_0", "x_1")), seed=seeds)
def test_geodesic_path_refuses_points_off_the_sphere(scale, which, seed):
    sphere = Sphere(2)
    points = {
        "x_0": sphere.random_base(typed_key(seed), (3,)),
        "x_1": sphere.random_base(typed_key(seed + 1), (3,)),
    }
    points[which] = points[which] * scale
    with raises_naming(ValueError, which, "off"):
        GeodesicProbPath(CondOTScheduler(), sphere).sample(
            points["x_0"], points["x_1"], np.full(3, 0.5)
        )


@functools.partial(jax.jit, static_argnums=0)
def _mixture_marginals(path, weights, means, covs, x, t):
    mixture = GaussianMixture(weights, means, covs)
    return analytic.marginal_velocity(path, mixture, x, t), analytic.marginal_log_prob(
        path, mixture, x, t
    )


@fewer_examples(2)
@given(
    num_components=st.sampled_from((1, 2)),
    batch=st.sampled_from((0, 3)),
    per_sample=st.booleans(),
    name=st.sampled_from(("condot", "cosine")),
    data=st.data(),
)
def test_mixture_marginals_are_finite_on_the_closed_interval(
    num_components, batch, per_sample, name, data
):
    raw = np.asarray(data.draw(arrays((num_components,), 0.1, 1.0)), np.float64)
    weights = jnp.asarray(raw / raw.sum(), jnp.float32)
    means = jnp.asarray(data.draw(arrays((num_components, 2))))
    std = np.asarray(data.draw(arrays((num_components,), 0.2, 2.0)))
    covs = jnp.asarray((std**2)[:, None, None] * np.eye(2), jnp.float32)
    x = jnp.asarray(data.draw(arrays((batch, 2))))
    t = jnp.asarray(data.draw(times(batch))) if per_sample else jnp.asarray(data.draw(unit_floats))
    velocity, log_p = _mixture_marginals(
        AffineProbPath(SCHEDULERS[name]), weights, means, covs, x, t
    )
    assert velocity.shape == (batch, 2) and log_p.shape == (batch,)
    assert_finite(velocity, log_p)


@given(
    defect=st.sampled_from(
        ("weights sum", "negative weight", "singular covariance", "x dimension", "t length")
    )
)
def test_mixture_rejects_bad_input(defect):
    weights, means, covs = np.array([0.5, 0.5]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2)
    x, t = np.zeros((3, 2), np.float32), np.full((3,), 0.5, np.float32)
    if defect == "weights sum":
        weights, argument = np.array([0.5, 0.7]), "weights"
    elif defect == "negative weight":
        weights, argument = np.array([1.5, -0.5]), "weights"
    elif defect == "singular covariance":
        covs, argument = np.zeros((2, 2, 2)), "covs"
    elif defect == "x dimension":
        x, argument = np.zeros((3, 3), np.float32), "x"
    else:
        t, argument = np.full((4,), 0.5, np.float32), "t"
    with raises_naming(ValueError, argument):
        mixture = GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))
        analytic.marginal_velocity(CondOTProbPath(), mixture, x, t)


@jax.jit
def _condot_jump(key, x, z, t):
    probs = jump.condot_jump_bin_probs(z, t, jump.bin_edges(-3.0, 3.0, 5))
    return probs, jump.condot_jump_sample(key, z, t), jump.condot_scaled_rate(x, z, t)


@given(t=below_one_floats, seed=seeds, data=st.data())
def test_condot_jump_model(t, seed, data):
    """The CondOT jump target's bin masses are a distribution, its draws lie in its support, and
    the scaled rate is non-negative and finite, for every t in [0, 1)."""
    z = jnp.asarray(data.draw(arrays((4,))))
    x = jnp.asarray(data.draw(arrays((4,))))
    t = jnp.float32(t)
    probs, y, rate = _condot_jump(typed_key(seed), x, z, t)
    assert probs.shape == (4, 5)
    assert np.all(np.asarray(probs) >= 0.0)
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
    e = (np.asarray(y) - t * np.asarray(z)) / (1.0 - t)
    z64 = np.asarray(z, np.float64)
    lo, hi = 0.5 * (z64 - np.sqrt(z64**2 + 4)), 0.5 * (z64 + np.sqrt(z64**2 + 4))
    assert np.all((e >= lo - 1e-3) & (e <= hi + 1e-3)), (e, lo, hi)
    assert np.all(np.asarray(rate) >= 0.0)
    assert_finite(rate)


GENERATOR = MixtureJumpGenerator(GaussianMixture.isotropic([0.4, 0.6], [[-1.0], [2.0]], 0.5))


@jax.jit
def _marginal_jump(key, x, t):
    return GENERATOR.scaled_rate(x, t), GENERATOR.sample_target(key, x, t)


@fewer_examples(2)
@given(batch=st.just(3), seed=seeds, data=st.data())
def test_mixture_jump_generator_is_finite_or_refuses_t_one(batch, seed, data):
    """The exact marginal jump generator: a non-negative finite scaled rate and finite jump
    destinations for t in [0, 1); at a concrete t = 1, where it is singular, a ValueError
    naming t."""
    x = jnp.asarray(data.draw(arrays((batch, 1))))
    t = data.draw(st.one_of(st.just(1.0), below_one_floats))
    if t == 1.0:
        with raises_naming(ValueError, "t"):
            GENERATOR.scaled_rate(x, t)
        return
    rate, target = _marginal_jump(typed_key(seed), x, jnp.float32(t))
    assert rate.shape == target.shape == (batch, 1)
    assert np.all(np.asarray(rate) >= 0.0)
    assert_finite(rate, target)


@given(dim=st.sampled_from((2, 3)))
def test_mixture_jump_generator_rejects_points_of_another_dimension(dim):
    with raises_naming(ValueError, "x"):
        GENERATOR.scaled_rate(np.zeros((3, dim), np.float32), 0.5)


@given(
    name=st.sampled_from(REGULAR),
    batch=st.sampled_from((1, 3)),
    bad=st.sampled_from((np.nan, np.inf, -np.inf)),
    which=st.sampled_from(("x_0", "x_1")),
    data=st.data(),
)
def test_non_finite_data_propagates_under_jit(name, batch, bad, which, data):
    """Data arrays are not scanned for NaN or inf: under jit a non-finite coordinate gives a
    non-finite x_t at that coordinate (NaN in, NaN out) and leaves the others finite."""
    x = {"x_0": data.draw(arrays((batch, 2))), "x_1": data.draw(arrays((batch, 2)))}
    index = (data.draw(st.integers(0, batch - 1)), data.draw(st.integers(0, 1)))
    x[which][index] = bad
    t = data.draw(times(batch, interior_floats))
    x_t = np.asarray(_affine_sample(SCHEDULERS[name], x["x_0"], x["x_1"], t).x_t)
    assert not np.isfinite(x_t[index])
    finite = np.ones(x_t.shape, bool)
    finite[index] = False
    assert np.all(np.isfinite(x_t[finite]))
