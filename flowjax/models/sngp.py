"""SNGP: spectrally normalised hidden layers and a random-feature Gaussian-process output layer.

Liu et al., 2020, "Simple and Principled Uncertainty Estimation with Deterministic Deep
Learning via Distance Awareness" (NeurIPS):

- Spectral normalisation (section 3.1, eq. 8; power iteration of Miyato et al., 2018): the
  largest singular value sigma of a weight W (a kernel (D_in, D_out); a convolution's kernel read
  as the matrix (k k C_in, C_out), as in SN-GAN, not the exact operator norm of the convolution)
  is estimated by `iterations` power steps from a stored vector u (updated in training only),
  v = W u / |W u|, u = W^T v / |W^T v|, sigma = v^T W u, and the layer uses
  W_sn = W min(1, c / sigma) with the norm bound c (6 in Uncertainty Baselines' CIFAR script).
- Random-feature GP (section 3.2, eq. 9-10): features of the (optionally layer-normalised and
  randomly projected) hidden vector h (D,),
      phi(h) = sqrt(2 / D_f) cos(W h / l + b),  W ~ N(0, 1) (D, D_f), b ~ U(0, 2 pi), fixed,
  approximate the RBF kernel exp(-|h - h'|^2 / (2 l^2)); logits g = phi beta with trainable
  beta (D_f, K). The Laplace posterior precision of beta (Gaussian likelihood, shared by the
  classes) is P = ridge I + sum_i phi_i phi_i^T, accumulated over training batches and reset
  every `reset_every` training calls (Uncertainty Baselines: every epoch, so that it holds the
  final epoch), or, with a momentum m in (0, 1), P <- m P + (1 - m) Phi^T Phi / B. The
  predictive variance is var(h) = ridge phi^T P^{-1} phi, and the mean-field probabilities are
  softmax(g / sqrt(1 + lambda var)) with lambda = pi / 8 by default (Uncertainty Baselines'
  CIFAR script tunes it: 25).

Shapes: dense x (B, D_in) -> (B, D_out); conv x (B, H, W, C_in) -> (B, H', W', C_out); the GP
layer h (B, D) -> logits (B, K), variances (B,).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


# State updates in training assign new Variables (the trainer's step merges state Variables
# created outside its trace, which nnx does not let a module mutate in place).


class PowerIterate(nnx.Variable):
    """The power iteration's vector u of a spectrally normalised layer (model state)."""


class RandomFeatures(nnx.Variable):
    """Fixed random projection and random-feature weights of the GP layer (model state)."""


class Precision(nnx.Variable):
    """The GP layer's Laplace precision matrix and its call counter (model state)."""


def spectral_normalise(kernel: jax.Array, u: jax.Array, bound: float, iterations: int
                       ) -> tuple[jax.Array, jax.Array]:
    """(W min(1, bound / sigma), the new u) of a kernel (..., D_out) read as a matrix
    (D_in, D_out) (module docstring); u (D_out,)."""
    matrix = kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32)
    for _ in range(iterations):
        v = matrix @ u
        v = v / (jnp.linalg.norm(v) + 1e-12)
        u = matrix.T @ v
        u = u / (jnp.linalg.norm(u) + 1e-12)
    u = jax.lax.stop_gradient(u)
    v = jax.lax.stop_gradient(matrix @ u / (jnp.linalg.norm(matrix @ u) + 1e-12))
    sigma = v @ matrix @ u
    scale = jnp.minimum(1.0, bound / jnp.maximum(sigma, 1e-12))
    return (kernel * scale).astype(kernel.dtype), u


class SpectralNormDense(nnx.Module):
    """A dense layer with its kernel spectrally normalised to norm at most `bound`."""

    def __init__(self, in_features: int, out_features: int, *, bound: float, iterations: int,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        self.bound, self.iterations, self.dtype = bound, iterations, dtype
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(),
                                                                (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))
        u = jax.random.normal(rngs.params(), (out_features,))
        self.u = PowerIterate(u / jnp.linalg.norm(u))

    def normalised_kernel(self, train: bool) -> jax.Array:
        kernel, u = spectral_normalise(self.kernel[...], self.u[...], self.bound,
                                       self.iterations if train else 0)
        if train:
            self.u = PowerIterate(u)
        return kernel

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        kernel = self.normalised_kernel(train).astype(self.dtype)
        return x.astype(self.dtype) @ kernel + self.bias[...].astype(self.dtype)


class SpectralNormConv(nnx.Module):
    """A 2-D convolution ("SAME" padding) with its kernel spectrally normalised."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, strides: int = 1,
                 bound: float, iterations: int, dtype=jnp.float32, rngs: nnx.Rngs):
        self.conv = nnx.Conv(in_channels, out_channels, (kernel, kernel), strides=strides,
                             padding="SAME", dtype=dtype, rngs=rngs)
        self.bound, self.iterations, self.strides = bound, iterations, (strides, strides)
        u = jax.random.normal(rngs.params(), (out_channels,))
        self.u = PowerIterate(u / jnp.linalg.norm(u))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        kernel, u = spectral_normalise(self.conv.kernel[...], self.u[...], self.bound,
                                       self.iterations if train else 0)
        if train:
            self.u = PowerIterate(u)
        return jax.lax.conv_general_dilated(
            x.astype(self.conv.dtype), kernel.astype(self.conv.dtype), self.strides,
            "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ) + self.conv.bias[...].astype(self.conv.dtype)


class RandomFeatureGP(nnx.Module):
    """The random-feature GP output layer (module docstring)."""

    def __init__(self, in_features: int, num_classes: int, *, num_features: int = 1024,
                 projection_dim: int = 128, length_scale: float = 2.0, ridge: float = 1.0,
                 momentum: float = -1.0, reset_every: int = 0, normalize_input: bool = True,
                 mean_field_factor: float = math.pi / 8, rngs: nnx.Rngs):
        if not (momentum < 0 or 0 < momentum < 1):
            raise ValueError(f"The GP covariance momentum must be < 0 (exact) or in (0, 1), got "
                             f"{momentum}.")
        self.norm = nnx.LayerNorm(in_features, rngs=rngs) if normalize_input else None
        dim = in_features
        if projection_dim > 0:
            self.projection = RandomFeatures(
                jax.random.normal(rngs.params(), (in_features, projection_dim))
                / math.sqrt(projection_dim))
            dim = projection_dim
        else:
            self.projection = None
        self.weights = RandomFeatures(jax.random.normal(rngs.params(), (dim, num_features)))
        self.phases = RandomFeatures(jax.random.uniform(rngs.params(), (num_features,),
                                                        maxval=2 * math.pi))
        self.output = nnx.Linear(num_features, num_classes, use_bias=False, rngs=rngs)
        self.precision = Precision(ridge * jnp.eye(num_features, dtype=jnp.float32))
        self.calls = Precision(jnp.zeros((), jnp.int32))
        self.length_scale, self.ridge, self.momentum = length_scale, ridge, momentum
        self.reset_every, self.mean_field_factor = reset_every, mean_field_factor

    def features(self, h: jax.Array) -> jax.Array:
        """phi(h) (B, D_f) of hidden vectors h (B, D)."""
        h = h.astype(jnp.float32)
        if self.norm is not None:
            h = self.norm(h)
        if self.projection is not None:
            h = h @ self.projection[...]
        scale = math.sqrt(2.0 / self.phases.shape[0])
        return scale * jnp.cos(h @ self.weights[...] / self.length_scale + self.phases[...])

    def update_precision(self, phi: jax.Array) -> None:
        """Adds a training batch's features (B, D_f) to the precision (module docstring)."""
        phi = jax.lax.stop_gradient(phi)
        batch = phi.T @ phi
        if self.momentum > 0:
            new = self.momentum * self.precision[...] + (1 - self.momentum) * batch / len(phi)
        else:
            start = self.precision[...]
            if self.reset_every:
                reset = self.calls[...] % self.reset_every == 0
                start = jnp.where(reset, self.ridge * jnp.eye(len(start)), start)
            new = start + batch
        self.precision = Precision(new)
        self.calls = Precision(self.calls[...] + 1)

    def variance(self, phi: jax.Array) -> jax.Array:
        """ridge phi^T P^{-1} phi per example (B,)."""
        solved = jnp.linalg.solve(self.precision[...], phi.T)
        return self.ridge * jnp.sum(phi.T * solved, axis=0)

    def __call__(self, h: jax.Array, train: bool = False) -> jax.Array:
        """Logits (B, K): phi beta in training (and the precision updated), the mean-field
        logits g / sqrt(1 + lambda var) otherwise."""
        phi = self.features(h)
        logits = self.output(phi)
        if train:
            self.update_precision(phi)
            return logits
        return logits / jnp.sqrt(1.0 + self.mean_field_factor * self.variance(phi))[:, None]
