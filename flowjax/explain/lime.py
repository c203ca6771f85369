"""LIME: a local linear surrogate of a model around a point.

Ribeiro, Singh & Guestrin, 2016, "'Why Should I Trust You?': Explaining the Predictions of Any
Classifier" (KDD), eqs. 1-2, for tabular inputs: perturbations z_i = x + s * e_i around x
(e_i ~ N(0, I), `scale` s per feature), weights by the exponential kernel

    pi_x(z) = exp(-||(z - x) / s||^2 / w^2)        (w: `kernel_width`, LIME's default
                                                    0.75 sqrt(d) on standardised features)

and the surrogate g(z) = b + (z - x) W fit by weighted ridge regression,

    min_{b, W} sum_i pi_x(z_i) ||f(z_i) - b - (z_i - x) W||^2 + alpha ||W||^2,

solved in closed form for every output at once (the intercept b is not penalised). With no
noise in f and a linear f, W is f's weights (shrunk by alpha): the tests check this.

`lime_surrogate` explains one point and returns the surrogate, which guarantee regions
(`flowjax.explain.guarantee`) compare with the model; `lime_explanation` gives attributions
(the weights of a chosen output) for a batch, in the explainer form (model, x, key) ->
attributions (B, *shape). Shapes: a point x (*shape) is flattened to d features; the model
maps (n, *shape) to (n,) or (n, K).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LinearSurrogate:
    """g(z) = intercept + (z - center) @ weights: center (d,), intercept (K,), weights (d, K)
    (K = 1 for a model with scalar outputs)."""

    center: jax.Array
    intercept: jax.Array
    weights: jax.Array

    def __call__(self, z: Float[Array, "n d"]) -> Float[Array, "n K"]:
        return self.intercept + (z - self.center) @ self.weights


def _outputs(model: Callable, z: jax.Array) -> jax.Array:
    """model(z) as (n, K)."""
    out = model(z)
    return out[:, None] if out.ndim == 1 else out.reshape(out.shape[0], -1)


def lime_surrogate(
    model: Callable,
    x: Float[Array, "*shape"],
    key: jax.Array,
    *,
    num_samples: int = 1000,
    scale: float | jax.Array = 1.0,
    kernel_width: float | None = None,
    ridge: float = 1.0,
) -> LinearSurrogate:
    """The LIME surrogate of `model` around x (module docstring): model calls (num_samples,
    *shape) once; `scale` a scalar or per-feature (*shape) perturbation size. The surrogate
    acts on flattened points (n, d)."""
    shape = x.shape
    d = math.prod(shape)
    if num_samples < 2:
        raise ValueError(f"LIME needs at least 2 perturbed samples, got num_samples={num_samples}.")
    if ridge < 0:
        raise ValueError(f"The ridge penalty must be >= 0, got {ridge}.")
    width = 0.75 * math.sqrt(d) if kernel_width is None else kernel_width
    if width <= 0:
        raise ValueError(f"The kernel width must be positive, got {kernel_width}.")
    center = x.reshape(d).astype(jnp.float32)
    s = jnp.broadcast_to(jnp.asarray(scale, jnp.float32), shape).reshape(d)
    noise = jax.random.normal(key, (num_samples, d))
    z = center + s * noise
    y = _outputs(model, z.reshape(num_samples, *shape)).astype(jnp.float32)
    pi = jnp.exp(-jnp.sum(jnp.square(noise), axis=-1) / width**2)
    # Weighted ridge with an unpenalised intercept: centre by the weighted means, then solve.
    p = pi / jnp.sum(pi)
    dz = z - center
    z_mean, y_mean = p @ dz, p @ y
    zc, yc = dz - z_mean, y - y_mean
    gram = (zc * pi[:, None]).T @ zc + ridge * jnp.eye(d)
    weights = jnp.linalg.solve(gram, (zc * pi[:, None]).T @ yc)
    return LinearSurrogate(center, y_mean - z_mean @ weights, weights)


def lime_explanation(
    model: Callable,
    x: Float[Array, "B *shape"],
    key: jax.Array,
    *,
    target: jax.Array | None = None,
    num_samples: int = 1000,
    scale: float | jax.Array = 1.0,
    kernel_width: float | None = None,
    ridge: float = 1.0,
) -> Float[Array, "B *shape"]:
    """LIME attributions of a batch: the surrogate weights of output `target` (B,) (None for a
    model with scalar outputs), shaped like x."""
    keys = jax.random.split(key, x.shape[0])
    kwargs = dict(num_samples=num_samples, scale=scale, kernel_width=kernel_width, ridge=ridge)
    weights = jax.vmap(lambda xi, k: lime_surrogate(model, xi, k, **kwargs).weights)(x, keys)
    if target is None:
        if weights.shape[-1] != 1:
            raise ValueError(
                f"The model has {weights.shape[-1]} outputs: pass target (B,), the output to "
                "explain per example."
            )
        picked = weights[..., 0]
    else:
        picked = jnp.take_along_axis(weights, jnp.asarray(target)[:, None, None], axis=-1)[..., 0]
    return picked.reshape(x.shape)
