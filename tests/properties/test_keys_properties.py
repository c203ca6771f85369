"""Every random function of flowjax takes one PRNG key: a typed key (`jax.random.key`) or a raw
uint32 key (`jax.random.PRNGKey`), with the same result for the same seed; anything else (a
float or int array, a key array holding several keys, a Python int) is refused with a message
naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.categorical import sample_categorical
from flowjax.losses import discrete_elbo, sample_time, simfree_node_times
from flowjax.manifolds import Euclidean, FlatTorus, Sphere
from flowjax.paths import (
    CondOTScheduler,
    GaussianMixture,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    MixtureJumpGenerator,
    UniformSource,
    jump,
)
from flowjax.solvers import (
    BinnedJump,
    FlowDivergenceSampler,
    Generator,
    autoregressive_sample,
    discrete_sample,
    generator_sample,
    hutchinson_probes,
    masked_diffusion_sample,
    ode_log_likelihood,
    ode_sample,
    standard_normal_log_density,
)

from .strategies import NOT_KEYS, fewer_examples, raises_naming, raw_key, seeds, typed_key

MIXTURE = MixtureDiscreteProbPath(CondOTScheduler(), UniformSource(4))
MASKED = MixtureDiscreteProbPath(CondOTScheduler(), MaskSource(4))
TOKENS = jnp.asarray([[0, 1, 2], [3, 2, 1]])
HALF = jnp.asarray([0.5, 0.5])
POINTS = jnp.asarray([[0.5, -1.0], [2.0, 0.0]])


def _logits(x, t):
    return jnp.cos(x[..., None] * jnp.arange(1.0, 5.0) + jnp.mean(t))


def _decode(tokens, cache):
    return jnp.sin(tokens[..., None] * jnp.arange(1.0, 5.0)), cache


def _generator(x, t):
    return Generator(
        velocity=-x, jump_rate=jnp.ones_like(x), jump_target=lambda k: jnp.zeros_like(x)
    )


RANDOM_CALLS = {
    "sample_categorical": lambda key: sample_categorical(key, jnp.ones((2, 3))),
    "MixtureDiscreteProbPath.sample": lambda key: MIXTURE.sample(key, TOKENS, TOKENS[::-1], HALF),
    "MetricInducedProbPath.sample": lambda key: MetricInducedProbPath(4).sample(
        key, TOKENS, TOKENS, HALF
    ),
    "UniformSource.sample": lambda key: UniformSource(4).sample(key, (2, 3)),
    "discrete_sample": lambda key: discrete_sample(key, _logits, TOKENS, MIXTURE),
    "masked_diffusion_sample": lambda key: masked_diffusion_sample(
        key, _logits, jnp.full((2, 3), 3), MASKED
    ),
    "autoregressive_sample": lambda key: autoregressive_sample(
        key, _decode, None, TOKENS[:, :1], 2
    ),
    "discrete_elbo": lambda key: discrete_elbo(key, _logits, MIXTURE, TOKENS, num_time_samples=2),
    "generator_sample": lambda key: generator_sample(key, _generator, POINTS),
    "BinnedJump": lambda key: BinnedJump(jnp.zeros((2, 3)), -1.0, 1.0)(key),
    "sample_time": lambda key: sample_time(key, 3),
    "simfree_node_times": lambda key: simfree_node_times(key, 3, 0.5),
    "Sphere.random_base": lambda key: Sphere(2).random_base(key, (2,)),
    "FlatTorus.random_base": lambda key: FlatTorus(2).random_base(key, (2,)),
    "Euclidean.random_base": lambda key: Euclidean(2).random_base(key, (2,)),
    "GaussianMixture.sample": lambda key: GaussianMixture.isotropic(
        [0.5, 0.5], [[0.0], [1.0]], 1.0
    ).sample(key, 3),
    "MixtureJumpGenerator.sample_target": lambda key: MixtureJumpGenerator(
        GaussianMixture.isotropic([1.0], [[0.0]], 1.0)
    ).sample_target(key, POINTS[:, :1], 0.5),
    "condot_jump_sample": lambda key: jump.condot_jump_sample(key, POINTS, 0.5),
    "hutchinson_probes": lambda key: hutchinson_probes(key, (2, 2), 2, "gaussian", jnp.float32),
    "ode_log_likelihood": lambda key: ode_log_likelihood(
        lambda x, t: -x, POINTS, standard_normal_log_density, divergence="hutchinson", key=key
    ),
    "ode_sample with a refiner": lambda key: ode_sample(
        lambda x, t: -x, POINTS, refiner=FlowDivergenceSampler(scale=0.1), key=key, step_size=0.5
    ),
}
calls = st.sampled_from(tuple(RANDOM_CALLS))


@fewer_examples(5)
@given(name=calls, seed=seeds)
def test_raw_and_typed_keys_give_the_same_draws(name, seed):
    typed = RANDOM_CALLS[name](typed_key(seed))
    raw = RANDOM_CALLS[name](raw_key(seed))
    for a, b in zip(jax.tree.leaves(typed), jax.tree.leaves(raw), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@given(name=calls, not_a_key=st.sampled_from(tuple(NOT_KEYS)))
def test_anything_but_one_key_is_refused(name, not_a_key):
    with raises_naming((TypeError, ValueError), "key"):
        RANDOM_CALLS[name](NOT_KEYS[not_a_key]())
