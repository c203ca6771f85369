"""Properties of explanations: faithfulness, robustness, complexity and homogeneity metrics.

The groups of Chen, Subhash, Havasi, Pan & Doshi-Velez (2022), "What Makes a Good Explanation?:
A Harmonized View of Properties of Explanations", with one common formulation for each. An
explainer is any callable `explainer(model, x, key) -> phi` (the protocol of
`flowjax.explain.explainers`) with x and phi of shape (B, *shape); the model maps x (B, *shape)
to outputs (B,) or (B, K), and `target` (an int, or ints (B,)) picks the explained output f(x)
of a (B, K) model (bind the explainer's own `target` with `functools.partial`). ||.|| is the
Euclidean norm over all feature axes and n = prod(shape).

Faithfulness / fidelity
- Infidelity (Yeh, Hsieh, Suggala, Inouye & Ravikumar, 2019, "On the (In)fidelity and
  Sensitivity of Explanations", definition 2.1):

      INFD(phi, f, x) = E_I[(I . phi(x) - (f(x) - f(x - I)))^2],

  a Monte Carlo mean over `samples` perturbations I, either Gaussian (I ~ N(0, sigma^2 I)) or
  square removal (I = m * (x - baseline) with m the indicator of a random `square_size` x
  `square_size` patch of the first two feature axes (H, W), every channel of an (H, W, C) input).
  A linear f with phi = its weights has INFD 0 for any I.
- Deletion and insertion (Petsiuk, Das & Saenko, 2018, "RISE: Randomized Input Sampling for
  Explanation of Black-box Models", section 4.1): the features are ranked by decreasing
  attribution (ties by index) and removed (set to `baseline`) or inserted (into an input at
  `baseline`) `features_per_step` at a time; the curve is f after each step, f at the start
  included, against the fraction of features changed, and its area is the trapezoid rule over
  [0, 1]. A good explanation gives a low deletion area and a high insertion area.

Robustness / sensitivity (neighbours x' = x + d, d uniform in the L_inf ball of radius r, the
explainer called with the same key at x and at every x', so that a random explainer is compared
with itself on common noise)
- Max-sensitivity (Yeh et al., 2019, definition 3.1), unnormalised by default:

      SENS_MAX(phi, f, x, r) = max_{||x' - x||_inf <= r} ||phi(x') - phi(x)||,

  estimated by the max over `samples` neighbours; `relative=True` divides by ||phi(x)|| (where
  that is positive), as Captum's `sensitivity_max` does.
- Local Lipschitz estimate (Alvarez-Melis & Jaakkola, 2018, "On the Robustness of
  Interpretability Methods", eq. 4):

      L(x) = max_{x' in B_r(x)} ||phi(x) - phi(x')|| / ||x - x'||,

  the max over the same kind of sampled neighbours.

Complexity / compactness (of |phi| flattened to n values; an all-zero attribution is read as a
uniform one: Gini 0, entropy log n)
- Sparsity: the Gini index (Chalasani, Chen, Chowdhury, Wu & Jha, 2020, "Concise Explanations of
  Neural Networks using Adversarial Training", section 4, after Hurley & Rickard, 2009), with
  v = |phi| sorted increasingly,

      G = 1 - 2 sum_{k=1}^n (v_k / ||v||_1) (n - k + 1/2) / n,

  0 for a uniform attribution, (n - 1) / n (its maximum) for a one-hot one.
- Entropy (Bhatt, Weller & Moura, 2020, "Evaluating and Aggregating Feature-based Model
  Explanations", definition 4): with p_i = |phi_i| / sum_j |phi_j|, H = -sum_i p_i log p_i,
  log n for a uniform attribution and 0 for a one-hot one.

Homogeneity
- The gap of any per-example metric between subgroups (Chen et al., 2022, section on
  homogeneity; e.g. a fidelity gap): the per-group means and max - min over the non-empty groups.

Every metric returns one value per example, (B,), except `group_gap`. The perturbations are
drawn in one call and evaluated with `jax.vmap` over the samples; all functions are pure and
jit-able (the settings are static Python values). Call the ones that take a model under
`jax.jit` (closing over the model): run eagerly, every small operation compiles on its own,
which was measured about ten times slower on small inputs. The shapes and settings are checked
while tracing, before anything is compiled.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flowjax._checks import check_count, concrete_value
from flowjax.explain.explainers import (
    Explainer,
    Model,
    broadcast_baseline,
    check_batch_input,
    model_output,
)


def explain_checked(
    model: Model, explainer: Explainer, x: Float[Array, "B ..."], key: jax.Array | None
) -> Float[Array, "B ..."]:
    """explainer(model, x, key), checked to have the shape of x (B, *shape)."""
    phi = jnp.asarray(explainer(model, x, key))
    if phi.shape != x.shape:
        raise ValueError(
            f"The explainer returned attributions of shape {tuple(phi.shape)}; an explainer maps "
            f"(model, x, key) to attributions of x's shape {tuple(x.shape)}, one per feature."
        )
    return phi


def _per_example_norm(a: jax.Array) -> jax.Array:
    """||a|| over every axis after the two leading ones: (S, B, *shape) -> (S, B)."""
    return jnp.sqrt(jnp.sum(jnp.square(a), axis=tuple(range(2, a.ndim))))


def _check_positive(value: Any, name: str) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


# --- faithfulness / fidelity -------------------------------------------------------------------


def _square_masks(key: jax.Array, samples: int, x: jax.Array, size: int) -> jax.Array:
    """Indicators (samples, B, *shape) of random size x size patches of axes 1 and 2 of x."""
    if x.ndim not in (3, 4):
        raise ValueError(
            f"Square removal needs image inputs (B, H, W) or (B, H, W, C); got x of shape "
            f"{tuple(x.shape)}: use perturbation='gaussian'."
        )
    height, width = x.shape[1], x.shape[2]
    size = check_count(size, "square_size", minimum=1)
    if size > min(height, width):
        raise ValueError(
            f"square_size must be at most min(H, W) = {min(height, width)}, got {size}."
        )
    key_h, key_w = jax.random.split(key)
    top = jax.random.randint(key_h, (samples, x.shape[0], 1, 1), 0, height - size + 1)
    left = jax.random.randint(key_w, (samples, x.shape[0], 1, 1), 0, width - size + 1)
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]
    mask = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return mask.reshape(mask.shape + (1,) * (x.ndim - 3)).astype(x.dtype)


def infidelity(
    model: Model,
    explainer: Explainer,
    x: Float[Array, "B ..."],
    key: jax.Array,
    *,
    perturbation: str = "gaussian",
    samples: int = 32,
    sigma: float = 0.1,
    square_size: int = 4,
    baseline: Any = 0.0,
    target: Any = None,
) -> Float[Array, "B"]:
    """INFD (B,) of the explanations of x (B, *shape) (module docstring): `perturbation`
    "gaussian" (std `sigma`) or "square" (a `square_size` patch set to `baseline`)."""
    check_batch_input(x)
    samples = check_count(samples, "samples", minimum=1)
    key_explain, key_perturb = jax.random.split(key)
    if perturbation == "gaussian":
        sigma = _check_positive(sigma, "sigma")
        perturbations = sigma * jax.random.normal(key_perturb, (samples, *x.shape), x.dtype)
    elif perturbation == "square":
        mask = _square_masks(key_perturb, samples, x, square_size)
        perturbations = mask * (x - broadcast_baseline(baseline, x))
    else:
        raise ValueError(f"perturbation must be 'gaussian' or 'square', got {perturbation!r}.")
    phi = explain_checked(model, explainer, x, key_explain)
    output = model_output(model, x, target)
    perturbed = jax.vmap(lambda i: model_output(model, x - i, target))(perturbations)
    explained = jnp.sum(perturbations * phi, axis=tuple(range(2, perturbations.ndim)))
    return jnp.mean(jnp.square(explained - (output - perturbed)), axis=0)


class FeatureCurve(NamedTuple):
    """A deletion or insertion curve: the fractions (S + 1,) of features changed after each of
    the S steps (0 first, 1 last) and the model outputs (B, S + 1) there."""

    fractions: jax.Array
    outputs: jax.Array

    def area(self) -> jax.Array:
        """The area (B,) under each curve over [0, 1], by the trapezoid rule."""
        widths = jnp.diff(self.fractions)
        return jnp.sum(widths * (self.outputs[:, 1:] + self.outputs[:, :-1]) / 2, axis=1)


def _feature_curve(
    model: Model,
    explainer: Explainer,
    x: jax.Array,
    key: jax.Array | None,
    baseline: Any,
    features_per_step: int,
    target: Any,
    insert: bool,
) -> FeatureCurve:
    check_batch_input(x)
    per_step = check_count(features_per_step, "features_per_step", minimum=1)
    batch, features = x.shape[0], math.prod(x.shape[1:])
    phi = explain_checked(model, explainer, x, key).reshape(batch, features)
    order = jnp.argsort(-phi, axis=1, stable=True)
    rank = jnp.argsort(order, axis=1)  # rank[b, i]: the position of feature i in the order
    changed = jnp.minimum(jnp.arange(-(-features // per_step) + 1) * per_step, features)
    mask = (rank[None] < changed[:, None, None]).reshape(changed.shape + x.shape)
    reference = broadcast_baseline(baseline, x)
    start, end = (reference, x) if insert else (x, reference)
    outputs = jax.vmap(lambda m: model_output(model, jnp.where(m, end, start), target))(mask)
    return FeatureCurve(changed.astype(x.dtype) / features, outputs.T)


def deletion_curve(
    model: Model,
    explainer: Explainer,
    x: Float[Array, "B ..."],
    key: jax.Array | None = None,
    *,
    baseline: Any = 0.0,
    features_per_step: int = 1,
    target: Any = None,
) -> FeatureCurve:
    """The deletion curve of RISE (module docstring): f as the most attributed features of x
    (B, *shape) are set to `baseline` (a scalar, (*shape) or (B, *shape))."""
    return _feature_curve(model, explainer, x, key, baseline, features_per_step, target, False)


def insertion_curve(
    model: Model,
    explainer: Explainer,
    x: Float[Array, "B ..."],
    key: jax.Array | None = None,
    *,
    baseline: Any = 0.0,
    features_per_step: int = 1,
    target: Any = None,
) -> FeatureCurve:
    """The insertion curve of RISE (module docstring): f as the most attributed features of x
    (B, *shape) are copied into an input at `baseline`."""
    return _feature_curve(model, explainer, x, key, baseline, features_per_step, target, True)


# --- robustness / sensitivity ------------------------------------------------------------------


def _neighbour_explanations(
    model: Model, explainer: Explainer, x: jax.Array, key: jax.Array, radius: Any, samples: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """phi(x) (B, *shape), the offsets d (S, B, *shape) uniform in [-r, r] and phi(x + d)."""
    check_batch_input(x)
    radius = _check_positive(radius, "radius")
    samples = check_count(samples, "samples", minimum=1)
    key_explain, key_offset = jax.random.split(key)
    phi = explain_checked(model, explainer, x, key_explain)
    offsets = jax.random.uniform(
        key_offset, (samples, *x.shape), x.dtype, minval=-radius, maxval=radius
    )
    # One neighbour at a time: nested batching of an explainer that fits per example (LIME)
    # did not finish on the XLA CPU backend.
    neighbours = jax.lax.map(lambda d: explain_checked(model, explainer, x + d, key_explain),
                             offsets)
    return phi, offsets, neighbours


def max_sensitivity(
    model: Model,
    explainer: Explainer,
    x: Float[Array, "B ..."],
    key: jax.Array,
    *,
    radius: float,
    samples: int = 16,
    relative: bool = False,
) -> Float[Array, "B"]:
    """SENS_MAX (B,) at x (B, *shape) over `samples` neighbours in the L_inf ball of `radius`:
    max ||phi(x') - phi(x)||, divided by ||phi(x)|| (where positive) when `relative`."""
    phi, _, neighbours = _neighbour_explanations(model, explainer, x, key, radius, samples)
    sensitivity = jnp.max(_per_example_norm(neighbours - phi), axis=0)
    if not relative:
        return sensitivity
    scale = _per_example_norm(phi[None])[0]
    return sensitivity / jnp.where(scale > 0, scale, 1.0)


def local_lipschitz(
    model: Model,
    explainer: Explainer,
    x: Float[Array, "B ..."],
    key: jax.Array,
    *,
    radius: float,
    samples: int = 16,
) -> Float[Array, "B"]:
    """The local Lipschitz estimate (B,) at x (B, *shape): max ||phi(x) - phi(x')|| / ||x - x'||
    over `samples` neighbours x' in the L_inf ball of `radius`."""
    phi, offsets, neighbours = _neighbour_explanations(model, explainer, x, key, radius, samples)
    ratios = _per_example_norm(neighbours - phi) / _per_example_norm(offsets)
    return jnp.max(ratios, axis=0)


# --- complexity / compactness ------------------------------------------------------------------


def _check_attributions(attributions: jax.Array) -> jax.Array:
    """Raises unless attributions are a batch (B, *shape) with at least one feature."""
    attributions = jnp.asarray(attributions)
    if attributions.ndim < 2 or attributions.size == 0:
        raise ValueError(
            f"Attributions must be a batch (B, *shape) with at least one feature; got shape "
            f"{tuple(attributions.shape)}."
        )
    return attributions


@jax.jit
def _gini(attributions: jax.Array) -> jax.Array:
    values = jnp.sort(jnp.abs(attributions.reshape(attributions.shape[0], -1)), axis=1)
    n = values.shape[1]
    total = jnp.sum(values, axis=1)
    k = jnp.arange(1, n + 1, dtype=values.dtype)
    shares = values / jnp.where(total > 0, total, 1.0)[:, None]
    gini = 1.0 - 2.0 * jnp.sum(shares * (n - k + 0.5) / n, axis=1)
    return jnp.where(total > 0, gini, 0.0)


@jax.jit
def _entropy(attributions: jax.Array) -> jax.Array:
    values = jnp.abs(attributions.reshape(attributions.shape[0], -1))
    total = jnp.sum(values, axis=1)
    p = values / jnp.where(total > 0, total, 1.0)[:, None]
    entropy = -jnp.sum(jax.scipy.special.xlogy(p, p), axis=1)
    return jnp.where(total > 0, entropy, jnp.log(values.shape[1]))


def gini_sparsity(attributions: Float[Array, "B ..."]) -> Float[Array, "B"]:
    """The Gini index (B,) of |attributions| (B, *shape) (module docstring): 0 when uniform,
    (n - 1) / n when one-hot."""
    return _gini(_check_attributions(attributions))


def attribution_entropy(attributions: Float[Array, "B ..."]) -> Float[Array, "B"]:
    """The entropy (B,) in nats of |attributions| (B, *shape) normalised to sum 1: log n when
    uniform, 0 when one-hot."""
    return _entropy(_check_attributions(attributions))


# --- homogeneity -------------------------------------------------------------------------------


@partial(jax.jit, static_argnums=2)
def _group_means(values: jax.Array, groups: jax.Array, num_groups: int):
    sums = jax.ops.segment_sum(values, groups, num_segments=num_groups)
    counts = jax.ops.segment_sum(jnp.ones_like(values), groups, num_segments=num_groups)
    means = jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1.0), jnp.nan)
    return means, jnp.nanmax(means) - jnp.nanmin(means)


def group_gap(
    values: Float[Array, "N"], groups: Int[Array, "N"], num_groups: int
) -> tuple[Float[Array, "G"], Float[Array, ""]]:
    """The per-group means (G,) of per-example metric values (N,) with group ids (N,) in
    [0, num_groups) (NaN for an empty group), and the gap max - min over non-empty groups."""
    values, groups = jnp.asarray(values), jnp.asarray(groups)
    num_groups = check_count(num_groups, "num_groups", minimum=1)
    if values.ndim != 1 or groups.shape != values.shape:
        raise ValueError(
            f"group_gap takes per-example values (N,) and group ids (N,); got shapes "
            f"{tuple(values.shape)} and {tuple(groups.shape)}."
        )
    if not jnp.issubdtype(groups.dtype, jnp.integer):
        raise TypeError(f"Group ids must be integers, got dtype {groups.dtype}.")
    ids = concrete_value(groups)
    if ids is not None and ids.size and (ids.min() < 0 or ids.max() >= num_groups):
        raise ValueError(
            f"Group ids must lie in [0, {num_groups}); got ids in [{int(ids.min())}, "
            f"{int(ids.max())}]."
        )
    return _group_means(values, groups, num_groups)
