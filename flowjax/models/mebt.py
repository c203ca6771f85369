"""MeBT: the memory-efficient bidirectional transformer over a grid of video tokens.

Yoo et al., CVPR 2023, "Towards End-to-End Generative Modeling of Long Videos with
Memory-Efficient Bidirectional Transformers", section 3.2 (eqs. 3-6). The N = t h w tokens of
a video (ids in [0, V); id V is the mask) are split into the visible context tokens and the
masked tokens; L learned latent tokens carry everything between them, so that no layer attends
N positions to N positions and the cost is O(L N):

    enc    latents <- visible context tokens        (cross-attention, L x N_visible; eq. 3)
    self   latents <- latents                       (self-attention, L x L)
    dec    masked tokens <- latents                 (cross-attention, N_masked x L; eq. 5)
    lt2l   latents <- latents and masked tokens     (attention, L x (L + N_masked); eq. 6)

Each layer is a pre-LN block (one layer norm shared by its queries and keys, as the authors'
code has it): q <- q + Attn(LN(q), LN(k)); q <- q + MLP(LN2(q)) with a GELU MLP of width
`mlp_ratio` d and biased projections. The paper's network (`MEBT_LAYERS`): d 1,024, 16 heads,
256 latents and 24 blocks, 7 enc / 6 self alternating, then 6 dec / 5 lt2l alternating
(enc self enc ... self enc, dec lt2l dec ... lt2l dec). The context stream is the embedding of
the visible tokens plus their positions and is never updated; the masked stream starts as one
learned mask embedding plus the positions and is updated by the dec layers only; the logits over
the V data tokens are read from the masked stream (final layer norm, a linear head).

Fixed shapes under jit: both streams hold all N positions, with a visibility mask (B, N). The
enc attention gives the masked positions weight exactly 0 (their logits are replaced by the
dtype's most negative value and the weights zeroed; an empty context reads nothing), the lt2l
attention does the same for the visible positions, and the dec layers are computed at every
position (only the masked ones' outputs are used), so a masked token's logits depend on the
visible tokens and their positions only, never on the values at other masked positions, and
are invariant to any reordering of the sequence (tested). Costs per layer: enc and dec
O(L N d), lt2l O(L (L + N) d), self O(L^2 d), MLPs O((L + N) d^2) in dec layers.

Positions are factorised over (t, h, w): the sum of one embedding per axis, learned (the
paper's table is one learned vector per position; factorising keeps a table of t + h + w rows)
or sinusoidal (fixed). The table has `event_shape[0]` frames: a longer grid is an error.

Shapes: `model(x, visible=None, frame_offset=0)` with x (B, t, h, w) int ids in [0, V] and
visible (B, t, h, w) bool (None: x != V) returns logits (B, t, h, w, V) float32 (meaningful at
the masked positions). `model.sequence_logits(tokens, positions, visible)` is the same network
on a flat sequence: tokens (B, N), integer (t, h, w) coordinates (B, N, 3), visible (B, N) ->
(B, N, V).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from flowjax._checks import check_tokens
from flowjax.models.layers import RESIDUAL, check_remat, rematerialised
from flowjax.parallel import constrain

LAYER_KINDS = ("enc", "self", "dec", "lt2l")
"""The four layer kinds (module docstring)."""


def mebt_layers(num_enc: int, num_dec: int) -> tuple[str, ...]:
    """The paper's layer order for `num_enc` enc and `num_dec` dec layers: enc / self
    alternating (num_enc - 1 self), then dec / lt2l alternating (num_dec - 1 lt2l)."""
    if num_enc < 1 or num_dec < 1:
        raise ValueError(
            f"MeBT needs at least one enc and one dec layer, got {num_enc}, {num_dec}."
        )
    encoder = ("enc", "self") * (num_enc - 1) + ("enc",)
    decoder = ("dec", "lt2l") * (num_dec - 1) + ("dec",)
    return encoder + decoder


MEBT_LAYERS = mebt_layers(7, 6)
"""The paper's 24 blocks (Ugness/MeBT configs: 7 enc / 6 self, then 6 dec / 5 lt2l)."""

MEBT_SHARDING_RULES = (
    (r"blocks/\d+/(query|key|value|fc1)/kernel$", ("embed", "mlp")),
    (r"blocks/\d+/(out|fc2)/kernel$", ("mlp", "embed")),
    (r"token_embedding$", ("vocab", "embed")),
    (r"head/kernel$", ("embed", "vocab")),
)
"""(regex, logical axes) rules of `config.sharding.rules` for MeBT's large kernels."""


def sinusoidal_table(length: int, dim: int) -> Float[Array, "length dim"]:
    """Fixed sinusoidal position features (Vaswani et al., 2017, section 3.5) of positions
    0..length - 1: [sin(p w_k), cos(p w_k)] with w_k = 10000^(-2k / dim)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def masked_attention(
    q: Float[Array, "B Lq H d"],
    k: Float[Array, "B Lk H d"],
    v: Float[Array, "B Lk H d"],
    key_mask: Bool[Array, "B Lk"],
) -> Float[Array, "B Lq H d"]:
    """softmax(q k^T / sqrt(d)) v over the keys where `key_mask` is True; a query whose keys
    are all masked reads 0 (not the mean of the masked values)."""
    out = jax.nn.dot_product_attention(q, k, v, mask=key_mask[:, None, None, :])
    any_key = jnp.any(key_mask, axis=1)[:, None, None, None]
    return jnp.where(any_key, out, 0.0).astype(q.dtype)


class MeBTBlock(nnx.Module):
    """One pre-LN block of `kind` (module docstring): queries (B, Lq, d) read keys (B, Lk, d)
    where `key_mask` (B, Lk) is True -> the updated queries (B, Lq, d)."""

    def __init__(self, kind: str, width: int, heads: int, mlp_ratio: float, *, dtype,
                 rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"The MeBT width {width} is not divisible by {heads} heads.")
        self.kind, self.heads = kind, heads
        linear = dict(dtype=dtype, param_dtype=jnp.float32,
                      kernel_init=nnx.initializers.normal(0.02), rngs=rngs)
        self.norm1 = nnx.LayerNorm(width, dtype=jnp.float32, rngs=rngs)
        self.query = nnx.Linear(width, width, **linear)
        self.key = nnx.Linear(width, width, **linear)
        self.value = nnx.Linear(width, width, **linear)
        self.out = nnx.Linear(width, width, **linear)
        self.norm2 = nnx.LayerNorm(width, dtype=jnp.float32, rngs=rngs)
        self.fc1 = nnx.Linear(width, int(mlp_ratio * width), **linear)
        self.fc2 = nnx.Linear(int(mlp_ratio * width), width, **linear)

    def __call__(
        self, queries: Float[Array, "B Lq d"], keys: Float[Array, "B Lk d"],
        key_mask: Bool[Array, "B Lk"],
    ) -> Float[Array, "B Lq d"]:
        b, lq, width = queries.shape
        lk = keys.shape[1]
        dtype = self.query.dtype or jnp.float32
        hq, hk = self.norm1(queries).astype(dtype), self.norm1(keys).astype(dtype)
        heads = ("batch", None, "heads", None)
        q = constrain(self.query(hq).reshape(b, lq, self.heads, -1), heads)
        k = constrain(self.key(hk).reshape(b, lk, self.heads, -1), heads)
        v = constrain(self.value(hk).reshape(b, lk, self.heads, -1), heads)
        attended = masked_attention(q, k, v, key_mask).reshape(b, lq, width)
        x = queries + self.out(attended).astype(jnp.float32)
        x = constrain(x, RESIDUAL)
        hidden = nnx.gelu(self.fc1(self.norm2(x).astype(dtype)), approximate=False)
        hidden = constrain(hidden, ("batch", None, "hidden"))
        return constrain(x + self.fc2(hidden).astype(jnp.float32), RESIDUAL)


class MeBT(nnx.Module):
    """Logits of masked video tokens (module docstring): (B, t, h, w) -> (B, t, h, w, V)."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        vocab_size: int,
        hidden_dim: int = 1024,
        num_heads: int = 16,
        num_latents: int = 256,
        layers: Sequence[str] = MEBT_LAYERS,
        mlp_ratio: float = 4.0,
        positions: str = "learned",
        remat: str = "none",
        num_classes: int | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) != 3 or min(event_shape) < 1:
            raise ValueError(
                f"MeBT reads token grids (t, h, w), got event shape {event_shape}; use a "
                "video-token source (data.source='video_tokens')."
            )
        if num_classes is not None:
            raise ValueError("MeBT is unconditional here: use data without class labels.")
        if not (isinstance(vocab_size, int) and vocab_size >= 2):
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
        layers = tuple(layers)
        unknown = sorted(set(layers) - set(LAYER_KINDS))
        if unknown or "dec" not in layers:
            raise ValueError(
                f"model.layers must be kinds of {LAYER_KINDS} with at least one 'dec' (the "
                f"logits are read from the masked tokens), got {layers}."
            )
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {positions!r}.")
        if num_latents < 1 or hidden_dim % 2:
            raise ValueError(
                f"MeBT needs num_latents >= 1 and an even hidden_dim, got {num_latents}, "
                f"{hidden_dim}."
            )
        check_remat("MeBT", remat)
        self.event_shape, self.vocab_size, self.mask_id = event_shape, vocab_size, vocab_size
        self.width, self.layers, self.positions, self.remat = hidden_dim, layers, positions, remat
        init = nnx.initializers.normal(0.02)
        self.token_embedding = nnx.Param(init(rngs.params(), (vocab_size + 1, hidden_dim)))
        self.mask_embedding = nnx.Param(init(rngs.params(), (hidden_dim,)))
        self.latents = nnx.Param(init(rngs.params(), (num_latents, hidden_dim)))
        if positions == "learned":
            self.position_tables = nnx.List(
                [nnx.Param(init(rngs.params(), (n, hidden_dim))) for n in event_shape]
            )
        self.blocks = nnx.List(
            [MeBTBlock(kind, hidden_dim, num_heads, mlp_ratio, dtype=dtype, rngs=rngs)
             for kind in layers]
        )
        self.norm_out = nnx.LayerNorm(hidden_dim, dtype=jnp.float32, rngs=rngs)
        self.head = nnx.Linear(hidden_dim, vocab_size, use_bias=False, dtype=dtype,
                               param_dtype=jnp.float32, kernel_init=init, rngs=rngs)

    # Positions ----------------------------------------------------------------------------------

    def position_embedding(self, positions: Int[Array, "B N 3"]) -> Float[Array, "B N d"]:
        """The sum of the (t, h, w) embeddings of integer coordinates (B, N, 3)."""
        total = 0.0
        for axis, size in enumerate(self.event_shape):
            table = (self.position_tables[axis][...] if self.positions == "learned"
                     else sinusoidal_table(size, self.width))
            total = total + jnp.take(table, positions[..., axis], axis=0)
        return total

    def grid_positions(self, length: int, frame_offset: Int[Array, ""] | int = 0
                       ) -> Int[Array, "N 3"]:
        """The (t, h, w) coordinates of a grid of `length` frames starting at frame
        `frame_offset`, in row-major order (N = length h w, 3)."""
        self.check_frames(length)
        _, h, w = self.event_shape
        t, i, j = jnp.meshgrid(jnp.arange(length), jnp.arange(h), jnp.arange(w), indexing="ij")
        coords = jnp.stack([t + frame_offset, i, j], axis=-1)
        return coords.reshape(-1, 3).astype(jnp.int32)

    def check_frames(self, length: int) -> None:
        if not 1 <= length <= self.event_shape[0]:
            raise ValueError(
                f"The token grid has {length} frames; this MeBT's positional table holds 1 to "
                f"{self.event_shape[0]} (model event shape {self.event_shape}). Train a model "
                "on longer grids (data event shape) or sample at most that many frames."
            )

    # Calls --------------------------------------------------------------------------------------

    def sequence_logits(
        self,
        tokens: Int[Array, "B N"],
        positions: Int[Array, "B N 3"],
        visible: Bool[Array, "B N"],
    ) -> Float[Array, "B N V"]:
        """The network on a flat sequence of tokens with their coordinates (module docstring).
        Values at positions that are not visible are never read."""
        check_tokens(tokens, self.vocab_size + 1, "tokens")
        shapes_ok = positions.shape == (*tokens.shape, 3) and visible.shape == tokens.shape
        if tokens.ndim != 2 or not shapes_ok:
            raise ValueError(
                f"MeBT expects tokens (B, N), positions (B, N, 3) and visible (B, N); got "
                f"{tokens.shape}, {positions.shape}, {visible.shape}."
            )
        b = tokens.shape[0]
        pos = self.position_embedding(positions)
        ids = jnp.where(visible, tokens, self.mask_id)
        context = constrain(jnp.take(self.token_embedding[...], ids, axis=0) + pos, RESIDUAL)
        masked = constrain(self.mask_embedding[...] + pos, RESIDUAL)
        latents = jnp.broadcast_to(self.latents[...], (b, *self.latents.shape))
        latent_mask = jnp.ones(latents.shape[:2], bool)
        for block in self.blocks:
            apply = rematerialised(lambda block, q, k, m: block(q, k, m), self.remat)
            if block.kind == "enc":
                latents = apply(block, latents, context, visible)
            elif block.kind == "self":
                latents = apply(block, latents, latents, latent_mask)
            elif block.kind == "dec":
                masked = apply(block, masked, latents, latent_mask)
            else:  # lt2l
                keys = jnp.concatenate([latents, masked], axis=1)
                latents = apply(block, latents, keys, jnp.concatenate([latent_mask, ~visible], 1))
        h = self.norm_out(masked).astype(self.head.dtype or jnp.float32)
        return self.head(h).astype(jnp.float32)

    def __call__(
        self,
        x: Int[Array, "B t h w"],
        visible: Bool[Array, "B t h w"] | None = None,
        frame_offset: Int[Array, ""] | int = 0,
    ) -> Float[Array, "B t h w V"]:
        """Logits of every position of the grid x (ids in [0, V], V the mask); `visible`
        (None: x != V) says which tokens are context; `frame_offset` is the frame index of the
        grid's first frame in the positional table (a clip cut from a longer video)."""
        if x.ndim != 4 or tuple(x.shape[2:]) != self.event_shape[1:]:
            raise ValueError(
                f"MeBT expects token grids (B, t, h, w) with (h, w) = {self.event_shape[1:]}, "
                f"got {x.shape}."
            )
        visible = x != self.mask_id if visible is None else visible
        if visible.shape != x.shape:
            raise ValueError(f"visible must have the shape of x {x.shape}, got {visible.shape}.")
        b, length = x.shape[:2]
        positions = jnp.broadcast_to(self.grid_positions(length, frame_offset),
                                     (b, x[0].size, 3))
        logits = self.sequence_logits(x.reshape(b, -1), positions, visible.reshape(b, -1))
        return logits.reshape(*x.shape, self.vocab_size)
