"""Properties of the infinite-mask primitives: the three-branch transition, the sampler with
eps, the SDTT loss, the repeated-token language and the exact one-step validity."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax import losses, metrics, paths, solvers
from flowjax.data.languages import RepeatedTokenLanguage

from .strategies import fewer_examples, float32s, seeds


@given(float32s(0.0, 0.999), float32s(0.0, 1.0))
def test_transition_is_a_distribution_that_merges_into_the_masked_models(kappa_t, fraction):
    kappa_s = kappa_t + (1.0 - kappa_t) * max(fraction, 1e-3)
    reveal, keep, redraw = (float(p) for p in solvers.infinite_mask_transition(kappa_t, kappa_s))
    for p in (reveal, keep, redraw):
        assert -1e-6 <= p <= 1 + 1e-6
    assert abs(reveal + keep + redraw - 1.0) < 1e-5
    assert abs(keep + redraw - (1 - kappa_s) / (1 - kappa_t)) < 1e-5


def _table_model(vocab: int, seed: int):
    """Logits (V + 1,) per position from a random table indexed by the token and eps's sign."""
    table = jax.random.normal(jax.random.key(seed), (vocab + 1, 2, vocab + 1))
    return lambda x, t, eps: table[x, (eps[..., 0] > 0).astype(jnp.int32)]


@fewer_examples(5)
@given(st.integers(2, 5), st.integers(1, 4), st.integers(1, 3), st.integers(1, 9), seeds,
       st.booleans())
def test_infinite_mask_sampler_ends_with_data_tokens(vocab, length, batch, steps, seed, fixed):
    path = paths.MixtureDiscreteProbPath(
        paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(vocab + 1)
    )
    model = _table_model(vocab, seed)
    posterior = lambda x, t, eps: path.posterior_logits(model(x, t, eps), x, t)  # noqa: E731
    draw = lambda key, shape: jax.random.uniform(key, (*shape, 2), minval=-1.0)  # noqa: E731
    x = solvers.masked_diffusion_sample(
        jax.random.key(seed), posterior, jnp.full((batch, length), vocab), path,
        step_size=1.0 / steps, draw_noise=draw, fixed_noise=fixed, reuse_unchanged=True,
    )
    assert x.shape == (batch, length) and x.dtype == jnp.int32
    assert int(x.min()) >= 0 and int(x.max()) < vocab


SDTT_VOCAB, SDTT_LENGTH = 4, 3
SDTT_PATH = paths.MixtureDiscreteProbPath(
    paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(SDTT_VOCAB + 1)
)


@jax.jit
def _sdtt_losses(student, teacher, x_t, keys, times, dt):
    """The SDTT loss of two tables of logits (token -> logits), and of the student with itself
    for one teacher step; one compiled program for every example."""
    fn = lambda table: lambda x, t: SDTT_PATH.posterior_logits(table[x], x, t)  # noqa: E731
    loss = losses.sdtt_loss(keys, fn(student), fn(teacher), SDTT_PATH, x_t, times, dt)
    same = losses.sdtt_loss(
        keys, fn(student), fn(student), SDTT_PATH, x_t, times, dt, teacher_steps=1
    )
    return loss, same


@given(seeds, float32s(0.0, 0.9), float32s(0.01, 0.5))
def test_sdtt_loss_is_a_non_negative_kl(seed, t, dt):
    v = SDTT_VOCAB + 1
    student, teacher = (jax.random.normal(jax.random.key(seed + i), (v, v)) for i in (1, 2))
    x_t = jnp.asarray(np.random.default_rng(seed).integers(0, v, (3, SDTT_LENGTH)))
    keys = jax.random.split(jax.random.key(seed), 3)
    loss, same = _sdtt_losses(student, teacher, x_t, keys, jnp.full((3,), t), jnp.float32(dt))
    assert np.isfinite(float(loss)) and float(loss) >= -1e-6
    assert abs(float(same)) < 1e-5


@given(st.integers(2, 4), st.integers(1, 4))
def test_repeated_token_language_sums_to_one(vocab, length):
    lang = RepeatedTokenLanguage(vocab, length)
    every = np.asarray(list(itertools.product(range(vocab), repeat=length)), np.int32)
    p = np.exp(lang.log_prob(every))
    assert abs(p.sum() - 1.0) < 1e-12
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    assert abs(entropy - lang.entropy) < 1e-12


@given(st.integers(2, 4), st.integers(1, 3), seeds)
def test_independent_validity_equals_the_enumerated_probability(vocab, length, seed):
    probs = np.random.default_rng(seed).dirichlet(np.ones(vocab), size=length)
    every = itertools.product(range(vocab), repeat=length)
    brute = sum(
        np.prod([probs[i, s[i]] for i in range(length)]) for s in every if len(set(s)) == 1
    )
    assert abs(float(metrics.independent_validity(probs)) - brute) < 1e-12
