"""Properties of discrete flows: the mixture and metric-induced paths, their rates, the
kinetic-optimal velocities, categorical draws, the discrete losses and the CTMC samplers.

Rate convention (flowjax.paths.discrete): a per-token velocity v[..., y] is the rate of jumping
from the current token x to y; its entry at y = x is minus the sum of the others, so the entries
of every velocity vector sum to zero (each is a column of the rate matrix, whose columns sum to
zero). The kinetic-optimal rate matrices u[..., x, z] hold the rate from z to x: their
off-diagonal entries are non-negative and their columns (axis -2) sum to zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.categorical import sample_categorical
from flowjax.losses import cross_entropy, discrete_elbo, discrete_loss, generalized_kl
from flowjax.paths import (
    CategoricalSource,
    CondOTScheduler,
    KineticOptimalScheduler,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    PolynomialScheduler,
    UniformSource,
    continuity_residual,
    divergence_free_velocity,
    kinetic_optimal_rates,
    kinetic_optimal_velocity,
)
from flowjax.solvers import discrete_sample, masked_diffusion_sample

from .strategies import (
    arrays,
    assert_finite,
    batch_sizes,
    below_one_floats,
    fewer_examples,
    float32s,
    interior_floats,
    raises_naming,
    seeds,
    times,
    tokens,
    typed_key,
    unit_floats,
)

V = 4
PATHS = {
    "mask": MixtureDiscreteProbPath(PolynomialScheduler(2.0), MaskSource(V)),
    "uniform": MixtureDiscreteProbPath(CondOTScheduler(), UniformSource(V)),
    "categorical": MixtureDiscreteProbPath(
        PolynomialScheduler(1.5), CategoricalSource((0.5, 0.0, 0.25, 0.25))
    ),
    "kinetic": MixtureDiscreteProbPath(
        KineticOptimalScheduler.for_source(UniformSource(V)), UniformSource(V)
    ),
    "metric": MetricInducedProbPath(V),
}
TOKEN_EVENTS = ((2,), (1, 3))
paths = st.sampled_from(tuple(PATHS))
token_events = st.sampled_from(TOKEN_EVENTS)
RATE_METHODS = ("conditional_velocity", "divergence_free_velocity", "posterior_to_velocity")


def _rates(path, method, x_t, x_1, logits, t):
    if method == "posterior_to_velocity":
        return path.posterior_to_velocity(logits, x_t, t)
    return getattr(path, method)(x_t, x_1, t)


def _assert_rates(rates, x_t):
    """Off-diagonal rates >= 0 and every velocity vector summing to zero."""
    rates = np.asarray(rates, np.float64)
    current = np.asarray(jax.nn.one_hot(x_t, rates.shape[-1], dtype=bool))
    scale = np.max(np.abs(rates), initial=0.0) + 1.0
    assert np.all(np.where(current, 0.0, rates) >= -1e-6 * scale), rates
    np.testing.assert_allclose(rates.sum(-1), 0.0, atol=1e-5 * scale)


_jitted_rates = jax.jit(_rates, static_argnums=(0, 1))


@functools.partial(jax.jit, static_argnums=0)
def _path_sample(path, key, x_0, x_1, t):
    return path.sample(key, x_0, x_1, t)


@given(name=paths, batch=batch_sizes, event=token_events, seed=seeds, data=st.data())
def test_path_sample_draws_tokens_of_the_path(name, batch, event, seed, data):
    """x_t: int tokens of the vocabulary; on a mixture path each is x_0 or x_1; x_0 at t = 0
    (mixture) and x_1 at t = 1."""
    path = PATHS[name]
    shape = (batch, *event)
    x_0 = jnp.asarray(data.draw(tokens(shape, V)))
    x_1 = jnp.asarray(data.draw(tokens(shape, V)))
    t = jnp.asarray(data.draw(times(batch, st.one_of(st.sampled_from((0.0, 1.0)), unit_floats))))
    x_t = np.asarray(_path_sample(path, typed_key(seed), x_0, x_1, t).x_t)
    assert x_t.shape == shape and np.issubdtype(x_t.dtype, np.integer)
    assert np.all((x_t >= 0) & (x_t < V))
    t_b = np.asarray(t).reshape((batch,) + (1,) * len(event))
    at_end = np.broadcast_to(t_b == 1.0, shape)
    assert np.all(np.where(at_end, x_t == np.asarray(x_1), True))
    if name != "metric":
        assert np.all((x_t == np.asarray(x_0)) | (x_t == np.asarray(x_1)))
        at_start = np.broadcast_to(t_b == 0.0, shape)
        assert np.all(np.where(at_start, x_t == np.asarray(x_0), True))


@functools.partial(jax.jit, static_argnums=0)
def _probs(path, x_1, t):
    return path.probs(x_1, t)


@given(name=paths, batch=batch_sizes, event=token_events, data=st.data())
def test_path_probabilities_are_distributions(name, batch, event, data):
    path = PATHS[name]
    x_1 = data.draw(tokens((batch, *event), V))
    t = data.draw(times(batch))
    probs = np.asarray(_probs(path, x_1, t), np.float64)
    assert probs.shape == (batch, *event, V)
    assert np.all(probs >= 0.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@given(
    name=paths,
    method=st.sampled_from(RATE_METHODS),
    batch=batch_sizes,
    event=token_events,
    data=st.data(),
)
def test_velocities_are_rates(name, method, batch, event, data):
    """Conditional, divergence-free and posterior velocities: non-negative off the diagonal,
    each velocity vector summing to zero, finite for every t in [0, 1)."""
    path = PATHS[name]
    shape = (batch, *event)
    x_t = data.draw(tokens(shape, V))
    x_1 = data.draw(tokens(shape, V))
    logits = data.draw(arrays(shape + (V,), -5.0, 5.0))
    t = data.draw(times(batch, below_one_floats))
    rates = _jitted_rates(path, method, x_t, x_1, logits, t)
    assert rates.shape == shape + (V,)
    assert_finite(rates)
    _assert_rates(rates, x_t)


@functools.partial(jax.jit, static_argnums=0)
def _velocity_and_log_velocity(path, logits, x_t, t):
    return path.posterior_to_velocity(logits, x_t, t), path.posterior_to_log_velocity(
        logits, x_t, t
    )


@given(name=paths, batch=st.sampled_from((1, 3)), data=st.data())
def test_log_velocity_is_the_log_of_the_velocity(name, batch, data):
    """exp(posterior_to_log_velocity) is posterior_to_velocity off the diagonal, 0 on it."""
    path = PATHS[name]
    shape = (batch, 2)
    x_t = data.draw(tokens(shape, V))
    logits = data.draw(arrays(shape + (V,), -5.0, 5.0))
    t = data.draw(times(batch, float32s(0.0, 0.99)))
    rates, log_rates = _velocity_and_log_velocity(path, logits, x_t, t)
    rates = np.asarray(rates, np.float64)
    current = np.asarray(jax.nn.one_hot(x_t, V, dtype=bool))
    expected = np.where(current, 0.0, rates)
    got = np.exp(np.asarray(log_rates, np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@functools.partial(jax.jit, static_argnums=0)
def _continuity_terms(path, target, t):
    """dp_t/dt, u p_t and v p_t over the V states for data token `target`."""
    states = jnp.arange(V)  # one token per state z
    x_1 = jnp.full((V,), target)
    p, dp = jax.jvp(lambda s: path.probs(x_1[:1], s), (t,), (jnp.ones_like(t),))
    flow = path.conditional_velocity(states, x_1, t).T  # (y, z)
    preserving = path.divergence_free_velocity(states, x_1, t).T
    return dp[0], flow @ p[0], preserving @ p[0]


@given(name=paths, target=st.integers(0, V - 2), t=interior_floats)
def test_conditional_velocity_generates_its_path(name, target, t):
    """Continuity: d/dt p_t(y | x_1) = sum_z u_t(y, z | x_1) p_t(z | x_1), and the
    divergence-free velocity leaves p_t unchanged: sum_z v_t(y, z | x_1) p_t(z | x_1) = 0."""
    with jax.enable_x64(True):
        dp, flow, preserving = _continuity_terms(PATHS[name], target, jnp.asarray(t, jnp.float64))
        np.testing.assert_allclose(flow, dp, atol=1e-9)
        np.testing.assert_allclose(preserving, 0.0, atol=1e-9)


@given(
    name=paths,
    method=st.sampled_from(
        RATE_METHODS + ("posterior_to_log_velocity", "probs", "posterior_logits")
    ),
    data=st.data(),
)
def test_discrete_path_methods_are_finite_or_refuse_a_singular_time(name, method, data):
    """At every concrete t in [0, 1] a method returns values without NaN (log-rates and
    posterior logits may be -inf where a rate or a likelihood is 0), or raises a ValueError
    naming t at t = 1, where the rates of the path are infinite."""
    path = PATHS[name]
    x_t, x_1 = np.array([[0, 1, 3]]), np.array([[1, 1, 2]])
    logits = np.linspace(-2.0, 2.0, 3 * V, dtype=np.float32).reshape(1, 3, V)
    t = data.draw(times(1, st.one_of(st.sampled_from((0.0, 1.0)), unit_floats)))
    try:
        if method == "probs":
            out = path.probs(x_1, t)
        elif method in ("posterior_to_log_velocity", "posterior_logits"):
            out = getattr(path, method)(logits, x_t, t)
        else:
            out = _rates(path, method, x_t, x_1, logits, t)
    except ValueError as error:
        assert "t" in str(error) and t[0] == 1.0, str(error)
        return
    out = np.asarray(out)
    assert not np.any(np.isnan(out)) and not np.any(out == np.inf), out


@given(
    name=paths,
    method=st.sampled_from(
        (
            "sample",
            "probs",
            "conditional_velocity",
            "divergence_free_velocity",
            "posterior_logits",
            "posterior_to_velocity",
            "posterior_to_log_velocity",
        )
    ),
    defect=st.sampled_from(("token too large", "negative token", "float tokens", "t length")),
)
def test_discrete_path_methods_check_their_input(name, method, defect):
    """Token ids outside [0, V), floating tokens and a t of the wrong length are refused with a
    message naming the argument, before anything is computed."""
    path = PATHS[name]
    x = np.array([[0, 1, 2], [2, 1, 0]])
    bad = {
        "token too large": (ValueError, np.array([[0, 1, V], [2, 1, 0]])),
        "negative token": (ValueError, np.array([[0, -1, 2], [2, 1, 0]])),
        "float tokens": (TypeError, x.astype(np.float32)),
        "t length": (ValueError, None),
    }
    exception, bad_tokens = bad[defect]
    t = np.array([0.3, 0.6], np.float32) if defect != "t length" else np.full(3, 0.3, np.float32)
    tokens_arg = x if bad_tokens is None else bad_tokens
    logits = np.zeros((2, 3, V), np.float32)
    calls = {
        "sample": ("x_1", lambda: path.sample(typed_key(0), x, tokens_arg, t)),
        "probs": ("x_1", lambda: path.probs(tokens_arg, t)),
        "conditional_velocity": ("x_t", lambda: path.conditional_velocity(tokens_arg, x, t)),
        "divergence_free_velocity": (
            "x_t",
            lambda: path.divergence_free_velocity(tokens_arg, x, t),
        ),
        "posterior_logits": ("x_t", lambda: path.posterior_logits(logits, tokens_arg, t)),
        "posterior_to_velocity": ("x_t", lambda: path.posterior_to_velocity(logits, tokens_arg, t)),
        "posterior_to_log_velocity": (
            "x_t",
            lambda: path.posterior_to_log_velocity(logits, tokens_arg, t),
        ),
    }
    argument, call = calls[method]
    with raises_naming(exception, "t" if defect == "t length" else argument):
        call()


def _probability_vectors(size):
    positive = arrays((size,), 0.05, 1.0)
    return positive.map(lambda w: w / w.sum())


@jax.jit
def _kinetic_optimal(p, dp, weights):
    rates = kinetic_optimal_rates(p, dp, weights)
    return rates, continuity_residual(rates, p, dp), divergence_free_velocity(p)


@given(data=st.data(), size=st.sampled_from((2, 4)), weighted=st.booleans())
def test_kinetic_optimal_rates_generate_any_path(data, size, weighted):
    """For any p > 0 and any dp with sum 0: rates u[x, z] from z to x, non-negative off the
    diagonal, columns summing to zero, solving the continuity equation dp = u p."""
    p = data.draw(_probability_vectors(size))
    raw = data.draw(arrays((size,), -1.0, 1.0))
    dp = raw - raw.mean()
    weights = data.draw(arrays((size,), 0.1, 2.0)) if weighted else None
    rates, residual, preserving = _kinetic_optimal(p, dp, weights)
    rates, preserving = np.asarray(rates, np.float64), np.asarray(preserving, np.float64)
    off = rates - np.diag(np.diag(rates))
    assert np.all(off >= 0.0)
    np.testing.assert_allclose(rates.sum(axis=-2), 0.0, atol=1e-5)
    np.testing.assert_allclose(residual, 0.0, atol=1e-5)
    np.testing.assert_allclose(preserving.sum(axis=-2), 0.0, atol=1e-6)
    np.testing.assert_allclose(preserving @ p, 0.0, atol=1e-6)


@given(
    defect=st.sampled_from(("dp length", "weights length", "scalar p", "zero weights")),
)
def test_kinetic_optimal_rates_check_their_input(defect):
    p, dp, weights = np.array([0.25, 0.75]), np.array([0.1, -0.1]), None
    argument = {
        "dp length": "dp",
        "weights length": "weights",
        "scalar p": "p",
        "zero weights": "weights",
    }[defect]
    if defect == "dp length":
        dp = np.array([0.1, -0.1, 0.0])
    elif defect == "weights length":
        weights = np.ones(3)
    elif defect == "scalar p":
        p = np.float32(0.5)
    else:
        weights = np.zeros(2)
    with raises_naming(ValueError, argument):
        kinetic_optimal_rates(p, dp, weights)


@functools.partial(jax.jit, static_argnums=0)
def _kinetic_optimal_mixture(scheduler, target, t):
    """kappa at 0 and 1, kappa_inverse(kappa_t), and the generic kinetic-optimal velocity of the
    scheduler's mixture path next to the path's own conditional velocity, both (V, V)."""
    path = MixtureDiscreteProbPath(scheduler, UniformSource(V))
    x_1 = jnp.reshape(target, (1,))
    generic = kinetic_optimal_velocity(lambda s: path.probs(x_1, s), jnp.reshape(t, (1,)))
    own = path.conditional_velocity(jnp.arange(V), jnp.full((V,), target), t)
    ends = scheduler(jnp.asarray([0.0, 1.0])).alpha_t
    return ends, scheduler.kappa_inverse(scheduler(t).alpha_t), generic[0], own.T


@given(
    prob=st.sampled_from((0.0, 0.25, 0.6, 0.95)),
    target=st.integers(0, V - 1),
    t=interior_floats,
)
def test_kinetic_optimal_scheduler(prob, target, t):
    """kappa runs from 0 to 1, kappa_inverse inverts it, and on its mixture path the generic
    kinetic-optimal velocity equals the path's conditional velocity (both with tau = p)."""
    scheduler = KineticOptimalScheduler(prob)
    ends, t_again, generic, own = _kinetic_optimal_mixture(scheduler, target, jnp.float32(t))
    np.testing.assert_allclose(ends, [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(t_again, t, atol=1e-4)
    np.testing.assert_allclose(generic, own, rtol=1e-4, atol=1e-5)


_weight_elements = st.one_of(st.just(0.0), float32s(0.0, 1e-30), float32s(0.0, 1e30))


_sample_categorical = jax.jit(sample_categorical, static_argnums=2)


@given(
    size=st.sampled_from((1, 4)),
    dtype=st.sampled_from((jnp.float16, jnp.bfloat16, jnp.float32)),
    seed=seeds,
    data=st.data(),
)
def test_sample_categorical_never_draws_a_zero_weight(size, dtype, seed, data):
    """An index of weight 0 is never drawn (a row of zeros gives 0), for unnormalised weights
    of any scale, in every drawing dtype. Subnormal float32 weights count as 0 (XLA flushes
    them on CPU)."""
    rows = 3
    weights = data.draw(arrays((rows, size), elements=_weight_elements))
    index = np.asarray(_sample_categorical(typed_key(seed), weights, dtype))
    assert index.shape == (rows,) and index.dtype == np.int32
    assert np.all((index >= 0) & (index < size))
    picked = weights[np.arange(rows), index]
    normal = weights >= np.finfo(np.float32).tiny
    assert np.all((picked > 0) | ~normal.any(-1)), (weights, index)


@given(
    defect=st.sampled_from(("no categories", "scalar weights", "integer dtype", "list weights")),
)
def test_sample_categorical_checks_its_input(defect):
    key = typed_key(0)
    if defect == "list weights":
        index = sample_categorical(key, [[0.0, 2.0, 0.0]])
        assert int(index[0]) == 1
        return
    weights, dtype, exception = np.ones((2, 3), np.float32), jnp.float32, ValueError
    if defect == "no categories":
        weights = np.ones((2, 0), np.float32)
    elif defect == "scalar weights":
        weights = np.float32(1.0)
    else:
        dtype = jnp.int32
    with raises_naming(exception, "dtype" if defect == "integer dtype" else "weights"):
        sample_categorical(key, weights, dtype)


@functools.partial(jax.jit, static_argnums=0)
def _discrete_losses(path, key, x_1, t, logits):
    """The generalized KL of `logits` and of a posterior sure of x_1 (one call on the batch
    twice over), at an x_t drawn from the path, and the cross-entropy of `logits`."""
    k_0, k_t = jax.random.split(key)
    x_0 = path.source.sample(k_0, x_1.shape)
    x_t = path.sample(k_t, x_0, x_1, t).x_t
    both = jnp.concatenate([logits, 30.0 * jax.nn.one_hot(x_1, V)])
    twice = lambda v: jnp.concatenate([v, v])
    kl, kl_sure = jnp.split(generalized_kl(path, both, twice(x_1), twice(x_t), twice(t)), 2)
    return kl, kl_sure, cross_entropy(logits, x_1)


@given(name=st.sampled_from(("mask", "metric")), seed=seeds, data=st.data())
def test_discrete_losses_are_non_negative(name, seed, data):
    """The generalized KL and the cross-entropy are >= 0 for any logits, and the generalized KL
    vanishes for a posterior sure of x_1."""
    shape = (3, 2)
    x_1 = jnp.asarray(data.draw(tokens(shape, V - 1 if name == "mask" else V)))
    t = jnp.asarray(data.draw(times(3, float32s(0.0, 0.9))))
    logits = jnp.asarray(data.draw(arrays(shape + (V,), -5.0, 5.0)))
    kl, kl_sure, ce = _discrete_losses(PATHS[name], typed_key(seed), x_1, t, logits)
    kl = np.asarray(kl)
    assert kl.shape == shape
    scale = 1.0 + np.max(np.abs(kl), initial=0.0)
    assert np.all(kl >= -1e-5 * scale), kl
    assert np.all(np.asarray(ce) >= 0.0)
    np.testing.assert_allclose(kl_sure, 0.0, atol=1e-3)


def _logits_model(x, t):
    """Logits (..., V) of tokens x at a scalar t or a t of shape (B,)."""
    t = jnp.reshape(t, jnp.shape(t) + (1,) * (x.ndim + 1 - jnp.ndim(t)))
    return jnp.sin(x[..., None] * jnp.arange(1.0, V + 1.0) + 3.0 * t)


@functools.partial(jax.jit, static_argnums=0)
def _elbo(path, key, x_1):
    return discrete_elbo(key, _logits_model, path, x_1, num_time_samples=2)


@fewer_examples(4)
@given(name=paths, batch=st.sampled_from((0, 3)), seed=seeds, data=st.data())
def test_discrete_loss_and_elbo(name, batch, seed, data):
    """The batch loss of a non-empty batch is finite and >= 0; an empty batch is refused (its
    mean is undefined). The ELBO is <= 0 per sequence, for any batch size."""
    path = PATHS[name]
    x_1 = jnp.asarray(data.draw(tokens((batch, 2), V - 1 if name == "mask" else V)))
    elbo = _elbo(path, typed_key(seed), x_1)
    assert elbo.shape == (batch,)
    assert np.all(np.asarray(elbo) <= 1e-4)
    t = jnp.full((batch,), 0.5)
    if batch == 0:
        with raises_naming(ValueError, "x_t"):
            discrete_loss(_logits_model, path, x_1, x_1, t)
        return
    loss = discrete_loss(_logits_model, path, x_1, x_1, t)
    assert loss.shape == () and float(loss) >= -1e-6
    assert_finite(loss)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _discrete_sample(path, grid, step_size, dtype, intermediates, key, x_init):
    return discrete_sample(
        key,
        _logits_model,
        x_init,
        path,
        time_grid=grid,
        step_size=step_size,
        dtype=dtype,
        return_intermediates=intermediates,
    )


GRIDS = ((0.0, 1.0), (0.0, 0.5, 1.0), (0.25, 0.75))


@fewer_examples(4)
@given(
    name=paths,
    batch=st.sampled_from((0, 3)),
    grid=st.sampled_from(GRIDS),
    step_size=st.sampled_from((None, 0.25)),
    intermediates=st.booleans(),
    dtype=st.sampled_from((jnp.float16, jnp.float32)),
    seed=seeds,
    data=st.data(),
)
def test_discrete_sample_returns_tokens_of_the_vocabulary(
    name, batch, grid, step_size, intermediates, dtype, seed, data
):
    path = PATHS[name]
    x_init = jnp.asarray(data.draw(tokens((batch, 2), V)))
    out = np.asarray(
        _discrete_sample(path, grid, step_size, dtype, intermediates, typed_key(seed), x_init)
    )
    expected = ((len(grid),) if intermediates else ()) + (batch, 2)
    assert out.shape == expected and out.dtype == np.int32
    assert np.all((out >= 0) & (out < V))
    if intermediates:
        np.testing.assert_array_equal(out[0], x_init)


@given(
    defect=st.sampled_from(
        ("descending grid", "token too large", "float tokens", "logits size", "method")
    ),
)
def test_discrete_sample_checks_its_input(defect):
    path, x, model = PATHS["uniform"], np.zeros((2, 2), np.int32), _logits_model
    options, exception, argument = {}, ValueError, None
    if defect == "descending grid":
        options, argument = {"time_grid": (1.0, 0.0)}, "time_grid"
    elif defect == "token too large":
        x, argument = np.full((2, 2), V, np.int32), "x_init"
    elif defect == "float tokens":
        x, exception, argument = np.zeros((2, 2), np.float32), TypeError, "x_init"
    elif defect == "logits size":
        model, argument = (lambda x, t: jnp.zeros(x.shape + (V + 1,))), "logits"
    else:
        options, argument = {"method": "midpoint"}, "method"
    with raises_naming(exception, argument):
        discrete_sample(typed_key(0), model, x, path, **options)


@functools.partial(jax.jit, static_argnums=0)
def _masked_diffusion(step_size, key, x_init):
    return masked_diffusion_sample(key, _logits_model, x_init, PATHS["mask"], step_size=step_size)


@fewer_examples()
@given(
    batch=st.sampled_from((0, 3)),
    step_size=st.sampled_from((None, 0.25)),
    seed=seeds,
    data=st.data(),
)
def test_masked_diffusion_sample_reveals_every_mask(batch, step_size, seed, data):
    x_init = jnp.asarray(data.draw(tokens((batch, 3), V)))
    out = np.asarray(_masked_diffusion(step_size, typed_key(seed), x_init))
    assert out.shape == (batch, 3) and out.dtype == np.int32
    assert np.all((out >= 0) & (out < V - 1))
    unmasked = np.asarray(x_init) != V - 1
    np.testing.assert_array_equal(out[unmasked], np.asarray(x_init)[unmasked])
