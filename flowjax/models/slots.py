"""Slot attention with its image encoder and a one-shot slot decoder, and the slot-conditioned
diffusion prior: the networks of the objective "compose".

Slot attention (Locatello et al., 2020, "Object-Centric Learning with Slot Attention", NeurIPS,
algorithm 1). From encoder features (B, N, D) and initial-slot noise (B, K, S):

    slots = mu + sigma * noise                      mu, log sigma: learned (S,)
    inputs = LN(inputs);  k = W_k inputs,  v = W_v inputs
    T times:  prev = slots;  q = W_q LN(slots)
              A = softmax over the K slots of k q^T / sqrt(S)          (B, N, K)
              W = (A + eps) / sum over the N inputs of (A + eps)       weighted mean
              slots = GRU(prev, W^T v);  slots = slots + MLP(LN(slots))

The noise is an argument so that two images can start from the same initial slots (the shared
initialisation of Jung et al., 2024, "Learning to Compose: Improving Object Centric Learning by
Injecting Compositionality", ICLR, section 3.2). As in their code (and Chang et al., 2022,
"Object Representations as Fixed Points"), the slots are detached before the last iteration
(`implicit=True`), and the attention of the last iteration, A (B, K, N), is the segmentation.
Slot attention is equivariant to permuting the slots (permuting the noise permutes the slots and
the masks) and invariant to permuting the inputs. This is not the `slot_attention` option of
`flowjax.models.set_attention` (a Set Transformer MAB whose queries compete once, with
residual and feed-forward layers): here the slots are iterated through a GRU.

Encoder (Locatello et al., appendix E): a `downsample` x `downsample` patch convolution of
stride `downsample` (Jung et al.'s `cnn_downsample`), one 5x5 convolution per entry of
`channels`, each with ReLU, a soft
position embedding (a linear map of the grid coordinates (y, x, 1 - y, 1 - x) added to the
features), LayerNorm and a two-layer MLP: images (B, H, W, C) -> features (B, H W / d^2, D).

One-shot decoder: the spatial-broadcast decoder of Locatello et al. (appendix E) in place of the
paper's transformer decoder over SD-VAE latents: each slot is broadcast to a grid of side
H / 2^u, given the soft position embedding, upsampled by u stride-2 transposed 5x5
convolutions and read out by a 3x3 convolution into an appearance (C channels) and an alpha
logit; the alphas are a softmax over the slots, and the reconstruction is
sum_k alpha_k appearance_k. Output: the reconstruction (B, H', W', C'), the slot masks alpha
(B, K, H', W') and the appearances (B, K, H', W', C'), where (H', W', C') is the image or, in
latent space, the latent shape.

Diffusion prior (Jung et al., section 3.2, their latent slot diffusion): an epsilon-prediction
denoiser eps(x_k, k, slots) of DDPM with 1,000 steps; here a `flowjax.models.DiT` that reads the
slots as extra attention tokens (conditioning="attention", `context_dim` = S; the authors'
UNet reads them by cross-attention), with the time input k / 1000.

Shapes: images x (B, H, W, C), noise (B, K, S), slots (B, K, S), masks (B, K, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from flowjax.models.dit import DiT
from flowjax.models.layers import check_image_input

DDPM_STEPS = 1000
"""The number of DDPM timesteps of the prior (its time input is k / DDPM_STEPS)."""


def _positive(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def grid_coordinates(height: int, width: int) -> np.ndarray:
    """(y, x, 1 - y, 1 - x) with y, x in [0, 1] at every grid point, (height, width, 4)."""
    y, x = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width),
                       indexing="ij")
    return np.stack([y, x, 1.0 - y, 1.0 - x], axis=-1).astype(np.float32)


class SoftPositionEmbedding(nnx.Module):
    """x + Linear(grid_coordinates): (..., h, w, D) -> (..., h, w, D)."""

    def __init__(self, dim: int, *, dtype=None, rngs: nnx.Rngs):
        self.proj = nnx.Linear(4, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        grid = jnp.asarray(grid_coordinates(x.shape[-3], x.shape[-2]))
        return x + self.proj(grid).astype(x.dtype)


class SlotAttention(nnx.Module):
    """Slot attention (module docstring): inputs (B, N, input_dim), noise (B, K, S) -> slots
    (B, K, S) and the last iteration's attention (B, K, N), a softmax over the K slots."""

    def __init__(
        self,
        input_dim: int,
        slot_size: int,
        *,
        iterations: int,
        mlp_hidden: int,
        epsilon: float = 1e-8,
        implicit: bool = True,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        self.iterations = _positive("Slot attention iterations", iterations)
        self.slot_size = _positive("The slot size", slot_size)
        self.epsilon, self.implicit = epsilon, implicit
        xavier = nnx.initializers.xavier_uniform()
        self.mu = nnx.Param(xavier(rngs.params(), (1, slot_size))[0])
        self.log_sigma = nnx.Param(xavier(rngs.params(), (1, slot_size))[0])
        self.norm_inputs = nnx.LayerNorm(input_dim, rngs=rngs)
        self.norm_slots = nnx.LayerNorm(slot_size, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(slot_size, rngs=rngs)
        projection = dict(use_bias=False, dtype=dtype, rngs=rngs)
        self.query = nnx.Linear(slot_size, slot_size, **projection)
        self.key = nnx.Linear(input_dim, slot_size, **projection)
        self.value = nnx.Linear(input_dim, slot_size, **projection)
        self.gru = nnx.GRUCell(slot_size, slot_size, dtype=dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(slot_size, mlp_hidden, dtype=dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_hidden, slot_size, dtype=dtype, rngs=rngs)

    def initial_slots(self, noise: Float[Array, "B K S"]) -> Float[Array, "B K S"]:
        """mu + sigma * noise."""
        return self.mu[...] + jnp.exp(self.log_sigma[...]) * noise

    def __call__(
        self, inputs: Float[Array, "B N D"], noise: Float[Array, "B K S"]
    ) -> tuple[Float[Array, "B K S"], Float[Array, "B K N"]]:
        b = inputs.shape[0]
        if noise.ndim != 3 or noise.shape[0] != b or noise.shape[2] != self.slot_size:
            raise ValueError(
                f"The initial-slot noise must have shape ({inputs.shape[0]}, num_slots, "
                f"{self.slot_size}), got {noise.shape}."
            )
        inputs = self.norm_inputs(inputs)
        k, v = self.key(inputs), self.value(inputs)
        slots = self.initial_slots(noise)
        attention = None
        for i in range(self.iterations):
            if self.implicit and i == self.iterations - 1:
                slots = jax.lax.stop_gradient(slots)
            previous = slots
            q = self.query(self.norm_slots(slots))
            logits = jnp.einsum("bnd,bkd->bnk", k, q) / np.sqrt(self.slot_size)
            attention = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)  # over the slots
            weights = attention + self.epsilon
            weights = weights / jnp.sum(weights, axis=1, keepdims=True)  # mean over the inputs
            updates = jnp.einsum("bnk,bnd->bkd", weights.astype(v.dtype), v)
            b, n_slots, size = slots.shape
            slots, _ = self.gru(previous.reshape(b * n_slots, size),
                                updates.reshape(b * n_slots, size))
            slots = slots.reshape(b, n_slots, size)
            slots = slots + self.mlp_out(nnx.relu(self.mlp_in(self.norm_mlp(slots))))
        return slots, attention.swapaxes(1, 2)


class SlotEncoder(nnx.Module):
    """The CNN encoder (module docstring): images (B, H, W, C) -> features (B, h w, D) with
    h = H / downsample, w = W / downsample, D = channels[-1]."""

    def __init__(self, in_channels: int, channels: Sequence[int], downsample: int, *, dtype=None,
                 rngs: nnx.Rngs):
        if not channels:
            raise ValueError("The slot encoder needs at least one convolution (channels=()).")
        self.downsample = _positive("The encoder's downsampling", downsample)
        widths = [channels[0], *channels]
        self.patch = nnx.Conv(in_channels, channels[0], (downsample, downsample),
                              strides=downsample, padding="VALID", dtype=dtype, rngs=rngs)
        self.convs = nnx.List([
            nnx.Conv(c_in, c_out, (5, 5), padding="SAME", dtype=dtype, rngs=rngs)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        ])
        dim = channels[-1]
        self.position = SoftPositionEmbedding(dim, dtype=dtype, rngs=rngs)
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.mlp_in = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, "B N D"]:
        h = nnx.relu(self.patch(x))
        for conv in self.convs:
            h = nnx.relu(conv(h))
        h = self.position(h)
        h = self.norm(h.reshape(h.shape[0], -1, h.shape[-1]))
        return self.mlp_out(nnx.relu(self.mlp_in(h)))


class SpatialBroadcastDecoder(nnx.Module):
    """The one-shot decoder (module docstring): slots (B, K, S) -> reconstruction (B, H, W, C),
    masks (B, K, H, W) (a softmax over the slots) and appearances (B, K, H, W, C)."""

    def __init__(self, slot_size: int, out_shape: Sequence[int], channels: int, upsamples: int,
                 *, dtype=None, rngs: nnx.Rngs):
        self.out_shape = tuple(out_shape)
        height, width, out_channels = self.out_shape
        if upsamples < 0 or height % 2**upsamples or width % 2**upsamples:
            raise ValueError(
                f"The spatial-broadcast decoder upsamples {upsamples} times by 2, so its output "
                f"sides must be multiples of {2 ** max(upsamples, 0)}; got {height}x{width}. "
                "Change model.decoder_upsamples or the image size."
            )
        self.grid = (height // 2**upsamples, width // 2**upsamples)
        self.position = SoftPositionEmbedding(slot_size, dtype=dtype, rngs=rngs)
        self.convs = nnx.List([
            nnx.ConvTranspose(slot_size if i == 0 else channels, channels, (5, 5), strides=2,
                              padding="SAME", dtype=dtype, rngs=rngs)
            for i in range(upsamples)
        ])
        self.refine = nnx.Conv(channels if upsamples else slot_size, channels, (5, 5),
                               padding="SAME", dtype=dtype, rngs=rngs)
        self.out = nnx.Conv(channels, out_channels + 1, (3, 3), padding="SAME", dtype=dtype,
                            rngs=rngs)

    def __call__(
        self, slots: Float[Array, "B K S"]
    ) -> tuple[Float[Array, "B H W C"], Float[Array, "B K H W"], Float[Array, "B K H W C"]]:
        b, k, s = slots.shape
        h = jnp.broadcast_to(slots.reshape(b * k, 1, 1, s), (b * k, *self.grid, s))
        h = self.position(h)
        for conv in self.convs:
            h = nnx.relu(conv(h))
        out = self.out(nnx.relu(self.refine(h)))
        out = out.reshape(b, k, *out.shape[1:])
        appearance, alpha_logits = out[..., :-1], out[..., -1]
        masks = jax.nn.softmax(alpha_logits.astype(jnp.float32), axis=1)
        reconstruction = jnp.sum(masks[..., None] * appearance, axis=1)
        return reconstruction.astype(slots.dtype), masks, appearance


class SlotComposer(nnx.Module):
    """The model of the objective "compose": encoder, slot attention, one-shot decoder and the
    slot-conditioned DiT prior (module docstring), for images `event_shape` (H, W, C).

    `latent_shape` (h, w, z), when given, is the shape of the frozen autoencoder's latents that
    the decoder reconstructs and the prior denoises (the paper's SD-VAE space); otherwise both
    work on the pixels. `encoder_downsample` must divide H and W, 2^`decoder_upsamples` the
    decoder's output sides and `prior_patch_size` the prior's sides.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        num_slots: int = 7,
        slot_size: int = 192,
        iterations: int = 7,
        mlp_hidden: int = 192,
        encoder_channels: Sequence[int] = (64, 64, 64, 64),
        encoder_downsample: int = 1,
        decoder_channels: int = 64,
        decoder_upsamples: int = 3,
        prior_hidden: int = 192,
        prior_depth: int = 4,
        prior_heads: int = 4,
        prior_patch_size: int = 2,
        latent_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if num_classes is not None:
            raise ValueError("The slot model is unsupervised: use data without labels.")
        self.event_shape = tuple(event_shape)
        if len(self.event_shape) != 3:
            raise ValueError(
                f"The slot model reads images (H, W, C); the data have examples of shape "
                f"{self.event_shape}."
            )
        self.num_slots = _positive("model.num_slots", num_slots)
        self.slot_size = _positive("model.slot_size", slot_size)
        height, width, channels = self.event_shape
        if height % encoder_downsample or width % encoder_downsample:
            raise ValueError(
                f"model.encoder_downsample={encoder_downsample} must divide the image sides, got "
                f"{height}x{width}."
            )
        self.target_shape = tuple(latent_shape) if latent_shape else self.event_shape
        if self.target_shape[0] != self.target_shape[1]:
            raise ValueError(
                f"The slot model's prior reads square images, got {self.target_shape}.")
        self.encoder_downsample = int(encoder_downsample)
        self.encoder = SlotEncoder(channels, encoder_channels, encoder_downsample, dtype=dtype,
                                   rngs=rngs)
        self.slot_attention = SlotAttention(encoder_channels[-1], slot_size,
                                            iterations=iterations, mlp_hidden=mlp_hidden,
                                            dtype=dtype, rngs=rngs)
        self.decoder = SpatialBroadcastDecoder(slot_size, self.target_shape, decoder_channels,
                                               decoder_upsamples, dtype=dtype, rngs=rngs)
        self.prior = DiT(self.target_shape, size="S", patch_size=prior_patch_size,
                         hidden_dim=prior_hidden, depth=prior_depth, num_heads=prior_heads,
                         conditioning="attention", context_dim=slot_size, dtype=dtype, rngs=rngs)

    def encode(
        self, x: Float[Array, "B H W C"], noise: Float[Array, "B K S"]
    ) -> tuple[Float[Array, "B K S"], Float[Array, "B K H W"]]:
        """Slots and their attention masks at the image's resolution (each attention cell
        repeated over its downsample x downsample pixels)."""
        check_image_input("The slot model", x, self.event_shape)
        if noise.shape[1:] != (self.num_slots, self.slot_size):
            raise ValueError(
                f"The initial-slot noise must have shape (B, {self.num_slots}, {self.slot_size}), "
                f"got {noise.shape}."
            )
        slots, attention = self.slot_attention(self.encoder(x), noise)
        d = self.encoder_downsample
        h, w = self.event_shape[0] // d, self.event_shape[1] // d
        masks = attention.reshape(*attention.shape[:2], h, w)
        masks = jnp.repeat(jnp.repeat(masks, d, axis=2), d, axis=3)
        return slots, masks

    def decode(self, slots: Float[Array, "B K S"]):
        """The one-shot decoder's (reconstruction, masks, appearances)."""
        return self.decoder(slots)

    def denoise(self, x_k: jax.Array, step: jax.Array, slots: Float[Array, "B K S"]) -> jax.Array:
        """The prior's noise prediction for x_k (B, *target_shape) at DDPM steps (B,) in
        [0, 1000) given the slots."""
        return self.prior(x_k, step.astype(jnp.float32) / DDPM_STEPS, context=slots)

    def __call__(self, x: Float[Array, "B H W C"], noise: Float[Array, "B K S"]):
        """(reconstruction, decoder masks, attention masks) of the images."""
        slots, attention_masks = self.encode(x, noise)
        reconstruction, masks, _ = self.decode(slots)
        return reconstruction, masks, attention_masks


__all__ = [
    "DDPM_STEPS",
    "SlotAttention",
    "SlotComposer",
    "SlotEncoder",
    "SoftPositionEmbedding",
    "SpatialBroadcastDecoder",
    "grid_coordinates",
]
