"""The text transformer of discrete diffusion and flow language models ("DDiT"), bidirectional or
causal.

The backbone of SEDD (Lou et al., 2024), MDLM (Sahoo et al., 2024), MD4 (Shi et al., 2024), the
Flow Matching Guide's text example (Lipman et al., 2024, section 7) and FLM: a transformer over
tokens (B, L) with

- a token embedding E (V, d); the input may also be a (B, L, V) array of vectors, multiplied
  into the embedding (x E), as flow language models over one-hot states need;
- rotary position embeddings in every attention layer (`flowjax.models.attention`);
- pre-norm blocks with adaLN-Zero conditioning (DiT, Peebles & Xie, 2023, section 3.2): from a
  conditioning vector c (width `cond_dim`, an MLP of sinusoidal features of t, plus a class
  embedding for a class-conditional model), each block computes a shift, scale and gate for its
  attention and MLP branches with a zero-initialised projection, so that every block starts as
  the identity. With `time_conditioning=False` (MDLM, IMDM, the autoregressive baseline) t is
  replaced by 0: the modulations become learned constants of each block;
- attention through `jax.nn.dot_product_attention` (the platform's fused kernel on GPU, XLA on
  the CPU), bidirectional, or causal with a KV cache for decoding (`causal=True`, the
  autoregressive baseline and the judge model of generative perplexity);
- a final adaLN-modulated norm and a zero-initialised output head (logits are 0 at
  initialisation), GELU (tanh) MLPs of width `mlp_ratio` d, dropout on both branches;
- `remat` ("none", "full", "dots"): each block's activations recomputed in the backward pass
  under that policy (`flowjax.models.layers.rematerialised`), for long sequences and large
  models;
- activation layouts by logical axis (`flowjax.parallel.constrain`, in force inside the
  trainer's step): the residual stream (B, L, d) as ("batch", "length", "act_embed"), queries,
  keys and values (B, L, H, d / H) as ("batch", None, "heads", None) and the MLP's hidden
  units as ("batch", None, "hidden"): Megatron tensor parallelism, and sequence parallelism
  when "length" is mapped to the tensor axis (config.sharding.logical_axes).

Sizes (`TEXT_TRANSFORMER_SIZES`, width / depth / heads): "tiny" 128 / 4 / 4 for CPU runs,
"small" 768 / 12 / 12 (MDLM, MD4, FLM; about 110M parameters with a GPT-2 vocabulary), "medium"
1024 / 24 / 16. Parameters are float32; `dtype` is the compute dtype (e.g. bfloat16), with
layer norms, softmax and logits in float32. `TEXT_TRANSFORMER_SHARDING_RULES` split the large
kernels Megatron-style over "tensor" and the rest over "fsdp" (`flowjax.parallel`).

Calls: `model(x, t, label=None, dropout_seed=None)` -> logits (B, L, V) with t a scalar or (B,);
for a causal model `model.decode(tokens, cache)` -> (logits, cache) continues from the cache's
length (`init_cache` makes an empty one), and equals the full forward pass on the same prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from flowjax._checks import check_tokens
from flowjax.models.attention import KVCache, apply_rotary, attention, update_cache
from flowjax.models.layers import (
    RESIDUAL,
    TimeLabelEmbedding,
    check_labels,
    check_remat,
    dropout,
    modulate,
    rematerialised,
)
from flowjax.parallel import constrain

TEXT_TRANSFORMER_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (128, 4, 4),
    "small": (768, 12, 12),
    "medium": (1024, 24, 16),
}
"""Width, depth and heads of each named size."""

TEXT_TRANSFORMER_SHARDING_RULES = (
    (r"blocks/\d+/(qkv|fc1)/kernel$", ("embed", "mlp")),
    (r"blocks/\d+/(attn_out|fc2)/kernel$", ("mlp", "embed")),
    (r"blocks/\d+/modulation/kernel$", (None, "mlp")),
    (r"embedding$", ("vocab", "embed")),
    (r"head/kernel$", ("embed", "vocab")),
)
"""(regex, logical axes) rules of `config.sharding.rules` for the text transformer's state
leaves (`flowjax.parallel.LOGICAL_AXES`)."""

_zeros = nnx.initializers.zeros_init()


class TransformerBlock(nnx.Module):
    """x + g1 attn(modulate(norm(x))) then x + g2 mlp(modulate(norm(x))): (B, L, d) -> same."""

    def __init__(
        self, width: int, heads: int, cond_dim: int, mlp_ratio: float, dropout_rate: float, *,
        causal: bool, dtype, rngs: nnx.Rngs
    ):
        if width % heads:
            raise ValueError(f"The transformer width {width} is not divisible by {heads} heads.")
        self.heads, self.causal, self.dropout_rate = heads, causal, dropout_rate
        linear = dict(dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.norm1 = nnx.LayerNorm(width, use_bias=False, dtype=jnp.float32, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, use_bias=False, **linear)
        self.attn_out = nnx.Linear(width, width, use_bias=False, **linear)
        self.norm2 = nnx.LayerNorm(width, use_bias=False, dtype=jnp.float32, rngs=rngs)
        self.fc1 = nnx.Linear(width, int(mlp_ratio * width), **linear)
        self.fc2 = nnx.Linear(int(mlp_ratio * width), width, **linear)
        self.modulation = nnx.Linear(cond_dim, 6 * width, kernel_init=_zeros, **linear)

    def _qkv(self, h: Array, positions: Int[Array, "L"]) -> tuple[Array, Array, Array]:
        b, length, width = h.shape
        q, k, v = jnp.split(self.qkv(h).reshape(b, length, 3 * self.heads, -1), 3, axis=2)
        q, k, v = (constrain(a, ("batch", None, "heads", None)) for a in (q, k, v))
        return apply_rotary(q, positions), apply_rotary(k, positions), v

    def __call__(
        self,
        x: Float[Array, "B L d"],
        c: Float[Array, "B c"],
        seeds: Int[Array, "B"] | None,
        layer: int,
        cache: tuple[Array, Array, Array] | None = None,
    ) -> tuple[Float[Array, "B L d"], tuple[Array, Array] | None]:
        """The block's output, and with `cache` = (keys, values, length) of this layer the
        cache with the new positions written."""
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(
            self.modulation(nnx.silu(c)).astype(jnp.float32), 6, axis=-1
        )
        b, length, width = x.shape
        h = modulate(self.norm1(x), shift1, scale1).astype(self.qkv.dtype or x.dtype)
        start = 0 if cache is None else cache[2]
        q, k, v = self._qkv(h, start + jnp.arange(length))
        new_cache = None
        if cache is None:
            out = attention(q, k, v, causal=self.causal)
        else:
            keys, values = update_cache(cache[0], cache[1], k, v, start)
            out = attention(
                q, keys, values, causal=True, key_valid=start + length, query_offset=start
            )
            new_cache = (keys, values)
        out = self.attn_out(out.reshape(b, length, width)).astype(jnp.float32)
        x = x + gate1[:, None, :] * dropout(out, self.dropout_rate, seeds, 2 * layer)
        x = constrain(x, RESIDUAL)
        h = modulate(self.norm2(x), shift2, scale2).astype(self.fc1.dtype or x.dtype)
        hidden = constrain(nnx.gelu(self.fc1(h), approximate=True), ("batch", None, "hidden"))
        h = dropout(self.fc2(hidden).astype(jnp.float32), self.dropout_rate, seeds, 2 * layer + 1)
        return constrain(x + gate2[:, None, :] * h, RESIDUAL), new_cache


class TextTransformer(nnx.Module):
    """logits(x, t, label=None): tokens (B, L) or vectors (B, L, V), t scalar or (B,) ->
    (B, L, V) float32; see the module docstring."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        vocab_size: int,
        size: str = "tiny",
        hidden_dim: int = 0,
        depth: int = 0,
        num_heads: int = 0,
        cond_dim: int = 128,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        time_conditioning: bool = True,
        causal: bool = False,
        num_classes: int | None = None,
        remat: str = "none",
        dtype=None,
        rngs: nnx.Rngs,
    ):
        check_remat("TextTransformer", remat)
        if size not in TEXT_TRANSFORMER_SIZES:
            raise ValueError(
                f"Unknown text transformer size {size!r}; expected one of "
                f"{list(TEXT_TRANSFORMER_SIZES)}."
            )
        if len(tuple(event_shape)) != 1:
            raise ValueError(
                f"The text transformer reads token sequences of shape (L,), got event shape "
                f"{tuple(event_shape)}."
            )
        if not (isinstance(vocab_size, int) and vocab_size >= 2):
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        width, blocks, heads = TEXT_TRANSFORMER_SIZES[size]
        self.width = hidden_dim or width
        self.depth = depth or blocks
        self.num_heads = num_heads or heads
        self.max_length = int(tuple(event_shape)[0])
        self.vocab_size = vocab_size
        self.time_conditioning = time_conditioning
        self.causal = causal
        self.num_classes = num_classes
        self.remat = remat
        self.dtype = dtype
        self.embedding = nnx.Param(
            nnx.initializers.normal(1.0 / self.width**0.5)(rngs.params(), (vocab_size, self.width))
        )
        self.cond = TimeLabelEmbedding(
            cond_dim, frequency_dim=256, num_classes=num_classes, dtype=dtype, rngs=rngs
        )
        self.blocks = nnx.List(
            [
                TransformerBlock(
                    self.width, self.num_heads, cond_dim, mlp_ratio, dropout,
                    causal=causal, dtype=dtype, rngs=rngs,
                )
                for _ in range(self.depth)
            ]
        )
        self.norm_out = nnx.LayerNorm(self.width, use_bias=False, dtype=jnp.float32, rngs=rngs)
        linear = dict(dtype=dtype, param_dtype=jnp.float32, kernel_init=_zeros, rngs=rngs)
        self.modulation_out = nnx.Linear(cond_dim, 2 * self.width, **linear)
        self.head = nnx.Linear(self.width, vocab_size, **linear)

    # Inputs -----------------------------------------------------------------------------------

    def _embed(self, x: Array) -> Float[Array, "B L d"]:
        if jnp.issubdtype(x.dtype, jnp.integer):
            if x.ndim != 2:
                raise ValueError(f"Token input must have shape (B, L), got {x.shape}.")
            check_tokens(x, self.vocab_size, "x")
            return jnp.take(self.embedding[...], x, axis=0)
        if x.ndim != 3 or x.shape[-1] != self.vocab_size:
            raise ValueError(
                f"Vector input must have shape (B, L, vocab_size={self.vocab_size}), got "
                f"{x.shape}; token ids must be an integer array (B, L)."
            )
        return jnp.einsum("blv,vd->bld", x.astype(jnp.float32), self.embedding[...])

    def _conditioning(self, t: Array | None, batch: int, label: Array | None) -> Array:
        check_labels("TextTransformer", label, self.num_classes, batch)
        t = jnp.zeros(()) if t is None or not self.time_conditioning else t
        return self.cond(t, batch, label)

    def _check_length(self, length: int, limit: int, what: str) -> None:
        if length > limit:
            raise ValueError(
                f"The sequence of {length} tokens is longer than the {what} ({limit} tokens)."
            )

    def _logits(self, h: Array, c: Array) -> Float[Array, "B L V"]:
        shift, scale = jnp.split(self.modulation_out(nnx.silu(c)).astype(jnp.float32), 2, -1)
        h = modulate(self.norm_out(h), shift, scale).astype(self.head.dtype or h.dtype)
        return self.head(h).astype(jnp.float32)

    # Calls --------------------------------------------------------------------------------------

    def __call__(
        self,
        x: Int[Array, "B L"] | Float[Array, "B L V"],
        t: Float[Array, ""] | Float[Array, "B"] | None = None,
        label: Int[Array, "B"] | None = None,
        dropout_seed: Int[Array, "B"] | None = None,
    ) -> Float[Array, "B L V"]:
        """Logits of every position; t is ignored when time_conditioning is False (and may be
        None for a model without it). `dropout_seed` (B,) uint32 turns dropout on (training)."""
        return self._forward(self._embed(x), t, label, dropout_seed)

    def _forward(
        self,
        h: Float[Array, "B L d"],
        t: Array | None,
        label: Array | None,
        dropout_seed: Array | None,
        extra_conditioning: Float[Array, "B c"] | None = None,
    ) -> Float[Array, "B L V"]:
        """The blocks and the head on input embeddings h; `extra_conditioning` is added to the
        conditioning vector (a flow map's end-time embedding)."""
        self._check_length(h.shape[1], self.max_length, "model's maximum length")
        h = constrain(h, RESIDUAL)
        c = self._conditioning(t, h.shape[0], label)
        if extra_conditioning is not None:
            c = c + extra_conditioning
        for layer, block in enumerate(self.blocks):
            apply = rematerialised(
                lambda block, h, c, seeds, layer=layer: block(h, c, seeds, layer)[0], self.remat
            )
            h = apply(block, h, c, dropout_seed)
        return self._logits(h, c)

    def init_cache(self, batch: int, max_length: int | None = None) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `max_length` tokens (default: the
        model's maximum length)."""
        if not self.causal:
            raise ValueError("Only a causal text transformer (causal=True) decodes with a cache.")
        length = self.max_length if max_length is None else max_length
        dtype = self.dtype or jnp.float32
        head_dim = self.width // self.num_heads
        return KVCache.empty(self.depth, batch, length, self.num_heads, head_dim, dtype)

    def decode(
        self,
        tokens: Int[Array, "B Ln"],
        cache: KVCache,
        label: Int[Array, "B"] | None = None,
    ) -> tuple[Float[Array, "B Ln V"], KVCache]:
        """Logits of `tokens` at positions cache.length .. cache.length + Ln - 1, attending to
        the cached positions before them; returns the cache with their keys and values."""
        if not self.causal:
            raise ValueError("Only a causal text transformer (causal=True) decodes with a cache.")
        h = self._embed(tokens)
        self._check_length(h.shape[1], cache.keys.shape[2], "KV cache")
        c = self._conditioning(None, h.shape[0], label)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            h, (k, v) = block(
                h, c, None, layer, (cache.keys[layer], cache.values[layer], cache.length)
            )
            keys.append(k)
            values.append(v)
        new_cache = KVCache(jnp.stack(keys), jnp.stack(values), cache.length + h.shape[1])
        return self._logits(h, c), new_cache
