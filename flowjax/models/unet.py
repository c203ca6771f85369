"""An ADM-style UNet velocity field u_theta(x, t[, y]) for images.

The network of "Diffusion Models Beat GANs on Image Synthesis" (Dhariwal & Nichol, 2021,
section 3: the ADM UNet), which the Flow Matching Guide (Lipman et al., 2024) trains for its
CIFAR-10 and ImageNet-32/64 results (section 1 of PAPERS.md): a 3x3 input convolution to
`channels`; then, at each resolution level l, `num_res_blocks` residual blocks of width
`channels * channel_mults[l]` (GroupNorm(32), SiLU, 3x3 conv; the time/label embedding applied
as a scale and shift of the second GroupNorm, "adaptive group normalisation"; dropout, with
per-example masks from `dropout_seed`, `flowjax.models.layers.dropout`; a zero-initialised 3x3
conv) with self-attention after each block at the levels whose
downsampling factor is in `attention_factors`, and a strided 3x3 conv to the next level; a
middle block (residual, attention, residual); the mirror-image upsampling path with
`num_res_blocks + 1` blocks per level, each reading the concatenated skip activation of the
downsampling path, and nearest-neighbour upsampling + 3x3 conv; GroupNorm, SiLU and a
zero-initialised 3x3 conv back to the image's channels.

Shapes: x (B, H, W, C) with H = W = `image_size` divisible by 2^(levels - 1), t a scalar or
(B,), label (B,) int in [0, num_classes] (num_classes is the "no label" token).

The Guide's configurations (`configs/fm_guide/`): CIFAR-10 channels=128, channel_mults=(2, 2, 2),
num_res_blocks=4, attention_factors=(2,), dropout=0.3; ImageNet-32/64 channels=192,
channel_mults=(1, 2, 3, 4), num_res_blocks=3, attention_factors=(2, 4, 8). `remat` ("none",
"full", "dots") recomputes each residual and attention block's activations in the backward pass
(`flowjax.models.layers.rematerialised`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.layers import (
    MultiHeadSelfAttention,
    TimeLabelEmbedding,
    check_image_input,
    check_image_shape,
    check_labels,
    check_remat,
    dropout,
    rematerialised,
)

_zeros = nnx.initializers.zeros_init()


def _norm(channels: int, groups: int, dtype, rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=min(groups, channels), dtype=dtype, rngs=rngs)


def _conv(c_in, c_out, dtype, rngs, *, kernel=3, strides=1, zero=False) -> nnx.Conv:
    kwargs = dict(kernel_init=_zeros) if zero else {}
    return nnx.Conv(
        c_in, c_out, (kernel, kernel), strides=strides, padding="SAME", dtype=dtype, rngs=rngs,
        **kwargs,
    )


class ResBlock(nnx.Module):
    """h = x + conv2(dropout(SiLU(GN(conv1(SiLU(GN(x)))) * (1 + scale) + shift))), with
    (scale, shift) a linear map of the embedding; (B, H, W, c_in) -> (B, H, W, c_out)."""

    def __init__(self, c_in, c_out, emb_dim, *, dropout, index, groups, dtype, rngs):
        self.rate, self.index = dropout, index
        self.norm1 = _norm(c_in, groups, dtype, rngs)
        self.conv1 = _conv(c_in, c_out, dtype, rngs)
        self.emb = nnx.Linear(emb_dim, 2 * c_out, dtype=dtype, rngs=rngs)
        self.norm2 = _norm(c_out, groups, dtype, rngs)
        self.conv2 = _conv(c_out, c_out, dtype, rngs, zero=True)
        self.skip = _conv(c_in, c_out, dtype, rngs, kernel=1) if c_in != c_out else None

    def __call__(self, x: jax.Array, emb: jax.Array, seeds: jax.Array | None) -> jax.Array:
        h = self.conv1(nnx.silu(self.norm1(x)))
        scale, shift = jnp.split(self.emb(nnx.silu(emb))[:, None, None, :], 2, axis=-1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(dropout(nnx.silu(h), self.rate, seeds, self.index))
        return (x if self.skip is None else self.skip(x)) + h


class AttentionBlock(nnx.Module):
    """x + proj(attention(GN(x))) over the H * W positions; (B, H, W, C) -> same."""

    def __init__(self, channels, head_dim, *, groups, dtype, rngs):
        self.norm = _norm(channels, groups, dtype, rngs)
        self.attention = MultiHeadSelfAttention(
            channels, max(channels // head_dim, 1), zero_output=True, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        tokens = self.norm(x).reshape(b, h * w, c)
        return x + self.attention(tokens).reshape(b, h, w, c)


class Level(nnx.Module):
    """The residual blocks (each optionally followed by attention) of one resolution level."""

    def __init__(self, widths_in, c_out, emb_dim, attention, head_dim, *, dropout, first_index,
                 groups, dtype, rngs):
        self.blocks = nnx.List(
            [
                ResBlock(c, c_out, emb_dim, dropout=dropout, index=first_index + i, groups=groups,
                         dtype=dtype, rngs=rngs)
                for i, c in enumerate(widths_in)
            ]
        )
        self.attention = nnx.List(
            [
                AttentionBlock(c_out, head_dim, groups=groups, dtype=dtype, rngs=rngs)
                for _ in widths_in
            ]
            if attention
            else []
        )


class UNet(nnx.Module):
    """u(x, t, label=None): (B, H, W, C), scalar or (B,) t -> (B, H, W, C)."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        image_size: int = 0,
        channels: int = 128,
        channel_mults: Sequence[int] = (2, 2, 2),
        num_res_blocks: int = 4,
        attention_factors: Sequence[int] = (2,),
        head_dim: int = 64,
        dropout: float = 0.0,
        norm_groups: int = 32,
        num_classes: int | None = None,
        remat: str = "none",
        dtype=None,
        rngs: nnx.Rngs,
    ):
        check_remat("UNet", remat)
        self.event_shape = tuple(event_shape)
        levels = len(channel_mults)
        check_image_shape("UNet", self.event_shape, image_size, 2 ** (levels - 1))
        if num_res_blocks < 1 or levels < 1 or channels < 1:
            raise ValueError(
                "UNet needs channels >= 1, channel_mults non-empty and num_res_blocks >= 1, got "
                f"{channels}, {tuple(channel_mults)}, {num_res_blocks}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet dropout must be in [0, 1), got {dropout}.")
        self.num_classes = num_classes
        self.remat = remat
        self.dtype = dtype
        image_channels = self.event_shape[-1]
        emb_dim = 4 * channels
        common = dict(dropout=dropout, groups=norm_groups, dtype=dtype, rngs=rngs)
        self.embed = TimeLabelEmbedding(
            emb_dim, frequency_dim=channels, num_classes=num_classes, dtype=dtype, rngs=rngs
        )
        self.conv_in = _conv(image_channels, channels, dtype, rngs)

        skips, c, blocks = [channels], channels, 0
        down, downsample = [], []
        for level, mult in enumerate(channel_mults):
            width = channels * mult
            widths_in = [c] + [width] * (num_res_blocks - 1)
            down.append(
                Level(widths_in, width, emb_dim, 2**level in attention_factors, head_dim,
                      first_index=blocks, **common)
            )
            blocks += len(widths_in)
            skips += [width] * num_res_blocks
            c = width
            if level < levels - 1:
                downsample.append(_conv(c, c, dtype, rngs, strides=2))
                skips.append(c)
        self.down, self.downsample = nnx.List(down), nnx.List(downsample)

        self.mid1 = ResBlock(c, c, emb_dim, index=blocks, **common)
        self.mid_attention = AttentionBlock(c, head_dim, groups=norm_groups, dtype=dtype, rngs=rngs)
        self.mid2 = ResBlock(c, c, emb_dim, index=blocks + 1, **common)
        blocks += 2

        up, upsample = [], []
        for level in reversed(range(levels)):
            width = channels * channel_mults[level]
            widths_in = []
            for _ in range(num_res_blocks + 1):
                widths_in.append(c + skips.pop())
                c = width
            up.append(
                Level(widths_in, width, emb_dim, 2**level in attention_factors, head_dim,
                      first_index=blocks, **common)
            )
            blocks += len(widths_in)
            if level > 0:
                upsample.append(_conv(c, c, dtype, rngs))
        self.up, self.upsample = nnx.List(up), nnx.List(upsample)

        self.norm_out = _norm(c, norm_groups, dtype, rngs)
        self.conv_out = _conv(c, image_channels, dtype, rngs, zero=True)

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        label: jax.Array | None = None,
        dropout_seed: jax.Array | None = None,
    ) -> jax.Array:
        """dropout_seed: uint32 (B,) per-example dropout seeds (training); None: no dropout."""
        check_image_input("UNet", x, self.event_shape)
        check_labels("UNet", label, self.num_classes, x.shape[0])
        emb = self.embed(t, x.shape[0], label)
        res = rematerialised(lambda block, h: block(h, emb, dropout_seed), self.remat)
        attend = rematerialised(lambda block, h: block(h), self.remat)
        h = self.conv_in(x.astype(self.dtype or x.dtype))
        skips = [h]
        for level, stage in enumerate(self.down):
            h = _run_level(stage, h, res, attend, skips, pop=False)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = res(self.mid2, attend(self.mid_attention, res(self.mid1, h)))
        for level, stage in enumerate(self.up):
            h = _run_level(stage, h, res, attend, skips, pop=True)
            if level < len(self.upsample):
                b, height, width, c = h.shape
                h = jax.image.resize(h, (b, 2 * height, 2 * width, c), "nearest")
                h = self.upsample[level](h)
        out = self.conv_out(nnx.silu(self.norm_out(h)))
        return out.astype(x.dtype)


def _run_level(stage: Level, h, res, attend, skips: list, *, pop: bool):
    """The blocks of one level, each called through `res(block, h)` / `attend(block, h)`; the
    down path pushes each output, the up path pops a skip."""
    for i, block in enumerate(stage.blocks):
        if pop:
            h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = res(block, h)
        if len(stage.attention):
            h = attend(stage.attention[i], h)
        if not pop:
            skips.append(h)
    return h

