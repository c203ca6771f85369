"""Losses of neural ODEs on paired data: simulation-free (flow matching in an embedding space)
and backpropagation through the solver.

Simulation-free training of neural ODEs on paired data (Kim et al., 2024, section 4, eq. 6-8):
with z_0 = f(x), z_1 = g(y) and the path z_t = alpha_t z_1 + sigma_t z_0 (linear: alpha = t,
sigma = 1 - t, `CondOTScheduler`; trigonometric: alpha = sin(pi t / 2), sigma = cos(pi t / 2),
`CosineScheduler`), the loss is

    || v(z_t, t) - dz_t ||^2 + || h(g(y) + sigma_ae xi) - y ||^2,    xi ~ N(0, I),

the flow term through `flowjax.losses.cfm_loss_per_sample` with `AffineProbPath`, the second a
label autoencoder that keeps g injective and h its inverse (no stop-gradient: f, g, h and v
are trained together). Times t ~ U[0, 1) are set to 0 with probability p (0.1 in the paper) so
that v is accurate where every solve starts. Both terms are means over the batch and the
coordinates (the paper's MSE). For classification y is the one-hot label and h's output is
read as logits. With the identity embedding (`SimFreeNODE(embedding="identity")`) the loss is
plain flow matching from x to y in data space and the autoencoder term is left out.

The baseline neural ODE (Chen et al., 2018) is trained on the task loss of its prediction
h(z(1)) through the solver: cross-entropy for classification, MSE for regression; diffrax's
default `RecursiveCheckpointAdjoint` differentiates the adaptive solves (fixed-step ones are a
differentiable `lax.scan`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, Shaped

from flowjax.losses.cfm import cfm_loss_per_sample
from flowjax.losses.time_sampling import sample_time
from flowjax.paths.affine import AffineProbPath
from flowjax.solvers.ode import PairedFlow, ode_predict
from flowjax.solvers.settings import SolverSettings


def check_pairs(
    x: Shaped[Array, "B *event"],
    y: Int[Array, "B"] | Float[Array, "B K"],
    num_classes: int | None = None,
) -> None:
    """Raises a ValueError unless x (n, ...) and y pair up: as many targets as inputs, and for
    classification (num_classes set) integer labels (n,) in [0, num_classes).

    The range is checked when the labels are concrete (not inside a traced function).
    """
    x_shape, y_shape = np.shape(x), np.shape(y)
    if len(x_shape) < 1 or len(y_shape) < 1 or x_shape[0] != y_shape[0]:
        raise ValueError(
            f"Inputs and targets must pair up along the first axis; got x of shape {x_shape} "
            f"and y of shape {y_shape}."
        )
    if num_classes is None:
        return
    if len(y_shape) != 1 or not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise ValueError(
            f"Class labels must be integers of shape ({x_shape[0]},), got shape {y_shape} "
            f"and dtype {jnp.result_type(y)}."
        )
    try:
        labels = np.asarray(y)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return  # traced: the values are not known yet
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Class labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
            f"got values in [{labels.min()}, {labels.max()}]."
        )


def target_vectors(
    y: Int[Array, "B"] | Float[Array, "B K"], num_classes: int | None
) -> Float[Array, "B K"]:
    """The regression targets of the autoencoder: one-hot rows (B, C) of labels (B,), or the
    float targets (B, K) of a regression task as they are."""
    if num_classes is None:
        return y
    return jax.nn.one_hot(y, num_classes, dtype=jnp.float32)


def simfree_node_times(
    key: jax.Array, batch_size: int, zero_probability: float
) -> Float[Array, "B"]:
    """t ~ U[0, 1) of shape (batch_size,), each set to 0 with probability `zero_probability`."""
    time_key, zero_key = jax.random.split(key)
    t = sample_time(time_key, batch_size)
    return jnp.where(jax.random.bernoulli(zero_key, zero_probability, (batch_size,)), 0.0, t)


def simfree_node_loss_terms(
    model,
    path: AffineProbPath,
    x: Float[Array, "B *event"],
    y: Int[Array, "B"] | Float[Array, "B K"],
    t: Float[Array, "B"],
    xi: Float[Array, "B L"],
    *,
    label_noise: float,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(flow loss, label-autoencoder loss), each a scalar mean per coordinate.

    Args:
      model: a `flowjax.models.SimFreeNODE` (or anything with its encode / encode_target /
        decode methods and `num_classes`, called as model(z, t) for the velocity).
      path: the affine path from z_0 = f(x) to z_1 = g(y).
      x: inputs (B, *event).
      y: integer labels (B,) in [0, model.num_classes) for classification (their one-hot rows
        are the targets), or float targets (B, K) for regression.
      t: times (B,); xi: standard normal noise (B, L) of the autoencoder.
      label_noise: sigma_ae, the scale of the noise added to g(y) before decoding.
    """
    check_pairs(x, y, model.num_classes)
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"t must have shape (B,) = ({x.shape[0]},) like x {x.shape}, got {t.shape}."
        )
    y = target_vectors(y, model.num_classes)
    z_0, z_1 = model.encode(x), model.encode_target(y)
    flow = jnp.mean(cfm_loss_per_sample(model, path, z_0, z_1, t)) / z_0.shape[1]
    if model.embedding == "identity":
        return flow, jnp.zeros((), flow.dtype)
    decoded = model.decode(z_1 + label_noise * xi)
    return flow, jnp.mean((decoded - y) ** 2)


def simfree_node_loss(
    model,
    path: AffineProbPath,
    x: Float[Array, "B *event"],
    y: Int[Array, "B"] | Float[Array, "B K"],
    t: Float[Array, "B"],
    xi: Float[Array, "B L"],
    *,
    label_noise: float,
) -> Float[Array, ""]:
    """The scalar loss flow + autoencoder of `simfree_node_loss_terms` (same arguments)."""
    flow, autoencoder = simfree_node_loss_terms(model, path, x, y, t, xi, label_noise=label_noise)
    return flow + autoencoder


def backprop_node_loss(
    model: PairedFlow,
    x: Float[Array, "B *event"],
    y: Int[Array, "B"] | Float[Array, "B K"],
    *,
    num_classes: int | None,
    solver: SolverSettings = SolverSettings(method="dopri5", atol=1e-3, rtol=1e-3),
) -> tuple[Float[Array, ""], Int[Array, ""]]:
    """(task loss of h(z(1)) with z(0) = f(x), forward NFE): mean cross-entropy against labels
    y (B,) when num_classes is set, else the MSE against targets y (B, K); differentiated
    through the solve of `flowjax.solvers.ode_predict` with `solver` (by default dopri5 with
    tolerances 1e-3)."""
    check_pairs(x, y, num_classes)
    prediction, nfe = ode_predict(model, x, solver=solver, return_nfe=True)
    if num_classes is not None:
        return optax.softmax_cross_entropy_with_integer_labels(prediction, y).mean(), nfe
    return jnp.mean((prediction - y) ** 2), nfe
