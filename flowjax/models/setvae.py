"""SetVAE: a hierarchical VAE over sets with attentive bottleneck layers.

Kim et al., 2021, "SetVAE: Learning Hierarchical Composition for Generative Modeling of
Set-Structured Data" (CVPR), section 3:

- Encoder (bottom-up): the points are embedded (Linear), then ISABs (`flowjax.models.
  set_attention`) with inducing counts `inducing` in reverse ([32, 16, ..., 1]); each keeps its
  summary h_l = MAB(I_l, x) (the inducing points read the set, with slot attention).
- Initial set (section 3.2): each of the n output elements is drawn independently from a
  trainable mixture of `num_mixtures` Gaussians in `init_dim` dimensions (components chosen by a
  straight-through hard Gumbel-softmax over trainable logits; means initialised at orthonormal
  directions, standard deviations at a tenth of their distance sqrt(2), as the reference's
  separated "fixed_gmm" start) and embedded (Linear). The elements are i.i.d., so the generated
  set is exchangeable: the decoder is permutation-invariant in distribution.
- Decoder (top-down), one attentive bottleneck layer (ABL, eqs. 6-8) per entry of `inducing`
  ([1, 1, 2, 4, 8, 16, 32]): h = MAB(I, o) (inducing points read the current set o); the prior
  p(z | h) = N(mu, sigma^2) per inducing point (the first layer's prior a learned constant,
  unconditional), mu, log sigma^2 = Linear(h); the posterior a residual on the prior,
  N(mu + d_mu, (sigma d_sigma)^2), d_mu, log d_sigma^2 = Linear(h_l + h) from the encoder's
  summary of the same layer (h_l alone in the first layer); log-variances clipped to [-4, 3];

      KL(q || p) = -1/2 sum(log d_sigma^2 + 1 - d_mu^2 / sigma^2 - d_sigma^2)

  in closed form; then the latent is broadcast back to the set: o <- MAB(o, Linear(z)).
- Output: Linear to the point dimension.

Sizes of the paper (ShapeNet): hidden 64, 4 heads, latent 16 per inducing point, inducing points
[1, 1, 2, 4, 8, 16, 32], a 4-component mixture in 32 dimensions.

Randomness: one uint32 seed per example (`seeds` (B,)) gives that set's mixture draws and
latent noise, so a set's draw does not depend on the batch it is in (exact gradient
accumulation, any device count). Shapes: points x (B, N, D) with mask (B, N) bool (True for
real points; sets of different sizes are padded); the output set has the input's mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, UInt

from flowjax.models.set_attention import InducedSetAttentionBlock, MultiheadAttentionBlock

LOGVAR_RANGE = (-4.0, 3.0)
"""The clip of every prior and posterior log-variance (the reference's)."""
_INIT_STREAM, _LATENT_STREAM = 0, 1  # fold_in tags of a set's seed


class AttentiveBottleneck(nnx.Module):
    """One ABL of the decoder (module docstring): `num_inducing` latents of `latent_dim`."""

    def __init__(self, dim: int, num_heads: int, num_inducing: int, latent_dim: int, *,
                 conditional_prior: bool, dtype, rngs: nnx.Rngs):
        self.block = InducedSetAttentionBlock(dim, num_heads, num_inducing, slot_attention=True,
                                              dtype=dtype, rngs=rngs)
        self.latent_dim = latent_dim
        if conditional_prior:
            self.prior = nnx.Linear(dim, 2 * latent_dim, dtype=dtype, rngs=rngs)
        else:
            self.prior_params = nnx.Param(
                nnx.initializers.xavier_uniform()(rngs.params(), (num_inducing, 2 * latent_dim))
            )
        self.posterior = nnx.Linear(dim, 2 * latent_dim, dtype=dtype, rngs=rngs)
        self.latent_in = nnx.Linear(latent_dim, dim, dtype=dtype, rngs=rngs)

    def _gaussian(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, logvar = jnp.split(params.astype(jnp.float32), 2, axis=-1)
        return mean, jnp.clip(logvar, *LOGVAR_RANGE)

    def prior_of(self, h: Float[Array, "B m D"]) -> tuple[jax.Array, jax.Array]:
        """(mu, log sigma^2) of p(z | h), each (B, m, latent_dim)."""
        if hasattr(self, "prior"):
            return self._gaussian(self.prior(h))
        return self._gaussian(jnp.broadcast_to(self.prior_params[...],
                                               (h.shape[0], *self.prior_params.shape)))

    def posterior_of(
        self, h: Float[Array, "B m D"], bottom_up: Float[Array, "B m D"]
    ) -> tuple[jax.Array, jax.Array]:
        """(d_mu, log d_sigma^2) of the posterior's residual on the prior, each (B, m, Z)."""
        return self._gaussian(self.posterior(bottom_up if not hasattr(self, "prior")
                                             else bottom_up + h))

    def __call__(
        self,
        o: Float[Array, "B N D"],
        mask: Bool[Array, "B N"],
        eps: Float[Array, "B m Z"],
        bottom_up: Float[Array, "B m D"] | None,
    ) -> tuple[Float[Array, "B N D"], Float[Array, "B"], Float[Array, "B m Z"]]:
        """The new set, KL(q || p) per example (0 when sampling from the prior: `bottom_up`
        None) and the latent z."""
        h = self.block.summarise(o, mask)
        mean, logvar = self.prior_of(h)
        std = jnp.exp(0.5 * logvar)
        if bottom_up is None:
            z, kl = mean + std * eps, jnp.zeros(o.shape[:1], jnp.float32)
        else:
            d_mean, d_logvar = self.posterior_of(h, bottom_up)
            z = mean + d_mean + std * jnp.exp(0.5 * d_logvar) * eps
            kl = jnp.sum(residual_gaussian_kl(logvar, d_mean, d_logvar), axis=(1, 2))
        latents = self.latent_in(z.astype(o.dtype))
        return self.block.write(o, latents, mask, None)[0], kl, z


def residual_gaussian_kl(prior_logvar: jax.Array, d_mean: jax.Array,
                         d_logvar: jax.Array) -> jax.Array:
    """KL(N(mu + d_mu, (sigma d_sigma)^2) || N(mu, sigma^2)) per dimension (SetVAE, eq. 8):
    -1/2 (log d_sigma^2 + 1 - d_mu^2 / sigma^2 - d_sigma^2); the prior mean cancels."""
    return -0.5 * (d_logvar + 1.0 - jnp.square(d_mean) * jnp.exp(-prior_logvar)
                   - jnp.exp(d_logvar))


class SetVAE(nnx.Module):
    """SetVAE (module docstring) for sets of `event_shape` = (N, D): `model(x, mask, seeds)`
    reconstructs (training), `model.generate(mask, seeds)` samples."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        hidden_dim: int = 64,
        num_heads: int = 4,
        latent_dim: int = 16,
        inducing: Sequence[int] = (1, 1, 2, 4, 8, 16, 32),
        init_dim: int = 32,
        num_mixtures: int = 4,
        num_classes: int | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        del num_classes  # unconditional: a label of the data is not read
        if len(event_shape) != 2:
            raise ValueError(
                f"SetVAE reads sets of points (N, D); the data have examples of shape "
                f"{tuple(event_shape)}."
            )
        if not inducing or min(inducing) < 1:
            raise ValueError(f"SetVAE needs inducing point counts >= 1, got {tuple(inducing)}.")
        if num_mixtures > init_dim:
            raise ValueError(
                f"The initial-set mixture places its {num_mixtures} components at orthonormal "
                f"directions of init_dim={init_dim}: use num_mixtures <= init_dim."
            )
        self.event_shape = tuple(event_shape)
        point_dim = self.event_shape[1]
        self.inducing, self.latent_dim, self.init_dim = tuple(inducing), latent_dim, init_dim
        self.embed = nnx.Linear(point_dim, hidden_dim, dtype=dtype, rngs=rngs)
        self.encoder = nnx.List([
            InducedSetAttentionBlock(hidden_dim, num_heads, m, slot_attention=True, dtype=dtype,
                                     rngs=rngs)
            for m in reversed(self.inducing)
        ])
        self.mixture_logits = nnx.Param(jnp.ones((num_mixtures,), jnp.float32))
        self.mixture_means = nnx.Param(jnp.eye(num_mixtures, init_dim, dtype=jnp.float32))
        self.mixture_stds = nnx.Param(
            jnp.full((num_mixtures, init_dim), math.sqrt(2.0) / 10 + 1e-3, jnp.float32)
        )
        self.init_embed = nnx.Linear(init_dim, hidden_dim, dtype=dtype, rngs=rngs)
        self.decoder = nnx.List([
            AttentiveBottleneck(hidden_dim, num_heads, m, latent_dim, conditional_prior=i > 0,
                                dtype=dtype, rngs=rngs)
            for i, m in enumerate(self.inducing)
        ])
        self.output = nnx.Linear(hidden_dim, point_dim, dtype=dtype, rngs=rngs)

    # Pieces, exposed for the tests of the permutation properties -----------------------------

    def bottom_up(
        self, x: Float[Array, "B N D"], mask: Bool[Array, "B N"]
    ) -> tuple[Float[Array, "B N H"], list[Float[Array, "B m H"]]]:
        """The encoder's final element features and its summaries h_l in top-down order."""
        x = jnp.where(mask[..., None], self.embed(x), 0.0)
        summaries = []
        for block in self.encoder:
            x, h = block(x, mask)
            summaries.append(h)
        return x, summaries[::-1]

    def initial_set(
        self, seeds: UInt[Array, "B"], n: int
    ) -> Float[Array, "B N I"]:
        """n i.i.d. draws per set from the trainable mixture (straight-through Gumbel-softmax
        component choice), before the embedding."""
        num_mixtures = self.mixture_logits.shape[0]

        def draw(seed):
            key = jax.random.fold_in(jax.random.key(seed), _INIT_STREAM)
            choice_key, noise_key = jax.random.split(key)
            gumbel = jax.random.gumbel(choice_key, (n, num_mixtures))
            return gumbel, jax.random.normal(noise_key, (n, self.init_dim))

        gumbel, eps = jax.vmap(draw)(seeds)
        soft = jax.nn.softmax(self.mixture_logits[...] + gumbel, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), num_mixtures)
        onehot = hard + soft - jax.lax.stop_gradient(soft)
        return onehot @ self.mixture_means[...] + (onehot @ self.mixture_stds[...]) * eps

    def latent_noise(self, seeds: UInt[Array, "B"]) -> list[Float[Array, "B m Z"]]:
        """Standard normal noise of each layer's latents (B, m_l, latent_dim)."""
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), _LATENT_STREAM))(seeds)
        return [
            jax.vmap(lambda k, i=i, m=m: jax.random.normal(jax.random.fold_in(k, i),
                                                           (m, self.latent_dim)))(keys)
            for i, m in enumerate(self.inducing)
        ]

    def top_down(
        self,
        initial: Float[Array, "B N I"],
        mask: Bool[Array, "B N"],
        noise: list[Float[Array, "B m Z"]],
        summaries: list[Float[Array, "B m H"]] | None = None,
    ) -> tuple[Float[Array, "B N D"], Float[Array, "B"]]:
        """The decoded set (zeros at masked points) and the summed KL (0 for prior samples)."""
        o = jnp.where(mask[..., None], self.init_embed(initial.astype(jnp.float32)), 0.0)
        kl = jnp.zeros(mask.shape[:1], jnp.float32)
        for i, layer in enumerate(self.decoder):
            o, layer_kl, _ = layer(o, mask, noise[i], None if summaries is None else summaries[i])
            kl = kl + layer_kl
        return jnp.where(mask[..., None], self.output(o), 0.0).astype(jnp.float32), kl

    # The two uses ------------------------------------------------------------------------------

    def __call__(
        self, x: Float[Array, "B N D"], mask: Bool[Array, "B N"], seeds: UInt[Array, "B"]
    ) -> tuple[Float[Array, "B N D"], Float[Array, "B"]]:
        """The reconstruction of x through the posterior and KL(q || p) summed over layers."""
        self._check(x.shape[1:], mask, seeds)
        _, summaries = self.bottom_up(x, mask)
        initial = self.initial_set(seeds, x.shape[1])
        return self.top_down(initial, mask, self.latent_noise(seeds), summaries)

    def generate(
        self, mask: Bool[Array, "B N"], seeds: UInt[Array, "B"]
    ) -> Float[Array, "B N D"]:
        """Sets drawn from the prior, one per row of `mask` (its True entries are the points)."""
        self._check(self.event_shape, mask, seeds)
        initial = self.initial_set(seeds, mask.shape[1])
        return self.top_down(initial, mask, self.latent_noise(seeds))[0]

    def _check(self, event_shape, mask, seeds) -> None:
        if mask is None:
            raise ValueError(
                "SetVAE needs the mask (B, N) of the points that exist: pad sets of different "
                "sizes to N points and mark the real ones True (all True for sets of one size)."
            )
        if tuple(event_shape) != self.event_shape:
            raise ValueError(
                f"This SetVAE was built for sets of shape (B, *{self.event_shape}), got sets of "
                f"shape (B, *{tuple(event_shape)})."
            )
        if mask.shape[1:] != self.event_shape[:1] or seeds.shape != mask.shape[:1]:
            raise ValueError(
                f"SetVAE takes a mask (B, {self.event_shape[0]}) of the points that exist (pad "
                f"sets of different sizes) and seeds (B,), got {mask.shape} and {seeds.shape}."
            )
