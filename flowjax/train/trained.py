"""A trained run in memory, and compiled functions run over many points.

`load_trained_flow(config, workdir)` rebuilds a run's setup (`flowjax.train.setup`) and restores
its newest checkpoint; `TrainedFlow.compile(fn)` compiles fn(EMA model, batch, key) over the
run's mesh; `map_batches` runs such a function over host arrays in global batches split over a
mesh's batch axes (every process passes the same arrays and gets the whole result), with progress.
Sampling, evaluation (`flowjax.train.inference`) and judges of generative perplexity
(`flowjax.train.judge`, whose GPT-2 has a mesh of its own) share them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from flowjax.parallel import batch_sharding, from_host, replicated
from flowjax.train.checkpoint import Checkpointer, abstract_with_shardings
from flowjax.train.config import validate_config
from flowjax.train.logs import Progress
from flowjax.train.setup import RunSetup, initialize_distributed, setup_run
from flowjax.train.state import TrainState

Batch = dict[str, Any]  # "x": (B, *event), optionally "label": (B,)


class MissingCheckpointError(FileNotFoundError):
    """Sampling or evaluation was asked of a work directory that holds no checkpoint."""


@dataclasses.dataclass(frozen=True)
class TrainedFlow:
    """A run's setup and its restored train state (of checkpoint `step`)."""

    run: RunSetup
    state: TrainState
    step: int

    def compile(
        self, fn: Callable[[nnx.Module, Batch, jax.Array], Any]
    ) -> Callable[[Batch, jax.Array], Any]:
        """fn(EMA model, batch, key) compiled over the mesh, the batch split over the batch axes
        and the PRNG key replicated."""
        run = self.run

        def apply(ema_params, model_state, batch, key_data):
            model = nnx.merge(run.graphdef, ema_params, model_state)
            return fn(model, batch, jax.random.wrap_key_data(key_data))

        compiled = jax.jit(
            apply,
            in_shardings=(
                run.shardings.ema_params,
                run.shardings.model_state,
                batch_sharding(run.mesh),
                replicated(run.mesh),
            ),
        )

        def call(batch, key):
            key_data = np.asarray(jax.random.key_data(key))  # host data: the same on every process
            return compiled(self.state.ema_params, self.state.model_state, batch, key_data)

        return call


def load_trained_flow(config: ml_collections.ConfigDict, workdir: str) -> TrainedFlow:
    """The newest readable checkpoint of the run in `workdir`."""
    initialize_distributed(config)
    validate_config(config, workdir)
    run = setup_run(config)
    with Checkpointer(workdir) as checkpointer:
        restored = checkpointer.restore_latest(
            abstract_with_shardings(run.abstract_state, run.shardings)
        )
        if restored is None:
            raise MissingCheckpointError(
                f"No checkpoint in {checkpointer.directory}: train first "
                "(--mode=train with the same --workdir)."
            )
    return TrainedFlow(run, restored.state, restored.step)


def to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-process) global array as a NumPy array."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def map_batches(
    fn: Callable[[Batch, jax.Array], jax.Array],
    inputs: dict[str, np.ndarray],
    batch_size: int,
    mesh: Mesh,
    key: jax.Array,
    desc: str | None = None,
) -> np.ndarray:
    """fn over `inputs` (the same NumPy arrays on every process) in global batches of
    `batch_size` rows (a multiple of `batch_multiple(mesh)`; the last batch padded), each split
    over the batch axes of `mesh`, concatenated on the host; batch axis first. Batch b gets the
    key fold_in(key, b). Progress is reported per batch under `desc` (none when None)."""
    n = len(inputs["x"])
    num_batches = math.ceil(n / batch_size)
    sharding = batch_sharding(mesh)
    padded = {k: np.resize(v, (num_batches * batch_size, *v.shape[1:])) for k, v in inputs.items()}
    outputs = []
    enabled = desc is not None and jax.process_index() == 0
    with Progress(num_batches, desc, "batch", enabled=enabled) as progress:
        for b in range(num_batches):
            chunk = {k: v[b * batch_size : (b + 1) * batch_size] for k, v in padded.items()}
            batch = {k: from_host(v, sharding) for k, v in chunk.items()}
            outputs.append(to_host(fn(batch, jax.random.fold_in(key, b))))
            progress.update()
    return np.concatenate(outputs)[:n]


def batch_multiple(mesh: Mesh, size: int = 1) -> int:
    """The smallest multiple of the mesh's data-parallel devices (data x fsdp) that is >= size."""
    parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    return parallel * math.ceil(size / parallel)
