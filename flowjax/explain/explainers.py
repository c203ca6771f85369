"""Feature-attribution explainers: vanilla gradients, gradient x input, integrated gradients,
SmoothGrad, and an adapter for explainers that return flat weights (LIME).

A model is any callable mapping a batch x (B, *shape) to outputs (B,) or (B, K); for (B, K)
outputs `target` (an int, or ints (B,)) picks the explained output of each example (a (B, 1)
output needs none). Each explainer maps x (B, *shape) to attributions phi (B, *shape):

- vanilla gradient (Simonyan et al., 2014):  phi = df(x)/dx.
- gradient x input (Shrikumar et al., 2016):  phi = x * df(x)/dx.
- integrated gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep
  Networks", eq. 1), with a baseline x':

      phi_i = (x_i - x'_i) * int_0^1 df(x' + a (x - x'))/dx_i da,

  approximated with `steps` intervals of [0, 1]: the right Riemann sum of the paper's section 5
  (`rule="riemann"`, error O(1/steps)) or the trapezoid rule (`rule="trapezoid"`, error
  O(1/steps^2) for a smooth f). Completeness: sum_i phi_i = f(x) - f(x') up to this
  discretisation, exactly for a linear f.
- SmoothGrad (Smilkov et al., 2017, "SmoothGrad: removing noise by adding noise", eq. 3):

      phi = (1/n) sum_{j=1}^n df(x + e_j)/dx,   e_j ~ N(0, s^2 I),  s = sigma (max(x) - min(x)),

  with the max and min over the features of each example (sigma is the paper's noise level,
  10-20% recommended).

The explainer protocol: a callable `explainer(model, x, key) -> phi` of the shape of x. The
deterministic explainers here take `key` as an ignored third argument so that every explainer
can be passed where the protocol is expected; bind their options with `functools.partial`, e.g.
`partial(integrated_gradients, steps=64, target=labels)`. The property metrics of
`flowjax.explain.properties` take any such explainer.

Gradients are taken of sum_b f(x)_b, so the attribution of example b is its own gradient only if
the model treats the rows of a batch independently (no batch statistics in the forward pass).
All functions are pure and jit-able (close over the model, or pass it as a static argument).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax._checks import check_count, check_floating, concrete_value

Model = Callable[[jax.Array], jax.Array]
"""Any callable mapping x (B, *shape) to outputs (B,) or (B, K)."""


class Explainer(Protocol):
    """`explainer(model, x, key) -> attributions` with x (B, *shape) and attributions (B, *shape);
    deterministic explainers ignore the key."""

    def __call__(self, model: Model, x: jax.Array, key: jax.Array | None) -> jax.Array: ...


def model_output(model: Model, x: Float[Array, "B ..."], target: Any = None) -> jax.Array:
    """The explained output (B,) of `model` at x (B, *shape): model(x) itself when it is (B,),
    column `target` (an int or ints (B,)) of a (B, K) output, column 0 of a (B, 1) output."""
    batch = x.shape[0]
    out = model(x)
    if out.ndim == 1 and out.shape == (batch,):
        if target is not None:
            raise ValueError(
                f"The model returns one output per example, shape ({batch},); `target` selects a "
                f"class of (B, K) outputs: leave it None."
            )
        return out
    if out.ndim != 2 or out.shape[0] != batch:
        raise ValueError(
            f"The model must map x of shape (B, *shape) = {tuple(x.shape)} to outputs (B,) or "
            f"(B, K) with B = {batch}; got outputs of shape {tuple(out.shape)}."
        )
    classes = out.shape[1]
    if target is None:
        if classes == 1:
            return out[:, 0]
        raise ValueError(
            f"The model returns {classes} outputs per example, shape {tuple(out.shape)}: pass "
            f"`target` (an int, or ints of shape ({batch},)) to pick the class to explain."
        )
    target = jnp.asarray(target)
    if not jnp.issubdtype(target.dtype, jnp.integer) or target.shape not in ((), (batch,)):
        raise ValueError(
            f"`target` must be an int or ints of shape ({batch},); got dtype {target.dtype} and "
            f"shape {tuple(target.shape)}."
        )
    value = concrete_value(target)
    if value is not None and (value.min() < 0 or value.max() >= classes):
        raise ValueError(
            f"`target` holds class indices in [{int(value.min())}, {int(value.max())}], outside "
            f"the model's {classes} outputs [0, {classes})."
        )
    target = jnp.broadcast_to(target, (batch,))
    return jnp.take_along_axis(out, target[:, None], axis=1)[:, 0]


def check_batch_input(x: jax.Array) -> None:
    """Raises unless x is a floating batch (B, *shape) with at least one feature axis."""
    if x.ndim < 2:
        raise ValueError(
            f"x must be a batch (B, *shape) with at least one feature axis; got shape "
            f"{tuple(x.shape)} (use x[None] for one example, x[:, None] for scalar inputs)."
        )
    check_floating(x, "x")


def _gradient(model: Model, x: jax.Array, target: Any) -> jax.Array:
    return jax.grad(lambda z: jnp.sum(model_output(model, z, target)))(x)


def vanilla_gradient(
    model: Model, x: Float[Array, "B ..."], key: jax.Array | None = None, *, target: Any = None
) -> Float[Array, "B ..."]:
    """df(x)/dx (B, *shape) for x (B, *shape); `key` is ignored."""
    check_batch_input(x)
    return _gradient(model, x, target)


def gradient_x_input(
    model: Model, x: Float[Array, "B ..."], key: jax.Array | None = None, *, target: Any = None
) -> Float[Array, "B ..."]:
    """x * df(x)/dx (B, *shape) for x (B, *shape); `key` is ignored."""
    check_batch_input(x)
    return x * _gradient(model, x, target)


def broadcast_baseline(baseline: Any, x: jax.Array) -> jax.Array:
    """`baseline` (a scalar, (*shape) or (B, *shape)) broadcast to x (B, *shape), in x's dtype."""
    baseline = jnp.asarray(baseline, dtype=x.dtype)
    try:
        return jnp.broadcast_to(baseline, x.shape)
    except ValueError:
        raise ValueError(
            f"The baseline must be a scalar or broadcast to x of shape {tuple(x.shape)} (e.g. "
            f"one input of shape {tuple(x.shape[1:])}); got shape {tuple(baseline.shape)}."
        ) from None


def integrated_gradients(
    model: Model,
    x: Float[Array, "B ..."],
    key: jax.Array | None = None,
    *,
    baseline: Any = 0.0,
    steps: int = 50,
    rule: str = "trapezoid",
    target: Any = None,
) -> Float[Array, "B ..."]:
    """Integrated gradients (B, *shape) of x (B, *shape) from `baseline` (a scalar, (*shape) or
    (B, *shape)) with `steps` intervals and `rule` "trapezoid" (steps + 1 gradients) or
    "riemann" (the right sum, steps gradients); `key` is ignored. All gradients are taken in one
    vectorised call on steps (+ 1) batches of B inputs."""
    check_batch_input(x)
    steps = check_count(steps, "steps", minimum=1)
    baseline = broadcast_baseline(baseline, x)
    if rule == "trapezoid":
        alphas = jnp.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
        weights = jnp.full((steps + 1,), 1.0 / steps, x.dtype).at[jnp.array([0, -1])].mul(0.5)
    elif rule == "riemann":
        alphas = jnp.arange(1, steps + 1, dtype=x.dtype) / steps
        weights = jnp.full((steps,), 1.0 / steps, x.dtype)
    else:
        raise ValueError(f"rule must be 'trapezoid' or 'riemann', got {rule!r}.")
    grads = jax.vmap(lambda a: _gradient(model, baseline + a * (x - baseline), target))(alphas)
    return (x - baseline) * jnp.tensordot(weights, grads, axes=1)


def smoothgrad(
    model: Model,
    x: Float[Array, "B ..."],
    key: jax.Array,
    *,
    sigma: float = 0.15,
    samples: int = 50,
    target: Any = None,
) -> Float[Array, "B ..."]:
    """SmoothGrad (B, *shape): the mean gradient at `samples` points x + e, e ~ N(0, s^2) with
    s = sigma * (max - min of each example's features) (module docstring); `key` draws e."""
    check_batch_input(x)
    if key is None:
        raise ValueError("smoothgrad draws its noise from `key`: pass a jax.random key.")
    samples = check_count(samples, "samples", minimum=1)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 (e.g. 0.15), got {sigma!r}.")
    axes = tuple(range(1, x.ndim))
    scale = sigma * (jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True))
    noise = jax.random.normal(key, (samples, *x.shape), x.dtype) * scale
    return jnp.mean(jax.vmap(lambda e: _gradient(model, x + e, target))(noise), axis=0)


def weights_explainer(explain: Callable[..., Any], **options: Any) -> Explainer:
    """An explainer (the protocol above) from `explain(model, x, key, **options)` returning
    weights of shape (B, *shape) or flat (B, prod(shape)), such as a LIME surrogate's
    coefficients; the flat weights are reshaped to x's shape."""

    def explainer(model: Model, x: jax.Array, key: jax.Array | None) -> jax.Array:
        weights = jnp.asarray(explain(model, x, key, **options))
        flat = (x.shape[0], math.prod(x.shape[1:]))
        if weights.shape == x.shape:
            return weights
        if weights.shape == flat:
            return weights.reshape(x.shape)
        raise ValueError(
            f"{getattr(explain, '__name__', 'The explainer')} returned weights of shape "
            f"{tuple(weights.shape)}; expected one weight per feature, {tuple(x.shape)} or "
            f"{flat}."
        )

    return explainer


def lime_explainer(**options: Any) -> Explainer:
    """`flowjax.explain.lime.lime_explanation` with `options` bound, as an explainer."""
    from flowjax.explain.lime import lime_explanation

    return weights_explainer(lime_explanation, **options)
