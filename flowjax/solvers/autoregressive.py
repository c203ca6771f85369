"""Sampling an autoregressive language model token by token with a key/value cache.

x_i ~ p(x_i | x_<i) for i = 1..L (Bengio et al., 2003; the causal transformer of Radford et al.,
2018): the prompt is read in one pass that fills the cache (prefill), then each new token costs
one pass over one position. Each draw can be restricted to the nucleus (Holtzman et al., 2020,
"The Curious Case of Neural Text Degeneration", section 3.1): the smallest set of tokens whose
probabilities sum to at least `top_p`, renormalised; `temperature` divides the logits first.

The model is any pair of functions over explicit state (no Flax here):
`decode(tokens (B, n), cache) -> (logits (B, n, V), cache)` continuing from the cache's length,
and an empty `cache`, e.g. `flowjax.models.TextTransformer(causal=True)`'s `decode` and
`init_cache`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flowjax.categorical import check_categorical_dtype, sample_categorical

Decode = Callable[[Array, Any], tuple[Array, Any]]


def _check_nucleus(top_p: float, temperature: float) -> None:
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}.")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")


def nucleus_weights(
    logits: Float[Array, "*batch V"], top_p: float, temperature: float = 1.0
) -> Float[Array, "*batch V"]:
    """Unnormalised weights of the nucleus of softmax(logits / temperature): the probabilities of
    the most likely tokens up to cumulative mass top_p (the token that crosses it included), 0
    elsewhere. top_p = 1 keeps the whole distribution."""
    _check_nucleus(top_p, temperature)
    probs = jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    if top_p == 1.0:
        return probs
    order = jnp.argsort(-probs, axis=-1)
    sorted_probs = jnp.take_along_axis(probs, order, axis=-1)
    before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the more likely tokens
    keep = jnp.take_along_axis(before < top_p, jnp.argsort(order, axis=-1), axis=-1)
    return jnp.where(keep, probs, 0.0)


def autoregressive_sample(
    key: jax.Array,
    decode: Decode,
    cache: Any,
    prompt: Int[Array, "B P"],
    num_tokens: int,
    *,
    top_p: float = 1.0,
    temperature: float = 1.0,
    exclude: tuple[int, ...] = (),
    dtype=jnp.float32,
) -> Int[Array, "B N"]:
    """`num_tokens` tokens drawn after `prompt` (at least one token, e.g. a BOS id), (B, N).

    Args:
      key: PRNG key.
      decode: (tokens, cache) -> (logits, cache), see the module docstring.
      cache: an empty cache with room for P + N - 1 positions.
      prompt: (B, P) integer tokens read before the first draw.
      num_tokens: N >= 1.
      top_p, temperature: nucleus sampling and temperature (1.0, 1.0: the model's distribution).
      exclude: token ids never drawn (e.g. a BOS id that only the input vocabulary has).
      dtype: floating dtype of the categorical draws (float64 needs `jax.enable_x64`).
    """
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 2 or prompt.shape[1] < 1 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(f"prompt must be integer tokens (B, P) with P >= 1, got {prompt.shape}.")
    if not (isinstance(num_tokens, int) and num_tokens >= 1):
        raise ValueError(f"num_tokens must be an int >= 1, got {num_tokens!r}.")
    _check_nucleus(top_p, temperature)
    dtype = check_categorical_dtype(dtype)

    def draw(step_key, logits):
        if exclude:  # before the nucleus, which then holds the most likely allowed tokens
            logits = logits.at[..., jnp.asarray(exclude)].set(-jnp.inf)
        weights = nucleus_weights(logits, top_p, temperature).astype(dtype)
        return sample_categorical(step_key, weights, dtype)

    keys = jax.random.split(key, num_tokens)
    logits, cache = decode(prompt, cache)
    vocab_size = logits.shape[-1]
    if not all(isinstance(i, int) and 0 <= i < vocab_size for i in exclude):
        raise ValueError(
            f"exclude must hold token ids in [0, {vocab_size}) (the model's vocabulary), got "
            f"{exclude!r}."
        )
    if len(set(exclude)) >= vocab_size:
        raise ValueError(f"exclude {exclude!r} leaves no token of the {vocab_size} to draw.")
    first = draw(keys[0], logits[:, -1])

    def step(carry, step_key):
        token, cache = carry
        logits, cache = decode(token[:, None], cache)
        nxt = draw(step_key, logits[:, -1])
        return (nxt, cache), nxt

    _, rest = jax.lax.scan(step, (first, cache), keys[1:])
    return jnp.concatenate([first[:, None], rest.T], axis=1).astype(jnp.int32)
