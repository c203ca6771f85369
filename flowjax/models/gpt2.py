"""GPT-2 (Radford et al., 2019, "Language Models are Unsupervised Multitask Learners"), the judge
model of generative perplexity (MDLM, Sahoo et al., 2024, section 4.1: samples of a text
diffusion model scored by GPT-2 Large).

The network of the paper (section 2.3, the GPT architecture with its changes):

- a token embedding W_e (V, d) and learned position embeddings W_p (n_positions, d): h_0 = W_e[x]
  + W_p[0..L-1];
- pre-LayerNorm blocks: h + attn(LN_1(h)) then h + mlp(LN_2(h)), with multi-head causal
  self-attention from one fused (d, 3d) query/key/value projection, an output projection (d, d),
  and an MLP d -> 4d -> d with the tanh approximation of GELU (Hendrycks & Gimpel, 2016);
- a final LayerNorm and an LM head tied to the token embedding: logits = LN_f(h_N) W_e^T.

Named sizes (`GPT2_SIZES`, width / depth / heads): "gpt2" 768 / 12 / 12 (124M parameters),
"gpt2-medium" 1024 / 24 / 16 (355M), "gpt2-large" 1280 / 36 / 20 (774M), "gpt2-xl" 1600 / 48 / 25
(1.5B). `GPT2Config.from_hf_json` reads a Hugging Face `config.json`; `load_gpt2`
(`flowjax.models.convert_gpt2`) loads a checkpoint saved by `transformers`.

Parameters are float32; `dtype` is the compute dtype of the matrix products and of attention
(e.g. bfloat16), with the residual stream, the layer norms and the logits in float32. Attention is
`flowjax.models.attention.attention(..., causal=True)`.

Calls: `model(tokens (B, L))` -> logits (B, L, V) float32; `model.decode(tokens (B, L_new),
cache)` -> (logits, cache) for positions cache.length .. cache.length + L_new - 1 (`init_cache`
makes an empty `KVCache`), which equals the full forward pass on the same prefix;
`model.log_prob(tokens)` -> log p(tokens) (B,), the judge of
`flowjax.metrics.text.generative_perplexity`. Shapes, dtypes and lengths are checked when the
call is traced; token values are checked when they are concrete (outside `jax.jit`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from flowjax._checks import concrete_value
from flowjax.models.attention import KVCache, attention, update_cache

GPT2_SIZES: dict[str, tuple[int, int, int]] = {
    "gpt2": (768, 12, 12),
    "gpt2-medium": (1024, 24, 16),
    "gpt2-large": (1280, 36, 20),
    "gpt2-xl": (1600, 48, 25),
}
"""n_embd, n_layer and n_head of each released GPT-2."""

_CONTEXT = "model's context (n_positions)"

# Settings of a Hugging Face GPT-2 config.json that this network implements, and their values.
_HF_REQUIRED: dict[str, tuple[Any, ...]] = {
    "model_type": ("gpt2",),
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
    "reorder_and_upcast_attn": (False,),
    "add_cross_attention": (False,),
    "tie_word_embeddings": (True,),
}


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """The sizes of a GPT-2; the defaults are the 124M model's."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"GPT2Config.{name} must be a positive int, got {value!r}.")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPT2Config.n_embd = {self.n_embd} is not divisible by n_head = {self.n_head}."
            )
        if not self.layer_norm_epsilon > 0:
            raise ValueError(
                f"GPT2Config.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon}."
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def named(cls, name: str, **overrides) -> GPT2Config:
        """The config of a released size ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")."""
        if name not in GPT2_SIZES:
            raise ValueError(f"Unknown GPT-2 size {name!r}; expected one of {list(GPT2_SIZES)}.")
        n_embd, n_layer, n_head = GPT2_SIZES[name]
        return cls(**{"n_embd": n_embd, "n_layer": n_layer, "n_head": n_head, **overrides})

    @classmethod
    def from_hf_json(cls, config: Mapping[str, Any]) -> GPT2Config:
        """The config of a Hugging Face GPT-2 `config.json` (its parsed dict); settings that
        this network does not implement (another activation, an MLP width other than 4d,
        untied embeddings, ...) raise a ValueError."""
        unsupported = [
            f"{key} = {config[key]!r} (supported: {', '.join(map(repr, allowed))})"
            for key, allowed in _HF_REQUIRED.items()
            if key in config and config[key] not in allowed
        ]
        n_embd = config.get("n_embd", cls.n_embd)
        if config.get("n_inner") not in (None, 4 * n_embd):
            unsupported.append(f"n_inner = {config['n_inner']!r} (supported: None or 4 n_embd)")
        if unsupported:
            raise ValueError("Unsupported GPT-2 config.json settings: " + "; ".join(unsupported))
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in config.items() if key in fields})


def _normal(std: float):
    return nnx.initializers.normal(std)


class GPT2Block(nnx.Module):
    """h + attn(LN_1(h)) then h + mlp(LN_2(h)): (B, L, d) -> same, float32 residual stream."""

    def __init__(self, config: GPT2Config, *, dtype, rngs: nnx.Rngs):
        d, eps = config.n_embd, config.layer_norm_epsilon
        self.n_head = config.n_head
        # Residual projections start smaller with depth (GPT-2, section 2.3).
        init, out_init = _normal(0.02), _normal(0.02 / math.sqrt(2 * config.n_layer))
        linear = dict(dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        norm = dict(epsilon=eps, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
        self.ln_1 = nnx.LayerNorm(d, **norm)
        self.attn_qkv = nnx.Linear(d, 3 * d, kernel_init=init, **linear)
        self.attn_proj = nnx.Linear(d, d, kernel_init=out_init, **linear)
        self.ln_2 = nnx.LayerNorm(d, **norm)
        self.mlp_fc = nnx.Linear(d, 4 * d, kernel_init=init, **linear)
        self.mlp_proj = nnx.Linear(4 * d, d, kernel_init=out_init, **linear)

    def __call__(
        self,
        x: Float[Array, "B L d"],
        cache: tuple[Array, Array, Array] | None = None,
    ) -> tuple[Float[Array, "B L d"], tuple[Array, Array] | None]:
        """The block's output, and with `cache` = (keys, values, length) of this layer the
        cache with the new positions written."""
        b, length, d = x.shape
        h = self.ln_1(x).astype(self.attn_qkv.dtype or jnp.float32)
        qkv = self.attn_qkv(h).reshape(b, length, 3, self.n_head, d // self.n_head)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cache is None:
            out, new_cache = attention(q, k, v, causal=True), None
        else:
            start = cache[2]
            keys, values = update_cache(cache[0], cache[1], k, v, start)
            out = attention(
                q, keys, values, causal=True, key_valid=start + length, query_offset=start
            )
            new_cache = (keys, values)
        x = x + self.attn_proj(out.reshape(b, length, d)).astype(jnp.float32)
        h = self.ln_2(x).astype(self.mlp_fc.dtype or jnp.float32)
        h = self.mlp_proj(nnx.gelu(self.mlp_fc(h), approximate=True))
        return x + h.astype(jnp.float32), new_cache


class GPT2(nnx.Module):
    """GPT-2 language model: tokens (B, L) -> next-token logits (B, L, V) float32; see the module
    docstring."""

    def __init__(self, config: GPT2Config, *, dtype=None, rngs: nnx.Rngs):
        self.config = config
        self.dtype = dtype
        self.wte = nnx.Param(_normal(0.02)(rngs.params(), (config.vocab_size, config.n_embd)))
        self.wpe = nnx.Param(_normal(0.01)(rngs.params(), (config.n_positions, config.n_embd)))
        self.blocks = nnx.List(
            [GPT2Block(config, dtype=dtype, rngs=rngs) for _ in range(config.n_layer)]
        )
        self.ln_f = nnx.LayerNorm(
            config.n_embd, epsilon=config.layer_norm_epsilon, dtype=jnp.float32,
            param_dtype=jnp.float32, rngs=rngs,
        )

    # Inputs -----------------------------------------------------------------------------------

    def _check_tokens(self, tokens: Any, limit: int, what: str) -> Int[Array, "B L"]:
        """`tokens` as an array, after checking its rank, dtype and length (also when traced)
        and its ids (when concrete)."""
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"GPT-2 reads token ids of shape (B, L), got shape {tokens.shape}.")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"GPT-2 reads integer token ids, got dtype {tokens.dtype}.")
        if tokens.shape[1] > limit:
            raise ValueError(
                f"The sequence of {tokens.shape[1]} tokens is longer than the {what} ({limit} "
                f"tokens)."
            )
        value = concrete_value(tokens)
        if value is not None and value.size:
            lo, hi = int(value.min()), int(value.max())
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(
                    f"The tokens hold ids in [{lo}, {hi}], outside GPT-2's vocabulary [0, "
                    f"{self.config.vocab_size}): they must come from GPT-2's tokenizer."
                )
        return tokens

    def _embed(self, tokens: Int[Array, "B L"], start: Int[Array, ""] | int) -> Array:
        positions = start + jnp.arange(tokens.shape[1])
        return jnp.take(self.wte[...], tokens, axis=0) + jnp.take(self.wpe[...], positions, axis=0)

    def _logits(self, h: Float[Array, "B L d"]) -> Float[Array, "B L V"]:
        dtype = self.dtype or jnp.float32
        h = self.ln_f(h).astype(dtype)
        logits = jnp.einsum("bld,vd->blv", h, self.wte[...].astype(dtype))
        return logits.astype(jnp.float32)

    # Calls --------------------------------------------------------------------------------------

    def __call__(self, tokens: Int[Array, "B L"]) -> Float[Array, "B L V"]:
        """Logits of the next token at every position, (B, L, vocab_size) float32."""
        tokens = self._check_tokens(tokens, self.config.n_positions, _CONTEXT)
        h = self._embed(tokens, 0)
        for block in self.blocks:
            h, _ = block(h)
        return self._logits(h)

    def init_cache(self, batch: int, max_length: int | None = None) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `max_length` tokens (default: the
        model's context, n_positions)."""
        config = self.config
        length = config.n_positions if max_length is None else max_length
        if not 1 <= length <= config.n_positions:
            raise ValueError(
                f"The cache length must be in [1, n_positions = {config.n_positions}], got "
                f"{length}."
            )
        return KVCache.empty(
            config.n_layer, batch, length, config.n_head, config.head_dim,
            self.dtype or jnp.float32,
        )

    def _check_cache(self, cache: KVCache, batch: int, new: int) -> None:
        config = self.config
        shape, max_length = cache.keys.shape, cache.keys.shape[2]
        expected = (config.n_layer, batch, max_length, config.n_head, config.head_dim)
        if shape != expected or cache.values.shape != shape or max_length > config.n_positions:
            raise ValueError(
                f"The KV cache has shape {cache.keys.shape}; this model and batch need "
                f"({config.n_layer}, {batch}, L_max <= {config.n_positions}, {config.n_head}, "
                f"{config.head_dim})."
            )
        filled = concrete_value(cache.length)
        if filled is not None and int(filled) + new > max_length:
            raise ValueError(
                f"The KV cache holds {int(filled)} of {max_length} positions: {new} more tokens "
                f"do not fit."
            )

    def decode(
        self, tokens: Int[Array, "B Ln"], cache: KVCache
    ) -> tuple[Float[Array, "B Ln V"], KVCache]:
        """Logits of `tokens` at positions cache.length .. cache.length + Ln - 1, attending to
        the cached positions before them; returns the cache with their keys and values. A cache
        too full for the tokens is refused when its length is concrete; under `jax.jit` it is
        not, and the new positions would overwrite the last ones held."""
        if not isinstance(cache, KVCache) or cache.keys.ndim != 5:
            raise ValueError("decode needs a KVCache (GPT2.init_cache makes an empty one).")
        tokens = self._check_tokens(tokens, cache.keys.shape[2], "KV cache")
        self._check_cache(cache, *tokens.shape)
        h = self._embed(tokens, cache.length)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            h, (k, v) = block(h, (cache.keys[layer], cache.values[layer], cache.length))
            keys.append(k)
            values.append(v)
        new_cache = KVCache(jnp.stack(keys), jnp.stack(values), cache.length + tokens.shape[1])
        return self._logits(h), new_cache

    def log_prob(
        self, tokens: Int[Array, "B L"], bos_token: int | None = None
    ) -> Float[Array, "B"]:
        """log p(tokens) = sum_i log p(x_i | x_<i), (B,) float32. With `bos_token` (GPT-2's is
        <|endoftext|>, 50256) it is put before the tokens and all L are scored; without, the
        first token is the context and the L - 1 after it are scored."""
        tokens = self._check_tokens(tokens, self.config.n_positions, _CONTEXT)
        if bos_token is not None:
            if not 0 <= bos_token < self.config.vocab_size:
                raise ValueError(f"bos_token {bos_token} is outside the vocabulary.")
            bos = jnp.full((tokens.shape[0], 1), bos_token, tokens.dtype)
            inputs, targets = jnp.concatenate([bos, tokens[:, :-1]], axis=1), tokens
        else:
            inputs, targets = tokens[:, :-1], tokens[:, 1:]
        log_p = jax.nn.log_softmax(self(inputs), axis=-1)
        return jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0].sum(axis=-1)
