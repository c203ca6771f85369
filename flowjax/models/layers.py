"""Layers shared by the image networks (`flowjax.models.UNet`, `flowjax.models.DiT`).

- `TimeLabelEmbedding`: the conditioning vector of ADM (Dhariwal & Nichol, 2021, section 3)
  and DiT (Peebles & Xie, 2023, section 3.2): an MLP on sinusoidal features of t
  (`flowjax.models.sinusoidal_embedding`) plus, for a class-conditional model, a learned
  embedding of the label. Label `num_classes` is the "no label" token of label dropout and
  classifier-free guidance (Flow Matching Guide, Lipman et al., 2024, eq. 6.19).
- `MultiHeadSelfAttention`: softmax(Q K^T / sqrt(d)) V over a (B, N, C) token sequence
  (Vaswani et al., 2017, eq. 1), the softmax taken in float32.
- `modulate`: the adaLN shift and scale of tokens by a conditioning vector (DiT, the text
  transformer).
- `dropout`: inverted dropout (Srivastava et al., 2014) with one mask per example, drawn from
  that example's seed (`flowjax.train.objectives.dropout_seeds`) and the layer's index, so that
  training with gradient accumulation sees the same masks as one large batch.
- `check_image_shape` / `check_image_input` / `check_labels`: the shape checks of the image networks' inputs, which
  run when the call is traced (before anything is compiled).
- `rematerialised`: a block's call under an activation rematerialisation policy
  (`REMAT_POLICIES`, `jax.checkpoint` through `nnx.remat`), the `remat` setting of the DiT, the
  UNet and the text transformers: "none" keeps every activation for the backward pass, "full"
  recomputes each block in it (memory of one block's activations plus the block inputs),
  "dots" keeps the outputs of the matmuls without batch dimensions (the projections) and
  recomputes the rest (attention scores, norms, activations). Values and gradients are the same
  under every policy; `--mode=plan` shows the memory each saves and the FLOPs it costs.

Tensor-parallel sharding: the image networks name their large kernels so that the trainer's
path rules (`config.sharding.rules`, `flowjax.parallel`) can split them Megatron-style over
logical axes, the first projection of a pair ("embed", "mlp") and the second ("mlp", "embed")
(`UNET_SHARDING_RULES`, `DIT_SHARDING_RULES`; "embed" is FSDP, "mlp" the tensor axis).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.embeddings import batch_time, sinusoidal_embedding

# (regex on a state leaf's path, one logical axis per dimension); see flowjax.parallel.
UNET_SHARDING_RULES = (
    (r"/conv1/kernel$", (None, None, "embed", "mlp")),
    (r"/conv2/kernel$", (None, None, "mlp", "embed")),
    (r"/qkv/kernel$", ("embed", "mlp")),
    (r"/proj/kernel$", ("mlp", "embed")),
)
DIT_SHARDING_RULES = (
    (r"blocks/\d+/(attention/qkv|fc1)/kernel$", ("embed", "mlp")),
    (r"blocks/\d+/(attention/proj|fc2)/kernel$", ("mlp", "embed")),
    (r"blocks/\d+/modulation/kernel$", ("embed", "mlp")),
)

RESIDUAL = ("batch", "length", "act_embed")
"""The logical axes (`flowjax.parallel.constrain`) of a transformer's residual stream (B, L, d)."""

REMAT_POLICIES = {
    "none": None,  # keep every activation for the backward pass
    "full": jax.checkpoint_policies.nothing_saveable,  # recompute each block in the backward
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep the projections
}
"""Activation rematerialisation policies of the networks' blocks (`jax.checkpoint`)."""


def check_remat(network: str, remat: str) -> None:
    if remat not in REMAT_POLICIES:
        raise ValueError(f"{network} remat must be one of {tuple(REMAT_POLICIES)}, got {remat!r}.")


def rematerialised(fn: Callable, remat: str) -> Callable:
    """`fn` (a function of modules and arrays, e.g. (block, x, c) -> x) as it is for "none", else
    recomputed in the backward pass under `REMAT_POLICIES[remat]`."""
    return fn if remat == "none" else nnx.remat(fn, policy=REMAT_POLICIES[remat])


class TimeLabelEmbedding(nnx.Module):
    """c(t, y) = MLP(sinusoidal(t)) [+ Embed(y)]: t (B,) or scalar, y (B,) -> (B, dim)."""

    def __init__(
        self,
        dim: int,
        *,
        frequency_dim: int,
        num_classes: int | None,
        dtype,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.frequency_dim = frequency_dim
        self.num_classes = num_classes
        self.dtype = dtype
        self.fc1 = nnx.Linear(frequency_dim, dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc2 = nnx.Linear(dim, dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if num_classes is not None:
            self.label_embed = nnx.Embed(
                num_classes + 1,
                dim,
                embedding_init=nnx.initializers.normal(0.02),
                param_dtype=param_dtype,
                rngs=rngs,
            )

    def __call__(self, t: jax.Array, batch_size: int, label: jax.Array | None) -> jax.Array:
        t = batch_time(t, batch_size, jnp.float32)
        c = self.fc2(nnx.silu(self.fc1(sinusoidal_embedding(t, self.frequency_dim))))
        if self.num_classes is not None:
            c = c + self.label_embed(label).astype(c.dtype)
        return c


class MultiHeadSelfAttention(nnx.Module):
    """Self-attention over tokens (B, N, dim) -> (B, N, dim) with `num_heads` heads."""

    def __init__(
        self, dim: int, num_heads: int, *, zero_output=False, dtype, param_dtype=jnp.float32, rngs
    ):
        if dim % num_heads:
            raise ValueError(f"Attention width {dim} is not divisible by {num_heads} heads.")
        self.num_heads = num_heads
        self.qkv = nnx.Linear(dim, 3 * dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        init = dict(kernel_init=nnx.initializers.zeros_init()) if zero_output else {}
        self.proj = nnx.Linear(dim, dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs, **init)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, dim = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.proj(out.reshape(b, n, dim))


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN modulation of tokens x (B, N, D) by per-example shift and scale (B, D): x (1 + scale)
    + shift (Peebles & Xie, 2023, section 3.2)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def dropout(x: jax.Array, rate: float, seeds: jax.Array | None, layer: int) -> jax.Array:
    """x (B, ...) with each entry zeroed with probability `rate` and the rest scaled by
    1 / (1 - rate); example b's mask comes from fold_in(key(seeds[b]), layer). No seeds (B,)
    uint32, or rate 0: x unchanged (sampling)."""
    if seeds is None or rate == 0.0:
        return x
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), layer))(seeds)
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def check_image_input(name: str, x: jax.Array, event_shape: tuple[int, ...]) -> None:
    """Raises a ValueError unless x has shape (B, *event_shape)."""
    if x.shape[1:] != tuple(event_shape):
        raise ValueError(
            f"{name} was built for images of shape (B, *{tuple(event_shape)}) (height, width, "
            f"channels), got {x.shape}."
        )


def check_labels(name: str, label: jax.Array | None, num_classes: int | None, batch: int) -> None:
    """Raises a ValueError unless labels are given exactly when the model is conditional."""
    if num_classes is None:
        if label is not None:
            raise ValueError(f"This {name} is unconditional (num_classes=None) but got a label.")
        return
    if label is None:
        raise ValueError(f"This {name} is class-conditional: pass `label` of shape (B,).")
    if jnp.shape(label) != (batch,):
        raise ValueError(f"{name} labels must have shape ({batch},), got {jnp.shape(label)}.")


def check_image_shape(name: str, event_shape, image_size: int, divisor: int) -> None:
    """Images (H, W, C) with H = W (= image_size when it is set) divisible by `divisor`."""
    if len(event_shape) != 3:
        raise ValueError(
            f"{name} reads images of shape (height, width, channels), but the data have "
            f"examples of shape {tuple(event_shape)}."
        )
    height, width, _ = event_shape
    if image_size and (height, width) != (image_size, image_size):
        raise ValueError(
            f"The config's model.image_size={image_size} does not match the data's images of "
            f"{height}x{width} (shape {tuple(event_shape)}); use a dataset of "
            f"{image_size}x{image_size} images or set model.image_size={height}."
        )
    if height % divisor or width % divisor:
        raise ValueError(
            f"{name} needs an image side divisible by {divisor} for its resolution levels, got "
            f"{height}x{width}."
        )
