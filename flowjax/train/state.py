"""The train state: every array a training step reads and writes, as one pytree.

The Flax NNX model is split once into its static structure (`graphdef`) and its variables; the
step works on the variables only (the functional NNX pattern) and `nnx.merge`s them back into a
module inside the compiled step. The state is what a checkpoint stores; together with the data
iterator's position it determines the rest of the run, since the randomness of update `s` is
drawn from `fold_in(rng, s)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

ModelFn = Callable[[nnx.Rngs], nnx.Module]


@flax.struct.dataclass
class TrainState:
    """The arrays of a training run.

    Attributes:
      step: int32 scalar, the number of optimiser updates applied so far.
      params: the model's nnx.Param variables.
      ema_params: their exponential moving average (what sampling uses).
      opt_state: the optax state of `params`.
      model_state: the model's other variables (e.g. batch statistics; empty for the MLP).
      rng: the run's PRNG key; update `s` draws its noise and times from fold_in(rng, s).
    """

    step: jax.Array
    params: nnx.State
    ema_params: nnx.State
    opt_state: optax.OptState
    model_state: nnx.State
    rng: jax.Array


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, params, other variables) of an NNX module."""
    return nnx.split(model, nnx.Param, ...)


def create_train_state(
    model_fn: ModelFn, optimizer: optax.GradientTransformation, seed: int
) -> TrainState:
    """A fresh state: parameters initialised from `seed`, EMA equal to them, step 0."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    _, params, model_state = split_model(model_fn(nnx.Rngs(init_key)))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=optimizer.init(params),
        model_state=model_state,
        rng=train_key,
    )


def abstract_train_state(
    model_fn: ModelFn, optimizer: optax.GradientTransformation, seed: int
) -> tuple[nnx.GraphDef, TrainState]:
    """The model's graphdef and the shapes / dtypes of the train state, computing nothing."""
    graphdef, _, _ = split_model(nnx.eval_shape(lambda: model_fn(nnx.Rngs(0))))
    return graphdef, jax.eval_shape(lambda: create_train_state(model_fn, optimizer, seed))


def init_train_state(
    model_fn: ModelFn, optimizer: optax.GradientTransformation, seed: int, shardings: Any
) -> TrainState:
    """A fresh state created directly in its sharded layout (no full copy on one device)."""
    return jax.jit(lambda: create_train_state(model_fn, optimizer, seed), out_shardings=shardings)()


def ema_model(graphdef: nnx.GraphDef, state: TrainState) -> nnx.Module:
    """The model with the EMA parameters (the one to sample from)."""
    return nnx.merge(graphdef, state.ema_params, state.model_state)
