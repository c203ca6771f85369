"""The KL autoencoder of latent diffusion (Rombach et al., 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models", section 3 and appendix G; the architecture of Stable Diffusion's
VAE, `diffusers.AutoencoderKL`), in which latent flow matching runs (Berrada et al., LPL and
conditioning papers).

Images (B, H, W, C) in [-1, 1], channels last. With channels c_l = `block_out_channels[l]`,
L levels and `layers_per_block` = n:

- encoder: 3x3 conv to c_0; per level n residual blocks (GroupNorm(32, eps 1e-6), SiLU, 3x3
  conv, twice; a 1x1 conv on the shortcut when the width changes) and, except at the last level,
  a downsampling 3x3 conv of stride 2 after padding one row and column at the bottom and right;
  a middle of residual block, single-head self-attention over the H W positions (GroupNorm, q /
  k / v / out linear maps, residual) and residual block; GroupNorm, SiLU, 3x3 conv to 2 z
  channels (the mean and the log-variance), then a 1x1 conv (`quant_conv`).
- decoder: 1x1 conv (`post_quant_conv`), 3x3 conv to c_{L-1}, the middle, then per level (widths
  reversed) n + 1 residual blocks and, except at the last, nearest-neighbour upsampling by 2
  and a 3x3 conv; GroupNorm, SiLU, 3x3 conv to the image channels.

The posterior is N(mean, exp(logvar)) with logvar clipped to [-30, 20]. Latents for a flow are
`scaling_factor` (SD: 0.18215) times a posterior sample or mean; `decode` takes unscaled latents.
The downsampling factor is f = 2^(L - 1): SD's VAE has c = (128, 256, 512, 512), n = 2, z = 4,
f = 8, so 256 x 256 x 3 images become 32 x 32 x 4 latents.

Mixed precision: parameters are float32; `dtype` (e.g. bfloat16) is the compute dtype of the
convolutions and linear maps, with the group norms, the attention softmax and the outputs in
float32. `AUTOENCODER_SHARDING_RULES` split the residual blocks' convolutions and the attention
maps Megatron-style over logical axes (`flowjax.parallel`).

`load_autoencoder_kl` (`flowjax.models.convert_autoencoder`) loads a local diffusers checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from flowjax.models.distillation import Frozen

AUTOENCODER_SHARDING_RULES = (
    (r"resnets/\d+/(\d+/)?conv1/kernel$", (None, None, "embed", "mlp")),
    (r"resnets/\d+/(\d+/)?conv2/kernel$", (None, None, "mlp", "embed")),
    (r"attention/to_(q|k|v)/kernel$", ("embed", "mlp")),
    (r"attention/to_out/kernel$", ("mlp", "embed")),
)
"""(regex, logical axes) rules of `config.sharding.rules` for the autoencoder's state leaves."""
LOGVAR_RANGE = (-30.0, 20.0)
"""The posterior's log-variance is clipped to this range (diffusers' DiagonalGaussianDistribution)."""


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """The settings of an `AutoencoderKL` (the names of diffusers' config.json)."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        if not self.block_out_channels or any(
            c % self.norm_num_groups for c in self.block_out_channels
        ):
            raise ValueError(
                f"block_out_channels must be multiples of norm_num_groups={self.norm_num_groups}, "
                f"got {self.block_out_channels}."
            )
        if self.layers_per_block < 1 or min(self.in_channels, self.latent_channels) < 1:
            raise ValueError("layers_per_block, in_channels and latent_channels must be >= 1.")

    @property
    def downsampling(self) -> int:
        """f: image side / latent side."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_diffusers_json(cls, config: Mapping[str, Any]) -> AutoencoderConfig:
        """The settings of a diffusers AutoencoderKL config.json; settings this network does not
        implement are refused."""
        if config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
            raise ValueError(f"Expected an AutoencoderKL config, got {config.get('_class_name')}.")
        blocks = set(config.get("down_block_types", ("DownEncoderBlock2D",))) | set(
            config.get("up_block_types", ("UpDecoderBlock2D",))
        )
        unsupported = {
            "down/up block types": blocks - {"DownEncoderBlock2D", "UpDecoderBlock2D"},
            "act_fn": config.get("act_fn", "silu") != "silu",
            "mid_block_add_attention": config.get("mid_block_add_attention", True) is not True,
            "use_quant_conv": config.get("use_quant_conv", True) is not True,
            "use_post_quant_conv": config.get("use_post_quant_conv", True) is not True,
        }
        bad = [name for name, value in unsupported.items() if value]
        if bad:
            raise ValueError(f"This AutoencoderKL setting is not implemented: {bad}.")
        return cls(
            in_channels=config.get("in_channels", 3),
            out_channels=config.get("out_channels", 3),
            latent_channels=config.get("latent_channels", 4),
            block_out_channels=tuple(config.get("block_out_channels", (64,))),
            layers_per_block=config.get("layers_per_block", 1),
            norm_num_groups=config.get("norm_num_groups", 32),
            scaling_factor=config.get("scaling_factor", 0.18215),
        )


    def to_diffusers_json(self) -> dict[str, Any]:
        """diffusers' config.json of this autoencoder (`from_diffusers_json` reads it back)."""
        levels = len(self.block_out_channels)
        return {
            "_class_name": "AutoencoderKL",
            "act_fn": "silu",
            "block_out_channels": list(self.block_out_channels),
            "down_block_types": ["DownEncoderBlock2D"] * levels,
            "up_block_types": ["UpDecoderBlock2D"] * levels,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scaling_factor,
            "mid_block_add_attention": True,
            "use_quant_conv": True,
            "use_post_quant_conv": True,
        }


def _norm(channels: int, groups: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=groups, epsilon=1e-6, dtype=jnp.float32, rngs=rngs)


def _conv(c_in: int, c_out: int, rngs: nnx.Rngs, dtype=None, kernel: int = 3, padding="SAME",
          strides=1):
    return nnx.Conv(c_in, c_out, (kernel, kernel), strides=strides, padding=padding, dtype=dtype,
                    rngs=rngs)


class ResnetBlock(nnx.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), the shortcut through a 1x1 conv when widths differ."""

    def __init__(self, c_in: int, c_out: int, groups: int, *, dtype=None, rngs: nnx.Rngs):
        self.norm1, self.conv1 = _norm(c_in, groups, rngs), _conv(c_in, c_out, rngs, dtype)
        self.norm2, self.conv2 = _norm(c_out, groups, rngs), _conv(c_out, c_out, rngs, dtype)
        self.conv_shortcut = (
            _conv(c_in, c_out, rngs, dtype, kernel=1) if c_in != c_out else None
        )

    def __call__(self, x: Float[Array, "B H W Ci"]) -> Float[Array, "B H W Co"]:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut.astype(jnp.float32) + h.astype(jnp.float32)


class SelfAttention(nnx.Module):
    """Single-head self-attention over the H W positions, with a residual connection."""

    def __init__(self, channels: int, groups: int, *, dtype=None, rngs: nnx.Rngs):
        self.group_norm = _norm(channels, groups, rngs)
        self.to_q, self.to_k, self.to_v, self.to_out = (
            nnx.Linear(channels, channels, dtype=dtype, rngs=rngs) for _ in range(4)
        )

    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, "B H W C"]:
        b, h, w, c = x.shape
        y = self.group_norm(x).reshape(b, h * w, c)
        q, k, v = self.to_q(y), self.to_k(y), self.to_v(y)
        scores = jnp.einsum("bqc,bkc->bqk", q, k).astype(jnp.float32) / math.sqrt(c)
        weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = self.to_out(jnp.einsum("bqk,bkc->bqc", weights, v)).reshape(b, h, w, c)
        return x + out.astype(jnp.float32)


class MidBlock(nnx.Module):
    """Residual block, self-attention, residual block."""

    def __init__(self, channels: int, groups: int, *, dtype=None, rngs: nnx.Rngs):
        self.resnets = nnx.List(
            [ResnetBlock(channels, channels, groups, dtype=dtype, rngs=rngs) for _ in range(2)]
        )
        self.attention = SelfAttention(channels, groups, dtype=dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, "B H W C"]:
        return self.resnets[1](self.attention(self.resnets[0](x)))


class Encoder(nnx.Module):
    """Image (B, H, W, C) -> the posterior's moments (B, H / f, W / f, 2 z) before quant_conv."""

    def __init__(self, config: AutoencoderConfig, *, dtype=None, rngs: nnx.Rngs):
        widths, groups, n = config.block_out_channels, config.norm_num_groups, config.layers_per_block
        self.conv_in = _conv(config.in_channels, widths[0], rngs, dtype)
        self.resnets, self.downsamplers = nnx.List(), nnx.List()
        c_in = widths[0]
        for level, c_out in enumerate(widths):
            self.resnets.append(nnx.List(
                [ResnetBlock(c_in if j == 0 else c_out, c_out, groups, dtype=dtype, rngs=rngs)
                 for j in range(n)]
            ))
            if level < len(widths) - 1:
                self.downsamplers.append(
                    _conv(c_out, c_out, rngs, dtype, padding="VALID", strides=2)
                )
            c_in = c_out
        self.mid = MidBlock(widths[-1], groups, dtype=dtype, rngs=rngs)
        self.norm_out = _norm(widths[-1], groups, rngs)
        self.conv_out = _conv(widths[-1], 2 * config.latent_channels, rngs, dtype)

    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, "B h w 2z"]:
        h = self.conv_in(x)
        for level, blocks in enumerate(self.resnets):
            for block in blocks:
                h = block(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](jnp.pad(h, ((0, 0), (0, 1), (0, 1), (0, 0))))
        return self.conv_out(jax.nn.silu(self.norm_out(self.mid(h)))).astype(jnp.float32)


class Decoder(nnx.Module):
    """Latent (B, h, w, z) after post_quant_conv -> image (B, h f, w f, C); `features` also
    returns the activations after the middle and after each up level (LPL's decoder features)."""

    def __init__(self, config: AutoencoderConfig, *, dtype=None, rngs: nnx.Rngs):
        widths = tuple(reversed(config.block_out_channels))
        groups, n = config.norm_num_groups, config.layers_per_block
        self.conv_in = _conv(config.latent_channels, widths[0], rngs, dtype)
        self.mid = MidBlock(widths[0], groups, dtype=dtype, rngs=rngs)
        self.resnets, self.upsamplers = nnx.List(), nnx.List()
        c_in = widths[0]
        for level, c_out in enumerate(widths):
            self.resnets.append(nnx.List(
                [ResnetBlock(c_in if j == 0 else c_out, c_out, groups, dtype=dtype, rngs=rngs)
                 for j in range(n + 1)]
            ))
            if level < len(widths) - 1:
                self.upsamplers.append(_conv(c_out, c_out, rngs, dtype))
            c_in = c_out
        self.norm_out = _norm(widths[-1], groups, rngs)
        self.conv_out = _conv(widths[-1], config.out_channels, rngs, dtype)

    def features(self, z: Float[Array, "B h w z"]) -> tuple[Array, list[Array]]:
        """(the image, [the middle's output, then each up level's output])."""
        h = self.mid(self.conv_in(z))
        feats = [h]
        for level, blocks in enumerate(self.resnets):
            for block in blocks:
                h = block(h)
            if level < len(self.upsamplers):
                up = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
                h = self.upsamplers[level](up).astype(jnp.float32)
            feats.append(h)
        return self.conv_out(jax.nn.silu(self.norm_out(h))).astype(jnp.float32), feats

    def __call__(self, z: Float[Array, "B h w z"]) -> Float[Array, "B H W C"]:
        return self.features(z)[0]


class AutoencoderKL(nnx.Module):
    """The KL autoencoder (module docstring): `encode` -> (mean, logvar), `sample_latent`,
    `decode`; `latents` / `images` apply the scaling factor for a flow in latent space."""

    def __init__(self, config: AutoencoderConfig, *, dtype=None, rngs: nnx.Rngs):
        self.config = config
        z = config.latent_channels
        self.encoder = Encoder(config, dtype=dtype, rngs=rngs)
        self.quant_conv = _conv(2 * z, 2 * z, rngs, kernel=1)  # float32: the posterior
        self.post_quant_conv = _conv(z, z, rngs, kernel=1)
        self.decoder = Decoder(config, dtype=dtype, rngs=rngs)

    def _check(self, x: Array, channels: int, what: str, multiple: int) -> None:
        if x.ndim != 4 or x.shape[-1] != channels or x.shape[1] % multiple or x.shape[2] % multiple:
            raise ValueError(
                f"{what} must be (B, H, W, {channels}) with H and W multiples of {multiple} "
                f"(channels last), got {tuple(x.shape)}."
            )

    def encode(self, x: Float[Array, "B H W C"]) -> tuple[Array, Array]:
        """The posterior's mean and clipped log-variance (B, H / f, W / f, z)."""
        self._check(x, self.config.in_channels, "images", self.config.downsampling)
        mean, logvar = jnp.split(self.quant_conv(self.encoder(x)), 2, axis=-1)
        return mean, jnp.clip(logvar, *LOGVAR_RANGE)

    def sample_latent(self, key: jax.Array, mean: Array, logvar: Array) -> Array:
        """mean + exp(logvar / 2) eps, eps ~ N(0, I)."""
        return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)

    def decode(self, z: Float[Array, "B h w z"]) -> Float[Array, "B H W C"]:
        """The image of an unscaled latent."""
        self._check(z, self.config.latent_channels, "latents", 1)
        return self.decoder(self.post_quant_conv(z))

    def decoder_features(self, z: Float[Array, "B h w z"]) -> list[Array]:
        """The decoder's features of an unscaled latent (the middle's output, then each level's)."""
        self._check(z, self.config.latent_channels, "latents", 1)
        return self.decoder.features(self.post_quant_conv(z))[1]

    def latents(self, x: Float[Array, "B H W C"], key: jax.Array | None = None) -> Array:
        """scaling_factor times the posterior mean (or, with `key`, a posterior sample)."""
        mean, logvar = self.encode(x)
        z = mean if key is None else self.sample_latent(key, mean, logvar)
        return self.config.scaling_factor * z

    def images(self, latents: Float[Array, "B h w z"]) -> Float[Array, "B H W C"]:
        """The images of scaled latents (a flow's samples)."""
        return self.decode(latents / self.config.scaling_factor)


def autoencoder_for_images(
    event_shape: tuple[int, ...],
    *,
    num_classes: int | None = None,
    dtype=None,
    rngs: nnx.Rngs,
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
    layers_per_block: int = 2,
    latent_channels: int = 4,
    norm_num_groups: int = 32,
    scaling_factor: float = 0.18215,
) -> AutoencoderKL:
    """An `AutoencoderKL` for images of `event_shape` (H, W, C), as the trainer builds models
    (labels unused; `dtype` the compute dtype): C in and out, the other settings as named."""
    del num_classes
    if len(event_shape) != 3:
        raise ValueError(f"The autoencoder reads images (H, W, C), got examples of shape "
                         f"{tuple(event_shape)}.")
    height, width, channels = event_shape
    config = AutoencoderConfig(
        in_channels=channels,
        out_channels=channels,
        latent_channels=latent_channels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        scaling_factor=scaling_factor,
    )
    if height % config.downsampling or width % config.downsampling:
        raise ValueError(
            f"The autoencoder downsamples by f = {config.downsampling} "
            f"({len(config.block_out_channels)} levels): image sides must be multiples of it, "
            f"got {height}x{width}."
        )
    return AutoencoderKL(config, dtype=dtype, rngs=rngs)


def freeze(module: nnx.Module) -> nnx.Module:
    """`module` with every parameter turned into a `Frozen` weight (kept in the train state's
    model_state, never updated); in place, returned for convenience."""
    for _, node in list(nnx.iter_graph(module)):
        if isinstance(node, nnx.Module):
            for name, value in list(vars(node).items()):
                if isinstance(value, nnx.Param):
                    setattr(node, name, Frozen(value[...]))
    return module


class FlowWithDecoder(nnx.Module):
    """A latent flow's network `net` and a frozen autoencoder (whose decoder features the latent
    perceptual loss reads); called, it is the network."""

    def __init__(self, net: nnx.Module, autoencoder: AutoencoderKL):
        self.net = net
        self.autoencoder = freeze(autoencoder)

    def __call__(self, *args, **kwargs):
        return self.net(*args, **kwargs)


__all__ = [
    "FlowWithDecoder",
    "LOGVAR_RANGE",
    "AutoencoderConfig",
    "AutoencoderKL",
    "Decoder",
    "Encoder",
    "autoencoder_for_images",
    "freeze",
]
