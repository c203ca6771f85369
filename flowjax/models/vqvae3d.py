"""A 3D vector-quantised video autoencoder: the TATS 3D-VQGAN design (Ge et al., ECCV 2022,
"Long Video Generation with Time-Agnostic VQGAN and Time-Sensitive Transformer", section 3.1),
the video tokenizer of MeBT (Yoo et al., CVPR 2023).

Videos are (B, T, H, W, C) in [-1, 1] (channels last; TATS is channels first). With
downsampling factors (f_t, f_h, f_w), powers of two, and n = log2 of the largest of them:

  encoder  3x3x3 conv to c (`hidden_channels`); for i = 1..n a 4x4x4 conv with stride 2 on
           the axes not yet reduced by their factor (stride 1 on the others) to c 2^i channels
           and a residual block; norm, SiLU.
  z        1x1x1 conv to the code width D: z (B, t, h, w, D), t = T / f_t, h = H / f_h, w = W / f_w.
  quantise k(z) = argmin_k ||z - e_k||^2 over the codebook e (K, D) (van den Oord et al., 2017,
           eq. 1), z_q = e_k(z); the decoder reads the straight-through value
           z + stop_gradient(z_q - z), whose gradient with respect to z is the identity (eq. 2).
  decoder  1x1x1 conv back to c 2^n; norm, SiLU; for i = 1..n a 4x4x4 transposed conv (stride 2
           where the encoder downsampled) to c 2^(n-i) channels and two residual blocks; 3x3x3
           conv to C.

Residual block: x + conv(SiLU(norm(conv(SiLU(norm(x)))))) with 3x3x3 convs. Every conv pads its
input by replicating edge values ("same" padding; total k - s per axis, the larger half first,
as TATS's SamePadConv3d), and the transposed conv pads likewise before a transposed conv that
crops k - 1 on each side, so a stride-2 layer exactly halves or doubles an axis. Norms: group
norm (32 groups in TATS; `norm_groups`, eps 1e-6) for training here, or batch norm with fixed
running statistics (eps 1e-5; TATS's published tokenizers use SyncBatchNorm) to run converted
checkpoints (`flowjax.models.convert_tats`), which cannot be trained by this module.

Losses (returned by `__call__`, combined by the "video_vq" objective): the codebook loss
||stop_gradient(z) - z_q||^2 and the commitment loss beta ||z - stop_gradient(z_q)||^2, beta =
`commitment_weight` (0.25 as TATS), both means over all entries (eq. 3). The codebook is
learned by the codebook loss, not by TATS's exponential moving averages (which need state
updated outside the gradient step); `codebook_size` K and `embedding_dim` D as TATS (16,384 and
256 for its 128 px tokenizers). Perplexity: exp of the entropy of the codes' frequencies in the
batch, as TATS logs it.

l2-normalised codes (`normalize_codes=True`; ViT-VQGAN, Yu et al., ICLR 2022, "Vector-quantized
Image Modeling with Improved VQGAN", section 3.2): with l2(v) = v / ||v||, the encoder outputs
and the codes are normalised before the lookup, so that the nearest code is the one of largest
cosine similarity, k(z) = argmax_k <l2(z), l2(e_k)> (the same as argmin_k ||l2(z) - l2(e_k)||^2),
the decoder reads l2(z) + stop_gradient(l2(e_k) - l2(z)) (the normalised code, straight through
to l2(z)), and both losses above are taken between l2(z) and l2(e_k). The codes are drawn from a
standard normal and normalised (points uniform on the unit sphere, on the scale of l2(z)); the
plain lookup's codes are uniform in (-1/K, 1/K) as TATS. Proposed against codebook collapse and
stateless (nothing is updated outside the gradient step), it did not prevent the collapse of the
moving-digits tokenizer (experiments/mebt/README.md). Off by default, which is the lookup of
TATS and of its converted checkpoints.

Finite scalar quantisation (`fsq_levels=(L_1, ..., L_d)`; Mentzer et al., ICLR 2024, "Finite
Scalar Quantization: VQ-VAE Made Simple", section 3 and appendix A.1): no learned codebook. The
encoder outputs d = len(levels) channels, each bounded to L_i values and rounded,

    f(z)_i = tanh(z_i + s_i) h_i - o_i,   h_i = (L_i - 1)(1 - 1e-3) / 2,
             o_i = 1/2 for even L_i, 0 for odd,   s_i = artanh(o_i / h_i),
    q(z)_i = round(f(z)_i) / floor(L_i / 2)    (straight through: f + sg(round(f) - f)),

so f(0) = 0 and q takes L_i values in [-1, 1] per channel; the token id is the mixed-radix number
sum_i (round(f(z)_i) + floor(L_i / 2)) prod_{j<i} L_j, and the codebook, of size prod_i L_i,
is the grid of those values. (The paper's listing writes the shift with tan where f(0) = 0
needs artanh; the two differ by under 2% of a level.) There is nothing to collapse, no codebook
or commitment loss (both reported as 0) and nothing updated outside the gradient step. The
paper's level choices per codebook size: 2^8 (8, 6, 5), 2^10 (8, 5, 5, 5), 2^12 (7, 5, 5, 5, 5),
2^14 (8, 8, 8, 6, 5), 2^16 (8, 8, 8, 5, 5, 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

NORMS = ("group", "batch")


def same_padding(kernel: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int]]:
    """TATS's "same" padding per axis: total k - s, the larger half before."""
    return [((k - s) // 2 + (k - s) % 2, (k - s) // 2) for k, s in zip(kernel, stride, strict=True)]


class SamePadConv3d(nnx.Module):
    """A 3D conv (or transposed conv) over (B, T, H, W, C_in) after replicate padding.

    kernel: (k, k, k, C_in, C_out); the transposed conv's kernel is PyTorch's ConvTranspose3d
    weight (C_in, C_out, k, k, k) moved to the same layout, applied flipped over a stride-dilated
    input. Output: (B, T / s_t, ...) for a conv, (B, T s_t, ...) for a transposed conv.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: Sequence[int] = (1, 1, 1),
                 *, transpose: bool = False, rngs: nnx.Rngs):
        k = (kernel_size,) * 3
        fan_in = c_in * kernel_size**3
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default initialisation range
        self.kernel = nnx.Param(
            jax.random.uniform(rngs.params(), (*k, c_in, c_out), jnp.float32, -bound, bound)
        )
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (c_out,), jnp.float32, -bound, bound))
        self.kernel_size, self.stride, self.transpose = k, tuple(stride), transpose

    def __call__(self, x: jax.Array) -> jax.Array:
        pad = same_padding(self.kernel_size, self.stride)
        x = jnp.pad(x, [(0, 0), *pad, (0, 0)], mode="edge")
        dims = ("NDHWC", "DHWIO", "NDHWC")
        if self.transpose:
            y = jax.lax.conv_general_dilated(
                x, self.kernel[...][::-1, ::-1, ::-1], (1, 1, 1), [(0, 0)] * 3,
                lhs_dilation=self.stride, dimension_numbers=dims,
            )
        else:
            y = jax.lax.conv_general_dilated(x, self.kernel[...], self.stride, "VALID",
                                             dimension_numbers=dims)
        return y + self.bias[...]


class FrozenBatchNorm(nnx.Module):
    """Batch norm in evaluation mode: (x - mean) / sqrt(var + eps) * scale + bias over the last
    axis, with fixed running statistics (as loaded from a checkpoint)."""

    def __init__(self, channels: int, epsilon: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((channels,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((channels,), jnp.float32))
        self.epsilon = epsilon

    def __call__(self, x: jax.Array) -> jax.Array:
        inv = jax.lax.rsqrt(self.var[...] + self.epsilon) * self.scale[...]
        return (x - self.mean[...]) * inv + self.bias[...]


def _norm(channels: int, norm: str, groups: int, rngs: nnx.Rngs) -> nnx.Module:
    if norm == "batch":
        return FrozenBatchNorm(channels)
    return nnx.GroupNorm(channels, num_groups=groups, epsilon=1e-6, rngs=rngs)


class ResBlock3d(nnx.Module):
    """x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))), 3x3x3 convs, width kept."""

    def __init__(self, channels: int, norm: str, groups: int, *, rngs: nnx.Rngs):
        self.norm1 = _norm(channels, norm, groups, rngs)
        self.conv1 = SamePadConv3d(channels, channels, 3, rngs=rngs)
        self.norm2 = _norm(channels, norm, groups, rngs)
        self.conv2 = SamePadConv3d(channels, channels, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        return x + self.conv2(jax.nn.silu(self.norm2(h)))


def _strides(downsample: Sequence[int]) -> list[tuple[int, int, int]]:
    """The per-layer strides: layer i halves the axes whose factor is not yet reached."""
    levels = [int(math.log2(f)) for f in downsample]
    return [tuple(2 if lv > i else 1 for lv in levels) for i in range(max(levels))]


class Encoder3d(nnx.Module):
    """(B, T, H, W, C) -> (B, t, h, w, c 2^n) (module docstring)."""

    def __init__(self, c_in: int, hidden: int, downsample: Sequence[int], norm: str, groups: int,
                 *, rngs: nnx.Rngs):
        self.conv_first = SamePadConv3d(c_in, hidden, 3, rngs=rngs)
        self.down, self.res = nnx.List(), nnx.List()
        for i, stride in enumerate(_strides(downsample)):
            self.down.append(SamePadConv3d(hidden * 2**i, hidden * 2 ** (i + 1), 4, stride,
                                           rngs=rngs))
            self.res.append(ResBlock3d(hidden * 2 ** (i + 1), norm, groups, rngs=rngs))
        self.out_channels = hidden * 2 ** len(self.down)
        self.norm_out = _norm(self.out_channels, norm, groups, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv_first(x)
        for down, res in zip(self.down, self.res, strict=True):
            h = res(down(h))
        return jax.nn.silu(self.norm_out(h))


class Decoder3d(nnx.Module):
    """(B, t, h, w, c 2^n) -> (B, T, H, W, C) (module docstring)."""

    def __init__(self, c_out: int, hidden: int, downsample: Sequence[int], norm: str, groups: int,
                 *, rngs: nnx.Rngs):
        strides = _strides(downsample)
        n = len(strides)
        self.norm_in = _norm(hidden * 2**n, norm, groups, rngs)
        self.up, self.res1, self.res2 = nnx.List(), nnx.List(), nnx.List()
        for i, stride in enumerate(strides):
            c_i, c_o = hidden * 2 ** (n - i), hidden * 2 ** (n - i - 1)
            self.up.append(SamePadConv3d(c_i, c_o, 4, stride, transpose=True, rngs=rngs))
            self.res1.append(ResBlock3d(c_o, norm, groups, rngs=rngs))
            self.res2.append(ResBlock3d(c_o, norm, groups, rngs=rngs))
        self.conv_last = SamePadConv3d(hidden, c_out, 3, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = jax.nn.silu(self.norm_in(h))
        for up, res1, res2 in zip(self.up, self.res1, self.res2, strict=True):
            h = res2(res1(up(h)))
        return self.conv_last(h)


def nearest_codes(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """argmin_k ||z - e_k||^2: int32 (...,) for z (..., D) and codebook e (K, D) (ties: the
    smallest k)."""
    distances = (
        jnp.sum(z * z, axis=-1, keepdims=True)
        - 2.0 * z @ codebook.T
        + jnp.sum(codebook * codebook, axis=-1)
    )
    return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||, eps) over the last axis (finite, with a zero gradient, at x = 0)."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def most_similar_codes(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """argmax_k <l2(z), l2(e_k)> (cosine similarity): int32 (...,) for z (..., D) and codebook e
    (K, D) (ties: the smallest k)."""
    return jnp.argmax(l2_normalize(z) @ l2_normalize(codebook).T, axis=-1).astype(jnp.int32)


def fsq_bound(z: jax.Array, levels: Sequence[int]) -> jax.Array:
    """f(z) (..., d) of the module docstring: each channel of z (..., d) squashed into an interval
    that rounds to L_i integers, with f(0) = 0."""
    levels_ = np.asarray(levels, np.float64)
    half = (levels_ - 1.0) * (1.0 - 1e-3) / 2.0
    offset = np.where(levels_ % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half)
    return (jnp.tanh(z + shift.astype(np.float32)) * half.astype(np.float32)
            - offset.astype(np.float32))


def fsq_quantize(z: jax.Array, levels: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """(q(z) (..., d) straight through to f(z), token ids int32 (...,)) of encoder outputs z
    (..., d): finite scalar quantisation (module docstring)."""
    bounded = fsq_bound(z, levels)
    integers = jax.lax.stop_gradient(jnp.round(bounded))
    rounded = bounded + (integers - jax.lax.stop_gradient(bounded))
    half_width = np.asarray(levels) // 2
    digits = integers.astype(jnp.int32) + half_width
    radix = np.cumprod([1, *levels[:-1]]).astype(np.int32)
    return rounded / half_width.astype(np.float32), jnp.sum(digits * radix, axis=-1)


def fsq_codes(indices: jax.Array, levels: Sequence[int]) -> jax.Array:
    """The code vectors q (..., d) in [-1, 1] of token ids int (...,) in [0, prod(levels))."""
    radix = np.cumprod([1, *levels[:-1]])
    digits = (indices[..., None] // radix) % np.asarray(levels)
    half_width = np.asarray(levels) // 2
    return ((digits - half_width) / half_width).astype(jnp.float32)


def code_perplexity(indices: jax.Array, codebook_size: int) -> jax.Array:
    """exp(-sum_k p_k log p_k) of the frequencies p_k of the codes in `indices` (any shape)."""
    counts = jnp.zeros((codebook_size,), jnp.float32).at[indices.reshape(-1)].add(1.0)
    p = counts / indices.size
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


class VQVAE3D(nnx.Module):
    """The 3D VQ video autoencoder of the module docstring.

    Args:
      event_shape: (T, H, W, C) of one video; T, H, W divisible by their factors.
      hidden_channels: c, the width of the first conv (TATS n_hiddens: 32 at 128 px).
      downsample: (f_t, f_h, f_w), powers of two (TATS: 4, 8, 8 at 128 px).
      codebook_size: K (TATS: 16,384).
      embedding_dim: D, the code width (TATS: 256).
      norm: "group" (trainable) or "batch" (frozen running statistics, converted checkpoints).
      norm_groups: groups of the group norms (TATS: 32); must divide every width.
      commitment_weight: beta of the commitment loss (0.25).
      normalize_codes: look codes up by cosine similarity between l2-normalised encoder outputs
        and codes, and decode the normalised codes (ViT-VQGAN; module docstring); False: the
        plain l2 lookup of TATS and of its converted checkpoints.
      fsq_levels: finite scalar quantisation with these levels per channel instead of a learned
        codebook (module docstring); codebook_size must be their product and embedding_dim
        their number. None or () (default): the codebook.
      num_classes, dtype: accepted for the registry; unconditional, float32 throughout.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        hidden_channels: int = 16,
        downsample: Sequence[int] = (2, 4, 4),
        codebook_size: int = 512,
        embedding_dim: int = 64,
        norm: str = "group",
        norm_groups: int = 8,
        commitment_weight: float = 0.25,
        normalize_codes: bool = False,
        fsq_levels: Sequence[int] | None = None,
        num_classes: int | None = None,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        del num_classes, dtype
        event_shape = tuple(int(d) for d in event_shape)
        downsample = tuple(int(f) for f in downsample)
        if len(event_shape) != 4:
            raise ValueError(
                f"VQVAE3D reads videos (T, H, W, C); the data have examples of shape {event_shape}."
            )
        if len(downsample) != 3 or any(f < 1 or f & (f - 1) for f in downsample):
            raise ValueError(
                f"downsample must be three powers of two (time, height, width), e.g. (4, 8, 8); "
                f"got {downsample}."
            )
        if max(downsample) == 1:
            raise ValueError("downsample (1, 1, 1) has no encoder layer; downsample some axis.")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
        widths = [hidden_channels * 2**i for i in range(int(math.log2(max(downsample))) + 1)]
        if norm == "group" and any(w % norm_groups for w in widths):
            raise ValueError(
                f"norm_groups={norm_groups} must divide every width {widths} "
                f"(hidden_channels={hidden_channels} times powers of two)."
            )
        if codebook_size < 1 or embedding_dim < 1:
            raise ValueError(
                f"codebook_size and embedding_dim must be positive, got {codebook_size}, "
                f"{embedding_dim}."
            )
        fsq_levels = tuple(int(level) for level in fsq_levels) if fsq_levels else None
        if fsq_levels is not None:
            if min(fsq_levels) < 2:
                raise ValueError(f"fsq_levels must be integers >= 2, one per channel, got "
                                 f"{fsq_levels}; e.g. (8, 6, 5) for 240 codes.")
            if (math.prod(fsq_levels) != codebook_size or len(fsq_levels) != embedding_dim
                    or normalize_codes):
                raise ValueError(
                    f"With fsq_levels={fsq_levels} set codebook_size={math.prod(fsq_levels)} "
                    f"(their product), embedding_dim={len(fsq_levels)} (their number) and "
                    f"normalize_codes=False; got {codebook_size}, {embedding_dim} and "
                    f"{normalize_codes}."
                )
        self.fsq_levels = fsq_levels
        self.event_shape, self.downsample = event_shape, downsample
        self.codebook_size, self.embedding_dim = int(codebook_size), int(embedding_dim)
        self.commitment_weight, self.norm = float(commitment_weight), norm
        self.normalize_codes = bool(normalize_codes)
        self.latent_shape = self.check_video_shape((1, *event_shape))[1:]
        channels = event_shape[3]
        self.encoder = Encoder3d(channels, hidden_channels, downsample, norm, norm_groups,
                                 rngs=rngs)
        self.decoder = Decoder3d(channels, hidden_channels, downsample, norm, norm_groups,
                                 rngs=rngs)
        self.pre_vq_conv = SamePadConv3d(self.encoder.out_channels, embedding_dim, 1, rngs=rngs)
        self.post_vq_conv = SamePadConv3d(embedding_dim, self.encoder.out_channels, 1, rngs=rngs)
        if fsq_levels is not None:
            return
        shape = (codebook_size, embedding_dim)
        if self.normalize_codes:
            codebook = l2_normalize(jax.random.normal(rngs.params(), shape, jnp.float32))
        else:
            codebook = jax.random.uniform(rngs.params(), shape, jnp.float32,
                                          -1.0 / codebook_size, 1.0 / codebook_size)
        self.codebook = nnx.Param(codebook)

    def check_video_shape(self, shape: Sequence[int]) -> tuple[int, int, int, int]:
        """(B, t, h, w) of the token grid of videos of shape (B, T, H, W, C), or a ValueError."""
        shape = tuple(shape)
        f_t, f_h, f_w = self.downsample
        if len(shape) != 5:
            raise ValueError(
                f"VQVAE3D expects videos of shape (B, T, H, W, C), got an array of shape {shape}."
            )
        b, t, h, w, c = shape
        if c != self.event_shape[3]:
            raise ValueError(f"The model reads {self.event_shape[3]} channel(s), got {c} ({shape}).")
        if t % f_t or h % f_h or w % f_w:
            raise ValueError(
                f"Video of shape {shape}: frames T={t}, height H={h} and width W={w} must be "
                f"divisible by the downsampling factors {self.downsample}; crop or pad the clips."
            )
        return (b, t // f_t, h // f_h, w // f_w)

    def encode(self, video: jax.Array) -> jax.Array:
        """Videos (B, T, H, W, C) -> encoder outputs z (B, t, h, w, D), before quantisation."""
        self.check_video_shape(video.shape)
        return self.pre_vq_conv(self.encoder(video))

    def code_vectors(self) -> jax.Array:
        """The vectors (K, D) that the decoder reads for the K codes: the codebook, l2-normalised
        with `normalize_codes`, or the grid of FSQ values."""
        if self.fsq_levels is not None:
            return fsq_codes(jnp.arange(self.codebook_size), self.fsq_levels)
        codebook = self.codebook[...]
        return l2_normalize(codebook) if self.normalize_codes else codebook

    def lookup(self, z: jax.Array) -> jax.Array:
        """Token ids int32 (...,) of encoder outputs z (..., D): the nearest code, or with
        `normalize_codes` the code of largest cosine similarity, or the FSQ grid point."""
        if self.fsq_levels is not None:
            return fsq_quantize(z, self.fsq_levels)[1]
        if self.normalize_codes:
            return most_similar_codes(z, self.codebook[...])
        return nearest_codes(z, self.codebook[...])

    def quantize(self, z: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """z (..., D) -> (straight-through codes z + sg(z_q - z) (..., D), {"indices" int32 (...),
        "codebook_loss", "commitment_loss", "perplexity"} (scalars)); with `normalize_codes`, z
        and z_q are the l2-normalised encoder output and code (module docstring); with FSQ both
        losses are 0."""
        if self.fsq_levels is not None:
            codes, indices = fsq_quantize(z, self.fsq_levels)
            zero = jnp.zeros((), jnp.float32)
            return codes, {"indices": indices, "codebook_loss": zero, "commitment_loss": zero,
                           "perplexity": code_perplexity(indices, self.codebook_size)}
        indices = self.lookup(z)
        if self.normalize_codes:
            z = l2_normalize(z)
        z_q = self.code_vectors()[indices]
        aux = {
            "indices": indices,
            "codebook_loss": jnp.mean(jnp.square(jax.lax.stop_gradient(z) - z_q)),
            "commitment_loss": self.commitment_weight
            * jnp.mean(jnp.square(z - jax.lax.stop_gradient(z_q))),
            "perplexity": code_perplexity(indices, self.codebook_size),
        }
        return z + jax.lax.stop_gradient(z_q - z), aux

    def decode(self, codes: jax.Array) -> jax.Array:
        """Code vectors (B, t, h, w, D) -> videos (B, T, H, W, C)."""
        return self.decoder(self.post_vq_conv(codes))

    def encode_indices(self, video: jax.Array) -> jax.Array:
        """Videos (B, T, H, W, C) -> token ids int32 (B, t, h, w)."""
        return self.lookup(self.encode(video))

    def decode_indices(self, indices: jax.Array) -> jax.Array:
        """Token ids (B, t, h, w) in [0, codebook_size) -> videos (B, T, H, W, C)."""
        if indices.ndim != 4:
            raise ValueError(f"decode_indices expects tokens (B, t, h, w), got {indices.shape}.")
        return self.decode(self.code_vectors()[indices])

    def __call__(self, video: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Videos (B, T, H, W, C) -> (reconstruction (B, T, H, W, C), aux of `quantize`)."""
        codes, aux = self.quantize(self.encode(video))
        return self.decode(codes), aux


def tokenize_videos(model: VQVAE3D, videos: np.ndarray, batch_size: int) -> np.ndarray:
    """Token ids int32 (N, t, h, w) of videos (N, T, H, W, C) in [-1, 1], encoded `batch_size`
    at a time by one compiled function (the last batch padded by repeating its final video)."""
    videos = np.asarray(videos, np.float32)
    model.check_video_shape(videos.shape)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    graphdef, state = nnx.split(model)
    encode = jax.jit(lambda s, x: nnx.merge(graphdef, s).encode_indices(x))
    out = []
    for start in range(0, len(videos), batch_size):
        chunk = videos[start : start + batch_size]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - len(chunk), 0)])
        out.append(np.asarray(encode(state, padded))[: len(chunk)])
    return np.concatenate(out).astype(np.int32)


__all__ = [
    "NORMS",
    "Decoder3d",
    "Encoder3d",
    "FrozenBatchNorm",
    "ResBlock3d",
    "SamePadConv3d",
    "VQVAE3D",
    "code_perplexity",
    "fsq_bound",
    "fsq_codes",
    "fsq_quantize",
    "l2_normalize",
    "most_similar_codes",
    "nearest_codes",
    "same_padding",
    "tokenize_videos",
]
