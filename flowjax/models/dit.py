"""A Diffusion Transformer (DiT) velocity field u_theta(x, t[, y]) for images.

"Scalable Diffusion Models with Transformers" (Peebles & Xie, 2023), section 3.2: the image
(B, H, W, C) is cut into (H/p)(W/p) patches of p x p pixels, each linearly embedded to `hidden`
features plus a fixed 2D sine-cosine position embedding; `depth` transformer blocks with
adaLN-Zero conditioning follow: with c = MLP(sinusoidal(t)) + Embed(y),

    (shift1, scale1, gate1, shift2, scale2, gate2) = Linear(SiLU(c))   (zero-initialised)
    x = x + gate1 * Attention(LN(x) * (1 + scale1) + shift1)
    x = x + gate2 * MLP(LN(x) * (1 + scale2) + shift2)

(so every block starts as the identity); a final adaLN layer and a zero-initialised linear map
each token back to its p x p x C patch, and the patches are put back into an image.

Sizes (table 1 of the paper): S (hidden 384, depth 12, 6 heads), B (768, 12, 12),
L (1024, 24, 16), XL (1152, 28, 16); patch sizes 2, 4, 8 (DiT-B/2 = size B, patch 2).
`hidden_dim`, `depth` and `num_heads` override the size's values when positive (tiny models for
tests). Patch size 1 reads each position of a small latent as a token. Shapes: x (B, H, W, C)
with H = W = `image_size` divisible by the patch size, t a scalar or (B,), label (B,) int in
[0, num_classes] (num_classes is the "no label" token).

Conditioning (Berrada et al., 2024, "On Improved Conditioning Mechanisms and Pre-training
Strategies for Diffusion Models", section 3; `flowjax.models.conditioning`):

- conditioning="adaln" (DiT's own): the label embedding is added to c.
- conditioning="attention": the label is one extra token (and text embeddings `context`
  (B, M, context_dim), when `context_dim` > 0, M more tokens, projected to `hidden`) placed
  before the image tokens, so every block's self-attention reads it (DiT's "in-context"
  conditioning, the joint attention of MMDiT); c carries time (and control) only.
- control metadata `control` (B, control_dim) when `control_dim` > 0: embedded on its own and
  added to c as s(t) * ControlEmbedding(control), with s the cosine ramp `control_strength`
  (`control_schedule="cosine"`: 0 at noise, 1 at data) or s = 1 ("constant": the shared adaLN
  baseline of the paper when combined with conditioning="adaln"). No control, or a NaN row, is
  the null control.
- `remat`: "none", "full" (each block recomputed in the backward pass) or "dots" (the matmuls'
  outputs kept, the rest recomputed): `jax.checkpoint` policies trading compute for activation
  memory (`flowjax.models.layers.rematerialised`; `--mode=plan` shows the effect on memory).
- activation layouts (`flowjax.parallel.constrain`, in force inside the trainer's step): each
  block lays out its token stream as the text transformer's residual stream ("batch",
  "length", "act_embed") and its MLP hidden units as ("batch", None, "hidden"), inside the
  rematerialised block, so that remat still frees them; with "length" mapped to the tensor
  axis this is Megatron sequence parallelism over the tokens (the token count, with any label
  and text tokens, must then divide the tensor axis).
- `position_base_grid` > 0: the sine-cosine positions of a model pre-trained on that many
  tokens per side, interpolated to this model's grid (positions scaled by base / grid), for
  transfer between resolutions (section 4; with the noise-schedule shift of
  `flowjax.paths.ShiftedScheduler`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.models.conditioning import ControlEmbedding, null_control
from flowjax.models.embeddings import batch_time, control_strength
from flowjax.models.layers import (
    RESIDUAL,
    MultiHeadSelfAttention,
    TimeLabelEmbedding,
    check_image_input,
    check_image_shape,
    check_labels,
    check_remat,
    modulate,
    rematerialised,
)
from flowjax.parallel import constrain

DIT_SIZES: dict[str, tuple[int, int, int]] = {
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}
"""(hidden, depth, heads) of each DiT size."""
PATCH_SIZES = (1, 2, 4, 8)
CONDITIONING = ("adaln", "attention")
CONTROL_SCHEDULES = ("cosine", "constant")

_zeros = nnx.initializers.zeros_init()
_xavier = nnx.initializers.xavier_uniform()


def position_embedding_2d(grid: int, dim: int, base_grid: int = 0) -> np.ndarray:
    """Fixed sine-cosine position features of a grid x grid token layout, (grid^2, dim): half
    the features encode the row, half the column, each as sin / cos of geometric frequencies
    1 / 10000^(k / (dim / 4)). With `base_grid` > 0 the positions are scaled by
    base_grid / grid: the embedding of a base_grid x base_grid model interpolated to this grid
    (equal to it at the shared positions)."""
    if dim % 4:
        raise ValueError(f"The DiT width must be divisible by 4, got {dim}.")
    freqs = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    positions = np.arange(grid) * (base_grid / grid if base_grid else 1.0)
    rows, cols = np.meshgrid(positions, positions, indexing="ij")

    def features(pos):
        angles = pos.reshape(-1)[:, None] * freqs[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([features(rows), features(cols)], axis=1).astype(np.float32)


class DiTBlock(nnx.Module):
    """One adaLN-Zero transformer block; tokens (B, N, hidden), c (B, hidden) -> (B, N, hidden)."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, *, dtype, rngs):
        linear = dict(dtype=dtype, kernel_init=_xavier, rngs=rngs)
        self.norm1 = nnx.LayerNorm(hidden, use_scale=False, use_bias=False, epsilon=1e-6,
                                   dtype=dtype, rngs=rngs)
        self.attention = MultiHeadSelfAttention(hidden, num_heads, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(hidden, use_scale=False, use_bias=False, epsilon=1e-6,
                                   dtype=dtype, rngs=rngs)
        mlp_dim = int(hidden * mlp_ratio)
        self.fc1 = nnx.Linear(hidden, mlp_dim, **linear)
        self.fc2 = nnx.Linear(mlp_dim, hidden, **linear)
        self.modulation = nnx.Linear(hidden, 6 * hidden, dtype=dtype, kernel_init=_zeros,
                                     rngs=rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(
            self.modulation(nnx.silu(c)), 6, axis=-1
        )
        x = constrain(x, RESIDUAL)
        x = x + gate1[:, None, :] * self.attention(modulate(self.norm1(x), shift1, scale1))
        x = constrain(x, RESIDUAL)
        hidden = nnx.gelu(self.fc1(modulate(self.norm2(x), shift2, scale2)), approximate=True)
        h = self.fc2(constrain(hidden, ("batch", None, "hidden")))
        return constrain(x + gate2[:, None, :] * h, RESIDUAL)


class DiT(nnx.Module):
    """u(x, t, label=None): (B, H, W, C), scalar or (B,) t -> (B, H, W, C)."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        image_size: int = 0,
        size: str = "B",
        patch_size: int = 2,
        hidden_dim: int = 0,
        depth: int = 0,
        num_heads: int = 0,
        mlp_ratio: float = 4.0,
        num_classes: int | None = None,
        conditioning: str = "adaln",
        control_dim: int = 0,
        control_schedule: str = "cosine",
        context_dim: int = 0,
        position_base_grid: int = 0,
        remat: str = "none",
        dtype=None,
        rngs: nnx.Rngs,
    ):
        check_remat("DiT", remat)
        if conditioning not in CONDITIONING:
            raise ValueError(f"DiT conditioning must be one of {CONDITIONING}, got {conditioning!r}.")
        if control_schedule not in CONTROL_SCHEDULES:
            raise ValueError(
                f"DiT control_schedule must be one of {CONTROL_SCHEDULES}, got {control_schedule!r}."
            )
        if context_dim and conditioning != "attention":
            raise ValueError(
                "Text embeddings (context_dim > 0) are read through attention: set "
                "conditioning='attention'."
            )
        if size not in DIT_SIZES:
            raise ValueError(f"Unknown DiT size {size!r}; expected one of {list(DIT_SIZES)}.")
        if patch_size not in PATCH_SIZES:
            raise ValueError(f"DiT patch_size must be one of {PATCH_SIZES}, got {patch_size}.")
        self.event_shape = tuple(event_shape)
        check_image_shape("DiT", self.event_shape, image_size, patch_size)
        hidden, blocks, heads = DIT_SIZES[size]
        hidden = hidden_dim or hidden
        depth = depth or blocks
        num_heads = num_heads or heads
        height, width, channels = self.event_shape
        if height != width:
            raise ValueError(f"DiT reads square images, got {height}x{width}.")
        self.patch_size = patch_size
        self.num_classes = num_classes
        self.dtype = dtype
        self.grid = height // patch_size
        patch_dim = patch_size * patch_size * channels
        self.patch_embed = nnx.Linear(patch_dim, hidden, dtype=dtype, kernel_init=_xavier,
                                      rngs=rngs)
        self.hidden = hidden
        self.conditioning = conditioning
        self.control_dim = control_dim
        self.control_schedule = control_schedule
        self.context_dim = context_dim
        self.position_base_grid = position_base_grid
        self.remat = remat
        in_adaln = num_classes if conditioning == "adaln" else None
        self.embed = TimeLabelEmbedding(
            hidden, frequency_dim=256, num_classes=in_adaln, dtype=dtype, rngs=rngs
        )
        if num_classes is not None and conditioning == "attention":
            self.label_token = nnx.Embed(
                num_classes + 1, hidden, embedding_init=nnx.initializers.normal(0.02), rngs=rngs
            )
        if control_dim:
            self.control_embed = ControlEmbedding(control_dim, hidden, dtype=dtype, rngs=rngs)
        if context_dim:
            self.context_proj = nnx.Linear(context_dim, hidden, dtype=dtype, kernel_init=_xavier,
                                           rngs=rngs)
        self.blocks = nnx.List(
            [DiTBlock(hidden, num_heads, mlp_ratio, dtype=dtype, rngs=rngs) for _ in range(depth)]
        )
        self.norm_out = nnx.LayerNorm(hidden, use_scale=False, use_bias=False, epsilon=1e-6,
                                      dtype=dtype, rngs=rngs)
        self.modulation_out = nnx.Linear(hidden, 2 * hidden, dtype=dtype, kernel_init=_zeros,
                                         rngs=rngs)
        self.out = nnx.Linear(hidden, patch_dim, dtype=dtype, kernel_init=_zeros, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        label: jax.Array | None = None,
        control: jax.Array | None = None,
        context: jax.Array | None = None,
    ) -> jax.Array:
        """x (B, H, W, C), t scalar or (B,), label (B,), control (B, control_dim) (NaN rows or
        None: no metadata), context (B, M, context_dim) -> (B, H, W, C)."""
        check_image_input("DiT", x, self.event_shape)
        check_labels("DiT", label, self.num_classes, x.shape[0])
        if control is not None and not self.control_dim:
            raise ValueError("This DiT takes no control metadata (control_dim=0) but got control.")
        if (context is None) != (not self.context_dim):
            raise ValueError(
                f"This DiT reads text embeddings (B, M, {self.context_dim}) as `context`."
                if self.context_dim else "This DiT takes no text embeddings (context_dim=0)."
            )
        b, p, g = x.shape[0], self.patch_size, self.grid
        channels = x.shape[-1]
        patches = x.reshape(b, g, p, g, p, channels).transpose(0, 1, 3, 2, 4, 5)
        tokens = self.patch_embed(patches.reshape(b, g * g, p * p * channels).astype(self.dtype
                                                                                   or x.dtype))
        positions = position_embedding_2d(g, self.hidden, self.position_base_grid)
        tokens = tokens + jnp.asarray(positions, tokens.dtype)
        c = self.embed(t, b, label)
        if self.control_dim:
            if control is None:
                control = null_control(b, self.control_dim)
            strength = (
                control_strength(batch_time(t, b, jnp.float32))
                if self.control_schedule == "cosine"
                else jnp.ones((b,), jnp.float32)
            )
            c = c + strength[:, None].astype(c.dtype) * self.control_embed(control).astype(c.dtype)
        extra = []
        if self.num_classes is not None and self.conditioning == "attention":
            extra.append(self.label_token(label)[:, None, :].astype(tokens.dtype))
        if self.context_dim:
            if context.ndim != 3 or context.shape[0] != b or context.shape[2] != self.context_dim:
                raise ValueError(
                    f"context must have shape ({b}, M, {self.context_dim}), got {context.shape}."
                )
            extra.append(self.context_proj(context.astype(self.dtype or x.dtype)))
        tokens = jnp.concatenate([*extra, tokens], axis=1)
        apply = rematerialised(lambda block, x, cond: block(x, cond), self.remat)
        for block in self.blocks:
            tokens = apply(block, tokens, c)
        tokens = tokens[:, tokens.shape[1] - g * g :]
        shift, scale = jnp.split(self.modulation_out(nnx.silu(c)), 2, axis=-1)
        out = self.out(modulate(self.norm_out(tokens), shift, scale))
        out = out.reshape(b, g, g, p, p, channels).transpose(0, 1, 3, 2, 4, 5)
        return out.reshape(x.shape).astype(x.dtype)
