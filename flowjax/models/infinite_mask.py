"""The infinite mask of the Infinite Mask Diffusion Model (IMDM).

A masked diffusion model (MDLM, Sahoo et al., 2024) reads every masked position through one
embedding E[MASK], so from an all-masked sequence its per-position posteriors are all the same
and a one-step sample draws the positions independently: it cannot produce a sequence whose
tokens depend on each other. IMDM gives each masked position a continuous label eps (D_eps)
and reads it as

    h_i = E[MASK] + MLP(eps_i),   MLP = Linear(D_eps -> 4d), GELU, Linear(4d -> d, no bias),

with the last layer initialised to zero, so an IMDM starts as exactly the masked model whose
weights it loads. The network then maps (eps_1..L) to a whole sequence, and after distillation
a single step can sample dependent tokens (section 3 of the IMDM paper;
`flowjax.solvers.masked_diffusion_sample` with `draw_noise` carries eps along the sampler).

Noise kinds (`MASK_NOISE_KINDS`; what the sampler and the loss draw for eps):

  "uniform"    U[-1, 1]^D_eps times `noise_scale` (the authors' default);
  "gaussian"   N(0, I) times `noise_scale`;
  "learnable"  mu + sigma z with z ~ N(0, I): the raw draw is z, and the learned mean mu
               (zeros at initialisation) and log sigma (zeros: sigma = 1) are applied inside the
               network;
  "table"      one of `num_masks` learned vectors, chosen uniformly per position: a finite set
               of masks. The raw draw is the index (as a float, shape (..., 1)). The authors
               initialise the table to zero; with the zero-initialised last layer that gives
               the MLP no gradient at all, so here it starts U[-1, 1] times `noise_scale`
               (drawn from `table_seed`);
  "none"       no label: the embedding is E[MASK] alone ("as MDLM").

`InfiniteMaskTransformer` is the text transformer (`flowjax.models.TextTransformer`) with this
embedding; the mask token is its last id (vocab_size - 1, as in the "masked_diffusion"
objective), and without eps it is the text transformer.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from flowjax.models.transformer import TextTransformer

MASK_NOISE_KINDS = ("uniform", "gaussian", "learnable", "table", "none")
"""The kinds of eps of `InfiniteMaskEmbedding` (module docstring)."""


class InfiniteMaskEmbedding(nnx.Module):
    """MLP(eps): (..., D_eps) -> (..., d), zero at initialisation; `draw` samples eps."""

    def __init__(
        self,
        width: int,
        noise_dim: int,
        *,
        noise: str = "uniform",
        noise_scale: float = 1.0,
        num_masks: int = 0,
        table_seed: int = 0,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if noise not in MASK_NOISE_KINDS:
            raise ValueError(f"Unknown mask noise {noise!r}; expected one of {MASK_NOISE_KINDS}.")
        if not (isinstance(noise_dim, int) and noise_dim >= 1):
            raise ValueError(f"noise_dim (D_eps) must be an int >= 1, got {noise_dim!r}.")
        if noise == "table" and not (isinstance(num_masks, int) and num_masks >= 1):
            raise ValueError(f"noise='table' needs num_masks >= 1 masks, got {num_masks!r}.")
        if not noise_scale > 0:
            raise ValueError(f"noise_scale must be > 0, got {noise_scale!r}.")
        self.noise, self.noise_dim, self.noise_scale = noise, noise_dim, float(noise_scale)
        linear = dict(dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.fc1 = nnx.Linear(
            noise_dim, 4 * width, kernel_init=nnx.initializers.truncated_normal(0.02), **linear
        )
        self.fc2 = nnx.Linear(
            4 * width, width, use_bias=False, kernel_init=nnx.initializers.zeros_init(), **linear
        )
        if noise == "learnable":
            self.noise_mean = nnx.Param(jnp.zeros((noise_dim,)))
            self.noise_log_scale = nnx.Param(jnp.zeros((noise_dim,)))
        if noise == "table":
            table = jax.random.uniform(
                jax.random.key(table_seed), (num_masks, noise_dim), minval=-1.0, maxval=1.0
            )
            self.table = nnx.Param(table * self.noise_scale)

    @property
    def raw_dim(self) -> int:
        """The last axis of a raw draw: D_eps, or 1 (the index) for a table."""
        return 1 if self.noise == "table" else self.noise_dim

    def draw(self, key: jax.Array, shape: Sequence[int]) -> Float[Array, "*shape D"]:
        """Raw noise of shape (*shape, raw_dim) (module docstring); zeros for "none"."""
        shape = (*tuple(shape), self.raw_dim)
        if self.noise == "uniform":
            return self.noise_scale * jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
        if self.noise == "gaussian":
            return self.noise_scale * jax.random.normal(key, shape)
        if self.noise == "learnable":
            return jax.random.normal(key, shape)
        if self.noise == "table":
            num_masks = self.table.shape[0]
            return jax.random.randint(key, shape, 0, num_masks).astype(jnp.float32)
        return jnp.zeros(shape)

    def __call__(self, eps: Float[Array, "*shape D"]) -> Float[Array, "*shape d"]:
        """MLP(eps) of raw draws eps (*shape, raw_dim)."""
        if eps.shape[-1] != self.raw_dim:
            raise ValueError(
                f"eps must have {self.raw_dim} features on its last axis (mask noise "
                f"{self.noise!r}), got shape {eps.shape}."
            )
        if self.noise == "none":
            return jnp.zeros((*eps.shape[:-1], self.fc2.out_features))
        eps = eps.astype(jnp.float32)
        if self.noise == "table":
            eps = self.table[...][eps[..., 0].astype(jnp.int32)]
        if self.noise == "learnable":
            eps = self.noise_mean[...] + jnp.exp(self.noise_log_scale[...]) * eps
        h = nnx.gelu(self.fc1(eps), approximate=False)
        return self.fc2(h).astype(jnp.float32)


class InfiniteMaskTransformer(TextTransformer):
    """logits(x, t, eps=None, label=None, dropout_seed=None): the text transformer whose masked
    positions (token vocab_size - 1) read E[MASK] + MLP(eps); eps (B, L, D_eps). Without eps
    the mask embedding is E[MASK] (the masked diffusion model)."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        vocab_size: int,
        noise_dim: int = 768,
        mask_noise: str = "uniform",
        noise_scale: float = 1.0,
        num_masks: int = 0,
        time_conditioning: bool = False,
        dtype=None,
        rngs: nnx.Rngs,
        **settings,
    ):
        super().__init__(
            event_shape,
            vocab_size=vocab_size,
            time_conditioning=time_conditioning,
            dtype=dtype,
            rngs=rngs,
            **settings,
        )
        self.mask_token = vocab_size - 1
        self.mask_embedding = InfiniteMaskEmbedding(
            self.width,
            noise_dim,
            noise=mask_noise,
            noise_scale=noise_scale,
            num_masks=num_masks,
            dtype=dtype,
            rngs=rngs,
        )

    def draw_noise(self, key: jax.Array, shape: Sequence[int]) -> Float[Array, "*shape D"]:
        """Raw eps (*shape, raw_dim) for positions of `shape` (e.g. (B, L)), of this model's
        noise kind."""
        return self.mask_embedding.draw(key, shape)

    def __call__(
        self,
        x: Int[Array, "B L"],
        t: Float[Array, ""] | Float[Array, "B"] | None = None,
        eps: Float[Array, "B L D"] | None = None,
        label: Int[Array, "B"] | None = None,
        dropout_seed: Int[Array, "B"] | None = None,
    ) -> Float[Array, "B L V"]:
        h = self._embed(x)
        if eps is not None:
            if eps.shape[:2] != x.shape:
                raise ValueError(
                    f"eps must hold one label per position, shape {x.shape} + "
                    f"({self.mask_embedding.raw_dim},), got {eps.shape}."
                )
            masked = (x == self.mask_token)[..., None]
            h = h + jnp.where(masked, self.mask_embedding(eps), 0.0)
        return self._forward(h, t, label, dropout_seed)
