"""The text transformer, the masked-diffusion and autoregressive samplers and objectives, checked
against known answers: a naive attention, the causal property, KV-cache decoding against the
full pass, rotary invariances, and, on a tiny language enumerated exactly, the masked ELBO of the
exact posterior against -log p(x) and the samplers' distributions against the data's."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import losses, paths, solvers
from flowjax.models import TextTransformer
from flowjax.models.attention import apply_rotary, attention

V, L = 3, 3  # the enumerated language: every sequence of L tokens in [0, V)
SEQUENCES = np.array(list(itertools.product(range(V), repeat=L)), np.int32)  # (27, 3)
Q = np.random.default_rng(0).dirichlet(np.full(len(SEQUENCES), 0.7))  # p(x) of each sequence
MASK = V


def naive_attention(q, k, v, causal):
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if causal:
        logits = jnp.where(jnp.tril(jnp.ones(logits.shape[-2:], bool)), logits, -jnp.inf)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_the_naive_einsum(causal):
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 7, 4, 8))
    ours, naive = jax.jit(
        lambda q, k, v: (attention(q, k, v, causal=causal), naive_attention(q, k, v, causal))
    )(q, k, v)
    np.testing.assert_allclose(ours, naive, atol=1e-6)


def test_rotary_keeps_norms_and_depends_on_relative_position_only():
    q, k = jax.random.normal(jax.random.key(1), (2, 1, 1, 1, 16))
    rotate = lambda x, m: apply_rotary(x, jnp.asarray([m]))[0, 0, 0]  # noqa: E731
    np.testing.assert_allclose(jnp.linalg.norm(rotate(q, 5)), jnp.linalg.norm(q), rtol=1e-6)
    scores = [jnp.dot(rotate(q, m + 3), rotate(k, m)) for m in (0, 4, 11)]
    np.testing.assert_allclose(scores, scores[0], rtol=1e-5)
    assert abs(float(jnp.dot(rotate(q, 3), rotate(k, 0)) - jnp.dot(rotate(q, 5), rotate(k, 0)))) > 1e-3


@pytest.fixture(scope="module")
def causal_model():
    """A tiny causal transformer with its zero-initialised parts perturbed (so that every path
    of the network matters)."""
    model = TextTransformer(
        (12,), vocab_size=11, hidden_dim=32, depth=2, num_heads=4, cond_dim=16, causal=True,
        time_conditioning=False, rngs=nnx.Rngs(0),
    )
    key = jax.random.key(2)
    for i, block in enumerate(model.blocks):
        block.modulation.kernel[...] = 0.1 * jax.random.normal(
            jax.random.fold_in(key, i), block.modulation.kernel.shape
        )
    model.head.kernel[...] = jax.random.normal(key, model.head.kernel.shape)
    return model


forward = nnx.jit(lambda model, x: model(x))  # one compiled program per input shape
decode = nnx.jit(lambda model, x, cache: model.decode(x, cache))


def test_fresh_transformer_outputs_zero_logits():
    model = TextTransformer((8,), vocab_size=7, hidden_dim=16, depth=1, num_heads=2,
                            cond_dim=8, rngs=nnx.Rngs(0))
    x = jnp.zeros((2, 8), jnp.int32)
    logits = nnx.jit(lambda model, x, t: model(x, t))(model, x, jnp.asarray([0.1, 0.9]))
    np.testing.assert_array_equal(logits, 0.0)


def test_causal_logits_at_i_ignore_later_tokens(causal_model):
    x = jax.random.randint(jax.random.key(3), (2, 10), 0, 11)
    changed = x.at[:, 6:].set((x[:, 6:] + 1) % 11)
    full, other = forward(causal_model, x), forward(causal_model, changed)
    np.testing.assert_array_equal(full[:, :6], other[:, :6])
    assert float(jnp.abs(full[:, 6:] - other[:, 6:]).max()) > 1e-2


def test_kv_cache_decoding_equals_the_full_pass(causal_model):
    x = jax.random.randint(jax.random.key(4), (2, 10), 0, 11)
    logits, cache = decode(causal_model, x[:, :4], causal_model.init_cache(2))
    steps = [logits]
    for i in range(4, 10):
        logits, cache = decode(causal_model, x[:, i : i + 1], cache)
        steps.append(logits)
    assert int(cache.length) == 10
    np.testing.assert_allclose(
        jnp.concatenate(steps, axis=1), forward(causal_model, x), atol=2e-5
    )


def test_vector_input_is_the_embedding_of_one_hot_tokens(causal_model):
    x = jax.random.randint(jax.random.key(5), (2, 6), 0, 11)
    np.testing.assert_allclose(
        forward(causal_model, jax.nn.one_hot(x, 11)), forward(causal_model, x), rtol=1e-5,
        atol=1e-5,
    )


def test_bad_token_input_is_refused_before_compiling(causal_model):
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 11\)"):
        causal_model(jnp.full((1, 4), 11, jnp.int32))
    with pytest.raises(ValueError, match="longer than the model's maximum length"):
        causal_model(jnp.zeros((1, 13), jnp.int32))
    with pytest.raises(ValueError, match="longer than the KV cache"):
        causal_model.decode(jnp.zeros((1, 5), jnp.int32), causal_model.init_cache(1, 4))
    with pytest.raises(ValueError, match=r"\(B, L, vocab_size=11\)"):
        causal_model(jnp.zeros((1, 4, 10)))


# The enumerated language: exact posteriors --------------------------------------------------


def exact_posterior_logits(x: jax.Array, t: jax.Array | None = None) -> jax.Array:
    """log p(x_1^i = v | unmasked tokens of x) for every position (B, L, V + 1): the exact
    posterior of the enumerated language (mask logit -inf, unmasked positions one-hot), which
    does not depend on t."""
    q, seqs = jnp.asarray(Q), jnp.asarray(SEQUENCES)
    consistent = jnp.all((x[:, None, :] == MASK) | (x[:, None, :] == seqs[None]), axis=-1)
    weights = jnp.where(consistent, q[None], 0.0)  # (B, 27)
    one_hot = jax.nn.one_hot(seqs, V + 1)  # (27, L, V + 1)
    probs = jnp.einsum("bs,slv->blv", weights, one_hot)
    return jnp.log(probs / probs.sum(-1, keepdims=True))


def total_variation(samples: np.ndarray) -> float:
    index = (samples * V ** np.arange(L)[::-1]).sum(axis=1)
    counts = np.bincount(index, minlength=len(SEQUENCES)) / len(samples)
    return 0.5 * float(np.abs(counts - Q).sum())


MASK_PATH = paths.MixtureDiscreteProbPath(
    paths.MaskedDiffusionScheduler("cosine", 0.0, 0.0), paths.MaskSource(V + 1)
)


def test_masked_elbo_of_the_exact_posterior_is_the_log_likelihood():
    """With the exact posterior, the continuous-time masked ELBO is tight: it averages, over the
    orders in which tokens are revealed, the exact chain rule -log p(x) (MDLM, section 3.3)."""
    copies = 4_000
    x = jnp.asarray(np.repeat(SEQUENCES, copies // len(SEQUENCES) + 1, axis=0)[:copies])
    elbo = jax.jit(
        lambda key: losses.discrete_elbo(
            key, exact_posterior_logits, MASK_PATH, x, num_time_samples=16
        )
    )(jax.random.key(6))
    index = (np.asarray(x) * V ** np.arange(L)[::-1]).sum(axis=1)
    gap = np.asarray(elbo) - np.log(Q[index])
    assert abs(gap.mean()) < 4 * gap.std() / np.sqrt(copies) + 1e-3, gap.mean()


@pytest.mark.parametrize("steps, reuse", [(64, True), (128, False)])
def test_ancestral_sampler_with_the_exact_posterior_draws_the_language(steps, reuse):
    n = 20_000
    x0 = jnp.full((n, L), MASK, jnp.int32)
    sample = jax.jit(
        lambda key: solvers.masked_diffusion_sample(
            key, exact_posterior_logits, x0, MASK_PATH, step_size=1.0 / steps,
            reuse_unchanged=reuse, return_nfe=True,
        )
    )
    x, nfe = sample(jax.random.key(7))
    assert int(nfe) == steps  # a batch of 20,000 changes at every step
    # Sampling noise of TV over 27 cells at n = 20,000 is about 0.01.
    assert total_variation(np.asarray(x)) < 0.02
    assert int(jnp.sum(x == MASK)) == 0


@pytest.mark.slow
def test_unchanged_steps_skip_the_network_and_keep_the_distribution():
    """Single sequences, 256 steps: most steps reveal nothing, so reusing the candidates calls
    the network at most L + 1 times (once per reveal, plus the first step) instead of 256, and
    the samples still follow the language (total variation on the enumeration)."""
    n = 20_000
    x0 = jnp.full((1, L), MASK, jnp.int32)

    def one(key, reuse):
        x, nfe = solvers.masked_diffusion_sample(
            key, exact_posterior_logits, x0, MASK_PATH, step_size=1 / 256,
            reuse_unchanged=reuse, return_nfe=True,
        )
        return x[0], nfe

    x, nfe = one(jax.random.key(8), False)
    assert int(nfe) == 256
    x, nfe = jax.jit(jax.vmap(lambda key: one(key, True)))(jax.random.split(jax.random.key(9), n))
    assert int(nfe.max()) <= L + 1 and float(nfe.mean()) < 0.05 * 256
    assert total_variation(np.asarray(x)) < 0.02


def test_autoregressive_sampler_with_exact_conditionals_draws_the_language():
    """A 'model' whose next-token logits are the exact conditionals of the language, decoded
    with a cache that holds the prefix: samples match p(x)."""
    q, seqs = jnp.asarray(Q), jnp.asarray(SEQUENCES)
    bos = V

    def decode(tokens, cache):
        prefix, length = cache
        prefix = jax.lax.dynamic_update_slice(prefix, tokens, (0, length))
        length = length + tokens.shape[1]
        logits = []
        for j in range(tokens.shape[1]):  # the distribution of the token after position j
            seen = length - tokens.shape[1] + j  # tokens so far, BOS included
            data = prefix[:, 1:]  # drop BOS
            known = jnp.arange(L)[None, :] < seen
            consistent = jnp.all(~known[:, None] | (data[:, None, :] == seqs[None]), -1)
            w = jnp.where(consistent, q[None], 0.0)
            nxt = jnp.einsum("bs,sv->bv", w, jax.nn.one_hot(seqs[:, jnp.minimum(seen, L - 1)], V))
            logits.append(jnp.log(nxt / nxt.sum(-1, keepdims=True)))
        return jnp.stack(logits, 1), (prefix, length)

    n = 20_000
    cache = (jnp.zeros((n, L + 1), jnp.int32), jnp.zeros((), jnp.int32))
    x = jax.jit(
        lambda key: solvers.autoregressive_sample(
            key, decode, cache, jnp.full((n, 1), bos, jnp.int32), L
        )
    )(jax.random.key(9))
    assert total_variation(np.asarray(x)) < 0.02


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    logits = jnp.log(jnp.asarray([[0.05, 0.3, 0.15, 0.5]]))
    np.testing.assert_allclose(solvers.nucleus_weights(logits, 0.75), [[0, 0.3, 0, 0.5]], 1e-6)
    np.testing.assert_allclose(solvers.nucleus_weights(logits, 0.9), [[0, 0.3, 0.15, 0.5]], 1e-6)
    np.testing.assert_allclose(solvers.nucleus_weights(logits, 1.0), jnp.exp(logits), 1e-6)


# Metrics ---------------------------------------------------------------------------------------


def test_perplexities_and_unigram_entropy():
    from flowjax import metrics

    log_p = np.log([0.5, 0.125])  # two sequences of 3 tokens
    result = metrics.perplexity_metrics(log_p, 3)
    np.testing.assert_allclose(result["nll_nats"], -np.mean(log_p))
    np.testing.assert_allclose(result["perplexity"], np.exp(-np.mean(log_p) / 3))
    np.testing.assert_allclose(result["nll_bits_per_token"], -np.mean(np.log2([0.5, 0.125])) / 3)
    assert "elbo_perplexity" in metrics.perplexity_metrics(log_p, 3, prefix="nelbo")
    np.testing.assert_allclose(metrics.bits_per_byte(np.log([0.25, 0.25]), [1, 1]), 2.0)
    np.testing.assert_allclose(
        metrics.unigram_entropy(np.array([[0, 0, 1, 1], [2, 2, 2, 2], [0, 1, 2, 3]])),
        [np.log(2), 0.0, np.log(4)],
        atol=1e-12,
    )
    # The exact judge of the enumerated language scores samples of it at its entropy.
    index = lambda x: (x * V ** np.arange(L)[::-1]).sum(axis=1)  # noqa: E731
    rng = np.random.default_rng(0)
    samples = SEQUENCES[rng.choice(len(SEQUENCES), size=20_000, p=Q)]
    gen = metrics.generative_perplexity(lambda x: np.log(Q[index(x)]), samples, batch_size=4096)
    entropy_per_token = -(Q * np.log(Q)).sum() / L
    assert abs(gen["gen_nll_nats_per_token"] - entropy_per_token) < 0.02
    with pytest.raises(ValueError, match="outside the judge's vocabulary of 2"):
        metrics.generative_perplexity(lambda x: np.zeros(len(x)), samples, judge_vocab_size=2)
