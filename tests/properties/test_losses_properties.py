"""Properties of the training losses: conditional flow matching (Euclidean and Riemannian),
generator matching with its Bregman divergences, the training-time distributions and the
simulation-free neural ODE helpers."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.losses import (
    REGRESSION_TARGETS,
    TIME_DISTRIBUTIONS,
    cfm_loss,
    cfm_loss_per_sample,
    check_pairs,
    flow_bregman,
    generator_matching_loss,
    jump_bregman,
    riemannian_cfm_loss,
    sample_time,
    simfree_node_times,
)
from flowjax.manifolds import FlatTorus, Sphere
from flowjax.paths import (
    AffineProbPath,
    CondOTScheduler,
    CosineScheduler,
    GeodesicProbPath,
    PolynomialScheduler,
    jump,
)

from .strategies import (
    arrays,
    assert_finite,
    batch_sizes,
    below_one_floats,
    event_shapes,
    fewer_examples,
    float32s,
    float_dtypes,
    raises_naming,
    seeds,
    times,
    typed_key,
)

SCHEDULERS = {
    "condot": CondOTScheduler(),
    "poly2": PolynomialScheduler(2.0),
    "cosine": CosineScheduler(),
}


def _model(x, t):
    return jnp.tanh(x) * (1.0 + t.reshape(t.shape + (1,) * (x.ndim - 1)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _cfm(scheduler, prediction, x_0, x_1, t):
    path = AffineProbPath(scheduler)
    per_sample = cfm_loss_per_sample(_model, path, x_0, x_1, t, prediction=prediction)
    target = REGRESSION_TARGETS[prediction](path.sample(x_0, x_1, t))
    oracle = cfm_loss_per_sample(lambda x, s: target, path, x_0, x_1, t, prediction=prediction)
    return per_sample, oracle


@given(
    scheduler=st.sampled_from(tuple(SCHEDULERS)),
    prediction=st.sampled_from(tuple(REGRESSION_TARGETS)),
    batch=batch_sizes,
    event=event_shapes,
    dtype=float_dtypes,
    data=st.data(),
)
def test_cfm_loss_is_non_negative_and_zero_for_the_target(
    scheduler, prediction, batch, event, dtype, data
):
    """The per-sample loss has shape (B,) (also for B = 0), is >= 0 and finite, and is 0 for
    a model that returns the regression target."""
    shape = (batch, *event)
    x_0 = jnp.asarray(data.draw(arrays(shape)), dtype)
    x_1 = jnp.asarray(data.draw(arrays(shape)), dtype)
    t = jnp.asarray(data.draw(times(batch)))
    per_sample, oracle = _cfm(SCHEDULERS[scheduler], prediction, x_0, x_1, t)
    assert per_sample.shape == oracle.shape == (batch,)
    assert_finite(per_sample)
    assert np.all(np.asarray(per_sample) >= 0.0)
    np.testing.assert_allclose(oracle, 0.0, atol=1e-6)


@given(batch=batch_sizes, event=st.sampled_from(((2,), (0,))))
def test_cfm_loss_refuses_an_empty_mean(batch, event):
    """The batch mean per coordinate needs at least one sample and one coordinate."""
    x = np.zeros((batch, *event), np.float32)
    t = np.full((batch,), 0.5, np.float32)
    path = AffineProbPath(CondOTScheduler())
    if batch and event[0]:
        assert float(cfm_loss(_model, path, x, x, t)) >= 0.0
    else:
        with raises_naming(ValueError, "x_1"):
            cfm_loss(_model, path, x, x, t)


@given(defect=st.sampled_from(("output shape", "prediction", "integer data", "t length")))
def test_cfm_loss_checks_its_input(defect):
    x, t, model, options = np.ones((3, 2), np.float32), np.full((3,), 0.5, np.float32), _model, {}
    exception, argument = (
        ValueError,
        {
            "output shape": "model",
            "prediction": "prediction",
            "integer data": "x_1",
            "t length": "t",
        }[defect],
    )
    x_1 = x
    if defect == "output shape":
        model = lambda y, s: y[:, :1]
    elif defect == "prediction":
        options = {"prediction": "score"}
    elif defect == "integer data":
        x_1, exception = np.ones((3, 2), np.int32), TypeError
    else:
        t = np.full((4,), 0.5, np.float32)
    with raises_naming(exception, argument):
        cfm_loss(model, AffineProbPath(CondOTScheduler()), x, x_1, t, **options)


@functools.partial(jax.jit, static_argnums=(1, 2, 4))
def _sample_time(key, batch_size, distribution, t_max, dtype):
    return sample_time(key, batch_size, distribution=distribution, t_max=t_max, dtype=dtype)


@given(
    distribution=st.sampled_from(TIME_DISTRIBUTIONS),
    batch_size=st.sampled_from((0, 1, 5)),
    t_max=st.one_of(st.just(1.0), float32s(0.01, 1.0)),
    dtype=float_dtypes,
    seed=seeds,
)
def test_sample_time(distribution, batch_size, t_max, dtype, seed):
    t = _sample_time(typed_key(seed), batch_size, distribution, jnp.float32(t_max), dtype)
    assert t.shape == (batch_size,) and t.dtype == dtype
    values = np.asarray(t, np.float64)
    assert np.all((values >= 0.0) & (values <= t_max))


@given(
    argument=st.sampled_from(("batch_size", "t_max", "distribution", "dtype")),
    bad=st.integers(0, 2),
)
def test_sample_time_checks_its_input(argument, bad):
    arguments = dict(
        key=typed_key(0), batch_size=3, distribution="uniform", t_max=1.0, dtype=jnp.float32
    )
    arguments[argument] = {
        "batch_size": (-1, 2.0, True),
        "t_max": (0.0, 1.5, float("nan")),
        "distribution": ("normal", "", "Uniform"),
        "dtype": (jnp.int32, jnp.bool_, jnp.uint8),
    }[argument][bad]
    exception = TypeError if argument == "dtype" else ValueError
    with raises_naming(exception, argument):
        sample_time(**arguments)


MANIFOLD_PATHS = {
    "S2": GeodesicProbPath(CondOTScheduler(), Sphere(2)),
    "T2": GeodesicProbPath(PolynomialScheduler(2.0), FlatTorus(2)),
}


@functools.partial(jax.jit, static_argnums=0)
def _riemannian_losses(path, x_0, x_1, t):
    target = path.sample(x_0, x_1, t).dx_t
    model_loss = riemannian_cfm_loss(lambda x, s: jnp.cos(x) * s[:, None], path, x_0, x_1, t)
    oracle_loss = riemannian_cfm_loss(lambda x, s: target, path, x_0, x_1, t)
    return model_loss, oracle_loss


@fewer_examples(2)
@given(manifold=st.sampled_from(tuple(MANIFOLD_PATHS)), seed=seeds, data=st.data())
def test_riemannian_cfm_loss_is_non_negative_and_zero_for_the_target(manifold, seed, data):
    batch = 3
    path = MANIFOLD_PATHS[manifold]
    k_0, k_1 = jax.random.split(typed_key(seed))
    x_0 = path.manifold.random_base(k_0, (batch,))
    x_1 = path.manifold.random_base(k_1, (batch,))
    t = jnp.asarray(data.draw(times(batch)))
    loss, oracle = _riemannian_losses(path, x_0, x_1, t)
    assert loss.shape == oracle.shape == ()
    assert float(loss) >= 0.0
    assert_finite(loss)
    np.testing.assert_allclose(oracle, 0.0, atol=1e-6)


EDGES = jump.bin_edges(-3.0, 3.0, 6)


class GeneratorOutput(NamedTuple):
    """What a generator network returns (as `flowjax.models.GeneratorOutput`)."""

    velocity: jax.Array
    scaled_rate: jax.Array
    logits: jax.Array


def _generator_model(x, t):
    scale = t.reshape(t.shape + (1,) * (x.ndim - 1))
    return GeneratorOutput(
        velocity=jnp.sin(x) * scale,
        scaled_rate=jax.nn.softplus(x),
        logits=jnp.cos(x[..., None] * jnp.arange(1.0, 7.0)),
    )


@jax.jit
def _generator_matching(x_0, x_1, t, rate, logits):
    probs = jax.nn.softmax(logits, -1)
    return (
        generator_matching_loss(_generator_model, x_0, x_1, t, edges=EDGES),
        flow_bregman(x_0, x_1),
        jump_bregman(rate, jnp.zeros_like(logits), 2.0 * rate, probs),
        jump_bregman(rate, logits, rate, probs),
    )


@given(batch=st.sampled_from((0, 3)), data=st.data())
def test_generator_matching_loss_and_bregman_divergences(batch, data):
    """The flow and jump Bregman divergences are >= 0 and vanish at equality; the loss is
    finite and >= 0 for t in [0, 1), and an empty batch is refused."""
    x_0 = jnp.asarray(data.draw(arrays((batch, 2))))
    x_1 = jnp.asarray(data.draw(arrays((batch, 2))))
    t = jnp.asarray(data.draw(times(batch, below_one_floats)))
    if batch == 0:
        with raises_naming(ValueError, "x_1"):
            generator_matching_loss(_generator_model, x_0, x_1, t, edges=EDGES)
        return
    rate = jnp.asarray(data.draw(arrays((batch, 2), 0.01, 3.0)))
    logits = jnp.asarray(data.draw(arrays((batch, 2, 6))))
    loss, flow, jump_divergence, jump_at_equality = _generator_matching(x_0, x_1, t, rate, logits)
    assert loss.shape == () and float(loss) >= -1e-6
    assert_finite(loss)
    assert np.all(np.asarray(flow) >= 0.0)
    assert np.all(np.asarray(jump_divergence) >= -1e-6)
    np.testing.assert_allclose(jump_at_equality, 0.0, atol=1e-5)


@given(data=st.data())
def test_generator_matching_loss_refuses_t_one(data):
    """The CondOT jump rates are singular at t = 1: a concrete t = 1 is refused naming t."""
    x = jnp.ones((3, 2))
    t = data.draw(times(3, st.sampled_from((0.5, 1.0))).filter(lambda v: v.max() == 1.0))
    with raises_naming(ValueError, "t"):
        generator_matching_loss(_generator_model, x, x, t, edges=EDGES)


@given(batch_size=st.sampled_from((0, 1, 4)), zero_probability=float32s(0.0, 1.0), seed=seeds)
def test_simfree_node_times(batch_size, zero_probability, seed):
    t = simfree_node_times(typed_key(seed), batch_size, zero_probability)
    assert t.shape == (batch_size,)
    values = np.asarray(t)
    assert np.all((values >= 0.0) & (values < 1.0))
    if zero_probability == 1.0:
        assert np.all(values == 0.0)


@given(
    n=st.sampled_from((1, 3)),
    defect=st.sampled_from(("none", "count", "label dtype", "label range", "label shape")),
)
def test_check_pairs(n, defect):
    x, y, num_classes = np.zeros((n, 2)), np.zeros((n,), np.int32), 3
    if defect == "none":
        check_pairs(x, y, num_classes)
        return
    if defect == "count":
        y = np.zeros((n + 1,), np.int32)
    elif defect == "label dtype":
        y = np.zeros((n,), np.float32)
    elif defect == "label range":
        y = np.full((n,), 3, np.int32)
    else:
        y = np.zeros((n, 1), np.int32)
    with raises_naming(ValueError, "abels" if defect != "count" else "targets"):
        check_pairs(x, y, num_classes)
