"""One training update: the conditional flow-matching loss, its gradient, Adam and the EMA.

Flow Matching Guide and Code (Lipman et al., 2024), section 4.5, eq. 4.23 with the affine path of
eq. 4.64: L(theta) = E_{t, x_0 ~ N(0, I), x_1 ~ data} || u_t^theta(x_t) - dx_t ||^2 (or the
x_1- / x_0-prediction of eqs. 4.65-4.67), computed by `flowjax.losses.cfm_loss`.

Randomness: update `s` draws x_0 (B, *event), t (B,) and the label-dropout mask (B,) for the
whole global batch from `fold_in(state.rng, s)`, before the batch is cut into micro-batches.
Gradient accumulation is a `lax.scan` over `grad_accum_steps` micro-batches inside the compiled
step, chosen over `optax.MultiSteps` because (1) one call is one optimiser update, so step
counts, learning-rate schedules, EMA and checkpoints mean the same with or without it; (2) the
optimiser state holds no gradient accumulator, so checkpoints do not grow and can never stop
between micro-batches; (3) with the noise drawn for the global batch, accumulating over k
micro-batches computes the same per-example terms as one batch, so the update equals the
large-batch update up to float summation order. Micro-batch j holds rows j, j + k, j + 2k, ...
of the batch: with the batch split over devices in contiguous blocks, every micro-batch is
spread evenly over the same devices, with no data movement.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax import losses
from flowjax.paths import AffineProbPath
from flowjax.train import optim
from flowjax.train.sharding import BATCH_AXES, batch_sharding, replicated
from flowjax.train.state import TrainState

Batch = dict[str, jax.Array]  # "x": (B, *event) float32; optionally "label": (B,) int32
Metrics = dict[str, jax.Array]  # scalars


def draw_step_noise(
    key: jax.Array, batch: Batch, loss_config: ml_collections.ConfigDict, num_classes: int | None
) -> Batch:
    """The batch with its source samples "x_0" and times "t" and, if labelled, dropped labels.

    x_0 ~ N(0, I) of the shape of batch["x"]; t of shape (B,) from `losses.sample_time`; labels
    replaced by the null label `num_classes` with probability `loss_config.label_dropout`.
    """
    x_1 = batch["x"]
    noise_key, time_key, drop_key = jax.random.split(key, 3)
    out = dict(batch)
    out["x_0"] = jax.random.normal(noise_key, x_1.shape, x_1.dtype)
    out["t"] = losses.sample_time(
        time_key,
        x_1.shape[0],
        distribution=loss_config.time_distribution,
        mean=loss_config.time_mean,
        std=loss_config.time_std,
        t_max=loss_config.t_max,
        dtype=x_1.dtype,
    )
    if num_classes is not None and loss_config.label_dropout > 0:
        drop = jax.random.bernoulli(drop_key, loss_config.label_dropout, batch["label"].shape)
        out["label"] = jnp.where(drop, num_classes, batch["label"])
    return out


def micro_batches(batch: Batch, num_micro: int, mesh: Mesh) -> Batch:
    """(B, ...) arrays -> (num_micro, B / num_micro, ...); micro-batch j holds rows j::num_micro."""

    def split(a):
        a = a.reshape(a.shape[0] // num_micro, num_micro, *a.shape[1:]).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(
            a, NamedSharding(mesh, PartitionSpec(None, BATCH_AXES))
        )

    return jax.tree.map(split, batch)


def flow_matching_loss(
    params: nnx.State,
    model_state: nnx.State,
    batch: Batch,
    *,
    graphdef: nnx.GraphDef,
    path: AffineProbPath,
    prediction: str,
    conditional: bool,
) -> tuple[jax.Array, nnx.State]:
    """The CFM loss of one (micro-)batch holding "x", "x_0", "t" (and "label"); a scalar."""
    model = nnx.merge(graphdef, params, model_state)
    conditioning = {"label": batch["label"]} if conditional else {}
    loss = losses.cfm_loss(
        model, path, batch["x_0"], batch["x"], batch["t"], prediction=prediction, **conditioning
    )
    return loss, nnx.state(model, nnx.Not(nnx.Param))


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    graphdef: nnx.GraphDef,
    path: AffineProbPath,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: ml_collections.ConfigDict,
    num_classes: int | None,
    mesh: Mesh,
) -> tuple[TrainState, Metrics]:
    """One optimiser update on a global batch; returns the new state and scalar metrics."""
    num_micro = config.train.grad_accum_steps
    inputs = draw_step_noise(
        jax.random.fold_in(state.rng, state.step), batch, config.loss, num_classes
    )
    grad_fn = jax.value_and_grad(
        functools.partial(
            flow_matching_loss,
            graphdef=graphdef,
            path=path,
            prediction=config.loss.prediction,
            conditional=num_classes is not None,
        ),
        has_aux=True,
    )

    def accumulate(carry, micro_batch):
        grad_sum, loss_sum, model_state = carry
        (loss, model_state), grads = grad_fn(state.params, model_state, micro_batch)
        return (jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss, model_state), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grad_sum, loss_sum, model_state), _ = jax.lax.scan(
        accumulate,
        (zeros, jnp.zeros((), jnp.float32), state.model_state),
        micro_batches(inputs, num_micro, mesh),
    )
    grads = jax.tree.map(lambda g: g / num_micro, grad_sum)
    loss = loss_sum / num_micro

    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = optim.ema_update(
        state.ema_params, params, optim.ema_decay(state.step, config.optim.ema_decay)
    )
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        ema_params=ema_params,
        opt_state=opt_state,
        model_state=model_state,
    )
    metrics = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
    }
    return new_state, metrics


def compile_train_step(
    state_shardings: Any,
    *,
    graphdef: nnx.GraphDef,
    path: AffineProbPath,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: ml_collections.ConfigDict,
    num_classes: int | None,
    mesh: Mesh,
):
    """`train_step` jitted with explicit shardings and the input state donated.

    The returned function maps (state, batch) -> (state, metrics): the state laid out as
    `state_shardings`, the batch split over the batch axes, the metrics replicated.
    """
    step = functools.partial(
        train_step,
        graphdef=graphdef,
        path=path,
        optimizer=optimizer,
        schedule=schedule,
        config=config,
        num_classes=num_classes,
        mesh=mesh,
    )
    return jax.jit(
        step,
        in_shardings=(state_shardings, batch_sharding(mesh)),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=0,
    )
