"""Properties of the solvers: settings and time grids, ODE sampling, divergences and
likelihoods, Riemannian solvers, jump-process samplers and their superposition, the Flow
Divergence Sampler and nucleus weights.

The solvers run as one compiled `lax.scan`; the properties call them through jitted wrappers
(their settings static) so that an example with the shapes of an earlier one compiles nothing.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from flowjax.manifolds import Euclidean, FlatTorus, Product, Sphere
from flowjax.solvers import (
    MANIFOLD_UPDATES,
    METHODS,
    RIEMANNIAN_METHODS,
    FlowDivergenceSampler,
    Generator,
    SolverSettings,
    edm_time_grid,
    exact_divergence,
    generator_sample,
    hutchinson_divergence,
    hutchinson_probes,
    nucleus_weights,
    ode_log_likelihood,
    ode_predict,
    ode_sample,
    riemannian_log_likelihood,
    riemannian_sample,
    standard_normal_log_density,
    superpose,
)
from flowjax.solvers.integrate import step_nodes

from .strategies import (
    arrays,
    assert_finite,
    batch_sizes,
    event_shapes,
    fewer_examples,
    float32s,
    float_dtypes,
    outside_unit_floats,
    raises_naming,
    seeds,
    typed_key,
    unit_floats,
)

GRIDS = ((0.0, 1.0), (1.0, 0.0), (0.0, 0.3, 1.0), (0.9, 0.2), (0.25, 0.75))
grid_points = st.one_of(
    st.sampled_from((0.0, 1.0, 0.5)),
    unit_floats,
    outside_unit_floats,
    st.sampled_from((math.nan, math.inf)),
)


def _is_valid_grid(grid) -> bool:
    values = np.asarray(grid, np.float64)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        return False
    diffs = np.diff(values)
    monotone = np.all(diffs > 0) or np.all(diffs < 0)
    return bool(monotone and values.min() >= 0.0 and values.max() <= 1.0)


@given(grid=st.lists(grid_points, max_size=4), as_array=st.booleans())
def test_time_grids_are_checked_when_the_settings_are_made(grid, as_array):
    """A grid is accepted iff it has >= 2 finite, strictly monotone times in [0, 1] (no repeated
    point); it is then stored as a tuple of Python floats. Anything else is refused naming
    time_grid."""
    value = np.asarray(grid, np.float32) if as_array else grid
    if _is_valid_grid(grid):
        settings = SolverSettings(time_grid=value)
        assert settings.time_grid == tuple(float(np.float32(g) if as_array else g) for g in grid)
        assert all(type(g) is float for g in settings.time_grid)
    else:
        with raises_naming(ValueError, "time_grid"):
            SolverSettings(time_grid=value)


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=2),
)


def _valid_field(name, value) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "step_size":
        return value is None or (number and math.isfinite(value) and value > 0)
    if name in ("atol", "rtol"):
        return number and math.isfinite(value) and value > 0
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@given(
    name=st.sampled_from(("step_size", "atol", "rtol", "max_steps", "num_probes")),
    value=field_values,
)
def test_numeric_settings_are_checked_when_the_settings_are_made(name, value):
    """Steps and tolerances are finite positive numbers (step_size may be None), step budgets
    and probe counts ints >= 1; booleans are not numbers here. A bad value is refused naming
    the field."""
    if _valid_field(name, value):
        assert getattr(SolverSettings(**{name: value}), name) == value
    else:
        with raises_naming((ValueError, TypeError), name):
            SolverSettings(**{name: value})


sorted_grids = st.lists(unit_floats, min_size=2, max_size=4, unique=True).map(sorted)


@given(grid=sorted_grids, descending=st.booleans(), step=st.one_of(st.none(), float32s(1e-3, 2.0)))
def test_step_nodes_cover_the_grid(grid, descending, step):
    """Every grid time is a node, nodes move monotonically in the grid's direction, and no step
    is longer than step_size."""
    grid = np.asarray(grid[::-1] if descending else grid)
    nodes, index = step_nodes(grid, step)
    np.testing.assert_array_equal(nodes[index], grid)
    diffs = np.diff(nodes)
    assert np.all(diffs < 0) if descending else np.all(diffs > 0)
    if step is not None:
        assert np.all(np.abs(diffs) <= step * (1 + 1e-6))


@given(step=st.floats(1e-300, 1e-12), method=st.sampled_from(("euler", "rk4")))
def test_a_step_size_with_too_many_steps_is_refused(step, method):
    """A step so small that the solve would need more steps than fit in memory is refused
    (naming step_size) instead of exhausting the memory while the nodes are listed."""
    with raises_naming(ValueError, "step_size"):
        ode_sample(lambda x, t: -x, np.ones((1, 2), np.float32), method=method, step_size=step)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _constant_flow(method, grid, step_size, intermediates, x, c):
    return ode_sample(
        lambda y, t: jnp.broadcast_to(c, y.shape),
        x,
        method=method,
        time_grid=grid,
        step_size=step_size,
        return_intermediates=intermediates,
    )


@fewer_examples(3)
@given(
    method=st.sampled_from(METHODS),
    grid=st.sampled_from(GRIDS),
    step_size=st.sampled_from((None, 0.1, 0.3)),
    intermediates=st.booleans(),
    batch=batch_sizes,
    event=event_shapes,
    dtype=float_dtypes,
    data=st.data(),
)
def test_ode_sample_of_a_constant_velocity_is_exact(
    method, grid, step_size, intermediates, batch, event, dtype, data
):
    """Every method integrates a constant velocity c exactly, x(t) = x(t_0) + c (t - t_0), on any
    grid (ascending or descending), and keeps the state's shape and dtype."""
    shape = (batch, *event)
    x = jnp.asarray(data.draw(arrays(shape)), dtype)
    c = jnp.asarray(data.draw(arrays(shape)), dtype)
    out = _constant_flow(method, grid, step_size, intermediates, x, c)
    g = np.asarray(grid, np.float64)
    spans = (g - g[0]) if intermediates else np.asarray(g[-1] - g[0])
    spans = spans.reshape(spans.shape + (1,) * len(shape))
    expected = np.asarray(x, np.float64) + np.asarray(c, np.float64) * spans
    assert out.shape == expected.shape and out.dtype == dtype
    tolerance = 40 * float(jnp.finfo(dtype).eps) * (1.0 + np.abs(expected))
    assert np.all(np.abs(np.asarray(out, np.float64) - expected) <= tolerance)


@given(
    defect=st.sampled_from(
        ("integer x_init", "output shape", "traced grid", "unknown method", "adaptive refiner")
    ),
)
def test_ode_sample_checks_its_input(defect):
    x = np.ones((3, 2), np.float32)
    velocity, options = (lambda y, t: -y), {}
    exception, argument = ValueError, None
    if defect == "integer x_init":
        x, exception, argument = np.ones((3, 2), np.int32), TypeError, "x_init"
    elif defect == "output shape":
        velocity, argument = (lambda y, t: -y[:1]), "velocity_fn"
    elif defect == "unknown method":
        options, argument = {"method": "leapfrog"}, "method"
    elif defect == "adaptive refiner":
        options, argument = (
            {"method": "dopri5", "refiner": FlowDivergenceSampler(), "key": typed_key(0)},
            "dopri5",
        )
    if defect == "traced grid":
        with raises_naming(ValueError, "time_grid"):
            jax.jit(lambda g: ode_sample(velocity, x, time_grid=g))(jnp.asarray([0.0, 1.0]))
        return
    with raises_naming(exception, argument):
        ode_sample(velocity, x, **options)


NUM_PROBES = 64


@functools.partial(jax.jit, static_argnums=0)
def _exact_and_hutchinson(probe, key, a, x_1):
    field = lambda x, t: x @ a.T
    settings = SolverSettings(method="rk4", step_size=0.05)
    _, exact = ode_log_likelihood(field, x_1, standard_normal_log_density, solver=settings)
    _, estimate = ode_log_likelihood(
        field,
        x_1,
        standard_normal_log_density,
        solver=settings,
        divergence="hutchinson",
        num_probes=NUM_PROBES,
        probe=probe,
        key=key,
    )
    return exact, estimate


@fewer_examples()
@given(probe=st.sampled_from(("rademacher", "gaussian")), seed=seeds, data=st.data())
def test_exact_and_hutchinson_likelihoods_agree(probe, seed, data):
    """For a linear field u(x) = A x the exact likelihood matches the closed form
    log N(e^-A x_1) - tr A, and the Hutchinson estimate with 64 probes lies within 6 standard
    errors of it (its error is tr A minus the probes' mean of z.Az, whose variance is known)."""
    num_probes = NUM_PROBES
    with jax.enable_x64(True):
        a = np.asarray(data.draw(arrays((3, 3), -1.0, 1.0)), np.float64)
        x_1 = jnp.asarray(data.draw(arrays((2, 3))), jnp.float64)
        exact, estimate = _exact_and_hutchinson(probe, typed_key(seed), jnp.asarray(a), x_1)
        x_0 = np.asarray(x_1) @ scipy.linalg.expm(-a).T
        closed = -0.5 * np.sum(x_0**2, axis=1) - 1.5 * math.log(2 * math.pi) - np.trace(a)
        # RK4's error: |a_ij| <= 1 bounds the spectral radius by 3, so |h lambda| <= 0.15 and
        # each of the 20 steps is off by at most about 0.15^5 / 120 = 6e-7 relative in x_0,
        # 2.5e-5 in the quadratic log-density over the 20 steps (2.2e-5 measured for A = -1).
        np.testing.assert_allclose(exact, closed, rtol=1e-4, atol=1e-6)
    sym = 0.5 * (a + a.T)
    off = sym - np.diag(np.diag(sym))
    variance = 2.0 * np.sum(off**2) if probe == "rademacher" else 2.0 * np.sum(sym**2)
    standard_error = math.sqrt(variance / num_probes)
    assert np.all(np.abs(np.asarray(estimate) - np.asarray(exact)) <= 6 * standard_error + 1e-6)


@jax.jit
def _divergences(key, a, x):
    dim = a.shape[0]

    def field(y):
        return (y.reshape(y.shape[0], dim) @ a.T).reshape(y.shape)

    value, div = exact_divergence(field, x)
    probes = hutchinson_probes(key, x.shape, 2, "rademacher", jnp.float32)
    return field(x), value, div, hutchinson_divergence(field, x, probes)


@given(
    batch=batch_sizes,
    event=st.sampled_from(((2,), (1, 3), (0,))),
    seed=seeds,
    data=st.data(),
)
def test_divergences_of_a_linear_field(batch, event, seed, data):
    """The exact divergence of x -> A x (flattened over any event shape) is tr A per sample;
    Hutchinson's estimate has the batch's shape; both return the field's value."""
    dim = math.prod(event)
    a = data.draw(arrays((dim, dim)))
    x = jnp.asarray(data.draw(arrays((batch, *event))))
    expected, value, div, (hutchinson_value, estimate) = _divergences(typed_key(seed), a, x)
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)
    assert div.shape == (batch,)
    np.testing.assert_allclose(div, np.full(batch, np.trace(a)), rtol=1e-5, atol=1e-5)
    assert estimate.shape == (batch,)
    np.testing.assert_allclose(hutchinson_value, expected, rtol=1e-6, atol=1e-6)
    assert_finite(estimate)


@given(batch=batch_sizes, event=st.sampled_from(((2,), (1, 3), (0,))), data=st.data())
def test_standard_normal_log_density(batch, event, data):
    x = data.draw(arrays((batch, *event)))
    log_p = standard_normal_log_density(jnp.asarray(x))
    flat = x.reshape(batch, math.prod(event)).astype(np.float64)
    expected = -0.5 * (flat**2).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)
    assert log_p.shape == (batch,)
    np.testing.assert_allclose(log_p, expected, rtol=1e-5, atol=1e-5)


@given(
    defect=st.sampled_from(
        ("grid direction", "unbatched x_1", "log_p0 shape", "no key", "float key", "output shape")
    ),
)
def test_likelihood_checks_its_input(defect):
    x, velocity, log_p0, options = (
        np.ones((3, 2), np.float32),
        (lambda y, t: -y),
        standard_normal_log_density,
        {},
    )
    argument = {
        "grid direction": "time_grid",
        "unbatched x_1": "x_1",
        "log_p0 shape": "log_p0",
        "no key": "key",
        "float key": "key",
        "output shape": "velocity_fn",
    }[defect]
    exception = ValueError
    if defect == "grid direction":
        options = {"time_grid": (0.0, 1.0)}
    elif defect == "unbatched x_1":
        x = np.ones((2,), np.float32)
    elif defect == "log_p0 shape":
        log_p0 = lambda y: y
    elif defect == "no key":
        options = {"divergence": "hutchinson"}
    elif defect == "float key":
        options, exception = {"divergence": "hutchinson", "key": jnp.zeros((2,))}, TypeError
    else:
        velocity = lambda y, t: -y[:, :1]
    with raises_naming(exception, argument):
        ode_log_likelihood(velocity, x, log_p0, **options)


MANIFOLDS = {"S2": Sphere(2), "T2": FlatTorus(2), "S1xR2": Product(Sphere(1), Euclidean(2))}


def _ambient_field(x, t):
    return jnp.sin(3.0 * x) + t


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _riemannian_sample(manifold, method, update, step_size, x):
    return riemannian_sample(
        _ambient_field, x, manifold, method=method, update=update, step_size=step_size
    )


@functools.partial(jax.jit, static_argnums=(0,))
def _riemannian_still_likelihood(manifold, x):
    return riemannian_log_likelihood(lambda y, t: jnp.zeros_like(y), x, manifold, step_size=0.5)


@fewer_examples()
@given(
    manifold=st.sampled_from(tuple(MANIFOLDS)),
    method=st.sampled_from(RIEMANNIAN_METHODS),
    update=st.sampled_from(MANIFOLD_UPDATES),
    step_size=st.sampled_from((None, 0.25)),
    batch=batch_sizes,
    seed=seeds,
)
def test_riemannian_solvers_stay_on_the_manifold(manifold, method, update, step_size, batch, seed):
    """Samples of any ambient field stay on the manifold; the likelihood of the still flow is
    the base density and returns its points unmoved."""
    m = MANIFOLDS[manifold]
    x = m.random_base(typed_key(seed), (batch,))
    out = _riemannian_sample(m, method, update, step_size, x)
    assert out.shape == x.shape
    assert_finite(out)
    assert np.all(np.asarray(m.distance_to_manifold(out)) < 1e-5)
    x_0, log_p = _riemannian_still_likelihood(m, x)
    np.testing.assert_allclose(x_0, x, atol=1e-6)
    np.testing.assert_allclose(log_p, m.base_log_prob(x), rtol=1e-6, atol=1e-6)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _jump_process(flow_method, survival, step_size, key, x, velocity, rate, target):
    def generator(y, t):
        return Generator(
            velocity=jnp.broadcast_to(velocity, y.shape).astype(y.dtype),
            jump_rate=jnp.full(y.shape, rate, y.dtype),
            jump_target=lambda k: jnp.broadcast_to(target, y.shape).astype(y.dtype),
        )

    return generator_sample(
        key, generator, x, step_size=step_size, flow_method=flow_method, survival=survival
    )


@fewer_examples()
@given(
    flow_method=st.sampled_from(("euler", "midpoint", "heun")),
    survival=st.sampled_from(("exact", "linear")),
    step_size=st.sampled_from((None, 0.25)),
    jumping=st.booleans(),
    batch=batch_sizes,
    dtype=float_dtypes,
    seed=seeds,
    data=st.data(),
)
def test_generator_sample_flows_or_jumps(
    flow_method, survival, step_size, jumping, batch, dtype, seed, data
):
    """Without jumps a constant velocity is integrated exactly; with an overwhelming jump rate
    every coordinate ends on the jump target. The state keeps its shape and dtype."""
    x = jnp.asarray(data.draw(arrays((batch, 2))), dtype)
    velocity = jnp.asarray(data.draw(arrays((batch, 2))), dtype)
    target = jnp.asarray(data.draw(arrays((batch, 2))), dtype)
    rate = 1e6 if jumping else 0.0
    out = _jump_process(
        flow_method, survival, step_size, typed_key(seed), x, velocity, rate, target
    )
    assert out.shape == x.shape and out.dtype == dtype
    expected = target if jumping else np.asarray(x, np.float64) + np.asarray(velocity, np.float64)
    tolerance = 20 * float(jnp.finfo(dtype).eps) * (1.0 + np.abs(np.asarray(expected, np.float64)))
    assert np.all(
        np.abs(np.asarray(out, np.float64) - np.asarray(expected, np.float64)) <= tolerance
    )


weight_values = st.one_of(float32s(0.0, 1.0), st.sampled_from((math.nan, math.inf, -0.5)))


@given(weights=st.lists(weight_values, min_size=1, max_size=3), normalise=st.booleans())
def test_superposition_weights(weights, normalise):
    """Weights are accepted iff they are finite, >= 0 and sum to 1 (one per generator)."""
    values = np.asarray(weights, np.float64)
    if normalise and np.all(np.isfinite(values)) and values.sum() > 0:
        weights = list(values / values.sum())
        values = np.asarray(weights)
    generators = [lambda x, t: Generator(velocity=x)] * len(weights)
    valid = np.all(np.isfinite(values)) and np.all(values >= 0) and abs(values.sum() - 1) <= 1e-6
    if valid:
        combined = superpose(generators, weights)(jnp.ones((2, 2)), 0.5)
        np.testing.assert_allclose(combined.velocity, np.ones((2, 2)), rtol=1e-6)
    else:
        with raises_naming(ValueError, "weights"):
            superpose(generators, weights)


@given(
    num_steps=st.integers(1, 8),
    sigma_min=st.one_of(st.floats(1e-4, 1.0), st.sampled_from((0.0, math.nan, math.inf))),
    sigma_max=st.one_of(st.floats(1.0, 100.0), st.sampled_from((math.nan, math.inf))),
    rho=st.one_of(st.floats(0.5, 10.0), st.sampled_from((0.0, -1.0, math.nan, math.inf))),
)
def test_edm_time_grid(num_steps, sigma_min, sigma_max, rho):
    """Valid arguments give num_steps + 1 ascending times in (0, 1] ending at 1, a grid the
    solvers accept; others are refused naming the argument."""
    valid_sigmas = math.isfinite(sigma_max) and 0 < sigma_min < sigma_max
    valid_rho = math.isfinite(rho) and rho > 0
    if not (valid_sigmas and valid_rho):
        with raises_naming(ValueError, "sigma" if not valid_sigmas else "rho"):
            edm_time_grid(num_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
        return
    grid = edm_time_grid(num_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    assert len(grid) == num_steps + 1 and grid[-1] == 1.0
    assert all(0.0 < g <= 1.0 for g in grid) and all(b > a for a, b in zip(grid, grid[1:]))
    assert SolverSettings(time_grid=grid).time_grid == grid


@functools.partial(jax.jit, static_argnums=(0, 1))
def _refined_and_plain(refiner, step_size, key, x):
    velocity = lambda y, t: jnp.tanh(y) - y
    refined = ode_sample(velocity, x, refiner=refiner, key=key, step_size=step_size)
    return refined, ode_sample(velocity, x, step_size=step_size)


@fewer_examples(4)
@given(
    batch=batch_sizes,
    divergence_of=st.sampled_from(("velocity", "step")),
    exact=st.booleans(),
    seed=seeds,
    data=st.data(),
)
def test_flow_divergence_sampler_with_zero_scale_is_plain_sampling(
    batch, divergence_of, exact, seed, data
):
    refiner = FlowDivergenceSampler(scale=0.0, divergence_of=divergence_of, exact_divergence=exact)
    x = jnp.asarray(data.draw(arrays((batch, 2))))
    refined, plain = _refined_and_plain(refiner, 0.25, typed_key(seed), x)
    np.testing.assert_array_equal(refined, plain)


@given(data=st.data(), top_p=float32s(1e-3, 1.0), temperature=float32s(0.1, 5.0))
def test_nucleus_weights(data, top_p, temperature):
    """The nucleus keeps the most likely token, keeps probability mass >= top_p, and keeps no
    token after the mass before it reached top_p."""
    logits = data.draw(arrays((2, 5), -5.0, 5.0))
    weights = np.asarray(nucleus_weights(jnp.asarray(logits), top_p, temperature), np.float64)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits) / temperature, axis=-1), np.float64)
    assert np.all(weights >= 0.0) and np.all(weights <= probs + 1e-7)
    rows = np.arange(2)
    assert np.all(weights[rows, probs.argmax(-1)] > 0)
    assert np.all(weights.sum(-1) >= min(top_p, 1.0) - 1e-5)


@given(
    defect=st.sampled_from(("integer dtype", "fractional count", "bad kind")),
)
def test_hutchinson_probes_check_their_input(defect):
    arguments = dict(
        key=typed_key(0), shape=(2, 3), num_probes=2, kind="rademacher", dtype=jnp.float32
    )
    exception, name = (
        ValueError,
        {"integer dtype": "dtype", "fractional count": "num_probes", "bad kind": "kind"}[defect],
    )
    if defect == "integer dtype":
        arguments["dtype"], exception = jnp.int32, TypeError
    elif defect == "fractional count":
        arguments["num_probes"] = 1.5
    else:
        arguments["kind"] = "sobol"
    with raises_naming(exception, name):
        hutchinson_probes(**arguments)


class _PairedFlow:
    """A neural ODE on paired data: encode to 3 dimensions, decode the first 2."""

    def encode(self, x):
        return jnp.tile(x[:, :1], (1, 3))

    def decode(self, z):
        return z[..., :2]

    def __call__(self, z, t):
        return -z


@fewer_examples(2)
@given(batch=batch_sizes, grid=st.sampled_from(((0.0, 1.0), (0.0, 0.5, 1.0))), data=st.data())
def test_ode_predict_shapes(batch, grid, data):
    x = jnp.asarray(data.draw(arrays((batch, 4))))
    y = jax.jit(lambda v: ode_predict(_PairedFlow(), v, time_grid=grid, step_size=0.25))(x)
    assert y.shape == ((len(grid),) if len(grid) > 2 else ()) + (batch, 2)
    assert_finite(y)
